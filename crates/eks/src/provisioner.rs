//! The EKS tier's [`Provisioner`].

use std::collections::BTreeMap;
use std::sync::Arc;

use async_trait::async_trait;
use dify_stack_core::ids::{Arn, ClusterName, KmsKeyArn, KubernetesVersion, RoleArn, SecurityGroupId, VpcId};
use dify_stack_core::wait::{self, Probe, WaitError};
use dify_stack_core::{
    Action, AwsAt, AwsError, Change, Context, Effect, NotOwned, Planned, Provisioner, ResourceRef, SpecErrors, Tags,
    Tier, from_aws_wait, from_wait,
};
use serde::Serialize;
use serde_json::{Value, json};

use crate::client::{
    AddonInfo, AddonRole, AddonVersions, ClusterCreate, ClusterInfo, EksApi, Insight, KeyInfo, LaunchTemplateData,
    LaunchTemplateInfo, LogGroupInfo, NodegroupConfigUpdate, NodegroupCreate, NodegroupInfo, NodegroupVersionUpdate,
    RoleInfo, SecurityGroupInfo, Status, UpdateInfo,
};
use crate::load_balancers::{ClusterLoadBalancer, LoadBalancerApi, LoadBalancerObjects, list_ids};
use crate::spec::{CLUSTER_ADMIN_POLICY, EBS_CSI_ADDON, EBS_CSI_SERVICE_ACCOUNT, EksSelector, EksSpec};
use crate::{EksError, Result};

mod after_use;
mod apply;
mod change;
mod control_plane;
mod destroy;
mod diff;
mod observe;
mod upgrade;
mod waits;

use self::{change::*, control_plane::*, diff::*};
pub(crate) use crate::names::token;
pub use crate::names::{Names, cluster_name};
pub use change::EksChange;
#[cfg(test)]
pub(crate) use diff::scaling_update;

/// The kinds of resource [`EksProvisioner::apply_control_plane`] and
/// [`EksProvisioner::apply_access`] make; the rest of a plan is
/// the launch template, node group and add-ons.
pub const CONTROL_PLANE_KINDS: [&str; 6] =
    ["iam:role", "kms:key", "ec2:security-group", "logs:log-group", "eks:cluster", "eks:access-entry"];

/// The add-ons that run on every node (DaemonSets: pod networking, Service routing, pod
/// credentials), made before the node group so that its first nodes come up with them
/// (terraform-aws-eks's add-on `before_compute`, PR #2478; eks-blueprints PR #1325: EKS reads
/// the CNI's configuration when it makes the node group); the others' pods need nodes, and are
/// made after it. The node group is not held until they are ACTIVE: the cluster is created
/// with EKS's default `bootstrapSelfManagedAddons` (on), so the self-managed VPC CNI and
/// kube-proxy are there from the cluster's creation and the first nodes get a working pod
/// network either way. A cluster bootstrapped without them, or a custom CNI configuration
/// (prefix delegation, custom networking), would need the wait (terraform-aws-eks #2820,
/// #3327; alphagov govuk-infrastructure PR #3541: "cni plugin not initialized").
pub const NODE_ADDONS: [&str; 3] = ["vpc-cni", "kube-proxy", "eks-pod-identity-agent"];

/// The add-on every pod needs to start: the Amazon VPC CNI gives pods their addresses (EKS user
/// guide, "Assign IPs to Pods with the Amazon VPC CNI"); without it a node stays NotReady.
pub const POD_NETWORK_ADDON: &str = "vpc-cni";

/// Days a KMS key stays recoverable after destroy.
pub const KEY_DELETION_WINDOW_DAYS: i32 = 7;

/// When a create is rarely done before: the fastest creates of `aws-durations.toml` (public
/// Terraform apply logs and issue threads: terraform-provider-aws #33897, #2048, #4093). A wait
/// probes every few seconds from then on ([`WaitPolicy::expecting`](dify_stack_core::WaitPolicy::expecting)).
pub mod ready_from {
    use std::time::Duration;
    /// Cluster ACTIVE after create (`eks_cluster` min).
    pub const CLUSTER: Duration = Duration::from_secs(450);
    /// Node group ACTIVE after create (`eks_nodegroup_test` min).
    pub const NODEGROUP: Duration = Duration::from_secs(90);
    /// Add-on ACTIVE after create (`eks_addon` min).
    pub const ADDON: Duration = Duration::from_secs(20);
}

/// Plausibility caps of the waits (about twice the p95 of `aws-durations.toml`); the context's
/// [`WaitPolicy`](dify_stack_core::WaitPolicy) deadline applies when it is shorter.
pub mod caps {
    use std::time::Duration;
    /// Cluster ACTIVE after create or update.
    pub const CLUSTER_ACTIVE: Duration = Duration::from_secs(25 * 60);
    /// A cluster update finished (DescribeUpdate): a version update has taken up to an hour
    /// ("As of 1.19 the average/expected time taken in 60 mins", eksctl PR #3310, which set its
    /// upgrade timeout to 65 min; eksctl #3309; about 10 min in 2024, ministryofjustice
    /// cloud-platform #5346).
    pub const CLUSTER_UPDATE: Duration = Duration::from_secs(70 * 60);
    /// A node group's version update: every node replaced, one at a time by default (2 nodes
    /// about 30 min, 55 nodes about 170 min: ministryofjustice cloud-platform #5346); prod's
    /// maximum is 10 nodes.
    pub const NODEGROUP_ROLLED: Duration = Duration::from_secs(2 * 60 * 60);
    /// Cluster gone after delete.
    pub const CLUSTER_DELETED: Duration = Duration::from_secs(18 * 60);
    /// Node group ACTIVE after create or update.
    pub const NODEGROUP_ACTIVE: Duration = Duration::from_secs(20 * 60);
    /// Node group gone after delete.
    pub const NODEGROUP_DELETED: Duration = Duration::from_secs(16 * 60);
    /// Add-on ACTIVE or gone.
    pub const ADDON: Duration = Duration::from_secs(10 * 60);
    /// IAM propagation retries (a new role rejected by EKS).
    pub const IAM_PROPAGATION: Duration = Duration::from_secs(2 * 60);
    /// Kubernetes-made load balancers gone (by their controllers, or deleted directly).
    pub const LB_CONTROLLER: Duration = Duration::from_secs(5 * 60);
    /// The stack's EBS volumes detached from terminated nodes and deleted (a detach takes
    /// seconds to minutes; a volume attached elsewhere never detaches and is named).
    pub const VOLUMES_DETACHED: Duration = Duration::from_secs(10 * 60);
    /// The VPC CNI's leftover network interfaces detached from terminated nodes and deleted.
    pub const INTERFACES_DETACHED: Duration = Duration::from_secs(5 * 60);
}

/// What the EKS tier hands to the other tiers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct EksOutput {
    /// Cluster name.
    pub cluster_name: ClusterName,
    /// Cluster ARN.
    pub cluster_arn: Arn,
    /// Kubernetes version.
    pub kubernetes_version: String,
    /// API server endpoint.
    pub endpoint: String,
    /// Base64 PEM of the cluster CA.
    pub ca_data: String,
    /// OIDC issuer URL (`https://oidc.eks...`).
    pub oidc_issuer_url: String,
    /// The security group EKS created for the control plane and nodes (absent on emulators
    /// that do not model it).
    pub cluster_security_group_id: Option<SecurityGroupId>,
    /// The node security group this tier owns: datastores admit traffic from it.
    pub node_security_group_id: SecurityGroupId,
    /// Cluster role ARN.
    pub cluster_role_arn: RoleArn,
    /// Node role ARN.
    pub node_role_arn: RoleArn,
    /// KMS key ARN used for secrets envelope encryption.
    pub kms_key_arn: KmsKeyArn,
    /// Managed node group name.
    pub nodegroup_name: String,
    /// Region of the cluster.
    pub region: String,
}

impl EksOutput {
    /// The security groups whose members are the cluster's nodes and pods: the node group's own
    /// group and, where present, the EKS cluster security group. Datastores admit exactly these.
    pub fn workload_security_groups(&self) -> Vec<SecurityGroupId> {
        let mut out = vec![self.node_security_group_id.clone()];
        out.extend(self.cluster_security_group_id.clone());
        out
    }
}

/// What exists and is owned by the stack.
#[derive(Debug, Clone, Default)]
pub struct ObservedEks {
    /// Cluster role.
    pub cluster_role: Option<RoleInfo>,
    /// Node role.
    pub node_role: Option<RoleInfo>,
    /// The EBS CSI driver's role.
    pub ebs_csi_role: Option<RoleInfo>,
    /// KMS key.
    pub key: Option<KeyInfo>,
    /// The key was found by its tags, not by its alias: a run stopped between CreateKey and
    /// CreateAlias (CreateKey has no idempotency token, so the key is finished, not made again).
    pub key_alias_missing: bool,
    /// The control-plane log group, ours or not (one without our tag is never changed).
    pub log_group: Option<LogGroupInfo>,
    /// Node security group.
    pub node_security_group: Option<SecurityGroupInfo>,
    /// Node launch template.
    pub launch_template: Option<LaunchTemplateInfo>,
    /// Cluster.
    pub cluster: Option<ClusterInfo>,
    /// Node group.
    pub nodegroup: Option<NodegroupInfo>,
    /// Installed add-ons by name.
    pub addons: BTreeMap<String, AddonInfo>,
    /// What EKS offers of each wanted add-on for the target Kubernetes version (its default and
    /// compatible versions).
    pub addon_versions: BTreeMap<String, AddonVersions>,
    /// Access entries: principal -> associated policy ARNs (only those the spec lists).
    pub access: BTreeMap<String, Vec<String>>,
    /// During a Kubernetes upgrade: each add-on's versions for each minor the upgrade passes
    /// (minor -> add-on -> versions), read from DescribeAddonVersions.
    pub addon_steps: BTreeMap<String, BTreeMap<String, AddonVersions>>,
    /// During a Kubernetes upgrade: the cluster's upgrade-readiness insights (ListInsights).
    pub insights: Vec<Insight>,
}

/// Provisions the EKS tier through an [`EksApi`] (the SDK's [`crate::SdkEks`], a mock or fake in
/// tests). Cheap to clone: clones share the clients.
#[derive(Clone)]
pub struct EksProvisioner {
    pub(crate) client: Arc<dyn EksApi>,
    /// Destroy leaves the node security group to its own [`crate::NodeSecurityGroupProvisioner`]
    /// (set by the stack): the datastore groups reference it, and EC2 refuses to delete a group
    /// another group's rule refers to (DependencyViolation) for as long as those stores take to
    /// delete (OpenSearch: 10 to 30 min). The stack deletes it after all its dependants.
    keep_node_security_group: bool,
    /// The Kubernetes-made load balancers' API (ELB, ELBv2, EC2); `None` skips their cleanup.
    load_balancers: Option<Arc<dyn LoadBalancerApi>>,
    /// The cluster's Kubernetes API, to delete the objects that make load balancers.
    kube_objects: Option<Arc<dyn LoadBalancerObjects>>,
}

impl std::fmt::Debug for EksProvisioner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EksProvisioner")
            .field("keep_node_security_group", &self.keep_node_security_group)
            .finish_non_exhaustive()
    }
}

impl EksProvisioner {
    /// A provisioner over the real AWS APIs.
    pub fn from_conf(config: &aws_types::SdkConfig) -> Self {
        EksProvisioner::new(crate::SdkEks::from_conf(config))
            .with_load_balancers(crate::load_balancers::SdkLoadBalancers::from_conf(config))
    }
}

fn trust_policy(service_principal: &str) -> Value {
    json!({
        "Version": "2012-10-17",
        "Statement": [{
            "Effect": "Allow",
            "Principal": { "Service": service_principal },
            "Action": ["sts:AssumeRole", "sts:TagSession"],
        }],
    })
}

struct RoleWant {
    name: String,
    component: &'static str,
    trust: Value,
    policies: Vec<String>,
}

/// The roles of the tier: cluster, node, and the EBS CSI driver's when that add-on is wanted.
fn role_wants(ctx: &Context, names: &Names, spec: &EksSpec) -> Vec<RoleWant> {
    let p = ctx.partition();
    let mut wants = vec![
        RoleWant {
            name: names.cluster_role.clone(),
            component: "cluster-role",
            trust: trust_policy(&p.service_principal("eks")),
            policies: vec![p.managed_policy_arn("AmazonEKSClusterPolicy")],
        },
        RoleWant {
            name: names.node_role.clone(),
            component: "node-role",
            trust: trust_policy(&p.service_principal("ec2")),
            policies: ["AmazonEKSWorkerNodePolicy", "AmazonEKS_CNI_Policy", "AmazonEC2ContainerRegistryReadOnly"]
                .iter()
                .map(|n| p.managed_policy_arn(n))
                .collect(),
        },
    ];
    if spec.addons.iter().any(|a| a == EBS_CSI_ADDON) {
        // EKS Pod Identity: trust `pods.eks.amazonaws.com` with sts:AssumeRole and
        // sts:TagSession (EKS user guide, "Create a Pod Identity association"; the same principal
        // in the China partition). No OIDC provider needed, so the add-on is complete when the
        // EKS node finishes, before the IAM node makes the OIDC provider.
        wants.push(RoleWant {
            name: names.ebs_csi_role.clone(),
            component: "ebs-csi-role",
            trust: trust_policy(&p.service_principal("pods.eks")),
            policies: vec![p.managed_policy_arn("service-role/AmazonEBSCSIDriverPolicy")],
        });
    }
    wants
}

impl ObservedEks {
    /// The observed role for each entry of `role_wants`, in the same order.
    fn roles(&self) -> [&Option<RoleInfo>; 3] {
        [&self.cluster_role, &self.node_role, &self.ebs_csi_role]
    }
}

/// IMDSv2 hop limit of the nodes.
pub const NODE_METADATA_HOP_LIMIT: i32 = 1;

fn launch_template_data(spec: &EksSpec, security_groups: Vec<SecurityGroupId>) -> LaunchTemplateData {
    LaunchTemplateData {
        http_tokens: "required".to_owned(),
        // One hop: only the node itself (and host-network pods) reach IMDS; ordinary pods cannot
        // borrow the node role and must use their own (IRSA). EKS best practices, "Restrict
        // access to the instance profile assigned to the worker node".
        hop_limit: NODE_METADATA_HOP_LIMIT,
        volume_type: "gp3".to_owned(),
        volume_size: spec.node_group.disk_size_gib,
        encrypted: true,
        security_group_ids: security_groups,
    }
}

fn lt_security_groups(node_sg: &SecurityGroupId, cluster: Option<&ClusterInfo>) -> Vec<SecurityGroupId> {
    let mut sgs: Vec<SecurityGroupId> = cluster.and_then(|c| c.cluster_security_group_id.clone()).into_iter().collect();
    sgs.push(node_sg.clone());
    sgs.sort();
    sgs
}

fn list<I>(items: I) -> String
where
    I: IntoIterator,
    I::Item: std::fmt::Display,
{
    items.into_iter().map(|i| i.to_string()).collect::<Vec<_>>().join(", ")
}

fn sorted<T: Ord + Clone>(v: &[T]) -> Vec<T> {
    let mut v = v.to_vec();
    v.sort();
    v
}

/// One step of a Kubernetes upgrade: the next minor version from `have` (as the cluster
/// reports it) towards `want`. `None` when already there; an error for a downgrade or a
/// version the cluster reports that is not one.
pub fn next_version(have: &str, want: KubernetesVersion) -> Result<Option<KubernetesVersion>> {
    let Ok(h) = have.parse::<KubernetesVersion>() else {
        let mut errs = SpecErrors::new();
        errs.push(
            "kubernetes_version",
            format!("cannot compare the cluster's version {have:?} with {want}"),
            "the cluster reports its minor as \"1.33\"",
        );
        return Err(EksError::Invalid(errs));
    };
    if h == want {
        return Ok(None);
    }
    if want < h || want.major() != h.major() {
        return Err(EksError::DowngradeRefused { have: have.to_owned(), want: want.to_string() });
    }
    Ok(Some(h.next_minor()))
}

impl EksProvisioner {
    /// A provisioner over the given client.
    pub fn new(client: impl EksApi + 'static) -> Self {
        EksProvisioner {
            client: Arc::new(client),
            keep_node_security_group: false,
            load_balancers: None,
            kube_objects: None,
        }
    }

    /// Destroy deletes the load balancers Kubernetes made for the cluster through `api`.
    pub fn with_load_balancers(mut self, api: impl LoadBalancerApi + 'static) -> Self {
        self.load_balancers = Some(Arc::new(api));
        self
    }

    /// Destroy first deletes the cluster's `LoadBalancer` Services and Ingresses through
    /// `objects`, so their controllers remove the load balancers.
    pub fn with_kubernetes_objects(mut self, objects: impl LoadBalancerObjects + 'static) -> Self {
        self.kube_objects = Some(Arc::new(objects));
        self
    }

    /// The first part of [`apply`](Provisioner::apply): the IAM roles, the secrets key, the
    /// node security group (unless external), the log group, the cluster waited until ACTIVE;
    /// not its access entries ([`apply_access`](Self::apply_access)), nor the launch template,
    /// node group or add-ons. The control
    /// plane needs only the subnets, while the node group's nodes need egress through the NAT
    /// gateways to register: the stack starts this before the egress is done, and `apply`
    /// then converges the rest (finding the control plane made). The output is the tier's, with
    /// the node group's (deterministic) name: what needs only the cluster's API and OIDC issuer
    /// (the IAM tier) can start from it while the node group is created.
    pub async fn apply_control_plane(&self, ctx: &Context, spec: &EksSpec) -> Result<EksOutput> {
        // The converge loop of `apply` up to its first stage: the same refusals (the node
        // side's included), then the control plane's changes alone.
        let names = Names::of(ctx);
        let (o, changes) = self.settled_changes(ctx, spec).await?;
        let cp = self.converge_control_plane(ctx, spec, &names, &o, &changes, false).await?;
        Ok(cp.output(ctx, &names))
    }

    /// What CreateCluster needs besides the subnets: the cluster role, the secrets key and the
    /// control-plane log group. None of them needs the network, so the stack makes them while
    /// the VPC is built, and IAM propagates the cluster role meanwhile (EKS refuses
    /// CreateCluster with a role it cannot assume yet, "Role with arn: ... could not be
    /// assumed", which the control plane retries). The same converge loop as `apply`
    /// (validation, refusals), executing only these changes; the node and EBS CSI roles, whose
    /// policies attach one after another, are made beside the cluster. `spec`'s network ids
    /// may be planned ones: none of these uses them (the observation's node security group
    /// lookup then finds nothing, and nothing here acts on it).
    pub async fn apply_prerequisites(&self, ctx: &Context, spec: &EksSpec) -> Result<()> {
        let (o, changes) = self.settled_changes(ctx, spec).await?;
        self.converge_prerequisites(ctx, spec, &Names::of(ctx), &o, &changes).await
    }

    /// The access entries of the admin principals (the caller's among them), on the cluster
    /// [`apply_control_plane`](Self::apply_control_plane) made (which leaves them to this): what
    /// this machine's Kubernetes calls need, and the node group does not.
    pub async fn apply_access(&self, ctx: &Context, spec: &EksSpec) -> Result<()> {
        let (_, changes) = self.settled_changes(ctx, spec).await?;
        self.converge_access(ctx, &Names::of(ctx), &changes).await
    }

    /// [`apply`](Provisioner::apply) without the access entries ([`apply_access`](Self::apply_access)'s),
    /// waiting only for the node group and the pod network ([`POD_NETWORK_ADDON`]): the other
    /// add-ons (CoreDNS, kube-proxy, the EBS CSI driver, the Pod Identity agent) are made, and
    /// the next `apply` waits for them (it waits for every add-on it finds busy). The stack
    /// starts what needs only nodes that run pods (the platform's metrics-server) meanwhile.
    pub async fn apply_nodes(&self, ctx: &Context, spec: &EksSpec) -> Result<EksOutput> {
        let (o, changes) = self.settled_changes(ctx, spec).await?;
        let changes = changes.into_iter().map(EksChange).collect();
        self.execute_tier(ctx, spec, o, changes, apply::AddonWaits::PodNetwork).await
    }

    /// The converge loop of [`apply`](Provisioner::apply) before its execution, for the stages
    /// the stack runs as nodes of their own: validated, observed, settled, the tier's changes
    /// computed and none of them refused.
    async fn settled_changes(&self, ctx: &Context, spec: &EksSpec) -> Result<(ObservedEks, Vec<Step>)> {
        self.validate(ctx, spec)?;
        let o = self.observe(ctx, spec).await?;
        let o = self.settle(ctx, spec, o).await?;
        let changes = tier_changes(ctx, spec, &o);
        if let Some(refused) = changes.iter().find_map(|c| refusal(ctx, c)) {
            return Err(refused);
        }
        Ok((o, changes))
    }

    /// The names of the region's EKS clusters (ListClusters, every page), for the capacity
    /// preflight's clusters-per-Region quota.
    pub async fn clusters_in_region(&self) -> std::result::Result<Vec<String>, dify_stack_core::AwsError> {
        self.client.list_clusters().await
    }

    /// Destroy keeps the node security group: it belongs to a
    /// [`crate::NodeSecurityGroupProvisioner`] that runs after every group referencing it.
    pub fn with_external_node_security_group(mut self) -> Self {
        self.keep_node_security_group = true;
        self
    }

    fn check_owned(&self, ctx: &Context, kind: &'static str, name: &str, tags: &Tags) -> Result<()> {
        Ok(NotOwned::check(ctx, kind, name, tags)?)
    }
}

/// Creates the node security group (find-or-create: a lost response is read back).
pub(crate) async fn create_node_security_group(
    client: &dyn EksApi,
    ctx: &Context,
    vpc_id: &VpcId,
    names: &Names,
) -> Result<SecurityGroupId> {
    let tags = ctx.tags_for(Tier::Eks, "node-security-group", &names.node_security_group);
    let description = format!("dify-stack {}: EKS nodes (datastores admit this group)", ctx.stack());
    Ok(match client.create_security_group(vpc_id.clone(), names.node_security_group.clone(), description, tags).await {
        Ok(id) => id,
        Err(e) if e.is_already_exists() => client
            .find_security_group(vpc_id.clone(), names.node_security_group.clone())
            .await
            .at("DescribeSecurityGroups", &names.node_security_group)?
            .map(|s| s.id)
            .ok_or(e)
            .at("CreateSecurityGroup", &names.node_security_group)?,
        Err(e) => return Err(e.at("CreateSecurityGroup", &names.node_security_group).into()),
    })
}

/// EKS answers a create of an existing cluster, node group, add-on or access entry with
/// `ResourceInUseException`: for a create that means our earlier call went through.
fn exists(e: &AwsError) -> bool {
    e.is_already_exists() || e.code.as_deref() == Some("ResourceInUseException")
}

fn eks_output(
    ctx: &Context,
    cluster: &ClusterInfo,
    node_sg: &SecurityGroupId,
    cluster_role: &RoleArn,
    node_role: &RoleArn,
    key_arn: &KmsKeyArn,
    nodegroup: &str,
) -> EksOutput {
    EksOutput {
        cluster_name: ClusterName::new(&cluster.name),
        cluster_arn: Arn::new(&cluster.arn),
        kubernetes_version: cluster.version.clone(),
        endpoint: cluster.endpoint.clone().unwrap_or_default(),
        ca_data: cluster.ca_data.clone().unwrap_or_default(),
        oidc_issuer_url: cluster.oidc_issuer.clone().unwrap_or_default(),
        cluster_security_group_id: cluster.cluster_security_group_id.clone(),
        node_security_group_id: node_sg.clone(),
        cluster_role_arn: cluster_role.clone(),
        node_role_arn: node_role.clone(),
        kms_key_arn: key_arn.clone(),
        nodegroup_name: nodegroup.to_owned(),
        region: ctx.region().to_owned(),
    }
}

#[async_trait]
impl Provisioner for EksProvisioner {
    type Spec = EksSpec;
    type Observed = ObservedEks;
    type Output = EksOutput;
    type Error = EksError;
    type Selector = EksSelector;
    type Change = EksChange;

    fn validate(&self, ctx: &Context, spec: &EksSpec) -> Result<(), SpecErrors> {
        spec.validate(ctx)
    }

    async fn observe(&self, ctx: &Context, spec: &EksSpec) -> Result<ObservedEks> {
        self.observe_tier(ctx, spec).await
    }

    /// The control plane's, the upgrade's steps, then the node side's (`diff.rs`).
    fn changes(&self, ctx: &Context, spec: &EksSpec, o: &ObservedEks) -> Vec<EksChange> {
        tier_changes(ctx, spec, o).into_iter().map(EksChange).collect()
    }

    /// A cluster not ACTIVE is waited for.
    async fn settle(&self, ctx: &Context, _spec: &EksSpec, o: ObservedEks) -> Result<ObservedEks> {
        self.settle_cluster(ctx, o).await
    }

    /// A downgrade, an upgrade a blocking insight stops, a node group or secrets key that
    /// cannot change in place.
    fn refusal(&self, ctx: &Context, _spec: &EksSpec, change: &EksChange) -> Option<EksError> {
        refusal(ctx, &change.0)
    }

    /// In stages: the control plane, the upgrade, then the node side computed again from what
    /// they made (`apply.rs`).
    async fn execute(
        &self,
        ctx: &Context,
        spec: &EksSpec,
        o: ObservedEks,
        changes: Vec<EksChange>,
    ) -> Result<EksOutput> {
        self.execute_tier(ctx, spec, o, changes, apply::AddonWaits::All).await
    }

    fn output(&self, ctx: &Context, _spec: &EksSpec, o: &ObservedEks) -> Option<EksOutput> {
        Some(eks_output(
            ctx,
            o.cluster.as_ref()?,
            &o.node_security_group.as_ref()?.id,
            &o.cluster_role.as_ref()?.arn,
            &o.node_role.as_ref()?.arn,
            &o.key.as_ref()?.arn,
            &o.nodegroup.as_ref()?.name,
        ))
    }

    /// Refused before any delete while the stack's EBS volumes or snapshots exist and the data
    /// policy keeps data. Kubernetes-made load balancers -> node group (wait gone) -> add-ons ->
    /// cluster (wait gone) -> what Kubernetes left (target and security groups, the stack's
    /// volumes and snapshots, the CNI's interfaces) -> the control-plane log group -> launch
    /// template -> node security group -> roles (detach, delete) -> KMS key scheduled for
    /// deletion (7 days) -> the log group again, if EKS re-created it meanwhile.
    fn selector(&self, _ctx: &Context, spec: &EksSpec) -> EksSelector {
        EksSelector { vpc_id: Some(spec.vpc_id.clone()) }
    }

    async fn destroy_selected(&self, ctx: &Context, selector: &EksSelector) -> Result<Vec<ResourceRef>> {
        self.destroy_tier(ctx, selector).await
    }
}

/// Ours and made by this tier: an add-on the platform tier installed (metrics-server) carries the
/// stack's tags too, and is not this tier's to remove as drift.
fn made_by_this_tier(ctx: &Context, tags: &dify_stack_core::Tags) -> bool {
    ctx.owns_tags(tags) && tags.get(dify_stack_core::TAG_TIER).map(String::as_str) == Some(Tier::Eks.as_str())
}
