//! Aurora Serverless v2 PostgreSQL: security group, DB subnet group, cluster with an
//! RDS-managed master password, `db.serverless` instances spread over the AZs, and the Dify
//! databases created through the RDS Data API.

use std::sync::Arc;

use async_trait::async_trait;
use dify_stack_core::ids::{Arn, SecretArn, SecurityGroupId};
use dify_stack_core::{Action, Change, Context, Plan, Provisioner, ResourceRef, SpecErrors, Tier};
use serde::Serialize;

use crate::client::{
    DbClusterCreate, DbClusterInfo, DbClusterModify, DbInstanceInfo, RdsApi, RdsStatus, SecretsApi, SgApi, SgInfo,
};
use crate::common::{DataPolicy, DatastoresError, Result, caps, tag_drift, wait_for, wait_state};
use crate::secrets::{self, SecretKind, StoredSecret};
use crate::security_group::{self, SgWant};
use crate::spec::{DatastoresSpec, data_api_available};
use dify_stack_core::wait::{Condition, Probe};
use dify_stack_core::{AwsAt, NotOwned};

pub(crate) mod apply;
mod destroy;
mod sql;
#[allow(unused_imports)]
use self::{apply::*, destroy::*, sql::*};

/// PostgreSQL's port.
pub const PORT: i32 = 5432;

pub use crate::names::AuroraNames;

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

fn major(version: &str) -> &str {
    version.split('.').next().unwrap_or(version)
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
            && c.status == RdsStatus::Available
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
        let want_sg = SgWant {
            vpc_id: spec.vpc_id.as_str(),
            name: &names.security_group,
            component: "aurora-security-group",
            port: PORT,
            sources: &sources,
        };
        if let Some(c) = security_group::change(ctx, want_sg, o.security_group.as_ref()) {
            plan.push(dify_stack_core::Planned::change(&c));
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
        self.apply_tier(ctx, spec).await
    }

    /// Instances -> cluster (final snapshot unless the policy deletes data) -> subnet group ->
    /// security group. Refuses before the first delete when the policy does not allow it.
    async fn destroy(&self, ctx: &Context, spec: &DatastoresSpec) -> Result<Vec<ResourceRef>> {
        self.destroy_tier(ctx, spec).await
    }
}
