//! The thin client of the EKS tier: the EKS, IAM, KMS and EC2 calls it makes, behind one
//! mockable trait (`MockEksApi` in tests). The real implementation is [`SdkEks`](crate::SdkEks).

use std::collections::{BTreeMap, BTreeSet};

use async_trait::async_trait;
use dify_stack_core::{AwsError, Tags};

/// The status EKS reports for a cluster, a node group or an add-on (the three share one
/// vocabulary; EKS API reference, `Cluster.status`, `Nodegroup.status`, `Addon.status`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum Status {
    /// `CREATING`.
    Creating,
    /// `ACTIVE`.
    Active,
    /// `UPDATING`.
    Updating,
    /// `DELETING`.
    Deleting,
    /// `PENDING` (a cluster waiting for capacity).
    Pending,
    /// `FAILED` (a cluster).
    Failed,
    /// `CREATE_FAILED`.
    CreateFailed,
    /// `UPDATE_FAILED`.
    UpdateFailed,
    /// `DELETE_FAILED`.
    DeleteFailed,
    /// `DEGRADED`.
    Degraded,
    /// Anything else EKS may add, as it said it.
    Other(String),
    /// No status in the answer.
    #[default]
    Unknown,
}

impl Status {
    /// Parses EKS's spelling.
    pub fn parse(s: &str) -> Status {
        match s {
            "CREATING" => Status::Creating,
            "ACTIVE" => Status::Active,
            "UPDATING" => Status::Updating,
            "DELETING" => Status::Deleting,
            "PENDING" => Status::Pending,
            "FAILED" => Status::Failed,
            "CREATE_FAILED" => Status::CreateFailed,
            "UPDATE_FAILED" => Status::UpdateFailed,
            "DELETE_FAILED" => Status::DeleteFailed,
            "DEGRADED" => Status::Degraded,
            "" => Status::Unknown,
            other => Status::Other(other.to_owned()),
        }
    }

    /// EKS's spelling.
    pub fn as_str(&self) -> &str {
        match self {
            Status::Creating => "CREATING",
            Status::Active => "ACTIVE",
            Status::Updating => "UPDATING",
            Status::Deleting => "DELETING",
            Status::Pending => "PENDING",
            Status::Failed => "FAILED",
            Status::CreateFailed => "CREATE_FAILED",
            Status::UpdateFailed => "UPDATE_FAILED",
            Status::DeleteFailed => "DELETE_FAILED",
            Status::Degraded => "DEGRADED",
            Status::Other(s) => s,
            Status::Unknown => "",
        }
    }
}

impl From<&str> for Status {
    fn from(s: &str) -> Status {
        Status::parse(s)
    }
}

impl std::fmt::Display for Status {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A cluster as `DescribeCluster` shows it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClusterInfo {
    /// Name.
    pub name: String,
    /// ARN.
    pub arn: String,
    /// `CREATING`, `ACTIVE`, `UPDATING`, `DELETING`, `FAILED`, `PENDING`.
    pub status: Status,
    /// Kubernetes minor version.
    pub version: String,
    /// API server endpoint (set once ACTIVE).
    pub endpoint: Option<String>,
    /// Base64 PEM of the cluster CA.
    pub ca_data: Option<String>,
    /// OIDC issuer URL.
    pub oidc_issuer: Option<String>,
    /// The security group EKS creates for the control plane and managed nodes.
    pub cluster_security_group_id: Option<String>,
    /// Control-plane subnets.
    pub subnet_ids: Vec<String>,
    /// Additional control-plane security groups.
    pub security_group_ids: Vec<String>,
    /// Private endpoint on.
    pub endpoint_private: bool,
    /// Public endpoint on.
    pub endpoint_public: bool,
    /// CIDRs allowed on the public endpoint.
    pub public_access_cidrs: Vec<String>,
    /// Enabled control-plane log types.
    pub enabled_logs: BTreeSet<String>,
    /// KMS key ARN for secrets encryption.
    pub secrets_key_arn: Option<String>,
    /// Authentication mode (`API_AND_CONFIG_MAP`, ...).
    pub authentication_mode: Option<String>,
    /// Cluster role ARN.
    pub role_arn: String,
    /// Tags.
    pub tags: Tags,
}

/// Everything `CreateCluster` needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterCreate {
    /// Name.
    pub name: String,
    /// Kubernetes version.
    pub version: String,
    /// Cluster role ARN.
    pub role_arn: String,
    /// Private subnets.
    pub subnet_ids: Vec<String>,
    /// Public endpoint CIDRs (empty: public endpoint off).
    pub public_access_cidrs: Vec<String>,
    /// Log types to enable.
    pub log_types: Vec<String>,
    /// KMS key ARN for secrets.
    pub key_arn: String,
    /// Tags.
    pub tags: Tags,
    /// Idempotency token.
    pub client_request_token: String,
}

/// A managed node group as `DescribeNodegroup` shows it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NodegroupInfo {
    /// Name.
    pub name: String,
    /// ARN.
    pub arn: String,
    /// `CREATING`, `ACTIVE`, `UPDATING`, `DELETING`, `CREATE_FAILED`, `DELETE_FAILED`, `DEGRADED`.
    pub status: Status,
    /// Kubernetes version.
    pub version: Option<String>,
    /// AMI type.
    pub ami_type: String,
    /// Instance types.
    pub instance_types: Vec<String>,
    /// Minimum size.
    pub min: i32,
    /// Maximum size.
    pub max: i32,
    /// Desired size.
    pub desired: i32,
    /// Subnets.
    pub subnet_ids: Vec<String>,
    /// Node labels.
    pub labels: BTreeMap<String, String>,
    /// Launch template id and version.
    pub launch_template: Option<(String, String)>,
    /// Node role ARN.
    pub node_role: String,
    /// Health issues reported by EKS (code: message).
    pub issues: Vec<String>,
    /// Tags.
    pub tags: Tags,
}

/// Everything `CreateNodegroup` needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodegroupCreate {
    /// Cluster.
    pub cluster: String,
    /// Node group name.
    pub name: String,
    /// Node role ARN.
    pub node_role: String,
    /// Subnets.
    pub subnet_ids: Vec<String>,
    /// Instance types.
    pub instance_types: Vec<String>,
    /// AMI type.
    pub ami_type: String,
    /// Minimum size.
    pub min: i32,
    /// Maximum size.
    pub max: i32,
    /// Desired size.
    pub desired: i32,
    /// Labels.
    pub labels: BTreeMap<String, String>,
    /// Launch template id and version.
    pub launch_template: (String, String),
    /// Kubernetes version.
    pub version: String,
    /// Tags.
    pub tags: Tags,
    /// Idempotency token.
    pub client_request_token: String,
}

/// A managed add-on.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AddonInfo {
    /// Add-on name.
    pub name: String,
    /// Installed version.
    pub version: String,
    /// `CREATING`, `ACTIVE`, `CREATE_FAILED`, `UPDATING`, `DELETING`, `DEGRADED`, ...
    pub status: Status,
    /// Tags.
    pub tags: Tags,
    /// ARNs of the Pod Identity associations the add-on made (`podIdentityAssociations`).
    pub pod_identity_associations: Vec<String>,
}

/// The IAM role an add-on's service account gets through EKS Pod Identity
/// (CreateAddon / UpdateAddon `podIdentityAssociations`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AddonRole {
    /// The add-on's service account, e.g. `ebs-csi-controller-sa`.
    pub service_account: String,
    /// The role (trusting `pods.eks.amazonaws.com`).
    pub role_arn: String,
}

/// A CloudWatch Logs log group.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LogGroupInfo {
    /// Name, `/aws/eks/<cluster>/cluster`.
    pub name: String,
    /// Retention in days; `None` keeps the logs forever.
    pub retention_days: Option<i32>,
    /// Tags.
    pub tags: Tags,
}

/// An IAM role with its attached managed policies.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RoleInfo {
    /// Name.
    pub name: String,
    /// ARN.
    pub arn: String,
    /// Trust policy, decoded JSON text.
    pub trust: String,
    /// Attached managed policy ARNs.
    pub attached: Vec<String>,
    /// Tags.
    pub tags: Tags,
}

/// A KMS key.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KeyInfo {
    /// Key id.
    pub key_id: String,
    /// Key ARN.
    pub arn: String,
    /// `Enabled`, `Disabled`, `PendingDeletion`, ...
    pub state: String,
    /// Tags.
    pub tags: Tags,
}

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

/// What the EKS tier asks of EKS: clusters, node groups, add-ons and access entries.
#[cfg_attr(any(test, feature = "test-util"), mockall::automock)]
#[async_trait]
pub trait ClusterApi: Send + Sync {
    // --- EKS cluster
    /// DescribeCluster; `None` when it does not exist.
    async fn describe_cluster(&self, name: String) -> Result<Option<ClusterInfo>, AwsError>;
    /// CreateCluster (API_AND_CONFIG_MAP, creator admin bootstrap, private endpoint on).
    async fn create_cluster(&self, create: ClusterCreate) -> Result<ClusterInfo, AwsError>;
    /// UpdateClusterConfig with the complete `resourcesVpcConfig` block.
    async fn update_cluster_endpoint(
        &self,
        name: String,
        subnet_ids: Vec<String>,
        public_access_cidrs: Vec<String>,
    ) -> Result<(), AwsError>;
    /// UpdateClusterConfig with the complete `logging` block.
    async fn update_cluster_logging(
        &self,
        name: String,
        enabled: Vec<String>,
        disabled: Vec<String>,
    ) -> Result<(), AwsError>;
    /// UpdateClusterVersion (one minor version).
    async fn update_cluster_version(&self, name: String, version: String) -> Result<(), AwsError>;
    /// TagResource.
    async fn tag_resource(&self, arn: String, tags: Tags) -> Result<(), AwsError>;
    /// DeleteCluster.
    async fn delete_cluster(&self, name: String) -> Result<(), AwsError>;

    // --- EKS node groups
    /// ListNodegroups.
    async fn list_nodegroups(&self, cluster: String) -> Result<Vec<String>, AwsError>;
    /// DescribeNodegroup; `None` when it does not exist.
    async fn describe_nodegroup(&self, cluster: String, name: String) -> Result<Option<NodegroupInfo>, AwsError>;
    /// CreateNodegroup.
    async fn create_nodegroup(&self, create: NodegroupCreate) -> Result<NodegroupInfo, AwsError>;
    /// UpdateNodegroupConfig: scaling and labels.
    async fn update_nodegroup_config(
        &self,
        cluster: String,
        name: String,
        scaling: Option<(i32, i32, i32)>,
        add_labels: BTreeMap<String, String>,
        remove_labels: Vec<String>,
    ) -> Result<(), AwsError>;
    /// UpdateNodegroupVersion: Kubernetes version, or a new launch template version.
    async fn update_nodegroup_version(
        &self,
        cluster: String,
        name: String,
        version: Option<String>,
        launch_template: Option<(String, String)>,
    ) -> Result<(), AwsError>;
    /// DeleteNodegroup.
    async fn delete_nodegroup(&self, cluster: String, name: String) -> Result<(), AwsError>;

    // --- EKS add-ons and access
    /// ListAddons.
    async fn list_addons(&self, cluster: String) -> Result<Vec<String>, AwsError>;
    /// DescribeAddon; `None` when it does not exist.
    async fn describe_addon(&self, cluster: String, name: String) -> Result<Option<AddonInfo>, AwsError>;
    /// DescribeAddonVersions: the default version of an add-on for a Kubernetes version.
    async fn default_addon_version(&self, name: String, kubernetes_version: String)
    -> Result<Option<String>, AwsError>;
    /// CreateAddon with `resolveConflicts = OVERWRITE` and, when given, the Pod Identity
    /// association of its service account.
    async fn create_addon(
        &self,
        cluster: String,
        name: String,
        version: String,
        tags: Tags,
        role: Option<AddonRole>,
    ) -> Result<(), AwsError>;
    /// UpdateAddon with `resolveConflicts = OVERWRITE`; a given role replaces the add-on's Pod
    /// Identity associations.
    async fn update_addon(
        &self,
        cluster: String,
        name: String,
        version: String,
        role: Option<AddonRole>,
    ) -> Result<(), AwsError>;
    /// DeleteAddon.
    async fn delete_addon(&self, cluster: String, name: String) -> Result<(), AwsError>;
    /// ListAccessEntries: principal ARNs.
    async fn list_access_entries(&self, cluster: String) -> Result<Vec<String>, AwsError>;
    /// ListAssociatedAccessPolicies: policy ARNs.
    async fn list_access_policies(&self, cluster: String, principal: String) -> Result<Vec<String>, AwsError>;
    /// CreateAccessEntry.
    async fn create_access_entry(&self, cluster: String, principal: String, tags: Tags) -> Result<(), AwsError>;
    /// AssociateAccessPolicy with cluster scope.
    async fn associate_access_policy(
        &self,
        cluster: String,
        principal: String,
        policy_arn: String,
    ) -> Result<(), AwsError>;
    /// DeleteAccessEntry.
    async fn delete_access_entry(&self, cluster: String, principal: String) -> Result<(), AwsError>;
}

/// What the EKS tier asks of CloudWatch Logs: the control-plane log group.
#[cfg_attr(any(test, feature = "test-util"), mockall::automock)]
#[async_trait]
pub trait LogsApi: Send + Sync {
    /// DescribeLogGroups (exact name) + ListTagsLogGroup; `None` when it does not exist.
    async fn describe_log_group(&self, name: String) -> Result<Option<LogGroupInfo>, AwsError>;
    /// CreateLogGroup with tags.
    async fn create_log_group(&self, name: String, tags: Tags) -> Result<(), AwsError>;
    /// PutRetentionPolicy.
    async fn put_log_retention(&self, name: String, days: i32) -> Result<(), AwsError>;
    /// DeleteLogGroup.
    async fn delete_log_group(&self, name: String) -> Result<(), AwsError>;
}

/// What the EKS tier asks of IAM: the cluster and node roles.
#[cfg_attr(any(test, feature = "test-util"), mockall::automock)]
#[async_trait]
pub trait RolesApi: Send + Sync {
    /// GetRole + ListAttachedRolePolicies; `None` when the role does not exist.
    async fn get_role(&self, name: String) -> Result<Option<RoleInfo>, AwsError>;
    /// CreateRole with trust policy and tags; returns the ARN.
    async fn create_role(&self, name: String, trust: String, tags: Tags) -> Result<String, AwsError>;
    /// UpdateAssumeRolePolicy.
    async fn update_trust(&self, name: String, trust: String) -> Result<(), AwsError>;
    /// TagRole.
    async fn tag_role(&self, name: String, tags: Tags) -> Result<(), AwsError>;
    /// AttachRolePolicy.
    async fn attach_policy(&self, role: String, policy_arn: String) -> Result<(), AwsError>;
    /// DetachRolePolicy.
    async fn detach_policy(&self, role: String, policy_arn: String) -> Result<(), AwsError>;
    /// DeleteRole.
    async fn delete_role(&self, name: String) -> Result<(), AwsError>;
}

/// What the EKS tier asks of KMS: the secrets-encryption key.
#[cfg_attr(any(test, feature = "test-util"), mockall::automock)]
#[async_trait]
pub trait KeysApi: Send + Sync {
    /// DescribeKey by alias + ListResourceTags; `None` when the alias does not exist.
    async fn find_key(&self, alias: String) -> Result<Option<KeyInfo>, AwsError>;
    /// CreateKey (symmetric, rotation on) with tags, then CreateAlias.
    async fn create_key(&self, alias: String, description: String, tags: Tags) -> Result<KeyInfo, AwsError>;
    /// ListKeys + ListResourceTags: the keys carrying all of `tags` (a key whose alias was never
    /// created because the run died right after CreateKey, or a twin made by an SDK retry of a
    /// CreateKey whose response was lost).
    async fn find_keys_by_tags(&self, tags: Tags) -> Result<Vec<KeyInfo>, AwsError>;
    /// CreateAlias `alias/<alias>` for a key.
    async fn create_alias(&self, alias: String, key_id: String) -> Result<(), AwsError>;
    /// CancelKeyDeletion + EnableKey (a key scheduled for deletion is restored, not replaced).
    async fn restore_key(&self, key_id: String) -> Result<(), AwsError>;
    /// TagResource.
    async fn tag_key(&self, key_id: String, tags: Tags) -> Result<(), AwsError>;
    /// DeleteAlias (unless `alias` is empty) + ScheduleKeyDeletion.
    async fn schedule_key_deletion(&self, alias: String, key_id: String, days: i32) -> Result<(), AwsError>;
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

/// Everything the EKS tier asks of AWS: one trait per service, implemented together by
/// [`SdkEks`](crate::SdkEks) (tests implement them on a fake).
pub trait EksApi: ClusterApi + LogsApi + RolesApi + KeysApi + Ec2Api {}

impl<T: ClusterApi + LogsApi + RolesApi + KeysApi + Ec2Api> EksApi for T {}
