//! The EKS tier's errors.

use dify_stack_core::{AwsFailure, Classify, ErrorKind, KubeFailure, NotOwned, SpecErrors, WaitEnded};

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
    /// EKS's upgrade insights found a blocking problem for the target version (e.g. deprecated
    /// APIs still in use). Nothing was changed.
    #[error("{0}")]
    UpgradeBlocked(Box<UpgradeBlock>),
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
    Kubernetes(#[source] KubeFailure),
    /// Destroy refused before deleting anything: the stack's EBS volumes and snapshots (what the
    /// default StorageClass made for PersistentVolumeClaims) hold data, and the data policy does
    /// not allow deleting data.
    #[error(
        "destroy refused, nothing was deleted: {}. Fix: back up what you need, then destroy with --delete-data (DataPolicy.delete_data)",
        holders.join("; ")
    )]
    DataLossRefused {
        /// What holds data, one line each.
        holders: Vec<String>,
    },
    /// Destroy finished, but resources tagged for the stack or its cluster are still there
    /// (made outside the stack's knowledge, or refusing to go). Each is named; none is touched.
    #[error(
        "destroy left {} resource(s) tagged for stack {stack} or its cluster: {}. Fix: delete them (or remove the tag if they are not the stack's), then run destroy again",
        resources.len(),
        resources.join(", ")
    )]
    Leftovers {
        /// The stack.
        stack: String,
        /// `<kind> <id>` of each.
        resources: Vec<String>,
    },
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
            EksError::DowngradeRefused { .. }
            | EksError::UpgradeBlocked(_)
            | EksError::ImmutableChange { .. }
            | EksError::DataLossRefused { .. } => ErrorKind::Refused,
            // Only a person can tell what they are: not retried.
            EksError::Leftovers { .. } => ErrorKind::Failed,
            EksError::Failed { .. } | EksError::Vanished { .. } => ErrorKind::Failed,
            EksError::Wait(e) => e.kind(),
            // The API answered with an error: not retried on its own.
            EksError::Kubernetes(e) => e.kind(),
            EksError::Aws(e) => e.kind(),
        }
    }
}

/// What stopped an upgrade: the cluster's upgrade insight with an `ERROR` status for the target.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "upgrade to Kubernetes {want} blocked by the cluster's upgrade insight {insight:?} ({status}): {reason}; fix it (aws eks describe-insight --cluster-name {cluster} --id {id} shows the objects and the fix), then apply again"
)]
pub struct UpgradeBlock {
    /// The cluster.
    pub cluster: String,
    /// The target version.
    pub want: String,
    /// The insight's name.
    pub insight: String,
    /// Its id.
    pub id: String,
    /// Its status (`ERROR`).
    pub status: String,
    /// Why, as EKS says it.
    pub reason: String,
}
