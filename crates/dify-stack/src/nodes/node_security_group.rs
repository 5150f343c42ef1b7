//! The node security group (the stores admit it; the node group uses it).

use async_trait::async_trait;
use dify_stack_core::{Provisioner, ResourceRef};
use dify_stack_eks::NodeSecurityGroupSelector;

use super::{StackNode, planned};
use crate::graph::{Node, NodeError, NodeOutput, PlanStep};
use crate::output::StackOutput;
use crate::runner::{AwsRunner, fail, missing};
use crate::wiring;

pub(super) struct NodeSecurityGroup;

#[async_trait]
impl StackNode for NodeSecurityGroup {
    fn deps(&self) -> &'static [Node] {
        &[Node::Network]
    }

    async fn plan(&self, run: &AwsRunner, up: &StackOutput) -> Result<PlanStep, NodeError> {
        let sg = &run.p.node_security_group;
        Ok(match &up.network {
            Some(net) => {
                let (p, out) = sg.plan_with_output(&run.ctx, &wiring::node_sg_spec(net)).await.map_err(fail)?;
                planned(Node::NodeSecurityGroup, p, false, out.map(NodeOutput::NodeSecurityGroup))
            }
            None => {
                let spec = wiring::node_sg_spec(&wiring::planned_network(&run.cfg));
                planned(Node::NodeSecurityGroup, sg.diff(&run.ctx, &spec, &None), true, None)
            }
        })
    }

    async fn apply(&self, run: &AwsRunner, up: &StackOutput) -> Result<NodeOutput, NodeError> {
        let net = up.network.as_ref().ok_or_else(|| missing(Node::NodeSecurityGroup, "network"))?;
        let out = run.p.node_security_group.apply(&run.ctx, &wiring::node_sg_spec(net)).await.map_err(fail)?;
        Ok(NodeOutput::NodeSecurityGroup(out))
    }

    async fn destroy(&self, run: &AwsRunner) -> Result<Vec<ResourceRef>, NodeError> {
        let selector = NodeSecurityGroupSelector { vpc_id: run.discover_vpc().await? };
        run.p.node_security_group.destroy_selected(&run.ctx, &selector).await.map_err(fail)
    }
}
