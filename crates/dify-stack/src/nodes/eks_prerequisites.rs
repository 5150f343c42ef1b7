//! What the EKS cluster needs besides the subnets (its IAM role, the secrets key, the
//! control-plane log group): none of it needs the network, so it is made while the VPC is
//! built, and IAM propagates the cluster role meanwhile.

use async_trait::async_trait;
use dify_stack_core::ResourceRef;

use super::{StackNode, shown_upstream};
use crate::graph::{Node, NodeError, NodeOutput, PlanStep};
use crate::output::StackOutput;
use crate::runner::{AwsRunner, fail};
use crate::wiring;

pub(super) struct EksPrerequisites;

#[async_trait]
impl StackNode for EksPrerequisites {
    fn deps(&self) -> &'static [Node] {
        &[]
    }

    /// Shown by the control-plane node, from the one observation of the tier.
    async fn plan(&self, _run: &AwsRunner, _up: &StackOutput) -> Result<PlanStep, NodeError> {
        Ok(shown_upstream())
    }

    /// The spec over the network as planned: none of these uses a network id.
    async fn apply(&self, run: &AwsRunner, _up: &StackOutput) -> Result<NodeOutput, NodeError> {
        let spec = wiring::eks_spec(&run.cfg, &wiring::planned_network(&run.cfg));
        run.p.eks.apply_prerequisites(&run.ctx, &spec).await.map_err(fail)?;
        Ok(NodeOutput::Done)
    }

    /// They go with the cluster (the EKS node's destroy).
    async fn destroy(&self, _run: &AwsRunner) -> Result<Vec<ResourceRef>, NodeError> {
        Ok(Vec::new())
    }
}
