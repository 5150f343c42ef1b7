//! Security groups (EC2).

use super::{AwsError, SdkDatastores, Tags, async_trait, shared};
use crate::SgApi;
use crate::sdk::SgInfo;
use dify_stack_core::ids::{SecurityGroupId, VpcId};

#[async_trait]
impl SgApi for SdkDatastores {
    async fn find(&self, vpc_id: VpcId, name: String) -> Result<Option<SgInfo>, AwsError> {
        Ok(shared::ec2::find_security_group(&self.ec2, vpc_id.as_str(), &name).await?.map(|g| SgInfo {
            id: SecurityGroupId::new(g.group_id().unwrap_or_default()),
            tags: shared::ec2::tags_of(g.tags()),
            ingress: shared::ec2::ingress_rules(&g),
        }))
    }

    async fn create(
        &self,
        vpc_id: VpcId,
        name: String,
        description: String,
        tags: Tags,
    ) -> Result<SecurityGroupId, AwsError> {
        shared::ec2::create_security_group(&self.ec2, vpc_id.as_str(), &name, &description, &tags)
            .await
            .map(SecurityGroupId::new)
    }

    async fn authorize(&self, id: SecurityGroupId, port: i32, source: SecurityGroupId) -> Result<(), AwsError> {
        shared::ec2::authorize_from_group(&self.ec2, id.as_str(), port, source.as_str()).await
    }

    async fn revoke(&self, id: SecurityGroupId, rule: (String, i32, i32, String)) -> Result<(), AwsError> {
        shared::ec2::revoke_ingress(&self.ec2, id.as_str(), rule).await
    }

    async fn tag(&self, id: SecurityGroupId, tags: Tags) -> Result<(), AwsError> {
        shared::ec2::create_tags(&self.ec2, vec![id.into_inner()], &tags).await
    }

    async fn delete(&self, id: SecurityGroupId) -> Result<(), AwsError> {
        shared::ec2::delete_security_group(&self.ec2, id.as_str()).await
    }
}
