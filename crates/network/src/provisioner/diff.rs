//! The changes for a new VPC: the observed state against the desired one, as typed changes.
//! The plan shows each as one entry; apply executes exactly the list (after executing the
//! replacements it contains, it observes again: what was replaced is then absent and created).

use super::{
    Action, Change, Context, DEFAULT_ROUTE, Desired, DesiredSubnet, NAT_FAILED, NatState, NetworkProvisioner,
    NetworkSpec, NewVpcSpec, ObservedNew, Planned, ResourceRef, RouteTarget, extras, find, name_of,
};

/// Tags of ours missing or different on a resource: (key, before, after).
pub(crate) type Drift = dify_stack_core::TagDrift;

use dify_stack_core::tag_drift as drift;

/// One change of the network tier, as [`Provisioner::changes`](dify_stack_core::Provisioner::changes)
/// computes it and [`Provisioner::execute`](dify_stack_core::Provisioner::execute) carries it out.
/// Opaque: what a plan shows of it is its [`Planned::change`].
#[derive(Debug, Clone)]
pub struct NetworkStep(pub(crate) NetChange);

impl Planned for NetworkStep {
    fn change(&self) -> Change {
        self.0.change()
    }
}

/// One change of a new-VPC network, in the order apply makes them; or, for an existing VPC,
/// [`NetChange::TagExistingSubnet`] only.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum NetChange {
    /// The VPC is created (DNS support and hostnames on, our tags).
    CreateVpc {
        name: String,
        cidr: String,
    },
    /// A VPC's primary CIDR cannot change: the network is deleted and built again.
    ReplaceVpc {
        name: String,
        id: String,
        have: String,
        want: String,
    },
    /// DNS support or hostnames turned on, our tags.
    UpdateVpc {
        name: String,
        id: String,
        dns_support: bool,
        dns_hostnames: bool,
        tags: Drift,
    },
    /// A duplicate VPC (an SDK retry of a CreateVpc whose response was lost) is deleted.
    DeleteVpc {
        name: String,
        id: String,
    },
    CreateSubnet {
        name: String,
        cidr: String,
        az: String,
    },
    /// A subnet's CIDR and AZ cannot change: its NAT gateways and it are deleted, then created.
    ReplaceSubnet {
        name: String,
        id: String,
        cidr: Option<(String, String)>,
        az: Option<(String, String)>,
    },
    TagSubnet {
        name: String,
        id: String,
        tags: Drift,
    },
    DeleteSubnet {
        name: String,
        id: String,
    },
    /// The internet gateway is created and attached to the VPC.
    CreateIgw {
        name: String,
    },
    /// The gateway attached to the VPC (when it is not), our tags.
    UpdateIgw {
        name: String,
        id: String,
        attach: Option<String>,
        tags: Drift,
    },
    CreateEip {
        name: String,
    },
    /// Our tags on an Elastic IP (a renamed `Name`, a lost tag, a missing logical id).
    TagEip {
        name: String,
        id: String,
        tags: Drift,
    },
    DeleteEip {
        name: String,
        id: String,
    },
    CreateNat {
        name: String,
    },
    /// A failed NAT gateway (repaired without `allow_replace`) or one in the wrong subnet.
    ReplaceNat {
        name: String,
        id: String,
        subnet: Option<(String, String)>,
        reason: &'static str,
    },
    /// Our tags on a NAT gateway.
    TagNat {
        name: String,
        id: String,
        tags: Drift,
    },
    DeleteNat {
        name: String,
        id: String,
    },
    /// The route table is created with its default route and associations.
    CreateRouteTable {
        name: String,
    },
    /// The default route (its target known after apply when its gateway is created by the same
    /// run), subnet associations missing, our tags.
    UpdateRouteTable {
        name: String,
        id: String,
        route: Option<(Option<String>, String)>,
        associate: Vec<String>,
        tags: Drift,
    },
    DeleteRouteTable {
        name: String,
        id: String,
    },
    /// An existing VPC's subnet lacks the Kubernetes load balancer tags (`tag_subnets`).
    TagExistingSubnet {
        id: String,
        tags: Drift,
    },
}

impl NetChange {
    /// A replacement the user must allow (`allow_replace`): all but a failed NAT gateway's.
    pub(crate) fn needs_permission(&self) -> bool {
        match self {
            NetChange::ReplaceVpc { .. } | NetChange::ReplaceSubnet { .. } => true,
            NetChange::ReplaceNat { reason, .. } => *reason != NAT_FAILED,
            _ => false,
        }
    }

    /// A replacement (deleted first; the next observation creates it again).
    pub(crate) fn is_replacement(&self) -> bool {
        matches!(self, NetChange::ReplaceVpc { .. } | NetChange::ReplaceSubnet { .. } | NetChange::ReplaceNat { .. })
    }
}

impl Planned for NetChange {
    fn change(&self) -> Change {
        let r = |kind: &str, name: &str, id: Option<&String>| {
            let r = ResourceRef::new(kind, name);
            match id {
                Some(id) => r.with_id(id),
                None => r,
            }
        };
        match self {
            NetChange::CreateVpc { name, cidr } => {
                Change::new(Action::Create, r("ec2:vpc", name, None)).field("cidr_block", None::<&str>, Some(cidr))
            }
            NetChange::ReplaceVpc { name, id, have, want } => {
                Change::new(Action::Replace, r("ec2:vpc", name, Some(id)))
                    .field("cidr_block", Some(have), Some(want))
                    .because("a VPC's primary CIDR cannot change")
            }
            NetChange::UpdateVpc { name, id, dns_support, dns_hostnames, tags } => {
                let mut c = Change::new(Action::Update, r("ec2:vpc", name, Some(id))).tag_fields(tags);
                if *dns_support {
                    c = c.field("enable_dns_support", Some(false), Some(true));
                }
                if *dns_hostnames {
                    c = c.field("enable_dns_hostnames", Some(false), Some(true));
                }
                c
            }
            NetChange::DeleteVpc { name, id } => {
                Change::new(Action::Delete, r("ec2:vpc", name, Some(id))).because("duplicate")
            }
            NetChange::CreateSubnet { name, cidr, az } => Change::new(Action::Create, r("ec2:subnet", name, None))
                .field("cidr_block", None::<&str>, Some(cidr))
                .field("availability_zone", None::<&str>, Some(az)),
            NetChange::ReplaceSubnet { name, id, cidr, az } => {
                let mut c = Change::new(Action::Replace, r("ec2:subnet", name, Some(id)))
                    .because("a subnet's CIDR and AZ cannot change");
                if let Some((have, want)) = cidr {
                    c = c.field("cidr_block", Some(have), Some(want));
                }
                if let Some((have, want)) = az {
                    c = c.field("availability_zone", Some(have), Some(want));
                }
                c
            }
            NetChange::TagSubnet { name, id, tags } => {
                Change::new(Action::Update, r("ec2:subnet", name, Some(id))).tag_fields(tags)
            }
            NetChange::DeleteSubnet { name, id } => Change::new(Action::Delete, r("ec2:subnet", name, Some(id))),
            NetChange::CreateIgw { name } => Change::new(Action::Create, r("ec2:internet-gateway", name, None)),
            NetChange::UpdateIgw { name, id, attach, tags } => {
                let mut c = Change::new(Action::Update, r("ec2:internet-gateway", name, Some(id)));
                if let Some(vpc) = attach {
                    c = c.field("attachment", None::<&str>, Some(vpc));
                }
                c.tag_fields(tags)
            }
            NetChange::CreateEip { name } => Change::new(Action::Create, r("ec2:elastic-ip", name, None)),
            NetChange::TagEip { name, id, tags } => {
                Change::new(Action::Update, r("ec2:elastic-ip", name, Some(id))).tag_fields(tags)
            }
            NetChange::TagNat { name, id, tags } => {
                Change::new(Action::Update, r("ec2:nat-gateway", name, Some(id))).tag_fields(tags)
            }
            NetChange::DeleteEip { name, id } => Change::new(Action::Delete, r("ec2:elastic-ip", name, Some(id))),
            NetChange::CreateNat { name } => Change::new(Action::Create, r("ec2:nat-gateway", name, None)),
            NetChange::ReplaceNat { name, id, subnet, reason } => {
                let mut c = Change::new(Action::Replace, r("ec2:nat-gateway", name, Some(id))).because(*reason);
                if let Some((have, want)) = subnet {
                    c = c.field("subnet_id", Some(have), Some(want));
                }
                c
            }
            NetChange::DeleteNat { name, id } => Change::new(Action::Delete, r("ec2:nat-gateway", name, Some(id))),
            NetChange::CreateRouteTable { name } => Change::new(Action::Create, r("ec2:route-table", name, None)),
            NetChange::UpdateRouteTable { name, id, route, associate, tags } => {
                let mut c = Change::new(Action::Update, r("ec2:route-table", name, Some(id)));
                if let Some((have, want)) = route {
                    c = c.field(format!("routes[{DEFAULT_ROUTE}]"), have.as_ref(), Some(want));
                }
                for subnet in associate {
                    c = c.field(format!("associations[{subnet}]"), None::<&str>, Some(subnet));
                }
                c.tag_fields(tags)
            }
            NetChange::DeleteRouteTable { name, id } => {
                Change::new(Action::Delete, r("ec2:route-table", name, Some(id)))
            }
            NetChange::TagExistingSubnet { id, tags } => {
                Change::new(Action::Update, r("ec2:subnet", id, Some(id))).tag_fields(tags)
            }
        }
    }
}

impl NetworkProvisioner {
    /// The changes of a new-VPC network against one observation, in the order apply makes them.
    pub(super) fn changes_new(
        ctx: &Context,
        spec: &NetworkSpec,
        new: &NewVpcSpec,
        obs: &ObservedNew,
    ) -> Vec<NetChange> {
        let want = Desired::new(ctx, spec, new, &obs.zones);
        let mut out = Vec::new();
        let create_subnet = |s: &DesiredSubnet| NetChange::CreateSubnet {
            name: s.named.name.clone(),
            cidr: s.cidr.clone(),
            az: s.az.clone(),
        };
        let Some(vpc) = obs.vpc() else {
            // Nothing exists: everything is created.
            out.push(NetChange::CreateVpc { name: want.vpc.name.clone(), cidr: want.cidr.clone() });
            out.extend(want.subnets().map(create_subnet));
            out.push(NetChange::CreateIgw { name: want.igw.name.clone() });
            out.extend(want.eips.iter().map(|e| NetChange::CreateEip { name: e.name.clone() }));
            out.extend(want.nats.iter().map(|n| NetChange::CreateNat { name: n.name.clone() }));
            out.extend(want.route_tables().map(|t| NetChange::CreateRouteTable { name: t.named.name.clone() }));
            return out;
        };

        // VPC.
        let vpc_id = vpc.id.to_string();
        if vpc.cidr != want.cidr {
            out.push(NetChange::ReplaceVpc {
                name: want.vpc.name.clone(),
                id: vpc_id.clone(),
                have: vpc.cidr.clone(),
                want: want.cidr.clone(),
            });
        }
        let dns = obs.dns.unwrap_or(crate::client::DnsAttributes { support: true, hostnames: true });
        let update = NetChange::UpdateVpc {
            name: want.vpc.name.clone(),
            id: vpc_id.clone(),
            dns_support: !dns.support,
            dns_hostnames: !dns.hostnames,
            tags: drift(&want.vpc.tags, &vpc.tags),
        };
        if !update.change().fields.is_empty() {
            out.push(update);
        }
        for extra in &obs.vpcs[1..] {
            out.push(NetChange::DeleteVpc { name: want.vpc.name.clone(), id: extra.id.to_string() });
        }

        // Subnets.
        for s in want.subnets() {
            let name = s.named.name.clone();
            match find(&obs.subnets, &s.named) {
                None => out.push(create_subnet(s)),
                Some(have) if have.cidr != s.cidr || have.az != s.az => out.push(NetChange::ReplaceSubnet {
                    name,
                    id: have.id.to_string(),
                    cidr: (have.cidr != s.cidr).then(|| (have.cidr.clone(), s.cidr.clone())),
                    az: (have.az != s.az).then(|| (have.az.clone(), s.az.clone())),
                }),
                Some(have) => {
                    let tags = drift(&s.named.tags, &have.tags);
                    if !tags.is_empty() {
                        out.push(NetChange::TagSubnet { name, id: have.id.to_string(), tags });
                    }
                }
            }
        }

        // Internet gateway.
        let igw = find(&obs.igws, &want.igw);
        match igw {
            None => out.push(NetChange::CreateIgw { name: want.igw.name.clone() }),
            Some(g) => {
                let update = NetChange::UpdateIgw {
                    name: want.igw.name.clone(),
                    id: g.id.to_string(),
                    attach: (!g.attached_vpcs.contains(&vpc.id)).then(|| vpc_id.clone()),
                    tags: drift(&want.igw.tags, &g.tags),
                };
                if !update.change().fields.is_empty() {
                    out.push(update);
                }
            }
        }

        // Elastic IPs and NAT gateways.
        for e in &want.eips {
            match find(&obs.eips, e) {
                None => out.push(NetChange::CreateEip { name: e.name.clone() }),
                Some(have) => {
                    let tags = drift(&e.tags, &have.tags);
                    if !tags.is_empty() {
                        out.push(NetChange::TagEip { name: e.name.clone(), id: have.allocation_id.to_string(), tags });
                    }
                }
            }
        }
        for (i, n) in want.nats.iter().enumerate() {
            let subnet = find(&obs.subnets, &want.public[i].named);
            match find(&obs.nats, n) {
                None => out.push(NetChange::CreateNat { name: n.name.clone() }),
                Some(have) if have.state == NatState::Failed => out.push(NetChange::ReplaceNat {
                    name: n.name.clone(),
                    id: have.id.to_string(),
                    subnet: None,
                    reason: NAT_FAILED,
                }),
                Some(have) if subnet.is_some_and(|s| s.id != have.subnet_id) => out.push(NetChange::ReplaceNat {
                    name: n.name.clone(),
                    id: have.id.to_string(),
                    subnet: subnet.map(|s| (have.subnet_id.to_string(), s.id.to_string())),
                    reason: "a NAT gateway cannot move",
                }),
                Some(have) => {
                    let tags = drift(&n.tags, &have.tags);
                    if !tags.is_empty() {
                        out.push(NetChange::TagNat { name: n.name.clone(), id: have.id.to_string(), tags });
                    }
                }
            }
        }

        // Route tables.
        let igw_id = igw.map(|g| RouteTarget::Gateway(g.id.clone()));
        for t in want.route_tables() {
            let target = match t.nat {
                None => igw_id.clone(),
                Some(i) => find(&obs.nats, &want.nats[i]).map(|n| RouteTarget::NatGateway(n.id.clone())),
            };
            let Some(have) = find(&obs.route_tables, &t.named) else {
                out.push(NetChange::CreateRouteTable { name: t.named.name.clone() });
                continue;
            };
            let route = have.routes.iter().find(|r| r.destination == DEFAULT_ROUTE).map(|r| r.target.to_string());
            let wanted_target = target.map(|t| t.to_string()).unwrap_or_else(|| "(known after apply)".into());
            let associate = t
                .subnets
                .iter()
                .filter(|subnet| {
                    let subnet = find(&obs.subnets, subnet);
                    !subnet.is_some_and(|s| have.associations.iter().any(|a| a.subnet_id.as_ref() == Some(&s.id)))
                })
                .map(|subnet| subnet.name.clone())
                .collect();
            let update = NetChange::UpdateRouteTable {
                name: t.named.name.clone(),
                id: have.id.to_string(),
                route: (route.as_deref() != Some(wanted_target.as_str())).then_some((route, wanted_target)),
                associate,
                tags: drift(&t.named.tags, &have.tags),
            };
            if !update.change().fields.is_empty() {
                out.push(update);
            }
        }

        // What is no longer wanted (e.g. after per_az -> single, or fewer AZs), in the order
        // their dependencies allow: NAT gateways, their addresses, route tables, subnets. Each is
        // shown by the Name it has now.
        for extra in extras(&obs.nats, &want.nats.iter().collect::<Vec<_>>()) {
            out.push(NetChange::DeleteNat { name: name_of(&extra.tags).to_owned(), id: extra.id.to_string() });
        }
        for extra in extras(&obs.eips, &want.eips.iter().collect::<Vec<_>>()) {
            out.push(NetChange::DeleteEip {
                name: name_of(&extra.tags).to_owned(),
                id: extra.allocation_id.to_string(),
            });
        }
        for extra in extras(&obs.route_tables, &want.route_tables().map(|t| &t.named).collect::<Vec<_>>()) {
            out.push(NetChange::DeleteRouteTable { name: name_of(&extra.tags).to_owned(), id: extra.id.to_string() });
        }
        for extra in extras(&obs.subnets, &want.subnets().map(|s| &s.named).collect::<Vec<_>>()) {
            out.push(NetChange::DeleteSubnet { name: name_of(&extra.tags).to_owned(), id: extra.id.to_string() });
        }
        out
    }
}
