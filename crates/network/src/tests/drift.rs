//! A drifted network: the plan shows each typed change once, and apply makes exactly the
//! writes those changes name, once each (the mock has no create: an unplanned write panics).

use crate::tests::DnsAttributes;
use crate::tests::RouteTarget;
use crate::tests::converged;
use crate::tests::reads;
use dify_stack_core::Provisioner;
use std::sync::{Arc, Mutex};

use super::{
    Action, AllocationId, InternetGatewayId, NatGatewayId, NetworkProvisioner, RouteTableId, SubnetId, VpcId, ctx, eq,
    test_spec,
};

#[tokio::test]
async fn a_drifted_network_gets_exactly_the_writes_its_plan_shows() {
    let spec = test_spec();
    let mut world = converged(&spec);
    // The VPC: DNS hostnames off, a lost tag.
    world.dns = Some(DnsAttributes { support: true, hostnames: false });
    let lost = dify_stack_core::TAG_TIER.to_owned();
    assert!(world.vpcs[0].tags.remove(&lost).is_some(), "the ownership tags name the tier");
    // A public subnet lost its load-balancer discovery tag.
    world.subnets[0].tags.remove("kubernetes.io/role/elb");
    // The gateway came off the VPC.
    world.igws[0].attached_vpcs.clear();
    // The first private table: routed to a gateway that is not ours, its association and a tag lost.
    let private = &mut world.route_tables[1];
    private.routes[1].target = RouteTarget::NatGateway(NatGatewayId::new("nat-someone"));
    private.associations.clear();
    private.tags.remove(&lost);
    // An address of ours no NAT gateway uses.
    let mut spare = world.eips[0].clone();
    spare.allocation_id = AllocationId::new("eipalloc-9");
    spare.tags.insert("Name".into(), "unit-nat-9".into());
    spare.tags.insert("dify-stack:id".into(), "network/eip/9".into());
    world.eips.push(spare);

    let mut m = reads(&world);
    m.expect_set_vpc_dns().with(eq(VpcId::new("vpc-1")), eq(None), eq(Some(true))).times(1).returning(|_, _, _| Ok(()));
    let tagged = Arc::new(Mutex::new(Vec::<(String, Vec<String>)>::new()));
    let t = tagged.clone();
    m.expect_create_tags().returning(move |ids, tags| {
        t.lock().unwrap().push((ids.join(","), tags.keys().cloned().collect()));
        Ok(())
    });
    m.expect_attach_internet_gateway()
        .with(eq(InternetGatewayId::new("igw-1")), eq(VpcId::new("vpc-1")))
        .times(1)
        .returning(|_, _| Ok(()));
    m.expect_replace_route()
        .with(
            eq(RouteTableId::new("rtb-private-0")),
            eq("0.0.0.0/0".to_owned()),
            eq(RouteTarget::NatGateway(NatGatewayId::new("nat-0"))),
        )
        .times(1)
        .returning(|_, _, _| Ok(()));
    m.expect_associate_route_table()
        .with(eq(RouteTableId::new("rtb-private-0")), eq(SubnetId::new("subnet-private-0")))
        .times(1)
        .returning(|_, _| Ok("rtbassoc-new".into()));
    m.expect_release_address().with(eq(AllocationId::new("eipalloc-9"))).times(1).returning(|_| Ok(()));
    let p = NetworkProvisioner::new(m);

    let plan = p.plan(&ctx(), &spec).await.unwrap();
    let shown: Vec<(String, Action, Vec<String>)> = plan
        .changes
        .iter()
        .map(|c| (c.resource.name.clone(), c.action, c.fields.iter().map(|f| f.path.clone()).collect()))
        .collect();
    let fields = |f: &[&str]| f.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    assert_eq!(
        shown,
        [
            ("unit-vpc".into(), Action::Update, fields(&[&format!("tags.{lost}"), "enable_dns_hostnames"])),
            ("unit-public-1".into(), Action::Update, fields(&["tags.kubernetes.io/role/elb"])),
            ("unit-igw".into(), Action::Update, fields(&["attachment"])),
            (
                "unit-private-1".into(),
                Action::Update,
                fields(&["routes[0.0.0.0/0]", "associations[unit-private-1]", &format!("tags.{lost}")])
            ),
            ("unit-nat-9".into(), Action::Delete, fields(&[])),
        ],
        "{plan}"
    );

    p.apply(&ctx(), &spec).await.unwrap();
    let mut written = tagged.lock().unwrap().clone();
    written.sort();
    assert_eq!(
        written,
        [
            ("rtb-private-0".to_owned(), vec![lost.clone()]),
            ("subnet-public-0".to_owned(), vec!["kubernetes.io/role/elb".to_owned()]),
            ("vpc-1".to_owned(), vec![lost.clone()]),
        ],
        "one CreateTags per resource the plan shows with tags, with exactly those keys"
    );
}
