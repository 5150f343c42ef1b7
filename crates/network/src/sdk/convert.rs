//! Conversions between the SDK's EC2 types and the tier's plain data.

use super::{AllocationId, InternetGatewayId, NatGatewayId, NatGatewayState, RouteTableId, SdkFilter, SubnetId, VpcId};
use crate::sdk::AssociationInfo;
use crate::sdk::Filter;
use crate::sdk::IgwInfo;
use crate::sdk::NatInfo;
use crate::sdk::NatState;
use crate::sdk::RouteInfo;
use crate::sdk::RouteTableInfo;
use crate::sdk::RouteTarget;
use crate::sdk::SubnetInfo;
use crate::sdk::VpcInfo;

pub(super) fn sdk_filters(filters: Vec<Filter>) -> Option<Vec<SdkFilter>> {
    Some(filters.into_iter().map(|f| SdkFilter::builder().name(f.name).set_values(Some(f.values)).build()).collect())
}

pub(super) use dify_stack_aws::ec2::{tag_spec, tags_of};

pub(super) fn vpc_info(v: &aws_sdk_ec2::types::Vpc) -> VpcInfo {
    VpcInfo {
        id: VpcId::new(v.vpc_id().unwrap_or_default()),
        cidr: v.cidr_block().unwrap_or_default().to_owned(),
        tags: tags_of(v.tags()),
    }
}

pub(super) fn subnet_info(s: &aws_sdk_ec2::types::Subnet) -> SubnetInfo {
    SubnetInfo {
        id: SubnetId::new(s.subnet_id().unwrap_or_default()),
        vpc_id: VpcId::new(s.vpc_id().unwrap_or_default()),
        cidr: s.cidr_block().unwrap_or_default().to_owned(),
        az: s.availability_zone().unwrap_or_default().to_owned(),
        tags: tags_of(s.tags()),
    }
}

pub(super) fn igw_info(g: &aws_sdk_ec2::types::InternetGateway) -> IgwInfo {
    IgwInfo {
        id: InternetGatewayId::new(g.internet_gateway_id().unwrap_or_default()),
        attached_vpcs: g.attachments().iter().filter_map(|a| a.vpc_id()).map(VpcId::new).collect(),
        tags: tags_of(g.tags()),
    }
}

pub(super) fn nat_info(n: &aws_sdk_ec2::types::NatGateway) -> NatInfo {
    let state = match n.state() {
        Some(NatGatewayState::Pending) => NatState::Pending,
        Some(NatGatewayState::Available) => NatState::Available,
        Some(NatGatewayState::Deleting) => NatState::Deleting,
        Some(NatGatewayState::Failed) => NatState::Failed,
        _ => NatState::Deleted,
    };
    let address = n.nat_gateway_addresses().first();
    NatInfo {
        id: NatGatewayId::new(n.nat_gateway_id().unwrap_or_default()),
        subnet_id: SubnetId::new(n.subnet_id().unwrap_or_default()),
        vpc_id: n.vpc_id().map(VpcId::new),
        state,
        allocation_id: address.and_then(|a| a.allocation_id()).map(AllocationId::new),
        public_ip: address.and_then(|a| a.public_ip()).map(str::to_owned),
        tags: tags_of(n.tags()),
    }
}

pub(super) fn route_table_info(t: &aws_sdk_ec2::types::RouteTable) -> RouteTableInfo {
    let routes = t
        .routes()
        .iter()
        .filter_map(|r| {
            let destination = r.destination_cidr_block()?.to_owned();
            let target = if let Some(nat) = r.nat_gateway_id() {
                RouteTarget::NatGateway(NatGatewayId::new(nat))
            } else {
                match r.gateway_id() {
                    Some("local") => RouteTarget::Local,
                    Some(g) if g.starts_with("igw-") => RouteTarget::Gateway(InternetGatewayId::new(g)),
                    Some(g) => RouteTarget::Other(g.to_owned()),
                    None => RouteTarget::Other(
                        r.transit_gateway_id()
                            .or(r.vpc_peering_connection_id())
                            .or(r.network_interface_id())
                            .or(r.instance_id())
                            .unwrap_or("unknown")
                            .to_owned(),
                    ),
                }
            };
            Some(RouteInfo { destination, target })
        })
        .collect();
    let associations = t
        .associations()
        .iter()
        .map(|a| AssociationInfo {
            id: a.route_table_association_id().unwrap_or_default().to_owned(),
            subnet_id: a.subnet_id().map(SubnetId::new),
            main: a.main().unwrap_or(false),
        })
        .collect();
    RouteTableInfo {
        id: RouteTableId::new(t.route_table_id().unwrap_or_default()),
        vpc_id: VpcId::new(t.vpc_id().unwrap_or_default()),
        routes,
        associations,
        tags: tags_of(t.tags()),
    }
}
