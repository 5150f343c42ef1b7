//! The network provisioner: observe, diff, apply, destroy.

use std::collections::BTreeSet;
use std::time::Duration;

use async_trait::async_trait;
use dify_stack_core::ids::{AllocationId, NatGatewayId, SubnetId, VpcId};
use dify_stack_core::wait::{self, WaitError};
use dify_stack_core::{
    Action, AwsAt, AwsError, Change, Context, ErrorKind, NotOwned, Plan, Provisioner, ResourceRef, SpecErrors, Tags,
    WaitEnded, from_aws_wait, ignore_not_found,
};
use futures::future::try_join_all;

use crate::client::{
    AddressInfo, Ec2Api, Filter, IgwInfo, NatInfo, NatState, RouteTableInfo, RouteTarget, SdkEc2, SubnetInfo, VpcInfo,
    ZoneInfo,
};
use crate::error::{NetworkError, Result};
use crate::model::{
    Desired, DesiredRouteTable, DesiredSubnet, NatOutput, NetworkOutput, ObservedExisting, ObservedNetwork,
    ObservedNew, SubnetOutput, SubnetRole, k8s_subnet_tags, name_of,
};
use crate::spec::{ExistingVpcSpec, NetworkSpec, NewVpcSpec, VpcSpec};

/// Longest plausible NAT gateway create or delete (aws-durations.toml p95 is 150 s).
pub const NAT_WAIT_CAP: Duration = Duration::from_secs(10 * 60);
/// How long a write naming a just-created resource is retried while EC2 says it does not exist.
pub const FRESH_ID_WAIT: Duration = Duration::from_secs(60);
/// How long deletes are retried while AWS still reports dependencies (lingering ENIs, EIP
/// release right after NAT deletion).
pub const DEPENDENCY_RETRY_CAP: Duration = Duration::from_secs(20 * 60);
const DEFAULT_ROUTE: &str = "0.0.0.0/0";
/// Reason of the replacement of a failed NAT gateway: repaired by apply without
/// `allow_replace`, since nothing the user configured changes.
const NAT_FAILED: &str = "the NAT gateway failed; it is deleted and created again";

/// Provisions the network tier through an [`Ec2Api`] (the SDK by default, a mock in tests).
#[derive(Debug, Clone)]
pub struct NetworkProvisioner<C = SdkEc2> {
    client: C,
}

impl<C: Ec2Api> NetworkProvisioner<C> {
    /// A provisioner over the given client.
    pub fn new(client: C) -> Self {
        NetworkProvisioner { client }
    }

    /// The client.
    pub fn client(&self) -> &C {
        &self.client
    }
}

impl NetworkProvisioner<SdkEc2> {
    /// A provisioner over the real EC2 API.
    pub fn from_conf(config: &aws_types::SdkConfig) -> Self {
        NetworkProvisioner { client: SdkEc2::from_conf(config) }
    }
}

fn owner(ctx: &Context) -> Filter {
    let (name, value) = ctx.ownership_filter();
    Filter::new(name, [value])
}

/// Keys of `want` that are missing or different in `have`.
fn tag_drift(want: &Tags, have: &Tags) -> Tags {
    want.iter().filter(|(k, v)| have.get(*k) != Some(*v)).map(|(k, v)| (k.clone(), v.clone())).collect()
}

fn tag_changes(mut change: Change, want: &Tags, have: &Tags) -> Change {
    for (k, v) in tag_drift(want, have) {
        change = change.field(format!("tags.{k}"), have.get(&k), Some(v));
    }
    change
}

fn find<'a, T>(items: &'a [T], name: &str, tags: impl Fn(&T) -> &Tags) -> Option<&'a T> {
    items.iter().find(|i| name_of(tags(i)) == name)
}

/// Zone IDs where EKS refuses control-plane subnets (UnsupportedAvailabilityZoneException;
/// EKS user guide, "View Amazon EKS networking requirements for VPC and subnets"; the same list
/// in eksctl's `pkg/az`). By ID: zone names map to different physical zones per account.
pub const EKS_UNSUPPORTED_ZONE_IDS: [&str; 4] = ["use1-az3", "usw1-az2", "cac1-az3", "cnn1-az4"];

/// The output of a new VPC: subnets by wanted name and role; EIPs, NAT gateways and route
/// tables in the wanted order (public table first).
fn new_output(
    want: &Desired,
    vpc: &VpcInfo,
    subnets: &[SubnetInfo],
    eips: &[AddressInfo],
    nats: &[NatInfo],
    tables: &[RouteTableInfo],
) -> NetworkOutput {
    let out = |role: SubnetRole| -> Vec<SubnetOutput> {
        want.subnets()
            .filter(|s| s.role == role)
            .filter_map(|s| subnets.iter().find(|x| name_of(&x.tags) == s.named.name))
            .map(|s| SubnetOutput { id: s.id.clone(), az: s.az.clone(), cidr: s.cidr.clone() })
            .collect()
    };
    NetworkOutput {
        vpc_id: vpc.id.clone(),
        vpc_cidr: vpc.cidr.clone(),
        public_subnets: out(SubnetRole::Public),
        private_subnets: out(SubnetRole::Private),
        nat_gateways: nats
            .iter()
            .zip(eips)
            .map(|(n, e)| NatOutput {
                id: n.id.to_string(),
                public_ip: n.public_ip.clone().or_else(|| e.public_ip.clone()),
                subnet_id: n.subnet_id.clone(),
            })
            .collect(),
        public_route_table: tables.first().map(|t| t.id.to_string()),
        private_route_tables: tables.iter().skip(1).map(|t| t.id.to_string()).collect(),
        owned: true,
    }
}

impl<C: Ec2Api> NetworkProvisioner<C> {
    /// The first `wanted` zones, in name order, that can host the stack: available
    /// availability zones (not local or wavelength zones), not among the zone IDs where EKS
    /// refuses control-plane subnets, and offering every node instance type.
    async fn usable_zones(&self, ctx: &Context, spec: &NetworkSpec, wanted: usize) -> Result<Vec<String>> {
        let mut zones: Vec<ZoneInfo> = self
            .client
            .describe_zones()
            .await
            .at("Describe", "availability zones")?
            .into_iter()
            .filter(|z| z.available && z.zone_type == "availability-zone")
            .collect();
        let mut excluded = Vec::new();
        zones.retain(|z| {
            let refused = EKS_UNSUPPORTED_ZONE_IDS.contains(&z.id.as_str());
            if refused {
                excluded.push(format!("{} ({}): EKS does not place control planes there", z.name, z.id));
            }
            !refused
        });
        for t in &spec.node_instance_types {
            let offered =
                self.client.instance_type_zone_ids(t.clone()).await.at("Describe", "instance type offerings")?;
            zones.retain(|z| {
                let ok = offered.contains(&z.id);
                if !ok {
                    excluded.push(format!("{} ({}): {t} is not offered there", z.name, z.id));
                }
                ok
            });
        }
        let mut names: Vec<String> = zones.into_iter().map(|z| z.name).collect();
        names.sort();
        if names.len() < wanted {
            return Err(NetworkError::NotEnoughZones {
                region: ctx.region().to_owned(),
                wanted,
                found: names.len(),
                zones: names,
                excluded,
            });
        }
        names.truncate(wanted);
        Ok(names)
    }

    async fn observe_new(&self, ctx: &Context, spec: &NetworkSpec, new: &NewVpcSpec) -> Result<ObservedNew> {
        let vpc_name = ctx.tag_name("vpc");
        let (zones, named_vpcs) = tokio::try_join!(self.usable_zones(ctx, spec, new.az_count as usize), async {
            self.client
                .describe_vpcs(vec![Filter::new("tag:Name", [vpc_name.as_str()])])
                .await
                .at("Describe", "vpc")
                .map_err(NetworkError::from)
        })?;
        let (mut vpcs, foreign): (Vec<VpcInfo>, Vec<VpcInfo>) =
            named_vpcs.into_iter().partition(|v| ctx.owns_tags(&v.tags));
        vpcs.sort_by(|a, b| a.id.cmp(&b.id));
        let Some(vpc) = vpcs.first().cloned() else {
            if let Some(other) = foreign.first() {
                return Err(NotOwned::new(ctx, "ec2:vpc", vpc_name).with_id(other.id.as_str()).into());
            }
            return Ok(ObservedNew { zones, ..Default::default() });
        };
        let in_vpc = || vec![owner(ctx), Filter::new("vpc-id", [vpc.id.as_str()])];
        let (dns, subnets, igws, eips, nats, route_tables) = tokio::try_join!(
            async { self.client.describe_vpc_dns(vpc.id.clone()).await.at("Describe", vpc.id.as_str()) },
            async { self.client.describe_subnets(in_vpc()).await.at("Describe", "subnets") },
            async {
                self.client.describe_internet_gateways(vec![owner(ctx)]).await.at("Describe", "internet gateways")
            },
            async { self.client.describe_addresses(vec![owner(ctx)]).await.at("Describe", "elastic ips") },
            async {
                self.client
                    .describe_nat_gateways(vec![Filter::new("vpc-id", [vpc.id.as_str()])])
                    .await
                    .at("Describe", "nat gateways")
            },
            async { self.client.describe_route_tables(in_vpc()).await.at("Describe", "route tables") },
        )?;
        // Ownership is always re-checked here: not every API honours tag filters.
        let mut retired_nats = std::collections::BTreeMap::new();
        for n in nats.iter().filter(|n| ctx.owns_tags(&n.tags) && !n.state.is_live()) {
            *retired_nats.entry(name_of(&n.tags).to_owned()).or_insert(0) += 1;
        }
        Ok(ObservedNew {
            retired_nats,
            zones,
            dns: Some(dns),
            subnets: subnets.into_iter().filter(|s| ctx.owns_tags(&s.tags)).collect(),
            igws: igws.into_iter().filter(|g| ctx.owns_tags(&g.tags)).collect(),
            eips: eips.into_iter().filter(|a| ctx.owns_tags(&a.tags)).collect(),
            nats: nats
                .into_iter()
                .filter(|n| ctx.owns_tags(&n.tags) && !matches!(n.state, NatState::Deleted | NatState::Deleting))
                .collect(),
            route_tables: route_tables.into_iter().filter(|t| ctx.owns_tags(&t.tags)).collect(),
            vpcs,
        })
    }

    async fn observe_existing(&self, spec: &ExistingVpcSpec) -> Result<ObservedExisting> {
        let ids: Vec<String> =
            spec.private_subnet_ids.iter().chain(&spec.public_subnet_ids).map(|s| s.to_string()).collect();
        let (vpcs, subnets) = tokio::try_join!(
            async {
                self.client
                    .describe_vpcs(vec![Filter::new("vpc-id", [spec.vpc_id.as_str()])])
                    .await
                    .at("Describe", spec.vpc_id.as_str())
            },
            async { self.client.describe_subnets(vec![Filter::new("subnet-id", ids)]).await.at("Describe", "subnets") },
        )?;
        Ok(ObservedExisting { vpc: vpcs.into_iter().next(), subnets })
    }

    /// Checks an existing VPC against the spec: everything exists, belongs to the VPC, and the
    /// private subnets span at least 2 AZs.
    fn check_existing(spec: &ExistingVpcSpec, observed: &ObservedExisting) -> Result<()> {
        let mut errors = SpecErrors::new();
        if observed.vpc.is_none() {
            errors.push(
                "vpc.vpc_id",
                format!("VPC {} does not exist in this account and region", spec.vpc_id),
                "check the id and region",
            );
        }
        let mut private_azs = BTreeSet::new();
        for (field, ids) in
            [("private_subnet_ids", &spec.private_subnet_ids), ("public_subnet_ids", &spec.public_subnet_ids)]
        {
            for (i, id) in ids.iter().enumerate() {
                let path = format!("vpc.{field}[{i}]");
                match observed.subnets.iter().find(|s| &s.id == id) {
                    None => errors.push(path, format!("subnet {id} does not exist"), "check the id and region"),
                    Some(s) if s.vpc_id != spec.vpc_id => errors.push(
                        path,
                        format!("subnet {id} belongs to {}, not {}", s.vpc_id, spec.vpc_id),
                        "list only subnets of vpc.vpc_id",
                    ),
                    Some(s) => {
                        if field == "private_subnet_ids" {
                            private_azs.insert(s.az.clone());
                        }
                    }
                }
            }
        }
        if errors.is_empty() && private_azs.len() < 2 {
            errors.push(
                "vpc.private_subnet_ids",
                format!("the private subnets span {} availability zone(s)", private_azs.len()),
                "add a private subnet in a second AZ (EKS requires 2)",
            );
        }
        if errors.is_empty() { Ok(()) } else { Err(NetworkError::ExistingVpc(errors)) }
    }

    fn diff_new(ctx: &Context, spec: &NetworkSpec, new: &NewVpcSpec, obs: &ObservedNew) -> Plan {
        let want = Desired::new(ctx, spec, new, &obs.zones);
        let mut plan = Plan::new();
        let reference = |kind: &str, name: &str, id: Option<&str>| {
            let r = ResourceRef::new(kind, name);
            match id {
                Some(id) => r.with_id(id),
                None => r,
            }
        };
        let Some(vpc) = obs.vpc() else {
            // Nothing exists: everything is created.
            plan.push(Change::new(Action::Create, reference("ec2:vpc", &want.vpc.name, None)).field(
                "cidr_block",
                None::<&str>,
                Some(&want.cidr),
            ));
            for s in want.subnets() {
                plan.push(
                    Change::new(Action::Create, reference("ec2:subnet", &s.named.name, None))
                        .field("cidr_block", None::<&str>, Some(&s.cidr))
                        .field("availability_zone", None::<&str>, Some(&s.az)),
                );
            }
            plan.push(Change::new(Action::Create, reference("ec2:internet-gateway", &want.igw.name, None)));
            for e in &want.eips {
                plan.push(Change::new(Action::Create, reference("ec2:elastic-ip", &e.name, None)));
            }
            for n in &want.nats {
                plan.push(Change::new(Action::Create, reference("ec2:nat-gateway", &n.name, None)));
            }
            for t in want.route_tables() {
                plan.push(Change::new(Action::Create, reference("ec2:route-table", &t.named.name, None)));
            }
            return plan;
        };

        // VPC.
        let vpc_ref = reference("ec2:vpc", &want.vpc.name, Some(vpc.id.as_str()));
        if vpc.cidr != want.cidr {
            plan.push(
                Change::new(Action::Replace, vpc_ref.clone())
                    .field("cidr_block", Some(&vpc.cidr), Some(&want.cidr))
                    .because("a VPC's primary CIDR cannot change"),
            );
        }
        let mut update = tag_changes(Change::new(Action::Update, vpc_ref.clone()), &want.vpc.tags, &vpc.tags);
        if let Some(dns) = obs.dns {
            if !dns.support {
                update = update.field("enable_dns_support", Some(false), Some(true));
            }
            if !dns.hostnames {
                update = update.field("enable_dns_hostnames", Some(false), Some(true));
            }
        }
        if !update.fields.is_empty() {
            plan.push(update);
        }
        for extra in &obs.vpcs[1..] {
            plan.push(
                Change::new(Action::Delete, reference("ec2:vpc", &want.vpc.name, Some(extra.id.as_str())))
                    .because("duplicate"),
            );
        }

        // Subnets.
        for s in want.subnets() {
            match find(&obs.subnets, &s.named.name, |x| &x.tags) {
                None => plan.push(
                    Change::new(Action::Create, reference("ec2:subnet", &s.named.name, None))
                        .field("cidr_block", None::<&str>, Some(&s.cidr))
                        .field("availability_zone", None::<&str>, Some(&s.az)),
                ),
                Some(have) => {
                    let r = reference("ec2:subnet", &s.named.name, Some(have.id.as_str()));
                    if have.cidr != s.cidr || have.az != s.az {
                        let mut c = Change::new(Action::Replace, r).because("a subnet's CIDR and AZ cannot change");
                        if have.cidr != s.cidr {
                            c = c.field("cidr_block", Some(&have.cidr), Some(&s.cidr));
                        }
                        if have.az != s.az {
                            c = c.field("availability_zone", Some(&have.az), Some(&s.az));
                        }
                        plan.push(c);
                    } else {
                        let c = tag_changes(Change::new(Action::Update, r), &s.named.tags, &have.tags);
                        if !c.fields.is_empty() {
                            plan.push(c);
                        }
                    }
                }
            }
        }
        let wanted_names: BTreeSet<&str> = want.subnets().map(|s| s.named.name.as_str()).collect();
        for extra in extras(&obs.subnets, &wanted_names, |s| &s.tags, |s| s.id.as_str()) {
            plan.push(Change::new(
                Action::Delete,
                reference("ec2:subnet", name_of(&extra.tags), Some(extra.id.as_str())),
            ));
        }

        // Internet gateway.
        match find(&obs.igws, &want.igw.name, |g| &g.tags) {
            None => plan.push(Change::new(Action::Create, reference("ec2:internet-gateway", &want.igw.name, None))),
            Some(g) if !g.attached_vpcs.contains(&vpc.id) => plan.push(
                Change::new(Action::Update, reference("ec2:internet-gateway", &want.igw.name, Some(g.id.as_str())))
                    .field("attachment", None::<&str>, Some(&vpc.id)),
            ),
            Some(_) => {}
        }

        // Elastic IPs and NAT gateways.
        for e in &want.eips {
            if find(&obs.eips, &e.name, |a| &a.tags).is_none() {
                plan.push(Change::new(Action::Create, reference("ec2:elastic-ip", &e.name, None)));
            }
        }
        let eip_names: BTreeSet<&str> = want.eips.iter().map(|e| e.name.as_str()).collect();
        for extra in extras(&obs.eips, &eip_names, |a| &a.tags, |a| a.allocation_id.as_str()) {
            plan.push(Change::new(
                Action::Delete,
                reference("ec2:elastic-ip", name_of(&extra.tags), Some(extra.allocation_id.as_str())),
            ));
        }
        for (i, n) in want.nats.iter().enumerate() {
            let subnet = find(&obs.subnets, &want.public[i].named.name, |s| &s.tags);
            match find(&obs.nats, &n.name, |x| &x.tags) {
                None => plan.push(Change::new(Action::Create, reference("ec2:nat-gateway", &n.name, None))),
                Some(have) if have.state == NatState::Failed => plan.push(
                    Change::new(Action::Replace, reference("ec2:nat-gateway", &n.name, Some(have.id.as_str())))
                        .because(NAT_FAILED),
                ),
                Some(have) if subnet.is_some_and(|s| s.id != have.subnet_id) => plan.push(
                    Change::new(Action::Replace, reference("ec2:nat-gateway", &n.name, Some(have.id.as_str())))
                        .field("subnet_id", Some(&have.subnet_id), subnet.map(|s| &s.id))
                        .because("a NAT gateway cannot move"),
                ),
                Some(_) => {}
            }
        }
        let nat_names: BTreeSet<&str> = want.nats.iter().map(|n| n.name.as_str()).collect();
        for extra in extras(&obs.nats, &nat_names, |n| &n.tags, |n| n.id.as_str()) {
            plan.push(Change::new(
                Action::Delete,
                reference("ec2:nat-gateway", name_of(&extra.tags), Some(extra.id.as_str())),
            ));
        }

        // Route tables.
        let igw_id = find(&obs.igws, &want.igw.name, |g| &g.tags).map(|g| RouteTarget::Gateway(g.id.clone()));
        for t in want.route_tables() {
            let target = match t.nat {
                None => igw_id.clone(),
                Some(i) => {
                    find(&obs.nats, &want.nats[i].name, |n| &n.tags).map(|n| RouteTarget::NatGateway(n.id.clone()))
                }
            };
            let Some(have) = find(&obs.route_tables, &t.named.name, |r| &r.tags) else {
                plan.push(Change::new(Action::Create, reference("ec2:route-table", &t.named.name, None)));
                continue;
            };
            let mut c =
                Change::new(Action::Update, reference("ec2:route-table", &t.named.name, Some(have.id.as_str())));
            let route = have.routes.iter().find(|r| r.destination == DEFAULT_ROUTE).map(|r| r.target.to_string());
            let wanted_target = target.map(|t| t.to_string()).unwrap_or_else(|| "(known after apply)".into());
            if route.as_deref() != Some(wanted_target.as_str()) {
                c = c.field(format!("routes[{DEFAULT_ROUTE}]"), route, Some(wanted_target));
            }
            for subnet_name in &t.subnets {
                let subnet = find(&obs.subnets, subnet_name, |s| &s.tags);
                let associated =
                    subnet.is_some_and(|s| have.associations.iter().any(|a| a.subnet_id.as_ref() == Some(&s.id)));
                if !associated {
                    c = c.field(format!("associations[{subnet_name}]"), None::<&str>, Some(subnet_name));
                }
            }
            if !c.fields.is_empty() {
                plan.push(c);
            }
        }
        let rt_names: BTreeSet<&str> = want.route_tables().map(|t| t.named.name.as_str()).collect();
        for extra in extras(&obs.route_tables, &rt_names, |t| &t.tags, |t| t.id.as_str()) {
            plan.push(Change::new(
                Action::Delete,
                reference("ec2:route-table", name_of(&extra.tags), Some(extra.id.as_str())),
            ));
        }
        plan
    }

    fn diff_existing(spec: &NetworkSpec, existing: &ExistingVpcSpec, obs: &ObservedExisting) -> Plan {
        let mut plan = Plan::new();
        if !existing.tag_subnets {
            return plan;
        }
        for (role, ids) in
            [(SubnetRole::Private, &existing.private_subnet_ids), (SubnetRole::Public, &existing.public_subnet_ids)]
        {
            for id in ids {
                if let Some(s) = obs.subnets.iter().find(|s| &s.id == id) {
                    let want = k8s_subnet_tags(role, &spec.cluster_name);
                    let c = tag_changes(
                        Change::new(Action::Update, ResourceRef::new("ec2:subnet", id.as_str()).with_id(id.as_str())),
                        &want,
                        &s.tags,
                    );
                    if !c.fields.is_empty() {
                        plan.push(c);
                    }
                }
            }
        }
        plan
    }
}

/// Owned items whose name is not wanted, plus every duplicate after the first of a wanted name.
fn extras<'a, T>(
    items: &'a [T],
    wanted: &BTreeSet<&str>,
    tags: impl Fn(&T) -> &Tags,
    id: impl Fn(&T) -> &str,
) -> Vec<&'a T> {
    let mut seen = BTreeSet::new();
    let mut sorted: Vec<&T> = items.iter().collect();
    sorted.sort_by(|a, b| id(a).cmp(id(b)));
    sorted
        .into_iter()
        .filter(|i| !wanted.contains(name_of(tags(i))) || !seen.insert(name_of(tags(i)).to_owned()))
        .collect()
}

// ---------------------------------------------------------------------------------------------
// apply

/// The ids one apply used (everything else owned and named alike is a twin).
struct Used {
    vpc: VpcId,
    subnets: Vec<SubnetId>,
    igw: dify_stack_core::ids::InternetGatewayId,
    eips: Vec<AllocationId>,
    nats: Vec<NatGatewayId>,
    tables: Vec<dify_stack_core::ids::RouteTableId>,
}

impl<C: Ec2Api> NetworkProvisioner<C> {
    fn dependency_policy(ctx: &Context) -> dify_stack_core::WaitPolicy {
        ctx.wait.capped(DEPENDENCY_RETRY_CAP)
    }

    async fn apply_new(&self, ctx: &Context, spec: &NetworkSpec, new: &NewVpcSpec) -> Result<NetworkOutput> {
        let mut obs = self.observe_new(ctx, spec, new).await?;
        let plan = Self::diff_new(ctx, spec, new, &obs);
        if plan.has_replacements() {
            let replaced: Vec<&Change> =
                plan.with_action(Action::Replace).filter(|c| c.reason.as_deref() != Some(NAT_FAILED)).collect();
            if !replaced.is_empty() && !ctx.permissions.allow_replace {
                return Err(NetworkError::ReplacementRefused {
                    resources: replaced.iter().map(|c| c.resource.to_string()).collect(),
                    reasons: replaced.iter().map(|c| c.reason.clone().unwrap_or_default()).collect(),
                });
            }
            self.replace(ctx, &plan).await?;
            obs = self.observe_new(ctx, spec, new).await?;
        }
        let want = Desired::new(ctx, spec, new, &obs.zones);

        // VPC with DNS support and hostnames.
        let vpc = match obs.vpc() {
            Some(v) => v.clone(),
            None => {
                let v = self
                    .client
                    .create_vpc(want.cidr.clone(), want.vpc.tags.clone())
                    .await
                    .at("CreateVpc", &want.vpc.name)?;
                tracing::info!(vpc = %v.id, "created VPC");
                v
            }
        };
        let dns = obs.dns.unwrap_or(crate::client::DnsAttributes { support: false, hostnames: false });
        if !dns.support || !dns.hostnames {
            self.fresh(ctx, "ModifyVpcAttribute", || {
                self.client.set_vpc_dns(
                    vpc.id.clone(),
                    (!dns.support).then_some(true),
                    (!dns.hostnames).then_some(true),
                )
            })
            .await
            .at("ModifyVpcAttribute", vpc.id.as_str())?;
        }
        self.ensure_tags(vpc.id.as_str(), &want.vpc.tags, &vpc.tags).await?;
        // Duplicates (an SDK retry of a lost CreateVpc response) are empty: delete them.
        for extra in obs.vpcs.iter().skip(1) {
            ignore_not_found(self.client.delete_vpc(extra.id.clone()).await).at("Delete", extra.id.as_str())?;
        }

        // Subnets, concurrently.
        let subnets: Vec<SubnetInfo> =
            try_join_all(want.subnets().map(|s| self.ensure_subnet(ctx, &vpc.id, s, &obs.subnets))).await?;
        let subnet_id = |name: &str| subnets.iter().find(|s| name_of(&s.tags) == name).map(|s| s.id.clone());

        // Internet gateway.
        let igw = match find(&obs.igws, &want.igw.name, |g| &g.tags) {
            Some(g) => g.clone(),
            None => self
                .client
                .create_internet_gateway(want.igw.tags.clone())
                .await
                .at("CreateInternetGateway", &want.igw.name)?,
        };
        if !igw.attached_vpcs.contains(&vpc.id) {
            match self
                .fresh(ctx, "AttachInternetGateway", || {
                    self.client.attach_internet_gateway(igw.id.clone(), vpc.id.clone())
                })
                .await
            {
                Ok(()) => {}
                // A retry whose first attempt was applied (the response was lost) is answered
                // `Resource.AlreadyAssociated` (EC2 API error codes). Success only when the
                // gateway is attached to this VPC; attached elsewhere stays an error.
                Err(e) if e.kind == ErrorKind::AlreadyExists => {
                    let now = self
                        .client
                        .describe_internet_gateways(vec![Filter::new("internet-gateway-id", [igw.id.as_str()])])
                        .await
                        .at("Describe", igw.id.as_str())?;
                    if !now.iter().any(|g| g.attached_vpcs.contains(&vpc.id)) {
                        return Err(e.at("CreateInternetGateway", igw.id.as_str()).into());
                    }
                }
                Err(e) => return Err(e.at("CreateInternetGateway", igw.id.as_str()).into()),
            }
        }

        // Elastic IPs, then NAT gateways (concurrently), then wait until they are available.
        let obs_eips = &obs.eips;
        let eips: Vec<AddressInfo> = try_join_all(want.eips.iter().map(|e| async move {
            match find(obs_eips, &e.name, |a| &a.tags) {
                Some(a) => Ok(a.clone()),
                None => self.client.allocate_address(e.tags.clone()).await.at("AllocateAddress", &e.name),
            }
        }))
        .await?;
        let nats: Vec<NatInfo> = try_join_all(want.nats.iter().enumerate().map(|(i, n)| {
            let subnet = subnet_id(&want.public[i].named.name);
            let eip = eips[i].allocation_id.clone();
            let obs_nats = &obs.nats;
            let retired = &obs.retired_nats;
            async move {
                if let Some(have) = find(obs_nats, &n.name, |x| &x.tags) {
                    return Ok(have.clone());
                }
                let subnet = subnet
                    .ok_or_else(|| AwsError::new("CreateNatGateway", "MissingSubnet", "public subnet not created"))
                    .at("CreateNatGateway", &n.name)?;
                let generation = retired.get(&n.name).copied().unwrap_or(0);
                self.create_nat(ctx, &n.name, generation, subnet, eip, n.tags.clone()).await
            }
        }))
        .await?;
        let pending: Vec<NatGatewayId> =
            nats.iter().filter(|n| n.state != NatState::Available).map(|n| n.id.clone()).collect();
        if !pending.is_empty() {
            self.wait_nats(ctx, pending, true).await?;
        }

        // Route tables: public -> IGW, private i -> NAT i (or the single NAT).
        let tables: Vec<RouteTableInfo> = try_join_all(want.route_tables().map(|t| {
            let target = match t.nat {
                None => RouteTarget::Gateway(igw.id.clone()),
                Some(i) => RouteTarget::NatGateway(nats[i].id.clone()),
            };
            let subnet_ids: Vec<SubnetId> = t.subnets.iter().filter_map(|n| subnet_id(n)).collect();
            self.ensure_route_table(ctx, &vpc.id, t, target, subnet_ids, &obs.route_tables)
        }))
        .await?;

        // Remove what is no longer wanted (e.g. after per_az -> single, or fewer AZs).
        self.remove_extras(ctx, &want, &obs).await?;

        // A create whose response was lost is retried by the SDK; for the calls without an
        // idempotency token (CreateVpc, CreateSubnet, CreateInternetGateway, AllocateAddress,
        // CreateRouteTable) that can make a tagged twin. When this run created anything, look
        // again and remove every owned twin that this run did not use.
        let created = obs.vpc().is_none()
            || subnets.iter().any(|x| !obs.subnets.iter().any(|o| o.id == x.id))
            || !obs.igws.iter().any(|g| g.id == igw.id)
            || eips.iter().any(|x| !obs.eips.iter().any(|o| o.allocation_id == x.allocation_id))
            || nats.iter().any(|x| !obs.nats.iter().any(|o| o.id == x.id))
            || tables.iter().any(|x| !obs.route_tables.iter().any(|o| o.id == x.id));
        if created {
            let used = Used {
                vpc: vpc.id.clone(),
                subnets: subnets.iter().map(|x| x.id.clone()).collect(),
                igw: igw.id.clone(),
                eips: eips.iter().map(|x| x.allocation_id.clone()).collect(),
                nats: nats.iter().map(|x| x.id.clone()).collect(),
                tables: tables.iter().map(|x| x.id.clone()).collect(),
            };
            self.remove_twins(ctx, spec, new, &used).await?;
        }

        Ok(new_output(&want, &vpc, &subnets, &eips, &nats, &tables))
    }

    /// A converged new VPC's output from the observation alone: every wanted EIP, NAT gateway
    /// and route table found by name, in the wanted order.
    fn observed_new_output(
        ctx: &Context,
        spec: &NetworkSpec,
        new: &NewVpcSpec,
        obs: &ObservedNew,
    ) -> Option<NetworkOutput> {
        let want = Desired::new(ctx, spec, new, &obs.zones);
        let vpc = obs.vpc()?;
        let eips: Vec<AddressInfo> =
            want.eips.iter().map(|e| find(&obs.eips, &e.name, |a| &a.tags).cloned()).collect::<Option<_>>()?;
        let nats: Vec<NatInfo> =
            want.nats.iter().map(|n| find(&obs.nats, &n.name, |x| &x.tags).cloned()).collect::<Option<_>>()?;
        let tables: Vec<RouteTableInfo> = want
            .route_tables()
            .map(|t| find(&obs.route_tables, &t.named.name, |r| &r.tags).cloned())
            .collect::<Option<_>>()?;
        Some(new_output(&want, vpc, &obs.subnets, &eips, &nats, &tables))
    }

    async fn ensure_tags(&self, id: &str, want: &Tags, have: &Tags) -> Result<()> {
        let drift = tag_drift(want, have);
        if !drift.is_empty() {
            self.client.create_tags(vec![id.to_owned()], drift).await.at("Tag", id)?;
        }
        Ok(())
    }

    async fn ensure_subnet(
        &self,
        ctx: &Context,
        vpc: &VpcId,
        s: &DesiredSubnet,
        observed: &[SubnetInfo],
    ) -> Result<SubnetInfo> {
        if let Some(have) = find(observed, &s.named.name, |x| &x.tags) {
            self.ensure_tags(have.id.as_str(), &s.named.tags, &have.tags).await?;
            return Ok(have.clone());
        }
        let created = self
            .fresh(ctx, "CreateSubnet", || {
                self.client.create_subnet(vpc.clone(), s.cidr.clone(), s.az.clone(), s.named.tags.clone())
            })
            .await
            .at("CreateSubnet", &s.named.name)?;
        tracing::info!(subnet = %created.id, name = %s.named.name, "created subnet");
        Ok(created)
    }

    /// Runs a write that names a resource this run may have created moments ago. EC2 is
    /// eventually consistent: such a write can answer `Invalid<Kind>ID.NotFound` for a while
    /// after the create returned (EC2 API reference, "Eventual consistency in the Amazon EC2
    /// API": retry with exponential backoff). Not-found is retried for up to a minute; every
    /// other answer is returned as is. Only for writes whose NotFound means "nothing was done".
    async fn fresh<T, F, Fut>(&self, ctx: &Context, what: &'static str, op: F) -> Result<T, AwsError>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Result<T, AwsError>>,
    {
        match wait::retry(what, &ctx.wait.capped(FRESH_ID_WAIT), ctx.cancellation(), AwsError::is_not_found, op).await {
            Ok(v) => Ok(v),
            Err(WaitError::Failed { source, .. }) => Err(source),
            Err(e) => Err(AwsError::new(what, "Timeout", e.to_string())),
        }
    }

    /// Creates a NAT gateway with a deterministic client token. A failed or lost response is
    /// retried with the same token, so AWS returns the gateway the first attempt created instead
    /// of a second one. `generation` counts earlier, retired gateways of the same name, so a
    /// replacement gets a fresh token.
    async fn create_nat(
        &self,
        ctx: &Context,
        name: &str,
        generation: usize,
        subnet: SubnetId,
        eip: AllocationId,
        tags: Tags,
    ) -> Result<NatInfo> {
        let token = format!("{name}-{eip}-{generation}");
        let token: String = token.chars().take(64).collect();
        let nat = wait::retry(
            &format!("create NAT gateway {name}"),
            &ctx.wait.capped(Duration::from_secs(120)),
            ctx.cancellation(),
            // Transient errors, and the subnet or address just made not visible yet.
            |e: &AwsError| e.is_retryable() || e.is_not_found(),
            || self.client.create_nat_gateway(subnet.clone(), eip.clone(), token.clone(), tags.clone()),
        )
        .await
        .map_err(|e| from_aws_wait::<NetworkError>(e, "CreateNatGateway", name))?;
        tracing::info!(nat = %nat.id, name, "created NAT gateway");
        Ok(nat)
    }

    async fn wait_nats(&self, ctx: &Context, ids: Vec<NatGatewayId>, available: bool) -> Result<()> {
        let max = ctx.wait.capped(NAT_WAIT_CAP).max_wait;
        let what = format!("NAT gateways {ids:?} {}", if available { "available" } else { "deleted" });
        let waiter = async {
            if available {
                self.client.wait_nat_gateways_available(ids.clone(), max).await
            } else {
                self.client.wait_nat_gateways_deleted(ids.clone(), max).await
            }
        };
        let reached = tokio::select! {
            r = waiter => r.at("WaitNatGateway", &what)?,
            () = ctx.cancellation().cancelled() => {
                return Err(WaitEnded::Cancelled { what }.into());
            }
        };
        if !reached {
            return Err(WaitEnded::TimedOut { what, waited: max, last_status: "not reached".into() }.into());
        }
        Ok(())
    }

    async fn ensure_route_table(
        &self,
        ctx: &Context,
        vpc: &VpcId,
        t: &DesiredRouteTable,
        target: RouteTarget,
        subnets: Vec<SubnetId>,
        observed: &[RouteTableInfo],
    ) -> Result<RouteTableInfo> {
        let name = &t.named.name;
        let table = match find(observed, name, |r| &r.tags) {
            Some(have) => {
                self.ensure_tags(have.id.as_str(), &t.named.tags, &have.tags).await?;
                have.clone()
            }
            None => {
                self.client.create_route_table(vpc.clone(), t.named.tags.clone()).await.at("CreateRouteTable", name)?
            }
        };
        match table.routes.iter().find(|r| r.destination == DEFAULT_ROUTE) {
            None => match self
                .fresh(ctx, "CreateRoute", || {
                    self.client.create_route(table.id.clone(), DEFAULT_ROUTE.into(), target.clone())
                })
                .await
            {
                // A lost response to an earlier attempt: make sure it points where we want.
                Err(e) if e.kind == ErrorKind::AlreadyExists => {
                    self.client.replace_route(table.id.clone(), DEFAULT_ROUTE.into(), target).await.at("Route", name)?
                }
                other => other.at("Route", name)?,
            },
            Some(r) if r.target != target => {
                self.client.replace_route(table.id.clone(), DEFAULT_ROUTE.into(), target).await.at("Route", name)?
            }
            Some(_) => {}
        }
        for subnet in subnets {
            if table.associations.iter().any(|a| a.subnet_id.as_ref() == Some(&subnet)) {
                continue;
            }
            // The subnet may still be associated with another of our tables (e.g. after a NAT
            // mode change): move the association instead of failing.
            let elsewhere = observed
                .iter()
                .flat_map(|rt| rt.associations.iter())
                .find(|a| a.subnet_id.as_ref() == Some(&subnet) && !a.main)
                .map(|a| a.id.clone());
            let done = match elsewhere {
                Some(assoc) => self.client.replace_route_table_association(assoc, table.id.clone()).await.map(|_| ()),
                None => self
                    .fresh(ctx, "AssociateRouteTable", || {
                        self.client.associate_route_table(table.id.clone(), subnet.clone())
                    })
                    .await
                    .map(|_| ()),
            };
            match done {
                Ok(()) => {}
                // A retried association whose first attempt was applied: `Resource.AlreadyAssociated`
                // (associate) or `InvalidAssociationID.NotFound` (replace: the old association is
                // gone). Success only when the subnet is now associated with this table.
                Err(e) if matches!(e.kind, ErrorKind::AlreadyExists | ErrorKind::NotFound) => {
                    let now = self
                        .client
                        .describe_route_tables(vec![Filter::new("association.subnet-id", [subnet.as_str()])])
                        .await
                        .at("Describe", subnet.as_str())?;
                    let ours = now.iter().any(|rt| {
                        rt.id == table.id && rt.associations.iter().any(|a| a.subnet_id.as_ref() == Some(&subnet))
                    });
                    if !ours {
                        return Err(e.at("AssociateRouteTable", name).into());
                    }
                }
                Err(e) => return Err(e.at("AssociateRouteTable", name).into()),
            }
        }
        Ok(table)
    }

    /// Deletes owned resources of this network that the run did not use (twins made by SDK
    /// retries of creates without an idempotency token). Route tables, NAT gateways and EIPs
    /// first, then subnets, the gateway and VPCs, as their dependencies require.
    async fn remove_twins(&self, ctx: &Context, spec: &NetworkSpec, new: &NewVpcSpec, used: &Used) -> Result<()> {
        let obs = self.observe_new(ctx, spec, new).await?;
        for t in obs.route_tables.iter().filter(|t| !used.tables.contains(&t.id)) {
            tracing::warn!(table = %t.id, "removing a twin route table");
            self.delete_route_table(ctx, t).await?;
        }
        let nats: Vec<NatGatewayId> =
            obs.nats.iter().filter(|n| !used.nats.contains(&n.id)).map(|n| n.id.clone()).collect();
        self.delete_nats(ctx, nats).await?;
        for e in obs.eips.iter().filter(|e| !used.eips.contains(&e.allocation_id)) {
            tracing::warn!(allocation = %e.allocation_id, "releasing a twin elastic IP");
            self.release_eip(ctx, e.allocation_id.clone()).await?;
        }
        for x in obs.subnets.iter().filter(|x| !used.subnets.contains(&x.id)) {
            tracing::warn!(subnet = %x.id, "removing a twin subnet");
            self.delete_subnet(ctx, x.id.clone()).await?;
        }
        for g in obs.igws.iter().filter(|g| g.id != used.igw) {
            tracing::warn!(igw = %g.id, "removing a twin internet gateway");
            for vpc in &g.attached_vpcs {
                match self.client.detach_internet_gateway(g.id.clone(), vpc.clone()).await {
                    Err(e) if e.is_not_found() || e.kind == ErrorKind::InvalidState => {}
                    other => other.at("Delete", g.id.as_str())?,
                }
            }
            self.delete_retrying(ctx, g.id.as_str(), || self.client.delete_internet_gateway(g.id.clone())).await?;
        }
        for v in obs.vpcs.iter().filter(|v| v.id != used.vpc) {
            tracing::warn!(vpc = %v.id, "removing a twin VPC");
            ignore_not_found(self.client.delete_vpc(v.id.clone()).await).at("Delete", v.id.as_str())?;
        }
        Ok(())
    }

    async fn remove_extras(&self, ctx: &Context, want: &Desired, obs: &ObservedNew) -> Result<()> {
        let nat_names: BTreeSet<&str> = want.nats.iter().map(|n| n.name.as_str()).collect();
        let extra_nats: Vec<NatGatewayId> =
            extras(&obs.nats, &nat_names, |n| &n.tags, |n| n.id.as_str()).into_iter().map(|n| n.id.clone()).collect();
        self.delete_nats(ctx, extra_nats).await?;
        let eip_names: BTreeSet<&str> = want.eips.iter().map(|e| e.name.as_str()).collect();
        for e in extras(&obs.eips, &eip_names, |a| &a.tags, |a| a.allocation_id.as_str()) {
            self.release_eip(ctx, e.allocation_id.clone()).await?;
        }
        let rt_names: BTreeSet<&str> = want.route_tables().map(|t| t.named.name.as_str()).collect();
        for t in extras(&obs.route_tables, &rt_names, |t| &t.tags, |t| t.id.as_str()) {
            self.delete_route_table(ctx, t).await?;
        }
        let subnet_names: BTreeSet<&str> = want.subnets().map(|s| s.named.name.as_str()).collect();
        for s in extras(&obs.subnets, &subnet_names, |s| &s.tags, |s| s.id.as_str()) {
            self.delete_subnet(ctx, s.id.clone()).await?;
        }
        Ok(())
    }

    /// Deletes what the plan replaces; the converge pass that follows re-creates it.
    async fn replace(&self, ctx: &Context, plan: &Plan) -> Result<()> {
        for c in plan.with_action(Action::Replace) {
            let Some(id) = c.resource.id.clone() else { continue };
            match c.resource.kind.as_str() {
                "ec2:vpc" => {
                    self.destroy_new(ctx).await?;
                    return Ok(());
                }
                "ec2:nat-gateway" => self.delete_nats(ctx, vec![NatGatewayId::new(id)]).await?,
                "ec2:subnet" => {
                    let nats = self
                        .client
                        .describe_nat_gateways(vec![Filter::new("subnet-id", [id.as_str()])])
                        .await
                        .at("Describe", id.as_str())?;
                    let ours: Vec<NatGatewayId> = nats
                        .into_iter()
                        .filter(|n| ctx.owns_tags(&n.tags) && n.state != NatState::Deleted)
                        .map(|n| n.id)
                        .collect();
                    self.delete_nats(ctx, ours).await?;
                    self.delete_subnet(ctx, SubnetId::new(id)).await?;
                }
                _ => {}
            }
        }
        Ok(())
    }

    fn existing_output(existing: &ExistingVpcSpec, obs: &ObservedExisting) -> Option<NetworkOutput> {
        let vpc = obs.vpc.clone()?;
        let out = |ids: &[SubnetId]| -> Vec<SubnetOutput> {
            ids.iter()
                .filter_map(|id| obs.subnets.iter().find(|s| &s.id == id))
                .map(|s| SubnetOutput { id: s.id.clone(), az: s.az.clone(), cidr: s.cidr.clone() })
                .collect()
        };
        Some(NetworkOutput {
            vpc_id: vpc.id,
            vpc_cidr: vpc.cidr,
            public_subnets: out(&existing.public_subnet_ids),
            private_subnets: out(&existing.private_subnet_ids),
            nat_gateways: Vec::new(),
            public_route_table: None,
            private_route_tables: Vec::new(),
            owned: false,
        })
    }

    async fn apply_existing(&self, spec: &NetworkSpec, existing: &ExistingVpcSpec) -> Result<NetworkOutput> {
        let obs = self.observe_existing(existing).await?;
        Self::check_existing(existing, &obs)?;
        for change in Self::diff_existing(spec, existing, &obs).changes {
            let Some(id) = change.resource.id else { continue };
            let tags: Tags = change
                .fields
                .into_iter()
                .filter_map(|f| Some((f.path.strip_prefix("tags.")?.to_owned(), f.after?)))
                .collect();
            self.client.create_tags(vec![id.clone()], tags).await.at("Tag", id)?;
        }
        Ok(Self::existing_output(existing, &obs).expect("the VPC was checked to exist"))
    }
}

// ---------------------------------------------------------------------------------------------
// destroy

impl<C: Ec2Api> NetworkProvisioner<C> {
    /// Runs a delete, treating not-found as done and retrying `DependencyViolation` (lingering
    /// ENIs, attachments on their way out) and transient errors within the dependency budget.
    async fn delete_retrying<F, Fut>(&self, ctx: &Context, id: &str, delete: F) -> Result<()>
    where
        F: Fn() -> Fut,
        Fut: std::future::Future<Output = Result<(), AwsError>>,
    {
        wait::retry(
            &format!("delete {id}"),
            &Self::dependency_policy(ctx),
            ctx.cancellation(),
            |e: &AwsError| e.is_dependency_violation() || e.is_retryable(),
            || async { ignore_not_found(delete().await).map(|_| ()) },
        )
        .await
        .map_err(|e| from_aws_wait(e, "Delete", id))
    }

    async fn delete_nats(&self, ctx: &Context, ids: Vec<NatGatewayId>) -> Result<()> {
        if ids.is_empty() {
            return Ok(());
        }
        for id in &ids {
            ignore_not_found(self.client.delete_nat_gateway(id.clone()).await).at("Delete", id.as_str())?;
        }
        self.wait_nats(ctx, ids, false).await
    }

    /// Releases an Elastic IP, retrying the short window after a NAT gateway's deletion in which
    /// AWS still reports the address in use (`InvalidIPAddress.InUse`, `AuthFailure`).
    async fn release_eip(&self, ctx: &Context, allocation: AllocationId) -> Result<()> {
        let in_use =
            |e: &AwsError| e.is_dependency_violation() || e.code.as_deref() == Some("AuthFailure") || e.is_retryable();
        wait::retry(
            &format!("release {allocation}"),
            &ctx.wait.capped(Duration::from_secs(5 * 60)),
            ctx.cancellation(),
            in_use,
            || async { ignore_not_found(self.client.release_address(allocation.clone()).await).map(|_| ()) },
        )
        .await
        .map_err(|e| from_aws_wait(e, "Delete", allocation.as_str()))
    }

    async fn delete_subnet(&self, ctx: &Context, subnet: SubnetId) -> Result<()> {
        self.delete_retrying(ctx, subnet.as_str(), || self.client.delete_subnet(subnet.clone())).await
    }

    async fn delete_route_table(&self, ctx: &Context, table: &RouteTableInfo) -> Result<()> {
        for a in table.associations.iter().filter(|a| !a.main) {
            ignore_not_found(self.client.disassociate_route_table(a.id.clone()).await).at("Delete", a.id.as_str())?;
        }
        self.delete_retrying(ctx, table.id.as_str(), || self.client.delete_route_table(table.id.clone())).await
    }

    /// Deletes everything the stack owns in the network tier, in the order that works on AWS.
    async fn destroy_new(&self, ctx: &Context) -> Result<Vec<ResourceRef>> {
        let mut deleted = Vec::new();
        let r = |kind: &str, tags: &Tags, id: &str| ResourceRef::new(kind, name_of(tags)).with_id(id);
        let vpcs: Vec<VpcInfo> = self
            .client
            .describe_vpcs(vec![owner(ctx)])
            .await
            .at("Describe", "vpcs")?
            .into_iter()
            .filter(|v| ctx.owns_tags(&v.tags))
            .collect();
        let vpc_ids: Vec<&str> = vpcs.iter().map(|v| v.id.as_str()).collect();

        // 1. NAT gateways (found by VPC and by tag; ownership re-checked), wait until deleted.
        let mut nats: Vec<NatInfo> =
            self.client.describe_nat_gateways(vec![owner(ctx)]).await.at("Describe", "nat gateways")?;
        if !vpc_ids.is_empty() {
            nats.extend(
                self.client
                    .describe_nat_gateways(vec![Filter::new("vpc-id", vpc_ids.clone())])
                    .await
                    .at("Describe", "nat gateways")?,
            );
        }
        let mut seen = BTreeSet::new();
        let nats: Vec<NatInfo> = nats
            .into_iter()
            .filter(|n| ctx.owns_tags(&n.tags) && n.state != NatState::Deleted && seen.insert(n.id.clone()))
            .collect();
        self.delete_nats(ctx, nats.iter().map(|n| n.id.clone()).collect()).await?;
        deleted.extend(nats.iter().map(|n| r("ec2:nat-gateway", &n.tags, n.id.as_str())));

        // 2. Elastic IPs.
        let eips: Vec<AddressInfo> = self.client.describe_addresses(vec![owner(ctx)]).await.at("Describe", "eips")?;
        for e in eips.iter().filter(|e| ctx.owns_tags(&e.tags)) {
            self.release_eip(ctx, e.allocation_id.clone()).await?;
            deleted.push(r("ec2:elastic-ip", &e.tags, e.allocation_id.as_str()));
        }

        // 3. Internet gateways: detach, delete.
        let igws: Vec<IgwInfo> =
            self.client.describe_internet_gateways(vec![owner(ctx)]).await.at("Describe", "internet gateways")?;
        for g in igws.iter().filter(|g| ctx.owns_tags(&g.tags)) {
            for vpc in &g.attached_vpcs {
                // Detach answers DependencyViolation while public addresses are still mapped in
                // the VPC (a load balancer or NAT gateway on its way out): retried like a delete.
                self.delete_retrying(ctx, g.id.as_str(), || async {
                    match self.client.detach_internet_gateway(g.id.clone(), vpc.clone()).await {
                        Err(e) if e.kind == ErrorKind::InvalidState => Ok(()),
                        other => other,
                    }
                })
                .await?;
            }
            self.delete_retrying(ctx, g.id.as_str(), || self.client.delete_internet_gateway(g.id.clone())).await?;
            deleted.push(r("ec2:internet-gateway", &g.tags, g.id.as_str()));
        }

        if !vpc_ids.is_empty() {
            // 4. Leftover ENIs that carry our tags or sit in our security groups (never attached ones).
            let groups =
                self.client.describe_security_groups(vec![owner(ctx)]).await.at("Describe", "security groups")?;
            let groups: Vec<_> = groups.into_iter().filter(|g| ctx.owns_tags(&g.tags)).collect();
            let enis = self
                .client
                .describe_network_interfaces(vec![Filter::new("vpc-id", vpc_ids.clone())])
                .await
                .at("Describe", "network interfaces")?;
            for eni in enis.iter().filter(|e| !e.attached) {
                let ours = ctx.owns_tags(&eni.tags) || eni.group_ids.iter().any(|g| groups.iter().any(|o| &o.id == g));
                if ours {
                    ignore_not_found(self.client.delete_network_interface(eni.id.clone()).await)
                        .at("Delete", &eni.id)?;
                    deleted.push(ResourceRef::new("ec2:network-interface", &eni.id).with_id(&eni.id));
                }
            }

            // 5. Subnets (retrying DependencyViolation while ENIs linger).
            let subnets = self
                .client
                .describe_subnets(vec![owner(ctx), Filter::new("vpc-id", vpc_ids.clone())])
                .await
                .at("Describe", "subnets")?;
            let subnets: Vec<SubnetInfo> = subnets.into_iter().filter(|s| ctx.owns_tags(&s.tags)).collect();
            try_join_all(subnets.iter().map(|s| self.delete_subnet(ctx, s.id.clone()))).await?;
            deleted.extend(subnets.iter().map(|s| r("ec2:subnet", &s.tags, s.id.as_str())));

            // 6. Route tables.
            let tables = self
                .client
                .describe_route_tables(vec![owner(ctx), Filter::new("vpc-id", vpc_ids.clone())])
                .await
                .at("Describe", "route tables")?;
            for t in tables.iter().filter(|t| ctx.owns_tags(&t.tags)) {
                self.delete_route_table(ctx, t).await?;
                deleted.push(r("ec2:route-table", &t.tags, t.id.as_str()));
            }

            // 7. Security groups the stack owns in its VPCs (left by other tiers).
            for g in &groups {
                self.delete_retrying(ctx, g.id.as_str(), || self.client.delete_security_group(g.id.clone())).await?;
                deleted.push(r("ec2:security-group", &g.tags, g.id.as_str()));
            }
        }

        // 8. VPCs.
        for v in &vpcs {
            self.delete_retrying(ctx, v.id.as_str(), || self.client.delete_vpc(v.id.clone())).await?;
            deleted.push(r("ec2:vpc", &v.tags, v.id.as_str()));
        }
        for d in &deleted {
            tracing::info!(resource = %d, "deleted");
        }
        Ok(deleted)
    }
}

#[async_trait]
impl<C: Ec2Api> Provisioner for NetworkProvisioner<C> {
    type Spec = NetworkSpec;
    type Observed = ObservedNetwork;
    type Output = NetworkOutput;
    type Error = NetworkError;

    fn validate(&self, ctx: &Context, spec: &NetworkSpec) -> Result<(), SpecErrors> {
        spec.validate(ctx)
    }

    async fn observe(&self, ctx: &Context, spec: &NetworkSpec) -> Result<ObservedNetwork> {
        match &spec.vpc {
            VpcSpec::New(new) => Ok(ObservedNetwork::New(self.observe_new(ctx, spec, new).await?)),
            VpcSpec::Existing(existing) => {
                let obs = self.observe_existing(existing).await?;
                Self::check_existing(existing, &obs)?;
                Ok(ObservedNetwork::Existing(obs))
            }
        }
    }

    fn diff(&self, ctx: &Context, spec: &NetworkSpec, observed: &ObservedNetwork) -> Plan {
        match (&spec.vpc, observed) {
            (VpcSpec::New(new), ObservedNetwork::New(obs)) => Self::diff_new(ctx, spec, new, obs),
            (VpcSpec::Existing(existing), ObservedNetwork::Existing(obs)) => Self::diff_existing(spec, existing, obs),
            _ => Plan::new(),
        }
    }

    fn output(&self, ctx: &Context, spec: &NetworkSpec, observed: &ObservedNetwork) -> Option<NetworkOutput> {
        match (&spec.vpc, observed) {
            (VpcSpec::New(new), ObservedNetwork::New(obs)) => Self::observed_new_output(ctx, spec, new, obs),
            (VpcSpec::Existing(existing), ObservedNetwork::Existing(obs)) => Self::existing_output(existing, obs),
            _ => None,
        }
    }

    async fn apply(&self, ctx: &Context, spec: &NetworkSpec) -> Result<NetworkOutput> {
        spec.validate(ctx)?;
        match &spec.vpc {
            VpcSpec::New(new) => self.apply_new(ctx, spec, new).await,
            VpcSpec::Existing(existing) => self.apply_existing(spec, existing).await,
        }
    }

    /// Deletes the stack's network. For an existing VPC nothing is deleted (the ELB discovery
    /// tags added with `tag_subnets` are left in place: other clusters may rely on them).
    async fn destroy(&self, ctx: &Context, spec: &NetworkSpec) -> Result<Vec<ResourceRef>> {
        match &spec.vpc {
            VpcSpec::New(_) => self.destroy_new(ctx).await,
            VpcSpec::Existing(_) => Ok(Vec::new()),
        }
    }
}
