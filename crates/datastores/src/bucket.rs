//! The S3 storage bucket `<stack>-storage-<account id>`: versioning, default encryption,
//! all four public-access blocks, a TLS-only bucket policy, tags and a lifecycle rule that
//! aborts incomplete multipart uploads. Destroy drains every version and delete marker, and
//! only when the data policy allows it.

use std::sync::Arc;

use async_trait::async_trait;
use dify_stack_core::ids::{Arn, BucketName};
use dify_stack_core::{Action, Change, Context, Planned, Provisioner, ResourceRef, SpecErrors, Tags, Tier};
use serde::Serialize;
use serde_json::{Value, json};

use crate::client::{BucketInfo, S3Api};
use crate::common::{DataPolicy, DatastoresError, Result};
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
}

impl std::fmt::Debug for BucketProvisioner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BucketProvisioner").finish_non_exhaustive()
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
        BucketProvisioner { s3 }
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
            let (page, next) =
                self.s3.list_versions(BucketName::new(name.clone()), marker).await.at("ListObjectVersions", &name)?;
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
        match self.s3.describe(BucketName::new(name)).await.at("HeadBucket", name)? {
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
        let (page, _) = self.s3.list_versions(BucketName::new(name), None).await.at("ListObjectVersions", name)?;
        Ok(page.is_empty())
    }

    async fn drain(&self, name: &str) -> Result<usize> {
        let mut deleted = 0;
        loop {
            // Always list from the start: deleting shifts the markers.
            let (page, _) = self.s3.list_versions(BucketName::new(name), None).await.at("ListObjectVersions", name)?;
            if page.is_empty() {
                return Ok(deleted);
            }
            for chunk in page.chunks(1000) {
                let failed =
                    self.s3.delete_versions(BucketName::new(name), chunk.to_vec()).await.at("DeleteObjects", name)?;
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

/// One setting of the bucket that apply puts, with what the plan shows as its value before.
#[derive(Debug, Clone, PartialEq)]
enum Setting {
    /// Our tags are missing or differ: the whole tag set is put (S3 replaces it), ours merged
    /// over the bucket's.
    Tags {
        drift: dify_stack_core::TagDrift,
        all: Tags,
    },
    PublicAccessBlock,
    /// Default encryption: SSE-S3, or SSE-KMS with `key`.
    Encryption {
        before: Option<(String, Option<String>)>,
        alg: String,
        key: Option<String>,
    },
    Versioning,
    /// The TLS-only policy.
    Policy {
        before: Option<String>,
        want: Value,
    },
    /// The rule that aborts incomplete multipart uploads.
    Lifecycle {
        before: Option<i32>,
    },
}

/// The bucket's change: created (then every setting put) or settings put, in this order.
#[derive(Debug, Clone, PartialEq)]
struct BucketChange {
    name: String,
    create: bool,
    settings: Vec<Setting>,
}

impl Planned for BucketChange {
    fn change(&self) -> Change {
        let action = if self.create { Action::Create } else { Action::Update };
        let mut c = Change::new(action, ResourceRef::new("s3:bucket", &self.name));
        for setting in &self.settings {
            c = match setting {
                // A new bucket's tags are ours: not listed one by one.
                Setting::Tags { .. } if self.create => c,
                Setting::Tags { drift, .. } => c.tag_fields(drift),
                Setting::PublicAccessBlock => {
                    c.field("public_access_block", (!self.create).then_some("incomplete"), Some("all four"))
                }
                Setting::Encryption { before, alg, key } => c.field(
                    "encryption",
                    before.as_ref().map(|e| format!("{e:?}")),
                    Some(if self.create { alg.clone() } else { format!("{:?}", (alg, key)) }),
                ),
                Setting::Versioning => c.field("versioning", (!self.create).then_some(false), Some(true)),
                Setting::Policy { before, want } => {
                    let after = if self.create { "deny non-TLS".to_owned() } else { want.to_string() };
                    c.field("policy", before.as_deref(), Some(after))
                }
                Setting::Lifecycle { before } if self.create => c.field(
                    "lifecycle",
                    before.as_ref(),
                    Some(format!("abort incomplete multipart uploads after {ABORT_MULTIPART_DAYS} days")),
                ),
                Setting::Lifecycle { before } => {
                    c.field("lifecycle.abort_multipart_days", before.as_ref(), Some(ABORT_MULTIPART_DAYS))
                }
            };
        }
        c
    }
}

/// The bucket's change, as [`BucketProvisioner`]'s
/// [`changes`](Provisioner::changes) computes it and its [`execute`](Provisioner::execute)
/// carries it out. Opaque: what a plan shows of it is its [`Planned::change`].
#[derive(Debug, Clone)]
pub struct BucketStep(BucketChange);

impl Planned for BucketStep {
    fn change(&self) -> Change {
        self.0.change()
    }
}

/// The bucket's change against one observation; `None` when converged.
fn changes(ctx: &Context, spec: &DatastoresSpec, o: &Option<BucketInfo>) -> Option<BucketChange> {
    let name = bucket_name(ctx);
    // A bucket to create is compared with an empty one: every setting is put.
    let b = o.clone().unwrap_or_default();
    let tags = ctx.tags_for(Tier::Datastores, "bucket", &name);
    let mut settings = Vec::new();
    let drift: dify_stack_core::TagDrift = dify_stack_core::tag_drift(&tags, &b.tags);
    if !drift.is_empty() {
        let mut all = b.tags.clone();
        all.extend(tags);
        settings.push(Setting::Tags { drift, all });
    }
    if !b.public_access_blocked {
        settings.push(Setting::PublicAccessBlock);
    }
    let (alg, key) = want_encryption(spec);
    if b.encryption.as_ref() != Some(&(alg.clone(), key.clone())) {
        settings.push(Setting::Encryption { before: b.encryption.clone(), alg, key });
    }
    if !b.versioning {
        settings.push(Setting::Versioning);
    }
    let want = tls_only_policy(ctx, &name);
    if b.policy.as_deref().and_then(|p| serde_json::from_str::<Value>(p).ok()).as_ref() != Some(&want) {
        settings.push(Setting::Policy { before: b.policy.clone(), want });
    }
    if b.abort_multipart_days != Some(ABORT_MULTIPART_DAYS) {
        settings.push(Setting::Lifecycle { before: b.abort_multipart_days });
    }
    (o.is_none() || !settings.is_empty()).then_some(BucketChange { name, create: o.is_none(), settings })
}

#[async_trait]
impl Provisioner for BucketProvisioner {
    type Spec = DatastoresSpec;
    type Observed = Option<BucketInfo>;
    type Output = BucketOutput;
    type Error = DatastoresError;
    /// The context names the bucket: destroy needs nothing else.
    type Selector = ();
    type Change = BucketStep;

    /// Needs only the context (account id) and `spec.bucket`: the bucket waits for no other
    /// tier, so the rest of the spec (subnets, security groups, the other stores) is not
    /// checked here; the account id that the bucket name embeds is.
    fn validate(&self, ctx: &Context, _spec: &DatastoresSpec) -> Result<(), SpecErrors> {
        let name = bucket_name(ctx);
        let mut errs = SpecErrors::new();
        if ctx.account_id().is_none() {
            errs.push("account_id", "the bucket name embeds the account id", "set it with Context::with_account_id");
        }
        if let Err(e) = dify_stack_core::NameKind::S3Bucket.check(&name) {
            errs.push("stack", e.to_string(), "choose a shorter stack name");
        }
        errs.into_result()
    }

    async fn observe(&self, ctx: &Context, _spec: &DatastoresSpec) -> Result<Option<BucketInfo>> {
        let name = bucket_name(ctx);
        let b = self.s3.describe(BucketName::new(name.clone())).await.at("HeadBucket", &name)?;
        if let Some(b) = &b
            && !self.interrupted_create(&name, b).await?
        {
            NotOwned::check(ctx, "S3 bucket", &name, &b.tags)?;
        }
        Ok(b)
    }

    fn changes(&self, ctx: &Context, spec: &DatastoresSpec, o: &Option<BucketInfo>) -> Vec<BucketStep> {
        changes(ctx, spec, o).map(BucketStep).into_iter().collect()
    }

    /// Executes the typed change of one observation (none: converged).
    async fn execute(
        &self,
        ctx: &Context,
        _spec: &DatastoresSpec,
        _observed: Option<BucketInfo>,
        changes: Vec<BucketStep>,
    ) -> Result<BucketOutput> {
        let name = bucket_name(ctx);
        let Some(BucketStep(change)) = changes.into_iter().next() else { return Ok(bucket_output(ctx)) };
        if change.create {
            match self.s3.create(BucketName::new(name.clone()), ctx.region().to_owned()).await {
                Ok(()) => tracing::info!(bucket = %name, "created bucket"),
                Err(e) if e.code.as_deref() == Some("BucketAlreadyOwnedByYou") => {}
                Err(e) => return Err(e.at("CreateBucket", &name).into()),
            }
        }
        // Tags first: a crash after them leaves a bucket we recognise as ours.
        for setting in change.settings {
            let n = BucketName::new(name.clone());
            match setting {
                Setting::Tags { all, .. } => self.s3.put_tags(n, all).await.at("PutBucketTagging", &name)?,
                Setting::PublicAccessBlock => self.s3.block_public_access(n).await.at("PutPublicAccessBlock", &name)?,
                Setting::Encryption { key, .. } => {
                    self.s3.put_encryption(n, key).await.at("PutBucketEncryption", &name)?
                }
                Setting::Versioning => self.s3.enable_versioning(n).await.at("PutBucketVersioning", &name)?,
                Setting::Policy { want, .. } => {
                    self.s3.put_policy(n, want.to_string()).await.at("PutBucketPolicy", &name)?
                }
                Setting::Lifecycle { .. } => {
                    self.s3.put_lifecycle(n, ABORT_MULTIPART_DAYS).await.at("PutBucketLifecycleConfiguration", &name)?
                }
            }
        }
        Ok(bucket_output(ctx))
    }

    fn output(&self, ctx: &Context, _spec: &DatastoresSpec, observed: &Option<BucketInfo>) -> Option<BucketOutput> {
        observed.as_ref().map(|_| bucket_output(ctx))
    }

    /// Refuses when the bucket holds versions and the policy does not delete data (nothing is
    /// deleted then); otherwise drains every version and delete marker and deletes the bucket.
    fn selector(&self, _ctx: &Context, _spec: &DatastoresSpec) {}

    async fn destroy_selected(&self, ctx: &Context, _selector: &()) -> Result<Vec<ResourceRef>> {
        let policy = DataPolicy::from_context(ctx);
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
        self.s3.delete(BucketName::new(name.clone())).await.at("DeleteBucket", &name)?;
        Ok(vec![ResourceRef::new("s3:bucket", &name).with_id(ctx.partition().arn("s3", "", "", &name))])
    }
}
