//! S3: the public-access block (the datastores tier's storage bucket and the facade's control
//! bucket both block every kind of public access).

use aws_sdk_s3::Client;
use aws_sdk_s3::types::PublicAccessBlockConfiguration;
use dify_stack_core::{AwsError, AwsResultExt};

/// Turns on all four public-access-block settings on `bucket` (S3 user guide, "Blocking public
/// access to your Amazon S3 storage").
pub async fn block_public_access(s3: &Client, bucket: &str) -> Result<(), AwsError> {
    s3.put_public_access_block()
        .bucket(bucket)
        .public_access_block_configuration(
            PublicAccessBlockConfiguration::builder()
                .block_public_acls(true)
                .ignore_public_acls(true)
                .block_public_policy(true)
                .restrict_public_buckets(true)
                .build(),
        )
        .send()
        .await
        .aws("PutPublicAccessBlock")?;
    Ok(())
}
