//! Names, desired resources and observed state of the network tier.

use dify_stack_core::ids::{SubnetId, VpcId};
use dify_stack_core::{Context, TAG_ID, Tags, Tier};
use serde::Serialize;

use crate::client::{AddressInfo, DnsAttributes, IgwInfo, NatInfo, RouteTableInfo, SubnetInfo, VpcInfo};
use crate::spec::{NetworkSpec, NewVpcSpec};

/// Tag that marks public subnets for internet-facing load balancers.
pub const K8S_ELB_TAG: &str = "kubernetes.io/role/elb";
/// Tag that marks private subnets for internal load balancers.
pub const K8S_INTERNAL_ELB_TAG: &str = "kubernetes.io/role/internal-elb";

/// The Kubernetes cluster tag key for `cluster`.
pub fn k8s_cluster_tag(cluster: &str) -> String {
    format!("kubernetes.io/cluster/{cluster}")
}

/// Public or private.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum SubnetRole {
    /// Routed to the internet gateway; holds NAT gateways and public load balancers.
    Public,
    /// Routed through a NAT gateway; holds nodes, the control plane ENIs and the datastores.
    Private,
}

impl SubnetRole {
    pub(crate) fn label(self) -> &'static str {
        match self {
            SubnetRole::Public => "public",
            SubnetRole::Private => "private",
        }
    }

    pub(crate) fn component(self) -> &'static str {
        match self {
            SubnetRole::Public => "public-subnet",
            SubnetRole::Private => "private-subnet",
        }
    }

    /// The Kubernetes ELB discovery tag of this role.
    pub fn elb_tag(self) -> &'static str {
        match self {
            SubnetRole::Public => K8S_ELB_TAG,
            SubnetRole::Private => K8S_INTERNAL_ELB_TAG,
        }
    }
}

/// The Kubernetes tags a subnet of `role` needs for `cluster`.
pub fn k8s_subnet_tags(role: SubnetRole, cluster: &str) -> Tags {
    Tags::from([(role.elb_tag().to_owned(), "1".to_owned()), (k8s_cluster_tag(cluster), "shared".to_owned())])
}

/// A desired resource's identity and tags: its logical id (the `dify-stack:id` tag, which with
/// the ownership tag finds it), its `Name` and the full tag set (both included).
#[derive(Debug, Clone)]
pub(crate) struct Named {
    pub(crate) name: String,
    pub(crate) id: String,
    pub(crate) tags: Tags,
}

#[derive(Debug, Clone)]
pub(crate) struct DesiredSubnet {
    pub(crate) named: Named,
    pub(crate) role: SubnetRole,
    pub(crate) cidr: String,
    pub(crate) az: String,
}

#[derive(Debug, Clone)]
pub(crate) struct DesiredRouteTable {
    pub(crate) named: Named,
    /// Index of the NAT gateway private tables route to; `None` for the public table.
    pub(crate) nat: Option<usize>,
    /// The subnets associated with it.
    pub(crate) subnets: Vec<Named>,
}

/// Everything a new-VPC network consists of, with names and tags.
#[derive(Debug, Clone)]
pub(crate) struct Desired {
    pub(crate) vpc: Named,
    pub(crate) cidr: String,
    pub(crate) public: Vec<DesiredSubnet>,
    pub(crate) private: Vec<DesiredSubnet>,
    pub(crate) igw: Named,
    pub(crate) eips: Vec<Named>,
    /// NAT gateway i lives in public subnet i and uses EIP i.
    pub(crate) nats: Vec<Named>,
    pub(crate) public_rt: DesiredRouteTable,
    pub(crate) private_rts: Vec<DesiredRouteTable>,
}

use crate::names;

impl Desired {
    pub(crate) fn new(ctx: &Context, spec: &NetworkSpec, new: &NewVpcSpec, zones: &[String]) -> Desired {
        let named = |component: &str, name: String, id: String| {
            let mut tags = ctx.tags_for(Tier::Network, component, &name);
            tags.insert(TAG_ID.to_owned(), id.clone());
            Named { tags, name, id }
        };
        let subnets = |role: SubnetRole, cidrs: Vec<ipnet::Ipv4Net>| -> Vec<DesiredSubnet> {
            cidrs
                .into_iter()
                .zip(zones)
                .enumerate()
                .map(|(i, (cidr, az))| {
                    let mut n =
                        named(role.component(), names::subnet(ctx, role, i + 1), names::id::subnet(role, i + 1));
                    n.tags.extend(k8s_subnet_tags(role, &spec.cluster_name));
                    DesiredSubnet { named: n, role, cidr: cidr.to_string(), az: az.clone() }
                })
                .collect()
        };
        let public = subnets(SubnetRole::Public, new.public_cidrs());
        let private = subnets(SubnetRole::Private, new.private_cidrs());
        let nat_count = new.nat_count();
        let public_rt = DesiredRouteTable {
            named: named("public-route-table", names::public_route_table(ctx), names::id::public_route_table()),
            nat: None,
            subnets: public.iter().map(|s| s.named.clone()).collect(),
        };
        let private_rts = private
            .iter()
            .enumerate()
            .map(|(i, s)| DesiredRouteTable {
                named: named(
                    "private-route-table",
                    names::private_route_table(ctx, i + 1),
                    names::id::private_route_table(i + 1),
                ),
                nat: Some(i.min(nat_count - 1)),
                subnets: vec![s.named.clone()],
            })
            .collect();
        Desired {
            vpc: named("vpc", names::vpc(ctx), names::id::vpc()),
            cidr: new.cidr.to_string(),
            igw: named("internet-gateway", names::internet_gateway(ctx), names::id::internet_gateway()),
            eips: (1..=nat_count).map(|i| named("nat-eip", names::nat(ctx, i), names::id::eip(i))).collect(),
            nats: (1..=nat_count).map(|i| named("nat-gateway", names::nat(ctx, i), names::id::nat(i))).collect(),
            public,
            private,
            public_rt,
            private_rts,
        }
    }

    pub(crate) fn subnets(&self) -> impl Iterator<Item = &DesiredSubnet> {
        self.public.iter().chain(self.private.iter())
    }

    pub(crate) fn route_tables(&self) -> impl Iterator<Item = &DesiredRouteTable> {
        std::iter::once(&self.public_rt).chain(self.private_rts.iter())
    }
}

/// The name tag of a resource.
pub(crate) fn name_of(tags: &Tags) -> &str {
    tags.get(dify_stack_core::TAG_NAME).map(String::as_str).unwrap_or_default()
}

/// An observed resource of the tier: its AWS id and its tags.
pub(crate) trait Observed {
    /// The id AWS gave it (`vpc-...`, `subnet-...`, `eipalloc-...`).
    fn aws_id(&self) -> &str;
    /// Its tags.
    fn tags(&self) -> &Tags;
}

macro_rules! observed {
    ($($t:ty => $id:ident),* $(,)?) => {$(
        impl Observed for $t {
            fn aws_id(&self) -> &str {
                self.$id.as_str()
            }
            fn tags(&self) -> &Tags {
                &self.tags
            }
        }
    )*};
}
observed!(
    VpcInfo => id, SubnetInfo => id, IgwInfo => id, AddressInfo => allocation_id, NatInfo => id, RouteTableInfo => id,
);

/// The network tier's: its logical id is one of ours (`network/...`), or it has none (made before
/// logical ids, or by nobody who sets one). An owned resource with another tier's logical id is
/// never the network's to change or delete.
pub(crate) fn is_network(tags: &Tags) -> bool {
    tags.get(TAG_ID).is_none_or(|id| id.starts_with(names::id::PREFIX))
}

/// True when a resource with these tags is the desired one: its logical-id tag is `want.id`; or,
/// made before logical ids (no such tag), its `Name` is `want.name` (the rule before identity
/// tags, used once: the plan then adds the logical id). Never by `Name` when it has a logical id.
pub(crate) fn plays(tags: &Tags, want: &Named) -> bool {
    match tags.get(TAG_ID) {
        Some(id) => *id == want.id,
        None => name_of(tags) == want.name,
    }
}

/// The observed resource that is `want`: of those that [`plays`] it, one carrying the logical id
/// before one found by its `Name`, then the lowest AWS id, whatever order EC2 listed them in.
pub(crate) fn find<'a, T: Observed>(items: &'a [T], want: &Named) -> Option<&'a T> {
    items
        .iter()
        .filter(|i| plays(i.tags(), want))
        .min_by(|a, b| (!a.tags().contains_key(TAG_ID), a.aws_id()).cmp(&(!b.tags().contains_key(TAG_ID), b.aws_id())))
}

/// The network's observed resources that no desired one is: those that play no wanted part and
/// every duplicate of a wanted one besides the one [`find`] picks; by AWS id.
pub(crate) fn extras<'a, T: Observed>(items: &'a [T], wanted: &[&Named]) -> Vec<&'a T> {
    let mut out: Vec<&T> = items
        .iter()
        .filter(|i| is_network(i.tags()))
        .filter(|i| match wanted.iter().find(|w| plays(i.tags(), w)) {
            None => true,
            Some(w) => find(items, w).map(Observed::aws_id) != Some(i.aws_id()),
        })
        .collect();
    out.sort_by(|a, b| a.aws_id().cmp(b.aws_id()));
    out
}

/// What exists of a new-VPC network, owned by the stack.
#[derive(Debug, Clone, Default)]
pub struct ObservedNew {
    /// The first N usable availability zones, in name order.
    pub zones: Vec<String>,
    /// Owned VPCs that are the stack's VPC (normally zero or one; the one in use first).
    pub vpcs: Vec<VpcInfo>,
    /// DNS attributes of the first VPC.
    pub dns: Option<DnsAttributes>,
    /// Owned subnets in that VPC.
    pub subnets: Vec<SubnetInfo>,
    /// Owned internet gateways.
    pub igws: Vec<IgwInfo>,
    /// Owned Elastic IPs.
    pub eips: Vec<AddressInfo>,
    /// Owned NAT gateways that are pending, available or failed.
    pub nats: Vec<NatInfo>,
    /// Owned route tables in that VPC.
    pub route_tables: Vec<RouteTableInfo>,
    /// Per NAT logical id (or `Name`, for a gateway made before logical ids), how many earlier
    /// gateways are failed, deleting or deleted. Part of the next client token, so a replacement
    /// is not answered with the failed gateway.
    pub retired_nats: std::collections::BTreeMap<String, usize>,
}

impl ObservedNew {
    /// The VPC that is kept (the first of any duplicates).
    pub fn vpc(&self) -> Option<&VpcInfo> {
        self.vpcs.first()
    }
}

/// What exists of a bring-your-own VPC.
#[derive(Debug, Clone, Default)]
pub struct ObservedExisting {
    /// The VPC, if it exists.
    pub vpc: Option<VpcInfo>,
    /// The listed subnets that exist.
    pub subnets: Vec<SubnetInfo>,
}

/// The observation of the network tier.
#[derive(Debug, Clone)]
pub enum ObservedNetwork {
    /// A VPC the stack owns.
    New(ObservedNew),
    /// A VPC the stack uses.
    Existing(ObservedExisting),
}

/// One subnet in the output.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct SubnetOutput {
    /// Subnet id.
    pub id: SubnetId,
    /// Its availability zone.
    pub az: String,
    /// Its CIDR.
    pub cidr: String,
}

/// One NAT gateway in the output.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct NatOutput {
    /// NAT gateway id.
    pub id: String,
    /// Its public IP (the stack's egress address).
    pub public_ip: Option<String>,
    /// The public subnet it lives in.
    pub subnet_id: SubnetId,
}

/// What the network tier hands to the other tiers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct NetworkOutput {
    /// The VPC id.
    pub vpc_id: VpcId,
    /// The VPC CIDR.
    pub vpc_cidr: String,
    /// Public subnets, in AZ order.
    pub public_subnets: Vec<SubnetOutput>,
    /// Private subnets, in AZ order.
    pub private_subnets: Vec<SubnetOutput>,
    /// NAT gateways (empty for an existing VPC).
    pub nat_gateways: Vec<NatOutput>,
    /// The public route table (none for an existing VPC).
    pub public_route_table: Option<String>,
    /// The private route tables, one per AZ.
    pub private_route_tables: Vec<String>,
    /// True when the stack owns the VPC.
    pub owned: bool,
}

impl NetworkOutput {
    /// The private subnet ids, in AZ order.
    pub fn private_subnet_ids(&self) -> Vec<SubnetId> {
        self.private_subnets.iter().map(|s| s.id.clone()).collect()
    }
}
