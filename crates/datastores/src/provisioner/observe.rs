//! Observe: the four stores and the app secret, read concurrently.

use dify_stack_core::Context;

use super::DatastoresProvisioner;
use crate::common::Result;
use crate::secrets::{self, SecretKind};
use crate::spec::DatastoresSpec;
use crate::{aurora, client, opensearch, redis};

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

impl DatastoresProvisioner {
    pub(super) async fn observe_tier(&self, ctx: &Context, spec: &DatastoresSpec) -> Result<ObservedDatastores> {
        use dify_stack_core::Provisioner;
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
}
