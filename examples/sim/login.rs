//! From an empty account to Dify EE's login page: the apply (simulated as the rest of the
//! benchmark), then what `dify-stack install` does once the stack has converged
//! (`Dify::install_dify`): the image check, the wait for the load balancer controller's
//! webhooks, `helm upgrade --install`, the rollout, the Ingress's load balancer and the
//! domain's aliases, and the probe of the login page.
//!
//! The install steps are charged on a timeline, not run: their code needs Helm, a Kubernetes
//! API and a registry, which the fakes do not model. Every duration below is an ESTIMATE
//! (`aws-durations.toml` has no figures for them), drawn per run from the same kind of
//! log-normal as the resources, on the run's seed. The waits poll on the schedule of
//! `core::wait` (first poll at once, then 1 s growing x1.5 up to 20 s) without its +-20 %
//! jitter.

use std::collections::BTreeMap;

use super::{Dist, Sim};

/// The install's durations, seconds (min / median / p95). Estimates, not measurements.
pub(crate) const INSTALL_DISTS: [(&str, Dist); 7] = [
    // HEAD of each image manifest of the release (about 25) in its registry.
    ("image_check", [2.0, 5.0, 20.0]),
    // The load balancer controller's pods pulled and serving its webhooks after its release.
    ("controller_rollout", [20.0, 40.0, 120.0]),
    // `helm upgrade --install` of the Dify EE chart without `--wait`.
    ("dify_helm", [5.0, 15.0, 40.0]),
    // Every Deployment and StatefulSet of the release ready: image pulls on fresh nodes (about
    // 20 images, the largest over 1 GB), the API's database migrations, readiness probes.
    ("dify_rollout", [90.0, 180.0, 480.0]),
    // The controller's Application Load Balancer from the Ingress to `active`.
    ("alb_active", [60.0, 150.0, 300.0]),
    // Route 53 alias records in sync and resolvable ("changes generally propagate to all
    // Route 53 name servers within 60 seconds", Route 53 API reference, GetChange).
    ("dns_insync", [20.0, 45.0, 90.0]),
    // The ALB's health checks passing after the pods are ready (interval 15 s, healthy
    // threshold 2 to 5).
    ("targets_healthy", [10.0, 30.0, 75.0]),
];

/// One run's install durations, seconds.
#[derive(Debug, Clone, Copy)]
pub(crate) struct InstallDraws {
    image_check: f64,
    controller_rollout: f64,
    helm: f64,
    rollout: f64,
    alb: f64,
    insync: f64,
    healthy: f64,
}

impl InstallDraws {
    /// Draws one run's install durations on `seed` (streams of their own: the apply's draws
    /// are not moved).
    pub(crate) fn draw(seed: u64) -> InstallDraws {
        let dists: BTreeMap<String, Dist> = INSTALL_DISTS.iter().map(|(k, d)| ((*k).to_owned(), *d)).collect();
        let sim = Sim::new(dists, BTreeMap::new(), seed);
        let d = |k: &str| sim.duration(k).as_secs_f64();
        InstallDraws {
            image_check: d("image_check"),
            controller_rollout: d("controller_rollout"),
            helm: d("dify_helm"),
            rollout: d("dify_rollout"),
            alb: d("alb_active"),
            insync: d("dns_insync"),
            healthy: d("targets_healthy"),
        }
    }
}

/// When a wait that starts at `start` sees a state reached at `ready`: at its first poll at or
/// after `ready` (`core::wait`'s schedule without jitter).
pub(crate) fn polled(start: f64, ready: f64) -> f64 {
    let (mut at, mut pause) = (start, 1.0);
    while at < ready {
        at += pause;
        pause = (pause * 1.5_f64).min(20.0);
    }
    at
}

/// How `install` orders its waits after `helm upgrade --install`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Order {
    /// Until 2026-12-07: the rollout, then the load balancer, then the aliases.
    Sequential,
    /// Now: the rollout beside the load balancer and the aliases.
    Overlapped,
}

/// When our login page answers: the apply ended at `apply_end`, its platform node (the load
/// balancer controller's release) at `platform_end`; `cheap` is one control-plane write (the
/// aliases' change).
pub(crate) fn ours(apply_end: f64, platform_end: f64, d: &InstallDraws, cheap: f64, order: Order) -> f64 {
    let checked = apply_end + d.image_check;
    let controller = polled(checked, platform_end + d.controller_rollout);
    let released = controller + d.helm;
    let (pods, alb) = (released + d.rollout, released + d.alb);
    let rollout_seen = polled(released, pods);
    let aliases = match order {
        Order::Overlapped => polled(released, alb) + cheap,
        Order::Sequential => polled(rollout_seen, alb) + cheap,
    };
    let serving = (pods.max(alb) + d.healthy).max(aliases + d.insync);
    polled(rollout_seen.max(aliases), serving)
}

/// The earliest the login page can answer: the release needs every resource of the stack (its
/// values hold every store's endpoint and secret; its pods need the nodes and their add-ons;
/// with a domain, the certificate), so it starts at the apply's critical path, or when the
/// controller serves after its release (`releases_end` on the critical path) if later; then
/// the chart, and the pods and the load balancer side by side, the aliases as soon as the load
/// balancer exists.
pub(crate) fn critical(apply_critical: f64, releases_end: f64, d: &InstallDraws, cheap: f64) -> f64 {
    let start = apply_critical.max(releases_end + d.controller_rollout);
    let released = start + d.helm;
    let (pods, alb) = (released + d.rollout, released + d.alb);
    (pods.max(alb) + d.healthy).max(alb + cheap + d.insync)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_wait_sees_a_state_at_its_first_poll_after_it() {
        assert_eq!(polled(10.0, 5.0), 10.0, "already there: the first poll, at once");
        assert_eq!(polled(0.0, 1.0), 1.0);
        assert_eq!(polled(0.0, 1.2), 2.5, "polls at 0, 1, 2.5");
    }

    /// Over many seeds the overlapped order is faster (a single run can lose up to one poll
    /// pause: its probe starts on another poll grid), and no run beats the critical path.
    #[test]
    fn the_overlapped_install_is_faster_overall_and_never_beats_the_critical_path() {
        let (mut overlapped_sum, mut sequential_sum) = (0.0, 0.0);
        for seed in 0..50 {
            let d = InstallDraws::draw(seed);
            let (apply_end, platform_end) = (900.0, 600.0);
            let overlapped = ours(apply_end, platform_end, &d, 3.0, Order::Overlapped);
            let sequential = ours(apply_end, platform_end, &d, 3.0, Order::Sequential);
            assert!(overlapped <= sequential + 20.0, "seed {seed}: {overlapped} more than a poll over {sequential}");
            overlapped_sum += overlapped;
            sequential_sum += sequential;
            let cp = critical(apply_end, platform_end, &d, 3.0);
            assert!(overlapped + 1e-9 >= cp, "seed {seed}: {overlapped} below the critical path {cp}");
        }
        assert!(overlapped_sum < sequential_sum, "{overlapped_sum} against {sequential_sum}");
    }
}
