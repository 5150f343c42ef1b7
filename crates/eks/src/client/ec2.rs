//! EC2: the node security group and launch template; and at destroy, what the cluster's workloads
//! left in EC2: EBS volumes and snapshots (data), the VPC CNI's network interfaces, and anything
//! still tagged for the stack or the cluster.

use async_trait::async_trait;
use dify_stack_core::ids::{SecurityGroupId, VpcId};
use dify_stack_core::{AwsError, Tags};

/// A security group.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SecurityGroupInfo {
    /// Id.
    pub id: SecurityGroupId,
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
    pub security_group_ids: Vec<SecurityGroupId>,
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

/// An EBS volume (DescribeVolumes).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct VolumeInfo {
    /// Id (`vol-...`).
    pub id: String,
    /// `creating`, `available`, `in-use`, `deleting`, `deleted` or `error` (EC2 API reference,
    /// `Volume.State`).
    pub state: String,
    /// Size in GiB.
    pub size_gib: i32,
    /// Instances it is attached to.
    pub attached_to: Vec<String>,
    /// Tags.
    pub tags: Tags,
}

/// An EBS snapshot owned by the account (DescribeSnapshots `OwnerIds=self`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SnapshotInfo {
    /// Id (`snap-...`).
    pub id: String,
    /// `pending`, `completed`, `error`, `recoverable`, `recovering` (`Snapshot.State`).
    pub state: String,
    /// The volume it was taken of.
    pub volume_id: String,
    /// Size in GiB.
    pub size_gib: i32,
    /// Tags.
    pub tags: Tags,
}

/// A network interface (DescribeNetworkInterfaces).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NetworkInterfaceInfo {
    /// Id (`eni-...`).
    pub id: String,
    /// `available` (detached), `in-use`, `attaching`, `detaching`, `associated`.
    pub status: String,
    /// Its description (the VPC CNI's are `aws-K8S-<instance id>`).
    pub description: String,
    /// Its subnet.
    pub subnet_id: String,
    /// Its security groups.
    pub group_ids: Vec<String>,
    /// Tags.
    pub tags: Tags,
}

/// A live EC2 resource carrying one of the tag keys asked for ([`Ec2Api::tagged_resources`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TaggedResource {
    /// Its kind, as in a plan (`ec2:volume`, `ec2:security-group`, ...).
    pub kind: String,
    /// Its id.
    pub id: String,
    /// Tags.
    pub tags: Tags,
}

/// What the EKS tier asks of EC2: the node security group and launch template.
#[cfg_attr(any(test, feature = "test-util"), mockall::automock)]
#[async_trait]
pub trait Ec2Api: Send + Sync {
    /// DescribeSecurityGroups by VPC and group name.
    async fn find_security_group(&self, vpc_id: VpcId, name: String) -> Result<Option<SecurityGroupInfo>, AwsError>;
    /// CreateSecurityGroup with tags; returns the id.
    async fn create_security_group(
        &self,
        vpc_id: VpcId,
        name: String,
        description: String,
        tags: Tags,
    ) -> Result<SecurityGroupId, AwsError>;
    /// DeleteSecurityGroup.
    async fn delete_security_group(&self, id: SecurityGroupId) -> Result<(), AwsError>;
    /// CreateTags on a security group (our tags that drifted, such as a `Name` edited in the
    /// console, written back).
    async fn tag_security_group(&self, id: SecurityGroupId, tags: Tags) -> Result<(), AwsError> {
        let _ = (id, tags);
        Err(unsupported("CreateTags"))
    }
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
    /// EBS volumes carrying the tag `key = value` (DescribeVolumes, every page).
    async fn tagged_volumes(&self, key: String, value: String) -> Result<Vec<VolumeInfo>, AwsError> {
        let _ = (key, value);
        Err(unsupported("DescribeVolumes"))
    }
    /// DeleteVolume (an `available` volume).
    async fn delete_volume(&self, id: String) -> Result<(), AwsError> {
        let _ = id;
        Err(unsupported("DeleteVolume"))
    }
    /// Snapshots owned by the account carrying the tag `key = value` (DescribeSnapshots
    /// `OwnerIds=self`, every page).
    async fn tagged_snapshots(&self, key: String, value: String) -> Result<Vec<SnapshotInfo>, AwsError> {
        let _ = (key, value);
        Err(unsupported("DescribeSnapshots"))
    }
    /// DeleteSnapshot.
    async fn delete_snapshot(&self, id: String) -> Result<(), AwsError> {
        let _ = id;
        Err(unsupported("DeleteSnapshot"))
    }
    /// The network interfaces in `vpc_id` (DescribeNetworkInterfaces, every page).
    async fn vpc_network_interfaces(&self, vpc_id: VpcId) -> Result<Vec<NetworkInterfaceInfo>, AwsError> {
        let _ = vpc_id;
        Err(unsupported("DescribeNetworkInterfaces"))
    }
    /// DeleteNetworkInterface (a detached one).
    async fn delete_network_interface(&self, id: String) -> Result<(), AwsError> {
        let _ = id;
        Err(unsupported("DeleteNetworkInterface"))
    }
    /// The live EC2 resources carrying any of the tag `keys` (a `tag-key` filter on each
    /// Describe call): volumes, snapshots the account owns, network interfaces, security groups,
    /// instances, launch templates, VPCs, subnets, route tables, internet gateways, NAT gateways
    /// and Elastic IPs. What is on its way out (a `deleting` volume, a `shutting-down` or
    /// `terminated` instance, a `deleting` or `deleted` NAT gateway) is not listed: AWS keeps
    /// those visible for a while after the delete that ends them.
    async fn tagged_resources(&self, keys: Vec<String>) -> Result<Vec<TaggedResource>, AwsError> {
        let _ = keys;
        Err(unsupported("DescribeTags"))
    }
}

/// What a client that does not model a destroy-time call answers (the defaults above, so a
/// simulator of the apply path needs none of them): an error, never an empty list that would
/// read as "nothing there" to the data check or the leftover check.
fn unsupported(operation: &'static str) -> AwsError {
    AwsError::new(operation, "UnsupportedOperation", "this client does not implement the call")
}
