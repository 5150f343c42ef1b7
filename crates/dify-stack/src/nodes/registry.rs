//! The ECR repositories (no upstream: the context names them).

use async_trait::async_trait;
use dify_stack_core::{Provisioner, ResourceRef};

use super::{StackNode, planned};
use crate::graph::{Node, NodeError, NodeOutput, PlanStep};
use crate::output::StackOutput;
use crate::runner::{AwsRunner, fail};
use crate::wiring;

pub(super) struct Registry;

#[async_trait]
impl StackNode for Registry {
    fn deps(&self) -> &'static [Node] {
        &[]
    }

    async fn plan(&self, run: &AwsRunner, _up: &StackOutput) -> Result<PlanStep, NodeError> {
        let spec = wiring::registry_spec(&run.cfg);
        let (p, out) = run.p.registry.plan_with_output(&run.ctx, &spec).await.map_err(fail)?;
        Ok(planned(Node::Registry, p, false, out.map(|o| NodeOutput::Registry(Box::new(o)))))
    }

    async fn apply(&self, run: &AwsRunner, _up: &StackOutput) -> Result<NodeOutput, NodeError> {
        let out = run.p.registry.apply(&run.ctx, &wiring::registry_spec(&run.cfg)).await.map_err(fail)?;
        Ok(NodeOutput::Registry(Box::new(out)))
    }

    async fn destroy(&self, run: &AwsRunner) -> Result<Vec<ResourceRef>, NodeError> {
        run.p.registry.destroy_selected(&run.ctx, &()).await.map_err(fail)
    }
}
