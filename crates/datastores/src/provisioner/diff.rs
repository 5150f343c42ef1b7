//! Changes: the app secret when it is missing, then each store's typed changes in a fixed
//! order (Aurora, Redis, OpenSearch, the bucket).

use dify_stack_core::{Action, Change, Context, Planned, Provisioner, ResourceRef};

use super::{DatastoresProvisioner, ObservedDatastores};
use crate::secrets::SecretKind;
use crate::spec::DatastoresSpec;
use crate::{AuroraStep, BucketStep, OpenSearchStep, RedisStep};

/// One change of the datastores tier: the app secret, or one store's change.
#[derive(Debug, Clone)]
pub(crate) enum DatastoresChange {
    /// `<stack>/dify-app` is generated.
    AppSecret { name: String },
    /// One of Aurora's changes.
    Aurora(AuroraStep),
    /// One of Redis's changes.
    Redis(RedisStep),
    /// One of OpenSearch's changes.
    OpenSearch(OpenSearchStep),
    /// The bucket's change.
    Bucket(BucketStep),
}

impl Planned for DatastoresChange {
    fn change(&self) -> Change {
        match self {
            DatastoresChange::AppSecret { name } => Change::new(
                Action::Create,
                ResourceRef::new("secretsmanager:secret", name),
            )
            .field("value", None::<&str>, Some("(generated)")),
            DatastoresChange::Aurora(c) => c.change(),
            DatastoresChange::Redis(c) => c.change(),
            DatastoresChange::OpenSearch(c) => c.change(),
            DatastoresChange::Bucket(c) => c.change(),
        }
    }
}

/// One change of the datastores tier (the app secret's, or one store's), as
/// [`DatastoresProvisioner`]'s [`changes`](Provisioner::changes) computes it and its
/// [`execute`](Provisioner::execute) carries it out. Opaque: what a plan shows of it is its
/// [`Planned::change`].
#[derive(Debug, Clone)]
pub struct DatastoresStep(pub(crate) DatastoresChange);

impl Planned for DatastoresStep {
    fn change(&self) -> Change {
        self.0.change()
    }
}

/// The stores' parts of the tier's changes, each in its order.
#[derive(Debug, Default)]
pub(super) struct StoreChanges {
    pub(super) aurora: Vec<AuroraStep>,
    pub(super) redis: Vec<RedisStep>,
    pub(super) opensearch: Vec<OpenSearchStep>,
    pub(super) bucket: Vec<BucketStep>,
}

impl StoreChanges {
    /// Each store's changes out of the tier's (the app secret's is left out: it is ensured
    /// whatever the plan says, its value being an output).
    pub(super) fn split(changes: Vec<DatastoresStep>) -> Self {
        let mut out = StoreChanges::default();
        for DatastoresStep(c) in changes {
            match c {
                DatastoresChange::AppSecret { .. } => {}
                DatastoresChange::Aurora(c) => out.aurora.push(c),
                DatastoresChange::Redis(c) => out.redis.push(c),
                DatastoresChange::OpenSearch(c) => out.opensearch.push(c),
                DatastoresChange::Bucket(c) => out.bucket.push(c),
            }
        }
        out
    }
}

impl DatastoresProvisioner {
    pub(super) fn changes_tier(
        &self,
        ctx: &Context,
        spec: &DatastoresSpec,
        o: &ObservedDatastores,
    ) -> Vec<DatastoresStep> {
        let mut out = Vec::new();
        if !o.app_secret {
            out.push(DatastoresChange::AppSecret { name: SecretKind::DifyApp.name(ctx) });
        }
        out.extend(self.aurora.changes(ctx, spec, &o.aurora).into_iter().map(DatastoresChange::Aurora));
        out.extend(self.redis.changes(ctx, spec, &o.redis).into_iter().map(DatastoresChange::Redis));
        out.extend(self.opensearch.changes(ctx, spec, &o.opensearch).into_iter().map(DatastoresChange::OpenSearch));
        out.extend(self.bucket.changes(ctx, spec, &o.bucket).into_iter().map(DatastoresChange::Bucket));
        out.into_iter().map(DatastoresStep).collect()
    }
}
