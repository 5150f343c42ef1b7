//! The stack's error.

use crate::LockError;
use crate::Node;
use crate::NodeError;
use crate::RunFailure;
use crate::account_hint;
use crate::install;
use dify_stack_core::{Classify, ErrorKind, SpecErrors};

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
    /// Something the run needs is not there (yet): recorded outputs, a secret, credentials.
    #[error(transparent)]
    Incomplete(#[from] Incomplete),
    /// The recorded outputs do not parse (written by another version, or edited).
    #[error("the recorded outputs of stack {stack} cannot be read ({source}): run apply to record them again")]
    UnreadableOutputs {
        /// The stack.
        stack: String,
        /// The parser's error.
        #[source]
        source: serde_json::Error,
    },
    /// The Helm values cannot be rendered from the outputs.
    #[error(transparent)]
    Values(#[from] crate::output::ValuesError),
    /// What holds data could not be checked before destroy; nothing was deleted.
    #[error("cannot check what holds data before destroy: {error}")]
    DataCheck {
        /// The failed check (the tier's error is its source).
        error: NodeError,
    },
    /// The domain's aliases at the release's load balancer could not be published or removed.
    #[error("cannot {action} the aliases of {domain}: {source}")]
    Aliases {
        /// `publish` or `remove`.
        action: &'static str,
        /// The domain.
        domain: String,
        /// The platform tier's error.
        #[source]
        source: Box<dify_stack_platform::PlatformError>,
    },
    /// The load balancer of the release's Ingress did not appear.
    #[error("{0}: is the AWS Load Balancer Controller running (platform.load_balancer_controller)?")]
    ReleaseLoadBalancer(#[source] Box<dify_stack_core::WaitError<dify_stack_core::AwsError>>),
    /// No EKS token or Kubernetes client could be made for the cluster.
    #[error(transparent)]
    ClusterAccess(#[from] dify_stack_eks::TokenError),
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
        "cannot learn this machine's public address from {url} (eks.kubernetes_access = caller_address opens the Kubernetes API to it): {source}. Fix: set eks.checkip_url to a reachable service, or choose eks.kubernetes_access = public_cidrs with eks.endpoint.public_access_cidrs, inside_vpc, or role_only"
    )]
    CallerAddress {
        /// The address service asked.
        url: String,
        /// What went wrong.
        #[source]
        source: crate::AccessError,
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

/// What a run needs and does not find: run apply (again) first.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Incomplete {
    /// No apply recorded outputs for the stack.
    #[error("stack {stack} has no recorded outputs: run apply first")]
    NoRecordedOutputs {
        /// The stack.
        stack: String,
    },
    /// A node of the stack has no output.
    #[error("the {node} has no output: apply first")]
    NoOutput {
        /// `cluster`, `network`.
        node: &'static str,
    },
    /// A generated secret is not in the outputs.
    #[error("{secret} secret is missing; apply first")]
    NoSecret {
        /// `Aurora application role`, `Redis AUTH`, `OpenSearch master`.
        secret: &'static str,
    },
    /// A generated secret lacks a key the values need.
    #[error("the {secret} secret has no {key:?}: apply again, or restore it")]
    SecretKey {
        /// The secret.
        secret: &'static str,
        /// The missing (or empty) key.
        key: &'static str,
    },
    /// A generated secret is empty.
    #[error("the {secret} secret is empty: apply again, or restore it")]
    EmptySecret {
        /// The secret.
        secret: &'static str,
    },
    /// No AWS credentials to sign the EKS token with.
    #[error("no AWS credentials for the EKS token")]
    NoCredentials,
}

impl Classify for Incomplete {
    fn kind(&self) -> ErrorKind {
        match self {
            Incomplete::NoCredentials => ErrorKind::AccessDenied,
            _ => ErrorKind::NotFound,
        }
    }
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

/// The kind of a failure the graph reports: retryable ones as transient, the others as failed
/// (a node's error keeps whether it is retryable, not its kind).
fn node_kind(error: &NodeError) -> ErrorKind {
    if error.retryable { ErrorKind::Transient } else { ErrorKind::Failed }
}

impl Classify for StackError {
    fn kind(&self) -> ErrorKind {
        match self {
            StackError::Invalid(e) => e.kind(),
            StackError::Account(e) | StackError::Aws(e) => e.kind,
            StackError::Lock(e) => e.kind(),
            // Only cancelled: resumable, but nothing retries on its own.
            StackError::Run(f) if f.failed.is_empty() && f.cancelled => ErrorKind::Cancelled,
            StackError::Run(f) if f.is_retryable() => ErrorKind::Transient,
            StackError::Run(_) => ErrorKind::Failed,
            StackError::Node { error, .. } => node_kind(error),
            StackError::Incomplete(e) => e.kind(),
            StackError::UnreadableOutputs { .. } => ErrorKind::Invalid,
            // A node without output or a secret without a key: apply (again) first.
            StackError::Values(_) => ErrorKind::NotFound,
            StackError::DataCheck { error } => node_kind(error),
            StackError::Aliases { source, .. } => source.kind(),
            StackError::ReleaseLoadBalancer(e) => e.kind(),
            StackError::ClusterAccess(e) => e.kind(),
            StackError::ReleaseInstalled { .. } | StackError::DataLossRefused { .. } => ErrorKind::Refused,
            StackError::Install(e) => e.kind(),
            StackError::CallerAddress { source, .. } => source.kind(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::StackError;
    use crate::graph::{Node, NodeError, RunFailure};
    use dify_stack_core::{AwsError, Classify as _, ErrorKind, SpecErrors};

    fn run(errors: &[bool], cancelled: bool) -> RunFailure {
        RunFailure {
            failed: errors
                .iter()
                .zip([Node::Network, Node::Egress])
                .map(|(r, n)| (n, NodeError::new("x", *r)))
                .collect(),
            skipped: Default::default(),
            cancelled,
            not_started: Vec::new(),
        }
    }

    /// The stack's error says its kind, and a failed run stays as retryable as its nodes.
    #[test]
    fn stack_errors_classify() {
        assert_eq!(StackError::Invalid(SpecErrors::new()).kind(), ErrorKind::Invalid);
        let expired = AwsError::new("GetCallerIdentity", "ExpiredToken", "expired");
        assert_eq!(StackError::Account(expired).kind(), ErrorKind::AccessDenied);
        let denied = AwsError::new("GetCallerIdentity", "AccessDenied", "no");
        assert_eq!(StackError::Account(denied).kind(), ErrorKind::AccessDenied);
        assert_eq!(StackError::ReleaseInstalled { release: "dify".into() }.kind(), ErrorKind::Refused);
        assert_eq!(StackError::DataLossRefused { holders: vec!["aurora".into()] }.kind(), ErrorKind::Refused);
        let lost = StackError::Lock(crate::LockError::Lost { stack: "s".into() });
        assert_eq!(lost.kind(), ErrorKind::Failed);
        for (errors, cancelled) in [(&[true][..], false), (&[true, false][..], false), (&[][..], true)] {
            let failure = run(errors, cancelled);
            let retryable = failure.is_retryable() && !failure.failed.is_empty();
            assert_eq!(StackError::Run(failure).is_retryable(), retryable, "{errors:?} {cancelled}");
        }
        assert_eq!(StackError::Run(run(&[], true)).kind(), ErrorKind::Cancelled);
        let node = StackError::Node { node: Node::Network, error: NodeError::new("throttled", true) };
        assert!(node.is_retryable());
        let install = StackError::Install(crate::install::InstallError::NoDomain);
        assert_eq!(install.kind(), ErrorKind::Invalid);
        let missing = StackError::from(super::Incomplete::NoOutput { node: "cluster" });
        assert_eq!(missing.to_string(), "the cluster has no output: apply first");
        assert_eq!(missing.kind(), ErrorKind::NotFound);
        let key = StackError::from(super::Incomplete::SecretKey { secret: "OpenSearch master", key: "password" });
        assert_eq!(key.to_string(), "the OpenSearch master secret has no \"password\": apply again, or restore it");
        assert_eq!(StackError::from(super::Incomplete::NoCredentials).kind(), ErrorKind::AccessDenied);
        let unanswered = dify_stack_core::WaitError::TimedOut {
            what: "the load balancer of namespace dify's Ingress".into(),
            waited: std::time::Duration::from_secs(600),
            last_status: "none yet".into(),
        };
        let lb = StackError::ReleaseLoadBalancer(Box::new(unanswered));
        assert!(
            lb.to_string()
                .ends_with("is the AWS Load Balancer Controller running (platform.load_balancer_controller)?")
        );
        assert_eq!(lb.kind(), ErrorKind::TimedOut);
        let unknown = StackError::ClusterAccess(dify_stack_eks::TokenError::UnknownRegion("xx-nowhere-1".into()));
        assert!(!unknown.is_retryable());
    }
}
