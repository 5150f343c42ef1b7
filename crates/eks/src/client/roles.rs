//! IAM: the cluster, node and EBS CSI roles.

use async_trait::async_trait;
use dify_stack_core::ids::{Arn, RoleArn};
use dify_stack_core::{AwsError, Tags};

/// An IAM role with its attached managed policies.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RoleInfo {
    /// Name.
    pub name: String,
    /// ARN.
    pub arn: RoleArn,
    /// Trust policy, decoded JSON text.
    pub trust: String,
    /// Attached managed policy ARNs.
    pub attached: Vec<String>,
    /// Tags.
    pub tags: Tags,
}

/// What the EKS tier asks of IAM: the cluster and node roles.
#[cfg_attr(any(test, feature = "test-util"), mockall::automock)]
#[async_trait]
pub trait RolesApi: Send + Sync {
    /// GetRole + ListAttachedRolePolicies; `None` when the role does not exist.
    async fn get_role(&self, name: String) -> Result<Option<RoleInfo>, AwsError>;
    /// CreateRole with trust policy and tags; returns the ARN.
    async fn create_role(&self, name: String, trust: String, tags: Tags) -> Result<RoleArn, AwsError>;
    /// UpdateAssumeRolePolicy.
    async fn update_trust(&self, name: String, trust: String) -> Result<(), AwsError>;
    /// TagRole.
    async fn tag_role(&self, name: String, tags: Tags) -> Result<(), AwsError>;
    /// AttachRolePolicy.
    async fn attach_policy(&self, role: String, policy_arn: Arn) -> Result<(), AwsError>;
    /// DetachRolePolicy.
    async fn detach_policy(&self, role: String, policy_arn: Arn) -> Result<(), AwsError>;
    /// DeleteRole.
    async fn delete_role(&self, name: String) -> Result<(), AwsError>;
}
