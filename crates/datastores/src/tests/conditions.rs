//! The wait conditions on their own: pure functions of one Describe answer, no clock.

use dify_stack_core::{Probe, Tags};

use crate::aurora::apply::{cluster_available, instances_available};
use crate::client::*;
use crate::names::AuroraNames;
use crate::opensearch::domain_ready;
use crate::redis::group_available;
use crate::tests::*;

fn done<E: std::fmt::Debug>(p: Result<Probe<()>, E>) -> bool {
    matches!(p.expect("no error"), Probe::Done(()))
}

fn pending<E: std::fmt::Debug>(p: Result<Probe<()>, E>) -> String {
    match p.expect("no error") {
        Probe::Pending(s) => s,
        Probe::Done(()) => panic!("done, expected pending"),
    }
}

#[test]
fn a_replication_group_is_waited_for_until_available_with_readable_tags() {
    let c = group_available("s-redis");
    let g =
        |status: &str, tags: Option<Tags>| ReplicationGroupInfo { status: status.into(), tags, ..Default::default() };
    assert!(done(c(Some(&g("available", Some(Tags::new()))))));
    // Available, but the tag read was refused (the state changed between the two calls).
    assert_eq!(pending(c(Some(&g("available", None)))), "available");
    assert_eq!(pending(c(Some(&g("modifying", None)))), "modifying");
    assert_eq!(pending(c(None)), "not visible yet");
    let e = c(Some(&g("create-failed", None))).unwrap_err();
    assert!(e.to_string().contains("create-failed"), "{e}");
}

#[test]
fn an_aurora_cluster_is_waited_for_until_available_and_a_failed_state_ends_the_wait() {
    let c = cluster_available("s-aurora");
    let cl = |status: &str| DbClusterInfo { status: status.into(), ..Default::default() };
    assert!(done(c(Some(&cl("available")))));
    for s in ["creating", "backing-up", "modifying", "configuring-iam-database-auth"] {
        assert_eq!(pending(c(Some(&cl(s)))), s);
    }
    assert_eq!(pending(c(None)), "not visible yet");
    for s in ["failed", "incompatible-parameters", "inaccessible-encryption-credentials"] {
        let e = c(Some(&cl(s))).unwrap_err();
        assert!(e.to_string().contains(s), "{e}");
    }
}

#[test]
fn aurora_instances_are_done_when_every_wanted_one_is_available() {
    let names = AuroraNames::of(&ctx_in("us-west-2", dify_stack_core::Environment::Test));
    let x =
        |i: usize, status: &str| DbInstanceInfo { id: names.instance(i), status: status.into(), ..Default::default() };
    assert_eq!(instances_available(&[x(1, "available"), x(2, "available")], &names, 2).unwrap(), None);
    // One missing (not visible yet after CreateDBInstance).
    let p = instances_available(&[x(1, "available")], &names, 2).unwrap().expect("pending");
    assert!(p.contains("1 not visible yet"), "{p}");
    // One still creating.
    let p = instances_available(&[x(1, "available"), x(2, "creating")], &names, 2).unwrap().expect("pending");
    assert!(p.contains(&format!("{} creating", names.instance(2))), "{p}");
    // An extra instance being deleted does not hold the wait.
    assert_eq!(instances_available(&[x(1, "available"), x(3, "deleting")], &names, 1).unwrap(), None);
    // A failed one ends it.
    let e = instances_available(&[x(1, "incompatible-network")], &names, 1).unwrap_err();
    assert!(e.to_string().contains("incompatible-network"), "{e}");
}

#[test]
fn a_domain_is_ready_when_not_processing_and_with_its_vpc_endpoint() {
    let c = domain_ready("s-search");
    let d = |processing: bool, endpoint: Option<&str>, deleted: bool| DomainInfo {
        processing,
        deleted,
        vpc_endpoint: endpoint.map(str::to_owned),
        ..Default::default()
    };
    assert!(done(c(Some(&d(false, Some("vpc-x.es.amazonaws.com"), false)))));
    assert_eq!(pending(c(Some(&d(true, Some("vpc-x"), false)))), "processing");
    assert_eq!(pending(c(Some(&d(false, None, false)))), "waiting for the VPC endpoint");
    assert_eq!(pending(c(None)), "not visible yet");
    assert!(c(Some(&d(false, Some("vpc-x"), true))).is_err());
}
