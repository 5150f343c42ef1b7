//! Diff: the typed changes between the spec and what was observed. `apply` executes exactly
//! these; the plan shows each through [`Planned`].

use super::{
    Action, AddonRepair, AddonState, Change, Chart, Context, DesiredRelease, INGRESS_CLASS, INGRESS_CONTROLLER,
    LOAD_BALANCER_CONTROLLER, METRICS_SERVER, ObservedPlatform, Planned, PlatformProvisioner, PlatformSpec,
    ReleaseInfo, ResourceRef, desired_releases, values_drift,
};

/// One change of the platform tier, in the order apply executes them.
#[derive(Debug, Clone)]
pub(super) enum PlatformChange {
    /// metrics-server as the EKS add-on, at the version EKS offers for the cluster.
    CreateMetricsAddon { version: String },
    /// The metrics-server add-on is ours and in a failure state (e.g. `CREATE_FAILED` after the
    /// controller's webhook refused its Service): repaired as [`AddonState::repair`] says, at
    /// `version`.
    RepairMetricsAddon { addon: AddonState, issues: Vec<String>, repair: AddonRepair, version: String },
    /// The load balancer controller's release is installed at another chart version: the new
    /// chart's CRDs are server-side applied before the upgrade. Helm installs `crds/` on the
    /// first install only and never upgrades it (Helm docs, "Custom Resource Definitions: there
    /// is no support at this time for upgrading or deleting CRDs using Helm"); eks-charts'
    /// aws-load-balancer-controller README applies them before `helm upgrade` (`kubectl apply
    /// -k .../stable/aws-load-balancer-controller/crds`). `from` is the installed chart.
    ApplyCrds { chart: Chart, from: String },
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
            PlatformChange::RepairMetricsAddon { addon, issues, repair, version } => {
                let (action, how) = match repair {
                    AddonRepair::Overwrite => (Action::Update, "UpdateAddon with resolveConflicts OVERWRITE"),
                    AddonRepair::Recreate => (
                        Action::Replace,
                        "delete and re-create it (an add-on that failed to create or to delete is not updated)",
                    ),
                };
                let issues = if issues.is_empty() { String::new() } else { format!(" ({})", issues.join("; ")) };
                let mut c = Change::new(action, ResourceRef::new("eks:addon", METRICS_SERVER))
                    .field("status", Some(&addon.status), Some("ACTIVE"))
                    .because(format!("repair: the add-on is {}{issues}; {how}", addon.status));
                if &addon.version != version {
                    c = c.field("version", Some(&addon.version), Some(version));
                }
                c
            }
            PlatformChange::ApplyCrds { chart, from } => {
                Change::new(Action::Update, ResourceRef::new("k8s:crds", chart.chart.as_str()))
                    .field("chart", Some(from), Some(format!("{}-{}", chart.chart, chart.version)))
                    .because(format!("apply CRDs of {} {} before upgrading the release", chart.chart, chart.version))
            }
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

/// One change of the platform tier, as [`Provisioner::changes`](dify_stack_core::Provisioner::changes)
/// computes it and [`Provisioner::execute`](dify_stack_core::Provisioner::execute) carries it out.
/// Opaque: what a plan shows of it is its [`Planned::change`].
#[derive(Debug, Clone)]
pub struct PlatformStep(pub(super) PlatformChange);

impl Planned for PlatformStep {
    fn change(&self) -> Change {
        self.0.change()
    }
}

impl PlatformProvisioner {
    /// The typed changes, in the order apply executes them. The releases and the IngressClass
    /// only when the spec drives the cluster (role-only access gets commands instead).
    pub(super) fn platform_changes(
        &self,
        ctx: &Context,
        spec: &PlatformSpec,
        o: &ObservedPlatform,
    ) -> Vec<PlatformChange> {
        let mut changes = Vec::new();
        if spec.metrics_server.is_some()
            && let Some(version) = &o.metrics_offered
        {
            match &o.metrics_addon {
                None => changes.push(PlatformChange::CreateMetricsAddon { version: version.clone() }),
                // Someone else's is used as it is, failed or not.
                Some(a) if ctx.owns_tags(&a.tags) => {
                    if let Some(repair) = a.repair() {
                        // An update keeps the add-on's version; a new one gets the offered one.
                        let version = match repair {
                            AddonRepair::Overwrite => a.version.clone(),
                            AddonRepair::Recreate => version.clone(),
                        };
                        changes.push(PlatformChange::RepairMetricsAddon {
                            addon: a.clone(),
                            issues: o.metrics_issues.clone(),
                            repair,
                            version,
                        });
                    }
                }
                Some(_) => {}
            }
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
                // An upgrade of the controller to another chart: its CRDs first (a first install
                // gets them from Helm itself).
                if release.name == LOAD_BALANCER_CONTROLLER
                    && let Some(have) = &before
                    && have.chart != release.chart_id()
                {
                    changes.push(PlatformChange::ApplyCrds { chart: release.chart.clone(), from: have.chart.clone() });
                }
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
