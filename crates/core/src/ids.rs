//! Typed identifiers. Cross-tier data travels as these newtypes, never as bare strings, so a
//! subnet id cannot be passed where a security group id is expected.

use std::fmt;

use serde::{Deserialize, Serialize};

macro_rules! id_type {
    ($(#[$meta:meta])* $name:ident) => {
        $(#[$meta])*
        /// `Default` is the empty identifier (structs holding ids derive `Default` for tests'
        /// `..Default::default()`); an empty id matches nothing AWS made.
        #[derive(Debug, Clone, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(String);

        impl $name {
            /// Wraps an identifier as returned by AWS.
            pub fn new(id: impl Into<String>) -> Self {
                Self(id.into())
            }

            /// The identifier as a string slice.
            pub fn as_str(&self) -> &str {
                &self.0
            }

            /// Consumes the wrapper and returns the identifier.
            pub fn into_inner(self) -> String {
                self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }

        impl From<String> for $name {
            fn from(s: String) -> Self {
                Self(s)
            }
        }

        impl From<&str> for $name {
            fn from(s: &str) -> Self {
                Self(s.to_owned())
            }
        }
    };
}

id_type!(
    /// An EC2 VPC id (`vpc-...`).
    VpcId
);
id_type!(
    /// An EC2 subnet id (`subnet-...`).
    SubnetId
);
id_type!(
    /// An EC2 security group id (`sg-...`).
    SecurityGroupId
);
id_type!(
    /// An EC2 route table id (`rtb-...`).
    RouteTableId
);
id_type!(
    /// An EC2 internet gateway id (`igw-...`).
    InternetGatewayId
);
id_type!(
    /// An EC2 NAT gateway id (`nat-...`).
    NatGatewayId
);
id_type!(
    /// An Elastic IP allocation id (`eipalloc-...`).
    AllocationId
);
id_type!(
    /// An availability zone name (`us-west-2a`).
    AvailabilityZone
);
id_type!(
    /// An IAM role ARN.
    RoleArn
);
id_type!(
    /// An IAM OpenID Connect provider ARN.
    OidcProviderArn
);
id_type!(
    /// A KMS key ARN.
    KmsKeyArn
);
id_type!(
    /// A Secrets Manager secret ARN. Secrets are passed by reference, never by value.
    SecretArn
);
id_type!(
    /// An EKS cluster name.
    ClusterName
);
id_type!(
    /// An S3 bucket name.
    BucketName
);
id_type!(
    /// An ECR repository name.
    RepositoryName
);
id_type!(
    /// Any other ARN.
    Arn
);
id_type!(
    /// A 12-digit AWS account id.
    AccountId
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_serialize_as_plain_strings() {
        let id = VpcId::new("vpc-123");
        assert_eq!(serde_json::to_string(&id).unwrap(), "\"vpc-123\"");
        let back: VpcId = serde_json::from_str("\"vpc-123\"").unwrap();
        assert_eq!(back, id);
        assert_eq!(back.to_string(), "vpc-123");
    }
}

/// A Kubernetes minor version (`1.33`), parsed once where it enters: a configuration file (a
/// malformed one is refused there, with its path) or code (`KubernetesVersion::new(1, 33)`,
/// `"1.33".parse()`). Ordered by major, then minor.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct KubernetesVersion {
    major: u32,
    minor: u32,
}

/// A string that is not a Kubernetes minor version.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0:?} is not a Kubernetes minor version: use the form \"1.33\"")]
pub struct KubernetesVersionError(pub String);

impl KubernetesVersion {
    /// `major.minor`.
    pub const fn new(major: u32, minor: u32) -> Self {
        KubernetesVersion { major, minor }
    }

    /// The major version (1).
    pub const fn major(self) -> u32 {
        self.major
    }

    /// The minor version (33 of 1.33).
    pub const fn minor(self) -> u32 {
        self.minor
    }

    /// The next minor (1.34 after 1.33): the step an upgrade takes.
    pub const fn next_minor(self) -> Self {
        KubernetesVersion { major: self.major, minor: self.minor + 1 }
    }

    /// The minor of a release string as clusters and components report it (`v1.33.2`,
    /// `1.33.2-eks-1234`, `1.33`); `None` when it names none.
    pub fn of_release(release: &str) -> Option<Self> {
        let mut parts = release.trim_start_matches('v').split(['.', '-', '+']);
        let number =
            |p: Option<&str>| p.filter(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()))?.parse().ok();
        Some(KubernetesVersion { major: number(parts.next())?, minor: number(parts.next())? })
    }
}

impl std::str::FromStr for KubernetesVersion {
    type Err = KubernetesVersionError;

    /// Exactly `major.minor`, digits only.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let err = || KubernetesVersionError(s.to_owned());
        let (major, minor) = s.split_once('.').ok_or_else(err)?;
        let number = |p: &str| {
            (!p.is_empty() && p.len() <= 4 && p.bytes().all(|b| b.is_ascii_digit())).then(|| p.parse().ok()).flatten()
        };
        Ok(KubernetesVersion { major: number(major).ok_or_else(err)?, minor: number(minor).ok_or_else(err)? })
    }
}

impl fmt::Display for KubernetesVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.major, self.minor)
    }
}

impl Serialize for KubernetesVersion {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for KubernetesVersion {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod kubernetes_version_tests {
    use super::KubernetesVersion;

    #[test]
    fn a_kubernetes_version_is_major_dot_minor_and_nothing_else() {
        let v: KubernetesVersion = "1.33".parse().unwrap();
        assert_eq!(v, KubernetesVersion::new(1, 33));
        assert_eq!(v.to_string(), "1.33");
        assert_eq!(v.next_minor().to_string(), "1.34");
        assert!(KubernetesVersion::new(1, 9) < KubernetesVersion::new(1, 10));
        for bad in ["latest", "1", "1.", ".33", "v1.33", "1.33.2", "1.3a", " 1.33", ""] {
            let e = bad.parse::<KubernetesVersion>().unwrap_err();
            assert!(e.to_string().contains("use the form \"1.33\""), "{bad}: {e}");
        }
        assert_eq!(serde_json::to_string(&v).unwrap(), "\"1.33\"");
        assert_eq!(serde_json::from_str::<KubernetesVersion>("\"1.34\"").unwrap(), KubernetesVersion::new(1, 34));
        assert!(serde_json::from_str::<KubernetesVersion>("\"latest\"").is_err());
        assert_eq!(KubernetesVersion::of_release("v1.33.2-eks-1234"), Some(KubernetesVersion::new(1, 33)));
        assert_eq!(KubernetesVersion::of_release("1.34"), Some(KubernetesVersion::new(1, 34)));
        assert_eq!(KubernetesVersion::of_release("vX"), None);
    }
}
