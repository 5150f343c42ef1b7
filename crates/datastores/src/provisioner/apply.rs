//! Apply: the app secret, then the four stores concurrently; every failure is reported.

use dify_stack_core::{Context, Provisioner};

use super::{DatastoresOutput, DatastoresProvisioner};
use crate::common::{DatastoresError, Result};
use crate::secrets::{self, SecretKind};
use crate::spec::DatastoresSpec;

/// The values of `results`, or every error among them (one, or [`DatastoresError::Several`]
/// flattened).
pub(super) fn gather<T>(results: Vec<Result<T>>) -> Result<Vec<T>> {
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

impl DatastoresProvisioner {
    pub(super) async fn apply_tier(&self, ctx: &Context, spec: &DatastoresSpec) -> Result<DatastoresOutput> {
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
}
