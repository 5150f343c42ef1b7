//! Apply: security group, subnet group, cluster, instances, databases and the application role.

#[allow(unused_imports)]
use super::*;

impl AuroraProvisioner {
    pub(super) async fn apply_tier(&self, ctx: &Context, spec: &DatastoresSpec) -> Result<AuroraOutput> {
        spec.validate(ctx)?;
        let names = AuroraNames::of(ctx);
        let a = &spec.aurora;
        let o = self.observe(ctx, spec).await?;
        if let Some(c) = self.diff(ctx, spec, &o).with_action(Action::Replace).next() {
            return Err(crate::common::immutable_change(c));
        }
        let sources: Vec<String> = spec.source_security_groups.iter().map(|s| s.to_string()).collect();
        let want_sg = SgWant {
            vpc_id: spec.vpc_id.as_str(),
            name: &names.security_group,
            component: "aurora-security-group",
            port: PORT,
            sources: &sources,
        };
        let sg = security_group::converge(ctx, self.sg.as_ref(), want_sg, o.security_group.as_ref()).await?;
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
            if extra && x.status != RdsStatus::Deleting {
                dify_stack_core::ignore_not_found(self.rds.delete_instance(x.id.clone()).await)
                    .at("DeleteDBInstance", &x.id)?;
                touched = true;
            }
        }
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
            wait_state(ctx, what, caps::AURORA_CLUSTER, fetch, cluster_available(&cluster_id)).await?;
            wait_for(
                ctx,
                format!("Aurora instances of {cluster_id} to be available"),
                caps::AURORA_INSTANCE,
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
