//! The waits of the tier: each polls a Describe call until its condition holds.

use std::time::Duration;

#[allow(unused_imports)]
use super::*;

impl<C: EksApi> EksProvisioner<C> {
    pub(super) async fn wait_cluster(&self, ctx: &Context, name: &str) -> Result<ClusterInfo> {
        let policy = ctx.wait.capped(caps::CLUSTER_ACTIVE);
        let what = format!("EKS cluster {name} to be ACTIVE");
        wait::until(&what, &policy, ctx.cancellation(), || async {
            match self.client.describe_cluster(name.to_owned()).await.at("DescribeCluster", name)? {
                None => Err(EksError::Vanished { kind: "cluster", name: name.to_owned() }),
                Some(c) if c.status == "ACTIVE" => Ok(Probe::Done(c)),
                Some(c) if c.status == "FAILED" || c.status == "DELETING" => Err(EksError::Failed {
                    kind: "cluster",
                    name: name.to_owned(),
                    status: c.status,
                    detail: Vec::new(),
                }),
                Some(c) => Ok(Probe::Pending(c.status)),
            }
        })
        .await
        .map_err(from_wait)
    }

    pub(super) async fn wait_nodegroup(&self, ctx: &Context, cluster: &str, name: &str) -> Result<NodegroupInfo> {
        let policy = ctx.wait.capped(caps::NODEGROUP_ACTIVE);
        let what = format!("node group {name} to be ACTIVE");
        wait::until(&what, &policy, ctx.cancellation(), || async {
            match self
                .client
                .describe_nodegroup(cluster.to_owned(), name.to_owned())
                .await
                .at("DescribeNodegroup", name)?
            {
                None => Err(EksError::Vanished { kind: "node group", name: name.to_owned() }),
                Some(n) if n.status == "ACTIVE" => Ok(Probe::Done(n)),
                Some(n) if matches!(n.status.as_str(), "CREATE_FAILED" | "DELETE_FAILED" | "DELETING" | "DEGRADED") => {
                    Err(EksError::Failed {
                        kind: "node group",
                        name: name.to_owned(),
                        status: n.status,
                        detail: n.issues,
                    })
                }
                Some(n) => Ok(Probe::Pending(n.status)),
            }
        })
        .await
        .map_err(from_wait)
    }

    pub(super) async fn wait_addon(&self, ctx: &Context, cluster: &str, name: &str) -> Result<AddonInfo> {
        let policy = ctx.wait.capped(caps::ADDON);
        let what = format!("add-on {name} to be ACTIVE");
        wait::until(&what, &policy, ctx.cancellation(), || async {
            match self.client.describe_addon(cluster.to_owned(), name.to_owned()).await.at("DescribeAddon", name)? {
                None => Err(EksError::Vanished { kind: "add-on", name: name.to_owned() }),
                Some(a) if a.status == "ACTIVE" => Ok(Probe::Done(a)),
                Some(a) if matches!(a.status.as_str(), "CREATE_FAILED" | "UPDATE_FAILED" | "DELETE_FAILED") => {
                    Err(EksError::Failed {
                        kind: "add-on",
                        name: name.to_owned(),
                        status: a.status,
                        detail: Vec::new(),
                    })
                }
                Some(a) => Ok(Probe::Pending(a.status)),
            }
        })
        .await
        .map_err(from_wait)
    }

    pub(super) async fn wait_gone<F, Fut>(&self, ctx: &Context, what: String, cap: Duration, probe: F) -> Result<()>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<Option<String>>>,
    {
        let mut probe = probe;
        wait::until(&what, &ctx.wait.capped(cap), ctx.cancellation(), || {
            let fut = probe();
            async move {
                Ok(match fut.await? {
                    None => Probe::Done(()),
                    Some(status) => Probe::Pending(status),
                })
            }
        })
        .await
        .map_err(from_wait)
    }
}
