//! ElastiCache Redis: security group, cache subnet group, and a replication group (cluster
//! mode off) with encryption at rest and in transit and an AUTH token kept in Secrets Manager.

mod apply;
mod diff;

pub use diff::RedisStep;

use std::sync::Arc;

use async_trait::async_trait;
use dify_stack_core::ids::{Arn, SecretArn, SecurityGroupId};
use dify_stack_core::{Context, Provisioner, ResourceRef, SpecErrors};
use serde::Serialize;

use crate::client::{CacheEngine, CacheStatus, ElastiCacheApi, ReplicationGroupInfo, SecretsApi, SgApi, SgInfo};
use crate::common::{DataPolicy, DatastoresError, Result, caps, ready_from, wait_for, wait_state};
use crate::secrets::{SecretKind, delete_secret};
use crate::security_group;
use crate::spec::{DatastoresSpec, StoreSelector};
use crate::upgrade::{self, Step};
use dify_stack_core::Probe;
use dify_stack_core::wait::Condition;
use dify_stack_core::{AwsAt, NotOwned, from_aws_wait};

/// Redis's port.
pub const PORT: i32 = 6379;

/// The names of Redis's resources (all `<stack>-redis`).
pub fn name(ctx: &Context) -> String {
    crate::names::redis(ctx)
}

/// What Redis hands on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct RedisOutput {
    /// Replication group id.
    pub replication_group_id: String,
    /// ARN.
    pub arn: Arn,
    /// Primary endpoint host.
    pub primary_endpoint: String,
    /// Reader endpoint host.
    pub reader_endpoint: Option<String>,
    /// Port.
    pub port: i32,
    /// TLS is on (always).
    pub tls: bool,
    /// The AUTH token's secret.
    pub auth_secret_arn: SecretArn,
    /// Security group.
    pub security_group_id: SecurityGroupId,
}

/// What exists.
#[derive(Debug, Clone, Default)]
pub struct ObservedRedis {
    /// Security group.
    pub security_group: Option<SgInfo>,
    /// Cache subnet group exists.
    pub subnet_group: bool,
    /// Replication group.
    pub group: Option<ReplicationGroupInfo>,
    /// The AUTH secret exists.
    pub secret: bool,
    /// The engine the group's first member runs (DescribeCacheClusters); `None` when unknown.
    pub engine: Option<CacheEngine>,
    /// The status of the pre-upgrade snapshot: read only in prod when an engine upgrade is
    /// wanted; `None` when it does not exist (or was not read).
    pub upgrade_snapshot: Option<String>,
}

/// Provisions Redis.
#[derive(Clone)]
pub struct RedisProvisioner {
    cache: Arc<dyn ElastiCacheApi>,
    sg: Arc<dyn SgApi>,
    secrets: Arc<dyn SecretsApi>,
}

impl std::fmt::Debug for RedisProvisioner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisProvisioner").finish_non_exhaustive()
    }
}

impl RedisProvisioner {
    /// A provisioner over the given clients.
    pub fn new(cache: Arc<dyn ElastiCacheApi>, sg: Arc<dyn SgApi>, secrets: Arc<dyn SecretsApi>) -> Self {
        RedisProvisioner { cache, sg, secrets }
    }

    async fn wait_available(&self, ctx: &Context, id: &str) -> Result<ReplicationGroupInfo> {
        let fetch = || async { Ok(self.cache.describe(id.to_owned()).await.at("DescribeReplicationGroups", id)?) };
        wait_state(
            ctx,
            format!("Redis {id} to be available"),
            caps::REDIS,
            Some(ready_from::REDIS),
            fetch,
            group_available(id),
        )
        .await?
        .ok_or_else(|| DatastoresError::Failed {
            kind: "Redis replication group",
            name: id.to_owned(),
            status: "gone".to_owned(),
        })
    }
}

impl RedisProvisioner {
    /// Waits until the pre-upgrade snapshot `name` is available.
    async fn wait_snapshot(&self, ctx: &Context, name: &str) -> Result<()> {
        let fetch = || async { Ok(self.cache.snapshot_status(name.to_owned()).await.at("DescribeSnapshots", name)?) };
        let condition = upgrade::snapshot_available("Redis snapshot", name);
        wait_state(ctx, format!("Redis snapshot {name} to be available"), caps::REDIS_SNAPSHOT, None, fetch, condition)
            .await?;
        Ok(())
    }

    /// Waits until the group is available again and its node `member` runs `want`.
    async fn wait_upgraded(&self, ctx: &Context, id: &str, member: &str, want: &str) -> Result<ReplicationGroupInfo> {
        let fetch = || async {
            let Some(g) = self.cache.describe(id.to_owned()).await.at("DescribeReplicationGroups", id)? else {
                return Ok(None);
            };
            let engine = self.cache.engine(member.to_owned()).await.at("DescribeCacheClusters", member)?;
            Ok(Some((g, engine)))
        };
        let what = format!("Redis {id} to run {want}");
        let done = wait_state(ctx, what, caps::REDIS_UPGRADE, None, fetch, group_upgraded(id, want)).await?;
        done.map(|(g, _)| g).ok_or_else(|| DatastoresError::Failed {
            kind: "Redis replication group",
            name: id.to_owned(),
            status: "gone".to_owned(),
        })
    }
}

impl RedisProvisioner {
    /// Deletes the replication group when it is ours and waits until it is gone; returns its
    /// ARN when there was one.
    async fn delete_group(&self, ctx: &Context, n: &str) -> Result<Option<Arn>> {
        let found = match self.cache.describe(n.to_owned()).await.at("DescribeReplicationGroups", n)? {
            // Busy (creating after a crash, modifying, snapshotting): its tags cannot be read
            // until it is available again, and it cannot be deleted before either.
            Some(g) if g.tags.is_none() && g.status != CacheStatus::Deleting => {
                Some(self.wait_available(ctx, n).await?)
            }
            other => other,
        };
        // A group already deleting (an earlier interrupted destroy) shows no tags: it is waited
        // for, never deleted again. Otherwise only a group carrying our tags is touched.
        let deleting = |g: &ReplicationGroupInfo| g.status == CacheStatus::Deleting;
        let Some(g) = found.filter(|g| deleting(g) || g.tags.as_ref().is_some_and(|t| ctx.owns_tags(t))) else {
            return Ok(None);
        };
        if !deleting(&g) {
            dify_stack_core::ignore_not_found(self.cache.delete(n.to_owned()).await).at("DeleteReplicationGroup", n)?;
        }
        wait_for(ctx, format!("Redis {n} to be deleted"), caps::REDIS, None, || async {
            Ok(self
                .cache
                .describe(n.to_owned())
                .await
                .at("DescribeReplicationGroups", n)?
                .map(|g| g.status.to_string()))
        })
        .await?;
        Ok(Some(g.arn))
    }
}

#[async_trait]
impl Provisioner for RedisProvisioner {
    type Spec = DatastoresSpec;
    type Observed = ObservedRedis;
    type Output = RedisOutput;
    type Error = DatastoresError;
    type Selector = StoreSelector;
    type Change = RedisStep;

    fn validate(&self, ctx: &Context, spec: &DatastoresSpec) -> Result<(), SpecErrors> {
        spec.validate(ctx)
    }

    async fn observe(&self, ctx: &Context, spec: &DatastoresSpec) -> Result<ObservedRedis> {
        let n = name(ctx);
        let mut o = ObservedRedis::default();
        if let Some(sg) = self.sg.find(spec.vpc_id.clone(), n.clone()).await.at("DescribeSecurityGroups", &n)? {
            NotOwned::check(ctx, "security group", &n, &sg.tags)?;
            o.security_group = Some(sg);
        }
        if let Some(tags) = self.cache.find_subnet_group(n.clone()).await.at("DescribeCacheSubnetGroups", &n)? {
            NotOwned::check(ctx, "cache subnet group", &n, &tags)?;
            o.subnet_group = true;
        }
        if let Some(g) = self.cache.describe(n.clone()).await.at("DescribeReplicationGroups", &n)? {
            // While it is not available its tags cannot be read: ownership is checked by apply
            // and destroy once it is, before any write.
            if let Some(tags) = &g.tags {
                NotOwned::check(ctx, "Redis replication group", &n, tags)?;
            }
            // The version is the nodes' (DescribeReplicationGroups does not give it).
            if let Some(member) = g.members.first() {
                o.engine = self.cache.engine(member.clone()).await.at("DescribeCacheClusters", member)?;
            }
            if let Some(e) = &o.engine
                && matches!(upgrade::step(&e.version, &spec.redis.engine_version), Step::Upgrade { .. })
                && upgrade::snapshot_first(ctx)
            {
                let snapshot = crate::names::pre_upgrade_snapshot(&n, &e.version, &spec.redis.engine_version);
                o.upgrade_snapshot =
                    self.cache.snapshot_status(snapshot.clone()).await.at("DescribeSnapshots", &snapshot)?;
            }
            o.group = Some(g);
        }
        o.secret = crate::secrets::secret_exists(ctx, self.secrets.as_ref(), SecretKind::RedisAuth).await?;
        Ok(o)
    }

    fn changes(&self, ctx: &Context, spec: &DatastoresSpec, o: &ObservedRedis) -> Vec<RedisStep> {
        diff::changes(ctx, spec, o).into_iter().map(RedisStep).collect()
    }

    /// A busy group is waited for until its tags can be read and its ownership checked, and
    /// its engine version read again.
    async fn settle(&self, ctx: &Context, _spec: &DatastoresSpec, o: ObservedRedis) -> Result<ObservedRedis> {
        self.settle_tier(ctx, o).await
    }

    /// A replacement without `allow_replace` and `allow_data_loss`; an engine upgrade that
    /// cannot run.
    fn refusal(&self, ctx: &Context, _spec: &DatastoresSpec, change: &RedisStep) -> Option<DatastoresError> {
        Self::refusal_of(ctx, &change.0)
    }

    /// Executes the typed changes of one observation.
    async fn execute(
        &self,
        ctx: &Context,
        spec: &DatastoresSpec,
        o: ObservedRedis,
        changes: Vec<RedisStep>,
    ) -> Result<RedisOutput> {
        self.execute_tier(ctx, spec, o, changes.into_iter().map(|c| c.0).collect()).await
    }

    /// Replication group (wait gone) -> subnet group -> security group -> AUTH secret.
    /// A cache holds no data of record, so no data-policy check applies to it.
    fn selector(&self, _ctx: &Context, spec: &DatastoresSpec) -> StoreSelector {
        StoreSelector { vpc_id: Some(spec.vpc_id.clone()) }
    }

    async fn destroy_selected(&self, ctx: &Context, selector: &StoreSelector) -> Result<Vec<ResourceRef>> {
        let policy = DataPolicy::from_context(ctx);
        let n = name(ctx);
        let mut deleted = Vec::new();
        if let Some(arn) = self.delete_group(ctx, &n).await? {
            deleted.push(ResourceRef::new("elasticache:replication-group", &n).with_id(arn.into_inner()));
        }
        if let Some(tags) = self.cache.find_subnet_group(n.clone()).await.at("DescribeCacheSubnetGroups", &n)?
            && ctx.owns_tags(&tags)
        {
            dify_stack_core::wait::retry(
                &format!("DeleteCacheSubnetGroup {n}"),
                &ctx.wait.capped(std::time::Duration::from_secs(5 * 60)),
                ctx.cancellation(),
                dify_stack_core::AwsError::is_dependency_violation,
                || async { dify_stack_core::ignore_not_found(self.cache.delete_subnet_group(n.clone()).await) },
            )
            .await
            .map_err(|e| from_aws_wait::<DatastoresError>(e, "DeleteCacheSubnetGroup", &n))?;
            deleted.push(ResourceRef::new("elasticache:subnet-group", &n));
        }
        // Without the VPC, no group in it.
        if let Some(vpc_id) = &selector.vpc_id
            && let Some(id) = security_group::delete(ctx, self.sg.as_ref(), vpc_id, &n).await?
        {
            deleted.push(ResourceRef::new("ec2:security-group", &n).with_id(id.into_inner()));
        }
        if let Some(arn) = delete_secret(ctx, self.secrets.as_ref(), SecretKind::RedisAuth, policy).await? {
            deleted.push(ResourceRef::new("secretsmanager:secret", SecretKind::RedisAuth.name(ctx)).with_id(arn));
        }
        Ok(deleted)
    }
}

/// The condition of an engine upgrade: the group `available` (tags readable) and its node on
/// the wanted version (right after ModifyReplicationGroup it may still say `available` on the
/// old one); `create-failed` or a vanished group ends the wait.
pub(crate) fn group_upgraded<'a>(
    id: &'a str,
    want: &'a str,
) -> impl Condition<(ReplicationGroupInfo, Option<CacheEngine>), DatastoresError> + 'a {
    move |state: Option<&(ReplicationGroupInfo, Option<CacheEngine>)>| match state {
        Some((g, Some(e))) if g.is_available() && g.tags.is_some() && upgrade::step(&e.version, want) == Step::Same => {
            Ok(Probe::Done(()))
        }
        Some((g, _)) if g.status == CacheStatus::CreateFailed => Err(DatastoresError::Failed {
            kind: "Redis replication group",
            name: id.to_owned(),
            status: g.status.to_string(),
        }),
        Some((g, e)) => {
            let version = e.as_ref().map_or("an unknown version", |e| e.version.as_str());
            Ok(Probe::Pending(format!("{} on {version}", g.status)))
        }
        None => Err(DatastoresError::Failed {
            kind: "Redis replication group",
            name: id.to_owned(),
            status: "gone".to_owned(),
        }),
    }
}

/// The condition of a replication group the tier waits for: `available` with its tags readable
/// (ElastiCache refuses tag reads in any other state); `create-failed` ends the wait at once;
/// not visible yet (eventual consistency right after CreateReplicationGroup) is pending.
pub(crate) fn group_available(id: &str) -> impl Condition<ReplicationGroupInfo, DatastoresError> + '_ {
    move |g: Option<&ReplicationGroupInfo>| match g {
        Some(g) if g.is_available() && g.tags.is_some() => Ok(Probe::Done(())),
        Some(g) if g.status == CacheStatus::CreateFailed => Err(DatastoresError::Failed {
            kind: "Redis replication group",
            name: id.to_owned(),
            status: g.status.to_string(),
        }),
        Some(g) => Ok(Probe::Pending(g.status.to_string())),
        None => Ok(Probe::Pending("not visible yet".to_owned())),
    }
}
