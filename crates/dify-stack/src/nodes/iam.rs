//! The OIDC provider, the IRSA roles and the service accounts.

use async_trait::async_trait;
use dify_stack_core::ids::BucketName;
use dify_stack_core::{Provisioner, ResourceRef};
use dify_stack_iam::IamSelector;

use super::{StackNode, planned};
use crate::graph::{Node, NodeError, NodeOutput, PlanStep};
use crate::output::StackOutput;
use crate::runner::{AwsRunner, KUBE_API_DESTROY_CAP, KUBE_API_WAIT_CAP, fail, iam_inputs, live_eks, missing};
use crate::wiring;

pub(super) struct Iam;

#[async_trait]
impl StackNode for Iam {
    /// The cluster's OIDC issuer and API (provider, roles, service accounts), and this
    /// machine's access to that API (the access entries), not its nodes: it runs while the node
    /// group is made.
    fn deps(&self) -> &'static [Node] {
        &[Node::EksControlPlane, Node::EksAccess, Node::Bucket, Node::Registry]
    }

    async fn plan(&self, run: &AwsRunner, up: &StackOutput) -> Result<PlanStep, NodeError> {
        let (ctx, cfg) = (&run.ctx, &run.cfg);
        Ok(match (&up.eks, &up.bucket, &up.registry) {
            (Some(eks), Some(bucket), Some(registry)) => {
                let spec = wiring::iam_spec(cfg, ctx, eks, &bucket.name, registry);
                let iam = run.iam(eks, KUBE_API_WAIT_CAP).await?;
                let p = iam.plan(ctx, &spec).await.map_err(|e| run.iam_err(&eks.endpoint, e))?;
                planned(Node::Iam, p, false, None)
            }
            _ => {
                let issuer = "https://oidc.eks.planned/id/KNOWN-AFTER-APPLY".to_owned();
                let (eks, registry) = iam_inputs(cfg, ctx, issuer, String::new(), String::new());
                let bucket = BucketName::new(dify_stack_datastores::names::bucket(ctx));
                let spec = wiring::iam_spec(cfg, ctx, &eks, &bucket, &registry);
                planned(Node::Iam, run.p.iam.diff(ctx, &spec, &Default::default()), true, None)
            }
        })
    }

    async fn apply(&self, run: &AwsRunner, up: &StackOutput) -> Result<NodeOutput, NodeError> {
        let eks = up.eks.as_ref().ok_or_else(|| missing(Node::Iam, "eks"))?;
        let bucket = up.bucket.as_ref().ok_or_else(|| missing(Node::Iam, "bucket"))?;
        let registry = up.registry.as_ref().ok_or_else(|| missing(Node::Iam, "registry"))?;
        let spec = wiring::iam_spec(&run.cfg, &run.ctx, eks, &bucket.name, registry);
        let iam = run.iam(eks, KUBE_API_WAIT_CAP).await?;
        let out = iam.apply(&run.ctx, &spec).await.map_err(|e| run.iam_err(&eks.endpoint, e))?;
        Ok(NodeOutput::Iam(Box::new(out)))
    }

    /// The issuer and API come from the live cluster; when it is gone, roles are still found by
    /// name and the OIDC provider by ownership tag.
    async fn destroy(&self, run: &AwsRunner) -> Result<Vec<ResourceRef>, NodeError> {
        let (ctx, cfg) = (&run.ctx, &run.cfg);
        let cluster = run.p.eks.observe_cluster(ctx).await.map_err(fail)?;
        let cluster_name = wiring::cluster_name(ctx);
        let selector = IamSelector {
            cluster_name: cluster_name.clone(),
            oidc_issuer_url: cluster.as_ref().and_then(|c| c.oidc_issuer.clone()),
            namespace: cfg.iam.namespace.clone(),
            // Without a cluster there is no Kubernetes API to clean up.
            service_accounts: wiring::creates_service_accounts(cfg) && cluster.is_some(),
            addons: wiring::addon_roles(cfg, ctx, cluster_name.as_str()).into_iter().map(|a| a.addon).collect(),
        };
        let iam = match &cluster {
            Some(c) if selector.service_accounts => run.iam(&live_eks(cfg, ctx, c), KUBE_API_DESTROY_CAP).await?,
            _ => run.p.iam.clone(),
        };
        iam.destroy_selected(ctx, &selector).await.map_err(fail)
    }
}
