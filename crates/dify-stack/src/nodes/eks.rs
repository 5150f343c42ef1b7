//! The whole EKS tier: after the control plane and the egress its nodes register through, the
//! node group and add-ons; done when the nodes and the pod network (the VPC CNI) are (the other
//! add-ons are waited for by the EKS add-ons node).

use async_trait::async_trait;
use dify_stack_core::{Provisioner, ResourceRef};
use dify_stack_eks::EksSelector;

use super::{StackNode, shown_upstream};
use crate::graph::{Node, NodeError, NodeOutput, PlanStep};
use crate::output::StackOutput;
use crate::runner::{AwsRunner, KUBE_API_WAIT_CAP, fail, missing};
use crate::wiring;

pub(super) struct Eks;

#[async_trait]
impl StackNode for Eks {
    /// The node group needs egress too: the EKS user guide requires outbound internet access
    /// of a managed node group's subnets for its instances to join the cluster (quoted in
    /// aws/containers-roadmap #607; otherwise NodeCreationFailure, terraform-aws-eks #2149).
    fn deps(&self) -> &'static [Node] {
        &[Node::EksControlPlane, Node::Egress, Node::NodeSecurityGroup]
    }

    /// Shown by the control-plane node, from the same observation.
    async fn plan(&self, _run: &AwsRunner, _up: &StackOutput) -> Result<PlanStep, NodeError> {
        Ok(shown_upstream())
    }

    async fn apply(&self, run: &AwsRunner, up: &StackOutput) -> Result<NodeOutput, NodeError> {
        let net = up.network.as_ref().ok_or_else(|| missing(Node::Eks, "network"))?;
        let out = run.p.eks.apply_nodes(&run.ctx, &wiring::eks_spec(&run.cfg, net)).await.map_err(fail)?;
        // The nodes after this one talk to the Kubernetes API from this machine: the endpoint
        // access just set is checked here, naming the fix, before they start.
        if wiring::creates_service_accounts(&run.cfg) {
            run.p.cluster.probe(&run.ctx, &out, run.cfg.eks.kubernetes_access, KUBE_API_WAIT_CAP).await?;
        }
        Ok(NodeOutput::Eks(Box::new(out)))
    }

    /// The cluster after its node group and add-ons; with the Kubernetes API (when it answers),
    /// the objects that made load balancers first.
    async fn destroy(&self, run: &AwsRunner) -> Result<Vec<ResourceRef>, NodeError> {
        let selector = EksSelector { vpc_id: run.discover_vpc().await? };
        let eks = match run.load_balancer_objects().await {
            Some(objects) => run.p.eks.clone().with_kubernetes_objects(objects),
            None => run.p.eks.clone(),
        };
        eks.destroy_selected(&run.ctx, &selector).await.map_err(fail)
    }
}
