//! The data stores in the VPC: Aurora, Redis and OpenSearch, one node each (they share the
//! spec, built from the network and the node security group, and their selector).

use async_trait::async_trait;
use dify_stack_core::ids::SecurityGroupId;
use dify_stack_core::{Provisioner, ResourceRef};
use dify_stack_datastores::DatastoresSpec;

use super::{StackNode, planned};
use crate::graph::{Node, NodeError, NodeOutput, PlanStep};
use crate::output::StackOutput;
use crate::runner::{AwsRunner, fail};
use crate::wiring;

/// The stores' upstream: the subnets and the node security group they admit.
const DEPS: &[Node] = &[Node::Network, Node::NodeSecurityGroup];

/// The stores' spec for a plan, and whether the upstream is still to be made (then the spec
/// holds planned ids).
fn plan_spec(run: &AwsRunner, up: &StackOutput) -> (DatastoresSpec, bool) {
    match (&up.network, &up.node_security_group) {
        (Some(net), Some(sg)) => (wiring::datastores_spec(&run.cfg, net, sg), false),
        (net, _) => {
            let planned = wiring::planned_network(&run.cfg);
            let sg = up.node_security_group.clone().unwrap_or_else(|| SecurityGroupId::new("sg-planned"));
            (wiring::datastores_spec(&run.cfg, net.as_ref().unwrap_or(&planned), &sg), true)
        }
    }
}

/// Plans one store: observed when its upstream exists, else all to create.
async fn plan<P>(node: Node, prov: &P, run: &AwsRunner, up: &StackOutput) -> Result<PlanStep, NodeError>
where
    P: Provisioner<Spec = DatastoresSpec>,
    P::Observed: Default,
    P::Error: dify_stack_core::Classify,
{
    let (spec, pending) = plan_spec(run, up);
    let p = if pending {
        prov.diff(&run.ctx, &spec, &Default::default())
    } else {
        prov.plan(&run.ctx, &spec).await.map_err(fail)?
    };
    Ok(planned(node, p, pending, None))
}

pub(super) struct Aurora;

#[async_trait]
impl StackNode for Aurora {
    fn deps(&self) -> &'static [Node] {
        DEPS
    }

    async fn plan(&self, run: &AwsRunner, up: &StackOutput) -> Result<PlanStep, NodeError> {
        plan(Node::Aurora, &run.p.aurora, run, up).await
    }

    async fn apply(&self, run: &AwsRunner, up: &StackOutput) -> Result<NodeOutput, NodeError> {
        let spec = run.datastores_spec(up, Node::Aurora)?;
        Ok(NodeOutput::Aurora(Box::new(run.p.aurora.apply(&run.ctx, &spec).await.map_err(fail)?)))
    }

    async fn destroy(&self, run: &AwsRunner) -> Result<Vec<ResourceRef>, NodeError> {
        let selector = run.store_selector().await?.aurora();
        run.p.aurora.destroy_selected(&run.ctx, &selector).await.map_err(fail)
    }
}

pub(super) struct Redis;

#[async_trait]
impl StackNode for Redis {
    fn deps(&self) -> &'static [Node] {
        DEPS
    }

    async fn plan(&self, run: &AwsRunner, up: &StackOutput) -> Result<PlanStep, NodeError> {
        plan(Node::Redis, &run.p.redis, run, up).await
    }

    async fn apply(&self, run: &AwsRunner, up: &StackOutput) -> Result<NodeOutput, NodeError> {
        let spec = run.datastores_spec(up, Node::Redis)?;
        Ok(NodeOutput::Redis(Box::new(run.p.redis.apply(&run.ctx, &spec).await.map_err(fail)?)))
    }

    async fn destroy(&self, run: &AwsRunner) -> Result<Vec<ResourceRef>, NodeError> {
        let selector = run.store_selector().await?.store();
        run.p.redis.destroy_selected(&run.ctx, &selector).await.map_err(fail)
    }
}

pub(super) struct OpenSearch;

#[async_trait]
impl StackNode for OpenSearch {
    fn deps(&self) -> &'static [Node] {
        DEPS
    }

    async fn plan(&self, run: &AwsRunner, up: &StackOutput) -> Result<PlanStep, NodeError> {
        plan(Node::OpenSearch, &run.p.opensearch, run, up).await
    }

    async fn apply(&self, run: &AwsRunner, up: &StackOutput) -> Result<NodeOutput, NodeError> {
        let spec = run.datastores_spec(up, Node::OpenSearch)?;
        Ok(NodeOutput::OpenSearch(Box::new(run.p.opensearch.apply(&run.ctx, &spec).await.map_err(fail)?)))
    }

    async fn destroy(&self, run: &AwsRunner) -> Result<Vec<ResourceRef>, NodeError> {
        let selector = run.store_selector().await?.store();
        run.p.opensearch.destroy_selected(&run.ctx, &selector).await.map_err(fail)
    }
}
