//! The IAM tier's spec: the roles to make and how they are trusted.

use dify_stack_core::ids::{Arn, BucketName, ClusterName};
use dify_stack_core::{NameKind, SpecErrors};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::*;

/// Name of the inline policy on each role.
pub const INLINE_POLICY: &str = "dify-stack";

/// Desired IAM tier.
///
/// The user's part is [`IamSettings`] (the `iam` section of the stack's configuration file,
/// flattened here); the rest comes from the EKS tier, the bucket and the registry. The spec
/// dereferences to its settings (`spec.namespace` is `spec.settings.namespace`), and
/// [`validate`](IamSpec::validate) reports the settings' violations at their own paths
/// (`namespace`, `thumbprints[0]`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IamSpec {
    /// The EKS cluster name (part of the role names).
    pub cluster_name: ClusterName,
    /// The cluster's OIDC issuer URL (`https://oidc.eks.<region>.<suffix>/id/<id>`).
    pub oidc_issuer_url: String,
    /// The storage bucket the S3 roles may use.
    pub bucket: BucketName,
    /// The bucket's SSE-KMS key ARN, when it uses one: the S3 roles may then generate data keys
    /// and decrypt with it.
    #[serde(default)]
    pub bucket_kms_key_arn: Option<String>,
    /// ARN pattern of the plugin repositories (`...:repository/<stack>-ee-plugin-repo*`).
    pub plugin_repository_arn_pattern: Arn,
    /// What the user chose: the service accounts' namespace and release, thumbprints, and
    /// whether apply creates the service accounts.
    #[serde(flatten)]
    pub settings: IamSettings,
    /// IRSA roles of cluster add-ons (the AWS Load Balancer Controller, the cluster
    /// autoscaler): each trusted by exactly one service account. Their service accounts are
    /// made by the add-on's Helm chart with the output role ARN, not by this tier.
    #[serde(default)]
    pub addon_roles: Vec<AddonRole>,
}

/// The IAM tier's settings, as the stack's configuration file gives them (its `iam` section).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IamSettings {
    /// Kubernetes namespace of the Dify service accounts. Default `dify`.
    #[serde(default = "default_namespace")]
    pub namespace: String,
    /// Thumbprints of the issuer's root CA. Empty (the default): discovered from the issuer's
    /// TLS chain when `discover_thumbprint` is on and the issuer is reachable, otherwise none
    /// (IAM validates EKS issuers against its trusted CAs).
    #[serde(default)]
    pub thumbprints: Vec<String>,
    /// Connect to the issuer to compute the thumbprint when none is given. Default on.
    #[serde(default = "yes")]
    pub discover_thumbprint: bool,
    /// Create the namespace and service accounts. `false` is role-only mode, for Helm charts that
    /// create the service accounts themselves (annotate them with the output role ARNs).
    #[serde(default = "yes")]
    pub service_accounts: bool,
    /// The Helm release of Dify EE that adopts the service accounts (default `dify`, in
    /// `namespace`).
    #[serde(default = "default_release")]
    pub helm_release: String,
}

impl Default for IamSettings {
    /// Namespace and release `dify`, no thumbprint (discovered), service accounts created.
    fn default() -> Self {
        IamSettings {
            namespace: default_namespace(),
            thumbprints: Vec::new(),
            discover_thumbprint: true,
            service_accounts: true,
            helm_release: default_release(),
        }
    }
}

impl IamSettings {
    /// Checks the settings without I/O; every violation at once, at its path in the settings.
    pub fn validate(&self) -> Result<(), SpecErrors> {
        let mut errors = SpecErrors::new();
        let ns = &self.namespace;
        let dns_label = !ns.is_empty()
            && ns.len() <= 63
            && ns.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
            && !ns.starts_with('-')
            && !ns.ends_with('-');
        if !dns_label {
            errors.push("namespace", format!("{ns:?} is not a DNS label"), "use 1-63 chars of a-z, 0-9 and '-'");
        }
        for (i, t) in self.thumbprints.iter().enumerate() {
            if t.len() != 40 || !t.chars().all(|c| c.is_ascii_hexdigit()) {
                errors.push(
                    format!("thumbprints[{i}]"),
                    "is not a 40-digit hex SHA-1",
                    "give the root CA's SHA-1 fingerprint",
                );
            }
        }
        if self.thumbprints.len() > 5 {
            errors.push("thumbprints", "more than 5 thumbprints", "IAM accepts at most 5");
        }
        errors.into_result()
    }
}

impl std::ops::Deref for IamSpec {
    type Target = IamSettings;
    fn deref(&self) -> &IamSettings {
        &self.settings
    }
}

impl std::ops::DerefMut for IamSpec {
    fn deref_mut(&mut self) -> &mut IamSettings {
        &mut self.settings
    }
}

/// The IRSA role of a cluster add-on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AddonRole {
    /// The add-on (`aws-load-balancer-controller`): the role is `<cluster>-<addon>`.
    pub addon: String,
    /// Namespace of its service account.
    pub namespace: String,
    /// The one service account that may assume the role.
    pub service_account: String,
    /// The inline permission policy (partition-aware, built by the add-on's owner).
    pub policy: Value,
}

impl AddonRole {
    /// The role name for a cluster.
    pub fn role_name(&self, cluster: &str) -> String {
        addon_role_name(cluster, &self.addon)
    }
}

/// The IRSA role name of `addon` for a cluster: `<cluster>-<addon>`.
pub fn addon_role_name(cluster: &str, addon: &str) -> String {
    format!("{cluster}-{addon}")
}

/// What finds the IAM tier for a destroy: the role names, the service accounts' namespace, and
/// whether to reach for them. The OIDC providers are found by the stack's ownership tag.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IamSelector {
    /// The EKS cluster name (part of the role names).
    pub cluster_name: ClusterName,
    /// The cluster's OIDC issuer URL, named in errors; `None` when the cluster is gone (the
    /// providers are found by tag, not by issuer, either way).
    pub oidc_issuer_url: Option<String>,
    /// Kubernetes namespace of the Dify service accounts.
    pub namespace: String,
    /// Delete the service accounts (and the namespace, when ours and otherwise empty): needs
    /// the Kubernetes access ([`IamProvisioner::with_kubernetes`]). `false` in role-only mode,
    /// or when the cluster is gone (they went with it).
    pub service_accounts: bool,
    /// The add-ons whose IRSA roles ([`addon_role_name`]) go too.
    pub addons: Vec<String>,
}

impl IamSelector {
    /// The selector of `spec`.
    pub fn of(spec: &IamSpec) -> Self {
        IamSelector {
            cluster_name: spec.cluster_name.clone(),
            oidc_issuer_url: Some(spec.oidc_issuer_url.clone()),
            namespace: spec.namespace.clone(),
            service_accounts: spec.service_accounts,
            addons: spec.addon_roles.iter().map(|a| a.addon.clone()).collect(),
        }
    }

    /// The roles destroy deletes (when ours), in the order apply makes them: the Dify roles,
    /// then the add-ons'.
    pub fn role_names(&self) -> Vec<String> {
        let cluster = self.cluster_name.as_str();
        RoleKind::ALL
            .into_iter()
            .map(|kind| kind.role_name(cluster))
            .chain(self.addons.iter().map(|addon| addon_role_name(cluster, addon)))
            .collect()
    }
}

fn default_namespace() -> String {
    "dify".to_owned()
}

fn default_release() -> String {
    "dify".to_owned()
}

fn yes() -> bool {
    true
}

impl IamSpec {
    /// Checks the spec without I/O; every violation at once.
    pub fn validate(&self) -> Result<(), SpecErrors> {
        let mut errors = SpecErrors::new();
        if !self.oidc_issuer_url.starts_with("https://") || policy::issuer_host_path(&self.oidc_issuer_url).is_empty() {
            errors.push(
                "oidc_issuer_url",
                format!("{:?} is not an https URL", self.oidc_issuer_url),
                "use the cluster's identity.oidc.issuer",
            );
        }
        for kind in RoleKind::ALL {
            if let Err(e) = NameKind::IamRole.check(&kind.role_name(self.cluster_name.as_str())) {
                errors.push("cluster_name", e.to_string(), "use a shorter cluster name");
            }
        }
        for (i, a) in self.addon_roles.iter().enumerate() {
            if let Err(e) = NameKind::IamRole.check(&a.role_name(self.cluster_name.as_str())) {
                errors.push(format!("addon_roles[{i}].addon"), e.to_string(), "use a shorter cluster or add-on name");
            }
        }
        if !self.plugin_repository_arn_pattern.as_str().starts_with("arn:") {
            errors.push(
                "plugin_repository_arn_pattern",
                "is not an ARN",
                "use the registry output's plugin_repository_arn_pattern",
            );
        }
        if let Err(e) = self.settings.validate() {
            errors.extend_prefixed("", e);
        }
        errors.into_result()
    }
}
