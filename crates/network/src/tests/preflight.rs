//! The capacity preflight against the mocked EC2 API: Elastic IPs the plan would allocate
//! against the quota, private subnets against the node group, reads that fail as notes. A mock
//! without an expectation for a read panics when it is made, which proves the reads skipped.

use crate::ExistingVpcSpec;
use crate::MockEc2Api;
use crate::NetworkSpec;
use crate::VpcSpec;
use crate::tests::AddressInfo;
use crate::tests::EniInfo;
use crate::tests::Filter;
use crate::tests::SubnetCapacity;
use crate::tests::converged;
use dify_stack_core::{Classify, ErrorKind};

use crate::preflight::*;

use super::{AllocationId, AwsError, Environment, NetworkError, SubnetId, Tags, VpcId, ctx, net, new_spec, test_spec};

fn prod_spec() -> NetworkSpec {
    NetworkSpec::for_environment(Environment::Prod, "unit")
}

fn nodes(types: &[&str], max_nodes: u32) -> NodeDemand {
    NodeDemand { instance_types: types.iter().map(|t| t.to_string()).collect(), max_nodes, clusters: None }
}

/// An Elastic IP of someone else's (no tags of ours).
fn foreign_eip(i: usize) -> AddressInfo {
    AddressInfo {
        allocation_id: AllocationId::new(format!("eipalloc-other-{i}")),
        public_ip: Some(format!("198.51.100.{i}")),
        association_id: None,
        tags: Tags::new(),
    }
}

/// A mock listing `addresses` and, when asked, answering `quota` for `vpc-max-elastic-ips`.
fn eips(addresses: Vec<AddressInfo>, quota: Option<Result<Option<u32>, AwsError>>) -> MockEc2Api {
    let mut m = MockEc2Api::new();
    m.expect_describe_addresses().returning(move |filters| {
        assert!(filters.is_empty(), "every address of the region counts");
        Ok(addresses.clone())
    });
    if let Some(q) = quota {
        m.expect_elastic_ip_quota().times(1).returning(move || q.clone());
    }
    m
}

fn denied(op: &'static str) -> AwsError {
    AwsError::new(op, "UnauthorizedOperation", "You are not authorized to perform this operation.")
}

async fn run(m: &MockEc2Api, spec: &NetworkSpec, demand: &NodeDemand) -> Result<Vec<String>, CapacityShortfall> {
    capacity_preflight(m, None, &ctx(), spec, demand).await
}

fn has(notes: &[String], needle: &str) -> bool {
    notes.iter().any(|n| n.contains(needle))
}

// ----------------------------------------------------------------------------- the table

#[test]
fn addresses_per_node_follow_the_ec2_table() {
    let a = |t: &str| network_limits(t).map(NetworkLimits::addresses);
    assert_eq!(a("m7g.large"), Some(30), "3 interfaces x 10");
    assert_eq!(a("m7g.xlarge"), Some(60), "4 x 15 (test profile)");
    assert_eq!(a("m7g.2xlarge"), Some(60), "4 x 15 (prod profile)");
    assert_eq!(a("c7g.4xlarge"), Some(240), "8 x 30");
    assert_eq!(a("r7g.16xlarge"), Some(750), "15 x 50");
    assert_eq!(a("m6g.medium"), Some(8), "2 x 4");
    for t in ["m7g.metal", "m7gd.large", "c7gn.xlarge", "m5.large", "t4g.small", "m7g", ""] {
        assert_eq!(network_limits(t), None, "{t}");
    }
    // The VPC CNI's max pods per node (amazon-vpc-cni-k8s misc/eni-max-pods.txt) is
    // interfaces x (IPv4 per interface - 1) + 2: the same table read another way.
    let max_pods = |t: &str| network_limits(t).map(|l| l.interfaces * (l.ipv4_per_interface - 1) + 2);
    assert_eq!(max_pods("m7g.large"), Some(29));
    assert_eq!(max_pods("m7g.xlarge"), Some(58));
    assert_eq!(max_pods("m7g.4xlarge"), Some(234));
    assert_eq!(max_pods("m7g.16xlarge"), Some(737));
}

#[test]
fn usable_addresses_leave_out_the_five_aws_reserves() {
    assert_eq!(usable_addresses(&net("10.0.10.0/24")), 251);
    assert_eq!(usable_addresses(&net("10.0.10.0/28")), 11);
    assert_eq!(usable_addresses(&net("10.0.0.0/16")), 65531);
}

// ----------------------------------------------------------------------------- Elastic IPs

#[tokio::test]
async fn prod_needs_three_addresses_and_a_quota_of_five_with_three_in_use_is_a_shortfall() {
    let m = eips((0..3).map(foreign_eip).collect(), Some(Ok(Some(5))));
    let err = run(&m, &prod_spec(), &nodes(&["m7g.2xlarge"], 10)).await.unwrap_err();
    assert_eq!(err.items.len(), 1, "{err}");
    let item = &err.items[0];
    assert!(item.quota.contains("Elastic IP") && item.quota.contains("L-0263D0A3"), "{}", item.quota);
    assert!(item.quota.contains("us-west-2"), "{}", item.quota);
    assert_eq!((item.limit, item.in_use, item.need), (5, 3, 3));
    assert!(item.fix.contains("Service Quotas") && item.fix.contains("at least 6"), "{}", item.fix);
    assert!(item.fix.contains("network.new.nat = \"single\""), "{}", item.fix);
    let text = err.to_string();
    assert!(text.contains("limit 5, in use 3, the stack needs 3 more (1 short)"), "{text}");
    assert!(text.contains("nothing was changed"), "{text}");
    assert_eq!(err.kind(), ErrorKind::Refused);
    assert_eq!(NetworkError::from(err).kind(), ErrorKind::Refused);
}

#[tokio::test]
async fn the_same_prod_stack_fits_a_quota_of_six() {
    let m = eips((0..3).map(foreign_eip).collect(), Some(Ok(Some(6))));
    let notes = run(&m, &prod_spec(), &nodes(&["m7g.2xlarge"], 10)).await.unwrap();
    assert!(has(&notes, "quota 6, 3 in use, the stack allocates 3 (one per NAT gateway): fits"), "{notes:?}");
}

#[tokio::test]
async fn a_stack_that_has_its_addresses_needs_none_and_the_quota_is_not_read() {
    // Converged: the three of ours are listed (and one of someone else's); no
    // `elastic_ip_quota` expectation, so reading it would panic.
    let mut addresses = converged(&prod_spec()).eips;
    addresses.push(foreign_eip(9));
    let m = eips(addresses, None);
    let notes = run(&m, &prod_spec(), &nodes(&["m7g.2xlarge"], 10)).await.unwrap();
    assert!(!has(&notes, "Elastic IP"), "{notes:?}");
}

#[tokio::test]
async fn only_the_addresses_the_plan_would_allocate_count() {
    // Test profile, NAT per AZ: 2 wanted, 1 of ours exists; with 1 of someone else's, 2 in use.
    let mut addresses = converged(&test_spec()).eips;
    addresses.truncate(1);
    addresses.push(foreign_eip(1));
    let m = eips(addresses, Some(Ok(Some(2))));
    let err = run(&m, &test_spec(), &nodes(&["m7g.xlarge"], 2)).await.unwrap_err();
    assert_eq!((err.items[0].limit, err.items[0].in_use, err.items[0].need), (2, 2, 1));
    assert!(!err.items[0].fix.contains("single"), "one address missing: a single NAT saves nothing");
}

#[tokio::test]
async fn a_refused_quota_read_is_a_note_and_the_check_goes_on() {
    let m = eips(vec![], Some(Err(denied("DescribeAccountAttributes"))));
    let notes = run(&m, &test_spec(), &nodes(&["m7g.xlarge"], 2)).await.unwrap();
    assert!(
        has(&notes, "Elastic IP quota not checked: DescribeAccountAttributes was refused (UnauthorizedOperation)"),
        "{notes:?}"
    );
    assert!(has(&notes, "allow ec2:DescribeAccountAttributes"), "{notes:?}");
    assert!(has(&notes, "private subnets: up to 1 node(s) of m7g.xlarge per AZ"), "the subnets were still checked");
}

#[tokio::test]
async fn a_refused_address_listing_skips_the_quota_with_a_note() {
    let mut m = MockEc2Api::new();
    m.expect_describe_addresses().returning(|_| Err(denied("DescribeAddresses")));
    let notes = run(&m, &test_spec(), &nodes(&["m7g.xlarge"], 2)).await.unwrap();
    assert!(has(&notes, "DescribeAddresses was refused"), "{notes:?}");
}

#[tokio::test]
async fn a_client_without_the_quota_read_is_a_note() {
    let m = eips(vec![], Some(Err(crate::client::not_implemented("DescribeAccountAttributes"))));
    let notes = run(&m, &test_spec(), &nodes(&["m7g.xlarge"], 2)).await.unwrap();
    assert!(has(&notes, "DescribeAccountAttributes is not implemented"), "{notes:?}");
    let m = eips(vec![], Some(Ok(None)));
    let notes = run(&m, &test_spec(), &nodes(&["m7g.xlarge"], 2)).await.unwrap();
    assert!(has(&notes, "did not list vpc-max-elastic-ips"), "{notes:?}");
}

// ----------------------------------------------------------------------------- private subnets

#[tokio::test]
async fn a_28_private_subnet_cannot_hold_an_m7g_xlarge_node() {
    let spec = new_spec(|n| n.private_subnets = vec![net("10.0.10.0/28"), net("10.0.11.0/28")]);
    let m = eips(vec![], Some(Ok(Some(5))));
    let err = run(&m, &spec, &nodes(&["m7g.xlarge"], 2)).await.unwrap_err();
    assert_eq!(err.items.len(), 2, "one per subnet: {err}");
    for (i, item) in err.items.iter().enumerate() {
        assert!(item.quota.starts_with(&format!("private subnet {} (10.0.1{i}.0/28)", i + 1)), "{}", item.quota);
        assert!(item.quota.contains("up to 1 node(s) of 2 m7g.xlarge") && item.quota.contains("60 addresses each"));
        assert_eq!((item.limit, item.in_use, item.need), (11, 0, 60));
        assert!(
            item.fix.contains("network.new.private_subnets") && item.fix.contains("a /25 holds 123"),
            "{}",
            item.fix
        );
        assert!(item.fix.contains("eks.node_group.max"), "{}", item.fix);
    }
}

#[tokio::test]
async fn the_profiles_fit_their_derived_24s() {
    // Prod: at most 10 nodes over 3 AZs, 4 in one AZ x 60 = 240 of a /24's 251.
    let m = eips(vec![], Some(Ok(Some(5))));
    let notes = run(&m, &prod_spec(), &nodes(&["m7g.2xlarge"], 10)).await.unwrap();
    assert!(has(&notes, "up to 4 node(s) of m7g.2xlarge per AZ take up to 240 addresses (60 each)"), "{notes:?}");
    assert!(has(&notes, "the smallest subnet has 251: fits"), "{notes:?}");
    // Five per AZ would not: 300 > 251.
    let err = run(&eips(vec![], Some(Ok(Some(5)))), &prod_spec(), &nodes(&["m7g.2xlarge"], 13)).await.unwrap_err();
    assert_eq!(err.items.len(), 3);
    assert!(err.items.iter().all(|i| i.need == 300 && i.limit == 251));
}

#[tokio::test]
async fn an_unknown_instance_type_is_a_note_not_an_error() {
    let spec = new_spec(|n| n.private_subnets = vec![net("10.0.10.0/28"), net("10.0.11.0/28")]);
    let m = eips(vec![], Some(Ok(Some(5))));
    let notes = run(&m, &spec, &nodes(&["x2gd.large"], 2)).await.unwrap();
    assert!(
        has(&notes, "private subnet capacity not checked: no addresses-per-node figure for x2gd.large"),
        "{notes:?}"
    );
    // Beside a known type, the known one is checked and the other named.
    let m = eips(vec![], Some(Ok(Some(5))));
    let err = run(&m, &spec, &nodes(&["x2gd.large", "m7g.large"], 2)).await.unwrap_err();
    assert_eq!(err.items[0].need, 30, "m7g.large: 3 x 10");
}

#[tokio::test]
async fn without_a_service_quotas_client_the_quotas_it_does_not_read_are_named_with_their_codes() {
    let m = eips(vec![], Some(Ok(Some(5))));
    let notes = run(&m, &test_spec(), &nodes(&["m7g.xlarge"], 2)).await.unwrap();
    let note = notes.last().unwrap();
    assert!(note.starts_with("quotas not read (this preflight was given no Service Quotas client)"), "{note}");
    for code in ["VPCs per Region (vpc L-F678F1CE", "(vpc L-A4707A72", "(vpc L-FE5A380F", "(eks L-1194D53C"] {
        assert!(note.contains(code), "{code} in {note}");
    }
}

/// The Service Quotas checks of an applied network whose second NAT gateway is gone: the VPC and
/// internet gateway are the stack's (their quotas are not read: the mock has no expectation
/// for them and would panic), the NAT gateway quota is read once and judged in the zone of the
/// missing gateway only, with what is there; the EKS clusters quota, the stack's cluster
/// already made, is not read either.
#[tokio::test]
async fn service_quotas_are_read_only_for_what_the_stack_would_add() {
    use crate::client::{IgwInfo, NatInfo, NatState, SubnetInfo, VpcInfo, ZoneInfo};
    use crate::quotas::{MockQuotasApi, NAT_GATEWAYS_PER_AZ};
    use dify_stack_core::ids::{InternetGatewayId, NatGatewayId};

    let (ctx, spec) = (ctx(), test_spec());
    let VpcSpec::New(new) = spec.vpc() else { unreachable!() };
    let zones = ["us-west-2a".to_owned(), "us-west-2b".to_owned()];
    let want = crate::model::Desired::new(&ctx, &spec, new, &zones);
    let mut m = eips(vec![], Some(Ok(Some(5))));
    let vpc_tags = want.vpc.tags.clone();
    m.expect_describe_vpcs().returning(move |_| {
        Ok(vec![VpcInfo { id: VpcId::new("vpc-1"), cidr: "10.0.0.0/16".into(), tags: vpc_tags.clone() }])
    });
    let igw_tags = want.igw.tags.clone();
    m.expect_describe_internet_gateways().returning(move |_| {
        Ok(vec![IgwInfo { id: InternetGatewayId::new("igw-1"), attached_vpcs: vec![], tags: igw_tags.clone() }])
    });
    m.expect_describe_zones().returning(|| {
        Ok(["a", "b"]
            .iter()
            .enumerate()
            .map(|(i, z)| ZoneInfo {
                name: format!("us-west-2{z}"),
                id: format!("usw2-az{}", i + 1),
                available: true,
                zone_type: "availability-zone".into(),
            })
            .collect())
    });
    m.expect_instance_type_zone_ids().returning(|_| Ok(vec!["usw2-az1".into(), "usw2-az2".into()]));
    let nat = |id: &str, subnet: &str, tags: Tags| NatInfo {
        id: NatGatewayId::new(id),
        subnet_id: SubnetId::new(subnet),
        vpc_id: None,
        state: NatState::Available,
        allocation_id: None,
        public_ip: None,
        tags,
    };
    // The stack's first gateway in zone a; someone else's in zone b; a deleted one there, which
    // no longer counts.
    let nats = vec![
        nat("nat-ours", "subnet-a", want.nats[0].tags.clone()),
        nat("nat-other", "subnet-b", Tags::new()),
        NatInfo { state: NatState::Deleted, ..nat("nat-gone", "subnet-b", Tags::new()) },
    ];
    m.expect_describe_nat_gateways().returning(move |_| Ok(nats.clone()));
    m.expect_describe_subnets().returning(|_| {
        Ok(["a", "b"]
            .iter()
            .map(|z| SubnetInfo {
                id: SubnetId::new(format!("subnet-{z}")),
                vpc_id: VpcId::new("vpc-x"),
                cidr: "10.9.0.0/24".into(),
                az: format!("us-west-2{z}"),
                tags: Tags::new(),
            })
            .collect())
    });
    let mut q = MockQuotasApi::new();
    q.expect_quota_value().withf(|quota| *quota == NAT_GATEWAYS_PER_AZ).times(1).returning(|_| Ok(1.0));
    let mut demand = nodes(&["m7g.xlarge"], 2);
    demand.clusters = Some(ClusterUse { in_region: 100, makes_one: false });
    let err = capacity_preflight(&m, Some(&q), &ctx, &spec, &demand).await.unwrap_err();
    assert_eq!(err.items.len(), 1, "{err}");
    let item = &err.items[0];
    assert!(item.quota.ends_with("(Service Quotas: vpc L-FE5A380F) in us-west-2b"), "{err}");
    assert_eq!((item.limit, item.in_use, item.need), (1, 1, 1), "the deleted gateway does not count");
}

// ----------------------------------------------------------------------------- existing VPC

fn existing_spec() -> NetworkSpec {
    NetworkSpec {
        cluster_name: "unit".into(),
        settings: crate::NetworkSettings::existing_vpc(ExistingVpcSpec {
            vpc_id: VpcId::new("vpc-theirs"),
            private_subnet_ids: vec![SubnetId::new("subnet-a"), SubnetId::new("subnet-b")],
            public_subnet_ids: vec![],
            tag_subnets: false,
        }),
        node_instance_types: vec![],
    }
}

/// Their subnets `subnet-a` (us-west-2a) and `subnet-b` (us-west-2b), /24s with `free` free
/// addresses each, and the cluster's CNI interfaces `cni` in them.
fn theirs(free: u32, cni: Result<Vec<EniInfo>, AwsError>) -> MockEc2Api {
    let mut m = MockEc2Api::new();
    m.expect_subnet_capacity().times(1).returning(move |ids| {
        assert_eq!(ids, [SubnetId::new("subnet-a"), SubnetId::new("subnet-b")]);
        Ok(["a", "b"]
            .iter()
            .enumerate()
            .map(|(i, z)| SubnetCapacity {
                id: SubnetId::new(format!("subnet-{z}")),
                az: format!("us-west-2{z}"),
                cidr: format!("10.9.{i}.0/24"),
                available: free,
            })
            .collect())
    });
    m.expect_describe_network_interfaces().times(1).returning(move |filters| {
        assert!(filters.contains(&Filter::new("tag:cluster.k8s.amazonaws.com/name", ["unit"])), "{filters:?}");
        assert!(filters.contains(&Filter::new("subnet-id", ["subnet-a", "subnet-b"])), "{filters:?}");
        cni.clone()
    });
    m
}

#[tokio::test]
async fn an_existing_vpc_is_judged_on_its_free_addresses_and_asks_for_no_elastic_ip() {
    // No describe_addresses expectation: an existing VPC gets no NAT gateway, so no address.
    let err = run(&theirs(30, Ok(vec![])), &existing_spec(), &nodes(&["m7g.xlarge"], 2)).await.unwrap_err();
    assert_eq!(err.items.len(), 2);
    let item = &err.items[0];
    assert!(item.quota.starts_with("private subnets in us-west-2a (subnet-a)"), "{}", item.quota);
    assert_eq!((item.limit, item.in_use, item.need), (251, 221, 60));
    assert!(item.fix.contains("network.existing.private_subnet_ids"), "{}", item.fix);
    let notes = run(&theirs(60, Ok(vec![])), &existing_spec(), &nodes(&["m7g.xlarge"], 2)).await.unwrap();
    assert!(has(&notes, "the AZ with the fewest free has 60: fits"), "{notes:?}");
    assert!(notes.last().unwrap().contains("EKS clusters") && !notes.last().unwrap().contains("VPCs per Region"));
}

#[tokio::test]
async fn where_the_clusters_nodes_already_run_the_free_count_is_only_noted() {
    let cni = EniInfo { id: "eni-cni".into(), subnet_id: Some(SubnetId::new("subnet-a")), ..Default::default() };
    let notes = run(&theirs(30, Ok(vec![cni])), &existing_spec(), &nodes(&["m7g.xlarge"], 2)).await.unwrap();
    assert!(has(&notes, "the cluster's nodes already hold addresses there, so this is not judged"), "{notes:?}");
    // Unreadable: the same.
    let notes =
        run(&theirs(30, Err(denied("DescribeNetworkInterfaces"))), &existing_spec(), &nodes(&["m7g.xlarge"], 2))
            .await
            .unwrap();
    assert!(has(&notes, "could not be read, so this is not judged"), "{notes:?}");
}

#[tokio::test]
async fn a_refused_subnet_read_is_a_note() {
    let mut m = MockEc2Api::new();
    m.expect_subnet_capacity().returning(|_| Err(denied("DescribeSubnets")));
    m.expect_describe_network_interfaces().returning(|_| Ok(vec![]));
    let notes = run(&m, &existing_spec(), &nodes(&["m7g.xlarge"], 2)).await.unwrap();
    assert!(has(&notes, "private subnet capacity not checked: DescribeSubnets was refused"), "{notes:?}");
}
