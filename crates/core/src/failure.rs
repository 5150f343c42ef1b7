//! The failure vocabulary every tier shares: [`Classify`] and the common failures
//! ([`NotOwned`], [`AwsFailure`], [`WaitEnded`], [`KubeFailure`]) a tier's error is built from.

use crate::error::{AwsError, ErrorKind};

/// An error that says what kind of failure it is. Every tier's error implements it, so the
/// facade takes retryability from the error itself.
pub trait Classify {
    /// The kind of failure.
    fn kind(&self) -> ErrorKind;

    /// True when a later run may succeed without any change on the caller's side.
    fn is_retryable(&self) -> bool {
        self.kind().is_retryable()
    }
}

impl Classify for AwsError {
    fn kind(&self) -> ErrorKind {
        self.kind
    }
}

impl Classify for crate::SpecErrors {
    fn kind(&self) -> ErrorKind {
        ErrorKind::Invalid
    }
}

impl Classify for std::convert::Infallible {
    fn kind(&self) -> ErrorKind {
        match *self {}
    }
}

impl<E: Classify> Classify for crate::WaitError<E> {
    fn kind(&self) -> ErrorKind {
        match self {
            crate::WaitError::TimedOut { .. } => ErrorKind::TimedOut,
            crate::WaitError::Cancelled { .. } => ErrorKind::Cancelled,
            crate::WaitError::Failed { source, .. } => source.kind(),
        }
    }
}

/// A wait that ended on its own terms (deadline or cancellation), without a probe error.
pub type WaitEnded = crate::WaitError<std::convert::Infallible>;

/// A resource with our deterministic name exists but lacks our ownership tag. It is never
/// adopted, changed or deleted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "{kind} {name:?}{} exists but is not owned by stack {stack} (tag dify-stack:stack missing or different); it is never adopted or deleted: choose another stack name or remove it yourself",
    id.as_ref().map(|i| format!(" ({i})")).unwrap_or_default()
)]
pub struct NotOwned {
    /// Kind of resource, e.g. `EKS cluster`.
    pub kind: &'static str,
    /// The contested name.
    pub name: String,
    /// Its id, when it has one besides the name.
    pub id: Option<String>,
    /// Our stack.
    pub stack: String,
}

impl NotOwned {
    /// `kind name` is not owned by the context's stack.
    pub fn new(ctx: &crate::Context, kind: &'static str, name: impl Into<String>) -> NotOwned {
        NotOwned { kind, name: name.into(), id: None, stack: ctx.stack().to_string() }
    }

    /// The same, with the resource's id.
    pub fn with_id(mut self, id: impl Into<String>) -> NotOwned {
        self.id = Some(id.into());
        self
    }

    /// `Ok` when `tags` carry the context's ownership, else this error.
    pub fn check(ctx: &crate::Context, kind: &'static str, name: &str, tags: &crate::Tags) -> Result<(), NotOwned> {
        if ctx.owns_tags(tags) { Ok(()) } else { Err(NotOwned::new(ctx, kind, name)) }
    }
}

impl Classify for NotOwned {
    fn kind(&self) -> ErrorKind {
        ErrorKind::NotOwned
    }
}

/// An AWS call that failed, with what it was about.
#[derive(Debug, thiserror::Error)]
#[error("{operation} failed for {resource}")]
pub struct AwsFailure {
    /// What was being done (the operation or step).
    pub operation: &'static str,
    /// The resource it was about.
    pub resource: String,
    /// The AWS error.
    #[source]
    pub source: Box<AwsError>,
}

impl Classify for AwsFailure {
    fn kind(&self) -> ErrorKind {
        self.source.kind
    }
}

/// Attaches the operation and resource to an AWS result: `call().await.at("CreateVpc", name)?`
/// converts into any tier error that has `From<AwsFailure>`.
pub trait AwsAt<T> {
    /// The error as an [`AwsFailure`] for `operation` on `resource`.
    fn at(self, operation: &'static str, resource: impl Into<String>) -> Result<T, AwsFailure>;
}

impl<T> AwsAt<T> for Result<T, AwsError> {
    fn at(self, operation: &'static str, resource: impl Into<String>) -> Result<T, AwsFailure> {
        self.map_err(|e| e.at(operation, resource))
    }
}

/// Folds a wait over a tier's own probe into the tier's error: the probe's error as it is, a
/// deadline or cancellation as [`WaitEnded`].
pub fn from_wait<E: From<WaitEnded>>(e: crate::WaitError<E>) -> E {
    match e {
        crate::WaitError::Failed { source, .. } => source,
        crate::WaitError::TimedOut { what, waited, last_status } => {
            E::from(crate::WaitError::TimedOut { what, waited, last_status })
        }
        crate::WaitError::Cancelled { what } => E::from(crate::WaitError::Cancelled { what }),
    }
}

/// Folds a wait over an AWS probe into a tier's error: the probe's AWS error as an
/// [`AwsFailure`] at `operation`/`resource`, a deadline or cancellation as [`WaitEnded`].
pub fn from_aws_wait<E: From<WaitEnded> + From<AwsFailure>>(
    e: crate::WaitError<AwsError>,
    operation: &'static str,
    resource: impl Into<String>,
) -> E {
    match e {
        crate::WaitError::Failed { source, .. } => {
            E::from(AwsFailure { operation, resource: resource.into(), source: Box::new(source) })
        }
        crate::WaitError::TimedOut { what, waited, last_status } => {
            E::from(crate::WaitError::TimedOut { what, waited, last_status })
        }
        crate::WaitError::Cancelled { what } => E::from(crate::WaitError::Cancelled { what }),
    }
}

/// A failed Kubernetes API call (the tiers that talk to the cluster convert `kube::Error` into
/// this at their client boundary, as AWS errors become [`AwsError`]).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{operation} {object} failed{}: {message}", status.map(|s| format!(" (HTTP {s})")).unwrap_or_default())]
pub struct KubeFailure {
    /// What was attempted (`apply`, `list`, `get`, `delete`, `configure`).
    pub operation: &'static str,
    /// The object, e.g. `serviceaccount dify/dify-api-sa`.
    pub object: String,
    /// The API server's (or the connection's) message.
    pub message: String,
    /// The HTTP status, when the API server answered.
    pub status: Option<u16>,
    /// True when the API server could not be reached.
    pub unreachable: bool,
}

impl KubeFailure {
    /// A kube-rs error as the failure of `operation` on `object`: the API server's answer (its
    /// message and status), or a server that could not be reached (a connection or service
    /// error). The one conversion every tier that talks to the cluster uses.
    #[cfg(feature = "kube")]
    pub fn from_kube(operation: &'static str, object: impl Into<String>, e: &kube::Error) -> KubeFailure {
        let object = object.into();
        match e {
            kube::Error::Api(status) => KubeFailure {
                operation,
                object,
                message: status.message.clone(),
                status: Some(status.code),
                unreachable: false,
            },
            other => KubeFailure {
                operation,
                object,
                message: other.to_string(),
                status: None,
                unreachable: matches!(other, kube::Error::HyperError(_) | kube::Error::Service(_)),
            },
        }
    }

    /// True for an answer of 404.
    pub fn is_not_found(&self) -> bool {
        self.status == Some(404)
    }
}

impl Classify for KubeFailure {
    fn kind(&self) -> ErrorKind {
        match self.status {
            _ if self.unreachable => ErrorKind::Transient,
            Some(404) => ErrorKind::NotFound,
            Some(401 | 403) => ErrorKind::AccessDenied,
            Some(409) => ErrorKind::InvalidState,
            Some(429) => ErrorKind::Throttled,
            Some(s) if s >= 500 => ErrorKind::Transient,
            _ => ErrorKind::Other,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_say_whether_a_later_run_may_succeed() {
        use crate::WaitError;
        let retryable = [ErrorKind::Throttled, ErrorKind::Transient, ErrorKind::InvalidState, ErrorKind::TimedOut];
        let permanent = [
            ErrorKind::NotFound,
            ErrorKind::AlreadyExists,
            ErrorKind::DependencyViolation,
            ErrorKind::AccessDenied,
            ErrorKind::Other,
            ErrorKind::Invalid,
            ErrorKind::NotOwned,
            ErrorKind::Refused,
            ErrorKind::Failed,
            ErrorKind::Cancelled,
        ];
        assert!(retryable.iter().all(|k| k.is_retryable()));
        assert!(permanent.iter().all(|k| !k.is_retryable()));
        let ended: WaitEnded =
            WaitError::TimedOut { what: "x".into(), waited: std::time::Duration::ZERO, last_status: "s".into() };
        assert_eq!(ended.kind(), ErrorKind::TimedOut);
        let failed: WaitError<AwsError> =
            WaitError::Failed { what: "x".into(), attempts: 1, source: AwsError::new("X", "Throttling", "slow down") };
        assert_eq!(failed.kind(), ErrorKind::Throttled);
        let k = |status, unreachable| KubeFailure {
            operation: "get",
            object: "o".into(),
            message: "m".into(),
            status,
            unreachable,
        };
        assert_eq!(k(None, true).kind(), ErrorKind::Transient);
        assert_eq!(k(Some(403), false).kind(), ErrorKind::AccessDenied);
        assert_eq!(k(Some(404), false).kind(), ErrorKind::NotFound);
        assert_eq!(k(Some(503), false).kind(), ErrorKind::Transient);
    }

    #[test]
    fn shared_failures_fold_into_a_tiers_error() {
        #[derive(Debug)]
        enum Tier {
            Aws(AwsFailure),
            Ended(WaitEnded),
        }
        impl From<AwsFailure> for Tier {
            fn from(e: AwsFailure) -> Tier {
                Tier::Aws(e)
            }
        }
        impl From<WaitEnded> for Tier {
            fn from(e: WaitEnded) -> Tier {
                Tier::Ended(e)
            }
        }
        let probe = crate::WaitError::Failed {
            what: "w".into(),
            attempts: 3,
            source: AwsError::new("DeleteVpc", "DependencyViolation", "in use"),
        };
        match from_aws_wait::<Tier>(probe, "Delete", "vpc-1") {
            Tier::Aws(f) => assert_eq!(f.to_string(), "Delete failed for vpc-1"),
            other => panic!("{other:?}"),
        }
        let cancelled = crate::WaitError::<AwsError>::Cancelled { what: "w".into() };
        assert!(matches!(
            from_aws_wait::<Tier>(cancelled, "Delete", "vpc-1"),
            Tier::Ended(crate::WaitError::Cancelled { .. })
        ));
        let ok: Result<(), AwsError> = Err(AwsError::new("CreateVpc", "VpcLimitExceeded", "too many"));
        let f = ok.at("CreateVpc", "dify-vpc").unwrap_err();
        assert_eq!((f.operation, f.resource.as_str(), f.kind()), ("CreateVpc", "dify-vpc", ErrorKind::Other));
    }

    #[test]
    fn not_owned_names_the_resource_its_id_and_the_stack() {
        let ctx = crate::Context::new("dify-test", crate::Environment::Test, "us-west-2").unwrap();
        let e = NotOwned::new(&ctx, "ec2:vpc", "dify-test-vpc").with_id("vpc-1");
        let text = e.to_string();
        for needle in ["ec2:vpc", "\"dify-test-vpc\" (vpc-1)", "stack dify-test", "never adopted or deleted"] {
            assert!(text.contains(needle), "{needle} missing in {text}");
        }
        let mut tags = crate::Tags::new();
        assert_eq!(NotOwned::check(&ctx, "ec2:vpc", "n", &tags).unwrap_err().kind(), ErrorKind::NotOwned);
        tags.insert(crate::TAG_STACK.into(), "dify-test".into());
        assert!(NotOwned::check(&ctx, "ec2:vpc", "n", &tags).is_ok());
    }
}
