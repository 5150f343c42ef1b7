//! Aurora Serverless v2 PostgreSQL: security group, DB subnet group, cluster with an
//! RDS-managed master password, `db.serverless` instances spread over the AZs, and the Dify
//! databases created through the RDS Data API.

use std::sync::Arc;

use async_trait::async_trait;
use dify_stack_core::ids::{Arn, SecretArn, SecurityGroupId};
use dify_stack_core::{Action, Change, Context, Plan, Provisioner, ResourceRef, SpecErrors, Tier};
use serde::Serialize;

use crate::client::{
    DbClusterCreate, DbClusterInfo, DbClusterModify, DbInstanceInfo, RdsApi, SecretsApi, SgApi, SgInfo,
};
use crate::common::security_group_change;
use crate::common::{
    DataPolicy, DatastoresError, Result, SgWant, caps, delete_security_group, ensure_security_group, tag_drift,
    wait_for,
};
use crate::secrets::{self, SecretKind, StoredSecret};
use crate::spec::{DatastoresSpec, data_api_available};
use dify_stack_core::{AwsAt, NotOwned};

/// PostgreSQL's port.
pub const PORT: i32 = 5432;

/// The names of Aurora's resources.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuroraNames {
    /// Cluster identifier, `<stack>-aurora`.
    pub cluster: String,
    /// DB subnet group.
    pub subnet_group: String,
    /// Security group.
    pub security_group: String,
}

impl AuroraNames {
    /// The names for a context.
    pub fn of(ctx: &Context) -> AuroraNames {
        let base = format!("{}-aurora", ctx.stack());
        AuroraNames { cluster: base.clone(), subnet_group: base.clone(), security_group: base }
    }

    /// Instance `i` (1-based): `<stack>-aurora-<i>`.
    pub fn instance(&self, i: usize) -> String {
        format!("{}-{i}", self.cluster)
    }
}

/// True when the service says the Data API is not offered for this cluster or region (as
/// opposed to a permission or a transient problem, which stay errors).
fn data_api_refused(e: &dify_stack_core::AwsError) -> bool {
    matches!(
        e.code.as_deref(),
        Some(
            "InvalidParameterCombination"
                | "UnsupportedOperation"
                | "UnsupportedOperationException"
                | "UnknownOperationException"
        )
    ) || e.message.as_deref().is_some_and(|m| m.contains("not supported") || m.contains("not available"))
}

/// What Aurora hands on.
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize)]
pub struct AuroraOutput {
    /// Cluster identifier.
    pub cluster_id: String,
    /// Cluster ARN.
    pub cluster_arn: Arn,
    /// Writer endpoint.
    pub writer_endpoint: String,
    /// Reader endpoint.
    pub reader_endpoint: String,
    /// Port.
    pub port: i32,
    /// The RDS-managed master user secret (`{"username","password"}`).
    pub master_secret_arn: Option<SecretArn>,
    /// Master user name.
    pub master_username: String,
    /// Security group of the cluster.
    pub security_group_id: SecurityGroupId,
    /// The databases that exist.
    pub databases: Vec<String>,
    /// Statements still to run by hand where the Data API is not available (e.g. China
    /// regions): connect to the writer as the master user and run them (the application
    /// role's password is in `<stack>/aurora-app`). Empty when done.
    pub pending_statements: Vec<String>,
    /// The application role Dify logs in as (owner of the databases).
    pub app_username: String,
    /// `<stack>/aurora-app`: `{"username","password"}` of the application role.
    pub app_secret: StoredSecret,
}

/// What exists.
#[derive(Debug, Clone, Default)]
pub struct ObservedAurora {
    /// Security group.
    pub security_group: Option<SgInfo>,
    /// DB subnet group exists.
    pub subnet_group: bool,
    /// Cluster.
    pub cluster: Option<DbClusterInfo>,
    /// Its instances.
    pub instances: Vec<DbInstanceInfo>,
    /// Databases, when they could be listed through the Data API.
    pub databases: Option<Vec<String>>,
    /// Whether the application role exists, when it could be read through the Data API.
    pub app_role: Option<bool>,
    /// Databases the application role owns, when they could be listed through the Data API.
    pub app_owned: Option<Vec<String>>,
    /// Whether `<stack>/aurora-app` exists (and is ours).
    pub app_secret: bool,
}

/// Provisions Aurora.
#[derive(Clone)]
pub struct AuroraProvisioner {
    rds: Arc<dyn RdsApi>,
    sg: Arc<dyn SgApi>,
    secrets: Arc<dyn SecretsApi>,
    policy: Option<DataPolicy>,
}

impl std::fmt::Debug for AuroraProvisioner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuroraProvisioner").field("policy", &self.policy).finish_non_exhaustive()
    }
}

fn sql_create(db: &str) -> String {
    // Names are validated to [a-z][a-z0-9_]*: quoting is for keywords, not for safety.
    format!("CREATE DATABASE \"{db}\"")
}

const LIST_DATABASES: &str = "SELECT datname FROM pg_database";

// The application role. Identifiers are validated to [a-z][a-z0-9_]* and the password is
// alphanumeric, so quoting is for keywords, not for safety. The master user of Aurora
// PostgreSQL is a member of rds_superuser, not a superuser: it may create roles (CREATEROLE),
// and may hand a database it owns to a role it is a member of (PostgreSQL "ALTER DATABASE":
// "you must be able to SET ROLE to the new owning role"), hence the GRANT first. Owning the
// database makes the role the owner of its `public` schema's rights (pg_database_owner, PG 15+).

fn sql_role_exists(user: &str) -> String {
    format!("SELECT rolname FROM pg_roles WHERE rolname = '{user}'")
}
fn sql_owned_by(user: &str) -> String {
    format!("SELECT datname FROM pg_database WHERE pg_get_userbyid(datdba) = '{user}'")
}
fn sql_create_role(user: &str, password: &str) -> String {
    format!("CREATE ROLE \"{user}\" WITH LOGIN PASSWORD '{password}'")
}
fn sql_set_password(user: &str, password: &str) -> String {
    format!("ALTER ROLE \"{user}\" WITH LOGIN PASSWORD '{password}'")
}
fn sql_grant_to_master(user: &str) -> String {
    format!("GRANT \"{user}\" TO CURRENT_USER")
}
fn sql_owner(db: &str, user: &str) -> String {
    format!("ALTER DATABASE \"{db}\" OWNER TO \"{user}\"")
}

/// What the application role needs, as statements for a person to run where the Data API is
/// unavailable (the password is not printed: it is read from the secret).
fn pending_role_statements(a: &crate::spec::AuroraSpec, secret_name: &str) -> Vec<String> {
    let user = &a.app_username;
    let mut v =
        vec![sql_create_role(user, &format!("<password from the secret {secret_name}>")), sql_grant_to_master(user)];
    v.extend(a.databases.iter().map(|db| sql_owner(db, user)));
    v
}

fn major(version: &str) -> &str {
    version.split('.').next().unwrap_or(version)
}

fn final_snapshot_name(ctx: &Context) -> String {
    let now = aws_smithy_types::DateTime::from(std::time::SystemTime::now());
    let stamp: String = now
        .fmt(aws_smithy_types::date_time::Format::DateTime)
        .unwrap_or_default()
        .chars()
        .filter(char::is_ascii_digit)
        .take(14)
        .collect();
    format!("{}-final-{stamp}", ctx.stack())
}

impl AuroraProvisioner {
    /// A provisioner over the given clients.
    pub fn new(rds: Arc<dyn RdsApi>, sg: Arc<dyn SgApi>, secrets: Arc<dyn SecretsApi>) -> Self {
        AuroraProvisioner { rds, sg, secrets, policy: None }
    }

    /// Sets the data policy for destroy (default: [`DataPolicy::from_context`]).
    pub fn with_data_policy(mut self, policy: DataPolicy) -> Self {
        self.policy = Some(policy);
        self
    }

    fn data_api(&self, ctx: &Context, spec: &DatastoresSpec) -> bool {
        spec.aurora.data_api && data_api_available(ctx.region())
    }

    /// What would stop destroy from deleting the cluster under `policy`; empty when nothing.
    pub async fn data_holders(&self, ctx: &Context, spec: &DatastoresSpec, policy: DataPolicy) -> Result<Vec<String>> {
        let names = AuroraNames::of(ctx);
        let Some(c) =
            self.rds.describe_cluster(names.cluster.clone()).await.at("DescribeDBClusters", &names.cluster)?
        else {
            return Ok(Vec::new());
        };
        if !ctx.owns_tags(&c.tags) {
            return Ok(Vec::new());
        }
        let mut holders = Vec::new();
        if c.deletion_protection && !policy.lift_deletion_protection {
            holders.push(format!("Aurora cluster {} has deletion protection on", names.cluster));
        }
        if !spec.aurora.final_snapshot && !policy.delete_data {
            holders.push(format!("Aurora cluster {} would be deleted without a final snapshot", names.cluster));
        }
        Ok(holders)
    }
}

#[async_trait]
impl Provisioner for AuroraProvisioner {
    type Spec = DatastoresSpec;
    type Observed = ObservedAurora;
    type Output = AuroraOutput;
    type Error = DatastoresError;

    fn validate(&self, ctx: &Context, spec: &DatastoresSpec) -> Result<(), SpecErrors> {
        spec.validate(ctx)
    }

    async fn observe(&self, ctx: &Context, spec: &DatastoresSpec) -> Result<ObservedAurora> {
        let names = AuroraNames::of(ctx);
        let mut o = ObservedAurora::default();
        if let Some(sg) = self
            .sg
            .find(spec.vpc_id.to_string(), names.security_group.clone())
            .await
            .at("DescribeSecurityGroups", &names.security_group)?
        {
            NotOwned::check(ctx, "security group", &names.security_group, &sg.tags)?;
            o.security_group = Some(sg);
        }
        if let Some(tags) = self
            .rds
            .find_subnet_group(names.subnet_group.clone())
            .await
            .at("DescribeDBSubnetGroups", &names.subnet_group)?
        {
            NotOwned::check(ctx, "DB subnet group", &names.subnet_group, &tags)?;
            o.subnet_group = true;
        }
        let Some(c) =
            self.rds.describe_cluster(names.cluster.clone()).await.at("DescribeDBClusters", &names.cluster)?
        else {
            return Ok(o);
        };
        NotOwned::check(ctx, "Aurora cluster", &names.cluster, &c.tags)?;
        o.instances = self.rds.list_instances(names.cluster.clone()).await.at("DescribeDBInstances", &names.cluster)?;
        if self.data_api(ctx, spec)
            && c.http_endpoint
            && c.status == "available"
            && let Some(secret) = &c.master_secret_arn
        {
            let dbs = self
                .rds
                .execute(c.arn.clone(), secret.clone(), "postgres".to_owned(), LIST_DATABASES.to_owned())
                .await
                .at("ExecuteStatement", &names.cluster)?;
            o.databases = Some(dbs);
            let user = &spec.aurora.app_username;
            let run = |sql: String| self.rds.execute(c.arn.clone(), secret.clone(), "postgres".to_owned(), sql);
            o.app_role = Some(!run(sql_role_exists(user)).await.at("ExecuteStatement", &names.cluster)?.is_empty());
            o.app_owned = Some(run(sql_owned_by(user)).await.at("ExecuteStatement", &names.cluster)?);
        }
        o.app_secret = secrets::secret_exists(ctx, self.secrets.as_ref(), SecretKind::AuroraApp).await?;
        o.cluster = Some(c);
        Ok(o)
    }

    fn diff(&self, ctx: &Context, spec: &DatastoresSpec, o: &ObservedAurora) -> Plan {
        let names = AuroraNames::of(ctx);
        let a = &spec.aurora;
        let mut plan = Plan::new();
        let sources: Vec<String> = spec.source_security_groups.iter().map(|s| s.to_string()).collect();
        if let Some(c) = security_group_change(&names.security_group, o.security_group.as_ref(), PORT, &sources) {
            plan.push(c);
        }
        if !o.subnet_group {
            plan.push(Change::new(Action::Create, ResourceRef::new("rds:db-subnet-group", &names.subnet_group)));
        }
        let cluster_ref = ResourceRef::new("rds:cluster", &names.cluster);
        match &o.cluster {
            None => plan.push(
                Change::new(Action::Create, cluster_ref)
                    .field("engine", None::<&str>, Some(format!("aurora-postgresql {}", a.engine_version)))
                    .field("serverless_v2_acu", None::<&str>, Some(format!("{}-{}", a.min_acu, a.max_acu)))
                    .field("storage_encrypted", None::<bool>, Some(true))
                    .field("manage_master_user_password", None::<bool>, Some(true))
                    .field("backup_retention_days", None::<i32>, Some(a.backup_retention_days))
                    .field("deletion_protection", None::<bool>, Some(a.deletion_protection)),
            ),
            Some(c) => {
                let r = cluster_ref.with_id(&c.arn);
                if major(&c.engine_version) != major(&a.engine_version) {
                    plan.push(
                        Change::new(Action::Replace, r.clone())
                            .field("engine_version", Some(&c.engine_version), Some(&a.engine_version))
                            .because("a major version change is a new cluster (data must be migrated)"),
                    );
                }
                let mut ch = Change::new(Action::Update, r);
                if c.acu != Some((a.min_acu, a.max_acu)) {
                    let have = c.acu.map(|(l, h)| format!("{l}-{h}")).unwrap_or_default();
                    ch = ch.field("serverless_v2_acu", Some(have), Some(format!("{}-{}", a.min_acu, a.max_acu)));
                }
                if c.backup_retention_days != a.backup_retention_days {
                    ch =
                        ch.field("backup_retention_days", Some(c.backup_retention_days), Some(a.backup_retention_days));
                }
                if c.deletion_protection != a.deletion_protection {
                    ch = ch.field("deletion_protection", Some(c.deletion_protection), Some(a.deletion_protection));
                }
                if self.data_api(ctx, spec) && !c.http_endpoint {
                    ch = ch.field("data_api", Some(false), Some(true));
                }
                let tags = ctx.tags_for(Tier::Datastores, "aurora", &names.cluster);
                for (k, v) in tag_drift(&tags, &c.tags) {
                    ch = ch.field(format!("tags.{k}"), c.tags.get(&k), Some(v));
                }
                if !ch.fields.is_empty() {
                    plan.push(ch);
                }
            }
        }
        for i in 1..=a.instances as usize {
            let id = names.instance(i);
            if !o.instances.iter().any(|x| x.id == id) {
                let az = &spec.subnets[(i - 1) % spec.subnets.len().max(1)].availability_zone;
                plan.push(
                    Change::new(Action::Create, ResourceRef::new("rds:instance", &id))
                        .field("class", None::<&str>, Some("db.serverless"))
                        .field("availability_zone", None::<&str>, Some(az.as_str()))
                        .field("publicly_accessible", None::<bool>, Some(false)),
                );
            }
        }
        for x in o.instances.iter().filter(|x| {
            x.id.strip_prefix(&format!("{}-", names.cluster))
                .and_then(|n| n.parse::<u32>().ok())
                .is_none_or(|n| n > a.instances || n == 0)
        }) {
            plan.push(
                Change::new(Action::Delete, ResourceRef::new("rds:instance", &x.id))
                    .because("more instances than the spec asks for"),
            );
        }
        let have_dbs = o.databases.clone().unwrap_or_default();
        for db in a.databases.iter().filter(|d| !have_dbs.contains(d)) {
            let known = o.databases.is_some() || o.cluster.is_none();
            if known || self.data_api(ctx, spec) {
                plan.push(Change::new(Action::Create, ResourceRef::new("postgres:database", db)));
            }
        }
        if !o.app_secret {
            plan.push(
                Change::new(Action::Create, ResourceRef::new("secretsmanager:secret", SecretKind::AuroraApp.name(ctx)))
                    .field("value", None::<&str>, Some("(generated)")),
            );
        }
        let user = &a.app_username;
        let role_known = o.app_role.is_some() || o.cluster.is_none();
        if (role_known || self.data_api(ctx, spec)) && o.app_role != Some(true) {
            plan.push(Change::new(Action::Create, ResourceRef::new("postgres:role", user)).field(
                "login",
                None::<bool>,
                Some(true),
            ));
        }
        let owned = o.app_owned.clone().unwrap_or_default();
        if role_known || self.data_api(ctx, spec) {
            for db in a.databases.iter().filter(|d| !owned.contains(d)) {
                plan.push(Change::new(Action::Update, ResourceRef::new("postgres:database", db)).field(
                    "owner",
                    None::<&str>,
                    Some(user.as_str()),
                ));
            }
        }
        plan
    }

    async fn apply(&self, ctx: &Context, spec: &DatastoresSpec) -> Result<AuroraOutput> {
        spec.validate(ctx)?;
        let names = AuroraNames::of(ctx);
        let a = &spec.aurora;
        let o = self.observe(ctx, spec).await?;
        if let Some(c) = self.diff(ctx, spec, &o).with_action(Action::Replace).next() {
            let f = &c.fields[0];
            return Err(DatastoresError::ReplacementRefused {
                resource: c.resource.name.clone(),
                field: f.path.clone(),
                have: f.before.clone().unwrap_or_default(),
                want: f.after.clone().unwrap_or_default(),
            });
        }
        let sources: Vec<String> = spec.source_security_groups.iter().map(|s| s.to_string()).collect();
        let sg = ensure_security_group(
            ctx,
            self.sg.as_ref(),
            SgWant {
                vpc_id: spec.vpc_id.as_str(),
                name: &names.security_group,
                component: "aurora-security-group",
                port: PORT,
                sources: &sources,
            },
            o.security_group.clone(),
        )
        .await?;
        if !o.subnet_group {
            let subnets = spec.subnets.iter().map(|s| s.id.to_string()).collect();
            let tags = ctx.tags_for(Tier::Datastores, "aurora-subnet-group", &names.subnet_group);
            match self.rds.create_subnet_group(names.subnet_group.clone(), subnets, tags).await {
                Ok(()) => {}
                Err(e) if e.is_already_exists() => {}
                Err(e) => return Err(e.at("CreateDBSubnetGroup", &names.subnet_group).into()),
            }
        }
        let tags = ctx.tags_for(Tier::Datastores, "aurora", &names.cluster);
        // Whether this run changed anything: when not, and all was available, the observation
        // stands and no wait (no further read) is needed.
        let mut touched = o.cluster.is_none();
        let mut cluster = match o.cluster.clone() {
            None => {
                let create = DbClusterCreate {
                    id: names.cluster.clone(),
                    engine_version: a.engine_version.clone(),
                    acu: (a.min_acu, a.max_acu),
                    subnet_group: names.subnet_group.clone(),
                    security_group: sg.clone(),
                    master_username: a.master_username.clone(),
                    backup_retention_days: a.backup_retention_days,
                    deletion_protection: a.deletion_protection,
                    http_endpoint: self.data_api(ctx, spec),
                    tags: tags.clone(),
                };
                match self.rds.create_cluster(create).await {
                    Ok(c) => {
                        tracing::info!(cluster = %names.cluster, "creating Aurora cluster");
                        c
                    }
                    Err(e) if e.is_already_exists() => self
                        .rds
                        .describe_cluster(names.cluster.clone())
                        .await
                        .at("DescribeDBClusters", &names.cluster)?
                        .ok_or(e)
                        .at("CreateDBCluster", &names.cluster)?,
                    Err(e) => return Err(e.at("CreateDBCluster", &names.cluster).into()),
                }
            }
            Some(c) => {
                let mut m = DbClusterModify::default();
                if c.acu != Some((a.min_acu, a.max_acu)) {
                    m.acu = Some((a.min_acu, a.max_acu));
                }
                if c.backup_retention_days != a.backup_retention_days {
                    m.backup_retention_days = Some(a.backup_retention_days);
                }
                if c.deletion_protection != a.deletion_protection {
                    m.deletion_protection = Some(a.deletion_protection);
                }
                if c.security_groups != [sg.clone()] {
                    m.security_groups = Some(vec![sg.clone()]);
                }
                if m != DbClusterModify::default() {
                    self.rds.modify_cluster(names.cluster.clone(), m).await.at("ModifyDBCluster", &names.cluster)?;
                    touched = true;
                }
                let drift = tag_drift(&tags, &c.tags);
                if !drift.is_empty() {
                    self.rds.tag(c.arn.clone(), drift).await.at("AddTagsToResource", &names.cluster)?;
                }
                c
            }
        };
        // Instances: the writer first, readers in the next AZs.
        let mut created = Vec::new();
        for i in 1..=a.instances as usize {
            let id = names.instance(i);
            if o.instances.iter().any(|x| x.id == id) {
                continue;
            }
            let az = spec.subnets[(i - 1) % spec.subnets.len()].availability_zone.to_string();
            let itags = ctx.tags_for(Tier::Datastores, "aurora-instance", &id);
            match self.rds.create_instance(id.clone(), names.cluster.clone(), az, itags).await {
                Ok(()) => tracing::info!(instance = %id, "creating Aurora instance"),
                Err(e) if e.is_already_exists() => {}
                Err(e) => return Err(e.at("CreateDBInstance", &id).into()),
            }
            created.push(id);
        }
        for x in &o.instances {
            let extra =
                x.id.strip_prefix(&format!("{}-", names.cluster))
                    .and_then(|n| n.parse::<u32>().ok())
                    .is_none_or(|n| n > a.instances || n == 0);
            if extra && x.status != "deleting" {
                dify_stack_core::ignore_not_found(self.rds.delete_instance(x.id.clone()).await)
                    .at("DeleteDBInstance", &x.id)?;
                touched = true;
            }
        }
        let cluster_id = names.cluster.clone();
        let settled = !touched
            && created.is_empty()
            && cluster.status == "available"
            && o.instances.len() == a.instances as usize
            && o.instances.iter().all(|x| x.status == "available");
        if !settled {
            wait_for(ctx, format!("Aurora cluster {cluster_id} to be available"), caps::AURORA_CLUSTER, || async {
                match self.rds.describe_cluster(cluster_id.clone()).await.at("DescribeDBClusters", &cluster_id)? {
                    Some(c) if c.status == "available" => Ok(None),
                    Some(c)
                        if matches!(
                            c.status.as_str(),
                            "failed" | "inaccessible-encryption-credentials" | "incompatible-parameters"
                        ) =>
                    {
                        Err(DatastoresError::Failed {
                            kind: "Aurora cluster",
                            name: cluster_id.clone(),
                            status: c.status,
                        })
                    }
                    Some(c) => Ok(Some(c.status)),
                    None => Ok(Some("not visible yet".to_owned())),
                }
            })
            .await?;
            wait_for(
                ctx,
                format!("Aurora instances of {cluster_id} to be available"),
                caps::AURORA_INSTANCE,
                || async {
                    let all =
                        self.rds.list_instances(cluster_id.clone()).await.at("DescribeDBInstances", &cluster_id)?;
                    let wanted: Vec<&DbInstanceInfo> = all.iter().filter(|x| x.status != "deleting").collect();
                    if let Some(x) =
                        wanted.iter().find(|x| x.status.starts_with("incompatible") || x.status == "failed")
                    {
                        return Err(DatastoresError::Failed {
                            kind: "Aurora instance",
                            name: x.id.clone(),
                            status: x.status.clone(),
                        });
                    }
                    let pending: Vec<String> = wanted
                        .iter()
                        .filter(|x| x.status != "available")
                        .map(|x| format!("{} {}", x.id, x.status))
                        .collect();
                    let missing =
                        (1..=a.instances as usize).filter(|i| !all.iter().any(|x| x.id == names.instance(*i))).count();
                    Ok(if pending.is_empty() && missing == 0 { None } else { Some(pending.join(", ")) })
                },
            )
            .await?;
            cluster = self
                .rds
                .describe_cluster(cluster_id.clone())
                .await
                .at("DescribeDBClusters", &cluster_id)?
                .unwrap_or(cluster);
        }

        // The application role's secret first: its password goes into CREATE ROLE.
        let app_secret_fresh = !o.app_secret;
        let app_secret =
            secrets::ensure_secret(ctx, self.secrets.as_ref(), SecretKind::AuroraApp, &a.app_username).await?;

        // Databases through the Data API, or the statements to run by hand.
        let mut databases = Vec::new();
        let mut pending_statements = Vec::new();
        let secret = cluster.master_secret_arn.clone();
        let mut data_api = self.data_api(ctx, spec);
        if data_api && !cluster.http_endpoint {
            match self.rds.enable_http_endpoint(cluster.arn.clone()).await {
                Ok(()) => {}
                // A region missing from the table in `spec.rs` refuses the Data API: fall back
                // to the statements, as where it is known to be absent.
                Err(e) if data_api_refused(&e) => {
                    tracing::warn!(cluster = %cluster_id, error = %e, "the RDS Data API was refused here");
                    data_api = false;
                }
                Err(e) => return Err(e.at("EnableHttpEndpoint", &cluster_id).into()),
            }
        }
        if data_api && let Some(secret) = &secret {
            let have = match (&o.databases, settled) {
                (Some(dbs), true) => dbs.clone(),
                _ => self
                    .rds
                    .execute(cluster.arn.clone(), secret.clone(), "postgres".to_owned(), LIST_DATABASES.to_owned())
                    .await
                    .at("ExecuteStatement", &cluster_id)?,
            };
            for db in &a.databases {
                if !have.contains(db) {
                    match self
                        .rds
                        .execute(cluster.arn.clone(), secret.clone(), "postgres".to_owned(), sql_create(db))
                        .await
                    {
                        Ok(_) => tracing::info!(database = %db, "created database"),
                        // A concurrent or lost-response create: it exists now.
                        Err(e) if e.message.as_deref().is_some_and(|m| m.contains("already exists")) => {}
                        Err(e) => return Err(e.at("ExecuteStatement", db).into()),
                    }
                }
                databases.push(db.clone());
            }
            self.ensure_app_role(&cluster.arn, secret, a, &app_secret, app_secret_fresh, &o).await?;
        } else {
            pending_statements = a.databases.iter().map(|d| sql_create(d)).collect();
            pending_statements.extend(pending_role_statements(a, &app_secret.name));
            tracing::warn!(
                cluster = %cluster_id,
                statements = ?pending_statements,
                "the RDS Data API is not available here: run these statements as the master user"
            );
        }
        Ok(AuroraOutput {
            cluster_id: cluster_id.clone(),
            cluster_arn: Arn::new(&cluster.arn),
            writer_endpoint: cluster.endpoint.clone().unwrap_or_default(),
            reader_endpoint: cluster.reader_endpoint.clone().unwrap_or_default(),
            port: cluster.port.unwrap_or(PORT),
            master_secret_arn: secret.map(SecretArn::new),
            master_username: a.master_username.clone(),
            security_group_id: SecurityGroupId::new(sg),
            databases,
            pending_statements,
            app_username: a.app_username.clone(),
            app_secret,
        })
    }

    /// Instances -> cluster (final snapshot unless the policy deletes data) -> subnet group ->
    /// security group. Refuses before the first delete when the policy does not allow it.
    async fn destroy(&self, ctx: &Context, spec: &DatastoresSpec) -> Result<Vec<ResourceRef>> {
        let policy = self.policy.unwrap_or_else(|| DataPolicy::from_context(ctx));
        let holders = self.data_holders(ctx, spec, policy).await?;
        if !holders.is_empty() {
            return Err(DatastoresError::DataLossRefused {
                holders,
                hint: "set lift_deletion_protection (and delete_data to skip the final snapshot) in the data policy"
                    .to_owned(),
            });
        }
        let names = AuroraNames::of(ctx);
        let mut deleted = Vec::new();
        let cluster_id = names.cluster.clone();
        if let Some(c) = self
            .rds
            .describe_cluster(cluster_id.clone())
            .await
            .at("DescribeDBClusters", &cluster_id)?
            .filter(|c| ctx.owns_tags(&c.tags))
        {
            if c.deletion_protection {
                self.rds
                    .modify_cluster(
                        cluster_id.clone(),
                        DbClusterModify { deletion_protection: Some(false), ..Default::default() },
                    )
                    .await
                    .at("ModifyDBCluster", &cluster_id)?;
            }
            for x in self.rds.list_instances(cluster_id.clone()).await.at("DescribeDBInstances", &cluster_id)? {
                if x.status != "deleting" {
                    dify_stack_core::ignore_not_found(self.rds.delete_instance(x.id.clone()).await)
                        .at("DeleteDBInstance", &x.id)?;
                }
                deleted.push(ResourceRef::new("rds:instance", &x.id));
            }
            wait_for(ctx, format!("Aurora instances of {cluster_id} to be deleted"), caps::AURORA_INSTANCE, || async {
                let left = self.rds.list_instances(cluster_id.clone()).await.at("DescribeDBInstances", &cluster_id)?;
                Ok((!left.is_empty()).then(|| format!("{} left", left.len())))
            })
            .await?;
            let snapshot = (spec.aurora.final_snapshot && !policy.delete_data).then(|| final_snapshot_name(ctx));
            if c.status != "deleting" {
                dify_stack_core::ignore_not_found(self.rds.delete_cluster(cluster_id.clone(), snapshot.clone()).await)
                    .at("DeleteDBCluster", &cluster_id)?;
            }
            if let Some(s) = &snapshot {
                tracing::info!(cluster = %cluster_id, snapshot = %s, "final snapshot requested");
            }
            wait_for(ctx, format!("Aurora cluster {cluster_id} to be deleted"), caps::AURORA_CLUSTER, || async {
                Ok(self
                    .rds
                    .describe_cluster(cluster_id.clone())
                    .await
                    .at("DescribeDBClusters", &cluster_id)?
                    .map(|c| c.status))
            })
            .await?;
            deleted.push(ResourceRef::new("rds:cluster", &cluster_id).with_id(&c.arn));
        }
        if let Some(tags) = self
            .rds
            .find_subnet_group(names.subnet_group.clone())
            .await
            .at("DescribeDBSubnetGroups", &names.subnet_group)?
            && ctx.owns_tags(&tags)
        {
            dify_stack_core::ignore_not_found(self.rds.delete_subnet_group(names.subnet_group.clone()).await)
                .at("DeleteDBSubnetGroup", &names.subnet_group)?;
            deleted.push(ResourceRef::new("rds:db-subnet-group", &names.subnet_group));
        }
        if let Some(id) =
            delete_security_group(ctx, self.sg.as_ref(), spec.vpc_id.as_str(), &names.security_group).await?
        {
            deleted.push(ResourceRef::new("ec2:security-group", &names.security_group).with_id(id));
        }
        // The application role went with the cluster; its password with it.
        if let Some(arn) = secrets::delete_secret(ctx, self.secrets.as_ref(), SecretKind::AuroraApp, policy).await? {
            deleted.push(ResourceRef::new("secretsmanager:secret", SecretKind::AuroraApp.name(ctx)).with_id(arn));
        }
        Ok(deleted)
    }
}

impl AuroraProvisioner {
    /// The application role through the Data API, as the master user: created with the
    /// secret's password (or given it when the secret is new), then made owner of every database.
    /// Reads only when it is already so.
    async fn ensure_app_role(
        &self,
        cluster_arn: &str,
        master_secret: &str,
        a: &crate::spec::AuroraSpec,
        app_secret: &StoredSecret,
        secret_fresh: bool,
        o: &ObservedAurora,
    ) -> Result<()> {
        use secrecy::ExposeSecret as _;
        let user = &a.app_username;
        let run = |sql: String| {
            self.rds.execute(cluster_arn.to_owned(), master_secret.to_owned(), "postgres".to_owned(), sql)
        };
        let password = app_secret.field("password").map(|p| p.expose_secret().to_owned()).unwrap_or_default();
        let exists = match o.app_role {
            Some(e) => e,
            None => !run(sql_role_exists(user)).await.at("ExecuteStatement", user)?.is_empty(),
        };
        if !exists {
            match run(sql_create_role(user, &password)).await {
                Ok(_) => tracing::info!(role = %user, "created the application database role"),
                // A lost response of our own create: the role is there; set the password below.
                Err(e) if e.message.as_deref().is_some_and(|m| m.contains("already exists")) => {
                    run(sql_set_password(user, &password)).await.at("ExecuteStatement", user)?;
                }
                Err(e) => return Err(e.at("ExecuteStatement", user).into()),
            }
        } else if secret_fresh {
            // The role outlived its secret (deleted by hand): the new password must be the role's.
            run(sql_set_password(user, &password)).await.at("ExecuteStatement", user)?;
        }
        let owned = match (&o.app_owned, exists) {
            (Some(owned), true) => owned.clone(),
            _ => run(sql_owned_by(user)).await.at("ExecuteStatement", user)?,
        };
        let missing: Vec<&String> = a.databases.iter().filter(|d| !owned.contains(d)).collect();
        if !missing.is_empty() {
            run(sql_grant_to_master(user)).await.at("ExecuteStatement", user)?;
            for db in missing {
                run(sql_owner(db, user)).await.at("ExecuteStatement", db)?;
                tracing::info!(database = %db, owner = %user, "database handed to the application role");
            }
        }
        Ok(())
    }
}
