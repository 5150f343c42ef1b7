//! The stack graph's nodes, one module each. A node declares the nodes whose outputs it needs
//! and plans, applies and destroys its part of the stack with the runner's provisioners; its
//! output is its [`NodeOutput`](crate::NodeOutput) variant, which fills its field of
//! [`StackOutput`](crate::StackOutput). The executor ([`crate::graph`]) runs plan, apply and
//! destroy over this table.
//!
//! Adding a node touches: its module here and its line in [`of`]; its [`Node`] variant (with
//! [`Node::ALL`] and its name); its `NodeOutput` variant and `StackOutput` field (with
//! `StackOutput::set`); and its section of [`StackConfig`](crate::StackConfig) with the spec
//! built from it in `wiring`.

use async_trait::async_trait;
use dify_stack_core::{Plan, ResourceRef};

use crate::graph::{Node, NodeError, NodeOutput, PlanStep};
use crate::output::StackOutput;
use crate::runner::AwsRunner;

mod app_secrets;
mod bucket;
mod certificate;
mod egress;
mod eks;
mod eks_access;
mod eks_addons;
mod eks_control_plane;
mod eks_prerequisites;
mod iam;
mod network;
mod node_security_group;
mod platform;
mod registry;
mod stores;

/// One node of the stack graph.
#[async_trait]
pub(crate) trait StackNode: Send + Sync {
    /// The nodes whose outputs this node needs: nothing more.
    fn deps(&self) -> &'static [Node];

    /// The node's plan (read-only), against its upstream's outputs in `up` where they were
    /// observed converged, else against planned ids (`upstream_pending`).
    async fn plan(&self, run: &AwsRunner, up: &StackOutput) -> Result<PlanStep, NodeError>;

    /// Converges the node given its upstream's outputs.
    async fn apply(&self, run: &AwsRunner, up: &StackOutput) -> Result<NodeOutput, NodeError>;

    /// Deletes what the node owns, found from the context and what exists (never a spec with
    /// made-up ids).
    async fn destroy(&self, run: &AwsRunner) -> Result<Vec<ResourceRef>, NodeError>;
}

/// The node's module.
pub(crate) fn of(node: Node) -> &'static dyn StackNode {
    match node {
        Node::Network => &network::Network,
        Node::Egress => &egress::Egress,
        Node::NodeSecurityGroup => &node_security_group::NodeSecurityGroup,
        Node::EksPrerequisites => &eks_prerequisites::EksPrerequisites,
        Node::EksControlPlane => &eks_control_plane::EksControlPlane,
        Node::EksAccess => &eks_access::EksAccess,
        Node::Eks => &eks::Eks,
        Node::EksAddons => &eks_addons::EksAddons,
        Node::Aurora => &stores::Aurora,
        Node::Redis => &stores::Redis,
        Node::OpenSearch => &stores::OpenSearch,
        Node::Bucket => &bucket::Bucket,
        Node::AppSecrets => &app_secrets::AppSecrets,
        Node::Registry => &registry::Registry,
        Node::Iam => &iam::Iam,
        Node::Platform => &platform::Platform,
        Node::Certificate => &certificate::Certificate,
    }
}

/// A plan step showing one node's plan.
fn planned(node: Node, plan: Plan, upstream_pending: bool, output: Option<NodeOutput>) -> PlanStep {
    PlanStep { plans: vec![(node, crate::NodePlan { plan, upstream_pending })], output }
}

/// The plan step of a node whose plan another node of its tier shows (one observation of one
/// tier, shown once: the EKS control plane shows the roles, the key and the access entries).
fn shown_upstream() -> PlanStep {
    PlanStep::default()
}
