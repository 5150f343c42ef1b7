//! Refused deletes on destroy, against the mocked EC2 API: retried while what holds the resource
//! is leaving, ended at once with an error naming it when it is not the stack's or stays, and
//! after a bounded grace for an interface another AWS service manages (virtual time).

use crate::tests::AssociationInfo;
use crate::tests::EniInfo;
use crate::tests::SecurityGroupInfo;
use crate::tests::SubnetInfo;
use crate::tests::converged;
use crate::tests::reads;
use crate::tests::reads_with;
use dify_stack_core::Provisioner;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use dify_stack_core::ids::SecurityGroupId;
use dify_stack_core::{Classify, ErrorKind};

use super::{
    AwsError, Context, Environment, NetworkError, NetworkProvisioner, ObservedNew, SubnetId, Tags, VpcId, WaitPolicy,
    ctx, eq, test_spec,
};

/// The stack's VPC `vpc-1` holding only `subnets`.
fn vpc_with(subnets: Vec<SubnetInfo>) -> ObservedNew {
    let base = converged(&test_spec());
    ObservedNew { vpcs: base.vpcs, subnets, ..Default::default() }
}

/// The stack's first public subnet, `subnet-public-0` in `vpc-1`.
fn our_subnet() -> SubnetInfo {
    converged(&test_spec()).subnets[0].clone()
}

fn eni(id: &str, f: impl FnOnce(&mut EniInfo)) -> EniInfo {
    let mut e = EniInfo {
        id: id.into(),
        attached: true,
        subnet_id: Some(SubnetId::new("subnet-public-0")),
        status: "in-use".into(),
        attachment_status: Some("attached".into()),
        interface_type: "interface".into(),
        ..Default::default()
    };
    f(&mut e);
    e
}

fn dependency(op: &'static str) -> AwsError {
    AwsError::new(op, "DependencyViolation", "has dependencies and cannot be deleted")
}

fn blocked(err: &NetworkError) -> (&str, &[String]) {
    match err {
        NetworkError::DeleteBlocked { resource, blockers, .. } => (resource, blockers),
        other => panic!("expected DeleteBlocked, got {other}"),
    }
}

/// A context with the default wait policy (dependency budget 20 min, grace 2 min).
fn patient() -> Context {
    Context::new("unit", Environment::Test, "us-west-2").unwrap()
}

#[tokio::test]
async fn a_vpc_held_by_a_subnet_that_is_not_ours_ends_destroy_at_once_naming_it() {
    let theirs = SubnetInfo {
        id: SubnetId::new("subnet-theirs"),
        vpc_id: VpcId::new("vpc-1"),
        cidr: "10.0.200.0/24".into(),
        az: "us-west-2a".into(),
        tags: Tags::from([("Name".to_owned(), "someone-elses".to_owned())]),
    };
    let mut m = reads(&vpc_with(vec![theirs]));
    m.expect_delete_subnet().times(0);
    m.expect_delete_vpc().times(1).returning(|_| Err(dependency("DeleteVpc")));
    let err = NetworkProvisioner::new(m).destroy(&patient(), &test_spec()).await.unwrap_err();
    let (resource, blockers) = blocked(&err);
    assert_eq!(resource, "VPC vpc-1");
    assert_eq!(blockers, ["subnet subnet-theirs (10.0.200.0/24, not the stack's)"]);
    assert_eq!(err.kind(), ErrorKind::DependencyViolation);
    assert!(!err.is_retryable(), "nothing changes by itself");
    assert!(err.to_string().contains("remove or detach them, then run destroy again"), "{err}");
}

#[tokio::test]
async fn a_subnet_is_retried_while_its_interface_detaches_then_deleted() {
    let leaving = eni("eni-leaving", |e| e.attachment_status = Some("detaching".into()));
    let mut m = reads_with(&vpc_with(vec![our_subnet()]), vec![leaving], Vec::new());
    let calls = Arc::new(AtomicUsize::new(0));
    let c = calls.clone();
    m.expect_delete_subnet().returning(move |_| {
        if c.fetch_add(1, Ordering::SeqCst) < 2 { Err(dependency("DeleteSubnet")) } else { Ok(()) }
    });
    m.expect_delete_vpc().times(1).returning(|_| Ok(()));
    let deleted = NetworkProvisioner::new(m).destroy(&ctx(), &test_spec()).await.unwrap();
    assert_eq!(calls.load(Ordering::SeqCst), 3);
    assert_eq!(deleted.len(), 2, "the subnet and the VPC: {deleted:?}");
}

#[tokio::test]
async fn an_instance_interface_that_is_not_ours_ends_destroy_at_once() {
    let instance = eni("eni-instance", |e| e.description = "someone's instance".into());
    let mut m = reads_with(&vpc_with(vec![our_subnet()]), vec![instance], Vec::new());
    m.expect_delete_subnet().times(1).returning(|_| Err(dependency("DeleteSubnet")));
    m.expect_delete_vpc().times(0);
    let err = NetworkProvisioner::new(m).destroy(&patient(), &test_spec()).await.unwrap_err();
    let (resource, blockers) = blocked(&err);
    assert_eq!(resource, "subnet subnet-public-0");
    assert_eq!(blockers, ["network interface eni-instance (in-use, \"someone's instance\", not the stack's)"]);
}

#[tokio::test(start_paused = true)]
async fn an_interface_another_service_manages_gets_the_grace_then_is_named() {
    // A load balancer Kubernetes made and nobody deleted: its interfaces stay (requester-managed,
    // deleted only with the load balancer). The old code retried this for up to 20 minutes.
    let elb = eni("eni-elb", |e| {
        e.requester_managed = true;
        e.description = "ELB app/k8s-dify-alb/0123456789".into();
        e.public_ip = Some("203.0.113.7".into());
    });
    let mut m = reads_with(&vpc_with(vec![our_subnet()]), vec![elb], Vec::new());
    let calls = Arc::new(AtomicUsize::new(0));
    let c = calls.clone();
    m.expect_delete_subnet().returning(move |_| {
        c.fetch_add(1, Ordering::SeqCst);
        Err(dependency("DeleteSubnet"))
    });
    let start = tokio::time::Instant::now();
    let err = NetworkProvisioner::new(m).destroy(&patient(), &test_spec()).await.unwrap_err();
    let waited = start.elapsed();
    let (_, blockers) = blocked(&err);
    assert_eq!(
        blockers,
        [
            "network interface eni-elb (in-use, \"ELB app/k8s-dify-alb/0123456789\", public address 203.0.113.7, not the stack's)"
        ]
    );
    let max_pause = WaitPolicy::default().max_interval.mul_f64(1.0 + WaitPolicy::default().jitter);
    assert!(
        waited >= crate::provisioner::SETTLE_GRACE && waited <= crate::provisioner::SETTLE_GRACE + max_pause,
        "ended after {waited:?}"
    );
    assert!(calls.load(Ordering::SeqCst) > 1, "retried within the grace");
}

#[tokio::test(start_paused = true)]
async fn a_refusal_aws_does_not_explain_gets_the_grace_only() {
    let mut m = reads(&vpc_with(vec![our_subnet()]));
    m.expect_delete_subnet().returning(|_| Err(dependency("DeleteSubnet")));
    let start = tokio::time::Instant::now();
    let err = NetworkProvisioner::new(m).destroy(&patient(), &test_spec()).await.unwrap_err();
    assert!(start.elapsed() < crate::provisioner::DEPENDENCY_RETRY_CAP / 5, "{:?}", start.elapsed());
    let (_, blockers) = blocked(&err);
    assert!(blockers[0].starts_with("nothing AWS lists"), "{blockers:?}");
}

#[tokio::test]
async fn a_route_table_made_the_main_one_is_named_not_retried() {
    // Someone made our private table the VPC's main table: AWS never deletes a main table.
    let mut world = vpc_with(Vec::new());
    let mut table = converged(&test_spec()).route_tables[1].clone();
    table.associations = vec![AssociationInfo { id: "rtbassoc-main".into(), subnet_id: None, main: true }];
    world.route_tables = vec![table];
    let mut m = reads(&world);
    m.expect_disassociate_route_table().times(0);
    m.expect_delete_route_table().times(1).returning(|_| Err(dependency("DeleteRouteTable")));
    let err = NetworkProvisioner::new(m).destroy(&patient(), &test_spec()).await.unwrap_err();
    let (resource, blockers) = blocked(&err);
    assert_eq!(resource, "route table rtb-private-0");
    assert_eq!(blockers, ["VPC vpc-1, whose main route table it is (make another table the main one)"]);
}

fn group(id: &str, owned: bool, sources: &[&str]) -> (VpcId, SecurityGroupInfo) {
    let mut tags = Tags::from([("Name".to_owned(), id.to_owned())]);
    if owned {
        tags.insert("dify-stack:stack".into(), "unit".into());
    }
    let ingress = sources.iter().map(|s| ("tcp".to_owned(), 443, 443, s.to_string())).collect();
    (VpcId::new("vpc-1"), SecurityGroupInfo { id: SecurityGroupId::new(id), name: id.into(), tags, ingress })
}

#[tokio::test]
async fn the_stacks_groups_that_name_each_other_are_deleted_together() {
    // sg-b's rule names sg-a: AWS refuses sg-a until sg-b is gone (EC2 API reference,
    // DeleteSecurityGroup). Sequential deletes with a fixed order would wait out the budget.
    let groups = vec![group("sg-a", true, &[]), group("sg-b", true, &["sg-a"])];
    let mut m = reads_with(&vpc_with(Vec::new()), Vec::new(), groups);
    let b_gone = Arc::new(AtomicBool::new(false));
    let (a_calls, gone) = (Arc::new(AtomicUsize::new(0)), b_gone.clone());
    let a = a_calls.clone();
    m.expect_delete_security_group().returning(move |g| {
        if g.as_str() == "sg-b" {
            gone.store(true, Ordering::SeqCst);
            return Ok(());
        }
        a.fetch_add(1, Ordering::SeqCst);
        if gone.load(Ordering::SeqCst) { Ok(()) } else { Err(dependency("DeleteSecurityGroup")) }
    });
    m.expect_delete_vpc().times(1).returning(|_| Ok(()));
    let deleted = NetworkProvisioner::new(m).destroy(&ctx(), &test_spec()).await.unwrap();
    assert!(b_gone.load(Ordering::SeqCst));
    assert_eq!(deleted.iter().filter(|r| r.kind == "ec2:security-group").count(), 2);
}

#[tokio::test]
async fn a_group_named_by_someone_elses_group_ends_destroy_at_once() {
    let groups = vec![group("sg-a", true, &[]), group("sg-theirs", false, &["sg-a"])];
    let mut m = reads_with(&vpc_with(Vec::new()), Vec::new(), groups);
    m.expect_delete_security_group()
        .with(eq(SecurityGroupId::new("sg-a")))
        .times(1)
        .returning(|_| Err(dependency("DeleteSecurityGroup")));
    let err = NetworkProvisioner::new(m).destroy(&patient(), &test_spec()).await.unwrap_err();
    let (resource, blockers) = blocked(&err);
    assert_eq!(resource, "security group sg-a");
    assert_eq!(blockers, ["security group sg-theirs \"sg-theirs\" (not the stack's), whose rules name it"]);
}

#[test]
fn interfaces_are_leaving_managed_or_in_the_way() {
    use crate::provisioner::{Hold, eni_hold};
    let cases = [
        ("detaching", eni("e", |e| e.attachment_status = Some("detaching".into())), false, Hold::Leaving),
        ("status detaching", eni("e", |e| e.status = "detaching".into()), false, Hold::Leaving),
        ("a NAT gateway's", eni("e", |e| e.interface_type = "nat_gateway".into()), false, Hold::Leaving),
        ("a load balancer's", eni("e", |e| e.requester_managed = true), false, Hold::Managed),
        (
            "ours, loose",
            eni("e", |e| {
                e.attached = false;
                e.status = "available".into();
                e.attachment_status = None;
            }),
            true,
            Hold::Leaving,
        ),
        (
            "someone's, loose",
            eni("e", |e| {
                e.attached = false;
                e.status = "available".into();
                e.attachment_status = None;
            }),
            false,
            Hold::InTheWay,
        ),
        ("an instance's", eni("e", |_| {}), false, Hold::InTheWay),
        ("ours, attached", eni("e", |_| {}), true, Hold::InTheWay),
    ];
    for (what, e, ours, hold) in cases {
        assert_eq!(eni_hold(&e, ours), hold, "{what}");
    }
}
