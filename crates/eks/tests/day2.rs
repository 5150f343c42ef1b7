//! Day two against the strict emulator (moto with `moto_ext.py` and `moto_day2.py`): EKS takes
//! one type of cluster update per call and none while an update is in progress, and refuses to
//! update a busy node group or add-on. Each rule is shown twice: the SDK call a broken
//! provisioner would make is refused, and the provisioner's own apply goes through.

use std::time::Duration;

use aws_sdk_eks::types::{LogSetup, LogType, Logging, NodegroupScalingConfig, UpdateStatus, VpcConfigRequest};
use dify_stack_core::ids::{SubnetId, VpcId};
use dify_stack_core::{Context, Environment, Provisioner};
use dify_stack_eks::{EksProvisioner, EksSpec};
use dify_stack_emulator::{Emulator, TestAccount};

struct Env {
    account: TestAccount,
    eks: aws_sdk_eks::Client,
    spec: EksSpec,
    /// A third private subnet, not in the spec.
    spare_subnet: SubnetId,
}

async fn setup() -> Env {
    let account = Emulator::shared().expect("emulator").account("us-west-2").await;
    let ec2 = aws_sdk_ec2::Client::new(&account.config);
    let vpc = ec2.create_vpc().cidr_block("10.0.0.0/16").send().await.unwrap();
    let vpc = vpc.vpc().unwrap().vpc_id().unwrap().to_owned();
    let mut subnets = Vec::new();
    for (cidr, az) in [("10.0.10.0/24", "us-west-2a"), ("10.0.11.0/24", "us-west-2b"), ("10.0.12.0/24", "us-west-2c")] {
        let s = ec2.create_subnet().vpc_id(&vpc).cidr_block(cidr).availability_zone(az).send().await.unwrap();
        subnets.push(SubnetId::new(s.subnet().unwrap().subnet_id().unwrap()));
    }
    let spare_subnet = subnets.pop().unwrap();
    let spec = EksSpec::for_environment(Environment::Test, VpcId::new(vpc), subnets);
    Env { eks: aws_sdk_eks::Client::new(&account.config), spec, spare_subnet, account }
}

fn ctx(stack: &str) -> Context {
    Context::new(stack, Environment::Test, "us-west-2").unwrap()
}

fn code<E, R>(e: &aws_sdk_eks::error::SdkError<E, R>) -> Option<String>
where
    E: aws_sdk_eks::error::ProvideErrorMetadata,
{
    e.as_service_error().and_then(|s| s.code()).map(str::to_owned)
}

fn message<E, R>(e: &aws_sdk_eks::error::SdkError<E, R>) -> String
where
    E: aws_sdk_eks::error::ProvideErrorMetadata,
{
    e.as_service_error().and_then(|s| s.message()).unwrap_or_default().to_owned()
}

/// Polls DescribeUpdate until the update is no longer InProgress (bounded; the emulator's pending
/// states last a fraction of a second).
async fn finished(eks: &aws_sdk_eks::Client, cluster: &str, id: &str) -> UpdateStatus {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let u = eks.describe_update().name(cluster).update_id(id).send().await.unwrap();
        let status = u.update().unwrap().status().unwrap().clone();
        if status != UpdateStatus::InProgress || tokio::time::Instant::now() > deadline {
            return status;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

const NOT_LOADED: &str = "the strict emulator must load crates/emulator/python/moto_day2.py (the harness passes its source to launch.py as the third argument)";

#[tokio::test]
async fn update_cluster_config_takes_one_type_of_update_per_call_and_none_while_one_runs() {
    let env = setup().await;
    let ctx = ctx("day2-one");
    let eks = EksProvisioner::from_conf(&env.account.config);
    let mut spec = env.spec.clone();
    spec.operator_cidrs = vec!["198.51.100.7/32".into()];
    eks.apply_control_plane(&ctx, &spec).await.unwrap();
    let subnets: Vec<String> = spec.private_subnet_ids.iter().map(|s| s.to_string()).collect();

    // What the old provisioner sent for a new operator's address: subnets and endpoint access.
    let both = VpcConfigRequest::builder()
        .set_subnet_ids(Some(subnets.clone()))
        .endpoint_private_access(true)
        .endpoint_public_access(true)
        .public_access_cidrs("198.51.100.7/32")
        .public_access_cidrs("203.0.113.9/32")
        .build();
    let err = env.eks.update_cluster_config().name("day2-one").resources_vpc_config(both).send().await.unwrap_err();
    assert_eq!(code(&err).as_deref(), Some("InvalidParameterException"), "{NOT_LOADED}: {err:?}");
    assert!(message(&err).starts_with("Only one type of update"), "{err:?}");
    // An unchanged logging block beside an endpoint change counts too.
    let logging =
        Logging::builder().cluster_logging(LogSetup::builder().types(LogType::Api).enabled(true).build()).build();
    let err = env
        .eks
        .update_cluster_config()
        .name("day2-one")
        .logging(logging.clone())
        .resources_vpc_config(VpcConfigRequest::builder().endpoint_public_access(true).build())
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&err).as_deref(), Some("InvalidParameterException"), "{err:?}");

    // One type per call goes through, answers its update, and keeps the fields it did not send.
    let access = VpcConfigRequest::builder()
        .endpoint_private_access(true)
        .endpoint_public_access(true)
        .public_access_cidrs("198.51.100.7/32")
        .public_access_cidrs("203.0.113.9/32")
        .build();
    let out = env.eks.update_cluster_config().name("day2-one").resources_vpc_config(access).send().await.unwrap();
    let update = out.update().expect("UpdateClusterConfig answers with the update");
    assert_eq!(update.r#type().map(|t| t.as_str()), Some("EndpointAccessUpdate"));
    let id = update.id().unwrap().to_owned();
    // A second update while the first runs is refused.
    let err = env.eks.update_cluster_config().name("day2-one").logging(logging.clone()).send().await.unwrap_err();
    assert_eq!(code(&err).as_deref(), Some("ResourceInUseException"), "{err:?}");
    assert!(message(&err).contains("currently has update"), "{err:?}");
    assert_eq!(finished(&env.eks, "day2-one", &id).await, UpdateStatus::Successful);
    let c = env.eks.describe_cluster().name("day2-one").send().await.unwrap();
    let vpc = c.cluster().unwrap().resources_vpc_config().unwrap();
    let mut have = vpc.subnet_ids().to_vec();
    have.sort();
    let mut want = subnets.clone();
    want.sort();
    assert_eq!(have, want, "the subnets an endpoint update did not send are kept");
    assert_eq!(vpc.public_access_cidrs(), ["198.51.100.7/32", "203.0.113.9/32"]);
    // Once it finished, the next type goes through.
    env.eks.update_cluster_config().name("day2-one").logging(logging).send().await.unwrap();
}

#[tokio::test]
async fn a_new_operator_with_new_subnets_and_logs_is_applied_as_three_waited_updates() {
    let env = setup().await;
    let ctx = ctx("day2-split");
    let eks = EksProvisioner::from_conf(&env.account.config);
    let mut spec = env.spec.clone();
    spec.operator_cidrs = vec!["198.51.100.7/32".into()];
    eks.apply_control_plane(&ctx, &spec).await.unwrap();
    // Another operator applies (the default caller_address mode), while the config gained a
    // subnet and lost a log type.
    spec.operator_cidrs.push("203.0.113.9/32".into());
    spec.private_subnet_ids.push(env.spare_subnet.clone());
    spec.log_types.retain(|l| l != "scheduler");
    let plan = eks.plan(&ctx, &spec).await.unwrap();
    let cluster_lines = plan.changes.iter().filter(|c| c.resource.kind == "eks:cluster").count();
    assert_eq!(cluster_lines, 3, "{plan}");
    eks.apply_control_plane(&ctx, &spec).await.expect("three cluster updates, one at a time");
    let c = env.eks.describe_cluster().name("day2-split").send().await.unwrap();
    let c = c.cluster().unwrap();
    let vpc = c.resources_vpc_config().unwrap();
    assert_eq!(vpc.subnet_ids().len(), 3);
    let mut cidrs = vpc.public_access_cidrs().to_vec();
    cidrs.sort();
    assert_eq!(cidrs, ["198.51.100.7/32", "203.0.113.9/32"]);
    assert!(vpc.endpoint_private_access() && vpc.endpoint_public_access());
    let cluster_plan: Vec<_> =
        eks.plan(&ctx, &spec).await.unwrap().changes.into_iter().filter(|c| c.resource.kind == "eks:cluster").collect();
    assert!(cluster_plan.is_empty(), "{cluster_plan:?}");
}

#[tokio::test]
async fn busy_node_groups_and_addons_refuse_updates_and_apply_waits_for_them() {
    let env = setup().await;
    let ctx = ctx("day2-busy");
    let eks = EksProvisioner::from_conf(&env.account.config);
    let mut spec = env.spec.clone();
    eks.apply(&ctx, &spec).await.unwrap();
    let scaling = |max| NodegroupScalingConfig::builder().min_size(1).max_size(max).build();
    let ng = || env.eks.update_nodegroup_config().cluster_name("day2-busy").nodegroup_name("day2-busy-main");
    ng().scaling_config(scaling(3)).send().await.unwrap();
    let err = ng().scaling_config(scaling(4)).send().await.unwrap_err();
    assert_eq!(code(&err).as_deref(), Some("ResourceInUseException"), "{NOT_LOADED}: {err:?}");
    let addon = || env.eks.update_addon().cluster_name("day2-busy").addon_name("coredns");
    addon().send().await.unwrap();
    let err = addon().send().await.unwrap_err();
    assert_eq!(code(&err).as_deref(), Some("ResourceInUseException"), "{err:?}");

    // The provisioner, meeting both busy, waits for each before its own update.
    spec.node_group.max = 4;
    spec.addon_versions.insert("coredns".into(), "v1.11.4-eksbuild.2".into());
    eks.apply(&ctx, &spec).await.unwrap();
    let n = env.eks.describe_nodegroup().cluster_name("day2-busy").nodegroup_name("day2-busy-main").send().await;
    let sc = n.unwrap().nodegroup().unwrap().scaling_config().unwrap().clone();
    assert_eq!((sc.min_size(), sc.desired_size(), sc.max_size()), (Some(1), Some(1), Some(4)));
    let a = env.eks.describe_addon().cluster_name("day2-busy").addon_name("coredns").send().await.unwrap();
    assert_eq!(a.addon().unwrap().addon_version(), Some("v1.11.4-eksbuild.2"));
    assert!(eks.plan(&ctx, &spec).await.unwrap().is_empty());
    eks.destroy(&ctx, &spec).await.unwrap();
}
