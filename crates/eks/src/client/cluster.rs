//! EKS: clusters, node groups, add-ons and access entries.

use std::collections::{BTreeMap, BTreeSet};

use async_trait::async_trait;
use dify_stack_core::ids::{Arn, ClusterName, KmsKeyArn, RoleArn, SecurityGroupId, SubnetId};
use dify_stack_core::{AwsError, Tags};

use super::Status;

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
    pub cluster_security_group_id: Option<SecurityGroupId>,
    /// Control-plane subnets.
    pub subnet_ids: Vec<SubnetId>,
    /// Additional control-plane security groups.
    pub security_group_ids: Vec<SecurityGroupId>,
    /// Private endpoint on.
    pub endpoint_private: bool,
    /// Public endpoint on.
    pub endpoint_public: bool,
    /// CIDRs allowed on the public endpoint.
    pub public_access_cidrs: Vec<String>,
    /// Enabled control-plane log types.
    pub enabled_logs: BTreeSet<String>,
    /// KMS key ARN for secrets encryption.
    pub secrets_key_arn: Option<KmsKeyArn>,
    /// Authentication mode (`API_AND_CONFIG_MAP`, ...).
    pub authentication_mode: Option<String>,
    /// Cluster role ARN.
    pub role_arn: String,
    /// `upgradePolicy.supportType`: `STANDARD` or `EXTENDED` (`None` when the answer has none).
    pub support_type: Option<String>,
    /// Tags.
    pub tags: Tags,
}

/// One upgrade-readiness finding of EKS cluster insights (ListInsights, category
/// `UPGRADE_READINESS`: e.g. deprecated APIs still in use, kubelet version skew).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Insight {
    /// Its id (for `aws eks describe-insight`).
    pub id: String,
    /// Its name, e.g. "Deprecated APIs removed in Kubernetes v1.35".
    pub name: String,
    /// The Kubernetes version it checks readiness for.
    pub kubernetes_version: String,
    /// `PASSING`, `WARNING`, `ERROR` or `UNKNOWN` (EKS API reference, `InsightStatus`).
    pub status: String,
    /// Why, as EKS says it.
    pub reason: String,
    /// What it checks.
    pub description: String,
}

/// Everything `CreateCluster` needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterCreate {
    /// Name.
    pub name: ClusterName,
    /// Kubernetes version.
    pub version: String,
    /// Cluster role ARN.
    pub role_arn: RoleArn,
    /// Private subnets.
    pub subnet_ids: Vec<SubnetId>,
    /// Public endpoint CIDRs (empty: public endpoint off).
    pub public_access_cidrs: Vec<String>,
    /// Log types to enable.
    pub log_types: Vec<String>,
    /// KMS key ARN for secrets.
    pub key_arn: KmsKeyArn,
    /// `upgradePolicy.supportType`: `STANDARD` or `EXTENDED`.
    pub support_type: String,
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
    pub subnet_ids: Vec<SubnetId>,
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
    pub cluster: ClusterName,
    /// Node group name.
    pub name: String,
    /// Node role ARN.
    pub node_role: RoleArn,
    /// Subnets.
    pub subnet_ids: Vec<SubnetId>,
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

/// What UpdateNodegroupConfig is given: new scaling and the label changes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NodegroupConfigUpdate {
    /// Cluster.
    pub cluster: ClusterName,
    /// Node group name.
    pub name: String,
    /// Minimum and maximum size, when they change, with the desired size only when it must move
    /// into the new range (`None`: left to the autoscaler, not sent).
    pub scaling: Option<(i32, i32, Option<i32>)>,
    /// Labels to add or update.
    pub add_labels: BTreeMap<String, String>,
    /// Label keys to remove.
    pub remove_labels: Vec<String>,
}

/// What UpdateNodegroupVersion is given: a Kubernetes version, or a launch template version.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NodegroupVersionUpdate {
    /// Cluster.
    pub cluster: ClusterName,
    /// Node group name.
    pub name: String,
    /// The Kubernetes version to move to.
    pub version: Option<String>,
    /// Launch template id and version to roll the nodes onto.
    pub launch_template: Option<(String, String)>,
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

/// What DescribeAddonVersions lists for an add-on and a Kubernetes version.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AddonVersions {
    /// The version EKS installs by default on that Kubernetes version.
    pub default: Option<String>,
    /// Every version compatible with that Kubernetes version (the default among them).
    pub compatible: Vec<String>,
}

/// A cluster update as DescribeUpdate shows it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UpdateInfo {
    /// The update's id.
    pub id: String,
    /// `InProgress`, `Failed`, `Cancelled` or `Successful` (EKS API reference, `Update.status`).
    pub status: String,
    /// `VpcConfigUpdate`, `EndpointAccessUpdate`, `LoggingUpdate`, `VersionUpdate`, ...
    pub kind: String,
    /// The update's errors (code: message).
    pub errors: Vec<String>,
}

/// The IAM role an add-on's service account gets through EKS Pod Identity
/// (CreateAddon / UpdateAddon `podIdentityAssociations`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AddonRole {
    /// The add-on's service account, e.g. `ebs-csi-controller-sa`.
    pub service_account: String,
    /// The role (trusting `pods.eks.amazonaws.com`).
    pub role_arn: RoleArn,
}

/// What the EKS tier asks of EKS: clusters, node groups, add-ons and access entries.
#[cfg_attr(any(test, feature = "test-util"), mockall::automock)]
#[async_trait]
pub trait ClusterApi: Send + Sync {
    // --- EKS cluster
    /// DescribeCluster; `None` when it does not exist.
    async fn describe_cluster(&self, name: ClusterName) -> Result<Option<ClusterInfo>, AwsError>;
    /// ListClusters, every page: the names of the region's clusters (for the clusters-per-Region
    /// quota of the capacity preflight). The default body answers `NotImplemented` (clients made
    /// before the preflight counted clusters).
    async fn list_clusters(&self) -> Result<Vec<String>, AwsError> {
        Err(AwsError::new("ListClusters", "NotImplemented", "this EKS client does not implement the call"))
    }
    /// CreateCluster (API_AND_CONFIG_MAP, creator admin bootstrap, private endpoint on).
    async fn create_cluster(&self, create: ClusterCreate) -> Result<ClusterInfo, AwsError>;
    /// UpdateClusterConfig of the subnets and security groups alone (a `VpcConfigUpdate`: EKS
    /// takes one type of update per call). Returns the update's id (`None` when the answer has
    /// none).
    async fn update_cluster_subnets(
        &self,
        name: ClusterName,
        subnet_ids: Vec<SubnetId>,
        security_group_ids: Vec<SecurityGroupId>,
    ) -> Result<Option<String>, AwsError>;
    /// UpdateClusterConfig of the endpoint access alone (an `EndpointAccessUpdate`): private
    /// endpoint on, public endpoint on exactly when `public_access_cidrs` is not empty, limited
    /// to them. Returns the update's id.
    async fn update_cluster_access(
        &self,
        name: ClusterName,
        public_access_cidrs: Vec<String>,
    ) -> Result<Option<String>, AwsError>;
    /// UpdateClusterConfig with the complete `logging` block alone (a `LoggingUpdate`). Returns
    /// the update's id.
    async fn update_cluster_logging(
        &self,
        name: ClusterName,
        enabled: Vec<String>,
        disabled: Vec<String>,
    ) -> Result<Option<String>, AwsError>;
    /// UpdateClusterVersion (one minor version). Returns the update's id.
    async fn update_cluster_version(&self, name: ClusterName, version: String) -> Result<Option<String>, AwsError>;
    /// UpdateClusterConfig of the upgrade policy alone (`upgradePolicy.supportType`, its own
    /// update type). Returns the update's id.
    async fn update_cluster_support(&self, name: ClusterName, support_type: String)
    -> Result<Option<String>, AwsError>;
    /// ListInsights of the cluster's upgrade-readiness findings (category `UPGRADE_READINESS`).
    async fn upgrade_insights(&self, cluster: ClusterName) -> Result<Vec<Insight>, AwsError>;
    /// DescribeUpdate of a cluster update; `None` when EKS does not know it.
    async fn describe_update(&self, cluster: ClusterName, update_id: String) -> Result<Option<UpdateInfo>, AwsError>;
    /// TagResource.
    async fn tag_resource(&self, arn: Arn, tags: Tags) -> Result<(), AwsError>;
    /// DeleteCluster.
    async fn delete_cluster(&self, name: ClusterName) -> Result<(), AwsError>;

    // --- EKS node groups
    /// ListNodegroups.
    async fn list_nodegroups(&self, cluster: ClusterName) -> Result<Vec<String>, AwsError>;
    /// DescribeNodegroup; `None` when it does not exist.
    async fn describe_nodegroup(&self, cluster: ClusterName, name: String) -> Result<Option<NodegroupInfo>, AwsError>;
    /// CreateNodegroup.
    async fn create_nodegroup(&self, create: NodegroupCreate) -> Result<NodegroupInfo, AwsError>;
    /// UpdateNodegroupConfig: scaling and labels.
    async fn update_nodegroup_config(&self, update: NodegroupConfigUpdate) -> Result<(), AwsError>;
    /// UpdateNodegroupVersion: Kubernetes version, or a new launch template version.
    async fn update_nodegroup_version(&self, update: NodegroupVersionUpdate) -> Result<(), AwsError>;
    /// DeleteNodegroup.
    async fn delete_nodegroup(&self, cluster: ClusterName, name: String) -> Result<(), AwsError>;

    // --- EKS add-ons and access
    /// ListAddons.
    async fn list_addons(&self, cluster: ClusterName) -> Result<Vec<String>, AwsError>;
    /// DescribeAddon; `None` when it does not exist.
    async fn describe_addon(&self, cluster: ClusterName, name: String) -> Result<Option<AddonInfo>, AwsError>;
    /// DescribeAddonVersions of an add-on for a Kubernetes version: the default and every
    /// version EKS lists as compatible.
    async fn addon_versions(&self, name: String, kubernetes_version: String) -> Result<AddonVersions, AwsError>;
    /// CreateAddon with `resolveConflicts = OVERWRITE` and, when given, the Pod Identity
    /// association of its service account.
    async fn create_addon(
        &self,
        cluster: ClusterName,
        name: String,
        version: String,
        tags: Tags,
        role: Option<AddonRole>,
    ) -> Result<(), AwsError>;
    /// UpdateAddon with `resolveConflicts = PRESERVE` (values changed from EKS's defaults are
    /// kept); a given role replaces the add-on's Pod Identity associations.
    async fn update_addon(
        &self,
        cluster: ClusterName,
        name: String,
        version: String,
        role: Option<AddonRole>,
    ) -> Result<(), AwsError>;
    /// DeleteAddon.
    async fn delete_addon(&self, cluster: ClusterName, name: String) -> Result<(), AwsError>;
    /// ListAccessEntries: principal ARNs.
    async fn list_access_entries(&self, cluster: ClusterName) -> Result<Vec<String>, AwsError>;
    /// ListAssociatedAccessPolicies: policy ARNs.
    async fn list_access_policies(&self, cluster: ClusterName, principal: Arn) -> Result<Vec<String>, AwsError>;
    /// CreateAccessEntry.
    async fn create_access_entry(&self, cluster: ClusterName, principal: Arn, tags: Tags) -> Result<(), AwsError>;
    /// AssociateAccessPolicy with cluster scope.
    async fn associate_access_policy(
        &self,
        cluster: ClusterName,
        principal: Arn,
        policy_arn: Arn,
    ) -> Result<(), AwsError>;
    /// DeleteAccessEntry.
    async fn delete_access_entry(&self, cluster: ClusterName, principal: Arn) -> Result<(), AwsError>;
}
