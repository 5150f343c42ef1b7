//! The runner over the tier provisioners: what the stack graph's nodes (`crate::nodes`) share.

use async_trait::async_trait;
use dify_stack_core::ids::{SecurityGroupId, VpcId};
use dify_stack_core::{Classify, Context, Provisioner, ResourceRef};
use dify_stack_datastores::{DataPolicy, DatastoresSelector, DatastoresSpec, SecretsApi};
use dify_stack_network::ObservedNetwork;
use tokio::sync::OnceCell;

/// How long Kubernetes API calls are retried while the API cannot be reached: an endpoint that
/// this machine cannot reach (a private-only endpoint seen from outside the VPC) fails the node
/// within this, naming the endpoint, instead of holding the run for the whole wait policy.
pub(crate) const KUBE_API_WAIT_CAP: std::time::Duration = std::time::Duration::from_secs(2 * 60);

/// The same bound during destroy, which never blocks on the Kubernetes API: the service
/// accounts go with the cluster when the API cannot be reached.
pub(crate) const KUBE_API_DESTROY_CAP: std::time::Duration = std::time::Duration::from_secs(20);

use crate::config::StackConfig;
use crate::graph::{Node, NodeError, NodeOutput, PlanStep, TierRunner};
use crate::output::StackOutput;
use crate::provisioners::Provisioners;
use crate::wiring;

/// Runs each node of the stack graph (`crate::nodes`, one module per node) with a bundle of
/// tier provisioners: over one `SdkConfig` in production, over fakes in tests and the bench.
pub struct AwsRunner {
    pub(crate) cfg: StackConfig,
    pub(crate) ctx: Context,
    /// The bundle.
    pub(crate) p: Provisioners,
    vpc: OnceCell<Option<VpcId>>,
    /// How the EKS add-ons node ended (set by it), for the platform's load balancer controller,
    /// which waits for it.
    pub(crate) eks_addons: tokio::sync::watch::Sender<Option<Result<(), String>>>,
}

impl std::fmt::Debug for AwsRunner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AwsRunner")
            .field("stack", self.ctx.stack())
            .field("permissions", &self.ctx.permissions)
            .finish_non_exhaustive()
    }
}

/// A tier's error as the node's; whether a re-run may succeed comes from the error itself.
pub(crate) fn fail<E: std::error::Error + Classify + Send + Sync + 'static>(e: E) -> NodeError {
    NodeError::from_error(e)
}

/// What the IAM spec needs from the EKS and registry nodes when those outputs are not at hand
/// (a plan before the cluster exists): the cluster name, issuer, endpoint and CA; the rest is
/// unused by IAM's observe. Destroy needs no spec: it builds the tiers' selectors instead.
pub(crate) fn iam_inputs(
    cfg: &StackConfig,
    ctx: &Context,
    issuer: String,
    endpoint: String,
    ca_data: String,
) -> (dify_stack_eks::EksOutput, dify_stack_registry::RegistryOutput) {
    let empty =
        || dify_stack_registry::RepositoryOutput { name: String::new(), arn: String::new(), uri: String::new() };
    // The cluster as planned: the configured version, the issuer, endpoint and CA given.
    let planned = dify_stack_eks::ClusterInfo {
        version: cfg.eks.kubernetes_version.to_string(),
        endpoint: Some(endpoint),
        ca_data: Some(ca_data),
        oidc_issuer: Some(issuer),
        ..Default::default()
    };
    let eks = live_eks(cfg, ctx, &planned);
    let registry = dify_stack_registry::RegistryOutput {
        app: empty(),
        plugin: empty(),
        plugin_repository_arn_pattern: "arn:aws:ecr:::repository/none*".to_owned(),
        plugin_image_repo_prefix: String::new(),
    };
    (eks, registry)
}

/// The live cluster as the Kubernetes clients use it (Helm, the service accounts, the
/// load-balancer objects): its name, endpoint, CA, issuer and region as observed. The ids of the
/// tier's other resources (roles, key, node group) are left empty: nothing here reads them.
pub(crate) fn live_eks(
    cfg: &StackConfig,
    ctx: &Context,
    cluster: &dify_stack_eks::ClusterInfo,
) -> dify_stack_eks::EksOutput {
    dify_stack_eks::EksOutput {
        cluster_name: wiring::cluster_name(ctx),
        cluster_arn: dify_stack_core::ids::Arn::new(&cluster.arn),
        kubernetes_version: cluster.version.clone(),
        endpoint: cluster.endpoint.clone().unwrap_or_default(),
        ca_data: cluster.ca_data.clone().unwrap_or_default(),
        oidc_issuer_url: cluster.oidc_issuer.clone().unwrap_or_default(),
        cluster_security_group_id: cluster.cluster_security_group_id.clone(),
        node_security_group_id: SecurityGroupId::new(""),
        cluster_role_arn: dify_stack_core::ids::RoleArn::new(""),
        node_role_arn: dify_stack_core::ids::RoleArn::new(""),
        kms_key_arn: dify_stack_core::ids::KmsKeyArn::new(""),
        nodegroup_name: String::new(),
        region: cfg.region.clone(),
    }
}

pub(crate) fn missing(node: Node, what: &str) -> NodeError {
    NodeError::new(format!("{node} needs the {what} output, which is missing"), false)
}

impl AwsRunner {
    /// A runner for `cfg` in the context `ctx` (with account id, and the permissions that say
    /// what may be lost) over the provisioners `p`.
    pub fn new(cfg: StackConfig, ctx: Context, p: Provisioners) -> Self {
        AwsRunner { cfg, ctx, p, vpc: OnceCell::new(), eks_addons: tokio::sync::watch::Sender::new(None) }
    }

    /// What holds data that this run's data policy does not allow to delete, across every tier
    /// (Aurora deletion protection and final snapshot, a bucket holding objects, the EBS volumes
    /// and snapshots the default StorageClass made for the cluster's claims). Read-only; checked
    /// by `Stack::destroy` before the first delete, so a refusal deletes nothing anywhere.
    pub async fn data_holders(&self) -> Result<Vec<String>, NodeError> {
        let final_snapshot = self.cfg.datastores.aurora.final_snapshot;
        let policy = self.policy();
        let mut holders = self.p.aurora.data_holders_of(&self.ctx, final_snapshot, policy).await.map_err(fail)?;
        holders.extend(self.p.bucket.data_holders(&self.ctx, policy).await.map_err(fail)?);
        holders.extend(self.p.eks.data_holders(&self.ctx).await.map_err(fail)?);
        Ok(holders)
    }

    /// Destroy's last step, after the network (the last tier with EC2 resources): anything still
    /// tagged for the stack or its cluster in EC2 (and, in the stack's VPC when it remains, the
    /// load balancers and target groups Kubernetes made) is an error naming each, not a silent
    /// success.
    pub(crate) async fn check_leftovers(&self, vpc: Option<&VpcId>) -> Result<(), NodeError> {
        self.p.eks.check_leftovers(&self.ctx, vpc.map(VpcId::as_str)).await.map_err(fail)
    }

    /// The quota and capacity preflight (the network tier's: Elastic IPs against the account's
    /// quota, the private subnets' addresses against the node group's maximum and the VPC CNI's
    /// use per node): notes for the plan, or one error listing every shortfall with its fix.
    pub(crate) async fn capacity_preflight(&self) -> Result<Vec<String>, NodeError> {
        let ng = &self.cfg.eks.node_group;
        // The region's clusters for the clusters-per-Region quota; unread (refused, or a client
        // without ListClusters), the preflight notes that quota as not checked.
        let spec = wiring::network_spec(&self.cfg, &self.ctx);
        let cluster = spec.cluster_name.as_str();
        let clusters = self.p.eks.clusters_in_region().await.ok().map(|names| dify_stack_network::ClusterUse {
            in_region: u32::try_from(names.len()).unwrap_or(u32::MAX),
            makes_one: !names.iter().any(|n| n == cluster),
        });
        let nodes = dify_stack_network::NodeDemand {
            instance_types: ng.instance_types.clone(),
            max_nodes: u32::try_from(ng.max).unwrap_or(0),
            clusters,
        };
        self.p
            .network
            .preflight(&self.ctx, &spec, &nodes)
            .await
            .map_err(|e| fail(dify_stack_network::NetworkError::from(e)))
    }

    /// What destroy may delete that holds data: the context's permissions, seen as a policy.
    pub(crate) fn policy(&self) -> DataPolicy {
        DataPolicy::from_context(&self.ctx)
    }

    /// The context.
    pub fn context(&self) -> &Context {
        &self.ctx
    }

    /// The secrets client (for reading values into the Helm values file).
    pub fn secrets(&self) -> &dyn SecretsApi {
        self.p.secrets.as_ref()
    }

    pub(crate) fn datastores_spec(&self, up: &StackOutput, node: Node) -> Result<DatastoresSpec, NodeError> {
        let net = up.network.as_ref().ok_or_else(|| missing(node, "network"))?;
        let sg = up.node_security_group.as_ref().ok_or_else(|| missing(node, "node security group"))?;
        Ok(wiring::datastores_spec(&self.cfg, net, sg))
    }

    /// The stack's VPC as it exists now (destroy needs no remembered ids).
    pub(crate) async fn discover_vpc(&self) -> Result<Option<VpcId>, NodeError> {
        self.vpc
            .get_or_try_init(|| async {
                let observed = self
                    .p
                    .network
                    .observe(&self.ctx, &wiring::network_spec(&self.cfg, &self.ctx))
                    .await
                    .map_err(fail)?;
                Ok(match observed {
                    ObservedNetwork::New(o) => o.vpcs.first().map(|v| v.id.clone()),
                    ObservedNetwork::Existing(o) => o.vpc.map(|v| v.id),
                })
            })
            .await
            .cloned()
    }

    /// What finds the stores for destroy: the VPC as it exists now (`None` when it is gone:
    /// their security groups went with it) and Aurora's final snapshot from the configuration.
    pub(crate) async fn store_selector(&self) -> Result<DatastoresSelector, NodeError> {
        Ok(DatastoresSelector {
            vpc_id: self.discover_vpc().await?,
            final_snapshot: self.cfg.datastores.aurora.final_snapshot,
        })
    }

    /// The cluster's Kubernetes API for deleting the objects that make load balancers, when this
    /// machine talks to it (not role-only) and the cluster exists; bounded so destroy never
    /// waits on an API it cannot reach.
    pub(crate) async fn load_balancer_objects(
        &self,
    ) -> Option<dify_stack_eks::load_balancers::KubeLoadBalancerObjects> {
        let client = self.cluster_kube().await?;
        Some(dify_stack_eks::load_balancers::KubeLoadBalancerObjects::new(client, KUBE_API_DESTROY_CAP))
    }

    /// The cluster's Kubernetes API, when this machine talks to it (not role-only) and the
    /// cluster exists. Building it makes no connection.
    pub(crate) async fn cluster_kube(&self) -> Option<kube::Client> {
        let eks = self.cluster_endpoint().await?;
        self.p.cluster.client(&eks).await
    }

    /// The live cluster when this machine drives it and its API answers within 20 s.
    pub(crate) async fn reachable_cluster(&self) -> Option<dify_stack_eks::EksOutput> {
        let eks = self.cluster_endpoint().await?;
        let answers = async { self.p.cluster.client(&eks).await?.apiserver_version().await.ok() };
        tokio::time::timeout(KUBE_API_DESTROY_CAP, answers).await.ok()??;
        Some(eks)
    }

    /// The live cluster's name, endpoint and CA; `None` when this machine does not talk to its
    /// API (role-only) or there is no cluster.
    async fn cluster_endpoint(&self) -> Option<dify_stack_eks::EksOutput> {
        if !wiring::creates_service_accounts(&self.cfg) {
            return None;
        }
        let cluster = self.p.eks.observe_cluster(&self.ctx).await.ok()??;
        // Not yet ACTIVE: no API to talk to.
        if cluster.endpoint.is_none() || cluster.ca_data.is_none() {
            return None;
        }
        Some(live_eks(&self.cfg, &self.ctx, &cluster))
    }

    /// The live cluster (as [`Self::cluster_endpoint`]) and its VPC, for an uninstall before
    /// destroy.
    pub(crate) async fn live_cluster(&self) -> Option<(dify_stack_eks::EksOutput, VpcId)> {
        let vpc = self.discover_vpc().await.ok()??;
        let eks = self.cluster_endpoint().await?;
        Some((eks, vpc))
    }

    /// Whether `release` is installed on the cluster. `None` when that cannot be known here
    /// (role-only, no cluster, an API that does not answer within 20 s): destroy never waits on
    /// the Kubernetes API.
    pub(crate) async fn release_installed(&self, release: &crate::install::DifyRelease) -> Option<bool> {
        if !wiring::creates_service_accounts(&self.cfg) {
            return None;
        }
        let client = self.cluster_kube().await?;
        tokio::time::timeout(KUBE_API_DESTROY_CAP, crate::install::release_installed(&client, release)).await.ok()?.ok()
    }

    /// An IAM tier failure; a Kubernetes API that cannot be reached is named with the fix.
    pub(crate) fn iam_err(&self, endpoint: &str, e: dify_stack_iam::IamError) -> NodeError {
        match &e {
            dify_stack_iam::IamError::Kubernetes(k) if k.unreachable => NodeError {
                message: format!(
                    "the Kubernetes API at {endpoint} cannot be reached from this machine (eks.kubernetes_access = {}): {k}. Fix: run apply from inside the VPC or from an address in eks.endpoint.public_access_cidrs, use eks.kubernetes_access = caller_address, or role_only to write the manifests instead",
                    self.cfg.eks.kubernetes_access
                ),
                retryable: e.is_retryable(),
                source: Some(std::sync::Arc::new(e)),
            },
            _ => fail(e),
        }
    }

    /// The IAM provisioner; with the Kubernetes API when this machine creates the service
    /// accounts.
    pub(crate) async fn iam(
        &self,
        eks: &dify_stack_eks::EksOutput,
        cap: std::time::Duration,
    ) -> Result<dify_stack_iam::IamProvisioner, NodeError> {
        let iam = self.p.iam.clone();
        if !wiring::creates_service_accounts(&self.cfg) {
            return Ok(iam);
        }
        self.p.cluster.iam(&self.ctx, iam, eks, cap).await
    }

    /// The platform provisioner; with `eks`, also Helm and the Kubernetes API.
    pub(crate) async fn platform(
        &self,
        eks: Option<&dify_stack_eks::EksOutput>,
    ) -> Result<dify_stack_platform::PlatformProvisioner, NodeError> {
        let platform = self.p.platform.clone();
        match eks {
            Some(eks) => self.p.cluster.platform(platform, eks).await,
            None => Ok(platform),
        }
    }
}

/// Each node's work is its module's (`crate::nodes`): this only dispatches.
#[async_trait]
impl TierRunner for AwsRunner {
    async fn plan(&self, node: Node, up: StackOutput) -> Result<PlanStep, NodeError> {
        crate::nodes::of(node).plan(self, &up).await
    }

    async fn apply(&self, node: Node, up: StackOutput) -> Result<NodeOutput, NodeError> {
        crate::nodes::of(node).apply(self, &up).await
    }

    async fn destroy(&self, node: Node) -> Result<Vec<ResourceRef>, NodeError> {
        crate::nodes::of(node).destroy(self).await
    }
}

#[cfg(test)]
pub(crate) mod tests_support {
    //! Placeholder upstream outputs for unit tests of the wiring.

    /// An EKS output with placeholder ids.
    pub(crate) fn eks_output() -> dify_stack_eks::EksOutput {
        let cfg = crate::Profile::Test.config();
        super::iam_inputs(
            &cfg,
            &crate::wiring::context(&cfg, None).expect("the test profile's context"),
            "https://oidc.eks.us-west-2.amazonaws.com/id/X".into(),
            String::new(),
            String::new(),
        )
        .0
    }

    /// A registry output with placeholder ids.
    pub(crate) fn registry_output() -> dify_stack_registry::RegistryOutput {
        let cfg = crate::Profile::Test.config();
        let ctx = crate::wiring::context(&cfg, None).expect("the test profile's context");
        super::iam_inputs(&cfg, &ctx, String::new(), String::new(), String::new()).1
    }
}
