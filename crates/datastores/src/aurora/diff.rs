//! Diff: Aurora's typed changes from one observation. Its AWS resources (security group,
//! subnet group, cluster, instances) are executed change by change by apply; the objects inside
//! PostgreSQL (databases, the application role, ownership) are shown from what the Data API
//! read and converged by apply's SQL phase, which reads the catalog again when the cluster
//! changed (a new cluster's catalog cannot be read at plan time).

use dify_stack_core::ids::{Arn, AvailabilityZone, SecurityGroupId};
use dify_stack_core::{Action, Change, Context, Effect, Planned, ResourceRef, Tier};

use super::{AuroraNames, AuroraProvisioner, ObservedAurora, PORT};
use crate::client::DbClusterInfo;
use crate::common::{DatastoresError, typical};
use crate::secrets::SecretKind;
use crate::security_group::{self, SgChange, SgWant};
use crate::spec::{AuroraSpec, DatastoresSpec};
use crate::upgrade::{self, Step, major};

/// The ACU range as the plan shows it.
fn acu(range: Acu) -> String {
    format!("{}-{}", range.0, range.1)
}

/// A Serverless v2 ACU range (min, max).
type Acu = (f64, f64);

/// One change of Aurora, in the order apply makes them.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum AuroraChange {
    /// The security group.
    SecurityGroup(SgChange),
    /// The DB subnet group is created.
    SubnetGroup { name: String },
    /// The cluster is created as the spec says.
    CreateCluster {
        name: String,
        engine_version: String,
        acu: (f64, f64),
        backup_retention_days: i32,
        deletion_protection: bool,
    },
    /// In prod, a manual cluster snapshot before the engine upgrade (waited until available
    /// before the upgrade starts).
    PreUpgradeSnapshot { cluster: String, name: String, have: String, want: String },
    /// The engine version, in place (ModifyDBCluster, applied immediately), never by
    /// replacement: a minor upgrade, or a major one with `AllowMajorVersionUpgrade` and the
    /// new family's default parameter groups, `major` = (have, want) groups. A minor upgrade
    /// restarts the instances: "typically 20-30 seconds of downtime" (Aurora user guide,
    /// "Amazon Aurora updates"), less where zero-downtime patching keeps the connections
    /// ("Performing a minor version upgrade", "Minor release upgrades and zero-downtime
    /// patching"). The stack creates no parameter group of its own, so the cluster and its
    /// instances run the family's defaults, and a major upgrade names the new family's default
    /// groups (`DBClusterParameterGroupName`, `DBInstanceParameterGroupName`): RDS refuses a
    /// major upgrade while a custom instance group is in use unless a new one is named
    /// (terraform-provider-aws #35912). `refused` says why it cannot run (a downgrade, a major
    /// one not permitted, a custom parameter group) and the fix: apply refuses before any write.
    UpgradeEngine {
        name: String,
        arn: Arn,
        have: String,
        want: String,
        major: Option<(String, String)>,
        refused: Option<String>,
    },
    /// ModifyDBCluster of what differs, our tags (AddTagsToResource), and the Data API
    /// (enabled by the SQL phase, which falls back to statements where the region refuses it).
    UpdateCluster {
        name: String,
        arn: Arn,
        acu: Option<(Option<Acu>, Acu)>,
        backup_retention_days: Option<(i32, i32)>,
        deletion_protection: Option<(bool, bool)>,
        /// The cluster's groups and ours (`None`: created by this run, its id known after apply).
        security_groups: Option<(Vec<String>, Option<String>)>,
        data_api: bool,
        tags: dify_stack_core::TagDrift,
    },
    /// An instance is created (the writer first, readers in the next AZs).
    CreateInstance { id: String, availability_zone: AvailabilityZone },
    /// An instance the spec does not ask for is deleted.
    DeleteInstance { id: String },
    /// The application role's secret is generated (`<stack>/aurora-app`).
    AppSecret { name: String },
    /// A database, the application role or a database's owner, converged by the SQL phase.
    Catalog(Change),
}

impl Planned for AuroraChange {
    fn change(&self) -> Change {
        let cluster = |name: &str| ResourceRef::new("rds:cluster", name);
        match self {
            AuroraChange::SecurityGroup(c) => c.change(),
            AuroraChange::SubnetGroup { name } => {
                Change::new(Action::Create, ResourceRef::new("rds:db-subnet-group", name))
            }
            AuroraChange::CreateCluster {
                name,
                engine_version,
                acu: range,
                backup_retention_days,
                deletion_protection,
            } => Change::new(Action::Create, cluster(name))
                .field("engine", None::<&str>, Some(format!("aurora-postgresql {engine_version}")))
                .field("serverless_v2_acu", None::<&str>, Some(acu(*range)))
                .field("storage_encrypted", None::<bool>, Some(true))
                .field("manage_master_user_password", None::<bool>, Some(true))
                .field("backup_retention_days", None::<i32>, Some(backup_retention_days))
                .field("deletion_protection", None::<bool>, Some(deletion_protection)),
            AuroraChange::PreUpgradeSnapshot { cluster, name, have, want } => {
                Change::new(Action::Create, ResourceRef::new("rds:cluster-snapshot", name))
                    .field("cluster", None::<&str>, Some(cluster))
                    .because(format!(
                        "prod: taken before the engine upgrade {have} -> {want} and waited until available; \
                         kept afterwards (delete it by hand when no longer needed)"
                    ))
                    .typically(typical::AURORA_SNAPSHOT)
            }
            AuroraChange::UpgradeEngine { name, arn, have, want, major, refused } => {
                let c = Change::new(Action::Update, cluster(name).with_id(arn.as_str())).field(
                    "engine_version",
                    Some(have),
                    Some(want),
                );
                match (refused, major) {
                    (Some(reason), _) => c.because(format!("refused: {reason}")),
                    (None, None) => c
                        .because(
                            "minor upgrade in place (ModifyDBCluster EngineVersion, applied immediately): the \
                             instances restart on the new version, a short outage; not reversible",
                        )
                        .effect(Effect::Upgrade)
                        .typically(typical::AURORA_MINOR_UPGRADE),
                    (None, Some((have_groups, want_groups))) => c
                        .field("parameter_groups", Some(have_groups), Some(want_groups))
                        .field("allow_major_version_upgrade", None::<bool>, Some(true))
                        .because(
                            "major upgrade in place (ModifyDBCluster AllowMajorVersionUpgrade, the new family's \
                             default parameter groups, applied immediately): the cluster is unavailable while \
                             it upgrades; not reversible",
                        )
                        .effect(Effect::Upgrade)
                        .typically(typical::AURORA_MAJOR_UPGRADE),
                }
            }
            AuroraChange::UpdateCluster {
                name,
                arn,
                acu: range,
                backup_retention_days,
                deletion_protection,
                security_groups,
                data_api,
                tags,
            } => {
                let mut c = Change::new(Action::Update, cluster(name).with_id(arn.as_str()));
                if let Some((have, want)) = range {
                    c = c.field("serverless_v2_acu", Some(have.map(acu).unwrap_or_default()), Some(acu(*want)));
                }
                if let Some((have, want)) = backup_retention_days {
                    c = c.field("backup_retention_days", Some(have), Some(want));
                }
                if let Some((have, want)) = deletion_protection {
                    c = c.field("deletion_protection", Some(have), Some(want));
                }
                if let Some((have, want)) = security_groups {
                    let want = want.clone().unwrap_or_else(|| "(known after apply)".to_owned());
                    c = c.field("security_groups", Some(format!("{have:?}")), Some(format!("[{want:?}]")));
                }
                if *data_api {
                    c = c.field("data_api", Some(false), Some(true));
                }
                c.tag_fields(tags)
            }
            AuroraChange::CreateInstance { id, availability_zone } => {
                Change::new(Action::Create, ResourceRef::new("rds:instance", id))
                    .field("class", None::<&str>, Some("db.serverless"))
                    .field("availability_zone", None::<&str>, Some(availability_zone))
                    .field("publicly_accessible", None::<bool>, Some(false))
            }
            AuroraChange::DeleteInstance { id } => Change::new(Action::Delete, ResourceRef::new("rds:instance", id))
                .because("more instances than the spec asks for"),
            AuroraChange::AppSecret { name } => Change::new(
                Action::Create,
                ResourceRef::new("secretsmanager:secret", name),
            )
            .field("value", None::<&str>, Some("(generated)")),
            AuroraChange::Catalog(c) => c.clone(),
        }
    }
}

/// One change of Aurora, as [`AuroraProvisioner`]'s
/// [`changes`](dify_stack_core::Provisioner::changes) computes it and its
/// [`execute`](dify_stack_core::Provisioner::execute) carries it out. Opaque: what a plan shows
/// of it is its [`Planned::change`].
#[derive(Debug, Clone)]
pub struct AuroraStep(pub(crate) AuroraChange);

impl Planned for AuroraStep {
    fn change(&self) -> Change {
        self.0.change()
    }
}

impl AuroraChange {
    /// The refusal of a change that cannot run, checked before any write.
    pub(super) fn refusal(&self) -> Option<DatastoresError> {
        match self {
            AuroraChange::UpgradeEngine { name, have, want, refused: Some(reason), .. } => {
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

/// The default parameter group of the `aurora-postgresql<major>` family (the cluster's and the
/// instances' default groups share the name).
fn default_group(version: &str) -> String {
    format!("default.aurora-postgresql{}", major(version))
}

/// The engine version changes of an existing cluster: none, or the upgrade (after its snapshot
/// in prod), or the upgrade refused with the fix.
fn engine_changes(
    ctx: &Context,
    names: &AuroraNames,
    a: &AuroraSpec,
    c: &DbClusterInfo,
    o: &ObservedAurora,
) -> Vec<AuroraChange> {
    let (have, want) = (c.engine_version.clone(), a.engine_version.clone());
    let step = upgrade::step(&have, &want);
    let refused = match step {
        Step::Same => return Vec::new(),
        // A later minor of the same major is AWS's doing, not drift: minor upgrades are applied
        // automatically in the maintenance window by default (RDS API reference, CreateDBCluster
        // `AutoMinorVersionUpgrade`: "By default, minor engine upgrades are applied
        // automatically"). `aurora.engine_version` is the least version wanted within its major.
        Step::Downgrade if major(&have) == major(&want) => return Vec::new(),
        Step::Upgrade { major: false } => None,
        Step::Downgrade => Some(format!(
            "Aurora cannot return to an earlier engine version in place; keep aurora.engine_version = \"{have}\" \
             (or a later version): an earlier version needs a new cluster restored from a snapshot"
        )),
        Step::Unknown => Some(format!(
            "{have:?} and {want:?} do not compare as versions; set aurora.engine_version to {have:?} or a later version"
        )),
        Step::Upgrade { major: true } if !a.allow_major_version_upgrade => Some(format!(
            "a major version upgrade ({} -> {}) is not reversible and may need application changes, so it must be \
             permitted: set aurora.allow_major_version_upgrade = true to run it in place (AllowMajorVersionUpgrade, \
             with the {} default parameter groups), or keep aurora.engine_version = \"{have}\"",
            major(&have),
            major(&want),
            default_group(&want).trim_start_matches("default."),
        )),
        Step::Upgrade { major: true } => custom_groups(o).map(|custom| {
            format!(
                "the cluster uses the parameter group(s) {custom}, which dify-stack does not manage, and a major \
                 upgrade needs groups of the new family {family}: RDS refuses it while a custom instance group is \
                 in use unless a new one is named (terraform-provider-aws #35912); create {family} groups with \
                 your settings and upgrade by hand, or attach the default groups, then apply again",
                family = default_group(&want).trim_start_matches("default."),
            )
        }),
    };
    let major = matches!(step, Step::Upgrade { major: true }).then(|| (default_group(&have), default_group(&want)));
    let mut out = Vec::new();
    if refused.is_none() && upgrade::snapshot_first(ctx) && o.upgrade_snapshot.is_none() {
        out.push(AuroraChange::PreUpgradeSnapshot {
            cluster: names.cluster.clone(),
            name: crate::names::pre_upgrade_snapshot(&names.cluster, &have, &want),
            have: have.clone(),
            want: want.clone(),
        });
    }
    out.push(AuroraChange::UpgradeEngine {
        name: names.cluster.clone(),
        arn: c.arn.clone(),
        have,
        want,
        major,
        refused,
    });
    out
}

/// The parameter groups of the cluster and its instances that are not AWS defaults (`default.*`),
/// as the plan names them; `None` when all are defaults (or were not read).
fn custom_groups(o: &ObservedAurora) -> Option<String> {
    let groups = o.parameter_groups.as_ref()?;
    let custom: Vec<String> = groups
        .cluster
        .iter()
        .filter(|g| !g.starts_with("default."))
        .map(|g| format!("{g} (cluster)"))
        .chain(groups.instances.iter().filter_map(|(id, g)| {
            g.as_ref().filter(|g| !g.starts_with("default.")).map(|g| format!("{g} (instance {id})"))
        }))
        .collect();
    (!custom.is_empty()).then(|| custom.join(", "))
}

/// The security group as Aurora wants it.
pub(super) fn sg_want<'a>(spec: &'a DatastoresSpec, names: &'a AuroraNames, sources: &'a [String]) -> SgWant<'a> {
    SgWant {
        vpc_id: &spec.vpc_id,
        name: &names.security_group,
        component: "aurora-security-group",
        port: PORT,
        sources,
    }
}

/// True for an instance id that is not one of the `wanted` `<cluster>-<n>`.
pub(super) fn extra_instance(names: &AuroraNames, id: &str, wanted: u32) -> bool {
    id.strip_prefix(&format!("{}-", names.cluster))
        .and_then(|n| n.parse::<u32>().ok())
        .is_none_or(|n| n > wanted || n == 0)
}

impl AuroraProvisioner {
    /// Aurora's changes against one observation, in the order apply makes them.
    pub(crate) fn typed_changes(&self, ctx: &Context, spec: &DatastoresSpec, o: &ObservedAurora) -> Vec<AuroraChange> {
        let names = AuroraNames::of(ctx);
        let a = &spec.aurora;
        let data_api = self.data_api(ctx, spec);
        let mut out = Vec::new();
        let sources = security_group::sources(spec);
        if let Some(c) = security_group::change(ctx, sg_want(spec, &names, &sources), o.security_group.as_ref()) {
            out.push(AuroraChange::SecurityGroup(c));
        }
        if !o.subnet_group {
            out.push(AuroraChange::SubnetGroup { name: names.subnet_group.clone() });
        }
        match &o.cluster {
            None => out.push(AuroraChange::CreateCluster {
                name: names.cluster.clone(),
                engine_version: a.engine_version.clone(),
                acu: (a.min_acu, a.max_acu),
                backup_retention_days: a.backup_retention_days,
                deletion_protection: a.deletion_protection,
            }),
            Some(c) => {
                out.extend(engine_changes(ctx, &names, a, c, o));
                let ours = o.security_group.as_ref().map(|s| s.id.clone());
                let ours_tags = ctx.tags_for(Tier::Datastores, "aurora", &names.cluster);
                let update = AuroraChange::UpdateCluster {
                    name: names.cluster.clone(),
                    arn: c.arn.clone(),
                    acu: (c.acu != Some((a.min_acu, a.max_acu))).then_some((c.acu, (a.min_acu, a.max_acu))),
                    backup_retention_days: (c.backup_retention_days != a.backup_retention_days)
                        .then_some((c.backup_retention_days, a.backup_retention_days)),
                    deletion_protection: (c.deletion_protection != a.deletion_protection)
                        .then_some((c.deletion_protection, a.deletion_protection)),
                    security_groups: (ours.as_ref().is_none_or(|id| c.security_groups != [id.clone()])).then(|| {
                        (
                            c.security_groups.iter().map(ToString::to_string).collect(),
                            ours.map(SecurityGroupId::into_inner),
                        )
                    }),
                    data_api: data_api && !c.http_endpoint,
                    tags: dify_stack_core::tag_drift(&ours_tags, &c.tags),
                };
                // Each difference is one field of the plan's entry: none, nothing to update.
                if !update.change().fields.is_empty() {
                    out.push(update);
                }
            }
        }
        for i in 1..=a.instances as usize {
            let id = names.instance(i);
            if !o.instances.iter().any(|x| x.id == id) {
                let az = &spec.subnets[(i - 1) % spec.subnets.len().max(1)].availability_zone;
                out.push(AuroraChange::CreateInstance { id, availability_zone: az.clone() });
            }
        }
        for x in o.instances.iter().filter(|x| extra_instance(&names, &x.id, a.instances)) {
            out.push(AuroraChange::DeleteInstance { id: x.id.clone() });
        }
        // Inside PostgreSQL: what the Data API read (all of it when the cluster is new).
        let have_dbs = o.databases.clone().unwrap_or_default();
        for db in a.databases.iter().filter(|d| !have_dbs.contains(d)) {
            let known = o.databases.is_some() || o.cluster.is_none();
            if known || data_api {
                out.push(AuroraChange::Catalog(Change::new(Action::Create, ResourceRef::new("postgres:database", db))));
            }
        }
        if !o.app_secret {
            out.push(AuroraChange::AppSecret { name: SecretKind::AuroraApp.name(ctx) });
        }
        let user = &a.app_username;
        let role_known = o.app_role.is_some() || o.cluster.is_none();
        if (role_known || data_api) && o.app_role != Some(true) {
            out.push(AuroraChange::Catalog(
                Change::new(Action::Create, ResourceRef::new("postgres:role", user)).field(
                    "login",
                    None::<bool>,
                    Some(true),
                ),
            ));
        }
        let owned = o.app_owned.clone().unwrap_or_default();
        if role_known || data_api {
            for db in a.databases.iter().filter(|d| !owned.contains(d)) {
                out.push(AuroraChange::Catalog(
                    Change::new(Action::Update, ResourceRef::new("postgres:database", db)).field(
                        "owner",
                        None::<&str>,
                        Some(user.as_str()),
                    ),
                ));
            }
        }
        out
    }
}
