//! The platform tier's errors.

use dify_stack_core::{AwsFailure, Classify, ErrorKind, KubeFailure, NotOwned, SpecErrors, WaitEnded};

use crate::helm::HelmError;

/// Everything that can go wrong in the platform tier.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PlatformError {
    /// The spec is invalid. Permanent.
    #[error("invalid platform spec:\n{0}")]
    Invalid(#[from] SpecErrors),
    /// An AWS call failed. Retryable when the AWS error is.
    #[error(transparent)]
    Aws(#[from] AwsFailure),
    /// A Helm release could not be installed, read or removed.
    #[error("Helm release {release}: {source}")]
    Helm {
        /// `<namespace>/<release>`.
        release: String,
        /// What Helm said.
        #[source]
        source: HelmError,
    },
    /// A Kubernetes call failed.
    #[error("Kubernetes: {0}")]
    Kubernetes(#[from] KubeFailure),
    /// Something with our name exists without our ownership tag or label. Never adopted.
    #[error(transparent)]
    NotOwned(#[from] NotOwned),
    /// No public hosted zone holds the domain.
    #[error(
        "no public Route 53 hosted zone holds {domain}: create one (and delegate the domain to it), or set dify.hosted_zone_id"
    )]
    NoHostedZone {
        /// The domain.
        domain: String,
    },
    /// The certificate can no longer be issued.
    #[error(
        "the ACM certificate {arn} is {status}: fix the cause (a CAA record that does not allow amazon.com, a domain not delegated to the hosted zone, ...), then apply again: it replaces the failed certificate"
    )]
    CertificateFailed {
        /// The certificate.
        arn: String,
        /// Its status, with ACM's failure reason when it gives one (`FAILED: CAA_ERROR`).
        status: String,
    },
    /// An EKS add-on of the tier (metrics-server) entered a failure state, or vanished, while
    /// awaited.
    #[error(
        "EKS add-on {addon} is {status}{}: apply again to repair it (UpdateAddon with resolveConflicts OVERWRITE, or delete and re-create)",
        if issues.is_empty() { String::new() } else { format!(" ({})", issues.join("; ")) }
    )]
    AddonFailed {
        /// The add-on.
        addon: String,
        /// Its status (`CREATE_FAILED`, ...; `gone` when it vanished).
        status: String,
        /// Its health issues, `<code>: <message>`.
        issues: Vec<String>,
    },
    /// A wait ended without success (timeout or cancellation); names what is pending.
    #[error(transparent)]
    Wait(#[from] WaitEnded),
    /// What the load balancer controller waits for before its webhooks are registered
    /// ([`ControllerGate`](crate::provisioner::ControllerGate)) failed.
    #[error("the load balancer controller was not installed: {reason}")]
    ControllerGate {
        /// What failed.
        reason: String,
    },
    /// The spec asks for Helm releases but no Helm or Kubernetes client was given.
    #[error(
        "kubernetes is true but the provisioner has no Helm or Kubernetes client: build it with PlatformProvisioner::with_kubernetes, or set kubernetes = false"
    )]
    NoKubernetesClient,
}

/// Result alias of the platform tier.
pub type Result<T, E = PlatformError> = std::result::Result<T, E>;

impl Classify for PlatformError {
    fn kind(&self) -> ErrorKind {
        match self {
            PlatformError::Invalid(_) | PlatformError::NoKubernetesClient | PlatformError::NoHostedZone { .. } => {
                ErrorKind::Invalid
            }
            PlatformError::Aws(e) => e.kind(),
            // Helm and the Kubernetes API failing are usually a cluster still settling (nodes not
            // ready, webhook not serving yet): a later run may succeed.
            // A Helm client that lacks a call fails the same way on every run.
            PlatformError::Helm { source, .. } if source.kind() == ErrorKind::Invalid => ErrorKind::Invalid,
            PlatformError::Helm { .. } | PlatformError::Kubernetes(_) => ErrorKind::Transient,
            PlatformError::NotOwned(e) => e.kind(),
            PlatformError::CertificateFailed { .. }
            | PlatformError::AddonFailed { .. }
            | PlatformError::ControllerGate { .. } => ErrorKind::Failed,
            PlatformError::Wait(e) => e.kind(),
        }
    }
}
