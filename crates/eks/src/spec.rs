//! The desired state of the EKS tier.

use std::collections::BTreeMap;

use dify_stack_core::ids::{KubernetesVersion, SubnetId, VpcId};
use dify_stack_core::{Context, Environment, NameKind, SpecErrors};
use serde::{Deserialize, Serialize};

/// Every control-plane log type EKS knows; all are enabled by default.
pub const ALL_LOG_TYPES: [&str; 5] = ["api", "audit", "authenticator", "controllerManager", "scheduler"];

/// The managed add-ons installed by default, at the default version for the cluster version.
pub const DEFAULT_ADDONS: [&str; 5] =
    ["vpc-cni", "coredns", "kube-proxy", "eks-pod-identity-agent", "aws-ebs-csi-driver"];

/// The EBS CSI driver add-on: its controller gets a role with `AmazonEBSCSIDriverPolicy` through
/// EKS Pod Identity, without which every PersistentVolumeClaim stays Pending.
pub const EBS_CSI_ADDON: &str = "aws-ebs-csi-driver";
/// The EBS CSI controller's service account (kube-system), the one the role is associated with.
pub const EBS_CSI_SERVICE_ACCOUNT: &str = "ebs-csi-controller-sa";
/// The agent that hands Pod Identity credentials to pods; required by [`EBS_CSI_ADDON`].
pub const POD_IDENTITY_AGENT_ADDON: &str = "eks-pod-identity-agent";

/// The access policy associated with every extra admin principal.
pub const CLUSTER_ADMIN_POLICY: &str = "AmazonEKSClusterAdminPolicy";

/// The EKS tier: roles, KMS key, cluster, node group, add-ons, access.
///
/// The user's part is [`EksSettings`] (the `eks` section of the stack's configuration file,
/// flattened here); the rest is what the network provides and the operators' addresses. The
/// spec dereferences to its settings (`spec.node_group` is `spec.settings.node_group`), and
/// [`validate`](EksSpec::validate) reports the settings' violations at their own paths
/// (`node_group.instance_types[0]`, `kubernetes_version`, ...).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EksSpec {
    /// What the user chose: version, endpoint, logs, admins, node group, add-ons.
    #[serde(flatten)]
    pub settings: EksSettings,
    /// The VPC of the cluster (from the network tier).
    pub vpc_id: VpcId,
    /// Private subnets: control-plane ENIs and nodes (from the network tier, >= 2 AZs).
    pub private_subnet_ids: Vec<SubnetId>,
    /// The public access CIDRs of the operators who run apply (each one's address as a /32),
    /// kept beside the configured `endpoint.public_access_cidrs`: the public endpoint admits
    /// both. The stack keeps this list (one entry per operator, dropped when stale), so one
    /// operator's apply never removes another's address. Ignored while the public endpoint is
    /// off (no configured CIDR and no operator).
    #[serde(default)]
    pub operator_cidrs: Vec<String>,
}

/// The EKS tier's settings, as the stack's configuration file gives them (its `eks` section,
/// besides the facade's own access keys): everything of [`EksSpec`] but what the network
/// provides and the operators' addresses.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EksSettings {
    /// Kubernetes minor version, `"1.33"`. Upgrades go one minor version at a time; downgrades
    /// are refused.
    #[serde(default = "default_version")]
    pub kubernetes_version: KubernetesVersion,
    /// Endpoint access.
    #[serde(default)]
    pub endpoint: EndpointSpec,
    /// Control-plane log types to enable (default: all five).
    #[serde(default = "default_logs")]
    pub log_types: Vec<String>,
    /// Retention of the control-plane log group `/aws/eks/<cluster>/cluster` (test 7, prod 90
    /// days). The stack creates the group before the cluster (EKS would make it with no expiry)
    /// and deletes it on destroy.
    #[serde(default = "default_retention")]
    pub log_retention_days: i32,
    /// IAM principal ARNs (users or roles) that get an access entry with
    /// `AmazonEKSClusterAdminPolicy`, besides the deploying principal (bootstrapped by EKS).
    #[serde(default)]
    pub admin_principals: Vec<String>,
    /// The managed node group.
    pub node_group: NodeGroupSpec,
    /// Managed add-ons by name (default: the five of [`DEFAULT_ADDONS`]). Each is created at
    /// the default version EKS offers for the Kubernetes version; after that its version is kept
    /// (so custom configuration is never overwritten by a new default) until the Kubernetes
    /// version changes, or EKS no longer lists it as compatible, or `addon_versions` names one.
    #[serde(default = "default_addons")]
    pub addons: Vec<String>,
    /// Explicit add-on versions by add-on name (each must be in `addons`): the add-on is
    /// created at, or moved to, exactly this version (`vpc-cni = "v1.19.2-eksbuild.1"`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub addon_versions: BTreeMap<String, String>,
    /// What happens when the cluster's Kubernetes version leaves standard support
    /// (`upgradePolicy.supportType`): `EXTENDED` (EKS's default: the cluster stays on its
    /// version through extended support, at $0.60 instead of $0.10 per cluster-hour) keeps it
    /// running at the extended-support price, `STANDARD` lets EKS upgrade it automatically at
    /// the end of standard support.
    #[serde(default)]
    pub support_type: SupportType,
}

impl std::ops::Deref for EksSpec {
    type Target = EksSettings;
    fn deref(&self) -> &EksSettings {
        &self.settings
    }
}

impl std::ops::DerefMut for EksSpec {
    fn deref_mut(&mut self) -> &mut EksSettings {
        &mut self.settings
    }
}

/// The cluster's upgrade policy (EKS API reference, `UpgradePolicyRequest.supportType`: "If the
/// cluster is set to EXTENDED, it will enter extended support at the end of standard support.
/// If the cluster is set to STANDARD, it will be automatically upgraded at the end of standard
/// support"; EXTENDED is EKS's default for a new cluster).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum SupportType {
    /// Upgraded automatically by EKS at the end of standard support (no extended charge).
    Standard,
    /// Kept on its version through extended support, at the extended-support price.
    #[default]
    Extended,
}

impl SupportType {
    /// EKS's spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            SupportType::Standard => "STANDARD",
            SupportType::Extended => "EXTENDED",
        }
    }
}

/// EKS accepts at most 40 public access CIDR ranges per cluster, and the quota cannot be raised
/// (EKS user guide, "View and manage Amazon EKS and Fargate service quotas": "Public endpoint
/// access CIDR ranges per cluster", 40, not adjustable; Service Quotas code L-93A74D60).
pub const MAX_PUBLIC_ACCESS_CIDRS: usize = 40;

/// Cluster endpoint access. The private endpoint is always on.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EndpointSpec {
    /// CIDRs allowed to reach the public endpoint. Empty: the public endpoint is off.
    /// `0.0.0.0/0` is refused unless `allow_public_internet` is set.
    #[serde(default)]
    pub public_access_cidrs: Vec<String>,
    /// Permits `0.0.0.0/0` in `public_access_cidrs`.
    #[serde(default)]
    pub allow_public_internet: bool,
}

/// What finds the EKS tier for a destroy: the context names the cluster, node group, roles,
/// key, launch template and log group; the VPC is needed for what is found only within it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct EksSelector {
    /// The cluster's VPC, where the node security group, the load balancers, target groups and
    /// security groups Kubernetes made, and the VPC CNI's leftover interfaces are found; `None`
    /// when the VPC is gone (and they with it): those lookups are skipped.
    pub vpc_id: Option<VpcId>,
}

/// The managed node group.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NodeGroupSpec {
    /// EC2 instance types.
    pub instance_types: Vec<String>,
    /// EKS AMI type, e.g. `AL2023_ARM_64_STANDARD`.
    #[serde(default = "default_ami_type")]
    pub ami_type: String,
    /// Desired size.
    pub desired: i32,
    /// Minimum size.
    pub min: i32,
    /// Maximum size.
    pub max: i32,
    /// Root volume size in GiB (gp3, encrypted).
    #[serde(default = "default_disk")]
    pub disk_size_gib: i32,
    /// Kubernetes node labels.
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
}

fn default_version() -> KubernetesVersion {
    KubernetesVersion::new(1, 33)
}
/// The retention values CloudWatch Logs accepts (PutRetentionPolicy, `retentionInDays`).
pub const LOG_RETENTION_DAYS: [i32; 22] =
    [1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, 3653];

fn default_retention() -> i32 {
    90
}
fn default_logs() -> Vec<String> {
    ALL_LOG_TYPES.iter().map(|s| (*s).to_owned()).collect()
}
fn default_addons() -> Vec<String> {
    DEFAULT_ADDONS.iter().map(|s| (*s).to_owned()).collect()
}
fn default_ami_type() -> String {
    "AL2023_ARM_64_STANDARD".to_owned()
}
fn default_disk() -> i32 {
    50
}

impl NodeGroupSpec {
    /// The profile's node group: test 1 x m7g.xlarge (1..2), prod 6 x m7g.2xlarge (6..10).
    pub fn for_environment(environment: Environment) -> NodeGroupSpec {
        let (instance, desired, min, max) = match environment {
            Environment::Test => ("m7g.xlarge", 1, 1, 2),
            Environment::Prod => ("m7g.2xlarge", 6, 6, 10),
        };
        NodeGroupSpec {
            instance_types: vec![instance.to_owned()],
            ami_type: default_ami_type(),
            desired,
            min,
            max,
            disk_size_gib: default_disk(),
            labels: BTreeMap::from([("dify-stack/node-group".to_owned(), "main".to_owned())]),
        }
    }
}

impl EksSettings {
    /// The profile's settings: Kubernetes 1.33, every log type (kept 7 days in test, 90 in
    /// prod), the profile's node group, the default add-ons.
    pub fn for_environment(environment: Environment) -> EksSettings {
        EksSettings {
            kubernetes_version: default_version(),
            endpoint: EndpointSpec::default(),
            log_types: default_logs(),
            log_retention_days: match environment {
                Environment::Test => 7,
                Environment::Prod => 90,
            },
            admin_principals: Vec::new(),
            node_group: NodeGroupSpec::for_environment(environment),
            addons: default_addons(),
            addon_versions: BTreeMap::new(),
            support_type: SupportType::default(),
        }
    }

    /// Checks the settings without I/O; every violation at once, each at its path in the
    /// settings (`node_group.instance_types[0]`, `addon_versions.<name>`, ...).
    pub fn validate(&self) -> Result<(), SpecErrors> {
        let mut errs = SpecErrors::new();
        for (i, cidr) in self.endpoint.public_access_cidrs.iter().enumerate() {
            let path = format!("endpoint.public_access_cidrs[{i}]");
            match cidr.parse::<ipnet::IpNet>() {
                Err(_) => errs.push(path, format!("{cidr:?} is not a CIDR block"), "use the form 203.0.113.0/24"),
                Ok(net) if net.prefix_len() == 0 && !self.endpoint.allow_public_internet => errs.push(
                    path,
                    format!("{cidr} opens the Kubernetes API to the whole internet"),
                    "list your office or VPN CIDRs, or set endpoint.allow_public_internet = true",
                ),
                Ok(_) => {}
            }
        }
        for (addon, version) in &self.addon_versions {
            if !self.addons.contains(addon) {
                errs.push(
                    format!("addon_versions.{addon}"),
                    format!("a version is given for {addon}, which is not in addons"),
                    format!("add {addon} to addons, or remove its version"),
                );
            }
            if version.trim().is_empty() {
                errs.push(
                    format!("addon_versions.{addon}"),
                    "an empty version",
                    "a version DescribeAddonVersions lists, e.g. v1.19.5-eksbuild.3",
                );
            }
        }
        if !LOG_RETENTION_DAYS.contains(&self.log_retention_days) {
            errs.push(
                "log_retention_days",
                format!("CloudWatch Logs does not accept a retention of {} days", self.log_retention_days),
                format!("one of {LOG_RETENTION_DAYS:?}"),
            );
        }
        for (i, log) in self.log_types.iter().enumerate() {
            if !ALL_LOG_TYPES.contains(&log.as_str()) {
                errs.push(format!("log_types[{i}]"), format!("unknown log type {log:?}"), ALL_LOG_TYPES.join(", "));
            }
        }
        for (i, p) in self.admin_principals.iter().enumerate() {
            if !(p.starts_with("arn:") && (p.contains(":iam::") && (p.contains(":role/") || p.contains(":user/")))) {
                errs.push(
                    format!("admin_principals[{i}]"),
                    format!("{p:?} is not an IAM role or user ARN"),
                    "use arn:<partition>:iam::<account>:role/<name>",
                );
            }
        }
        if self.addons.iter().any(|a| a == EBS_CSI_ADDON) && !self.addons.iter().any(|a| a == POD_IDENTITY_AGENT_ADDON)
        {
            errs.push(
                "addons",
                format!(
                    "{EBS_CSI_ADDON} gets its role through EKS Pod Identity, which needs {POD_IDENTITY_AGENT_ADDON}"
                ),
                format!("add {POD_IDENTITY_AGENT_ADDON} to the add-ons"),
            );
        }
        self.node_group.validate(&mut errs);
        errs.into_result()
    }
}

impl EksSpec {
    /// The profile's EKS tier on the given network.
    pub fn for_environment(environment: Environment, vpc_id: VpcId, private_subnet_ids: Vec<SubnetId>) -> EksSpec {
        EksSpec::new(EksSettings::for_environment(environment), vpc_id, private_subnet_ids)
    }

    /// The tier on the given network with these settings (no operator address yet).
    pub fn new(settings: EksSettings, vpc_id: VpcId, private_subnet_ids: Vec<SubnetId>) -> EksSpec {
        EksSpec { settings, vpc_id, private_subnet_ids, operator_cidrs: Vec::new() }
    }

    /// The CIDRs the public endpoint admits: the configured ones, then the operators' (each
    /// once, in that order). Empty: the public endpoint is off.
    pub fn public_access_cidrs(&self) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        for c in self.settings.endpoint.public_access_cidrs.iter().chain(&self.operator_cidrs) {
            if !out.contains(c) {
                out.push(c.clone());
            }
        }
        out
    }

    /// Checks the spec without I/O; every violation at once: the settings' at their own paths
    /// ([`EksSettings::validate`]), then the stack name's (`stack`), the network's
    /// (`private_subnet_ids`) and the operators' (`operator_cidrs[i]`).
    pub fn validate(&self, ctx: &Context) -> Result<(), SpecErrors> {
        let mut errs = SpecErrors::new();
        if let Err(e) = ctx.name(NameKind::EksCluster, "") {
            errs.push("stack", e.to_string(), "choose a shorter stack name");
        }
        for suffix in ["eks-cluster", "eks-node", "ebs-csi"] {
            if let Err(e) = ctx.name(NameKind::IamRole, suffix) {
                errs.push("stack", e.to_string(), "choose a shorter stack name");
            }
        }
        if self.private_subnet_ids.len() < 2 {
            errs.push(
                "private_subnet_ids",
                format!("EKS needs subnets in at least 2 availability zones, got {}", self.private_subnet_ids.len()),
                "pass the network tier's private subnets",
            );
        }
        if let Err(e) = self.settings.validate() {
            errs.extend_prefixed("", e);
        }
        for (i, cidr) in self.operator_cidrs.iter().enumerate() {
            match cidr.parse::<ipnet::IpNet>() {
                // EKS refuses IPv6 blocks on IPv4 clusters (EKS API reference,
                // VpcConfigRequest.publicAccessCidrs); an operator is one address, never /0.
                Ok(ipnet::IpNet::V4(net)) if net.prefix_len() > 0 => {}
                _ => errs.push(
                    format!("operator_cidrs[{i}]"),
                    format!("{cidr:?} is not an operator's IPv4 address block"),
                    "an operator's address as a /32, e.g. 198.51.100.7/32",
                ),
            }
        }
        let cidrs = self.public_access_cidrs();
        if cidrs.len() > MAX_PUBLIC_ACCESS_CIDRS {
            let configured = cidrs.iter().filter(|c| self.settings.endpoint.public_access_cidrs.contains(c)).count();
            errs.push(
                "endpoint.public_access_cidrs",
                format!(
                    "{} public access CIDRs ({configured} configured, {} operator addresses), but EKS allows at most {MAX_PUBLIC_ACCESS_CIDRS} per cluster and the quota cannot be raised",
                    cidrs.len(),
                    cidrs.len() - configured,
                ),
                "merge configured ranges into larger blocks, or drop operator addresses no longer used (a shorter eks.operator_cidr_ttl_days, or list them in eks.remove_operator_cidrs); or reach the API another way (eks.kubernetes_access = public_cidrs with an office/VPN range, or inside_vpc)",
            );
        }
        errs.into_result()
    }
}

impl NodeGroupSpec {
    fn validate(&self, errs: &mut SpecErrors) {
        let p = "node_group";
        if self.instance_types.is_empty() {
            errs.push(format!("{p}.instance_types"), "at least one instance type is needed", "e.g. m7g.xlarge");
        }
        let ami_arm = ami_is_arm(&self.ami_type);
        for (i, t) in self.instance_types.iter().enumerate() {
            match instance_is_arm(t) {
                None => errs.push(
                    format!("{p}.instance_types[{i}]"),
                    format!("{t:?} is not an EC2 instance type"),
                    "use family.size, e.g. m7g.xlarge",
                ),
                Some(arm) if Some(arm) != ami_arm && ami_arm.is_some() => errs.push(
                    format!("{p}.instance_types[{i}]"),
                    format!(
                        "{t} is an {} instance type but ami_type {} is for {}",
                        if arm { "arm64 (Graviton)" } else { "x86_64" },
                        self.ami_type,
                        if arm { "x86_64" } else { "arm64" }
                    ),
                    if arm {
                        "use an ARM AMI type such as AL2023_ARM_64_STANDARD"
                    } else {
                        "use a Graviton type (m7g, c7g, r7g, ...) or an x86 AMI type such as AL2023_x86_64_STANDARD"
                    },
                ),
                Some(_) => {}
            }
        }
        if ami_arm.is_none() {
            errs.push(
                format!("{p}.ami_type"),
                format!("unknown AMI type {:?}", self.ami_type),
                "e.g. AL2023_ARM_64_STANDARD or AL2023_x86_64_STANDARD",
            );
        }
        if self.min < 0 || self.max < 1 || self.min > self.desired || self.desired > self.max {
            errs.push(
                format!("{p}.desired"),
                format!(
                    "need 0 <= min <= desired <= max and max >= 1, got min {} desired {} max {}",
                    self.min, self.desired, self.max
                ),
                "adjust min, desired and max",
            );
        }
        if !(20..=16384).contains(&self.disk_size_gib) {
            errs.push(format!("{p}.disk_size_gib"), format!("{} GiB is out of range", self.disk_size_gib), "20..16384");
        }
        for key in self.labels.keys() {
            if key.is_empty() || key.len() > 63 + 254 || key.starts_with("kubernetes.io/") {
                errs.push(
                    format!("{p}.labels.{key}"),
                    "invalid or reserved label key",
                    "use your own prefix, e.g. example.com/role",
                );
            }
        }
    }
}

/// `"1.33"` -> `(1, 33)`.
pub fn parse_version(v: &str) -> Option<(u32, u32)> {
    let (major, minor) = v.split_once('.')?;
    Some((major.parse().ok()?, minor.parse().ok()?))
}

/// Whether an AMI type is for arm64 (`Some(true)`), x86_64 (`Some(false)`), or unknown.
pub fn ami_is_arm(ami: &str) -> Option<bool> {
    match ami {
        "AL2023_ARM_64_STANDARD"
        | "AL2023_ARM_64_NVIDIA"
        | "AL2_ARM_64"
        | "BOTTLEROCKET_ARM_64"
        | "BOTTLEROCKET_ARM_64_NVIDIA" => Some(true),
        "AL2023_x86_64_STANDARD"
        | "AL2023_x86_64_NVIDIA"
        | "AL2023_x86_64_NEURON"
        | "AL2_x86_64"
        | "AL2_x86_64_GPU"
        | "BOTTLEROCKET_x86_64"
        | "BOTTLEROCKET_x86_64_NVIDIA" => Some(false),
        _ => None,
    }
}

/// Whether an instance type is Graviton (`Some(true)`), x86 (`Some(false)`), or malformed.
/// Graviton families carry a `g` after the generation digit (m7g, c6gn, r8gd, t4g, x2gd, im4gn).
pub fn instance_is_arm(instance_type: &str) -> Option<bool> {
    let (family, size) = instance_type.split_once('.')?;
    if family.is_empty() || size.is_empty() || !family.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit()) {
        return None;
    }
    if family == "a1" {
        return Some(true);
    }
    let digit = family.find(|c: char| c.is_ascii_digit())?;
    if digit == 0 {
        return None;
    }
    Some(family[digit..].trim_start_matches(|c: char| c.is_ascii_digit()).starts_with('g'))
}
