//! The plan for a new VPC: the observed state against the desired one.

#[allow(unused_imports)]
use super::*;

impl NetworkProvisioner {
    pub(super) fn diff_new(ctx: &Context, spec: &NetworkSpec, new: &NewVpcSpec, obs: &ObservedNew) -> Plan {
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
}

/// Owned items whose name is not wanted, plus every duplicate after the first of a wanted name.
pub(super) fn extras<'a, T>(
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
