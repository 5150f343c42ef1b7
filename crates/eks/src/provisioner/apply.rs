//! Apply: create or converge each resource in dependency order.

use std::collections::{BTreeMap, BTreeSet};

/// What the control plane's convergence hands to the node group and add-ons.
pub(super) struct ControlPlane {
    cluster_role: String,
    node_role: String,
    ebs_csi_role: Option<AddonRole>,
    key: KeyInfo,
    node_sg: String,
    cluster: ClusterInfo,
}

impl ControlPlane {
    /// The tier's output as far as the control plane makes it (the node group by its name).
    pub(super) fn output(&self, ctx: &Context, names: &Names) -> EksOutput {
        eks_output(
            ctx,
            &self.cluster,
            &self.node_sg,
            &self.cluster_role,
            &self.node_role,
            &self.key.arn,
            &names.nodegroup,
        )
    }
}

#[allow(unused_imports)]
use super::*;

impl EksProvisioner {
    /// The control plane, then the node side's typed changes, computed once the control plane
    /// is converged (with its node security group and cluster known) and a busy node group has
    /// settled.
    pub(super) async fn apply_tier(&self, ctx: &Context, spec: &EksSpec) -> Result<EksOutput> {
        spec.validate(ctx)?;
        let names = Names::of(ctx);
        let mut o = self.observe(ctx, spec).await?;
        let ControlPlane { cluster_role, node_role, ebs_csi_role, key, node_sg, cluster } =
            self.converge_control_plane(ctx, spec, &names, &o).await?;
        let cluster_name = names.cluster.clone();
        if let Some(ng) = &o.nodegroup
            && ng.status != Status::Active
        {
            o.nodegroup = Some(self.wait_nodegroup(ctx, &cluster_name, &names.nodegroup).await?);
        }
        let changes = node_changes(ctx, spec, &o, Some(&node_sg), Some(&cluster), false);

        // Launch template: IMDSv2 only, hop limit 1, encrypted gp3 root volume.
        let lt_data = launch_template_data(spec, lt_security_groups(&node_sg, Some(&cluster)));
        let mut lt = o.launch_template.as_ref().map(|lt| (lt.id.clone(), lt.latest_version));
        for change in &changes {
            match change {
                EksChange::CreateLaunchTemplate { name, .. } => {
                    let tags = ctx.tags_for(Tier::Eks, "launch-template", name);
                    let made = match self.client.create_launch_template(name.clone(), lt_data.clone(), tags).await {
                        Ok(made) => made,
                        Err(e) if e.is_already_exists() => self
                            .client
                            .find_launch_template(name.clone())
                            .await
                            .at("DescribeLaunchTemplates", name)?
                            .ok_or(e)
                            .at("CreateLaunchTemplate", name)?,
                        Err(e) => return Err(e.at("CreateLaunchTemplate", name).into()),
                    };
                    lt = Some((made.id, made.latest_version));
                }
                EksChange::UpdateLaunchTemplate { id, .. } => {
                    let v = self
                        .client
                        .update_launch_template(id.clone(), lt_data.clone())
                        .await
                        .at("CreateLaunchTemplateVersion", id)?;
                    lt = Some((id.clone(), v));
                }
                _ => {}
            }
        }
        let (lt_id, lt_version) = lt
            .map(|(id, v)| (id, v.to_string()))
            .ok_or_else(|| AwsError::new("CreateLaunchTemplate", "NotFound", "neither observed nor created"))
            .at("CreateLaunchTemplate", &names.launch_template)?;

        // Node group, then the add-ons; both waited for together.
        let mut nodegroup = o.nodegroup.clone();
        for change in &changes {
            match change {
                EksChange::CreateNodegroup { .. } => {
                    nodegroup = Some(self.create_nodegroup(ctx, spec, &names, &node_role, (&lt_id, &lt_version)).await?)
                }
                EksChange::UpdateNodegroup { scaling, labels, version, launch_template, .. } => {
                    let ng = &spec.node_group;
                    let have = nodegroup.clone().unwrap_or_default();
                    if scaling.is_some() || labels.is_some() {
                        let add: BTreeMap<String, String> = ng
                            .labels
                            .iter()
                            .filter(|(k, v)| have.labels.get(*k) != Some(*v))
                            .map(|(k, v)| (k.clone(), v.clone()))
                            .collect();
                        let remove: Vec<String> =
                            have.labels.keys().filter(|k| !ng.labels.contains_key(*k)).cloned().collect();
                        self.client
                            .update_nodegroup_config(
                                cluster_name.clone(),
                                names.nodegroup.clone(),
                                scaling.map(|(_, want)| want),
                                add,
                                remove,
                            )
                            .await
                            .at("UpdateNodegroupConfig", &names.nodegroup)?;
                        nodegroup = Some(self.wait_nodegroup(ctx, &cluster_name, &names.nodegroup).await?);
                    }
                    if version.is_some() || launch_template.is_some() {
                        // A version change rolls the nodes onto the new AMI; a template change
                        // rolls them onto the new template. One call does either.
                        self.client
                            .update_nodegroup_version(
                                cluster_name.clone(),
                                names.nodegroup.clone(),
                                version.as_ref().map(|(_, want)| want.clone()),
                                (launch_template.is_some() && version.is_none())
                                    .then(|| (lt_id.clone(), lt_version.clone())),
                            )
                            .await
                            .at("UpdateNodegroupVersion", &names.nodegroup)?;
                        nodegroup = Some(self.wait_nodegroup(ctx, &cluster_name, &names.nodegroup).await?);
                    }
                }
                _ => {}
            }
        }
        let nodegroup = nodegroup
            .ok_or_else(|| AwsError::new("CreateNodegroup", "NotFound", "neither observed nor created"))
            .at("CreateNodegroup", &names.nodegroup)?;

        // Add-ons: those changed, and those observed busy, are waited for.
        let mut addon_waits: Vec<String> = spec
            .addons
            .iter()
            .filter(|a| o.addons.get(*a).is_some_and(|a| a.status != Status::Active))
            .cloned()
            .collect();
        for change in &changes {
            match change {
                EksChange::CreateAddon { name, version, .. } => {
                    let version = match version {
                        Some(v) => v.clone(),
                        None => self.default_addon_version(spec, name).await?,
                    };
                    let role = ebs_csi_role.clone().filter(|_| name == EBS_CSI_ADDON);
                    let tags = ctx.tags_for(Tier::Eks, "addon", name);
                    match self.client.create_addon(cluster_name.clone(), name.clone(), version, tags, role).await {
                        Ok(()) => tracing::info!(addon = %name, "creating add-on"),
                        Err(e) if exists(&e) => {}
                        Err(e) => return Err(e.at("CreateAddon", name).into()),
                    }
                    addon_waits.push(name.clone());
                }
                EksChange::UpdateAddon { name, version, .. } => {
                    let version = match (version, o.addons.get(name)) {
                        (Some((_, want)), _) => want.clone(),
                        (None, Some(a)) => a.version.clone(),
                        (None, None) => self.default_addon_version(spec, name).await?,
                    };
                    let role = ebs_csi_role.clone().filter(|_| name == EBS_CSI_ADDON);
                    self.client
                        .update_addon(cluster_name.clone(), name.clone(), version, role)
                        .await
                        .at("UpdateAddon", name)?;
                    addon_waits.push(name.clone());
                }
                EksChange::DeleteAddon { name, version } => {
                    tracing::info!(addon = %name, %version, "deleting add-on no longer in the spec");
                    dify_stack_core::ignore_not_found(
                        self.client.delete_addon(cluster_name.clone(), name.clone()).await,
                    )
                    .at("DeleteAddon", name)?;
                }
                _ => {}
            }
        }
        addon_waits.sort();
        addon_waits.dedup();
        let nodegroup_wait = async {
            if nodegroup.status == Status::Active {
                Ok(nodegroup.clone())
            } else {
                self.wait_nodegroup(ctx, &cluster_name, &names.nodegroup).await
            }
        };
        let addons_wait =
            futures::future::try_join_all(addon_waits.iter().map(|a| self.wait_addon(ctx, &cluster_name, a)));
        let (nodegroup, _) = futures::future::try_join(nodegroup_wait, addons_wait).await?;

        Ok(eks_output(ctx, &cluster, &node_sg, &cluster_role, &node_role, &key.arn, &nodegroup.name))
    }

    async fn default_addon_version(&self, spec: &EksSpec, addon: &str) -> Result<String> {
        self.client
            .default_addon_version(addon.to_owned(), spec.kubernetes_version.clone())
            .await
            .at("DescribeAddonVersions", addon)?
            .ok_or_else(|| EksError::NoAddonVersion {
                addon: addon.to_owned(),
                version: spec.kubernetes_version.clone(),
            })
    }

    /// CreateNodegroup, retried while the new node role is not yet assumable; one made by an
    /// earlier run whose response was lost is read back.
    async fn create_nodegroup(
        &self,
        ctx: &Context,
        spec: &EksSpec,
        names: &Names,
        node_role: &str,
        (lt_id, lt_version): (&str, &str),
    ) -> Result<NodegroupInfo> {
        let ng = &spec.node_group;
        let create = NodegroupCreate {
            cluster: names.cluster.clone(),
            name: names.nodegroup.clone(),
            node_role: node_role.to_owned(),
            subnet_ids: spec.private_subnet_ids.iter().map(|s| s.as_str().to_owned()).collect(),
            instance_types: ng.instance_types.clone(),
            ami_type: ng.ami_type.clone(),
            min: ng.min,
            max: ng.max,
            desired: ng.desired,
            labels: ng.labels.clone(),
            launch_template: (lt_id.to_owned(), lt_version.to_owned()),
            version: spec.kubernetes_version.clone(),
            tags: ctx.tags_for(Tier::Eks, "nodegroup", &names.nodegroup),
            client_request_token: token(ctx, "nodegroup", lt_version),
        };
        let policy = ctx.wait.capped(caps::IAM_PROPAGATION);
        match wait::retry(
            &format!("CreateNodegroup {}", names.nodegroup),
            &policy,
            ctx.cancellation(),
            |e: &AwsError| e.is_iam_propagation(),
            || self.client.create_nodegroup(create.clone()),
        )
        .await
        {
            Ok(n) => {
                tracing::info!(nodegroup = %names.nodegroup, "creating node group");
                Ok(n)
            }
            Err(WaitError::Failed { source, .. }) if exists(&source) => Ok(self
                .client
                .describe_nodegroup(names.cluster.clone(), names.nodegroup.clone())
                .await
                .at("DescribeNodegroup", &names.nodegroup)?
                .ok_or(source)
                .at("CreateNodegroup", &names.nodegroup)?),
            Err(e) => Err(from_aws_wait::<EksError>(e, "CreateNodegroup", &names.nodegroup)),
        }
    }

    /// The control plane: a busy cluster waited for, then refusals (so a refused apply changes
    /// nothing, the node side's included), then the typed changes of the roles, the secrets
    /// key, the node security group (when the tier owns it), the log group, the cluster (waited
    /// until ACTIVE after each change) and its access entries.
    pub(super) async fn converge_control_plane(
        &self,
        ctx: &Context,
        spec: &EksSpec,
        names: &Names,
        o: &ObservedEks,
    ) -> Result<ControlPlane> {
        let mut o = o.clone();
        if let Some(c) = &o.cluster
            && c.status != Status::Active
        {
            o.cluster = Some(self.wait_cluster(ctx, &names.cluster).await?);
        }
        let changes = control_plane_changes(ctx, spec, &o);
        let node_sg = o.node_security_group.as_ref().map(|s| s.id.as_str());
        for c in changes.iter().chain(&node_changes(ctx, spec, &o, node_sg, o.cluster.as_ref(), o.cluster.is_none())) {
            match c {
                EksChange::UpgradeCluster { have, want, refused: true, .. } => {
                    next_version(have, want)?;
                }
                EksChange::ReplaceNodegroup { .. } | EksChange::ReplaceClusterKey { .. } => {
                    let c = c.change();
                    let f = &c.fields[0];
                    return Err(EksError::ImmutableChange {
                        field: f.path.clone(),
                        resource: c.resource.name.clone(),
                        have: f.before.clone().unwrap_or_default(),
                        want: f.after.clone().unwrap_or_default(),
                    });
                }
                _ => {}
            }
        }
        let wants = role_wants(ctx, names, spec);
        let mut arns = Vec::new();
        for (index, (want, have)) in wants.iter().zip(o.roles()).enumerate() {
            let change = changes.iter().find(|c| {
                matches!(c, EksChange::CreateRole { index: i, .. } | EksChange::UpdateRole { index: i, .. } if *i == index)
            });
            arns.push(self.converge_role(ctx, want, have.as_ref(), change).await?);
        }
        let (cluster_role, node_role) = (arns[0].clone(), arns[1].clone());
        let ebs_csi_role = arns
            .get(2)
            .map(|arn| AddonRole { service_account: EBS_CSI_SERVICE_ACCOUNT.to_owned(), role_arn: arn.clone() });
        let mut key = o.key.clone();
        let mut node_sg = o.node_security_group.as_ref().map(|s| s.id.clone());
        for change in &changes {
            match change {
                EksChange::CreateKey { .. } => key = Some(self.create_key(ctx, names).await?),
                EksChange::UpdateKey { alias, key_id, restore, tags, .. } => {
                    if restore.is_some() {
                        self.client.restore_key(key_id.clone()).await.at("CancelKeyDeletion", alias)?;
                        tracing::info!(%alias, "restored KMS key scheduled for deletion");
                    }
                    if !tags.is_empty() {
                        let tags = tags.iter().map(|(k, _, v)| (k.clone(), v.clone())).collect();
                        self.client.tag_key(key_id.clone(), tags).await.at("TagResource", alias)?;
                    }
                }
                EksChange::CreateNodeSecurityGroup { .. } => {
                    node_sg =
                        Some(create_node_security_group(self.client.as_ref(), ctx, spec.vpc_id.as_str(), names).await?)
                }
                EksChange::CreateLogGroup { name, retention_days } => {
                    self.create_log_group(ctx, name).await?;
                    self.client
                        .put_log_retention(name.clone(), *retention_days)
                        .await
                        .at("PutRetentionPolicy", name)?;
                }
                EksChange::LogRetention { name, want, .. } => {
                    self.client.put_log_retention(name.clone(), *want).await.at("PutRetentionPolicy", name)?
                }
                _ => {}
            }
        }
        let key = key
            .ok_or_else(|| AwsError::new("CreateKey", "NotFound", "neither observed nor created"))
            .at("CreateKey", &names.key_alias)?;
        let node_sg = node_sg
            .ok_or_else(|| AwsError::new("CreateSecurityGroup", "NotFound", "neither observed nor created"))
            .at("CreateSecurityGroup", &names.node_security_group)?;
        let cluster = self
            .converge_cluster(ctx, spec, names, o.cluster.clone(), &changes, cluster_role.clone(), &key.arn)
            .await?;
        for change in &changes {
            match change {
                EksChange::CreateAccessEntry { principal } => {
                    let tags = ctx.tags_for(Tier::Eks, "access-entry", &names.cluster);
                    match self.client.create_access_entry(names.cluster.clone(), principal.clone(), tags).await {
                        Ok(()) => {}
                        Err(e) if exists(&e) => {}
                        Err(e) => return Err(e.at("CreateAccessEntry", principal).into()),
                    }
                    self.associate_admin(ctx, names, principal).await?;
                }
                EksChange::AssociateAccessPolicy { principal } => self.associate_admin(ctx, names, principal).await?,
                _ => {}
            }
        }
        Ok(ControlPlane { cluster_role, node_role, ebs_csi_role, key, node_sg, cluster })
    }

    async fn associate_admin(&self, ctx: &Context, names: &Names, principal: &str) -> Result<()> {
        let policy_arn = format!("arn:{}:eks::aws:cluster-access-policy/{CLUSTER_ADMIN_POLICY}", ctx.partition().id());
        self.client
            .associate_access_policy(names.cluster.clone(), principal.to_owned(), policy_arn)
            .await
            .at("AssociateAccessPolicy", principal)?;
        Ok(())
    }

    /// Executes a role's change: created with its managed policies, or its trust rewritten,
    /// missing policies attached, our tags. Returns its ARN. A create answered "already exists"
    /// (our earlier create whose response was lost) reads the role back, checks its tags and
    /// executes the change that role calls for.
    async fn converge_role(
        &self,
        ctx: &Context,
        want: &RoleWant,
        have: Option<&RoleInfo>,
        change: Option<&EksChange>,
    ) -> Result<String> {
        match (change, have) {
            (Some(EksChange::CreateRole { .. }), _) | (_, None) => {
                let tags = ctx.tags_for(Tier::Eks, want.component, &want.name);
                let arn = match self.client.create_role(want.name.clone(), want.trust.to_string(), tags).await {
                    Ok(arn) => arn,
                    Err(e) if e.is_already_exists() => {
                        let Some(r) = self.client.get_role(want.name.clone()).await.at("GetRole", &want.name)? else {
                            return Err(e.at("CreateRole", &want.name).into());
                        };
                        self.check_owned(ctx, "IAM role", &want.name, &r.tags)?;
                        let again = role_change(ctx, 0, want, &r);
                        return Box::pin(self.converge_role(ctx, want, Some(&r), again.as_ref())).await;
                    }
                    Err(e) => return Err(e.at("CreateRole", &want.name).into()),
                };
                tracing::info!(role = %want.name, "created IAM role");
                for policy in &want.policies {
                    self.client
                        .attach_policy(want.name.clone(), policy.clone())
                        .await
                        .at("AttachRolePolicy", &want.name)?;
                }
                Ok(arn)
            }
            (Some(EksChange::UpdateRole { trust, policies, tags, .. }), Some(r)) => {
                if trust.is_some() {
                    self.client
                        .update_trust(want.name.clone(), want.trust.to_string())
                        .await
                        .at("UpdateAssumeRolePolicy", &want.name)?;
                }
                if policies.is_some() {
                    for policy in want.policies.iter().filter(|p| !r.attached.contains(p)) {
                        self.client
                            .attach_policy(want.name.clone(), policy.clone())
                            .await
                            .at("AttachRolePolicy", &want.name)?;
                    }
                }
                if !tags.is_empty() {
                    let tags = tags.iter().map(|(k, _, v)| (k.clone(), v.clone())).collect();
                    self.client.tag_role(want.name.clone(), tags).await.at("TagRole", &want.name)?;
                }
                Ok(r.arn.clone())
            }
            (_, Some(r)) => Ok(r.arn.clone()),
        }
    }

    /// CreateLogGroup of the control-plane log group, made before the cluster so EKS writes
    /// into ours instead of creating one that never expires. Our own earlier create whose
    /// response was lost is read back, its tags checked.
    async fn create_log_group(&self, ctx: &Context, name: &str) -> Result<()> {
        let tags = ctx.tags_for(Tier::Eks, "log-group", name);
        match self.client.create_log_group(name.to_owned(), tags).await {
            Ok(()) => Ok(()),
            Err(e) if e.is_already_exists() => {
                let g = self
                    .client
                    .describe_log_group(name.to_owned())
                    .await
                    .at("DescribeLogGroups", name)?
                    .ok_or(e)
                    .at("CreateLogGroup", name)?;
                self.check_owned(ctx, "log group", name, &g.tags)
            }
            Err(e) => Err(e.at("CreateLogGroup", name).into()),
        }
    }

    /// The secrets key, when none is aliased: a key left without its alias by a crash between
    /// CreateKey and CreateAlias is aliased instead of creating a second; twins of a retried
    /// CreateKey are scheduled for deletion.
    async fn create_key(&self, ctx: &Context, names: &Names) -> Result<KeyInfo> {
        let have: Option<&KeyInfo> = None;
        let tags = ctx.tags_for(Tier::Eks, "secrets-key", &names.key_alias);
        let unaliased = match have {
            None => self
                .client
                .find_keys_by_tags(ctx.tags_for(Tier::Eks, "secrets-key", &names.key_alias))
                .await
                .at("ListKeys", &names.key_alias)?
                .into_iter()
                .find(|k| k.state != "PendingDeletion"),
            Some(_) => None,
        };
        let created = have.is_none() && unaliased.is_none();
        let key = match (have, unaliased) {
            (None, Some(k)) => {
                // A run died between CreateKey and CreateAlias: finish it instead of creating
                // a second key.
                self.client
                    .create_alias(names.key_alias.clone(), k.key_id.clone())
                    .await
                    .at("CreateAlias", &names.key_alias)?;
                k
            }
            (None, None) => {
                let description = format!("dify-stack {}: EKS secrets envelope encryption", ctx.stack());
                let key = match self.client.create_key(names.key_alias.clone(), description, tags.clone()).await {
                    Ok(k) => k,
                    // The alias exists: a crash between CreateKey and CreateAlias cannot produce
                    // this, a lost CreateAlias response can. Read it back.
                    Err(e) if e.is_already_exists() => {
                        match self.client.find_key(names.key_alias.clone()).await.at("DescribeKey", &names.key_alias)? {
                            Some(k) => {
                                self.check_owned(ctx, "KMS key", &names.key_alias, &k.tags)?;
                                k
                            }
                            None => return Err(e.at("CreateKey", &names.key_alias).into()),
                        }
                    }
                    Err(e) => return Err(e.at("CreateKey", &names.key_alias).into()),
                };
                tracing::info!(alias = %names.key_alias, "created KMS key");
                key
            }
            (Some(k), _) => k.clone(),
        };
        if created {
            // CreateKey has no idempotency token: an SDK retry of a lost response makes a twin.
            let twins = self
                .client
                .find_keys_by_tags(ctx.tags_for(Tier::Eks, "secrets-key", &names.key_alias))
                .await
                .at("ListKeys", &names.key_alias)?;
            for twin in twins.iter().filter(|k| k.key_id != key.key_id && k.state != "PendingDeletion") {
                tracing::warn!(key = %twin.key_id, "scheduling deletion of a twin KMS key");
                self.client
                    .schedule_key_deletion(String::new(), twin.key_id.clone(), KEY_DELETION_WINDOW_DAYS)
                    .await
                    .at("ScheduleKeyDeletion", &twin.key_id)?;
            }
        }
        if key.state == "PendingDeletion" || key.state == "Disabled" {
            self.client.restore_key(key.key_id.clone()).await.at("CancelKeyDeletion", &names.key_alias)?;
            tracing::info!(alias = %names.key_alias, "restored KMS key scheduled for deletion");
        }
        let drift: Tags = tags.into_iter().filter(|(k, v)| key.tags.get(k) != Some(v)).collect();
        if !drift.is_empty() {
            self.client.tag_key(key.key_id.clone(), drift).await.at("TagResource", &names.key_alias)?;
        }
        Ok(key)
    }

    /// Executes the cluster's changes: created (waited until ACTIVE), or upgraded one minor
    /// version at a time, its endpoint, logging and tags converged, waited after each update (EKS
    /// rejects a second update while one is in progress). `have` is ACTIVE (waited by the caller).
    #[allow(clippy::too_many_arguments)]
    async fn converge_cluster(
        &self,
        ctx: &Context,
        spec: &EksSpec,
        names: &Names,
        have: Option<ClusterInfo>,
        changes: &[EksChange],
        role_arn: String,
        key_arn: &str,
    ) -> Result<ClusterInfo> {
        let name = &names.cluster;
        let subnets: Vec<String> = spec.private_subnet_ids.iter().map(|s| s.as_str().to_owned()).collect();
        let Some(mut cluster) = have else {
            let create = ClusterCreate {
                name: name.clone(),
                version: spec.kubernetes_version.clone(),
                role_arn,
                subnet_ids: subnets,
                public_access_cidrs: spec.endpoint.public_access_cidrs.clone(),
                log_types: spec.log_types.clone(),
                key_arn: key_arn.to_owned(),
                tags: ctx.tags_for(Tier::Eks, "cluster", name),
                client_request_token: token(ctx, "cluster", &spec.kubernetes_version),
            };
            // A new cluster role can be rejected for a while ("role ... could not be assumed").
            let policy = ctx.wait.capped(caps::IAM_PROPAGATION);
            let result = wait::retry(
                &format!("CreateCluster {name}"),
                &policy,
                ctx.cancellation(),
                |e: &AwsError| e.is_iam_propagation(),
                || self.client.create_cluster(create.clone()),
            )
            .await;
            match result {
                Ok(_) => tracing::info!(cluster = %name, "creating EKS cluster"),
                Err(WaitError::Failed { source, .. }) if exists(&source) => {}
                Err(e) => return Err(from_aws_wait::<EksError>(e, "CreateCluster", name)),
            }
            return self.wait_cluster(ctx, name).await;
        };
        // The key made by this run (the observation had none) cannot be the cluster's.
        if let Some(have_key) = &cluster.secrets_key_arn
            && have_key != key_arn
        {
            return Err(EksError::ImmutableChange {
                field: "secrets encryption key".to_owned(),
                resource: name.clone(),
                have: have_key.clone(),
                want: key_arn.to_owned(),
            });
        }
        for change in changes {
            match change {
                EksChange::UpgradeCluster { .. } => {
                    while let Some(step) = next_version(&cluster.version, &spec.kubernetes_version)? {
                        tracing::info!(cluster = %name, from = %cluster.version, to = %step, "upgrading control plane");
                        self.client
                            .update_cluster_version(name.clone(), step)
                            .await
                            .at("UpdateClusterVersion", name)?;
                        cluster = self.wait_cluster(ctx, name).await?;
                    }
                }
                EksChange::UpdateCluster { endpoint, logging, tags, .. } => {
                    if endpoint.is_some() {
                        self.client
                            .update_cluster_endpoint(
                                name.clone(),
                                subnets.clone(),
                                spec.endpoint.public_access_cidrs.clone(),
                            )
                            .await
                            .at("UpdateClusterConfig", name)?;
                        cluster = self.wait_cluster(ctx, name).await?;
                    }
                    if logging.is_some() {
                        let want_logs: BTreeSet<String> = spec.log_types.iter().cloned().collect();
                        let disabled = crate::spec::ALL_LOG_TYPES
                            .iter()
                            .map(|s| (*s).to_owned())
                            .filter(|t| !want_logs.contains(t))
                            .collect();
                        self.client
                            .update_cluster_logging(name.clone(), want_logs.iter().cloned().collect(), disabled)
                            .await
                            .at("UpdateClusterConfig", name)?;
                        cluster = self.wait_cluster(ctx, name).await?;
                    }
                    if !tags.is_empty() {
                        let tags = tags.iter().map(|(k, _, v)| (k.clone(), v.clone())).collect();
                        self.client.tag_resource(cluster.arn.clone(), tags).await.at("TagResource", name)?;
                    }
                }
                _ => {}
            }
        }
        Ok(cluster)
    }
}
