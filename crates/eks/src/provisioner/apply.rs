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
    pub(super) async fn apply_tier(&self, ctx: &Context, spec: &EksSpec) -> Result<EksOutput> {
        spec.validate(ctx)?;
        let names = Names::of(ctx);
        let o = self.observe(ctx, spec).await?;
        let ControlPlane { cluster_role, node_role, ebs_csi_role, key, node_sg, cluster } =
            self.converge_control_plane(ctx, spec, &names, &o).await?;

        // Launch template: IMDSv2 only, hop limit 2, encrypted gp3 root volume.
        let lt_data = launch_template_data(spec, lt_security_groups(&node_sg, Some(&cluster)));
        let (lt_id, lt_version) = match &o.launch_template {
            None => {
                let tags = ctx.tags_for(Tier::Eks, "launch-template", &names.launch_template);
                let lt = match self.client.create_launch_template(names.launch_template.clone(), lt_data, tags).await {
                    Ok(lt) => lt,
                    Err(e) if e.is_already_exists() => self
                        .client
                        .find_launch_template(names.launch_template.clone())
                        .await
                        .at("DescribeLaunchTemplates", &names.launch_template)?
                        .ok_or(e)
                        .at("CreateLaunchTemplate", &names.launch_template)?,
                    Err(e) => return Err(e.at("CreateLaunchTemplate", &names.launch_template).into()),
                };
                (lt.id, lt.latest_version)
            }
            Some(lt) => {
                let mut have = lt.data.clone();
                have.security_group_ids.sort();
                if have == lt_data {
                    (lt.id.clone(), lt.latest_version)
                } else {
                    let v = self
                        .client
                        .update_launch_template(lt.id.clone(), lt_data)
                        .await
                        .at("CreateLaunchTemplateVersion", &lt.id)?;
                    (lt.id.clone(), v)
                }
            }
        };
        let lt_version = lt_version.to_string();

        // Node group, then the add-ons; both waited for together.
        let ng = &spec.node_group;
        let cluster_name = names.cluster.clone();
        let nodegroup = match o.nodegroup.clone() {
            None => {
                let create = NodegroupCreate {
                    cluster: cluster_name.clone(),
                    name: names.nodegroup.clone(),
                    node_role: node_role.clone(),
                    subnet_ids: spec.private_subnet_ids.iter().map(|s| s.as_str().to_owned()).collect(),
                    instance_types: ng.instance_types.clone(),
                    ami_type: ng.ami_type.clone(),
                    min: ng.min,
                    max: ng.max,
                    desired: ng.desired,
                    labels: ng.labels.clone(),
                    launch_template: (lt_id.clone(), lt_version.clone()),
                    version: spec.kubernetes_version.clone(),
                    tags: ctx.tags_for(Tier::Eks, "nodegroup", &names.nodegroup),
                    client_request_token: token(ctx, "nodegroup", &lt_version),
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
                        n
                    }
                    Err(WaitError::Failed { source, .. }) if exists(&source) => self
                        .client
                        .describe_nodegroup(cluster_name.clone(), names.nodegroup.clone())
                        .await
                        .at("DescribeNodegroup", &names.nodegroup)?
                        .ok_or(source)
                        .at("CreateNodegroup", &names.nodegroup)?,
                    Err(e) => return Err(from_aws_wait::<EksError>(e, "CreateNodegroup", &names.nodegroup)),
                }
            }
            Some(mut have) => {
                if have.status != Status::Active {
                    have = self.wait_nodegroup(ctx, &cluster_name, &names.nodegroup).await?;
                }
                let scaling = ((have.min, have.max, have.desired) != (ng.min, ng.max, ng.desired))
                    .then_some((ng.min, ng.max, ng.desired));
                let add: BTreeMap<String, String> = ng
                    .labels
                    .iter()
                    .filter(|(k, v)| have.labels.get(*k) != Some(*v))
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect();
                let remove: Vec<String> = have.labels.keys().filter(|k| !ng.labels.contains_key(*k)).cloned().collect();
                if scaling.is_some() || !add.is_empty() || !remove.is_empty() {
                    self.client
                        .update_nodegroup_config(cluster_name.clone(), names.nodegroup.clone(), scaling, add, remove)
                        .await
                        .at("UpdateNodegroupConfig", &names.nodegroup)?;
                    have = self.wait_nodegroup(ctx, &cluster_name, &names.nodegroup).await?;
                }
                let version_behind = have.version.as_deref().is_some_and(|v| v != spec.kubernetes_version);
                let lt_behind = have.launch_template.as_ref().is_some_and(|(id, v)| *id != lt_id || *v != lt_version);
                if version_behind || lt_behind {
                    // A version change rolls the nodes onto the new AMI; a template change
                    // rolls them onto the new template. One call does either.
                    self.client
                        .update_nodegroup_version(
                            cluster_name.clone(),
                            names.nodegroup.clone(),
                            version_behind.then(|| spec.kubernetes_version.clone()),
                            (lt_behind && !version_behind).then(|| (lt_id.clone(), lt_version.clone())),
                        )
                        .await
                        .at("UpdateNodegroupVersion", &names.nodegroup)?;
                    have = self.wait_nodegroup(ctx, &cluster_name, &names.nodegroup).await?;
                }
                have
            }
        };

        let mut addon_waits = Vec::new();
        for addon in &spec.addons {
            let version = match o.addon_versions.get(addon) {
                Some(v) => v.clone(),
                None => self
                    .client
                    .default_addon_version(addon.clone(), spec.kubernetes_version.clone())
                    .await
                    .at("DescribeAddonVersions", addon)?
                    .ok_or_else(|| EksError::NoAddonVersion {
                        addon: addon.clone(),
                        version: spec.kubernetes_version.clone(),
                    })?,
            };
            let role = ebs_csi_role.clone().filter(|_| addon == EBS_CSI_ADDON);
            match o.addons.get(addon) {
                None => {
                    let tags = ctx.tags_for(Tier::Eks, "addon", addon);
                    match self.client.create_addon(cluster_name.clone(), addon.clone(), version, tags, role).await {
                        Ok(()) => tracing::info!(addon, "creating add-on"),
                        Err(e) if exists(&e) => {}
                        Err(e) => return Err(e.at("CreateAddon", addon).into()),
                    }
                    addon_waits.push(addon.clone());
                }
                Some(a) if a.version != version || (role.is_some() && a.pod_identity_associations.is_empty()) => {
                    self.client
                        .update_addon(cluster_name.clone(), addon.clone(), version, role)
                        .await
                        .at("UpdateAddon", addon)?;
                    addon_waits.push(addon.clone());
                }
                Some(a) if a.status != Status::Active => addon_waits.push(addon.clone()),
                Some(_) => {}
            }
        }
        for (name, a) in o.addons.iter().filter(|(n, a)| !spec.addons.contains(n) && made_by_this_tier(ctx, &a.tags)) {
            tracing::info!(addon = %name, version = %a.version, "deleting add-on no longer in the spec");
            dify_stack_core::ignore_not_found(self.client.delete_addon(cluster_name.clone(), name.clone()).await)
                .at("DeleteAddon", name)?;
        }
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

    /// The control plane: refusals first (so a refused apply changes nothing), then the roles,
    /// the secrets key, the node security group (when the tier owns it), the log group, the
    /// cluster (waited until ACTIVE) and its access entries.
    pub(super) async fn converge_control_plane(
        &self,
        ctx: &Context,
        spec: &EksSpec,
        names: &Names,
        o: &ObservedEks,
    ) -> Result<ControlPlane> {
        if let Some(have) = &o.cluster {
            next_version(&have.version, &spec.kubernetes_version)?;
        }
        if let Some(c) = self.diff(ctx, spec, o).with_action(Action::Replace).next() {
            let f = &c.fields[0];
            return Err(EksError::ImmutableChange {
                field: f.path.clone(),
                resource: c.resource.name.clone(),
                have: f.before.clone().unwrap_or_default(),
                want: f.after.clone().unwrap_or_default(),
            });
        }
        let wants = role_wants(ctx, names, spec);
        let mut arns = Vec::new();
        for (want, have) in wants.iter().zip(o.roles()) {
            arns.push(self.ensure_role(ctx, want, have.as_ref()).await?);
        }
        let (cluster_role, node_role) = (arns[0].clone(), arns[1].clone());
        let ebs_csi_role = arns
            .get(2)
            .map(|arn| AddonRole { service_account: EBS_CSI_SERVICE_ACCOUNT.to_owned(), role_arn: arn.clone() });
        let key = self.ensure_key(ctx, names, o.key.as_ref()).await?;
        let node_sg = match &o.node_security_group {
            Some(sg) => sg.id.clone(),
            None => create_node_security_group(self.client.as_ref(), ctx, spec.vpc_id.as_str(), names).await?,
        };
        self.ensure_log_group(ctx, spec, names, o.log_group.as_ref()).await?;
        let cluster = self.ensure_cluster(ctx, spec, names, o.cluster.clone(), cluster_role.clone(), &key.arn).await?;
        self.ensure_access(ctx, spec, names, &o.access).await?;
        Ok(ControlPlane { cluster_role, node_role, ebs_csi_role, key, node_sg, cluster })
    }

    pub(super) async fn ensure_role(&self, ctx: &Context, want: &RoleWant, have: Option<&RoleInfo>) -> Result<String> {
        let tags = ctx.tags_for(Tier::Eks, want.component, &want.name);
        let (arn, attached, current_tags) = match have {
            None => {
                let arn = match self.client.create_role(want.name.clone(), want.trust.to_string(), tags.clone()).await {
                    Ok(arn) => arn,
                    // Our own earlier create whose response was lost: read it back, tags checked.
                    Err(e) if e.is_already_exists() => {
                        match self.client.get_role(want.name.clone()).await.at("GetRole", &want.name)? {
                            Some(r) => {
                                self.check_owned(ctx, "IAM role", &want.name, &r.tags)?;
                                return Box::pin(self.ensure_role(ctx, want, Some(&r))).await;
                            }
                            None => return Err(e.at("CreateRole", &want.name).into()),
                        }
                    }
                    Err(e) => return Err(e.at("CreateRole", &want.name).into()),
                };
                tracing::info!(role = %want.name, "created IAM role");
                (arn, Vec::new(), tags.clone())
            }
            Some(r) => {
                if serde_json::from_str::<Value>(&r.trust).ok().as_ref() != Some(&want.trust) {
                    self.client
                        .update_trust(want.name.clone(), want.trust.to_string())
                        .await
                        .at("UpdateAssumeRolePolicy", &want.name)?;
                }
                (r.arn.clone(), r.attached.clone(), r.tags.clone())
            }
        };
        for policy in want.policies.iter().filter(|p| !attached.contains(p)) {
            self.client.attach_policy(want.name.clone(), policy.clone()).await.at("AttachRolePolicy", &want.name)?;
        }
        let drift: Tags = tags.into_iter().filter(|(k, v)| current_tags.get(k) != Some(v)).collect();
        if !drift.is_empty() {
            self.client.tag_role(want.name.clone(), drift).await.at("TagRole", &want.name)?;
        }
        Ok(arn)
    }

    /// The control-plane log group with its retention, made before the cluster so EKS writes
    /// into ours instead of creating one that never expires. One without our tag (made by EKS
    /// for a cluster of an older version of this library, or by someone else) is left as is.
    pub(super) async fn ensure_log_group(
        &self,
        ctx: &Context,
        spec: &EksSpec,
        names: &Names,
        have: Option<&LogGroupInfo>,
    ) -> Result<()> {
        let name = &names.log_group;
        let retention = match have {
            Some(g) if !ctx.owns_tags(&g.tags) => {
                tracing::warn!(log_group = %name, "the log group exists without our tag: its retention is left as is");
                return Ok(());
            }
            Some(g) => g.retention_days,
            None => {
                let tags = ctx.tags_for(Tier::Eks, "log-group", name);
                match self.client.create_log_group(name.clone(), tags).await {
                    Ok(()) => None,
                    // Our own earlier create whose response was lost: read it back, tags checked.
                    Err(e) if e.is_already_exists() => {
                        let g = self
                            .client
                            .describe_log_group(name.clone())
                            .await
                            .at("DescribeLogGroups", name)?
                            .ok_or(e)
                            .at("CreateLogGroup", name)?;
                        self.check_owned(ctx, "log group", name, &g.tags)?;
                        g.retention_days
                    }
                    Err(e) => return Err(e.at("CreateLogGroup", name).into()),
                }
            }
        };
        if retention != Some(spec.log_retention_days) {
            self.client
                .put_log_retention(name.clone(), spec.log_retention_days)
                .await
                .at("PutRetentionPolicy", name)?;
        }
        Ok(())
    }

    pub(super) async fn ensure_key(&self, ctx: &Context, names: &Names, have: Option<&KeyInfo>) -> Result<KeyInfo> {
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

    pub(super) async fn ensure_cluster(
        &self,
        ctx: &Context,
        spec: &EksSpec,
        names: &Names,
        have: Option<ClusterInfo>,
        role_arn: String,
        key_arn: &str,
    ) -> Result<ClusterInfo> {
        let name = &names.cluster;
        let tags = ctx.tags_for(Tier::Eks, "cluster", name);
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
                tags,
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
        if cluster.status != Status::Active {
            cluster = self.wait_cluster(ctx, name).await?;
        }
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
        // One update at a time: EKS rejects a second while one is in progress.
        while let Some(step) = next_version(&cluster.version, &spec.kubernetes_version)? {
            tracing::info!(cluster = %name, from = %cluster.version, to = %step, "upgrading control plane");
            self.client.update_cluster_version(name.clone(), step).await.at("UpdateClusterVersion", name)?;
            cluster = self.wait_cluster(ctx, name).await?;
        }
        if endpoint_drift(&cluster, spec) {
            self.client
                .update_cluster_endpoint(name.clone(), subnets, spec.endpoint.public_access_cidrs.clone())
                .await
                .at("UpdateClusterConfig", name)?;
            cluster = self.wait_cluster(ctx, name).await?;
        }
        let want_logs: BTreeSet<String> = spec.log_types.iter().cloned().collect();
        if cluster.enabled_logs != want_logs {
            let disabled =
                crate::spec::ALL_LOG_TYPES.iter().map(|s| (*s).to_owned()).filter(|t| !want_logs.contains(t)).collect();
            self.client
                .update_cluster_logging(name.clone(), want_logs.iter().cloned().collect(), disabled)
                .await
                .at("UpdateClusterConfig", name)?;
            cluster = self.wait_cluster(ctx, name).await?;
        }
        let drift: Tags = tags.into_iter().filter(|(k, v)| cluster.tags.get(k) != Some(v)).collect();
        if !drift.is_empty() {
            self.client.tag_resource(cluster.arn.clone(), drift).await.at("TagResource", name)?;
        }
        Ok(cluster)
    }

    pub(super) async fn ensure_access(
        &self,
        ctx: &Context,
        spec: &EksSpec,
        names: &Names,
        have: &BTreeMap<String, Vec<String>>,
    ) -> Result<()> {
        let policy_arn = format!("arn:{}:eks::aws:cluster-access-policy/{CLUSTER_ADMIN_POLICY}", ctx.partition().id());
        for principal in &spec.admin_principals {
            let policies = match have.get(principal) {
                Some(p) => p.clone(),
                None => {
                    let tags = ctx.tags_for(Tier::Eks, "access-entry", &names.cluster);
                    match self.client.create_access_entry(names.cluster.clone(), principal.clone(), tags).await {
                        Ok(()) => {}
                        Err(e) if exists(&e) => {}
                        Err(e) => return Err(e.at("CreateAccessEntry", principal).into()),
                    }
                    Vec::new()
                }
            };
            if !policies.contains(&policy_arn) {
                self.client
                    .associate_access_policy(names.cluster.clone(), principal.clone(), policy_arn.clone())
                    .await
                    .at("AssociateAccessPolicy", principal)?;
            }
        }
        Ok(())
    }
}
