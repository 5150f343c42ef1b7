//! Apply for a new VPC: create or converge each resource in dependency order.

use super::{
    AddressInfo, AllocationId, AwsError, Change, Context, DEPENDENCY_RETRY_CAP, Desired, DesiredSubnet, FRESH_ID_WAIT,
    Filter, NatGatewayId, NatInfo, NatState, NetworkError, NetworkOutput, NetworkProvisioner, NetworkSpec, NewVpcSpec,
    ObservedNew, Result, RouteTableInfo, RouteTarget, SubnetId, SubnetInfo, VpcId, VpcInfo, WaitError, find,
    ignore_not_found, new_output, try_join_all, wait,
};
use crate::provisioner::Drift;
use crate::provisioner::NetChange;
use dify_stack_core::AwsAt;
use dify_stack_core::Planned;

impl NetworkProvisioner {
    pub(super) fn dependency_policy(ctx: &Context) -> dify_stack_core::WaitPolicy {
        ctx.wait.capped(DEPENDENCY_RETRY_CAP)
    }

    /// Refuses a replacement the context does not allow, executes the replacements (deletes)
    /// and observes again; returns the observation and its changes, none of them a replacement
    /// any more. Without a replacement, `obs` and `changes` as they are.
    async fn replace_and_observe(
        &self,
        ctx: &Context,
        spec: &NetworkSpec,
        new: &NewVpcSpec,
        obs: ObservedNew,
        changes: Vec<NetChange>,
    ) -> Result<(ObservedNew, Vec<NetChange>)> {
        let replaced: Vec<&NetChange> = changes.iter().filter(|c| c.is_replacement()).collect();
        if replaced.is_empty() {
            return Ok((obs, changes));
        }
        let refused: Vec<Change> = replaced.iter().filter(|c| c.needs_permission()).map(|c| c.change()).collect();
        if !refused.is_empty() && !ctx.permissions.allow_replace {
            return Err(NetworkError::ReplacementRefused {
                resources: refused.iter().map(|c| c.resource.to_string()).collect(),
                reasons: refused.iter().map(|c| c.reason.clone().unwrap_or_default()).collect(),
            });
        }
        self.replace(ctx, &replaced).await?;
        let obs = self.observe_new(ctx, spec, new).await?;
        let changes = Self::changes_new(ctx, spec, new, &obs);
        Ok((obs, changes))
    }

    /// The VPC (DNS attributes, tags) and its subnets only: what the data stores and the node
    /// security group need, ready minutes before the NAT gateways. A plan that replaces
    /// something goes through the whole [`apply_new`](Self::apply_new) instead.
    pub(super) async fn apply_new_core(
        &self,
        ctx: &Context,
        spec: &NetworkSpec,
        new: &NewVpcSpec,
    ) -> Result<NetworkOutput> {
        let obs = self.observe_new(ctx, spec, new).await?;
        let changes = Self::changes_new(ctx, spec, new, &obs);
        if changes.iter().any(NetChange::is_replacement) {
            return self.apply_new(ctx, spec, new).await;
        }
        let want = Desired::new(ctx, spec, new, &obs.zones);
        let (vpc, subnets) = self.converge_vpc_and_subnets(ctx, &want, &obs, &changes).await?;
        // CreateVpc retried by the SDK after a lost response may have made a twin (VPC CIDRs may
        // overlap; a retried CreateSubnet is refused, InvalidSubnet.Conflict in the EC2 API error
        // codes, so subnets have no twins). The data stores build in the VPC this returns, so an
        // empty twin goes now.
        if obs.vpc().is_none() {
            let now = self.observe_new(ctx, spec, new).await?;
            for v in now.vpcs.iter().filter(|v| v.id != vpc.id) {
                tracing::warn!(vpc = %v.id, "removing a twin VPC");
                ignore_not_found(self.client.delete_vpc(v.id.clone()).await).at("Delete", v.id.as_str())?;
            }
        }
        Ok(new_output(&want, &vpc, &subnets, &[], &[], &[]))
    }

    /// Executes the VPC's and the subnets' changes (the subnets concurrently); returns the VPC
    /// and the wanted subnets.
    async fn converge_vpc_and_subnets(
        &self,
        ctx: &Context,
        want: &Desired,
        obs: &ObservedNew,
        changes: &[NetChange],
    ) -> Result<(VpcInfo, Vec<SubnetInfo>)> {
        let mut vpc = obs.vpc().cloned();
        // The DNS attributes are set beside the subnets: they need only the VPC.
        let mut dns = None;
        for change in changes {
            match change {
                NetChange::CreateVpc { name, cidr } => {
                    let v = self.client.create_vpc(cidr.clone(), want.vpc.tags.clone()).await.at("CreateVpc", name)?;
                    tracing::info!(vpc = %v.id, "created VPC");
                    // A new VPC has DNS hostnames off (VPC user guide, "DNS attributes for
                    // your VPC"): both are set.
                    dns = Some((v.id.clone(), true, true));
                    vpc = Some(v);
                }
                NetChange::UpdateVpc { id, dns_support, dns_hostnames, tags, .. } => {
                    if *dns_support || *dns_hostnames {
                        dns = Some((VpcId::new(id), *dns_support, *dns_hostnames));
                    }
                    self.write_tags(id, tags).await?;
                }
                _ => {}
            }
        }
        let vpc = vpc
            .ok_or_else(|| AwsError::new("CreateVpc", "MissingVpc", "the VPC was neither observed nor created"))
            .at("CreateVpc", &want.vpc.name)?;
        let subnets = try_join_all(want.subnets().map(|s| {
            let vpc = &vpc.id;
            async move {
                let change = changes.iter().find(|c| match c {
                    NetChange::CreateSubnet { name, .. } | NetChange::TagSubnet { name, .. } => *name == s.named.name,
                    _ => false,
                });
                match change {
                    Some(NetChange::CreateSubnet { .. }) => self.create_subnet(ctx, vpc, s).await,
                    other => {
                        let mut have = find(&obs.subnets, &s.named)
                            .ok_or_else(|| AwsError::new("CreateSubnet", "MissingSubnet", "not observed"))
                            .at("CreateSubnet", &s.named.name)?
                            .clone();
                        if let Some(NetChange::TagSubnet { id, tags, .. }) = other {
                            self.write_tags(id, tags).await?;
                            have.tags.extend(dify_stack_core::drift_tags(tags));
                        }
                        Ok(have)
                    }
                }
            }
        }));
        let dns = async {
            match &dns {
                Some((id, support, hostnames)) => self.set_dns(ctx, id, *support, *hostnames).await,
                None => Ok(()),
            }
        };
        let (subnets, ()): (Vec<SubnetInfo>, ()) = futures::future::try_join(subnets, dns).await?;
        Ok((vpc, subnets))
    }

    async fn set_dns(&self, ctx: &Context, vpc: &VpcId, support: bool, hostnames: bool) -> Result<()> {
        self.fresh(ctx, "ModifyVpcAttribute", || {
            self.client.set_vpc_dns(vpc.clone(), support.then_some(true), hostnames.then_some(true))
        })
        .await
        .at("ModifyVpcAttribute", vpc.as_str())?;
        Ok(())
    }

    /// Observes, then [`execute_new`](Self::execute_new): the whole apply of a new VPC.
    pub(super) async fn apply_new(&self, ctx: &Context, spec: &NetworkSpec, new: &NewVpcSpec) -> Result<NetworkOutput> {
        let obs = self.observe_new(ctx, spec, new).await?;
        let changes = Self::changes_new(ctx, spec, new, &obs);
        self.execute_new(ctx, spec, new, obs, changes).await
    }

    /// Executes the typed changes of one observation (after the replacements it contains and a
    /// second observation), in dependency order: VPC and subnets, gateway, addresses and NAT
    /// gateways (waited until available), route tables, then what is no longer wanted. Staged:
    /// the egress is made from the ids the VPC's and the subnets' changes return (the changes
    /// hold placeholders for them).
    pub(super) async fn execute_new(
        &self,
        ctx: &Context,
        spec: &NetworkSpec,
        new: &NewVpcSpec,
        obs: ObservedNew,
        changes: Vec<NetChange>,
    ) -> Result<NetworkOutput> {
        let (obs, changes) = self.replace_and_observe(ctx, spec, new, obs, changes).await?;
        let want = Desired::new(ctx, spec, new, &obs.zones);
        let (vpc, subnets) = self.converge_vpc_and_subnets(ctx, &want, &obs, &changes).await?;
        // Duplicates (an SDK retry of a lost CreateVpc response) are empty: delete them.
        for c in &changes {
            if let NetChange::DeleteVpc { id, .. } = c {
                ignore_not_found(self.client.delete_vpc(VpcId::new(id)).await).at("Delete", id.as_str())?;
            }
        }
        // `subnets` is in the order of `want.subnets()`: a subnet's id by its desired name.
        let subnet_id = |name: &str| want.subnets().position(|s| s.named.name == name).map(|i| subnets[i].id.clone());

        // Internet gateway.
        let created_igw = changes.iter().any(|c| matches!(c, NetChange::CreateIgw { .. }));
        let igw = match find(&obs.igws, &want.igw) {
            Some(g) if !created_igw => g.clone(),
            _ => self
                .client
                .create_internet_gateway(want.igw.tags.clone())
                .await
                .at("CreateInternetGateway", &want.igw.name)?,
        };
        let update = changes.iter().find_map(|c| match c {
            NetChange::UpdateIgw { id, attach, tags, .. } => Some((id, attach.is_some(), tags)),
            _ => None,
        });
        if created_igw || update.is_some_and(|(_, attach, _)| attach) {
            self.attach_igw(ctx, &igw, &vpc.id).await?;
        }
        if let Some((id, _, tags)) = update {
            self.write_tags(id, tags).await?;
        }

        // Elastic IPs, then NAT gateways (concurrently), then wait until they are available.
        let creates =
            |kind: fn(&NetChange) -> Option<&String>, name: &str| changes.iter().filter_map(kind).any(|n| n == name);
        // Our tags on the gateways and addresses that stay (a Name someone edited, a logical id).
        for c in &changes {
            if let NetChange::TagEip { id, tags, .. } | NetChange::TagNat { id, tags, .. } = c {
                self.write_tags(id, tags).await?;
            }
        }
        let obs_eips = &obs.eips;
        let eips: Vec<AddressInfo> = try_join_all(want.eips.iter().map(|e| async move {
            let create = creates(|c| if let NetChange::CreateEip { name } = c { Some(name) } else { None }, &e.name);
            match find(obs_eips, e) {
                Some(a) if !create => Ok(a.clone()),
                _ => self.client.allocate_address(e.tags.clone()).await.at("AllocateAddress", &e.name),
            }
        }))
        .await?;
        let nats: Vec<NatInfo> = try_join_all(want.nats.iter().enumerate().map(|(i, n)| {
            let subnet = subnet_id(&want.public[i].named.name);
            let eip = eips[i].allocation_id.clone();
            let obs_nats = &obs.nats;
            let retired = &obs.retired_nats;
            let create = creates(|c| if let NetChange::CreateNat { name } = c { Some(name) } else { None }, &n.name);
            async move {
                if let Some(have) = find(obs_nats, n)
                    && !create
                {
                    return Ok(have.clone());
                }
                let subnet = subnet
                    .ok_or_else(|| AwsError::new("CreateNatGateway", "MissingSubnet", "public subnet not created"))
                    .at("CreateNatGateway", &n.name)?;
                // Earlier gateways of this part: by logical id, and by Name those made before.
                let generation: usize = [&n.id, &n.name].iter().filter_map(|k| retired.get(k.as_str())).sum();
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
            let change = changes.iter().find(|c| match c {
                NetChange::CreateRouteTable { name } | NetChange::UpdateRouteTable { name, .. } => {
                    *name == t.named.name
                }
                _ => false,
            });
            self.converge_route_table(ctx, &vpc.id, t, target, &subnet_id, change, &obs.route_tables)
        }))
        .await?;

        // Remove what is no longer wanted (e.g. after per_az -> single, or fewer AZs): NAT
        // gateways first (waited until deleted), then their addresses, route tables, subnets.
        let extra_nats: Vec<NatGatewayId> = changes
            .iter()
            .filter_map(|c| if let NetChange::DeleteNat { id, .. } = c { Some(NatGatewayId::new(id)) } else { None })
            .collect();
        self.delete_nats(ctx, extra_nats).await?;
        for c in &changes {
            match c {
                NetChange::DeleteEip { id, .. } => self.release_eip(ctx, AllocationId::new(id)).await?,
                NetChange::DeleteRouteTable { id, .. } => {
                    if let Some(t) = obs.route_tables.iter().find(|t| t.id.as_str() == id) {
                        self.delete_route_table(ctx, t).await?;
                    }
                }
                _ => {}
            }
        }
        for c in &changes {
            if let NetChange::DeleteSubnet { id, .. } = c {
                self.delete_subnet(ctx, SubnetId::new(id)).await?;
            }
        }

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
    /// and route table found by identity, in the wanted order.
    pub(super) fn observed_new_output(
        ctx: &Context,
        spec: &NetworkSpec,
        new: &NewVpcSpec,
        obs: &ObservedNew,
    ) -> Option<NetworkOutput> {
        let want = Desired::new(ctx, spec, new, &obs.zones);
        let vpc = obs.vpc()?;
        let eips: Vec<AddressInfo> = want.eips.iter().map(|e| find(&obs.eips, e).cloned()).collect::<Option<_>>()?;
        let nats: Vec<NatInfo> = want.nats.iter().map(|n| find(&obs.nats, n).cloned()).collect::<Option<_>>()?;
        let tables: Vec<RouteTableInfo> =
            want.route_tables().map(|t| find(&obs.route_tables, &t.named).cloned()).collect::<Option<_>>()?;
        Some(new_output(&want, vpc, &obs.subnets, &eips, &nats, &tables))
    }

    /// CreateTags of a change's tag drift (nothing when there is none).
    pub(super) async fn write_tags(&self, id: &str, tags: &Drift) -> Result<()> {
        if !tags.is_empty() {
            let tags = dify_stack_core::drift_tags(tags);
            self.client.create_tags(vec![id.to_owned()], tags).await.at("Tag", id)?;
        }
        Ok(())
    }

    async fn create_subnet(&self, ctx: &Context, vpc: &VpcId, s: &DesiredSubnet) -> Result<SubnetInfo> {
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
    pub(super) async fn fresh<T, F, Fut>(&self, ctx: &Context, what: &'static str, op: F) -> Result<T, AwsError>
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

    /// Deletes owned resources of this network that the run did not use (twins made by SDK
    /// retries of creates without an idempotency token). Route tables, NAT gateways and EIPs
    /// first, then subnets, the gateway and VPCs, as their dependencies require.
    pub(super) async fn remove_twins(
        &self,
        ctx: &Context,
        spec: &NetworkSpec,
        new: &NewVpcSpec,
        used: &Used,
    ) -> Result<()> {
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
            self.delete_igw(ctx, g).await?;
        }
        for v in obs.vpcs.iter().filter(|v| v.id != used.vpc) {
            tracing::warn!(vpc = %v.id, "removing a twin VPC");
            ignore_not_found(self.client.delete_vpc(v.id.clone()).await).at("Delete", v.id.as_str())?;
        }
        Ok(())
    }

    /// Deletes what the changes replace; the observation that follows finds it absent, and its
    /// changes create it again.
    pub(super) async fn replace(&self, ctx: &Context, replaced: &[&NetChange]) -> Result<()> {
        for c in replaced {
            match c {
                NetChange::ReplaceVpc { .. } => {
                    self.destroy_new(ctx).await?;
                    return Ok(());
                }
                NetChange::ReplaceNat { id, .. } => self.delete_nats(ctx, vec![NatGatewayId::new(id)]).await?,
                NetChange::ReplaceSubnet { id, .. } => {
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
}

/// The ids one apply used (everything else owned and named alike is a twin).
pub(super) struct Used {
    vpc: VpcId,
    subnets: Vec<SubnetId>,
    igw: dify_stack_core::ids::InternetGatewayId,
    eips: Vec<AllocationId>,
    nats: Vec<NatGatewayId>,
    tables: Vec<dify_stack_core::ids::RouteTableId>,
}
