//! The IAM tier's errors.

use dify_stack_core::{AwsFailure, Classify, ErrorKind, KubeFailure, NotOwned, SpecErrors};

/// Everything that can go wrong in the IAM tier.
#[derive(Debug, thiserror::Error)]
pub enum IamError {
    /// The spec is invalid. Permanent.
    #[error("invalid IAM spec:\n{0}")]
    Invalid(#[from] SpecErrors),
    /// A role with our name exists without our ownership tag. Never adopted or deleted.
    #[error(transparent)]
    NotOwned(#[from] NotOwned),
    /// An IAM call failed. Retryable when the AWS error is.
    #[error(transparent)]
    Aws(#[from] AwsFailure),
    /// A Kubernetes call failed (after bounded retries while the API was unreachable).
    #[error("Kubernetes: {0}")]
    Kubernetes(#[from] KubeFailure),
    /// Service accounts were requested but no Kubernetes client was given.
    #[error(
        "service_accounts is true but the provisioner has no Kubernetes client: build it with IamProvisioner::with_kubernetes, or set service_accounts = false (role-only mode)"
    )]
    NoKubernetesClient,
}

/// Result alias of the IAM tier.
pub type Result<T, E = IamError> = std::result::Result<T, E>;

impl Classify for IamError {
    fn kind(&self) -> ErrorKind {
        match self {
            IamError::Invalid(_) | IamError::NoKubernetesClient => ErrorKind::Invalid,
            IamError::NotOwned(e) => e.kind(),
            IamError::Aws(e) => e.kind(),
            IamError::Kubernetes(e) => e.kind(),
        }
    }
}
