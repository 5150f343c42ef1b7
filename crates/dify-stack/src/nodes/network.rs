//! The VPC and its subnets. Its plan shows the whole network tier from one observation: the
//! VPC and subnets here, the rest as the egress node's.

use async_trait::async_trait;
use dify_stack_core::{Plan, Provisioner, ResourceRef};

use super::{StackNode, planned};
use crate::graph::{Node, NodeError, NodeOutput, PlanStep};
use crate::output::StackOutput;
use crate::runner::{AwsRunner, fail};
use crate::wiring;

pub(super) struct Network;

#[async_trait]
impl StackNode for Network {
    fn deps(&self) -> &'static [Node] {
        &[]
    }

    async fn plan(&self, run: &AwsRunner, _up: &StackOutput) -> Result<PlanStep, NodeError> {
        let (p, out) =
            run.p.network.plan_with_output(&run.ctx, &wiring::network_spec(&run.cfg, &run.ctx)).await.map_err(fail)?;
        let (core, egress): (Vec<_>, Vec<_>) =
            p.changes.into_iter().partition(|c| dify_stack_network::CORE_KINDS.contains(&c.resource.kind.as_str()));
        let mut step =
            planned(Node::Network, Plan { changes: core }, false, out.map(|o| NodeOutput::Network(Box::new(o))));
        step.plans.extend(planned(Node::Egress, Plan { changes: egress }, false, None).plans);
        Ok(step)
    }

    /// The VPC and subnets first; the egress node then converges the whole network (the same
    /// idempotent apply, which finds them made) and its output replaces this one.
    async fn apply(&self, run: &AwsRunner, _up: &StackOutput) -> Result<NodeOutput, NodeError> {
        let out = run.p.network.apply_core(&run.ctx, &wiring::network_spec(&run.cfg, &run.ctx)).await.map_err(fail)?;
        Ok(NodeOutput::Network(Box::new(out)))
    }

    /// The whole network (NAT gateways, addresses and route tables with the VPC, in the order
    /// AWS needs), after every node that uses it; then anything still tagged for the stack is an
    /// error naming it.
    async fn destroy(&self, run: &AwsRunner) -> Result<Vec<ResourceRef>, NodeError> {
        // The VPC as it was (cached from the nodes before), for the leftovers check in an
        // existing VPC.
        let vpc = run.discover_vpc().await?;
        let selector = run.p.network.selector(&run.ctx, &wiring::network_spec(&run.cfg, &run.ctx));
        let deleted = run.p.network.destroy_selected(&run.ctx, &selector).await.map_err(fail)?;
        run.check_leftovers(vpc.as_ref()).await?;
        Ok(deleted)
    }
}
