//! AWS partitions: ARN prefixes, DNS suffixes, service principals and known regions.

use std::fmt;

use serde::{Deserialize, Serialize};

/// An AWS partition. Everything that differs between `aws`, `aws-cn` and `aws-us-gov` is derived
/// from here, never hard-coded (`arn:aws:` literals break China and GovCloud).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Partition {
    /// The commercial partition (`arn:aws:`, `amazonaws.com`).
    Aws,
    /// The China partition (`arn:aws-cn:`, `amazonaws.com.cn`).
    AwsCn,
    /// AWS GovCloud (US) (`arn:aws-us-gov:`, `amazonaws.com`).
    AwsUsGov,
}

const AWS_REGIONS: &[&str] = &[
    "us-east-1",
    "us-east-2",
    "us-west-1",
    "us-west-2",
    "af-south-1",
    "ap-east-1",
    "ap-east-2",
    "ap-south-1",
    "ap-south-2",
    "ap-northeast-1",
    "ap-northeast-2",
    "ap-northeast-3",
    "ap-southeast-1",
    "ap-southeast-2",
    "ap-southeast-3",
    "ap-southeast-4",
    "ap-southeast-5",
    "ap-southeast-7",
    "ca-central-1",
    "ca-west-1",
    "eu-central-1",
    "eu-central-2",
    "eu-west-1",
    "eu-west-2",
    "eu-west-3",
    "eu-north-1",
    "eu-south-1",
    "eu-south-2",
    "il-central-1",
    "me-south-1",
    "me-central-1",
    "mx-central-1",
    "sa-east-1",
];
const AWS_CN_REGIONS: &[&str] = &["cn-north-1", "cn-northwest-1"];
const AWS_US_GOV_REGIONS: &[&str] = &["us-gov-west-1", "us-gov-east-1"];

impl Partition {
    /// The partition of a known region, or `None` for a region this library does not know.
    pub fn of_region(region: &str) -> Option<Partition> {
        [Partition::Aws, Partition::AwsCn, Partition::AwsUsGov].into_iter().find(|p| p.regions().contains(&region))
    }

    /// The regions of this partition that the library knows.
    pub fn regions(self) -> &'static [&'static str] {
        match self {
            Partition::Aws => AWS_REGIONS,
            Partition::AwsCn => AWS_CN_REGIONS,
            Partition::AwsUsGov => AWS_US_GOV_REGIONS,
        }
    }

    /// The partition id used in ARNs: `aws`, `aws-cn` or `aws-us-gov`.
    pub fn id(self) -> &'static str {
        match self {
            Partition::Aws => "aws",
            Partition::AwsCn => "aws-cn",
            Partition::AwsUsGov => "aws-us-gov",
        }
    }

    /// The DNS suffix of service endpoints: `amazonaws.com` or `amazonaws.com.cn`.
    pub fn dns_suffix(self) -> &'static str {
        match self {
            Partition::AwsCn => "amazonaws.com.cn",
            Partition::Aws | Partition::AwsUsGov => "amazonaws.com",
        }
    }

    /// Builds an ARN: `arn:<partition>:<service>:<region>:<account>:<resource>`.
    /// Pass empty strings for the region and account of global resources (S3 buckets).
    pub fn arn(self, service: &str, region: &str, account: &str, resource: &str) -> String {
        format!("arn:{}:{service}:{region}:{account}:{resource}", self.id())
    }

    /// The ARN of an AWS-managed IAM policy, e.g. `AmazonEKSClusterPolicy`.
    pub fn managed_policy_arn(self, name: &str) -> String {
        self.arn("iam", "", "aws", &format!("policy/{name}"))
    }

    /// The service principal used in IAM trust policies.
    ///
    /// In the China partition EC2 keeps the legacy `ec2.amazonaws.com.cn` principal, while
    /// newer services (EKS among them) use `<service>.amazonaws.com` in every partition.
    pub fn service_principal(self, service: &str) -> String {
        const CN_SUFFIXED: &[&str] = &["ec2", "autoscaling", "elasticmapreduce", "application-autoscaling"];
        match self {
            Partition::AwsCn if CN_SUFFIXED.contains(&service) => format!("{service}.amazonaws.com.cn"),
            _ => format!("{service}.amazonaws.com"),
        }
    }

    /// The regional endpoint host of a service, e.g. `sts.cn-north-1.amazonaws.com.cn`.
    pub fn endpoint_host(self, service: &str, region: &str) -> String {
        format!("{service}.{region}.{}", self.dns_suffix())
    }
}

impl fmt::Display for Partition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.id())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partition_table_for_arns_principals_and_endpoints() {
        let cases = [
            (
                "us-west-2",
                Partition::Aws,
                "arn:aws:iam::aws:policy/AmazonEKSClusterPolicy",
                "ec2.amazonaws.com",
                "sts.us-west-2.amazonaws.com",
            ),
            (
                "cn-north-1",
                Partition::AwsCn,
                "arn:aws-cn:iam::aws:policy/AmazonEKSClusterPolicy",
                "ec2.amazonaws.com.cn",
                "sts.cn-north-1.amazonaws.com.cn",
            ),
            (
                "us-gov-west-1",
                Partition::AwsUsGov,
                "arn:aws-us-gov:iam::aws:policy/AmazonEKSClusterPolicy",
                "ec2.amazonaws.com",
                "sts.us-gov-west-1.amazonaws.com",
            ),
        ];
        for (region, partition, policy, ec2, sts) in cases {
            assert_eq!(Partition::of_region(region), Some(partition), "{region}");
            assert_eq!(partition.managed_policy_arn("AmazonEKSClusterPolicy"), policy);
            assert_eq!(partition.service_principal("ec2"), ec2);
            assert_eq!(partition.service_principal("eks"), "eks.amazonaws.com");
            assert_eq!(partition.endpoint_host("sts", region), sts);
        }
        assert_eq!(Partition::AwsCn.arn("s3", "", "", "my-bucket/*"), "arn:aws-cn:s3:::my-bucket/*");
        assert_eq!(Partition::of_region("mars-north-1"), None);
        assert_eq!(serde_json::to_string(&Partition::AwsUsGov).unwrap(), "\"aws-us-gov\"");
    }
}
