//! The worlds the mocked EC2 API answers from, and mocks that honour EC2's filters.

use super::{
    AllocationId, AwsError, InternetGatewayId, NatGatewayId, ObservedNew, RouteTableId, SubnetId, Tags, VpcId, ZONES,
    ctx,
};
use crate::MockEc2Api;
use crate::NatMode;
use crate::NetworkSpec;
use crate::VpcSpec;
use crate::tests::AddressInfo;
use crate::tests::AssociationInfo;
use crate::tests::DnsAttributes;
use crate::tests::EniInfo;
use crate::tests::Filter;
use crate::tests::IgwInfo;
use crate::tests::NatInfo;
use crate::tests::NatState;
use crate::tests::RouteInfo;
use crate::tests::RouteTableInfo;
use crate::tests::RouteTarget;
use crate::tests::SecurityGroupInfo;
use crate::tests::SubnetInfo;
use crate::tests::VpcInfo;
use crate::tests::ZoneInfo;

/// The observation of a fully converged network for `spec`, written from STACK.md (network
/// section), the naming rules and the logical ids (`dify-stack:id` = `network/vpc`,
/// `network/subnet/public-1`, ...), not from the tier's own `Desired`: VPC `10.0.0.0/16`, public
/// subnets `10.0.<i>.0/24` tagged `kubernetes.io/role/elb=1`, private `10.0.<9+i>.0/24` tagged
/// `kubernetes.io/role/internal-elb=1`, both `kubernetes.io/cluster/<cluster>=shared`; one
/// public route table to the IGW, one private route table per AZ to its AZ's NAT gateway (or
/// the single one).
pub(super) fn converged(spec: &NetworkSpec) -> ObservedNew {
    let VpcSpec::New(new) = spec.vpc() else { panic!() };
    assert_eq!(new.cidr.to_string(), "10.0.0.0/16", "the world below is written for STACK.md's CIDR");
    let c = ctx();
    let azs = new.az_count as usize;
    let zones: Vec<String> = ZONES[..azs].iter().map(|z| z.to_string()).collect();
    let named = |component: &str, suffix: &str, id: &str| {
        let name = format!("unit-{suffix}");
        let mut tags = c.tags_for(dify_stack_core::Tier::Network, component, &name);
        assert_eq!(tags.get("Name"), Some(&name), "Name tag");
        tags.insert("dify-stack:id".into(), format!("network/{id}"));
        tags
    };
    let vpc = VpcInfo { id: VpcId::new("vpc-1"), cidr: "10.0.0.0/16".into(), tags: named("vpc", "vpc", "vpc") };
    let subnet = |role: &str, i: usize| {
        let (cidr, elb) = match role {
            "public" => (format!("10.0.{}.0/24", i + 1), "kubernetes.io/role/elb"),
            _ => (format!("10.0.{}.0/24", i + 10), "kubernetes.io/role/internal-elb"),
        };
        let mut tags =
            named(&format!("{role}-subnet"), &format!("{role}-{}", i + 1), &format!("subnet/{role}-{}", i + 1));
        tags.insert(elb.into(), "1".into());
        tags.insert(format!("kubernetes.io/cluster/{}", spec.cluster_name), "shared".into());
        SubnetInfo {
            id: SubnetId::new(format!("subnet-{role}-{i}")),
            vpc_id: vpc.id.clone(),
            cidr,
            az: zones[i].clone(),
            tags,
        }
    };
    let public: Vec<SubnetInfo> = (0..azs).map(|i| subnet("public", i)).collect();
    let private: Vec<SubnetInfo> = (0..azs).map(|i| subnet("private", i)).collect();
    let igw = IgwInfo {
        id: InternetGatewayId::new("igw-1"),
        attached_vpcs: vec![vpc.id.clone()],
        tags: named("internet-gateway", "igw", "internet-gateway"),
    };
    let nat_count = if new.nat == NatMode::Single { 1 } else { azs };
    let eips: Vec<AddressInfo> = (0..nat_count)
        .map(|i| AddressInfo {
            allocation_id: AllocationId::new(format!("eipalloc-{i}")),
            public_ip: Some(format!("203.0.113.{i}")),
            association_id: Some(format!("eipassoc-{i}")),
            tags: named("nat-eip", &format!("nat-{}", i + 1), &format!("eip/{}", i + 1)),
        })
        .collect();
    let nats: Vec<NatInfo> = (0..nat_count)
        .map(|i| NatInfo {
            id: NatGatewayId::new(format!("nat-{i}")),
            subnet_id: public[i].id.clone(),
            vpc_id: Some(vpc.id.clone()),
            state: NatState::Available,
            allocation_id: Some(eips[i].allocation_id.clone()),
            public_ip: eips[i].public_ip.clone(),
            tags: named("nat-gateway", &format!("nat-{}", i + 1), &format!("nat/{}", i + 1)),
        })
        .collect();
    let table = |id: String, target: RouteTarget, subnets: &[&SubnetInfo], tags: Tags| RouteTableInfo {
        id: RouteTableId::new(id),
        vpc_id: vpc.id.clone(),
        routes: vec![
            RouteInfo { destination: "10.0.0.0/16".into(), target: RouteTarget::Local },
            RouteInfo { destination: "0.0.0.0/0".into(), target },
        ],
        associations: subnets
            .iter()
            .map(|s| AssociationInfo { id: format!("rtbassoc-{}", s.id), subnet_id: Some(s.id.clone()), main: false })
            .collect(),
        tags,
    };
    let mut route_tables = vec![table(
        "rtb-public".into(),
        RouteTarget::Gateway(igw.id.clone()),
        &public.iter().collect::<Vec<_>>(),
        named("public-route-table", "public", "route-table/public"),
    )];
    for (i, s) in private.iter().enumerate() {
        let nat = &nats[i.min(nat_count - 1)];
        route_tables.push(table(
            format!("rtb-private-{i}"),
            RouteTarget::NatGateway(nat.id.clone()),
            &[s],
            named("private-route-table", &format!("private-{}", i + 1), &format!("route-table/private-{}", i + 1)),
        ));
    }
    ObservedNew {
        zones,
        vpcs: vec![vpc],
        dns: Some(DnsAttributes { support: true, hostnames: true }),
        subnets: public.into_iter().chain(private).collect(),
        igws: vec![igw],
        eips,
        nats,
        route_tables,
        retired_nats: Default::default(),
    }
}

/// A mock that answers every read with `world` and has no write expectations.
/// EC2's filter semantics: every filter must match (AND), any of its values may (OR); a filter
/// name the item does not have matches nothing.
pub(super) fn matching<T: Clone>(items: &[T], filters: &[Filter], field: impl Fn(&T, &str) -> Vec<String>) -> Vec<T> {
    items
        .iter()
        .filter(|item| filters.iter().all(|f| f.values.iter().any(|v| field(item, &f.name).contains(v))))
        .cloned()
        .collect()
}

/// `tag:<key>` filters read the item's tags.
pub(super) fn tag_field(tags: &Tags, filter: &str) -> Vec<String> {
    filter.strip_prefix("tag:").and_then(|k| tags.get(k)).cloned().into_iter().collect()
}

pub(super) fn vpc_field(v: &VpcInfo, filter: &str) -> Vec<String> {
    match filter {
        "vpc-id" => vec![v.id.to_string()],
        _ => tag_field(&v.tags, filter),
    }
}

pub(super) fn reads(world: &ObservedNew) -> MockEc2Api {
    reads_with(world, Vec::new(), Vec::new())
}

/// [`reads`] of a world that also holds these network interfaces and security groups.
pub(super) fn reads_with(
    world: &ObservedNew,
    enis: Vec<EniInfo>,
    groups: Vec<(VpcId, SecurityGroupInfo)>,
) -> MockEc2Api {
    let mut m = MockEc2Api::new();
    let zones: Vec<ZoneInfo> = ["us-west-2d", "us-west-2c", "us-west-2b", "us-west-2a"]
        .iter()
        .map(|z| ZoneInfo {
            name: z.to_string(),
            id: format!("usw2-{z}"),
            available: true,
            zone_type: "availability-zone".into(),
        })
        .chain([ZoneInfo {
            name: "us-west-2-lax-1a".into(),
            id: "usw2-lax1-az1".into(),
            available: true,
            zone_type: "local-zone".into(),
        }])
        .collect();
    m.expect_describe_zones().returning(move || Ok(zones.clone()));
    // Each describe answers with what matches its filters, as EC2 does: a filter on the wrong
    // key, tag or id finds nothing, and the tests built on these mocks fail.
    let w = world.clone();
    m.expect_describe_vpcs().returning(move |f| Ok(matching(&w.vpcs, &f, vpc_field)));
    let (dns, w) = (world.dns, world.clone());
    m.expect_describe_vpc_dns().returning(move |vpc| {
        if !w.vpcs.iter().any(|v| v.id == vpc) {
            return Err(AwsError::new("DescribeVpcAttribute", "InvalidVpcID.NotFound", format!("{vpc} not found")));
        }
        Ok(dns.unwrap_or(DnsAttributes { support: true, hostnames: true }))
    });
    let w = world.clone();
    m.expect_describe_subnets().returning(move |f| {
        Ok(matching(&w.subnets, &f, |s, k| match k {
            "vpc-id" => vec![s.vpc_id.to_string()],
            "subnet-id" => vec![s.id.to_string()],
            _ => tag_field(&s.tags, k),
        }))
    });
    let w = world.clone();
    m.expect_describe_internet_gateways().returning(move |f| {
        Ok(matching(&w.igws, &f, |g, k| match k {
            "internet-gateway-id" => vec![g.id.to_string()],
            "attachment.vpc-id" => g.attached_vpcs.iter().map(|v| v.to_string()).collect(),
            _ => tag_field(&g.tags, k),
        }))
    });
    let w = world.clone();
    m.expect_describe_addresses().returning(move |f| {
        Ok(matching(&w.eips, &f, |a, k| match k {
            "allocation-id" => vec![a.allocation_id.to_string()],
            _ => tag_field(&a.tags, k),
        }))
    });
    let w = world.clone();
    m.expect_describe_nat_gateways().returning(move |f| {
        Ok(matching(&w.nats, &f, |n, k| match k {
            "vpc-id" => n.vpc_id.iter().map(|v| v.to_string()).collect(),
            "subnet-id" => vec![n.subnet_id.to_string()],
            _ => tag_field(&n.tags, k),
        }))
    });
    let w = world.clone();
    m.expect_describe_route_tables().returning(move |f| {
        Ok(matching(&w.route_tables, &f, |t, k| match k {
            "vpc-id" => vec![t.vpc_id.to_string()],
            "route-table-id" => vec![t.id.to_string()],
            "association.subnet-id" => {
                t.associations.iter().filter_map(|a| a.subnet_id.as_ref()).map(|s| s.to_string()).collect()
            }
            _ => tag_field(&t.tags, k),
        }))
    });
    let subnets = world.subnets.clone();
    m.expect_describe_network_interfaces().returning(move |f| {
        Ok(matching(&enis, &f, |e, k| match k {
            "subnet-id" => e.subnet_id.iter().map(|s| s.to_string()).collect(),
            "vpc-id" => e
                .subnet_id
                .iter()
                .filter_map(|s| subnets.iter().find(|x| &x.id == s))
                .map(|x| x.vpc_id.to_string())
                .collect(),
            "group-id" => e.group_ids.iter().map(|g| g.to_string()).collect(),
            _ => tag_field(&e.tags, k),
        }))
    });
    m.expect_describe_security_groups().returning(move |f| {
        Ok(matching(&groups, &f, |(vpc, g), k| match k {
            "vpc-id" => vec![vpc.to_string()],
            "group-id" => vec![g.id.to_string()],
            _ => tag_field(&g.tags, k),
        })
        .into_iter()
        .map(|(_, g)| g)
        .collect())
    });
    m
}
