//! The S3 storage bucket (no upstream: the context names it).

use async_trait::async_trait;
use dify_stack_core::ids::SecurityGroupId;
use dify_stack_core::{Provisioner, ResourceRef};
use dify_stack_datastores::DatastoresSpec;

use super::{StackNode, planned};
use crate::graph::{Node, NodeError, NodeOutput, PlanStep};
use crate::output::StackOutput;
use crate::runner::{AwsRunner, fail};
use crate::wiring;

pub(super) struct Bucket;

/// The bucket reads only its own fields of the stores' spec.
fn spec(run: &AwsRunner) -> DatastoresSpec {
    wiring::datastores_spec(&run.cfg, &wiring::planned_network(&run.cfg), &SecurityGroupId::new("sg-none"))
}

#[async_trait]
impl StackNode for Bucket {
    fn deps(&self) -> &'static [Node] {
        &[]
    }

    async fn plan(&self, run: &AwsRunner, _up: &StackOutput) -> Result<PlanStep, NodeError> {
        let (p, out) = run.p.bucket.plan_with_output(&run.ctx, &spec(run)).await.map_err(fail)?;
        Ok(planned(Node::Bucket, p, false, out.map(|o| NodeOutput::Bucket(Box::new(o)))))
    }

    async fn apply(&self, run: &AwsRunner, _up: &StackOutput) -> Result<NodeOutput, NodeError> {
        Ok(NodeOutput::Bucket(Box::new(run.p.bucket.apply(&run.ctx, &spec(run)).await.map_err(fail)?)))
    }

    async fn destroy(&self, run: &AwsRunner) -> Result<Vec<ResourceRef>, NodeError> {
        run.p.bucket.destroy_selected(&run.ctx, &()).await.map_err(fail)
    }
}
