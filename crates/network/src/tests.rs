//! Unit tests: validation, derivation, diff tables, and provisioner logic against the mocked
//! client (`MockEc2Api`). A mock without write expectations panics on any write, which proves
//! that plan is read-only and that a converged world gets no writes.

use std::time::Duration;

use dify_stack_core::ids::{AllocationId, InternetGatewayId, NatGatewayId, RouteTableId, SubnetId, VpcId};
use dify_stack_core::{Action, AwsError, Context, Environment, Provisioner, Tags, WaitPolicy};
use mockall::predicate::eq;

use crate::client::*;
use crate::model::ObservedNew;
use crate::spec::*;
use crate::{NetworkError, NetworkProvisioner};

mod destroy;
mod drift;
mod fake;
mod identity;
mod preflight;
mod refusals;
mod world;
use world::*;

fn ctx() -> Context {
    Context::new("unit", Environment::Test, "us-west-2").unwrap().with_wait(WaitPolicy {
        initial_interval: Duration::from_millis(1),
        max_interval: Duration::from_millis(5),
        multiplier: 2.0,
        jitter: 0.0,
        max_wait: Duration::from_secs(5),
        ..Default::default()
    })
}

fn test_spec() -> NetworkSpec {
    NetworkSpec::for_environment(Environment::Test, "unit")
}

fn new_spec(f: impl FnOnce(&mut NewVpcSpec)) -> NetworkSpec {
    let mut spec = test_spec();
    f(&mut spec.settings.new);
    spec
}

fn net(s: &str) -> ipnet::Ipv4Net {
    s.parse().unwrap()
}

// ----------------------------------------------------------------------------- validation

#[test]
fn defaults_match_stack_md() {
    let prod = NetworkSpec::for_environment(Environment::Prod, "c").settings.new;
    assert_eq!(prod.cidr, net("10.0.0.0/16"));
    assert_eq!(prod.az_count, 3);
    assert_eq!(prod.nat, NatMode::PerAz);
    let s = |v: Vec<ipnet::Ipv4Net>| v.iter().map(ToString::to_string).collect::<Vec<_>>();
    assert_eq!(s(prod.public_cidrs()), ["10.0.1.0/24", "10.0.2.0/24", "10.0.3.0/24"]);
    assert_eq!(s(prod.private_cidrs()), ["10.0.10.0/24", "10.0.11.0/24", "10.0.12.0/24"]);
    let test = test_spec().settings.new;
    assert_eq!(test.az_count, 2);
}

#[test]
fn subnets_are_derived_for_any_16_to_20_vpc() {
    let cases = [
        ("172.20.0.0/16", "172.20.1.0/24", "172.20.10.0/24"),
        ("10.8.0.0/18", "10.8.1.0/24", "10.8.10.0/24"),
        ("192.168.16.0/20", "192.168.17.0/24", "192.168.26.0/24"),
    ];
    for (vpc, first_public, first_private) in cases {
        let public = derive_subnets(net(vpc), PUBLIC_OFFSET, 3).unwrap();
        let private = derive_subnets(net(vpc), PRIVATE_OFFSET, 3).unwrap();
        assert_eq!(public[0].to_string(), first_public, "{vpc}");
        assert_eq!(private[0].to_string(), first_private, "{vpc}");
        assert!(public.iter().chain(&private).all(|s| net(vpc).contains(s)));
    }
    assert!(derive_subnets(net("10.0.0.0/21"), PRIVATE_OFFSET, 3).is_none(), "a /21 has only 8 /24s");
    assert!(derive_subnets(net("10.0.0.0/20"), PRIVATE_OFFSET, 6).is_some(), "indexes 10..15 fit a /20");
    assert!(derive_subnets(net("10.0.0.0/20"), PRIVATE_OFFSET, 7).is_none());
}

#[test]
fn validation_reports_every_violation_with_its_path() {
    let existing = |f: &dyn Fn(&mut ExistingVpcSpec)| {
        let mut e = ExistingVpcSpec {
            vpc_id: "vpc-1".into(),
            private_subnet_ids: vec!["subnet-1".into(), "subnet-2".into()],
            public_subnet_ids: vec!["subnet-3".into()],
            tag_subnets: false,
        };
        f(&mut e);
        NetworkSpec {
            cluster_name: "unit".into(),
            settings: NetworkSettings::existing_vpc(e),
            node_instance_types: Vec::new(),
        }
    };
    let table: Vec<(&str, NetworkSpec, Vec<&str>)> = vec![
        ("host bits", new_spec(|n| n.cidr = net("10.0.0.1/16")), vec!["new.cidr"]),
        ("too large", new_spec(|n| n.cidr = net("10.0.0.0/8")), vec!["new.cidr"]),
        ("one AZ", new_spec(|n| n.az_count = 1), vec!["new.az_count"]),
        ("seven AZs", new_spec(|n| n.az_count = 7), vec!["new.az_count"]),
        ("underivable", new_spec(|n| n.cidr = net("10.0.0.0/22")), vec!["new.private_subnets"]),
        ("wrong count", new_spec(|n| n.public_subnets = vec![net("10.0.1.0/24")]), vec!["new.public_subnets"]),
        (
            "outside the VPC",
            new_spec(|n| n.private_subnets = vec![net("10.0.10.0/24"), net("10.9.0.0/24")]),
            vec!["new.private_subnets[1]"],
        ),
        (
            "no room",
            new_spec(|n| n.private_subnets = vec![net("10.0.10.0/24"), net("10.0.11.0/29")]),
            vec!["new.private_subnets[1]"],
        ),
        (
            "overlap",
            new_spec(|n| {
                n.public_subnets = vec![net("10.0.0.0/20"), net("10.0.16.0/24")];
                n.private_subnets = vec![net("10.0.10.0/24"), net("10.0.32.0/24")];
            }),
            vec!["new.private_subnets[0]"],
        ),
        ("bad cluster name", NetworkSpec { cluster_name: "-x".into(), ..test_spec() }, vec!["cluster_name"]),
        ("not a vpc id", existing(&|e| e.vpc_id = "sg-1".into()), vec!["existing.vpc_id"]),
        ("one private subnet", existing(&|e| e.private_subnet_ids.truncate(1)), vec!["existing.private_subnet_ids"]),
        (
            "listed twice",
            existing(&|e| e.public_subnet_ids = vec!["subnet-1".into()]),
            vec!["existing.public_subnet_ids[0]"],
        ),
        (
            "not a subnet id",
            existing(&|e| e.private_subnet_ids[1] = "vpc-2".into()),
            vec!["existing.private_subnet_ids[1]"],
        ),
    ];
    assert!(table.len() >= 10);
    for (what, spec, paths) in table {
        let errors = spec.validate(&ctx()).expect_err(what);
        assert_eq!(errors.paths(), paths, "{what}: {errors}");
        assert!(errors.errors().iter().all(|e| e.hint.is_some()), "{what}: every error names a fix");
    }
    // Several problems at once.
    let spec = NetworkSpec { cluster_name: "-x".into(), ..new_spec(|n| n.az_count = 9) };
    assert_eq!(spec.validate(&ctx()).unwrap_err().len(), 2);
    assert!(test_spec().validate(&ctx()).is_ok());
}

#[test]
fn spec_files_reject_unknown_fields_and_default_the_rest() {
    // The settings are flattened into the spec: `new` / `existing` beside `cluster_name`.
    let spec: NetworkSpec =
        serde_json::from_str(r#"{"cluster_name":"c","new":{"az_count":3,"nat":"single"}}"#).unwrap();
    let VpcSpec::New(n) = spec.vpc() else { panic!() };
    assert_eq!((n.az_count, n.nat, n.cidr), (3, NatMode::Single, net("10.0.0.0/16")));
    let spec: NetworkSpec = serde_json::from_str(
        r#"{"cluster_name":"c","existing":{"vpc_id":"vpc-1","private_subnet_ids":["subnet-1","subnet-2"]}}"#,
    )
    .unwrap();
    assert!(matches!(spec.vpc(), VpcSpec::Existing(e) if e.vpc_id.as_str() == "vpc-1"));
    assert_eq!(serde_json::from_value::<NetworkSpec>(serde_json::to_value(&spec).unwrap()).unwrap(), spec);
    let err = serde_json::from_str::<NetworkSpec>(r#"{"cluster_name":"c","new":{"az_cout":3}}"#);
    assert!(err.unwrap_err().to_string().contains("az_cout"));
    let err = serde_json::from_str::<NetworkSpec>(r#"{"cluster_name":"c","new":{},"extra":1}"#);
    assert!(err.unwrap_err().to_string().contains("extra"));
    let err = serde_json::from_str::<NetworkSettings>(r#"{"new":{},"vpc":{}}"#);
    assert!(err.unwrap_err().to_string().contains("vpc"));
}

// ----------------------------------------------------------------------------- a converged world

const ZONES: [&str; 3] = ["us-west-2a", "us-west-2b", "us-west-2c"];

#[tokio::test]
async fn plan_is_read_only_on_an_empty_world() {
    // Only read expectations: any write would panic.
    let p = NetworkProvisioner::new(reads(&ObservedNew::default()));
    let plan = p.plan(&ctx(), &test_spec()).await.unwrap();
    assert_eq!(plan.summary().create, 1 + 4 + 1 + 2 + 2 + 3, "{plan}");
    assert!(plan.changes.iter().all(|c| c.action == Action::Create));
}

#[tokio::test]
async fn apply_on_a_converged_world_makes_no_write() {
    for spec in
        [test_spec(), NetworkSpec::for_environment(Environment::Prod, "unit"), new_spec(|n| n.nat = NatMode::Single)]
    {
        let world = converged(&spec);
        let p = NetworkProvisioner::new(reads(&world));
        assert!(p.plan(&ctx(), &spec).await.unwrap().is_empty(), "{}", p.plan(&ctx(), &spec).await.unwrap());
        let out = p.apply(&ctx(), &spec).await.unwrap();
        assert_eq!(out.vpc_id.as_str(), "vpc-1");
        assert_eq!(out.private_subnets.len(), world.zones.len());
    }
}

#[tokio::test]
async fn zones_are_the_first_available_ones_in_name_order() {
    let p = NetworkProvisioner::new(reads(&ObservedNew::default()));
    let spec = NetworkSpec::for_environment(Environment::Prod, "unit");
    let plan = p.plan(&ctx(), &spec).await.unwrap();
    let azs: Vec<&str> = plan
        .changes
        .iter()
        .filter(|c| c.resource.kind == "ec2:subnet")
        .filter_map(|c| c.fields.iter().find(|f| f.path == "availability_zone")?.after.as_deref())
        .collect();
    assert_eq!(azs, ["us-west-2a", "us-west-2b", "us-west-2c", "us-west-2a", "us-west-2b", "us-west-2c"]);
}

#[tokio::test]
async fn too_few_zones_is_a_clear_error() {
    let mut m = MockEc2Api::new();
    m.expect_describe_zones().returning(|| {
        Ok(vec![
            ZoneInfo { name: "a".into(), id: "x-az1".into(), available: true, zone_type: "availability-zone".into() },
            ZoneInfo { name: "b".into(), id: "x-az2".into(), available: false, zone_type: "availability-zone".into() },
        ])
    });
    m.expect_describe_vpcs().returning(|_| Ok(vec![]));
    let err = NetworkProvisioner::new(m).plan(&ctx(), &test_spec()).await.unwrap_err();
    assert!(matches!(err, NetworkError::NotEnoughZones { wanted: 2, found: 1, .. }), "{err}");
}

#[tokio::test]
async fn zones_eks_refuses_or_without_the_node_type_are_skipped_by_zone_id() {
    // us-east-1: in this account "us-east-1a" is use1-az3, where EKS refuses control-plane
    // subnets, and "us-east-1b" does not offer the node type. The old code took a and b.
    let zone = |name: &str, id: &str| ZoneInfo {
        name: name.into(),
        id: id.into(),
        available: true,
        zone_type: "availability-zone".into(),
    };
    let zones = vec![
        zone("us-east-1a", "use1-az3"),
        zone("us-east-1b", "use1-az5"),
        zone("us-east-1c", "use1-az1"),
        zone("us-east-1d", "use1-az2"),
    ];
    let mut m = MockEc2Api::new();
    let z = zones.clone();
    m.expect_describe_zones().returning(move || Ok(z.clone()));
    m.expect_instance_type_zone_ids()
        .withf(|t| t == "m7g.xlarge")
        .returning(|_| Ok(vec!["use1-az1".into(), "use1-az2".into(), "use1-az3".into()]));
    m.expect_describe_vpcs().returning(|_| Ok(vec![]));
    let ctx = Context::new("unit", Environment::Test, "us-east-1").unwrap();
    let spec = NetworkSpec { node_instance_types: vec!["m7g.xlarge".into()], ..test_spec() };
    let plan = NetworkProvisioner::new(m).plan(&ctx, &spec).await.unwrap();
    let azs: std::collections::BTreeSet<&str> = plan
        .changes
        .iter()
        .filter_map(|c| c.fields.iter().find(|f| f.path == "availability_zone")?.after.as_deref())
        .collect();
    assert_eq!(azs.into_iter().collect::<Vec<_>>(), ["us-east-1c", "us-east-1d"]);

    // Three wanted, two can host: the error says which were left out and why.
    let mut m = MockEc2Api::new();
    m.expect_describe_zones().returning(move || Ok(zones.clone()));
    m.expect_instance_type_zone_ids().returning(|_| Ok(vec!["use1-az1".into(), "use1-az2".into(), "use1-az3".into()]));
    m.expect_describe_vpcs().returning(|_| Ok(vec![]));
    let spec = NetworkSpec { node_instance_types: vec!["m7g.xlarge".into()], ..new_spec(|n| n.az_count = 3) };
    let err = NetworkProvisioner::new(m).plan(&ctx, &spec).await.unwrap_err().to_string();
    assert!(err.contains("us-east-1a (use1-az3): EKS does not place control planes there"), "{err}");
    assert!(err.contains("us-east-1b (use1-az5): m7g.xlarge is not offered there"), "{err}");
}

#[tokio::test]
async fn a_nat_create_that_failed_is_retried_with_the_same_token_and_yields_one_gateway() {
    let spec = test_spec();
    let mut world = converged(&spec);
    let lost = world.nats.remove(1);
    world.route_tables.retain(|t| !t.routes.iter().any(|r| r.target == RouteTarget::NatGateway(lost.id.clone())));
    let mut m = reads(&world);
    // First attempt: the connection drops after AWS created the gateway. Second attempt with the
    // same token: AWS returns that same gateway (real idempotency semantics).
    let mut seq = mockall::Sequence::new();
    let token = std::sync::Arc::new(std::sync::Mutex::new(None::<String>));
    let t1 = token.clone();
    m.expect_create_nat_gateway().times(1).in_sequence(&mut seq).returning(move |_, _, tok, _| {
        *t1.lock().unwrap() = Some(tok);
        Err(AwsError::new("CreateNatGateway", "InternalError", "connection reset"))
    });
    let t2 = token.clone();
    let created = lost.clone();
    m.expect_create_nat_gateway().times(1).in_sequence(&mut seq).returning(move |subnet, eip, tok, tags| {
        assert_eq!(Some(tok), *t2.lock().unwrap(), "the retry reuses the client token");
        assert_eq!(subnet, created.subnet_id);
        assert_eq!(Some(eip), created.allocation_id);
        assert_eq!(tags.get("Name").map(String::as_str), Some("unit-nat-2"));
        Ok(NatInfo { state: NatState::Pending, ..created.clone() })
    });
    m.expect_wait_nat_gateways_available()
        .with(eq(vec![lost.id.clone()]), mockall::predicate::always())
        .times(1)
        .returning(|_, _| Ok(true));
    m.expect_create_route_table().times(1).returning(|vpc, tags| {
        Ok(RouteTableInfo { id: RouteTableId::new("rtb-new"), vpc_id: vpc, routes: vec![], associations: vec![], tags })
    });
    m.expect_create_route()
        .with(
            eq(RouteTableId::new("rtb-new")),
            eq("0.0.0.0/0".to_string()),
            eq(RouteTarget::NatGateway(lost.id.clone())),
        )
        .times(1)
        .returning(|_, _, _| Ok(()));
    m.expect_replace_route_table_association().times(0);
    m.expect_associate_route_table().times(1).returning(|_, _| Ok("rtbassoc-new".into()));
    let out = NetworkProvisioner::new(m).apply(&ctx(), &spec).await.unwrap();
    assert_eq!(out.nat_gateways.len(), 2);
    assert_eq!(out.nat_gateways[1].id, lost.id.as_str());
}

#[tokio::test(start_paused = true)]
async fn writes_naming_a_just_created_resource_are_retried_while_ec2_says_it_is_not_found() {
    // A private route table is missing; the new table is not visible to CreateRoute and
    // AssociateRouteTable for a moment (EC2 eventual consistency). The old code failed the node
    // on the first InvalidRouteTableID.NotFound.
    let spec = test_spec();
    let mut world = converged(&spec);
    let gone = world.route_tables.pop().unwrap();
    let mut m = reads(&world);
    m.expect_create_route_table().times(1).returning(|vpc, tags| {
        Ok(RouteTableInfo { id: RouteTableId::new("rtb-new"), vpc_id: vpc, routes: vec![], associations: vec![], tags })
    });
    let routes = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let r = routes.clone();
    m.expect_create_route().returning(move |_, _, _| {
        if r.fetch_add(1, std::sync::atomic::Ordering::SeqCst) < 2 {
            Err(AwsError::new(
                "CreateRoute",
                "InvalidRouteTableID.NotFound",
                "The routeTable ID 'rtb-new' does not exist",
            ))
        } else {
            Ok(())
        }
    });
    let assocs = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let a = assocs.clone();
    m.expect_associate_route_table().returning(move |_, _| {
        if a.fetch_add(1, std::sync::atomic::Ordering::SeqCst) < 1 {
            Err(AwsError::new("AssociateRouteTable", "InvalidRouteTableID.NotFound", "not yet"))
        } else {
            Ok("rtbassoc-new".into())
        }
    });
    let result = NetworkProvisioner::new(m).apply(&ctx(), &spec).await;
    assert_eq!(routes.load(std::sync::atomic::Ordering::SeqCst), 3, "two not-found answers, then the route");
    assert_eq!(assocs.load(std::sync::atomic::Ordering::SeqCst), gone.associations.len() + 1);
    result.unwrap();
}

#[tokio::test]
async fn a_failed_nat_is_replaced_without_allow_replace_and_with_a_fresh_token() {
    let spec = test_spec();
    let mut world = converged(&spec);
    world.nats[0].state = NatState::Failed;
    let failed = world.nats[0].clone();
    let mut m = reads(&world);
    m.checkpoint();
    // After the failed gateway is deleted, the next observation lists it as deleted.
    let mut after = world.clone();
    after.nats[0].state = NatState::Deleted;
    let zones = world.zones.clone();
    m.expect_describe_zones().returning(move || {
        Ok(zones
            .iter()
            .map(|z| ZoneInfo {
                name: z.clone(),
                id: format!("usw2-{z}"),
                available: true,
                zone_type: "availability-zone".into(),
            })
            .collect())
    });
    let w = world.clone();
    m.expect_describe_vpcs().returning(move |_| Ok(w.vpcs.clone()));
    m.expect_describe_vpc_dns().returning(|_| Ok(DnsAttributes { support: true, hostnames: true }));
    let w = world.clone();
    m.expect_describe_subnets().returning(move |_| Ok(w.subnets.clone()));
    let w = world.clone();
    m.expect_describe_internet_gateways().returning(move |_| Ok(w.igws.clone()));
    let w = world.clone();
    m.expect_describe_addresses().returning(move |_| Ok(w.eips.clone()));
    let mut seq = mockall::Sequence::new();
    let w = world.clone();
    m.expect_describe_nat_gateways().times(1).in_sequence(&mut seq).returning(move |_| Ok(w.nats.clone()));
    m.expect_delete_nat_gateway().with(eq(failed.id.clone())).times(1).in_sequence(&mut seq).returning(|_| Ok(()));
    m.expect_wait_nat_gateways_deleted().times(1).in_sequence(&mut seq).returning(|_, _| Ok(true));
    let a = after.clone();
    m.expect_describe_nat_gateways().times(1).in_sequence(&mut seq).returning(move |_| Ok(a.nats.clone()));
    let w = world.clone();
    m.expect_describe_route_tables().returning(move |_| Ok(w.route_tables.clone()));
    let replacement = NatInfo { id: NatGatewayId::new("nat-new"), state: NatState::Available, ..failed.clone() };
    // After creating, the run looks once more for twins: it sees its own replacement only.
    let mut settled = after.nats.clone();
    settled.push(replacement.clone());
    m.expect_describe_nat_gateways().times(1).in_sequence(&mut seq).returning(move |_| Ok(settled.clone()));
    m.expect_create_nat_gateway().times(1).returning(move |_, eip, token, _| {
        assert_eq!(token, format!("unit-nat-1-{eip}-1"), "a fresh token, not the failed gateway's");
        Ok(replacement.clone())
    });
    m.expect_replace_route().times(1).returning(|_, _, target| {
        assert_eq!(target, RouteTarget::NatGateway(NatGatewayId::new("nat-new")));
        Ok(())
    });
    let out = NetworkProvisioner::new(m).apply(&ctx(), &spec).await.unwrap();
    assert_eq!(out.nat_gateways[0].id, "nat-new");
}
