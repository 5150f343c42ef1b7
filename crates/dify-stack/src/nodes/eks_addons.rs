//! The EKS add-ons besides the pod network (CoreDNS, kube-proxy, the EBS CSI driver, the Pod
//! Identity agent): made by the EKS node, waited for here, beside the platform, whose
//! metrics-server needs only nodes with the pod network.

use async_trait::async_trait;
use dify_stack_core::{Provisioner, ResourceRef};

use super::{StackNode, shown_upstream};
use crate::graph::{Node, NodeError, NodeOutput, PlanStep};
use crate::output::StackOutput;
use crate::runner::{AwsRunner, fail, missing};
use crate::wiring;

pub(super) struct EksAddons;

#[async_trait]
impl StackNode for EksAddons {
    /// After the access entries too: the tier's whole apply converges them as well.
    fn deps(&self) -> &'static [Node] {
        &[Node::Eks, Node::EksAccess]
    }

    /// Shown by the control-plane node, from the same observation.
    async fn plan(&self, _run: &AwsRunner, _up: &StackOutput) -> Result<PlanStep, NodeError> {
        Ok(shown_upstream())
    }

    /// The whole tier's apply again: it finds everything made and waits for every add-on it
    /// finds busy. Its end, success or failure, is told to the platform node, whose load
    /// balancer controller waits for it ([`dify_stack_platform::ControllerGate`]).
    async fn apply(&self, run: &AwsRunner, up: &StackOutput) -> Result<NodeOutput, NodeError> {
        let result = async {
            let net = up.network.as_ref().ok_or_else(|| missing(Node::EksAddons, "network"))?;
            run.p.eks.apply(&run.ctx, &wiring::eks_spec(&run.cfg, net)).await.map_err(fail)
        }
        .await;
        run.eks_addons.send_replace(Some(result.as_ref().map(|_| ()).map_err(ToString::to_string)));
        Ok(NodeOutput::Eks(Box::new(result?)))
    }

    /// The EKS node's destroy removes the add-ons with the rest of the tier.
    async fn destroy(&self, _run: &AwsRunner) -> Result<Vec<ResourceRef>, NodeError> {
        Ok(Vec::new())
    }
}
