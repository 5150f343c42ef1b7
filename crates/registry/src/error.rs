//! The registry tier's errors.

use std::collections::BTreeMap;

use dify_stack_core::{AwsFailure, Classify, ErrorKind, NotOwned, SpecErrors};

/// Everything that can go wrong in the registry tier.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    /// The spec is invalid. Permanent: fix the spec.
    #[error("invalid registry spec:\n{0}")]
    Invalid(#[from] SpecErrors),
    /// A repository with our name exists without our ownership tag. Never adopted or deleted.
    #[error(transparent)]
    NotOwned(#[from] NotOwned),
    /// The encryption of a repository differs and replacement is not allowed (it would delete
    /// the images).
    #[error(
        "repository {name:?} would be replaced (encryption cannot change in place); set allow_replace and allow_data_loss to permit it"
    )]
    ReplacementRefused {
        /// The repository.
        name: String,
    },
    /// Destroy found images and the context does not allow data loss. Nothing was deleted.
    #[error(
        "repositories still hold images {repositories:?} (name -> image count); nothing was deleted: set allow_data_loss to delete them with their images"
    )]
    DataLossRefused {
        /// Repository name -> number of images.
        repositories: BTreeMap<String, usize>,
    },
    /// An ECR call failed. Retryable when the AWS error is; re-running resumes.
    #[error(transparent)]
    Aws(#[from] AwsFailure),
}

/// Result alias of the registry tier.
pub type Result<T, E = RegistryError> = std::result::Result<T, E>;

impl Classify for RegistryError {
    fn kind(&self) -> ErrorKind {
        match self {
            RegistryError::Invalid(_) => ErrorKind::Invalid,
            RegistryError::NotOwned(e) => e.kind(),
            RegistryError::ReplacementRefused { .. } | RegistryError::DataLossRefused { .. } => ErrorKind::Refused,
            RegistryError::Aws(e) => e.kind(),
        }
    }
}
