//! The capacity preflight against the local AWS emulator, through the real SDK client.
//!
//! moto answers `vpc-max-elastic-ips` with a fixed 5 (the AWS default) and never refuses
//! AllocateAddress; `crates/emulator/python/moto_quota.py` models a per-account quota (set with
//! POST /moto-api/dify-stack/quota), AllocateAddress refused beyond it, and a refused
//! DescribeAccountAttributes; the emulator launcher loads it. The same model answers the Service
//! Quotas reads (GetServiceQuota with a value a test applied, GetAWSDefaultServiceQuota, the EKS
//! clusters quota moto lacks, refusals).

use aws_sdk_ec2::Client;
use dify_stack_core::ids::{SubnetId, VpcId};
use dify_stack_core::{Context, Environment, Provisioner};
use dify_stack_emulator::{Emulator, TestAccount};
use dify_stack_network::{
    CapacityShortfall, ClusterUse, ExistingVpcSpec, NetworkError, NetworkProvisioner, NetworkSettings, NetworkSpec,
    NodeDemand,
};

const NEEDS_MODEL: &str = "needs moto_quota.py loaded by the emulator launcher";

async fn account() -> TestAccount {
    Emulator::shared().expect("emulator").account("us-west-2").await
}

fn ctx(stack: &str, env: Environment) -> Context {
    Context::new(stack, env, "us-west-2").unwrap()
}

fn nodes(instance_type: &str, max_nodes: u32) -> NodeDemand {
    NodeDemand { instance_types: vec![instance_type.to_owned()], max_nodes, clusters: None }
}

/// The node group of a profile (STACK.md: test 1 x m7g.xlarge, max 2; prod m7g.2xlarge, max 10).
fn profile_nodes(env: Environment) -> NodeDemand {
    match env {
        Environment::Test => nodes("m7g.xlarge", 2),
        Environment::Prod => nodes("m7g.2xlarge", 10),
    }
}

async fn allocate(ec2: &Client, n: usize) {
    for _ in 0..n {
        ec2.allocate_address().domain(aws_sdk_ec2::types::DomainType::Vpc).send().await.unwrap();
    }
}

/// POST /moto-api/dify-stack/quota?<query> (the model's control route); the reply body.
async fn set_quota(account: &str, query: &str) -> String {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let endpoint = Emulator::shared().unwrap().endpoint().to_owned();
    let host = endpoint.trim_start_matches("http://").trim_end_matches('/').to_owned();
    let mut stream = tokio::net::TcpStream::connect(&host).await.expect("the emulator is running");
    let request = format!(
        "POST /moto-api/dify-stack/quota?account={account}&{query} HTTP/1.0\r\nHost: {host}\r\nContent-Length: 0\r\n\r\n"
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut reply = String::new();
    stream.read_to_string(&mut reply).await.unwrap();
    let (head, body) = reply.split_once("\r\n\r\n").unwrap_or((&reply, ""));
    assert!(head.contains(" 200 "), "setting the quota failed ({NEEDS_MODEL}): {head}");
    body.to_owned()
}

#[tokio::test]
async fn prod_with_three_addresses_in_use_is_short_of_the_default_quota() {
    let a = account().await;
    allocate(&Client::new(&a.config), 3).await;
    let network = NetworkProvisioner::from_conf(&a.config);
    let spec = NetworkSpec::for_environment(Environment::Prod, "pf-prod");
    let err: CapacityShortfall = network
        .preflight(&ctx("pf-prod", Environment::Prod), &spec, &profile_nodes(Environment::Prod))
        .await
        .unwrap_err();
    assert_eq!(err.items.len(), 1, "{err}");
    assert_eq!((err.items[0].limit, err.items[0].in_use, err.items[0].need), (5, 3, 3));
    assert!(err.to_string().contains("L-0263D0A3"), "{err}");
    let ops = a.calls.operations();
    let read = |op: &String| op.starts_with("ec2 Describe") || op.starts_with("servicequotas Get");
    assert!(ops.iter().all(|op| read(op) || op == "ec2 AllocateAddress"), "{ops:?}");
    assert!(ops.contains(&"ec2 DescribeAccountAttributes".to_owned()), "{ops:?}");
    assert!(ops.contains(&"servicequotas GetServiceQuota".to_owned()), "{ops:?}");
}

#[tokio::test]
async fn an_applied_network_needs_no_address_and_the_quota_is_not_read() {
    let a = account().await;
    let network = NetworkProvisioner::from_conf(&a.config);
    let (ctx, spec) = (ctx("pf-test", Environment::Test), NetworkSpec::for_environment(Environment::Test, "pf-test"));
    let demand = profile_nodes(Environment::Test);
    let notes = network.preflight(&ctx, &spec, &demand).await.unwrap();
    assert!(notes.iter().any(|n| n.contains("quota 5, 0 in use, the stack allocates 2")), "{notes:?}");
    network.apply(&ctx, &spec).await.unwrap();
    a.calls.reset();
    let notes = network.preflight(&ctx, &spec, &demand).await.unwrap();
    let asked = |n: &&String| ["Elastic IP", "L-F678F1CE", "L-A4707A72", "L-FE5A380F"].iter().any(|q| n.contains(q));
    assert!(!notes.iter().any(|n| asked(&n)), "{notes:?}");
    let ops = a.calls.operations();
    assert!(ops.iter().all(|op| op.starts_with("ec2 Describe")), "reads only, no quota asked for: {ops:?}");
    assert!(!ops.contains(&"ec2 DescribeAccountAttributes".to_owned()), "{ops:?}");
    network.destroy(&ctx, &spec).await.unwrap();
}

#[tokio::test]
async fn an_existing_vpc_is_judged_on_the_free_addresses_ec2_reports() {
    let a = account().await;
    let ec2 = Client::new(&a.config);
    let vpc =
        ec2.create_vpc().cidr_block("172.20.0.0/16").send().await.unwrap().vpc().unwrap().vpc_id().unwrap().to_owned();
    let zones = ec2.describe_availability_zones().send().await.unwrap();
    let mut ids = Vec::new();
    for (i, z) in zones.availability_zones()[..2].iter().enumerate() {
        let s = ec2
            .create_subnet()
            .vpc_id(&vpc)
            .cidr_block(format!("172.20.{i}.0/28"))
            .availability_zone(z.zone_name().unwrap())
            .send()
            .await
            .unwrap();
        ids.push(SubnetId::new(s.subnet().unwrap().subnet_id().unwrap()));
    }
    let spec = NetworkSpec {
        cluster_name: "pf-byo".into(),
        settings: NetworkSettings::existing_vpc(ExistingVpcSpec {
            vpc_id: VpcId::new(&vpc),
            private_subnet_ids: ids,
            public_subnet_ids: vec![],
            tag_subnets: false,
        }),
        node_instance_types: vec![],
    };
    let network = NetworkProvisioner::from_conf(&a.config);
    let err = network.preflight(&ctx("pf-byo", Environment::Test), &spec, &nodes("m7g.xlarge", 2)).await.unwrap_err();
    assert_eq!(err.items.len(), 2, "{err}");
    assert!(err.items.iter().all(|i| (i.limit, i.in_use, i.need) == (11, 0, 60)), "{err}");
    let ops = a.calls.by_operation();
    assert!(ops.contains_key("ec2 DescribeSubnets"), "{ops:?}");
    assert!(
        !ops.contains_key("ec2 DescribeAddresses") && !ops.contains_key("ec2 DescribeAccountAttributes"),
        "{ops:?}"
    );
}

#[tokio::test]
async fn a_lower_quota_is_read_and_apply_stops_where_the_preflight_said() {
    let a = account().await;
    let reply = set_quota(&a.account_id, "value=2").await;
    assert!(reply.contains("\"vpc-max-elastic-ips\": 2"), "{reply}");
    let ec2 = Client::new(&a.config);
    allocate(&ec2, 1).await;
    let network = NetworkProvisioner::from_conf(&a.config);
    let (ctx, spec) = (ctx("pf-low", Environment::Test), NetworkSpec::for_environment(Environment::Test, "pf-low"));
    let err = network.preflight(&ctx, &spec, &profile_nodes(Environment::Test)).await.unwrap_err();
    assert_eq!((err.items[0].limit, err.items[0].in_use, err.items[0].need), (2, 1, 2));
    // What the preflight foretold: the second address of the stack is refused.
    let failed = network.apply(&ctx, &spec).await.unwrap_err();
    assert!(matches!(&failed, NetworkError::Aws(_)), "{failed}");
    assert!(format!("{failed:?}").contains("AddressLimitExceeded"), "{failed:?}");
    network.destroy(&ctx, &spec).await.unwrap();
    // Raised to 3, it fits (1 of someone else's, 2 of the stack's).
    set_quota(&a.account_id, "value=3").await;
    let notes = network.preflight(&ctx, &spec, &profile_nodes(Environment::Test)).await.unwrap();
    assert!(notes.iter().any(|n| n.contains("quota 3, 1 in use, the stack allocates 2")), "{notes:?}");
    network.apply(&ctx, &spec).await.unwrap();
    network.destroy(&ctx, &spec).await.unwrap();
}

#[tokio::test]
async fn a_refused_quota_read_is_a_note_and_the_preflight_goes_on() {
    let a = account().await;
    set_quota(&a.account_id, "deny=true").await;
    let network = NetworkProvisioner::from_conf(&a.config);
    let spec = NetworkSpec::for_environment(Environment::Test, "pf-deny");
    let notes =
        network.preflight(&ctx("pf-deny", Environment::Test), &spec, &profile_nodes(Environment::Test)).await.unwrap();
    assert!(
        notes.iter().any(|n| n.contains("DescribeAccountAttributes was refused (UnauthorizedOperation)")),
        "{notes:?}"
    );
    assert!(notes.iter().any(|n| n.contains("private subnets: up to 1 node(s) of m7g.xlarge")), "{notes:?}");
}

/// The quotas only Service Quotas reports, read through the real SDK client: a VPC quota an
/// administrator lowered to what the account holds is a shortfall naming its code and fix; the
/// others fit and say so.
#[tokio::test]
async fn service_quotas_are_read_and_a_vpc_quota_already_used_up_is_a_shortfall() {
    let a = account().await;
    let ec2 = Client::new(&a.config);
    let in_use = ec2.describe_vpcs().send().await.unwrap().vpcs().len() as u64;
    set_quota(&a.account_id, &format!("service=vpc&code=L-F678F1CE&value={in_use}")).await;
    let network = NetworkProvisioner::from_conf(&a.config);
    let (ctx, spec) = (ctx("pf-sq", Environment::Test), NetworkSpec::for_environment(Environment::Test, "pf-sq"));
    let err = network.preflight(&ctx, &spec, &profile_nodes(Environment::Test)).await.unwrap_err();
    assert_eq!(err.items.len(), 1, "{err}");
    let item = &err.items[0];
    assert!(item.quota.contains("VPCs per Region (Service Quotas: vpc L-F678F1CE)"), "{err}");
    assert_eq!((item.limit, item.in_use, item.need), (in_use, in_use, 1));
    assert!(item.fix.contains("request an increase of L-F678F1CE to at least"), "{err}");
    // Raised back to the default, everything fits and each quota is reported.
    set_quota(&a.account_id, "service=vpc&code=L-F678F1CE&value=5").await;
    let notes = network.preflight(&ctx, &spec, &profile_nodes(Environment::Test)).await.unwrap();
    for quota in ["L-F678F1CE", "L-A4707A72", "L-FE5A380F"] {
        assert!(notes.iter().any(|n| n.contains(quota) && n.ends_with("fits")), "{quota}: {notes:?}");
    }
    assert!(notes.iter().any(|n| n.contains("L-1194D53C") && n.contains("not counted")), "{notes:?}");
}

/// NAT gateways count per Availability Zone: one of someone else's in the stack's first zone,
/// against a quota of 1, is a shortfall in that zone only.
#[tokio::test]
async fn a_nat_gateway_quota_is_judged_per_zone_the_stack_would_use() {
    let a = account().await;
    let ec2 = Client::new(&a.config);
    let vpc = ec2.create_vpc().cidr_block("172.21.0.0/16").send().await.unwrap();
    let vpc = vpc.vpc().unwrap().vpc_id().unwrap();
    let zones = ec2.describe_availability_zones().send().await.unwrap();
    let mut names: Vec<&str> = zones.availability_zones().iter().filter_map(|z| z.zone_name()).collect();
    names.sort();
    let subnet = ec2.create_subnet().vpc_id(vpc).cidr_block("172.21.0.0/24").availability_zone(names[0]).send();
    let subnet = subnet.await.unwrap().subnet().unwrap().subnet_id().unwrap().to_owned();
    let eip = ec2.allocate_address().domain(aws_sdk_ec2::types::DomainType::Vpc).send().await.unwrap();
    ec2.create_nat_gateway().subnet_id(&subnet).allocation_id(eip.allocation_id().unwrap()).send().await.unwrap();
    set_quota(&a.account_id, "service=vpc&code=L-FE5A380F&value=1").await;
    let network = NetworkProvisioner::from_conf(&a.config);
    let (ctx, spec) = (ctx("pf-nat", Environment::Prod), NetworkSpec::for_environment(Environment::Prod, "pf-nat"));
    let err = network.preflight(&ctx, &spec, &profile_nodes(Environment::Prod)).await.unwrap_err();
    assert_eq!(err.items.len(), 1, "{err}");
    let item = &err.items[0];
    assert!(item.quota.contains("L-FE5A380F") && item.quota.ends_with(&format!("in {}", names[0])), "{err}");
    assert_eq!((item.limit, item.in_use, item.need), (1, 1, 1));
}

/// The EKS clusters quota, which moto lacks and the model adds with its default: the region's
/// clusters (counted by the EKS tier) against it.
#[tokio::test]
async fn the_eks_cluster_quota_is_read_and_a_full_region_is_a_shortfall() {
    let a = account().await;
    let network = NetworkProvisioner::from_conf(&a.config);
    let (ctx, spec) = (ctx("pf-eks", Environment::Test), NetworkSpec::for_environment(Environment::Test, "pf-eks"));
    let mut demand = profile_nodes(Environment::Test);
    demand.clusters = Some(ClusterUse { in_region: 99, makes_one: true });
    let notes = network.preflight(&ctx, &spec, &demand).await.unwrap();
    assert!(notes.iter().any(|n| n.contains("L-1194D53C") && n.contains("quota 100, 99 in use")), "{notes:?}");
    let quota_reads = || a.calls.operations().iter().filter(|op| *op == "servicequotas GetServiceQuota").count();
    demand.clusters = Some(ClusterUse { in_region: 100, makes_one: true });
    a.calls.reset();
    let err = network.preflight(&ctx, &spec, &demand).await.unwrap_err();
    assert!(err.items.iter().any(|i| i.quota.contains("L-1194D53C") && (i.limit, i.need) == (100, 1)), "{err}");
    assert_eq!(quota_reads(), 4, "VPCs, internet gateways, NAT gateways, EKS clusters");
    // The stack's own cluster already there: that quota is not asked for.
    demand.clusters = Some(ClusterUse { in_region: 100, makes_one: false });
    a.calls.reset();
    network.preflight(&ctx, &spec, &demand).await.unwrap();
    assert_eq!(quota_reads(), 3, "the EKS clusters quota is not read");
}

/// Service Quotas refused (no servicequotas:GetServiceQuota): one note per quota naming the
/// permission, and the preflight goes on.
#[tokio::test]
async fn refused_service_quotas_reads_are_notes() {
    let a = account().await;
    set_quota(&a.account_id, "deny_quotas=true").await;
    let network = NetworkProvisioner::from_conf(&a.config);
    let spec = NetworkSpec::for_environment(Environment::Test, "pf-sqdeny");
    let notes = network
        .preflight(&ctx("pf-sqdeny", Environment::Test), &spec, &profile_nodes(Environment::Test))
        .await
        .unwrap();
    let refused: Vec<_> = notes
        .iter()
        .filter(|n| {
            n.contains("GetServiceQuota was refused (AccessDeniedException); allow servicequotas:GetServiceQuota")
        })
        .collect();
    assert_eq!(refused.len(), 3, "VPCs, internet gateways, NAT gateways (read once for both zones): {notes:?}");
}
