//! Apply, first part: the control plane (roles, secrets key, node security group, log group,
//! cluster, access entries), which [`EksProvisioner::apply_control_plane`] runs alone.

use std::collections::BTreeSet;

use super::{
    AddonRole, AwsError, CLUSTER_ADMIN_POLICY, ClusterCreate, ClusterInfo, Context, EBS_CSI_SERVICE_ACCOUNT, EksError,
    EksOutput, EksProvisioner, EksSpec, KEY_DELETION_WINDOW_DAYS, KeyInfo, Names, ObservedEks, Result, RoleInfo,
    RoleWant, Status, Tier, WaitError, caps, create_node_security_group, eks_output, exists, from_aws_wait,
    next_version, role_wants, token, upgrade, wait,
};
use crate::provisioner::Step;
use crate::provisioner::role_change;
use dify_stack_core::AwsAt;
use dify_stack_core::Planned;
use dify_stack_core::ids::{Arn, ClusterName, KmsKeyArn, RoleArn, SecurityGroupId, SubnetId};

/// What the control plane's convergence hands to the node group and add-ons.
pub(super) struct ControlPlane {
    pub(super) cluster_role: RoleArn,
    pub(super) node_role: RoleArn,
    pub(super) ebs_csi_role: Option<AddonRole>,
    pub(super) key: KeyInfo,
    pub(super) node_sg: SecurityGroupId,
    pub(super) cluster: ClusterInfo,
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

/// Why `change` may not run: a downgrade, an upgrade step a blocking insight stops, a change
/// of what cannot change in place (the node group's instance or AMI type, the cluster's
/// secrets key). Checked for every change of the tier, the node side's included, before the
/// first write, so a refused apply changes nothing.
pub(super) fn refusal(ctx: &Context, change: &Step) -> Option<EksError> {
    match change {
        Step::UpgradeCluster { have, want, refused: true, .. } => {
            want.parse().ok().and_then(|w| next_version(have, w).err())
        }
        Step::UpgradeCluster { want, blocked: Some(i), .. } => Some(upgrade::blocked(&Names::of(ctx).cluster, want, i)),
        Step::ReplaceNodegroup { .. } | Step::ReplaceClusterKey { .. } => {
            let c = change.change();
            let f = &c.fields[0];
            Some(EksError::ImmutableChange {
                field: f.path.clone(),
                resource: c.resource.name.clone(),
                have: f.before.clone().unwrap_or_default(),
                want: f.after.clone().unwrap_or_default(),
            })
        }
        _ => None,
    }
}

impl EksProvisioner {
    /// What an earlier run left in flight on the control plane: a cluster not ACTIVE (still
    /// creating, or an update in progress) is waited for, and the observation takes the
    /// cluster as the wait left it.
    pub(super) async fn settle_cluster(&self, ctx: &Context, mut o: ObservedEks) -> Result<ObservedEks> {
        if let Some(c) = &o.cluster
            && c.status != Status::Active
        {
            o.cluster = Some(self.wait_cluster(ctx, &Names::of(ctx).cluster).await?);
        }
        Ok(o)
    }

    /// The control plane's changes among `changes` (the tier's, computed from the settled
    /// observation `o` and all refused-checked): the roles, the secrets key, the node security
    /// group (when the tier owns it), the log group, the cluster (waited until ACTIVE after
    /// each change) and its access entries. The rest of the list is left to the caller.
    pub(super) async fn converge_control_plane(
        &self,
        ctx: &Context,
        spec: &EksSpec,
        names: &Names,
        o: &ObservedEks,
        changes: &[Step],
        access: bool,
    ) -> Result<ControlPlane> {
        // The roles, the key, the node security group and the log group need nothing of each
        // other: they are made together. The cluster needs its own role, the key and the log
        // group only: it is made as soon as those are there, while the node and add-on roles
        // (their policies attached one after another) and the node security group go on.
        let wants = role_wants(ctx, names, spec);
        let role = |index: usize| self.converge_role_at(ctx, &wants, o, changes, index);
        let other_roles = futures::future::try_join_all((1..wants.len()).map(role));
        let key = self.converge_key(ctx, names, o, changes);
        let node_sg = async {
            let mut node_sg = o.node_security_group.as_ref().map(|s| s.id.clone());
            for change in changes {
                if let Step::CreateNodeSecurityGroup { .. } = change {
                    node_sg = Some(create_node_security_group(self.client.as_ref(), ctx, &spec.vpc_id, names).await?)
                }
            }
            Ok::<_, EksError>(node_sg)
        };
        let logs = self.converge_log_group(ctx, changes);
        let cluster = async {
            let (cluster_role, key, ()) = tokio::try_join!(role(0), key, logs)?;
            let key = key
                .ok_or_else(|| AwsError::new("CreateKey", "NotFound", "neither observed nor created"))
                .at("CreateKey", &names.key_alias)?;
            let cluster = self
                .converge_cluster(ctx, spec, names, o.cluster.clone(), changes, cluster_role.clone(), &key.arn)
                .await?;
            Ok::<_, EksError>((cluster_role, key, cluster))
        };
        let ((cluster_role, key, cluster), arns, node_sg) = tokio::try_join!(cluster, other_roles, node_sg)?;
        let node_role = arns[0].clone();
        let ebs_csi_role = arns
            .get(1)
            .map(|arn| AddonRole { service_account: EBS_CSI_SERVICE_ACCOUNT.to_owned(), role_arn: arn.clone() });
        let node_sg = node_sg
            .ok_or_else(|| AwsError::new("CreateSecurityGroup", "NotFound", "neither observed nor created"))
            .at("CreateSecurityGroup", &names.node_security_group)?;
        if access {
            self.converge_access(ctx, names, changes).await?;
        }
        Ok(ControlPlane { cluster_role, node_role, ebs_csi_role, key, node_sg, cluster })
    }

    /// What CreateCluster needs besides the subnets, together: the cluster role, the secrets
    /// key and the log group (see [`EksProvisioner::apply_prerequisites`]).
    pub(super) async fn converge_prerequisites(
        &self,
        ctx: &Context,
        spec: &EksSpec,
        names: &Names,
        o: &ObservedEks,
        changes: &[Step],
    ) -> Result<()> {
        let wants = role_wants(ctx, names, spec);
        tokio::try_join!(
            self.converge_role_at(ctx, &wants, o, changes, 0),
            self.converge_key(ctx, names, o, changes),
            self.converge_log_group(ctx, changes),
        )?;
        Ok(())
    }

    /// The control-plane log group's changes among `changes`: made with its retention (before
    /// the cluster, so that EKS does not make it untagged and kept forever), adopted (EKS made
    /// it), or its retention set.
    async fn converge_log_group(&self, ctx: &Context, changes: &[Step]) -> Result<()> {
        for change in changes {
            match change {
                Step::CreateLogGroup { name, retention_days } => {
                    self.create_log_group(ctx, name).await?;
                    self.client
                        .put_log_retention(name.clone(), *retention_days)
                        .await
                        .at("PutRetentionPolicy", name)?;
                }
                Step::AdoptLogGroup { name, want, tags, .. } => {
                    let tags = dify_stack_core::drift_tags(tags);
                    self.client.tag_log_group(name.clone(), tags).await.at("TagLogGroup", name)?;
                    self.client.put_log_retention(name.clone(), *want).await.at("PutRetentionPolicy", name)?;
                    tracing::info!(log_group = %name, "adopted the control-plane log group EKS made");
                }
                Step::LogRetention { name, want, .. } => {
                    self.client.put_log_retention(name.clone(), *want).await.at("PutRetentionPolicy", name)?
                }
                _ => {}
            }
        }
        Ok(())
    }

    /// Role `index`'s change among `changes` (none: its observed ARN).
    async fn converge_role_at(
        &self,
        ctx: &Context,
        wants: &[RoleWant],
        o: &ObservedEks,
        changes: &[Step],
        index: usize,
    ) -> Result<RoleArn> {
        let change = changes.iter().find(
            |c| matches!(c, Step::CreateRole { index: i, .. } | Step::UpdateRole { index: i, .. } if *i == index),
        );
        self.converge_role(ctx, &wants[index], o.roles()[index].as_ref(), change).await
    }

    /// The secrets key's changes among `changes`: made, aliased (after a run that died between
    /// CreateKey and CreateAlias), restored or re-tagged. The key after them.
    async fn converge_key(
        &self,
        ctx: &Context,
        names: &Names,
        o: &ObservedEks,
        changes: &[Step],
    ) -> Result<Option<KeyInfo>> {
        let mut key = o.key.clone();
        for change in changes {
            match change {
                Step::CreateKey { .. } => key = Some(self.create_key(ctx, names).await?),
                Step::AliasKey { alias, key_id } => {
                    self.client.create_alias(alias.clone(), key_id.clone()).await.at("CreateAlias", alias)?;
                    tracing::info!(%alias, "aliased the KMS key an interrupted run created");
                }
                Step::UpdateKey { alias, key_id, restore, tags, .. } => {
                    if restore.is_some() {
                        self.client.restore_key(key_id.clone()).await.at("CancelKeyDeletion", alias)?;
                        tracing::info!(%alias, "restored KMS key scheduled for deletion");
                    }
                    if !tags.is_empty() {
                        let tags = dify_stack_core::drift_tags(tags);
                        self.client.tag_key(key_id.clone(), tags).await.at("TagResource", alias)?;
                    }
                }
                _ => {}
            }
        }
        Ok(key)
    }

    /// The access entries' changes: each principal's entry and policy, the principals together.
    pub(super) async fn converge_access(&self, ctx: &Context, names: &Names, changes: &[Step]) -> Result<()> {
        futures::future::try_join_all(changes.iter().map(|change| async move {
            match change {
                Step::CreateAccessEntry { principal } => {
                    let tags = ctx.tags_for(Tier::Eks, "access-entry", &names.cluster);
                    match self
                        .client
                        .create_access_entry(ClusterName::new(&names.cluster), Arn::new(principal), tags)
                        .await
                    {
                        Ok(()) => {}
                        Err(e) if exists(&e) => {}
                        Err(e) => return Err(e.at("CreateAccessEntry", principal).into()),
                    }
                    self.associate_admin(ctx, names, principal).await
                }
                Step::AssociateAccessPolicy { principal } => self.associate_admin(ctx, names, principal).await,
                _ => Ok(()),
            }
        }))
        .await?;
        Ok(())
    }

    async fn associate_admin(&self, ctx: &Context, names: &Names, principal: &str) -> Result<()> {
        let policy_arn = format!("arn:{}:eks::aws:cluster-access-policy/{CLUSTER_ADMIN_POLICY}", ctx.partition().id());
        self.client
            .associate_access_policy(ClusterName::new(&names.cluster), Arn::new(principal), Arn::new(policy_arn))
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
        change: Option<&Step>,
    ) -> Result<RoleArn> {
        match (change, have) {
            (Some(Step::CreateRole { .. }), _) | (_, None) => {
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
                // One after another: IAM has answered concurrent AttachRolePolicy calls on one role
                // with ConcurrentModification (terraform-provider-aws #34371, AWS rolled that back
                // in 2023; the provider retries it since #34378). Different roles go together.
                for policy in &want.policies {
                    self.client
                        .attach_policy(want.name.clone(), Arn::new(policy))
                        .await
                        .at("AttachRolePolicy", &want.name)?;
                }
                Ok(arn)
            }
            (Some(Step::UpdateRole { trust, policies, tags, .. }), Some(r)) => {
                if trust.is_some() {
                    self.client
                        .update_trust(want.name.clone(), want.trust.to_string())
                        .await
                        .at("UpdateAssumeRolePolicy", &want.name)?;
                }
                if policies.is_some() {
                    for policy in want.policies.iter().filter(|p| !r.attached.contains(p)) {
                        self.client
                            .attach_policy(want.name.clone(), Arn::new(policy))
                            .await
                            .at("AttachRolePolicy", &want.name)?;
                    }
                }
                if !tags.is_empty() {
                    let tags = dify_stack_core::drift_tags(tags);
                    self.client.tag_role(want.name.clone(), tags).await.at("TagRole", &want.name)?;
                }
                Ok(r.arn.clone())
            }
            (_, Some(r)) => Ok(r.arn.clone()),
        }
    }

    /// CreateLogGroup of the control-plane log group, made before the cluster so EKS writes
    /// into ours instead of creating one that never expires (the caller sets the retention).
    /// ResourceAlreadyExistsException: our own earlier create whose response was lost, or one
    /// EKS made in the meantime without tags (a late log flush of a deleted cluster of this
    /// name; terraform-aws-eks #2486, #920), which is adopted: tagged as ours. One carrying
    /// another stack's tag is refused.
    async fn create_log_group(&self, ctx: &Context, name: &str) -> Result<()> {
        let tags = ctx.tags_for(Tier::Eks, "log-group", name);
        match self.client.create_log_group(name.to_owned(), tags.clone()).await {
            Ok(()) => Ok(()),
            Err(e) if e.is_already_exists() => {
                let g = self
                    .client
                    .describe_log_group(name.to_owned())
                    .await
                    .at("DescribeLogGroups", name)?
                    .ok_or(e)
                    .at("CreateLogGroup", name)?;
                if g.tags.contains_key(dify_stack_core::TAG_STACK) {
                    return self.check_owned(ctx, "log group", name, &g.tags);
                }
                self.client.tag_log_group(name.to_owned(), tags).await.at("TagLogGroup", name)?;
                tracing::info!(log_group = %name, "adopted the control-plane log group EKS made");
                Ok(())
            }
            Err(e) => Err(e.at("CreateLogGroup", name).into()),
        }
    }

    /// CreateKey (then CreateAlias, in the client). A lost response to our own earlier create is
    /// read back by its alias; a key left without its alias is found by observe
    /// (`Step::AliasKey`), not here. CreateKey has no idempotency token: an SDK retry of a
    /// lost response makes a twin, scheduled for deletion.
    async fn create_key(&self, ctx: &Context, names: &Names) -> Result<KeyInfo> {
        let tags = ctx.tags_for(Tier::Eks, "secrets-key", &names.key_alias);
        let description = format!("dify-stack {}: EKS secrets envelope encryption", ctx.stack());
        let key = match self.client.create_key(names.key_alias.clone(), description, tags.clone()).await {
            Ok(k) => k,
            // The alias exists: a crash between CreateKey and CreateAlias cannot produce this, a
            // lost CreateAlias response can. Read it back.
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
        let twins = self.client.find_keys_by_tags(tags).await.at("ListKeys", &names.key_alias)?;
        for twin in twins.iter().filter(|k| k.key_id != key.key_id && k.state != "PendingDeletion") {
            tracing::warn!(key = %twin.key_id, "scheduling deletion of a twin KMS key");
            self.client
                .schedule_key_deletion(String::new(), twin.key_id.clone(), KEY_DELETION_WINDOW_DAYS)
                .await
                .at("ScheduleKeyDeletion", &twin.key_id)?;
        }
        Ok(key)
    }

    /// Executes the cluster's changes: created (waited until ACTIVE), or its subnets, endpoint
    /// access, logging and upgrade policy each updated alone and waited for, then its tags. The
    /// version moves in the upgrade's steps (`upgrade.rs`), after these. `have` is ACTIVE (waited by the caller).
    #[allow(clippy::too_many_arguments)]
    async fn converge_cluster(
        &self,
        ctx: &Context,
        spec: &EksSpec,
        names: &Names,
        have: Option<ClusterInfo>,
        changes: &[Step],
        role_arn: RoleArn,
        key_arn: &KmsKeyArn,
    ) -> Result<ClusterInfo> {
        let name = &names.cluster;
        let subnets: Vec<SubnetId> = spec.private_subnet_ids.clone();
        let Some(mut cluster) = have else {
            let create = ClusterCreate {
                name: ClusterName::new(name),
                version: spec.kubernetes_version.to_string(),
                role_arn,
                subnet_ids: subnets,
                public_access_cidrs: spec.public_access_cidrs(),
                log_types: spec.log_types.clone(),
                key_arn: key_arn.clone(),
                support_type: spec.support_type.as_str().to_owned(),
                tags: ctx.tags_for(Tier::Eks, "cluster", name),
                client_request_token: token(ctx, "cluster", &spec.kubernetes_version.to_string()),
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
                have: have_key.to_string(),
                want: key_arn.to_string(),
            });
        }
        // Each cluster update alone, in the plan's order, waited until it finished (its update
        // status, then the cluster ACTIVE) before the next: EKS takes one type of update per
        // call and refuses a call while an update is in progress.
        for change in changes {
            match change {
                Step::UpdateClusterSubnets { .. } => {
                    let update = self
                        .client
                        .update_cluster_subnets(
                            ClusterName::new(name),
                            subnets.clone(),
                            cluster.security_group_ids.clone(),
                        )
                        .await
                        .at("UpdateClusterConfig", name)?;
                    tracing::info!(cluster = %name, "updating the control-plane subnets");
                    cluster = self.wait_cluster_update(ctx, name, update).await?;
                }
                Step::UpdateClusterAccess { .. } => {
                    let update = self
                        .client
                        .update_cluster_access(ClusterName::new(name), spec.public_access_cidrs())
                        .await
                        .at("UpdateClusterConfig", name)?;
                    tracing::info!(cluster = %name, "updating the endpoint access");
                    cluster = self.wait_cluster_update(ctx, name, update).await?;
                }
                Step::UpdateClusterLogging { .. } => {
                    let want_logs: BTreeSet<String> = spec.log_types.iter().cloned().collect();
                    let disabled = crate::spec::ALL_LOG_TYPES
                        .iter()
                        .map(|s| (*s).to_owned())
                        .filter(|t| !want_logs.contains(t))
                        .collect();
                    let update = self
                        .client
                        .update_cluster_logging(ClusterName::new(name), want_logs.iter().cloned().collect(), disabled)
                        .await
                        .at("UpdateClusterConfig", name)?;
                    tracing::info!(cluster = %name, "updating the control-plane logging");
                    cluster = self.wait_cluster_update(ctx, name, update).await?;
                }
                Step::UpdateClusterSupport { want, .. } => {
                    let update = self
                        .client
                        .update_cluster_support(ClusterName::new(name), want.clone())
                        .await
                        .at("UpdateClusterConfig", name)?;
                    tracing::info!(cluster = %name, support_type = %want, "updating the upgrade policy");
                    cluster = self.wait_cluster_update(ctx, name, update).await?;
                }
                // Tags are no cluster update (TagResource works while one is in progress).
                Step::TagCluster { tags, .. } => {
                    let tags = dify_stack_core::drift_tags(tags);
                    self.client.tag_resource(Arn::new(&cluster.arn), tags).await.at("TagResource", name)?;
                }
                _ => {}
            }
        }
        Ok(cluster)
    }
}
