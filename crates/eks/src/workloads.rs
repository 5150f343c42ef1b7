//! What months of use leave in the account beside the tier's own resources, and how destroy
//! recognises it. None of it is in a plan; destroy finds it by tag after the cluster is gone.
//!
//! - **EBS volumes and snapshots.** The default StorageClass the stack makes
//!   (`dify_stack_iam::k8s::storage_class_manifest`) has the EBS CSI driver tag every volume it
//!   provisions with the stack's ownership tags ([`volume_tags`]; aws-ebs-csi-driver
//!   `docs/tagging.md`, "StorageClass Tagging": a parameter whose key starts with
//!   `tagSpecification` is a `key=value` tag of each volume). They are data: destroy deletes them
//!   only when the data policy allows, and refuses before deleting anything otherwise.
//!   Snapshots carry the stack's tags only when a VolumeSnapshotClass asks for them (the same
//!   document, "Snapshot Tagging"); the stack makes none, so these are the ones a user tagged.
//! - **The VPC CNI's network interfaces.** The CNI tags the secondary interfaces it makes with
//!   `cluster.k8s.amazonaws.com/name = <cluster>` (when it knows the cluster name) and
//!   `node.k8s.amazonaws.com/instance_id`, and describes them `aws-K8S-<instance id>`
//!   (amazon-vpc-cni-k8s `pkg/awsutils/awsutils.go`: `eniClusterTagKey`, `eniNodeTagKey`,
//!   `eniDescriptionPrefix`). One the CNI failed to clean up stays `available` in the subnet and
//!   in the node security group after the nodes are gone, and blocks both deletes
//!   (DependencyViolation; terraform-provider-aws PR #39065, eksctl `cleanup.go`).
//! - **The control-plane log group** `/aws/eks/<cluster>/cluster`: EKS can write to it once more
//!   after the cluster is deleted, re-creating it without tags or retention; the next create of
//!   the cluster then meets "already exists" (terraform-aws-eks #2486, #920).
//! - **Anything else tagged for the stack or the cluster** ([`left_for`]): the last step of a
//!   stack's destroy lists it, and an error names each.

use dify_stack_core::{Context, TAG_COMPONENT, TAG_STACK, TAG_TIER, Tags, Tier};

use crate::client::{NetworkInterfaceInfo, SnapshotInfo, VolumeInfo};
use crate::load_balancers::LBC_CLUSTER_TAG;

/// The VPC CNI's tag naming the cluster an interface was made for.
pub const CNI_CLUSTER_TAG: &str = "cluster.k8s.amazonaws.com/name";
/// The VPC CNI's description prefix (`aws-K8S-<instance id>`).
pub const CNI_DESCRIPTION_PREFIX: &str = "aws-K8S-";
/// The in-tree cloud provider's (and the EBS CSI driver's `--k8s-tag-cluster-id`) ownership tag
/// key prefix: `kubernetes.io/cluster/<cluster> = owned`.
pub const K8S_CLUSTER_TAG_PREFIX: &str = "kubernetes.io/cluster/";
/// The EBS CSI driver's tags naming the claim a volume was made for (with the external
/// provisioner's `--extra-create-metadata`, on in the EKS add-on).
const PVC_NAMESPACE_TAG: &str = "kubernetes.io/created-for/pvc/namespace";
const PVC_NAME_TAG: &str = "kubernetes.io/created-for/pvc/name";

/// The tags every volume of the stack's default StorageClass carries: the stack's ownership tags
/// (stack, tier `eks`, component `ebs-volume`) and the user's tags, without `Name` (each volume
/// is named by its claim, through the driver's own tags).
pub fn volume_tags(ctx: &Context) -> Tags {
    let mut tags = ctx.tags_for(Tier::Eks, "ebs-volume", "");
    tags.remove(dify_stack_core::TAG_NAME);
    debug_assert!(tags.contains_key(TAG_STACK) && tags.contains_key(TAG_TIER) && tags.contains_key(TAG_COMPONENT));
    tags
}

/// The tag keys destroy's last step looks for.
pub fn leftover_tag_keys(cluster: &str) -> Vec<String> {
    vec![
        TAG_STACK.to_owned(),
        format!("{K8S_CLUSTER_TAG_PREFIX}{cluster}"),
        LBC_CLUSTER_TAG.to_owned(),
        CNI_CLUSTER_TAG.to_owned(),
    ]
}

/// Whether `tags` mark a resource as the stack's or as made for its cluster: the stack's
/// ownership tag (the full stack name), `kubernetes.io/cluster/<cluster> = owned` (not `shared`:
/// that is how subnets, the user's ones included, are marked for load balancer discovery),
/// `elbv2.k8s.aws/cluster = <cluster>` (AWS Load Balancer Controller) or the CNI's
/// `cluster.k8s.amazonaws.com/name = <cluster>`.
pub fn left_for(ctx: &Context, cluster: &str, tags: &Tags) -> bool {
    ctx.owns_tags(tags)
        || tags.get(&format!("{K8S_CLUSTER_TAG_PREFIX}{cluster}")).is_some_and(|v| v == "owned")
        || tags.get(LBC_CLUSTER_TAG).is_some_and(|v| v == cluster)
        || tags.get(CNI_CLUSTER_TAG).is_some_and(|v| v == cluster)
}

/// Whether the VPC CNI made `eni` for `cluster`: its cluster tag names the cluster; or, made by a
/// CNI that did not know the cluster name (no cluster tag at all), it has the CNI's description
/// and sits in one of `node_groups` (the node security groups of this cluster: the CNI gives
/// its interfaces the groups of the node's primary interface). An interface tagged for another
/// cluster is never this one's.
pub fn made_by_cni(eni: &NetworkInterfaceInfo, cluster: &str, node_groups: &[String]) -> bool {
    match eni.tags.get(CNI_CLUSTER_TAG) {
        Some(c) => c == cluster,
        None => {
            eni.description.starts_with(CNI_DESCRIPTION_PREFIX) && eni.group_ids.iter().any(|g| node_groups.contains(g))
        }
    }
}

/// A volume as a data holder: its id, size and the claim it was made for when the driver said.
pub fn describe_volume(v: &VolumeInfo) -> String {
    let claim = match (v.tags.get(PVC_NAMESPACE_TAG), v.tags.get(PVC_NAME_TAG)) {
        (Some(ns), Some(name)) => format!(", PVC {ns}/{name}"),
        _ => String::new(),
    };
    format!("EBS volume {} ({} GiB{claim}, {}) holds data", v.id, v.size_gib, v.state)
}

/// A snapshot as a data holder.
pub fn describe_snapshot(s: &SnapshotInfo) -> String {
    let of = if s.volume_id.is_empty() { String::new() } else { format!(" of {}", s.volume_id) };
    format!("EBS snapshot {}{of} ({} GiB) holds data", s.id, s.size_gib)
}

#[cfg(test)]
mod tests {
    use dify_stack_core::Environment;

    use super::*;

    fn ctx() -> Context {
        Context::new("dify-t", Environment::Test, "us-west-2").unwrap()
    }

    fn tags(pairs: &[(&str, &str)]) -> Tags {
        pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect()
    }

    #[test]
    fn volume_tags_are_the_ownership_tags_without_a_name() {
        let ctx = ctx().with_tags(tags(&[("team", "ai")])).unwrap();
        let t = volume_tags(&ctx);
        assert_eq!(t[TAG_STACK], "dify-t");
        assert_eq!(t[TAG_TIER], "eks");
        assert_eq!(t[TAG_COMPONENT], "ebs-volume");
        assert_eq!(t["team"], "ai");
        assert!(!t.contains_key("Name"));
        assert!(ctx.owns_tags(&t));
    }

    #[test]
    fn leftovers_are_the_stacks_and_its_clusters_never_shared_or_another_clusters() {
        let ctx = ctx();
        for ours in [
            tags(&[(TAG_STACK, "dify-t")]),
            tags(&[("kubernetes.io/cluster/dify-t", "owned")]),
            tags(&[("elbv2.k8s.aws/cluster", "dify-t")]),
            tags(&[(CNI_CLUSTER_TAG, "dify-t")]),
        ] {
            assert!(left_for(&ctx, "dify-t", &ours), "{ours:?}");
        }
        for not_ours in [
            tags(&[(TAG_STACK, "dify-t2")]),
            tags(&[(TAG_STACK, "dify")]),
            tags(&[("kubernetes.io/cluster/dify-t", "shared")]),
            tags(&[("kubernetes.io/cluster/dify-t2", "owned")]),
            tags(&[("elbv2.k8s.aws/cluster", "dify-t2")]),
            tags(&[(CNI_CLUSTER_TAG, "other")]),
            tags(&[("ebs.csi.aws.com/cluster", "true")]),
        ] {
            assert!(!left_for(&ctx, "dify-t", &not_ours), "{not_ours:?}");
        }
        let keys = leftover_tag_keys("dify-t");
        assert_eq!(keys[1], "kubernetes.io/cluster/dify-t");
    }

    #[test]
    fn cni_interfaces_by_their_cluster_tag_or_description_and_node_group() {
        let eni = |description: &str, groups: &[&str], t: Tags| NetworkInterfaceInfo {
            id: "eni-1".into(),
            status: "available".into(),
            description: description.into(),
            subnet_id: "subnet-a".into(),
            group_ids: groups.iter().map(|g| (*g).to_owned()).collect(),
            tags: t,
        };
        let nodes = vec!["sg-nodes".to_owned()];
        let tagged = tags(&[(CNI_CLUSTER_TAG, "dify-t"), ("node.k8s.amazonaws.com/instance_id", "i-1")]);
        assert!(made_by_cni(&eni("aws-K8S-i-1", &["sg-default"], tagged.clone()), "dify-t", &nodes));
        assert!(made_by_cni(&eni("", &[], tagged), "dify-t", &nodes), "the tag alone says it");
        assert!(made_by_cni(&eni("aws-K8S-i-1", &["sg-nodes"], Tags::new()), "dify-t", &nodes));
        // Another cluster's, by its tag, even in our group; and an untagged one outside our groups
        // (another cluster in a shared VPC) or not described as the CNI's.
        let other = tags(&[(CNI_CLUSTER_TAG, "other")]);
        assert!(!made_by_cni(&eni("aws-K8S-i-1", &["sg-nodes"], other), "dify-t", &nodes));
        assert!(!made_by_cni(&eni("aws-K8S-i-1", &["sg-other"], Tags::new()), "dify-t", &nodes));
        assert!(!made_by_cni(&eni("ELB app/k8s-dify", &["sg-nodes"], Tags::new()), "dify-t", &nodes));
    }

    #[test]
    fn holders_name_the_claim_when_the_driver_tagged_it() {
        let v = VolumeInfo {
            id: "vol-1".into(),
            state: "available".into(),
            size_gib: 8,
            attached_to: vec![],
            tags: tags(&[(PVC_NAMESPACE_TAG, "dify"), (PVC_NAME_TAG, "data-dify-plugin-daemon-0")]),
        };
        assert_eq!(
            describe_volume(&v),
            "EBS volume vol-1 (8 GiB, PVC dify/data-dify-plugin-daemon-0, available) holds data"
        );
        let s = SnapshotInfo { id: "snap-1".into(), volume_id: "vol-1".into(), size_gib: 8, ..Default::default() };
        assert_eq!(describe_snapshot(&s), "EBS snapshot snap-1 of vol-1 (8 GiB) holds data");
    }
}
