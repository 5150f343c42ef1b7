//! The stack lock: an object `locks/<stack>.json` written with `If-None-Match: *` into a
//! per-account, per-region control bucket `dify-stack-control-<account>-<region>` that is
//! created on first use (private, encrypted, versioned, tagged). Apply and destroy hold it and
//! renew it while they run; a second run fails at once naming the holder; an expired lock is
//! taken over; [`unlock`] removes a stale one. The last successful apply's outputs (ids, ARNs
//! and endpoints, never secret values) are kept beside it in `outputs/<stack>.json`.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aws_sdk_s3::Client;
use aws_sdk_s3::primitives::ByteStream;
use dify_stack_core::{AwsError, AwsResultExt};
use serde::{Deserialize, Serialize};
use tokio::task::JoinHandle;

/// How long a lock lives without renewal.
pub const LOCK_TTL: Duration = Duration::from_secs(10 * 60);
/// How often a held lock is renewed.
pub const RENEW_EVERY: Duration = Duration::from_secs(2 * 60);

/// What the lock object records.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LockInfo {
    /// Who holds it (`user@host pid N`).
    pub owner: String,
    /// Host name.
    pub host: String,
    /// `apply` or `destroy`.
    pub operation: String,
    /// Seconds since the epoch when it was taken.
    pub started: u64,
    /// Seconds since the epoch when it expires unless renewed.
    pub expires: u64,
    /// A random id of this holder.
    pub id: String,
}

/// Lock failures.
#[derive(Debug, thiserror::Error)]
pub enum LockError {
    /// Someone else holds the lock.
    #[error(
        "stack {stack} is locked by {} ({} since {}s ago, expires in {}s); wait for it, or run `unlock` if that run is gone",
        .holder.owner, .holder.operation, now().saturating_sub(.holder.started), .holder.expires.saturating_sub(now())
    )]
    Held {
        /// Stack.
        stack: String,
        /// The holder.
        holder: LockInfo,
    },
    /// S3 failed.
    #[error("stack lock: {0}")]
    Aws(#[from] AwsError),
}

fn now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or_default()
}

/// The control bucket of an account and region.
pub fn control_bucket(account: &str, region: &str) -> String {
    format!("dify-stack-control-{account}-{region}")
}

/// S3 access to the control bucket.
#[derive(Debug, Clone)]
pub struct ControlBucket {
    s3: Client,
    bucket: String,
    region: String,
}

impl ControlBucket {
    /// The control bucket for `account` in the config's region.
    pub fn new(sdk: &aws_types::SdkConfig, account: &str, region: &str) -> Self {
        let conf = aws_sdk_s3::config::Builder::from(sdk).force_path_style(sdk.endpoint_url().is_some()).build();
        ControlBucket {
            s3: Client::from_conf(conf),
            bucket: control_bucket(account, region),
            region: region.to_owned(),
        }
    }

    /// Bucket name.
    pub fn name(&self) -> &str {
        &self.bucket
    }

    /// Creates the bucket if needed: private, encrypted, versioned, tagged.
    pub async fn ensure(&self) -> Result<(), AwsError> {
        match self.s3.head_bucket().bucket(&self.bucket).send().await.aws("HeadBucket") {
            Ok(_) => return Ok(()),
            Err(e) if e.is_not_found() || e.status == Some(404) => {}
            Err(e) => return Err(e),
        }
        use aws_sdk_s3::types::*;
        let mut req = self.s3.create_bucket().bucket(&self.bucket);
        if self.region != "us-east-1" {
            req = req.create_bucket_configuration(
                CreateBucketConfiguration::builder()
                    .location_constraint(BucketLocationConstraint::from(self.region.as_str()))
                    .build(),
            );
        }
        match req.send().await.aws("CreateBucket") {
            Ok(_) => {}
            Err(e) if e.is_already_exists() => {}
            Err(e) => return Err(e),
        }
        self.s3
            .put_public_access_block()
            .bucket(&self.bucket)
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
        let sse = ServerSideEncryptionByDefault::builder()
            .sse_algorithm(ServerSideEncryption::Aes256)
            .build()
            .map_err(|e| AwsError::new("PutBucketEncryption", "Build", e.to_string()))?;
        let config = ServerSideEncryptionConfiguration::builder()
            .rules(ServerSideEncryptionRule::builder().apply_server_side_encryption_by_default(sse).build())
            .build()
            .map_err(|e| AwsError::new("PutBucketEncryption", "Build", e.to_string()))?;
        self.s3
            .put_bucket_encryption()
            .bucket(&self.bucket)
            .server_side_encryption_configuration(config)
            .send()
            .await
            .aws("PutBucketEncryption")?;
        self.s3
            .put_bucket_versioning()
            .bucket(&self.bucket)
            .versioning_configuration(
                VersioningConfiguration::builder().status(BucketVersioningStatus::Enabled).build(),
            )
            .send()
            .await
            .aws("PutBucketVersioning")?;
        let tags = Tagging::builder()
            .tag_set(
                Tag::builder()
                    .key("dify-stack:component")
                    .value("control-bucket")
                    .build()
                    .map_err(|e| AwsError::new("PutBucketTagging", "Build", e.to_string()))?,
            )
            .build()
            .map_err(|e| AwsError::new("PutBucketTagging", "Build", e.to_string()))?;
        self.s3.put_bucket_tagging().bucket(&self.bucket).tagging(tags).send().await.aws("PutBucketTagging")?;
        Ok(())
    }

    fn lock_key(stack: &str) -> String {
        format!("locks/{stack}.json")
    }

    fn outputs_key(stack: &str) -> String {
        format!("outputs/{stack}.json")
    }

    /// The current lock, if any.
    pub async fn read_lock(&self, stack: &str) -> Result<Option<LockInfo>, AwsError> {
        self.read_json(&Self::lock_key(stack)).await
    }

    async fn read_json<T: for<'de> Deserialize<'de>>(&self, key: &str) -> Result<Option<T>, AwsError> {
        match self.s3.get_object().bucket(&self.bucket).key(key).send().await.aws("GetObject") {
            Ok(o) => {
                let bytes =
                    o.body.collect().await.map_err(|e| AwsError::new("GetObject", "Body", e.to_string()))?.into_bytes();
                Ok(serde_json::from_slice(&bytes).ok())
            }
            Err(e) if e.is_not_found() || e.status == Some(404) => Ok(None),
            Err(e) => Err(e),
        }
    }

    async fn put_lock(&self, stack: &str, info: &LockInfo, create_only: bool) -> Result<bool, AwsError> {
        let body = serde_json::to_vec(info).unwrap_or_default();
        let mut req = self
            .s3
            .put_object()
            .bucket(&self.bucket)
            .key(Self::lock_key(stack))
            .body(ByteStream::from(body))
            .content_type("application/json");
        if create_only {
            req = req.if_none_match("*");
        }
        match req.send().await.aws("PutObject") {
            Ok(_) => Ok(true),
            Err(e)
                if e.status == Some(412)
                    || e.code.as_deref() == Some("PreconditionFailed")
                    || e.code.as_deref() == Some("ConditionalRequestConflict") =>
            {
                Ok(false)
            }
            Err(e) => Err(e),
        }
    }

    /// Takes the lock for `operation`, or fails at once naming the holder. An expired lock
    /// is taken over. The returned guard renews the lock until released.
    pub async fn acquire(&self, stack: &str, operation: &str) -> Result<LockGuard, LockError> {
        self.ensure().await?;
        let host = std::env::var("HOSTNAME").ok().filter(|h| !h.is_empty()).unwrap_or_else(|| "localhost".to_owned());
        let user = std::env::var("USER").unwrap_or_else(|_| "unknown".to_owned());
        let info = LockInfo {
            owner: format!("{user}@{host} pid {}", std::process::id()),
            host,
            operation: operation.to_owned(),
            started: now(),
            expires: now() + LOCK_TTL.as_secs(),
            id: format!("{:016x}", fastrand::u64(..)),
        };
        for _ in 0..2 {
            if self.put_lock(stack, &info, true).await? {
                return Ok(LockGuard::start(self.clone(), stack.to_owned(), info));
            }
            match self.read_lock(stack).await? {
                Some(holder) if holder.expires > now() => {
                    return Err(LockError::Held { stack: stack.to_owned(), holder });
                }
                Some(stale) => {
                    tracing::warn!(stack, holder = %stale.owner, "taking over an expired stack lock");
                    self.delete_lock(stack).await?;
                }
                None => {}
            }
        }
        match self.read_lock(stack).await? {
            Some(holder) => Err(LockError::Held { stack: stack.to_owned(), holder }),
            None => Err(LockError::Aws(AwsError::new("PutObject", "LockRace", "the lock changed hands twice; retry"))),
        }
    }

    async fn delete_lock(&self, stack: &str) -> Result<(), AwsError> {
        self.s3.delete_object().bucket(&self.bucket).key(Self::lock_key(stack)).send().await.aws("DeleteObject")?;
        Ok(())
    }

    /// Removes the lock whoever holds it (for a stale lock of a run that is gone). Returns
    /// the removed lock.
    pub async fn unlock(&self, stack: &str) -> Result<Option<LockInfo>, AwsError> {
        let held = match self.read_lock(stack).await {
            Ok(h) => h,
            Err(e) if e.is_not_found() => None,
            Err(e) => return Err(e),
        };
        if held.is_some() {
            self.delete_lock(stack).await?;
        }
        Ok(held)
    }

    /// Records the outputs of a successful apply.
    pub async fn save_outputs(&self, stack: &str, json: &serde_json::Value) -> Result<(), AwsError> {
        let body = serde_json::to_vec_pretty(json).unwrap_or_default();
        self.s3
            .put_object()
            .bucket(&self.bucket)
            .key(Self::outputs_key(stack))
            .body(ByteStream::from(body))
            .content_type("application/json")
            .send()
            .await
            .aws("PutObject")?;
        Ok(())
    }

    /// The outputs of the last successful apply.
    pub async fn load_outputs(&self, stack: &str) -> Result<Option<serde_json::Value>, AwsError> {
        match self.read_json(&Self::outputs_key(stack)).await {
            Err(e) if e.is_not_found() => Ok(None),
            other => other,
        }
    }

    /// Forgets the outputs (after destroy).
    pub async fn delete_outputs(&self, stack: &str) -> Result<(), AwsError> {
        match self
            .s3
            .delete_object()
            .bucket(&self.bucket)
            .key(Self::outputs_key(stack))
            .send()
            .await
            .aws("DeleteObject")
        {
            Ok(_) => Ok(()),
            Err(e) if e.is_not_found() => Ok(()),
            Err(e) => Err(e),
        }
    }
}

/// A held lock, renewed in the background until [`LockGuard::release`].
#[derive(Debug)]
pub struct LockGuard {
    control: ControlBucket,
    stack: String,
    renewer: JoinHandle<()>,
}

impl LockGuard {
    fn start(control: ControlBucket, stack: String, info: LockInfo) -> Self {
        let c = control.clone();
        let s = stack.clone();
        let renewer = tokio::spawn(async move {
            let mut info = info;
            loop {
                tokio::time::sleep(RENEW_EVERY).await;
                info.expires = now() + LOCK_TTL.as_secs();
                if let Err(e) = c.put_lock(&s, &info, false).await {
                    tracing::warn!(stack = %s, error = %e, "renewing the stack lock failed; retrying");
                }
            }
        });
        LockGuard { control, stack, renewer }
    }

    /// Stops renewing and deletes the lock.
    pub async fn release(self) -> Result<(), AwsError> {
        self.renewer.abort();
        self.control.delete_lock(&self.stack).await
    }
}

impl Drop for LockGuard {
    fn drop(&mut self) {
        // A dropped (not released) guard stops renewing: the lock then expires on its own.
        self.renewer.abort();
    }
}
