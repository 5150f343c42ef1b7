//! Deterministic resource names with each service's length and charset rules.
//!
//! Every name is `<stack>-<suffix>` (or a service-specific shape such as the IRSA role names).
//! Names are never truncated or hashed silently: a name that breaks a service's rule is an error
//! that names the service, the limit and the fix, caught at validation time before any call.

use std::fmt;

use serde::Serialize;

/// A naming domain with its own rules.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
pub enum NameKind {
    /// OpenSearch domain: 3-28 chars, lowercase letter first, `[a-z0-9-]`.
    OpenSearchDomain,
    /// ElastiCache replication group id: 1-40 chars, letter first, `[a-z0-9-]`, no `--`, no trailing `-`.
    ElastiCacheReplicationGroup,
    /// IAM role name: 1-64 chars of `[A-Za-z0-9+=,.@_-]`.
    IamRole,
    /// S3 bucket: 3-63 chars, `[a-z0-9.-]`, starting and ending with a letter or digit.
    S3Bucket,
    /// RDS cluster or instance identifier: 1-63 chars, letter first, `[a-z0-9-]`, no `--`, no trailing `-`.
    RdsCluster,
    /// ECR repository: 2-256 chars, lowercase path segments of `[a-z0-9._-]` separated by `/`.
    EcrRepository,
    /// EKS cluster or node group name: 1-100 chars, alphanumeric first, `[A-Za-z0-9_-]`.
    EksCluster,
    /// Secrets Manager secret name: 1-512 chars of `[A-Za-z0-9/_+=.@-]`.
    Secret,
    /// Anything identified only by its `Name` tag (VPC, subnet, ...): 1-255 chars.
    Tag,
}

impl NameKind {
    /// Minimum and maximum length in characters.
    pub fn length_range(self) -> (usize, usize) {
        match self {
            NameKind::OpenSearchDomain => (3, 28),
            NameKind::ElastiCacheReplicationGroup => (1, 40),
            NameKind::IamRole => (1, 64),
            NameKind::S3Bucket => (3, 63),
            NameKind::RdsCluster => (1, 63),
            NameKind::EcrRepository => (2, 256),
            NameKind::EksCluster => (1, 100),
            NameKind::Secret => (1, 512),
            NameKind::Tag => (1, 255),
        }
    }

    /// Human name of the service rule, used in error messages.
    pub fn label(self) -> &'static str {
        match self {
            NameKind::OpenSearchDomain => "OpenSearch domain name",
            NameKind::ElastiCacheReplicationGroup => "ElastiCache replication group id",
            NameKind::IamRole => "IAM role name",
            NameKind::S3Bucket => "S3 bucket name",
            NameKind::RdsCluster => "RDS cluster identifier",
            NameKind::EcrRepository => "ECR repository name",
            NameKind::EksCluster => "EKS cluster name",
            NameKind::Secret => "Secrets Manager secret name",
            NameKind::Tag => "Name tag",
        }
    }

    /// Checks `name` against the rule; the error says which part is wrong.
    pub fn check(self, name: &str) -> Result<(), NameError> {
        let (min, max) = self.length_range();
        let len = name.chars().count();
        let fail = |reason: String| Err(NameError { kind: self, name: name.to_owned(), reason });
        if len < min || len > max {
            return fail(format!("is {len} characters long; the limit is {min}-{max}"));
        }
        let first = name.chars().next().unwrap_or(' ');
        let last = name.chars().last().unwrap_or(' ');
        let lower_dash = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-';
        match self {
            NameKind::OpenSearchDomain => {
                if !first.is_ascii_lowercase() {
                    return fail("must start with a lowercase letter".into());
                }
                if !name.chars().all(lower_dash) {
                    return fail("may contain only a-z, 0-9 and '-'".into());
                }
            }
            NameKind::ElastiCacheReplicationGroup | NameKind::RdsCluster => {
                if !first.is_ascii_alphabetic() {
                    return fail("must start with a letter".into());
                }
                if !name.chars().all(lower_dash) {
                    return fail("may contain only a-z, 0-9 and '-'".into());
                }
                if name.contains("--") || last == '-' {
                    return fail("may not contain '--' or end with '-'".into());
                }
            }
            NameKind::IamRole => {
                if !name.chars().all(|c| c.is_ascii_alphanumeric() || "+=,.@_-".contains(c)) {
                    return fail("may contain only A-Z, a-z, 0-9 and +=,.@_-".into());
                }
            }
            NameKind::S3Bucket => {
                if !name.chars().all(|c| lower_dash(c) || c == '.') {
                    return fail("may contain only a-z, 0-9, '.' and '-'".into());
                }
                if !first.is_ascii_alphanumeric() || !last.is_ascii_alphanumeric() {
                    return fail("must start and end with a letter or digit".into());
                }
                if name.contains("..") {
                    return fail("may not contain '..'".into());
                }
            }
            NameKind::EcrRepository => {
                let segment_ok = |s: &str| {
                    !s.is_empty()
                        && s.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "._-".contains(c))
                        && s.starts_with(|c: char| c.is_ascii_alphanumeric())
                        && s.ends_with(|c: char| c.is_ascii_alphanumeric())
                };
                if !name.split('/').all(segment_ok) {
                    return fail(
                        "must be '/'-separated segments of a-z, 0-9, '.', '_' and '-' that start and end with a letter or digit"
                            .into(),
                    );
                }
            }
            NameKind::EksCluster => {
                if !first.is_ascii_alphanumeric() {
                    return fail("must start with a letter or digit".into());
                }
                if !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_') {
                    return fail("may contain only A-Z, a-z, 0-9, '-' and '_'".into());
                }
            }
            NameKind::Secret => {
                if !name.chars().all(|c| c.is_ascii_alphanumeric() || "/_+=.@-".contains(c)) {
                    return fail("may contain only A-Z, a-z, 0-9 and /_+=.@-".into());
                }
            }
            NameKind::Tag => {}
        }
        Ok(())
    }
}

/// A derived name that breaks a service's naming rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NameError {
    /// The rule that was broken.
    pub kind: NameKind,
    /// The offending name.
    pub name: String,
    /// What is wrong with it.
    pub reason: String,
}

impl fmt::Display for NameError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} {:?} {}; choose a shorter stack name or component suffix",
            self.kind.label(),
            self.name,
            self.reason
        )
    }
}

impl std::error::Error for NameError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_service_enforces_its_length_limit() {
        let cases = [
            (NameKind::OpenSearchDomain, 3, 28),
            (NameKind::ElastiCacheReplicationGroup, 1, 40),
            (NameKind::IamRole, 1, 64),
            (NameKind::S3Bucket, 3, 63),
            (NameKind::RdsCluster, 1, 63),
            (NameKind::EcrRepository, 2, 256),
            (NameKind::EksCluster, 1, 100),
        ];
        for (kind, min, max) in cases {
            assert_eq!(kind.length_range(), (min, max));
            let ok = "a".repeat(max);
            assert!(kind.check(&ok).is_ok(), "{kind:?} should accept {max} chars");
            let too_long = "a".repeat(max + 1);
            let err = kind.check(&too_long).unwrap_err();
            assert!(err.reason.contains(&format!("limit is {min}-{max}")), "{err}");
            if min > 1 {
                assert!(kind.check(&"a".repeat(min - 1)).is_err(), "{kind:?} should reject {} chars", min - 1);
            }
        }
    }

    #[test]
    fn charset_rules_are_per_service() {
        assert!(NameKind::OpenSearchDomain.check("1abc").is_err());
        assert!(NameKind::OpenSearchDomain.check("dify-test-search").is_ok());
        assert!(NameKind::ElastiCacheReplicationGroup.check("dify--test").is_err());
        assert!(NameKind::ElastiCacheReplicationGroup.check("dify-test-").is_err());
        assert!(NameKind::RdsCluster.check("Dify").is_err());
        assert!(NameKind::S3Bucket.check("dify_test").is_err());
        assert!(NameKind::S3Bucket.check("dify-test-storage-123456789012").is_ok());
        assert!(NameKind::EcrRepository.check("dify-test-ee-plugin-repo/plugin-a").is_ok());
        assert!(NameKind::EcrRepository.check("dify-test//x").is_err());
        assert!(NameKind::EcrRepository.check("Dify").is_err());
        assert!(NameKind::IamRole.check("DifyEE-Role-dify-test-s3-ecr").is_ok());
        assert!(NameKind::IamRole.check("role with space").is_err());
        assert!(NameKind::EksCluster.check("-x").is_err());
        assert!(NameKind::Secret.check("dify-test/redis-auth").is_ok());
        assert!(NameKind::Secret.check("dify test").is_err());
    }
}
