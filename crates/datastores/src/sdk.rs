//! The datastores client traits over the AWS SDK.

use async_trait::async_trait;
use dify_stack_aws as shared;
use dify_stack_core::{AwsError, Tags, found, ignore_not_found};
use secrecy::SecretString;

use crate::client::*;

mod ec2;
mod elasticache;
mod opensearch;
mod rds;
mod s3;
mod secrets;

/// All the SDK clients the tier uses.
#[derive(Debug, Clone)]
pub struct SdkDatastores {
    pub(crate) ec2: aws_sdk_ec2::Client,
    pub(crate) secrets: aws_sdk_secretsmanager::Client,
    pub(crate) rds: aws_sdk_rds::Client,
    pub(crate) data: aws_sdk_rdsdata::Client,
    pub(crate) cache: aws_sdk_elasticache::Client,
    pub(crate) search: aws_sdk_opensearch::Client,
    pub(crate) s3: aws_sdk_s3::Client,
    pub(crate) iam: aws_sdk_iam::Client,
}

impl SdkDatastores {
    /// Builds the clients from shared SDK configuration. S3 uses path-style addressing only
    /// when an endpoint override is set (emulators); virtual-hosted style otherwise.
    pub fn from_conf(config: &aws_types::SdkConfig) -> SdkDatastores {
        let s3 = aws_sdk_s3::config::Builder::from(config).force_path_style(config.endpoint_url().is_some()).build();
        SdkDatastores {
            ec2: aws_sdk_ec2::Client::new(config),
            secrets: aws_sdk_secretsmanager::Client::new(config),
            rds: aws_sdk_rds::Client::new(config),
            data: aws_sdk_rdsdata::Client::new(config),
            cache: aws_sdk_elasticache::Client::new(config),
            search: aws_sdk_opensearch::Client::new(config),
            iam: aws_sdk_iam::Client::new(config),
            s3: aws_sdk_s3::Client::from_conf(s3),
        }
    }
}

// ---------------------------------------------------------------- EC2
