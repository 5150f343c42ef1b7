//! The whole stack's configuration: a [`Profile`] gives every value of STACK.md; code
//! overrides fields directly (all are public) or with the `with_*` builders, and files (TOML
//! or YAML) override any subset of fields on top of the profile they name.

use std::collections::BTreeMap;
use std::path::Path;

use dify_stack_core::ids::KubernetesVersion;
use dify_stack_core::{Environment, Tags};
use dify_stack_datastores::{AuroraSpec, BucketSpec, OpenSearchSpec, RedisSpec};
use dify_stack_eks::{EndpointSpec, NodeGroupSpec};
use dify_stack_network::{NatMode, NewVpcSpec};
use dify_stack_registry::RegistrySpec;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The two environments of STACK.md.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Profile {
    /// Small and cheap: 2 AZs, 1 node, 0.5-4 ACU, 1 OpenSearch node.
    Test,
    /// Production: 3 AZs, 6 nodes, 1-8 ACU with 2 instances, 3 zone-aware OpenSearch nodes,
    /// deletion protection.
    Prod,
}

impl Profile {
    /// The environment of the profile.
    pub fn environment(self) -> Environment {
        match self {
            Profile::Test => Environment::Test,
            Profile::Prod => Environment::Prod,
        }
    }

    /// The full configuration of the profile.
    pub fn config(self) -> StackConfig {
        StackConfig::profile(self)
    }
}

impl std::str::FromStr for Profile {
    type Err = ConfigError;
    fn from_str(s: &str) -> Result<Profile, ConfigError> {
        match s {
            "test" => Ok(Profile::Test),
            "prod" => Ok(Profile::Prod),
            other => Err(ConfigError::UnknownProfile { value: other.to_owned() }),
        }
    }
}

/// The network: a new VPC, or an existing one.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NetworkConfig {
    /// A new VPC (used unless `existing` is set).
    #[serde(default)]
    pub new: NewVpcSpec,
    /// Bring your own VPC instead.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub existing: Option<dify_stack_network::ExistingVpcSpec>,
}

/// The EKS tier minus what the network provides.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EksConfig {
    /// Kubernetes minor version (`"1.33"`; anything else is refused when the file is read).
    pub kubernetes_version: KubernetesVersion,
    /// Endpoint access: extra CIDRs for the public endpoint (see `kubernetes_access`).
    #[serde(default)]
    pub endpoint: EndpointSpec,
    /// How the machine running apply reaches the Kubernetes API (to create the namespace,
    /// service accounts and StorageClass). Default: the public endpoint opened to this machine's
    /// address only.
    #[serde(default)]
    pub kubernetes_access: KubernetesAccess,
    /// Where `caller_address` mode asks for this machine's public IPv4 address (the body is the
    /// address, as `https://checkip.amazonaws.com` answers).
    #[serde(default = "default_checkip_url")]
    pub checkip_url: String,
    /// Control-plane log types.
    pub log_types: Vec<String>,
    /// Retention of the control-plane log group (test 7, prod 90 days).
    #[serde(default = "default_log_retention")]
    pub log_retention_days: i32,
    /// Extra admin principals (IAM role or user ARNs).
    #[serde(default)]
    pub admin_principals: Vec<String>,
    /// The node group.
    pub node_group: NodeGroupSpec,
    /// Managed add-ons.
    pub addons: Vec<String>,
    /// Add-on versions pinned by name (`vpc-cni = "v1.19.2-eksbuild.1"`). An installed add-on
    /// keeps its version otherwise: it moves only with a Kubernetes upgrade or a pin here.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub addon_versions: BTreeMap<String, String>,
    /// `EXTENDED` (EKS's default: the cluster stays on its version through extended support, at
    /// $0.60 instead of $0.10 per cluster-hour) or `STANDARD` (EKS upgrades it automatically when
    /// standard support ends). The plan states the cost of the version and support type chosen.
    #[serde(default)]
    pub support_type: dify_stack_eks::SupportType,
    /// In `caller_address` mode each operator's /32 is kept (in the control bucket, with when it
    /// was last used and by whom) so one operator's apply never removes another's address; an
    /// entry unused for this many days is dropped by the next apply (default 30).
    #[serde(default = "default_operator_ttl")]
    pub operator_cidr_ttl_days: u32,
    /// Operator addresses to drop now (`203.0.113.7` or `203.0.113.7/32`), e.g. a laptop that
    /// left the team; your own address is never dropped while you apply.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub remove_operator_cidrs: Vec<String>,
    /// The operators' /32s as recorded plus this machine's, filled by `Stack::connect` (not
    /// configuration).
    #[serde(skip)]
    pub operator_cidrs: Vec<String>,
}

fn default_operator_ttl() -> u32 {
    crate::lock::DEFAULT_OPERATOR_CIDR_TTL_DAYS
}

/// How the machine running `apply` reaches the cluster's Kubernetes API.
///
/// With a private-only endpoint the API server answers only inside the VPC (EKS user guide,
/// "Cluster API server endpoint": "If you disable public access, your cluster's Kubernetes API
/// server can only receive requests from within the cluster VPC"; eksctl "Cluster Access":
/// kubectl and `eksctl delete cluster` must then run within the VPC). A laptop outside the VPC
/// would wait for its whole timeout, so the mode is explicit and the default opens the public
/// endpoint to this machine's /32 only.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum KubernetesAccess {
    /// Public endpoint on, limited to `eks.endpoint.public_access_cidrs` plus this machine's
    /// public address as a /32 (asked of `eks.checkip_url` at connect). Works from a laptop.
    #[default]
    CallerAddress,
    /// Public endpoint on, limited to `eks.endpoint.public_access_cidrs` exactly (at least one);
    /// the machine running apply must be inside one of them (an office or VPN range).
    PublicCidrs,
    /// Private endpoint only (plus any `public_access_cidrs` given): apply runs inside the VPC
    /// or a network routed to it (VPN, peering, a bastion). Unreachable from elsewhere.
    InsideVpc,
    /// No Kubernetes object is made by apply: the public endpoint follows
    /// `public_access_cidrs` (empty: private only) and the namespace and service account
    /// manifests are written to the output directory for someone inside the network to apply.
    RoleOnly,
}

impl KubernetesAccess {
    /// Whether apply creates Kubernetes objects itself.
    pub fn creates_kubernetes_objects(self) -> bool {
        !matches!(self, KubernetesAccess::RoleOnly)
    }
}

impl std::fmt::Display for KubernetesAccess {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            KubernetesAccess::CallerAddress => "caller_address",
            KubernetesAccess::PublicCidrs => "public_cidrs",
            KubernetesAccess::InsideVpc => "inside_vpc",
            KubernetesAccess::RoleOnly => "role_only",
        })
    }
}

/// Where `caller_address` mode learns this machine's public address.
pub const DEFAULT_CHECKIP_URL: &str = "https://checkip.amazonaws.com/";

fn default_log_retention() -> i32 {
    90
}

fn default_checkip_url() -> String {
    DEFAULT_CHECKIP_URL.to_owned()
}

/// The datastores minus what the network and EKS provide.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DatastoresConfig {
    /// Aurora.
    pub aurora: AuroraSpec,
    /// Redis.
    pub redis: RedisSpec,
    /// OpenSearch.
    pub opensearch: OpenSearchSpec,
    /// Bucket.
    #[serde(default)]
    pub bucket: BucketSpec,
}

/// The IAM tier's own settings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IamConfig {
    /// Kubernetes namespace of the service accounts.
    pub namespace: String,
    /// Extra OIDC thumbprints (fallbacks).
    #[serde(default)]
    pub thumbprints: Vec<String>,
    /// Discover the issuer's root CA thumbprint over TLS.
    pub discover_thumbprint: bool,
    /// Create the Kubernetes namespace and service accounts.
    pub service_accounts: bool,
    /// The Helm release of Dify EE that adopts the service accounts (default `dify`).
    #[serde(default = "default_release")]
    pub helm_release: String,
}

fn default_release() -> String {
    "dify".to_owned()
}

/// Everything one stack needs. Every field has its profile value; all are overridable.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StackConfig {
    /// Stack name: 3-20 chars, `[a-z][a-z0-9-]*`; prefixes every resource name.
    pub name: String,
    /// The profile the defaults came from (also the environment tag).
    pub profile: Profile,
    /// AWS region (commercial or China).
    pub region: String,
    /// Extra tags on every taggable resource.
    #[serde(default)]
    pub tags: Tags,
    /// Permit a prod stack whose Aurora has neither deletion protection nor a final snapshot.
    #[serde(default)]
    pub allow_unprotected_prod: bool,
    /// Network.
    pub network: NetworkConfig,
    /// EKS.
    pub eks: EksConfig,
    /// Datastores.
    pub datastores: DatastoresConfig,
    /// Registry.
    pub registry: RegistrySpec,
    /// IAM.
    pub iam: IamConfig,
    /// Dify EE: where it is served (domain and certificate), which chart, which images.
    #[serde(default)]
    pub dify: crate::chart::DifySettings,
    /// The cluster platform: load balancer controller, autoscaler, metrics-server.
    #[serde(default)]
    pub platform: PlatformConfig,
}

/// The cluster add-ons the platform node installs, each on by default (`enabled = false` turns
/// one off).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PlatformConfig {
    /// AWS Load Balancer Controller (turns the chart's Ingress into an ALB).
    #[serde(default = "lbc")]
    pub load_balancer_controller: AddonConfig,
    /// Cluster autoscaler (scales the node group between its min and max).
    #[serde(default = "autoscaler")]
    pub cluster_autoscaler: AddonConfig,
    /// metrics-server (the EKS add-on where offered, else this chart).
    #[serde(default = "metrics")]
    pub metrics_server: AddonConfig,
}

/// One add-on: on or off, and its pinned chart (repository overridable for China regions).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AddonConfig {
    /// Install it. Default on.
    #[serde(default = "yes")]
    pub enabled: bool,
    /// Chart repository URL.
    pub repository: String,
    /// Chart name.
    pub chart: String,
    /// Pinned chart version; for the cluster autoscaler the default `auto` is the chart made
    /// for the cluster's Kubernetes minor (its image follows the minor: `eks.kubernetes_version`
    /// moves it on an upgrade).
    pub version: String,
    /// Image repository override (a mirror). Required in China regions, where the charts'
    /// registries (public.ecr.aws, registry.k8s.io) cannot be reached.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_repository: Option<String>,
    /// Image tag override, for a mirror that does not carry the chart's tag.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_tag: Option<String>,
}

impl AddonConfig {
    fn of(chart: dify_stack_platform::Chart) -> AddonConfig {
        AddonConfig {
            enabled: true,
            repository: chart.repository,
            chart: chart.chart,
            version: chart.version,
            image_repository: chart.image_repository,
            image_tag: chart.image_tag,
        }
    }

    /// The chart when enabled.
    pub fn chart(&self) -> Option<dify_stack_platform::Chart> {
        self.enabled.then(|| dify_stack_platform::Chart {
            repository: self.repository.clone(),
            chart: self.chart.clone(),
            version: self.version.clone(),
            image_repository: self.image_repository.clone(),
            image_tag: self.image_tag.clone(),
        })
    }
}

fn yes() -> bool {
    true
}
fn lbc() -> AddonConfig {
    AddonConfig::of(dify_stack_platform::Chart::load_balancer_controller())
}
/// `[platform.cluster_autoscaler] version = "auto"`: the chart of the cluster's minor.
pub const AUTO_VERSION: &str = "auto";

fn autoscaler() -> AddonConfig {
    AddonConfig {
        version: AUTO_VERSION.to_owned(),
        ..AddonConfig::of(dify_stack_platform::Chart::cluster_autoscaler())
    }
}
fn metrics() -> AddonConfig {
    AddonConfig::of(dify_stack_platform::Chart::metrics_server())
}

impl Default for PlatformConfig {
    fn default() -> Self {
        PlatformConfig { load_balancer_controller: lbc(), cluster_autoscaler: autoscaler(), metrics_server: metrics() }
    }
}

/// Why a configuration could not be read. Exit code 2 in the CLI.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read config file {path}: {source}")]
    Read {
        /// The file.
        path: String,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The extension is neither `.toml` nor `.yaml`/`.yml`.
    #[error("config file {path}: unknown format; use a .toml, .yaml or .yml file")]
    Format {
        /// The file.
        path: String,
    },
    /// A problem inside a file.
    #[error("config file {path}: {source}")]
    InFile {
        /// The file.
        path: String,
        /// What is wrong in it.
        #[source]
        source: Box<ConfigError>,
    },
    /// The text is not valid TOML or YAML.
    #[error("not valid {format}: {message}")]
    Syntax {
        /// `TOML` or `YAML`.
        format: &'static str,
        /// The parser's message, with line and column.
        message: String,
    },
    /// The document is not a table (mapping) of settings.
    #[error("the document must be a table/mapping of settings")]
    NotATable,
    /// `profile` is neither `test` nor `prod`.
    #[error("profile: unknown profile {value:?}: use test or prod")]
    UnknownProfile {
        /// What was given.
        value: String,
    },
    /// A field is unknown or has the wrong type.
    #[error("{field}: {message}")]
    Field {
        /// The full path of the field, e.g. `datastores.aurora.min_acu`.
        field: String,
        /// What is wrong with it.
        message: String,
    },
}

impl dify_stack_core::Classify for ConfigError {
    fn kind(&self) -> dify_stack_core::ErrorKind {
        use dify_stack_core::ErrorKind;
        match self {
            ConfigError::Read { source, .. } => match source.kind() {
                std::io::ErrorKind::NotFound => ErrorKind::NotFound,
                std::io::ErrorKind::PermissionDenied => ErrorKind::AccessDenied,
                _ => ErrorKind::Other,
            },
            ConfigError::InFile { source, .. } => source.kind(),
            ConfigError::Format { .. }
            | ConfigError::Syntax { .. }
            | ConfigError::NotATable
            | ConfigError::UnknownProfile { .. }
            | ConfigError::Field { .. } => ErrorKind::Invalid,
        }
    }
}

impl StackConfig {
    /// The full configuration of a profile, named `dify-test` / `dify-prod`, in `us-west-2`.
    pub fn profile(profile: Profile) -> StackConfig {
        let env = profile.environment();
        let (name, az_count) = match profile {
            Profile::Test => ("dify-test", 2),
            Profile::Prod => ("dify-prod", 3),
        };
        StackConfig {
            name: name.to_owned(),
            profile,
            region: "us-west-2".to_owned(),
            tags: Tags::new(),
            allow_unprotected_prod: false,
            network: NetworkConfig {
                new: NewVpcSpec { az_count, nat: NatMode::PerAz, ..NewVpcSpec::default() },
                existing: None,
            },
            eks: EksConfig {
                kubernetes_version: KubernetesVersion::new(1, 33),
                endpoint: EndpointSpec::default(),
                kubernetes_access: KubernetesAccess::default(),
                checkip_url: default_checkip_url(),
                log_types: dify_stack_eks::ALL_LOG_TYPES.iter().map(|s| (*s).to_owned()).collect(),
                log_retention_days: match profile {
                    Profile::Test => 7,
                    Profile::Prod => 90,
                },
                admin_principals: Vec::new(),
                node_group: NodeGroupSpec::for_environment(env),
                addons: dify_stack_eks::DEFAULT_ADDONS.iter().map(|s| (*s).to_owned()).collect(),
                addon_versions: BTreeMap::new(),
                support_type: dify_stack_eks::SupportType::default(),
                operator_cidr_ttl_days: default_operator_ttl(),
                remove_operator_cidrs: Vec::new(),
                operator_cidrs: Vec::new(),
            },
            datastores: DatastoresConfig {
                aurora: AuroraSpec::for_environment(env),
                redis: RedisSpec::for_environment(env),
                opensearch: OpenSearchSpec::for_environment(env),
                bucket: BucketSpec::default(),
            },
            registry: RegistrySpec::default(),
            iam: IamConfig {
                namespace: "dify".to_owned(),
                thumbprints: Vec::new(),
                discover_thumbprint: true,
                service_accounts: true,
                helm_release: default_release(),
            },
            dify: crate::chart::DifySettings::default(),
            platform: PlatformConfig::default(),
        }
    }

    /// Sets the stack name.
    pub fn with_name(mut self, name: impl Into<String>) -> Self {
        self.name = name.into();
        self
    }

    /// Sets the region.
    pub fn with_region(mut self, region: impl Into<String>) -> Self {
        self.region = region.into();
        self
    }

    /// Adds extra tags.
    pub fn with_tags(mut self, tags: impl IntoIterator<Item = (String, String)>) -> Self {
        self.tags.extend(tags);
        self
    }

    /// Applies an override document (a JSON value tree of any subset of fields) on top of this
    /// configuration. Unknown fields are errors naming their path.
    pub fn overlay(&self, overrides: Value) -> Result<StackConfig, ConfigError> {
        let mut base = serde_json::to_value(self)
            .map_err(|e| ConfigError::Field { field: String::new(), message: e.to_string() })?;
        merge(&mut base, overrides);
        serde_path_to_error::deserialize(base)
            .map_err(|e| ConfigError::Field { field: e.path().to_string(), message: e.into_inner().to_string() })
    }

    /// Reads a TOML or YAML document: its `profile` (default `test`) gives the defaults, the
    /// rest overrides them.
    pub fn from_str_with_format(text: &str, yaml: bool) -> Result<StackConfig, ConfigError> {
        let doc: Value = if yaml {
            if text.trim().is_empty() {
                Value::Object(Default::default())
            } else {
                serde_norway::from_str(text)
                    .map_err(|e| ConfigError::Syntax { format: "YAML", message: e.to_string() })?
            }
        } else {
            let table: toml::Table =
                toml::from_str(text).map_err(|e| ConfigError::Syntax { format: "TOML", message: e.to_string() })?;
            serde_json::to_value(table).map_err(|e| ConfigError::Syntax { format: "TOML", message: e.to_string() })?
        };
        if !doc.is_object() {
            return Err(ConfigError::NotATable);
        }
        let profile = match doc.get("profile") {
            None => Profile::Test,
            Some(Value::String(p)) => p.parse()?,
            Some(other) => return Err(ConfigError::UnknownProfile { value: other.to_string() }),
        };
        StackConfig::profile(profile).overlay(doc)
    }

    /// Reads a `.toml`, `.yaml` or `.yml` file.
    pub fn from_file(path: impl AsRef<Path>) -> Result<StackConfig, ConfigError> {
        let path = path.as_ref();
        let shown = path.display().to_string();
        let yaml = match path.extension().and_then(|e| e.to_str()) {
            Some("toml") => false,
            Some("yaml" | "yml") => true,
            _ => return Err(ConfigError::Format { path: shown }),
        };
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read { path: shown.clone(), source })?;
        StackConfig::from_str_with_format(&text, yaml)
            .map_err(|source| ConfigError::InFile { path: shown, source: Box::new(source) })
    }

    /// Validates the whole configuration as every tier will (names, sizes, versions, CIDRs,
    /// cross-tier rules), without AWS: every problem at once, each with its field path.
    pub fn validate(&self) -> Result<(), dify_stack_core::SpecErrors> {
        crate::wiring::validate(self)
    }

    /// True when apply creates Kubernetes objects (service accounts, the platform's releases):
    /// `iam.service_accounts` is on and `eks.kubernetes_access` reaches the cluster's API.
    pub fn creates_service_accounts(&self) -> bool {
        crate::wiring::creates_service_accounts(self)
    }

    /// The environment.
    pub fn environment(&self) -> Environment {
        self.profile.environment()
    }

    /// The number of AZs the network spans.
    pub fn az_count(&self) -> usize {
        match &self.network.existing {
            Some(e) => e.private_subnet_ids.len(),
            None => self.network.new.az_count as usize,
        }
    }
}

fn merge(base: &mut Value, over: Value) {
    match (base, over) {
        (Value::Object(b), Value::Object(o)) => {
            for (k, v) in o {
                match b.get_mut(&k) {
                    Some(slot) if slot.is_object() && v.is_object() => merge(slot, v),
                    _ => {
                        b.insert(k, v);
                    }
                }
            }
        }
        (b, o) => *b = o,
    }
}

#[cfg(test)]
mod error_kind_tests {
    use super::ConfigError;
    use dify_stack_core::{Classify as _, ErrorKind};

    /// A config error is bad input (fix the file), except that a file that cannot be read says why.
    #[test]
    fn config_errors_classify() {
        let missing = ConfigError::Read { path: "stack.toml".into(), source: std::io::ErrorKind::NotFound.into() };
        assert_eq!(missing.kind(), ErrorKind::NotFound);
        let field = ConfigError::Field { field: "datastores.aurora.min_acu".into(), message: "not a number".into() };
        assert_eq!(field.kind(), ErrorKind::Invalid);
        let in_file = ConfigError::InFile { path: "stack.toml".into(), source: Box::new(ConfigError::NotATable) };
        assert_eq!(in_file.kind(), ErrorKind::Invalid);
        assert_eq!(ConfigError::Format { path: "stack.ini".into() }.kind(), ErrorKind::Invalid);
        assert!(!in_file.is_retryable());
    }
}
