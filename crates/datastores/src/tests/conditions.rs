//! The wait conditions on their own: pure functions of one Describe answer, no clock.

use dify_stack_core::{Probe, Tags};

use crate::aurora::apply::{cluster_available, cluster_upgraded, instances_available};
use crate::client::*;
use crate::names::AuroraNames;
use crate::opensearch::{domain_ready, domain_upgraded};
use crate::redis::{group_available, group_upgraded};
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

#[test]
fn an_aurora_upgrade_is_done_only_when_available_on_the_wanted_version() {
    let c = cluster_upgraded("s-aurora", "17.6");
    let cl = |status: &str, version: &str| DbClusterInfo {
        status: status.into(),
        engine_version: version.into(),
        ..Default::default()
    };
    // Right after ModifyDBCluster RDS may still say available on the old version.
    assert_eq!(pending(c(Some(&cl("available", "17.5")))), "available on 17.5");
    assert_eq!(pending(c(Some(&cl("upgrading", "17.5")))), "upgrading on 17.5");
    assert!(done(c(Some(&cl("available", "17.6")))));
    assert!(c(Some(&cl("incompatible-parameters", "17.5"))).unwrap_err().to_string().contains("incompatible"));
    assert!(c(None).unwrap_err().to_string().contains("gone"));
}

#[test]
fn a_redis_upgrade_is_done_only_when_available_on_the_wanted_version() {
    let c = group_upgraded("s-redis", "7.1");
    let g = |status: &str| ReplicationGroupInfo {
        status: status.into(),
        tags: (status == "available").then(Tags::new),
        ..Default::default()
    };
    let e = |v: &str| Some(CacheEngine { version: v.into(), parameter_group: None });
    assert_eq!(pending(c(Some(&(g("available"), e("7.0.7"))))), "available on 7.0.7");
    assert_eq!(pending(c(Some(&(g("modifying"), e("7.0.7"))))), "modifying on 7.0.7");
    assert_eq!(pending(c(Some(&(g("available"), None)))), "available on an unknown version");
    assert!(done(c(Some(&(g("available"), e("7.1.0"))))));
    assert!(c(None).is_err());
}

#[test]
fn an_opensearch_upgrade_is_done_when_the_upgrade_step_succeeded_and_the_domain_is_idle() {
    let c = domain_upgraded("s-search", "OpenSearch_2.19");
    let u = |step: &str, status: &str| Some(UpgradeStatusInfo { step: step.into(), status: status.into(), name: None });
    let d = |processing: bool, version: &str| DomainInfo {
        processing,
        engine_version: version.into(),
        ..Default::default()
    };
    assert_eq!(pending(c(Some(&(None, d(true, "OpenSearch_2.17"))))), "no upgrade status yet, processing");
    assert_eq!(
        pending(c(Some(&(u("SNAPSHOT", "IN_PROGRESS"), d(true, "OpenSearch_2.17"))))),
        "SNAPSHOT IN_PROGRESS, processing"
    );
    // The step succeeded but the old fleet is still being removed.
    assert_eq!(
        pending(c(Some(&(u("UPGRADE", "SUCCEEDED"), d(true, "OpenSearch_2.19"))))),
        "UPGRADE SUCCEEDED, processing"
    );
    assert!(done(c(Some(&(u("UPGRADE", "SUCCEEDED"), d(false, "OpenSearch_2.19"))))));
    assert!(done(c(Some(&(u("UPGRADE", "SUCCEEDED_WITH_ISSUES"), d(false, "OpenSearch_2.19"))))));
    // A failed step while the domain still processes (the report of an earlier attempt, or the
    // rollback under way) is not the end yet; once idle on the old version it is.
    assert!(pending(c(Some(&(u("PRE_UPGRADE_CHECK", "FAILED"), d(true, "OpenSearch_2.17"))))).contains("FAILED"));
    let e = c(Some(&(u("PRE_UPGRADE_CHECK", "FAILED"), d(false, "OpenSearch_2.17")))).unwrap_err().to_string();
    assert!(e.contains("PRE_UPGRADE_CHECK step failed") && e.contains("GetUpgradeHistory"), "{e}");
    assert!(c(Some(&(None, DomainInfo { deleted: true, ..Default::default() }))).is_err());
    assert!(c(None).is_err());
}
