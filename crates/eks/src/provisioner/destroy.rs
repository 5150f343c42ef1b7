//! Destroy: the Kubernetes-made load balancers first, then the tier in reverse order.

use std::time::Duration;

use super::{
    AwsError, ClusterInfo, ClusterLoadBalancer, Context, EksError, EksProvisioner, EksSelector,
    KEY_DELETION_WINDOW_DAYS, Names, NotOwned, ResourceRef, Result, Status, caps, from_aws_wait, list_ids, wait,
};
use dify_stack_core::AwsAt;
use dify_stack_core::ids::{Arn, ClusterName, SecurityGroupId};

impl EksProvisioner {
    /// The stack's cluster as it is now (found by its name), `None` when there is none; one of
    /// that name without the stack's ownership tag is refused, as by `observe`. Read-only. What
    /// a destroy without a spec reads the live cluster's issuer, endpoint and CA from.
    pub async fn observe_cluster(&self, ctx: &Context) -> Result<Option<ClusterInfo>> {
        let names = Names::of(ctx);
        let Some(cluster) = self
            .client
            .describe_cluster(ClusterName::new(&names.cluster))
            .await
            .at("DescribeCluster", &names.cluster)?
        else {
            return Ok(None);
        };
        self.check_owned(ctx, "EKS cluster", &names.cluster, &cluster.tags)?;
        Ok(Some(cluster))
    }

    pub(super) async fn destroy_tier(&self, ctx: &Context, selector: &EksSelector) -> Result<Vec<ResourceRef>> {
        let names = Names::of(ctx);
        // The data policy before the first delete: the stack's EBS volumes and snapshots.
        self.refuse_data_loss(ctx).await?;
        let o = self.observe_for_destroy(ctx, selector, &names).await?;
        let mut deleted = Vec::new();
        let cluster = names.cluster.clone();
        if let Some(c) = &o.cluster {
            self.remove_kubernetes_load_balancers(ctx, selector, &cluster).await?;
            let ngs =
                self.client.list_nodegroups(ClusterName::new(cluster.clone())).await.at("ListNodegroups", &cluster)?;
            let mut ours = Vec::new();
            for ng in ngs {
                let Some(info) = self
                    .client
                    .describe_nodegroup(ClusterName::new(cluster.clone()), ng.clone())
                    .await
                    .at("DescribeNodegroup", &ng)?
                else {
                    continue;
                };
                if !ctx.owns_tags(&info.tags) {
                    return Err(NotOwned::new(ctx, "node group", ng).into());
                }
                if info.status != Status::Deleting {
                    dify_stack_core::ignore_not_found(
                        self.client.delete_nodegroup(ClusterName::new(cluster.clone()), ng.clone()).await,
                    )
                    .at("DeleteNodegroup", &ng)?;
                }
                ours.push(info);
            }
            for info in ours {
                let ng = info.name.clone();
                self.wait_gone(ctx, format!("node group {ng} to be deleted"), caps::NODEGROUP_DELETED, || async {
                    Ok(self
                        .client
                        .describe_nodegroup(ClusterName::new(cluster.clone()), ng.clone())
                        .await
                        .at("DescribeNodegroup", &ng)?
                        .map(|n| n.status.to_string()))
                })
                .await?;
                deleted.push(ResourceRef::new("eks:nodegroup", &ng).with_id(&info.arn));
            }
            // Add-ons after the node group (STACK.md destroy order): the CNI and the EBS CSI
            // driver keep working while the nodes drain and detach their volumes.
            for (addon, a) in &o.addons {
                if dify_stack_core::ignore_not_found(
                    self.client.delete_addon(ClusterName::new(cluster.clone()), addon.clone()).await,
                )
                .at("DeleteAddon", addon)?
                {
                    deleted.push(ResourceRef::new("eks:addon", addon).with_id(&a.version));
                }
            }
            if c.status != Status::Deleting {
                dify_stack_core::ignore_not_found(self.client.delete_cluster(ClusterName::new(cluster.clone())).await)
                    .at("DeleteCluster", &cluster)?;
            }
            self.wait_gone(ctx, format!("EKS cluster {cluster} to be deleted"), caps::CLUSTER_DELETED, || async {
                Ok(self
                    .client
                    .describe_cluster(ClusterName::new(cluster.clone()))
                    .await
                    .at("DescribeCluster", &cluster)?
                    .map(|c| c.status.to_string()))
            })
            .await?;
            deleted.push(ResourceRef::new("eks:cluster", &cluster).with_id(&c.arn));
        }
        self.sweep_load_balancer_leftovers(ctx, selector, &cluster).await?;
        // What the workloads left, now that no node uses it: the stack's volumes and snapshots
        // (data: the policy was checked above), the CNI's interfaces (in the node security
        // groups, which cannot be deleted while they exist).
        deleted.extend(self.delete_stack_data(ctx).await?);
        let node_groups: Vec<String> = o
            .node_security_group
            .iter()
            .map(|g| g.id.to_string())
            .chain(
                o.cluster.as_ref().and_then(|c| c.cluster_security_group_id.clone()).map(SecurityGroupId::into_inner),
            )
            .collect();
        deleted.extend(self.sweep_cni_interfaces(ctx, selector, &cluster, &node_groups).await?);
        // The control-plane log group outlives the cluster unless deleted (EKS never removes it),
        // and EKS may write it again after the cluster is gone: by its exact name, ours or
        // untagged, now and once more at the end.
        let log_group = ResourceRef::new("logs:log-group", &names.log_group);
        let mut log_group_deleted = self.delete_log_group_after_cluster(ctx, &names).await?;
        if let Some(lt) = &o.launch_template
            && dify_stack_core::ignore_not_found(self.client.delete_launch_template(lt.id.clone()).await)
                .at("DeleteLaunchTemplate", &lt.name)?
        {
            deleted.push(ResourceRef::new("ec2:launch-template", &lt.name).with_id(&lt.id));
        }
        if let Some(sg) = o.node_security_group.as_ref().filter(|_| !self.keep_node_security_group) {
            // ENIs of terminated nodes can hold the group for a while.
            let result = wait::retry(
                &format!("DeleteSecurityGroup {}", sg.id),
                &ctx.wait.capped(Duration::from_secs(10 * 60)),
                ctx.cancellation(),
                AwsError::is_dependency_violation,
                || async { dify_stack_core::ignore_not_found(self.client.delete_security_group(sg.id.clone()).await) },
            )
            .await
            .map_err(|e| from_aws_wait::<EksError>(e, "DeleteSecurityGroup", &sg.name))?;
            if result {
                deleted.push(ResourceRef::new("ec2:security-group", &sg.name).with_id(sg.id.as_str()));
            }
        }
        for role in o.roles().into_iter().flatten() {
            for policy in &role.attached {
                dify_stack_core::ignore_not_found(self.client.detach_policy(role.name.clone(), Arn::new(policy)).await)
                    .at("DetachRolePolicy", &role.name)?;
            }
            if dify_stack_core::ignore_not_found(self.client.delete_role(role.name.clone()).await)
                .at("DeleteRole", &role.name)?
            {
                deleted.push(ResourceRef::new("iam:role", &role.name).with_id(role.arn.as_str()));
            }
        }
        if let Some(k) = o.key.as_ref().filter(|k| k.state != "PendingDeletion") {
            self.client
                .schedule_key_deletion(names.key_alias.clone(), k.key_id.clone(), KEY_DELETION_WINDOW_DAYS)
                .await
                .at("ScheduleKeyDeletion", &names.key_alias)?;
            deleted.push(ResourceRef::new("kms:key", format!("alias/{}", names.key_alias)).with_id(k.arn.as_str()));
        }
        // A late log flush re-creates the group after the cluster is gone: checked again last.
        if self.delete_log_group_after_cluster(ctx, &names).await? {
            tracing::info!(log_group = %names.log_group, "the control-plane log group was re-created after the cluster was deleted: deleted again");
            log_group_deleted = true;
        }
        if log_group_deleted {
            deleted.push(log_group);
        }
        Ok(deleted)
    }

    /// Kubernetes-made load balancers go before the node group: their Services and Ingresses
    /// are deleted when the API answers (their controllers run on the nodes), then whatever is
    /// still tagged for the cluster in the VPC is deleted directly.
    pub(super) async fn remove_kubernetes_load_balancers(
        &self,
        ctx: &Context,
        selector: &EksSelector,
        cluster: &str,
    ) -> Result<()> {
        let Some(lbs) = &self.load_balancers else { return Ok(()) };
        // Without the VPC there is no load balancer in it to find.
        let vpc = selector.vpc_id.clone();
        let mut objects_deleted = false;
        if let Some(kube) = &self.kube_objects {
            match kube.delete_load_balancer_objects().await {
                Ok(objects) => {
                    objects_deleted = !objects.is_empty();
                    if objects_deleted {
                        tracing::info!(?objects, "deleted the cluster's load-balancer Services and Ingresses");
                    }
                }
                Err(e) if e.unreachable => {
                    tracing::warn!(error = %e, "the Kubernetes API cannot be reached: load balancers tagged for the cluster are deleted directly");
                }
                Err(e) => return Err(EksError::Kubernetes(e)),
            }
        }
        let list = || async {
            let Some(vpc) = &vpc else { return Ok(Vec::new()) };
            lbs.cluster_load_balancers(vpc.clone(), ClusterName::new(cluster), None)
                .await
                .at("DescribeLoadBalancers", cluster)
        };
        let pending = |left: Vec<ClusterLoadBalancer>| {
            (!left.is_empty()).then(|| format!("{} left: {}", left.len(), list_ids(&left)))
        };
        if objects_deleted {
            // Their controllers delete them; what outlives this is deleted below.
            let waited = self
                .wait_gone(
                    ctx,
                    format!("load balancers of {cluster} to be deleted by their controllers"),
                    caps::LB_CONTROLLER,
                    || async { Ok(pending(list().await?)) },
                )
                .await;
            if let Err(e) = waited {
                tracing::warn!(error = %e, "load balancers outlived their Kubernetes objects: deleting them directly");
            }
        }
        for lb in list().await? {
            tracing::info!(load_balancer = %lb.id, "deleting a load balancer Kubernetes made for the cluster");
            lbs.delete_load_balancer(lb.clone()).await.at("DeleteLoadBalancer", &lb.id)?;
        }
        self.wait_gone(ctx, format!("load balancers of {cluster} to be deleted"), caps::LB_CONTROLLER, || async {
            Ok(pending(list().await?))
        })
        .await
    }

    /// After the cluster: the target groups and security groups Kubernetes made for it (their
    /// load balancers are gone; EC2 may still see their ENIs for a while).
    pub(super) async fn sweep_load_balancer_leftovers(
        &self,
        ctx: &Context,
        selector: &EksSelector,
        cluster: &str,
    ) -> Result<()> {
        let Some(lbs) = &self.load_balancers else { return Ok(()) };
        // Without the VPC there is nothing of it left to find.
        let Some(vpc) = selector.vpc_id.clone() else { return Ok(()) };
        for tg in lbs
            .cluster_target_groups(vpc.clone(), ClusterName::new(cluster))
            .await
            .at("DescribeTargetGroups", cluster)?
        {
            lbs.delete_target_group(tg.clone()).await.at("DeleteTargetGroup", tg.as_str())?;
        }
        let groups = lbs
            .cluster_security_groups(vpc, ClusterName::new(cluster), dify_stack_core::TAG_STACK.to_owned())
            .await
            .at("DescribeSecurityGroups", cluster)?;
        for sg in groups {
            wait::retry(
                &format!("DeleteSecurityGroup {sg}"),
                &ctx.wait.capped(Duration::from_secs(10 * 60)),
                ctx.cancellation(),
                AwsError::is_dependency_violation,
                || lbs.delete_security_group(sg.clone()),
            )
            .await
            .map_err(|e| from_aws_wait::<EksError>(e, "DeleteSecurityGroup", sg.as_str()))?;
        }
        Ok(())
    }
}
