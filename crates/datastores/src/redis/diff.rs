//! Diff: Redis's typed changes from one observation. The plan shows each as one entry and
//! apply executes exactly the list.

use dify_stack_core::{Action, Change, Context, Planned, ResourceRef, Tier};

use super::{ObservedRedis, PORT, name};
use crate::secrets::SecretKind;
use crate::security_group::{self, SgChange, SgWant};
use crate::spec::DatastoresSpec;

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
        arn: String,
        /// (field, have, want) of what only a new group can change.
        fields: Vec<(&'static str, bool, bool)>,
    },
    /// What ElastiCache modifies in place: node type and snapshot retention
    /// (ModifyReplicationGroup), the replica count (ModifyReplicaCount), our tags.
    Update {
        name: String,
        arn: String,
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
                Change::new(Action::Replace, ResourceRef::new("elasticache:replication-group", name).with_id(arn))
                    .because("encryption and AUTH can only be set at creation"),
                |c, (field, have, want)| c.field(*field, Some(have), Some(want)),
            ),
            RedisChange::Update { name, arn, node_type, nodes, snapshot_retention_days, tags } => {
                let mut c =
                    Change::new(Action::Update, ResourceRef::new("elasticache:replication-group", name).with_id(arn));
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

/// The security group as Redis wants it.
pub(super) fn sg_want<'a>(spec: &'a DatastoresSpec, name: &'a str, sources: &'a [String]) -> SgWant<'a> {
    SgWant { vpc_id: spec.vpc_id.as_str(), name, component: "redis-security-group", port: PORT, sources }
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
