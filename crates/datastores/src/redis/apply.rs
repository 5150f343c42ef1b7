//! Apply: executes Redis's typed changes of one observation.

use dify_stack_core::{AwsAt, Context, NotOwned, Tags, Tier};

use super::diff::{RedisChange, sg_want};
use super::{ObservedRedis, PORT, RedisOutput, RedisProvisioner, name};
use crate::client::ReplicationGroupCreate;
use crate::common::{DatastoresError, Result};
use crate::secrets::{SecretKind, ensure_secret};
use crate::security_group;
use crate::spec::DatastoresSpec;
use crate::upgrade;

impl RedisProvisioner {
    /// Whether the group is busy (creating after a crash, modifying, snapshotting): it shows no
    /// tags then ([`Self::settle_tier`] waits for it).
    pub(crate) fn group_busy(o: &ObservedRedis) -> bool {
        o.group.as_ref().is_some_and(|g| !(g.is_available() && g.tags.is_some()))
    }

    /// The trait's `settle`: a busy group's ownership cannot be checked nor its tags compared
    /// until it is available again: waited for, its ownership checked, and its engine read
    /// again.
    pub(super) async fn settle_tier(&self, ctx: &Context, mut o: ObservedRedis) -> Result<ObservedRedis> {
        if !Self::group_busy(&o) {
            return Ok(o);
        }
        let n = name(ctx);
        let g = self.wait_available(ctx, &n).await?;
        NotOwned::check(ctx, "Redis replication group", &n, g.tags.as_ref().unwrap_or(&Tags::new()))?;
        // An engine upgrade an interrupted run started has ended meanwhile: compared on the
        // version it ended on, so that it is not sent again.
        if let Some(member) = g.members.first() {
            o.engine = self.cache.engine(member.clone()).await.at("DescribeCacheClusters", member)?;
        }
        o.group = Some(g);
        Ok(o)
    }

    /// The trait's `refusal`: a replacement without `allow_replace` and `allow_data_loss`, or
    /// an engine upgrade that cannot run.
    pub(super) fn refusal_of(ctx: &Context, change: &RedisChange) -> Option<DatastoresError> {
        match change {
            RedisChange::Replace { name, fields, .. }
                if !(ctx.permissions.allow_replace && ctx.permissions.allow_data_loss) =>
            {
                let (field, have, want) = fields[0];
                Some(DatastoresError::ReplacementRefused {
                    resource: name.clone(),
                    field: field.to_owned(),
                    have: have.to_string(),
                    want: want.to_string(),
                })
            }
            c => c.refusal(),
        }
    }

    /// The trait's `execute`: the typed changes of one (settled) observation, in order. The
    /// security group's id, known after its change, goes into the group's create; the group
    /// as it ends is read by the waits here, not observed again.
    pub(super) async fn execute_tier(
        &self,
        ctx: &Context,
        spec: &DatastoresSpec,
        o: ObservedRedis,
        changes: Vec<RedisChange>,
    ) -> Result<RedisOutput> {
        let n = name(ctx);
        let r = &spec.redis;
        // Read, or generated when the plan shows it (`RedisChange::Secret`): its value is the
        // AUTH token of a group created below and its ARN an output.
        let secret = ensure_secret(ctx, self.secrets.as_ref(), SecretKind::RedisAuth, "").await?;
        let sources = security_group::sources(spec);
        let want_sg = sg_want(spec, &n, &sources);
        let sg_change = changes.iter().find_map(|c| match c {
            RedisChange::SecurityGroup(c) => Some(c.clone()),
            _ => None,
        });
        let sg =
            security_group::apply_change(ctx, self.sg.as_ref(), want_sg, sg_change, o.security_group.as_ref()).await?;
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
            tags: ctx.tags_for(Tier::Datastores, "redis", &n),
        };
        // The group as last seen, when nothing was changed since (no further read needed).
        let mut settled = o.group.clone();
        for change in changes {
            match change {
                RedisChange::Secret { .. } | RedisChange::SecurityGroup(_) => {}
                RedisChange::SubnetGroup { .. } => {
                    let tags = ctx.tags_for(Tier::Datastores, "redis-subnet-group", &n);
                    let subnets = spec.subnets.iter().map(|s| s.id.clone()).collect();
                    match self.cache.create_subnet_group(n.clone(), subnets, tags).await {
                        Ok(()) => {}
                        Err(e) if e.is_already_exists() => {}
                        Err(e) => return Err(e.at("CreateCacheSubnetGroup", &n).into()),
                    }
                }
                // DeleteReplicationGroup refuses a group not available (InvalidReplicationGroupState,
                // ElastiCache API reference), hence the wait before the diff; a create under an id
                // still deleting fails with ReplicationGroupAlreadyExists, hence `delete_group`
                // waits until it is gone.
                RedisChange::Replace { .. } => {
                    tracing::info!(replication_group = %n, "replacing Redis (encryption is set only at creation)");
                    self.delete_group(ctx, &n).await?;
                    self.create_group(create.clone()).await?;
                    settled = None;
                }
                RedisChange::Create { .. } => {
                    self.create_group(create.clone()).await?;
                    settled = None;
                }
                RedisChange::PreUpgradeSnapshot { group, name, .. } => {
                    let tags = ctx.tags_for(Tier::Datastores, "redis-snapshot", &name);
                    match self.cache.create_snapshot(group.clone(), name.clone(), tags).await {
                        Ok(()) => {
                            tracing::info!(replication_group = %group, snapshot = %name, "pre-upgrade snapshot requested")
                        }
                        // Taken by an interrupted run: waited for below like a new one.
                        Err(e) if e.is_already_exists() => {}
                        Err(e) => return Err(e.at("CreateSnapshot", &name).into()),
                    }
                }
                RedisChange::UpgradeEngine { have, want, parameter_group, .. } => {
                    if upgrade::snapshot_first(ctx) {
                        // This run's snapshot or an interrupted run's: available before the
                        // upgrade, and the group back from `snapshotting` (ModifyReplicationGroup
                        // is refused unless it is available).
                        self.wait_snapshot(ctx, &crate::names::pre_upgrade_snapshot(&n, &have, &want)).await?;
                        self.wait_available(ctx, &n).await?;
                    }
                    let group = parameter_group.map(|(_, g)| g);
                    self.cache.upgrade_engine(n.clone(), want.clone(), group).await.at("ModifyReplicationGroup", &n)?;
                    tracing::info!(replication_group = %n, from = %have, to = %want, "upgrading the Redis engine");
                    let member = o.group.as_ref().and_then(|g| g.members.first()).cloned().unwrap_or_default();
                    settled = Some(self.wait_upgraded(ctx, &n, &member, &want).await?);
                }
                RedisChange::Update { arn, node_type, nodes, snapshot_retention_days, tags, .. } => {
                    if node_type.is_some() || snapshot_retention_days.is_some() {
                        let (node_type, retention) = (node_type.map(|t| t.1), snapshot_retention_days.map(|d| d.1));
                        self.cache.modify(n.clone(), node_type, retention).await.at("ModifyReplicationGroup", &n)?;
                        // ModifyReplicaCount is refused while the group is modifying
                        // (InvalidReplicationGroupState "Replication group must be in available
                        // state to modify": umotif-public/terraform-aws-elasticache-redis #54);
                        // modifying first and the replica count after the wait also avoids
                        // terraform-provider-aws #50096 (both in one apply race each other).
                        settled = Some(self.wait_available(ctx, &n).await?);
                    }
                    if let Some((have, want)) = nodes {
                        self.cache.set_replicas(n.clone(), want - 1, want > have).await.at("ModifyReplicaCount", &n)?;
                        settled = None;
                    }
                    if !tags.is_empty() {
                        let tags = dify_stack_core::drift_tags(&tags);
                        self.cache.tag(arn, tags).await.at("AddTagsToResource", &n)?;
                    }
                }
            }
        }
        let g = match settled {
            Some(g) => g,
            None => self.wait_available(ctx, &n).await?,
        };
        let (host, port) = g.primary_endpoint.clone().unwrap_or_default();
        Ok(RedisOutput {
            replication_group_id: n,
            arn: g.arn.clone(),
            primary_endpoint: host,
            reader_endpoint: g.reader_endpoint.clone(),
            port: if port == 0 { PORT } else { port },
            tls: true,
            auth_secret_arn: secret.arn.clone(),
            security_group_id: sg,
        })
    }

    /// CreateReplicationGroup; one created by an earlier interrupted run is taken as it is.
    async fn create_group(&self, create: ReplicationGroupCreate) -> Result<()> {
        let n = create.id.clone();
        match self.cache.create(create).await {
            Ok(()) => tracing::info!(replication_group = %n, "creating Redis"),
            Err(e) if e.is_already_exists() => {}
            Err(e) => return Err(DatastoresError::from(e.at("CreateReplicationGroup", &n))),
        }
        Ok(())
    }
}
