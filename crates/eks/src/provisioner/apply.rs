//! Apply: create or converge each resource in dependency order.

use super::{
    AwsError, Context, EBS_CSI_ADDON, EksError, EksOutput, EksProvisioner, EksSpec, Names, NodegroupConfigUpdate,
    NodegroupCreate, NodegroupInfo, NodegroupVersionUpdate, ObservedEks, Result, Status, Tier, WaitError, caps,
    eks_output, exists, from_aws_wait, launch_template_data, lt_security_groups, token, wait,
};
use crate::provisioner::ControlPlane;
use crate::provisioner::{EksChange, Step};
use crate::provisioner::{NODE_ADDONS, POD_NETWORK_ADDON, node_changes};
use dify_stack_core::AwsAt;
use dify_stack_core::Provisioner;
use dify_stack_core::ids::{ClusterName, RoleArn};

/// Which add-ons [`EksProvisioner::execute_tier`] waits for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum AddonWaits {
    /// Every add-on it changed or found busy.
    All,
    /// Only the pod network ([`POD_NETWORK_ADDON`]), which every pod needs to start: the others
    /// are made, and waited for by the next apply; the access entries are left to
    /// [`EksProvisioner::apply_access`] ([`EksProvisioner::apply_nodes`]).
    PodNetwork,
}

impl EksProvisioner {
    /// Executes the tier's changes (computed from the settled observation `o`, refusals
    /// checked), in stages, as each stage needs what the one before made:
    /// 1. the control plane's changes (`converge_control_plane`);
    /// 2. the upgrade's steps, one at a time, then everything observed again (each step moves
    ///    the cluster, the add-ons and the node group);
    /// 3. a node group an earlier run left busy waited for; then the node side's changes (launch
    ///    template, node group, add-ons) computed again, with the same function as the plan,
    ///    from that observation and the converged control plane (the node security group's id
    ///    and the cluster's security group, known after apply in the plan), and executed.
    pub(super) async fn execute_tier(
        &self,
        ctx: &Context,
        spec: &EksSpec,
        mut o: ObservedEks,
        changes: Vec<EksChange>,
        waits: AddonWaits,
    ) -> Result<EksOutput> {
        let names = Names::of(ctx);
        let changes: Vec<Step> = changes.into_iter().map(|c| c.0).collect();
        let ControlPlane { cluster_role, node_role, ebs_csi_role, key, node_sg, mut cluster } =
            self.converge_control_plane(ctx, spec, &names, &o, &changes, waits == AddonWaits::All).await?;
        // A Kubernetes upgrade, step by step; then the rest as the upgrade left it.
        let upgrade: Vec<Step> = changes
            .into_iter()
            .filter(|c| {
                matches!(c, Step::UpgradeCluster { .. } | Step::UpgradeAddon { .. } | Step::UpgradeNodegroup { .. })
            })
            .collect();
        if !upgrade.is_empty() {
            cluster = self.run_upgrade(ctx, &names, &upgrade).await?;
            o = self.observe(ctx, spec).await?;
        }
        let cluster_name = names.cluster.clone();
        if let Some(ng) = &o.nodegroup
            && ng.status != Status::Active
        {
            o.nodegroup = Some(self.wait_nodegroup(ctx, &cluster_name, &names.nodegroup).await?);
        }
        // The node side's changes from this observation (stage 3 above), not the plan's.
        let changes = node_changes(ctx, spec, &o, Some(&node_sg), Some(&cluster), false);

        // Launch template: IMDSv2 only, hop limit 1, encrypted gp3 root volume.
        let launch_template = async {
            let lt_data = launch_template_data(spec, lt_security_groups(&node_sg, Some(&cluster)));
            let mut lt = o.launch_template.as_ref().map(|lt| (lt.id.clone(), lt.latest_version));
            for change in &changes {
                match change {
                    Step::CreateLaunchTemplate { name, .. } => {
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
                            Err(e) => return Err(EksError::from(e.at("CreateLaunchTemplate", name))),
                        };
                        lt = Some((made.id, made.latest_version));
                    }
                    Step::UpdateLaunchTemplate { id, .. } => {
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
            lt.map(|(id, v)| (id, v.to_string()))
                .ok_or_else(|| AwsError::new("CreateLaunchTemplate", "NotFound", "neither observed nor created"))
                .at("CreateLaunchTemplate", &names.launch_template)
                .map_err(EksError::from)
        };

        // The add-ons every node runs (NODE_ADDONS) with the launch template, before the node
        // group, so that its first nodes come up with them (terraform-aws-eks's
        // `before_compute`, which exists "to ensure the VPC CNI is configured before nodes are
        // created"); the others after it, as their pods need nodes. The calls of one batch run
        // together, and those changed or observed busy are waited for with the node group.
        let is_node_addon = |c: &&Step| match c {
            Step::CreateAddon { name, .. } | Step::UpdateAddon { name, .. } | Step::DeleteAddon { name, .. } => {
                NODE_ADDONS.contains(&name.as_str())
            }
            _ => false,
        };
        let (first, after): (Vec<&Step>, Vec<&Step>) = changes.iter().partition(is_node_addon);
        let ebs_csi_role = ebs_csi_role.as_ref();
        let first_addons = self.converge_addons(ctx, spec, &o, &cluster_name, ebs_csi_role, &first);
        let ((lt_id, lt_version), mut addon_waits) = tokio::try_join!(launch_template, first_addons)?;

        let mut nodegroup = o.nodegroup.clone();
        let mut nodegroup_made = None;
        for change in &changes {
            match change {
                Step::CreateNodegroup { .. } => {
                    nodegroup =
                        Some(self.create_nodegroup(ctx, spec, &names, &node_role, (&lt_id, &lt_version)).await?);
                    nodegroup_made = Some(tokio::time::Instant::now());
                }
                Step::UpdateNodegroup { scaling, labels, launch_template, .. } => {
                    let ng = &spec.node_group;
                    let have = nodegroup.clone().unwrap_or_default();
                    if scaling.is_some() || labels.is_some() {
                        let update = NodegroupConfigUpdate {
                            cluster: ClusterName::new(&cluster_name),
                            name: names.nodegroup.clone(),
                            // min and max; desired only when it moves into the new range.
                            scaling: scaling.map(|((_, _, have_desired), (min, max, desired))| {
                                (min, max, (desired != have_desired).then_some(desired))
                            }),
                            add_labels: ng
                                .labels
                                .iter()
                                .filter(|(k, v)| have.labels.get(*k) != Some(*v))
                                .map(|(k, v)| (k.clone(), v.clone()))
                                .collect(),
                            remove_labels: have
                                .labels
                                .keys()
                                .filter(|k| !ng.labels.contains_key(*k))
                                .cloned()
                                .collect(),
                        };
                        self.client
                            .update_nodegroup_config(update)
                            .await
                            .at("UpdateNodegroupConfig", &names.nodegroup)?;
                        nodegroup = Some(self.wait_nodegroup(ctx, &cluster_name, &names.nodegroup).await?);
                    }
                    if launch_template.is_some() {
                        // A template change rolls the nodes onto the new template.
                        let update = NodegroupVersionUpdate {
                            cluster: ClusterName::new(&cluster_name),
                            name: names.nodegroup.clone(),
                            version: None,
                            launch_template: Some((lt_id.clone(), lt_version.clone())),
                        };
                        self.client
                            .update_nodegroup_version(update)
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

        addon_waits.extend(self.converge_addons(ctx, spec, &o, &cluster_name, ebs_csi_role, &after).await?);
        // Those observed busy (not changed here) too, as if made now.
        let now = tokio::time::Instant::now();
        for a in spec.addons.iter().filter(|a| o.addons.get(*a).is_some_and(|a| a.status != Status::Active)) {
            if !addon_waits.iter().any(|(w, _)| w == a) {
                addon_waits.push((a.clone(), now));
            }
        }
        let nodegroup_wait = async {
            if nodegroup.status == Status::Active {
                Ok(nodegroup.clone())
            } else {
                self.wait_nodegroup_since(ctx, &cluster_name, &names.nodegroup, nodegroup_made).await
            }
        };
        let addons_wait = futures::future::try_join_all(
            addon_waits
                .iter()
                .filter(|(a, _)| waits == AddonWaits::All || a == POD_NETWORK_ADDON)
                .map(|(a, made)| self.wait_addon_since(ctx, &cluster_name, a, Some(*made))),
        );
        let (nodegroup, _) = futures::future::try_join(nodegroup_wait, addons_wait).await?;

        Ok(eks_output(ctx, &cluster, &node_sg, &cluster_role, &node_role, &key.arn, &nodegroup.name))
    }

    /// Makes `steps`' add-on changes (others are skipped), all at once; returns the add-ons to
    /// wait for, with when each call was made.
    async fn converge_addons(
        &self,
        ctx: &Context,
        spec: &EksSpec,
        o: &ObservedEks,
        cluster_name: &str,
        ebs_csi_role: Option<&crate::client::AddonRole>,
        steps: &[&Step],
    ) -> Result<Vec<(String, tokio::time::Instant)>> {
        let made = futures::future::try_join_all(steps.iter().map(|step| async move {
            let role = |name: &str| ebs_csi_role.cloned().filter(|_| name == EBS_CSI_ADDON);
            let cluster = || ClusterName::new(cluster_name.to_owned());
            match step {
                Step::CreateAddon { name, version, .. } => {
                    let version = match version {
                        Some(v) => v.clone(),
                        None => self.default_addon_version(spec, name).await?,
                    };
                    let tags = ctx.tags_for(Tier::Eks, "addon", name);
                    match self.client.create_addon(cluster(), name.clone(), version, tags, role(name)).await {
                        Ok(()) => tracing::info!(addon = %name, "creating add-on"),
                        Err(e) if exists(&e) => {}
                        Err(e) => return Err(EksError::from(e.at("CreateAddon", name))),
                    }
                    Ok(Some((name.clone(), tokio::time::Instant::now())))
                }
                Step::UpdateAddon { name, version, .. } => {
                    // EKS refuses to update an add-on that is busy (ResourceInUseException):
                    // one observed CREATING or UPDATING is waited for first (a DEGRADED or
                    // failed one is updated as it is: that is how it is repaired).
                    if o.addons.get(name).is_some_and(|a| matches!(a.status, Status::Creating | Status::Updating)) {
                        self.wait_addon(ctx, cluster_name, name).await?;
                    }
                    let version = match (version, o.addons.get(name)) {
                        (Some((_, want)), _) => want.clone(),
                        (None, Some(a)) => a.version.clone(),
                        (None, None) => self.default_addon_version(spec, name).await?,
                    };
                    self.client
                        .update_addon(cluster(), name.clone(), version, role(name))
                        .await
                        .at("UpdateAddon", name)?;
                    Ok(Some((name.clone(), tokio::time::Instant::now())))
                }
                Step::DeleteAddon { name, version } => {
                    tracing::info!(addon = %name, %version, "deleting add-on no longer in the spec");
                    dify_stack_core::ignore_not_found(self.client.delete_addon(cluster(), name.clone()).await)
                        .at("DeleteAddon", name)?;
                    Ok(None)
                }
                _ => Ok(None),
            }
        }))
        .await?;
        Ok(made.into_iter().flatten().collect())
    }

    /// The version a new add-on is created at when the plan could not know it (the cluster is
    /// made by this run): the spec's, else EKS's default for the Kubernetes version.
    async fn default_addon_version(&self, spec: &EksSpec, addon: &str) -> Result<String> {
        if let Some(v) = spec.addon_versions.get(addon) {
            return Ok(v.clone());
        }
        self.client
            .addon_versions(addon.to_owned(), spec.kubernetes_version.to_string())
            .await
            .at("DescribeAddonVersions", addon)?
            .default
            .ok_or_else(|| EksError::NoAddonVersion {
                addon: addon.to_owned(),
                version: spec.kubernetes_version.to_string(),
            })
    }

    /// CreateNodegroup, retried while the new node role is not yet assumable; one made by an
    /// earlier run whose response was lost is read back.
    async fn create_nodegroup(
        &self,
        ctx: &Context,
        spec: &EksSpec,
        names: &Names,
        node_role: &RoleArn,
        (lt_id, lt_version): (&str, &str),
    ) -> Result<NodegroupInfo> {
        let ng = &spec.node_group;
        let create = NodegroupCreate {
            cluster: ClusterName::new(&names.cluster),
            name: names.nodegroup.clone(),
            node_role: node_role.clone(),
            subnet_ids: spec.private_subnet_ids.clone(),
            instance_types: ng.instance_types.clone(),
            ami_type: ng.ami_type.clone(),
            min: ng.min,
            max: ng.max,
            desired: ng.desired,
            labels: ng.labels.clone(),
            launch_template: (lt_id.to_owned(), lt_version.to_owned()),
            version: spec.kubernetes_version.to_string(),
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
                .describe_nodegroup(ClusterName::new(&names.cluster), names.nodegroup.clone())
                .await
                .at("DescribeNodegroup", &names.nodegroup)?
                .ok_or(source)
                .at("CreateNodegroup", &names.nodegroup)?),
            Err(e) => Err(from_aws_wait::<EksError>(e, "CreateNodegroup", &names.nodegroup)),
        }
    }
}
