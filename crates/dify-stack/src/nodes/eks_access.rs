//! The EKS access entries (the admin principals, the caller's among them): what this machine's
//! Kubernetes calls need (the IAM node's service accounts, the platform's releases), and the node
//! group does not, so it is made beside the node group.

use async_trait::async_trait;
use dify_stack_core::ResourceRef;

use super::{StackNode, shown_upstream};
use crate::graph::{Node, NodeError, NodeOutput, PlanStep};
use crate::output::StackOutput;
use crate::runner::{AwsRunner, fail, missing};
use crate::wiring;

pub(super) struct EksAccess;

#[async_trait]
impl StackNode for EksAccess {
    fn deps(&self) -> &'static [Node] {
        &[Node::EksControlPlane]
    }

    /// Shown by the control-plane node, from the same observation.
    async fn plan(&self, _run: &AwsRunner, _up: &StackOutput) -> Result<PlanStep, NodeError> {
        Ok(shown_upstream())
    }

    async fn apply(&self, run: &AwsRunner, up: &StackOutput) -> Result<NodeOutput, NodeError> {
        let net = up.network.as_ref().ok_or_else(|| missing(Node::EksAccess, "network"))?;
        run.p.eks.apply_access(&run.ctx, &wiring::eks_spec(&run.cfg, net)).await.map_err(fail)?;
        Ok(NodeOutput::Done)
    }

    /// The access entries go with the cluster (the EKS node's destroy).
    async fn destroy(&self, _run: &AwsRunner) -> Result<Vec<ResourceRef>, NodeError> {
        Ok(Vec::new())
    }
}
