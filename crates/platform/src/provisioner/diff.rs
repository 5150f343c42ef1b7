//! Diff: the typed changes between the spec and what was observed. `apply` executes exactly
//! these; the plan shows each through [`Planned`].

#[allow(unused_imports)]
use super::*;

/// One change of the platform tier, in the order apply executes them.
#[derive(Debug, Clone)]
pub(super) enum PlatformChange {
    /// metrics-server as the EKS add-on, at the version EKS offers for the cluster.
    CreateMetricsAddon { version: String },
    /// A release to install, upgrade (another chart version, or values of ours that differ:
    /// e.g. the autoscaler's image tag after a Kubernetes upgrade) or repair (not `deployed`).
    Release { release: DesiredRelease, before: Option<ReleaseInfo>, drift: Vec<(String, Option<String>, String)> },
    /// The IngressClass `alb` is missing or names another controller.
    IngressClass { before: Option<String> },
}

impl Planned for PlatformChange {
    fn change(&self) -> Change {
        match self {
            PlatformChange::CreateMetricsAddon { version } => Change::new(
                Action::Create,
                ResourceRef::new("eks:addon", METRICS_SERVER),
            )
            .field("version", None::<&str>, Some(version)),
            PlatformChange::Release { release, before, drift } => {
                let id = ResourceRef::new("helm:release", crate::names::release(release.name));
                let change = match before {
                    None => {
                        let c = Change::new(Action::Create, id).field("chart", None::<&str>, Some(release.chart_id()));
                        match release.values["image"]["tag"].as_str() {
                            Some(tag) => c.field("values.image.tag", None::<&str>, Some(tag)),
                            None => c,
                        }
                    }
                    Some(have) => {
                        let mut c = Change::new(Action::Update, id);
                        if have.chart != release.chart_id() {
                            c = c.field("chart", Some(&have.chart), Some(release.chart_id()));
                        }
                        if have.status != "deployed" {
                            c = c.field("status", Some(&have.status), Some("deployed"));
                        }
                        c
                    }
                };
                drift
                    .iter()
                    .fold(change, |c, (path, was, want)| c.field(format!("values.{path}"), was.as_ref(), Some(want)))
            }
            PlatformChange::IngressClass { before } => {
                let action = if before.is_some() { Action::Update } else { Action::Create };
                Change::new(action, ResourceRef::new("k8s:ingressclass", INGRESS_CLASS)).field(
                    "controller",
                    before.as_deref(),
                    Some(INGRESS_CONTROLLER),
                )
            }
        }
    }
}

impl PlatformProvisioner {
    /// The typed changes, in the order apply executes them. The releases and the IngressClass
    /// only when the spec drives the cluster (role-only access gets commands instead).
    pub(super) fn changes(&self, ctx: &Context, spec: &PlatformSpec, o: &ObservedPlatform) -> Vec<PlatformChange> {
        let mut changes = Vec::new();
        if spec.metrics_server.is_some()
            && let Some(version) = &o.metrics_offered
            && o.metrics_addon.is_none()
        {
            changes.push(PlatformChange::CreateMetricsAddon { version: version.clone() });
        }
        if spec.kubernetes {
            for release in desired_releases(ctx, spec, o.metrics_offered.is_some()) {
                let before = o.releases.get(release.name).cloned().flatten();
                // The image only: the other values hold what a plan may not know yet (the IRSA
                // role ARNs come from the IAM node's apply) and would show as false changes.
                let drift = match (&before, o.release_values.get(release.name)) {
                    (Some(_), Some(have)) => values_drift(&release.values["image"], &have["image"], "image"),
                    _ => Vec::new(),
                };
                if before.as_ref().is_none_or(|have| have.chart != release.chart_id() || have.status != "deployed")
                    || !drift.is_empty()
                {
                    changes.push(PlatformChange::Release { release, before, drift });
                }
            }
            let before = o.ingress_class.as_ref().map(|c| c.controller.clone());
            if spec.load_balancer_controller.is_some() && before.as_deref() != Some(INGRESS_CONTROLLER) {
                changes.push(PlatformChange::IngressClass { before });
            }
        }
        changes
    }
}
