//! The thin IAM client of the IAM tier (mocked in tests as `MockIamApi`). Documents come back
//! decoded (IAM percent-encodes them).

use async_trait::async_trait;
use dify_stack_core::ids::{Arn, OidcProviderArn, RoleArn};
use dify_stack_core::{AwsError, Tags};

/// An OpenID Connect provider.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OidcInfo {
    /// Its ARN.
    pub arn: OidcProviderArn,
    /// Issuer URL without scheme, as IAM stores it.
    pub url: String,
    /// Audiences.
    pub client_ids: Vec<String>,
    /// Its tags.
    pub tags: Tags,
}

/// What CreateOpenIDConnectProvider is given.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OidcCreate {
    /// Issuer URL (with `https://`).
    pub url: String,
    /// Audiences.
    pub client_ids: Vec<String>,
    /// Server certificate thumbprints; empty lets IAM retrieve the issuer's top intermediate CA
    /// thumbprint itself (CreateOpenIDConnectProvider API reference, `ThumbprintList`: "This
    /// parameter is optional").
    pub thumbprints: Vec<String>,
    /// Its tags.
    pub tags: Tags,
}

/// A role.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoleInfo {
    /// Name.
    pub name: String,
    /// ARN.
    pub arn: RoleArn,
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
    async fn create_oidc_provider(&self, create: OidcCreate) -> Result<OidcProviderArn, AwsError>;
    /// AddClientIDToOpenIDConnectProvider.
    async fn add_client_id(&self, arn: OidcProviderArn, client_id: String) -> Result<(), AwsError>;
    /// DeleteOpenIDConnectProvider.
    async fn delete_oidc_provider(&self, arn: OidcProviderArn) -> Result<(), AwsError>;
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
    async fn list_attached_policies(&self, role: String) -> Result<Vec<Arn>, AwsError>;
    /// DetachRolePolicy.
    async fn detach_role_policy(&self, role: String, policy_arn: Arn) -> Result<(), AwsError>;
    /// DeleteRole.
    async fn delete_role(&self, name: String) -> Result<(), AwsError>;
}
