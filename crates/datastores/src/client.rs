//! The thin clients of the datastores tier, one trait per service (mocked in tests with
//! mockall). Secret values cross these traits only as [`SecretString`].

use async_trait::async_trait;
use dify_stack_core::ids::{Arn, AvailabilityZone, BucketName, SecretArn, SecurityGroupId, SubnetId, VpcId};
use dify_stack_core::{AwsError, Tags};
use secrecy::SecretString;

mod status;
pub use status::{CacheStatus, RdsStatus};

/// The answer of a client that does not implement an operation added to a trait after the
/// client was written: the traits grow by default methods, so an existing implementation (a
/// simulator, a fake) keeps compiling and refuses only what it never modelled.
fn not_implemented(operation: &'static str) -> AwsError {
    AwsError::new(operation, "NotImplemented", format!("this client does not implement {operation}"))
}

/// A security group with its ingress rules from other groups.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SgInfo {
    /// Id.
    pub id: SecurityGroupId,
    /// Tags.
    pub tags: Tags,
    /// Ingress rules as (protocol, from port, to port, source group id); CIDR rules as
    /// (protocol, from, to, cidr).
    pub ingress: Vec<(String, i32, i32, String)>,
}

/// EC2 security groups.
#[cfg_attr(any(test, feature = "test-util"), mockall::automock)]
#[async_trait]
pub trait SgApi: Send + Sync {
    /// DescribeSecurityGroups by VPC and group name.
    async fn find(&self, vpc_id: VpcId, name: String) -> Result<Option<SgInfo>, AwsError>;
    /// CreateSecurityGroup with tags; returns the id. The default all-outbound egress stays.
    async fn create(
        &self,
        vpc_id: VpcId,
        name: String,
        description: String,
        tags: Tags,
    ) -> Result<SecurityGroupId, AwsError>;
    /// AuthorizeSecurityGroupIngress: TCP `port` from `source` group.
    async fn authorize(&self, id: SecurityGroupId, port: i32, source: SecurityGroupId) -> Result<(), AwsError>;
    /// RevokeSecurityGroupIngress of one rule as listed in [`SgInfo::ingress`].
    async fn revoke(&self, id: SecurityGroupId, rule: (String, i32, i32, String)) -> Result<(), AwsError>;
    /// CreateTags.
    async fn tag(&self, id: SecurityGroupId, tags: Tags) -> Result<(), AwsError>;
    /// DeleteSecurityGroup.
    async fn delete(&self, id: SecurityGroupId) -> Result<(), AwsError>;
}

/// A Secrets Manager secret (metadata only).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SecretMeta {
    /// ARN.
    pub arn: SecretArn,
    /// Name.
    pub name: String,
    /// Scheduled for deletion.
    pub pending_deletion: bool,
    /// Tags.
    pub tags: Tags,
}

/// Secrets Manager.
#[cfg_attr(any(test, feature = "test-util"), mockall::automock)]
#[async_trait]
pub trait SecretsApi: Send + Sync {
    /// DescribeSecret; `None` when absent.
    async fn describe(&self, name: String) -> Result<Option<SecretMeta>, AwsError>;
    /// GetSecretValue (string).
    async fn get_value(&self, arn: SecretArn) -> Result<SecretString, AwsError>;
    /// PutSecretValue: a new current version.
    async fn put_value(&self, arn: SecretArn, value: SecretString) -> Result<(), AwsError>;
    /// CreateSecret with value and tags; returns the ARN.
    async fn create(&self, name: String, value: SecretString, tags: Tags) -> Result<SecretArn, AwsError>;
    /// RestoreSecret (cancels a scheduled deletion).
    async fn restore(&self, arn: SecretArn) -> Result<(), AwsError>;
    /// TagResource.
    async fn tag(&self, arn: SecretArn, tags: Tags) -> Result<(), AwsError>;
    /// DeleteSecret: with a recovery window of `window_days`, or at once when `force`.
    async fn delete(&self, arn: SecretArn, force: bool, window_days: i64) -> Result<(), AwsError>;
}

/// An Aurora cluster.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct DbClusterInfo {
    /// Identifier.
    pub id: String,
    /// ARN.
    pub arn: Arn,
    /// Status.
    pub status: RdsStatus,
    /// Engine.
    pub engine: String,
    /// Engine version.
    pub engine_version: String,
    /// Serverless v2 range (min, max).
    pub acu: Option<(f64, f64)>,
    /// Storage encrypted.
    pub encrypted: bool,
    /// Backup retention days.
    pub backup_retention_days: i32,
    /// Deletion protection.
    pub deletion_protection: bool,
    /// Data API on.
    pub http_endpoint: bool,
    /// Copy tags to snapshots.
    pub copy_tags_to_snapshot: bool,
    /// ARN of the RDS-managed master secret.
    pub master_secret_arn: Option<SecretArn>,
    /// Writer endpoint.
    pub endpoint: Option<String>,
    /// Reader endpoint.
    pub reader_endpoint: Option<String>,
    /// Port.
    pub port: Option<i32>,
    /// Security groups.
    pub security_groups: Vec<SecurityGroupId>,
    /// Member instance identifiers.
    pub members: Vec<String>,
    /// Tags.
    pub tags: Tags,
}

/// What `CreateDBCluster` needs.
#[derive(Debug, Clone, PartialEq)]
pub struct DbClusterCreate {
    /// Identifier.
    pub id: String,
    /// Engine version.
    pub engine_version: String,
    /// ACU range.
    pub acu: (f64, f64),
    /// Subnet group.
    pub subnet_group: String,
    /// Security group.
    pub security_group: SecurityGroupId,
    /// Master user name.
    pub master_username: String,
    /// Backup retention days.
    pub backup_retention_days: i32,
    /// Deletion protection.
    pub deletion_protection: bool,
    /// Data API.
    pub http_endpoint: bool,
    /// Tags.
    pub tags: Tags,
}

/// What `ModifyDBCluster` changes (only the `Some` fields).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct DbClusterModify {
    /// ACU range.
    pub acu: Option<(f64, f64)>,
    /// Backup retention days.
    pub backup_retention_days: Option<i32>,
    /// Deletion protection.
    pub deletion_protection: Option<bool>,
    /// Security groups.
    pub security_groups: Option<Vec<SecurityGroupId>>,
}

/// What `ModifyDBCluster` sends for an engine version change (applied immediately).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DbEngineUpgrade {
    /// `EngineVersion`: the version to run.
    pub engine_version: String,
    /// `AllowMajorVersionUpgrade` (sent only for a major version change).
    pub allow_major_version_upgrade: bool,
    /// `DBClusterParameterGroupName`: a group of the new family, for a major upgrade.
    pub cluster_parameter_group: Option<String>,
    /// `DBInstanceParameterGroupName`: a group of the new family for every instance, for a
    /// major upgrade (RDS takes it only together with `AllowMajorVersionUpgrade`).
    pub instance_parameter_group: Option<String>,
}

/// The parameter groups an Aurora cluster and its instances use.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DbParameterGroups {
    /// The cluster's (`DBClusterParameterGroup`).
    pub cluster: Option<String>,
    /// Each instance's (`DBParameterGroups[0]`), by instance id.
    pub instances: Vec<(String, Option<String>)>,
}

/// A DB instance.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DbInstanceInfo {
    /// Identifier.
    pub id: String,
    /// Status.
    pub status: RdsStatus,
    /// Availability zone.
    pub availability_zone: Option<AvailabilityZone>,
    /// Instance class.
    pub class: String,
    /// Publicly accessible.
    pub public: bool,
    /// Tags.
    pub tags: Tags,
}

/// RDS (and the RDS Data API).
#[cfg_attr(any(test, feature = "test-util"), mockall::automock)]
#[async_trait]
pub trait RdsApi: Send + Sync {
    /// DescribeDBSubnetGroups; the tags of the group when it exists.
    async fn find_subnet_group(&self, name: String) -> Result<Option<Tags>, AwsError>;
    /// CreateDBSubnetGroup.
    async fn create_subnet_group(&self, name: String, subnets: Vec<SubnetId>, tags: Tags) -> Result<(), AwsError>;
    /// DeleteDBSubnetGroup.
    async fn delete_subnet_group(&self, name: String) -> Result<(), AwsError>;
    /// DescribeDBClusters; `None` when absent.
    async fn describe_cluster(&self, id: String) -> Result<Option<DbClusterInfo>, AwsError>;
    /// CreateDBCluster (aurora-postgresql, encrypted, managed master password, copy tags).
    async fn create_cluster(&self, create: DbClusterCreate) -> Result<DbClusterInfo, AwsError>;
    /// ModifyDBCluster, applied immediately.
    async fn modify_cluster(&self, id: String, modify: DbClusterModify) -> Result<(), AwsError>;
    /// AddTagsToResource.
    async fn tag(&self, arn: Arn, tags: Tags) -> Result<(), AwsError>;
    /// EnableHttpEndpoint (Data API for Serverless v2 and provisioned clusters).
    async fn enable_http_endpoint(&self, arn: Arn) -> Result<(), AwsError>;
    /// DeleteDBCluster; with a final snapshot of that name unless `None`.
    async fn delete_cluster(&self, id: String, final_snapshot: Option<String>) -> Result<(), AwsError>;
    /// DescribeDBInstances of a cluster.
    async fn list_instances(&self, cluster: String) -> Result<Vec<DbInstanceInfo>, AwsError>;
    /// CreateDBInstance `db.serverless`, not public, in `az`.
    async fn create_instance(
        &self,
        id: String,
        cluster: String,
        az: AvailabilityZone,
        tags: Tags,
    ) -> Result<(), AwsError>;
    /// DeleteDBInstance.
    async fn delete_instance(&self, id: String) -> Result<(), AwsError>;
    /// DescribeDBClusterSnapshots of a cluster: snapshot identifiers.
    async fn list_snapshots(&self, cluster: String) -> Result<Vec<String>, AwsError>;
    /// ExecuteStatement through the Data API; returns the first column of each row as text.
    async fn execute(
        &self,
        cluster_arn: Arn,
        secret_arn: SecretArn,
        database: String,
        sql: String,
    ) -> Result<Vec<String>, AwsError>;
    /// ModifyDBCluster of the engine version, applied immediately.
    async fn upgrade_cluster(&self, _id: String, _upgrade: DbEngineUpgrade) -> Result<(), AwsError> {
        Err(not_implemented("ModifyDBCluster"))
    }
    /// The parameter groups of the cluster (DescribeDBClusters) and of its instances
    /// (DescribeDBInstances).
    async fn parameter_groups(&self, _cluster: String) -> Result<DbParameterGroups, AwsError> {
        Err(not_implemented("DescribeDBClusters"))
    }
    /// CreateDBClusterSnapshot `id` of `cluster`, with tags.
    async fn create_cluster_snapshot(&self, _cluster: String, _id: String, _tags: Tags) -> Result<(), AwsError> {
        Err(not_implemented("CreateDBClusterSnapshot"))
    }
    /// DescribeDBClusterSnapshots of one snapshot: its status (`creating`, `available`, ...);
    /// `None` when it does not exist.
    async fn cluster_snapshot_status(&self, _id: String) -> Result<Option<String>, AwsError> {
        Err(not_implemented("DescribeDBClusterSnapshots"))
    }
}

/// A replication group.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReplicationGroupInfo {
    /// Identifier.
    pub id: String,
    /// ARN.
    pub arn: Arn,
    /// Status.
    pub status: CacheStatus,
    /// Node type.
    pub node_type: String,
    /// Member clusters.
    pub members: Vec<String>,
    /// Multi-AZ.
    pub multi_az: bool,
    /// Automatic failover.
    pub automatic_failover: bool,
    /// Encryption at rest.
    pub at_rest_encryption: bool,
    /// Encryption in transit.
    pub transit_encryption: bool,
    /// AUTH enabled.
    pub auth_token_enabled: bool,
    /// Snapshot retention days.
    pub snapshot_retention_days: i32,
    /// Primary endpoint address and port.
    pub primary_endpoint: Option<(String, i32)>,
    /// Reader endpoint address.
    pub reader_endpoint: Option<String>,
    /// Tags; `None` while the group is not `available`: ElastiCache refuses
    /// ListTagsForResource then (`InvalidReplicationGroupState`, "Cluster not in available state
    /// to perform tagging operations"; terraform-provider-aws #33859, #30444, #41416).
    pub tags: Option<Tags>,
}

impl ReplicationGroupInfo {
    /// The group is `available` (the only state in which its tags can be read or written).
    pub fn is_available(&self) -> bool {
        self.status == CacheStatus::Available
    }
}

/// What `CreateReplicationGroup` needs.
#[derive(Debug, Clone)]
pub struct ReplicationGroupCreate {
    /// Identifier.
    pub id: String,
    /// Engine version.
    pub engine_version: String,
    /// Node type.
    pub node_type: String,
    /// Node count.
    pub nodes: i32,
    /// Multi-AZ + automatic failover.
    pub multi_az: bool,
    /// Snapshot retention days.
    pub snapshot_retention_days: i32,
    /// Subnet group.
    pub subnet_group: String,
    /// Security group.
    pub security_group: SecurityGroupId,
    /// AUTH token.
    pub auth_token: SecretString,
    /// Tags.
    pub tags: Tags,
}

/// The engine a replication group's node runs (DescribeCacheClusters: DescribeReplicationGroups
/// does not give the version).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CacheEngine {
    /// `EngineVersion` as ElastiCache reports it, with its patch level (`7.1.0`).
    pub version: String,
    /// `CacheParameterGroup.CacheParameterGroupName` (`default.redis7` unless someone set one).
    pub parameter_group: Option<String>,
}

/// ElastiCache.
#[cfg_attr(any(test, feature = "test-util"), mockall::automock)]
#[async_trait]
pub trait ElastiCacheApi: Send + Sync {
    /// DescribeCacheSubnetGroups + tags; `None` when absent.
    async fn find_subnet_group(&self, name: String) -> Result<Option<Tags>, AwsError>;
    /// CreateCacheSubnetGroup.
    async fn create_subnet_group(&self, name: String, subnets: Vec<SubnetId>, tags: Tags) -> Result<(), AwsError>;
    /// DeleteCacheSubnetGroup.
    async fn delete_subnet_group(&self, name: String) -> Result<(), AwsError>;
    /// DescribeReplicationGroups + ListTagsForResource; `None` when absent.
    async fn describe(&self, id: String) -> Result<Option<ReplicationGroupInfo>, AwsError>;
    /// CreateReplicationGroup (cluster mode off, encryption at rest and in transit, AUTH).
    async fn create(&self, create: ReplicationGroupCreate) -> Result<(), AwsError>;
    /// ModifyReplicationGroup: node type and snapshot retention, applied immediately.
    async fn modify(
        &self,
        id: String,
        node_type: Option<String>,
        snapshot_retention_days: Option<i32>,
    ) -> Result<(), AwsError>;
    /// IncreaseReplicaCount / DecreaseReplicaCount to `replicas`.
    async fn set_replicas(&self, id: String, replicas: i32, increase: bool) -> Result<(), AwsError>;
    /// AddTagsToResource.
    async fn tag(&self, arn: Arn, tags: Tags) -> Result<(), AwsError>;
    /// DeleteReplicationGroup.
    async fn delete(&self, id: String) -> Result<(), AwsError>;
    /// DescribeCacheClusters of one member cluster: the engine it runs. `None` when unknown: a
    /// client that cannot read it (the default) plans no engine change.
    async fn engine(&self, _cluster: String) -> Result<Option<CacheEngine>, AwsError> {
        Ok(None)
    }
    /// ModifyReplicationGroup `EngineVersion` (with `CacheParameterGroupName` when the family
    /// changes), applied immediately.
    async fn upgrade_engine(
        &self,
        _id: String,
        _engine_version: String,
        _parameter_group: Option<String>,
    ) -> Result<(), AwsError> {
        Err(not_implemented("ModifyReplicationGroup"))
    }
    /// CreateSnapshot `name` of the replication group `group`, with tags.
    async fn create_snapshot(&self, _group: String, _name: String, _tags: Tags) -> Result<(), AwsError> {
        Err(not_implemented("CreateSnapshot"))
    }
    /// DescribeSnapshots of one snapshot: its status (`creating`, `available`, ...); `None` when
    /// it does not exist.
    async fn snapshot_status(&self, _name: String) -> Result<Option<String>, AwsError> {
        Err(not_implemented("DescribeSnapshots"))
    }
}

/// An OpenSearch domain.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DomainInfo {
    /// Name.
    pub name: String,
    /// ARN.
    pub arn: Arn,
    /// Processing a change (`Processing`) or an engine upgrade (`UpgradeProcessing`): either
    /// way it takes no other change until done.
    pub processing: bool,
    /// Being deleted.
    pub deleted: bool,
    /// Engine version.
    pub engine_version: String,
    /// Instance type.
    pub instance_type: String,
    /// Instance count.
    pub instance_count: i32,
    /// Zone awareness and AZ count.
    pub zone_awareness: Option<i32>,
    /// EBS volume type and size.
    pub volume: Option<(String, i32)>,
    /// VPC subnets.
    pub subnet_ids: Vec<SubnetId>,
    /// VPC security groups.
    pub security_group_ids: Vec<SecurityGroupId>,
    /// VPC endpoint.
    pub vpc_endpoint: Option<String>,
    /// The public endpoint, which a domain inside a VPC does not have (DescribeDomain
    /// `Endpoint`; `Endpoints["vpc"]` for a VPC domain).
    pub public_endpoint: Option<String>,
    /// Encryption at rest.
    pub at_rest_encryption: bool,
    /// Node-to-node encryption.
    pub node_to_node: bool,
    /// HTTPS enforced.
    pub enforce_https: bool,
    /// TLS policy.
    pub tls_policy: Option<String>,
    /// Fine-grained access control with the internal user database.
    pub fine_grained: bool,
    /// Access policy JSON.
    pub access_policy: Option<String>,
    /// Tags.
    pub tags: Tags,
}

/// What `CreateDomain` and `UpdateDomainConfig` send.
#[derive(Debug, Clone)]
pub struct DomainConfig {
    /// Name.
    pub name: String,
    /// Engine version.
    pub engine_version: String,
    /// Instance type.
    pub instance_type: String,
    /// Instance count.
    pub instance_count: i32,
    /// Zone awareness AZ count.
    pub zone_awareness: Option<i32>,
    /// gp3 volume GiB.
    pub volume_gib: i32,
    /// Subnets.
    pub subnet_ids: Vec<SubnetId>,
    /// Security group.
    pub security_group_id: SecurityGroupId,
    /// Access policy JSON.
    pub access_policy: String,
    /// Master user (create only).
    pub master: Option<(String, SecretString)>,
    /// Tags (create only).
    pub tags: Tags,
}

/// The last upgrade of a domain as GetUpgradeStatus gives it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UpgradeStatusInfo {
    /// `UpgradeStep`: `PRE_UPGRADE_CHECK`, `SNAPSHOT` or `UPGRADE`.
    pub step: String,
    /// `StepStatus`: `IN_PROGRESS`, `SUCCEEDED`, `SUCCEEDED_WITH_ISSUES` or `FAILED`.
    pub status: String,
    /// `UpgradeName`.
    pub name: Option<String>,
}

/// OpenSearch.
#[cfg_attr(any(test, feature = "test-util"), mockall::automock)]
#[async_trait]
pub trait OpenSearchApi: Send + Sync {
    /// DescribeDomain + ListTags; `None` when absent.
    async fn describe(&self, name: String) -> Result<Option<DomainInfo>, AwsError>;
    /// CreateDomain with encryption, HTTPS/TLS 1.2, fine-grained access control.
    async fn create(&self, config: DomainConfig) -> Result<DomainInfo, AwsError>;
    /// UpdateDomainConfig (cluster, EBS, VPC, access policy).
    async fn update(&self, config: DomainConfig) -> Result<(), AwsError>;
    /// AddTags.
    async fn tag(&self, arn: Arn, tags: Tags) -> Result<(), AwsError>;
    /// DeleteDomain.
    async fn delete(&self, name: String) -> Result<(), AwsError>;
    /// IAM GetRole of the account's OpenSearch service-linked role: does it exist?
    async fn service_linked_role_exists(&self) -> Result<bool, AwsError>;
    /// IAM CreateServiceLinkedRole for `opensearchservice.amazonaws.com`.
    async fn create_service_linked_role(&self) -> Result<(), AwsError>;
    /// GetCompatibleVersions of the domain: (source version, versions it can upgrade to).
    async fn compatible_versions(&self, _name: String) -> Result<Vec<(String, Vec<String>)>, AwsError> {
        Err(not_implemented("GetCompatibleVersions"))
    }
    /// UpgradeDomain to `target` (not a check only).
    async fn upgrade_domain(&self, _name: String, _target: String) -> Result<(), AwsError> {
        Err(not_implemented("UpgradeDomain"))
    }
    /// GetUpgradeStatus of the domain; `None` when it has never been upgraded.
    async fn upgrade_status(&self, _name: String) -> Result<Option<UpgradeStatusInfo>, AwsError> {
        Err(not_implemented("GetUpgradeStatus"))
    }
}

/// The settings of a bucket as read back.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BucketInfo {
    /// Tags.
    pub tags: Tags,
    /// Versioning enabled.
    pub versioning: bool,
    /// Default encryption: `AES256` or `aws:kms` with key.
    pub encryption: Option<(String, Option<String>)>,
    /// The four public-access-block flags all on.
    pub public_access_blocked: bool,
    /// Bucket policy JSON.
    pub policy: Option<String>,
    /// Days after which incomplete multipart uploads are aborted, by our lifecycle rule.
    pub abort_multipart_days: Option<i32>,
}

/// An object version or delete marker: (key, version id).
pub type ObjectVersion = (String, String);
/// One page of versions and the marker of the next page.
pub type VersionPage = (Vec<ObjectVersion>, Option<ObjectVersion>);

/// S3.
#[cfg_attr(any(test, feature = "test-util"), mockall::automock)]
#[async_trait]
pub trait S3Api: Send + Sync {
    /// HeadBucket + the settings; `None` when absent (or owned by another account).
    async fn describe(&self, bucket: BucketName) -> Result<Option<BucketInfo>, AwsError>;
    /// CreateBucket in the client's region.
    async fn create(&self, bucket: BucketName, region: String) -> Result<(), AwsError>;
    /// PutBucketTagging.
    async fn put_tags(&self, bucket: BucketName, tags: Tags) -> Result<(), AwsError>;
    /// PutBucketVersioning Enabled.
    async fn enable_versioning(&self, bucket: BucketName) -> Result<(), AwsError>;
    /// PutBucketEncryption (SSE-S3, or SSE-KMS with the key).
    async fn put_encryption(&self, bucket: BucketName, kms_key_id: Option<String>) -> Result<(), AwsError>;
    /// PutPublicAccessBlock with all four flags.
    async fn block_public_access(&self, bucket: BucketName) -> Result<(), AwsError>;
    /// PutBucketPolicy.
    async fn put_policy(&self, bucket: BucketName, policy: String) -> Result<(), AwsError>;
    /// PutBucketLifecycleConfiguration: abort incomplete multipart uploads after `days`.
    async fn put_lifecycle(&self, bucket: BucketName, days: i32) -> Result<(), AwsError>;
    /// One page of ListObjectVersions: (key, version id) of versions and delete markers, and
    /// whether more pages follow. `marker` continues from the previous page.
    async fn list_versions(
        &self,
        bucket: BucketName,
        marker: Option<(String, String)>,
    ) -> Result<VersionPage, AwsError>;
    /// DeleteObjects of up to 1000 versions; returns the keys that failed.
    async fn delete_versions(
        &self,
        bucket: BucketName,
        versions: Vec<(String, String)>,
    ) -> Result<Vec<String>, AwsError>;
    /// DeleteBucket.
    async fn delete(&self, bucket: BucketName) -> Result<(), AwsError>;
}
