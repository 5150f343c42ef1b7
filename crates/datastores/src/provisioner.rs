//! [`DatastoresProvisioner`]: the four stores and the Dify app secret as one tier. Each phase
//! is in its own file, as in every tier: `observe` reads the four stores concurrently,
//! `diff` (the changes) joins their typed changes, `apply` (the execute) converges them
//! concurrently, each store from its part of the observation and of the changes (the others
//! finish when one fails), `destroy` checks the data policy for every store before the first
//! delete.

mod apply;
mod destroy;
mod diff;
mod observe;

use std::sync::Arc;

use async_trait::async_trait;
use dify_stack_core::{Context, Provisioner, ResourceRef, SpecErrors};
use serde::Serialize;

use crate::client::SecretsApi;
use crate::common::{DataPolicy, DatastoresError, Result};
use crate::secrets::StoredSecret;
use crate::spec::{DatastoresSelector, DatastoresSpec};
use crate::{AuroraOutput, AuroraProvisioner, BucketOutput, BucketProvisioner, OpenSearchOutput};
use crate::{OpenSearchProvisioner, RedisOutput, RedisProvisioner, SdkDatastores};

pub use diff::DatastoresStep;
pub use observe::ObservedDatastores;

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
        DatastoresProvisioner { aurora, redis, opensearch, bucket, secrets }
    }

    /// What destroy would refuse to delete under the data policy (empty: destroy may proceed).
    pub async fn data_holders(&self, ctx: &Context, spec: &DatastoresSpec) -> Result<Vec<String>> {
        self.data_holders_of(ctx, spec.aurora.final_snapshot).await
    }

    /// [`Self::data_holders`] with what it reads of a spec (or a [`DatastoresSelector`]):
    /// whether Aurora goes with a final snapshot.
    pub async fn data_holders_of(&self, ctx: &Context, final_snapshot: bool) -> Result<Vec<String>> {
        let policy = DataPolicy::from_context(ctx);
        let (a, b) = futures::future::try_join(
            self.aurora.data_holders_of(ctx, final_snapshot, policy),
            self.bucket.data_holders(ctx, policy),
        )
        .await?;
        Ok(a.into_iter().chain(b).collect())
    }
}

#[async_trait]
impl Provisioner for DatastoresProvisioner {
    type Spec = DatastoresSpec;
    type Observed = ObservedDatastores;
    type Output = DatastoresOutput;
    type Error = DatastoresError;
    type Selector = DatastoresSelector;
    type Change = DatastoresStep;

    /// The spec's checks, and the bucket's: the account id its name embeds (the tier observes
    /// the bucket before each store's own loop runs, so it is checked up front).
    fn validate(&self, ctx: &Context, spec: &DatastoresSpec) -> Result<(), SpecErrors> {
        let mut errs = spec.validate(ctx).err().unwrap_or_default();
        if ctx.account_id().is_none() {
            errs.push("account_id", "the bucket name embeds the account id", "set it with Context::with_account_id");
        }
        errs.into_result()
    }

    async fn observe(&self, ctx: &Context, spec: &DatastoresSpec) -> Result<ObservedDatastores> {
        self.observe_tier(ctx, spec).await
    }

    /// The app secret when it is missing, then each store's changes (Aurora, Redis,
    /// OpenSearch, the bucket).
    fn changes(&self, ctx: &Context, spec: &DatastoresSpec, o: &ObservedDatastores) -> Vec<DatastoresStep> {
        self.changes_tier(ctx, spec, o)
    }

    /// The app secret, then the four stores concurrently, each from its part of the
    /// observation and of the changes; each store settles its in-flight work and checks its
    /// refusals itself (this tier's `settle` and `refusal` are the defaults). When some fail,
    /// the others still finish, and the error lists every failure.
    async fn execute(
        &self,
        ctx: &Context,
        spec: &DatastoresSpec,
        o: ObservedDatastores,
        changes: Vec<DatastoresStep>,
    ) -> Result<DatastoresOutput> {
        self.execute_tier(ctx, spec, o, changes).await
    }

    /// Checks the data policy for every store first (a refusal deletes nothing), then destroys
    /// the four stores concurrently, then the app secret.
    fn selector(&self, _ctx: &Context, spec: &DatastoresSpec) -> DatastoresSelector {
        DatastoresSelector::of(spec)
    }

    async fn destroy_selected(&self, ctx: &Context, selector: &DatastoresSelector) -> Result<Vec<ResourceRef>> {
        self.destroy_tier(ctx, selector).await
    }
}
