//! The fake timed by core's simulation (what the simulated-time benchmark runs): resources are
//! CREATING until their sampled durations have passed, a new role is refused until IAM has
//! propagated it, a Deployment add-on waits for the node group, every call is charged.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use dify_stack_core::Provisioner;
use dify_stack_core::ids::ClusterName;
use dify_stack_core::sim::Sim;
use tokio::time::Instant;

use super::{ctx, spec};
use crate::client::*;
use crate::testing::FakeEks;
use crate::{EksProvisioner, Status};

/// min = median = p95: every draw is exactly the median.
fn sim() -> Arc<Sim> {
    let fixed = |secs: f64| [secs; 3];
    let dists = BTreeMap::from([
        ("cheap_object".to_owned(), fixed(1.0)),
        ("eks_cluster".to_owned(), fixed(600.0)),
        ("eks_nodegroup_test".to_owned(), fixed(300.0)),
        ("eks_addon".to_owned(), fixed(60.0)),
        ("iam_propagation".to_owned(), fixed(10.0)),
    ]);
    Arc::new(Sim::new(dists, BTreeMap::new(), 7))
}

#[tokio::test(start_paused = true)]
async fn a_timed_apply_waits_out_the_sampled_durations_and_the_iam_propagation() {
    let sim = sim();
    let fake = FakeEks::new(sim.clone(), "eks_nodegroup_test");
    let eks = EksProvisioner::new(fake.clone());
    let (ctx, spec) = (ctx(), spec());
    let start = Instant::now();
    let out = eks.apply(&ctx, &spec).await.unwrap();
    // The cluster (600 s) then the node group (300 s), one after the other.
    assert!(start.elapsed() >= Duration::from_secs(900), "{:?}", start.elapsed());
    // The account and names of a timed fake; the endpoint once ACTIVE.
    assert_eq!(out.node_role_arn.as_str(), "arn:aws:iam::123456789012:role/eks-t-eks-node");
    assert_eq!(out.endpoint, "https://eks-t.gr7.sim.eks.amazonaws.com");
    assert_eq!(out.cluster_security_group_id.as_ref().map(|g| g.as_str()), Some("sg-eks-eks-t"));
    {
        let s = fake.state();
        // The cluster role was made seconds before CreateCluster: refused until IAM propagated.
        assert!(s.calls.iter().filter(|c| *c == "CreateCluster").count() >= 2, "{:?}", s.calls);
        assert_eq!(s.cluster.as_ref().map(|c| c.status.clone()), Some(Status::Active));
        assert!(s.addons.values().all(|a| a.status == Status::Active), "{:?}", s.addons);
    }
    let drawn = sim.sampled();
    for kind in ["eks_cluster", "eks_nodegroup_test", "eks_addon:coredns", "iam_propagation:eks-t-eks-node"] {
        assert!(drawn.contains_key(kind), "{kind} not drawn: {:?}", drawn.keys());
    }
    // Every call is charged, writes and reads alike.
    assert!(sim.calls() as usize > fake.calls().len(), "{} charged", sim.calls());
    // Converged: the key was aliased with its creation, as by the SDK adapter.
    assert_eq!(fake.state().key_alias.as_ref().map(|(a, _)| a.as_str()), Some("alias/dify-stack/eks-t/eks-secrets"));
    assert!(eks.plan(&ctx, &spec).await.unwrap().is_empty());
}

#[tokio::test(start_paused = true)]
async fn a_timed_deployment_addon_is_not_active_before_the_node_group() {
    let fake = FakeEks::new(sim(), "eks_nodegroup_test");
    fake.state().cluster = Some(ClusterInfo { name: "c".into(), status: Status::Active, ..Default::default() });
    let describe = |name: &'static str| {
        let fake = fake.clone();
        async move { fake.describe_addon(ClusterName::new("c"), name.into()).await.unwrap().unwrap().status }
    };
    for addon in ["vpc-cni", "coredns"] {
        fake.create_addon(ClusterName::new("c"), addon.into(), "v1".into(), Default::default(), None).await.unwrap();
    }
    assert_eq!(describe("vpc-cni").await, Status::Creating);
    tokio::time::sleep(Duration::from_secs(61)).await;
    // The DaemonSet add-on is ready on its own time; the Deployment one needs nodes.
    assert_eq!(describe("vpc-cni").await, Status::Active);
    assert_eq!(describe("coredns").await, Status::Creating);
    {
        let mut s = fake.state();
        s.nodegroup = Some(NodegroupInfo { name: "nodes".into(), ..Default::default() });
        s.nodegroup_ready_at = Some(Instant::now() + Duration::from_secs(100));
    }
    assert_eq!(describe("coredns").await, Status::Creating);
    tokio::time::sleep(Duration::from_secs(100)).await;
    assert_eq!(describe("coredns").await, Status::Active);
    // A scripted status overrides the timed one.
    fake.state().addon_busy.insert("coredns".into(), 1);
    assert_eq!(describe("coredns").await, Status::Updating);
    assert_eq!(describe("coredns").await, Status::Active);
}
