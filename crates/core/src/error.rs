//! The failure vocabulary every tier shares, and one classification of errors.
//!
//! `SdkError` never leaves a tier's client module: it is converted once, with
//! [`AwsResultExt::aws`], into an [`AwsError`] that keeps the operation, the error code, the
//! message, the request id and HTTP status, and a [`ErrorKind`] the provisioners branch on.
//!
//! A tier's error enum is built from the shared pieces of [`crate::failure`] plus its own
//! refusals, and implements [`Classify`](crate::Classify): the facade and an embedder decide
//! whether a later run may succeed from the error's kind, never from where the error came from. (The shape follows smithy-rs's `ProvideErrorKind`: the
//! error says what it is; callers branch on the kind.)

use std::fmt;
use std::sync::Arc;

use aws_smithy_runtime_api::client::result::SdkError;
use aws_smithy_runtime_api::http::Response as HttpResponse;
use aws_smithy_types::error::metadata::ProvideErrorMetadata;
use serde::Serialize;

use crate::failure::AwsFailure;

/// What kind of failure an error is, as far as provisioning logic and retries care.
///
/// [`ErrorKind::classify`] maps AWS error codes onto the first eight kinds; the others name the
/// failures of our own logic (an invalid spec, a resource we do not own, a refused change, a wait
/// that ended).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[non_exhaustive]
pub enum ErrorKind {
    /// The resource does not exist. On delete: already done.
    NotFound,
    /// A resource with that name or token exists already.
    AlreadyExists,
    /// Something still depends on the resource (ENIs on a subnet, a role with policies, a
    /// non-empty bucket). Usually clears with time or after deleting the dependant.
    DependencyViolation,
    /// Throttled. The SDK retries these; seeing one means retries ran out.
    Throttled,
    /// Not allowed (or bad credentials). Permanent for this caller.
    AccessDenied,
    /// The resource is busy or in the wrong state (update in progress, still creating).
    InvalidState,
    /// A 5xx, a timeout or a dropped connection: the request may or may not have been applied.
    Transient,
    /// Anything else; permanent unless the code says otherwise.
    Other,
    /// The spec or configuration is invalid. Permanent: fix the input.
    Invalid,
    /// A resource with our name exists without our ownership tag. Permanent: never adopted.
    NotOwned,
    /// A guard refused a change (downgrade, replacement, data loss). Nothing was changed;
    /// permanent until the input or the permissions change.
    Refused,
    /// A resource entered a failure state, or vanished while we waited for it.
    Failed,
    /// A wait reached its deadline. A later run resumes.
    TimedOut,
    /// The run was cancelled. The stack is left resumable, but nothing retries on its own.
    Cancelled,
}

impl ErrorKind {
    /// True when the same step may succeed later without any change on our side: throttling,
    /// transient server errors, busy resources, waits that ran out of time.
    pub fn is_retryable(self) -> bool {
        matches!(self, ErrorKind::Throttled | ErrorKind::Transient | ErrorKind::InvalidState | ErrorKind::TimedOut)
    }

    /// Classifies an AWS error code (and the HTTP status when there is no code).
    pub fn classify(code: Option<&str>, status: Option<u16>) -> ErrorKind {
        let Some(code) = code else {
            return match status {
                Some(s) if s >= 500 => ErrorKind::Transient,
                Some(429) => ErrorKind::Throttled,
                _ => ErrorKind::Other,
            };
        };
        const NOT_FOUND: &[&str] = &[
            "NatGatewayNotFound",
            "NoSuchEntity",
            "ResourceNotFoundException",
            "ResourceNotFoundFault",
            "DBClusterNotFoundFault",
            "DBInstanceNotFound",
            "DBInstanceNotFoundFault",
            "DBSubnetGroupNotFoundFault",
            "DBClusterSnapshotNotFoundFault",
            "ReplicationGroupNotFoundFault",
            "CacheClusterNotFound",
            "CacheSubnetGroupNotFoundFault",
            "NoSuchBucket",
            "NoSuchBucketPolicy",
            "NoSuchKey",
            "NoSuchLifecycleConfiguration",
            "NotFound",
            "NotFoundException",
            "RepositoryNotFoundException",
            "LifecyclePolicyNotFoundException",
            "RepositoryPolicyNotFoundException",
            "ImageNotFoundException",
            "InvalidVpcID.NotFound",
            "InvalidSubnetID.NotFound",
            "InvalidAllocationID.NotFound",
            "InvalidAssociationID.NotFound",
            "InvalidNetworkInterfaceID.NotFound",
            // ELBv2: the wire codes of LoadBalancerNotFoundException, TargetGroupNotFoundException
            // and ListenerNotFoundException (Elastic Load Balancing API reference, "Errors" of
            // DescribeLoadBalancers, DescribeTargetGroups, DescribeListeners; the SDK's error
            // parsers match exactly these strings, aws-sdk-elasticloadbalancingv2
            // `protocol_serde`). The classic ELB's AccessPointNotFoundException has the code
            // LoadBalancerNotFound too. None ends in a suffix matched below.
            "LoadBalancerNotFound",
            "TargetGroupNotFound",
            "ListenerNotFound",
        ];
        const ALREADY_EXISTS: &[&str] = &[
            "EntityAlreadyExists",
            "ResourceAlreadyExistsException",
            "ResourceExistsException",
            "AlreadyExistsException",
            "DBClusterAlreadyExistsFault",
            "DBInstanceAlreadyExists",
            "DBSubnetGroupAlreadyExists",
            "DBSubnetGroupAlreadyExistsFault",
            "ReplicationGroupAlreadyExists",
            "ReplicationGroupAlreadyExistsFault",
            "CacheSubnetGroupAlreadyExists",
            "CacheSubnetGroupAlreadyExistsFault",
            "BucketAlreadyOwnedByYou",
            "BucketAlreadyExists",
            "RepositoryAlreadyExistsException",
            "InvalidGroup.Duplicate",
            "InvalidPermission.Duplicate",
            "RouteAlreadyExists",
            "Resource.AlreadyAssociated",
            "IdempotentParameterMismatch",
        ];
        const DEPENDENCY: &[&str] = &[
            "DependencyViolation",
            "DeleteConflict",
            "InvalidIPAddress.InUse",
            "BucketNotEmpty",
            "RepositoryNotEmptyException",
            "InvalidDBSubnetGroupStateFault",
            "CacheSubnetGroupInUse",
        ];
        const THROTTLED: &[&str] = &[
            "Throttling",
            "ThrottlingException",
            "ThrottledException",
            "RequestLimitExceeded",
            "RequestThrottled",
            "RequestThrottledException",
            "SlowDown",
            "TooManyRequestsException",
            "ProvisionedThroughputExceededException",
            "PriorRequestNotComplete",
            "BandwidthLimitExceeded",
            "EC2ThrottledException",
        ];
        const ACCESS: &[&str] = &[
            "AccessDenied",
            "AccessDeniedException",
            "UnauthorizedOperation",
            "UnauthorizedException",
            "AuthFailure",
            "InvalidClientTokenId",
            "UnrecognizedClientException",
            "ExpiredToken",
            "ExpiredTokenException",
            "SignatureDoesNotMatch",
            "OptInRequired",
        ];
        const INVALID_STATE: &[&str] = &[
            "IncorrectState",
            "IncorrectInstanceState",
            "InvalidDBClusterStateFault",
            "InvalidDBInstanceState",
            "InvalidDBInstanceStateFault",
            "InvalidReplicationGroupState",
            "InvalidReplicationGroupStateFault",
            "InvalidCacheClusterState",
            "InvalidCacheClusterStateFault",
            "ResourceInUseException",
            "ConcurrentModificationException",
            "ConflictException",
            "OperationAborted",
            "InvalidStateException",
            "KMSInvalidStateException",
            "InvalidGatewayID.NotAttached",
            "Gateway.NotAttached",
        ];
        const TRANSIENT: &[&str] = &[
            "InternalError",
            "InternalFailure",
            "InternalServerError",
            "InternalServerException",
            "ServerException",
            "ServiceUnavailable",
            "ServiceUnavailableException",
            "ServiceFailure",
            "RequestTimeout",
            "RequestTimeoutException",
            "Unavailable",
        ];
        let is = |list: &[&str]| list.contains(&code);
        if is(NOT_FOUND)
            || code.ends_with(".NotFound")
            || code.ends_with(".NotFoundException")
            || code.ends_with("NotFoundFault")
        {
            ErrorKind::NotFound
        } else if is(ALREADY_EXISTS)
            || code.ends_with(".Duplicate")
            || code.ends_with("AlreadyExistsFault")
            || code.ends_with(".AlreadyExistsException")
        {
            ErrorKind::AlreadyExists
        } else if is(DEPENDENCY) {
            ErrorKind::DependencyViolation
        } else if is(THROTTLED) {
            ErrorKind::Throttled
        } else if is(ACCESS) {
            ErrorKind::AccessDenied
        } else if is(INVALID_STATE) {
            ErrorKind::InvalidState
        } else if is(TRANSIENT) || status.is_some_and(|s| s >= 500) {
            ErrorKind::Transient
        } else {
            ErrorKind::Other
        }
    }
}

/// An AWS call that failed, with everything needed to understand it and nothing SDK-specific.
#[derive(Clone)]
pub struct AwsError {
    /// The API operation, e.g. `CreateNatGateway`.
    pub operation: &'static str,
    /// The AWS error code, e.g. `DependencyViolation`; `None` for transport failures and for
    /// responses that carry no error document.
    pub code: Option<String>,
    /// The error message AWS returned.
    pub message: Option<String>,
    /// The request id, for AWS support.
    pub request_id: Option<String>,
    /// The HTTP status, when a response arrived.
    pub status: Option<u16>,
    /// The classification.
    pub kind: ErrorKind,
    source: Option<Arc<dyn std::error::Error + Send + Sync>>,
}

impl AwsError {
    /// Builds an error from a code and message, classifying the code (used by client
    /// implementations and by mocks that reproduce real AWS answers).
    pub fn new(operation: &'static str, code: &str, message: impl Into<String>) -> AwsError {
        AwsError {
            operation,
            code: Some(code.to_owned()),
            message: Some(message.into()),
            request_id: None,
            status: None,
            kind: ErrorKind::classify(Some(code), None),
            source: None,
        }
    }

    /// Converts any SDK error, once, at the client boundary.
    pub fn from_sdk<E>(operation: &'static str, err: SdkError<E, HttpResponse>) -> AwsError
    where
        E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    {
        let status = err.raw_response().map(|r| r.status().as_u16());
        let transport = matches!(err, SdkError::TimeoutError(_) | SdkError::DispatchFailure(_));
        let meta = ProvideErrorMetadata::meta(&err);
        let code = meta.code().map(str::to_owned);
        let message = meta.message().map(str::to_owned);
        let request_id = meta.extra("aws_request_id").map(str::to_owned);
        let kind = if transport { ErrorKind::Transient } else { ErrorKind::classify(code.as_deref(), status) };
        // Without a service message (no credentials, no connection, a timeout): the chain of
        // causes as text, each once, innermost last; never a Debug dump of the SDK's types.
        let message = message.or_else(|| Some(cause_chain(&err)));
        AwsError { operation, code, message, request_id, status, kind, source: Some(Arc::new(err)) }
    }

    /// This error as the failure of `operation` on `resource`.
    pub fn at(self, operation: &'static str, resource: impl Into<String>) -> AwsFailure {
        AwsFailure { operation, resource: resource.into(), source: Box::new(self) }
    }

    /// True for [`ErrorKind::NotFound`].
    pub fn is_not_found(&self) -> bool {
        self.kind == ErrorKind::NotFound
    }

    /// True for [`ErrorKind::AlreadyExists`].
    pub fn is_already_exists(&self) -> bool {
        self.kind == ErrorKind::AlreadyExists
    }

    /// True for [`ErrorKind::DependencyViolation`].
    pub fn is_dependency_violation(&self) -> bool {
        self.kind == ErrorKind::DependencyViolation
    }

    /// True when the same request may succeed later without any change on our side: throttling,
    /// transient server errors, busy resources.
    pub fn is_retryable(&self) -> bool {
        self.kind.is_retryable()
    }

    /// True for the rejections IAM eventual consistency causes right after a role is created
    /// (`Role ... could not be assumed`, `Error in role params`, `... does not exist`).
    pub fn is_iam_propagation(&self) -> bool {
        let code = self.code.as_deref().unwrap_or_default();
        let msg = self.message.as_deref().unwrap_or_default().to_ascii_lowercase();
        matches!(
            code,
            "InvalidParameterException"
                | "InvalidParameterValue"
                | "InvalidParameterValueException"
                | "MalformedPolicyDocument"
                | "AccessDeniedException"
        ) && (msg.contains("could not be assumed")
            || msg.contains("error in role params")
            || msg.contains("does not exist")
            || msg.contains("invalid principal")
            || msg.contains("not authorized to perform: sts:assumerole"))
    }
}

impl fmt::Debug for AwsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AwsError")
            .field("operation", &self.operation)
            .field("kind", &self.kind)
            .field("code", &self.code)
            .field("message", &self.message)
            .field("request_id", &self.request_id)
            .field("status", &self.status)
            .finish()
    }
}

impl fmt::Display for AwsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} failed", self.operation)?;
        match (&self.code, &self.message) {
            (Some(c), Some(m)) => write!(f, ": {c}: {m}")?,
            (Some(c), None) => write!(f, ": {c}")?,
            (None, Some(m)) => write!(f, ": {m}")?,
            (None, None) => {}
        }
        if let Some(id) = &self.request_id {
            write!(f, " (request id {id})")?;
        }
        Ok(())
    }
}

impl std::error::Error for AwsError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.source.as_deref().map(|e| e as &(dyn std::error::Error + 'static))
    }
}

/// Converts SDK results at the client boundary: `client.describe_vpcs().send().await.aws("DescribeVpcs")?`.
pub trait AwsResultExt<T> {
    /// Converts the error into an [`AwsError`] for `operation`.
    fn aws(self, operation: &'static str) -> Result<T, AwsError>;
}

impl<T, E> AwsResultExt<T> for Result<T, SdkError<E, HttpResponse>>
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    fn aws(self, operation: &'static str) -> Result<T, AwsError> {
        self.map_err(|e| AwsError::from_sdk(operation, e))
    }
}

/// Treats not-found as success on delete: `Ok(true)` when deleted now, `Ok(false)` when it was
/// already gone.
pub fn ignore_not_found(result: Result<(), AwsError>) -> Result<bool, AwsError> {
    match result {
        Ok(()) => Ok(true),
        Err(e) if e.is_not_found() => Ok(false),
        Err(e) => Err(e),
    }
}

/// An error and its sources as `a: b: c`, each message once (SDK errors repeat their source in
/// their own message).
pub fn cause_chain(err: &(dyn std::error::Error + 'static)) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut next = Some(err);
    while let Some(e) = next {
        let text = e.to_string();
        if !text.is_empty() && !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
        next = e.source();
    }
    parts.join(": ")
}

/// Treats not-found as absence on a read: `Ok(None)` when the resource does not exist.
pub fn found<T>(result: Result<T, AwsError>) -> Result<Option<T>, AwsError> {
    match result {
        Ok(v) => Ok(Some(v)),
        Err(e) if e.is_not_found() => Ok(None),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cause_chain_is_text_each_message_once() {
        #[derive(Debug)]
        struct Outer(std::io::Error);
        impl std::fmt::Display for Outer {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                write!(f, "dispatch failure")
            }
        }
        impl std::error::Error for Outer {
            fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
                Some(&self.0)
            }
        }
        let e = Outer(std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "connection refused"));
        assert_eq!(cause_chain(&e), "dispatch failure: connection refused");
    }

    #[test]
    fn codes_of_the_services_we_use_are_classified() {
        let table = [
            ("InvalidVpcID.NotFound", ErrorKind::NotFound),
            ("InvalidGroup.NotFound", ErrorKind::NotFound),
            ("NoSuchEntity", ErrorKind::NotFound),
            ("ResourceNotFoundException", ErrorKind::NotFound),
            ("DBClusterNotFoundFault", ErrorKind::NotFound),
            ("ReplicationGroupNotFoundFault", ErrorKind::NotFound),
            ("NoSuchBucket", ErrorKind::NotFound),
            ("InvalidLaunchTemplateName.NotFoundException", ErrorKind::NotFound),
            ("InvalidLaunchTemplateName.AlreadyExistsException", ErrorKind::AlreadyExists),
            ("EntityAlreadyExists", ErrorKind::AlreadyExists),
            ("BucketAlreadyOwnedByYou", ErrorKind::AlreadyExists),
            ("InvalidPermission.Duplicate", ErrorKind::AlreadyExists),
            ("DependencyViolation", ErrorKind::DependencyViolation),
            ("DeleteConflict", ErrorKind::DependencyViolation),
            ("InvalidIPAddress.InUse", ErrorKind::DependencyViolation),
            ("RequestLimitExceeded", ErrorKind::Throttled),
            ("SlowDown", ErrorKind::Throttled),
            ("ThrottlingException", ErrorKind::Throttled),
            ("UnauthorizedOperation", ErrorKind::AccessDenied),
            ("AuthFailure", ErrorKind::AccessDenied),
            ("InvalidDBClusterStateFault", ErrorKind::InvalidState),
            ("ResourceInUseException", ErrorKind::InvalidState),
            ("InternalError", ErrorKind::Transient),
            ("InvalidParameterValue", ErrorKind::Other),
        ];
        for (code, kind) in table {
            assert_eq!(ErrorKind::classify(Some(code), Some(400)), kind, "{code}");
        }
        assert_eq!(ErrorKind::classify(None, Some(503)), ErrorKind::Transient);
        assert_eq!(ErrorKind::classify(None, Some(404)), ErrorKind::Other, "an HTML 404 is not a NotFound");
    }

    #[test]
    fn elbv2_not_found_codes_are_not_found() {
        for code in ["LoadBalancerNotFound", "TargetGroupNotFound", "ListenerNotFound"] {
            assert_eq!(ErrorKind::classify(Some(code), Some(400)), ErrorKind::NotFound, "{code}");
            let e = AwsError::new("DeleteLoadBalancer", code, "One or more load balancers not found");
            assert!(e.is_not_found(), "{code}");
            assert!(!ignore_not_found(Err(e)).unwrap(), "{code}: a delete of a gone load balancer is done");
        }
        // A neighbour that is not an absence stays what it was.
        assert_eq!(ErrorKind::classify(Some("DuplicateLoadBalancerName"), Some(400)), ErrorKind::Other);
    }

    #[test]
    fn iam_propagation_is_recognised_from_the_message() {
        let e = AwsError::new(
            "CreateCluster",
            "InvalidParameterException",
            "Role with arn: arn:aws:iam::1:role/x, could not be assumed because it does not exist",
        );
        assert!(e.is_iam_propagation());
        assert!(!AwsError::new("CreateCluster", "InvalidParameterException", "bad version").is_iam_propagation());
    }

    #[test]
    fn display_names_operation_code_message() {
        let e = AwsError::new("DeleteSubnet", "DependencyViolation", "has dependencies");
        assert_eq!(e.to_string(), "DeleteSubnet failed: DependencyViolation: has dependencies");
        assert!(!ignore_not_found(Err(AwsError::new("X", "NoSuchEntity", "gone"))).unwrap());
        assert!(ignore_not_found(Err(e)).is_err());
    }
}
