//! Observation: what exists of the tier, for plan, apply and destroy.

use std::collections::BTreeMap;

use super::{Context, EksError, EksProvisioner, EksSelector, EksSpec, KeyInfo, Names, ObservedEks, Result, Tier};
use dify_stack_core::AwsAt;
use dify_stack_core::ids::{Arn, ClusterName};

impl EksProvisioner {
    /// What exists of the tier. The reads are independent of each other but for the cluster's
    /// own (node group, add-ons, access entries), which follow the cluster's: they run together,
    /// since each EKS stage of the stack (control plane, access, nodes, add-ons) starts with an
    /// observation on its critical path (about 25 reads; one after the other, 25 round trips).
    pub(super) async fn observe_tier(&self, ctx: &Context, spec: &EksSpec) -> Result<ObservedEks> {
        let names = Names::of(ctx);
        let role = |name: &'_ String| {
            let name = name.clone();
            async move {
                let r = self.client.get_role(name.clone()).await.at("GetRole", &name)?;
                if let Some(r) = &r {
                    self.check_owned(ctx, "IAM role", &name, &r.tags)?;
                }
                Ok::<_, EksError>(r)
            }
        };
        let key = async {
            if let Some(k) = self.client.find_key(names.key_alias.clone()).await.at("DescribeKey", &names.key_alias)? {
                self.check_owned(ctx, "KMS key", &names.key_alias, &k.tags)?;
                return Ok::<_, EksError>((Some(k), false));
            }
            let k = self.unaliased_key(ctx, &names).await?;
            let missing = k.is_some();
            Ok((k, missing))
        };
        let log_group = async {
            Ok::<_, EksError>(
                self.client
                    .describe_log_group(names.log_group.clone())
                    .await
                    .at("DescribeLogGroups", &names.log_group)?,
            )
        };
        let sg = async {
            let sg = self
                .client
                .find_security_group(spec.vpc_id.clone(), names.node_security_group.clone())
                .await
                .at("DescribeSecurityGroups", &names.node_security_group)?;
            if let Some(sg) = &sg {
                self.check_owned(ctx, "security group", &names.node_security_group, &sg.tags)?;
            }
            Ok::<_, EksError>(sg)
        };
        let lt = async {
            let lt = self
                .client
                .find_launch_template(names.launch_template.clone())
                .await
                .at("DescribeLaunchTemplates", &names.launch_template)?;
            if let Some(lt) = &lt {
                self.check_owned(ctx, "launch template", &names.launch_template, &lt.tags)?;
            }
            Ok::<_, EksError>(lt)
        };
        let (cluster_role, node_role, ebs_csi_role, (key, key_alias_missing), log_group, sg, lt, cluster) = tokio::try_join!(
            role(&names.cluster_role),
            role(&names.node_role),
            role(&names.ebs_csi_role),
            key,
            log_group,
            sg,
            lt,
            self.observe_cluster(ctx),
        )?;
        let mut o = ObservedEks {
            cluster_role,
            node_role,
            ebs_csi_role,
            key,
            key_alias_missing,
            log_group,
            node_security_group: sg,
            launch_template: lt,
            ..Default::default()
        };
        let Some(cluster) = cluster else {
            return Ok(o);
        };
        let cluster_name = || ClusterName::new(&names.cluster);
        let nodegroup = async {
            let n = self
                .client
                .describe_nodegroup(cluster_name(), names.nodegroup.clone())
                .await
                .at("DescribeNodegroup", &names.nodegroup)?;
            if let Some(n) = &n {
                self.check_owned(ctx, "node group", &names.nodegroup, &n.tags)?;
            }
            Ok::<_, EksError>(n)
        };
        let addons = async {
            let installed = self.client.list_addons(cluster_name()).await.at("ListAddons", &names.cluster)?;
            let described = futures::future::try_join_all(installed.into_iter().map(|addon| async move {
                let a = self.client.describe_addon(cluster_name(), addon.clone()).await.at("DescribeAddon", &addon)?;
                Ok::<_, EksError>(a.map(|a| (addon, a)))
            }))
            .await?;
            Ok::<_, EksError>(described.into_iter().flatten().collect::<BTreeMap<_, _>>())
        };
        let access = async {
            if spec.admin_principals.is_empty() {
                return Ok::<_, EksError>(BTreeMap::new());
            }
            let entries =
                self.client.list_access_entries(cluster_name()).await.at("ListAccessEntries", &names.cluster)?;
            let policies = futures::future::try_join_all(
                spec.admin_principals.iter().filter(|p| entries.contains(p)).map(|principal| async move {
                    let p = self
                        .client
                        .list_access_policies(cluster_name(), Arn::new(principal))
                        .await
                        .at("ListAssociatedAccessPolicies", principal)?;
                    Ok::<_, EksError>((principal.clone(), p))
                }),
            )
            .await?;
            Ok(policies.into_iter().collect())
        };
        // The add-on versions EKS offers for the version the cluster will run after this apply.
        let versions = futures::future::try_join_all(spec.addons.iter().map(|addon| async move {
            let v = self
                .client
                .addon_versions(addon.clone(), spec.kubernetes_version.to_string())
                .await
                .at("DescribeAddonVersions", addon)?;
            Ok::<_, EksError>((addon.clone(), v))
        }));
        let (nodegroup, addons, access, versions) = tokio::try_join!(nodegroup, addons, access, versions)?;
        o.nodegroup = nodegroup;
        o.addons = addons;
        o.access = access;
        o.addon_versions = versions.into_iter().collect();
        o.cluster = Some(cluster);
        self.observe_upgrade(spec, &names, &mut o).await?;
        Ok(o)
    }

    /// A key of ours (found by its tags, not pending deletion) whose alias was never created:
    /// the run died right after CreateKey.
    async fn unaliased_key(&self, ctx: &Context, names: &Names) -> Result<Option<KeyInfo>> {
        Ok(self
            .client
            .find_keys_by_tags(ctx.tags_for(Tier::Eks, "secrets-key", &names.key_alias))
            .await
            .at("ListKeys", &names.key_alias)?
            .into_iter()
            .find(|k| k.state != "PendingDeletion"))
    }

    /// Observation for destroy: like `observe`, but a resource with our name and without our tag
    /// is skipped (never touched) instead of failing, add-on versions are not resolved, and the
    /// log group is left to the end.
    pub(super) async fn observe_for_destroy(
        &self,
        ctx: &Context,
        selector: &EksSelector,
        names: &Names,
    ) -> Result<ObservedEks> {
        // The log group is read after the cluster is gone (`delete_log_group_after_cluster`).
        let mut o = ObservedEks::default();
        for (slot, name) in [
            (&mut o.cluster_role, &names.cluster_role),
            (&mut o.node_role, &names.node_role),
            (&mut o.ebs_csi_role, &names.ebs_csi_role),
        ] {
            *slot = self.client.get_role(name.clone()).await.at("GetRole", name)?.filter(|r| ctx.owns_tags(&r.tags));
        }
        o.key = match self.client.find_key(names.key_alias.clone()).await.at("DescribeKey", &names.key_alias)? {
            Some(k) => Some(k).filter(|k| ctx.owns_tags(&k.tags)),
            // A key whose alias was never created (the run died right after CreateKey).
            None => self.unaliased_key(ctx, names).await?,
        };
        // Without the VPC, no group in it.
        o.node_security_group = match &selector.vpc_id {
            Some(vpc) => self
                .client
                .find_security_group(vpc.clone(), names.node_security_group.clone())
                .await
                .at("DescribeSecurityGroups", &names.node_security_group)?
                .filter(|s| ctx.owns_tags(&s.tags)),
            None => None,
        };
        o.launch_template = self
            .client
            .find_launch_template(names.launch_template.clone())
            .await
            .at("DescribeLaunchTemplates", &names.launch_template)?
            .filter(|l| ctx.owns_tags(&l.tags));
        o.cluster = self
            .client
            .describe_cluster(ClusterName::new(&names.cluster))
            .await
            .at("DescribeCluster", &names.cluster)?
            .filter(|c| ctx.owns_tags(&c.tags));
        if o.cluster.is_some() {
            for addon in
                self.client.list_addons(ClusterName::new(&names.cluster)).await.at("ListAddons", &names.cluster)?
            {
                if let Some(a) = self
                    .client
                    .describe_addon(ClusterName::new(&names.cluster), addon.clone())
                    .await
                    .at("DescribeAddon", &addon)?
                {
                    o.addons.insert(addon, a);
                }
            }
        }
        Ok(o)
    }
}
