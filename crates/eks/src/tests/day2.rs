//! Day two: cluster updates one type at a time, several operators' addresses, the autoscaler's
//! desired size and add-on versions left alone.

use super::{Environment, SubnetId, ctx, spec};
use crate::EksProvisioner;
use crate::MAX_PUBLIC_ACCESS_CIDRS;
use crate::NodeGroupSpec;
use crate::NodegroupInfo;
use crate::client::ClusterApi;
use crate::tests::FakeEks;
use crate::tests::default_version;
use dify_stack_core::Provisioner;

/// The writes since `mark`, reads left out.
fn writes_since(fake: &FakeEks, mark: usize) -> Vec<String> {
    fake.calls()[mark..]
        .iter()
        .filter(|c| !["Describe", "List", "Get", "Find"].iter().any(|p| c.starts_with(p)))
        .cloned()
        .collect()
}

fn sorted(v: &[String]) -> Vec<String> {
    let mut v = v.to_vec();
    v.sort();
    v
}

/// Each plan line as "kind fields".
fn lines(plan: &dify_stack_core::Plan) -> Vec<String> {
    plan.changes
        .iter()
        .map(|c| {
            let fields: Vec<&str> = c.fields.iter().map(|f| f.path.as_str()).collect();
            format!("{} {}", c.resource.kind, fields.join(","))
        })
        .collect()
}

#[tokio::test(start_paused = true)]
async fn subnets_access_and_logging_are_three_updates_each_waited_for() {
    let fake = FakeEks::default();
    let eks = EksProvisioner::new(fake.clone());
    let ctx = ctx();
    let mut s = spec();
    s.operator_cidrs = vec!["198.51.100.7/32".into()];
    eks.apply(&ctx, &s).await.unwrap();
    // The default caller_address mode from another machine: its /32 is added; at the same time
    // the subnets and the log types change.
    s.operator_cidrs.push("203.0.113.9/32".into());
    s.private_subnet_ids.push(SubnetId::new("subnet-c"));
    s.log_types.retain(|l| l != "api");
    let plan = eks.plan(&ctx, &s).await.unwrap();
    assert_eq!(
        lines(&plan),
        ["eks:cluster subnets", "eks:cluster endpoint_public_access_cidrs", "eks:cluster logging"],
        "one line per type of cluster update:\n{plan}"
    );
    let mark = fake.calls().len();
    eks.apply(&ctx, &s).await.unwrap();
    let calls = fake.calls()[mark..].to_vec();
    let updates: Vec<(usize, &String)> = calls.iter().enumerate().filter(|(_, c)| c.starts_with("Update")).collect();
    assert_eq!(
        updates.iter().map(|(_, c)| c.as_str()).collect::<Vec<_>>(),
        ["UpdateClusterConfig(subnets)", "UpdateClusterConfig(access)", "UpdateClusterConfig(logging)"]
    );
    // Between two updates: the first's DescribeUpdate until Successful, then the cluster ACTIVE.
    for pair in updates.windows(2) {
        let between = &calls[pair[0].0 + 1..pair[1].0];
        assert!(between.starts_with(&["DescribeUpdate".to_owned(), "DescribeUpdate".to_owned()]), "{between:?}");
        assert_eq!(between.last().map(String::as_str), Some("DescribeCluster"), "{between:?}");
    }
    let c = fake.state().cluster.clone().unwrap();
    assert_eq!(sorted(&c.public_access_cidrs), ["198.51.100.7/32", "203.0.113.9/32"]);
    assert_eq!(c.subnet_ids.len(), 3);
    assert!(eks.plan(&ctx, &s).await.unwrap().is_empty());
}

#[tokio::test(start_paused = true)]
async fn an_update_started_while_another_is_in_progress_is_refused_by_the_fake() {
    // The fake refuses as EKS does, so a provisioner that did not wait would fail the tests above.
    let fake = FakeEks::default();
    let eks = EksProvisioner::new(fake.clone());
    eks.apply(&ctx(), &spec()).await.unwrap();
    let first = fake.update_cluster_logging("eks-t".into(), vec!["api".into()], vec![]).await.unwrap();
    assert!(first.is_some());
    let err = fake.update_cluster_access("eks-t".into(), vec!["198.51.100.7/32".into()]).await.unwrap_err();
    assert_eq!(err.code.as_deref(), Some("ResourceInUseException"));
    assert!(err.to_string().contains("Cannot EndpointAccessUpdate because cluster eks-t"), "{err}");
}

#[tokio::test(start_paused = true)]
async fn one_operators_apply_keeps_the_other_operators_addresses() {
    let fake = FakeEks::default();
    let eks = EksProvisioner::new(fake.clone());
    let ctx = ctx();
    let mut s = spec();
    s.endpoint.public_access_cidrs = vec!["192.0.2.0/24".into()];
    // Operator A applies.
    s.operator_cidrs = vec!["198.51.100.7/32".into()];
    eks.apply(&ctx, &s).await.unwrap();
    // Operator B applies: the stack hands over both operators' entries.
    s.operator_cidrs = vec!["198.51.100.7/32".into(), "203.0.113.9/32".into()];
    eks.apply(&ctx, &s).await.unwrap();
    let have = |fake: &FakeEks| sorted(&fake.state().cluster.clone().unwrap().public_access_cidrs);
    assert_eq!(have(&fake), ["192.0.2.0/24", "198.51.100.7/32", "203.0.113.9/32"]);
    // A again: B stays.
    assert!(eks.plan(&ctx, &s).await.unwrap().is_empty(), "A's apply with both entries changes nothing");
    // A's entry went stale and was dropped by the stack: only then is it removed.
    s.operator_cidrs = vec!["203.0.113.9/32".into()];
    let plan = eks.plan(&ctx, &s).await.unwrap();
    let c = &plan.changes[0];
    assert_eq!(c.fields[0].path, "endpoint_public_access_cidrs", "{plan}");
    assert_eq!(c.fields[0].after.as_deref(), Some("192.0.2.0/24, 203.0.113.9/32"), "{plan}");
    eks.apply(&ctx, &s).await.unwrap();
    assert_eq!(have(&fake), ["192.0.2.0/24", "203.0.113.9/32"]);
}

#[test]
fn operator_cidrs_are_validated_and_the_eks_limit_is_named() {
    let ctx = ctx();
    let mut s = spec();
    s.operator_cidrs = vec!["198.51.100.7".into(), "2001:db8::1/128".into(), "0.0.0.0/0".into()];
    let errs = s.validate(&ctx).unwrap_err();
    assert_eq!(errs.paths(), ["operator_cidrs[0]", "operator_cidrs[1]", "operator_cidrs[2]"], "{errs}");

    let mut s = spec();
    s.endpoint.public_access_cidrs = (0..30).map(|i| format!("192.0.2.{i}/32")).collect();
    s.operator_cidrs = (0..10).map(|i| format!("198.51.100.{i}/32")).collect();
    s.validate(&ctx).unwrap();
    assert_eq!(s.public_access_cidrs().len(), MAX_PUBLIC_ACCESS_CIDRS);
    // A duplicate counts once.
    s.operator_cidrs.push("192.0.2.0/32".into());
    s.validate(&ctx).unwrap();
    s.operator_cidrs.push("198.51.100.10/32".into());
    let errs = s.validate(&ctx).unwrap_err();
    assert_eq!(errs.paths(), ["endpoint.public_access_cidrs"]);
    let text = errs.to_string();
    for needle in
        ["41 public access CIDRs (30 configured, 11 operator addresses)", "at most 40", "eks.operator_cidr_ttl_days"]
    {
        assert!(text.contains(needle), "{needle} missing in {text}");
    }
}

#[tokio::test(start_paused = true)]
async fn a_node_group_scaled_outside_keeps_its_size() {
    let fake = FakeEks::default();
    let eks = EksProvisioner::new(fake.clone());
    let ctx = ctx();
    let mut s = spec();
    eks.apply(&ctx, &s).await.unwrap();
    // Cluster Autoscaler scaled the node group to 2 of max 2.
    fake.state().nodegroup.as_mut().unwrap().desired = 2;
    assert!(eks.plan(&ctx, &s).await.unwrap().is_empty(), "the desired size is not drift");
    let mark = fake.calls().len();
    eks.apply(&ctx, &s).await.unwrap();
    assert!(writes_since(&fake, mark).is_empty(), "{:?}", writes_since(&fake, mark));
    assert_eq!(fake.state().nodegroup.as_ref().unwrap().desired, 2);

    // A new desired size in the config alone changes nothing either.
    s.node_group.desired = 1;
    assert!(eks.plan(&ctx, &s).await.unwrap().is_empty());

    // A new max: min and max are written, the desired size is not sent (still in range).
    s.node_group.max = 3;
    let plan = eks.plan(&ctx, &s).await.unwrap();
    assert_eq!(plan.changes[0].fields[0].after.as_deref(), Some("min 1 desired 2 max 3"), "{plan}");
    let mark = fake.calls().len();
    eks.apply(&ctx, &s).await.unwrap();
    assert_eq!(writes_since(&fake, mark), ["UpdateNodegroupConfig"]);
    let ng = fake.state().nodegroup.clone().unwrap();
    assert_eq!((ng.min, ng.desired, ng.max), (1, 2, 3));
    assert!(eks.plan(&ctx, &s).await.unwrap().is_empty());

    // A max below the size: the desired size is clamped into the new range.
    s.node_group.max = 1;
    let plan = eks.plan(&ctx, &s).await.unwrap();
    assert_eq!(plan.changes[0].fields[0].after.as_deref(), Some("min 1 desired 1 max 1"), "{plan}");
    eks.apply(&ctx, &s).await.unwrap();
    let ng = fake.state().nodegroup.clone().unwrap();
    assert_eq!((ng.min, ng.desired, ng.max), (1, 1, 1));
}

#[test]
fn the_scaling_update_sends_the_desired_size_only_when_it_leaves_the_range() {
    let have = |min, desired, max| NodegroupInfo { min, desired, max, ..Default::default() };
    let ng =
        |min, desired, max| NodeGroupSpec { min, desired, max, ..NodeGroupSpec::for_environment(Environment::Test) };
    assert_eq!(crate::provisioner::scaling_update(&have(1, 2, 2), &ng(1, 1, 2)), None);
    assert_eq!(crate::provisioner::scaling_update(&have(1, 2, 2), &ng(1, 1, 5)), Some(((1, 2, 2), (1, 5, 2))));
    assert_eq!(crate::provisioner::scaling_update(&have(1, 5, 6), &ng(1, 1, 3)), Some(((1, 6, 5), (1, 3, 3))));
    assert_eq!(crate::provisioner::scaling_update(&have(1, 1, 2), &ng(3, 3, 4)), Some(((1, 2, 1), (3, 4, 3))));
}

#[tokio::test(start_paused = true)]
async fn an_addon_whose_default_version_moved_is_not_updated() {
    let fake = FakeEks::default();
    let eks = EksProvisioner::new(fake.clone());
    let ctx = ctx();
    let mut s = spec();
    eks.apply(&ctx, &s).await.unwrap();
    {
        // vpc-cni runs v1.18 (still compatible with 1.33); EKS's default for 1.33 is another.
        let mut st = fake.state();
        st.addons.get_mut("vpc-cni").unwrap().version = "v1.18".into();
        st.extra_compatible = vec!["v1.18".into()];
    }
    assert!(eks.plan(&ctx, &s).await.unwrap().is_empty(), "a new default is no reason to move");
    let mark = fake.calls().len();
    eks.apply(&ctx, &s).await.unwrap();
    assert!(writes_since(&fake, mark).is_empty(), "{:?}", writes_since(&fake, mark));
    assert_eq!(fake.state().addons["vpc-cni"].version, "v1.18");

    // An explicit version moves it (to exactly that version).
    s.addon_versions.insert("vpc-cni".into(), "v1.19.5".into());
    let plan = eks.plan(&ctx, &s).await.unwrap();
    assert_eq!(lines(&plan), ["eks:addon version"], "{plan}");
    eks.apply(&ctx, &s).await.unwrap();
    assert_eq!(fake.state().addons["vpc-cni"].version, "v1.19.5");
    assert!(eks.plan(&ctx, &s).await.unwrap().is_empty());
}

#[tokio::test(start_paused = true)]
async fn a_kubernetes_upgrade_moves_compatible_addons_to_the_new_default() {
    let fake = FakeEks::default();
    let eks = EksProvisioner::new(fake.clone());
    let ctx = ctx();
    let mut old = spec();
    old.kubernetes_version = "1.32".parse().unwrap();
    eks.apply(&ctx, &old).await.unwrap();
    // Every installed version stays listed as compatible with 1.33 too.
    let installed: Vec<String> = fake.state().addons.values().map(|a| a.version.clone()).collect();
    fake.state().extra_compatible = installed;
    let new = spec();
    eks.apply(&ctx, &new).await.unwrap();
    let st = fake.state();
    for (name, a) in &st.addons {
        assert_eq!(a.version, default_version(name, "1.33"), "{name}");
    }
}

#[tokio::test(start_paused = true)]
async fn a_busy_addon_is_waited_for_before_its_update() {
    let fake = FakeEks::default();
    let eks = EksProvisioner::new(fake.clone());
    let ctx = ctx();
    let mut s = spec();
    eks.apply(&ctx, &s).await.unwrap();
    // vpc-cni is UPDATING (someone else's update) for two more DescribeAddon calls.
    fake.state().addon_busy.insert("vpc-cni".into(), 2);
    s.addon_versions.insert("vpc-cni".into(), "v1.19.5".into());
    eks.apply(&ctx, &s).await.unwrap();
    assert_eq!(fake.state().addons["vpc-cni"].version, "v1.19.5");
}
