//! The waits of the tier: each polls a Describe call until its condition holds. The conditions
//! are pure functions of what the Describe call returned, tested on their own below.

use std::time::Duration;

use tokio::time::Instant;

use dify_stack_core::wait::Condition;

use super::{
    AddonInfo, ClusterInfo, Context, EksError, EksProvisioner, NodegroupInfo, Probe, Result, Status, UpdateInfo, caps,
    from_wait, wait,
};
use dify_stack_core::AwsAt;
use dify_stack_core::ids::ClusterName;

/// A cluster is ACTIVE; FAILED or DELETING ends the wait at once; gone while awaited is an error.
pub(super) fn cluster_active(name: &str) -> impl Condition<ClusterInfo, EksError> + '_ {
    move |c: Option<&ClusterInfo>| match c {
        None => Err(EksError::Vanished { kind: "cluster", name: name.to_owned() }),
        Some(c) if c.status == Status::Active => Ok(Probe::Done(())),
        Some(c) if matches!(c.status, Status::Failed | Status::Deleting) => Err(EksError::Failed {
            kind: "cluster",
            name: name.to_owned(),
            status: c.status.to_string(),
            detail: Vec::new(),
        }),
        Some(c) => Ok(Probe::Pending(c.status.to_string())),
    }
}

/// A cluster update is `Successful`; `Failed` or `Cancelled` ends the wait at once with the
/// update's errors (EKS API reference, DescribeUpdate: "When the status of the update is
/// Successful, the update is complete. If an update fails, the status is Failed, and an error
/// detail explains the reason for the failure"). An update EKS no longer knows is done: the
/// cluster's own status is waited for next.
pub(super) fn update_done(name: &str) -> impl Condition<UpdateInfo, EksError> + '_ {
    move |u: Option<&UpdateInfo>| match u {
        None => Ok(Probe::Done(())),
        Some(u) if u.status == "Successful" => Ok(Probe::Done(())),
        Some(u) if u.status == "Failed" || u.status == "Cancelled" => Err(EksError::Failed {
            kind: "cluster update",
            name: format!("{name} {} {}", u.kind, u.id),
            status: u.status.clone(),
            detail: u.errors.clone(),
        }),
        Some(u) => Ok(Probe::Pending(format!("{} {}", u.kind, u.status))),
    }
}

/// A node group is ACTIVE; a failure state (with EKS's health issues) or DELETING ends the wait.
pub(super) fn nodegroup_active(name: &str) -> impl Condition<NodegroupInfo, EksError> + '_ {
    move |n: Option<&NodegroupInfo>| match n {
        None => Err(EksError::Vanished { kind: "node group", name: name.to_owned() }),
        Some(n) if n.status == Status::Active => Ok(Probe::Done(())),
        Some(n)
            if matches!(
                n.status,
                Status::CreateFailed | Status::DeleteFailed | Status::Deleting | Status::Degraded
            ) =>
        {
            Err(EksError::Failed {
                kind: "node group",
                name: name.to_owned(),
                status: n.status.to_string(),
                detail: n.issues.clone(),
            })
        }
        Some(n) => Ok(Probe::Pending(n.status.to_string())),
    }
}

/// An add-on is ACTIVE; a failure state ends the wait at once.
pub(super) fn addon_active(name: &str) -> impl Condition<AddonInfo, EksError> + '_ {
    move |a: Option<&AddonInfo>| match a {
        None => Err(EksError::Vanished { kind: "add-on", name: name.to_owned() }),
        Some(a) if a.status == Status::Active => Ok(Probe::Done(())),
        Some(a) if matches!(a.status, Status::CreateFailed | Status::UpdateFailed | Status::DeleteFailed) => {
            Err(EksError::Failed {
                kind: "add-on",
                name: name.to_owned(),
                status: a.status.to_string(),
                detail: Vec::new(),
            })
        }
        Some(a) => Ok(Probe::Pending(a.status.to_string())),
    }
}

/// The state a condition met by presence accepted (`until_state` returns `None` only for
/// conditions met by absence).
/// `ready_from` of a resource made at `made`, counted from now: what is left of it (none once
/// passed). Unknown (`None`): all of it.
fn since(made: Option<Instant>, ready_from: Duration) -> Duration {
    made.map_or(ready_from, |m| ready_from.saturating_sub(m.elapsed()))
}

fn accepted<S>(state: Option<S>, kind: &'static str, name: &str) -> Result<S> {
    state.ok_or_else(|| EksError::Vanished { kind, name: name.to_owned() })
}

impl EksProvisioner {
    pub(super) async fn wait_cluster(&self, ctx: &Context, name: &str) -> Result<ClusterInfo> {
        let policy = ctx.wait.capped(caps::CLUSTER_ACTIVE).expecting(super::ready_from::CLUSTER);
        let what = format!("EKS cluster {name} to be ACTIVE");
        let fetch =
            || async { Ok(self.client.describe_cluster(ClusterName::new(name)).await.at("DescribeCluster", name)?) };
        let state = wait::until_state(&what, &policy, ctx.cancellation(), fetch, cluster_active(name))
            .await
            .map_err(from_wait)?;
        accepted(state, "cluster", name)
    }

    /// Waits for a cluster update to finish (its DescribeUpdate status, when EKS gave its id),
    /// then for the cluster to be ACTIVE; returns the cluster. The next update may start then:
    /// EKS refuses one while another is in progress, even when the cluster already reads
    /// ACTIVE (aws-controllers-k8s community #1192).
    pub(super) async fn wait_cluster_update(
        &self,
        ctx: &Context,
        name: &str,
        update: Option<String>,
    ) -> Result<ClusterInfo> {
        if let Some(id) = update {
            let policy = ctx.wait.capped(caps::CLUSTER_UPDATE);
            let what = format!("update {id} of EKS cluster {name} to finish");
            let fetch = || async {
                Ok(self.client.describe_update(ClusterName::new(name), id.clone()).await.at("DescribeUpdate", name)?)
            };
            wait::until_state(&what, &policy, ctx.cancellation(), fetch, update_done(name)).await.map_err(from_wait)?;
        }
        self.wait_cluster(ctx, name).await
    }

    pub(super) async fn wait_nodegroup(&self, ctx: &Context, cluster: &str, name: &str) -> Result<NodegroupInfo> {
        self.wait_nodegroup_for(ctx, cluster, name, caps::NODEGROUP_ACTIVE, None).await
    }

    /// [`wait_nodegroup`](Self::wait_nodegroup) for a node group created at `made` (when this
    /// run created it): its [`ready_from`](super::ready_from) counts from then, not from the
    /// wait's start, which comes later when other calls ran in between.
    pub(super) async fn wait_nodegroup_since(
        &self,
        ctx: &Context,
        cluster: &str,
        name: &str,
        made: Option<Instant>,
    ) -> Result<NodegroupInfo> {
        self.wait_nodegroup_for(ctx, cluster, name, caps::NODEGROUP_ACTIVE, made).await
    }

    /// Waits for a node group ACTIVE within `cap` (a version update rolls every node:
    /// [`caps::NODEGROUP_ROLLED`]).
    pub(super) async fn wait_nodegroup_for(
        &self,
        ctx: &Context,
        cluster: &str,
        name: &str,
        cap: Duration,
        made: Option<Instant>,
    ) -> Result<NodegroupInfo> {
        let policy = ctx.wait.capped(cap).expecting(since(made, super::ready_from::NODEGROUP));
        let what = format!("node group {name} to be ACTIVE");
        let fetch = || async {
            Ok(self
                .client
                .describe_nodegroup(ClusterName::new(cluster), name.to_owned())
                .await
                .at("DescribeNodegroup", name)?)
        };
        let state = wait::until_state(&what, &policy, ctx.cancellation(), fetch, nodegroup_active(name))
            .await
            .map_err(from_wait)?;
        accepted(state, "node group", name)
    }

    pub(super) async fn wait_addon(&self, ctx: &Context, cluster: &str, name: &str) -> Result<AddonInfo> {
        self.wait_addon_since(ctx, cluster, name, None).await
    }

    /// [`wait_addon`](Self::wait_addon) for an add-on created or updated at `made`.
    pub(super) async fn wait_addon_since(
        &self,
        ctx: &Context,
        cluster: &str,
        name: &str,
        made: Option<Instant>,
    ) -> Result<AddonInfo> {
        let policy = ctx.wait.capped(caps::ADDON).expecting(since(made, super::ready_from::ADDON));
        let what = format!("add-on {name} to be ACTIVE");
        let fetch = || async {
            Ok(self
                .client
                .describe_addon(ClusterName::new(cluster), name.to_owned())
                .await
                .at("DescribeAddon", name)?)
        };
        let state = wait::until_state(&what, &policy, ctx.cancellation(), fetch, addon_active(name))
            .await
            .map_err(from_wait)?;
        accepted(state, "add-on", name)
    }
    pub(super) async fn wait_gone<F, Fut>(&self, ctx: &Context, what: String, cap: Duration, probe: F) -> Result<()>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<Option<String>>>,
    {
        wait::until_gone(&what, &ctx.wait.capped(cap), ctx.cancellation(), probe).await.map_err(from_wait)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conditions_follow_each_eks_status() {
        let cluster = |s: &str| ClusterInfo { status: s.into(), ..Default::default() };
        let c = cluster_active("c");
        assert!(matches!(c(Some(&cluster("ACTIVE"))), Ok(Probe::Done(()))));
        for pending in ["CREATING", "UPDATING", "PENDING", "SOMETHING_NEW"] {
            assert_eq!(c(Some(&cluster(pending))).unwrap(), Probe::Pending(pending.to_owned()), "{pending}");
        }
        for failed in ["FAILED", "DELETING"] {
            assert!(matches!(c(Some(&cluster(failed))), Err(EksError::Failed { status, .. }) if status == failed));
        }
        assert!(matches!(c(None), Err(EksError::Vanished { kind: "cluster", .. })));

        let group = |s: &str| NodegroupInfo {
            status: s.into(),
            issues: vec!["AsgInstanceLaunchFailures".into()],
            ..Default::default()
        };
        let n = nodegroup_active("ng");
        assert!(matches!(n(Some(&group("ACTIVE"))), Ok(Probe::Done(()))));
        assert_eq!(n(Some(&group("UPDATING"))).unwrap(), Probe::Pending("UPDATING".into()));
        for failed in ["CREATE_FAILED", "DELETE_FAILED", "DELETING", "DEGRADED"] {
            assert!(
                matches!(n(Some(&group(failed))), Err(EksError::Failed { detail, .. }) if detail == ["AsgInstanceLaunchFailures"]),
                "{failed}"
            );
        }

        let addon = |s: &str| AddonInfo { status: s.into(), ..Default::default() };
        let a = addon_active("vpc-cni");
        assert!(matches!(a(Some(&addon("ACTIVE"))), Ok(Probe::Done(()))));
        assert_eq!(
            a(Some(&addon("DEGRADED"))).unwrap(),
            Probe::Pending("DEGRADED".into()),
            "a degraded add-on may recover"
        );
        for failed in ["CREATE_FAILED", "UPDATE_FAILED", "DELETE_FAILED"] {
            assert!(a(Some(&addon(failed))).is_err(), "{failed}");
        }
        assert_eq!(Status::parse("CREATE_FAILED").as_str(), "CREATE_FAILED");

        let update = |s: &str| UpdateInfo {
            id: "u-1".into(),
            status: s.into(),
            kind: "EndpointAccessUpdate".into(),
            errors: vec!["InsufficientFreeAddresses: subnet full".into()],
        };
        let u = update_done("c");
        assert!(matches!(u(Some(&update("Successful"))), Ok(Probe::Done(()))));
        assert!(matches!(u(None), Ok(Probe::Done(()))), "an update EKS forgot: the cluster status decides");
        assert_eq!(u(Some(&update("InProgress"))).unwrap(), Probe::Pending("EndpointAccessUpdate InProgress".into()));
        for failed in ["Failed", "Cancelled"] {
            assert!(
                matches!(u(Some(&update(failed))), Err(EksError::Failed { detail, .. }) if detail[0].starts_with("InsufficientFreeAddresses")),
                "{failed}"
            );
        }
        assert_eq!(Status::parse("NEW"), Status::Other("NEW".into()));
    }
}
