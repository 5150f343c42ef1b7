//! Diff: Redis's typed changes from one observation. The plan shows each as one entry and
//! apply executes exactly the list.

use dify_stack_core::ids::Arn;
use dify_stack_core::{Action, Change, Context, Effect, Planned, ResourceRef, Tier};

use super::{ObservedRedis, PORT, name};
use crate::client::CacheEngine;
use crate::common::{DatastoresError, typical};
use crate::secrets::SecretKind;
use crate::security_group::{self, SgChange, SgWant};
use crate::spec::{DatastoresSpec, RedisSpec};
use crate::upgrade::{self, Step};

/// One change of Redis, in the order apply makes them.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum RedisChange {
    /// The AUTH token's secret is generated (`<stack>/redis-auth`).
    Secret { name: String },
    /// The security group.
    SecurityGroup(SgChange),
    /// The cache subnet group is created.
    SubnetGroup { name: String },
    /// The replication group is created as the spec says.
    Create { name: String, engine_version: String, node_type: String, nodes: i32, multi_az: bool },
    /// Encryption (at rest, in transit) and AUTH are set only at creation: the group is deleted,
    /// waited gone and created again. Only with `allow_replace` and `allow_data_loss`.
    Replace {
        name: String,
        arn: Arn,
        /// (field, have, want) of what only a new group can change.
        fields: Vec<(&'static str, bool, bool)>,
    },
    /// In prod, a manual snapshot of the group before the engine upgrade (waited until available
    /// before the upgrade starts).
    PreUpgradeSnapshot { group: String, name: String, have: String, want: String },
    /// The engine version in place (ModifyReplicationGroup EngineVersion, applied immediately),
    /// with the new family's default parameter group when the family changes,
    /// `parameter_group` = (have, want). Online from Redis 5.0.5 on: "The cluster is available
    /// for reads during the entire upgrade ... for writes for most of the upgrade duration,
    /// except during the failover operation [of] a few seconds"; a single-node group's primary
    /// cannot serve during it (AWS knowledge center, "How do I upgrade my Amazon ElastiCache for
    /// Redis engine version and what is the impact of upgrading?"). `refused` says why it cannot
    /// run (a downgrade, a custom parameter group of the old family) and the fix: apply refuses
    /// before any write.
    UpgradeEngine {
        name: String,
        arn: Arn,
        have: String,
        want: String,
        parameter_group: Option<(String, String)>,
        refused: Option<String>,
    },
    /// What ElastiCache modifies in place: node type and snapshot retention
    /// (ModifyReplicationGroup), the replica count (ModifyReplicaCount), our tags.
    Update {
        name: String,
        arn: Arn,
        node_type: Option<(String, String)>,
        nodes: Option<(i32, i32)>,
        snapshot_retention_days: Option<(i32, i32)>,
        tags: dify_stack_core::TagDrift,
    },
}

impl Planned for RedisChange {
    fn change(&self) -> Change {
        match self {
            RedisChange::Secret { name } => Change::new(
                Action::Create,
                ResourceRef::new("secretsmanager:secret", name),
            )
            .field("value", None::<&str>, Some("(generated)")),
            RedisChange::SecurityGroup(c) => c.change(),
            RedisChange::SubnetGroup { name } => {
                Change::new(Action::Create, ResourceRef::new("elasticache:subnet-group", name))
            }
            RedisChange::Create { name, engine_version, node_type, nodes, multi_az } => {
                Change::new(Action::Create, ResourceRef::new("elasticache:replication-group", name))
                    .field("engine", None::<&str>, Some(format!("redis {engine_version}")))
                    .field("node_type", None::<&str>, Some(node_type))
                    .field("nodes", None::<i32>, Some(nodes))
                    .field("multi_az", None::<bool>, Some(multi_az))
                    .field("encryption", None::<&str>, Some("at rest + in transit, AUTH"))
            }
            RedisChange::Replace { name, arn, fields } => fields.iter().fold(
                Change::new(
                    Action::Replace,
                    ResourceRef::new("elasticache:replication-group", name).with_id(arn.as_str()),
                )
                .because("encryption and AUTH can only be set at creation"),
                |c, (field, have, want)| c.field(*field, Some(have), Some(want)),
            ),
            RedisChange::PreUpgradeSnapshot { group, name, have, want } => {
                Change::new(Action::Create, ResourceRef::new("elasticache:snapshot", name))
                    .field("replication_group", None::<&str>, Some(group))
                    .because(format!(
                        "prod: taken before the engine upgrade {have} -> {want} and waited until available; \
                         kept afterwards (delete it by hand when no longer needed)"
                    ))
                    .typically(typical::REDIS_SNAPSHOT)
            }
            RedisChange::UpgradeEngine { name, arn, have, want, parameter_group, refused } => {
                let mut c = Change::new(
                    Action::Update,
                    ResourceRef::new("elasticache:replication-group", name).with_id(arn.as_str()),
                )
                .field("engine_version", Some(have), Some(want));
                if let Some((have, want)) = parameter_group {
                    c = c.field("parameter_group", Some(have), Some(want));
                }
                match refused {
                    Some(reason) => c.because(format!("refused: {reason}")),
                    None => c
                        .because(
                            "engine upgrade in place (ModifyReplicationGroup EngineVersion, applied immediately): \
                             online, the nodes upgrade one at a time; a Multi-AZ group fails over for seconds, a \
                             single node is unavailable while it upgrades; not reversible",
                        )
                        .effect(Effect::Upgrade)
                        .typically(typical::REDIS_UPGRADE),
                }
            }
            RedisChange::Update { name, arn, node_type, nodes, snapshot_retention_days, tags } => {
                let mut c = Change::new(
                    Action::Update,
                    ResourceRef::new("elasticache:replication-group", name).with_id(arn.as_str()),
                );
                if let Some((have, want)) = node_type {
                    c = c.field("node_type", Some(have), Some(want));
                }
                if let Some((have, want)) = nodes {
                    c = c.field("nodes", Some(have), Some(want));
                }
                if let Some((have, want)) = snapshot_retention_days {
                    c = c.field("snapshot_retention_days", Some(have), Some(want));
                }
                c.tag_fields(tags)
            }
        }
    }
}

/// One change of Redis, as [`RedisProvisioner`](crate::RedisProvisioner)'s
/// [`changes`](dify_stack_core::Provisioner::changes) computes it and its
/// [`execute`](dify_stack_core::Provisioner::execute) carries it out. Opaque: what a plan shows
/// of it is its [`Planned::change`].
#[derive(Debug, Clone)]
pub struct RedisStep(pub(crate) RedisChange);

impl Planned for RedisStep {
    fn change(&self) -> Change {
        self.0.change()
    }
}

impl RedisChange {
    /// The refusal of a change that cannot run, checked before any write.
    pub(super) fn refusal(&self) -> Option<DatastoresError> {
        match self {
            RedisChange::UpgradeEngine { name, have, want, refused: Some(reason), .. } => {
                Some(DatastoresError::UpgradeRefused {
                    resource: name.clone(),
                    field: "engine_version".to_owned(),
                    have: have.clone(),
                    want: want.clone(),
                    reason: reason.clone(),
                })
            }
            _ => None,
        }
    }
}

/// The parameter group family of a Redis OSS version: `redis7` for 7.x, `redis6.x` for 6.x,
/// `redis5.0`, `redis4.0`, ... before (ElastiCache API reference, "CreateCacheParameterGroup",
/// `CacheParameterGroupFamily` valid values: `redis2.6 | ... | redis5.0 | redis6.x | redis7`).
fn family(version: &str) -> Option<String> {
    let mut parts = version.split('.');
    let major: u32 = parts.next()?.parse().ok()?;
    Some(match major {
        7.. => format!("redis{major}"),
        6 => "redis6.x".to_owned(),
        _ => format!("redis{major}.{}", parts.next()?),
    })
}

/// The engine version changes of an existing group: none, or the upgrade (after its snapshot in
/// prod), or the upgrade refused with the fix. A new family takes its default parameter group
/// (ElastiCache: "When upgrading major engine versions ... you must choose a new parameter group
/// that's compatible with the new engine version", knowledge center, "Upgrade the Redis engine
/// version").
fn engine_changes(
    ctx: &Context,
    group: &str,
    arn: &Arn,
    r: &RedisSpec,
    e: &CacheEngine,
    o: &ObservedRedis,
) -> Vec<RedisChange> {
    let (have, want) = (e.version.clone(), r.engine_version.clone());
    let families = match (family(&have), family(&want)) {
        (Some(h), Some(w)) if h != w => Some((h, w)),
        _ => None,
    };
    let refused = match upgrade::step(&have, &want) {
        Step::Same => return Vec::new(),
        // A later minor or patch of the same major is ElastiCache's automatic minor version
        // upgrade (on by default, `AutoMinorVersionUpgrade`), not drift: `redis.engine_version`
        // is the least version wanted within its major.
        Step::Downgrade if upgrade::major(&have) == upgrade::major(&want) => return Vec::new(),
        Step::Downgrade => Some(format!(
            "ElastiCache cannot downgrade an engine version (API reference, ModifyReplicationGroup EngineVersion); \
             keep redis.engine_version = \"{have}\" (or a later version): an earlier one needs a new replication group"
        )),
        Step::Unknown => Some(format!(
            "{have:?} and {want:?} do not compare as versions; set redis.engine_version to {have:?} or a later version"
        )),
        Step::Upgrade { .. } => match (&families, &e.parameter_group) {
            (Some((_, new)), Some(g)) if !g.starts_with("default.") => Some(format!(
                "the group uses the parameter group {g}, which dify-stack does not manage, and {want} needs one of \
                 family {new}: create one with your settings and upgrade by hand (ModifyReplicationGroup \
                 EngineVersion with CacheParameterGroupName), or keep redis.engine_version = \"{have}\""
            )),
            _ => None,
        },
    };
    let mut out = Vec::new();
    if refused.is_none() && upgrade::snapshot_first(ctx) && o.upgrade_snapshot.is_none() {
        out.push(RedisChange::PreUpgradeSnapshot {
            group: group.to_owned(),
            name: crate::names::pre_upgrade_snapshot(group, &have, &want),
            have: have.clone(),
            want: want.clone(),
        });
    }
    let parameter_group = families.map(|(h, w)| {
        let have_group = e.parameter_group.clone().unwrap_or_else(|| format!("default.{h}"));
        (have_group, format!("default.{w}"))
    });
    out.push(RedisChange::UpgradeEngine {
        name: group.to_owned(),
        arn: arn.clone(),
        have,
        want,
        parameter_group,
        refused,
    });
    out
}

/// The security group as Redis wants it.
pub(super) fn sg_want<'a>(spec: &'a DatastoresSpec, name: &'a str, sources: &'a [String]) -> SgWant<'a> {
    SgWant { vpc_id: &spec.vpc_id, name, component: "redis-security-group", port: PORT, sources }
}

/// Redis's changes against one observation, in the order apply makes them. A group whose tags
/// could not be read (not available) gets no tag change here: apply waits for it first.
pub(crate) fn changes(ctx: &Context, spec: &DatastoresSpec, o: &ObservedRedis) -> Vec<RedisChange> {
    let n = name(ctx);
    let r = &spec.redis;
    let mut out = Vec::new();
    if !o.secret {
        out.push(RedisChange::Secret { name: SecretKind::RedisAuth.name(ctx) });
    }
    let sources = security_group::sources(spec);
    if let Some(c) = security_group::change(ctx, sg_want(spec, &n, &sources), o.security_group.as_ref()) {
        out.push(RedisChange::SecurityGroup(c));
    }
    if !o.subnet_group {
        out.push(RedisChange::SubnetGroup { name: n.clone() });
    }
    let create = RedisChange::Create {
        name: n.clone(),
        engine_version: r.engine_version.clone(),
        node_type: r.node_type.clone(),
        nodes: r.nodes,
        multi_az: r.multi_az,
    };
    let Some(g) = &o.group else {
        out.push(create);
        return out;
    };
    let fields: Vec<(&'static str, bool, bool)> =
        [("at_rest_encryption", g.at_rest_encryption), ("transit_encryption", g.transit_encryption)]
            .into_iter()
            .filter(|(_, on)| !on)
            .map(|(field, on)| (field, on, true))
            .collect();
    if !fields.is_empty() {
        // The new group is created from the spec: no in-place change of the old one matters.
        out.push(RedisChange::Replace { name: n, arn: g.arn.clone(), fields });
        return out;
    }
    if let Some(e) = &o.engine {
        out.extend(engine_changes(ctx, &n, &g.arn, r, e, o));
    }
    let have_nodes = g.members.len() as i32;
    let ours = ctx.tags_for(Tier::Datastores, "redis", &n);
    let tags: Vec<_> = match &g.tags {
        Some(have) => dify_stack_core::tag_drift(&ours, have),
        None => Vec::new(),
    };
    let update = RedisChange::Update {
        name: n,
        arn: g.arn.clone(),
        node_type: (g.node_type != r.node_type).then(|| (g.node_type.clone(), r.node_type.clone())),
        nodes: (have_nodes != r.nodes).then_some((have_nodes, r.nodes)),
        snapshot_retention_days: (g.snapshot_retention_days != r.snapshot_retention_days)
            .then_some((g.snapshot_retention_days, r.snapshot_retention_days)),
        tags,
    };
    // Each difference is one field of the plan's entry: none, nothing to update.
    if update.change().fields.is_empty() {
        return out;
    }
    out.push(update);
    out
}
