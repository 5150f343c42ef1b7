//! The capacity preflight: before the first write, does the stack fit the account's quotas and
//! the private subnets' addresses? Read-only: a few EC2 reads and, with a [`QuotasApi`], the
//! Service Quotas reads of [`crate::quotas`].
//!
//! What it checks:
//! - **Elastic IPs** (new VPC only; an existing VPC gets no NAT gateway from the stack): the
//!   addresses the plan would allocate (one per NAT gateway, [`NewVpcSpec::nat_count`], minus
//!   those the stack already owns, matched as the diff matches them) against the account's quota
//!   in the region, EC2 `DescribeAccountAttributes` attribute `vpc-max-elastic-ips` ("the maximum
//!   number of Elastic IP addresses that you can allocate", EC2 API reference,
//!   DescribeAccountAttributes), less what `DescribeAddresses` lists (every address of the
//!   account in the region counts, the stack's or not).
//! - **Private subnet addresses**: the node group's most nodes spread over the AZs (rounded up
//!   per AZ) times the addresses the VPC CNI may take per node (the instance type's network
//!   interfaces x IPv4 addresses per interface: [`network_limits`]) against each new private
//!   subnet's usable addresses (2^(32-prefix) - 5: "the first four IP addresses and the last IP
//!   address in each subnet CIDR block are not available for your use", VPC user guide, "Subnet
//!   CIDR blocks") or, for an existing VPC, the free addresses per AZ (`AvailableIpAddressCount`
//!   of its private subnets there).
//!
//! - **Service Quotas** (with a [`QuotasApi`]; without one a note names them as not read), each
//!   only when the stack would make one more: VPCs per Region and internet gateways per Region
//!   (in use: every VPC and internet gateway `DescribeVpcs` / `DescribeInternetGateways` list,
//!   the default VPC's included), NAT gateways per Availability Zone (per zone the stack would put
//!   a missing NAT gateway in, [`crate::provisioner`]'s zone choice; in use: NAT gateways there in
//!   the `pending`, `available` or `deleting` state, which "count against your quota", VPC user
//!   guide, "Amazon VPC quotas"), and EKS clusters per Region (in use: the EKS tier's count,
//!   [`ClusterUse`]).
//!
//! A read that is refused (AccessDenied), not implemented by the client or failing for any other
//! reason becomes a note and the check goes on: the preflight never fails an apply because it
//! could not look. Only a shortfall it could prove is an error, [`CapacityShortfall`], listing
//! every one with its fix.

use std::collections::BTreeMap;
use std::fmt;

use dify_stack_core::{AwsError, Classify, Context, ErrorKind};
use ipnet::Ipv4Net;

use crate::NetworkProvisioner;
use crate::client::{AddressInfo, Ec2Api, Filter, NatState};
use crate::model::{Desired, find, is_network};
use crate::provisioner::usable_zones;
use crate::quotas::{EKS_CLUSTERS, INTERNET_GATEWAYS, NAT_GATEWAYS_PER_AZ, Quota, QuotasApi, VPCS};
use crate::spec::{ExistingVpcSpec, NatMode, NetworkSpec, NewVpcSpec, VpcSpec};

/// The `DescribeAccountAttributes` attribute holding the Elastic IP quota of the region.
pub const EIP_QUOTA_ATTRIBUTE: &str = "vpc-max-elastic-ips";
/// Service Quotas code of "EC2-VPC Elastic IPs" (service `ec2`): the quota
/// `vpc-max-elastic-ips` reports.
pub const EIP_QUOTA_CODE: &str = "L-0263D0A3";
/// The default Elastic IP quota per Region (VPC user guide, "Amazon VPC quotas": "Elastic IP
/// addresses per Region: 5").
pub const DEFAULT_EIP_QUOTA: u32 = 5;
/// Addresses AWS reserves in every subnet: the first four and the last (VPC user guide, "Subnet
/// CIDR blocks").
pub const RESERVED_PER_SUBNET: u64 = 5;
/// The tag the VPC CNI puts on the network interfaces it attaches to a cluster's nodes
/// (amazon-vpc-cni-k8s, `pkg/awsutils/awsutils.go`, `eniClusterTagKey`).
pub const CNI_CLUSTER_TAG: &str = "cluster.k8s.amazonaws.com/name";

/// What the EKS tier asks of the account: its node group's addresses in the private subnets
/// (`eks.node_group`: its instance types and its maximum size) and its cluster.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct NodeDemand {
    /// The node group's instance types (the most addresses per node among them counts).
    pub instance_types: Vec<String>,
    /// The node group's maximum size.
    pub max_nodes: u32,
    /// The region's EKS clusters, for the clusters-per-Region quota; `None`: not counted (the
    /// quota is then noted as not checked).
    pub clusters: Option<ClusterUse>,
}

/// The EKS clusters of the region (EKS `ListClusters`) and whether the stack would add one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ClusterUse {
    /// Clusters in the region now.
    pub in_region: u32,
    /// The stack's cluster does not exist yet.
    pub makes_one: bool,
}

/// A network interface limit of an instance type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NetworkLimits {
    /// Most network interfaces.
    pub interfaces: u32,
    /// Most IPv4 addresses per interface (the primary one included).
    pub ipv4_per_interface: u32,
}

impl NetworkLimits {
    /// The most private addresses the VPC CNI takes on one node: every interface filled.
    pub fn addresses(self) -> u64 {
        u64::from(self.interfaces) * u64::from(self.ipv4_per_interface)
    }
}

/// The Graviton families whose sizes share one table of network limits.
const GRAVITON_FAMILIES: [&str; 9] = ["m6g", "c6g", "r6g", "m7g", "c7g", "r7g", "m8g", "c8g", "r8g"];

/// Network interfaces x IPv4 addresses per interface of the Graviton general purpose, compute
/// and memory optimized types the profiles use (`m7g.xlarge`, `m7g.2xlarge`) and their
/// siblings: EC2 user guide, "Maximum IP addresses per network interface" (the same figures as
/// the VPC CNI's `pkg/vpc/vpc_ip_resource_limit.go`, `ENILimit` / `IPv4Limit`, where every size
/// below is equal across m/c/r 6g, 7g and 8g). `None` for any other type (metal sizes, `gd`/`gn`
/// variants, other families): the preflight skips it with a note.
pub fn network_limits(instance_type: &str) -> Option<NetworkLimits> {
    let (family, size) = instance_type.split_once('.')?;
    if !GRAVITON_FAMILIES.contains(&family) {
        return None;
    }
    let (interfaces, ipv4_per_interface) = match size {
        "medium" => (2, 4),
        "large" => (3, 10),
        "xlarge" | "2xlarge" => (4, 15),
        "4xlarge" | "8xlarge" | "12xlarge" => (8, 30),
        "16xlarge" => (15, 50),
        _ => return None,
    };
    Some(NetworkLimits { interfaces, ipv4_per_interface })
}

/// Usable addresses of a subnet: all of its CIDR but the 5 AWS reserves.
pub fn usable_addresses(cidr: &Ipv4Net) -> u64 {
    (1u64 << (32 - u32::from(cidr.prefix_len()))).saturating_sub(RESERVED_PER_SUBNET)
}

/// The longest prefix (smallest subnet, AWS allows /16-/28) whose usable addresses hold `need`.
fn prefix_for(need: u64) -> Option<u8> {
    (16..=28u8).rev().find(|p| (1u64 << (32 - u32::from(*p))).saturating_sub(RESERVED_PER_SUBNET) >= need)
}

/// One quota or subnet the stack does not fit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Shortfall {
    /// The quota (with its Service Quotas code) or the subnet(s).
    pub quota: String,
    /// The quota's value, or the subnets' usable addresses.
    pub limit: u64,
    /// What is in use now.
    pub in_use: u64,
    /// What the stack would add.
    pub need: u64,
    /// How to make it fit.
    pub fix: String,
}

impl fmt::Display for Shortfall {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}: limit {}, in use {}, the stack needs {} more ({} short). Fix: {}",
            self.quota,
            self.limit,
            self.in_use,
            self.need,
            (self.in_use + self.need).saturating_sub(self.limit),
            self.fix
        )
    }
}

/// The stack does not fit: every shortfall the preflight proved, each with its fix. Nothing was
/// changed. Permanent until a quota is raised or the configuration changes.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "capacity preflight: the stack does not fit, nothing was changed:\n{}",
    items.iter().map(|i| format!("  - {i}")).collect::<Vec<_>>().join("\n")
)]
pub struct CapacityShortfall {
    /// Every shortfall.
    pub items: Vec<Shortfall>,
}

impl Classify for CapacityShortfall {
    fn kind(&self) -> ErrorKind {
        ErrorKind::Refused
    }
}

impl NetworkProvisioner {
    /// [`capacity_preflight`] over this provisioner's client.
    pub async fn preflight(
        &self,
        ctx: &Context,
        spec: &NetworkSpec,
        nodes: &NodeDemand,
    ) -> Result<Vec<String>, CapacityShortfall> {
        capacity_preflight(self.client(), self.quotas(), ctx, spec, nodes).await
    }
}

/// Checks, read-only, that the stack fits the account's quotas and that the node group fits the
/// private subnets (module docs). `Ok` with notes (what fits, what could not be read or was
/// skipped, the quotas not read); `Err` listing every shortfall.
pub async fn capacity_preflight(
    ec2: &dyn Ec2Api,
    quotas: Option<&dyn QuotasApi>,
    ctx: &Context,
    spec: &NetworkSpec,
    nodes: &NodeDemand,
) -> Result<Vec<String>, CapacityShortfall> {
    let mut run = Run::default();
    match spec.vpc() {
        VpcSpec::New(new) => {
            run.elastic_ips(ec2, ctx, spec, new).await;
            run.new_subnets(new, nodes);
        }
        VpcSpec::Existing(existing) => run.existing_subnets(ec2, spec, existing, nodes).await,
    }
    match quotas {
        Some(quotas) => run.service_quotas(ec2, quotas, ctx, spec, nodes).await,
        None => run.notes.push(not_read(spec.vpc())),
    }
    if run.items.is_empty() { Ok(run.notes) } else { Err(CapacityShortfall { items: run.items }) }
}

/// What one quota check is about: where (a zone, else the region), what is in use there, what
/// the stack makes, and the fix besides an increase.
#[derive(Clone, Copy)]
struct Use<'a> {
    zone: Option<&'a str>,
    in_use: u64,
    need: u64,
    other_fix: &'a str,
}

#[derive(Default)]
struct Run {
    notes: Vec<String>,
    items: Vec<Shortfall>,
}

/// The note of a check that could not read: refused, not implemented, or failed.
fn unread(what: &str, e: &AwsError) -> String {
    let op = e.operation;
    let service = if op.contains("Quota") { "servicequotas" } else { "ec2" };
    match (e.kind, e.code.as_deref()) {
        (ErrorKind::AccessDenied, code) => format!(
            "{what} not checked: {op} was refused ({}); allow {service}:{op} to have it checked",
            code.unwrap_or("access denied")
        ),
        (_, Some("NotImplemented" | "InvalidAction")) => {
            format!("{what} not checked: {op} is not implemented by this endpoint")
        }
        _ => format!("{what} not checked: {e}"),
    }
}

/// The quotas only the Service Quotas API tells, with their codes (VPC user guide, "Amazon VPC
/// quotas": VPCs per Region 5, internet gateways per Region 5, NAT gateways per Availability
/// Zone 5; EKS user guide, "Amazon EKS service quotas": clusters 100).
fn not_read(vpc: VpcSpec<'_>) -> String {
    let eks = "EKS clusters per Region (eks L-1194D53C, default 100; the stack makes 1)";
    let list = match vpc {
        VpcSpec::New(new) => {
            let nat = match new.nat {
                NatMode::PerAz => "1 per AZ",
                NatMode::Single => "1",
            };
            format!(
                "VPCs per Region (vpc L-F678F1CE, default 5; the stack makes 1), internet gateways per Region (vpc L-A4707A72, default 5; 1), NAT gateways per Availability Zone (vpc L-FE5A380F, default 5; {nat}), {eks}"
            )
        }
        VpcSpec::Existing(_) => eks.to_owned(),
    };
    format!(
        "quotas not read (this preflight was given no Service Quotas client): {list}; if apply stops on one, raise it in the Service Quotas console"
    )
}

impl Run {
    /// The Service Quotas checks (module docs): each quota the stack would take one more of.
    async fn service_quotas(
        &mut self,
        ec2: &dyn Ec2Api,
        quotas: &dyn QuotasApi,
        ctx: &Context,
        spec: &NetworkSpec,
        nodes: &NodeDemand,
    ) {
        if let VpcSpec::New(new) = spec.vpc() {
            let ours = |tags: &dify_stack_core::Tags| ctx.owns_tags(tags) && is_network(tags);
            let (vpcs, igws) = tokio::join!(ec2.describe_vpcs(Vec::new()), ec2.describe_internet_gateways(Vec::new()));
            match vpcs {
                Ok(vpcs) if !vpcs.iter().any(|v| ours(&v.tags)) => {
                    let other_fix = "or delete a VPC nothing uses";
                    let use_ = Use { zone: None, in_use: vpcs.len() as u64, need: 1, other_fix };
                    self.quota(quotas, ctx, VPCS, use_).await;
                }
                Ok(_) => {}
                Err(e) => self.notes.push(unread(VPCS.name, &e)),
            }
            match igws {
                Ok(igws) if !igws.iter().any(|i| ours(&i.tags)) => {
                    let other_fix = "or delete an internet gateway nothing uses (this quota follows VPCs per Region)";
                    let use_ = Use { zone: None, in_use: igws.len() as u64, need: 1, other_fix };
                    self.quota(quotas, ctx, INTERNET_GATEWAYS, use_).await;
                }
                Ok(_) => {}
                Err(e) => self.notes.push(unread(INTERNET_GATEWAYS.name, &e)),
            }
            self.nat_gateways(ec2, quotas, ctx, spec, new).await;
        }
        match nodes.clusters {
            Some(ClusterUse { makes_one: false, .. }) => {}
            Some(ClusterUse { in_region, makes_one: true }) => {
                let other_fix = "or delete an EKS cluster nothing uses";
                let use_ = Use { zone: None, in_use: u64::from(in_region), need: 1, other_fix };
                self.quota(quotas, ctx, EKS_CLUSTERS, use_).await;
            }
            None => self.notes.push(format!(
                "{EKS_CLUSTERS} not checked: the region's clusters were not counted (default {}; the stack makes 1)",
                EKS_CLUSTERS.default
            )),
        }
    }

    /// NAT gateways per Availability Zone: per zone where the stack would make a NAT gateway it
    /// has not yet, those already there (pending, available or deleting) against the quota.
    async fn nat_gateways(
        &mut self,
        ec2: &dyn Ec2Api,
        quotas: &dyn QuotasApi,
        ctx: &Context,
        spec: &NetworkSpec,
        new: &NewVpcSpec,
    ) {
        let what = NAT_GATEWAYS_PER_AZ.name;
        let zones = match usable_zones(ec2, ctx, spec, usize::from(new.az_count)).await {
            Ok(z) => z,
            Err(e) => return self.notes.push(format!("{what} not checked: {e}")),
        };
        let nats = match ec2.describe_nat_gateways(Vec::new()).await {
            Ok(n) => n,
            Err(e) => return self.notes.push(unread(what, &e)),
        };
        let counted: Vec<_> = nats
            .into_iter()
            .filter(|n| matches!(n.state, NatState::Pending | NatState::Available | NatState::Deleting))
            .collect();
        let ours: Vec<_> = counted.iter().filter(|n| ctx.owns_tags(&n.tags) && is_network(&n.tags)).cloned().collect();
        let wanted = Desired::new(ctx, spec, new, &zones).nats;
        let missing: Vec<&String> =
            wanted.iter().zip(&zones).filter(|(w, _)| find(&ours, w).is_none()).map(|(_, z)| z).collect();
        if missing.is_empty() {
            return;
        }
        // The zone of each NAT gateway there is its subnet's.
        let subnet_ids: Vec<&str> = counted.iter().map(|n| n.subnet_id.as_str()).collect();
        let subnets = if subnet_ids.is_empty() {
            Ok(Vec::new())
        } else {
            ec2.describe_subnets(vec![Filter::new("subnet-id", subnet_ids)]).await
        };
        let subnets = match subnets {
            Ok(s) => s,
            Err(e) => return self.notes.push(unread(what, &e)),
        };
        // One value for every zone of the region: read once.
        let Some(limit) = self.read(quotas, NAT_GATEWAYS_PER_AZ, 1).await else { return };
        for zone in missing {
            let in_use =
                counted.iter().filter(|n| subnets.iter().any(|s| s.id == n.subnet_id && s.az == *zone)).count() as u64;
            let other_fix = "or delete NAT gateways nothing uses there";
            self.judge(ctx, NAT_GATEWAYS_PER_AZ, limit, Use { zone: Some(zone), in_use, need: 1, other_fix });
        }
    }

    /// One quota read and judged: a shortfall, a note that it fits, or a note that it could not
    /// be read.
    async fn quota(&mut self, quotas: &dyn QuotasApi, ctx: &Context, quota: Quota, use_: Use<'_>) {
        if let Some(limit) = self.read(quotas, quota, use_.need).await {
            self.judge(ctx, quota, limit, use_);
        }
    }

    /// The quota's value; `None` after a note saying why it could not be read.
    async fn read(&mut self, quotas: &dyn QuotasApi, quota: Quota, need: u64) -> Option<u64> {
        match quotas.quota_value(quota).await {
            // Quota values are whole counts sent as doubles.
            Ok(v) if v.is_finite() && v >= 0.0 => Some(v as u64),
            Ok(v) => {
                self.notes.push(format!("{quota} not checked: Service Quotas answered {v}"));
                None
            }
            Err(e) => {
                self.notes.push(format!(
                    "{} (default {}; the stack makes {need})",
                    unread(&quota.to_string(), &e),
                    quota.default
                ));
                None
            }
        }
    }

    /// A read quota against what is in use and what the stack makes.
    fn judge(&mut self, ctx: &Context, quota: Quota, limit: u64, use_: Use<'_>) {
        let region = ctx.region();
        let Use { zone, in_use, need, other_fix } = use_;
        let place = zone.unwrap_or(region);
        if in_use + need > limit {
            self.items.push(Shortfall {
                quota: format!("{quota} in {place}"),
                limit,
                in_use,
                need,
                fix: format!(
                    "request an increase of {} to at least {} in the Service Quotas console ({region}), {other_fix}",
                    quota.code,
                    in_use + need
                ),
            });
        } else {
            self.notes
                .push(format!("{quota} in {place}: quota {limit}, {in_use} in use, the stack makes {need}: fits"));
        }
    }

    /// The Elastic IPs the plan would allocate against the quota.
    async fn elastic_ips(&mut self, ec2: &dyn Ec2Api, ctx: &Context, spec: &NetworkSpec, new: &NewVpcSpec) {
        const WHAT: &str = "Elastic IP quota";
        let addresses = match ec2.describe_addresses(Vec::new()).await {
            Ok(a) => a,
            Err(e) => return self.notes.push(unread(WHAT, &e)),
        };
        // The stack's own, matched to the wanted ones as the diff matches them (by logical id,
        // or by Name when made before logical ids); the zones play no part in an address.
        let ours: Vec<AddressInfo> =
            addresses.iter().filter(|a| ctx.owns_tags(&a.tags) && is_network(&a.tags)).cloned().collect();
        let wanted = Desired::new(ctx, spec, new, &[]).eips;
        let need = wanted.iter().filter(|e| find(&ours, e).is_none()).count() as u64;
        if need == 0 {
            // Nothing to allocate: the quota is not asked for.
            return;
        }
        let in_use = addresses.len() as u64;
        let region = ctx.region();
        match ec2.elastic_ip_quota().await {
            Ok(Some(limit)) if in_use + need > u64::from(limit) => {
                let single = if new.nat == NatMode::PerAz && need > 1 {
                    ", or set network.new.nat = \"single\" (one NAT gateway, one address)"
                } else {
                    ""
                };
                self.items.push(Shortfall {
                    quota: format!("Elastic IP addresses in {region} (Service Quotas: ec2 {EIP_QUOTA_CODE}, EC2-VPC Elastic IPs; one per NAT gateway)"),
                    limit: u64::from(limit),
                    in_use,
                    need,
                    fix: format!(
                        "request an increase of {EIP_QUOTA_CODE} to at least {} in the Service Quotas console ({region}), or release Elastic IPs nothing uses{single}",
                        in_use + need
                    ),
                });
            }
            Ok(Some(limit)) => self.notes.push(format!(
                "Elastic IP addresses in {region}: quota {limit}, {in_use} in use, the stack allocates {need} (one per NAT gateway): fits"
            )),
            Ok(None) => self.notes.push(format!(
                "{WHAT} not checked: DescribeAccountAttributes did not list {EIP_QUOTA_ATTRIBUTE} (the default is {DEFAULT_EIP_QUOTA}; the stack allocates {need}, {in_use} in use)"
            )),
            Err(e) => self.notes.push(unread(WHAT, &e)),
        }
    }

    /// The most addresses one node may take, over the node group's instance types; notes the
    /// types not in the table. `None` when nothing can be checked.
    fn per_node(&mut self, nodes: &NodeDemand) -> Option<(u64, String)> {
        if nodes.max_nodes == 0 || nodes.instance_types.is_empty() {
            return None;
        }
        let (known, unknown): (Vec<_>, Vec<_>) = nodes.instance_types.iter().partition(|t| network_limits(t).is_some());
        let table = "the table covers m/c/r 6g, 7g and 8g, medium to 16xlarge (EC2 user guide, \"Maximum IP addresses per network interface\")";
        let unknown = unknown.iter().map(|t| t.as_str()).collect::<Vec<_>>().join(", ");
        let best = known.iter().filter_map(|t| network_limits(t).map(|l| (l.addresses(), t.as_str()))).max();
        match best {
            None => {
                self.notes.push(format!(
                    "private subnet capacity not checked: no addresses-per-node figure for {unknown} ({table})"
                ));
                None
            }
            Some((addresses, t)) => {
                if !unknown.is_empty() {
                    self.notes.push(format!(
                        "private subnet capacity: {unknown} skipped, no addresses-per-node figure ({table}); checked with {t}"
                    ));
                }
                Some((addresses, t.to_owned()))
            }
        }
    }

    /// A new VPC's private subnets (from their CIDRs) against the node group.
    fn new_subnets(&mut self, new: &NewVpcSpec, nodes: &NodeDemand) {
        let Some((per_node, itype)) = self.per_node(nodes) else { return };
        let cidrs = new.private_cidrs();
        if cidrs.is_empty() {
            return; // an invalid spec: validation says why
        }
        let per_az = nodes.max_nodes.div_ceil(cidrs.len() as u32);
        let need = u64::from(per_az) * per_node;
        let before = self.items.len();
        for (i, cidr) in cidrs.iter().enumerate() {
            let limit = usable_addresses(cidr);
            if need > limit {
                let larger = match prefix_for(need) {
                    Some(p) => format!("a /{p} holds {}", (1u64 << (32 - u32::from(p))) - RESERVED_PER_SUBNET),
                    None => "no subnet of /16 or smaller holds it".to_owned(),
                };
                self.items.push(Shortfall {
                    quota: format!(
                        "private subnet {} ({cidr}): up to {per_az} node(s) of {} {itype} in its AZ, {per_node} addresses each (VPC CNI: network interfaces x IPv4 per interface)",
                        i + 1,
                        nodes.max_nodes
                    ),
                    limit,
                    in_use: 0,
                    need,
                    fix: format!(
                        "give larger private subnets in network.new.private_subnets, one CIDR per AZ inside network.new.cidr {} ({larger}), or lower eks.node_group.max",
                        new.cidr
                    ),
                });
            }
        }
        if self.items.len() == before {
            let smallest = cidrs.iter().map(usable_addresses).min().unwrap_or_default();
            self.notes.push(format!(
                "private subnets: up to {per_az} node(s) of {itype} per AZ take up to {need} addresses ({per_node} each); the smallest subnet has {smallest}: fits"
            ));
        }
    }

    /// An existing VPC's private subnets (free addresses per AZ) against the node group.
    async fn existing_subnets(
        &mut self,
        ec2: &dyn Ec2Api,
        spec: &NetworkSpec,
        existing: &ExistingVpcSpec,
        nodes: &NodeDemand,
    ) {
        const WHAT: &str = "private subnet capacity";
        let Some((per_node, itype)) = self.per_node(nodes) else { return };
        let ids = existing.private_subnet_ids.clone();
        if ids.is_empty() {
            return;
        }
        let cni = vec![
            Filter::new("subnet-id", ids.iter().map(|i| i.as_str())),
            Filter::new(format!("tag:{CNI_CLUSTER_TAG}"), [spec.cluster_name.as_str()]),
        ];
        let (subnets, enis) = tokio::join!(ec2.subnet_capacity(ids), ec2.describe_network_interfaces(cni));
        let subnets = match subnets {
            Ok(s) => s,
            Err(e) => return self.notes.push(unread(WHAT, &e)),
        };
        // Per AZ: (usable, available, subnet ids). The node group spreads over AZs, not subnets.
        let mut by_az: BTreeMap<&str, (u64, u64, Vec<&str>)> = BTreeMap::new();
        for s in &subnets {
            let e = by_az.entry(s.az.as_str()).or_default();
            let available = u64::from(s.available);
            e.0 += s.cidr.parse::<Ipv4Net>().map(|c| usable_addresses(&c)).unwrap_or(available);
            e.1 += available;
            e.2.push(s.id.as_str());
        }
        if by_az.is_empty() {
            return;
        }
        let per_az = nodes.max_nodes.div_ceil(by_az.len() as u32);
        let need = u64::from(per_az) * per_node;
        // The cluster's nodes already there hold addresses the free count leaves out: a
        // shortfall is then not proven, only noted (as when that could not be read).
        let running = match &enis {
            Ok(e) => (!e.is_empty()).then_some("the cluster's nodes already hold addresses there"),
            Err(_) => Some("whether the cluster's nodes already hold addresses there could not be read"),
        };
        let mut fits = true;
        for (az, (usable, available, ids)) in &by_az {
            if need <= *available {
                continue;
            }
            fits = false;
            let subnets = ids.join(", ");
            match running {
                Some(why) => self.notes.push(format!(
                    "private subnets in {az} ({subnets}): {available} addresses free, up to {need} wanted for {per_az} node(s) of {itype}; {why}, so this is not judged"
                )),
                None => self.items.push(Shortfall {
                    quota: format!(
                        "private subnets in {az} ({subnets}): up to {per_az} node(s) of {} {itype} in the AZ, {per_node} addresses each (VPC CNI: network interfaces x IPv4 per interface)",
                        nodes.max_nodes
                    ),
                    limit: *usable,
                    in_use: usable.saturating_sub(*available),
                    need,
                    fix: format!(
                        "free addresses there, or add a larger private subnet in {az} to network.existing.private_subnet_ids, or lower eks.node_group.max"
                    ),
                }),
            }
        }
        if fits {
            let least = by_az.values().map(|v| v.1).min().unwrap_or_default();
            self.notes.push(format!(
                "private subnets: up to {per_az} node(s) of {itype} per AZ take up to {need} addresses ({per_node} each); the AZ with the fewest free has {least}: fits"
            ));
        }
    }
}
