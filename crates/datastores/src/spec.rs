//! The desired state of the datastores tier.

use dify_stack_core::ids::{AvailabilityZone, SecurityGroupId, SubnetId, VpcId};
use dify_stack_core::{Context, Environment, Partition, SpecErrors};
use serde::{Deserialize, Serialize};

/// The databases Dify EE uses, created in the Aurora cluster.
pub const DATABASES: [&str; 4] = ["dify", "dify_plugin_daemon", "enterprise", "audit"];

/// A private subnet with its availability zone (from the network tier).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PlacedSubnet {
    /// Subnet id.
    pub id: SubnetId,
    /// Its availability zone.
    pub availability_zone: AvailabilityZone,
}

/// What finds a store with a security group of its own (Redis, OpenSearch) for a destroy: the
/// context names the store, its subnet group and secret; the group is found in the VPC.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct StoreSelector {
    /// The VPC the store's security group is in; `None` when the VPC is gone (and the group
    /// with it): the group is not looked up.
    pub vpc_id: Option<VpcId>,
}

/// What finds Aurora for a destroy: as [`StoreSelector`], and whether the cluster goes with a
/// final snapshot.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct AuroraSelector {
    /// The VPC the cluster's security group is in; `None` when the VPC is gone: the group is
    /// not looked up.
    pub vpc_id: Option<VpcId>,
    /// Take a final snapshot when deleting the cluster (`aurora.final_snapshot`), unless the
    /// data policy deletes data; without one, the data policy must allow the loss.
    pub final_snapshot: bool,
}

/// What finds the whole datastores tier for a destroy (the bucket and the app secret need
/// nothing beyond the context).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct DatastoresSelector {
    /// The VPC of the stores' security groups; `None` when the VPC is gone.
    pub vpc_id: Option<VpcId>,
    /// Aurora's final snapshot (`aurora.final_snapshot`).
    pub final_snapshot: bool,
}

impl DatastoresSelector {
    /// The selector of `spec`.
    pub fn of(spec: &DatastoresSpec) -> Self {
        DatastoresSelector { vpc_id: Some(spec.vpc_id.clone()), final_snapshot: spec.aurora.final_snapshot }
    }

    /// Aurora's part.
    pub fn aurora(&self) -> AuroraSelector {
        AuroraSelector { vpc_id: self.vpc_id.clone(), final_snapshot: self.final_snapshot }
    }

    /// Redis's or OpenSearch's part.
    pub fn store(&self) -> StoreSelector {
        StoreSelector { vpc_id: self.vpc_id.clone() }
    }
}

/// The datastores tier.
///
/// The user's part is [`DatastoresSettings`] (the `datastores` section of the stack's
/// configuration file, flattened here); the rest is what the network and the EKS tier provide.
/// The spec dereferences to its settings (`spec.aurora` is `spec.settings.aurora`), and
/// [`validate`](DatastoresSpec::validate) reports the settings' violations at their own paths
/// (`aurora.min_acu`, `redis.nodes`, ...).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DatastoresSpec {
    /// Aurora, Redis, OpenSearch and the bucket as the user chose them.
    #[serde(flatten)]
    pub settings: DatastoresSettings,
    /// The VPC (network tier).
    pub vpc_id: VpcId,
    /// Private subnets, one per AZ (network tier).
    pub subnets: Vec<PlacedSubnet>,
    /// The only security groups admitted to the stores: the EKS cluster and node groups.
    pub source_security_groups: Vec<SecurityGroupId>,
    /// The operator's deliberate permission to run a prod Aurora cluster without deletion
    /// protection (the stack configuration's top-level `allow_unprotected_prod`). Without it,
    /// [`validate`](DatastoresSpec::validate) refuses `aurora.deletion_protection = false` in
    /// prod. The one place this permission is checked.
    #[serde(default, skip_serializing_if = "is_false")]
    pub allow_unprotected_prod: bool,
}

/// The datastores tier's settings, as the stack's configuration file gives them (its
/// `datastores` section): everything of [`DatastoresSpec`] but what the network and the EKS
/// tier provide.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DatastoresSettings {
    /// Aurora Serverless v2 PostgreSQL.
    pub aurora: AuroraSpec,
    /// ElastiCache Redis.
    pub redis: RedisSpec,
    /// OpenSearch.
    pub opensearch: OpenSearchSpec,
    /// S3 storage bucket.
    #[serde(default)]
    pub bucket: BucketSpec,
}

impl DatastoresSettings {
    /// The profile's stores (STACK.md): Aurora, Redis and OpenSearch for the environment, the
    /// default bucket.
    pub fn for_environment(environment: Environment) -> DatastoresSettings {
        DatastoresSettings {
            aurora: AuroraSpec::for_environment(environment),
            redis: RedisSpec::for_environment(environment),
            opensearch: OpenSearchSpec::for_environment(environment),
            bucket: BucketSpec::default(),
        }
    }
}

impl std::ops::Deref for DatastoresSpec {
    type Target = DatastoresSettings;
    fn deref(&self) -> &DatastoresSettings {
        &self.settings
    }
}

impl std::ops::DerefMut for DatastoresSpec {
    fn deref_mut(&mut self) -> &mut DatastoresSettings {
        &mut self.settings
    }
}

/// Aurora Serverless v2 PostgreSQL.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuroraSpec {
    /// `aurora-postgresql` engine version: the least version wanted within its major (a later
    /// minor AWS applied in the maintenance window is no drift). A later version is an in-place
    /// upgrade; a new major needs `allow_major_version_upgrade`.
    pub engine_version: String,
    /// Minimum capacity in ACU (0, or 0.5..=256 in 0.5 steps).
    pub min_acu: f64,
    /// Maximum capacity in ACU (1..=256 in 0.5 steps, >= min).
    pub max_acu: f64,
    /// Number of `db.serverless` instances (writer + readers), spread over the AZs.
    pub instances: u32,
    /// Automated backup retention in days (1..=35).
    pub backup_retention_days: i32,
    /// Deletion protection.
    pub deletion_protection: bool,
    /// Take a final snapshot `<stack>-final-<timestamp>` on destroy.
    pub final_snapshot: bool,
    /// Master user name (the password is managed by RDS in Secrets Manager).
    #[serde(default = "default_master")]
    pub master_username: String,
    /// Databases to create.
    #[serde(default = "default_databases")]
    pub databases: Vec<String>,
    /// The application role Dify logs in as: it owns the databases, and its password lives in
    /// `<stack>/aurora-app` (the master secret rotates every 7 days and is not handed to Dify).
    #[serde(default = "default_app_user")]
    pub app_username: String,
    /// Enable the RDS Data API (where the region has it) and create the databases through it.
    #[serde(default = "yes")]
    pub data_api: bool,
    /// Permit a major engine upgrade (`engine_version` 16.x -> 17.x): without it such a change
    /// is refused before any write. With it, apply runs `ModifyDBCluster` with
    /// `AllowMajorVersionUpgrade` and the new family's default parameter groups (in prod after a
    /// named snapshot). A major upgrade is not reversible and may need application changes
    /// (Aurora user guide, "Performing a major version upgrade"): test it on a copy first. A
    /// minor upgrade (17.5 -> 17.6) needs no permission. Off by default; shown in the resolved
    /// configuration only when on.
    #[serde(default, skip_serializing_if = "is_false")]
    pub allow_major_version_upgrade: bool,
}

/// ElastiCache Redis replication group, cluster mode off.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RedisSpec {
    /// Engine version.
    pub engine_version: String,
    /// Node type.
    pub node_type: String,
    /// Nodes: one primary plus replicas.
    pub nodes: i32,
    /// Multi-AZ with automatic failover (needs >= 2 nodes).
    pub multi_az: bool,
    /// Snapshot retention in days (0: none).
    pub snapshot_retention_days: i32,
}

/// OpenSearch domain.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OpenSearchSpec {
    /// Engine version, e.g. `OpenSearch_2.19`.
    pub engine_version: String,
    /// Data node instance type.
    pub instance_type: String,
    /// Data node count.
    pub instance_count: i32,
    /// Zone awareness across `instance_count` AZs (2 or 3).
    pub zone_awareness: bool,
    /// gp3 EBS volume per node in GiB.
    pub volume_gib: i32,
    /// Internal master user name (password generated into Secrets Manager).
    #[serde(default = "default_os_master")]
    pub master_user: String,
}

/// The storage bucket.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BucketSpec {
    /// SSE-KMS with this key id or ARN; SSE-S3 when absent.
    #[serde(default)]
    pub kms_key_id: Option<String>,
}

fn default_master() -> String {
    "dify_admin".to_owned()
}
fn default_app_user() -> String {
    "dify_app".to_owned()
}
fn default_os_master() -> String {
    "dify-admin".to_owned()
}
fn default_databases() -> Vec<String> {
    DATABASES.iter().map(|d| (*d).to_owned()).collect()
}
fn yes() -> bool {
    true
}
fn is_false(b: &bool) -> bool {
    !*b
}

impl AuroraSpec {
    /// test: 0.5-4 ACU, 1 instance, 1-day backups; prod: 1-8 ACU, 2 instances, 7 days,
    /// deletion protection and a final snapshot.
    pub fn for_environment(environment: Environment) -> AuroraSpec {
        let prod = environment == Environment::Prod;
        AuroraSpec {
            engine_version: "17.5".to_owned(),
            min_acu: if prod { 1.0 } else { 0.5 },
            max_acu: if prod { 8.0 } else { 4.0 },
            instances: if prod { 2 } else { 1 },
            backup_retention_days: if prod { 7 } else { 1 },
            deletion_protection: prod,
            final_snapshot: prod,
            master_username: default_master(),
            databases: default_databases(),
            app_username: default_app_user(),
            data_api: true,
            allow_major_version_upgrade: false,
        }
    }
}

impl RedisSpec {
    /// test: 1 x cache.t4g.micro; prod: 2 x cache.t4g.small, Multi-AZ, 3-day snapshots.
    pub fn for_environment(environment: Environment) -> RedisSpec {
        let prod = environment == Environment::Prod;
        RedisSpec {
            engine_version: "7.1".to_owned(),
            node_type: if prod { "cache.t4g.small" } else { "cache.t4g.micro" }.to_owned(),
            nodes: if prod { 2 } else { 1 },
            multi_az: prod,
            snapshot_retention_days: if prod { 3 } else { 0 },
        }
    }
}

impl OpenSearchSpec {
    /// test: 1 x m6g.large.search; prod: 3 x m6g.4xlarge.search over 3 AZs. gp3 100 GiB.
    pub fn for_environment(environment: Environment) -> OpenSearchSpec {
        let prod = environment == Environment::Prod;
        OpenSearchSpec {
            engine_version: "OpenSearch_2.19".to_owned(),
            instance_type: if prod { "m6g.4xlarge.search" } else { "m6g.large.search" }.to_owned(),
            instance_count: if prod { 3 } else { 1 },
            zone_awareness: prod,
            volume_gib: 100,
            master_user: default_os_master(),
        }
    }

    /// The AZs (subnets) the domain uses: one per node up to 3 with zone awareness, else one.
    pub fn az_count(&self) -> usize {
        if self.zone_awareness { self.instance_count.clamp(2, 3) as usize } else { 1 }
    }
}

impl DatastoresSpec {
    /// The profile's datastores on the given network, admitting `source_security_groups`.
    pub fn for_environment(
        environment: Environment,
        vpc_id: VpcId,
        subnets: Vec<PlacedSubnet>,
        source_security_groups: Vec<SecurityGroupId>,
    ) -> DatastoresSpec {
        DatastoresSpec {
            settings: DatastoresSettings::for_environment(environment),
            vpc_id,
            subnets,
            source_security_groups,
            allow_unprotected_prod: false,
        }
    }

    /// Checks the spec without I/O; every violation at once.
    pub fn validate(&self, ctx: &Context) -> Result<(), SpecErrors> {
        let mut errs = SpecErrors::new();
        let azs: std::collections::BTreeSet<&str> = self.subnets.iter().map(|s| s.availability_zone.as_str()).collect();
        if self.subnets.len() < 2 || azs.len() < 2 {
            errs.push(
                "subnets",
                format!(
                    "the stores need private subnets in at least 2 AZs, got {} in {} AZs",
                    self.subnets.len(),
                    azs.len()
                ),
                "pass the network tier's private subnets",
            );
        }
        if self.source_security_groups.is_empty() {
            errs.push(
                "source_security_groups",
                "no security group is admitted, so nothing could reach the stores",
                "pass the EKS tier's workload security groups",
            );
        }
        for e in crate::names::check(ctx, self.aurora.instances as usize) {
            errs.push("stack", e.to_string(), "choose a shorter stack name");
        }
        let a = &self.aurora;
        let acu_ok = |v: f64| v == 0.0 || ((0.5..=256.0).contains(&v) && (v * 2.0).fract() == 0.0);
        if !acu_ok(a.min_acu) {
            errs.push(
                "aurora.min_acu",
                format!("{} ACU is not a valid capacity", a.min_acu),
                "0, or 0.5 to 256 in steps of 0.5",
            );
        }
        if !acu_ok(a.max_acu) || a.max_acu < 1.0 {
            errs.push(
                "aurora.max_acu",
                format!("{} ACU is not a valid maximum", a.max_acu),
                "1 to 256 in steps of 0.5",
            );
        }
        if a.min_acu > a.max_acu {
            errs.push(
                "aurora.min_acu",
                format!("min {} > max {}", a.min_acu, a.max_acu),
                "min_acu must not exceed max_acu",
            );
        }
        if !(1..=15).contains(&a.instances) {
            errs.push("aurora.instances", format!("{} instances", a.instances), "1 writer plus up to 14 readers");
        }
        if !(1..=35).contains(&a.backup_retention_days) {
            errs.push("aurora.backup_retention_days", format!("{} days", a.backup_retention_days), "1 to 35 days");
        }
        if !a.engine_version.split('.').all(|p| p.parse::<u32>().is_ok()) {
            errs.push("aurora.engine_version", format!("{:?} is not a version", a.engine_version), "e.g. 17.5");
        }
        for (i, db) in a.databases.iter().enumerate() {
            let ok = !db.is_empty()
                && db.len() <= 63
                && db.starts_with(|c: char| c.is_ascii_lowercase())
                && db.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
            if !ok {
                errs.push(
                    format!("aurora.databases[{i}]"),
                    format!("{db:?} is not a safe PostgreSQL database name"),
                    "lowercase letters, digits and _; starting with a letter; at most 63 characters",
                );
            }
        }
        if !a.app_username.starts_with(|c: char| c.is_ascii_lowercase())
            || !a.app_username.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
            || a.app_username.len() > 63
            || a.app_username == a.master_username
            || a.app_username.starts_with("pg_")
            || a.app_username.starts_with("rds")
        {
            errs.push(
                "aurora.app_username",
                format!("{:?} is not allowed for the application role", a.app_username),
                "lowercase letters, digits and _, not the master user, not pg_* or rds*; e.g. dify_app",
            );
        }
        if !a.master_username.starts_with(|c: char| c.is_ascii_alphabetic())
            || !a.master_username.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
            || a.master_username.len() > 63
            || a.master_username == "postgres"
        {
            errs.push("aurora.master_username", format!("{:?} is not allowed", a.master_username), "e.g. dify_admin");
        }
        if let Some(k) = &self.bucket.kms_key_id
            && (k.contains("alias/") || k.is_empty())
        {
            errs.push(
                "bucket.kms_key_id",
                format!("{k:?} is not a key id or key ARN"),
                "give the key ARN or key id (an alias cannot be used in the IAM policies of the S3 roles)",
            );
        }
        let r = &self.redis;
        if !(1..=6).contains(&r.nodes) {
            errs.push("redis.nodes", format!("{} nodes", r.nodes), "1 primary plus up to 5 replicas");
        }
        if r.multi_az && r.nodes < 2 {
            errs.push(
                "redis.multi_az",
                "Multi-AZ needs at least 2 nodes (a replica to fail over to)",
                "set redis.nodes = 2 or multi_az = false",
            );
        }
        if !r.node_type.starts_with("cache.") {
            errs.push("redis.node_type", format!("{:?} is not a cache node type", r.node_type), "e.g. cache.t4g.micro");
        }
        if !(0..=35).contains(&r.snapshot_retention_days) {
            errs.push("redis.snapshot_retention_days", format!("{} days", r.snapshot_retention_days), "0 to 35 days");
        }
        if r.snapshot_retention_days > 0 && r.node_type.starts_with("cache.t1.") {
            errs.push("redis.snapshot_retention_days", "t1 nodes cannot keep snapshots", "use a t4g node type");
        }
        let o = &self.opensearch;
        if !o.instance_type.ends_with(".search") {
            errs.push(
                "opensearch.instance_type",
                format!("{:?} is not an OpenSearch instance type", o.instance_type),
                "e.g. m6g.large.search",
            );
        }
        if o.instance_count < 1 {
            errs.push("opensearch.instance_count", "at least one data node is needed", "1 for test, 3 for prod");
        }
        if o.zone_awareness {
            let want = o.az_count();
            if o.instance_count < 2 {
                errs.push(
                    "opensearch.zone_awareness",
                    "zone awareness needs at least 2 data nodes",
                    "set instance_count >= 2 or zone_awareness = false",
                );
            } else if o.instance_count % want as i32 != 0 {
                errs.push(
                    "opensearch.instance_count",
                    format!("{} nodes cannot spread evenly over {want} AZs", o.instance_count),
                    "use a multiple of the AZ count",
                );
            }
            if azs.len() < want {
                errs.push(
                    "opensearch.zone_awareness",
                    format!(
                        "{} zone-aware nodes need {want} availability zones but the network has {}",
                        o.instance_count,
                        azs.len()
                    ),
                    format!(
                        "provision the network with {want} AZs (network.az_count = {want}) or use {} nodes",
                        azs.len() * (o.instance_count as usize / want).max(1)
                    ),
                );
            }
        }
        if !(10..=16384).contains(&o.volume_gib) {
            errs.push("opensearch.volume_gib", format!("{} GiB", o.volume_gib), "10 to 16384 GiB");
        }
        if !o.engine_version.starts_with("OpenSearch_") {
            errs.push("opensearch.engine_version", format!("{:?}", o.engine_version), "e.g. OpenSearch_2.19");
        }
        // Prod keeps deletion protection unless the operator lifts it deliberately; without a
        // final snapshot either, one destroy would lose the database.
        if ctx.environment() == Environment::Prod && !a.deletion_protection && !self.allow_unprotected_prod {
            errs.push(
                "aurora.deletion_protection",
                if a.final_snapshot {
                    "prod databases keep deletion protection on"
                } else {
                    "a prod database without deletion protection and without a final snapshot can be lost by one destroy"
                },
                "set deletion_protection = true, or allow_unprotected_prod = true to turn it off deliberately",
            );
        }
        errs.into_result()
    }
}

/// Commercial regions where the RDS Data API is not offered for Aurora PostgreSQL Serverless v2
/// ("Supported Regions and Aurora DB engines for RDS Data API", Aurora user guide, read
/// 2026-11: Asia Pacific (Hyderabad), (Melbourne) and (New Zealand) say "Not available").
/// Regions missing here but refused at run time fall back the same way (see
/// `AuroraProvisioner`): the output lists the statements to run.
pub const DATA_API_UNAVAILABLE: &[&str] = &["ap-south-2", "ap-southeast-4", "ap-southeast-6"];

/// Whether the RDS Data API exists in a region: never in the China partition, not in the
/// commercial regions of [`DATA_API_UNAVAILABLE`].
pub fn data_api_available(region: &str) -> bool {
    Partition::of_region(region).is_some_and(|p| p != Partition::AwsCn) && !DATA_API_UNAVAILABLE.contains(&region)
}
