//! Apply: security group, subnet group, cluster, instances, databases and the application role.

use super::diff::{self, AuroraChange};
use super::{
    AuroraNames, AuroraOutput, AuroraProvisioner, Condition, Context, DatastoresError, DatastoresSpec, DbClusterCreate,
    DbClusterInfo, DbClusterModify, DbEngineUpgrade, DbInstanceInfo, ObservedAurora, PORT, Probe, RdsStatus, Result,
    SecretKind, Tier, caps, data_api_refused, secrets, security_group, upgrade, wait_for, wait_state,
};
use crate::aurora::LIST_DATABASES;
use crate::aurora::pending_role_statements;
use crate::aurora::sql_create;
use crate::common::ready_from;
use dify_stack_core::AwsAt;
use dify_stack_core::Provisioner;

impl AuroraProvisioner {
    /// Whether an engine upgrade an interrupted run started is still running: the cluster is
    /// modifying and not yet on the wanted version ([`Self::settle_tier`] waits for it).
    pub(crate) fn upgrade_in_flight(spec: &DatastoresSpec, o: &ObservedAurora) -> bool {
        o.cluster.as_ref().is_some_and(|c| {
            c.engine_version != spec.aurora.engine_version && matches!(c.status, RdsStatus::Modifying(_))
        })
    }

    /// The trait's `settle`: an engine upgrade an interrupted run started is waited for first
    /// (RDS refuses another ModifyDBCluster while the cluster is `upgrading`,
    /// InvalidDBClusterStateFault, and the comparison needs the version it ends on), then
    /// everything is observed again.
    pub(super) async fn settle_tier(
        &self,
        ctx: &Context,
        spec: &DatastoresSpec,
        o: ObservedAurora,
    ) -> Result<ObservedAurora> {
        if !Self::upgrade_in_flight(spec, &o) {
            return Ok(o);
        }
        let names = AuroraNames::of(ctx);
        if let Some(c) = &o.cluster {
            let fetch = || async {
                Ok(self.rds.describe_cluster(names.cluster.clone()).await.at("DescribeDBClusters", &names.cluster)?)
            };
            let what = format!("Aurora cluster {} to finish its {}", names.cluster, c.status);
            wait_state(ctx, what, caps::AURORA_UPGRADE, None, fetch, cluster_available(&names.cluster)).await?;
        }
        self.observe(ctx, spec).await
    }

    /// The trait's `execute`: the typed changes of one (settled) observation, in order, then the
    /// databases and the application role through the Data API (or the statements to run).
    /// Staged where a value is known only after apply: the security group's id (made first)
    /// goes into the cluster's create and modify, the cluster made or modified here is waited
    /// for and described again, and the SQL phase reads the catalog again when the cluster
    /// changed (a new cluster's catalog cannot be read before it exists).
    pub(super) async fn execute_tier(
        &self,
        ctx: &Context,
        spec: &DatastoresSpec,
        o: ObservedAurora,
        changes: Vec<AuroraChange>,
    ) -> Result<AuroraOutput> {
        let names = AuroraNames::of(ctx);
        let a = &spec.aurora;
        let sources = security_group::sources(spec);
        let sg_change = changes.iter().find_map(|c| match c {
            AuroraChange::SecurityGroup(c) => Some(c.clone()),
            _ => None,
        });
        let want_sg = diff::sg_want(spec, &names, &sources);
        let sg =
            security_group::apply_change(ctx, self.sg.as_ref(), want_sg, sg_change, o.security_group.as_ref()).await?;
        // Whether this run changed anything: when not, and all was available, the observation
        // stands and no wait (no further read) is needed.
        let mut touched = false;
        let mut cluster = o.cluster.clone();
        let mut created = Vec::new();
        for change in &changes {
            match change {
                AuroraChange::SecurityGroup(_) | AuroraChange::AppSecret { .. } | AuroraChange::Catalog(_) => {}
                AuroraChange::PreUpgradeSnapshot { cluster: id, name, .. } => {
                    let tags = ctx.tags_for(Tier::Datastores, "aurora-snapshot", name);
                    match self.rds.create_cluster_snapshot(id.clone(), name.clone(), tags).await {
                        Ok(()) => tracing::info!(cluster = %id, snapshot = %name, "pre-upgrade snapshot requested"),
                        // Taken by an interrupted run: waited for below like a new one.
                        Err(e) if e.is_already_exists() => {}
                        Err(e) => return Err(e.at("CreateDBClusterSnapshot", name).into()),
                    }
                }
                AuroraChange::UpgradeEngine { name, have, want, major, .. } => {
                    if upgrade::snapshot_first(ctx) {
                        // This run's snapshot or an interrupted run's: available before the upgrade.
                        self.wait_snapshot(ctx, &crate::names::pre_upgrade_snapshot(name, have, want)).await?;
                    }
                    let request = DbEngineUpgrade {
                        engine_version: want.clone(),
                        allow_major_version_upgrade: major.is_some(),
                        cluster_parameter_group: major.as_ref().map(|(_, g)| g.clone()),
                        instance_parameter_group: major.as_ref().map(|(_, g)| g.clone()),
                    };
                    self.rds.upgrade_cluster(name.clone(), request).await.at("ModifyDBCluster", name)?;
                    tracing::info!(cluster = %name, from = %have, to = %want, "upgrading the Aurora engine");
                    let fetch =
                        || async { Ok(self.rds.describe_cluster(name.clone()).await.at("DescribeDBClusters", name)?) };
                    let what = format!("Aurora cluster {name} to run {want}");
                    let upgraded =
                        wait_state(ctx, what, caps::AURORA_UPGRADE, None, fetch, cluster_upgraded(name, want)).await?;
                    cluster = upgraded.or(cluster);
                    touched = true;
                }
                AuroraChange::SubnetGroup { name } => {
                    let subnets = spec.subnets.iter().map(|s| s.id.clone()).collect();
                    let tags = ctx.tags_for(Tier::Datastores, "aurora-subnet-group", name);
                    match self.rds.create_subnet_group(name.clone(), subnets, tags).await {
                        Ok(()) => {}
                        Err(e) if e.is_already_exists() => {}
                        Err(e) => return Err(e.at("CreateDBSubnetGroup", name).into()),
                    }
                }
                AuroraChange::CreateCluster { name, .. } => {
                    let create = DbClusterCreate {
                        id: name.clone(),
                        engine_version: a.engine_version.clone(),
                        acu: (a.min_acu, a.max_acu),
                        subnet_group: names.subnet_group.clone(),
                        security_group: sg.clone(),
                        master_username: a.master_username.clone(),
                        backup_retention_days: a.backup_retention_days,
                        deletion_protection: a.deletion_protection,
                        http_endpoint: self.data_api(ctx, spec),
                        tags: ctx.tags_for(Tier::Datastores, "aurora", name),
                    };
                    cluster = Some(match self.rds.create_cluster(create).await {
                        Ok(c) => {
                            tracing::info!(cluster = %name, "creating Aurora cluster");
                            c
                        }
                        Err(e) if e.is_already_exists() => self
                            .rds
                            .describe_cluster(name.clone())
                            .await
                            .at("DescribeDBClusters", name)?
                            .ok_or(e)
                            .at("CreateDBCluster", name)?,
                        Err(e) => return Err(e.at("CreateDBCluster", name).into()),
                    });
                    touched = true;
                }
                AuroraChange::UpdateCluster {
                    name,
                    arn,
                    acu,
                    backup_retention_days,
                    deletion_protection,
                    security_groups,
                    tags,
                    ..
                } => {
                    let m = DbClusterModify {
                        acu: acu.map(|(_, want)| want),
                        backup_retention_days: backup_retention_days.map(|(_, want)| want),
                        deletion_protection: deletion_protection.map(|(_, want)| want),
                        security_groups: security_groups.as_ref().map(|_| vec![sg.clone()]),
                    };
                    if m != DbClusterModify::default() {
                        self.rds.modify_cluster(name.clone(), m).await.at("ModifyDBCluster", name)?;
                        touched = true;
                    }
                    if !tags.is_empty() {
                        let tags = dify_stack_core::drift_tags(tags);
                        self.rds.tag(arn.clone(), tags).await.at("AddTagsToResource", name)?;
                    }
                }
                AuroraChange::CreateInstance { id, availability_zone } => {
                    let itags = ctx.tags_for(Tier::Datastores, "aurora-instance", id);
                    match self
                        .rds
                        .create_instance(id.clone(), names.cluster.clone(), availability_zone.clone(), itags)
                        .await
                    {
                        Ok(()) => tracing::info!(instance = %id, "creating Aurora instance"),
                        Err(e) if e.is_already_exists() => {}
                        Err(e) => return Err(e.at("CreateDBInstance", id).into()),
                    }
                    created.push(id.clone());
                }
                AuroraChange::DeleteInstance { id } => {
                    // One already being deleted (an earlier run) is left to finish.
                    if o.instances.iter().any(|x| &x.id == id && x.status != RdsStatus::Deleting) {
                        dify_stack_core::ignore_not_found(self.rds.delete_instance(id.clone()).await)
                            .at("DeleteDBInstance", id)?;
                        touched = true;
                    }
                }
            }
        }
        let Some(mut cluster) = cluster else {
            return Err(DatastoresError::Failed {
                kind: "Aurora cluster",
                name: names.cluster.clone(),
                status: "neither observed nor created".to_owned(),
            });
        };
        let cluster_id = names.cluster.clone();
        let settled = !touched
            && created.is_empty()
            && cluster.status == RdsStatus::Available
            && o.instances.len() == a.instances as usize
            && o.instances.iter().all(|x| x.status == RdsStatus::Available);
        if !settled {
            let fetch = || async {
                Ok(self.rds.describe_cluster(cluster_id.clone()).await.at("DescribeDBClusters", &cluster_id)?)
            };
            let what = format!("Aurora cluster {cluster_id} to be available");
            wait_state(
                ctx,
                what,
                caps::AURORA_CLUSTER,
                Some(ready_from::AURORA_CLUSTER),
                fetch,
                cluster_available(&cluster_id),
            )
            .await?;
            wait_for(
                ctx,
                format!("Aurora instances of {cluster_id} to be available"),
                caps::AURORA_INSTANCE,
                Some(ready_from::AURORA_INSTANCES),
                || async {
                    let all =
                        self.rds.list_instances(cluster_id.clone()).await.at("DescribeDBInstances", &cluster_id)?;
                    instances_available(&all, &names, a.instances)
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
            cluster_arn: cluster.arn.clone(),
            writer_endpoint: cluster.endpoint.clone().unwrap_or_default(),
            reader_endpoint: cluster.reader_endpoint.clone().unwrap_or_default(),
            port: cluster.port.unwrap_or(PORT),
            master_secret_arn: secret,
            master_username: a.master_username.clone(),
            security_group_id: sg,
            databases,
            pending_statements,
            app_username: a.app_username.clone(),
            app_secret,
        })
    }
}

impl AuroraProvisioner {
    /// Waits until the pre-upgrade snapshot `name` is available.
    async fn wait_snapshot(&self, ctx: &Context, name: &str) -> Result<()> {
        let fetch = || async {
            Ok(self.rds.cluster_snapshot_status(name.to_owned()).await.at("DescribeDBClusterSnapshots", name)?)
        };
        let condition = upgrade::snapshot_available("Aurora cluster snapshot", name);
        wait_state(
            ctx,
            format!("Aurora snapshot {name} to be available"),
            caps::AURORA_SNAPSHOT,
            None,
            fetch,
            condition,
        )
        .await?;
        Ok(())
    }
}

/// The condition of an engine upgrade: the cluster `available` on the wanted version (right
/// after ModifyDBCluster it may still say `available` on the old one); a failed state ends
/// the wait.
pub(crate) fn cluster_upgraded<'a>(id: &'a str, want: &'a str) -> impl Condition<DbClusterInfo, DatastoresError> + 'a {
    move |c: Option<&DbClusterInfo>| match c {
        Some(c) if c.status == RdsStatus::Available && c.engine_version == want => Ok(Probe::Done(())),
        Some(c) if c.status.is_failed() => {
            Err(DatastoresError::Failed { kind: "Aurora cluster", name: id.to_owned(), status: c.status.to_string() })
        }
        Some(c) => Ok(Probe::Pending(format!("{} on {}", c.status, c.engine_version))),
        None => Err(DatastoresError::Failed { kind: "Aurora cluster", name: id.to_owned(), status: "gone".to_owned() }),
    }
}

/// The condition of the Aurora cluster the tier waits for: `available`; a state RDS does not leave
/// by itself (`failed`, `incompatible-*`, `inaccessible-encryption-credentials`) ends the wait at
/// once; not visible yet (right after CreateDBCluster) is pending.
pub(crate) fn cluster_available(id: &str) -> impl Condition<DbClusterInfo, DatastoresError> + '_ {
    move |c: Option<&DbClusterInfo>| match c {
        Some(c) if c.status == RdsStatus::Available => Ok(Probe::Done(())),
        Some(c) if c.status.is_failed() => {
            Err(DatastoresError::Failed { kind: "Aurora cluster", name: id.to_owned(), status: c.status.to_string() })
        }
        Some(c) => Ok(Probe::Pending(c.status.to_string())),
        None => Ok(Probe::Pending("not visible yet".to_owned())),
    }
}

/// The instances of the cluster (all of them, as DescribeDBInstances lists them) against the
/// `wanted` count: `Ok(None)` once each wanted instance exists and is `available` (instances
/// being deleted do not count); a failed instance ends the wait; else what is pending.
pub(crate) fn instances_available(all: &[DbInstanceInfo], names: &AuroraNames, wanted: u32) -> Result<Option<String>> {
    let live: Vec<&DbInstanceInfo> = all.iter().filter(|x| x.status != RdsStatus::Deleting).collect();
    if let Some(x) = live.iter().find(|x| x.status.is_failed()) {
        return Err(DatastoresError::Failed {
            kind: "Aurora instance",
            name: x.id.clone(),
            status: x.status.to_string(),
        });
    }
    let mut pending: Vec<String> =
        live.iter().filter(|x| x.status != RdsStatus::Available).map(|x| format!("{} {}", x.id, x.status)).collect();
    let missing = (1..=wanted as usize).filter(|i| !all.iter().any(|x| x.id == names.instance(*i))).count();
    if missing > 0 {
        pending.push(format!("{missing} not visible yet"));
    }
    Ok((!pending.is_empty()).then(|| pending.join(", ")))
}
