//! The desired state of the network tier.

use std::collections::BTreeSet;

use dify_stack_core::ids::{SubnetId, VpcId};
use dify_stack_core::{Context, Environment, NameKind, SpecErrors};
use ipnet::Ipv4Net;
use serde::{Deserialize, Serialize};

/// Desired network: a new VPC built by the stack, or an existing one the stack only uses.
///
/// The user's part is [`NetworkSettings`] (the `network` section of the stack's configuration
/// file, flattened here); [`validate`](NetworkSpec::validate) reports its violations at their
/// paths in the settings (`new.cidr`, `existing.private_subnet_ids[1]`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NetworkSpec {
    /// Name of the EKS cluster that will use the subnets; every subnet gets the tag
    /// `kubernetes.io/cluster/<cluster_name>=shared`.
    pub cluster_name: String,
    /// Where the VPC comes from: a new one, or `existing`.
    #[serde(flatten)]
    pub settings: NetworkSettings,
    /// EC2 instance types the nodes will use: a new VPC's zones are those where every one is
    /// offered (DescribeInstanceTypeOfferings). Empty: not checked.
    #[serde(default)]
    pub node_instance_types: Vec<String>,
}

/// The network's settings, as the stack's configuration file gives them (its `network`
/// section): a new VPC, used unless `existing` names a VPC to bring.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NetworkSettings {
    /// A new VPC (used unless `existing` is set).
    #[serde(default)]
    pub new: NewVpcSpec,
    /// Bring your own VPC instead.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub existing: Option<ExistingVpcSpec>,
}

/// The VPC the settings select: the new one, or the existing one (a view of
/// [`NetworkSettings`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VpcSpec<'a> {
    /// The stack creates and owns the VPC and everything in it.
    New(&'a NewVpcSpec),
    /// The stack uses a VPC it does not own (bring your own VPC).
    Existing(&'a ExistingVpcSpec),
}

impl NetworkSettings {
    /// A new VPC.
    pub fn new_vpc(new: NewVpcSpec) -> NetworkSettings {
        NetworkSettings { new, existing: None }
    }

    /// An existing VPC.
    pub fn existing_vpc(existing: ExistingVpcSpec) -> NetworkSettings {
        NetworkSettings { new: NewVpcSpec::default(), existing: Some(existing) }
    }

    /// The VPC selected: `existing` when set, else `new`.
    pub fn vpc(&self) -> VpcSpec<'_> {
        match &self.existing {
            Some(existing) => VpcSpec::Existing(existing),
            None => VpcSpec::New(&self.new),
        }
    }

    /// Checks the settings without I/O; every violation at once, each at its path in the
    /// settings: `new.<field>` for a new VPC, `existing.<field>` for an existing one (only the
    /// selected one is checked).
    pub fn validate(&self) -> Result<(), SpecErrors> {
        let mut errors = SpecErrors::new();
        match self.vpc() {
            VpcSpec::New(new) => new.validate_into("new", &mut errors),
            VpcSpec::Existing(existing) => existing.validate_into("existing", &mut errors),
        }
        errors.into_result()
    }
}

impl NetworkSpec {
    /// The VPC the settings select.
    pub fn vpc(&self) -> VpcSpec<'_> {
        self.settings.vpc()
    }
}

/// What finds the network for a destroy ([`Provisioner::destroy_selected`]): the context names
/// and tags everything the stack made, so only whether it made the VPC is needed.
///
/// [`Provisioner::destroy_selected`]: dify_stack_core::Provisioner::destroy_selected
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NetworkSelector {
    /// Whether the stack made the VPC (no `existing` VPC given): its VPC, subnets, gateways and route
    /// tables are found by tag and deleted. `false` (an existing VPC): nothing is deleted (the
    /// ELB discovery tags `tag_subnets` added stay: other clusters may rely on them).
    pub owns_vpc: bool,
}

impl NetworkSelector {
    /// The selector of `spec`.
    pub fn of(spec: &NetworkSpec) -> Self {
        NetworkSelector { owns_vpc: matches!(spec.vpc(), VpcSpec::New(_)) }
    }
}

/// How private subnets reach the internet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NatMode {
    /// One NAT gateway per AZ; each private subnet routes to the NAT in its own AZ (resilient).
    #[default]
    PerAz,
    /// One NAT gateway for all private subnets (cheaper; an AZ outage cuts egress).
    Single,
}

/// A VPC the stack creates.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewVpcSpec {
    /// VPC IPv4 CIDR. Default `10.0.0.0/16`.
    #[serde(default = "default_cidr")]
    pub cidr: Ipv4Net,
    /// Number of availability zones (the first N available zones of the region, in name order).
    /// Default 2 (test); prod uses 3.
    #[serde(default = "default_az_count")]
    pub az_count: u8,
    /// Public subnet CIDRs, one per AZ. Empty: derived (`/24`s at index 1, 2, 3 of the VPC:
    /// `10.0.1.0/24`, `10.0.2.0/24`, ... for `10.0.0.0/16`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub public_subnets: Vec<Ipv4Net>,
    /// Private subnet CIDRs, one per AZ. Empty: derived (`/24`s at index 10, 11, 12:
    /// `10.0.10.0/24`, ... for `10.0.0.0/16`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub private_subnets: Vec<Ipv4Net>,
    /// NAT gateway layout. Default `per_az`.
    #[serde(default)]
    pub nat: NatMode,
}

/// A VPC the stack uses but does not own. Nothing in it is ever deleted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExistingVpcSpec {
    /// The VPC id.
    pub vpc_id: VpcId,
    /// Private subnets for nodes, the control plane and the datastores (>= 2 AZs).
    pub private_subnet_ids: Vec<SubnetId>,
    /// Public subnets for internet-facing load balancers.
    #[serde(default)]
    pub public_subnet_ids: Vec<SubnetId>,
    /// Add the Kubernetes ELB discovery tags (`kubernetes.io/role/elb`,
    /// `kubernetes.io/role/internal-elb`, `kubernetes.io/cluster/<name>`) to these subnets.
    /// Off by default: the subnets are not ours.
    #[serde(default)]
    pub tag_subnets: bool,
}

fn default_cidr() -> Ipv4Net {
    Ipv4Net::new(std::net::Ipv4Addr::new(10, 0, 0, 0), 16).unwrap_or_default()
}

fn default_az_count() -> u8 {
    2
}

/// Prefix length of derived subnets.
pub const DERIVED_SUBNET_PREFIX: u8 = 24;
/// Index (in `/24` steps) of the first derived public subnet.
pub const PUBLIC_OFFSET: u32 = 1;
/// Index (in `/24` steps) of the first derived private subnet.
pub const PRIVATE_OFFSET: u32 = 10;
/// Most availability zones a spec may ask for.
pub const MAX_AZS: u8 = 6;

impl Default for NewVpcSpec {
    fn default() -> Self {
        NewVpcSpec {
            cidr: default_cidr(),
            az_count: default_az_count(),
            public_subnets: Vec::new(),
            private_subnets: Vec::new(),
            nat: NatMode::PerAz,
        }
    }
}

impl NetworkSpec {
    /// The profile default for an environment: a new `10.0.0.0/16` VPC over 2 AZs (test) or 3
    /// AZs (prod), NAT per AZ.
    pub fn for_environment(environment: Environment, cluster_name: impl Into<String>) -> NetworkSpec {
        let az_count = match environment {
            Environment::Test => 2,
            Environment::Prod => 3,
        };
        NetworkSpec {
            cluster_name: cluster_name.into(),
            settings: NetworkSettings::new_vpc(NewVpcSpec { az_count, ..Default::default() }),
            node_instance_types: Vec::new(),
        }
    }

    /// Checks the spec without I/O; every violation at once, with its path: the settings' at
    /// their own paths ([`NetworkSettings::validate`]: `new.cidr`, `existing.vpc_id`, ...).
    pub fn validate(&self, _ctx: &Context) -> Result<(), SpecErrors> {
        let mut errors = SpecErrors::new();
        if let Err(e) = NameKind::EksCluster.check(&self.cluster_name) {
            errors.push("cluster_name", e.reason, "use 1-100 chars of A-Z, a-z, 0-9, '-' and '_'");
        }
        if let Err(e) = self.settings.validate() {
            errors.extend_prefixed("", e);
        }
        errors.into_result()
    }
}

/// `count` consecutive `/24`s of `vpc`, starting at `/24` index `offset`; `None` when the VPC is
/// too small or its prefix is not between /16 and /24.
pub fn derive_subnets(vpc: Ipv4Net, offset: u32, count: u8) -> Option<Vec<Ipv4Net>> {
    if !(16..=DERIVED_SUBNET_PREFIX).contains(&vpc.prefix_len()) {
        return None;
    }
    let all: Vec<Ipv4Net> =
        vpc.subnets(DERIVED_SUBNET_PREFIX).ok()?.skip(offset as usize).take(count as usize).collect();
    (all.len() == count as usize).then_some(all)
}

impl NewVpcSpec {
    /// The public subnet CIDRs, given or derived (empty if underivable: validation says why).
    pub fn public_cidrs(&self) -> Vec<Ipv4Net> {
        if self.public_subnets.is_empty() {
            derive_subnets(self.cidr, PUBLIC_OFFSET, self.az_count).unwrap_or_default()
        } else {
            self.public_subnets.clone()
        }
    }

    /// The private subnet CIDRs, given or derived.
    pub fn private_cidrs(&self) -> Vec<Ipv4Net> {
        if self.private_subnets.is_empty() {
            derive_subnets(self.cidr, PRIVATE_OFFSET, self.az_count).unwrap_or_default()
        } else {
            self.private_subnets.clone()
        }
    }

    /// Number of NAT gateways.
    pub fn nat_count(&self) -> usize {
        match self.nat {
            NatMode::PerAz => self.az_count as usize,
            NatMode::Single => 1,
        }
    }

    fn validate_into(&self, at: &str, errors: &mut SpecErrors) {
        let vpc = self.cidr;
        let mut cidr_ok = true;
        if vpc.trunc() != vpc {
            errors.push(
                format!("{at}.cidr"),
                format!("{vpc} has host bits set"),
                format!("use the network address, {}", vpc.trunc()),
            );
            cidr_ok = false;
        }
        if !(16..=28).contains(&vpc.prefix_len()) {
            errors.push(
                format!("{at}.cidr"),
                format!("prefix /{} is outside AWS's /16-/28", vpc.prefix_len()),
                "use a /16-/20",
            );
            cidr_ok = false;
        }
        if !(2..=MAX_AZS).contains(&self.az_count) {
            errors.push(
                format!("{at}.az_count"),
                format!("{} availability zones requested", self.az_count),
                format!("use 2-{MAX_AZS}: EKS needs subnets in at least 2 AZs"),
            );
            return;
        }
        let mut all: Vec<(String, Ipv4Net)> = Vec::new();
        for (field, given, offset) in [
            ("public_subnets", &self.public_subnets, PUBLIC_OFFSET),
            ("private_subnets", &self.private_subnets, PRIVATE_OFFSET),
        ] {
            let path = format!("{at}.{field}");
            if given.is_empty() {
                if cidr_ok && derive_subnets(vpc, offset, self.az_count).is_none() {
                    errors.push(
                        path,
                        format!("cannot derive {} /24 subnets from {vpc}", self.az_count),
                        "use a /16-/20 VPC CIDR or list the subnet CIDRs explicitly",
                    );
                }
                continue;
            }
            if given.len() != self.az_count as usize {
                errors.push(
                    path.clone(),
                    format!("{} CIDRs given for {} availability zones", given.len(), self.az_count),
                    "give exactly one CIDR per AZ, or none to derive them",
                );
            }
            for (i, subnet) in given.iter().enumerate() {
                let p = format!("{path}[{i}]");
                if subnet.trunc() != *subnet {
                    errors.push(p.clone(), format!("{subnet} has host bits set"), format!("use {}", subnet.trunc()));
                }
                if cidr_ok && !vpc.contains(subnet) {
                    errors.push(
                        p.clone(),
                        format!("{subnet} is outside the VPC {vpc}"),
                        format!("pick a range inside {at}.cidr"),
                    );
                } else if subnet.prefix_len() <= vpc.prefix_len() || subnet.prefix_len() > 28 {
                    errors.push(
                        p.clone(),
                        format!("prefix /{} leaves no room", subnet.prefix_len()),
                        format!("use a prefix between /{} and /28 (a /24 is typical)", vpc.prefix_len() + 1),
                    );
                }
                all.push((p, *subnet));
            }
        }
        for (i, (pa, a)) in all.iter().enumerate() {
            for (pb, b) in &all[i + 1..] {
                if a.contains(b) || b.contains(a) {
                    errors.push(pb.clone(), format!("{b} overlaps {a} ({pa})"), "give every subnet its own range");
                }
            }
        }
    }
}

impl ExistingVpcSpec {
    fn validate_into(&self, at: &str, errors: &mut SpecErrors) {
        if !self.vpc_id.as_str().starts_with("vpc-") {
            errors.push(
                format!("{at}.vpc_id"),
                format!("{:?} is not a VPC id", self.vpc_id.as_str()),
                "use an id like vpc-0abc...",
            );
        }
        if self.private_subnet_ids.len() < 2 {
            errors.push(
                format!("{at}.private_subnet_ids"),
                format!("{} private subnet(s) given", self.private_subnet_ids.len()),
                "give private subnets in at least 2 availability zones",
            );
        }
        let mut seen = BTreeSet::new();
        for (field, ids) in
            [("private_subnet_ids", &self.private_subnet_ids), ("public_subnet_ids", &self.public_subnet_ids)]
        {
            for (i, id) in ids.iter().enumerate() {
                let path = format!("{at}.{field}[{i}]");
                if !id.as_str().starts_with("subnet-") {
                    errors.push(path, format!("{:?} is not a subnet id", id.as_str()), "use an id like subnet-0abc...");
                } else if !seen.insert(id.clone()) {
                    errors.push(path, format!("{id} is listed twice"), "list each subnet once, as private or public");
                }
            }
        }
    }
}
