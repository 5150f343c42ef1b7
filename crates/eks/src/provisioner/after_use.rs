//! Destroy of what months of use leave ([`crate::workloads`]): the stack's EBS volumes and
//! snapshots (data, under the data policy), the VPC CNI's leftover network interfaces, the
//! control-plane log group EKS may re-create after the cluster is gone; and the list of anything
//! still tagged for the stack or its cluster that a stack's destroy checks last.

use std::sync::Mutex;

use crate::client::{SnapshotInfo, VolumeInfo};
use crate::workloads::{self, describe_snapshot, describe_volume, made_by_cni};

use super::{Context, EksError, EksProvisioner, EksSelector, Names, ResourceRef, Result, caps};
use dify_stack_core::AwsAt;
use dify_stack_core::ids::{ClusterName, VpcId};

impl EksProvisioner {
    /// Whether destroy may delete the stack's EBS volumes and snapshots (what the default
    /// StorageClass made for PersistentVolumeClaims; [`crate::workloads`]): the context's
    /// `permissions.allow_data_loss`. Without it, destroy refuses before deleting anything while
    /// one exists ([`EksError::DataLossRefused`]).
    fn may_delete_data(&self, ctx: &Context) -> bool {
        ctx.permissions.allow_data_loss
    }

    /// The stack's EBS volumes (not already deleting) and snapshots, found by its ownership tag
    /// (the full stack name, re-checked: a tag filter is not a promise).
    async fn stack_data(&self, ctx: &Context) -> Result<(Vec<VolumeInfo>, Vec<SnapshotInfo>)> {
        let stack = ctx.stack().as_str().to_owned();
        let key = dify_stack_core::TAG_STACK.to_owned();
        let volumes = self
            .client
            .tagged_volumes(key.clone(), stack.clone())
            .await
            .at("DescribeVolumes", &stack)?
            .into_iter()
            .filter(|v| ctx.owns_tags(&v.tags) && !matches!(v.state.as_str(), "deleting" | "deleted"))
            .collect();
        let snapshots = self
            .client
            .tagged_snapshots(key, stack.clone())
            .await
            .at("DescribeSnapshots", &stack)?
            .into_iter()
            .filter(|s| ctx.owns_tags(&s.tags))
            .collect();
        Ok((volumes, snapshots))
    }

    /// The stack's EBS volumes and snapshots, one line each, when the data policy does not allow
    /// destroy to delete them (empty when it does, or when there are none). Read-only: the stack
    /// checks every tier's holders before its first delete.
    pub async fn data_holders(&self, ctx: &Context) -> Result<Vec<String>> {
        if self.may_delete_data(ctx) {
            return Ok(Vec::new());
        }
        let (volumes, snapshots) = self.stack_data(ctx).await?;
        Ok(volumes.iter().map(describe_volume).chain(snapshots.iter().map(describe_snapshot)).collect())
    }

    /// [`EksError::DataLossRefused`] while [`Self::data_holders`] names anything.
    pub(super) async fn refuse_data_loss(&self, ctx: &Context) -> Result<()> {
        let holders = self.data_holders(ctx).await?;
        if holders.is_empty() { Ok(()) } else { Err(EksError::DataLossRefused { holders }) }
    }

    /// After the cluster and its nodes are gone: the stack's snapshots, then its volumes. Only an
    /// `available` volume can be deleted (EC2 API reference, DeleteVolume: "The volume must be in
    /// the available state (not attached to an instance)"): one still attached (a node being
    /// terminated) is waited for, bounded by [`caps::VOLUMES_DETACHED`]; a timeout names it.
    /// Refused, deleting nothing, when the data policy keeps data and one appeared after the
    /// first check (a claim made while destroy ran).
    pub(super) async fn delete_stack_data(&self, ctx: &Context) -> Result<Vec<ResourceRef>> {
        self.refuse_data_loss(ctx).await?;
        let deleted = Mutex::new(Vec::new());
        let done = |r: ResourceRef| deleted.lock().expect("not poisoned").push(r);
        let what = format!("the EBS snapshots and volumes of stack {} to be deleted", ctx.stack());
        self.wait_gone(ctx, what, caps::VOLUMES_DETACHED, || async {
            let (volumes, snapshots) = self.stack_data(ctx).await?;
            let mut waiting = Vec::new();
            for s in snapshots {
                if dify_stack_core::ignore_not_found(self.client.delete_snapshot(s.id.clone()).await)
                    .at("DeleteSnapshot", &s.id)?
                {
                    tracing::info!(snapshot = %s.id, "deleted an EBS snapshot of the stack");
                    done(ResourceRef::new("ec2:snapshot", &s.id).with_id(&s.id));
                }
            }
            for v in volumes {
                if !matches!(v.state.as_str(), "available" | "error") {
                    let on = if v.attached_to.is_empty() {
                        String::new()
                    } else {
                        format!(" on {}", v.attached_to.join(", "))
                    };
                    waiting.push(format!("volume {} {}{on}", v.id, v.state));
                    continue;
                }
                match dify_stack_core::ignore_not_found(self.client.delete_volume(v.id.clone()).await) {
                    Ok(true) => {
                        tracing::info!(volume = %v.id, "deleted an EBS volume of the stack");
                        done(ResourceRef::new("ec2:volume", &v.id).with_id(&v.id));
                    }
                    Ok(false) => {}
                    // Attached again between the describe and the delete.
                    Err(e) if e.code.as_deref() == Some("VolumeInUse") => {
                        waiting.push(format!("volume {} in-use", v.id))
                    }
                    Err(e) => return Err(e.at("DeleteVolume", &v.id).into()),
                }
            }
            Ok((!waiting.is_empty()).then(|| waiting.join(", ")))
        })
        .await?;
        Ok(deleted.into_inner().expect("not poisoned"))
    }

    /// After the cluster and its nodes are gone: the network interfaces the VPC CNI made for this
    /// cluster and left in the VPC ([`made_by_cni`]; `node_groups` are the cluster's node
    /// security groups). A detached one is deleted; one still attached or detaching (a node
    /// being terminated) is waited for, bounded by [`caps::INTERFACES_DETACHED`].
    pub(super) async fn sweep_cni_interfaces(
        &self,
        ctx: &Context,
        selector: &EksSelector,
        cluster: &str,
        node_groups: &[String],
    ) -> Result<Vec<ResourceRef>> {
        // Without the VPC there is no interface in it left.
        let Some(vpc) = selector.vpc_id.clone() else { return Ok(Vec::new()) };
        let deleted = Mutex::new(Vec::new());
        let what = format!("the network interfaces the VPC CNI left for {cluster} to be deleted");
        self.wait_gone(ctx, what, caps::INTERFACES_DETACHED, || async {
            let enis =
                self.client.vpc_network_interfaces(vpc.clone()).await.at("DescribeNetworkInterfaces", vpc.as_str())?;
            let mut waiting = Vec::new();
            for eni in enis.iter().filter(|e| made_by_cni(e, cluster, node_groups)) {
                if eni.status != "available" {
                    waiting.push(format!("{} {}", eni.id, eni.status));
                    continue;
                }
                match dify_stack_core::ignore_not_found(self.client.delete_network_interface(eni.id.clone()).await) {
                    Ok(true) => {
                        tracing::info!(interface = %eni.id, "deleted a network interface the VPC CNI left");
                        let r = ResourceRef::new("ec2:network-interface", &eni.id).with_id(&eni.id);
                        deleted.lock().expect("not poisoned").push(r);
                    }
                    Ok(false) => {}
                    Err(e) if e.code.as_deref() == Some("InvalidNetworkInterface.InUse") => {
                        waiting.push(format!("{} in-use", eni.id))
                    }
                    Err(e) => return Err(e.at("DeleteNetworkInterface", &eni.id).into()),
                }
            }
            Ok((!waiting.is_empty()).then(|| waiting.join(", ")))
        })
        .await?;
        Ok(deleted.into_inner().expect("not poisoned"))
    }

    /// The control-plane log group, by its exact name, once no cluster of that name exists:
    /// ours, or one without any stack's tag (EKS re-creates it untagged when it flushes logs
    /// after the cluster is deleted; terraform-aws-eks #2486, #920). One carrying another
    /// stack's tag, or written to by a cluster of that name that exists (not ours: destroy never
    /// touches it), is left. Returns whether it was deleted.
    pub(super) async fn delete_log_group_after_cluster(&self, ctx: &Context, names: &Names) -> Result<bool> {
        let name = &names.log_group;
        let Some(g) = self.client.describe_log_group(name.clone()).await.at("DescribeLogGroups", name)? else {
            return Ok(false);
        };
        if g.tags.contains_key(dify_stack_core::TAG_STACK) && !ctx.owns_tags(&g.tags) {
            return Ok(false);
        }
        if self
            .client
            .describe_cluster(ClusterName::new(&names.cluster))
            .await
            .at("DescribeCluster", &names.cluster)?
            .is_some()
        {
            return Ok(false);
        }
        if !ctx.owns_tags(&g.tags) {
            tracing::info!(log_group = %name, "deleting the control-plane log group EKS re-created after the cluster");
        }
        Ok(dify_stack_core::ignore_not_found(self.client.delete_log_group(name.clone()).await)
            .at("DeleteLogGroup", name)?)
    }

    /// What is still tagged for the stack or its cluster ([`workloads::left_for`]): every live
    /// EC2 resource carrying one of [`workloads::leftover_tag_keys`], and, in `vpc_id`, the load
    /// balancers and target groups Kubernetes made for the cluster. `<kind> <id>` each, sorted.
    /// Read-only; after a stack's destroy anything listed is a leftover (the facade checks it
    /// after its last EC2 tier).
    pub async fn leftovers(&self, ctx: &Context, vpc_id: Option<&str>) -> Result<Vec<String>> {
        let cluster = Names::of(ctx).cluster;
        let keys = workloads::leftover_tag_keys(&cluster);
        let mut out: Vec<String> = self
            .client
            .tagged_resources(keys)
            .await
            .at("Describe", "resources tagged for the stack")?
            .into_iter()
            .filter(|r| workloads::left_for(ctx, &cluster, &r.tags))
            .map(|r| format!("{} {}", r.kind, r.id))
            .collect();
        if let (Some(lbs), Some(vpc)) = (&self.load_balancers, vpc_id) {
            for lb in lbs
                .cluster_load_balancers(VpcId::new(vpc), ClusterName::new(&cluster), None)
                .await
                .at("DescribeLoadBalancers", &cluster)?
            {
                out.push(format!("elasticloadbalancing:load-balancer {}", lb.id));
            }
            for tg in lbs
                .cluster_target_groups(VpcId::new(vpc), ClusterName::new(&cluster))
                .await
                .at("DescribeTargetGroups", &cluster)?
            {
                out.push(format!("elasticloadbalancing:target-group {tg}"));
            }
        }
        out.sort();
        out.dedup();
        Ok(out)
    }

    /// [`Self::leftovers`] as an error naming each ([`EksError::Leftovers`]).
    pub async fn check_leftovers(&self, ctx: &Context, vpc_id: Option<&str>) -> Result<()> {
        let resources = self.leftovers(ctx, vpc_id).await?;
        if resources.is_empty() {
            Ok(())
        } else {
            Err(EksError::Leftovers { stack: ctx.stack().to_string(), resources })
        }
    }
}
