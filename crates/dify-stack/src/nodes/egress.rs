//! The rest of the network: internet gateway, Elastic IPs, NAT gateways, route tables.

use async_trait::async_trait;
use dify_stack_core::{Provisioner, ResourceRef};

use super::{StackNode, shown_upstream};
use crate::graph::{Node, NodeError, NodeOutput, PlanStep};
use crate::output::StackOutput;
use crate::runner::{AwsRunner, fail};
use crate::wiring;

pub(super) struct Egress;

#[async_trait]
impl StackNode for Egress {
    fn deps(&self) -> &'static [Node] {
        &[Node::Network]
    }

    /// Shown by the network node, from the same observation.
    async fn plan(&self, _run: &AwsRunner, _up: &StackOutput) -> Result<PlanStep, NodeError> {
        Ok(shown_upstream())
    }

    /// Converges the whole network tier; its output replaces the network node's.
    async fn apply(&self, run: &AwsRunner, _up: &StackOutput) -> Result<NodeOutput, NodeError> {
        let out = run.p.network.apply(&run.ctx, &wiring::network_spec(&run.cfg, &run.ctx)).await.map_err(fail)?;
        Ok(NodeOutput::Network(Box::new(out)))
    }

    /// The network node's destroy removes the egress with the VPC.
    async fn destroy(&self, _run: &AwsRunner) -> Result<Vec<ResourceRef>, NodeError> {
        Ok(Vec::new())
    }
}
