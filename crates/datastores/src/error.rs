//! The datastores tier's errors.

use dify_stack_core::{AwsFailure, Classify, ErrorKind, NotOwned, SpecErrors, WaitEnded};

/// Everything that can go wrong in the datastores tier.
#[derive(Debug, thiserror::Error)]
pub enum DatastoresError {
    /// The spec is invalid. Permanent: fix the spec.
    #[error("invalid datastores spec:\n{0}")]
    Invalid(#[from] SpecErrors),
    /// A resource with our name exists without our ownership tag. Never adopted or deleted.
    #[error(transparent)]
    NotOwned(#[from] NotOwned),
    /// A change needs a replacement that would lose data (Redis: its cached data), and the
    /// context does not allow it. Nothing changed.
    #[error(
        "{resource}: changing {field} ({have} -> {want}) replaces it and loses its data; keep {have}, or set allow_replace and allow_data_loss"
    )]
    ReplacementRefused {
        /// The resource.
        resource: String,
        /// The setting.
        field: String,
        /// Current value.
        have: String,
        /// Wanted value.
        want: String,
    },
    /// A setting of a store that holds data of record (Aurora, OpenSearch) cannot change in
    /// place. dify-stack never replaces such a store, whatever the permissions: the data would
    /// have to be migrated first. Nothing changed.
    #[error(
        "{resource}: {field} cannot change in place ({have} -> {want}): {reason}; dify-stack does not replace a store that holds data: keep {have} in the configuration, or move the data to a new stack"
    )]
    ImmutableChange {
        /// The resource.
        resource: String,
        /// The setting.
        field: String,
        /// Current value.
        have: String,
        /// Wanted value.
        want: String,
        /// Why it cannot change in place.
        reason: String,
    },
    /// An engine version change that cannot run as asked (a downgrade, a major upgrade without
    /// `aurora.allow_major_version_upgrade`, a path the service does not offer, a custom
    /// parameter group). Refused before any write: nothing changed. The reason says the fix.
    #[error("{resource}: {field} {have} -> {want} is refused, nothing was changed: {reason}")]
    UpgradeRefused {
        /// The resource.
        resource: String,
        /// The setting (`engine_version`).
        field: String,
        /// Running version.
        have: String,
        /// Wanted version.
        want: String,
        /// Why, and how to proceed.
        reason: String,
    },
    /// Destroy found stores holding data and the data policy does not allow deleting them.
    /// Checked before the first delete: nothing was deleted.
    #[error("destroy refused, nothing was deleted; these hold data: {}; {hint}", holders.join("; "))]
    DataLossRefused {
        /// What holds data, e.g. `bucket x holds 1500 object versions`.
        holders: Vec<String>,
        /// How to allow it.
        hint: String,
    },
    /// A resource entered a failure state.
    #[error("{kind} {name} is {status}")]
    Failed {
        /// Kind.
        kind: &'static str,
        /// Name.
        name: String,
        /// Status.
        status: String,
    },
    /// A wait ended without success (timeout or cancellation). Re-running resumes.
    #[error(transparent)]
    Wait(#[from] WaitEnded),
    /// An AWS call failed. Retryable when the AWS error is; re-running resumes.
    #[error(transparent)]
    Aws(#[from] AwsFailure),
    /// Several stores failed (they run concurrently); each error is kept.
    #[error("{} datastores failed:\n{}", .0.len(), .0.iter().map(|e| format!("  - {e}")).collect::<Vec<_>>().join("\n"))]
    Several(Vec<DatastoresError>),
}

/// Result alias of the datastores tier.
pub type Result<T, E = DatastoresError> = std::result::Result<T, E>;

impl Classify for DatastoresError {
    fn kind(&self) -> ErrorKind {
        match self {
            DatastoresError::Invalid(_) => ErrorKind::Invalid,
            DatastoresError::NotOwned(e) => e.kind(),
            DatastoresError::ReplacementRefused { .. }
            | DatastoresError::ImmutableChange { .. }
            | DatastoresError::UpgradeRefused { .. }
            | DatastoresError::DataLossRefused { .. } => ErrorKind::Refused,
            DatastoresError::Failed { .. } => ErrorKind::Failed,
            DatastoresError::Wait(e) => e.kind(),
            DatastoresError::Aws(e) => e.kind(),
            // Retryable only when every store's failure is; otherwise the first permanent kind.
            DatastoresError::Several(all) => all
                .iter()
                .map(Classify::kind)
                .find(|k| !k.is_retryable())
                .or_else(|| all.first().map(Classify::kind))
                .unwrap_or(ErrorKind::Other),
        }
    }
}
