//! EKS tier against an in-memory fake of [`EksApi`] that follows real AWS behaviour where the
//! emulator cannot: resources pass through CREATING/UPDATING before ACTIVE, failures surface as
//! FAILED/CREATE_FAILED, version upgrades go one minor version at a time, a fresh role is
//! rejected until IAM propagates, add-on versions come from DescribeAddonVersions.

use std::collections::{BTreeMap, VecDeque};
use std::time::Duration;

use dify_stack_core::ids::{SecurityGroupId, SubnetId, VpcId};
use dify_stack_core::{Action, AwsError, Classify, Context, Environment, Provisioner, WaitPolicy};

use super::*;
use crate::client::*;
use crate::names::request_token;
use crate::provisioner::token;
use crate::spec::*;

mod after_use;
mod day2;
mod destroy;
mod drift;
mod timed;
mod upgrade;
use crate::testing::*;

fn ctx() -> Context {
    Context::new("eks-t", Environment::Test, "us-west-2").unwrap().with_wait(WaitPolicy {
        initial_interval: Duration::from_secs(5),
        max_interval: Duration::from_secs(30),
        multiplier: 2.0,
        jitter: 0.0,
        max_wait: Duration::from_secs(3600),
        ..Default::default()
    })
}

fn spec() -> EksSpec {
    EksSpec::for_environment(
        Environment::Test,
        VpcId::new("vpc-1"),
        vec![SubnetId::new("subnet-a"), SubnetId::new("subnet-b")],
    )
}

#[test]
fn validation_rejects_mismatched_architectures_and_open_endpoints_with_paths() {
    let ctx = ctx();
    let mut s = spec();
    s.node_group.instance_types = vec!["m7i.xlarge".into(), "m7g.xlarge".into()];
    s.endpoint.public_access_cidrs = vec!["0.0.0.0/0".into(), "bogus".into()];
    s.node_group.min = 3;
    s.private_subnet_ids.truncate(1);
    s.admin_principals = vec!["me".into()];
    let errs = s.validate(&ctx).unwrap_err();
    let paths = errs.paths();
    for p in [
        "node_group.instance_types[0]",
        "endpoint.public_access_cidrs[0]",
        "endpoint.public_access_cidrs[1]",
        "node_group.desired",
        "private_subnet_ids",
        "admin_principals[0]",
    ] {
        assert!(paths.contains(&p), "{p} missing in {paths:?}");
    }
    assert_eq!(paths.len(), 6, "{errs}");
    assert!(errs.to_string().contains("m7i.xlarge is an x86_64 instance type"), "{errs}");

    // The x86 AMI with a Graviton type is refused the other way round.
    let mut s = spec();
    s.node_group.ami_type = "AL2023_x86_64_STANDARD".into();
    let errs = s.validate(&ctx).unwrap_err();
    assert_eq!(errs.paths(), vec!["node_group.instance_types[0]"]);
    // 0.0.0.0/0 only with the explicit switch.
    let mut s = spec();
    s.endpoint = EndpointSpec { public_access_cidrs: vec!["0.0.0.0/0".into()], allow_public_internet: true };
    s.validate(&ctx).unwrap();
}

/// The settings are the user's part of the spec: their violations have the same paths whether
/// the settings are checked alone or within the spec; the spec adds only what is its own.
#[test]
fn the_settings_validate_at_their_own_paths_within_the_spec() {
    let mut settings = EksSettings::for_environment(Environment::Test);
    settings.node_group.instance_types = vec!["m7i.xlarge".into()];
    settings.log_retention_days = 10;
    let alone = settings.validate().unwrap_err();
    assert_eq!(alone.paths(), ["log_retention_days", "node_group.instance_types[0]"], "{alone}");
    let mut s = EksSpec::new(settings.clone(), VpcId::new("vpc-1"), vec![SubnetId::new("subnet-a")]);
    s.operator_cidrs = vec!["::/0".into()];
    let within = s.validate(&ctx()).unwrap_err();
    assert_eq!(
        within.paths(),
        ["private_subnet_ids", "log_retention_days", "node_group.instance_types[0]", "operator_cidrs[0]"],
        "{within}"
    );
    // The spec reads through to its settings.
    assert_eq!((s.node_group.min, s.settings.node_group.min), (1, 1));
    assert_eq!(spec().settings, EksSettings::for_environment(Environment::Test));
}

/// The settings are flattened into the spec's serialized form, which still refuses unknown keys.
#[test]
fn the_spec_serializes_its_settings_flat_and_refuses_unknown_keys() {
    let s = spec();
    let v = serde_json::to_value(&s).unwrap();
    assert!(v.get("settings").is_none() && v["node_group"]["min"] == 1 && v["vpc_id"] == "vpc-1", "{v}");
    assert_eq!(serde_json::from_value::<EksSpec>(v.clone()).unwrap(), s);
    let mut extra = v;
    extra["node_grup"] = serde_json::json!(1);
    let err = serde_json::from_value::<EksSpec>(extra).unwrap_err().to_string();
    assert!(err.contains("node_grup"), "{err}");
    let err = serde_json::from_value::<EksSettings>(
        serde_json::json!({"node_group": {"instance_types": [], "desired": 1, "min": 1, "max": 1}, "vpc_id": "vpc-1"}),
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("unknown field `vpc_id`"), "{err}");
}

#[test]
fn instance_families_are_classified() {
    for (t, arm) in
        [("m7g.xlarge", true), ("c6gn.large", true), ("t4g.micro", true), ("r8gd.2xlarge", true), ("a1.large", true)]
    {
        assert_eq!(instance_is_arm(t), Some(arm), "{t}");
    }
    for t in ["m7i.xlarge", "g4dn.xlarge", "c5.large", "m6a.large", "t3.micro"] {
        assert_eq!(instance_is_arm(t), Some(false), "{t}");
    }
    for t in ["m7g", "", ".large", "7g.large", "M7G.large"] {
        assert_eq!(instance_is_arm(t), None, "{t:?}");
    }
}

#[test]
fn request_tokens_fit_eks_limits_for_every_stack_name_and_differ_per_creation() {
    for stack in ["abc", "dify-t", "a-twenty-char-stack1"] {
        for (what, extra) in [("cluster", "1.33"), ("nodegroup", "1"), ("nodegroup", "123456789012345")] {
            for nonce in [0, 1, u128::MAX] {
                let t = request_token(stack, what, extra, nonce);
                assert!((33..=126).contains(&t.len()), "{t} is {} characters", t.len());
                assert!(t.chars().all(|c| c.is_ascii_alphanumeric() || c == '-'), "{t}");
            }
        }
    }
    assert_ne!(token(&ctx(), "cluster", "1.33"), token(&ctx(), "cluster", "1.33"), "one token per creation");
}

#[test]
fn profiles_follow_the_spec() {
    let t = NodeGroupSpec::for_environment(Environment::Test);
    assert_eq!((t.instance_types[0].as_str(), t.desired, t.min, t.max), ("m7g.xlarge", 1, 1, 2));
    let p = NodeGroupSpec::for_environment(Environment::Prod);
    assert_eq!((p.instance_types[0].as_str(), p.desired, p.min, p.max), ("m7g.2xlarge", 6, 6, 10));
    assert_eq!(p.ami_type, "AL2023_ARM_64_STANDARD");
    let s = spec();
    assert_eq!(s.kubernetes_version.to_string(), "1.33");
    assert_eq!(s.log_types.len(), 5);
    assert_eq!(s.addons, DEFAULT_ADDONS.map(String::from).to_vec());
    assert!(s.endpoint.public_access_cidrs.is_empty(), "private endpoint only by default");
}

#[tokio::test(start_paused = true)]
async fn apply_waits_through_creating_and_installs_everything_then_is_a_no_op() {
    let fake = FakeEks::with(|s| {
        s.cluster_script = VecDeque::from(["CREATING"; 6]);
        s.addon_script = VecDeque::from(["CREATING", "CREATING"]);
        s.iam_rejections = 2;
    });
    let eks = EksProvisioner::new(fake.clone());
    let (ctx, spec) = (ctx(), spec());
    let plan = eks.plan(&ctx, &spec).await.unwrap();
    let creates: Vec<&str> = plan.with_action(Action::Create).map(|c| c.resource.kind.as_str()).collect();
    assert_eq!(
        creates,
        [
            "iam:role",
            "iam:role",
            "iam:role",
            "logs:log-group",
            "kms:key",
            "ec2:security-group",
            "eks:cluster",
            "ec2:launch-template",
            "eks:nodegroup",
            "eks:addon",
            "eks:addon",
            "eks:addon",
            "eks:addon",
            "eks:addon"
        ]
    );
    let start = tokio::time::Instant::now();
    let out = eks.apply(&ctx, &spec).await.unwrap();
    assert!(start.elapsed() > Duration::from_secs(60), "waited on the paused clock: {:?}", start.elapsed());
    assert_eq!(out.cluster_name.as_str(), "eks-t");
    assert_eq!(out.kubernetes_version, "1.33");
    assert_eq!(out.workload_security_groups().len(), 2);
    assert_eq!(out.node_role_arn.as_str(), "arn:aws:iam::1:role/eks-t-eks-node");

    {
        let s = fake.state();
        // Two IAM-propagation rejections were retried.
        assert_eq!(s.calls.iter().filter(|c| *c == "CreateCluster").count(), 3);
        // ... with one token, stable across the retries of this creation.
        assert_eq!(s.tokens.len(), 3);
        assert!(s.tokens.iter().all(|t| t == &s.tokens[0]), "{:?}", s.tokens);
        let node_role = &s.roles["eks-t-eks-node"];
        assert_eq!(node_role.attached.len(), 3);
        assert!(node_role.trust.contains("ec2.amazonaws.com"));
        assert!(s.roles["eks-t-eks-cluster"].attached[0].ends_with("policy/AmazonEKSClusterPolicy"));
        let lt = s.lt.as_ref().unwrap();
        assert_eq!((lt.data.http_tokens.as_str(), lt.data.hop_limit), ("required", 1));
        assert_eq!((lt.data.volume_type.as_str(), lt.data.encrypted), ("gp3", true));
        assert_eq!(lt.data.security_group_ids, [SecurityGroupId::new("sg-cluster"), SecurityGroupId::new("sg-nodes")]);
        for addon in DEFAULT_ADDONS {
            assert_eq!(s.addons[addon].version, default_version(addon, "1.33"));
        }
        // The EBS CSI driver's role: Pod Identity trust, the EBS policy, associated with the
        // controller's service account at CreateAddon. Without it every PVC stays Pending.
        let ebs = &s.roles["eks-t-ebs-csi"];
        assert!(ebs.trust.contains("pods.eks.amazonaws.com") && ebs.trust.contains("sts:TagSession"), "{}", ebs.trust);
        assert_eq!(ebs.attached, ["arn:aws:iam::aws:policy/service-role/AmazonEBSCSIDriverPolicy"]);
        assert_eq!(
            s.addons[EBS_CSI_ADDON].pod_identity_associations,
            ["ebs-csi-controller-sa=arn:aws:iam::1:role/eks-t-ebs-csi"]
        );
        assert!(s.addons["coredns"].pod_identity_associations.is_empty());
        // The control-plane log group, ours, made before the cluster with the profile's retention
        // (EKS would make one that never expires, and never delete it).
        let lg = s.log_group.as_ref().unwrap();
        assert_eq!((lg.name.as_str(), lg.retention_days), ("/aws/eks/eks-t/cluster", Some(7)));
        assert!(ctx.owns_tags(&lg.tags));
        let made = s.calls.iter().position(|c| c.starts_with("CreateLogGroup")).unwrap();
        assert!(made < s.calls.iter().position(|c| c == "CreateCluster").unwrap());
    }
    assert!(eks.plan(&ctx, &spec).await.unwrap().is_empty());
    let before = fake.writes().len();
    eks.apply(&ctx, &spec).await.unwrap();
    assert_eq!(fake.writes().len(), before, "no-op apply wrote: {:?}", &fake.writes()[before..]);
}

/// The control plane alone (what the stack's `eks-control-plane` node runs while the NAT gateways
/// are built): the cluster ACTIVE with its roles, key, log group and access, and nothing that
/// needs the nodes' egress; the whole apply then adds exactly the rest.
#[tokio::test(start_paused = true)]
async fn the_control_plane_alone_makes_the_cluster_and_nothing_the_nodes_need() {
    let fake = FakeEks::with(|s| s.cluster_script = VecDeque::from(["CREATING"; 3]));
    let eks = EksProvisioner::new(fake.clone());
    let (ctx, mut spec) = (ctx(), spec());
    spec.admin_principals = vec!["arn:aws:iam::1:role/admin".into()];
    eks.apply_control_plane(&ctx, &spec).await.unwrap();
    let creates = |calls: &[String]| -> Vec<String> {
        calls
            .iter()
            .filter(|c| c.starts_with("Create"))
            .map(|c| c.split([' ', '(']).next().unwrap().to_owned())
            .collect()
    };
    let made = creates(&fake.calls());
    for call in ["CreateRole", "CreateKey", "CreateLogGroup", "CreateCluster"] {
        assert!(made.iter().any(|c| c == call), "{call} missing from {made:?}");
    }
    for call in ["CreateLaunchTemplate", "CreateNodegroup", "CreateAddon"] {
        assert!(!made.iter().any(|c| c == call), "{call} made before the egress: {made:?}");
    }
    assert_eq!(fake.state().cluster.as_ref().map(|c| c.status.clone()), Some(Status::Active));
    // The plan left: the node side and the access entries only.
    let left = eks.plan(&ctx, &spec).await.unwrap();
    let kinds: Vec<&str> = left.changes.iter().map(|c| c.resource.kind.as_str()).collect();
    assert!(kinds.iter().all(|k| !CONTROL_PLANE_KINDS.contains(k) || *k == "eks:access-entry"), "{left}");
    assert!(kinds.contains(&"eks:access-entry") && kinds.contains(&"eks:nodegroup"), "{left}");
    // The access entries are `apply_access`'s (the stack's `eks-access` node, beside the node
    // group): the control plane leaves them, and the node side's apply too.
    assert!(!made.iter().any(|c| c == "CreateAccessEntry"), "{made:?}");
    let mark = fake.calls().len();
    eks.apply_nodes(&ctx, &spec).await.unwrap();
    assert!(!creates(&fake.calls()[mark..]).iter().any(|c| c == "CreateAccessEntry"), "{:?}", fake.calls());
    let mark = fake.calls().len();
    eks.apply_access(&ctx, &spec).await.unwrap();
    let access = creates(&fake.calls()[mark..]);
    assert_eq!(access, ["CreateAccessEntry"], "{access:?}");
    assert!(fake.calls()[mark..].iter().any(|c| c.starts_with("AssociateAccessPolicy")), "{:?}", fake.calls());
    // Everything made: the whole apply writes nothing.
    let mark = fake.writes().len();
    eks.apply(&ctx, &spec).await.unwrap();
    assert_eq!(fake.writes().len(), mark, "{:?}", &fake.writes()[mark..]);
}

/// What CreateCluster needs besides the subnets (the stack's `eks-prerequisites` node, while the
/// VPC is built): the cluster role, the key and the log group, and nothing else; the control
/// plane then makes the cluster and the other roles without making these again.
#[tokio::test(start_paused = true)]
async fn the_prerequisites_are_the_cluster_role_the_key_and_the_log_group_only() {
    let fake = FakeEks::default();
    let eks = EksProvisioner::new(fake.clone());
    let (ctx, spec) = (ctx(), spec());
    eks.apply_prerequisites(&ctx, &spec).await.unwrap();
    let names = crate::names::Names::of(&ctx);
    let made: Vec<String> = fake.writes();
    assert_eq!(
        made.iter().filter(|c| c.starts_with("CreateRole")).collect::<Vec<_>>(),
        [&format!("CreateRole({})", names.cluster_role)],
        "{made:?}"
    );
    for call in ["CreateKey", "CreateLogGroup", "PutRetentionPolicy"] {
        assert!(made.iter().any(|c| c.starts_with(call)), "{call} missing from {made:?}");
    }
    for call in ["CreateSecurityGroup", "CreateCluster", "CreateLaunchTemplate", "CreateNodegroup", "CreateAddon"] {
        assert!(!made.iter().any(|c| c.starts_with(call)), "{call} made: {made:?}");
    }
    let mark = made.len();
    eks.apply_control_plane(&ctx, &spec).await.unwrap();
    let later = &fake.writes()[mark..];
    assert!(later.iter().any(|c| c.starts_with("CreateCluster")), "{later:?}");
    for call in ["CreateKey", "CreateLogGroup", &format!("CreateRole({})", names.cluster_role)] {
        assert!(!later.iter().any(|c| c.starts_with(call)), "{call} made again: {later:?}");
    }
    assert!(later.iter().any(|c| c == &format!("CreateRole({})", names.node_role)), "{later:?}");
}

#[tokio::test(start_paused = true)]
async fn a_failed_cluster_ends_the_wait_at_once() {
    let fake = FakeEks::with(|s| s.cluster_script = VecDeque::from(["CREATING", "FAILED"]));
    let eks = EksProvisioner::new(fake.clone());
    let err = eks.apply(&ctx(), &spec()).await.unwrap_err();
    assert!(matches!(&err, EksError::Failed { kind: "cluster", status, .. } if status == "FAILED"), "{err:?}");
    assert!(!fake.calls().iter().any(|c| c == "CreateNodegroup"));
}

#[tokio::test(start_paused = true)]
async fn a_stuck_cluster_times_out_within_the_policy_and_is_retryable() {
    let fake = FakeEks::with(|s| s.cluster_stuck = Some("CREATING"));
    let eks = EksProvisioner::new(fake.clone());
    let ctx = ctx().with_wait(WaitPolicy { max_wait: Duration::from_secs(600), ..ctx().wait });
    let start = tokio::time::Instant::now();
    let err = eks.apply(&ctx, &spec()).await.unwrap_err();
    assert!(
        matches!(&err, EksError::Wait(dify_stack_core::WaitError::TimedOut { last_status, .. }) if last_status == "CREATING"),
        "{err:?}"
    );
    assert!(err.is_retryable());
    let waited = start.elapsed();
    assert!(waited >= Duration::from_secs(600) && waited < Duration::from_secs(640), "{waited:?}");
}

#[tokio::test(start_paused = true)]
async fn an_addon_dropped_from_the_spec_is_removed_but_not_one_another_tier_installed() {
    let fake = FakeEks::default();
    let eks = EksProvisioner::new(fake.clone());
    let ctx = ctx();
    let mut s = spec();
    eks.apply(&ctx, &s).await.unwrap();
    // The platform tier's metrics-server add-on: the stack's tags, another tier.
    let platform_tags = ctx.tags_for(dify_stack_core::Tier::Platform, "addon", "metrics-server");
    fake.state().addons.insert(
        "metrics-server".into(),
        AddonInfo {
            name: "metrics-server".into(),
            version: "v0.7.2-eksbuild.1".into(),
            status: "ACTIVE".into(),
            tags: platform_tags,
            pod_identity_associations: vec![],
        },
    );
    assert!(eks.plan(&ctx, &s).await.unwrap().is_empty(), "another tier's add-on is not drift");
    s.addons.retain(|a| a != "coredns");
    let plan = eks.plan(&ctx, &s).await.unwrap();
    let deletes: Vec<String> = plan.with_action(Action::Delete).map(|c| c.resource.name.clone()).collect();
    assert_eq!(deletes, ["coredns"], "{plan}");
    eks.apply(&ctx, &s).await.unwrap();
    let left: Vec<String> = fake.state().addons.keys().cloned().collect();
    assert!(left.contains(&"metrics-server".to_owned()) && !left.contains(&"coredns".to_owned()), "{left:?}");
}

#[tokio::test(start_paused = true)]
async fn scaling_labels_endpoint_logs_and_admins_update_in_place() {
    let fake = FakeEks::default();
    let eks = EksProvisioner::new(fake.clone());
    let ctx = ctx();
    let mut s = spec();
    eks.apply(&ctx, &s).await.unwrap();
    s.node_group.max = 4;
    s.node_group.desired = 2;
    s.node_group.labels.insert("team".into(), "ai".into());
    s.endpoint.public_access_cidrs = vec!["203.0.113.0/24".into()];
    s.log_types.retain(|l| l != "scheduler");
    s.admin_principals = vec!["arn:aws:iam::1:role/admin".into()];
    let plan = eks.plan(&ctx, &s).await.unwrap();
    assert!(plan.with_action(Action::Replace).next().is_none());
    let text = plan.to_string();
    for needle in ["scaling", "labels", "endpoint_public_access_cidrs", "logging", "eks:access-entry"] {
        assert!(text.contains(needle), "{needle} missing in\n{text}");
    }
    let mark = fake.calls().len();
    eks.apply(&ctx, &s).await.unwrap();
    let applied = fake.calls()[mark..].to_vec();
    assert!(eks.plan(&ctx, &s).await.unwrap().is_empty());
    let st = fake.state();
    let ng = st.nodegroup.as_ref().unwrap();
    assert_eq!((ng.min, ng.desired, ng.max), (1, 1, 4), "the desired size is the spec's at create only");
    assert_eq!(ng.labels["team"], "ai");
    let c = st.cluster.as_ref().unwrap();
    assert!(c.endpoint_public && c.endpoint_private);
    assert_eq!(c.enabled_logs.len(), 4);
    assert!(st.access["arn:aws:iam::1:role/admin"][0].ends_with("cluster-access-policy/AmazonEKSClusterAdminPolicy"));
    // One cluster update at a time: each waited for (its update status, then the cluster
    // ACTIVE) before the next; the fake refuses an update while another is in progress.
    let cluster_calls: Vec<&str> = applied
        .iter()
        .map(String::as_str)
        .filter(|c| c.starts_with("UpdateCluster") || *c == "DescribeUpdate" || *c == "DescribeCluster")
        .skip_while(|c| !c.starts_with("UpdateCluster"))
        .collect();
    assert_eq!(
        cluster_calls,
        [
            "UpdateClusterConfig(access)",
            "DescribeUpdate",
            "DescribeUpdate",
            "DescribeCluster",
            "DescribeCluster",
            "UpdateClusterConfig(logging)",
            "DescribeUpdate",
            "DescribeUpdate",
            "DescribeCluster",
            "DescribeCluster",
        ]
    );
}

#[tokio::test(start_paused = true)]
async fn instance_type_changes_are_refused_without_writes() {
    let fake = FakeEks::default();
    let eks = EksProvisioner::new(fake.clone());
    let ctx = ctx();
    let mut s = spec();
    eks.apply(&ctx, &s).await.unwrap();
    s.node_group.instance_types = vec!["c7g.xlarge".into()];
    let before = fake.writes().len();
    let err = eks.apply(&ctx, &s).await.unwrap_err();
    assert!(matches!(&err, EksError::ImmutableChange { field, .. } if field == "instance_types"), "{err:?}");
    assert_eq!(fake.writes().len(), before);
}

/// What the stack's `eks` node runs: the node group and the pod network waited for, the other
/// add-ons made but not waited for (the `eks-addons` node's whole `apply` waits for them). The
/// add-ons every node runs are made before the node group, the others after it; the cluster is
/// made before the node role's policies are all attached (it needs only its own role).
#[tokio::test(start_paused = true)]
async fn apply_nodes_waits_for_the_nodes_and_the_pod_network_and_apply_then_for_the_other_addons() {
    // CoreDNS stays busy far longer than any wait: waiting for it would time out.
    let fake = FakeEks::with(|s| {
        s.addon_busy = BTreeMap::from([("coredns".to_owned(), 100_000), (POD_NETWORK_ADDON.to_owned(), 3)])
    });
    let eks = EksProvisioner::new(fake.clone());
    let (ctx, spec) = (ctx(), spec());
    eks.apply_nodes(&ctx, &spec).await.unwrap();
    {
        let s = fake.state();
        assert_eq!(s.nodegroup.as_ref().map(|n| n.status.clone()), Some(Status::Active));
        assert_eq!(s.addon_busy[POD_NETWORK_ADDON], 0, "the VPC CNI was waited for until ACTIVE");
        assert!(s.addon_busy["coredns"] > 99_000, "CoreDNS was not waited for");
        let at = |call: &str| s.calls.iter().position(|c| c == call).unwrap_or_else(|| panic!("{call}: {:?}", s.calls));
        for addon in NODE_ADDONS {
            assert!(at(&format!("CreateAddon({addon})")) < at("CreateNodegroup"), "{addon}: {:?}", s.calls);
        }
        assert!(at("CreateNodegroup") < at("CreateAddon(coredns)"), "{:?}", s.calls);
        assert!(at("CreateNodegroup") < at(&format!("CreateAddon({EBS_CSI_ADDON})")), "{:?}", s.calls);
        let last_attach = s.calls.iter().rposition(|c| c == "AttachRolePolicy").unwrap();
        assert!(at("CreateCluster") < last_attach, "the cluster waited for every role's policies: {:?}", s.calls);
        assert!(at("CreateCluster") < at("CreateRole(eks-t-eks-node)"), "{:?}", s.calls);
    }
    // The whole apply: everything found made, CoreDNS waited for.
    fake.state().addon_busy.insert("coredns".to_owned(), 2);
    let mark = fake.writes().len();
    eks.apply(&ctx, &spec).await.unwrap();
    assert_eq!(fake.state().addon_busy["coredns"], 0, "CoreDNS was waited for until ACTIVE");
    assert_eq!(fake.writes().len(), mark, "wrote: {:?}", &fake.writes()[mark..]);
}
