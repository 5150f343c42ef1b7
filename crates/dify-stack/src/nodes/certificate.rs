//! The domain's ACM certificate and its validation record (no upstream: validated while the
//! rest is built). Nothing without a domain, or with the user's own certificate.

use async_trait::async_trait;
use dify_stack_core::{Plan, Provisioner, ResourceRef};

use super::{StackNode, planned};
use crate::graph::{Node, NodeError, NodeOutput, PlanStep};
use crate::output::StackOutput;
use crate::runner::{AwsRunner, fail};
use crate::wiring;

pub(super) struct Certificate;

#[async_trait]
impl StackNode for Certificate {
    fn deps(&self) -> &'static [Node] {
        &[]
    }

    async fn plan(&self, run: &AwsRunner, _up: &StackOutput) -> Result<PlanStep, NodeError> {
        let p = match wiring::certificate_spec(&run.cfg) {
            Some(spec) => run.p.certificate.plan(&run.ctx, &spec).await.map_err(fail)?,
            None => Plan::new(),
        };
        Ok(planned(Node::Certificate, p, false, None))
    }

    async fn apply(&self, run: &AwsRunner, _up: &StackOutput) -> Result<NodeOutput, NodeError> {
        let out = match wiring::certificate_spec(&run.cfg) {
            // Boxed: the ACM validation wait makes a large future.
            Some(spec) => Box::pin(run.p.certificate.apply(&run.ctx, &spec)).await.map_err(fail)?,
            None => Default::default(),
        };
        Ok(NodeOutput::Certificate(Box::new(out)))
    }

    async fn destroy(&self, run: &AwsRunner) -> Result<Vec<ResourceRef>, NodeError> {
        match wiring::certificate_spec(&run.cfg) {
            Some(spec) => run.p.certificate.destroy_selected(&run.ctx, &spec.domain).await.map_err(fail),
            None => Ok(Vec::new()),
        }
    }
}
