//! The network tier's in-memory fake of its EC2 calls ([`Ec2Api`]), timed by core's simulation
//! ([`dify_stack_core::sim`]). NAT gateways are `pending` until their sampled `nat_gateway`
//! duration has passed; the wait polls on the real adapter's schedule ([`crate::sdk::SdkEc2`]'s:
//! [`NAT_POLL_FIRST`] doubling to 15 s, [`next_nat_poll`]). The tier's own tests and the
//! simulated-time benchmark (the whole stack) run the real provisioner over it. It models apply
//! and plan; the calls of a change, a repair or a destroy fail naming themselves
//! (`NotModelled`).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use dify_stack_core::ids::{
    AllocationId, InternetGatewayId, NatGatewayId, RouteTableId, SecurityGroupId, SubnetId, VpcId,
};
use dify_stack_core::sim::{Sim, ready, unmodelled};
use dify_stack_core::{AwsError, Tags};
use tokio::time::Instant;

use crate::client::*;
use crate::sdk::{NAT_POLL_FIRST, next_nat_poll};

#[derive(Debug, Default)]
struct State {
    vpcs: Vec<(VpcInfo, DnsAttributes)>,
    subnets: Vec<SubnetInfo>,
    igws: Vec<IgwInfo>,
    addresses: Vec<AddressInfo>,
    nats: Vec<(NatInfo, Instant)>,
    tables: Vec<RouteTableInfo>,
}

/// The fake: one account in one region. Cheap to clone: clones share the account (a test keeps
/// one to look at what the provisioner it gave the other made).
#[derive(Debug, Clone)]
pub struct FakeEc2 {
    sim: Arc<Sim>,
    state: Arc<Mutex<State>>,
    zones: Vec<ZoneInfo>,
    /// Write calls received (modelled or not).
    writes: Arc<AtomicU64>,
}

impl FakeEc2 {
    /// An empty account in a region with zones `a`..`d`.
    pub fn new(sim: Arc<Sim>, region: &str) -> FakeEc2 {
        let zones = ["a", "b", "c", "d"]
            .iter()
            .enumerate()
            .map(|(i, z)| ZoneInfo {
                name: format!("{region}{z}"),
                id: format!("sim-az{}", i + 1),
                available: true,
                zone_type: "availability-zone".to_owned(),
            })
            .collect();
        FakeEc2 { sim, state: Arc::default(), zones, writes: Arc::default() }
    }

    /// The write calls (those that create, change or delete something) it has received, those
    /// it does not model included. Reads and the NAT gateway waits are not writes.
    pub fn writes(&self) -> u64 {
        self.writes.load(Ordering::Relaxed)
    }

    /// A modelled write: counted, and takes the simulation's write cost.
    async fn write(&self) {
        self.writes.fetch_add(1, Ordering::Relaxed);
        self.sim.write().await;
    }

    /// A write the fake does not model: counted, and refused naming itself.
    fn unmodelled<T>(&self, op: &'static str) -> Result<T, AwsError> {
        self.writes.fetch_add(1, Ordering::Relaxed);
        unmodelled(op)
    }

    fn nat_view(nat: &NatInfo, at: Instant) -> NatInfo {
        let mut n = nat.clone();
        if n.state == NatState::Pending && ready(at) {
            n.state = NatState::Available;
        }
        n
    }
}

/// Does `filters` (EC2 semantics: every filter matches, any of its values) accept a resource
/// with these attributes and tags? An unknown filter name matches nothing.
fn matches(filters: &[Filter], attrs: &[(&str, &str)], tags: &Tags) -> bool {
    filters.iter().all(|f| {
        if let Some(key) = f.name.strip_prefix("tag:") {
            tags.get(key).is_some_and(|v| f.values.contains(v))
        } else if f.name == "tag-key" {
            f.values.iter().any(|k| tags.contains_key(k))
        } else {
            attrs.iter().any(|(n, v)| *n == f.name && f.values.iter().any(|x| x == v))
        }
    })
}

#[async_trait]
impl Ec2Api for FakeEc2 {
    async fn describe_zones(&self) -> Result<Vec<ZoneInfo>, AwsError> {
        self.sim.read().await;
        Ok(self.zones.clone())
    }
    async fn instance_type_zone_ids(&self, _instance_type: String) -> Result<Vec<String>, AwsError> {
        self.sim.read().await;
        Ok(self.zones.iter().map(|z| z.id.clone()).collect())
    }
    async fn describe_vpcs(&self, filters: Vec<Filter>) -> Result<Vec<VpcInfo>, AwsError> {
        self.sim.read().await;
        let s = self.state.lock().unwrap();
        Ok(s.vpcs
            .iter()
            .filter(|(v, _)| matches(&filters, &[("vpc-id", v.id.as_str()), ("cidr", &v.cidr)], &v.tags))
            .map(|(v, _)| v.clone())
            .collect())
    }
    async fn describe_vpc_dns(&self, vpc: VpcId) -> Result<DnsAttributes, AwsError> {
        self.sim.read().await;
        let s = self.state.lock().unwrap();
        s.vpcs
            .iter()
            .find(|(v, _)| v.id == vpc)
            .map(|(_, d)| *d)
            .ok_or_else(|| AwsError::new("DescribeVpcAttribute", "InvalidVpcID.NotFound", vpc.as_str()))
    }
    async fn describe_subnets(&self, filters: Vec<Filter>) -> Result<Vec<SubnetInfo>, AwsError> {
        self.sim.read().await;
        let s = self.state.lock().unwrap();
        Ok(s.subnets
            .iter()
            .filter(|x| matches(&filters, &[("subnet-id", x.id.as_str()), ("vpc-id", x.vpc_id.as_str())], &x.tags))
            .cloned()
            .collect())
    }
    async fn describe_internet_gateways(&self, filters: Vec<Filter>) -> Result<Vec<IgwInfo>, AwsError> {
        self.sim.read().await;
        let s = self.state.lock().unwrap();
        Ok(s.igws
            .iter()
            .filter(|g| {
                let vpcs: Vec<(&str, &str)> =
                    g.attached_vpcs.iter().map(|v| ("attachment.vpc-id", v.as_str())).collect();
                let mut attrs = vec![("internet-gateway-id", g.id.as_str())];
                attrs.extend(vpcs);
                matches(&filters, &attrs, &g.tags)
            })
            .cloned()
            .collect())
    }
    async fn elastic_ip_quota(&self) -> Result<Option<u32>, AwsError> {
        self.sim.read().await;
        Ok(Some(5))
    }
    async fn describe_addresses(&self, filters: Vec<Filter>) -> Result<Vec<AddressInfo>, AwsError> {
        self.sim.read().await;
        let s = self.state.lock().unwrap();
        Ok(s.addresses
            .iter()
            .filter(|a| matches(&filters, &[("allocation-id", a.allocation_id.as_str())], &a.tags))
            .cloned()
            .collect())
    }
    async fn describe_nat_gateways(&self, filters: Vec<Filter>) -> Result<Vec<NatInfo>, AwsError> {
        self.sim.read().await;
        let s = self.state.lock().unwrap();
        Ok(s.nats
            .iter()
            .map(|(n, at)| Self::nat_view(n, *at))
            .filter(|n| {
                let vpc = n.vpc_id.as_ref().map(|v| v.as_str().to_owned()).unwrap_or_default();
                let state = format!("{:?}", n.state).to_ascii_lowercase();
                let attrs = [
                    ("nat-gateway-id", n.id.as_str()),
                    ("subnet-id", n.subnet_id.as_str()),
                    ("vpc-id", &vpc),
                    ("state", &state),
                ];
                matches(&filters, &attrs, &n.tags)
            })
            .collect())
    }
    async fn describe_route_tables(&self, filters: Vec<Filter>) -> Result<Vec<RouteTableInfo>, AwsError> {
        self.sim.read().await;
        let s = self.state.lock().unwrap();
        Ok(s.tables
            .iter()
            .filter(|t| {
                let mut attrs = vec![("route-table-id", t.id.as_str()), ("vpc-id", t.vpc_id.as_str())];
                attrs.extend(
                    t.associations
                        .iter()
                        .filter_map(|a| a.subnet_id.as_ref())
                        .map(|s| ("association.subnet-id", s.as_str())),
                );
                matches(&filters, &attrs, &t.tags)
            })
            .cloned()
            .collect())
    }
    async fn describe_network_interfaces(&self, _filters: Vec<Filter>) -> Result<Vec<EniInfo>, AwsError> {
        self.sim.read().await;
        Ok(Vec::new())
    }
    async fn describe_security_groups(&self, _filters: Vec<Filter>) -> Result<Vec<SecurityGroupInfo>, AwsError> {
        self.sim.read().await;
        Ok(Vec::new())
    }

    async fn create_vpc(&self, cidr: String, tags: Tags) -> Result<VpcInfo, AwsError> {
        self.write().await;
        let v = VpcInfo { id: VpcId::new(self.sim.id("vpc")), cidr, tags };
        self.state.lock().unwrap().vpcs.push((v.clone(), DnsAttributes { support: true, hostnames: false }));
        Ok(v)
    }
    async fn set_vpc_dns(&self, vpc: VpcId, support: Option<bool>, hostnames: Option<bool>) -> Result<(), AwsError> {
        self.write().await;
        let mut s = self.state.lock().unwrap();
        let (_, d) = s
            .vpcs
            .iter_mut()
            .find(|(v, _)| v.id == vpc)
            .ok_or_else(|| AwsError::new("ModifyVpcAttribute", "InvalidVpcID.NotFound", vpc.as_str()))?;
        d.support = support.unwrap_or(d.support);
        d.hostnames = hostnames.unwrap_or(d.hostnames);
        Ok(())
    }
    async fn create_subnet(&self, vpc: VpcId, cidr: String, az: String, tags: Tags) -> Result<SubnetInfo, AwsError> {
        self.write().await;
        let x = SubnetInfo { id: SubnetId::new(self.sim.id("subnet")), vpc_id: vpc, cidr, az, tags };
        self.state.lock().unwrap().subnets.push(x.clone());
        Ok(x)
    }
    async fn create_tags(&self, resources: Vec<String>, tags: Tags) -> Result<(), AwsError> {
        self.write().await;
        let mut guard = self.state.lock().unwrap();
        let s = &mut *guard;
        for r in &resources {
            let all = s
                .vpcs
                .iter_mut()
                .filter(|(v, _)| v.id.as_str() == r)
                .map(|(v, _)| &mut v.tags)
                .chain(s.subnets.iter_mut().filter(|x| x.id.as_str() == r).map(|x| &mut x.tags))
                .chain(s.igws.iter_mut().filter(|x| x.id.as_str() == r).map(|x| &mut x.tags))
                .chain(s.addresses.iter_mut().filter(|x| x.allocation_id.as_str() == r).map(|x| &mut x.tags))
                .chain(s.nats.iter_mut().filter(|(x, _)| x.id.as_str() == r).map(|(x, _)| &mut x.tags))
                .chain(s.tables.iter_mut().filter(|x| x.id.as_str() == r).map(|x| &mut x.tags));
            for t in all {
                t.extend(tags.clone());
            }
        }
        Ok(())
    }
    async fn delete_tags(&self, _resources: Vec<String>, _keys: Vec<String>) -> Result<(), AwsError> {
        self.unmodelled("DeleteTags")
    }
    async fn create_internet_gateway(&self, tags: Tags) -> Result<IgwInfo, AwsError> {
        self.write().await;
        let g = IgwInfo { id: InternetGatewayId::new(self.sim.id("igw")), attached_vpcs: Vec::new(), tags };
        self.state.lock().unwrap().igws.push(g.clone());
        Ok(g)
    }
    async fn attach_internet_gateway(&self, igw: InternetGatewayId, vpc: VpcId) -> Result<(), AwsError> {
        self.write().await;
        let mut s = self.state.lock().unwrap();
        let g =
            s.igws.iter_mut().find(|g| g.id == igw).ok_or_else(|| {
                AwsError::new("AttachInternetGateway", "InvalidInternetGatewayID.NotFound", igw.as_str())
            })?;
        g.attached_vpcs.push(vpc);
        Ok(())
    }
    async fn detach_internet_gateway(&self, _igw: InternetGatewayId, _vpc: VpcId) -> Result<(), AwsError> {
        self.unmodelled("DetachInternetGateway")
    }
    async fn delete_internet_gateway(&self, _igw: InternetGatewayId) -> Result<(), AwsError> {
        self.unmodelled("DeleteInternetGateway")
    }
    async fn allocate_address(&self, tags: Tags) -> Result<AddressInfo, AwsError> {
        self.write().await;
        let a = AddressInfo {
            allocation_id: AllocationId::new(self.sim.id("eipalloc")),
            public_ip: Some("198.51.100.10".to_owned()),
            association_id: None,
            tags,
        };
        self.state.lock().unwrap().addresses.push(a.clone());
        Ok(a)
    }
    async fn release_address(&self, _allocation: AllocationId) -> Result<(), AwsError> {
        self.unmodelled("ReleaseAddress")
    }
    async fn create_nat_gateway(
        &self,
        subnet: SubnetId,
        allocation: AllocationId,
        _client_token: String,
        tags: Tags,
    ) -> Result<NatInfo, AwsError> {
        self.write().await;
        let vpc = self.state.lock().unwrap().subnets.iter().find(|x| x.id == subnet).map(|x| x.vpc_id.clone());
        let n = NatInfo {
            id: NatGatewayId::new(self.sim.id("nat")),
            subnet_id: subnet,
            vpc_id: vpc,
            state: NatState::Pending,
            allocation_id: Some(allocation),
            public_ip: Some("198.51.100.10".to_owned()),
            tags,
        };
        let at = self.sim.ready_at("nat_gateway");
        self.state.lock().unwrap().nats.push((n.clone(), at));
        Ok(n)
    }
    async fn delete_nat_gateway(&self, _nat: NatGatewayId) -> Result<(), AwsError> {
        self.unmodelled("DeleteNatGateway")
    }
    async fn wait_nat_gateways_available(&self, ids: Vec<NatGatewayId>, max_wait: Duration) -> Result<bool, AwsError> {
        let deadline = Instant::now() + max_wait;
        let mut delay = NAT_POLL_FIRST;
        loop {
            self.sim.read().await;
            let all_ready = {
                let s = self.state.lock().unwrap();
                ids.iter().all(|id| s.nats.iter().any(|(n, at)| &n.id == id && ready(*at)))
            };
            if all_ready {
                return Ok(true);
            }
            let now = Instant::now();
            if now >= deadline {
                return Ok(false);
            }
            tokio::time::sleep(delay.min(deadline - now)).await;
            delay = next_nat_poll(delay);
        }
    }
    async fn wait_nat_gateways_deleted(&self, _ids: Vec<NatGatewayId>, _max_wait: Duration) -> Result<bool, AwsError> {
        unmodelled("DescribeNatGateways (deleted waiter)")
    }
    async fn create_route_table(&self, vpc: VpcId, tags: Tags) -> Result<RouteTableInfo, AwsError> {
        self.write().await;
        let t = RouteTableInfo {
            id: RouteTableId::new(self.sim.id("rtb")),
            vpc_id: vpc,
            routes: Vec::new(),
            associations: Vec::new(),
            tags,
        };
        self.state.lock().unwrap().tables.push(t.clone());
        Ok(t)
    }
    async fn create_route(
        &self,
        table: RouteTableId,
        destination: String,
        target: RouteTarget,
    ) -> Result<(), AwsError> {
        self.write().await;
        let mut s = self.state.lock().unwrap();
        let t = s
            .tables
            .iter_mut()
            .find(|t| t.id == table)
            .ok_or_else(|| AwsError::new("CreateRoute", "InvalidRouteTableID.NotFound", table.as_str()))?;
        t.routes.push(RouteInfo { destination, target });
        Ok(())
    }
    async fn replace_route(
        &self,
        _table: RouteTableId,
        _destination: String,
        _target: RouteTarget,
    ) -> Result<(), AwsError> {
        self.unmodelled("ReplaceRoute")
    }
    async fn associate_route_table(&self, table: RouteTableId, subnet: SubnetId) -> Result<String, AwsError> {
        self.write().await;
        let id = self.sim.id("rtbassoc");
        let mut s = self.state.lock().unwrap();
        let t = s
            .tables
            .iter_mut()
            .find(|t| t.id == table)
            .ok_or_else(|| AwsError::new("AssociateRouteTable", "InvalidRouteTableID.NotFound", table.as_str()))?;
        t.associations.push(AssociationInfo { id: id.clone(), subnet_id: Some(subnet), main: false });
        Ok(id)
    }
    async fn replace_route_table_association(
        &self,
        _association: String,
        _table: RouteTableId,
    ) -> Result<String, AwsError> {
        self.unmodelled("ReplaceRouteTableAssociation")
    }
    async fn disassociate_route_table(&self, _association: String) -> Result<(), AwsError> {
        self.unmodelled("DisassociateRouteTable")
    }
    async fn delete_route_table(&self, _table: RouteTableId) -> Result<(), AwsError> {
        self.unmodelled("DeleteRouteTable")
    }
    async fn delete_subnet(&self, _subnet: SubnetId) -> Result<(), AwsError> {
        self.unmodelled("DeleteSubnet")
    }
    async fn delete_vpc(&self, _vpc: VpcId) -> Result<(), AwsError> {
        self.unmodelled("DeleteVpc")
    }
    async fn delete_network_interface(&self, _eni: String) -> Result<(), AwsError> {
        self.unmodelled("DeleteNetworkInterface")
    }
    async fn delete_security_group(&self, _group: SecurityGroupId) -> Result<(), AwsError> {
        self.unmodelled("DeleteSecurityGroup")
    }
}
