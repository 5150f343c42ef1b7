//! The S3 storage bucket `<stack>-storage-<account id>`: versioning, default encryption,
//! all four public-access blocks, a TLS-only bucket policy, tags and a lifecycle rule that
//! aborts incomplete multipart uploads. Destroy drains every version and delete marker, and
//! only when the data policy allows it.

use std::sync::Arc;

use async_trait::async_trait;
use dify_stack_core::ids::{Arn, BucketName};
use dify_stack_core::{Action, Change, Context, Plan, Provisioner, ResourceRef, SpecErrors, Tier};
use serde::Serialize;
use serde_json::{Value, json};

use crate::client::{BucketInfo, S3Api};
use crate::common::{DataPolicy, DatastoresError, Result, tag_drift};
use crate::spec::DatastoresSpec;
use dify_stack_core::{AwsAt, NotOwned};

/// Id of our lifecycle rule.
pub const LIFECYCLE_RULE_ID: &str = "dify-stack-abort-incomplete-multipart";
/// Days after which incomplete multipart uploads are aborted.
pub const ABORT_MULTIPART_DAYS: i32 = 7;

/// The bucket name, `<stack>-storage-<account id>`.
pub fn bucket_name(ctx: &Context) -> String {
    crate::names::bucket(ctx)
}

fn bucket_output(ctx: &Context) -> BucketOutput {
    let name = bucket_name(ctx);
    BucketOutput {
        arn: Arn::new(ctx.partition().arn("s3", "", "", &name)),
        name: BucketName::new(name),
        region: ctx.region().to_owned(),
    }
}

/// The bucket policy: deny every request that does not use TLS.
pub fn tls_only_policy(ctx: &Context, bucket: &str) -> Value {
    let arn = ctx.partition().arn("s3", "", "", bucket);
    json!({
        "Version": "2012-10-17",
        "Statement": [{
            "Sid": "DenyInsecureTransport",
            "Effect": "Deny",
            "Principal": "*",
            "Action": "s3:*",
            "Resource": [arn.clone(), format!("{arn}/*")],
            "Condition": { "Bool": { "aws:SecureTransport": "false" } },
        }],
    })
}

/// What the bucket hands on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct BucketOutput {
    /// Name.
    pub name: BucketName,
    /// ARN.
    pub arn: Arn,
    /// Region.
    pub region: String,
}

/// Provisions the bucket.
#[derive(Clone)]
pub struct BucketProvisioner {
    s3: Arc<dyn S3Api>,
    policy: Option<DataPolicy>,
}

impl std::fmt::Debug for BucketProvisioner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BucketProvisioner").field("policy", &self.policy).finish_non_exhaustive()
    }
}

/// The ARN of the bucket's SSE-KMS key, for IAM policies (which need the key ARN, not an id):
/// a given ARN as is, a key id made into `arn:<partition>:kms:<region>:<account>:key/<id>`.
/// `None` for SSE-S3.
pub fn kms_key_arn(ctx: &Context, spec: &crate::spec::BucketSpec) -> Option<String> {
    let key = spec.kms_key_id.as_deref()?;
    Some(if key.starts_with("arn:") {
        key.to_owned()
    } else {
        ctx.partition().arn("kms", ctx.region(), ctx.account_id().unwrap_or("unknown-account"), &format!("key/{key}"))
    })
}

fn want_encryption(spec: &DatastoresSpec) -> (String, Option<String>) {
    match &spec.bucket.kms_key_id {
        Some(k) => ("aws:kms".to_owned(), Some(k.clone())),
        None => ("AES256".to_owned(), None),
    }
}

impl BucketProvisioner {
    /// A provisioner over the given client.
    pub fn new(s3: Arc<dyn S3Api>) -> Self {
        BucketProvisioner { s3, policy: None }
    }

    /// Sets the data policy for destroy (default: [`DataPolicy::from_context`]).
    pub fn with_data_policy(mut self, policy: DataPolicy) -> Self {
        self.policy = Some(policy);
        self
    }

    /// Number of object versions and delete markers in our bucket (0 when absent or not ours).
    pub async fn version_count(&self, ctx: &Context) -> Result<usize> {
        let name = bucket_name(ctx);
        if !self.ours(ctx, &name).await? {
            return Ok(0);
        }
        let mut count = 0;
        let mut marker = None;
        loop {
            let (page, next) = self.s3.list_versions(name.clone(), marker).await.at("ListObjectVersions", &name)?;
            count += page.len();
            marker = next;
            if marker.is_none() {
                return Ok(count);
            }
        }
    }

    /// What would stop destroy under `policy`; empty when nothing.
    pub async fn data_holders(&self, ctx: &Context, policy: DataPolicy) -> Result<Vec<String>> {
        if policy.delete_data {
            return Ok(Vec::new());
        }
        let n = self.version_count(ctx).await?;
        Ok(if n > 0 {
            vec![format!("bucket {} holds {n} object versions and delete markers", bucket_name(ctx))]
        } else {
            Vec::new()
        })
    }

    /// Whether the bucket exists and is ours (tagged, or our interrupted create).
    async fn ours(&self, ctx: &Context, name: &str) -> Result<bool> {
        match self.s3.describe(name.to_owned()).await.at("HeadBucket", name)? {
            Some(b) => Ok(ctx.owns_tags(&b.tags) || self.interrupted_create(name, &b).await?),
            None => Ok(false),
        }
    }

    /// S3 cannot tag a bucket in the create call: a run that died between CreateBucket and
    /// PutBucketTagging leaves our bucket untagged. A bucket with our derived name (which
    /// embeds our account id), in our account (HeadBucket succeeded), with no tags at all and no
    /// objects is that bucket, and is adopted; anything else without our tag is refused.
    async fn interrupted_create(&self, name: &str, b: &BucketInfo) -> Result<bool> {
        if !b.tags.is_empty() {
            return Ok(false);
        }
        let (page, _) = self.s3.list_versions(name.to_owned(), None).await.at("ListObjectVersions", name)?;
        Ok(page.is_empty())
    }

    async fn drain(&self, name: &str) -> Result<usize> {
        let mut deleted = 0;
        loop {
            // Always list from the start: deleting shifts the markers.
            let (page, _) = self.s3.list_versions(name.to_owned(), None).await.at("ListObjectVersions", name)?;
            if page.is_empty() {
                return Ok(deleted);
            }
            for chunk in page.chunks(1000) {
                let failed =
                    self.s3.delete_versions(name.to_owned(), chunk.to_vec()).await.at("DeleteObjects", name)?;
                if !failed.is_empty() {
                    return Err(DatastoresError::Failed {
                        kind: "bucket drain",
                        name: name.to_owned(),
                        status: format!("{} objects could not be deleted, e.g. {:?}", failed.len(), failed.first()),
                    });
                }
                deleted += chunk.len();
            }
        }
    }
}

#[async_trait]
impl Provisioner for BucketProvisioner {
    type Spec = DatastoresSpec;
    type Observed = Option<BucketInfo>;
    type Output = BucketOutput;
    type Error = DatastoresError;

    fn validate(&self, ctx: &Context, spec: &DatastoresSpec) -> Result<(), SpecErrors> {
        spec.validate(ctx)
    }

    async fn observe(&self, ctx: &Context, _spec: &DatastoresSpec) -> Result<Option<BucketInfo>> {
        let name = bucket_name(ctx);
        let b = self.s3.describe(name.clone()).await.at("HeadBucket", &name)?;
        if let Some(b) = &b
            && !self.interrupted_create(&name, b).await?
        {
            NotOwned::check(ctx, "S3 bucket", &name, &b.tags)?;
        }
        Ok(b)
    }

    fn diff(&self, ctx: &Context, spec: &DatastoresSpec, o: &Option<BucketInfo>) -> Plan {
        let name = bucket_name(ctx);
        let r = ResourceRef::new("s3:bucket", &name);
        let mut plan = Plan::new();
        let (alg, key) = want_encryption(spec);
        let Some(b) = o else {
            plan.push(
                Change::new(Action::Create, r)
                    .field("versioning", None::<bool>, Some(true))
                    .field("encryption", None::<&str>, Some(&alg))
                    .field("public_access_block", None::<&str>, Some("all four"))
                    .field("policy", None::<&str>, Some("deny non-TLS"))
                    .field(
                        "lifecycle",
                        None::<&str>,
                        Some(format!("abort incomplete multipart uploads after {ABORT_MULTIPART_DAYS} days")),
                    ),
            );
            return plan;
        };
        let mut c = Change::new(Action::Update, r);
        if !b.versioning {
            c = c.field("versioning", Some(false), Some(true));
        }
        if b.encryption.as_ref() != Some(&(alg.clone(), key.clone())) {
            c = c.field(
                "encryption",
                b.encryption.as_ref().map(|e| format!("{e:?}")),
                Some(format!("{:?}", (alg, key))),
            );
        }
        if !b.public_access_blocked {
            c = c.field("public_access_block", Some("incomplete"), Some("all four"));
        }
        let want_policy = tls_only_policy(ctx, &name);
        let have_policy: Option<Value> = b.policy.as_deref().and_then(|p| serde_json::from_str(p).ok());
        if have_policy.as_ref() != Some(&want_policy) {
            c = c.field("policy", b.policy.as_deref(), Some(want_policy.to_string()));
        }
        if b.abort_multipart_days != Some(ABORT_MULTIPART_DAYS) {
            c = c.field("lifecycle.abort_multipart_days", b.abort_multipart_days, Some(ABORT_MULTIPART_DAYS));
        }
        let tags = ctx.tags_for(Tier::Datastores, "bucket", &name);
        for (k, v) in tag_drift(&tags, &b.tags) {
            c = c.field(format!("tags.{k}"), b.tags.get(&k), Some(v));
        }
        if !c.fields.is_empty() {
            plan.push(c);
        }
        plan
    }

    /// Needs only the context (account id) and `spec.bucket`: the bucket waits for no other tier.
    async fn apply(&self, ctx: &Context, spec: &DatastoresSpec) -> Result<BucketOutput> {
        let name = bucket_name(ctx);
        let mut errs = SpecErrors::new();
        if ctx.account_id().is_none() {
            errs.push("account_id", "the bucket name embeds the account id", "set it with Context::with_account_id");
        }
        if let Err(e) = dify_stack_core::NameKind::S3Bucket.check(&name) {
            errs.push("stack", e.to_string(), "choose a shorter stack name");
        }
        errs.into_result()?;
        let tags = ctx.tags_for(Tier::Datastores, "bucket", &name);
        let have = match self.observe(ctx, spec).await? {
            Some(b) => b,
            None => {
                match self.s3.create(name.clone(), ctx.region().to_owned()).await {
                    Ok(()) => tracing::info!(bucket = %name, "created bucket"),
                    Err(e) if e.code.as_deref() == Some("BucketAlreadyOwnedByYou") => {}
                    Err(e) => return Err(e.at("CreateBucket", &name).into()),
                }
                // Tags first: a crash after this point leaves a bucket we recognise as ours.
                self.s3.put_tags(name.clone(), tags.clone()).await.at("PutBucketTagging", &name)?;
                BucketInfo { tags: tags.clone(), ..Default::default() }
            }
        };
        if !tag_drift(&tags, &have.tags).is_empty() {
            let mut all = have.tags.clone();
            all.extend(tags);
            self.s3.put_tags(name.clone(), all).await.at("PutBucketTagging", &name)?;
        }
        if !have.public_access_blocked {
            self.s3.block_public_access(name.clone()).await.at("PutPublicAccessBlock", &name)?;
        }
        let (alg, key) = want_encryption(spec);
        if have.encryption.as_ref() != Some(&(alg, key.clone())) {
            self.s3.put_encryption(name.clone(), key).await.at("PutBucketEncryption", &name)?;
        }
        if !have.versioning {
            self.s3.enable_versioning(name.clone()).await.at("PutBucketVersioning", &name)?;
        }
        let policy = tls_only_policy(ctx, &name);
        if have.policy.as_deref().and_then(|p| serde_json::from_str::<Value>(p).ok()).as_ref() != Some(&policy) {
            self.s3.put_policy(name.clone(), policy.to_string()).await.at("PutBucketPolicy", &name)?;
        }
        if have.abort_multipart_days != Some(ABORT_MULTIPART_DAYS) {
            self.s3
                .put_lifecycle(name.clone(), ABORT_MULTIPART_DAYS)
                .await
                .at("PutBucketLifecycleConfiguration", &name)?;
        }
        Ok(bucket_output(ctx))
    }

    fn output(&self, ctx: &Context, _spec: &DatastoresSpec, observed: &Option<BucketInfo>) -> Option<BucketOutput> {
        observed.as_ref().map(|_| bucket_output(ctx))
    }

    /// Refuses when the bucket holds versions and the policy does not delete data (nothing is
    /// deleted then); otherwise drains every version and delete marker and deletes the bucket.
    async fn destroy(&self, ctx: &Context, _spec: &DatastoresSpec) -> Result<Vec<ResourceRef>> {
        let policy = self.policy.unwrap_or_else(|| DataPolicy::from_context(ctx));
        let holders = self.data_holders(ctx, policy).await?;
        if !holders.is_empty() {
            return Err(DatastoresError::DataLossRefused {
                holders,
                hint: "set delete_data in the data policy (--delete-data) to empty it".to_owned(),
            });
        }
        let name = bucket_name(ctx);
        if !self.ours(ctx, &name).await? {
            return Ok(Vec::new());
        }
        let drained = self.drain(&name).await?;
        if drained > 0 {
            tracing::info!(bucket = %name, versions = drained, "emptied bucket");
        }
        self.s3.delete(name.clone()).await.at("DeleteBucket", &name)?;
        Ok(vec![ResourceRef::new("s3:bucket", &name).with_id(ctx.partition().arn("s3", "", "", &name))])
    }
}
