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
