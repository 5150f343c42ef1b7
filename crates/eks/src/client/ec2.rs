//! EC2: the node security group and launch template.

use async_trait::async_trait;
use dify_stack_core::{AwsError, Tags};

#[allow(unused_imports)]
use super::*;

/// A security group.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SecurityGroupInfo {
    /// Id.
    pub id: String,
    /// Group name.
    pub name: String,
    /// Tags.
    pub tags: Tags,
}

/// The node launch template settings we manage.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LaunchTemplateData {
    /// IMDS `HttpTokens` (`required`).
    pub http_tokens: String,
    /// IMDS hop limit (2, so pods reach IMDS through the node).
    pub hop_limit: i32,
    /// Root volume type (`gp3`).
    pub volume_type: String,
    /// Root volume size (GiB).
    pub volume_size: i32,
    /// Root volume encrypted.
    pub encrypted: bool,
    /// Node security groups.
    pub security_group_ids: Vec<String>,
}

/// A launch template with the data of its latest version.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LaunchTemplateInfo {
    /// Id.
    pub id: String,
    /// Name.
    pub name: String,
    /// Latest version number.
    pub latest_version: i64,
    /// Data of the latest version.
    pub data: LaunchTemplateData,
    /// Tags.
    pub tags: Tags,
}

/// What the EKS tier asks of EC2: the node security group and launch template.
#[cfg_attr(any(test, feature = "test-util"), mockall::automock)]
#[async_trait]
pub trait Ec2Api: Send + Sync {
    /// DescribeSecurityGroups by VPC and group name.
    async fn find_security_group(&self, vpc_id: String, name: String) -> Result<Option<SecurityGroupInfo>, AwsError>;
    /// CreateSecurityGroup with tags; returns the id.
    async fn create_security_group(
        &self,
        vpc_id: String,
        name: String,
        description: String,
        tags: Tags,
    ) -> Result<String, AwsError>;
    /// DeleteSecurityGroup.
    async fn delete_security_group(&self, id: String) -> Result<(), AwsError>;
    /// DescribeLaunchTemplates by name + DescribeLaunchTemplateVersions (latest).
    async fn find_launch_template(&self, name: String) -> Result<Option<LaunchTemplateInfo>, AwsError>;
    /// CreateLaunchTemplate with tags.
    async fn create_launch_template(
        &self,
        name: String,
        data: LaunchTemplateData,
        tags: Tags,
    ) -> Result<LaunchTemplateInfo, AwsError>;
    /// CreateLaunchTemplateVersion + ModifyLaunchTemplate (default version); returns the version.
    async fn update_launch_template(&self, id: String, data: LaunchTemplateData) -> Result<i64, AwsError>;
    /// DeleteLaunchTemplate.
    async fn delete_launch_template(&self, id: String) -> Result<(), AwsError>;
}
