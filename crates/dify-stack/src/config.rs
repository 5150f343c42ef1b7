//! The whole stack's configuration: a [`Profile`] gives every value of STACK.md; code
//! overrides fields directly (all are public) or with the `with_*` builders, and files (TOML
//! or YAML) override any subset of fields on top of the profile they name.

use std::path::Path;

use dify_stack_core::{Environment, InvalidStackName, StackName, Tags};
use dify_stack_datastores::DatastoresSettings;
use dify_stack_eks::spec::EksSettings;
use dify_stack_iam::IamSettings;
use dify_stack_network::{NatMode, NetworkSettings, NewVpcSpec};
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

/// The network section: a new VPC, or an existing one. The network tier's own settings type.
#[deprecated(note = "the `network` section is the network tier's `NetworkSettings`")]
pub type NetworkConfig = NetworkSettings;

/// The `eks` section: the EKS tier's own settings ([`EksSettings`], whose fields sit directly in
/// the section and which this dereferences to: `cfg.eks.node_group` is
/// `cfg.eks.settings.node_group`) plus how the machine running apply reaches the cluster's API,
/// which is the facade's. What the network provides is not configured.
///
/// Serialized flat (the section's keys are the settings' and these); read by a deserializer
/// that keeps every key's path (`eks.node_group.max`) and refuses unknown keys.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct EksConfig {
    /// The EKS tier's settings: `kubernetes_version` (`"1.33"`; anything else is refused when
    /// the file is read), `endpoint` (extra CIDRs for the public endpoint, see
    /// `kubernetes_access`), `log_types`, `log_retention_days` (test 7, prod 90), extra
    /// `admin_principals` (IAM role or user ARNs), `node_group`, `addons`, `addon_versions`
    /// (pinned by name, `vpc-cni = "v1.19.2-eksbuild.1"`: an installed add-on keeps its version
    /// otherwise, moving only with a Kubernetes upgrade or a pin here) and `support_type`
    /// (`EXTENDED`, EKS's default, or `STANDARD`; the plan states the cost of the version and
    /// support type chosen).
    #[serde(flatten)]
    pub settings: EksSettings,
    /// How the machine running apply reaches the Kubernetes API (to create the namespace,
    /// service accounts and StorageClass). Default: the public endpoint opened to this machine's
    /// address only.
    pub kubernetes_access: KubernetesAccess,
    /// Where `caller_address` mode asks for this machine's public IPv4 address (the body is the
    /// address, as `https://checkip.amazonaws.com` answers).
    pub checkip_url: String,
    /// In `caller_address` mode each operator's /32 is kept (in the control bucket, with when it
    /// was last used and by whom) so one operator's apply never removes another's address; an
    /// entry unused for this many days is dropped by the next apply (default 30).
    pub operator_cidr_ttl_days: u32,
    /// Operator addresses to drop now (`203.0.113.7` or `203.0.113.7/32`), e.g. a laptop that
    /// left the team; your own address is never dropped while you apply.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub remove_operator_cidrs: Vec<String>,
    /// The operators' /32s as recorded plus this machine's, filled by `Stack::connect` (not
    /// configuration).
    #[serde(skip)]
    pub operator_cidrs: Vec<String>,
}

impl std::ops::Deref for EksConfig {
    type Target = EksSettings;
    fn deref(&self) -> &EksSettings {
        &self.settings
    }
}

impl std::ops::DerefMut for EksConfig {
    fn deref_mut(&mut self) -> &mut EksSettings {
        &mut self.settings
    }
}

/// The `eks` section's own keys (besides the settings').
#[derive(Default)]
struct AccessKeys {
    kubernetes_access: Option<KubernetesAccess>,
    checkip_url: Option<String>,
    operator_cidr_ttl_days: Option<u32>,
    remove_operator_cidrs: Option<Vec<String>>,
}

/// Which of the section's own keys a key is.
#[derive(Clone, Copy)]
enum AccessKey {
    KubernetesAccess,
    CheckipUrl,
    OperatorCidrTtlDays,
    RemoveOperatorCidrs,
}

impl AccessKey {
    fn of(key: &str) -> Option<AccessKey> {
        Some(match key {
            "kubernetes_access" => AccessKey::KubernetesAccess,
            "checkip_url" => AccessKey::CheckipUrl,
            "operator_cidr_ttl_days" => AccessKey::OperatorCidrTtlDays,
            "remove_operator_cidrs" => AccessKey::RemoveOperatorCidrs,
            _ => return None,
        })
    }
}

/// A key of the `eks` section: one of ours, or the settings' (already identified by their seed).
enum SectionKey<K> {
    Access(AccessKey),
    Settings(K),
}

/// Reads one key: ours are kept, any other is handed to the settings' field seed (which refuses
/// an unknown one). The key is read through the outer deserializer, so an error names it.
struct SectionKeySeed<'s, K> {
    settings: &'s mut Option<K>,
}

impl<'de, K: serde::de::DeserializeSeed<'de>> serde::de::DeserializeSeed<'de> for SectionKeySeed<'_, K> {
    type Value = SectionKey<K::Value>;

    fn deserialize<D: serde::Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        use serde::de::{Error as _, IntoDeserializer as _};
        let key = String::deserialize(deserializer)?;
        if let Some(ours) = AccessKey::of(&key) {
            return Ok(SectionKey::Access(ours));
        }
        let seed = self.settings.take().ok_or_else(|| D::Error::custom("a key was read twice"))?;
        seed.deserialize(key.into_deserializer()).map(SectionKey::Settings)
    }
}

/// The `eks` section as the settings see it: every key but ours, whose values are read into
/// `keys` on the way.
struct SettingsKeys<'k, A> {
    map: A,
    keys: &'k mut AccessKeys,
}

impl<'de, A: serde::de::MapAccess<'de>> serde::de::MapAccess<'de> for SettingsKeys<'_, A> {
    type Error = A::Error;

    fn next_key_seed<K: serde::de::DeserializeSeed<'de>>(&mut self, seed: K) -> Result<Option<K::Value>, A::Error> {
        let mut seed = Some(seed);
        loop {
            match self.map.next_key_seed(SectionKeySeed { settings: &mut seed })? {
                None => return Ok(None),
                Some(SectionKey::Settings(key)) => return Ok(Some(key)),
                Some(SectionKey::Access(AccessKey::KubernetesAccess)) => {
                    self.keys.kubernetes_access = Some(self.map.next_value()?)
                }
                Some(SectionKey::Access(AccessKey::CheckipUrl)) => self.keys.checkip_url = Some(self.map.next_value()?),
                Some(SectionKey::Access(AccessKey::OperatorCidrTtlDays)) => {
                    self.keys.operator_cidr_ttl_days = Some(self.map.next_value()?)
                }
                Some(SectionKey::Access(AccessKey::RemoveOperatorCidrs)) => {
                    self.keys.remove_operator_cidrs = Some(self.map.next_value()?)
                }
            }
        }
    }

    fn next_value_seed<V: serde::de::DeserializeSeed<'de>>(&mut self, seed: V) -> Result<V::Value, A::Error> {
        self.map.next_value_seed(seed)
    }
}

impl<'de> Deserialize<'de> for EksConfig {
    /// The settings' derived deserializer reads the section through [`SettingsKeys`], which
    /// takes our keys out: no `#[serde(flatten)]` (which would lose the paths of the settings'
    /// errors and their refusal of unknown keys).
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<EksConfig, D::Error> {
        struct Section;
        impl<'de> serde::de::Visitor<'de> for Section {
            type Value = EksConfig;

            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("the eks table")
            }

            fn visit_map<A: serde::de::MapAccess<'de>>(self, map: A) -> Result<EksConfig, A::Error> {
                let mut keys = AccessKeys::default();
                let settings = EksSettings::deserialize(serde::de::value::MapAccessDeserializer::new(SettingsKeys {
                    map,
                    keys: &mut keys,
                }))?;
                Ok(EksConfig {
                    settings,
                    kubernetes_access: keys.kubernetes_access.unwrap_or_default(),
                    checkip_url: keys.checkip_url.unwrap_or_else(default_checkip_url),
                    operator_cidr_ttl_days: keys.operator_cidr_ttl_days.unwrap_or_else(default_operator_ttl),
                    remove_operator_cidrs: keys.remove_operator_cidrs.unwrap_or_default(),
                    operator_cidrs: Vec::new(),
                })
            }
        }
        deserializer.deserialize_map(Section)
    }
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

fn default_checkip_url() -> String {
    DEFAULT_CHECKIP_URL.to_owned()
}

/// The datastores section: the datastores tier's own settings type.
#[deprecated(note = "the `datastores` section is the datastores tier's `DatastoresSettings`")]
pub type DatastoresConfig = DatastoresSettings;

/// The IAM section: the IAM tier's own settings type.
#[deprecated(note = "the `iam` section is the IAM tier's `IamSettings`")]
pub type IamConfig = IamSettings;

/// Everything one stack needs. Every field has its profile value; all are overridable.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StackConfig {
    /// Stack name: 3-20 chars, `[a-z][a-z0-9-]*`; prefixes every resource name. Parsed where
    /// it enters (a file with a bad name is refused when read, at `name`).
    pub name: StackName,
    /// The profile the defaults came from (also the environment tag).
    pub profile: Profile,
    /// AWS region (commercial or China).
    pub region: String,
    /// Extra tags on every taggable resource.
    #[serde(default)]
    pub tags: Tags,
    /// Permit a prod stack whose Aurora runs without deletion protection
    /// (`datastores.aurora.deletion_protection = false`); passed to the datastores tier
    /// ([`DatastoresSpec::allow_unprotected_prod`](dify_stack_datastores::DatastoresSpec::allow_unprotected_prod)),
    /// whose validation is the one place it is checked.
    #[serde(default)]
    pub allow_unprotected_prod: bool,
    /// Network: the network tier's settings (a new VPC, or `existing`).
    pub network: NetworkSettings,
    /// EKS.
    pub eks: EksConfig,
    /// Datastores: the datastores tier's settings (Aurora, Redis, OpenSearch, the bucket).
    pub datastores: DatastoresSettings,
    /// Registry.
    pub registry: RegistrySpec,
    /// IAM: the IAM tier's settings (namespace, release, thumbprints, service accounts).
    pub iam: IamSettings,
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
            name: StackName::parse(name).expect("the profiles' names are valid"),
            profile,
            region: "us-west-2".to_owned(),
            tags: Tags::new(),
            allow_unprotected_prod: false,
            network: NetworkSettings::new_vpc(NewVpcSpec { az_count, nat: NatMode::PerAz, ..NewVpcSpec::default() }),
            eks: EksConfig {
                settings: EksSettings::for_environment(env),
                kubernetes_access: KubernetesAccess::default(),
                checkip_url: default_checkip_url(),
                operator_cidr_ttl_days: default_operator_ttl(),
                remove_operator_cidrs: Vec::new(),
                operator_cidrs: Vec::new(),
            },
            datastores: DatastoresSettings::for_environment(env),
            registry: RegistrySpec::default(),
            iam: IamSettings::default(),
            dify: crate::chart::DifySettings::default(),
            platform: PlatformConfig::default(),
        }
    }

    /// Sets the stack name, refused when it breaks the naming rules ([`StackName::parse`]).
    pub fn with_name(mut self, name: &str) -> Result<Self, InvalidStackName> {
        self.name = StackName::parse(name)?;
        Ok(self)
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
