//! The tier over its own in-memory fake (`testing::FakeEc2`, the one the simulated-time
//! benchmark runs the stack on): apply from an empty account, then nothing left to do; the NAT
//! gateway wait on a clock where gateways take minutes; the output against what the account
//! holds. Where the mocked worlds (`world.rs`) are written by hand, here the provisioner reads
//! back what it made itself.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use dify_stack_core::sim::Sim;
use dify_stack_core::{Action, Context, Environment, Provisioner};
use tokio::time::Instant;

use super::{ctx, new_spec};
use crate::client::{Ec2Api, Filter, NatState, RouteTarget};
use crate::sdk::NAT_POLL_MAX;
use crate::spec::{NatMode, NetworkSpec};
use crate::testing::FakeEc2;
use crate::{NetworkOutput, NetworkProvisioner};

/// The stack's test profile: 2 AZs, one NAT gateway (`examples/config/test.toml`; the
/// dify-stack crate's profile test asserts `NatMode::Single`).
fn test_profile() -> NetworkSpec {
    let spec = new_spec(|n| n.nat = NatMode::Single);
    assert_eq!(spec.settings.new.az_count, 2);
    spec
}

/// The prod profile: 3 AZs, a NAT gateway per AZ.
fn prod_profile() -> NetworkSpec {
    let spec = NetworkSpec::for_environment(Environment::Prod, "unit");
    assert_eq!((spec.settings.new.az_count, spec.settings.new.nat), (3, NatMode::PerAz));
    spec
}

/// An empty account over `sim`, and a provisioner over it.
fn account(sim: Sim) -> (Arc<Sim>, FakeEc2, NetworkProvisioner) {
    let sim = Arc::new(sim);
    let ec2 = FakeEc2::new(sim.clone(), "us-west-2");
    (sim, ec2.clone(), NetworkProvisioner::new(ec2))
}

#[tokio::test(start_paused = true)]
async fn over_its_fake_the_test_and_prod_profiles_apply_from_empty_then_plan_and_write_nothing() {
    for (spec, azs, nats) in [(test_profile(), 2, 1), (prod_profile(), 3, 3)] {
        let (sim, ec2, p) = account(Sim::instant());
        let plan = p.plan(&ctx(), &spec).await.unwrap();
        // VPC, public and private subnets, IGW, EIPs, NAT gateways, public + private tables.
        assert_eq!(plan.summary().create, 1 + 2 * azs + 1 + 2 * nats + 1 + azs, "{plan}");
        assert!(plan.changes.iter().all(|c| c.action == Action::Create), "{plan}");
        assert_eq!(ec2.writes(), 0, "plan is read-only");

        let out = p.apply(&ctx(), &spec).await.unwrap();
        assert_eq!((out.public_subnets.len(), out.private_subnets.len()), (azs, azs), "{out:?}");
        assert_eq!(out.nat_gateways.len(), nats, "{out:?}");
        assert_eq!(out.private_route_tables.len(), azs, "{out:?}");
        let written = ec2.writes();
        assert!(written > 0);

        let again = p.plan(&ctx(), &spec).await.unwrap();
        assert!(again.is_empty(), "{again}");
        let calls = sim.calls();
        let second = p.apply(&ctx(), &spec).await.unwrap();
        assert!(sim.calls() > calls, "the second apply read the account");
        assert_eq!(ec2.writes(), written, "a converged apply writes nothing");
        assert_eq!(second, out);
    }
}

/// NAT gateways take minutes (here 60-150 s each, drawn per gateway): the apply waits until
/// every one is available, no longer than its poll schedule needs, and no route points at a
/// gateway that is still pending. Watched from outside through the same account every half
/// second of the paused clock: the route tables first, then the gateways (a gateway never goes
/// back to pending, so a route seen before its gateway's state is sound).
#[tokio::test(start_paused = true)]
async fn over_its_fake_apply_waits_for_the_nat_gateways_and_routes_to_them_only_once_available() {
    let dists =
        BTreeMap::from([("cheap_object".to_owned(), [1.0; 3]), ("nat_gateway".to_owned(), [60.0, 90.0, 150.0])]);
    let (sim, ec2, p) = account(Sim::new(dists, BTreeMap::new(), 7));
    // The default wait policy: the unit tests' `ctx()` gives up after 5 s.
    let ctx = Context::new("unit", Environment::Test, "us-west-2").unwrap();
    let spec = prod_profile();
    let start = Instant::now();
    let apply = tokio::spawn({
        let (p, ctx, spec) = (p.clone(), ctx.clone(), spec.clone());
        async move { p.apply(&ctx, &spec).await }
    });
    let (mut saw_pending, mut saw_nat_route) = (false, false);
    while !apply.is_finished() {
        tokio::time::sleep(Duration::from_millis(500)).await;
        let tables = ec2.describe_route_tables(Vec::new()).await.unwrap();
        let nats = ec2.describe_nat_gateways(Vec::new()).await.unwrap();
        saw_pending |= nats.iter().any(|n| n.state == NatState::Pending);
        for route in tables.iter().flat_map(|t| &t.routes) {
            if let RouteTarget::NatGateway(id) = &route.target {
                saw_nat_route = true;
                let nat = nats.iter().find(|n| &n.id == id).expect("a route to an unknown NAT gateway");
                assert_eq!(nat.state, NatState::Available, "a route to {id} at {:?}", start.elapsed());
            }
        }
    }
    let out = apply.await.unwrap().unwrap();
    let elapsed = start.elapsed();
    assert!(saw_pending && saw_nat_route, "the watch saw the gateways pending and the routes made");

    let drawn = &sim.sampled()["nat_gateway"];
    assert_eq!(drawn.len(), 3, "one gateway per AZ: {drawn:?}");
    let slowest = *drawn.iter().max().unwrap();
    assert!(slowest >= Duration::from_secs(60), "{drawn:?}");
    assert!(elapsed >= slowest, "apply ended after {elapsed:?}, before the slowest gateway ({slowest:?})");
    // After the slowest gateway: at most one poll pause, then the route tables (a few writes).
    assert!(elapsed < slowest + NAT_POLL_MAX + Duration::from_secs(30), "{elapsed:?} for {drawn:?}");
    let nats = ec2.describe_nat_gateways(Vec::new()).await.unwrap();
    assert!(nats.iter().all(|n| n.state == NatState::Available), "{nats:?}");
    assert_eq!(out.nat_gateways.len(), 3);
}

/// The output names what the account holds: the one VPC, its subnets by role (tagged for
/// public or internal load balancers), one per zone in distinct zones, the NAT gateways in the
/// public subnets, the public route table to the attached internet gateway, and each private
/// table to the NAT gateway of its subnet's zone (test profile: the single one).
#[tokio::test(start_paused = true)]
async fn over_its_fake_the_output_names_what_the_account_holds() {
    for (spec, azs) in [(test_profile(), 2), (prod_profile(), 3)] {
        let (_, ec2, p) = account(Sim::instant());
        let out: NetworkOutput = p.apply(&ctx(), &spec).await.unwrap();
        assert!(out.owned);

        let vpcs = ec2.describe_vpcs(Vec::new()).await.unwrap();
        assert_eq!(vpcs.len(), 1, "{vpcs:?}");
        assert_eq!((&out.vpc_id, out.vpc_cidr.as_str()), (&vpcs[0].id, "10.0.0.0/16"));
        assert_eq!(vpcs[0].cidr, out.vpc_cidr);
        let dns = ec2.describe_vpc_dns(out.vpc_id.clone()).await.unwrap();
        assert!(dns.support && dns.hostnames, "{dns:?}");

        let subnets = ec2.describe_subnets(vec![Filter::new("vpc-id", [out.vpc_id.as_str()])]).await.unwrap();
        assert_eq!(subnets.len(), 2 * azs, "{subnets:?}");
        let tagged = |key: &str| -> BTreeSet<(String, String, String)> {
            subnets
                .iter()
                .filter(|s| s.tags.get(key).is_some_and(|v| v == "1"))
                .map(|s| (s.id.to_string(), s.az.clone(), s.cidr.clone()))
                .collect()
        };
        let listed = |o: &[crate::SubnetOutput]| -> BTreeSet<(String, String, String)> {
            o.iter().map(|s| (s.id.to_string(), s.az.clone(), s.cidr.clone())).collect()
        };
        let (public, private) = (tagged("kubernetes.io/role/elb"), tagged("kubernetes.io/role/internal-elb"));
        assert_eq!(public.len(), azs);
        assert_eq!(listed(&out.public_subnets), public);
        assert_eq!(listed(&out.private_subnets), private);
        for role in [&out.public_subnets, &out.private_subnets] {
            let zones: BTreeSet<&str> = role.iter().map(|s| s.az.as_str()).collect();
            assert_eq!(zones.len(), azs, "one subnet per zone: {role:?}");
        }
        let cidrs = |o: &[crate::SubnetOutput]| o.iter().map(|s| s.cidr.clone()).collect::<Vec<_>>();
        let want = |first: usize| (first..first + azs).map(|i| format!("10.0.{i}.0/24")).collect::<Vec<_>>();
        assert_eq!((cidrs(&out.public_subnets), cidrs(&out.private_subnets)), (want(1), want(10)));

        let nats = ec2.describe_nat_gateways(vec![Filter::new("vpc-id", [out.vpc_id.as_str()])]).await.unwrap();
        let held: BTreeSet<String> = nats.iter().map(|n| n.id.to_string()).collect();
        assert_eq!(out.nat_gateways.iter().map(|n| n.id.clone()).collect::<BTreeSet<_>>(), held);
        for n in &out.nat_gateways {
            assert!(out.public_subnets.iter().any(|s| s.id == n.subnet_id), "{n:?} is in a public subnet");
            let held = nats.iter().find(|x| x.id.as_str() == n.id).unwrap();
            assert_eq!((&held.subnet_id, &held.public_ip), (&n.subnet_id, &n.public_ip));
        }

        let tables = ec2.describe_route_tables(vec![Filter::new("vpc-id", [out.vpc_id.as_str()])]).await.unwrap();
        assert_eq!(tables.len(), 1 + azs, "{tables:?}");
        let table = |id: &str| tables.iter().find(|t| t.id.as_str() == id).unwrap();
        let default_route = |id: &str| {
            let t = table(id);
            assert_eq!(t.routes.iter().filter(|r| r.destination == "0.0.0.0/0").count(), 1, "{t:?}");
            t.routes.iter().find(|r| r.destination == "0.0.0.0/0").unwrap().target.clone()
        };
        let associated =
            |id: &str| table(id).associations.iter().filter_map(|a| a.subnet_id.clone()).collect::<BTreeSet<_>>();

        let public_table = out.public_route_table.as_deref().expect("a public route table");
        let RouteTarget::Gateway(igw) = default_route(public_table) else { panic!("{:?}", table(public_table)) };
        let igws = ec2.describe_internet_gateways(vec![Filter::new("internet-gateway-id", [igw.as_str()])]);
        assert_eq!(igws.await.unwrap()[0].attached_vpcs, std::slice::from_ref(&out.vpc_id));
        assert_eq!(associated(public_table), out.public_subnets.iter().map(|s| s.id.clone()).collect());

        assert_eq!(out.private_route_tables.len(), azs);
        let mut private_associated = BTreeSet::new();
        for t in &out.private_route_tables {
            let RouteTarget::NatGateway(nat) = default_route(t) else { panic!("{:?}", table(t)) };
            let nat = out.nat_gateways.iter().find(|n| n.id == nat.as_str()).expect("a NAT gateway of the output");
            let subnets = associated(t);
            assert_eq!(subnets.len(), 1, "one private subnet per table: {:?}", table(t));
            let subnet = out.private_subnets.iter().find(|s| subnets.contains(&s.id)).expect("a private subnet");
            if spec.settings.new.nat == NatMode::PerAz {
                let nat_zone = &out.public_subnets.iter().find(|s| s.id == nat.subnet_id).unwrap().az;
                assert_eq!(&subnet.az, nat_zone, "a private subnet routes to its own zone's NAT gateway");
            }
            private_associated.extend(subnets);
        }
        assert_eq!(private_associated, out.private_subnets.iter().map(|s| s.id.clone()).collect());
    }
}
