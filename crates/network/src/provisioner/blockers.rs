//! A delete AWS refused (`DependencyViolation`): what still uses the resource, and whether that
//! is worth waiting for. Destroy retries a refusal only while what holds the resource is on its way
//! out (a NAT gateway deleting, an interface detaching); something that is not the stack's and is
//! not going away (another party's subnet or group, an instance's interface, a load balancer left
//! by Kubernetes) ends it at once with [`NetworkError::DeleteBlocked`] naming it. (Issue 28: a
//! destroy retried a refused delete for over thirteen minutes.)

use super::{
    AwsError, Context, Filter, NatState, NetworkError, NetworkProvisioner, Result, SETTLE_GRACE, SubnetId, Tags, VpcId,
    WaitEnded, WaitError, ignore_not_found, owner, wait,
};

use dify_stack_core::ids::{InternetGatewayId, RouteTableId, SecurityGroupId};

use crate::client::EniInfo;

/// A delete (or detach) AWS may refuse.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Refused<'a> {
    /// DeleteSubnet: "You must terminate all running instances in the subnet" (EC2 API
    /// reference, DeleteSubnet); any interface in it holds it.
    Subnet(&'a SubnetId),
    /// DeleteVpc: every subnet, route table but the main one, security group but the default
    /// one, attached gateway and interface holds it (EC2 API reference, DeleteVpc).
    Vpc(&'a VpcId),
    /// DetachInternetGateway: "The VPC must not contain any running instances with Elastic IP
    /// addresses or public IPv4 addresses" (EC2 API reference, DetachInternetGateway).
    Detach(&'a InternetGatewayId, &'a VpcId),
    /// DeleteInternetGateway while still attached.
    Igw(&'a InternetGatewayId),
    /// DeleteRouteTable: "You must disassociate the route table from any subnets ... You can't
    /// delete the main route table" (EC2 API reference, DeleteRouteTable).
    RouteTable(&'a RouteTableId),
    /// DeleteSecurityGroup of a group "associated with an instance or network interface" or
    /// "referenced by another security group in the same VPC" (EC2 API reference,
    /// DeleteSecurityGroup); the VPCs whose groups may reference it.
    SecurityGroup(&'a SecurityGroupId, &'a [VpcId]),
}

impl std::fmt::Display for Refused<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Refused::Subnet(id) => write!(f, "subnet {id}"),
            Refused::Vpc(id) => write!(f, "VPC {id}"),
            Refused::Detach(igw, vpc) => write!(f, "the attachment of internet gateway {igw} to {vpc}"),
            Refused::Igw(id) => write!(f, "internet gateway {id}"),
            Refused::RouteTable(id) => write!(f, "route table {id}"),
            Refused::SecurityGroup(id, _) => write!(f, "security group {id}"),
        }
    }
}

/// Whether what holds a resource will let go by itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Hold {
    /// On its way out (deleting, detaching, or ours and deleted just now): worth the wait.
    Leaving,
    /// An interface another AWS service manages: it goes with its resource, so it gets
    /// [`SETTLE_GRACE`], no more.
    Managed,
    /// Not the stack's, or not going away: waiting changes nothing.
    InTheWay,
}

/// One thing that holds a resource AWS refused to delete.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Blocker {
    /// It, described for the error.
    pub(crate) what: String,
    /// Whether to wait for it.
    pub(crate) hold: Hold,
}

/// Whether an interface in the way of a delete lets go by itself. `ours`: it carries the stack's
/// tag or sits in one of its security groups (an unattached one is then deleted by destroy).
pub(crate) fn eni_hold(eni: &EniInfo, ours: bool) -> Hold {
    if eni.status == "detaching" || matches!(eni.attachment_status.as_deref(), Some("detaching" | "detached")) {
        Hold::Leaving
    } else if eni.interface_type == "nat_gateway" {
        // A NAT gateway's interface goes with it; a NAT gateway that stays is its own blocker.
        Hold::Leaving
    } else if eni.requester_managed {
        Hold::Managed
    } else if !eni.attached && ours {
        Hold::Leaving
    } else {
        Hold::InTheWay
    }
}

fn describe_eni(eni: &EniInfo, ours: bool) -> String {
    let mut s = format!("network interface {} ({}", eni.id, if eni.status.is_empty() { "?" } else { &eni.status });
    if !eni.interface_type.is_empty() && eni.interface_type != "interface" {
        s.push_str(&format!(", {}", eni.interface_type));
    }
    if !eni.description.is_empty() {
        s.push_str(&format!(", {:?}", eni.description));
    }
    if let Some(ip) = &eni.public_ip {
        s.push_str(&format!(", public address {ip}"));
    }
    s.push_str(if ours { ", the stack's)" } else { ", not the stack's)" });
    s
}

fn whose(ctx: &Context, tags: &Tags) -> &'static str {
    if ctx.owns_tags(tags) { "the stack's" } else { "not the stack's" }
}

/// The outcome of one attempt of a refusable delete.
enum Attempt {
    /// Refused, worth another try.
    Again(AwsError),
    /// Over: the error to return.
    Done(NetworkError),
}

impl NetworkProvisioner {
    /// Runs a delete that AWS may refuse while something uses the resource: not-found is done;
    /// a refusal is looked into ([`Self::blockers`]) and retried, within the dependency budget,
    /// only while what holds the resource is leaving; what is in the way ends it at once, an
    /// interface another service manages (or nothing AWS lists) after [`SETTLE_GRACE`], with
    /// [`NetworkError::DeleteBlocked`] naming them. Transient errors are retried.
    pub(crate) async fn delete_refusable<F, Fut>(&self, ctx: &Context, refused: Refused<'_>, delete: F) -> Result<()>
    where
        F: Fn() -> Fut,
        Fut: std::future::Future<Output = Result<(), AwsError>>,
    {
        let label = refused.to_string();
        let grace = ctx.wait.capped(SETTLE_GRACE).max_wait;
        let unsettled = std::sync::Mutex::new(None::<tokio::time::Instant>);
        let (label_ref, unsettled, delete) = (&label, &unsettled, &delete);
        let outcome = wait::retry(
            &format!("delete {label}"),
            &Self::dependency_policy(ctx),
            ctx.cancellation(),
            |a: &Attempt| matches!(a, Attempt::Again(_)),
            move || async move {
                let refusal = match delete().await {
                    Ok(()) => return Ok(()),
                    Err(e) if e.is_not_found() => return Ok(()),
                    Err(e) if e.is_dependency_violation() => e,
                    Err(e) if e.is_retryable() => return Err(Attempt::Again(e)),
                    Err(e) => return Err(Attempt::Done(e.at("Delete", label_ref.as_str()).into())),
                };
                let blockers = match self.blockers(ctx, refused).await {
                    Ok(b) => b,
                    Err(e) if e.is_retryable() => return Err(Attempt::Again(refusal)),
                    Err(e) => return Err(Attempt::Done(e.at("Describe", label_ref.as_str()).into())),
                };
                let named = |hold: Hold| -> Vec<String> {
                    blockers.iter().filter(|b| b.hold == hold).map(|b| b.what.clone()).collect()
                };
                let blocked = |blockers: Vec<String>, source: AwsError| {
                    Attempt::Done(NetworkError::DeleteBlocked {
                        resource: label_ref.clone(),
                        blockers,
                        source: Box::new(source),
                    })
                };
                let in_the_way = named(Hold::InTheWay);
                if !in_the_way.is_empty() {
                    return Err(blocked(in_the_way, refusal));
                }
                let leaving = named(Hold::Leaving);
                if !leaving.is_empty() {
                    tracing::info!(resource = %label_ref, ?leaving, "delete refused while these go; retrying");
                    *unsettled.lock().expect("not poisoned") = None;
                    return Err(Attempt::Again(refusal));
                }
                let since = *unsettled.lock().expect("not poisoned").get_or_insert_with(tokio::time::Instant::now);
                let managed = named(Hold::Managed);
                if since.elapsed() >= grace {
                    let left = if managed.is_empty() {
                        vec!["nothing AWS lists (a VPC endpoint, peering connection or VPN gateway?)".to_owned()]
                    } else {
                        managed
                    };
                    return Err(blocked(left, refusal));
                }
                tracing::info!(resource = %label_ref, ?managed, "delete refused; waiting a short while");
                Err(Attempt::Again(refusal))
            },
        )
        .await;
        match outcome {
            Ok(()) => Ok(()),
            Err(WaitError::Failed { source: Attempt::Done(e), .. }) => Err(e),
            Err(WaitError::Failed { source: Attempt::Again(e), .. }) => Err(e.at("Delete", label).into()),
            Err(WaitError::TimedOut { what, waited, last_status }) => {
                Err(WaitEnded::TimedOut { what, waited, last_status }.into())
            }
            Err(WaitError::Cancelled { what }) => Err(WaitEnded::Cancelled { what }.into()),
        }
    }

    /// What holds a resource AWS refused to delete, each with whether it lets go by itself.
    /// Unattached interfaces of the stack's found on the way are deleted (destroy deletes them
    /// anyway; one may have come loose since).
    pub(crate) async fn blockers(&self, ctx: &Context, refused: Refused<'_>) -> Result<Vec<Blocker>, AwsError> {
        let mut out = Vec::new();
        let in_the_way = |what: String| Blocker { what, hold: Hold::InTheWay };
        match refused {
            Refused::Subnet(id) => {
                let scope = || Filter::new("subnet-id", [id.as_str()]);
                self.eni_blockers(ctx, vec![scope()], false, &mut out).await?;
                self.nat_blockers(ctx, scope(), &mut out).await?;
            }
            Refused::Vpc(id) => {
                let scope = || Filter::new("vpc-id", [id.as_str()]);
                for s in self.client.describe_subnets(vec![scope()]).await? {
                    out.push(in_the_way(format!("subnet {} ({}, {})", s.id, s.cidr, whose(ctx, &s.tags))));
                }
                for t in self.client.describe_route_tables(vec![scope()]).await? {
                    if !t.associations.iter().any(|a| a.main) {
                        out.push(in_the_way(format!("route table {} ({})", t.id, whose(ctx, &t.tags))));
                    }
                }
                for g in self.client.describe_security_groups(vec![scope()]).await? {
                    if g.name != "default" {
                        out.push(in_the_way(format!("security group {} {:?} ({})", g.id, g.name, whose(ctx, &g.tags))));
                    }
                }
                for g in self
                    .client
                    .describe_internet_gateways(vec![Filter::new("attachment.vpc-id", [id.as_str()])])
                    .await?
                {
                    out.push(in_the_way(format!("internet gateway {} (attached, {})", g.id, whose(ctx, &g.tags))));
                }
                self.nat_blockers(ctx, scope(), &mut out).await?;
                self.eni_blockers(ctx, vec![scope()], false, &mut out).await?;
            }
            Refused::Detach(_, vpc) => {
                self.eni_blockers(ctx, vec![Filter::new("vpc-id", [vpc.as_str()])], true, &mut out).await?;
                self.nat_blockers(ctx, Filter::new("vpc-id", [vpc.as_str()]), &mut out).await?;
            }
            Refused::Igw(id) => {
                for g in self
                    .client
                    .describe_internet_gateways(vec![Filter::new("internet-gateway-id", [id.as_str()])])
                    .await?
                {
                    for vpc in &g.attached_vpcs {
                        out.push(in_the_way(format!("VPC {vpc}, which it is attached to")));
                    }
                }
            }
            Refused::RouteTable(id) => {
                for t in self.client.describe_route_tables(vec![Filter::new("route-table-id", [id.as_str()])]).await? {
                    for a in &t.associations {
                        match &a.subnet_id {
                            _ if a.main => out.push(in_the_way(format!(
                                "VPC {}, whose main route table it is (make another table the main one)",
                                t.vpc_id
                            ))),
                            Some(subnet) => out.push(in_the_way(format!("subnet {subnet}, associated with it"))),
                            None => out.push(in_the_way(format!("association {}", a.id))),
                        }
                    }
                }
            }
            Refused::SecurityGroup(id, vpcs) => {
                self.eni_blockers(ctx, vec![Filter::new("group-id", [id.as_str()])], false, &mut out).await?;
                if !vpcs.is_empty() {
                    let groups = self
                        .client
                        .describe_security_groups(vec![Filter::new("vpc-id", vpcs.iter().map(VpcId::as_str))])
                        .await?;
                    for g in groups.iter().filter(|g| g.id != *id && g.ingress.iter().any(|r| r.3 == id.as_str())) {
                        // The stack's own groups are deleted in the same pass as this one.
                        let hold = if ctx.owns_tags(&g.tags) { Hold::Leaving } else { Hold::InTheWay };
                        let what = format!(
                            "security group {} {:?} ({}), whose rules name it",
                            g.id,
                            g.name,
                            whose(ctx, &g.tags)
                        );
                        out.push(Blocker { what, hold });
                    }
                }
            }
        }
        Ok(out)
    }

    /// The interfaces in scope (only those with a public address when `public_only`), each with
    /// its [`eni_hold`]; the stack's unattached ones are deleted.
    async fn eni_blockers(
        &self,
        ctx: &Context,
        scope: Vec<Filter>,
        public_only: bool,
        out: &mut Vec<Blocker>,
    ) -> Result<(), AwsError> {
        let enis: Vec<EniInfo> = self
            .client
            .describe_network_interfaces(scope)
            .await?
            .into_iter()
            .filter(|e| !public_only || e.public_ip.is_some())
            .collect();
        let owned_groups: Vec<SecurityGroupId> = if enis.iter().any(|e| !e.attached && !ctx.owns_tags(&e.tags)) {
            let groups = self.client.describe_security_groups(vec![owner(ctx)]).await?;
            groups.into_iter().filter(|g| ctx.owns_tags(&g.tags)).map(|g| g.id).collect()
        } else {
            Vec::new()
        };
        for eni in &enis {
            let ours = ctx.owns_tags(&eni.tags) || eni.group_ids.iter().any(|g| owned_groups.contains(g));
            let hold = eni_hold(eni, ours);
            if hold == Hold::Leaving && ours && !eni.attached && !eni.requester_managed {
                ignore_not_found(self.client.delete_network_interface(eni.id.clone()).await)?;
            }
            out.push(Blocker { what: describe_eni(eni, ours), hold });
        }
        Ok(())
    }

    /// The NAT gateways in scope: deleting ones, and the stack's (whose deletion destroy and
    /// apply request before they delete a subnet: one still listed live is a stale read), are
    /// leaving; someone else's live one is in the way.
    async fn nat_blockers(&self, ctx: &Context, scope: Filter, out: &mut Vec<Blocker>) -> Result<(), AwsError> {
        for n in self.client.describe_nat_gateways(vec![scope]).await? {
            let hold = match n.state {
                NatState::Deleted | NatState::Failed => continue,
                NatState::Deleting => Hold::Leaving,
                _ if ctx.owns_tags(&n.tags) => Hold::Leaving,
                NatState::Pending | NatState::Available => Hold::InTheWay,
            };
            out.push(Blocker { what: format!("NAT gateway {} ({:?}, {})", n.id, n.state, whose(ctx, &n.tags)), hold });
        }
        Ok(())
    }
}
