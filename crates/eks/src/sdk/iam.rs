//! IAM: the cluster and node roles.

#[allow(unused_imports)]
use super::*;

#[async_trait]
impl RolesApi for SdkEks {
    async fn get_role(&self, name: String) -> Result<Option<RoleInfo>, AwsError> {
        let Some(out) = not_found(self.iam.get_role().role_name(&name).send().await.aws("GetRole"))? else {
            return Ok(None);
        };
        let Some(role) = out.role() else { return Ok(None) };
        let attached = self
            .iam
            .list_attached_role_policies()
            .role_name(&name)
            .send()
            .await
            .aws("ListAttachedRolePolicies")?
            .attached_policies()
            .iter()
            .filter_map(|p| p.policy_arn().map(str::to_owned))
            .collect();
        Ok(Some(RoleInfo {
            name: role.role_name().to_owned(),
            arn: role.arn().to_owned(),
            trust: percent_encoding::percent_decode_str(role.assume_role_policy_document().unwrap_or_default())
                .decode_utf8_lossy()
                .into_owned(),
            attached,
            tags: role.tags().iter().map(|t| (t.key().to_owned(), t.value().to_owned())).collect(),
        }))
    }

    async fn create_role(&self, name: String, trust: String, tags: Tags) -> Result<String, AwsError> {
        let out = self
            .iam
            .create_role()
            .role_name(name)
            .assume_role_policy_document(trust)
            .set_tags(Some(
                tags.iter()
                    .filter_map(|(k, v)| aws_sdk_iam::types::Tag::builder().key(k).value(v).build().ok())
                    .collect(),
            ))
            .send()
            .await
            .aws("CreateRole")?;
        Ok(out.role().map(|r| r.arn().to_owned()).unwrap_or_default())
    }

    async fn update_trust(&self, name: String, trust: String) -> Result<(), AwsError> {
        self.iam
            .update_assume_role_policy()
            .role_name(name)
            .policy_document(trust)
            .send()
            .await
            .aws("UpdateAssumeRolePolicy")?;
        Ok(())
    }

    async fn tag_role(&self, name: String, tags: Tags) -> Result<(), AwsError> {
        self.iam
            .tag_role()
            .role_name(name)
            .set_tags(Some(
                tags.iter()
                    .filter_map(|(k, v)| aws_sdk_iam::types::Tag::builder().key(k).value(v).build().ok())
                    .collect(),
            ))
            .send()
            .await
            .aws("TagRole")?;
        Ok(())
    }

    async fn attach_policy(&self, role: String, policy_arn: String) -> Result<(), AwsError> {
        self.iam.attach_role_policy().role_name(role).policy_arn(policy_arn).send().await.aws("AttachRolePolicy")?;
        Ok(())
    }

    async fn detach_policy(&self, role: String, policy_arn: String) -> Result<(), AwsError> {
        self.iam.detach_role_policy().role_name(role).policy_arn(policy_arn).send().await.aws("DetachRolePolicy")?;
        Ok(())
    }

    async fn delete_role(&self, name: String) -> Result<(), AwsError> {
        self.iam.delete_role().role_name(name).send().await.aws("DeleteRole")?;
        Ok(())
    }
}
