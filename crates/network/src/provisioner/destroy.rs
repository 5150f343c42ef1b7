//! Destroy of a new VPC: dependants first. Everything is found as observe finds it, by the
//! ownership tag (and is the network's: its logical id, if any, is one of ours), never by `Name`.
//! A refused delete is retried only while what holds it is going away ([`Refused`]).

use super::{
    AddressInfo, AllocationId, AwsError, BTreeSet, Context, Duration, ErrorKind, Filter, IgwInfo, NatGatewayId,
    NatInfo, NatState, NetworkProvisioner, ResourceRef, Result, RouteTableInfo, SubnetId, SubnetInfo, Tags, VpcId,
    VpcInfo, from_aws_wait, ignore_not_found, is_network, name_of, owner, try_join_all, wait,
};
use crate::provisioner::Refused;
use dify_stack_core::AwsAt;

impl NetworkProvisioner {
    pub(super) async fn delete_nats(&self, ctx: &Context, ids: Vec<NatGatewayId>) -> Result<()> {
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
    pub(super) async fn release_eip(&self, ctx: &Context, allocation: AllocationId) -> Result<()> {
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

    pub(super) async fn delete_subnet(&self, ctx: &Context, subnet: SubnetId) -> Result<()> {
        self.delete_refusable(ctx, Refused::Subnet(&subnet), || self.client.delete_subnet(subnet.clone())).await
    }

    pub(super) async fn delete_route_table(&self, ctx: &Context, table: &RouteTableInfo) -> Result<()> {
        for a in table.associations.iter().filter(|a| !a.main) {
            ignore_not_found(self.client.disassociate_route_table(a.id.clone()).await).at("Delete", a.id.as_str())?;
        }
        self.delete_refusable(ctx, Refused::RouteTable(&table.id), || self.client.delete_route_table(table.id.clone()))
            .await
    }

    /// Detaches an internet gateway from every VPC it is attached to, then deletes it.
    pub(super) async fn delete_igw(&self, ctx: &Context, g: &IgwInfo) -> Result<()> {
        for vpc in &g.attached_vpcs {
            // Refused while public addresses are still mapped in the VPC (a NAT gateway on its
            // way out, or a load balancer or instance that stays).
            self.delete_refusable(ctx, Refused::Detach(&g.id, vpc), || async {
                match self.client.detach_internet_gateway(g.id.clone(), vpc.clone()).await {
                    // Gateway.NotAttached: detached already.
                    Err(e) if e.kind == ErrorKind::InvalidState => Ok(()),
                    other => other,
                }
            })
            .await?;
        }
        self.delete_refusable(ctx, Refused::Igw(&g.id), || self.client.delete_internet_gateway(g.id.clone())).await
    }

    /// Deletes everything the stack owns in the network tier, in the order that works on AWS.
    pub(super) async fn destroy_new(&self, ctx: &Context) -> Result<Vec<ResourceRef>> {
        let mut deleted = Vec::new();
        let r = |kind: &str, tags: &Tags, id: &str| ResourceRef::new(kind, name_of(tags)).with_id(id);
        // The stack's and the network's (a resource with another tier's logical id is not).
        let ours = |tags: &Tags| ctx.owns_tags(tags) && is_network(tags);
        let vpcs: Vec<VpcInfo> = self
            .client
            .describe_vpcs(vec![owner(ctx)])
            .await
            .at("Describe", "vpcs")?
            .into_iter()
            .filter(|v| ours(&v.tags))
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
            .filter(|n| ours(&n.tags) && n.state != NatState::Deleted && seen.insert(n.id.clone()))
            .collect();
        self.delete_nats(ctx, nats.iter().map(|n| n.id.clone()).collect()).await?;
        deleted.extend(nats.iter().map(|n| r("ec2:nat-gateway", &n.tags, n.id.as_str())));

        // 2. Elastic IPs.
        let eips: Vec<AddressInfo> = self.client.describe_addresses(vec![owner(ctx)]).await.at("Describe", "eips")?;
        for e in eips.iter().filter(|e| ours(&e.tags)) {
            self.release_eip(ctx, e.allocation_id.clone()).await?;
            deleted.push(r("ec2:elastic-ip", &e.tags, e.allocation_id.as_str()));
        }

        // 3. Internet gateways: detach, delete.
        let igws: Vec<IgwInfo> =
            self.client.describe_internet_gateways(vec![owner(ctx)]).await.at("Describe", "internet gateways")?;
        for g in igws.iter().filter(|g| ours(&g.tags)) {
            self.delete_igw(ctx, g).await?;
            deleted.push(r("ec2:internet-gateway", &g.tags, g.id.as_str()));
        }

        if !vpc_ids.is_empty() {
            // 4. Leftover ENIs that carry our tags or sit in our security groups (never attached
            //    ones). The groups are the stack's in its VPCs, whichever tier left them.
            let groups = self
                .client
                .describe_security_groups(vec![owner(ctx), Filter::new("vpc-id", vpc_ids.clone())])
                .await
                .at("Describe", "security groups")?;
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

            // 5. Subnets (retrying DependencyViolation while ENIs leave).
            let subnets = self
                .client
                .describe_subnets(vec![owner(ctx), Filter::new("vpc-id", vpc_ids.clone())])
                .await
                .at("Describe", "subnets")?;
            let subnets: Vec<SubnetInfo> = subnets.into_iter().filter(|s| ours(&s.tags)).collect();
            try_join_all(subnets.iter().map(|s| self.delete_subnet(ctx, s.id.clone()))).await?;
            deleted.extend(subnets.iter().map(|s| r("ec2:subnet", &s.tags, s.id.as_str())));

            // 6. Route tables.
            let tables = self
                .client
                .describe_route_tables(vec![owner(ctx), Filter::new("vpc-id", vpc_ids.clone())])
                .await
                .at("Describe", "route tables")?;
            for t in tables.iter().filter(|t| ours(&t.tags)) {
                self.delete_route_table(ctx, t).await?;
                deleted.push(r("ec2:route-table", &t.tags, t.id.as_str()));
            }

            // 7. Security groups the stack owns in its VPCs (left by other tiers), together: one
            //    may name another in its rules, and is refused until that one is gone.
            let vpc_list: Vec<VpcId> = vpcs.iter().map(|v| v.id.clone()).collect();
            try_join_all(groups.iter().map(|g| {
                self.delete_refusable(ctx, Refused::SecurityGroup(&g.id, &vpc_list), || {
                    self.client.delete_security_group(g.id.clone())
                })
            }))
            .await?;
            deleted.extend(groups.iter().map(|g| r("ec2:security-group", &g.tags, g.id.as_str())));
        }

        // 8. VPCs.
        for v in &vpcs {
            self.delete_refusable(ctx, Refused::Vpc(&v.id), || self.client.delete_vpc(v.id.clone())).await?;
            deleted.push(r("ec2:vpc", &v.tags, v.id.as_str()));
        }
        for d in &deleted {
            tracing::info!(resource = %d, "deleted");
        }
        Ok(deleted)
    }
}
