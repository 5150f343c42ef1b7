//! Strict-emulator rules of issue 28, each as AWS documents it (sources beside the model in
//! `crates/emulator/python/moto_ext.py`), proven here through the SDK: code that broke one of
//! them would fail on a real account and fails here first. (ModifyDBCluster refused while the
//! cluster is not available: `crates/emulator/tests/python_rules.rs`, where the pending time can be
//! held long enough to be deterministic.)

use std::time::Duration;

use dify_stack::core::wait::{self, Probe};
use dify_stack::core::{CancellationToken, WaitPolicy};
use dify_stack_emulator::Emulator;

fn quick() -> WaitPolicy {
    WaitPolicy {
        initial_interval: Duration::from_millis(50),
        max_interval: Duration::from_millis(200),
        max_wait: Duration::from_secs(20),
        ..Default::default()
    }
}

fn code<E: aws_smithy_types::error::metadata::ProvideErrorMetadata>(e: &E) -> String {
    e.code().unwrap_or_default().to_owned()
}

#[tokio::test]
async fn a_public_nat_gateway_without_an_attached_internet_gateway_fails() {
    let a = Emulator::shared().expect("emulator").account("us-west-2").await;
    let ec2 = aws_sdk_ec2::Client::new(&a.config);
    let vpc = ec2.create_vpc().cidr_block("10.40.0.0/16").send().await.unwrap().vpc.unwrap().vpc_id.unwrap();
    let subnet = ec2.create_subnet().vpc_id(&vpc).cidr_block("10.40.1.0/24").send().await.unwrap();
    let subnet = subnet.subnet.unwrap().subnet_id.unwrap();
    let eip = ec2.allocate_address().send().await.unwrap().allocation_id.unwrap();
    let nat = ec2.create_nat_gateway().subnet_id(&subnet).allocation_id(&eip).send().await.unwrap();
    let nat = nat.nat_gateway.unwrap().nat_gateway_id.unwrap();
    let ended = wait::until("the NAT gateway", &quick(), &CancellationToken::new(), || async {
        let d = ec2.describe_nat_gateways().nat_gateway_ids(&nat).send().await.map_err(|e| e.to_string())?;
        let g = d.nat_gateways()[0].clone();
        Ok::<_, String>(match g.state().map(|s| s.as_str().to_owned()).as_deref() {
            Some("pending") => Probe::Pending("pending".into()),
            _ => Probe::Done(g),
        })
    })
    .await
    .unwrap();
    assert_eq!(ended.state().map(|s| s.as_str()), Some("failed"), "{ended:?}");
    assert_eq!(ended.failure_code(), Some("Gateway.NotAttached"), "{ended:?}");

    // With the gateway attached first, the same request becomes available.
    let igw =
        ec2.create_internet_gateway().send().await.unwrap().internet_gateway.unwrap().internet_gateway_id.unwrap();
    ec2.attach_internet_gateway().internet_gateway_id(&igw).vpc_id(&vpc).send().await.unwrap();
    let eip2 = ec2.allocate_address().send().await.unwrap().allocation_id.unwrap();
    let nat = ec2.create_nat_gateway().subnet_id(&subnet).allocation_id(&eip2).send().await.unwrap();
    let nat = nat.nat_gateway.unwrap().nat_gateway_id.unwrap();
    let state = wait::until("the NAT gateway", &quick(), &CancellationToken::new(), || async {
        let d = ec2.describe_nat_gateways().nat_gateway_ids(&nat).send().await.map_err(|e| e.to_string())?;
        let s = d.nat_gateways()[0].state().map(|s| s.as_str().to_owned()).unwrap_or_default();
        Ok::<_, String>(if s == "pending" { Probe::Pending(s) } else { Probe::Done(s) })
    })
    .await
    .unwrap();
    assert_eq!(state, "available");
}

#[tokio::test]
async fn eks_refuses_a_missing_role_and_access_entries_on_a_config_map_cluster() {
    let a = Emulator::shared().expect("emulator").account("us-west-2").await;
    let ec2 = aws_sdk_ec2::Client::new(&a.config);
    let vpc = ec2.create_vpc().cidr_block("10.41.0.0/16").send().await.unwrap().vpc.unwrap().vpc_id.unwrap();
    let mut subnets = Vec::new();
    for (i, az) in ["us-west-2a", "us-west-2b"].iter().enumerate() {
        let s = ec2.create_subnet().vpc_id(&vpc).cidr_block(format!("10.41.{i}.0/24")).availability_zone(*az).send();
        subnets.push(s.await.unwrap().subnet.unwrap().subnet_id.unwrap());
    }
    let eks = aws_sdk_eks::Client::new(&a.config);
    let vpc_config = || aws_sdk_eks::types::VpcConfigRequest::builder().set_subnet_ids(Some(subnets.clone())).build();
    let missing = format!("arn:aws:iam::{}:role/no-such-role", a.account_id);
    let err = eks.create_cluster().name("rules-missing").role_arn(&missing).resources_vpc_config(vpc_config()).send();
    let err = err.await.unwrap_err();
    assert_eq!(code(&err), "InvalidParameterException", "{err:?}");

    let iam = aws_sdk_iam::Client::new(&a.config);
    let trust = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"Service":"eks.amazonaws.com"},"Action":"sts:AssumeRole"}]}"#;
    let role = iam.create_role().role_name("rules-cluster").assume_role_policy_document(trust).send().await.unwrap();
    let role = role.role.unwrap().arn;
    dify_stack_emulator::retry_while_role_propagates(|| {
        eks.create_cluster()
            .name("rules-configmap")
            .role_arn(&role)
            .resources_vpc_config(vpc_config())
            .access_config(
                aws_sdk_eks::types::CreateAccessConfigRequest::builder()
                    .authentication_mode(aws_sdk_eks::types::AuthenticationMode::ConfigMap)
                    .build(),
            )
            .send()
    })
    .await
    .unwrap();
    wait::until("the cluster", &quick(), &CancellationToken::new(), || async {
        let d = eks.describe_cluster().name("rules-configmap").send().await.map_err(|e| e.to_string())?;
        let s = d.cluster().and_then(|c| c.status()).map(|s| s.as_str().to_owned()).unwrap_or_default();
        Ok::<_, String>(if s == "ACTIVE" { Probe::Done(()) } else { Probe::Pending(s) })
    })
    .await
    .unwrap();
    let err = eks
        .create_access_entry()
        .cluster_name("rules-configmap")
        .principal_arn(format!("arn:aws:iam::{}:role/admin", a.account_id))
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&err), "InvalidRequestException", "{err:?}");
}

/// A stack applied before operators were recorded: its cluster admits the first operator's /32
/// and no record exists. The next operator's connect adopts that address (so their apply keeps
/// it) and adds their own; a configured range stays configuration, not an operator.
#[tokio::test]
async fn the_first_operator_of_a_stack_made_before_the_record_is_adopted_from_the_cluster() {
    let a = Emulator::shared().expect("emulator").account("us-west-2").await;
    let ec2 = aws_sdk_ec2::Client::new(&a.config);
    let vpc = ec2.create_vpc().cidr_block("10.42.0.0/16").send().await.unwrap().vpc.unwrap().vpc_id.unwrap();
    let mut subnets = Vec::new();
    for (i, az) in ["us-west-2a", "us-west-2b"].iter().enumerate() {
        let s = ec2.create_subnet().vpc_id(&vpc).cidr_block(format!("10.42.{i}.0/24")).availability_zone(*az).send();
        subnets.push(s.await.unwrap().subnet.unwrap().subnet_id.unwrap());
    }
    let iam = aws_sdk_iam::Client::new(&a.config);
    let trust = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"Service":"eks.amazonaws.com"},"Action":"sts:AssumeRole"}]}"#;
    let role = iam.create_role().role_name("legacy-cluster").assume_role_policy_document(trust).send().await.unwrap();
    let role = role.role.unwrap().arn;
    let eks = aws_sdk_eks::Client::new(&a.config);
    let mut cfg = dify_stack::Profile::Test.config().with_name("legacy").expect("a valid stack name");
    cfg.eks.checkip_url = Emulator::shared().unwrap().checkip_url();
    cfg.eks.endpoint.public_access_cidrs = vec!["198.51.100.0/24".into()];
    let ctx = dify_stack::core::Context::new("legacy", dify_stack::core::Environment::Test, "us-west-2").unwrap();
    let tags = ctx.tags_for(dify_stack::core::Tier::Eks, "cluster", "legacy");
    dify_stack_emulator::retry_while_role_propagates(|| {
        eks.create_cluster()
            .name("legacy")
            .role_arn(&role)
            .resources_vpc_config(
                aws_sdk_eks::types::VpcConfigRequest::builder()
                    .set_subnet_ids(Some(subnets.clone()))
                    .endpoint_public_access(true)
                    .public_access_cidrs("198.51.100.0/24")
                    .public_access_cidrs("203.0.113.7/32")
                    .build(),
            )
            .set_tags(Some(tags.clone().into_iter().collect()))
            .send()
    })
    .await
    .unwrap();
    let stack = dify_stack::Stack::connect(cfg, a.config.clone()).await.unwrap();
    let mut cidrs = stack.config().eks.operator_cidrs.clone();
    cidrs.sort();
    assert_eq!(cidrs, ["127.0.0.1/32", "203.0.113.7/32"], "the earlier operator's address and this machine's");
}

/// A security group a network interface still uses cannot be deleted (EC2 API reference,
/// DeleteSecurityGroup: DependencyViolation), as a node group's interfaces hold the node
/// security group until they are gone; once the interface is deleted, the group goes.
#[tokio::test]
async fn a_security_group_used_by_a_network_interface_cannot_be_deleted() {
    let a = Emulator::shared().expect("emulator").account("us-west-2").await;
    let ec2 = aws_sdk_ec2::Client::new(&a.config);
    let vpc = ec2.create_vpc().cidr_block("10.43.0.0/16").send().await.unwrap().vpc.unwrap().vpc_id.unwrap();
    let subnet = ec2.create_subnet().vpc_id(&vpc).cidr_block("10.43.1.0/24").send().await.unwrap();
    let subnet = subnet.subnet.unwrap().subnet_id.unwrap();
    let sg = ec2.create_security_group().group_name("held").description("d").vpc_id(&vpc).send().await.unwrap();
    let sg = sg.group_id.unwrap();
    let eni = ec2.create_network_interface().subnet_id(&subnet).groups(&sg).send().await.unwrap();
    let eni = eni.network_interface.unwrap().network_interface_id.unwrap();
    let err = ec2.delete_security_group().group_id(&sg).send().await.unwrap_err();
    assert_eq!(code(&err), "DependencyViolation", "{err:?}");
    ec2.delete_network_interface().network_interface_id(&eni).send().await.unwrap();
    ec2.delete_security_group().group_id(&sg).send().await.unwrap();
}
