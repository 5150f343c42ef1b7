//! Kubernetes upgrades as ordered steps, each its own plan line, applied one at a time.
//!
//! For each minor between the running version and `kubernetes_version`:
//! 1. the control plane (UpdateClusterVersion): EKS takes one minor per update ("Control plane
//!    version upgrades must be done for one minor version at a time", eksctl "Cluster upgrades",
//!    docs.aws.amazon.com/eks/latest/eksctl/cluster-upgrade.html);
//! 2. the add-ons to EKS's default version for that minor (DescribeAddonVersions), as the EKS
//!    user guide's "Update existing cluster to new Kubernetes version" asks after the control
//!    plane; an add-on pinned in `addon_versions` keeps its pin;
//! 3. the node group to that minor (UpdateNodegroupVersion), before the control plane's next
//!    minor. The Kubernetes version-skew policy would let kubelets trail kube-apiserver by three
//!    minors (kubernetes.io/releases/version-skew-policy: "kubelet may be up to three minor
//!    versions older than kube-apiserver"), but EKS asks for nodes at the control plane's minor
//!    before its next update (EKS Best Practices Guide, "Cluster Upgrades": "both the control
//!    plane and the data plane should run the same Kubernetes minor version"; the update guide's
//!    first step compares the two), so the nodes are rolled once per minor.
//!
//! Before each control-plane step the cluster's upgrade insights (ListInsights, category
//! UPGRADE_READINESS) are read; an `ERROR` finding for the target (deprecated APIs still served,
//! say) stops the upgrade before that step, with the insight and the fix.
//!
//! An interrupted upgrade resumes from what it observes: nodes behind the control plane are a
//! step left half done (its add-ons, then its nodes), the control plane behind the target the
//! steps still to make. The platform charts whose image follows the minor (the cluster
//! autoscaler) belong to the platform node, which runs after this tier.

use std::collections::BTreeMap;

use dify_stack_core::ids::{ClusterName, KubernetesVersion};
use dify_stack_core::{AwsAt, Context, Planned as _};

use super::change::Step;
use super::{EksProvisioner, ObservedEks, caps, next_version};
use crate::client::{Insight, NodegroupVersionUpdate, Status};
use crate::spec::EksSpec;
use crate::{EksError, Names, Result};

/// Typical durations of the steps on AWS, for the plan (the shared durations file has none for
/// updates; these are read from public reports, the figures noted beside each).
pub(crate) mod typical {
    use std::time::Duration;

    /// A control-plane minor: about 10 min (ministryofjustice cloud-platform #5346, 2024:
    /// "Control Plane ~ 10 mins"); it has taken up to an hour (eksctl PR #3310).
    pub(crate) const CONTROL_PLANE: Duration = Duration::from_secs(10 * 60);
    /// An add-on's version update: as long as an add-on's create (aws-durations.toml,
    /// `eks_addon`, median 60 s).
    pub(crate) const ADDON: Duration = Duration::from_secs(60);

    /// A node group's version update with `nodes` nodes, replaced one at a time: an estimate of
    /// 15 min plus 5 min a node, from ministryofjustice cloud-platform #5346 (2 nodes about
    /// 30 min; 55 nodes about 170 min).
    pub(crate) fn nodegroup(nodes: i32) -> Duration {
        Duration::from_secs((15 + 5 * u64::try_from(nodes.max(1)).unwrap_or(1)) * 60)
    }
}

/// The minors after `from` up to `to`, in order: `("1.33", "1.35")` gives `["1.34", "1.35"]`.
/// A downgrade or an unreadable version is an error ([`next_version`]).
pub(crate) fn minors_after(from: &str, to: KubernetesVersion) -> Result<Vec<String>> {
    let mut out = Vec::new();
    let mut at = from.to_owned();
    while let Some(next) = next_version(&at, to)? {
        at = next.to_string();
        out.push(at.clone());
    }
    Ok(out)
}

/// Whether a node group runs an older minor than the control plane (an upgrade stopped after
/// its control-plane step).
fn nodes_behind(o: &ObservedEks) -> Option<(String, String)> {
    let cluster = o.cluster.as_ref()?;
    let nodes = o.nodegroup.as_ref()?.version.clone()?;
    (nodes != cluster.version).then(|| (nodes, cluster.version.clone()))
}

/// The minors whose add-on catalogue an upgrade needs (`None`: no upgrade): the control
/// plane's own when the nodes lag behind it, then each minor up to the target.
pub(super) fn catalogue_minors(spec: &EksSpec, o: &ObservedEks) -> Option<Vec<String>> {
    let cluster = o.cluster.as_ref()?;
    let mut minors = minors_after(&cluster.version, spec.kubernetes_version).ok()?;
    if nodes_behind(o).is_some() {
        minors.insert(0, cluster.version.clone());
    }
    (!minors.is_empty()).then_some(minors)
}

/// The upgrade's steps from one observation, in the order apply makes them (empty: nothing to
/// upgrade). A downgrade is one refused step.
pub(super) fn upgrade_changes(ctx: &Context, spec: &EksSpec, o: &ObservedEks) -> Vec<Step> {
    let Some(cluster) = &o.cluster else { return Vec::new() };
    let names = Names::of(ctx);
    let want = &spec.kubernetes_version;
    let Ok(minors) = minors_after(&cluster.version, *want) else {
        return vec![Step::UpgradeCluster {
            name: names.cluster.clone(),
            arn: cluster.arn.clone(),
            have: cluster.version.clone(),
            want: want.to_string(),
            refused: true,
            step: (1, 1),
            blocked: None,
        }];
    };
    let mut out = Vec::new();
    let mut addons: BTreeMap<&String, String> = o.addons.iter().map(|(n, a)| (n, a.version.clone())).collect();
    let mut addon_step = |minor: &str, out: &mut Vec<Step>| {
        for addon in spec.addons.iter().filter(|a| !spec.addon_versions.contains_key(*a)) {
            let Some(have) = addons.get_mut(addon) else { continue };
            let default = o.addon_steps.get(minor).and_then(|c| c.get(addon)).and_then(|v| v.default.clone());
            if let Some(default) = default.filter(|d| d != have) {
                out.push(Step::UpgradeAddon {
                    name: addon.clone(),
                    have: have.clone(),
                    want: default.clone(),
                    minor: minor.to_owned(),
                });
                *have = default;
            }
        }
    };
    let nodegroup = o.nodegroup.as_ref();
    let node_step = |have: String, want: &str| Step::UpgradeNodegroup {
        name: names.nodegroup.clone(),
        arn: nodegroup.map(|n| n.arn.clone()).unwrap_or_default(),
        have,
        want: want.to_owned(),
        nodes: nodegroup.map(|n| n.desired).unwrap_or(spec.node_group.desired),
    };
    // A step left half done: its add-ons, then its nodes.
    if let Some((nodes, control_plane)) = nodes_behind(o) {
        addon_step(&control_plane, &mut out);
        out.push(node_step(nodes, &control_plane));
    }
    let mut have = cluster.version.clone();
    for (i, minor) in minors.iter().enumerate() {
        out.push(Step::UpgradeCluster {
            name: names.cluster.clone(),
            arn: cluster.arn.clone(),
            have: have.clone(),
            want: minor.clone(),
            refused: false,
            step: (i + 1, minors.len()),
            blocked: blocking(&o.insights, minor).cloned(),
        });
        addon_step(minor, &mut out);
        if nodegroup.is_some() {
            out.push(node_step(have.clone(), minor));
        }
        have = minor.clone();
    }
    out
}

/// The first upgrade insight that stops an upgrade to `minor`: status `ERROR` for that version
/// (or for no version). EKS API reference, `InsightStatus.status`: "ERROR: ... action is
/// required"; WARNING and PASSING do not stop it, UNKNOWN (not yet evaluated) neither.
fn blocking<'a>(insights: &'a [Insight], minor: &str) -> Option<&'a Insight> {
    insights.iter().find(|i| i.status == "ERROR" && (i.kubernetes_version.is_empty() || i.kubernetes_version == minor))
}

/// The observation as it will be once `upgrade` is made: the cluster and nodes at their last
/// step's version, each add-on at its last step's version (for the rest of the plan, computed
/// after the upgrade's lines).
pub(super) fn after_upgrade(o: &ObservedEks, upgrade: &[Step]) -> ObservedEks {
    let mut o = o.clone();
    for c in upgrade {
        match c {
            Step::UpgradeCluster { want, refused: false, .. } => {
                if let Some(cluster) = o.cluster.as_mut() {
                    cluster.version = want.clone();
                }
            }
            Step::UpgradeAddon { name, want, .. } => {
                if let Some(a) = o.addons.get_mut(name) {
                    a.version = want.clone();
                }
            }
            Step::UpgradeNodegroup { want, .. } => {
                if let Some(n) = o.nodegroup.as_mut() {
                    n.version = Some(want.clone());
                }
            }
            _ => {}
        }
    }
    o
}

impl EksProvisioner {
    /// Reads what an upgrade needs when one is due: the add-on catalogue of each minor it
    /// passes, and the cluster's upgrade insights.
    pub(super) async fn observe_upgrade(&self, spec: &EksSpec, names: &Names, o: &mut ObservedEks) -> Result<()> {
        let Some(minors) = catalogue_minors(spec, o) else { return Ok(()) };
        for minor in minors {
            let mut catalogue = BTreeMap::new();
            for addon in spec.addons.iter().filter(|a| o.addons.contains_key(*a)) {
                let v = self
                    .client
                    .addon_versions(addon.clone(), minor.clone())
                    .await
                    .at("DescribeAddonVersions", addon)?;
                catalogue.insert(addon.clone(), v);
            }
            o.addon_steps.insert(minor, catalogue);
        }
        o.insights =
            self.client.upgrade_insights(ClusterName::new(&names.cluster)).await.at("ListInsights", &names.cluster)?;
        Ok(())
    }

    /// Makes the upgrade's steps in order, each waited for before the next. Before each
    /// control-plane step the insights are read again (EKS evaluates readiness for the next
    /// minor only, so the second step's findings exist once the first is made).
    pub(super) async fn run_upgrade(
        &self,
        ctx: &Context,
        names: &Names,
        upgrade: &[Step],
    ) -> Result<crate::client::ClusterInfo> {
        let cluster_name = &names.cluster;
        let mut cluster = self.wait_cluster(ctx, cluster_name).await?;
        for change in upgrade {
            tracing::info!(change = %change.change().resource, "upgrade step");
            match change {
                Step::UpgradeCluster { want, refused: false, .. } => {
                    let insights = self
                        .client
                        .upgrade_insights(ClusterName::new(cluster_name.clone()))
                        .await
                        .at("ListInsights", cluster_name)?;
                    if let Some(i) = blocking(&insights, want) {
                        return Err(blocked(cluster_name, want, i));
                    }
                    for i in insights.iter().filter(|i| i.status == "WARNING") {
                        tracing::warn!(insight = %i.name, reason = %i.reason, "upgrade insight warns");
                    }
                    tracing::info!(cluster = %cluster_name, from = %cluster.version, to = %want, "upgrading control plane");
                    let update = self
                        .client
                        .update_cluster_version(ClusterName::new(cluster_name.clone()), want.clone())
                        .await
                        .at("UpdateClusterVersion", cluster_name)?;
                    cluster = self.wait_cluster_update(ctx, cluster_name, update).await?;
                }
                Step::UpgradeAddon { name, want, .. } => {
                    let addon = self.wait_addon(ctx, cluster_name, name).await?;
                    if addon.version != *want {
                        // No role: the add-on's Pod Identity associations are kept.
                        self.client
                            .update_addon(ClusterName::new(cluster_name.clone()), name.clone(), want.clone(), None)
                            .await
                            .at("UpdateAddon", name)?;
                        self.wait_addon(ctx, cluster_name, name).await?;
                    }
                }
                Step::UpgradeNodegroup { want, .. } => {
                    let ng = self.wait_nodegroup(ctx, cluster_name, &names.nodegroup).await?;
                    if ng.version.as_deref() != Some(want.as_str()) {
                        let update = NodegroupVersionUpdate {
                            cluster: ClusterName::new(cluster_name),
                            name: names.nodegroup.clone(),
                            version: Some(want.clone()),
                            launch_template: None,
                        };
                        self.client
                            .update_nodegroup_version(update)
                            .await
                            .at("UpdateNodegroupVersion", &names.nodegroup)?;
                        self.wait_nodegroup_for(ctx, cluster_name, &names.nodegroup, caps::NODEGROUP_ROLLED, None)
                            .await?;
                    }
                }
                _ => {}
            }
        }
        if cluster.status != Status::Active {
            cluster = self.wait_cluster(ctx, cluster_name).await?;
        }
        Ok(cluster)
    }
}

/// The refusal for a blocking insight.
pub(super) fn blocked(cluster: &str, want: &str, i: &Insight) -> EksError {
    EksError::UpgradeBlocked(Box::new(crate::error::UpgradeBlock {
        cluster: cluster.to_owned(),
        want: want.to_owned(),
        insight: i.name.clone(),
        id: i.id.clone(),
        status: i.status.clone(),
        reason: i.reason.clone(),
    }))
}
