//! Datastores tier of [dify-stack](https://github.com/dify-stack/dify-stack): Aurora
//! Serverless v2 PostgreSQL ([`aurora`]), ElastiCache Redis ([`redis`]), OpenSearch
//! ([`opensearch`]) and the S3 storage bucket ([`bucket`]), each with its own provisioner and
//! security group (ingress only from the cluster's security groups, on the store's port), plus
//! the generated secrets ([`secrets`]) and [`DatastoresProvisioner`], which runs the four
//! stores concurrently.
//!
//! Inputs come from the network and EKS tiers as core typed ids; this crate depends on neither.
//! Destroy is data-safe: what holds data is deleted only as the [`DataPolicy`] allows, and the
//! checks run before the first delete, so a refused destroy deletes nothing.

pub mod audit;
pub mod aurora;
pub mod bucket;
pub mod client;
mod common;
mod error;
pub mod names;
pub mod opensearch;
pub mod redis;
mod sdk;
pub mod secrets;
pub mod spec;
#[cfg(test)]
mod tests;

use std::sync::Arc;

use async_trait::async_trait;
use dify_stack_core::{Context, Plan, Provisioner, ResourceRef, SpecErrors};
use serde::Serialize;

pub use aurora::{AuroraOutput, AuroraProvisioner};
pub use bucket::{BucketOutput, BucketProvisioner};
pub use client::{ElastiCacheApi, OpenSearchApi, RdsApi, S3Api, SecretsApi, SgApi};
#[cfg(any(test, feature = "test-util"))]
pub use client::{MockElastiCacheApi, MockOpenSearchApi, MockRdsApi, MockS3Api, MockSecretsApi, MockSgApi};
pub use common::{DataPolicy, DatastoresError, Result, caps};
pub use opensearch::{OpenSearchOutput, OpenSearchProvisioner};
pub use redis::{RedisOutput, RedisProvisioner};
pub use sdk::SdkDatastores;
pub use secrets::{SecretKind, StoredSecret};
pub use spec::{AuroraSpec, BucketSpec, DATABASES, DatastoresSpec, OpenSearchSpec, PlacedSubnet, RedisSpec};

/// What the datastores tier hands on.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DatastoresOutput {
    /// Aurora.
    pub aurora: AuroraOutput,
    /// Redis.
    pub redis: RedisOutput,
    /// OpenSearch.
    pub opensearch: OpenSearchOutput,
    /// The storage bucket.
    pub bucket: BucketOutput,
    /// `<stack>/dify-app`: the Dify application secrets (the value is not serialised).
    pub app_secret: StoredSecret,
}

/// What exists, per store.
#[derive(Debug, Clone, Default)]
pub struct ObservedDatastores {
    /// Aurora.
    pub aurora: aurora::ObservedAurora,
    /// Redis.
    pub redis: redis::ObservedRedis,
    /// OpenSearch.
    pub opensearch: opensearch::ObservedOpenSearch,
    /// Bucket.
    pub bucket: Option<client::BucketInfo>,
    /// The app secret exists.
    pub app_secret: bool,
}

/// The four stores, applied and destroyed concurrently.
#[derive(Debug, Clone)]
pub struct DatastoresProvisioner {
    /// Aurora.
    pub aurora: AuroraProvisioner,
    /// Redis.
    pub redis: RedisProvisioner,
    /// OpenSearch.
    pub opensearch: OpenSearchProvisioner,
    /// Bucket.
    pub bucket: BucketProvisioner,
    secrets: Arc<dyn SecretsApi>,
    policy: Option<DataPolicy>,
}

impl std::fmt::Debug for dyn SecretsApi {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SecretsApi")
    }
}

impl DatastoresProvisioner {
    /// Provisioners over the real AWS APIs.
    pub fn from_conf(config: &aws_types::SdkConfig) -> Self {
        let sdk = Arc::new(SdkDatastores::from_conf(config));
        DatastoresProvisioner {
            aurora: AuroraProvisioner::new(sdk.clone(), sdk.clone(), sdk.clone()),
            redis: RedisProvisioner::new(sdk.clone(), sdk.clone(), sdk.clone()),
            opensearch: OpenSearchProvisioner::new(sdk.clone(), sdk.clone(), sdk.clone()),
            bucket: BucketProvisioner::new(sdk.clone()),
            secrets: sdk,
            policy: None,
        }
    }

    /// Assembles the aggregate from store provisioners (e.g. over mocks).
    pub fn new(
        aurora: AuroraProvisioner,
        redis: RedisProvisioner,
        opensearch: OpenSearchProvisioner,
        bucket: BucketProvisioner,
        secrets: Arc<dyn SecretsApi>,
    ) -> Self {
        DatastoresProvisioner { aurora, redis, opensearch, bucket, secrets, policy: None }
    }

    /// Sets the data policy for destroy (default: [`DataPolicy::from_context`]).
    pub fn with_data_policy(mut self, policy: DataPolicy) -> Self {
        self.policy = Some(policy);
        self.aurora = self.aurora.with_data_policy(policy);
        self.redis = self.redis.with_data_policy(policy);
        self.opensearch = self.opensearch.with_data_policy(policy);
        self.bucket = self.bucket.with_data_policy(policy);
        self
    }

    /// What destroy would refuse to delete under the data policy (empty: destroy may proceed).
    pub async fn data_holders(&self, ctx: &Context, spec: &DatastoresSpec) -> Result<Vec<String>> {
        let policy = self.policy.unwrap_or_else(|| DataPolicy::from_context(ctx));
        let (a, b) = futures::future::try_join(
            self.aurora.data_holders(ctx, spec, policy),
            self.bucket.data_holders(ctx, policy),
        )
        .await?;
        Ok(a.into_iter().chain(b).collect())
    }
}

fn gather<T>(results: Vec<Result<T>>) -> Result<Vec<T>> {
    let mut ok = Vec::new();
    let mut errors = Vec::new();
    for r in results {
        match r {
            Ok(v) => ok.push(v),
            Err(DatastoresError::Several(inner)) => errors.extend(inner),
            Err(e) => errors.push(e),
        }
    }
    match errors.len() {
        0 => Ok(ok),
        1 => Err(errors.remove(0)),
        _ => Err(DatastoresError::Several(errors)),
    }
}

#[async_trait]
impl Provisioner for DatastoresProvisioner {
    type Spec = DatastoresSpec;
    type Observed = ObservedDatastores;
    type Output = DatastoresOutput;
    type Error = DatastoresError;

    fn validate(&self, ctx: &Context, spec: &DatastoresSpec) -> Result<(), SpecErrors> {
        spec.validate(ctx)
    }

    async fn observe(&self, ctx: &Context, spec: &DatastoresSpec) -> Result<ObservedDatastores> {
        let (aurora, redis, opensearch, bucket, app_secret) = futures::future::try_join5(
            self.aurora.observe(ctx, spec),
            self.redis.observe(ctx, spec),
            self.opensearch.observe(ctx, spec),
            self.bucket.observe(ctx, spec),
            secrets::secret_exists(ctx, self.secrets.as_ref(), SecretKind::DifyApp),
        )
        .await?;
        Ok(ObservedDatastores { aurora, redis, opensearch, bucket, app_secret })
    }

    fn diff(&self, ctx: &Context, spec: &DatastoresSpec, o: &ObservedDatastores) -> Plan {
        let mut plan = Plan::new();
        if !o.app_secret {
            plan.push(
                dify_stack_core::Change::new(
                    dify_stack_core::Action::Create,
                    ResourceRef::new("secretsmanager:secret", SecretKind::DifyApp.name(ctx)),
                )
                .field("value", None::<&str>, Some("(generated)")),
            );
        }
        for p in [
            self.aurora.diff(ctx, spec, &o.aurora),
            self.redis.diff(ctx, spec, &o.redis),
            self.opensearch.diff(ctx, spec, &o.opensearch),
            self.bucket.diff(ctx, spec, &o.bucket),
        ] {
            plan.changes.extend(p.changes);
        }
        plan
    }

    /// The app secret, then the four stores concurrently. When some fail, the others still
    /// finish, and the error lists every failure.
    async fn apply(&self, ctx: &Context, spec: &DatastoresSpec) -> Result<DatastoresOutput> {
        spec.validate(ctx)?;
        let app_secret = secrets::ensure_secret(ctx, self.secrets.as_ref(), SecretKind::DifyApp, "").await;
        let (aurora, redis, opensearch, bucket) = futures::future::join4(
            self.aurora.apply(ctx, spec),
            self.redis.apply(ctx, spec),
            self.opensearch.apply(ctx, spec),
            self.bucket.apply(ctx, spec),
        )
        .await;
        match (app_secret, aurora, redis, opensearch, bucket) {
            (Ok(app_secret), Ok(aurora), Ok(redis), Ok(opensearch), Ok(bucket)) => {
                Ok(DatastoresOutput { aurora, redis, opensearch, bucket, app_secret })
            }
            (a, b, c, d, e) => {
                let failed = gather(vec![a.map(drop), b.map(drop), c.map(drop), d.map(drop), e.map(drop)]);
                Err(failed.err().unwrap_or_else(|| DatastoresError::Several(Vec::new())))
            }
        }
    }

    /// Checks the data policy for every store first (a refusal deletes nothing), then destroys
    /// the four stores concurrently, then the app secret.
    async fn destroy(&self, ctx: &Context, spec: &DatastoresSpec) -> Result<Vec<ResourceRef>> {
        let policy = self.policy.unwrap_or_else(|| DataPolicy::from_context(ctx));
        let holders = self.data_holders(ctx, spec).await?;
        if !holders.is_empty() {
            return Err(DatastoresError::DataLossRefused {
                holders,
                hint: "allow it with a DataPolicy (lift_deletion_protection; delete_data, i.e. --delete-data, to skip the final snapshot and empty buckets)".to_owned(),
            });
        }
        let (a, r, o, b) = futures::future::join4(
            self.aurora.destroy(ctx, spec),
            self.redis.destroy(ctx, spec),
            self.opensearch.destroy(ctx, spec),
            self.bucket.destroy(ctx, spec),
        )
        .await;
        let mut deleted: Vec<ResourceRef> = gather(vec![a, r, o, b])?.into_iter().flatten().collect();
        if let Some(arn) = secrets::delete_secret(ctx, self.secrets.as_ref(), SecretKind::DifyApp, policy).await? {
            deleted.push(ResourceRef::new("secretsmanager:secret", SecretKind::DifyApp.name(ctx)).with_id(arn));
        }
        Ok(deleted)
    }
}
