//! Shared pieces of the store provisioners: errors, the data policy, tag drift, waits.

use std::time::Duration;

use dify_stack_core::wait;
use dify_stack_core::{Context, from_wait};

pub use crate::error::{DatastoresError, Result};

/// What destroy may do to stores that hold data. The default deletes nothing that holds data.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct DataPolicy {
    /// Lift Aurora deletion protection so the cluster can be deleted (with its final snapshot
    /// when the spec takes one).
    pub lift_deletion_protection: bool,
    /// Delete data without keeping it: Aurora without a final snapshot, non-empty buckets
    /// (every version and delete marker), secrets without a recovery window.
    pub delete_data: bool,
}

impl DataPolicy {
    /// Everything may go (`--delete-data`).
    pub fn delete_everything() -> DataPolicy {
        DataPolicy { lift_deletion_protection: true, delete_data: true }
    }

    /// The policy implied by the context's permissions: `allow_data_loss` deletes everything.
    pub fn from_context(ctx: &Context) -> DataPolicy {
        if ctx.permissions.allow_data_loss { DataPolicy::delete_everything() } else { DataPolicy::default() }
    }
}

/// Polls `probe` (returning `Ok(None)` when done, `Ok(Some(status))` while pending) within the
/// context's wait policy capped at `cap`.
pub(crate) async fn wait_for<F, Fut>(ctx: &Context, what: String, cap: Duration, probe: F) -> Result<()>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<Option<String>>>,
{
    wait::until_gone(&what, &ctx.wait.capped(cap), ctx.cancellation(), probe).await.map_err(from_wait)
}

/// Polls `fetch` until the pure `condition` holds for what it returns (core's
/// [`wait::until_state`]), within the context's wait policy capped at `cap`; returns the state
/// the condition accepted (`None` only for a condition met by absence).
pub(crate) async fn wait_state<S, F, Fut>(
    ctx: &Context,
    what: String,
    cap: Duration,
    fetch: F,
    condition: impl wait::Condition<S, DatastoresError>,
) -> Result<Option<S>>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<Option<S>>>,
{
    wait::until_state(&what, &ctx.wait.capped(cap), ctx.cancellation(), fetch, condition).await.map_err(from_wait)
}

/// Plausibility caps of the waits (about twice the p95 of `aws-durations.toml`).
pub mod caps {
    use std::time::Duration;
    /// Aurora cluster available / gone.
    pub const AURORA_CLUSTER: Duration = Duration::from_secs(10 * 60);
    /// Aurora instance available / gone.
    pub const AURORA_INSTANCE: Duration = Duration::from_secs(25 * 60);
    /// Redis replication group available / gone.
    pub const REDIS: Duration = Duration::from_secs(45 * 60);
    /// OpenSearch domain ready / gone: about twice the p95 of a 3-node domain (4500 s in
    /// `aws-durations.toml` since 2026-12-07, p90 about 3600 s: ~10 % of such creates pass an
    /// hour), as for the other caps. Under the earlier 3600 s p95 this cap was 120 min; with the
    /// new row 2 of 200 simulated prod applies passed 120 min (the benchmark, 2026-12-07).
    pub const OPENSEARCH: Duration = Duration::from_secs(150 * 60);
    /// CreateDomain refused while a new service-linked role propagates.
    pub const SERVICE_LINKED_ROLE_PROPAGATION: Duration = Duration::from_secs(2 * 60);
}

/// The refusal of a plan's replacement of a store that holds data of record, from the change
/// that shows it (its first field and its reason).
pub(crate) fn immutable_change(c: &dify_stack_core::Change) -> DatastoresError {
    let f = c.fields.first();
    DatastoresError::ImmutableChange {
        resource: c.resource.name.clone(),
        field: f.map(|f| f.path.clone()).unwrap_or_default(),
        have: f.and_then(|f| f.before.clone()).unwrap_or_default(),
        want: f.and_then(|f| f.after.clone()).unwrap_or_default(),
        reason: c.reason.clone().unwrap_or_else(|| "set only at creation".to_owned()),
    }
}
