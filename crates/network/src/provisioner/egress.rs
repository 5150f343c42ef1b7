//! Apply, the egress: the internet gateway's attachment, NAT gateways (created with a
//! deterministic client token, waited until available) and the route tables.

use super::{
    AllocationId, AwsError, Context, DEFAULT_ROUTE, DesiredRouteTable, Duration, ErrorKind, Filter, IgwInfo,
    NAT_WAIT_CAP, NatGatewayId, NatInfo, NetworkError, NetworkProvisioner, Result, RouteTableInfo, RouteTarget,
    SubnetId, Tags, VpcId, WaitEnded, find, from_aws_wait, wait,
};
use crate::provisioner::NetChange;
use dify_stack_core::AwsAt;

impl NetworkProvisioner {
    /// AttachInternetGateway. A retry whose first attempt was applied (the response was lost)
    /// is answered `Resource.AlreadyAssociated` (EC2 API error codes): success only when the
    /// gateway is attached to this VPC; attached elsewhere stays an error.
    pub(super) async fn attach_igw(&self, ctx: &Context, igw: &IgwInfo, vpc: &VpcId) -> Result<()> {
        match self
            .fresh(ctx, "AttachInternetGateway", || self.client.attach_internet_gateway(igw.id.clone(), vpc.clone()))
            .await
        {
            Ok(()) => Ok(()),
            Err(e) if e.kind == ErrorKind::AlreadyExists => {
                let now = self
                    .client
                    .describe_internet_gateways(vec![Filter::new("internet-gateway-id", [igw.id.as_str()])])
                    .await
                    .at("Describe", igw.id.as_str())?;
                if !now.iter().any(|g| g.attached_vpcs.contains(vpc)) {
                    return Err(e.at("AttachInternetGateway", igw.id.as_str()).into());
                }
                Ok(())
            }
            Err(e) => Err(e.at("AttachInternetGateway", igw.id.as_str()).into()),
        }
    }

    /// Creates a NAT gateway with a deterministic client token. A failed or lost response is
    /// retried with the same token, so AWS returns the gateway the first attempt created instead
    /// of a second one. `generation` counts earlier, retired gateways of the same name, so a
    /// replacement gets a fresh token.
    pub(super) async fn create_nat(
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

    pub(super) async fn wait_nats(&self, ctx: &Context, ids: Vec<NatGatewayId>, available: bool) -> Result<()> {
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

    /// Executes a route table's change (`None`: it is converged, the observed one is returned).
    #[allow(clippy::too_many_arguments)]
    pub(super) async fn converge_route_table(
        &self,
        ctx: &Context,
        vpc: &VpcId,
        t: &DesiredRouteTable,
        target: RouteTarget,
        subnet_id: &(dyn Fn(&str) -> Option<SubnetId> + Sync),
        change: Option<&NetChange>,
        observed: &[RouteTableInfo],
    ) -> Result<RouteTableInfo> {
        let name = &t.named.name;
        let have = find(observed, &t.named).cloned();
        let (table, write_route, associate) = match (change, have) {
            (Some(NetChange::UpdateRouteTable { id, route, associate, tags, .. }), Some(have)) => {
                self.write_tags(id, tags).await?;
                (have, route.is_some(), associate.clone())
            }
            (None, Some(have)) => return Ok(have),
            _ => {
                let created = self
                    .client
                    .create_route_table(vpc.clone(), t.named.tags.clone())
                    .await
                    .at("CreateRouteTable", name)?;
                (created, true, t.subnets.iter().map(|s| s.name.clone()).collect())
            }
        };
        let subnets: Vec<SubnetId> = associate.iter().filter_map(|n| subnet_id(n)).collect();
        match table.routes.iter().find(|r| r.destination == DEFAULT_ROUTE) {
            _ if !write_route => {}
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
}
