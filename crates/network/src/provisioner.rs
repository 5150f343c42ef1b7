//! The network provisioner: observe, diff, apply, destroy.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use dify_stack_core::ids::{AllocationId, NatGatewayId, SubnetId, VpcId};
use dify_stack_core::wait::{self, WaitError};
use dify_stack_core::{
    Action, AwsError, Change, Context, ErrorKind, NotOwned, Planned, Provisioner, ResourceRef, SpecErrors,
    TAG_COMPONENT, TAG_ID, TAG_NAME, Tags, WaitEnded, from_aws_wait, ignore_not_found,
};
use futures::future::try_join_all;

use crate::client::{
    AddressInfo, Ec2Api, Filter, IgwInfo, NatInfo, NatState, RouteTableInfo, RouteTarget, SubnetInfo, VpcInfo, ZoneInfo,
};
use crate::error::{NetworkError, Result};
use crate::model::{
    Desired, DesiredRouteTable, DesiredSubnet, NatOutput, NetworkOutput, ObservedExisting, ObservedNetwork,
    ObservedNew, SubnetOutput, SubnetRole, extras, find, is_network, k8s_subnet_tags, name_of,
};
use crate::quotas::{QuotasApi, SdkQuotas};
use crate::sdk::SdkEc2;
use crate::spec::{ExistingVpcSpec, NetworkSelector, NetworkSpec, NewVpcSpec, VpcSpec};

mod apply;
mod blockers;
mod destroy;
mod diff;
mod egress;
mod existing;
mod observe;
#[cfg(test)]
pub(crate) use self::blockers::{Hold, eni_hold};
pub use self::diff::NetworkStep;
pub(crate) use self::observe::usable_zones;
use self::{blockers::*, diff::*};

/// The kinds of resource [`NetworkProvisioner::apply_core`] makes; the rest of a plan is the
/// egress (gateways, addresses, route tables).
pub const CORE_KINDS: [&str; 2] = ["ec2:vpc", "ec2:subnet"];

/// Longest plausible NAT gateway create or delete (aws-durations.toml p95 is 150 s).
pub const NAT_WAIT_CAP: Duration = Duration::from_secs(10 * 60);
/// How long a write naming a just-created resource is retried while EC2 says it does not exist.
pub const FRESH_ID_WAIT: Duration = Duration::from_secs(60);
/// How long a refused delete is retried while what holds it is leaving (a NAT gateway deleting,
/// interfaces detaching); what is not the stack's and stays ends it at once, with
/// [`NetworkError::DeleteBlocked`].
pub const DEPENDENCY_RETRY_CAP: Duration = Duration::from_secs(20 * 60);
/// How long a refused delete is retried when what holds the resource is an interface another
/// AWS service manages (the service deletes it with its resource: EC2 user guide,
/// "Requester-managed network interfaces"; a data store or cluster deleted moments ago), or when
/// AWS lists nothing that holds it. Then the error names what is left.
pub const SETTLE_GRACE: Duration = Duration::from_secs(2 * 60);
const DEFAULT_ROUTE: &str = "0.0.0.0/0";
/// Reason of the replacement of a failed NAT gateway: repaired by apply without
/// `allow_replace`, since nothing the user configured changes.
const NAT_FAILED: &str = "the NAT gateway failed; it is deleted and created again";

/// Provisions the network tier through an [`Ec2Api`] (the SDK's [`SdkEc2`], a mock or fake in
/// tests). Cheap to clone: clones share the client.
#[derive(Clone)]
pub struct NetworkProvisioner {
    client: Arc<dyn Ec2Api>,
    quotas: Option<Arc<dyn QuotasApi>>,
}

impl std::fmt::Debug for NetworkProvisioner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NetworkProvisioner").finish_non_exhaustive()
    }
}

impl NetworkProvisioner {
    /// A provisioner over the given client.
    pub fn new(client: impl Ec2Api + 'static) -> Self {
        NetworkProvisioner { client: Arc::new(client), quotas: None }
    }

    /// The same provisioner reading the Service Quotas API in its capacity preflight (without
    /// it the preflight notes those quotas as not read).
    pub fn with_quotas(mut self, quotas: impl QuotasApi + 'static) -> Self {
        self.quotas = Some(Arc::new(quotas));
        self
    }

    /// The client.
    pub fn client(&self) -> &dyn Ec2Api {
        self.client.as_ref()
    }

    /// The Service Quotas client, if any.
    pub fn quotas(&self) -> Option<&dyn QuotasApi> {
        self.quotas.as_deref()
    }

    /// The first half of [`apply`](Provisioner::apply): for a new VPC, the VPC and its subnets
    /// only (what the data stores and the node security group need), returned while the NAT
    /// gateways, which take minutes, are not made yet; `apply` then converges the rest. For an
    /// existing VPC, the same as `apply`. The output has no NAT gateways or route tables.
    pub async fn apply_core(&self, ctx: &Context, spec: &NetworkSpec) -> Result<NetworkOutput> {
        spec.validate(ctx)?;
        match spec.vpc() {
            VpcSpec::New(new) => self.apply_new_core(ctx, spec, new).await,
            VpcSpec::Existing(existing) => self.apply_existing(spec, existing).await,
        }
    }
}

impl NetworkProvisioner {
    /// A provisioner over the real EC2 and Service Quotas APIs.
    pub fn from_conf(config: &aws_types::SdkConfig) -> Self {
        NetworkProvisioner::new(SdkEc2::from_conf(config)).with_quotas(SdkQuotas::from_conf(config))
    }
}

fn owner(ctx: &Context) -> Filter {
    let (name, value) = ctx.ownership_filter();
    Filter::new(name, [value])
}

/// Zone IDs where EKS refuses control-plane subnets (UnsupportedAvailabilityZoneException;
/// EKS user guide, "View Amazon EKS networking requirements for VPC and subnets"; the same list
/// in eksctl's `pkg/az`). By ID: zone names map to different physical zones per account.
pub const EKS_UNSUPPORTED_ZONE_IDS: [&str; 4] = ["use1-az3", "usw1-az2", "cac1-az3", "cnn1-az4"];

/// The output of a new VPC: subnets by identity and role; EIPs, NAT gateways and route tables in
/// the wanted order (public table first).
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
            .filter_map(|s| find(subnets, &s.named))
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

#[async_trait]
impl Provisioner for NetworkProvisioner {
    type Spec = NetworkSpec;
    type Observed = ObservedNetwork;
    type Output = NetworkOutput;
    type Error = NetworkError;
    type Selector = NetworkSelector;
    type Change = NetworkStep;

    fn validate(&self, ctx: &Context, spec: &NetworkSpec) -> Result<(), SpecErrors> {
        spec.validate(ctx)
    }

    async fn observe(&self, ctx: &Context, spec: &NetworkSpec) -> Result<ObservedNetwork> {
        match spec.vpc() {
            VpcSpec::New(new) => Ok(ObservedNetwork::New(self.observe_new(ctx, spec, new).await?)),
            VpcSpec::Existing(existing) => {
                let obs = self.observe_existing(existing).await?;
                Self::check_existing(existing, &obs)?;
                Ok(ObservedNetwork::Existing(obs))
            }
        }
    }

    /// A new VPC's changes against the observation (those that depend on ids the same run makes
    /// are placeholders), or the Kubernetes tags an existing VPC's subnets lack.
    fn changes(&self, ctx: &Context, spec: &NetworkSpec, observed: &ObservedNetwork) -> Vec<NetworkStep> {
        let changes = match (spec.vpc(), observed) {
            (VpcSpec::New(new), ObservedNetwork::New(obs)) => Self::changes_new(ctx, spec, new, obs),
            (VpcSpec::Existing(existing), ObservedNetwork::Existing(obs)) => {
                Self::changes_existing(spec, existing, obs)
            }
            _ => Vec::new(),
        };
        changes.into_iter().map(NetworkStep).collect()
    }

    fn output(&self, ctx: &Context, spec: &NetworkSpec, observed: &ObservedNetwork) -> Option<NetworkOutput> {
        match (spec.vpc(), observed) {
            (VpcSpec::New(new), ObservedNetwork::New(obs)) => Self::observed_new_output(ctx, spec, new, obs),
            (VpcSpec::Existing(existing), ObservedNetwork::Existing(obs)) => Self::existing_output(existing, obs),
            _ => None,
        }
    }

    /// Staged. For a new VPC: the replacements the changes hold are refused here when the
    /// context does not allow them (one error naming every refused resource, so the check needs
    /// the whole list and is not a per-change [`refusal`](Provisioner::refusal)), before any
    /// write; then executed (deleted), the network observed again and its changes computed again
    /// (what was replaced is then absent and created). Then the VPC and the subnets, and from
    /// the ids they return the gateway, addresses, NAT gateways (waited until available) and
    /// route tables, then what is no longer wanted and any twin a lost create response made.
    /// For an existing VPC: the subnet tags, nothing else.
    async fn execute(
        &self,
        ctx: &Context,
        spec: &NetworkSpec,
        observed: ObservedNetwork,
        changes: Vec<NetworkStep>,
    ) -> Result<NetworkOutput> {
        let changes = changes.into_iter().map(|c| c.0).collect();
        match (spec.vpc(), observed) {
            (VpcSpec::New(new), ObservedNetwork::New(obs)) => self.execute_new(ctx, spec, new, obs, changes).await,
            (VpcSpec::Existing(existing), ObservedNetwork::Existing(obs)) => {
                self.execute_existing(existing, &obs, changes).await
            }
            _ => unreachable!("observe observes the kind of VPC the spec names"),
        }
    }

    fn selector(&self, _ctx: &Context, spec: &NetworkSpec) -> NetworkSelector {
        NetworkSelector::of(spec)
    }

    /// Deletes the stack's network. For an existing VPC nothing is deleted (the ELB discovery
    /// tags added with `tag_subnets` are left in place: other clusters may rely on them).
    async fn destroy_selected(&self, ctx: &Context, selector: &NetworkSelector) -> Result<Vec<ResourceRef>> {
        if selector.owns_vpc { self.destroy_new(ctx).await } else { Ok(Vec::new()) }
    }
}
