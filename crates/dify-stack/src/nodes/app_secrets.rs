//! The generated Dify application secret (`<stack>/dify-app`).

use async_trait::async_trait;
use dify_stack_core::{Action, Change, Plan, ResourceRef};
use dify_stack_datastores::SecretKind;
use dify_stack_datastores::secrets;

use super::{StackNode, planned};
use crate::graph::{Node, NodeError, NodeOutput, PlanStep};
use crate::output::StackOutput;
use crate::runner::{AwsRunner, fail};

pub(super) struct AppSecrets;

#[async_trait]
impl StackNode for AppSecrets {
    fn deps(&self) -> &'static [Node] {
        &[]
    }

    async fn plan(&self, run: &AwsRunner, _up: &StackOutput) -> Result<PlanStep, NodeError> {
        let exists =
            secrets::secret_exists(&run.ctx, run.p.secrets.as_ref(), SecretKind::DifyApp).await.map_err(fail)?;
        let mut p = Plan::new();
        if !exists {
            let secret = ResourceRef::new("secretsmanager:secret", SecretKind::DifyApp.name(&run.ctx));
            p.push(Change::new(Action::Create, secret).field("value", None::<&str>, Some("(generated)")));
        }
        Ok(planned(Node::AppSecrets, p, false, None))
    }

    async fn apply(&self, run: &AwsRunner, _up: &StackOutput) -> Result<NodeOutput, NodeError> {
        let stored =
            secrets::ensure_secret(&run.ctx, run.p.secrets.as_ref(), SecretKind::DifyApp, "").await.map_err(fail)?;
        Ok(NodeOutput::AppSecrets(Box::new(stored)))
    }

    async fn destroy(&self, run: &AwsRunner) -> Result<Vec<ResourceRef>, NodeError> {
        let deleted = secrets::delete_secret(&run.ctx, run.p.secrets.as_ref(), SecretKind::DifyApp, run.policy())
            .await
            .map_err(fail)?;
        Ok(deleted
            .map(|arn| ResourceRef::new("secretsmanager:secret", SecretKind::DifyApp.name(&run.ctx)).with_id(arn))
            .into_iter()
            .collect())
    }
}
