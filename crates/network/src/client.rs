//! The EC2 client the network tier needs, as a trait over typed ids and plain data (the SDK
//! implementation is [`crate::sdk::SdkEc2`]; tests use `MockEc2Api`, exported with the
//! `test-util` feature).

use std::time::Duration;

use async_trait::async_trait;
use dify_stack_core::ids::{
    AllocationId, InternetGatewayId, NatGatewayId, RouteTableId, SecurityGroupId, SubnetId, VpcId,
};
use dify_stack_core::{AwsError, Tags};

/// A Describe filter (`tag:Name`, `vpc-id`, `state`, ...).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Filter {
    /// Filter name.
    pub name: String,
    /// Accepted values.
    pub values: Vec<String>,
}

impl Filter {
    /// A filter on one name with the given values.
    pub fn new<I, S>(name: impl Into<String>, values: I) -> Filter
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        Filter { name: name.into(), values: values.into_iter().map(Into::into).collect() }
    }
}

/// An availability zone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ZoneInfo {
    /// Zone name, e.g. `us-west-2a` (the name-to-zone mapping differs per account).
    pub name: String,
    /// Zone ID, e.g. `usw2-az1` (the same physical zone in every account).
    pub id: String,
    /// State is `available`.
    pub available: bool,
    /// `availability-zone`, `local-zone` or `wavelength-zone`.
    pub zone_type: String,
}

/// A VPC.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VpcInfo {
    /// Its id.
    pub id: VpcId,
    /// Its primary IPv4 CIDR.
    pub cidr: String,
    /// Its tags.
    pub tags: Tags,
}

/// The DNS attributes of a VPC.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DnsAttributes {
    /// `enableDnsSupport`.
    pub support: bool,
    /// `enableDnsHostnames`.
    pub hostnames: bool,
}

/// A subnet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubnetInfo {
    /// Its id.
    pub id: SubnetId,
    /// Its VPC.
    pub vpc_id: VpcId,
    /// Its IPv4 CIDR.
    pub cidr: String,
    /// Its availability zone.
    pub az: String,
    /// Its tags.
    pub tags: Tags,
}

/// An internet gateway.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IgwInfo {
    /// Its id.
    pub id: InternetGatewayId,
    /// The VPCs it is attached to.
    pub attached_vpcs: Vec<VpcId>,
    /// Its tags.
    pub tags: Tags,
}

/// An Elastic IP address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AddressInfo {
    /// Its allocation id.
    pub allocation_id: AllocationId,
    /// The public IPv4 address.
    pub public_ip: Option<String>,
    /// Set while the address is associated (e.g. with a NAT gateway's ENI).
    pub association_id: Option<String>,
    /// Its tags.
    pub tags: Tags,
}

/// The lifecycle state of a NAT gateway.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NatState {
    /// Being created.
    Pending,
    /// Ready.
    Available,
    /// Being deleted.
    Deleting,
    /// Gone (listed for about an hour).
    Deleted,
    /// Creation failed; AWS deletes it by itself.
    Failed,
}

impl NatState {
    /// Pending or available: the gateway is, or will be, usable.
    pub fn is_live(self) -> bool {
        matches!(self, NatState::Pending | NatState::Available)
    }
}

/// A NAT gateway.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NatInfo {
    /// Its id.
    pub id: NatGatewayId,
    /// The public subnet it lives in.
    pub subnet_id: SubnetId,
    /// Its VPC.
    pub vpc_id: Option<VpcId>,
    /// Its state.
    pub state: NatState,
    /// The Elastic IP it uses.
    pub allocation_id: Option<AllocationId>,
    /// Its public IP.
    pub public_ip: Option<String>,
    /// Its tags.
    pub tags: Tags,
}

/// Where a route sends traffic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RouteTarget {
    /// An internet gateway.
    Gateway(InternetGatewayId),
    /// A NAT gateway.
    NatGateway(NatGatewayId),
    /// The VPC-local route.
    Local,
    /// Anything else (peering, transit gateway, instance, ...), described.
    Other(String),
}

impl std::fmt::Display for RouteTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RouteTarget::Gateway(id) => write!(f, "{id}"),
            RouteTarget::NatGateway(id) => write!(f, "{id}"),
            RouteTarget::Local => f.write_str("local"),
            RouteTarget::Other(s) => f.write_str(s),
        }
    }
}

/// One route.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteInfo {
    /// Destination IPv4 CIDR.
    pub destination: String,
    /// Target.
    pub target: RouteTarget,
}

/// A route table association.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AssociationInfo {
    /// Association id (`rtbassoc-...`).
    pub id: String,
    /// The associated subnet, if a subnet association.
    pub subnet_id: Option<SubnetId>,
    /// True for the VPC's main association.
    pub main: bool,
}

/// A route table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteTableInfo {
    /// Its id.
    pub id: RouteTableId,
    /// Its VPC.
    pub vpc_id: VpcId,
    /// Its IPv4 routes.
    pub routes: Vec<RouteInfo>,
    /// Its associations.
    pub associations: Vec<AssociationInfo>,
    /// Its tags.
    pub tags: Tags,
}

/// A network interface.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct EniInfo {
    /// Its id.
    pub id: String,
    /// True when attached to an instance or service.
    pub attached: bool,
    /// Its security groups.
    pub group_ids: Vec<SecurityGroupId>,
    /// Its tags.
    pub tags: Tags,
    /// Its subnet.
    pub subnet_id: Option<SubnetId>,
    /// `available`, `associated`, `attaching`, `in-use` or `detaching`.
    pub status: String,
    /// The attachment's status (`attaching`, `attached`, `detaching`, `detached`), if attached.
    pub attachment_status: Option<String>,
    /// True when another AWS service made it and manages it (a load balancer's, a NAT gateway's,
    /// a database's interface): that service deletes it with its resource (EC2 user guide,
    /// "Requester-managed network interfaces").
    pub requester_managed: bool,
    /// `interface`, `nat_gateway`, `lambda`, `vpc_endpoint`, ...
    pub interface_type: String,
    /// What its maker wrote, e.g. `ELB app/k8s-dify-...` or `Interface for NAT Gateway nat-...`.
    pub description: String,
    /// The public IPv4 address mapped to it, if any.
    pub public_ip: Option<String>,
}

/// A security group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecurityGroupInfo {
    /// Its id.
    pub id: SecurityGroupId,
    /// Its name.
    pub name: String,
    /// Its tags.
    pub tags: Tags,
    /// Its ingress rules (protocol, ports, source), as `dify_stack_aws::ec2::ingress_rules`.
    pub ingress: Vec<dify_stack_aws::ec2::IngressRule>,
}

/// A subnet's free addresses (the capacity preflight reads them for an existing VPC's subnets).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubnetCapacity {
    /// Its id.
    pub id: SubnetId,
    /// Its availability zone.
    pub az: String,
    /// Its IPv4 CIDR.
    pub cidr: String,
    /// `AvailableIpAddressCount`: the IPv4 addresses not in use (the 5 AWS reserves are never
    /// counted as available).
    pub available: u32,
}

/// The error a client answers for a read it does not implement (the preflight notes it and
/// goes on).
pub fn not_implemented(operation: &'static str) -> AwsError {
    AwsError::new(operation, "NotImplemented", "this EC2 client does not implement the call")
}

/// Everything the network tier asks of EC2. Reads are `describe_*`; everything else writes.
#[cfg_attr(any(test, feature = "test-util"), mockall::automock)]
#[async_trait]
pub trait Ec2Api: Send + Sync {
    /// DescribeAvailabilityZones (all zones of the region).
    async fn describe_zones(&self) -> Result<Vec<ZoneInfo>, AwsError>;
    /// DescribeInstanceTypeOfferings by zone ID: the zone IDs where `instance_type` is offered.
    async fn instance_type_zone_ids(&self, instance_type: String) -> Result<Vec<String>, AwsError>;
    /// DescribeVpcs.
    async fn describe_vpcs(&self, filters: Vec<Filter>) -> Result<Vec<VpcInfo>, AwsError>;
    /// DescribeVpcAttribute for both DNS attributes.
    async fn describe_vpc_dns(&self, vpc: VpcId) -> Result<DnsAttributes, AwsError>;
    /// DescribeSubnets.
    async fn describe_subnets(&self, filters: Vec<Filter>) -> Result<Vec<SubnetInfo>, AwsError>;
    /// DescribeInternetGateways.
    async fn describe_internet_gateways(&self, filters: Vec<Filter>) -> Result<Vec<IgwInfo>, AwsError>;
    /// DescribeAddresses.
    async fn describe_addresses(&self, filters: Vec<Filter>) -> Result<Vec<AddressInfo>, AwsError>;
    /// DescribeNatGateways. Tag filters are not reliable everywhere: re-check ownership.
    async fn describe_nat_gateways(&self, filters: Vec<Filter>) -> Result<Vec<NatInfo>, AwsError>;
    /// DescribeRouteTables.
    async fn describe_route_tables(&self, filters: Vec<Filter>) -> Result<Vec<RouteTableInfo>, AwsError>;
    /// DescribeNetworkInterfaces.
    async fn describe_network_interfaces(&self, filters: Vec<Filter>) -> Result<Vec<EniInfo>, AwsError>;
    /// DescribeSecurityGroups.
    async fn describe_security_groups(&self, filters: Vec<Filter>) -> Result<Vec<SecurityGroupInfo>, AwsError>;
    /// DescribeAccountAttributes: the account's Elastic IP quota in the region (attribute
    /// `vpc-max-elastic-ips`); `None` when EC2 does not list it. The default body answers
    /// [`not_implemented`] (clients made before the capacity preflight).
    async fn elastic_ip_quota(&self) -> Result<Option<u32>, AwsError> {
        Err(not_implemented("DescribeAccountAttributes"))
    }
    /// DescribeSubnets by id, with each subnet's `AvailableIpAddressCount`. The default body
    /// answers [`not_implemented`].
    async fn subnet_capacity(&self, ids: Vec<SubnetId>) -> Result<Vec<SubnetCapacity>, AwsError> {
        let _ = ids;
        Err(not_implemented("DescribeSubnets"))
    }

    /// CreateVpc with tags.
    async fn create_vpc(&self, cidr: String, tags: Tags) -> Result<VpcInfo, AwsError>;
    /// ModifyVpcAttribute, one call per given attribute.
    async fn set_vpc_dns(&self, vpc: VpcId, support: Option<bool>, hostnames: Option<bool>) -> Result<(), AwsError>;
    /// CreateSubnet with tags.
    async fn create_subnet(&self, vpc: VpcId, cidr: String, az: String, tags: Tags) -> Result<SubnetInfo, AwsError>;
    /// CreateTags (adds or overwrites).
    async fn create_tags(&self, resources: Vec<String>, tags: Tags) -> Result<(), AwsError>;
    /// DeleteTags by key.
    async fn delete_tags(&self, resources: Vec<String>, keys: Vec<String>) -> Result<(), AwsError>;
    /// CreateInternetGateway with tags.
    async fn create_internet_gateway(&self, tags: Tags) -> Result<IgwInfo, AwsError>;
    /// AttachInternetGateway.
    async fn attach_internet_gateway(&self, igw: InternetGatewayId, vpc: VpcId) -> Result<(), AwsError>;
    /// DetachInternetGateway.
    async fn detach_internet_gateway(&self, igw: InternetGatewayId, vpc: VpcId) -> Result<(), AwsError>;
    /// DeleteInternetGateway.
    async fn delete_internet_gateway(&self, igw: InternetGatewayId) -> Result<(), AwsError>;
    /// AllocateAddress (VPC domain) with tags.
    async fn allocate_address(&self, tags: Tags) -> Result<AddressInfo, AwsError>;
    /// ReleaseAddress.
    async fn release_address(&self, allocation: AllocationId) -> Result<(), AwsError>;
    /// CreateNatGateway with tags and an idempotency token.
    async fn create_nat_gateway(
        &self,
        subnet: SubnetId,
        allocation: AllocationId,
        client_token: String,
        tags: Tags,
    ) -> Result<NatInfo, AwsError>;
    /// DeleteNatGateway.
    async fn delete_nat_gateway(&self, nat: NatGatewayId) -> Result<(), AwsError>;
    /// Waits until the NAT gateways are `available` (a `failed` one is an error). `Ok(false)` when
    /// `max_wait` passed first.
    async fn wait_nat_gateways_available(&self, ids: Vec<NatGatewayId>, max_wait: Duration) -> Result<bool, AwsError>;
    /// Waits until the NAT gateways are `deleted` or gone. `Ok(false)` when `max_wait` passed first.
    async fn wait_nat_gateways_deleted(&self, ids: Vec<NatGatewayId>, max_wait: Duration) -> Result<bool, AwsError>;
    /// CreateRouteTable with tags.
    async fn create_route_table(&self, vpc: VpcId, tags: Tags) -> Result<RouteTableInfo, AwsError>;
    /// CreateRoute.
    async fn create_route(&self, table: RouteTableId, destination: String, target: RouteTarget)
    -> Result<(), AwsError>;
    /// ReplaceRoute.
    async fn replace_route(
        &self,
        table: RouteTableId,
        destination: String,
        target: RouteTarget,
    ) -> Result<(), AwsError>;
    /// AssociateRouteTable; returns the association id.
    async fn associate_route_table(&self, table: RouteTableId, subnet: SubnetId) -> Result<String, AwsError>;
    /// ReplaceRouteTableAssociation; returns the new association id.
    async fn replace_route_table_association(
        &self,
        association: String,
        table: RouteTableId,
    ) -> Result<String, AwsError>;
    /// DisassociateRouteTable.
    async fn disassociate_route_table(&self, association: String) -> Result<(), AwsError>;
    /// DeleteRouteTable.
    async fn delete_route_table(&self, table: RouteTableId) -> Result<(), AwsError>;
    /// DeleteSubnet.
    async fn delete_subnet(&self, subnet: SubnetId) -> Result<(), AwsError>;
    /// DeleteVpc.
    async fn delete_vpc(&self, vpc: VpcId) -> Result<(), AwsError>;
    /// DeleteNetworkInterface.
    async fn delete_network_interface(&self, eni: String) -> Result<(), AwsError>;
    /// DeleteSecurityGroup.
    async fn delete_security_group(&self, group: SecurityGroupId) -> Result<(), AwsError>;
}
