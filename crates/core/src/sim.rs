//! The timing model of the tiers' in-memory fakes (their `testing` modules, feature
//! `test-util`): the real provisioners run over them on tokio's paused clock, in the tiers' own
//! tests and in the simulated-time benchmark.
//!
//! Timing model (documented in the workspace README, "Performance"):
//! - every call that creates or changes a control-plane object takes one `cheap_object` duration
//!   (the API round trip and the object settling), reads take no time;
//! - a resource with a lifecycle (NAT gateway, EKS cluster, node group, add-on, Aurora cluster and
//!   instance, Redis, OpenSearch, ACM validation, a Helm release) is created at once in its
//!   pending state and reports ready once its sampled duration has passed: the provisioners find
//!   that out through their own waits (their real poll schedule), so polling lag counts;
//! - durations are drawn per resource from a log-normal fitted to the median and p95 of
//!   `aws-durations.toml`, truncated below at its min (and above where a maximum is documented).

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::time::Instant;

use crate::{AwsError, Tags};

/// min / median / p95 seconds.
pub type Dist = [f64; 3];

/// One API call's round trip (the request signed, sent, answered in the region), charged to
/// every read and to every call of the control plane (`control`): 100 ms, an estimate (the
/// durations file has no per-call figure; in-region AWS API calls answer in tens to a few
/// hundred milliseconds). A write's cost is its `cheap_object` duration, which includes it.
pub const API_ROUND_TRIP: Duration = Duration::from_millis(100);

/// The clock, the durations and what one run sampled.
pub struct Sim {
    dists: BTreeMap<String, Dist>,
    /// Documented upper bounds, seconds: a draw above is clamped.
    max: BTreeMap<String, f64>,
    seed: u64,
    /// One random stream per kind (and label): the k-th draw of a kind is the same whatever
    /// order the provisioners create resources in, so two graph shapes run on one seed meet the
    /// same AWS.
    rngs: Mutex<BTreeMap<String, fastrand::Rng>>,
    ids: AtomicU64,
    /// Every duration drawn, by kind, in drawing order.
    sampled: Mutex<BTreeMap<String, Vec<Duration>>>,
    calls: AtomicU64,
    writes: AtomicU64,
    /// What a read costs ([`API_ROUND_TRIP`]).
    round_trip: Duration,
    /// Every duration zero ([`Sim::instant`]).
    instant: bool,
}

impl std::fmt::Debug for Sim {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sim").field("seed", &self.seed).field("calls", &self.calls()).finish_non_exhaustive()
    }
}

/// The standard normal's 95th percentile.
const Z95: f64 = 1.644_853_6;

impl Sim {
    /// A simulation over `dists` (kind -> min / median / p95 seconds).
    pub fn new(dists: BTreeMap<String, Dist>, max: BTreeMap<String, f64>, seed: u64) -> Sim {
        Sim {
            dists,
            max,
            seed,
            rngs: Mutex::new(BTreeMap::new()),
            ids: AtomicU64::new(1),
            sampled: Mutex::new(BTreeMap::new()),
            calls: AtomicU64::new(0),
            writes: AtomicU64::new(0),
            round_trip: API_ROUND_TRIP,
            instant: false,
        }
    }

    /// A simulation where every write and read answers at once and every resource is ready
    /// when made (no `cheap_object` cost, no round trip, every duration zero), for the tiers'
    /// own tests of what the fakes hold rather than of time.
    pub fn instant() -> Sim {
        let mut sim = Sim::new(BTreeMap::from([("cheap_object".to_owned(), [0.0; 3])]), BTreeMap::new(), 0);
        sim.round_trip = Duration::ZERO;
        sim.instant = true;
        sim
    }

    /// A duration of `kind`, recorded under `kind`.
    pub fn duration(&self, kind: &str) -> Duration {
        self.duration_for(kind, "")
    }

    /// A duration of `kind`, recorded under `kind:label` (`kind` without a label).
    pub fn duration_for(&self, kind: &str, label: &str) -> Duration {
        if self.instant {
            return Duration::ZERO;
        }
        let [min, median, p95] = *self.dists.get(kind).unwrap_or_else(|| panic!("no duration for {kind}"));
        let key = if label.is_empty() { kind.to_owned() } else { format!("{kind}:{label}") };
        let secs = {
            let mut rngs = self.rngs.lock().unwrap();
            // The stream's seed: the run's seed mixed with the key's FNV-1a hash.
            let stream =
                key.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3));
            let rng = rngs.entry(key.clone()).or_insert_with(|| fastrand::Rng::with_seed(self.seed ^ stream));
            // Box-Muller: one standard normal from two uniforms in (0, 1].
            let (u1, u2) = (1.0 - rng.f64(), rng.f64());
            let z = (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos();
            let sigma = (p95 / median).ln() / Z95;
            (median.ln() + sigma * z).exp().max(min)
        };
        let secs = self.max.get(kind).map_or(secs, |m| secs.min(*m));
        let d = Duration::from_secs_f64(secs);
        self.sampled.lock().unwrap().entry(key).or_default().push(d);
        d
    }

    /// When a resource of `kind` created now becomes ready.
    pub fn ready_at(&self, kind: &str) -> Instant {
        Instant::now() + self.duration(kind)
    }

    /// [`Sim::ready_at`], recorded under `kind:label`.
    pub fn ready_at_for(&self, kind: &str, label: &str) -> Instant {
        Instant::now() + self.duration_for(kind, label)
    }

    /// A write to a control-plane object: takes the median `cheap_object` duration (a fixed
    /// cost, so that the critical path can charge the same for each object without knowing
    /// which call made it).
    pub async fn write(&self) {
        self.calls.fetch_add(1, Ordering::Relaxed);
        self.writes.fetch_add(1, Ordering::Relaxed);
        let cost = Duration::from_secs_f64(self.dists["cheap_object"][1]);
        if !cost.is_zero() {
            tokio::time::sleep(cost).await;
        }
    }

    /// A read (or any call that changes no resource): counted, takes one API round trip.
    pub async fn read(&self) {
        self.calls.fetch_add(1, Ordering::Relaxed);
        if !self.round_trip.is_zero() {
            tokio::time::sleep(self.round_trip).await;
        }
    }

    /// A fresh id `prefix-<n>`.
    pub fn id(&self, prefix: &str) -> String {
        format!("{prefix}-{:08x}", self.ids.fetch_add(1, Ordering::Relaxed))
    }

    /// What the run drew, by kind.
    pub fn sampled(&self) -> BTreeMap<String, Vec<Duration>> {
        self.sampled.lock().unwrap().clone()
    }

    /// Calls made.
    pub fn calls(&self) -> u64 {
        self.calls.load(Ordering::Relaxed)
    }

    /// Writes made (the calls charged with [`Sim::write`]): a converged apply makes none.
    pub fn writes(&self) -> u64 {
        self.writes.load(Ordering::Relaxed)
    }
}

/// Ready yet?
pub fn ready(at: Instant) -> bool {
    Instant::now() >= at
}

/// The error of a call the simulation does not model (apply from empty never makes it): the
/// benchmark fails, naming it, instead of answering something made up.
pub fn unmodelled<T>(op: &'static str) -> Result<T, AwsError> {
    Err(AwsError::new(op, "NotModelled", "the simulation models apply from empty only"))
}

/// `tags` has every pair of `want`.
pub fn has_tags(tags: &Tags, want: &Tags) -> bool {
    want.iter().all(|(k, v)| tags.get(k) == Some(v))
}
