//! Observation of a new VPC's resources.

use super::{
    Context, EKS_UNSUPPORTED_ZONE_IDS, Filter, NatState, NetworkError, NetworkProvisioner, NetworkSpec, NewVpcSpec,
    NotOwned, ObservedNew, Result, TAG_COMPONENT, TAG_ID, TAG_NAME, Tags, VpcInfo, ZoneInfo, is_network, name_of,
    owner,
};
use crate::client::Ec2Api;
use dify_stack_core::AwsAt;

impl NetworkProvisioner {
    /// The first `wanted` zones, in name order, that can host the stack: available
    /// availability zones (not local or wavelength zones), not among the zone IDs where EKS
    /// refuses control-plane subnets, and offering every node instance type.
    pub(super) async fn usable_zones(&self, ctx: &Context, spec: &NetworkSpec, wanted: usize) -> Result<Vec<String>> {
        usable_zones(self.client.as_ref(), ctx, spec, wanted).await
    }

    /// What exists of a new-VPC network: the stack's VPC, found by the ownership tag and its
    /// logical id (or, made before logical ids, by its `Name` or its `dify-stack:component`:
    /// [`crate::names`]), and in it everything else the stack owns. A `Name` someone edited
    /// changes nothing here: it is drift for the diff.
    pub(super) async fn observe_new(&self, ctx: &Context, spec: &NetworkSpec, new: &NewVpcSpec) -> Result<ObservedNew> {
        let (zones, owned_vpcs) = tokio::try_join!(self.usable_zones(ctx, spec, new.az_count as usize), async {
            self.client.describe_vpcs(vec![owner(ctx)]).await.at("Describe", "vpc").map_err(NetworkError::from)
        })?;
        let (vpc_name, vpc_id) = (crate::names::vpc(ctx), crate::names::id::vpc());
        let is_our_vpc = |tags: &Tags| match tags.get(TAG_ID) {
            Some(id) => *id == vpc_id,
            // Made before logical ids: one VPC per stack, so its component tag says it as well as
            // its Name does.
            None => name_of(tags) == vpc_name || tags.get(TAG_COMPONENT).is_some_and(|c| c == "vpc"),
        };
        let mut vpcs: Vec<VpcInfo> =
            owned_vpcs.into_iter().filter(|v| ctx.owns_tags(&v.tags) && is_our_vpc(&v.tags)).collect();
        vpcs.sort_by(|a, b| a.id.cmp(&b.id));
        if vpcs.len() > 1 {
            // Twins: a CreateVpc retried by the SDK after its first response was lost made two.
            // The stack's VPC is the one holding our subnets (the run that made them built there,
            // and the data stores with it, once the network node returned it); the others are
            // empty and go. Without subnets anywhere, the lowest id.
            let ids: Vec<&str> = vpcs.iter().map(|v| v.id.as_str()).collect();
            let subnets = self
                .client
                .describe_subnets(vec![owner(ctx), Filter::new("vpc-id", ids)])
                .await
                .at("Describe", "subnets")?;
            vpcs.sort_by_key(|v| {
                (std::cmp::Reverse(subnets.iter().filter(|s| s.vpc_id == v.id).count()), v.id.clone())
            });
        }
        let Some(vpc) = vpcs.first().cloned() else {
            // None of ours: a VPC of someone else's with our VPC's name is refused, never adopted
            // (DESIGN.md, "Ownership"), so the plan does not create a second one beside it.
            let named = self
                .client
                .describe_vpcs(vec![Filter::new(format!("tag:{TAG_NAME}"), [vpc_name.as_str()])])
                .await
                .at("Describe", "vpc")?;
            if let Some(other) = named.iter().find(|v| !ctx.owns_tags(&v.tags)) {
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
        // Ownership is always re-checked here: not every API honours tag filters. What carries
        // another tier's logical id is not the network's.
        let ours = |tags: &Tags| ctx.owns_tags(tags) && is_network(tags);
        let mut retired_nats = std::collections::BTreeMap::new();
        for n in nats.iter().filter(|n| ours(&n.tags) && !n.state.is_live()) {
            let key = n.tags.get(TAG_ID).map(String::as_str).unwrap_or(name_of(&n.tags));
            *retired_nats.entry(key.to_owned()).or_insert(0) += 1;
        }
        // By id: of two subnets playing one part (a twin from a retried CreateSubnet) every run
        // picks the same one, whatever order EC2 lists them in.
        let mut subnets: Vec<_> = subnets.into_iter().filter(|s| ours(&s.tags)).collect();
        subnets.sort_by(|a, b| a.id.cmp(&b.id));
        Ok(ObservedNew {
            retired_nats,
            zones,
            dns: Some(dns),
            subnets,
            igws: igws.into_iter().filter(|g| ours(&g.tags)).collect(),
            eips: eips.into_iter().filter(|a| ours(&a.tags)).collect(),
            nats: nats
                .into_iter()
                .filter(|n| ours(&n.tags) && !matches!(n.state, NatState::Deleted | NatState::Deleting))
                .collect(),
            route_tables: route_tables.into_iter().filter(|t| ours(&t.tags)).collect(),
            vpcs,
        })
    }
}

/// The first `wanted` zones, in name order, that can host the stack ([`NetworkProvisioner`]'s
/// choice, shared with the capacity preflight).
pub(crate) async fn usable_zones(
    client: &dyn Ec2Api,
    ctx: &Context,
    spec: &NetworkSpec,
    wanted: usize,
) -> Result<Vec<String>> {
    let mut zones: Vec<ZoneInfo> = client
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
        let offered = client.instance_type_zone_ids(t.clone()).await.at("Describe", "instance type offerings")?;
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
