//! S3.

use super::{AwsError, SdkDatastores, Tags, async_trait, ignore_not_found};
use crate::S3Api;
use crate::sdk::BucketInfo;
use crate::sdk::VersionPage;
use dify_stack_core::AwsResultExt;
use dify_stack_core::ids::BucketName;

#[async_trait]
impl S3Api for SdkDatastores {
    async fn describe(&self, bucket: BucketName) -> Result<Option<BucketInfo>, AwsError> {
        match self.s3.head_bucket().bucket(bucket.as_str()).send().await.aws("HeadBucket") {
            Ok(_) => {}
            // 404: absent. 403: someone else's bucket, reported as absent here; the create
            // then fails with BucketAlreadyExists, naming the problem.
            Err(e) if e.is_not_found() || e.status == Some(404) => return Ok(None),
            Err(e) => return Err(e),
        }
        let tags = match self.s3.get_bucket_tagging().bucket(bucket.as_str()).send().await.aws("GetBucketTagging") {
            Ok(t) => t.tag_set().iter().map(|t| (t.key().to_owned(), t.value().to_owned())).collect(),
            Err(e) if e.code.as_deref() == Some("NoSuchTagSet") || e.is_not_found() => Tags::new(),
            Err(e) => return Err(e),
        };
        let versioning =
            self.s3.get_bucket_versioning().bucket(bucket.as_str()).send().await.aws("GetBucketVersioning")?;
        let encryption =
            match self.s3.get_bucket_encryption().bucket(bucket.as_str()).send().await.aws("GetBucketEncryption") {
                Ok(e) => e
                    .server_side_encryption_configuration()
                    .and_then(|c| c.rules().first())
                    .and_then(|r| r.apply_server_side_encryption_by_default())
                    .map(|d| (d.sse_algorithm().as_str().to_owned(), d.kms_master_key_id().map(str::to_owned))),
                Err(e) if e.code.as_deref() == Some("ServerSideEncryptionConfigurationNotFoundError") => None,
                Err(e) => return Err(e),
            };
        let public_access_blocked =
            match self.s3.get_public_access_block().bucket(bucket.as_str()).send().await.aws("GetPublicAccessBlock") {
                Ok(p) => p.public_access_block_configuration().is_some_and(|c| {
                    c.block_public_acls() == Some(true)
                        && c.ignore_public_acls() == Some(true)
                        && c.block_public_policy() == Some(true)
                        && c.restrict_public_buckets() == Some(true)
                }),
                Err(e) if e.code.as_deref() == Some("NoSuchPublicAccessBlockConfiguration") => false,
                Err(e) => return Err(e),
            };
        let policy = match self.s3.get_bucket_policy().bucket(bucket.as_str()).send().await.aws("GetBucketPolicy") {
            Ok(p) => p.policy().map(str::to_owned),
            Err(e) if e.is_not_found() => None,
            Err(e) => return Err(e),
        };
        let abort_multipart_days = match self
            .s3
            .get_bucket_lifecycle_configuration()
            .bucket(bucket.as_str())
            .send()
            .await
            .aws("GetBucketLifecycleConfiguration")
        {
            Ok(l) => l
                .rules()
                .iter()
                .find(|r| r.id() == Some(crate::bucket::LIFECYCLE_RULE_ID))
                .and_then(|r| r.abort_incomplete_multipart_upload())
                .and_then(|a| a.days_after_initiation()),
            Err(e) if e.is_not_found() => None,
            Err(e) => return Err(e),
        };
        Ok(Some(BucketInfo {
            tags,
            versioning: versioning.status().is_some_and(|s| s.as_str() == "Enabled"),
            encryption,
            public_access_blocked,
            policy,
            abort_multipart_days,
        }))
    }

    async fn create(&self, bucket: BucketName, region: String) -> Result<(), AwsError> {
        use aws_sdk_s3::types::{BucketLocationConstraint, CreateBucketConfiguration};
        let mut req = self.s3.create_bucket().bucket(bucket.as_str());
        if region != "us-east-1" {
            req = req.create_bucket_configuration(
                CreateBucketConfiguration::builder()
                    .location_constraint(BucketLocationConstraint::from(region.as_str()))
                    .build(),
            );
        }
        req.send().await.aws("CreateBucket")?;
        Ok(())
    }

    async fn put_tags(&self, bucket: BucketName, tags: Tags) -> Result<(), AwsError> {
        let set =
            tags.iter().filter_map(|(k, v)| aws_sdk_s3::types::Tag::builder().key(k).value(v).build().ok()).collect();
        let tagging = aws_sdk_s3::types::Tagging::builder()
            .set_tag_set(Some(set))
            .build()
            .map_err(|e| AwsError::new("PutBucketTagging", "Build", e.to_string()))?;
        self.s3.put_bucket_tagging().bucket(bucket.as_str()).tagging(tagging).send().await.aws("PutBucketTagging")?;
        Ok(())
    }

    async fn enable_versioning(&self, bucket: BucketName) -> Result<(), AwsError> {
        self.s3
            .put_bucket_versioning()
            .bucket(bucket.as_str())
            .versioning_configuration(
                aws_sdk_s3::types::VersioningConfiguration::builder()
                    .status(aws_sdk_s3::types::BucketVersioningStatus::Enabled)
                    .build(),
            )
            .send()
            .await
            .aws("PutBucketVersioning")?;
        Ok(())
    }

    async fn put_encryption(&self, bucket: BucketName, kms_key_id: Option<String>) -> Result<(), AwsError> {
        use aws_sdk_s3::types::*;
        let default = match &kms_key_id {
            Some(key) => ServerSideEncryptionByDefault::builder()
                .sse_algorithm(ServerSideEncryption::AwsKms)
                .kms_master_key_id(key),
            None => ServerSideEncryptionByDefault::builder().sse_algorithm(ServerSideEncryption::Aes256),
        }
        .build()
        .map_err(|e| AwsError::new("PutBucketEncryption", "Build", e.to_string()))?;
        let config = ServerSideEncryptionConfiguration::builder()
            .rules(
                ServerSideEncryptionRule::builder()
                    .apply_server_side_encryption_by_default(default)
                    .bucket_key_enabled(kms_key_id.is_some())
                    .build(),
            )
            .build()
            .map_err(|e| AwsError::new("PutBucketEncryption", "Build", e.to_string()))?;
        self.s3
            .put_bucket_encryption()
            .bucket(bucket.as_str())
            .server_side_encryption_configuration(config)
            .send()
            .await
            .aws("PutBucketEncryption")?;
        Ok(())
    }

    async fn block_public_access(&self, bucket: BucketName) -> Result<(), AwsError> {
        dify_stack_aws::s3::block_public_access(&self.s3, bucket.as_str()).await
    }

    async fn put_policy(&self, bucket: BucketName, policy: String) -> Result<(), AwsError> {
        self.s3.put_bucket_policy().bucket(bucket.as_str()).policy(policy).send().await.aws("PutBucketPolicy")?;
        Ok(())
    }

    async fn put_lifecycle(&self, bucket: BucketName, days: i32) -> Result<(), AwsError> {
        use aws_sdk_s3::types::*;
        let rule = LifecycleRule::builder()
            .id(crate::bucket::LIFECYCLE_RULE_ID)
            .status(ExpirationStatus::Enabled)
            .filter(LifecycleRuleFilter::builder().prefix("").build())
            .abort_incomplete_multipart_upload(
                AbortIncompleteMultipartUpload::builder().days_after_initiation(days).build(),
            )
            .build()
            .map_err(|e| AwsError::new("PutBucketLifecycleConfiguration", "Build", e.to_string()))?;
        let config = BucketLifecycleConfiguration::builder()
            .rules(rule)
            .build()
            .map_err(|e| AwsError::new("PutBucketLifecycleConfiguration", "Build", e.to_string()))?;
        self.s3
            .put_bucket_lifecycle_configuration()
            .bucket(bucket.as_str())
            .lifecycle_configuration(config)
            .send()
            .await
            .aws("PutBucketLifecycleConfiguration")?;
        Ok(())
    }

    async fn list_versions(
        &self,
        bucket: BucketName,
        marker: Option<(String, String)>,
    ) -> Result<VersionPage, AwsError> {
        let (key, version) = marker.unzip();
        let out = self
            .s3
            .list_object_versions()
            .bucket(bucket.as_str())
            .set_key_marker(key)
            .set_version_id_marker(version)
            .send()
            .await
            .aws("ListObjectVersions")?;
        let mut items: Vec<(String, String)> = out
            .versions()
            .iter()
            .filter_map(|v| Some((v.key()?.to_owned(), v.version_id().unwrap_or("null").to_owned())))
            .collect();
        items.extend(
            out.delete_markers()
                .iter()
                .filter_map(|m| Some((m.key()?.to_owned(), m.version_id().unwrap_or("null").to_owned()))),
        );
        let next = if out.is_truncated() == Some(true) {
            out.next_key_marker().map(|k| (k.to_owned(), out.next_version_id_marker().unwrap_or_default().to_owned()))
        } else {
            None
        };
        Ok((items, next))
    }

    async fn delete_versions(
        &self,
        bucket: BucketName,
        versions: Vec<(String, String)>,
    ) -> Result<Vec<String>, AwsError> {
        use aws_sdk_s3::types::{Delete, ObjectIdentifier};
        let objects = versions
            .into_iter()
            .filter_map(|(k, v)| ObjectIdentifier::builder().key(k).version_id(v).build().ok())
            .collect();
        let delete = Delete::builder()
            .set_objects(Some(objects))
            .quiet(true)
            .build()
            .map_err(|e| AwsError::new("DeleteObjects", "Build", e.to_string()))?;
        let out = self.s3.delete_objects().bucket(bucket.as_str()).delete(delete).send().await.aws("DeleteObjects")?;
        Ok(out.errors().iter().filter_map(|e| e.key().map(str::to_owned)).collect())
    }

    async fn delete(&self, bucket: BucketName) -> Result<(), AwsError> {
        ignore_not_found(self.s3.delete_bucket().bucket(bucket.as_str()).send().await.aws("DeleteBucket").map(|_| ()))?;
        Ok(())
    }
}
