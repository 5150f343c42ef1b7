//! IAM: the cluster and node roles.

use dify_stack_core::ids::{Arn, RoleArn};

use super::{AwsError, RoleInfo, RolesApi, SdkEks, Tags, async_trait, shared};

#[async_trait]
impl RolesApi for SdkEks {
    async fn get_role(&self, name: String) -> Result<Option<RoleInfo>, AwsError> {
        let Some(role) = shared::iam::get_role(&self.iam, &name).await? else { return Ok(None) };
        let attached = shared::iam::attached_policies(&self.iam, &name).await?;
        Ok(Some(RoleInfo { name: role.name, arn: role.arn.into(), trust: role.trust, attached, tags: role.tags }))
    }

    async fn create_role(&self, name: String, trust: String, tags: Tags) -> Result<RoleArn, AwsError> {
        shared::iam::create_role(&self.iam, &name, &trust, None, &tags).await.map(Into::into)
    }

    async fn update_trust(&self, name: String, trust: String) -> Result<(), AwsError> {
        shared::iam::update_trust(&self.iam, &name, &trust).await
    }

    async fn tag_role(&self, name: String, tags: Tags) -> Result<(), AwsError> {
        shared::iam::tag_role(&self.iam, &name, &tags).await
    }

    async fn attach_policy(&self, role: String, policy_arn: Arn) -> Result<(), AwsError> {
        shared::iam::attach_policy(&self.iam, &role, policy_arn.as_str()).await
    }

    async fn detach_policy(&self, role: String, policy_arn: Arn) -> Result<(), AwsError> {
        shared::iam::detach_policy(&self.iam, &role, policy_arn.as_str()).await
    }

    async fn delete_role(&self, name: String) -> Result<(), AwsError> {
        shared::iam::delete_role(&self.iam, &name).await
    }
}
