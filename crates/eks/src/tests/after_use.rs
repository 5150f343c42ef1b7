//! Destroy after months of use, against the fake: the stack's volumes and snapshots under the
//! data policy, the CNI's leftover interfaces, the log group EKS re-creates, adoption of a log
//! group EKS made, and the last step's list of what is still tagged.

use crate::ClusterInfo;
use crate::EksError;
use crate::EksProvisioner;
use crate::LogGroupInfo;
use crate::NetworkInterfaceInfo;
use crate::SnapshotInfo;
use crate::TaggedResource;
use crate::VolumeInfo;
use crate::tests::FakeEks;
use dify_stack_core::Classify;
use dify_stack_core::Provisioner;
use std::sync::{Arc, Mutex};

use dify_stack_core::{Permissions, TAG_STACK, Tags};

use super::{Action, ctx, spec};
use crate::workloads::{CNI_CLUSTER_TAG, volume_tags};

fn tags(pairs: &[(&str, &str)]) -> Tags {
    pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect()
}

/// A volume the default StorageClass made (the stack's tags, the driver's claim tags).
fn stack_volume(id: &str, state: &str, detach_after: u32) -> (VolumeInfo, u32) {
    let mut t = volume_tags(&ctx());
    t.extend(tags(&[
        ("kubernetes.io/created-for/pvc/namespace", "dify"),
        ("kubernetes.io/created-for/pvc/name", "data-dify-0"),
        ("ebs.csi.aws.com/cluster", "true"),
    ]));
    let attached_to = if state == "in-use" { vec!["i-node".to_owned()] } else { vec![] };
    (VolumeInfo { id: id.into(), state: state.into(), size_gib: 8, attached_to, tags: t }, detach_after)
}

fn snapshot(id: &str, t: Tags) -> SnapshotInfo {
    SnapshotInfo { id: id.into(), state: "completed".into(), volume_id: "vol-1".into(), size_gib: 8, tags: t }
}

/// After months of use: a claim's volume (attached to a node until the node group goes, then
/// detaching over two more polls), a snapshot of it tagged for the stack, and what is not the
/// stack's: another stack's volume, an untagged volume, an untagged snapshot.
fn used(fake: &FakeEks) {
    let mut s = fake.state();
    s.volumes.push(stack_volume("vol-1", "in-use", 2));
    let mut other = stack_volume("vol-other", "available", 0);
    other.0.tags.insert(TAG_STACK.into(), "eks-t2".into());
    s.volumes.push(other);
    s.volumes.push((VolumeInfo { id: "vol-untagged".into(), state: "available".into(), ..Default::default() }, 0));
    s.snapshots.push(snapshot("snap-1", volume_tags(&ctx())));
    s.snapshots.push(snapshot("snap-untagged", Tags::new()));
}

fn volume_ids(fake: &FakeEks) -> Vec<String> {
    fake.state().volumes.iter().map(|(v, _)| v.id.clone()).collect()
}

#[tokio::test(start_paused = true)]
async fn the_stacks_volumes_and_snapshots_are_data_refused_without_delete_data_before_any_delete() {
    let fake = FakeEks::default();
    let eks = EksProvisioner::new(fake.clone());
    let (ctx, s) = (ctx(), spec());
    eks.apply(&ctx, &s).await.unwrap();
    used(&fake);
    let mark = fake.calls().len();

    let holders = eks.data_holders(&ctx).await.unwrap();
    assert_eq!(
        holders,
        [
            "EBS volume vol-1 (8 GiB, PVC dify/data-dify-0, in-use) holds data",
            "EBS snapshot snap-1 of vol-1 (8 GiB) holds data"
        ]
    );
    let err = eks.destroy(&ctx, &s).await.unwrap_err();
    assert!(matches!(&err, EksError::DataLossRefused { holders: h } if *h == holders), "{err:?}");
    assert_eq!(err.kind(), dify_stack_core::ErrorKind::Refused);
    assert!(err.to_string().contains("nothing was deleted") && err.to_string().contains("--delete-data"), "{err}");
    let writes: Vec<String> = fake.calls()[mark..].iter().filter(|c| c.starts_with("Delete")).cloned().collect();
    assert!(writes.is_empty(), "refused before any delete: {writes:?}");
    assert!(fake.state().cluster.is_some());

    // The context's permission is the one that counts.
    let allowed =
        ctx.clone().with_permissions(Permissions { allow_replace: false, allow_data_loss: true, ..Default::default() });
    assert!(eks.data_holders(&allowed).await.unwrap().is_empty());
    assert_eq!(eks.data_holders(&ctx).await.unwrap().len(), 2);
}

#[tokio::test(start_paused = true)]
async fn with_delete_data_they_go_after_the_cluster_once_detached_and_nothing_else_does() {
    let fake = FakeEks::default();
    let eks = EksProvisioner::new(fake.clone());
    let s = spec();
    let ctx = ctx().with_permissions(Permissions { allow_data_loss: true, ..Default::default() });
    eks.apply(&ctx, &s).await.unwrap();
    used(&fake);
    let mark = fake.calls().len();
    let deleted = eks.destroy(&ctx, &s).await.unwrap();

    for (kind, id) in [("ec2:volume", "vol-1"), ("ec2:snapshot", "snap-1")] {
        assert!(deleted.iter().any(|r| r.kind == kind && r.name == id), "{kind} {id} in {deleted:?}");
    }
    assert_eq!(volume_ids(&fake), ["vol-other", "vol-untagged"], "only the stack's");
    let snapshots: Vec<String> = fake.state().snapshots.iter().map(|s| s.id.clone()).collect();
    assert_eq!(snapshots, ["snap-untagged"]);
    let calls = &fake.calls()[mark..];
    let at = |call: &str| calls.iter().position(|c| c == call).unwrap_or_else(|| panic!("{call} in {calls:?}"));
    // After the cluster is gone; the attached volume is deleted once it is available, never
    // while attached (DeleteVolume of an attached volume fails).
    assert!(at("DeleteCluster") < at("DeleteSnapshot(snap-1)"));
    assert!(at("DeleteSnapshot(snap-1)") < at("DeleteVolume(vol-1)"));
    assert_eq!(calls.iter().filter(|c| c.starts_with("DeleteVolume")).count(), 1, "{calls:?}");
    assert!(calls.iter().filter(|c| *c == "DescribeVolumes").count() == 3, "polled until detached: {calls:?}");
    // And before the launch template and roles: a failure here leaves the tier resumable.
    assert!(at("DeleteVolume(vol-1)") < at("DeleteLaunchTemplate"));
}

#[tokio::test(start_paused = true)]
async fn a_volume_that_never_detaches_ends_destroy_naming_it() {
    let fake = FakeEks::default();
    let eks = EksProvisioner::new(fake.clone());
    let s = spec();
    let ctx = ctx().with_permissions(Permissions { allow_data_loss: true, ..Default::default() });
    eks.apply(&ctx, &s).await.unwrap();
    // Attached by hand to an instance outside the node group: it never detaches.
    fake.state().volumes.push(stack_volume("vol-held", "in-use", u32::MAX));
    let err = eks.destroy(&ctx, &s).await.unwrap_err();
    assert!(matches!(&err, EksError::Wait(_)), "{err:?}");
    assert!(err.to_string().contains("vol-held in-use on i-node"), "{err}");
    assert_eq!(volume_ids(&fake), ["vol-held"]);
}

#[tokio::test(start_paused = true)]
async fn the_cni_interfaces_left_in_the_vpc_are_deleted_after_the_nodes_and_no_other() {
    let fake = FakeEks::default();
    let eks = EksProvisioner::new(fake.clone());
    let (ctx, s) = (ctx(), spec());
    eks.apply(&ctx, &s).await.unwrap();
    let node_sg = fake.state().sg.as_ref().unwrap().1.id.to_string();
    let eni = |id: &str, vpc: &str, description: &str, groups: &[&str], t: Tags, status: &str| {
        (
            vpc.to_owned(),
            NetworkInterfaceInfo {
                id: id.into(),
                status: status.into(),
                description: description.into(),
                subnet_id: "subnet-a".into(),
                group_ids: groups.iter().map(|g| (*g).to_owned()).collect(),
                tags: t,
            },
        )
    };
    let cni = tags(&[(CNI_CLUSTER_TAG, "eks-t"), ("node.k8s.amazonaws.com/instance_id", "i-gone")]);
    fake.state().enis = vec![
        // Tagged by the CNI for this cluster, in the VPC's default group.
        eni("eni-cni", "vpc-1", "aws-K8S-i-gone", &["sg-default"], cni.clone(), "available"),
        // Made by a CNI that did not know the cluster name: in our node group.
        eni("eni-cni-untagged", "vpc-1", "aws-K8S-i-gone", &[&node_sg], Tags::new(), "available"),
        // Another cluster's, a load balancer's, one in another VPC: never touched.
        eni("eni-other", "vpc-1", "aws-K8S-i-x", &[&node_sg], tags(&[(CNI_CLUSTER_TAG, "other")]), "available"),
        eni("eni-elb", "vpc-1", "ELB app/k8s-dify/1", &[&node_sg], Tags::new(), "in-use"),
        eni("eni-elsewhere", "vpc-2", "aws-K8S-i-gone", &["sg-x"], cni, "available"),
    ];
    let mark = fake.calls().len();
    let deleted = eks.destroy(&ctx, &s).await.unwrap();
    let gone: Vec<&str> =
        deleted.iter().filter(|r| r.kind == "ec2:network-interface").map(|r| r.name.as_str()).collect();
    assert_eq!(gone, ["eni-cni", "eni-cni-untagged"]);
    let left: Vec<String> = fake.state().enis.iter().map(|(_, e)| e.id.clone()).collect();
    assert_eq!(left, ["eni-other", "eni-elb", "eni-elsewhere"]);
    let calls = &fake.calls()[mark..];
    let at = |call: &str| calls.iter().position(|c| c == call).unwrap();
    assert!(at("DeleteCluster") < at("DeleteNetworkInterface(eni-cni)"));
    assert!(at("DeleteNetworkInterface(eni-cni-untagged)") < at("DeleteSecurityGroup"), "before the node group");
}

#[tokio::test(start_paused = true)]
async fn the_log_group_eks_re_creates_after_the_cluster_is_deleted_is_deleted_again() {
    let fake = FakeEks::default();
    let eks = EksProvisioner::new(fake.clone());
    let (ctx, s) = (ctx(), spec());
    eks.apply(&ctx, &s).await.unwrap();
    // A late flush re-creates the group once, untagged, after our delete.
    fake.state().log_group_flushes = 1;
    let mark = fake.calls().len();
    let deleted = eks.destroy(&ctx, &s).await.unwrap();
    let calls = &fake.calls()[mark..];
    let deletes: Vec<usize> =
        calls.iter().enumerate().filter(|(_, c)| c.starts_with("DeleteLogGroup")).map(|(i, _)| i).collect();
    assert_eq!(deletes.len(), 2, "{calls:?}");
    let cluster_gone = calls.iter().position(|c| c == "DeleteCluster").unwrap();
    let key = calls.iter().position(|c| c.starts_with("ScheduleKeyDeletion")).unwrap();
    assert!(cluster_gone < deletes[0] && key < deletes[1], "after the cluster, and again last: {calls:?}");
    assert!(fake.state().log_group.is_none());
    assert_eq!(deleted.iter().filter(|r| r.kind == "logs:log-group").count(), 1);

    // Later still (the flush came after destroy returned): the next destroy deletes it by its
    // name although it carries no tag, the cluster being gone.
    let late = LogGroupInfo { name: "/aws/eks/eks-t/cluster".into(), retention_days: None, tags: Tags::new() };
    fake.state().log_group = Some(late.clone());
    let deleted = eks.destroy(&ctx, &s).await.unwrap();
    assert_eq!(deleted.iter().map(|r| r.to_string()).collect::<Vec<_>>().len(), 1, "{deleted:?}");
    assert!(fake.state().log_group.is_none());

    // Another stack's group, or one a cluster of the name (not ours) writes to, is left.
    let theirs = LogGroupInfo { tags: tags(&[(TAG_STACK, "eks-t2")]), ..late.clone() };
    fake.state().log_group = Some(theirs);
    assert!(eks.destroy(&ctx, &s).await.unwrap().is_empty());
    assert!(fake.state().log_group.is_some());
    let foreign = FakeEks::with(|st| {
        st.cluster = Some(ClusterInfo { name: "eks-t".into(), status: "ACTIVE".into(), ..Default::default() });
        st.log_group = Some(late);
    });
    assert!(EksProvisioner::new(foreign.clone()).destroy(&ctx, &s).await.unwrap().is_empty());
    assert!(foreign.state().log_group.is_some() && foreign.state().cluster.is_some());
}

#[tokio::test(start_paused = true)]
async fn a_log_group_eks_made_is_adopted_by_plan_and_by_a_create_that_meets_it() {
    let (ctx, s) = (ctx(), spec());
    let untagged = LogGroupInfo { name: "/aws/eks/eks-t/cluster".into(), retention_days: None, tags: Tags::new() };

    // Found by observe: the plan shows it adopted (tags, retention), apply makes those writes.
    let fake = FakeEks::with(|st| st.log_group = Some(untagged.clone()));
    let eks = EksProvisioner::new(fake.clone());
    let plan = eks.plan(&ctx, &s).await.unwrap();
    let entry = plan.changes.iter().find(|c| c.resource.kind == "logs:log-group").expect("in the plan");
    assert_eq!(entry.action, Action::Update);
    let fields: Vec<&str> = entry.fields.iter().map(|f| f.path.as_str()).collect();
    assert!(fields.contains(&"retention_days") && fields.contains(&"tags.dify-stack:stack"), "{fields:?}");
    eks.apply(&ctx, &s).await.unwrap();
    let calls = fake.calls();
    assert!(!calls.iter().any(|c| c.starts_with("CreateLogGroup")), "{calls:?}");
    let tagged = calls.iter().position(|c| c.starts_with("TagLogGroup")).unwrap();
    assert!(tagged < calls.iter().position(|c| c == "CreateCluster").unwrap(), "before the cluster writes to it");
    let g = fake.state().log_group.clone().unwrap();
    assert!(ctx.owns_tags(&g.tags) && g.retention_days == Some(s.log_retention_days), "{g:?}");
    assert!(eks.plan(&ctx, &s).await.unwrap().is_empty(), "converged");

    // Made between observe and CreateLogGroup: ResourceAlreadyExistsException, adopted.
    let fake = FakeEks::with(|st| st.log_group_race = Some(Tags::new()));
    let eks = EksProvisioner::new(fake.clone());
    eks.apply(&ctx, &s).await.unwrap();
    let calls = fake.calls();
    let create = calls.iter().position(|c| c.starts_with("CreateLogGroup")).unwrap();
    assert_eq!(calls[create + 1], "TagLogGroup(/aws/eks/eks-t/cluster)", "{calls:?}");
    let g = fake.state().log_group.clone().unwrap();
    assert!(ctx.owns_tags(&g.tags) && g.retention_days == Some(s.log_retention_days), "{g:?}");

    // One carrying another stack's tag is refused, never adopted.
    let fake = FakeEks::with(|st| st.log_group_race = Some(tags(&[(TAG_STACK, "eks-t2")])));
    let err = EksProvisioner::new(fake.clone()).apply(&ctx, &s).await.unwrap_err();
    assert!(matches!(&err, EksError::NotOwned(e) if e.kind == "log group"), "{err:?}");
    assert!(!fake.calls().iter().any(|c| c.starts_with("TagLogGroup") || c == "CreateCluster"));
}

#[tokio::test(start_paused = true)]
async fn the_last_step_names_each_resource_still_tagged_for_the_stack_or_cluster() {
    let fake = FakeEks::default();
    let mut lbs = crate::load_balancers::MockLoadBalancerApi::new();
    let listed = Arc::new(Mutex::new(Vec::<String>::new()));
    let l = listed.clone();
    lbs.expect_cluster_load_balancers().returning(move |vpc, cluster, namespace| {
        assert_eq!((vpc.as_str(), cluster.as_str(), namespace), ("vpc-1", "eks-t", None));
        Ok(l.lock()
            .unwrap()
            .iter()
            .map(|id| crate::load_balancers::ClusterLoadBalancer {
                id: id.clone(),
                kind: crate::load_balancers::LoadBalancerKind::V2,
            })
            .collect())
    });
    lbs.expect_cluster_target_groups().returning(|_, _| Ok(vec![]));
    let eks = EksProvisioner::new(fake.clone()).with_load_balancers(lbs);
    let ctx = ctx();
    assert!(eks.leftovers(&ctx, Some("vpc-1")).await.unwrap().is_empty(), "nothing at all");
    let resource = |kind: &str, id: &str, t: Tags| TaggedResource { kind: kind.into(), id: id.into(), tags: t };
    {
        let mut st = fake.state();
        st.tagged = vec![
            resource("ec2:instance", "i-node", tags(&[("kubernetes.io/cluster/eks-t", "owned")])),
            resource("ec2:security-group", "sg-lbc", tags(&[("elbv2.k8s.aws/cluster", "eks-t")])),
            resource("ec2:subnet", "subnet-a", tags(&[("kubernetes.io/cluster/eks-t", "shared")])),
            resource("ec2:vpc", "vpc-theirs", tags(&[(TAG_STACK, "eks-t2")])),
        ];
        st.volumes.push(stack_volume("vol-1", "available", 0));
        st.enis.push((
            "vpc-1".into(),
            NetworkInterfaceInfo {
                id: "eni-cni".into(),
                tags: tags(&[(CNI_CLUSTER_TAG, "eks-t")]),
                ..Default::default()
            },
        ));
    }
    listed.lock().unwrap().push("arn:lb/k8s-dify".into());
    let left = eks.leftovers(&ctx, Some("vpc-1")).await.unwrap();
    assert_eq!(
        left,
        [
            "ec2:instance i-node",
            "ec2:network-interface eni-cni",
            "ec2:security-group sg-lbc",
            "ec2:volume vol-1",
            "elasticloadbalancing:load-balancer arn:lb/k8s-dify"
        ]
    );
    let err = eks.check_leftovers(&ctx, Some("vpc-1")).await.unwrap_err();
    assert!(matches!(&err, EksError::Leftovers { resources, .. } if *resources == left), "{err:?}");
    assert!(err.to_string().contains("destroy left 5 resource(s) tagged for stack eks-t"), "{err}");
    // Without a VPC (gone with the network) only EC2 is asked.
    assert_eq!(eks.leftovers(&ctx, None).await.unwrap().len(), 4);
}
