//! The stack's error.

use crate::LockError;
use crate::Node;
use crate::NodeError;
use crate::RunFailure;
use crate::account_hint;
use crate::install;
use dify_stack_core::SpecErrors;

/// Everything that can go wrong at the stack level.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StackError {
    /// The configuration is invalid; nothing was called. Every violation is listed.
    #[error("invalid stack configuration:\n{0}")]
    Invalid(SpecErrors),
    /// The account could not be identified (credentials?).
    #[error("{}", account_hint(.0))]
    Account(dify_stack_core::AwsError),
    /// The stack lock.
    #[error(transparent)]
    Lock(#[from] LockError),
    /// Some nodes failed, were skipped or the run was cancelled.
    #[error("{0}")]
    Run(RunFailure),
    /// A single node failed (plan).
    #[error("{node}: {error}")]
    Node {
        /// Node.
        node: Node,
        /// Error.
        error: NodeError,
    },
    /// An AWS call outside the tiers failed.
    #[error(transparent)]
    Aws(#[from] dify_stack_core::AwsError),
    /// Outputs are missing.
    #[error("{0}")]
    Incomplete(String),
    /// Destroy refused: the Dify EE release is still installed on the cluster.
    #[error(
        "destroy refused, nothing was deleted: the Dify EE release {release} is installed on the cluster. Fix: run uninstall first, or destroy --uninstall (Stack::destroy_uninstalling)"
    )]
    ReleaseInstalled {
        /// The Helm release.
        release: String,
    },
    /// Installing or uninstalling Dify EE failed.
    #[error(transparent)]
    Install(#[from] install::InstallError),
    /// `eks.kubernetes_access = caller_address` could not learn this machine's public address.
    #[error(
        "cannot learn this machine's public address from {url} (eks.kubernetes_access = caller_address opens the Kubernetes API to it): {message}. Fix: set eks.checkip_url to a reachable service, or choose eks.kubernetes_access = public_cidrs with eks.endpoint.public_access_cidrs, inside_vpc, or role_only"
    )]
    CallerAddress {
        /// The address service asked.
        url: String,
        /// What went wrong.
        message: String,
    },
    /// Destroy refused before any delete: these hold data the data policy does not allow to
    /// delete.
    #[error(
        "destroy refused, nothing was deleted: {}. Fix: destroy with --lift-deletion-protection (and --delete-data to skip the final snapshot and empty the bucket)",
        holders.join("; ")
    )]
    DataLossRefused {
        /// What holds data, one line each.
        holders: Vec<String>,
    },
}

impl StackError {
    /// Exit code for CLIs: 2 for bad input/config, 1 otherwise.
    pub fn exit_code(&self) -> i32 {
        match self {
            StackError::Invalid(_) => 2,
            _ => 1,
        }
    }
}
