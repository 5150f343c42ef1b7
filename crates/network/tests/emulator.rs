//! The network tier against the local AWS emulator, through the real SDK client.

use std::collections::BTreeMap;

use futures::StreamExt;

use aws_sdk_ec2::Client;
use aws_sdk_ec2::types::Filter;
use dify_stack_core::{Context, Environment, Provisioner, TAG_ID, TAG_STACK};
use dify_stack_emulator::Emulator;
use dify_stack_network::{
    ExistingVpcSpec, NatMode, NetworkError, NetworkProvisioner, NetworkSettings, NetworkSpec, NewVpcSpec,
};

struct World {
    ec2: Client,
    network: NetworkProvisioner,
}

async fn world() -> World {
    let account = Emulator::shared().expect("emulator").account("us-west-2").await;
    World { ec2: Client::new(&account.config), network: NetworkProvisioner::from_conf(&account.config) }
}

fn ctx(stack: &str, env: Environment) -> Context {
    Context::new(stack, env, "us-west-2").unwrap()
}

fn tag<'a>(tags: &'a [aws_sdk_ec2::types::Tag], key: &str) -> Option<&'a str> {
    tags.iter().find(|t| t.key() == Some(key)).and_then(|t| t.value())
}

/// Every EC2 network resource carrying the stack tag, counted by kind.
async fn inventory(ec2: &Client, stack: &str) -> BTreeMap<&'static str, usize> {
    let f = || Filter::builder().name(format!("tag:{TAG_STACK}")).values(stack).build();
    let mut inv = BTreeMap::new();
    inv.insert("vpc", ec2.describe_vpcs().filters(f()).send().await.unwrap().vpcs().len());
    inv.insert("subnet", ec2.describe_subnets().filters(f()).send().await.unwrap().subnets().len());
    inv.insert("igw", ec2.describe_internet_gateways().filters(f()).send().await.unwrap().internet_gateways().len());
    inv.insert("eip", ec2.describe_addresses().filters(f()).send().await.unwrap().addresses().len());
    inv.insert("route-table", ec2.describe_route_tables().filters(f()).send().await.unwrap().route_tables().len());
    // DescribeNatGateways ignores tag filters on the emulator: check the tag ourselves.
    let nats = ec2.describe_nat_gateways().send().await.unwrap();
    inv.insert(
        "nat",
        nats.nat_gateways()
            .iter()
            .filter(|n| tag(n.tags(), TAG_STACK) == Some(stack))
            .filter(|n| n.state().map(|s| s.as_str()) != Some("deleted"))
            .count(),
    );
    inv.retain(|_, n| *n > 0);
    inv
}

/// A bare VPC made through the SDK (not by the tier); its id.
async fn create_vpc(ec2: &Client, cidr: &str) -> String {
    let out = ec2.create_vpc().cidr_block(cidr).send().await.unwrap();
    out.vpc().and_then(|v| v.vpc_id()).unwrap().to_owned()
}

fn expected(azs: usize, nats: usize) -> BTreeMap<&'static str, usize> {
    BTreeMap::from([
        ("vpc", 1),
        ("subnet", 2 * azs),
        ("igw", 1),
        ("eip", nats),
        ("nat", nats),
        ("route-table", 1 + azs),
    ])
}

async fn check_topology(w: &World, stack: &str, azs: usize, nat: NatMode) {
    let ctx = ctx(stack, Environment::Test);
    let spec = NetworkSpec {
        cluster_name: stack.into(),
        settings: NetworkSettings::new_vpc(NewVpcSpec { az_count: azs as u8, nat, ..Default::default() }),
        // The zones must offer the node type (DescribeInstanceTypeOfferings by zone ID).
        node_instance_types: vec!["m7g.xlarge".into()],
    };
    let out = w.network.apply(&ctx, &spec).await.unwrap();
    let nat_count = if nat == NatMode::Single { 1 } else { azs };
    assert_eq!(inventory(&w.ec2, stack).await, expected(azs, nat_count));

    // VPC: CIDR and DNS attributes.
    assert_eq!(out.vpc_cidr, "10.0.0.0/16");
    for attr in [
        aws_sdk_ec2::types::VpcAttributeName::EnableDnsSupport,
        aws_sdk_ec2::types::VpcAttributeName::EnableDnsHostnames,
    ] {
        let a =
            w.ec2.describe_vpc_attribute().vpc_id(out.vpc_id.as_str()).attribute(attr.clone()).send().await.unwrap();
        let on = a.enable_dns_support().or(a.enable_dns_hostnames()).and_then(|v| v.value());
        assert_eq!(on, Some(true), "{attr:?}");
    }

    // Subnets: STACK.md CIDRs, distinct AZs in name order, Kubernetes tags.
    let zones: Vec<String> = out.public_subnets.iter().map(|s| s.az.clone()).collect();
    let mut sorted = zones.clone();
    sorted.sort();
    sorted.dedup();
    assert_eq!(zones, sorted, "one AZ per subnet, in name order");
    assert_eq!(zones.len(), azs);
    let cidrs = |subs: &[dify_stack_network::SubnetOutput]| subs.iter().map(|s| s.cidr.clone()).collect::<Vec<_>>();
    let public: Vec<String> = (1..=azs).map(|i| format!("10.0.{i}.0/24")).collect();
    let private: Vec<String> = (10..10 + azs).map(|i| format!("10.0.{i}.0/24")).collect();
    assert_eq!(cidrs(&out.public_subnets), public);
    assert_eq!(cidrs(&out.private_subnets), private);
    assert_eq!(out.private_subnets.iter().map(|s| s.az.clone()).collect::<Vec<_>>(), zones);
    let subnets = w
        .ec2
        .describe_subnets()
        .filters(Filter::builder().name("vpc-id").values(out.vpc_id.as_str()).build())
        .send()
        .await
        .unwrap();
    for s in subnets.subnets() {
        let public = s.cidr_block().unwrap().split('.').nth(2).unwrap().parse::<u8>().unwrap() < 10;
        let role = if public { "kubernetes.io/role/elb" } else { "kubernetes.io/role/internal-elb" };
        assert_eq!(tag(s.tags(), role), Some("1"), "{:?}", s.cidr_block());
        assert_eq!(tag(s.tags(), &format!("kubernetes.io/cluster/{stack}")), Some("shared"));
        assert_eq!(tag(s.tags(), TAG_STACK), Some(stack));
        assert_eq!(tag(s.tags(), "dify-stack:tier"), Some("network"));
    }

    // Routes: public -> IGW; private subnet i -> NAT in its own AZ (or the single NAT).
    assert_eq!(out.nat_gateways.len(), nat_count);
    let tables = w
        .ec2
        .describe_route_tables()
        .filters(Filter::builder().name("vpc-id").values(out.vpc_id.as_str()).build())
        .send()
        .await
        .unwrap();
    let table_of = |subnet: &str| {
        tables
            .route_tables()
            .iter()
            .find(|t| t.associations().iter().any(|a| a.subnet_id() == Some(subnet)))
            .unwrap_or_else(|| panic!("{subnet} has no route table"))
    };
    let default_route = |t: &aws_sdk_ec2::types::RouteTable| {
        t.routes().iter().find(|r| r.destination_cidr_block() == Some("0.0.0.0/0")).cloned().expect("default route")
    };
    for s in &out.public_subnets {
        assert!(default_route(table_of(s.id.as_str())).gateway_id().unwrap().starts_with("igw-"));
    }
    for (i, s) in out.private_subnets.iter().enumerate() {
        let nat = default_route(table_of(s.id.as_str())).nat_gateway_id().unwrap().to_owned();
        let expected_nat = &out.nat_gateways[if nat_count == 1 { 0 } else { i }];
        assert_eq!(nat, expected_nat.id);
        // The NAT lives in the public subnet of the same AZ.
        let nat_subnet = out.public_subnets.iter().find(|p| p.id == expected_nat.subnet_id).unwrap();
        if nat_count > 1 {
            assert_eq!(nat_subnet.az, s.az);
        }
        assert!(expected_nat.public_ip.is_some());
    }

    // Second apply is a no-op: empty plan, no new resources, same output.
    assert!(w.network.plan(&ctx, &spec).await.unwrap().is_empty(), "{}", w.network.plan(&ctx, &spec).await.unwrap());
    let again = w.network.apply(&ctx, &spec).await.unwrap();
    assert_eq!(again, out);
    assert_eq!(inventory(&w.ec2, stack).await, expected(azs, nat_count));

    // Destroy leaves nothing with the stack tag; destroying again is fine.
    let deleted = w.network.destroy(&ctx, &spec).await.unwrap();
    assert_eq!(deleted.len(), expected(azs, nat_count).values().sum::<usize>());
    assert!(inventory(&w.ec2, stack).await.is_empty());
    assert!(w.network.destroy(&ctx, &spec).await.unwrap().is_empty());
}

#[tokio::test]
async fn test_profile_two_azs_nat_per_az() {
    check_topology(&world().await, "net-test", 2, NatMode::PerAz).await;
}

#[tokio::test]
async fn prod_profile_three_azs_nat_per_az() {
    check_topology(&world().await, "net-prod", 3, NatMode::PerAz).await;
}

#[tokio::test]
async fn single_nat_for_all_private_subnets() {
    check_topology(&world().await, "net-single", 2, NatMode::Single).await;
}

#[tokio::test]
async fn plan_lists_every_resource_before_the_first_apply_and_writes_nothing() {
    let w = world().await;
    let ctx = ctx("net-plan", Environment::Prod);
    let spec = NetworkSpec::for_environment(Environment::Prod, "net-plan");
    let plan = w.network.plan(&ctx, &spec).await.unwrap();
    // vpc + 6 subnets + igw + 3 eips + 3 nats + 4 route tables
    assert_eq!(plan.summary().create, 18, "{plan}");
    assert!(inventory(&w.ec2, "net-plan").await.is_empty());
}

#[tokio::test]
async fn switching_to_a_single_nat_removes_the_extra_gateways() {
    let w = world().await;
    let ctx = ctx("net-switch", Environment::Test);
    let mut spec = NetworkSpec::for_environment(Environment::Test, "net-switch");
    w.network.apply(&ctx, &spec).await.unwrap();
    spec.settings.new.nat = NatMode::Single;
    let plan = w.network.plan(&ctx, &spec).await.unwrap();
    assert_eq!(plan.summary().delete, 2, "extra NAT and its EIP:\n{plan}");
    let out = w.network.apply(&ctx, &spec).await.unwrap();
    assert_eq!(out.nat_gateways.len(), 1);
    assert_eq!(inventory(&w.ec2, "net-switch").await, expected(2, 1));
    assert!(w.network.plan(&ctx, &spec).await.unwrap().is_empty());
    w.network.destroy(&ctx, &spec).await.unwrap();
    assert!(inventory(&w.ec2, "net-switch").await.is_empty());
}

#[tokio::test]
async fn drift_is_planned_and_repaired() {
    let w = world().await;
    let ctx = ctx("net-drift", Environment::Test);
    let spec = NetworkSpec::for_environment(Environment::Test, "net-drift");
    let out = w.network.apply(&ctx, &spec).await.unwrap();
    // Someone turns DNS hostnames off and deletes a Kubernetes tag and a private default route.
    w.ec2
        .modify_vpc_attribute()
        .vpc_id(out.vpc_id.as_str())
        .enable_dns_hostnames(aws_sdk_ec2::types::AttributeBooleanValue::builder().value(false).build())
        .send()
        .await
        .unwrap();
    w.ec2
        .delete_tags()
        .resources(out.private_subnets[0].id.as_str())
        .tags(aws_sdk_ec2::types::Tag::builder().key("kubernetes.io/role/internal-elb").build())
        .send()
        .await
        .unwrap();
    w.ec2
        .delete_route()
        .route_table_id(&out.private_route_tables[1])
        .destination_cidr_block("0.0.0.0/0")
        .send()
        .await
        .unwrap();
    let plan = w.network.plan(&ctx, &spec).await.unwrap();
    let text = plan.to_string();
    assert_eq!(plan.summary().update, 3, "{text}");
    assert!(text.contains("enable_dns_hostnames: \"false\" -> \"true\""), "{text}");
    assert!(text.contains("tags.kubernetes.io/role/internal-elb: (none) -> \"1\""), "{text}");
    assert!(text.contains("routes[0.0.0.0/0]: (none) -> \"nat-"), "{text}");
    w.network.apply(&ctx, &spec).await.unwrap();
    assert!(w.network.plan(&ctx, &spec).await.unwrap().is_empty());
    w.network.destroy(&ctx, &spec).await.unwrap();
}

#[tokio::test]
async fn a_changed_vpc_cidr_is_a_replacement_refused_unless_allowed() {
    let w = world().await;
    let ctx = ctx("net-replace", Environment::Test);
    let spec = NetworkSpec::for_environment(Environment::Test, "net-replace");
    w.network.apply(&ctx, &spec).await.unwrap();
    let mut changed = spec.clone();
    changed.settings.new.cidr = "10.1.0.0/16".parse().unwrap();
    let plan = w.network.plan(&ctx, &changed).await.unwrap();
    assert!(plan.has_replacements(), "{plan}");
    let err = w.network.apply(&ctx, &changed).await.unwrap_err();
    assert!(matches!(err, NetworkError::ReplacementRefused { .. }), "{err}");
    assert_eq!(inventory(&w.ec2, "net-replace").await, expected(2, 2), "nothing was touched");

    let allowed =
        ctx.clone().with_permissions(dify_stack_core::Permissions { allow_replace: true, ..Default::default() });
    let out = w.network.apply(&allowed, &changed).await.unwrap();
    assert_eq!(out.vpc_cidr, "10.1.0.0/16");
    assert_eq!(out.private_subnets[0].cidr, "10.1.10.0/24");
    assert_eq!(inventory(&w.ec2, "net-replace").await, expected(2, 2));
    w.network.destroy(&ctx, &changed).await.unwrap();
}

#[tokio::test]
async fn a_same_named_vpc_of_someone_else_is_not_owned() {
    let w = world().await;
    w.ec2
        .create_vpc()
        .cidr_block("10.0.0.0/16")
        .tag_specifications(
            aws_sdk_ec2::types::TagSpecification::builder()
                .resource_type(aws_sdk_ec2::types::ResourceType::Vpc)
                .tags(aws_sdk_ec2::types::Tag::builder().key("Name").value("net-foreign-vpc").build())
                .build(),
        )
        .send()
        .await
        .unwrap();
    let ctx = ctx("net-foreign", Environment::Test);
    let spec = NetworkSpec::for_environment(Environment::Test, "net-foreign");
    let err = w.network.apply(&ctx, &spec).await.unwrap_err();
    assert!(matches!(err, NetworkError::NotOwned { .. }), "{err}");
    assert!(w.network.destroy(&ctx, &spec).await.unwrap().is_empty(), "destroy never touches it");
    assert_eq!(
        w.ec2
            .describe_vpcs()
            .filters(Filter::builder().name("tag:Name").values("net-foreign-vpc").build())
            .send()
            .await
            .unwrap()
            .vpcs()
            .len(),
        1
    );
}

#[tokio::test]
async fn existing_vpc_is_validated_tagged_on_request_and_never_deleted() {
    let w = world().await;
    let vpc = create_vpc(&w.ec2, "172.16.0.0/16").await;
    let zones = w.ec2.describe_availability_zones().send().await.unwrap();
    let zone = |i: usize| zones.availability_zones()[i].zone_name().unwrap().to_owned();
    let subnet = |cidr: &'static str, az: String| {
        let ec2 = w.ec2.clone();
        let vpc = vpc.clone();
        async move {
            ec2.create_subnet()
                .vpc_id(vpc)
                .cidr_block(cidr)
                .availability_zone(az)
                .send()
                .await
                .unwrap()
                .subnet()
                .unwrap()
                .subnet_id()
                .unwrap()
                .to_owned()
        }
    };
    let p1 = subnet("172.16.1.0/24", zone(0)).await;
    let p2 = subnet("172.16.2.0/24", zone(1)).await;
    let p3 = subnet("172.16.3.0/24", zone(0)).await;
    let pub1 = subnet("172.16.101.0/24", zone(0)).await;
    let ctx = ctx("net-byo", Environment::Test);
    let mk = |private: Vec<&String>, tag_subnets: bool| NetworkSpec {
        cluster_name: "net-byo".into(),
        settings: NetworkSettings::existing_vpc(ExistingVpcSpec {
            vpc_id: vpc.as_str().into(),
            private_subnet_ids: private.into_iter().map(|s| s.as_str().into()).collect(),
            public_subnet_ids: vec![pub1.as_str().into()],
            tag_subnets,
        }),
        node_instance_types: Vec::new(),
    };

    // Two private subnets in one AZ are rejected with the path.
    let err = w.network.apply(&ctx, &mk(vec![&p1, &p3], false)).await.unwrap_err();
    match &err {
        NetworkError::ExistingVpc(errors) => assert_eq!(errors.paths(), vec!["existing.private_subnet_ids"]),
        other => panic!("{other}"),
    }
    // A subnet that does not exist.
    let missing = "subnet-0123456789abcdef0".to_owned();
    let err = w.network.apply(&ctx, &mk(vec![&p1, &missing], false)).await.unwrap_err();
    assert!(err.to_string().contains("existing.private_subnet_ids[1]"), "{err}");

    // Without tag_subnets nothing is written.
    let spec = mk(vec![&p1, &p2], false);
    assert!(w.network.plan(&ctx, &spec).await.unwrap().is_empty());
    let out = w.network.apply(&ctx, &spec).await.unwrap();
    assert!(!out.owned);
    assert_eq!(out.private_subnets.iter().map(|s| s.id.as_str()).collect::<Vec<_>>(), vec![p1.as_str(), p2.as_str()]);

    // With tag_subnets the discovery tags are planned, added, and then converged.
    let spec = mk(vec![&p1, &p2], true);
    assert_eq!(w.network.plan(&ctx, &spec).await.unwrap().summary().update, 3);
    w.network.apply(&ctx, &spec).await.unwrap();
    assert!(w.network.plan(&ctx, &spec).await.unwrap().is_empty());
    let s = w.ec2.describe_subnets().subnet_ids(&p1).send().await.unwrap();
    assert_eq!(tag(s.subnets()[0].tags(), "kubernetes.io/role/internal-elb"), Some("1"));

    // Destroy deletes nothing of it.
    assert!(w.network.destroy(&ctx, &spec).await.unwrap().is_empty());
    assert_eq!(
        w.ec2
            .describe_subnets()
            .filters(Filter::builder().name("vpc-id").values(&vpc).build())
            .send()
            .await
            .unwrap()
            .subnets()
            .len(),
        4
    );
}

/// Crash at every call: count the N requests of a clean apply, then for every k in 1..N let k
/// requests through and cut the rest (alternately before they reach the emulator and after it
/// applied them, with the response lost), run apply again without faults, and require the same
/// inventory as the clean run: no duplicate VPC, subnet, EIP, NAT gateway or route table, no leak.
#[tokio::test]
async fn apply_resumes_after_a_crash_at_every_call() {
    use dify_stack_emulator::Cut;
    let emulator = Emulator::shared().unwrap();
    let spec = NetworkSpec::for_environment(Environment::Test, "net-crash");
    // Retries of transient errors give up soon (after the crash point every request fails), yet
    // waits outlast the strict emulator's pending states (NAT gateways are `pending` for 0.3 s).
    let ctx = ctx("net-crash", Environment::Test).with_wait(dify_stack_core::WaitPolicy {
        initial_interval: std::time::Duration::from_millis(5),
        max_interval: std::time::Duration::from_millis(50),
        max_wait: std::time::Duration::from_secs(3),
        ..Default::default()
    });

    let clean = emulator.account("us-west-2").await;
    let network = NetworkProvisioner::from_conf(&clean.config);
    let before = clean.calls.count();
    network.apply(&ctx, &spec).await.unwrap();
    let n = clean.calls.count() - before;
    assert!(n > 10, "a clean apply makes {n} requests");
    eprintln!("clean apply of the test profile: {n} requests, {} crash points", n - 1);
    let want = inventory(&Client::new(&clean.config), "net-crash").await;
    assert_eq!(want, expected(2, 2));

    // The runs after the crash wait as a real run would: the short deadline above is for the
    // crashed run only (four accounts work at once, and a loaded machine can stretch the
    // emulator's pending states past 3 s).
    let healed = ctx.clone().with_wait(dify_stack_core::WaitPolicy {
        initial_interval: std::time::Duration::from_millis(5),
        max_interval: std::time::Duration::from_millis(100),
        max_wait: std::time::Duration::from_secs(60),
        ..Default::default()
    });

    // Cut points run four at a time, each in its own account.
    let (crash_ctx, ctx, spec, want) = (&ctx, &healed, &spec, &want);
    let runs = (1..n).map(|k| async move {
        let account = emulator.account("us-west-2").await;
        let network = NetworkProvisioner::from_conf(&account.config);
        let cut = if k % 2 == 0 { Cut::AfterSend } else { Cut::BeforeSend };
        account.calls.crash_after(k, cut);
        let crashed = network.apply(crash_ctx, spec).await;
        assert!(crashed.is_err(), "k={k}: apply cannot succeed with only {k} of {n} requests");
        account.calls.heal();
        network.apply(ctx, spec).await.unwrap_or_else(|e| panic!("k={k} {cut:?}: resume failed: {e}"));
        let ec2 = Client::new(&account.config);
        assert_eq!(&inventory(&ec2, "net-crash").await, want, "k={k} {cut:?}");
        assert!(network.plan(ctx, spec).await.unwrap().is_empty(), "k={k}");
        network.destroy(ctx, spec).await.unwrap();
        assert!(inventory(&ec2, "net-crash").await.is_empty(), "k={k}: destroy leaves nothing");
    });
    let done: Vec<()> = futures::stream::iter(runs).buffer_unordered(4).collect().await;
    assert_eq!(done.len(), n - 1);
}

/// A no-op apply reads each kind of resource once, in batch, and writes nothing.
#[tokio::test]
async fn a_no_op_apply_is_nine_batched_reads() {
    let account = Emulator::shared().unwrap().account("us-west-2").await;
    let network = NetworkProvisioner::from_conf(&account.config);
    let ctx = ctx("net-noop", Environment::Prod);
    let spec = NetworkSpec::for_environment(Environment::Prod, "net-noop");
    network.apply(&ctx, &spec).await.unwrap();
    let before = account.calls.count();
    network.apply(&ctx, &spec).await.unwrap();
    // zones, VPC, 2 x VPC DNS attribute, subnets, IGWs, EIPs, NAT gateways, route tables:
    // the same 9 for 3 AZs as for 2, because every describe is batched by tag or VPC.
    assert_eq!(account.calls.count() - before, 9);
}

#[tokio::test]
async fn apply_core_makes_the_vpc_and_subnets_only_and_apply_finishes_the_rest() {
    let account = Emulator::shared().unwrap().account("us-west-2").await;
    let (network, ec2) = (NetworkProvisioner::from_conf(&account.config), Client::new(&account.config));
    let ctx = ctx("net-core", Environment::Prod);
    let spec = NetworkSpec::for_environment(Environment::Prod, "net-core");
    let core = network.apply_core(&ctx, &spec).await.unwrap();
    // What the data stores and the node security group need, and nothing that takes minutes.
    assert_eq!(inventory(&ec2, "net-core").await, BTreeMap::from([("vpc", 1), ("subnet", 6)]));
    assert_eq!((core.private_subnets.len(), core.public_subnets.len()), (3, 3));
    assert!(core.nat_gateways.is_empty() && core.public_route_table.is_none());
    // The whole apply keeps the VPC and subnets core made and adds the rest.
    let full = network.apply(&ctx, &spec).await.unwrap();
    assert_eq!(inventory(&ec2, "net-core").await, expected(3, 3));
    assert_eq!((full.vpc_id, full.private_subnets), (core.vpc_id, core.private_subnets));
    // Converged: core again writes nothing.
    account.calls.reset();
    network.apply_core(&ctx, &spec).await.unwrap();
    let calls = account.calls.by_operation();
    assert!(
        !calls.is_empty() && calls.keys().all(|op| op.contains("Describe")),
        "core on a converged network: {calls:?}"
    );
    network.destroy(&ctx, &spec).await.unwrap();
    assert!(inventory(&ec2, "net-core").await.is_empty());
}

#[tokio::test]
async fn a_twin_vpc_without_subnets_is_removed_and_the_one_in_use_is_kept_whatever_their_ids() {
    let account = Emulator::shared().unwrap().account("us-west-2").await;
    let (network, ec2) = (NetworkProvisioner::from_conf(&account.config), Client::new(&account.config));
    let ctx = ctx("net-twin", Environment::Test);
    let spec = NetworkSpec::for_environment(Environment::Test, "net-twin");
    let core = network.apply_core(&ctx, &spec).await.unwrap();
    // A twin as a retried CreateVpc makes it (same tags, no subnets), with an id that sorts
    // before the one in use: the order a plain "lowest id" choice would get wrong.
    let used = ec2.describe_vpcs().vpc_ids(core.vpc_id.as_str()).send().await.unwrap();
    let tags = used.vpcs()[0].tags().to_vec();
    let twin = loop {
        let v = create_vpc(&ec2, "10.0.0.0/16").await;
        if v.as_str() < core.vpc_id.as_str() {
            break v;
        }
        ec2.delete_vpc().vpc_id(v).send().await.unwrap();
    };
    ec2.create_tags().resources(&twin).set_tags(Some(tags)).send().await.unwrap();
    let full = network.apply(&ctx, &spec).await.unwrap();
    assert_eq!(full.vpc_id, core.vpc_id, "the VPC holding the subnets is kept");
    let left = ec2.describe_vpcs().vpc_ids(&twin).send().await;
    assert!(left.map_or(true, |o| o.vpcs().is_empty()), "the empty twin is deleted");
    assert_eq!(inventory(&ec2, "net-twin").await, expected(2, 2));
    network.destroy(&ctx, &spec).await.unwrap();
}

/// Every network resource carrying the stack tag: (kind, AWS id, tags). Elastic IPs by
/// allocation id; NAT gateways (whose tag filter the emulator ignores) checked here, deleted ones
/// left out.
async fn owned(ec2: &Client, stack: &str) -> Vec<(&'static str, String, BTreeMap<String, String>)> {
    let f = || Filter::builder().name(format!("tag:{TAG_STACK}")).values(stack).build();
    let map = |tags: &[aws_sdk_ec2::types::Tag]| -> BTreeMap<String, String> {
        tags.iter()
            .map(|t| (t.key().unwrap_or_default().to_owned(), t.value().unwrap_or_default().to_owned()))
            .collect()
    };
    let mut out = Vec::new();
    for v in ec2.describe_vpcs().filters(f()).send().await.unwrap().vpcs() {
        out.push(("vpc", v.vpc_id().unwrap().to_owned(), map(v.tags())));
    }
    for s in ec2.describe_subnets().filters(f()).send().await.unwrap().subnets() {
        out.push(("subnet", s.subnet_id().unwrap().to_owned(), map(s.tags())));
    }
    for g in ec2.describe_internet_gateways().filters(f()).send().await.unwrap().internet_gateways() {
        out.push(("igw", g.internet_gateway_id().unwrap().to_owned(), map(g.tags())));
    }
    for a in ec2.describe_addresses().filters(f()).send().await.unwrap().addresses() {
        out.push(("eip", a.allocation_id().unwrap().to_owned(), map(a.tags())));
    }
    for t in ec2.describe_route_tables().filters(f()).send().await.unwrap().route_tables() {
        out.push(("route-table", t.route_table_id().unwrap().to_owned(), map(t.tags())));
    }
    for n in ec2.describe_nat_gateways().send().await.unwrap().nat_gateways() {
        let live = n.state().map(|s| s.as_str()) != Some("deleted");
        if live && tag(n.tags(), TAG_STACK) == Some(stack) {
            out.push(("nat", n.nat_gateway_id().unwrap().to_owned(), map(n.tags())));
        }
    }
    out
}

/// How many resources carry each logical id (`dify-stack:id`); none may carry it twice.
async fn by_logical_id(ec2: &Client, stack: &str) -> BTreeMap<String, usize> {
    let mut out = BTreeMap::new();
    for (_, _, tags) in owned(ec2, stack).await {
        *out.entry(tags.get(TAG_ID).cloned().unwrap_or_default()).or_insert(0) += 1;
    }
    out
}

/// The logical ids of the test profile (2 AZs, a NAT gateway per AZ).
fn test_profile_ids() -> BTreeMap<String, usize> {
    [
        "network/vpc",
        "network/subnet/public-1",
        "network/subnet/public-2",
        "network/subnet/private-1",
        "network/subnet/private-2",
        "network/internet-gateway",
        "network/eip/1",
        "network/eip/2",
        "network/nat/1",
        "network/nat/2",
        "network/route-table/public",
        "network/route-table/private-1",
        "network/route-table/private-2",
    ]
    .into_iter()
    .map(|id| (id.to_owned(), 1))
    .collect()
}

/// Issue 28: the VPC's `Name` edited in the console made the next plan show the whole stack as
/// new. Now the VPC, a subnet, a route table, both gateways and an address renamed with the EC2
/// API directly (the tier makes no security group) are one tag update each and nothing else;
/// apply writes the names back; nothing is duplicated; destroy leaves nothing.
#[tokio::test]
async fn names_edited_in_the_console_are_tag_updates_and_nothing_is_duplicated() {
    let w = world().await;
    let stack = "net-rename";
    let ctx = ctx(stack, Environment::Test);
    let spec = NetworkSpec::for_environment(Environment::Test, stack);
    let out = w.network.apply(&ctx, &spec).await.unwrap();
    assert_eq!(by_logical_id(&w.ec2, stack).await, test_profile_ids());

    let all = owned(&w.ec2, stack).await;
    let of = |id: &str| all.iter().find(|(_, _, t)| t.get(TAG_ID).map(String::as_str) == Some(id)).unwrap().1.clone();
    let renamed = [
        ("ec2:vpc", out.vpc_id.to_string(), "net-rename-vpc"),
        ("ec2:subnet", out.private_subnets[0].id.to_string(), "net-rename-private-1"),
        ("ec2:route-table", out.private_route_tables[0].clone(), "net-rename-private-1"),
        ("ec2:internet-gateway", of("network/internet-gateway"), "net-rename-igw"),
        ("ec2:nat-gateway", out.nat_gateways[0].id.clone(), "net-rename-nat-1"),
        ("ec2:elastic-ip", of("network/eip/2"), "net-rename-nat-2"),
    ];
    for (_, id, _) in &renamed {
        w.ec2
            .create_tags()
            .resources(id)
            .tags(aws_sdk_ec2::types::Tag::builder().key("Name").value(format!("edited-{id}")).build())
            .send()
            .await
            .unwrap();
    }

    let plan = w.network.plan(&ctx, &spec).await.unwrap();
    let mut shown: Vec<(String, String, String, Vec<String>)> = plan
        .changes
        .iter()
        .map(|c| {
            let fields = c.fields.iter().map(|f| format!("{}: {:?} -> {:?}", f.path, f.before, f.after)).collect();
            (c.resource.kind.clone(), c.resource.id.clone().unwrap_or_default(), format!("{:?}", c.action), fields)
        })
        .collect();
    shown.sort();
    let mut want: Vec<(String, String, String, Vec<String>)> = renamed
        .iter()
        .map(|(kind, id, name)| {
            let field = format!("tags.Name: {:?} -> {:?}", Some(format!("edited-{id}")), Some(name.to_string()));
            (kind.to_string(), id.clone(), "Update".to_owned(), vec![field])
        })
        .collect();
    want.sort();
    assert_eq!(shown, want, "one tag update each, nothing else:\n{plan}");

    let again = w.network.apply(&ctx, &spec).await.unwrap();
    assert_eq!(again, out, "the same resources");
    assert!(w.network.plan(&ctx, &spec).await.unwrap().is_empty(), "{}", w.network.plan(&ctx, &spec).await.unwrap());
    assert_eq!(inventory(&w.ec2, stack).await, expected(2, 2), "nothing duplicated");
    assert_eq!(by_logical_id(&w.ec2, stack).await, test_profile_ids());
    for (_, id, name) in &renamed {
        let all = owned(&w.ec2, stack).await;
        let tags = &all.iter().find(|(_, x, _)| x == id).unwrap().2;
        assert_eq!(tags.get("Name").map(String::as_str), Some(*name), "{id}");
    }

    w.network.destroy(&ctx, &spec).await.unwrap();
    assert!(inventory(&w.ec2, stack).await.is_empty());
}

/// A stack made before logical ids (its resources carry every tag but `dify-stack:id`) keeps
/// working: the plan adds the logical id to each resource once, apply writes it, nothing is
/// created beside them, and the next plan is empty.
#[tokio::test]
async fn resources_made_before_logical_ids_are_adopted_once_not_duplicated() {
    let w = world().await;
    let stack = "net-legacy";
    let ctx = ctx(stack, Environment::Test);
    let spec = NetworkSpec::for_environment(Environment::Test, stack);
    let out = w.network.apply(&ctx, &spec).await.unwrap();
    let before = owned(&w.ec2, stack).await;
    assert_eq!(before.len(), 13);
    for (_, id, _) in &before {
        w.ec2
            .delete_tags()
            .resources(id)
            .tags(aws_sdk_ec2::types::Tag::builder().key(TAG_ID).build())
            .send()
            .await
            .unwrap();
    }
    assert_eq!(by_logical_id(&w.ec2, stack).await, BTreeMap::from([(String::new(), 13)]));

    let plan = w.network.plan(&ctx, &spec).await.unwrap();
    assert_eq!(plan.summary().update, 13, "{plan}");
    assert_eq!(plan.changes.len(), 13, "{plan}");
    for c in &plan.changes {
        let fields: Vec<&str> = c.fields.iter().map(|f| f.path.as_str()).collect();
        assert_eq!(fields, [format!("tags.{TAG_ID}")], "{plan}");
    }
    assert_eq!(w.network.apply(&ctx, &spec).await.unwrap(), out, "the same resources");
    assert!(w.network.plan(&ctx, &spec).await.unwrap().is_empty());
    assert_eq!(inventory(&w.ec2, stack).await, expected(2, 2), "nothing duplicated");
    assert_eq!(by_logical_id(&w.ec2, stack).await, test_profile_ids());
    let after: Vec<String> = owned(&w.ec2, stack).await.into_iter().map(|(_, id, _)| id).collect();
    assert!(before.iter().all(|(_, id, _)| after.contains(id)), "every resource kept its AWS id");

    w.network.destroy(&ctx, &spec).await.unwrap();
    assert!(inventory(&w.ec2, stack).await.is_empty());
}

/// Issue 28: destroy retried a refused delete for over thirteen minutes. A subnet someone else
/// made in the stack's VPC holds the VPC (DeleteVpc answers DependencyViolation): destroy deletes
/// everything of the stack's, asks DeleteVpc once, and ends with an error naming the subnet.
/// Once that subnet is gone, destroy again finishes.
#[tokio::test]
async fn a_vpc_held_by_a_subnet_of_someone_else_ends_destroy_at_once_with_the_subnet_named() {
    let account = Emulator::shared().unwrap().account("us-west-2").await;
    let (network, ec2) = (NetworkProvisioner::from_conf(&account.config), Client::new(&account.config));
    let stack = "net-held";
    let ctx = ctx(stack, Environment::Test);
    let spec = NetworkSpec::for_environment(Environment::Test, stack);
    let out = network.apply(&ctx, &spec).await.unwrap();
    let theirs = ec2
        .create_subnet()
        .vpc_id(out.vpc_id.as_str())
        .cidr_block("10.0.200.0/24")
        .send()
        .await
        .unwrap()
        .subnet()
        .unwrap()
        .subnet_id()
        .unwrap()
        .to_owned();

    // The VPC's network interfaces, as destroy's error names those that outlive it.
    let enis = || async {
        ec2.describe_network_interfaces()
            .filters(Filter::builder().name("vpc-id").values(out.vpc_id.as_str()).build())
            .send()
            .await
            .unwrap()
            .network_interfaces()
            .iter()
            .map(|e| format!("network interface {} (available, not the stack's)", e.network_interface_id().unwrap()))
            .collect::<Vec<String>>()
    };
    assert_eq!(enis().await.len(), 2, "the NAT gateways' interfaces");

    account.calls.reset();
    let err = network.destroy(&ctx, &spec).await.unwrap_err();
    // AWS deletes a NAT gateway's interface with the gateway (VPC user guide, "Delete a NAT
    // gateway"); an emulator that keeps it (plain, untagged, `available`) has it named too.
    let nat_enis = enis().await;
    match &err {
        NetworkError::DeleteBlocked { resource, blockers, .. } => {
            assert_eq!(resource, &format!("VPC {}", out.vpc_id));
            let mut want = vec![format!("subnet {theirs} (10.0.200.0/24, not the stack's)")];
            want.extend(nat_enis);
            let (mut have, mut want) = (blockers.clone(), want);
            have.sort();
            want.sort();
            assert_eq!(have, want);
        }
        other => panic!("{other}"),
    }
    assert_eq!(account.calls.by_operation().get("ec2 DeleteVpc"), Some(&1), "asked once, not retried");
    assert_eq!(inventory(&ec2, stack).await, BTreeMap::from([("vpc", 1)]), "the rest is deleted");

    ec2.delete_subnet().subnet_id(&theirs).send().await.unwrap();
    network.destroy(&ctx, &spec).await.unwrap();
    assert!(inventory(&ec2, stack).await.is_empty());
}
