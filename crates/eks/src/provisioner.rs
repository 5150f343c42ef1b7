//! The EKS tier's [`Provisioner`].

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use dify_stack_core::ids::{Arn, ClusterName, KmsKeyArn, RoleArn, SecurityGroupId};
use dify_stack_core::wait::{self, Probe, WaitError};
use dify_stack_core::{
    Action, AwsAt, AwsError, Change, Context, NameKind, NotOwned, Plan, Provisioner, ResourceRef, SpecErrors, Tags,
    Tier, from_aws_wait, from_wait,
};
use serde::Serialize;
use serde_json::{Value, json};

use crate::client::{
    AddonInfo, AddonRole, ClusterCreate, ClusterInfo, EksApi, KeyInfo, LaunchTemplateData, LaunchTemplateInfo,
    LogGroupInfo, NodegroupCreate, NodegroupInfo, RoleInfo, SecurityGroupInfo,
};
use crate::load_balancers::{ClusterLoadBalancer, LoadBalancerApi, LoadBalancerObjects, list_ids};
use crate::spec::{CLUSTER_ADMIN_POLICY, EBS_CSI_ADDON, EBS_CSI_SERVICE_ACCOUNT, EksSpec, parse_version};
use crate::{EksError, Result};

/// Days a KMS key stays recoverable after destroy.
pub const KEY_DELETION_WINDOW_DAYS: i32 = 7;

/// Plausibility caps of the waits (about twice the p95 of `aws-durations.toml`); the context's
/// [`WaitPolicy`](dify_stack_core::WaitPolicy) deadline applies when it is shorter.
pub mod caps {
    use std::time::Duration;
    /// Cluster ACTIVE after create or update.
    pub const CLUSTER_ACTIVE: Duration = Duration::from_secs(25 * 60);
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
}

/// The names of the tier's resources, all derived from the stack name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Names {
    /// Cluster (the stack name; the IRSA role names embed it).
    pub cluster: String,
    /// Cluster IAM role.
    pub cluster_role: String,
    /// Node IAM role.
    pub node_role: String,
    /// KMS alias (without `alias/`).
    pub key_alias: String,
    /// Node security group.
    pub node_security_group: String,
    /// Node launch template.
    pub launch_template: String,
    /// Managed node group.
    pub nodegroup: String,
    /// The EBS CSI driver's role (Pod Identity).
    pub ebs_csi_role: String,
    /// The control-plane log group (the name EKS writes to; fixed by EKS).
    pub log_group: String,
}

impl Names {
    /// The names for a context.
    pub fn of(ctx: &Context) -> Names {
        let stack = ctx.stack().as_str();
        Names {
            cluster: stack.to_owned(),
            cluster_role: format!("{stack}-eks-cluster"),
            node_role: format!("{stack}-eks-node"),
            key_alias: format!("dify-stack/{stack}/eks-secrets"),
            node_security_group: format!("{stack}-eks-nodes"),
            launch_template: format!("{stack}-eks-nodes"),
            nodegroup: format!("{stack}-main"),
            ebs_csi_role: format!("{stack}-ebs-csi"),
            log_group: format!("/aws/eks/{stack}/cluster"),
        }
    }
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
    /// The default version of each wanted add-on for the target Kubernetes version.
    pub addon_versions: BTreeMap<String, String>,
    /// Access entries: principal -> associated policy ARNs (only those the spec lists).
    pub access: BTreeMap<String, Vec<String>>,
}

/// Provisions the EKS tier.
#[derive(Debug, Clone)]
pub struct EksProvisioner<C = crate::SdkEks> {
    pub(crate) client: C,
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

impl EksProvisioner<crate::SdkEks> {
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

fn launch_template_data(spec: &EksSpec, security_groups: Vec<String>) -> LaunchTemplateData {
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

fn lt_security_groups(node_sg: &str, cluster: Option<&ClusterInfo>) -> Vec<String> {
    let mut sgs: Vec<String> = cluster.and_then(|c| c.cluster_security_group_id.clone()).into_iter().collect();
    sgs.push(node_sg.to_owned());
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

fn sorted(v: &[String]) -> Vec<String> {
    let mut v = v.to_vec();
    v.sort();
    v
}

pub(crate) fn token(ctx: &Context, what: &str, extra: &str) -> String {
    request_token(ctx.stack().as_str(), what, extra, fastrand::u128(..))
}

/// An EKS `clientRequestToken` for one creation: EKS refuses tokens outside 33 to 126
/// characters ("The client request token parameter must be between 33 and 126 characters",
/// InvalidParameterException; ansible community.aws #817 / PR #844, EKS API reference
/// `CreateCluster.clientRequestToken`). The token is built once per creation and reused by every
/// retry of that creation (our IAM-propagation retries and the SDK's own), so a lost response is
/// answered with the same resource; a new creation (a later run, or after a destroy) gets a new
/// nonce, so it is never mistaken for an earlier one. A re-run after a crash finds the resource
/// by its name first, so it does not need the earlier token.
pub(crate) fn request_token(stack: &str, what: &str, extra: &str, nonce: u128) -> String {
    // `<what>-<extra>` is a hint for people reading CloudTrail; the 32 hex digits alone make the
    // token long enough and unique. Only [A-Za-z0-9-] so any stack name or version fits.
    let hint: String = format!("{stack}-{what}-{extra}")
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .take(60)
        .collect();
    format!("ds-{hint}-{nonce:032x}")
}

/// One step of a Kubernetes upgrade: the next minor version from `have` towards `want`.
/// `None` when already there; an error for a downgrade.
pub fn next_version(have: &str, want: &str) -> Result<Option<String>> {
    let (Some(h), Some(w)) = (parse_version(have), parse_version(want)) else {
        let mut errs = SpecErrors::new();
        errs.push(
            "kubernetes_version",
            format!("cannot compare versions {have:?} and {want:?}"),
            "use the form \"1.33\"",
        );
        return Err(EksError::Invalid(errs));
    };
    if h == w {
        return Ok(None);
    }
    if w < h || w.0 != h.0 {
        return Err(EksError::DowngradeRefused { have: have.to_owned(), want: want.to_owned() });
    }
    Ok(Some(format!("{}.{}", h.0, h.1 + 1)))
}

impl<C: EksApi> EksProvisioner<C> {
    /// A provisioner over the given client.
    pub fn new(client: C) -> Self {
        EksProvisioner { client, keep_node_security_group: false, load_balancers: None, kube_objects: None }
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

    /// Kubernetes-made load balancers go before the node group: their Services and Ingresses
    /// are deleted when the API answers (their controllers run on the nodes), then whatever is
    /// still tagged for the cluster in the VPC is deleted directly.
    async fn remove_kubernetes_load_balancers(&self, ctx: &Context, spec: &EksSpec, cluster: &str) -> Result<()> {
        let Some(lbs) = &self.load_balancers else { return Ok(()) };
        let vpc = spec.vpc_id.to_string();
        let mut objects_deleted = false;
        if let Some(kube) = &self.kube_objects {
            match kube.delete_load_balancer_objects().await {
                Ok(objects) => {
                    objects_deleted = !objects.is_empty();
                    if objects_deleted {
                        tracing::info!(?objects, "deleted the cluster's load-balancer Services and Ingresses");
                    }
                }
                Err(e) if e.unreachable => {
                    tracing::warn!(error = %e, "the Kubernetes API cannot be reached: load balancers tagged for the cluster are deleted directly");
                }
                Err(e) => return Err(EksError::Kubernetes(e.message)),
            }
        }
        let list = || async {
            lbs.cluster_load_balancers(vpc.clone(), cluster.to_owned(), None).await.at("DescribeLoadBalancers", cluster)
        };
        let pending = |left: Vec<ClusterLoadBalancer>| {
            (!left.is_empty()).then(|| format!("{} left: {}", left.len(), list_ids(&left)))
        };
        if objects_deleted {
            // Their controllers delete them; what outlives this is deleted below.
            let waited = self
                .wait_gone(
                    ctx,
                    format!("load balancers of {cluster} to be deleted by their controllers"),
                    caps::LB_CONTROLLER,
                    || async { Ok(pending(list().await?)) },
                )
                .await;
            if let Err(e) = waited {
                tracing::warn!(error = %e, "load balancers outlived their Kubernetes objects: deleting them directly");
            }
        }
        for lb in list().await? {
            tracing::info!(load_balancer = %lb.id, "deleting a load balancer Kubernetes made for the cluster");
            lbs.delete_load_balancer(lb.clone()).await.at("DeleteLoadBalancer", &lb.id)?;
        }
        self.wait_gone(ctx, format!("load balancers of {cluster} to be deleted"), caps::LB_CONTROLLER, || async {
            Ok(pending(list().await?))
        })
        .await
    }

    /// After the cluster: the target groups and security groups Kubernetes made for it (their
    /// load balancers are gone; EC2 may still see their ENIs for a while).
    async fn sweep_load_balancer_leftovers(&self, ctx: &Context, spec: &EksSpec, cluster: &str) -> Result<()> {
        let Some(lbs) = &self.load_balancers else { return Ok(()) };
        let vpc = spec.vpc_id.to_string();
        for tg in
            lbs.cluster_target_groups(vpc.clone(), cluster.to_owned()).await.at("DescribeTargetGroups", cluster)?
        {
            lbs.delete_target_group(tg.clone()).await.at("DeleteTargetGroup", &tg)?;
        }
        let groups = lbs
            .cluster_security_groups(vpc, cluster.to_owned(), dify_stack_core::TAG_STACK.to_owned())
            .await
            .at("DescribeSecurityGroups", cluster)?;
        for sg in groups {
            wait::retry(
                &format!("DeleteSecurityGroup {sg}"),
                &ctx.wait.capped(Duration::from_secs(10 * 60)),
                ctx.cancellation(),
                AwsError::is_dependency_violation,
                || lbs.delete_security_group(sg.clone()),
            )
            .await
            .map_err(|e| from_aws_wait::<EksError>(e, "DeleteSecurityGroup", &sg))?;
        }
        Ok(())
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

    async fn wait_cluster(&self, ctx: &Context, name: &str) -> Result<ClusterInfo> {
        let policy = ctx.wait.capped(caps::CLUSTER_ACTIVE);
        let what = format!("EKS cluster {name} to be ACTIVE");
        wait::until(&what, &policy, ctx.cancellation(), || async {
            match self.client.describe_cluster(name.to_owned()).await.at("DescribeCluster", name)? {
                None => Err(EksError::Vanished { kind: "cluster", name: name.to_owned() }),
                Some(c) if c.status == "ACTIVE" => Ok(Probe::Done(c)),
                Some(c) if c.status == "FAILED" || c.status == "DELETING" => Err(EksError::Failed {
                    kind: "cluster",
                    name: name.to_owned(),
                    status: c.status,
                    detail: Vec::new(),
                }),
                Some(c) => Ok(Probe::Pending(c.status)),
            }
        })
        .await
        .map_err(from_wait)
    }

    async fn wait_nodegroup(&self, ctx: &Context, cluster: &str, name: &str) -> Result<NodegroupInfo> {
        let policy = ctx.wait.capped(caps::NODEGROUP_ACTIVE);
        let what = format!("node group {name} to be ACTIVE");
        wait::until(&what, &policy, ctx.cancellation(), || async {
            match self
                .client
                .describe_nodegroup(cluster.to_owned(), name.to_owned())
                .await
                .at("DescribeNodegroup", name)?
            {
                None => Err(EksError::Vanished { kind: "node group", name: name.to_owned() }),
                Some(n) if n.status == "ACTIVE" => Ok(Probe::Done(n)),
                Some(n) if matches!(n.status.as_str(), "CREATE_FAILED" | "DELETE_FAILED" | "DELETING" | "DEGRADED") => {
                    Err(EksError::Failed {
                        kind: "node group",
                        name: name.to_owned(),
                        status: n.status,
                        detail: n.issues,
                    })
                }
                Some(n) => Ok(Probe::Pending(n.status)),
            }
        })
        .await
        .map_err(from_wait)
    }

    async fn wait_addon(&self, ctx: &Context, cluster: &str, name: &str) -> Result<AddonInfo> {
        let policy = ctx.wait.capped(caps::ADDON);
        let what = format!("add-on {name} to be ACTIVE");
        wait::until(&what, &policy, ctx.cancellation(), || async {
            match self.client.describe_addon(cluster.to_owned(), name.to_owned()).await.at("DescribeAddon", name)? {
                None => Err(EksError::Vanished { kind: "add-on", name: name.to_owned() }),
                Some(a) if a.status == "ACTIVE" => Ok(Probe::Done(a)),
                Some(a) if matches!(a.status.as_str(), "CREATE_FAILED" | "UPDATE_FAILED" | "DELETE_FAILED") => {
                    Err(EksError::Failed {
                        kind: "add-on",
                        name: name.to_owned(),
                        status: a.status,
                        detail: Vec::new(),
                    })
                }
                Some(a) => Ok(Probe::Pending(a.status)),
            }
        })
        .await
        .map_err(from_wait)
    }

    async fn wait_gone<F, Fut>(&self, ctx: &Context, what: String, cap: Duration, probe: F) -> Result<()>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<Option<String>>>,
    {
        let mut probe = probe;
        wait::until(&what, &ctx.wait.capped(cap), ctx.cancellation(), || {
            let fut = probe();
            async move {
                Ok(match fut.await? {
                    None => Probe::Done(()),
                    Some(status) => Probe::Pending(status),
                })
            }
        })
        .await
        .map_err(from_wait)
    }

    async fn ensure_role(&self, ctx: &Context, want: &RoleWant, have: Option<&RoleInfo>) -> Result<String> {
        let tags = ctx.tags_for(Tier::Eks, want.component, &want.name);
        let (arn, attached, current_tags) = match have {
            None => {
                let arn = match self.client.create_role(want.name.clone(), want.trust.to_string(), tags.clone()).await {
                    Ok(arn) => arn,
                    // Our own earlier create whose response was lost: read it back, tags checked.
                    Err(e) if e.is_already_exists() => {
                        match self.client.get_role(want.name.clone()).await.at("GetRole", &want.name)? {
                            Some(r) => {
                                self.check_owned(ctx, "IAM role", &want.name, &r.tags)?;
                                return Box::pin(self.ensure_role(ctx, want, Some(&r))).await;
                            }
                            None => return Err(e.at("CreateRole", &want.name).into()),
                        }
                    }
                    Err(e) => return Err(e.at("CreateRole", &want.name).into()),
                };
                tracing::info!(role = %want.name, "created IAM role");
                (arn, Vec::new(), tags.clone())
            }
            Some(r) => {
                if serde_json::from_str::<Value>(&r.trust).ok().as_ref() != Some(&want.trust) {
                    self.client
                        .update_trust(want.name.clone(), want.trust.to_string())
                        .await
                        .at("UpdateAssumeRolePolicy", &want.name)?;
                }
                (r.arn.clone(), r.attached.clone(), r.tags.clone())
            }
        };
        for policy in want.policies.iter().filter(|p| !attached.contains(p)) {
            self.client.attach_policy(want.name.clone(), policy.clone()).await.at("AttachRolePolicy", &want.name)?;
        }
        let drift: Tags = tags.into_iter().filter(|(k, v)| current_tags.get(k) != Some(v)).collect();
        if !drift.is_empty() {
            self.client.tag_role(want.name.clone(), drift).await.at("TagRole", &want.name)?;
        }
        Ok(arn)
    }

    /// The control-plane log group with its retention, made before the cluster so EKS writes
    /// into ours instead of creating one that never expires. One without our tag (made by EKS
    /// for a cluster of an older version of this library, or by someone else) is left as is.
    async fn ensure_log_group(
        &self,
        ctx: &Context,
        spec: &EksSpec,
        names: &Names,
        have: Option<&LogGroupInfo>,
    ) -> Result<()> {
        let name = &names.log_group;
        let retention = match have {
            Some(g) if !ctx.owns_tags(&g.tags) => {
                tracing::warn!(log_group = %name, "the log group exists without our tag: its retention is left as is");
                return Ok(());
            }
            Some(g) => g.retention_days,
            None => {
                let tags = ctx.tags_for(Tier::Eks, "log-group", name);
                match self.client.create_log_group(name.clone(), tags).await {
                    Ok(()) => None,
                    // Our own earlier create whose response was lost: read it back, tags checked.
                    Err(e) if e.is_already_exists() => {
                        let g = self
                            .client
                            .describe_log_group(name.clone())
                            .await
                            .at("DescribeLogGroups", name)?
                            .ok_or(e)
                            .at("CreateLogGroup", name)?;
                        self.check_owned(ctx, "log group", name, &g.tags)?;
                        g.retention_days
                    }
                    Err(e) => return Err(e.at("CreateLogGroup", name).into()),
                }
            }
        };
        if retention != Some(spec.log_retention_days) {
            self.client
                .put_log_retention(name.clone(), spec.log_retention_days)
                .await
                .at("PutRetentionPolicy", name)?;
        }
        Ok(())
    }

    async fn ensure_key(&self, ctx: &Context, names: &Names, have: Option<&KeyInfo>) -> Result<KeyInfo> {
        let tags = ctx.tags_for(Tier::Eks, "secrets-key", &names.key_alias);
        let unaliased = match have {
            None => self
                .client
                .find_keys_by_tags(ctx.tags_for(Tier::Eks, "secrets-key", &names.key_alias))
                .await
                .at("ListKeys", &names.key_alias)?
                .into_iter()
                .find(|k| k.state != "PendingDeletion"),
            Some(_) => None,
        };
        let created = have.is_none() && unaliased.is_none();
        let key = match (have, unaliased) {
            (None, Some(k)) => {
                // A run died between CreateKey and CreateAlias: finish it instead of creating
                // a second key.
                self.client
                    .create_alias(names.key_alias.clone(), k.key_id.clone())
                    .await
                    .at("CreateAlias", &names.key_alias)?;
                k
            }
            (None, None) => {
                let description = format!("dify-stack {}: EKS secrets envelope encryption", ctx.stack());
                let key = match self.client.create_key(names.key_alias.clone(), description, tags.clone()).await {
                    Ok(k) => k,
                    // The alias exists: a crash between CreateKey and CreateAlias cannot produce
                    // this, a lost CreateAlias response can. Read it back.
                    Err(e) if e.is_already_exists() => {
                        match self.client.find_key(names.key_alias.clone()).await.at("DescribeKey", &names.key_alias)? {
                            Some(k) => {
                                self.check_owned(ctx, "KMS key", &names.key_alias, &k.tags)?;
                                k
                            }
                            None => return Err(e.at("CreateKey", &names.key_alias).into()),
                        }
                    }
                    Err(e) => return Err(e.at("CreateKey", &names.key_alias).into()),
                };
                tracing::info!(alias = %names.key_alias, "created KMS key");
                key
            }
            (Some(k), _) => k.clone(),
        };
        if created {
            // CreateKey has no idempotency token: an SDK retry of a lost response makes a twin.
            let twins = self
                .client
                .find_keys_by_tags(ctx.tags_for(Tier::Eks, "secrets-key", &names.key_alias))
                .await
                .at("ListKeys", &names.key_alias)?;
            for twin in twins.iter().filter(|k| k.key_id != key.key_id && k.state != "PendingDeletion") {
                tracing::warn!(key = %twin.key_id, "scheduling deletion of a twin KMS key");
                self.client
                    .schedule_key_deletion(String::new(), twin.key_id.clone(), KEY_DELETION_WINDOW_DAYS)
                    .await
                    .at("ScheduleKeyDeletion", &twin.key_id)?;
            }
        }
        if key.state == "PendingDeletion" || key.state == "Disabled" {
            self.client.restore_key(key.key_id.clone()).await.at("CancelKeyDeletion", &names.key_alias)?;
            tracing::info!(alias = %names.key_alias, "restored KMS key scheduled for deletion");
        }
        let drift: Tags = tags.into_iter().filter(|(k, v)| key.tags.get(k) != Some(v)).collect();
        if !drift.is_empty() {
            self.client.tag_key(key.key_id.clone(), drift).await.at("TagResource", &names.key_alias)?;
        }
        Ok(key)
    }

    async fn ensure_cluster(
        &self,
        ctx: &Context,
        spec: &EksSpec,
        names: &Names,
        have: Option<ClusterInfo>,
        role_arn: String,
        key_arn: &str,
    ) -> Result<ClusterInfo> {
        let name = &names.cluster;
        let tags = ctx.tags_for(Tier::Eks, "cluster", name);
        let subnets: Vec<String> = spec.private_subnet_ids.iter().map(|s| s.as_str().to_owned()).collect();
        let Some(mut cluster) = have else {
            let create = ClusterCreate {
                name: name.clone(),
                version: spec.kubernetes_version.clone(),
                role_arn,
                subnet_ids: subnets,
                public_access_cidrs: spec.endpoint.public_access_cidrs.clone(),
                log_types: spec.log_types.clone(),
                key_arn: key_arn.to_owned(),
                tags,
                client_request_token: token(ctx, "cluster", &spec.kubernetes_version),
            };
            // A new cluster role can be rejected for a while ("role ... could not be assumed").
            let policy = ctx.wait.capped(caps::IAM_PROPAGATION);
            let result = wait::retry(
                &format!("CreateCluster {name}"),
                &policy,
                ctx.cancellation(),
                |e: &AwsError| e.is_iam_propagation(),
                || self.client.create_cluster(create.clone()),
            )
            .await;
            match result {
                Ok(_) => tracing::info!(cluster = %name, "creating EKS cluster"),
                Err(WaitError::Failed { source, .. }) if exists(&source) => {}
                Err(e) => return Err(from_aws_wait::<EksError>(e, "CreateCluster", name)),
            }
            return self.wait_cluster(ctx, name).await;
        };
        if cluster.status != "ACTIVE" {
            cluster = self.wait_cluster(ctx, name).await?;
        }
        if let Some(have_key) = &cluster.secrets_key_arn
            && have_key != key_arn
        {
            return Err(EksError::ImmutableChange {
                field: "secrets encryption key".to_owned(),
                resource: name.clone(),
                have: have_key.clone(),
                want: key_arn.to_owned(),
            });
        }
        // One update at a time: EKS rejects a second while one is in progress.
        while let Some(step) = next_version(&cluster.version, &spec.kubernetes_version)? {
            tracing::info!(cluster = %name, from = %cluster.version, to = %step, "upgrading control plane");
            self.client.update_cluster_version(name.clone(), step).await.at("UpdateClusterVersion", name)?;
            cluster = self.wait_cluster(ctx, name).await?;
        }
        if endpoint_drift(&cluster, spec) {
            self.client
                .update_cluster_endpoint(name.clone(), subnets, spec.endpoint.public_access_cidrs.clone())
                .await
                .at("UpdateClusterConfig", name)?;
            cluster = self.wait_cluster(ctx, name).await?;
        }
        let want_logs: BTreeSet<String> = spec.log_types.iter().cloned().collect();
        if cluster.enabled_logs != want_logs {
            let disabled =
                crate::spec::ALL_LOG_TYPES.iter().map(|s| (*s).to_owned()).filter(|t| !want_logs.contains(t)).collect();
            self.client
                .update_cluster_logging(name.clone(), want_logs.iter().cloned().collect(), disabled)
                .await
                .at("UpdateClusterConfig", name)?;
            cluster = self.wait_cluster(ctx, name).await?;
        }
        let drift: Tags = tags.into_iter().filter(|(k, v)| cluster.tags.get(k) != Some(v)).collect();
        if !drift.is_empty() {
            self.client.tag_resource(cluster.arn.clone(), drift).await.at("TagResource", name)?;
        }
        Ok(cluster)
    }

    async fn ensure_access(
        &self,
        ctx: &Context,
        spec: &EksSpec,
        names: &Names,
        have: &BTreeMap<String, Vec<String>>,
    ) -> Result<()> {
        let policy_arn = format!("arn:{}:eks::aws:cluster-access-policy/{CLUSTER_ADMIN_POLICY}", ctx.partition().id());
        for principal in &spec.admin_principals {
            let policies = match have.get(principal) {
                Some(p) => p.clone(),
                None => {
                    let tags = ctx.tags_for(Tier::Eks, "access-entry", &names.cluster);
                    match self.client.create_access_entry(names.cluster.clone(), principal.clone(), tags).await {
                        Ok(()) => {}
                        Err(e) if exists(&e) => {}
                        Err(e) => return Err(e.at("CreateAccessEntry", principal).into()),
                    }
                    Vec::new()
                }
            };
            if !policies.contains(&policy_arn) {
                self.client
                    .associate_access_policy(names.cluster.clone(), principal.clone(), policy_arn.clone())
                    .await
                    .at("AssociateAccessPolicy", principal)?;
            }
        }
        Ok(())
    }
}

/// Creates the node security group (find-or-create: a lost response is read back).
pub(crate) async fn create_node_security_group<C: EksApi>(
    client: &C,
    ctx: &Context,
    vpc_id: &str,
    names: &Names,
) -> Result<String> {
    let tags = ctx.tags_for(Tier::Eks, "node-security-group", &names.node_security_group);
    let description = format!("dify-stack {}: EKS nodes (datastores admit this group)", ctx.stack());
    Ok(
        match client
            .create_security_group(vpc_id.to_owned(), names.node_security_group.clone(), description, tags)
            .await
        {
            Ok(id) => id,
            Err(e) if e.is_already_exists() => client
                .find_security_group(vpc_id.to_owned(), names.node_security_group.clone())
                .await
                .at("DescribeSecurityGroups", &names.node_security_group)?
                .map(|s| s.id)
                .ok_or(e)
                .at("CreateSecurityGroup", &names.node_security_group)?,
            Err(e) => return Err(e.at("CreateSecurityGroup", &names.node_security_group).into()),
        },
    )
}

/// EKS answers a create of an existing cluster, node group, add-on or access entry with
/// `ResourceInUseException`: for a create that means our earlier call went through.
fn exists(e: &AwsError) -> bool {
    e.is_already_exists() || e.code.as_deref() == Some("ResourceInUseException")
}

fn endpoint_drift(cluster: &ClusterInfo, spec: &EksSpec) -> bool {
    let want_public = !spec.endpoint.public_access_cidrs.is_empty();
    let want_subnets: Vec<String> = spec.private_subnet_ids.iter().map(|s| s.as_str().to_owned()).collect();
    !cluster.endpoint_private
        || cluster.endpoint_public != want_public
        || (want_public && sorted(&cluster.public_access_cidrs) != sorted(&spec.endpoint.public_access_cidrs))
        || sorted(&cluster.subnet_ids) != sorted(&want_subnets)
}

fn tag_drift(change: Change, want: &Tags, have: &Tags) -> Change {
    want.iter()
        .filter(|(k, v)| have.get(*k) != Some(*v))
        .fold(change, |c, (k, v)| c.field(format!("tags.{k}"), have.get(k), Some(v)))
}

fn eks_output(
    ctx: &Context,
    cluster: &ClusterInfo,
    node_sg: &str,
    cluster_role: &str,
    node_role: &str,
    key_arn: &str,
    nodegroup: &str,
) -> EksOutput {
    EksOutput {
        cluster_name: ClusterName::new(&cluster.name),
        cluster_arn: Arn::new(&cluster.arn),
        kubernetes_version: cluster.version.clone(),
        endpoint: cluster.endpoint.clone().unwrap_or_default(),
        ca_data: cluster.ca_data.clone().unwrap_or_default(),
        oidc_issuer_url: cluster.oidc_issuer.clone().unwrap_or_default(),
        cluster_security_group_id: cluster.cluster_security_group_id.clone().map(SecurityGroupId::new),
        node_security_group_id: SecurityGroupId::new(node_sg),
        cluster_role_arn: RoleArn::new(cluster_role),
        node_role_arn: RoleArn::new(node_role),
        kms_key_arn: KmsKeyArn::new(key_arn),
        nodegroup_name: nodegroup.to_owned(),
        region: ctx.region().to_owned(),
    }
}

fn push_if_changed(plan: &mut Plan, c: Change) {
    if !c.fields.is_empty() {
        plan.push(c);
    }
}

#[async_trait]
impl<C: EksApi> Provisioner for EksProvisioner<C> {
    type Spec = EksSpec;
    type Observed = ObservedEks;
    type Output = EksOutput;
    type Error = EksError;

    fn validate(&self, ctx: &Context, spec: &EksSpec) -> Result<(), SpecErrors> {
        spec.validate(ctx)
    }

    async fn observe(&self, ctx: &Context, spec: &EksSpec) -> Result<ObservedEks> {
        let names = Names::of(ctx);
        let mut o = ObservedEks::default();
        for (slot, name) in [
            (&mut o.cluster_role, &names.cluster_role),
            (&mut o.node_role, &names.node_role),
            (&mut o.ebs_csi_role, &names.ebs_csi_role),
        ] {
            if let Some(r) = self.client.get_role(name.clone()).await.at("GetRole", name)? {
                self.check_owned(ctx, "IAM role", name, &r.tags)?;
                *slot = Some(r);
            }
        }
        if let Some(k) = self.client.find_key(names.key_alias.clone()).await.at("DescribeKey", &names.key_alias)? {
            self.check_owned(ctx, "KMS key", &names.key_alias, &k.tags)?;
            o.key = Some(k);
        }
        o.log_group =
            self.client.describe_log_group(names.log_group.clone()).await.at("DescribeLogGroups", &names.log_group)?;
        let sg = self
            .client
            .find_security_group(spec.vpc_id.as_str().to_owned(), names.node_security_group.clone())
            .await
            .at("DescribeSecurityGroups", &names.node_security_group)?;
        if let Some(sg) = sg {
            self.check_owned(ctx, "security group", &names.node_security_group, &sg.tags)?;
            o.node_security_group = Some(sg);
        }
        if let Some(lt) = self
            .client
            .find_launch_template(names.launch_template.clone())
            .await
            .at("DescribeLaunchTemplates", &names.launch_template)?
        {
            self.check_owned(ctx, "launch template", &names.launch_template, &lt.tags)?;
            o.launch_template = Some(lt);
        }
        let Some(cluster) =
            self.client.describe_cluster(names.cluster.clone()).await.at("DescribeCluster", &names.cluster)?
        else {
            return Ok(o);
        };
        self.check_owned(ctx, "EKS cluster", &names.cluster, &cluster.tags)?;
        if let Some(n) = self
            .client
            .describe_nodegroup(names.cluster.clone(), names.nodegroup.clone())
            .await
            .at("DescribeNodegroup", &names.nodegroup)?
        {
            self.check_owned(ctx, "node group", &names.nodegroup, &n.tags)?;
            o.nodegroup = Some(n);
        }
        let installed = self.client.list_addons(names.cluster.clone()).await.at("ListAddons", &names.cluster)?;
        for addon in installed {
            if let Some(a) =
                self.client.describe_addon(names.cluster.clone(), addon.clone()).await.at("DescribeAddon", &addon)?
            {
                o.addons.insert(addon, a);
            }
        }
        let entries = if spec.admin_principals.is_empty() {
            Vec::new()
        } else {
            self.client.list_access_entries(names.cluster.clone()).await.at("ListAccessEntries", &names.cluster)?
        };
        for principal in spec.admin_principals.iter().filter(|p| entries.contains(p)) {
            let policies = self
                .client
                .list_access_policies(names.cluster.clone(), principal.clone())
                .await
                .at("ListAssociatedAccessPolicies", principal)?;
            o.access.insert(principal.clone(), policies);
        }
        o.cluster = Some(cluster);
        // Default add-on versions for the version the cluster will run after this apply.
        for addon in &spec.addons {
            if let Some(v) = self
                .client
                .default_addon_version(addon.clone(), spec.kubernetes_version.clone())
                .await
                .at("DescribeAddonVersions", addon)?
            {
                o.addon_versions.insert(addon.clone(), v);
            }
        }
        Ok(o)
    }

    fn diff(&self, ctx: &Context, spec: &EksSpec, o: &ObservedEks) -> Plan {
        let names = Names::of(ctx);
        let mut plan = Plan::new();
        for (want, have) in role_wants(ctx, &names, spec).iter().zip(o.roles()) {
            let r = ResourceRef::new("iam:role", &want.name);
            let tags = ctx.tags_for(Tier::Eks, want.component, &want.name);
            let Some(have) = have else {
                plan.push(Change::new(Action::Create, r).field(
                    "managed_policies",
                    None::<String>,
                    Some(list(&want.policies)),
                ));
                continue;
            };
            let mut c = Change::new(Action::Update, r.with_id(&have.arn));
            if serde_json::from_str::<Value>(&have.trust).ok().as_ref() != Some(&want.trust) {
                c = c.field("assume_role_policy", Some(&have.trust), Some(want.trust.to_string()));
            }
            let missing: Vec<&String> = want.policies.iter().filter(|p| !have.attached.contains(p)).collect();
            if !missing.is_empty() {
                c = c.field("managed_policies", Some(list(&have.attached)), Some(list(&want.policies)));
            }
            push_if_changed(&mut plan, tag_drift(c, &tags, &have.tags));
        }
        let lg = ResourceRef::new("logs:log-group", &names.log_group);
        match &o.log_group {
            None => plan.push(Change::new(Action::Create, lg).field(
                "retention_days",
                None::<i32>,
                Some(spec.log_retention_days),
            )),
            Some(g) if ctx.owns_tags(&g.tags) && g.retention_days != Some(spec.log_retention_days) => {
                plan.push(Change::new(Action::Update, lg).field(
                    "retention_days",
                    g.retention_days,
                    Some(spec.log_retention_days),
                ))
            }
            _ => {}
        }
        let key_ref = ResourceRef::new("kms:key", format!("alias/{}", names.key_alias));
        match &o.key {
            None => plan.push(Change::new(Action::Create, key_ref).field("rotation", None::<bool>, Some(true))),
            Some(k) => {
                let mut c = Change::new(Action::Update, key_ref.with_id(&k.arn));
                if k.state != "Enabled" {
                    c = c
                        .field("state", Some(&k.state), Some("Enabled"))
                        .because("a key scheduled for deletion is restored");
                }
                let tags = ctx.tags_for(Tier::Eks, "secrets-key", &names.key_alias);
                push_if_changed(&mut plan, tag_drift(c, &tags, &k.tags));
            }
        }
        if o.node_security_group.is_none() {
            plan.push(Change::new(Action::Create, ResourceRef::new("ec2:security-group", &names.node_security_group)));
        }
        let cluster_ref = ResourceRef::new("eks:cluster", &names.cluster);
        let want_logs: BTreeSet<String> = spec.log_types.iter().cloned().collect();
        match &o.cluster {
            None => plan.push(
                Change::new(Action::Create, cluster_ref)
                    .field("version", None::<&str>, Some(&spec.kubernetes_version))
                    .field("subnets", None::<String>, Some(list(&spec.private_subnet_ids)))
                    .field(
                        "endpoint_public_access_cidrs",
                        None::<String>,
                        Some(list(&spec.endpoint.public_access_cidrs)),
                    )
                    .field("logging", None::<String>, Some(list(&want_logs)))
                    .field("authentication_mode", None::<&str>, Some("API_AND_CONFIG_MAP")),
            ),
            Some(have) => {
                let r = cluster_ref.with_id(&have.arn);
                if have.version != spec.kubernetes_version {
                    let c = Change::new(Action::Update, r.clone()).field(
                        "version",
                        Some(&have.version),
                        Some(&spec.kubernetes_version),
                    );
                    plan.push(match next_version(&have.version, &spec.kubernetes_version) {
                        Ok(_) => c.because("control plane first, one minor version at a time; then the node group"),
                        Err(_) => c.because("downgrades are refused"),
                    });
                }
                let mut c = Change::new(Action::Update, r);
                if endpoint_drift(have, spec) {
                    c = c
                        .field(
                            "endpoint_public_access_cidrs",
                            Some(list(&have.public_access_cidrs)),
                            Some(list(&spec.endpoint.public_access_cidrs)),
                        )
                        .field("subnets", Some(list(sorted(&have.subnet_ids))), Some(list(&spec.private_subnet_ids)));
                }
                if have.enabled_logs != want_logs {
                    c = c.field("logging", Some(list(&have.enabled_logs)), Some(list(&want_logs)));
                }
                let tags = ctx.tags_for(Tier::Eks, "cluster", &names.cluster);
                push_if_changed(&mut plan, tag_drift(c, &tags, &have.tags));
            }
        }
        for principal in &spec.admin_principals {
            let r = ResourceRef::new("eks:access-entry", principal);
            match o.access.get(principal) {
                None => {
                    plan.push(Change::new(Action::Create, r).field("policy", None::<&str>, Some(CLUSTER_ADMIN_POLICY)))
                }
                Some(p) if !p.iter().any(|a| a.ends_with(CLUSTER_ADMIN_POLICY)) => {
                    plan.push(Change::new(Action::Update, r).field("policy", None::<&str>, Some(CLUSTER_ADMIN_POLICY)))
                }
                Some(_) => {}
            }
        }
        let node_sg = o.node_security_group.as_ref().map(|s| s.id.as_str()).unwrap_or("(known after apply)");
        let lt_want = launch_template_data(spec, lt_security_groups(node_sg, o.cluster.as_ref()));
        let lt_ref = ResourceRef::new("ec2:launch-template", &names.launch_template);
        match &o.launch_template {
            None => plan.push(
                Change::new(Action::Create, lt_ref)
                    .field("metadata.http_tokens", None::<&str>, Some("required"))
                    .field("metadata.hop_limit", None::<i32>, Some(NODE_METADATA_HOP_LIMIT))
                    .field(
                        "root_volume",
                        None::<&str>,
                        Some(format!("gp3 {} GiB encrypted", spec.node_group.disk_size_gib)),
                    ),
            ),
            Some(lt) => {
                let mut have = lt.data.clone();
                have.security_group_ids.sort();
                if have != lt_want && o.node_security_group.is_some() {
                    plan.push(
                        Change::new(Action::Update, lt_ref.with_id(&lt.id))
                            .field("data", Some(format!("{:?}", lt.data)), Some(format!("{lt_want:?}")))
                            .because("a new launch template version rolls the nodes"),
                    );
                }
            }
        }
        let ng = &spec.node_group;
        let ng_ref = ResourceRef::new("eks:nodegroup", &names.nodegroup);
        match &o.nodegroup {
            None => plan.push(
                Change::new(Action::Create, ng_ref)
                    .field("ami_type", None::<&str>, Some(&ng.ami_type))
                    .field("instance_types", None::<String>, Some(list(&ng.instance_types)))
                    .field(
                        "scaling",
                        None::<&str>,
                        Some(format!("min {} desired {} max {}", ng.min, ng.desired, ng.max)),
                    )
                    .field("labels", None::<&str>, Some(format!("{:?}", ng.labels))),
            ),
            Some(have) => {
                let r = ng_ref.with_id(&have.arn);
                let mut replace =
                    Change::new(Action::Replace, r.clone()).because("node group settings that cannot change in place");
                if sorted(&have.instance_types) != sorted(&ng.instance_types) {
                    replace = replace.field(
                        "instance_types",
                        Some(list(&have.instance_types)),
                        Some(list(&ng.instance_types)),
                    );
                }
                if have.ami_type != ng.ami_type {
                    replace = replace.field("ami_type", Some(&have.ami_type), Some(&ng.ami_type));
                }
                push_if_changed(&mut plan, replace);
                let mut c = Change::new(Action::Update, r);
                if (have.min, have.max, have.desired) != (ng.min, ng.max, ng.desired) {
                    c = c.field(
                        "scaling",
                        Some(format!("min {} desired {} max {}", have.min, have.desired, have.max)),
                        Some(format!("min {} desired {} max {}", ng.min, ng.desired, ng.max)),
                    );
                }
                if have.labels != ng.labels {
                    c = c.field("labels", Some(format!("{:?}", have.labels)), Some(format!("{:?}", ng.labels)));
                }
                if have.version.as_deref().is_some_and(|v| v != spec.kubernetes_version) {
                    c = c
                        .field("version", have.version.as_deref(), Some(&spec.kubernetes_version))
                        .because("after the control plane");
                }
                push_if_changed(&mut plan, c);
            }
        }
        for addon in &spec.addons {
            let r = ResourceRef::new("eks:addon", addon);
            let want = o.addon_versions.get(addon).map(String::as_str).unwrap_or("(default for the cluster version)");
            let pod_identity = (addon == EBS_CSI_ADDON)
                .then(|| format!("kube-system/{EBS_CSI_SERVICE_ACCOUNT} -> {}", names.ebs_csi_role));
            match o.addons.get(addon) {
                None => {
                    let mut c = Change::new(Action::Create, r).field("version", None::<&str>, Some(want));
                    if let Some(p) = &pod_identity {
                        c = c.field("pod_identity_associations", None::<&str>, Some(p.as_str()));
                    }
                    plan.push(c)
                }
                Some(a) => {
                    let mut c = Change::new(Action::Update, r);
                    if o.addon_versions.get(addon).is_some_and(|v| *v != a.version) {
                        c = c.field("version", Some(&a.version), Some(want));
                    }
                    if let Some(p) = pod_identity.as_ref().filter(|_| a.pod_identity_associations.is_empty()) {
                        c = c.field("pod_identity_associations", Some("(none)"), Some(p.as_str()));
                    }
                    push_if_changed(&mut plan, c);
                }
            }
        }
        for (name, a) in o.addons.iter().filter(|(n, a)| !spec.addons.contains(n) && made_by_this_tier(ctx, &a.tags)) {
            plan.push(Change::new(Action::Delete, ResourceRef::new("eks:addon", name)).field(
                "version",
                Some(&a.version),
                None::<&str>,
            ));
        }
        plan
    }

    async fn apply(&self, ctx: &Context, spec: &EksSpec) -> Result<EksOutput> {
        spec.validate(ctx)?;
        let names = Names::of(ctx);
        let o = self.observe(ctx, spec).await?;
        // Refusals first, so a refused apply changes nothing.
        if let Some(have) = &o.cluster {
            next_version(&have.version, &spec.kubernetes_version)?;
        }
        if let Some(c) = self.diff(ctx, spec, &o).with_action(Action::Replace).next() {
            let f = &c.fields[0];
            return Err(EksError::ImmutableChange {
                field: f.path.clone(),
                resource: c.resource.name.clone(),
                have: f.before.clone().unwrap_or_default(),
                want: f.after.clone().unwrap_or_default(),
            });
        }
        let wants = role_wants(ctx, &names, spec);
        let mut arns = Vec::new();
        for (want, have) in wants.iter().zip(o.roles()) {
            arns.push(self.ensure_role(ctx, want, have.as_ref()).await?);
        }
        let (cluster_role, node_role) = (arns[0].clone(), arns[1].clone());
        let ebs_csi_role = arns
            .get(2)
            .map(|arn| AddonRole { service_account: EBS_CSI_SERVICE_ACCOUNT.to_owned(), role_arn: arn.clone() });
        let key = self.ensure_key(ctx, &names, o.key.as_ref()).await?;
        let node_sg = match &o.node_security_group {
            Some(sg) => sg.id.clone(),
            None => create_node_security_group(&self.client, ctx, spec.vpc_id.as_str(), &names).await?,
        };
        self.ensure_log_group(ctx, spec, &names, o.log_group.as_ref()).await?;
        let cluster = self.ensure_cluster(ctx, spec, &names, o.cluster.clone(), cluster_role.clone(), &key.arn).await?;
        self.ensure_access(ctx, spec, &names, &o.access).await?;

        // Launch template: IMDSv2 only, hop limit 2, encrypted gp3 root volume.
        let lt_data = launch_template_data(spec, lt_security_groups(&node_sg, Some(&cluster)));
        let (lt_id, lt_version) = match &o.launch_template {
            None => {
                let tags = ctx.tags_for(Tier::Eks, "launch-template", &names.launch_template);
                let lt = match self.client.create_launch_template(names.launch_template.clone(), lt_data, tags).await {
                    Ok(lt) => lt,
                    Err(e) if e.is_already_exists() => self
                        .client
                        .find_launch_template(names.launch_template.clone())
                        .await
                        .at("DescribeLaunchTemplates", &names.launch_template)?
                        .ok_or(e)
                        .at("CreateLaunchTemplate", &names.launch_template)?,
                    Err(e) => return Err(e.at("CreateLaunchTemplate", &names.launch_template).into()),
                };
                (lt.id, lt.latest_version)
            }
            Some(lt) => {
                let mut have = lt.data.clone();
                have.security_group_ids.sort();
                if have == lt_data {
                    (lt.id.clone(), lt.latest_version)
                } else {
                    let v = self
                        .client
                        .update_launch_template(lt.id.clone(), lt_data)
                        .await
                        .at("CreateLaunchTemplateVersion", &lt.id)?;
                    (lt.id.clone(), v)
                }
            }
        };
        let lt_version = lt_version.to_string();

        // Node group, then the add-ons; both waited for together.
        let ng = &spec.node_group;
        let cluster_name = names.cluster.clone();
        let nodegroup = match o.nodegroup.clone() {
            None => {
                let create = NodegroupCreate {
                    cluster: cluster_name.clone(),
                    name: names.nodegroup.clone(),
                    node_role: node_role.clone(),
                    subnet_ids: spec.private_subnet_ids.iter().map(|s| s.as_str().to_owned()).collect(),
                    instance_types: ng.instance_types.clone(),
                    ami_type: ng.ami_type.clone(),
                    min: ng.min,
                    max: ng.max,
                    desired: ng.desired,
                    labels: ng.labels.clone(),
                    launch_template: (lt_id.clone(), lt_version.clone()),
                    version: spec.kubernetes_version.clone(),
                    tags: ctx.tags_for(Tier::Eks, "nodegroup", &names.nodegroup),
                    client_request_token: token(ctx, "nodegroup", &lt_version),
                };
                let policy = ctx.wait.capped(caps::IAM_PROPAGATION);
                match wait::retry(
                    &format!("CreateNodegroup {}", names.nodegroup),
                    &policy,
                    ctx.cancellation(),
                    |e: &AwsError| e.is_iam_propagation(),
                    || self.client.create_nodegroup(create.clone()),
                )
                .await
                {
                    Ok(n) => {
                        tracing::info!(nodegroup = %names.nodegroup, "creating node group");
                        n
                    }
                    Err(WaitError::Failed { source, .. }) if exists(&source) => self
                        .client
                        .describe_nodegroup(cluster_name.clone(), names.nodegroup.clone())
                        .await
                        .at("DescribeNodegroup", &names.nodegroup)?
                        .ok_or(source)
                        .at("CreateNodegroup", &names.nodegroup)?,
                    Err(e) => return Err(from_aws_wait::<EksError>(e, "CreateNodegroup", &names.nodegroup)),
                }
            }
            Some(mut have) => {
                if have.status != "ACTIVE" {
                    have = self.wait_nodegroup(ctx, &cluster_name, &names.nodegroup).await?;
                }
                let scaling = ((have.min, have.max, have.desired) != (ng.min, ng.max, ng.desired))
                    .then_some((ng.min, ng.max, ng.desired));
                let add: BTreeMap<String, String> = ng
                    .labels
                    .iter()
                    .filter(|(k, v)| have.labels.get(*k) != Some(*v))
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect();
                let remove: Vec<String> = have.labels.keys().filter(|k| !ng.labels.contains_key(*k)).cloned().collect();
                if scaling.is_some() || !add.is_empty() || !remove.is_empty() {
                    self.client
                        .update_nodegroup_config(cluster_name.clone(), names.nodegroup.clone(), scaling, add, remove)
                        .await
                        .at("UpdateNodegroupConfig", &names.nodegroup)?;
                    have = self.wait_nodegroup(ctx, &cluster_name, &names.nodegroup).await?;
                }
                let version_behind = have.version.as_deref().is_some_and(|v| v != spec.kubernetes_version);
                let lt_behind = have.launch_template.as_ref().is_some_and(|(id, v)| *id != lt_id || *v != lt_version);
                if version_behind || lt_behind {
                    // A version change rolls the nodes onto the new AMI; a template change
                    // rolls them onto the new template. One call does either.
                    self.client
                        .update_nodegroup_version(
                            cluster_name.clone(),
                            names.nodegroup.clone(),
                            version_behind.then(|| spec.kubernetes_version.clone()),
                            (lt_behind && !version_behind).then(|| (lt_id.clone(), lt_version.clone())),
                        )
                        .await
                        .at("UpdateNodegroupVersion", &names.nodegroup)?;
                    have = self.wait_nodegroup(ctx, &cluster_name, &names.nodegroup).await?;
                }
                have
            }
        };

        let mut addon_waits = Vec::new();
        for addon in &spec.addons {
            let version = match o.addon_versions.get(addon) {
                Some(v) => v.clone(),
                None => self
                    .client
                    .default_addon_version(addon.clone(), spec.kubernetes_version.clone())
                    .await
                    .at("DescribeAddonVersions", addon)?
                    .ok_or_else(|| EksError::NoAddonVersion {
                        addon: addon.clone(),
                        version: spec.kubernetes_version.clone(),
                    })?,
            };
            let role = ebs_csi_role.clone().filter(|_| addon == EBS_CSI_ADDON);
            match o.addons.get(addon) {
                None => {
                    let tags = ctx.tags_for(Tier::Eks, "addon", addon);
                    match self.client.create_addon(cluster_name.clone(), addon.clone(), version, tags, role).await {
                        Ok(()) => tracing::info!(addon, "creating add-on"),
                        Err(e) if exists(&e) => {}
                        Err(e) => return Err(e.at("CreateAddon", addon).into()),
                    }
                    addon_waits.push(addon.clone());
                }
                Some(a) if a.version != version || (role.is_some() && a.pod_identity_associations.is_empty()) => {
                    self.client
                        .update_addon(cluster_name.clone(), addon.clone(), version, role)
                        .await
                        .at("UpdateAddon", addon)?;
                    addon_waits.push(addon.clone());
                }
                Some(a) if a.status != "ACTIVE" => addon_waits.push(addon.clone()),
                Some(_) => {}
            }
        }
        for (name, a) in o.addons.iter().filter(|(n, a)| !spec.addons.contains(n) && made_by_this_tier(ctx, &a.tags)) {
            tracing::info!(addon = %name, version = %a.version, "deleting add-on no longer in the spec");
            dify_stack_core::ignore_not_found(self.client.delete_addon(cluster_name.clone(), name.clone()).await)
                .at("DeleteAddon", name)?;
        }
        let nodegroup_wait = async {
            if nodegroup.status == "ACTIVE" {
                Ok(nodegroup.clone())
            } else {
                self.wait_nodegroup(ctx, &cluster_name, &names.nodegroup).await
            }
        };
        let addons_wait =
            futures::future::try_join_all(addon_waits.iter().map(|a| self.wait_addon(ctx, &cluster_name, a)));
        let (nodegroup, _) = futures::future::try_join(nodegroup_wait, addons_wait).await?;

        Ok(eks_output(ctx, &cluster, &node_sg, &cluster_role, &node_role, &key.arn, &nodegroup.name))
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

    /// Node group (wait gone) -> add-ons -> cluster (wait gone) -> launch template -> node
    /// security group -> roles (detach, delete) -> KMS key scheduled for deletion (7 days).
    async fn destroy(&self, ctx: &Context, spec: &EksSpec) -> Result<Vec<ResourceRef>> {
        let names = Names::of(ctx);
        let o = self.observe_for_destroy(ctx, spec, &names).await?;
        let mut deleted = Vec::new();
        let cluster = names.cluster.clone();
        if let Some(c) = &o.cluster {
            self.remove_kubernetes_load_balancers(ctx, spec, &cluster).await?;
            let ngs = self.client.list_nodegroups(cluster.clone()).await.at("ListNodegroups", &cluster)?;
            let mut ours = Vec::new();
            for ng in ngs {
                let Some(info) =
                    self.client.describe_nodegroup(cluster.clone(), ng.clone()).await.at("DescribeNodegroup", &ng)?
                else {
                    continue;
                };
                if !ctx.owns_tags(&info.tags) {
                    return Err(NotOwned::new(ctx, "node group", ng).into());
                }
                if info.status != "DELETING" {
                    dify_stack_core::ignore_not_found(self.client.delete_nodegroup(cluster.clone(), ng.clone()).await)
                        .at("DeleteNodegroup", &ng)?;
                }
                ours.push(info);
            }
            for info in ours {
                let ng = info.name.clone();
                self.wait_gone(ctx, format!("node group {ng} to be deleted"), caps::NODEGROUP_DELETED, || async {
                    Ok(self
                        .client
                        .describe_nodegroup(cluster.clone(), ng.clone())
                        .await
                        .at("DescribeNodegroup", &ng)?
                        .map(|n| n.status))
                })
                .await?;
                deleted.push(ResourceRef::new("eks:nodegroup", &ng).with_id(&info.arn));
            }
            // Add-ons after the node group (STACK.md destroy order): the CNI and the EBS CSI
            // driver keep working while the nodes drain and detach their volumes.
            for (addon, a) in &o.addons {
                if dify_stack_core::ignore_not_found(self.client.delete_addon(cluster.clone(), addon.clone()).await)
                    .at("DeleteAddon", addon)?
                {
                    deleted.push(ResourceRef::new("eks:addon", addon).with_id(&a.version));
                }
            }
            if c.status != "DELETING" {
                dify_stack_core::ignore_not_found(self.client.delete_cluster(cluster.clone()).await)
                    .at("DeleteCluster", &cluster)?;
            }
            self.wait_gone(ctx, format!("EKS cluster {cluster} to be deleted"), caps::CLUSTER_DELETED, || async {
                Ok(self
                    .client
                    .describe_cluster(cluster.clone())
                    .await
                    .at("DescribeCluster", &cluster)?
                    .map(|c| c.status))
            })
            .await?;
            deleted.push(ResourceRef::new("eks:cluster", &cluster).with_id(&c.arn));
        }
        self.sweep_load_balancer_leftovers(ctx, spec, &cluster).await?;
        // The control-plane log group outlives the cluster unless deleted (EKS never removes it).
        if let Some(g) = &o.log_group
            && dify_stack_core::ignore_not_found(self.client.delete_log_group(g.name.clone()).await)
                .at("DeleteLogGroup", &g.name)?
        {
            deleted.push(ResourceRef::new("logs:log-group", &g.name));
        }
        if let Some(lt) = &o.launch_template
            && dify_stack_core::ignore_not_found(self.client.delete_launch_template(lt.id.clone()).await)
                .at("DeleteLaunchTemplate", &lt.name)?
        {
            deleted.push(ResourceRef::new("ec2:launch-template", &lt.name).with_id(&lt.id));
        }
        if let Some(sg) = o.node_security_group.as_ref().filter(|_| !self.keep_node_security_group) {
            // ENIs of terminated nodes can hold the group for a while.
            let result = wait::retry(
                &format!("DeleteSecurityGroup {}", sg.id),
                &ctx.wait.capped(Duration::from_secs(10 * 60)),
                ctx.cancellation(),
                AwsError::is_dependency_violation,
                || async { dify_stack_core::ignore_not_found(self.client.delete_security_group(sg.id.clone()).await) },
            )
            .await
            .map_err(|e| from_aws_wait::<EksError>(e, "DeleteSecurityGroup", &sg.name))?;
            if result {
                deleted.push(ResourceRef::new("ec2:security-group", &sg.name).with_id(&sg.id));
            }
        }
        for role in o.roles().into_iter().flatten() {
            for policy in &role.attached {
                dify_stack_core::ignore_not_found(self.client.detach_policy(role.name.clone(), policy.clone()).await)
                    .at("DetachRolePolicy", &role.name)?;
            }
            if dify_stack_core::ignore_not_found(self.client.delete_role(role.name.clone()).await)
                .at("DeleteRole", &role.name)?
            {
                deleted.push(ResourceRef::new("iam:role", &role.name).with_id(&role.arn));
            }
        }
        if let Some(k) = o.key.as_ref().filter(|k| k.state != "PendingDeletion") {
            self.client
                .schedule_key_deletion(names.key_alias.clone(), k.key_id.clone(), KEY_DELETION_WINDOW_DAYS)
                .await
                .at("ScheduleKeyDeletion", &names.key_alias)?;
            deleted.push(ResourceRef::new("kms:key", format!("alias/{}", names.key_alias)).with_id(&k.arn));
        }
        Ok(deleted)
    }
}

impl<C: EksApi> EksProvisioner<C> {
    /// Observation for destroy: like `observe`, but a resource with our name and without our tag
    /// is skipped (never touched) instead of failing, and add-on versions are not resolved.
    async fn observe_for_destroy(&self, ctx: &Context, spec: &EksSpec, names: &Names) -> Result<ObservedEks> {
        let log_group = self
            .client
            .describe_log_group(names.log_group.clone())
            .await
            .at("DescribeLogGroups", &names.log_group)?
            .filter(|g| ctx.owns_tags(&g.tags));
        let mut o = ObservedEks { log_group, ..Default::default() };
        for (slot, name) in [
            (&mut o.cluster_role, &names.cluster_role),
            (&mut o.node_role, &names.node_role),
            (&mut o.ebs_csi_role, &names.ebs_csi_role),
        ] {
            *slot = self.client.get_role(name.clone()).await.at("GetRole", name)?.filter(|r| ctx.owns_tags(&r.tags));
        }
        o.key = match self.client.find_key(names.key_alias.clone()).await.at("DescribeKey", &names.key_alias)? {
            Some(k) => Some(k).filter(|k| ctx.owns_tags(&k.tags)),
            // A key whose alias was never created (the run died right after CreateKey).
            None => self
                .client
                .find_keys_by_tags(ctx.tags_for(Tier::Eks, "secrets-key", &names.key_alias))
                .await
                .at("ListKeys", &names.key_alias)?
                .into_iter()
                .find(|k| k.state != "PendingDeletion"),
        };
        o.node_security_group = self
            .client
            .find_security_group(spec.vpc_id.as_str().to_owned(), names.node_security_group.clone())
            .await
            .at("DescribeSecurityGroups", &names.node_security_group)?
            .filter(|s| ctx.owns_tags(&s.tags));
        o.launch_template = self
            .client
            .find_launch_template(names.launch_template.clone())
            .await
            .at("DescribeLaunchTemplates", &names.launch_template)?
            .filter(|l| ctx.owns_tags(&l.tags));
        o.cluster = self
            .client
            .describe_cluster(names.cluster.clone())
            .await
            .at("DescribeCluster", &names.cluster)?
            .filter(|c| ctx.owns_tags(&c.tags));
        if o.cluster.is_some() {
            for addon in self.client.list_addons(names.cluster.clone()).await.at("ListAddons", &names.cluster)? {
                if let Some(a) = self
                    .client
                    .describe_addon(names.cluster.clone(), addon.clone())
                    .await
                    .at("DescribeAddon", &addon)?
                {
                    o.addons.insert(addon, a);
                }
            }
        }
        Ok(o)
    }
}

/// Ours and made by this tier: an add-on the platform tier installed (metrics-server) carries the
/// stack's tags too, and is not this tier's to remove as drift.
fn made_by_this_tier(ctx: &Context, tags: &dify_stack_core::Tags) -> bool {
    ctx.owns_tags(tags) && tags.get(dify_stack_core::TAG_TIER).map(String::as_str) == Some(Tier::Eks.as_str())
}

/// The derived cluster name, checked against EKS's rules.
pub fn cluster_name(ctx: &Context) -> Result<String, dify_stack_core::NameError> {
    ctx.name(NameKind::EksCluster, "")
}
