//! The datastores tier's in-memory fake of its EC2 (security groups), Secrets Manager, RDS,
//! ElastiCache, OpenSearch and S3 calls, timed by core's simulation ([`dify_stack_core::sim`]).
//! The Aurora cluster and instances, the replication group and the domain are pending until
//! their sampled durations have passed; an instance is not available before its cluster. The
//! tier's own tests and the simulated-time benchmark (the whole stack) run the real provisioners
//! over it. It models apply and plan; the calls of a change, a repair or a destroy fail naming
//! themselves (`NotModelled`).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use dify_stack_core::ids::{Arn, AvailabilityZone, BucketName, SecretArn, SecurityGroupId, SubnetId, VpcId};
use dify_stack_core::sim::{Sim, ready, unmodelled};
use dify_stack_core::{AwsError, Tags};
use secrecy::SecretString;
use tokio::time::Instant;

use crate::client::*;

#[derive(Debug, Default)]
struct State {
    sgs: Vec<(VpcId, String, SgInfo)>,
    secrets: BTreeMap<String, (SecretMeta, SecretString)>,
    db_subnet_groups: BTreeMap<String, Tags>,
    cluster: Option<(DbClusterInfo, Instant)>,
    instances: Vec<(DbInstanceInfo, Instant)>,
    databases: Vec<String>,
    /// Database roles made with CREATE ROLE.
    roles: Vec<String>,
    cache_subnet_groups: BTreeMap<String, Tags>,
    group: Option<(ReplicationGroupInfo, Instant)>,
    domain: Option<(DomainInfo, Instant)>,
    linked_role: bool,
    buckets: BTreeMap<BucketName, BucketInfo>,
}

/// The fake.
#[derive(Debug)]
pub struct FakeDatastores {
    sim: Arc<Sim>,
    redis_kind: &'static str,
    opensearch_kind: &'static str,
    state: Mutex<State>,
}

impl FakeDatastores {
    /// An empty account; Redis takes `redis_kind`, OpenSearch `opensearch_kind`.
    pub fn new(sim: Arc<Sim>, redis_kind: &'static str, opensearch_kind: &'static str) -> FakeDatastores {
        FakeDatastores { sim, redis_kind, opensearch_kind, state: Mutex::new(State::default()) }
    }
}

fn rds_status(at: Instant) -> RdsStatus {
    if ready(at) { RdsStatus::Available } else { RdsStatus::Creating }
}

#[async_trait]
impl SgApi for FakeDatastores {
    async fn find(&self, vpc_id: VpcId, name: String) -> Result<Option<SgInfo>, AwsError> {
        self.sim.read().await;
        let s = self.state.lock().unwrap();
        Ok(s.sgs.iter().find(|(v, n, _)| *v == vpc_id && *n == name).map(|(_, _, g)| g.clone()))
    }
    async fn create(
        &self,
        vpc_id: VpcId,
        name: String,
        _description: String,
        tags: Tags,
    ) -> Result<SecurityGroupId, AwsError> {
        self.sim.write().await;
        let id = SecurityGroupId::new(self.sim.id("sg"));
        self.state.lock().unwrap().sgs.push((vpc_id, name, SgInfo { id: id.clone(), tags, ingress: Vec::new() }));
        Ok(id)
    }
    async fn authorize(&self, id: SecurityGroupId, port: i32, source: SecurityGroupId) -> Result<(), AwsError> {
        self.sim.write().await;
        let mut s = self.state.lock().unwrap();
        if let Some((_, _, g)) = s.sgs.iter_mut().find(|(_, _, g)| g.id == id) {
            g.ingress.push(("tcp".to_owned(), port, port, source.into_inner()));
        }
        Ok(())
    }
    async fn revoke(&self, _: SecurityGroupId, _: (String, i32, i32, String)) -> Result<(), AwsError> {
        unmodelled("RevokeSecurityGroupIngress")
    }
    async fn tag(&self, _: SecurityGroupId, _: Tags) -> Result<(), AwsError> {
        self.sim.write().await;
        Ok(())
    }
    async fn delete(&self, _: SecurityGroupId) -> Result<(), AwsError> {
        unmodelled("DeleteSecurityGroup")
    }
}

#[async_trait]
impl SecretsApi for FakeDatastores {
    async fn describe(&self, name: String) -> Result<Option<SecretMeta>, AwsError> {
        self.sim.read().await;
        Ok(self.state.lock().unwrap().secrets.get(&name).map(|(m, _)| m.clone()))
    }
    async fn get_value(&self, arn: SecretArn) -> Result<SecretString, AwsError> {
        self.sim.read().await;
        let s = self.state.lock().unwrap();
        s.secrets
            .values()
            .find(|(m, _)| m.arn == arn)
            .map(|(_, v)| v.clone())
            .ok_or_else(|| AwsError::new("GetSecretValue", "ResourceNotFoundException", arn.to_string()))
    }
    async fn put_value(&self, arn: SecretArn, value: SecretString) -> Result<(), AwsError> {
        self.sim.write().await;
        let mut s = self.state.lock().unwrap();
        if let Some((_, v)) = s.secrets.values_mut().find(|(m, _)| m.arn == arn) {
            *v = value;
        }
        Ok(())
    }
    async fn create(&self, name: String, value: SecretString, tags: Tags) -> Result<SecretArn, AwsError> {
        self.sim.write().await;
        let arn = SecretArn::new(format!("arn:aws:secretsmanager:us-west-2:123456789012:secret:{name}-AbCdEf"));
        let meta = SecretMeta { arn: arn.clone(), name: name.clone(), pending_deletion: false, tags };
        self.state.lock().unwrap().secrets.insert(name, (meta, value));
        Ok(arn)
    }
    async fn restore(&self, _: SecretArn) -> Result<(), AwsError> {
        unmodelled("RestoreSecret")
    }
    async fn tag(&self, _: SecretArn, _: Tags) -> Result<(), AwsError> {
        self.sim.write().await;
        Ok(())
    }
    async fn delete(&self, _: SecretArn, _: bool, _: i64) -> Result<(), AwsError> {
        unmodelled("DeleteSecret")
    }
}

#[async_trait]
impl RdsApi for FakeDatastores {
    async fn find_subnet_group(&self, name: String) -> Result<Option<Tags>, AwsError> {
        self.sim.read().await;
        Ok(self.state.lock().unwrap().db_subnet_groups.get(&name).cloned())
    }
    async fn create_subnet_group(&self, name: String, _subnets: Vec<SubnetId>, tags: Tags) -> Result<(), AwsError> {
        self.sim.write().await;
        self.state.lock().unwrap().db_subnet_groups.insert(name, tags);
        Ok(())
    }
    async fn delete_subnet_group(&self, _: String) -> Result<(), AwsError> {
        unmodelled("DeleteDBSubnetGroup")
    }
    async fn describe_cluster(&self, id: String) -> Result<Option<DbClusterInfo>, AwsError> {
        self.sim.read().await;
        let s = self.state.lock().unwrap();
        Ok(s.cluster.as_ref().filter(|(c, _)| c.id == id).map(|(c, at)| {
            let mut c = c.clone();
            c.status = rds_status(*at);
            c.members = s.instances.iter().map(|(x, _)| x.id.clone()).collect();
            c
        }))
    }
    async fn create_cluster(&self, create: DbClusterCreate) -> Result<DbClusterInfo, AwsError> {
        self.sim.write().await;
        let c = DbClusterInfo {
            arn: Arn::new(format!("arn:aws:rds:us-west-2:123456789012:cluster:{}", create.id)),
            id: create.id.clone(),
            status: RdsStatus::Creating,
            engine: "aurora-postgresql".to_owned(),
            engine_version: create.engine_version,
            acu: Some(create.acu),
            encrypted: true,
            backup_retention_days: create.backup_retention_days,
            deletion_protection: create.deletion_protection,
            http_endpoint: create.http_endpoint,
            copy_tags_to_snapshot: true,
            master_secret_arn: Some(SecretArn::new(format!(
                "arn:aws:secretsmanager:us-west-2:123456789012:secret:rds!{}",
                create.id
            ))),
            endpoint: Some(format!("{}.cluster-sim.us-west-2.rds.amazonaws.com", create.id)),
            reader_endpoint: Some(format!("{}.cluster-ro-sim.us-west-2.rds.amazonaws.com", create.id)),
            port: Some(5432),
            security_groups: vec![create.security_group],
            members: Vec::new(),
            tags: create.tags,
        };
        let at = self.sim.ready_at("aurora_cluster");
        self.state.lock().unwrap().cluster = Some((c.clone(), at));
        Ok(c)
    }
    async fn modify_cluster(&self, _: String, _: DbClusterModify) -> Result<(), AwsError> {
        unmodelled("ModifyDBCluster")
    }
    async fn tag(&self, _: Arn, _: Tags) -> Result<(), AwsError> {
        self.sim.write().await;
        Ok(())
    }
    async fn enable_http_endpoint(&self, _arn: Arn) -> Result<(), AwsError> {
        self.sim.write().await;
        if let Some((c, _)) = self.state.lock().unwrap().cluster.as_mut() {
            c.http_endpoint = true;
        }
        Ok(())
    }
    async fn delete_cluster(&self, _: String, _: Option<String>) -> Result<(), AwsError> {
        unmodelled("DeleteDBCluster")
    }
    async fn list_instances(&self, cluster: String) -> Result<Vec<DbInstanceInfo>, AwsError> {
        self.sim.read().await;
        let s = self.state.lock().unwrap();
        let cluster_at = s.cluster.as_ref().filter(|(c, _)| c.id == cluster).map(|(_, at)| *at);
        Ok(s.instances
            .iter()
            .map(|(x, at)| {
                let at = cluster_at.map_or(*at, |c| c.max(*at));
                DbInstanceInfo { status: rds_status(at), ..x.clone() }
            })
            .collect())
    }
    async fn create_instance(
        &self,
        id: String,
        _cluster: String,
        az: AvailabilityZone,
        tags: Tags,
    ) -> Result<(), AwsError> {
        self.sim.write().await;
        let x = DbInstanceInfo {
            id,
            status: RdsStatus::Creating,
            availability_zone: Some(az),
            class: "db.serverless".to_owned(),
            public: false,
            tags,
        };
        let at = self.sim.ready_at("aurora_instance");
        self.state.lock().unwrap().instances.push((x, at));
        Ok(())
    }
    async fn delete_instance(&self, _: String) -> Result<(), AwsError> {
        unmodelled("DeleteDBInstance")
    }
    async fn list_snapshots(&self, _cluster: String) -> Result<Vec<String>, AwsError> {
        self.sim.read().await;
        Ok(Vec::new())
    }
    /// A query (`SELECT`) is a read: one round trip, no change; any other statement a write.
    async fn execute(&self, _arn: Arn, _secret: SecretArn, _db: String, sql: String) -> Result<Vec<String>, AwsError> {
        if sql.starts_with("SELECT ") {
            self.sim.read().await;
        } else {
            self.sim.write().await;
        }
        let mut s = self.state.lock().unwrap();
        let name = |rest: &str| rest.split_whitespace().next().unwrap_or("").trim_matches(['"', ';']).to_owned();
        if let Some(rest) = sql.strip_prefix("CREATE DATABASE ") {
            let db = name(rest);
            s.databases.push(db);
        }
        if let Some(rest) = sql.strip_prefix("CREATE ROLE ") {
            let role = name(rest);
            s.roles.push(role);
        }
        // `SELECT rolname FROM pg_roles WHERE rolname = '<user>'` (aurora/sql.rs): the row when
        // the role exists.
        if let Some(rest) = sql.strip_prefix("SELECT rolname FROM pg_roles WHERE rolname = ") {
            let user = rest.trim_matches(['\'', ';', ' ']);
            return Ok(s.roles.iter().filter(|r| *r == user).cloned().collect());
        }
        Ok(if sql.starts_with("SELECT datname") { s.databases.clone() } else { Vec::new() })
    }
}

#[async_trait]
impl ElastiCacheApi for FakeDatastores {
    async fn find_subnet_group(&self, name: String) -> Result<Option<Tags>, AwsError> {
        self.sim.read().await;
        Ok(self.state.lock().unwrap().cache_subnet_groups.get(&name).cloned())
    }
    async fn create_subnet_group(&self, name: String, _subnets: Vec<SubnetId>, tags: Tags) -> Result<(), AwsError> {
        self.sim.write().await;
        self.state.lock().unwrap().cache_subnet_groups.insert(name, tags);
        Ok(())
    }
    async fn delete_subnet_group(&self, _: String) -> Result<(), AwsError> {
        unmodelled("DeleteCacheSubnetGroup")
    }
    async fn describe(&self, id: String) -> Result<Option<ReplicationGroupInfo>, AwsError> {
        self.sim.read().await;
        let s = self.state.lock().unwrap();
        Ok(s.group.as_ref().filter(|(g, _)| g.id == id).map(|(g, at)| {
            let mut g = g.clone();
            if ready(*at) {
                g.status = CacheStatus::Available;
            } else {
                // Tags cannot be read before the group is available.
                g.tags = None;
            }
            g
        }))
    }
    async fn create(&self, c: ReplicationGroupCreate) -> Result<(), AwsError> {
        self.sim.write().await;
        let g = ReplicationGroupInfo {
            arn: Arn::new(format!("arn:aws:elasticache:us-west-2:123456789012:replicationgroup:{}", c.id)),
            id: c.id.clone(),
            status: CacheStatus::Creating,
            node_type: c.node_type,
            members: (1..=c.nodes).map(|i| format!("{}-00{i}", c.id)).collect(),
            multi_az: c.multi_az,
            automatic_failover: c.multi_az,
            at_rest_encryption: true,
            transit_encryption: true,
            auth_token_enabled: true,
            snapshot_retention_days: c.snapshot_retention_days,
            primary_endpoint: Some((format!("master.{}.sim.cache.amazonaws.com", c.id), 6379)),
            reader_endpoint: Some(format!("replica.{}.sim.cache.amazonaws.com", c.id)),
            tags: Some(c.tags),
        };
        let at = self.sim.ready_at(self.redis_kind);
        self.state.lock().unwrap().group = Some((g, at));
        Ok(())
    }
    async fn modify(&self, _: String, _: Option<String>, _: Option<i32>) -> Result<(), AwsError> {
        unmodelled("ModifyReplicationGroup")
    }
    async fn set_replicas(&self, _: String, _: i32, _: bool) -> Result<(), AwsError> {
        unmodelled("IncreaseReplicaCount")
    }
    async fn tag(&self, _: Arn, _: Tags) -> Result<(), AwsError> {
        self.sim.write().await;
        Ok(())
    }
    async fn delete(&self, _: String) -> Result<(), AwsError> {
        unmodelled("DeleteReplicationGroup")
    }
}

#[async_trait]
impl OpenSearchApi for FakeDatastores {
    async fn describe(&self, name: String) -> Result<Option<DomainInfo>, AwsError> {
        self.sim.read().await;
        let s = self.state.lock().unwrap();
        Ok(s.domain.as_ref().filter(|(d, _)| d.name == name).map(|(d, at)| {
            let mut d = d.clone();
            if ready(*at) {
                d.processing = false;
                d.vpc_endpoint = Some(format!("vpc-{}-sim.us-west-2.es.amazonaws.com", d.name));
            }
            d
        }))
    }
    async fn create(&self, c: DomainConfig) -> Result<DomainInfo, AwsError> {
        self.sim.write().await;
        let d = DomainInfo {
            arn: Arn::new(format!("arn:aws:es:us-west-2:123456789012:domain/{}", c.name)),
            name: c.name,
            processing: true,
            deleted: false,
            engine_version: c.engine_version,
            instance_type: c.instance_type,
            instance_count: c.instance_count,
            zone_awareness: c.zone_awareness,
            volume: Some(("gp3".to_owned(), c.volume_gib)),
            subnet_ids: c.subnet_ids,
            security_group_ids: vec![c.security_group_id],
            vpc_endpoint: None,
            public_endpoint: None,
            at_rest_encryption: true,
            node_to_node: true,
            enforce_https: true,
            // What the SDK adapter asks for (`SdkOpenSearch::create`).
            tls_policy: Some(crate::opensearch::TLS_POLICY.to_owned()),
            fine_grained: c.master.is_some(),
            access_policy: Some(c.access_policy),
            tags: c.tags,
        };
        let at = self.sim.ready_at(self.opensearch_kind);
        self.state.lock().unwrap().domain = Some((d.clone(), at));
        Ok(d)
    }
    async fn update(&self, _: DomainConfig) -> Result<(), AwsError> {
        unmodelled("UpdateDomainConfig")
    }
    async fn tag(&self, _: Arn, _: Tags) -> Result<(), AwsError> {
        self.sim.write().await;
        Ok(())
    }
    async fn delete(&self, _: String) -> Result<(), AwsError> {
        unmodelled("DeleteDomain")
    }
    async fn service_linked_role_exists(&self) -> Result<bool, AwsError> {
        self.sim.read().await;
        Ok(self.state.lock().unwrap().linked_role)
    }
    async fn create_service_linked_role(&self) -> Result<(), AwsError> {
        self.sim.write().await;
        self.state.lock().unwrap().linked_role = true;
        Ok(())
    }
}

#[async_trait]
impl S3Api for FakeDatastores {
    async fn describe(&self, bucket: BucketName) -> Result<Option<BucketInfo>, AwsError> {
        self.sim.read().await;
        Ok(self.state.lock().unwrap().buckets.get(&bucket).cloned())
    }
    async fn create(&self, bucket: BucketName, _region: String) -> Result<(), AwsError> {
        self.sim.write().await;
        self.state.lock().unwrap().buckets.insert(bucket, BucketInfo::default());
        Ok(())
    }
    async fn put_tags(&self, bucket: BucketName, tags: Tags) -> Result<(), AwsError> {
        self.bucket(bucket, |b| b.tags = tags).await
    }
    async fn enable_versioning(&self, bucket: BucketName) -> Result<(), AwsError> {
        self.bucket(bucket, |b| b.versioning = true).await
    }
    async fn put_encryption(&self, bucket: BucketName, kms_key_id: Option<String>) -> Result<(), AwsError> {
        // As the SDK adapter sends it: SSE-KMS with the key, else SSE-S3 (AES256).
        let algorithm = if kms_key_id.is_some() { "aws:kms" } else { "AES256" };
        self.bucket(bucket, |b| b.encryption = Some((algorithm.to_owned(), kms_key_id))).await
    }
    async fn block_public_access(&self, bucket: BucketName) -> Result<(), AwsError> {
        self.bucket(bucket, |b| b.public_access_blocked = true).await
    }
    async fn put_policy(&self, bucket: BucketName, policy: String) -> Result<(), AwsError> {
        self.bucket(bucket, |b| b.policy = Some(policy)).await
    }
    async fn put_lifecycle(&self, bucket: BucketName, days: i32) -> Result<(), AwsError> {
        self.bucket(bucket, |b| b.abort_multipart_days = Some(days)).await
    }
    async fn list_versions(&self, _: BucketName, _: Option<(String, String)>) -> Result<VersionPage, AwsError> {
        self.sim.read().await;
        Ok((Vec::new(), None))
    }
    async fn delete_versions(&self, _: BucketName, _: Vec<(String, String)>) -> Result<Vec<String>, AwsError> {
        unmodelled("DeleteObjects")
    }
    async fn delete(&self, _: BucketName) -> Result<(), AwsError> {
        unmodelled("DeleteBucket")
    }
}

impl FakeDatastores {
    async fn bucket(&self, bucket: BucketName, f: impl FnOnce(&mut BucketInfo)) -> Result<(), AwsError> {
        self.sim.write().await;
        let mut s = self.state.lock().unwrap();
        let b = s
            .buckets
            .get_mut(&bucket)
            .ok_or_else(|| AwsError::new("PutBucket*", "NoSuchBucket", bucket.to_string()))?;
        f(b);
        Ok(())
    }
}
