//! Shared pieces of the store provisioners: errors, the data policy, security groups, waits.

use std::time::Duration;

use dify_stack_core::wait;
use dify_stack_core::{AwsAt, AwsError, Context, NotOwned, Tags, Tier, from_aws_wait, from_wait};

use crate::client::SgApi;
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

pub(crate) fn tag_drift(want: &Tags, have: &Tags) -> Tags {
    want.iter().filter(|(k, v)| have.get(*k) != Some(*v)).map(|(k, v)| (k.clone(), v.clone())).collect()
}

/// The ingress rules a store's security group must have: TCP `port` from each source group.
pub(crate) fn wanted_rules(port: i32, sources: &[String]) -> Vec<(String, i32, i32, String)> {
    let mut rules: Vec<_> = sources.iter().map(|s| ("tcp".to_owned(), port, port, s.clone())).collect();
    rules.sort();
    rules
}

/// The plan entry of a store's security group: Create when absent, Update when its ingress
/// differs from exactly `port` from `sources`, nothing otherwise.
pub(crate) fn security_group_change(
    name: &str,
    observed: Option<&crate::client::SgInfo>,
    port: i32,
    sources: &[String],
) -> Option<dify_stack_core::Change> {
    use dify_stack_core::{Action, Change, ResourceRef};
    let want = wanted_rules(port, sources);
    let r = ResourceRef::new("ec2:security-group", name);
    match observed {
        None => Some(Change::new(Action::Create, r).field(
            "ingress",
            None::<&str>,
            Some(format!("tcp/{port} from {}", sources.join(", "))),
        )),
        Some(sg) if sg.ingress != want => Some(Change::new(Action::Update, r.with_id(&sg.id)).field(
            "ingress",
            Some(format!("{:?}", sg.ingress)),
            Some(format!("{want:?}")),
        )),
        Some(_) => None,
    }
}

/// A store's security group as wanted.
#[derive(Clone, Copy)]
pub(crate) struct SgWant<'a> {
    pub(crate) vpc_id: &'a str,
    pub(crate) name: &'a str,
    pub(crate) component: &'a str,
    pub(crate) port: i32,
    pub(crate) sources: &'a [String],
}

/// Finds or creates a store's security group and converges its ingress to exactly `port` from
/// `sources` (extra rules, e.g. someone's `0.0.0.0/0`, are revoked). Returns the group id.
pub(crate) async fn ensure_security_group(
    ctx: &Context,
    api: &dyn SgApi,
    want: SgWant<'_>,
    observed: Option<crate::client::SgInfo>,
) -> Result<String> {
    let SgWant { vpc_id, name, component, port, sources } = want;
    let tags = ctx.tags_for(Tier::Datastores, component, name);
    // The caller's observation of this run is used when there is one (no second read).
    let found = match observed {
        Some(sg) => Some(sg),
        None => api.find(vpc_id.to_owned(), name.to_owned()).await.at("DescribeSecurityGroups", name)?,
    };
    let (id, have_rules, have_tags) = match found {
        Some(sg) => {
            NotOwned::check(ctx, "security group", name, &sg.tags)?;
            (sg.id, sg.ingress, sg.tags)
        }
        None => {
            let description = format!("dify-stack {}: {component}, port {port} from the cluster only", ctx.stack());
            let id = match api.create(vpc_id.to_owned(), name.to_owned(), description, tags.clone()).await {
                Ok(id) => id,
                Err(e) if e.is_already_exists() => {
                    let sg = api.find(vpc_id.to_owned(), name.to_owned()).await.at("DescribeSecurityGroups", name)?;
                    let sg = sg.ok_or(e).at("CreateSecurityGroup", name)?;
                    NotOwned::check(ctx, "security group", name, &sg.tags)?;
                    return Box::pin(ensure_security_group(ctx, api, want, Some(sg))).await;
                }
                Err(e) => return Err(e.at("CreateSecurityGroup", name).into()),
            };
            (id, Vec::new(), tags.clone())
        }
    };
    let want = wanted_rules(port, sources);
    for rule in have_rules.iter().filter(|r| !want.contains(r)) {
        dify_stack_core::ignore_not_found(api.revoke(id.clone(), rule.clone()).await)
            .at("RevokeSecurityGroupIngress", name)?;
    }
    for (_, _, _, source) in want.iter().filter(|r| !have_rules.contains(r)) {
        match api.authorize(id.clone(), port, source.clone()).await {
            Ok(()) => {}
            Err(e) if e.is_already_exists() => {}
            Err(e) => return Err(e.at("AuthorizeSecurityGroupIngress", name).into()),
        }
    }
    let drift = tag_drift(&tags, &have_tags);
    if !drift.is_empty() {
        api.tag(id.clone(), drift).await.at("CreateTags", name)?;
    }
    Ok(id)
}

/// Deletes a store's security group if it is ours, retrying while ENIs of the deleted store
/// still hold it. Returns whether something was deleted.
pub(crate) async fn delete_security_group(
    ctx: &Context,
    api: &dyn SgApi,
    vpc_id: &str,
    name: &str,
) -> Result<Option<String>> {
    let Some(sg) = api.find(vpc_id.to_owned(), name.to_owned()).await.at("DescribeSecurityGroups", name)? else {
        return Ok(None);
    };
    if !ctx.owns_tags(&sg.tags) {
        return Ok(None);
    }
    wait::retry(
        &format!("DeleteSecurityGroup {name}"),
        &ctx.wait.capped(Duration::from_secs(15 * 60)),
        ctx.cancellation(),
        AwsError::is_dependency_violation,
        || async { dify_stack_core::ignore_not_found(api.delete(sg.id.clone()).await) },
    )
    .await
    .map_err(|e| from_aws_wait::<DatastoresError>(e, "DeleteSecurityGroup", name))?;
    Ok(Some(sg.id))
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
    /// OpenSearch domain ready / gone: twice the p95 of a 3-node domain (3600 s in
    /// `aws-durations.toml`, which notes that ~10% of such creates pass an hour), as for the
    /// other caps. A log-normal fitted to that median and p95 puts 0.8 % of creates past 90 min
    /// (the cap before) and 0.16 % past 120 min.
    pub const OPENSEARCH: Duration = Duration::from_secs(120 * 60);
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
