//! The stack lock: an object `locks/<stack>.json` written with `If-None-Match: *` into a
//! per-account, per-region control bucket `dify-stack-control-<account>-<region>` that is
//! created on first use (private, encrypted, versioned, tagged). Apply and destroy hold it and
//! renew it while they run; a second run fails at once naming the holder; an expired lock is
//! taken over; [`unlock`] removes a stale one. The last successful apply's outputs (ids, ARNs
//! and endpoints, never secret values) are kept beside it in `outputs/<stack>.json`, and the
//! operators who applied from their own address (`eks.kubernetes_access = caller_address`) in
//! `operators/<stack>.json` ([`Operators`]): each one's /32 stays on the cluster's public
//! endpoint until it goes stale, whoever applies next.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
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
#[non_exhaustive]
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
        holder: Box<LockInfo>,
    },
    /// Another run took the lock while this one held it (this run's renewals stopped, e.g.
    /// suspended past the expiry, or `unlock` was run). Its lock was left alone.
    #[error(
        "the lock of stack {stack} was taken by another run while this one held it (expired or removed with unlock); what this run changed stands, check what the other run did before going on"
    )]
    Lost {
        /// Stack.
        stack: String,
    },
    /// S3 failed.
    #[error("stack lock: {0}")]
    Aws(#[from] AwsError),
}

impl dify_stack_core::Classify for LockError {
    fn kind(&self) -> dify_stack_core::ErrorKind {
        use dify_stack_core::ErrorKind;
        match self {
            // Busy: the holder's run ends (or its lock expires) without any change on our side.
            LockError::Held { .. } => ErrorKind::InvalidState,
            // What the other run did must be checked first: nothing to retry on its own.
            LockError::Lost { .. } => ErrorKind::Failed,
            LockError::Aws(e) => e.kind,
        }
    }
}

/// How many days an operator's address stays on the public endpoint after its last apply, unless
/// the configuration says otherwise.
pub const DEFAULT_OPERATOR_CIDR_TTL_DAYS: u32 = 30;

/// One operator's entry: the address an apply ran from, when, and who ran it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OperatorEntry {
    /// The address as a /32 (`198.51.100.7/32`), as the public endpoint admits it.
    pub cidr: String,
    /// Seconds since the epoch of the last apply (or plan's connect) from this address.
    pub last_used: u64,
    /// Who applied from it last (the caller identity ARN of sts:GetCallerIdentity).
    pub identity_arn: String,
}

/// The operators of a stack, one entry per address: the EKS tier's `operator_cidrs`, kept in
/// the control bucket so that one operator's apply keeps the others' addresses.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Operators {
    /// The entries, sorted by address.
    pub entries: Vec<OperatorEntry>,
}

impl Operators {
    /// Records use of `address` by `identity_arn` at `now`: its entry is added or refreshed.
    pub fn touch(&mut self, address: std::net::Ipv4Addr, identity_arn: &str, now: u64) {
        let cidr = format!("{address}/32");
        match self.entries.iter_mut().find(|e| e.cidr == cidr) {
            Some(e) => {
                e.last_used = e.last_used.max(now);
                e.identity_arn = identity_arn.to_owned();
            }
            None => self.entries.push(OperatorEntry { cidr, last_used: now, identity_arn: identity_arn.to_owned() }),
        }
        self.entries.sort_by(|a, b| a.cidr.cmp(&b.cidr));
    }

    /// Drops the stale entries and returns them: those last used more than `ttl_days` before
    /// `now`, and those `remove` names (an address, with or without `/32`). The entry of `keep`
    /// (this caller's address) is never dropped: removing the address apply runs from would
    /// lock it out of the Kubernetes API it is about to use.
    pub fn prune(
        &mut self,
        ttl_days: u32,
        remove: &[String],
        keep: Option<std::net::Ipv4Addr>,
        now: u64,
    ) -> Vec<OperatorEntry> {
        let keep = keep.map(|a| format!("{a}/32"));
        let named = |cidr: &str| remove.iter().any(|r| r == cidr || format!("{r}/32") == cidr);
        let ttl = u64::from(ttl_days) * 24 * 60 * 60;
        let (dropped, kept) = std::mem::take(&mut self.entries).into_iter().partition(|e: &OperatorEntry| {
            keep.as_deref() != Some(e.cidr.as_str()) && (named(&e.cidr) || now.saturating_sub(e.last_used) > ttl)
        });
        self.entries = kept;
        dropped
    }

    /// The addresses, for the EKS tier's `operator_cidrs`.
    pub fn cidrs(&self) -> Vec<String> {
        self.entries.iter().map(|e| e.cidr.clone()).collect()
    }
}

/// How a lock write is conditioned.
#[derive(Debug, Clone, Copy)]
enum Write<'a> {
    /// Only when no lock exists (`If-None-Match: *`).
    Create,
    /// Only when the lock is still the one we wrote (`If-Match: <etag>`; S3 conditional writes,
    /// S3 user guide, "Add preconditions to S3 operations with conditional requests").
    Replace(&'a str),
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
        dify_stack_aws::s3::block_public_access(&self.s3, &self.bucket).await?;
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

    fn operators_key(stack: &str) -> String {
        format!("operators/{stack}.json")
    }

    /// The stack's operators (none when nothing was recorded yet). Read-only: plan may call it.
    pub async fn load_operators(&self, stack: &str) -> Result<Operators, AwsError> {
        match self.read_json(&Self::operators_key(stack)).await {
            Ok(found) => Ok(found.unwrap_or_default()),
            Err(e) if e.is_not_found() => Ok(Operators::default()),
            Err(e) => Err(e),
        }
    }

    /// Records the stack's operators (under the stack lock: apply).
    pub async fn save_operators(&self, stack: &str, operators: &Operators) -> Result<(), AwsError> {
        self.write_json(Self::operators_key(stack), operators).await
    }

    /// Writes one JSON object of the control bucket.
    async fn write_json(&self, key: String, value: &impl Serialize) -> Result<(), AwsError> {
        let body = serde_json::to_vec_pretty(value).unwrap_or_default();
        self.s3
            .put_object()
            .bucket(&self.bucket)
            .key(key)
            .body(ByteStream::from(body))
            .content_type("application/json")
            .send()
            .await
            .aws("PutObject")?;
        Ok(())
    }

    /// Forgets the stack's operators (after destroy).
    pub async fn delete_operators(&self, stack: &str) -> Result<(), AwsError> {
        self.delete_key(Self::operators_key(stack)).await
    }

    /// Deletes one object of the control bucket; one already gone is not an error.
    async fn delete_key(&self, key: String) -> Result<(), AwsError> {
        match self.s3.delete_object().bucket(&self.bucket).key(key).send().await.aws("DeleteObject") {
            Ok(_) => Ok(()),
            Err(e) if e.is_not_found() => Ok(()),
            Err(e) => Err(e),
        }
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

    /// Writes the lock under `write`'s condition: its new ETag, or `None` when the condition
    /// failed (someone else's lock is there).
    async fn put_lock(&self, stack: &str, info: &LockInfo, write: Write<'_>) -> Result<Option<String>, AwsError> {
        let body = serde_json::to_vec(info).unwrap_or_default();
        let mut req = self
            .s3
            .put_object()
            .bucket(&self.bucket)
            .key(Self::lock_key(stack))
            .body(ByteStream::from(body))
            .content_type("application/json");
        req = match write {
            Write::Create => req.if_none_match("*"),
            Write::Replace(etag) => req.if_match(etag),
        };
        match req.send().await.aws("PutObject") {
            Ok(out) => Ok(Some(out.e_tag().unwrap_or_default().to_owned())),
            Err(e)
                if e.status == Some(412)
                    || e.code.as_deref() == Some("PreconditionFailed")
                    || e.code.as_deref() == Some("ConditionalRequestConflict") =>
            {
                Ok(None)
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
            if let Some(etag) = self.put_lock(stack, &info, Write::Create).await? {
                return Ok(LockGuard::start(self.clone(), stack.to_owned(), info, etag));
            }
            match self.read_lock(stack).await? {
                Some(holder) if holder.expires > now() => {
                    return Err(LockError::Held { stack: stack.to_owned(), holder: Box::new(holder) });
                }
                Some(stale) => {
                    tracing::warn!(stack, holder = %stale.owner, "taking over an expired stack lock");
                    self.delete_lock(stack).await?;
                }
                None => {}
            }
        }
        match self.read_lock(stack).await? {
            Some(holder) => Err(LockError::Held { stack: stack.to_owned(), holder: Box::new(holder) }),
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
        self.write_json(Self::outputs_key(stack), json).await
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
        self.delete_key(Self::outputs_key(stack)).await
    }
}

/// A held lock, renewed in the background until [`LockGuard::release`]. Each renewal is
/// conditional on the lock still being the one this run wrote; a lock another run took over is
/// detected ([`LockError::Lost`]) and never overwritten or deleted.
#[derive(Debug)]
pub struct LockGuard {
    held: Arc<Held>,
    renewer: JoinHandle<()>,
}

#[derive(Debug)]
struct Held {
    control: ControlBucket,
    stack: String,
    info: Mutex<(LockInfo, String)>,
    lost: AtomicBool,
}

impl Held {
    async fn renew(&self) -> Result<(), LockError> {
        if self.lost.load(Ordering::SeqCst) {
            return Err(LockError::Lost { stack: self.stack.clone() });
        }
        let (mut info, etag) = self.info.lock().unwrap_or_else(|e| e.into_inner()).clone();
        info.expires = now() + LOCK_TTL.as_secs();
        match self.control.put_lock(&self.stack, &info, Write::Replace(&etag)).await? {
            Some(etag) => {
                *self.info.lock().unwrap_or_else(|e| e.into_inner()) = (info, etag);
                Ok(())
            }
            None => {
                self.lost.store(true, Ordering::SeqCst);
                Err(LockError::Lost { stack: self.stack.clone() })
            }
        }
    }
}

impl LockGuard {
    fn start(control: ControlBucket, stack: String, info: LockInfo, etag: String) -> Self {
        let held = Arc::new(Held { control, stack, info: Mutex::new((info, etag)), lost: AtomicBool::new(false) });
        let h = held.clone();
        let renewer = tokio::spawn(async move {
            loop {
                tokio::time::sleep(RENEW_EVERY).await;
                match h.renew().await {
                    Ok(()) => {}
                    Err(e @ LockError::Lost { .. }) => {
                        tracing::error!(stack = %h.stack, error = %e, "stack lock lost");
                        return;
                    }
                    Err(e) => tracing::warn!(stack = %h.stack, error = %e, "renewing the stack lock failed; retrying"),
                }
            }
        });
        LockGuard { held, renewer }
    }

    /// Renews the lock now (the background task does it every [`RENEW_EVERY`]).
    pub async fn renew(&self) -> Result<(), LockError> {
        self.held.renew().await
    }

    /// Stops renewing and deletes the lock, unless another run took it: then it is left alone
    /// and the answer is [`LockError::Lost`].
    pub async fn release(self) -> Result<(), LockError> {
        self.renewer.abort();
        let held = &self.held;
        let id = held.info.lock().unwrap_or_else(|e| e.into_inner()).0.id.clone();
        let current = held.control.read_lock(&held.stack).await?;
        if held.lost.load(Ordering::SeqCst) || current.as_ref().is_some_and(|c| c.id != id) {
            return Err(LockError::Lost { stack: held.stack.clone() });
        }
        held.control.delete_lock(&held.stack).await?;
        Ok(())
    }
}

impl Drop for LockGuard {
    fn drop(&mut self) {
        // A dropped (not released) guard stops renewing: the lock then expires on its own.
        self.renewer.abort();
    }
}

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;

    use super::*;

    const DAY: u64 = 24 * 60 * 60;

    /// A held lock clears on its own (retryable), a lost one needs a look first, S3 keeps its kind.
    #[test]
    fn lock_errors_classify() {
        use dify_stack_core::{Classify as _, ErrorKind};
        let holder = Box::new(LockInfo {
            owner: "ops@host pid 1".into(),
            host: "host".into(),
            operation: "apply".into(),
            started: 0,
            expires: 0,
            id: "x".into(),
        });
        let held = LockError::Held { stack: "s".into(), holder };
        assert_eq!(held.kind(), ErrorKind::InvalidState);
        assert!(held.is_retryable());
        let lost = LockError::Lost { stack: "s".into() };
        assert_eq!(lost.kind(), ErrorKind::Failed);
        assert!(!lost.is_retryable());
        let denied = LockError::Aws(AwsError::new("PutObject", "AccessDenied", "no"));
        assert_eq!(denied.kind(), ErrorKind::AccessDenied);
        let busy = LockError::Aws(AwsError::new("PutObject", "ThrottlingException", "slow down"));
        assert_eq!(busy.kind(), ErrorKind::Throttled);
    }

    #[test]
    fn operators_are_kept_per_address_until_stale_or_removed() {
        let (a, b, c) = (Ipv4Addr::new(198, 51, 100, 7), Ipv4Addr::new(203, 0, 113, 9), Ipv4Addr::new(192, 0, 2, 1));
        let mut ops = Operators::default();
        ops.touch(b, "arn:aws:iam::1:user/bob", 100 * DAY);
        ops.touch(a, "arn:aws:sts::1:assumed-role/admin/alice", 100 * DAY);
        ops.touch(c, "arn:aws:iam::1:user/carol", 60 * DAY);
        assert_eq!(ops.cidrs(), ["192.0.2.1/32", "198.51.100.7/32", "203.0.113.9/32"]);
        // A later apply from a's address by someone else refreshes the one entry.
        ops.touch(a, "arn:aws:iam::1:user/dave", 110 * DAY);
        assert_eq!(ops.entries.len(), 3);
        assert_eq!(ops.entries[1].identity_arn, "arn:aws:iam::1:user/dave");
        assert_eq!(ops.entries[1].last_used, 110 * DAY);

        // At day 120 with a 30-day TTL: c (day 60) is stale, b (day 100) and a (day 110) stay.
        let mut pruned = ops.clone();
        let dropped = pruned.prune(30, &[], Some(b), 120 * DAY);
        assert_eq!(dropped.iter().map(|e| e.cidr.as_str()).collect::<Vec<_>>(), ["192.0.2.1/32"]);
        assert_eq!(pruned.cidrs(), ["198.51.100.7/32", "203.0.113.9/32"]);
        // An explicit removal (address with or without /32); the caller's own entry never goes.
        let mut pruned = ops.clone();
        let dropped = pruned.prune(365, &["203.0.113.9".into(), "198.51.100.7/32".into()], Some(a), 120 * DAY);
        assert_eq!(dropped.iter().map(|e| e.cidr.as_str()).collect::<Vec<_>>(), ["203.0.113.9/32"]);
        assert_eq!(pruned.cidrs(), ["192.0.2.1/32", "198.51.100.7/32"]);
        // The record round-trips as JSON.
        let json = serde_json::to_string(&ops).unwrap();
        assert_eq!(serde_json::from_str::<Operators>(&json).unwrap(), ops);
    }
}
