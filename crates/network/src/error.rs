//! Errors of the network tier.

use dify_stack_core::{AwsError, SpecErrors, WaitError};

/// The step that failed, named after the AWS call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// Reading state.
    Describe,
    /// CreateVpc.
    CreateVpc,
    /// ModifyVpcAttribute.
    ModifyVpcAttribute,
    /// CreateSubnet.
    CreateSubnet,
    /// CreateTags / DeleteTags.
    Tag,
    /// CreateInternetGateway / AttachInternetGateway.
    CreateInternetGateway,
    /// AllocateAddress.
    AllocateAddress,
    /// CreateNatGateway.
    CreateNatGateway,
    /// Waiting for NAT gateways.
    WaitNatGateway,
    /// CreateRouteTable.
    CreateRouteTable,
    /// CreateRoute / ReplaceRoute.
    Route,
    /// AssociateRouteTable / ReplaceRouteTableAssociation.
    AssociateRouteTable,
    /// Any Delete*, Detach*, Release*, Disassociate* call.
    Delete,
}

impl std::fmt::Display for Step {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Debug::fmt(self, f)
    }
}

/// Everything that can go wrong in the network tier.
#[derive(Debug, thiserror::Error)]
pub enum NetworkError {
    /// The spec is invalid. Permanent: fix the spec.
    #[error("invalid network spec:\n{0}")]
    Invalid(#[from] SpecErrors),
    /// A resource with our deterministic name exists but lacks our ownership tag. Permanent:
    /// rename the stack, or remove/retag the other resource yourself. Never adopted or deleted.
    #[error(
        "{kind} {name:?} ({id}) exists but is not owned by stack {stack} (tag dify-stack:stack missing or different); it is never adopted or deleted: choose another stack name or remove it yourself"
    )]
    NotOwned {
        /// Resource kind.
        kind: &'static str,
        /// The contested name.
        name: String,
        /// Its id.
        id: String,
        /// Our stack.
        stack: String,
    },
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
        "region {region} has {found} availability zone(s) that can host the stack ({zones:?}); the spec asks for {wanted}{}: lower vpc.az_count, pick another node instance type, or another region",
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
    /// An AWS call failed. Transient when `source.is_retryable()`; re-running apply resumes.
    #[error("{step} failed for {resource}")]
    Aws {
        /// The failed step.
        step: Step,
        /// The resource it was about.
        resource: String,
        /// The AWS error.
        #[source]
        source: Box<AwsError>,
    },
    /// A wait or retry loop ended without success (deadline, cancellation, or a lasting error).
    /// Re-running resumes.
    #[error("{step} for {resource}: {source}")]
    Wait {
        /// The step that waited.
        step: Step,
        /// The resource it waited for.
        resource: String,
        /// What ended the wait.
        #[source]
        source: Box<WaitError<AwsError>>,
    },
}

/// Result alias of the network tier.
pub type Result<T, E = NetworkError> = std::result::Result<T, E>;

pub(crate) trait Ctx<T> {
    fn at(self, step: Step, resource: impl Into<String>) -> Result<T>;
}

impl<T> Ctx<T> for std::result::Result<T, AwsError> {
    fn at(self, step: Step, resource: impl Into<String>) -> Result<T> {
        self.map_err(|source| NetworkError::Aws { step, resource: resource.into(), source: Box::new(source) })
    }
}

impl<T> Ctx<T> for std::result::Result<T, WaitError<AwsError>> {
    fn at(self, step: Step, resource: impl Into<String>) -> Result<T> {
        self.map_err(|source| NetworkError::Wait { step, resource: resource.into(), source: Box::new(source) })
    }
}

impl NetworkError {
    /// True when re-running later may succeed (throttling, transient faults, timeouts).
    pub fn is_retryable(&self) -> bool {
        match self {
            NetworkError::Aws { source, .. } => source.is_retryable(),
            NetworkError::Wait { source, .. } => match source.as_ref() {
                WaitError::TimedOut { .. } => true,
                WaitError::Failed { source, .. } => source.is_retryable(),
                WaitError::Cancelled { .. } => false,
            },
            _ => false,
        }
    }
}
