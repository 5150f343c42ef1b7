//! Security groups (EC2).

use super::{AwsError, SdkDatastores, Tags, async_trait, shared};
use crate::SgApi;
use crate::sdk::SgInfo;

#[async_trait]
impl SgApi for SdkDatastores {
    async fn find(&self, vpc_id: String, name: String) -> Result<Option<SgInfo>, AwsError> {
        Ok(shared::ec2::find_security_group(&self.ec2, &vpc_id, &name).await?.map(|g| SgInfo {
            id: g.group_id().unwrap_or_default().to_owned(),
            tags: shared::ec2::tags_of(g.tags()),
            ingress: shared::ec2::ingress_rules(&g),
        }))
    }

    async fn create(&self, vpc_id: String, name: String, description: String, tags: Tags) -> Result<String, AwsError> {
        shared::ec2::create_security_group(&self.ec2, &vpc_id, &name, &description, &tags).await
    }

    async fn authorize(&self, id: String, port: i32, source: String) -> Result<(), AwsError> {
        shared::ec2::authorize_from_group(&self.ec2, &id, port, &source).await
    }

    async fn revoke(&self, id: String, rule: (String, i32, i32, String)) -> Result<(), AwsError> {
        shared::ec2::revoke_ingress(&self.ec2, &id, rule).await
    }

    async fn tag(&self, id: String, tags: Tags) -> Result<(), AwsError> {
        shared::ec2::create_tags(&self.ec2, vec![id], &tags).await
    }

    async fn delete(&self, id: String) -> Result<(), AwsError> {
        shared::ec2::delete_security_group(&self.ec2, &id).await
    }
}
