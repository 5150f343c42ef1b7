//! The thin IAM client of the IAM tier (mocked in tests as `MockIamApi`). Documents come back
//! decoded (IAM percent-encodes them).

use async_trait::async_trait;
use aws_sdk_iam::Client;
use aws_sdk_iam::types::Tag;
use dify_stack_core::{AwsError, AwsResultExt, Tags};

/// An OpenID Connect provider.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OidcInfo {
    /// Its ARN.
    pub arn: String,
    /// Issuer URL without scheme, as IAM stores it.
    pub url: String,
    /// Audiences.
    pub client_ids: Vec<String>,
    /// Its tags.
    pub tags: Tags,
}

/// A role.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoleInfo {
    /// Name.
    pub name: String,
    /// ARN.
    pub arn: String,
    /// Trust policy, decoded.
    pub trust: String,
    /// Tags.
    pub tags: Tags,
}

/// Everything the IAM tier asks of IAM.
#[cfg_attr(any(test, feature = "test-util"), mockall::automock)]
#[async_trait]
pub trait IamApi: Send + Sync {
    /// ListOpenIDConnectProviders + GetOpenIDConnectProvider for each.
    async fn list_oidc_providers(&self) -> Result<Vec<OidcInfo>, AwsError>;
    /// CreateOpenIDConnectProvider; returns the ARN.
    async fn create_oidc_provider(
        &self,
        url: String,
        client_ids: Vec<String>,
        thumbprints: Vec<String>,
        tags: Tags,
    ) -> Result<String, AwsError>;
    /// AddClientIDToOpenIDConnectProvider.
    async fn add_client_id(&self, arn: String, client_id: String) -> Result<(), AwsError>;
    /// DeleteOpenIDConnectProvider.
    async fn delete_oidc_provider(&self, arn: String) -> Result<(), AwsError>;
    /// GetRole; `None` when it does not exist.
    async fn get_role(&self, name: String) -> Result<Option<RoleInfo>, AwsError>;
    /// CreateRole with trust policy and tags.
    async fn create_role(&self, name: String, trust: String, tags: Tags) -> Result<RoleInfo, AwsError>;
    /// UpdateAssumeRolePolicy.
    async fn update_trust(&self, name: String, trust: String) -> Result<(), AwsError>;
    /// TagRole.
    async fn tag_role(&self, name: String, tags: Tags) -> Result<(), AwsError>;
    /// GetRolePolicy (inline), decoded; `None` when absent.
    async fn get_role_policy(&self, role: String, policy: String) -> Result<Option<String>, AwsError>;
    /// PutRolePolicy (inline).
    async fn put_role_policy(&self, role: String, policy: String, document: String) -> Result<(), AwsError>;
    /// ListRolePolicies (inline policy names).
    async fn list_role_policies(&self, role: String) -> Result<Vec<String>, AwsError>;
    /// DeleteRolePolicy.
    async fn delete_role_policy(&self, role: String, policy: String) -> Result<(), AwsError>;
    /// ListAttachedRolePolicies (managed policy ARNs).
    async fn list_attached_policies(&self, role: String) -> Result<Vec<String>, AwsError>;
    /// DetachRolePolicy.
    async fn detach_role_policy(&self, role: String, policy_arn: String) -> Result<(), AwsError>;
    /// DeleteRole.
    async fn delete_role(&self, name: String) -> Result<(), AwsError>;
}

/// The real IAM client.
#[derive(Debug, Clone)]
pub struct SdkIam {
    client: Client,
}

impl SdkIam {
    /// Builds a client from shared SDK configuration.
    pub fn from_conf(config: &aws_types::SdkConfig) -> SdkIam {
        SdkIam { client: Client::new(config) }
    }
}

fn decode(text: &str) -> String {
    percent_encoding::percent_decode_str(text).decode_utf8_lossy().into_owned()
}

fn tags_of(tags: &[Tag]) -> Tags {
    tags.iter().map(|t| (t.key().to_owned(), t.value().to_owned())).collect()
}

fn sdk_tags(tags: &Tags) -> Vec<Tag> {
    tags.iter().filter_map(|(k, v)| Tag::builder().key(k).value(v).build().ok()).collect()
}

#[async_trait]
impl IamApi for SdkIam {
    async fn list_oidc_providers(&self) -> Result<Vec<OidcInfo>, AwsError> {
        let list = self.client.list_open_id_connect_providers().send().await.aws("ListOpenIDConnectProviders")?;
        let mut out = Vec::new();
        for arn in list.open_id_connect_provider_list().iter().filter_map(|p| p.arn()) {
            let p = match self
                .client
                .get_open_id_connect_provider()
                .open_id_connect_provider_arn(arn)
                .send()
                .await
                .aws("GetOpenIDConnectProvider")
            {
                Ok(p) => p,
                Err(e) if e.is_not_found() => continue,
                Err(e) => return Err(e),
            };
            out.push(OidcInfo {
                arn: arn.to_owned(),
                url: p.url().unwrap_or_default().trim_start_matches("https://").to_owned(),
                client_ids: p.client_id_list().to_vec(),
                tags: tags_of(p.tags()),
            });
        }
        Ok(out)
    }

    async fn create_oidc_provider(
        &self,
        url: String,
        client_ids: Vec<String>,
        thumbprints: Vec<String>,
        tags: Tags,
    ) -> Result<String, AwsError> {
        let out = self
            .client
            .create_open_id_connect_provider()
            .url(url)
            .set_client_id_list(Some(client_ids))
            .set_thumbprint_list((!thumbprints.is_empty()).then_some(thumbprints))
            .set_tags(Some(sdk_tags(&tags)))
            .send()
            .await
            .aws("CreateOpenIDConnectProvider")?;
        Ok(out.open_id_connect_provider_arn().unwrap_or_default().to_owned())
    }

    async fn add_client_id(&self, arn: String, client_id: String) -> Result<(), AwsError> {
        self.client
            .add_client_id_to_open_id_connect_provider()
            .open_id_connect_provider_arn(arn)
            .client_id(client_id)
            .send()
            .await
            .aws("AddClientIDToOpenIDConnectProvider")?;
        Ok(())
    }

    async fn delete_oidc_provider(&self, arn: String) -> Result<(), AwsError> {
        self.client
            .delete_open_id_connect_provider()
            .open_id_connect_provider_arn(arn)
            .send()
            .await
            .aws("DeleteOpenIDConnectProvider")?;
        Ok(())
    }

    async fn get_role(&self, name: String) -> Result<Option<RoleInfo>, AwsError> {
        match self.client.get_role().role_name(name).send().await.aws("GetRole") {
            Ok(out) => Ok(out.role().map(|r| RoleInfo {
                name: r.role_name().to_owned(),
                arn: r.arn().to_owned(),
                trust: decode(r.assume_role_policy_document().unwrap_or_default()),
                tags: tags_of(r.tags()),
            })),
            Err(e) if e.is_not_found() => Ok(None),
            Err(e) => Err(e),
        }
    }

    async fn create_role(&self, name: String, trust: String, tags: Tags) -> Result<RoleInfo, AwsError> {
        let out = self
            .client
            .create_role()
            .role_name(&name)
            .assume_role_policy_document(&trust)
            .description("Dify EE IRSA role managed by dify-stack")
            .set_tags(Some(sdk_tags(&tags)))
            .send()
            .await
            .aws("CreateRole")?;
        let arn = out.role().map(|r| r.arn().to_owned()).unwrap_or_default();
        Ok(RoleInfo { name, arn, trust, tags })
    }

    async fn update_trust(&self, name: String, trust: String) -> Result<(), AwsError> {
        self.client
            .update_assume_role_policy()
            .role_name(name)
            .policy_document(trust)
            .send()
            .await
            .aws("UpdateAssumeRolePolicy")?;
        Ok(())
    }

    async fn tag_role(&self, name: String, tags: Tags) -> Result<(), AwsError> {
        self.client.tag_role().role_name(name).set_tags(Some(sdk_tags(&tags))).send().await.aws("TagRole")?;
        Ok(())
    }

    async fn get_role_policy(&self, role: String, policy: String) -> Result<Option<String>, AwsError> {
        match self.client.get_role_policy().role_name(role).policy_name(policy).send().await.aws("GetRolePolicy") {
            Ok(out) => Ok(Some(decode(out.policy_document()))),
            Err(e) if e.is_not_found() => Ok(None),
            Err(e) => Err(e),
        }
    }

    async fn put_role_policy(&self, role: String, policy: String, document: String) -> Result<(), AwsError> {
        self.client
            .put_role_policy()
            .role_name(role)
            .policy_name(policy)
            .policy_document(document)
            .send()
            .await
            .aws("PutRolePolicy")?;
        Ok(())
    }

    async fn list_role_policies(&self, role: String) -> Result<Vec<String>, AwsError> {
        let out = self.client.list_role_policies().role_name(role).send().await.aws("ListRolePolicies")?;
        Ok(out.policy_names().to_vec())
    }

    async fn delete_role_policy(&self, role: String, policy: String) -> Result<(), AwsError> {
        self.client.delete_role_policy().role_name(role).policy_name(policy).send().await.aws("DeleteRolePolicy")?;
        Ok(())
    }

    async fn list_attached_policies(&self, role: String) -> Result<Vec<String>, AwsError> {
        let out =
            self.client.list_attached_role_policies().role_name(role).send().await.aws("ListAttachedRolePolicies")?;
        Ok(out.attached_policies().iter().filter_map(|p| p.policy_arn()).map(str::to_owned).collect())
    }

    async fn detach_role_policy(&self, role: String, policy_arn: String) -> Result<(), AwsError> {
        self.client.detach_role_policy().role_name(role).policy_arn(policy_arn).send().await.aws("DetachRolePolicy")?;
        Ok(())
    }

    async fn delete_role(&self, name: String) -> Result<(), AwsError> {
        self.client.delete_role().role_name(name).send().await.aws("DeleteRole")?;
        Ok(())
    }
}
