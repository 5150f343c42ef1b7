//! The Service Quotas reads of the capacity preflight: the quotas the stack consumes that only
//! the Service Quotas API reports (VPCs, internet gateways, NAT gateways per Availability Zone,
//! EKS clusters). Read-only: `servicequotas:GetServiceQuota` and
//! `servicequotas:GetAWSDefaultServiceQuota`.

use async_trait::async_trait;
use dify_stack_core::{AwsError, AwsResultExt};

/// One quota of the Service Quotas API: its service and quota codes, its name as the console
/// shows it, and its default (the value an account has until an increase is granted).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Quota {
    /// The service code (`vpc`, `eks`, `ec2`).
    pub service: &'static str,
    /// The quota code (`L-...`).
    pub code: &'static str,
    /// The quota's name in the Service Quotas console.
    pub name: &'static str,
    /// The default value.
    pub default: u32,
}

impl std::fmt::Display for Quota {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} (Service Quotas: {} {})", self.name, self.service, self.code)
    }
}

/// "VPCs per Region", default 5 (VPC user guide, "Amazon VPC quotas").
pub const VPCS: Quota = Quota { service: "vpc", code: "L-F678F1CE", name: "VPCs per Region", default: 5 };
/// "Internet gateways per Region", default 5 (VPC user guide, "Amazon VPC quotas": the same as
/// VPCs per Region, "to increase this quota, increase the number of VPCs per Region").
pub const INTERNET_GATEWAYS: Quota =
    Quota { service: "vpc", code: "L-A4707A72", name: "Internet gateways per Region", default: 5 };
/// "NAT gateways per Availability Zone", default 5 (VPC user guide, "Amazon VPC quotas"; NAT
/// gateways in the `pending`, `available` and `deleting` states count).
pub const NAT_GATEWAYS_PER_AZ: Quota =
    Quota { service: "vpc", code: "L-FE5A380F", name: "NAT gateways per Availability Zone", default: 5 };
/// "Clusters" per Region, default 100 (EKS user guide, "Amazon EKS service quotas").
pub const EKS_CLUSTERS: Quota =
    Quota { service: "eks", code: "L-1194D53C", name: "EKS clusters per Region", default: 100 };

/// What the preflight asks of the Service Quotas API.
#[cfg_attr(any(test, feature = "test-util"), mockall::automock)]
#[async_trait]
pub trait QuotasApi: Send + Sync {
    /// The quota's value for this account in this region: the applied value
    /// (`GetServiceQuota`), or the default (`GetAWSDefaultServiceQuota`) where no applied value
    /// is available ("for some quotas, only the default values are available": Service Quotas
    /// API reference, GetServiceQuota, which then answers `NoSuchResourceException`).
    async fn quota_value(&self, quota: Quota) -> Result<f64, AwsError>;
}

/// The Service Quotas client over the AWS SDK.
#[derive(Debug, Clone)]
pub struct SdkQuotas {
    client: aws_sdk_servicequotas::Client,
}

impl SdkQuotas {
    /// Builds a client from shared SDK configuration.
    pub fn from_conf(config: &aws_types::SdkConfig) -> SdkQuotas {
        SdkQuotas { client: aws_sdk_servicequotas::Client::new(config) }
    }
}

#[async_trait]
impl QuotasApi for SdkQuotas {
    async fn quota_value(&self, quota: Quota) -> Result<f64, AwsError> {
        let applied = self
            .client
            .get_service_quota()
            .service_code(quota.service)
            .quota_code(quota.code)
            .send()
            .await
            .aws("GetServiceQuota");
        let value = match applied {
            Ok(out) => out.quota().and_then(|q| q.value()),
            Err(e) if e.code.as_deref() == Some("NoSuchResourceException") => self
                .client
                .get_aws_default_service_quota()
                .service_code(quota.service)
                .quota_code(quota.code)
                .send()
                .await
                .aws("GetAWSDefaultServiceQuota")?
                .quota()
                .and_then(|q| q.value()),
            Err(e) => return Err(e),
        };
        value.ok_or_else(|| AwsError::new("GetServiceQuota", "NoValue", format!("{} has no value", quota.code)))
    }
}
