//! Diff: Aurora's typed changes from one observation. Its AWS resources (security group,
//! subnet group, cluster, instances) are executed change by change by apply; the objects inside
//! PostgreSQL (databases, the application role, ownership) are shown from what the Data API
//! read and converged by apply's SQL phase, which reads the catalog again when the cluster
//! changed (a new cluster's catalog cannot be read at plan time).

use dify_stack_core::{Action, Change, Context, Planned, ResourceRef, Tier};

use super::{AuroraNames, AuroraProvisioner, ObservedAurora, PORT, major};
use crate::secrets::SecretKind;
use crate::security_group::{self, SgChange, SgWant};
use crate::spec::DatastoresSpec;

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
    /// A major version change is a new cluster: refused (the data must be migrated).
    Replace { name: String, arn: String, have: String, want: String },
    /// ModifyDBCluster of what differs, our tags (AddTagsToResource), and the Data API
    /// (enabled by the SQL phase, which falls back to statements where the region refuses it).
    UpdateCluster {
        name: String,
        arn: String,
        acu: Option<(Option<Acu>, Acu)>,
        backup_retention_days: Option<(i32, i32)>,
        deletion_protection: Option<(bool, bool)>,
        /// The cluster's groups and ours (`None`: created by this run, its id known after apply).
        security_groups: Option<(Vec<String>, Option<String>)>,
        data_api: bool,
        tags: dify_stack_core::TagDrift,
    },
    /// An instance is created (the writer first, readers in the next AZs).
    CreateInstance { id: String, availability_zone: String },
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
            AuroraChange::Replace { name, arn, have, want } => Change::new(Action::Replace, cluster(name).with_id(arn))
                .field("engine_version", Some(have), Some(want))
                .because("a major version change is a new cluster (data must be migrated)"),
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
                let mut c = Change::new(Action::Update, cluster(name).with_id(arn));
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

/// The security group as Aurora wants it.
pub(super) fn sg_want<'a>(spec: &'a DatastoresSpec, names: &'a AuroraNames, sources: &'a [String]) -> SgWant<'a> {
    SgWant {
        vpc_id: spec.vpc_id.as_str(),
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
    pub(crate) fn changes(&self, ctx: &Context, spec: &DatastoresSpec, o: &ObservedAurora) -> Vec<AuroraChange> {
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
                if major(&c.engine_version) != major(&a.engine_version) {
                    out.push(AuroraChange::Replace {
                        name: names.cluster.clone(),
                        arn: c.arn.clone(),
                        have: c.engine_version.clone(),
                        want: a.engine_version.clone(),
                    });
                }
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
                    security_groups: (ours.as_ref().is_none_or(|id| c.security_groups != [id.clone()]))
                        .then(|| (c.security_groups.clone(), ours)),
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
                out.push(AuroraChange::CreateInstance { id, availability_zone: az.to_string() });
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
