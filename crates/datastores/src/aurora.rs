//! Aurora Serverless v2 PostgreSQL: security group, DB subnet group, cluster with an
//! RDS-managed master password, `db.serverless` instances spread over the AZs, and the Dify
//! databases created through the RDS Data API.

use std::sync::Arc;

use async_trait::async_trait;
use dify_stack_core::ids::{Arn, SecretArn, SecurityGroupId};
use dify_stack_core::{Context, Provisioner, ResourceRef, SpecErrors, Tier};
use serde::Serialize;

use crate::client::{
    DbClusterCreate, DbClusterInfo, DbClusterModify, DbEngineUpgrade, DbInstanceInfo, DbParameterGroups, RdsApi,
    RdsStatus, SecretsApi, SgApi, SgInfo,
};
use crate::common::{DataPolicy, DatastoresError, Result, caps, wait_for, wait_state};
use crate::secrets::{self, SecretKind, StoredSecret};
use crate::security_group;
use crate::spec::{AuroraSelector, DatastoresSpec, data_api_available};
use crate::upgrade::{self, Step};
use dify_stack_core::wait::{Condition, Probe};
use dify_stack_core::{AwsAt, NotOwned};

pub(crate) mod apply;
mod destroy;
mod diff;
mod sql;
use self::sql::*;
pub use diff::AuroraStep;

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
    /// The parameter groups of the cluster and its instances: read only when a permitted major
    /// upgrade is wanted (it needs groups of the new family).
    pub parameter_groups: Option<DbParameterGroups>,
    /// The status of the pre-upgrade snapshot: read only in prod when an engine upgrade is
    /// wanted; `None` when it does not exist (or was not read).
    pub upgrade_snapshot: Option<String>,
}

/// Provisions Aurora.
#[derive(Clone)]
pub struct AuroraProvisioner {
    rds: Arc<dyn RdsApi>,
    sg: Arc<dyn SgApi>,
    secrets: Arc<dyn SecretsApi>,
}

impl std::fmt::Debug for AuroraProvisioner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuroraProvisioner").finish_non_exhaustive()
    }
}

impl AuroraProvisioner {
    /// A provisioner over the given clients.
    pub fn new(rds: Arc<dyn RdsApi>, sg: Arc<dyn SgApi>, secrets: Arc<dyn SecretsApi>) -> Self {
        AuroraProvisioner { rds, sg, secrets }
    }

    fn data_api(&self, ctx: &Context, spec: &DatastoresSpec) -> bool {
        spec.aurora.data_api && data_api_available(ctx.region())
    }

    /// What would stop destroy from deleting the cluster under `policy`; empty when nothing.
    pub async fn data_holders(&self, ctx: &Context, spec: &DatastoresSpec, policy: DataPolicy) -> Result<Vec<String>> {
        self.data_holders_of(ctx, spec.aurora.final_snapshot, policy).await
    }

    /// [`Self::data_holders`] with what it reads of a spec (or an [`AuroraSelector`]): whether
    /// the cluster goes with a final snapshot (`aurora.final_snapshot`).
    pub async fn data_holders_of(
        &self,
        ctx: &Context,
        final_snapshot: bool,
        policy: DataPolicy,
    ) -> Result<Vec<String>> {
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
        if !final_snapshot && !policy.delete_data {
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
    type Selector = AuroraSelector;
    type Change = AuroraStep;

    fn validate(&self, ctx: &Context, spec: &DatastoresSpec) -> Result<(), SpecErrors> {
        spec.validate(ctx)
    }

    async fn observe(&self, ctx: &Context, spec: &DatastoresSpec) -> Result<ObservedAurora> {
        let names = AuroraNames::of(ctx);
        let mut o = ObservedAurora::default();
        if let Some(sg) = self
            .sg
            .find(spec.vpc_id.clone(), names.security_group.clone())
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
        // Read only when an engine upgrade is wanted (and not refused for want of permission).
        let want = &spec.aurora.engine_version;
        if let Step::Upgrade { major } = upgrade::step(&c.engine_version, want)
            && (!major || spec.aurora.allow_major_version_upgrade)
        {
            if major {
                let groups =
                    self.rds.parameter_groups(names.cluster.clone()).await.at("DescribeDBClusters", &names.cluster)?;
                o.parameter_groups = Some(groups);
            }
            if upgrade::snapshot_first(ctx) {
                let snapshot = crate::names::pre_upgrade_snapshot(&names.cluster, &c.engine_version, want);
                o.upgrade_snapshot = self
                    .rds
                    .cluster_snapshot_status(snapshot.clone())
                    .await
                    .at("DescribeDBClusterSnapshots", &snapshot)?;
            }
        }
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

    fn changes(&self, ctx: &Context, spec: &DatastoresSpec, o: &ObservedAurora) -> Vec<AuroraStep> {
        self.typed_changes(ctx, spec, o).into_iter().map(AuroraStep).collect()
    }

    /// An engine upgrade an interrupted run started is waited for, then everything observed
    /// again.
    async fn settle(&self, ctx: &Context, spec: &DatastoresSpec, o: ObservedAurora) -> Result<ObservedAurora> {
        self.settle_tier(ctx, spec, o).await
    }

    /// An engine upgrade that cannot run (a downgrade, a major one not permitted, a custom
    /// parameter group).
    fn refusal(&self, _ctx: &Context, _spec: &DatastoresSpec, change: &AuroraStep) -> Option<DatastoresError> {
        change.0.refusal()
    }

    /// Executes the typed changes of one observation, then converges the databases and the
    /// application role through the Data API (or lists the statements to run).
    async fn execute(
        &self,
        ctx: &Context,
        spec: &DatastoresSpec,
        o: ObservedAurora,
        changes: Vec<AuroraStep>,
    ) -> Result<AuroraOutput> {
        self.execute_tier(ctx, spec, o, changes.into_iter().map(|c| c.0).collect()).await
    }

    /// Instances -> cluster (final snapshot unless the policy deletes data) -> subnet group ->
    /// security group. Refuses before the first delete when the policy does not allow it.
    fn selector(&self, _ctx: &Context, spec: &DatastoresSpec) -> AuroraSelector {
        AuroraSelector { vpc_id: Some(spec.vpc_id.clone()), final_snapshot: spec.aurora.final_snapshot }
    }

    async fn destroy_selected(&self, ctx: &Context, selector: &AuroraSelector) -> Result<Vec<ResourceRef>> {
        self.destroy_tier(ctx, selector).await
    }
}
