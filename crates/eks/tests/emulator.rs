//! The EKS tier against the local AWS emulator (moto with the dify-stack EKS extension for
//! add-ons, access entries, accessConfig and the cluster security group).

use aws_sdk_ec2::types::Filter;
use dify_stack_core::ids::{SubnetId, VpcId};
use dify_stack_core::{Action, Context, Environment, Provisioner, TAG_STACK};
use dify_stack_eks::{ALL_LOG_TYPES, DEFAULT_ADDONS, EksError, EksProvisioner, EksSpec};
use dify_stack_emulator::{Emulator, TestAccount};

struct Env {
    account: TestAccount,
    eks: aws_sdk_eks::Client,
    ec2: aws_sdk_ec2::Client,
    iam: aws_sdk_iam::Client,
    kms: aws_sdk_kms::Client,
    spec: EksSpec,
}

async fn setup() -> Env {
    let account = Emulator::shared().expect("emulator").account("us-west-2").await;
    let ec2 = aws_sdk_ec2::Client::new(&account.config);
    let vpc = ec2.create_vpc().cidr_block("10.0.0.0/16").send().await.unwrap();
    let vpc = vpc.vpc().unwrap().vpc_id().unwrap().to_owned();
    let mut subnets = Vec::new();
    for (cidr, az) in [("10.0.10.0/24", "us-west-2a"), ("10.0.11.0/24", "us-west-2b")] {
        let s = ec2.create_subnet().vpc_id(&vpc).cidr_block(cidr).availability_zone(az).send().await.unwrap();
        subnets.push(SubnetId::new(s.subnet().unwrap().subnet_id().unwrap()));
    }
    let spec = EksSpec::for_environment(Environment::Test, VpcId::new(vpc), subnets);
    Env {
        eks: aws_sdk_eks::Client::new(&account.config),
        iam: aws_sdk_iam::Client::new(&account.config),
        kms: aws_sdk_kms::Client::new(&account.config),
        ec2,
        spec,
        account,
    }
}

fn ctx(stack: &str) -> Context {
    Context::new(stack, Environment::Test, "us-west-2").unwrap()
}

#[tokio::test]
async fn apply_from_empty_matches_the_spec_then_reapply_is_a_no_op_and_destroy_leaves_nothing() {
    let env = setup().await;
    let ctx = ctx("eks-e2e");
    let eks = EksProvisioner::from_conf(&env.account.config);
    let plan = eks.plan(&ctx, &env.spec).await.unwrap();
    // 13 from before, the EBS CSI role and the control-plane log group.
    assert_eq!(plan.summary().create, 14, "{plan}");
    let out = eks.apply(&ctx, &env.spec).await.unwrap();

    // Cluster as STACK.md says.
    let c = env.eks.describe_cluster().name("eks-e2e").send().await.unwrap();
    let c = c.cluster().unwrap();
    assert_eq!(c.version(), Some("1.33"));
    let vpc = c.resources_vpc_config().unwrap();
    let mut subnets = vpc.subnet_ids().to_vec();
    subnets.sort();
    let mut want: Vec<String> = env.spec.private_subnet_ids.iter().map(|s| s.to_string()).collect();
    want.sort();
    assert_eq!(subnets, want);
    assert!(vpc.endpoint_private_access());
    assert!(!vpc.endpoint_public_access(), "public endpoint off when no CIDRs are given");
    let logs: Vec<&str> = c.logging().unwrap().cluster_logging()[0].types().iter().map(|t| t.as_str()).collect();
    assert_eq!(logs, ALL_LOG_TYPES);
    assert_eq!(c.access_config().unwrap().authentication_mode().unwrap().as_str(), "API_AND_CONFIG_MAP");
    assert_eq!(c.encryption_config()[0].provider().unwrap().key_arn(), Some(out.kms_key_arn.as_str()));
    assert_eq!(c.tags().unwrap()[TAG_STACK], "eks-e2e");
    assert!(out.cluster_security_group_id.is_some());
    assert_eq!(out.endpoint, c.endpoint().unwrap());
    assert!(out.oidc_issuer_url.starts_with("https://oidc.eks.us-west-2.amazonaws.com/id/"));

    // Node group.
    let ng = env.eks.describe_nodegroup().cluster_name("eks-e2e").nodegroup_name("eks-e2e-main").send().await.unwrap();
    let ng = ng.nodegroup().unwrap();
    assert_eq!(ng.ami_type().unwrap().as_str(), "AL2023_ARM_64_STANDARD");
    assert_eq!(ng.instance_types(), ["m7g.xlarge"]);
    let sc = ng.scaling_config().unwrap();
    assert_eq!((sc.min_size(), sc.desired_size(), sc.max_size()), (Some(1), Some(1), Some(2)));
    assert_eq!(ng.node_role(), Some(out.node_role_arn.as_str()));
    assert_eq!(ng.tags().unwrap()[TAG_STACK], "eks-e2e");

    // Launch template: IMDSv2 required, hop limit 2, encrypted gp3.
    let lt_id = ng.launch_template().unwrap().id().unwrap();
    let v =
        env.ec2.describe_launch_template_versions().launch_template_id(lt_id).versions("$Latest").send().await.unwrap();
    let data = v.launch_template_versions()[0].launch_template_data().unwrap();
    let md = data.metadata_options().unwrap();
    assert_eq!(md.http_tokens().unwrap().as_str(), "required");
    assert_eq!(md.http_put_response_hop_limit(), Some(1));
    let ebs = data.block_device_mappings()[0].ebs().unwrap();
    assert_eq!((ebs.volume_type().unwrap().as_str(), ebs.encrypted()), ("gp3", Some(true)));
    let mut sgs = data.security_group_ids().to_vec();
    sgs.sort();
    let mut want_sgs: Vec<String> = out.workload_security_groups().iter().map(|s| s.to_string()).collect();
    want_sgs.sort();
    assert_eq!(sgs, want_sgs);

    // Roles and managed policies.
    let attached = env.iam.list_attached_role_policies().role_name("eks-e2e-eks-node").send().await.unwrap();
    let mut names: Vec<&str> = attached.attached_policies().iter().filter_map(|p| p.policy_name()).collect();
    names.sort();
    assert_eq!(names, ["AmazonEC2ContainerRegistryReadOnly", "AmazonEKSWorkerNodePolicy", "AmazonEKS_CNI_Policy"]);
    let attached = env.iam.list_attached_role_policies().role_name("eks-e2e-eks-cluster").send().await.unwrap();
    assert_eq!(attached.attached_policies()[0].policy_arn(), Some("arn:aws:iam::aws:policy/AmazonEKSClusterPolicy"));

    // Add-ons at the default version.
    let addons = env.eks.list_addons().cluster_name("eks-e2e").send().await.unwrap();
    let mut listed = addons.addons().to_vec();
    listed.sort();
    let mut want_addons = DEFAULT_ADDONS.map(String::from).to_vec();
    want_addons.sort();
    assert_eq!(listed, want_addons);
    // The EBS CSI driver: its controller's service account gets the Pod Identity role.
    let ebs = env.eks.describe_addon().cluster_name("eks-e2e").addon_name("aws-ebs-csi-driver").send().await.unwrap();
    assert_eq!(ebs.addon().unwrap().pod_identity_associations().len(), 1);
    let role = env.iam.get_role().role_name("eks-e2e-ebs-csi").send().await.unwrap();
    let trust = percent_encoding::percent_decode_str(role.role().unwrap().assume_role_policy_document().unwrap())
        .decode_utf8()
        .unwrap()
        .into_owned();
    assert!(trust.contains("pods.eks.amazonaws.com"), "{trust}");
    // The control-plane log group: ours, with the profile's retention.
    let logs = aws_sdk_cloudwatchlogs::Client::new(&env.account.config);
    let groups = logs.describe_log_groups().log_group_name_prefix("/aws/eks/eks-e2e/").send().await.unwrap();
    assert_eq!(groups.log_groups()[0].retention_in_days(), Some(7));

    // Re-apply: nothing planned, same output.
    assert!(eks.plan(&ctx, &env.spec).await.unwrap().is_empty());
    assert_eq!(eks.apply(&ctx, &env.spec).await.unwrap(), out);

    // A scaling change is planned as an Update and applied; the desired size moves only into
    // the new range (it is the autoscaler's after create).
    let mut bigger = env.spec.clone();
    bigger.node_group.min = 2;
    bigger.node_group.max = 3;
    bigger.node_group.desired = 3;
    let plan = eks.plan(&ctx, &bigger).await.unwrap();
    let c = plan.changes.iter().find(|c| c.resource.kind == "eks:nodegroup").unwrap();
    assert_eq!(c.action, Action::Update);
    assert_eq!(plan.changes.len(), 1, "{plan}");
    eks.apply(&ctx, &bigger).await.unwrap();
    let ng = env.eks.describe_nodegroup().cluster_name("eks-e2e").nodegroup_name("eks-e2e-main").send().await.unwrap();
    let sc = ng.nodegroup().unwrap().scaling_config().unwrap().clone();
    assert_eq!((sc.min_size(), sc.desired_size(), sc.max_size()), (Some(2), Some(2), Some(3)));
    assert!(eks.plan(&ctx, &bigger).await.unwrap().is_empty());

    // Destroy leaves nothing of ours; the key waits out its 7-day window.
    let deleted = eks.destroy(&ctx, &bigger).await.unwrap();
    assert_eq!(deleted.len(), 14, "{deleted:?}");
    let groups = logs.describe_log_groups().log_group_name_prefix("/aws/eks/eks-e2e/").send().await.unwrap();
    assert!(groups.log_groups().is_empty(), "the log group goes with the cluster");
    assert!(env.eks.list_clusters().send().await.unwrap().clusters().is_empty());
    assert!(env.iam.get_role().role_name("eks-e2e-eks-node").send().await.is_err());
    let lts = env.ec2.describe_launch_templates().send().await.unwrap();
    assert!(lts.launch_templates().is_empty());
    let tagged = env
        .ec2
        .describe_security_groups()
        .filters(Filter::builder().name(format!("tag:{TAG_STACK}")).values("eks-e2e").build())
        .send()
        .await
        .unwrap();
    assert!(tagged.security_groups().is_empty());
    let key = env.kms.describe_key().key_id(out.kms_key_arn.as_str()).send().await.unwrap();
    assert_eq!(key.key_metadata().unwrap().key_state().unwrap().as_str(), "PendingDeletion");
    assert!(eks.destroy(&ctx, &bigger).await.unwrap().is_empty(), "second destroy finds nothing");
}

#[tokio::test]
async fn admin_principals_get_an_access_entry_with_the_cluster_admin_policy() {
    let env = setup().await;
    let ctx = ctx("eks-admins");
    let eks = EksProvisioner::from_conf(&env.account.config);
    let mut spec = env.spec.clone();
    let admin = format!("arn:aws:iam::{}:role/platform-admin", env.account.account_id);
    spec.admin_principals = vec![admin.clone()];
    eks.apply(&ctx, &spec).await.unwrap();
    let policies = env
        .eks
        .list_associated_access_policies()
        .cluster_name("eks-admins")
        .principal_arn(&admin)
        .send()
        .await
        .unwrap();
    assert_eq!(
        policies.associated_access_policies()[0].policy_arn(),
        Some("arn:aws:eks::aws:cluster-access-policy/AmazonEKSClusterAdminPolicy")
    );
    assert!(eks.plan(&ctx, &spec).await.unwrap().is_empty());
    eks.destroy(&ctx, &spec).await.unwrap();
}

#[tokio::test]
async fn a_cluster_of_the_same_name_without_our_tag_is_refused_and_left_alone() {
    let env = setup().await;
    let role = env
        .iam
        .create_role()
        .role_name("someone-else")
        .assume_role_policy_document("{}")
        .send()
        .await
        .unwrap()
        .role()
        .unwrap()
        .arn()
        .to_owned();
    dify_stack_emulator::retry_while_role_propagates(|| {
        env.eks
            .create_cluster()
            .name("eks-theirs")
            .role_arn(&role)
            .resources_vpc_config(
                aws_sdk_eks::types::VpcConfigRequest::builder()
                    .subnet_ids(env.spec.private_subnet_ids[0].as_str())
                    .build(),
            )
            .send()
    })
    .await
    .unwrap();
    let ctx = ctx("eks-theirs");
    let eks = EksProvisioner::from_conf(&env.account.config);
    let err = eks.apply(&ctx, &env.spec).await.unwrap_err();
    assert!(matches!(&err, EksError::NotOwned(e) if e.kind == "EKS cluster"), "{err:?}");
    eks.destroy(&ctx, &env.spec).await.unwrap();
    assert_eq!(env.eks.list_clusters().send().await.unwrap().clusters(), ["eks-theirs"]);
}
