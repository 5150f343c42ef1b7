//! The desired state of the registry tier.

use dify_stack_core::{Context, NameKind, SpecErrors};
use serde::{Deserialize, Serialize};

/// Whether image tags can be overwritten.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum TagMutability {
    /// Tags can be moved to another image.
    Mutable,
    /// A pushed tag is fixed (safer for release images).
    Immutable,
}

/// Encryption at rest of a repository. Immutable after creation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum Encryption {
    /// ECR-managed AES-256 (the default).
    Aes256,
    /// KMS, with the given key or the AWS-managed `aws/ecr` key.
    Kms {
        /// Customer managed key ARN; `None` for the AWS-managed key.
        #[serde(default)]
        key_arn: Option<String>,
    },
}

/// Settings of one repository.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RepositorySpec {
    /// Tag mutability.
    pub tag_mutability: TagMutability,
    /// The lifecycle policy keeps this many most recent images (any tag status).
    pub keep_last: u32,
    /// Scan images on push. Default on.
    #[serde(default = "yes")]
    pub scan_on_push: bool,
}

fn yes() -> bool {
    true
}

/// Desired registry: the application repository `<stack>` and the EE plugin repository
/// `<stack>-ee-plugin-repo`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RegistrySpec {
    /// The Dify application images (`<stack>`). Default: immutable tags, keep the last 10.
    #[serde(default = "RegistrySpec::default_app")]
    pub app: RepositorySpec,
    /// The EE plugin images (`<stack>-ee-plugin-repo`). Default: mutable tags, keep the last 20.
    #[serde(default = "RegistrySpec::default_plugin")]
    pub plugin: RepositorySpec,
    /// Encryption at rest of both repositories. Default AES-256.
    #[serde(default = "RegistrySpec::default_encryption")]
    pub encryption: Encryption,
}

impl Default for RegistrySpec {
    fn default() -> Self {
        RegistrySpec {
            app: Self::default_app(),
            plugin: Self::default_plugin(),
            encryption: Self::default_encryption(),
        }
    }
}

/// Suffix of the plugin repository; the plugin connector creates repositories under
/// `<stack>-ee-plugin-repo/` at run time.
pub const PLUGIN_SUFFIX: &str = "ee-plugin-repo";

impl RegistrySpec {
    fn default_app() -> RepositorySpec {
        RepositorySpec { tag_mutability: TagMutability::Immutable, keep_last: 10, scan_on_push: true }
    }

    fn default_plugin() -> RepositorySpec {
        RepositorySpec { tag_mutability: TagMutability::Mutable, keep_last: 20, scan_on_push: true }
    }

    fn default_encryption() -> Encryption {
        Encryption::Aes256
    }

    /// Checks the spec and the derived names; every violation at once.
    pub fn validate(&self, ctx: &Context) -> Result<(), SpecErrors> {
        let mut errors = SpecErrors::new();
        for (path, repo) in [("app", &self.app), ("plugin", &self.plugin)] {
            if !(1..=10_000).contains(&repo.keep_last) {
                errors.push(format!("{path}.keep_last"), format!("{} images", repo.keep_last), "keep 1-10000 images");
            }
        }
        if let Encryption::Kms { key_arn: Some(arn) } = &self.encryption
            && !arn.starts_with("arn:")
        {
            errors.push("encryption.key_arn", format!("{arn:?} is not an ARN"), "use the KMS key ARN");
        }
        for suffix in ["", PLUGIN_SUFFIX] {
            if let Err(e) = ctx.name(NameKind::EcrRepository, suffix) {
                errors.push("stack", e.to_string(), "choose a stack name of [a-z0-9-]");
            }
        }
        errors.into_result()
    }
}

/// The lifecycle policy that keeps the last `keep` images of any tag status.
pub fn lifecycle_policy(keep: u32) -> serde_json::Value {
    serde_json::json!({
        "rules": [{
            "rulePriority": 1,
            "description": format!("keep the last {keep} images"),
            "selection": {"tagStatus": "any", "countType": "imageCountMoreThan", "countNumber": keep},
            "action": {"type": "expire"}
        }]
    })
}
