//! Identity by the ownership tag and the logical id, against the mocked EC2 API: a `Name` edited
//! in the console is a tag update, resources made before logical ids are adopted once by their
//! `Name`, another tier's resources are not the network's. The mocks have no create expectation:
//! a create (a second VPC, a twin subnet) panics.

use crate::MockEc2Api;
use crate::tests::converged;
use crate::tests::reads;
use dify_stack_core::Provisioner;
use std::sync::{Arc, Mutex};

use super::{Action, AllocationId, NatGatewayId, NetworkProvisioner, ObservedNew, Tags, ctx, test_spec};

const ID: &str = "dify-stack:id";

/// The plan as (resource name, action, field paths).
fn shown(plan: &dify_stack_core::Plan) -> Vec<(String, Action, Vec<String>)> {
    plan.changes
        .iter()
        .map(|c| (c.resource.name.clone(), c.action, c.fields.iter().map(|f| f.path.clone()).collect()))
        .collect()
}

/// Every CreateTags as (resource, tags).
type Tagged = Arc<Mutex<Vec<(String, Tags)>>>;

/// A mock over `world` that records every CreateTags and allows no other write.
fn recording(world: &ObservedNew) -> (MockEc2Api, Tagged) {
    let mut m = reads(world);
    let tagged = Arc::new(Mutex::new(Vec::new()));
    let t = tagged.clone();
    m.expect_create_tags().returning(move |ids, tags| {
        t.lock().unwrap().push((ids.join(","), tags));
        Ok(())
    });
    (m, tagged)
}

#[tokio::test]
async fn a_name_edited_in_the_console_is_one_tag_update_each_and_apply_writes_back_only_the_name() {
    let spec = test_spec();
    let mut world = converged(&spec);
    let rename = |tags: &mut Tags| {
        let was = tags.insert("Name".into(), "renamed-by-hand".into()).unwrap();
        assert!(was.starts_with("unit-"));
    };
    rename(&mut world.vpcs[0].tags);
    rename(&mut world.subnets[2].tags); // unit-private-1
    rename(&mut world.igws[0].tags);
    rename(&mut world.eips[1].tags); // unit-nat-2's address
    rename(&mut world.nats[0].tags);
    rename(&mut world.route_tables[1].tags); // unit-private-1's table
    let (m, tagged) = recording(&world);
    let p = NetworkProvisioner::new(m);

    let plan = p.plan(&ctx(), &spec).await.unwrap();
    let name = || vec!["tags.Name".to_owned()];
    assert_eq!(
        shown(&plan),
        [
            ("unit-vpc".into(), Action::Update, name()),
            ("unit-private-1".into(), Action::Update, name()),
            ("unit-igw".into(), Action::Update, name()),
            ("unit-nat-2".into(), Action::Update, name()),
            ("unit-nat-1".into(), Action::Update, name()),
            ("unit-private-1".into(), Action::Update, name()),
        ],
        "{plan}"
    );
    let kinds: Vec<&str> = plan.changes.iter().map(|c| c.resource.kind.as_str()).collect();
    assert_eq!(
        kinds,
        ["ec2:vpc", "ec2:subnet", "ec2:internet-gateway", "ec2:elastic-ip", "ec2:nat-gateway", "ec2:route-table"]
    );
    assert!(plan.to_string().contains("tags.Name: \"renamed-by-hand\" -> \"unit-vpc\""), "{plan}");

    let out = p.apply(&ctx(), &spec).await.unwrap();
    assert_eq!(out.vpc_id.as_str(), "vpc-1", "the same VPC, not a second one");
    let mut written = tagged.lock().unwrap().clone();
    written.sort();
    let name = |v: &str| Tags::from([("Name".to_owned(), v.to_owned())]);
    assert_eq!(
        written,
        [
            ("eipalloc-1".to_owned(), name("unit-nat-2")),
            ("igw-1".to_owned(), name("unit-igw")),
            ("nat-0".to_owned(), name("unit-nat-1")),
            ("rtb-private-0".to_owned(), name("unit-private-1")),
            ("subnet-private-0".to_owned(), name("unit-private-1")),
            ("vpc-1".to_owned(), name("unit-vpc")),
        ]
    );
}

#[tokio::test]
async fn names_swapped_between_two_subnets_are_two_tag_updates_not_two_replacements() {
    let spec = test_spec();
    let mut world = converged(&spec);
    world.subnets[0].tags.insert("Name".into(), "unit-public-2".into());
    world.subnets[1].tags.insert("Name".into(), "unit-public-1".into());
    let p = NetworkProvisioner::new(reads(&world));
    let plan = p.plan(&ctx(), &spec).await.unwrap();
    assert_eq!(
        shown(&plan),
        [
            ("unit-public-1".into(), Action::Update, vec!["tags.Name".to_owned()]),
            ("unit-public-2".into(), Action::Update, vec!["tags.Name".to_owned()]),
        ],
        "{plan}"
    );
}

#[tokio::test]
async fn resources_made_before_logical_ids_are_found_by_name_once_and_given_their_id() {
    let spec = test_spec();
    let converged = converged(&spec);
    let mut world = converged.clone();
    // What the tier made before this change: every tag but the logical id.
    let mut ids = Vec::new();
    let mut strip = |aws_id: &str, tags: &mut Tags| ids.push((aws_id.to_owned(), tags.remove(ID).unwrap()));
    strip("vpc-1", &mut world.vpcs[0].tags);
    for s in &mut world.subnets {
        strip(s.id.as_str(), &mut s.tags);
    }
    strip("igw-1", &mut world.igws[0].tags);
    for e in &mut world.eips {
        strip(e.allocation_id.as_str(), &mut e.tags);
    }
    for n in &mut world.nats {
        strip(n.id.as_str(), &mut n.tags);
    }
    for t in &mut world.route_tables {
        strip(t.id.as_str(), &mut t.tags);
    }
    assert_eq!(ids.len(), 1 + 4 + 1 + 2 + 2 + 3);
    let (m, tagged) = recording(&world);
    let p = NetworkProvisioner::new(m);

    let plan = p.plan(&ctx(), &spec).await.unwrap();
    assert_eq!(plan.changes.len(), ids.len(), "{plan}");
    assert!(
        plan.changes.iter().all(|c| c.action == Action::Update
            && c.fields.len() == 1
            && c.fields[0].path == format!("tags.{ID}")
            && c.fields[0].before.is_none()),
        "{plan}"
    );
    let out = p.apply(&ctx(), &spec).await.unwrap();
    assert_eq!(out.vpc_id.as_str(), "vpc-1");
    let mut written = tagged.lock().unwrap().clone();
    written.sort();
    ids.sort();
    let expected: Vec<(String, Tags)> =
        ids.into_iter().map(|(aws, id)| (aws, Tags::from([(ID.to_owned(), id)]))).collect();
    assert_eq!(written, expected, "each resource gets its own logical id, once");

    // Once tagged, the same world is converged.
    let p = NetworkProvisioner::new(reads(&converged));
    assert!(p.plan(&ctx(), &spec).await.unwrap().is_empty());
}

#[tokio::test]
async fn a_vpc_made_before_logical_ids_is_still_the_stacks_after_its_name_was_edited() {
    // One VPC per stack: its component tag says it as well as its Name did.
    let spec = test_spec();
    let mut world = converged(&spec);
    world.vpcs[0].tags.remove(ID);
    world.vpcs[0].tags.insert("Name".into(), "renamed-by-hand".into());
    let p = NetworkProvisioner::new(reads(&world));
    let plan = p.plan(&ctx(), &spec).await.unwrap();
    assert_eq!(
        shown(&plan),
        [("unit-vpc".into(), Action::Update, vec!["tags.Name".to_owned(), format!("tags.{ID}")])],
        "{plan}"
    );
}

#[tokio::test]
async fn a_resource_with_a_logical_id_is_never_found_by_its_name() {
    // A NAT gateway of ours named like unit-nat-2 but with another logical id is not unit-nat-2
    // (which is found by its id): it is one no part wants.
    let spec = test_spec();
    let mut world = converged(&spec);
    let mut spare = world.nats[1].clone();
    spare.id = NatGatewayId::new("nat-0000"); // sorts before unit-nat-2's own id, nat-1
    spare.tags.insert(ID.into(), "network/nat/9".into());
    world.nats.push(spare);
    let p = NetworkProvisioner::new(reads(&world));
    let plan = p.plan(&ctx(), &spec).await.unwrap();
    assert_eq!(shown(&plan), [("unit-nat-2".into(), Action::Delete, vec![])], "the gateway no part wants: {plan}");
    assert_eq!(plan.changes[0].resource.id.as_deref(), Some("nat-0000"));
}

#[tokio::test]
async fn an_owned_resource_of_another_tier_is_neither_changed_nor_deleted() {
    let spec = test_spec();
    let mut world = converged(&spec);
    let mut other = world.eips[0].clone();
    other.allocation_id = AllocationId::new("eipalloc-eks");
    other.tags.insert(ID.into(), "eks/egress".into());
    other.tags.insert("Name".into(), "unit-something-else".into());
    world.eips.push(other.clone());
    let p = NetworkProvisioner::new(reads(&world));
    assert!(p.plan(&ctx(), &spec).await.unwrap().is_empty());

    // Destroy of a world holding only it: nothing is released.
    let only = ObservedNew { eips: vec![other], ..Default::default() };
    let mut m = reads(&only);
    m.expect_release_address().times(0);
    assert!(NetworkProvisioner::new(m).destroy(&ctx(), &spec).await.unwrap().is_empty());
}
