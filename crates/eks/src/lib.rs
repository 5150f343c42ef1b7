//! EKS tier of [dify-stack](https://github.com/dify-stack/dify-stack): cluster and node IAM
//! roles, a KMS key for secrets envelope encryption, the cluster (private endpoint, all
//! control-plane logs, `API_AND_CONFIG_MAP` access), a Graviton managed node group behind an
//! IMDSv2-only launch template with an encrypted gp3 root volume, managed add-ons at the default
//! version for the cluster version, access entries for extra admins, and programmatic access
//! (EKS bearer token, kubeconfig, `kube::Client`).
//!
//! Inputs come from the network tier as core typed ids ([`EksSpec::vpc_id`],
//! [`EksSpec::private_subnet_ids`]); this crate does not depend on the network crate.
//!
//! Waits poll the Describe calls on the context's [`WaitPolicy`](dify_stack_core::WaitPolicy)
//! (first poll at once, then backing off, capped per resource kind in [`caps`]) rather than the
//! SDK waiters, whose fixed 30-second delay and lack of cancellation do not fit a cancellable
//! executor; failure states (`FAILED`, `CREATE_FAILED`, `DEGRADED`) end a wait at once.

pub mod client;
pub mod lifecycle;
pub mod load_balancers;
pub mod node_sg;
pub mod provisioner;
mod sdk;
pub mod spec;
#[cfg(test)]
mod tests;
pub mod token;

use dify_stack_core::{AwsFailure, Classify, ErrorKind, NotOwned, SpecErrors, WaitEnded};

pub use client::{
    AddonInfo, AddonRole, ClusterApi, ClusterCreate, ClusterInfo, Ec2Api, EksApi, KeyInfo, KeysApi, LaunchTemplateData,
    LaunchTemplateInfo, LogGroupInfo, LogsApi, NodegroupCreate, NodegroupInfo, RoleInfo, RolesApi, SecurityGroupInfo,
    Status,
};
#[cfg(any(test, feature = "test-util"))]
pub use client::{MockClusterApi, MockEc2Api, MockKeysApi, MockLogsApi, MockRolesApi};
pub use node_sg::{NodeSecurityGroupProvisioner, NodeSecurityGroupSpec};
pub use provisioner::{EksOutput, EksProvisioner, Names, ObservedEks, caps, cluster_name, next_version};
pub use sdk::SdkEks;
pub use spec::{
    ALL_LOG_TYPES, DEFAULT_ADDONS, EBS_CSI_ADDON, EBS_CSI_SERVICE_ACCOUNT, EksSpec, EndpointSpec, NodeGroupSpec,
    POD_IDENTITY_AGENT_ADDON,
};
pub use token::{EksToken, TokenError, TokenSource, eks_token, kube_client, kubeconfig};

/// Everything that can go wrong in the EKS tier.
#[derive(Debug, thiserror::Error)]
pub enum EksError {
    /// The spec is invalid. Permanent: fix the spec.
    #[error("invalid EKS spec:\n{0}")]
    Invalid(#[from] SpecErrors),
    /// A resource with our name exists without our ownership tag. Never adopted or deleted.
    #[error(transparent)]
    NotOwned(#[from] NotOwned),
    /// A Kubernetes downgrade was asked for. Nothing was changed.
    #[error(
        "the cluster runs Kubernetes {have}; downgrading to {want} is not possible: set kubernetes_version to {have} or later"
    )]
    DowngradeRefused {
        /// Running version.
        have: String,
        /// Requested version.
        want: String,
    },
    /// A setting that cannot change in place differs. Nothing was changed.
    #[error(
        "{resource}: {field} cannot change in place ({have} -> {want}); keep the current value, or destroy and re-create the tier"
    )]
    ImmutableChange {
        /// The setting.
        field: String,
        /// The resource.
        resource: String,
        /// Current value.
        have: String,
        /// Wanted value.
        want: String,
    },
    /// A resource entered a failure state.
    #[error("{kind} {name} is {status}{}", if detail.is_empty() { String::new() } else { format!(": {}", detail.join("; ")) })]
    Failed {
        /// Kind.
        kind: &'static str,
        /// Name.
        name: String,
        /// Its status.
        status: String,
        /// Health issues reported by EKS.
        detail: Vec<String>,
    },
    /// A resource disappeared while we waited for it.
    #[error("{kind} {name} disappeared while waiting for it (deleted by someone else?)")]
    Vanished {
        /// Kind.
        kind: &'static str,
        /// Name.
        name: String,
    },
    /// No default add-on version exists for the Kubernetes version.
    #[error(
        "EKS offers no default version of add-on {addon} for Kubernetes {version}; remove it from addons or pick another version"
    )]
    NoAddonVersion {
        /// Add-on.
        addon: String,
        /// Kubernetes version.
        version: String,
    },
    /// A wait ended without success (timeout or cancellation). Re-running resumes.
    #[error(transparent)]
    Wait(#[from] WaitEnded),
    /// The Kubernetes API refused to delete the objects that make load balancers (an API error,
    /// not an unreachable server: that one is skipped). Re-running resumes.
    #[error("deleting the cluster's load-balancer Services and Ingresses failed: {0}")]
    Kubernetes(String),
    /// An AWS call failed. Retryable when the AWS error is; re-running resumes.
    #[error(transparent)]
    Aws(#[from] AwsFailure),
}

/// Result alias of the EKS tier.
pub type Result<T, E = EksError> = std::result::Result<T, E>;

impl Classify for EksError {
    fn kind(&self) -> ErrorKind {
        match self {
            EksError::Invalid(_) | EksError::NoAddonVersion { .. } => ErrorKind::Invalid,
            EksError::NotOwned(e) => e.kind(),
            EksError::DowngradeRefused { .. } | EksError::ImmutableChange { .. } => ErrorKind::Refused,
            EksError::Failed { .. } | EksError::Vanished { .. } => ErrorKind::Failed,
            EksError::Wait(e) => e.kind(),
            // The API answered with an error: not retried on its own.
            EksError::Kubernetes(_) => ErrorKind::Other,
            EksError::Aws(e) => e.kind(),
        }
    }
}
