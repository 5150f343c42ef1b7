//! Destroy, ownership, waits and drift against the mocked EC2 API.

use super::{
    Action, AwsError, NatGatewayId, NetworkError, NetworkProvisioner, ObservedNew, SubnetId, Tags, VpcId, ctx,
    test_spec,
};
use crate::MockEc2Api;
use crate::tests::DnsAttributes;
use crate::tests::NatState;
use crate::tests::RouteTarget;
use crate::tests::VpcInfo;
use crate::tests::ZoneInfo;
use crate::tests::converged;
use crate::tests::reads;
use dify_stack_core::Provisioner;

#[tokio::test]
async fn destroy_on_an_empty_world_is_ok() {
    let p = NetworkProvisioner::new(reads(&ObservedNew::default()));
    assert!(p.destroy(&ctx(), &test_spec()).await.unwrap().is_empty());
}

#[tokio::test]
async fn a_same_named_vpc_without_our_tag_is_not_owned() {
    let mut m = reads(&ObservedNew::default());
    m.checkpoint();
    m.expect_describe_zones().returning(|| {
        Ok(["a", "b"]
            .iter()
            .map(|z| ZoneInfo {
                name: z.to_string(),
                id: format!("usw2-{z}"),
                available: true,
                zone_type: "availability-zone".into(),
            })
            .collect())
    });
    m.expect_describe_vpcs().returning(|_| {
        Ok(vec![VpcInfo {
            id: VpcId::new("vpc-theirs"),
            cidr: "10.0.0.0/16".into(),
            tags: Tags::from([
                ("Name".to_owned(), "unit-vpc".to_owned()),
                ("dify-stack:stack".to_owned(), "unit-2".to_owned()),
            ]),
        }])
    });
    let p = NetworkProvisioner::new(m);
    match p.plan(&ctx(), &test_spec()).await.unwrap_err() {
        NetworkError::NotOwned(e) => assert_eq!(e.id.as_deref(), Some("vpc-theirs")),
        other => panic!("{other}"),
    }
}

#[tokio::test]
async fn destroy_retries_dependency_violation_then_succeeds_in_order() {
    let world = converged(&test_spec());
    let mut m = reads(&world);
    let order = std::sync::Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let log = |what: &'static str| {
        let order = order.clone();
        move || order.lock().unwrap().push(what.to_owned())
    };
    let l = log("nat");
    m.expect_delete_nat_gateway().times(2).returning(move |_| {
        l();
        Ok(())
    });
    let l = log("nat-deleted");
    m.expect_wait_nat_gateways_deleted().times(1).returning(move |_, _| {
        l();
        Ok(true)
    });
    // The EIP release races the NAT deletion once.
    let mut first = true;
    let l = log("eip");
    m.expect_release_address().times(3).returning(move |_| {
        if std::mem::take(&mut first) {
            return Err(AwsError::new("ReleaseAddress", "InvalidIPAddress.InUse", "still in use"));
        }
        l();
        Ok(())
    });
    let l = log("igw");
    m.expect_detach_internet_gateway().times(1).returning(|_, _| Ok(()));
    m.expect_delete_internet_gateway().times(1).returning(move |_| {
        l();
        Ok(())
    });
    // Every subnet reports lingering ENIs twice before it can go.
    let mut violations = std::collections::HashMap::<SubnetId, u32>::new();
    let l = log("subnet");
    m.expect_delete_subnet().times(4 * 3).returning(move |id| {
        let n = violations.entry(id).or_default();
        *n += 1;
        if *n <= 2 {
            return Err(AwsError::new("DeleteSubnet", "DependencyViolation", "has dependencies"));
        }
        l();
        Ok(())
    });
    m.expect_disassociate_route_table().times(4).returning(|_| Ok(()));
    let l = log("route-table");
    m.expect_delete_route_table().times(3).returning(move |_| {
        l();
        Ok(())
    });
    let l = log("vpc");
    m.expect_delete_vpc().times(1).returning(move |_| {
        l();
        Ok(())
    });
    let deleted = NetworkProvisioner::new(m).destroy(&ctx(), &test_spec()).await.unwrap();
    assert_eq!(deleted.len(), 2 + 2 + 1 + 4 + 3 + 1);
    let order = order.lock().unwrap().clone();
    let first_of = |w: &str| order.iter().position(|o| o == w).unwrap();
    let last_of = |w: &str| order.iter().rposition(|o| o == w).unwrap();
    assert!(last_of("nat") < first_of("nat-deleted"));
    assert!(first_of("nat-deleted") < first_of("eip"));
    assert!(last_of("eip") < first_of("igw"));
    assert!(first_of("igw") < first_of("subnet"));
    assert!(last_of("subnet") < first_of("route-table"));
    assert!(last_of("route-table") < first_of("vpc"));
}

#[tokio::test]
async fn destroy_never_touches_resources_of_another_stack() {
    let mut world = converged(&test_spec());
    for n in &mut world.nats {
        n.tags.insert("dify-stack:stack".into(), "unit-other".into());
    }
    for e in &mut world.eips {
        e.tags.insert("dify-stack:stack".into(), "unit-other".into());
    }
    // Nothing but the NATs and EIPs is returned; they belong to another stack.
    world.vpcs.clear();
    world.igws.clear();
    let p = NetworkProvisioner::new(reads(&world));
    assert!(p.destroy(&ctx(), &test_spec()).await.unwrap().is_empty());
}

#[tokio::test]
async fn a_nat_wait_that_runs_out_is_a_timeout_error() {
    let spec = test_spec();
    let mut world = converged(&spec);
    for n in &mut world.nats {
        n.state = NatState::Pending;
    }
    let mut m = reads(&world);
    m.expect_wait_nat_gateways_available().returning(|_, _| Ok(false));
    let err = NetworkProvisioner::new(m).apply(&ctx(), &spec).await.unwrap_err();
    match &err {
        NetworkError::Wait(ended) => {
            assert!(matches!(ended, dify_stack_core::WaitError::TimedOut { .. }), "{err}");
            assert!(dify_stack_core::Classify::is_retryable(&err), "a wait that ran out is retryable");
        }
        other => panic!("{other}"),
    }
}

#[tokio::test]
async fn diff_table_for_mutable_and_immutable_drift() {
    let spec = test_spec();
    let p = NetworkProvisioner::new(MockEc2Api::new());
    type Mutation = Box<dyn Fn(&mut ObservedNew)>;
    let cases: Vec<(&str, Mutation, Action, &str)> = vec![
        (
            "dns off",
            Box::new(|w| w.dns = Some(DnsAttributes { support: true, hostnames: false })),
            Action::Update,
            "enable_dns_hostnames",
        ),
        (
            "tag drift",
            Box::new(|w| {
                w.subnets[0].tags.remove("kubernetes.io/role/elb");
            }),
            Action::Update,
            "tags.kubernetes.io/role/elb",
        ),
        (
            "route to wrong nat",
            Box::new(|w| w.route_tables[1].routes[1].target = RouteTarget::NatGateway(NatGatewayId::new("nat-1"))),
            Action::Update,
            "routes[0.0.0.0/0]",
        ),
        (
            "missing association",
            Box::new(|w| w.route_tables[0].associations.clear()),
            Action::Update,
            "associations[unit-public-1]",
        ),
        ("igw detached", Box::new(|w| w.igws[0].attached_vpcs.clear()), Action::Update, "attachment"),
        ("vpc cidr", Box::new(|w| w.vpcs[0].cidr = "10.1.0.0/16".into()), Action::Replace, "cidr_block"),
        ("subnet cidr", Box::new(|w| w.subnets[2].cidr = "10.0.99.0/24".into()), Action::Replace, "cidr_block"),
        ("subnet az", Box::new(|w| w.subnets[3].az = "us-west-2c".into()), Action::Replace, "availability_zone"),
        (
            "nat missing",
            Box::new(|w| {
                w.nats.pop();
            }),
            Action::Create,
            "",
        ),
    ];
    for (what, mutate, action, field) in cases {
        let mut world = converged(&spec);
        mutate(&mut world);
        let plan = p.diff(&ctx(), &spec, &crate::ObservedNetwork::New(world));
        let change = plan.changes.iter().find(|c| c.action == action).unwrap_or_else(|| panic!("{what}: {plan}"));
        if !field.is_empty() {
            assert!(change.fields.iter().any(|f| f.path == field), "{what}: {plan}");
        }
    }
}
