//! Bounded, cancellable waits and retries. Nothing here sleeps a fixed time: every pause is a
//! step of an exponential backoff with jitter, cut short by the deadline or by cancellation.
//!
//! # Schedule
//!
//! The first probe runs at once, so a resource that is already in the wanted state costs no
//! waiting. After that the pause starts at [`WaitPolicy::initial_interval`] (1 s by default) and
//! grows by [`WaitPolicy::multiplier`] (1.5) up to [`WaitPolicy::max_interval`] (20 s), each
//! pause jittered by ±[`WaitPolicy::jitter`] (20 %). The last pause is shortened so that the wait
//! ends at its deadline, [`WaitPolicy::max_wait`].

use std::future::Future;
use std::time::Duration;

use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// How long and how often to poll.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct WaitPolicy {
    /// Pause after the first probe.
    pub initial_interval: Duration,
    /// Largest pause between two probes.
    pub max_interval: Duration,
    /// Growth factor of the pause (>= 1).
    pub multiplier: f64,
    /// Relative jitter applied to each pause, 0.0 to 1.0.
    pub jitter: f64,
    /// Deadline of a whole wait or retry loop.
    pub max_wait: Duration,
    /// When the awaited resource is rarely ready before this (the fastest AWS makes it, per
    /// kind): from then on a wait probes every [`near_interval`](WaitPolicy::near_interval) at
    /// most, so it notices readiness within seconds instead of up to `max_interval` late, and a
    /// pause that would pass it ends at it. `None`: the backoff alone. Set per wait with
    /// [`WaitPolicy::expecting`].
    pub ready_from: Option<Duration>,
    /// The largest pause of a wait once [`ready_from`](WaitPolicy::ready_from) has passed.
    pub near_interval: Duration,
}

/// The default overall ceiling of one wait: 3 hours. Waits are bounded by their per-kind cap
/// (e.g. OpenSearch 150 min, Redis 45 min, EKS cluster 25 min) or by this, whichever is shorter.
pub const DEFAULT_MAX_WAIT: Duration = Duration::from_secs(3 * 3600);

impl Default for WaitPolicy {
    fn default() -> Self {
        WaitPolicy {
            initial_interval: Duration::from_secs(1),
            max_interval: Duration::from_secs(20),
            multiplier: 1.5,
            jitter: 0.2,
            // An overall ceiling above every per-kind cap (OpenSearch 150 min is the longest), so
            // each cap applies as written; lower it to make every wait shorter.
            max_wait: DEFAULT_MAX_WAIT,
            ready_from: None,
            near_interval: NEAR_INTERVAL,
        }
    }
}

/// The default [`WaitPolicy::near_interval`]: 5 s, a fifth of a minute-scale wait's poll lag
/// at `max_interval`, and a rate (0.2 calls a second) far below any Describe call's limit.
pub const NEAR_INTERVAL: Duration = Duration::from_secs(5);

impl WaitPolicy {
    /// The same policy with another deadline.
    pub fn with_max_wait(mut self, max_wait: Duration) -> WaitPolicy {
        self.max_wait = max_wait;
        self
    }

    /// The same policy with the deadline capped at `cap` (a per-resource-kind plausibility limit).
    pub fn capped(mut self, cap: Duration) -> WaitPolicy {
        self.max_wait = self.max_wait.min(cap);
        self
    }

    /// The same policy for a resource that is rarely ready before `ready_from` (see
    /// [`WaitPolicy::ready_from`]).
    pub fn expecting(mut self, ready_from: Duration) -> WaitPolicy {
        self.ready_from = Some(ready_from);
        self
    }

    /// The pause after `backoff`'s `pause` at `elapsed` into a wait: shortened to
    /// [`near_interval`](WaitPolicy::near_interval) once [`ready_from`](WaitPolicy::ready_from)
    /// has passed, and to end at `ready_from` when it would pass it.
    pub fn pause_at(&self, pause: Duration, elapsed: Duration) -> Duration {
        match self.ready_from {
            Some(from) if elapsed >= from => pause.min(self.near_interval),
            Some(from) if elapsed + pause > from => from - elapsed,
            _ => pause,
        }
    }

    /// The pauses this policy produces, without jitter (for documentation and tests).
    pub fn schedule(&self) -> Backoff {
        Backoff { policy: WaitPolicy { jitter: 0.0, ..*self }, attempt: 0, rng: fastrand::Rng::with_seed(0) }
    }

    /// The pauses with jitter.
    pub fn backoff(&self) -> Backoff {
        Backoff { policy: *self, attempt: 0, rng: fastrand::Rng::new() }
    }
}

/// An endless iterator of pauses.
#[derive(Debug, Clone)]
pub struct Backoff {
    policy: WaitPolicy,
    attempt: i32,
    rng: fastrand::Rng,
}

impl Iterator for Backoff {
    type Item = Duration;

    fn next(&mut self) -> Option<Duration> {
        let p = &self.policy;
        let base = p.initial_interval.as_secs_f64() * p.multiplier.max(1.0).powi(self.attempt);
        let base = base.min(p.max_interval.as_secs_f64());
        self.attempt = self.attempt.saturating_add(1);
        let jitter = p.jitter.clamp(0.0, 1.0);
        let factor = if jitter > 0.0 { 1.0 - jitter + self.rng.f64() * 2.0 * jitter } else { 1.0 };
        Some(Duration::from_secs_f64(base * factor))
    }
}

/// What a probe saw.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Probe<T> {
    /// The condition holds; the wait ends with this value.
    Done(T),
    /// Not yet; `status` is shown in progress messages and timeout errors.
    Pending(String),
}

/// Why a wait or retry ended without success.
#[derive(Debug, thiserror::Error)]
pub enum WaitError<E> {
    /// The deadline passed while the condition did not hold. Transient: a later run resumes.
    #[error("timed out after {waited:?} waiting for {what} (last status: {last_status})")]
    TimedOut {
        /// What was awaited.
        what: String,
        /// How long it waited.
        waited: Duration,
        /// The last status the probe reported.
        last_status: String,
    },
    /// The context was cancelled. The stack is left resumable.
    #[error("cancelled while waiting for {what}")]
    Cancelled {
        /// What was awaited.
        what: String,
    },
    /// The probe or operation failed with an error that is not retried, or kept failing until
    /// the deadline.
    #[error("{what} failed after {attempts} attempt(s)")]
    Failed {
        /// What was attempted.
        what: String,
        /// How many attempts were made.
        attempts: u32,
        /// The last error.
        #[source]
        source: E,
    },
}

impl<E> WaitError<E> {
    /// The underlying error of `Failed`, if any.
    pub fn into_source(self) -> Option<E> {
        match self {
            WaitError::Failed { source, .. } => Some(source),
            _ => None,
        }
    }
}

/// Polls `probe` until it reports [`Probe::Done`], the policy's deadline passes, or `cancel`
/// fires. The first probe runs at once. A probe error ends the wait at once.
pub async fn until<T, E, F, Fut>(
    what: &str,
    policy: &WaitPolicy,
    cancel: &CancellationToken,
    mut probe: F,
) -> Result<T, WaitError<E>>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<Probe<T>, E>>,
{
    let start = Instant::now();
    let deadline = start + policy.max_wait;
    let mut backoff = policy.backoff();
    let mut attempts = 0;
    loop {
        if cancel.is_cancelled() {
            return Err(WaitError::Cancelled { what: what.to_owned() });
        }
        attempts += 1;
        let status = match probe().await {
            Ok(Probe::Done(value)) => return Ok(value),
            Ok(Probe::Pending(status)) => status,
            Err(source) => return Err(WaitError::Failed { what: what.to_owned(), attempts, source }),
        };
        let now = Instant::now();
        if now >= deadline {
            return Err(WaitError::TimedOut { what: what.to_owned(), waited: now - start, last_status: status });
        }
        let pause = policy.pause_at(backoff.next().unwrap_or(policy.max_interval), now - start).min(deadline - now);
        tracing::debug!(what, %status, ?pause, "waiting");
        pause_or_cancel(pause, cancel, what).await?;
    }
}

/// A wait's condition: a pure function of the observed state (`None`: the resource does not
/// exist) that says done, pending (with the status to show), or failed (the error ends the wait
/// at once). As kube-runtime's `wait::Condition`, it is tested on its own, without a clock.
pub trait Condition<S, E>: Fn(Option<&S>) -> Result<Probe<()>, E> {}

impl<S, E, F: Fn(Option<&S>) -> Result<Probe<()>, E>> Condition<S, E> for F {}

/// Polls `fetch` until `condition` holds for what it returns, with [`until`]'s policy,
/// cancellation and first poll at once; returns the state the condition accepted (`None` for a
/// condition met by absence, such as [`is_deleted`]).
pub async fn until_state<S, E, F, Fut>(
    what: &str,
    policy: &WaitPolicy,
    cancel: &CancellationToken,
    mut fetch: F,
    condition: impl Condition<S, E>,
) -> Result<Option<S>, WaitError<E>>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<Option<S>, E>>,
{
    let condition = &condition;
    until(what, policy, cancel, || {
        let fetched = fetch();
        async move {
            let state = fetched.await?;
            Ok(match condition(state.as_ref())? {
                Probe::Done(()) => Probe::Done(state),
                Probe::Pending(status) => Probe::Pending(status),
            })
        }
    })
    .await
}

/// The condition "gone": met when the resource no longer exists; `status` names what is left.
pub fn is_deleted<S, E>(status: impl Fn(&S) -> String) -> impl Condition<S, E> {
    move |state: Option<&S>| Ok(state.map_or(Probe::Done(()), |s| Probe::Pending(status(s))))
}

/// Polls `fetch` (the resource's status while it exists, `None` once it is gone) until it is
/// gone: [`until_state`] with [`is_deleted`], for the common "wait until deleted" of every tier.
pub async fn until_gone<E, F, Fut>(
    what: &str,
    policy: &WaitPolicy,
    cancel: &CancellationToken,
    fetch: F,
) -> Result<(), WaitError<E>>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<Option<String>, E>>,
{
    until_state(what, policy, cancel, fetch, is_deleted(String::clone)).await.map(drop)
}

/// Runs `op` until it succeeds, retrying while `retryable` says the error is one the SDK does not
/// retry itself but that clears with time (IAM propagation, `DependencyViolation` while ENIs
/// linger, "update in progress"). Gives up at the policy's deadline with the last error.
pub async fn retry<T, E, F, Fut, R>(
    what: &str,
    policy: &WaitPolicy,
    cancel: &CancellationToken,
    retryable: R,
    mut op: F,
) -> Result<T, WaitError<E>>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, E>>,
    R: Fn(&E) -> bool,
{
    let start = Instant::now();
    let deadline = start + policy.max_wait;
    let mut backoff = policy.backoff();
    let mut attempts = 0;
    loop {
        if cancel.is_cancelled() {
            return Err(WaitError::Cancelled { what: what.to_owned() });
        }
        attempts += 1;
        let err = match op().await {
            Ok(value) => return Ok(value),
            Err(e) => e,
        };
        let now = Instant::now();
        if !retryable(&err) || now >= deadline {
            return Err(WaitError::Failed { what: what.to_owned(), attempts, source: err });
        }
        let pause = backoff.next().unwrap_or(policy.max_interval).min(deadline - now);
        tracing::debug!(what, attempts, ?pause, "retrying");
        pause_or_cancel(pause, cancel, what).await?;
    }
}

async fn pause_or_cancel<E>(pause: Duration, cancel: &CancellationToken, what: &str) -> Result<(), WaitError<E>> {
    tokio::select! {
        () = tokio::time::sleep(pause) => Ok(()),
        () = cancel.cancelled() => Err(WaitError::Cancelled { what: what.to_owned() }),
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use super::*;

    /// How late a wait under `policy` notices a resource ready 300 s after it starts.
    async fn lag_at_300s(policy: WaitPolicy) -> Duration {
        let start = Instant::now();
        let ready = start + Duration::from_secs(300);
        until("the resource", &policy, &CancellationToken::new(), || async {
            Ok::<_, ()>(if Instant::now() >= ready { Probe::Done(()) } else { Probe::Pending("creating".into()) })
        })
        .await
        .unwrap();
        start.elapsed() - Duration::from_secs(300)
    }

    #[tokio::test(start_paused = true)]
    async fn a_wait_expecting_readiness_probes_closely_from_then_on() {
        let plain = WaitPolicy { jitter: 0.0, ..WaitPolicy::default() };
        // The backoff alone: probes at 289.3 s and 309.3 s (1 s growing by 1.5 to 20 s).
        let lag = lag_at_300s(plain).await;
        assert!(lag > Duration::from_secs(9) && lag < Duration::from_secs(10), "{lag:?}");
        // Expecting readiness from 280 s: a probe at 280 s, then every 5 s.
        let near = plain.expecting(Duration::from_secs(280));
        assert_eq!(lag_at_300s(near).await, Duration::ZERO);
        let near = plain.expecting(Duration::from_secs(282));
        assert_eq!(lag_at_300s(near).await, Duration::from_secs(2));
        // The pause rule itself.
        let p = plain.expecting(Duration::from_secs(100));
        assert_eq!(p.pause_at(Duration::from_secs(20), Duration::from_secs(50)), Duration::from_secs(20));
        assert_eq!(p.pause_at(Duration::from_secs(20), Duration::from_secs(90)), Duration::from_secs(10));
        assert_eq!(p.pause_at(Duration::from_secs(20), Duration::from_secs(120)), NEAR_INTERVAL);
        assert_eq!(p.pause_at(Duration::from_secs(2), Duration::from_secs(120)), Duration::from_secs(2));
    }

    fn policy() -> WaitPolicy {
        WaitPolicy {
            initial_interval: Duration::from_secs(1),
            max_interval: Duration::from_secs(8),
            multiplier: 2.0,
            jitter: 0.0,
            max_wait: Duration::from_secs(60),
            ..WaitPolicy::default()
        }
    }

    #[test]
    fn schedule_grows_exponentially_up_to_the_cap() {
        let secs: Vec<u64> = policy().schedule().take(6).map(|d| d.as_secs()).collect();
        assert_eq!(secs, vec![1, 2, 4, 8, 8, 8]);
    }

    #[test]
    fn jitter_stays_within_bounds() {
        let p = WaitPolicy { jitter: 0.2, ..policy() };
        for (jittered, plain) in p.backoff().zip(p.schedule()).take(50) {
            let ratio = jittered.as_secs_f64() / plain.as_secs_f64();
            assert!((0.8..=1.2).contains(&ratio), "ratio {ratio}");
        }
    }

    #[tokio::test(start_paused = true)]
    async fn until_polls_at_once_then_backs_off() {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let start = Instant::now();
        let log = seen.clone();
        let value = until("thing", &policy(), &CancellationToken::new(), || {
            let log = log.clone();
            async move {
                let mut log = log.lock().unwrap();
                log.push(start.elapsed().as_secs());
                Ok::<_, ()>(if log.len() == 5 { Probe::Done(7) } else { Probe::Pending("creating".into()) })
            }
        })
        .await
        .unwrap();
        assert_eq!(value, 7);
        assert_eq!(*seen.lock().unwrap(), vec![0, 1, 3, 7, 15]);
    }

    #[tokio::test(start_paused = true)]
    async fn until_times_out_at_the_deadline_with_the_last_status() {
        let start = Instant::now();
        let err = until("nat-1 available", &policy(), &CancellationToken::new(), || async {
            Ok::<Probe<()>, ()>(Probe::Pending("pending".into()))
        })
        .await
        .unwrap_err();
        match err {
            WaitError::TimedOut { what, waited, last_status } => {
                assert_eq!(what, "nat-1 available");
                assert_eq!(last_status, "pending");
                assert_eq!(waited, Duration::from_secs(60));
            }
            other => panic!("unexpected {other:?}"),
        }
        assert_eq!(start.elapsed(), Duration::from_secs(60));
    }

    #[tokio::test(start_paused = true)]
    async fn until_stops_when_cancelled() {
        let cancel = CancellationToken::new();
        let trigger = cancel.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(2500)).await;
            trigger.cancel();
        });
        let start = Instant::now();
        let err = until("x", &policy(), &cancel, || async { Ok::<Probe<()>, ()>(Probe::Pending("p".into())) })
            .await
            .unwrap_err();
        assert!(matches!(err, WaitError::Cancelled { .. }), "{err:?}");
        assert_eq!(start.elapsed(), Duration::from_millis(2500));
    }

    #[tokio::test(start_paused = true)]
    async fn probe_errors_end_the_wait_at_once() {
        let err = until("x", &policy(), &CancellationToken::new(), || async { Err::<Probe<()>, _>("boom") })
            .await
            .unwrap_err();
        assert!(matches!(err, WaitError::Failed { attempts: 1, source: "boom", .. }), "{err:?}");
    }

    #[tokio::test(start_paused = true)]
    async fn retry_retries_only_retryable_errors_until_success() {
        let calls = Arc::new(Mutex::new(0));
        let c = calls.clone();
        let out = retry(
            "delete subnet",
            &policy(),
            &CancellationToken::new(),
            |e: &&str| *e == "DependencyViolation",
            || {
                let c = c.clone();
                async move {
                    let mut n = c.lock().unwrap();
                    *n += 1;
                    if *n < 3 { Err("DependencyViolation") } else { Ok(*n) }
                }
            },
        )
        .await
        .unwrap();
        assert_eq!(out, 3);

        let err = retry(
            "x",
            &policy(),
            &CancellationToken::new(),
            |e: &&str| *e == "DependencyViolation",
            || async { Err::<(), _>("AccessDenied") },
        )
        .await
        .unwrap_err();
        assert!(matches!(err, WaitError::Failed { attempts: 1, source: "AccessDenied", .. }));
    }

    #[tokio::test(start_paused = true)]
    async fn retry_gives_up_at_the_deadline_with_the_last_error() {
        let start = Instant::now();
        let err = retry(
            "x",
            &policy(),
            &CancellationToken::new(),
            |_: &&str| true,
            || async { Err::<(), _>("DependencyViolation") },
        )
        .await
        .unwrap_err();
        match err {
            WaitError::Failed { attempts, source, .. } => {
                assert_eq!(source, "DependencyViolation");
                // 0,1,3,7,15,23,31,39,47,55,60
                assert_eq!(attempts, 11);
            }
            other => panic!("unexpected {other:?}"),
        }
        assert_eq!(start.elapsed(), Duration::from_secs(60));
    }

    #[tokio::test(start_paused = true)]
    async fn a_state_wait_returns_what_the_condition_accepted() {
        let polls = std::cell::Cell::new(0);
        let states = ["CREATING", "CREATING", "ACTIVE"];
        let active = |s: Option<&&str>| -> Result<Probe<()>, String> {
            match s {
                None => Err("vanished".into()),
                Some(&"ACTIVE") => Ok(Probe::Done(())),
                Some(other) => Ok(Probe::Pending((*other).to_owned())),
            }
        };
        let fetch = || {
            let i = polls.get();
            polls.set(i + 1);
            async move { Ok::<_, String>(Some(states[i])) }
        };
        let got = until_state("x", &WaitPolicy::default(), &CancellationToken::new(), fetch, active).await.unwrap();
        assert_eq!((got, polls.get()), (Some("ACTIVE"), 3));
        // Gone: met by absence.
        let gone = is_deleted::<&str, String>(|s| s.to_string());
        assert_eq!(gone(None), Ok(Probe::Done(())));
        assert_eq!(gone(Some(&"DELETING")), Ok(Probe::Pending("DELETING".into())));
    }

    #[tokio::test(start_paused = true)]
    async fn until_gone_polls_while_the_status_is_there_and_reports_it_at_the_deadline() {
        let polls = std::cell::Cell::new(0);
        let fetch = || {
            let i = polls.get();
            polls.set(i + 1);
            async move { Ok::<_, String>((i < 2).then(|| "deleting".to_owned())) }
        };
        until_gone("x", &WaitPolicy::default(), &CancellationToken::new(), fetch).await.unwrap();
        assert_eq!(polls.get(), 3, "two pending polls, then gone");
        let stuck = || async { Ok::<_, String>(Some("deleting".to_owned())) };
        let policy = WaitPolicy { max_wait: Duration::from_secs(30), ..WaitPolicy::default() };
        match until_gone("x", &policy, &CancellationToken::new(), stuck).await {
            Err(WaitError::TimedOut { last_status, .. }) => assert_eq!(last_status, "deleting"),
            other => panic!("expected a timeout naming the last status, got {other:?}"),
        }
    }
}
