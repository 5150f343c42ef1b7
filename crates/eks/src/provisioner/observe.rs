//! Observation: what exists of the tier, for plan, apply and destroy.

use super::{Context, EksProvisioner, EksSelector, EksSpec, KeyInfo, Names, ObservedEks, Result, Tier};
use dify_stack_core::AwsAt;
use dify_stack_core::ids::{Arn, ClusterName};

impl EksProvisioner {
    pub(super) async fn observe_tier(&self, ctx: &Context, spec: &EksSpec) -> Result<ObservedEks> {
        let names = Names::of(ctx);
        let mut o = ObservedEks::default();
        for (slot, name) in [
            (&mut o.cluster_role, &names.cluster_role),
            (&mut o.node_role, &names.node_role),
            (&mut o.ebs_csi_role, &names.ebs_csi_role),
        ] {
            if let Some(r) = self.client.get_role(name.clone()).await.at("GetRole", name)? {
                self.check_owned(ctx, "IAM role", name, &r.tags)?;
                *slot = Some(r);
            }
        }
        if let Some(k) = self.client.find_key(names.key_alias.clone()).await.at("DescribeKey", &names.key_alias)? {
            self.check_owned(ctx, "KMS key", &names.key_alias, &k.tags)?;
            o.key = Some(k);
        } else {
            o.key = self.unaliased_key(ctx, &names).await?;
            o.key_alias_missing = o.key.is_some();
        }
        o.log_group =
            self.client.describe_log_group(names.log_group.clone()).await.at("DescribeLogGroups", &names.log_group)?;
        let sg = self
            .client
            .find_security_group(spec.vpc_id.clone(), names.node_security_group.clone())
            .await
            .at("DescribeSecurityGroups", &names.node_security_group)?;
        if let Some(sg) = sg {
            self.check_owned(ctx, "security group", &names.node_security_group, &sg.tags)?;
            o.node_security_group = Some(sg);
        }
        if let Some(lt) = self
            .client
            .find_launch_template(names.launch_template.clone())
            .await
            .at("DescribeLaunchTemplates", &names.launch_template)?
        {
            self.check_owned(ctx, "launch template", &names.launch_template, &lt.tags)?;
            o.launch_template = Some(lt);
        }
        let Some(cluster) = self.observe_cluster(ctx).await? else {
            return Ok(o);
        };
        if let Some(n) = self
            .client
            .describe_nodegroup(ClusterName::new(&names.cluster), names.nodegroup.clone())
            .await
            .at("DescribeNodegroup", &names.nodegroup)?
        {
            self.check_owned(ctx, "node group", &names.nodegroup, &n.tags)?;
            o.nodegroup = Some(n);
        }
        let installed =
            self.client.list_addons(ClusterName::new(&names.cluster)).await.at("ListAddons", &names.cluster)?;
        for addon in installed {
            if let Some(a) = self
                .client
                .describe_addon(ClusterName::new(&names.cluster), addon.clone())
                .await
                .at("DescribeAddon", &addon)?
            {
                o.addons.insert(addon, a);
            }
        }
        let entries = if spec.admin_principals.is_empty() {
            Vec::new()
        } else {
            self.client
                .list_access_entries(ClusterName::new(&names.cluster))
                .await
                .at("ListAccessEntries", &names.cluster)?
        };
        for principal in spec.admin_principals.iter().filter(|p| entries.contains(p)) {
            let policies = self
                .client
                .list_access_policies(ClusterName::new(&names.cluster), Arn::new(principal))
                .await
                .at("ListAssociatedAccessPolicies", principal)?;
            o.access.insert(principal.clone(), policies);
        }
        o.cluster = Some(cluster);
        // The add-on versions EKS offers for the version the cluster will run after this apply.
        for addon in &spec.addons {
            let v = self
                .client
                .addon_versions(addon.clone(), spec.kubernetes_version.to_string())
                .await
                .at("DescribeAddonVersions", addon)?;
            o.addon_versions.insert(addon.clone(), v);
        }
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
