//! Errors of the network tier.

use dify_stack_core::{AwsFailure, Classify, ErrorKind, NotOwned, SpecErrors, WaitEnded};

/// Everything that can go wrong in the network tier.
#[derive(Debug, thiserror::Error)]
pub enum NetworkError {
    /// The spec is invalid. Permanent: fix the spec.
    #[error("invalid network spec:\n{0}")]
    Invalid(#[from] SpecErrors),
    /// A resource with our deterministic name exists but lacks our ownership tag. Permanent:
    /// rename the stack, or remove/retag the other resource yourself. Never adopted or deleted.
    #[error(transparent)]
    NotOwned(#[from] NotOwned),
    /// Immutable settings drifted and the context does not allow replacement. Permanent until
    /// the spec is changed back or `Permissions::allow_replace` is set.
    #[error(
        "apply would replace {resources:?} (immutable settings changed: {reasons:?}); set allow_replace to permit it"
    )]
    ReplacementRefused {
        /// The resources that would be replaced.
        resources: Vec<String>,
        /// Why each one would be replaced.
        reasons: Vec<String>,
    },
    /// The region has fewer usable availability zones than the spec asks for. Permanent.
    #[error(
        "region {region} has {found} availability zone(s) that can host the stack ({zones:?}); the spec asks for {wanted}{}: lower new.az_count, pick another node instance type, or another region",
        if excluded.is_empty() { String::new() } else { format!(" (excluded: {})", excluded.join("; ")) }
    )]
    NotEnoughZones {
        /// The region.
        region: String,
        /// Requested count.
        wanted: usize,
        /// Usable count.
        found: usize,
        /// The usable zones.
        zones: Vec<String>,
        /// The zones left out and why.
        excluded: Vec<String>,
    },
    /// The existing VPC or its subnets do not fit the spec. Permanent: fix the ids.
    #[error("the existing VPC does not fit the spec:\n{0}")]
    ExistingVpc(SpecErrors),
    /// AWS refused to delete a resource of the stack because something still uses it that is
    /// not the stack's or is not going away (another party's subnet, security group, route
    /// table, gateway or network interface; a load balancer's interface left by Kubernetes; the
    /// VPC's main route-table association). Ended at once, or after a short grace for an
    /// interface another AWS service manages, instead of retried for minutes. Permanent until
    /// what is named is removed or detached; then destroy again, which resumes.
    #[error(
        "cannot delete {resource}: it is still used by {}; these are not the stack's or are not going away: remove or detach them, then run destroy again",
        blockers.join("; ")
    )]
    DeleteBlocked {
        /// What could not be deleted.
        resource: String,
        /// What still uses it, described.
        blockers: Vec<String>,
        /// AWS's refusal.
        #[source]
        source: Box<dify_stack_core::AwsError>,
    },
    /// The stack does not fit the account's Elastic IP quota or the private subnets (the
    /// capacity preflight, [`crate::preflight`]). Nothing was changed; permanent until a quota is
    /// raised or the configuration changes.
    #[error(transparent)]
    Capacity(#[from] crate::preflight::CapacityShortfall),
    /// An AWS call failed. Retryable when the AWS error is; re-running apply resumes.
    #[error(transparent)]
    Aws(#[from] AwsFailure),
    /// A wait ended without success (deadline or cancellation). Re-running resumes.
    #[error(transparent)]
    Wait(#[from] WaitEnded),
}

/// Result alias of the network tier.
pub type Result<T, E = NetworkError> = std::result::Result<T, E>;

impl Classify for NetworkError {
    fn kind(&self) -> ErrorKind {
        match self {
            NetworkError::Invalid(_) | NetworkError::NotEnoughZones { .. } | NetworkError::ExistingVpc(_) => {
                ErrorKind::Invalid
            }
            NetworkError::NotOwned(e) => e.kind(),
            NetworkError::ReplacementRefused { .. } => ErrorKind::Refused,
            NetworkError::Capacity(e) => e.kind(),
            NetworkError::DeleteBlocked { .. } => ErrorKind::DependencyViolation,
            NetworkError::Aws(e) => e.kind(),
            NetworkError::Wait(e) => e.kind(),
        }
    }
}
