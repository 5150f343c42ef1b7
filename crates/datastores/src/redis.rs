//! ElastiCache Redis: security group, cache subnet group, and a replication group (cluster
//! mode off) with encryption at rest and in transit and an AUTH token kept in Secrets Manager.

use std::sync::Arc;

use async_trait::async_trait;
use dify_stack_core::ids::{Arn, SecretArn, SecurityGroupId};
use dify_stack_core::{Action, Change, Context, Plan, Provisioner, ResourceRef, SpecErrors, Tags, Tier};
use serde::Serialize;

use crate::client::{
    CacheStatus, ElastiCacheApi, ReplicationGroupCreate, ReplicationGroupInfo, SecretsApi, SgApi, SgInfo,
};
use crate::common::security_group_change;
use crate::common::{
    DataPolicy, DatastoresError, Result, SgWant, caps, delete_security_group, ensure_security_group, tag_drift,
    wait_for, wait_state,
};
use crate::secrets::{SecretKind, delete_secret, ensure_secret};
use crate::spec::DatastoresSpec;
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
}

/// Provisions Redis.
#[derive(Clone)]
pub struct RedisProvisioner {
    cache: Arc<dyn ElastiCacheApi>,
    sg: Arc<dyn SgApi>,
    secrets: Arc<dyn SecretsApi>,
    policy: Option<DataPolicy>,
}

impl std::fmt::Debug for RedisProvisioner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisProvisioner").field("policy", &self.policy).finish_non_exhaustive()
    }
}

impl RedisProvisioner {
    /// A provisioner over the given clients.
    pub fn new(cache: Arc<dyn ElastiCacheApi>, sg: Arc<dyn SgApi>, secrets: Arc<dyn SecretsApi>) -> Self {
        RedisProvisioner { cache, sg, secrets, policy: None }
    }

    /// Sets the data policy for destroy (default: [`DataPolicy::from_context`]).
    pub fn with_data_policy(mut self, policy: DataPolicy) -> Self {
        self.policy = Some(policy);
        self
    }

    async fn wait_available(&self, ctx: &Context, id: &str) -> Result<ReplicationGroupInfo> {
        let fetch = || async { Ok(self.cache.describe(id.to_owned()).await.at("DescribeReplicationGroups", id)?) };
        wait_state(ctx, format!("Redis {id} to be available"), caps::REDIS, fetch, group_available(id))
            .await?
            .ok_or_else(|| DatastoresError::Failed {
                kind: "Redis replication group",
                name: id.to_owned(),
                status: "gone".to_owned(),
            })
    }
}

impl RedisProvisioner {
    /// Deletes the replication group when it is ours and waits until it is gone; returns its
    /// ARN when there was one.
    async fn delete_group(&self, ctx: &Context, n: &str) -> Result<Option<String>> {
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
        wait_for(ctx, format!("Redis {n} to be deleted"), caps::REDIS, || async {
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

    fn validate(&self, ctx: &Context, spec: &DatastoresSpec) -> Result<(), SpecErrors> {
        spec.validate(ctx)
    }

    async fn observe(&self, ctx: &Context, spec: &DatastoresSpec) -> Result<ObservedRedis> {
        let n = name(ctx);
        let mut o = ObservedRedis::default();
        if let Some(sg) = self.sg.find(spec.vpc_id.to_string(), n.clone()).await.at("DescribeSecurityGroups", &n)? {
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
            o.group = Some(g);
        }
        o.secret = crate::secrets::secret_exists(ctx, self.secrets.as_ref(), SecretKind::RedisAuth).await?;
        Ok(o)
    }

    fn diff(&self, ctx: &Context, spec: &DatastoresSpec, o: &ObservedRedis) -> Plan {
        let n = name(ctx);
        let r = &spec.redis;
        let mut plan = Plan::new();
        if !o.secret {
            plan.push(
                Change::new(Action::Create, ResourceRef::new("secretsmanager:secret", SecretKind::RedisAuth.name(ctx)))
                    .field("value", None::<&str>, Some("(generated)")),
            );
        }
        let sources: Vec<String> = spec.source_security_groups.iter().map(|s| s.to_string()).collect();
        if let Some(c) = security_group_change(&n, o.security_group.as_ref(), PORT, &sources) {
            plan.push(c);
        }
        if !o.subnet_group {
            plan.push(Change::new(Action::Create, ResourceRef::new("elasticache:subnet-group", &n)));
        }
        let g_ref = ResourceRef::new("elasticache:replication-group", &n);
        match &o.group {
            None => plan.push(
                Change::new(Action::Create, g_ref)
                    .field("engine", None::<&str>, Some(format!("redis {}", r.engine_version)))
                    .field("node_type", None::<&str>, Some(&r.node_type))
                    .field("nodes", None::<i32>, Some(r.nodes))
                    .field("multi_az", None::<bool>, Some(r.multi_az))
                    .field("encryption", None::<&str>, Some("at rest + in transit, AUTH")),
            ),
            Some(g) => {
                let gr = g_ref.with_id(&g.arn);
                let mut replace =
                    Change::new(Action::Replace, gr.clone()).because("encryption and AUTH can only be set at creation");
                if !g.at_rest_encryption {
                    replace = replace.field("at_rest_encryption", Some(false), Some(true));
                }
                if !g.transit_encryption {
                    replace = replace.field("transit_encryption", Some(false), Some(true));
                }
                if !replace.fields.is_empty() {
                    plan.push(replace);
                }
                let mut c = Change::new(Action::Update, gr);
                if g.node_type != r.node_type {
                    c = c.field("node_type", Some(&g.node_type), Some(&r.node_type));
                }
                if g.members.len() as i32 != r.nodes {
                    c = c.field("nodes", Some(g.members.len()), Some(r.nodes));
                }
                if g.snapshot_retention_days != r.snapshot_retention_days {
                    c = c.field(
                        "snapshot_retention_days",
                        Some(g.snapshot_retention_days),
                        Some(r.snapshot_retention_days),
                    );
                }
                let tags = ctx.tags_for(Tier::Datastores, "redis", &n);
                if let Some(have) = &g.tags {
                    for (k, v) in tag_drift(&tags, have) {
                        c = c.field(format!("tags.{k}"), have.get(&k), Some(v));
                    }
                }
                if !c.fields.is_empty() {
                    plan.push(c);
                }
            }
        }
        plan
    }

    async fn apply(&self, ctx: &Context, spec: &DatastoresSpec) -> Result<RedisOutput> {
        spec.validate(ctx)?;
        let n = name(ctx);
        let r = &spec.redis;
        let mut o = self.observe(ctx, spec).await?;
        let replace = self.diff(ctx, spec, &o).with_action(Action::Replace).next().cloned();
        if let Some(c) = &replace {
            let p = ctx.permissions;
            if !(p.allow_replace && p.allow_data_loss) {
                let f = &c.fields[0];
                return Err(DatastoresError::ReplacementRefused {
                    resource: n,
                    field: f.path.clone(),
                    have: f.before.clone().unwrap_or_default(),
                    want: f.after.clone().unwrap_or_default(),
                });
            }
        }
        let secret = ensure_secret(ctx, self.secrets.as_ref(), SecretKind::RedisAuth, "").await?;
        let sources: Vec<String> = spec.source_security_groups.iter().map(|s| s.to_string()).collect();
        let sg = ensure_security_group(
            ctx,
            self.sg.as_ref(),
            SgWant {
                vpc_id: spec.vpc_id.as_str(),
                name: &n,
                component: "redis-security-group",
                port: PORT,
                sources: &sources,
            },
            o.security_group.clone(),
        )
        .await?;
        if !o.subnet_group {
            let tags = ctx.tags_for(Tier::Datastores, "redis-subnet-group", &n);
            match self
                .cache
                .create_subnet_group(n.clone(), spec.subnets.iter().map(|s| s.id.to_string()).collect(), tags)
                .await
            {
                Ok(()) => {}
                Err(e) if e.is_already_exists() => {}
                Err(e) => return Err(e.at("CreateCacheSubnetGroup", &n).into()),
            }
        }
        // An allowed replacement (encryption and AUTH are set only at creation), as the plan
        // showed it: the group is deleted, waited gone and created below. DeleteReplicationGroup
        // refuses a group not available (InvalidReplicationGroupState, API reference), hence the
        // wait first; a create under an id still deleting fails with
        // ReplicationGroupAlreadyExists, hence the wait until gone.
        if replace.is_some() {
            let g = match &o.group {
                Some(g) if g.is_available() && g.tags.is_some() => g.clone(),
                _ => self.wait_available(ctx, &n).await?,
            };
            // Ownership first: a busy group's tags were not readable when observed.
            NotOwned::check(ctx, "Redis replication group", &n, g.tags.as_ref().unwrap_or(&Tags::new()))?;
            tracing::info!(replication_group = %n, "replacing Redis (encryption is set only at creation)");
            self.delete_group(ctx, &n).await?;
            o.group = None;
        }
        let tags = ctx.tags_for(Tier::Datastores, "redis", &n);
        // The group as last seen, when nothing was changed since (no further read needed).
        let settled = match &o.group {
            None => {
                let create = ReplicationGroupCreate {
                    id: n.clone(),
                    engine_version: r.engine_version.clone(),
                    node_type: r.node_type.clone(),
                    nodes: r.nodes,
                    multi_az: r.multi_az,
                    snapshot_retention_days: r.snapshot_retention_days,
                    subnet_group: n.clone(),
                    security_group: sg.clone(),
                    auth_token: secret.value().clone(),
                    tags,
                };
                match self.cache.create(create).await {
                    Ok(()) => tracing::info!(replication_group = %n, "creating Redis"),
                    Err(e) if e.is_already_exists() => {}
                    Err(e) => return Err(e.at("CreateReplicationGroup", &n).into()),
                }
                None
            }
            Some(g) => {
                let mut changed = false;
                let mut g =
                    if g.is_available() && g.tags.is_some() { g.clone() } else { self.wait_available(ctx, &n).await? };
                NotOwned::check(ctx, "Redis replication group", &n, g.tags.as_ref().unwrap_or(&Tags::new()))?;
                let node_type = (g.node_type != r.node_type).then(|| r.node_type.clone());
                let retention =
                    (g.snapshot_retention_days != r.snapshot_retention_days).then_some(r.snapshot_retention_days);
                if node_type.is_some() || retention.is_some() {
                    self.cache.modify(n.clone(), node_type, retention).await.at("ModifyReplicationGroup", &n)?;
                    g = self.wait_available(ctx, &n).await?;
                }
                let have = g.members.len() as i32;
                if have != r.nodes {
                    self.cache
                        .set_replicas(n.clone(), r.nodes - 1, r.nodes > have)
                        .await
                        .at("ModifyReplicaCount", &n)?;
                    changed = true;
                }
                let drift = tag_drift(&tags, g.tags.as_ref().unwrap_or(&Tags::new()));
                if !drift.is_empty() {
                    self.cache.tag(g.arn.clone(), drift).await.at("AddTagsToResource", &n)?;
                }
                (!changed).then_some(g)
            }
        };
        let g = match settled {
            Some(g) => g,
            None => self.wait_available(ctx, &n).await?,
        };
        let (host, port) = g.primary_endpoint.clone().unwrap_or_default();
        Ok(RedisOutput {
            replication_group_id: n,
            arn: Arn::new(&g.arn),
            primary_endpoint: host,
            reader_endpoint: g.reader_endpoint.clone(),
            port: if port == 0 { PORT } else { port },
            tls: true,
            auth_secret_arn: secret.arn.clone(),
            security_group_id: SecurityGroupId::new(sg),
        })
    }

    /// Replication group (wait gone) -> subnet group -> security group -> AUTH secret.
    /// A cache holds no data of record, so no data-policy check applies to it.
    async fn destroy(&self, ctx: &Context, spec: &DatastoresSpec) -> Result<Vec<ResourceRef>> {
        let policy = self.policy.unwrap_or_else(|| DataPolicy::from_context(ctx));
        let n = name(ctx);
        let mut deleted = Vec::new();
        if let Some(arn) = self.delete_group(ctx, &n).await? {
            deleted.push(ResourceRef::new("elasticache:replication-group", &n).with_id(arn));
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
        if let Some(id) = delete_security_group(ctx, self.sg.as_ref(), spec.vpc_id.as_str(), &n).await? {
            deleted.push(ResourceRef::new("ec2:security-group", &n).with_id(id));
        }
        if let Some(arn) = delete_secret(ctx, self.secrets.as_ref(), SecretKind::RedisAuth, policy).await? {
            deleted.push(ResourceRef::new("secretsmanager:secret", SecretKind::RedisAuth.name(ctx)).with_id(arn));
        }
        Ok(deleted)
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
