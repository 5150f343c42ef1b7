//! Execute: the app secret, then the four stores concurrently; every failure is reported.

use dify_stack_core::{Context, Provisioner};

use super::diff::{DatastoresStep, StoreChanges};
use super::{DatastoresOutput, DatastoresProvisioner, ObservedDatastores};
use crate::common::{DatastoresError, Result};
use crate::secrets::{self, SecretKind};
use crate::spec::DatastoresSpec;
use crate::{AuroraProvisioner, OpenSearchProvisioner, RedisProvisioner};

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

/// One store's part of the tier's `execute`: the store's own loop from its part of the
/// observation and of the changes, as its own `apply` ran it: its `validate` (the bucket's
/// checks the account id), its `settle` when it has work in flight (then its changes computed
/// again from what settled), its refusals, its `execute`. A refusal or failure stops this store
/// only: the others still converge, as before the loop was shared.
async fn converge<P>(
    store: &P,
    ctx: &Context,
    spec: &DatastoresSpec,
    observed: P::Observed,
    changes: Vec<P::Change>,
    in_flight: bool,
) -> Result<P::Output>
where
    P: Provisioner<Spec = DatastoresSpec, Error = DatastoresError>,
{
    store.validate(ctx, spec)?;
    let (observed, changes) = if in_flight {
        let observed = store.settle(ctx, spec, observed).await?;
        let changes = store.changes(ctx, spec, &observed);
        (observed, changes)
    } else {
        (observed, changes)
    };
    if let Some(refused) = changes.iter().find_map(|c| store.refusal(ctx, spec, c)) {
        return Err(refused);
    }
    store.execute(ctx, spec, observed, changes).await
}

impl DatastoresProvisioner {
    /// The trait's `execute`: the app secret, then the four stores concurrently, each handed
    /// its part of the observation and of the changes ([`converge`]). Each store settles its
    /// own in-flight work and checks its own refusals there, so that one store's wait or
    /// refusal neither delays nor stops the others (the tier's `settle` and `refusal` are the
    /// trait's defaults). When some fail, the others still finish, and the error lists every
    /// failure.
    pub(super) async fn execute_tier(
        &self,
        ctx: &Context,
        spec: &DatastoresSpec,
        o: ObservedDatastores,
        changes: Vec<DatastoresStep>,
    ) -> Result<DatastoresOutput> {
        // Ensured whatever the plan says: its value is an output.
        let app_secret = secrets::ensure_secret(ctx, self.secrets.as_ref(), SecretKind::DifyApp, "").await;
        let parts = StoreChanges::split(changes);
        let aurora_busy = AuroraProvisioner::upgrade_in_flight(spec, &o.aurora);
        let redis_busy = RedisProvisioner::group_busy(&o.redis);
        let search_busy = OpenSearchProvisioner::domain_processing(&o.opensearch);
        let (aurora, redis, opensearch, bucket) = futures::future::join4(
            converge(&self.aurora, ctx, spec, o.aurora, parts.aurora, aurora_busy),
            converge(&self.redis, ctx, spec, o.redis, parts.redis, redis_busy),
            converge(&self.opensearch, ctx, spec, o.opensearch, parts.opensearch, search_busy),
            converge(&self.bucket, ctx, spec, o.bucket, parts.bucket, false),
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
