//! The EKS control plane: IAM roles, secrets key, log group, the cluster (until ACTIVE) and its
//! access entries. Its plan shows the whole EKS tier from one observation: the control plane
//! here, the node group, add-ons and upgrade steps as the EKS node's.

use async_trait::async_trait;
use dify_stack_core::{Action, Effect, Plan, Provisioner, ResourceRef};

use super::{StackNode, planned};
use crate::graph::{Node, NodeError, NodeOutput, PlanStep};
use crate::output::StackOutput;
use crate::runner::{AwsRunner, fail, missing};
use crate::wiring;

pub(super) struct EksControlPlane;

#[async_trait]
impl StackNode for EksControlPlane {
    /// The subnets, the node security group its launch template and the stores share, and the
    /// roles and key.
    fn deps(&self) -> &'static [Node] {
        &[Node::Network, Node::NodeSecurityGroup, Node::EksPrerequisites]
    }

    async fn plan(&self, run: &AwsRunner, up: &StackOutput) -> Result<PlanStep, NodeError> {
        let (ctx, eks) = (&run.ctx, &run.p.eks);
        let (p, out, pending) = match (&up.network, &up.node_security_group) {
            (Some(net), Some(_)) => {
                let (p, out) = eks.plan_with_output(ctx, &wiring::eks_spec(&run.cfg, net)).await.map_err(fail)?;
                (p, out, false)
            }
            _ => {
                let spec =
                    wiring::eks_spec(&run.cfg, up.network.as_ref().unwrap_or(&wiring::planned_network(&run.cfg)));
                (eks.diff(ctx, &spec, &Default::default()), None, true)
            }
        };
        // The node security group is the node-security-group node's (listed there once).
        let changes =
            p.changes.into_iter().filter(|c| !(c.resource.kind == "ec2:security-group" && c.action == Action::Create));
        // A Kubernetes upgrade's steps (the control plane's minors among them, marked as
        // upgrades) are the EKS node's: it makes them in order, each minor's control plane,
        // add-ons and nodes.
        let (control, nodes): (Vec<_>, Vec<_>) = changes.partition(|c| {
            dify_stack_eks::CONTROL_PLANE_KINDS.contains(&c.resource.kind.as_str()) && c.effect != Some(Effect::Upgrade)
        });
        let mut step = planned(
            Node::EksControlPlane,
            Plan { changes: control },
            pending,
            out.map(|o| NodeOutput::Eks(Box::new(o))),
        );
        step.plans.extend(planned(Node::Eks, Plan { changes: nodes }, pending, None).plans);
        Ok(step)
    }

    /// The cluster first (its output already names the node group); the EKS node then
    /// converges the whole tier (the same idempotent apply, which finds the control plane made)
    /// and its output replaces this one.
    async fn apply(&self, run: &AwsRunner, up: &StackOutput) -> Result<NodeOutput, NodeError> {
        let net = up.network.as_ref().ok_or_else(|| missing(Node::EksControlPlane, "network"))?;
        let out = run.p.eks.apply_control_plane(&run.ctx, &wiring::eks_spec(&run.cfg, net)).await.map_err(fail)?;
        Ok(NodeOutput::Eks(Box::new(out)))
    }

    /// The EKS node's destroy removes the cluster after its node group and add-ons.
    async fn destroy(&self, _run: &AwsRunner) -> Result<Vec<ResourceRef>, NodeError> {
        Ok(Vec::new())
    }
}
