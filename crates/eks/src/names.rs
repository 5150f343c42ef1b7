//! The names of the EKS tier's resources: the only place they are derived.

use dify_stack_core::{Context, NameKind};

/// The names of the tier's resources, all derived from the stack name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Names {
    /// Cluster (the stack name; the IRSA role names embed it).
    pub cluster: String,
    /// Cluster IAM role.
    pub cluster_role: String,
    /// Node IAM role.
    pub node_role: String,
    /// KMS alias (without `alias/`).
    pub key_alias: String,
    /// Node security group.
    pub node_security_group: String,
    /// Node launch template.
    pub launch_template: String,
    /// Managed node group.
    pub nodegroup: String,
    /// The EBS CSI driver's role (Pod Identity).
    pub ebs_csi_role: String,
    /// The control-plane log group (the name EKS writes to; fixed by EKS).
    pub log_group: String,
}

impl Names {
    /// The names for a context.
    pub fn of(ctx: &Context) -> Names {
        let stack = ctx.stack().as_str();
        Names {
            cluster: stack.to_owned(),
            cluster_role: format!("{stack}-eks-cluster"),
            node_role: format!("{stack}-eks-node"),
            key_alias: format!("dify-stack/{stack}/eks-secrets"),
            node_security_group: format!("{stack}-eks-nodes"),
            launch_template: format!("{stack}-eks-nodes"),
            nodegroup: format!("{stack}-main"),
            ebs_csi_role: format!("{stack}-ebs-csi"),
            log_group: format!("/aws/eks/{stack}/cluster"),
        }
    }
}

pub(crate) fn token(ctx: &Context, what: &str, extra: &str) -> String {
    request_token(ctx.stack().as_str(), what, extra, fastrand::u128(..))
}

/// An EKS `clientRequestToken` for one creation: EKS refuses tokens outside 33 to 126
/// characters ("The client request token parameter must be between 33 and 126 characters",
/// InvalidParameterException; ansible community.aws #817 / PR #844, EKS API reference
/// `CreateCluster.clientRequestToken`). The token is built once per creation and reused by every
/// retry of that creation (our IAM-propagation retries and the SDK's own), so a lost response is
/// answered with the same resource; a new creation (a later run, or after a destroy) gets a new
/// nonce, so it is never mistaken for an earlier one. A re-run after a crash finds the resource
/// by its name first, so it does not need the earlier token.
pub(crate) fn request_token(stack: &str, what: &str, extra: &str, nonce: u128) -> String {
    // `<what>-<extra>` is a hint for people reading CloudTrail; the 32 hex digits alone make the
    // token long enough and unique. Only [A-Za-z0-9-] so any stack name or version fits.
    let hint: String = format!("{stack}-{what}-{extra}")
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .take(60)
        .collect();
    format!("ds-{hint}-{nonce:032x}")
}

/// The derived cluster name, checked against EKS's rules.
pub fn cluster_name(ctx: &Context) -> Result<String, dify_stack_core::NameError> {
    ctx.name(NameKind::EksCluster, "")
}
