//! Core contract of [dify-stack](https://github.com/dify-stack/dify-stack): the [`Provisioner`]
//! trait every tier implements, [`Plan`]s, the [`Context`] (stack name, partition, naming, tags,
//! waits, cancellation), typed ids, [`AwsError`] classification and bounded waits.
//!
//! Tier crates depend on this crate and never on each other; cross-tier data travels as the
//! typed ids in [`ids`].

pub mod audit;
pub mod context;
pub mod error;
pub mod failure;
pub mod ids;
pub mod naming;
pub mod partition;
pub mod plan;
pub mod provisioner;
#[cfg(feature = "test-util")]
pub mod sim;
pub mod spec;
pub mod tls;
pub mod wait;

pub use context::{
    Context, Environment, InvalidStackName, Permissions, StackName, TAG_COMPONENT, TAG_ID, TAG_NAME, TAG_STACK,
    TAG_TIER, Tags, Tier,
};
pub use error::{AwsError, AwsResultExt, ErrorKind, cause_chain, found, ignore_not_found};
pub use failure::{AwsAt, AwsFailure, Classify, KubeFailure, NotOwned, WaitEnded, from_aws_wait, from_wait};
pub use naming::{NameError, NameKind};
pub use partition::Partition;
pub use plan::{
    Action, Change, Effect, FieldDiff, Plan, PlanSummary, Planned, ResourceRef, TagDrift, drift_tags, tag_drift,
};
pub use provisioner::Provisioner;
pub use spec::{SpecError, SpecErrors};
/// The cancellation token carried by [`Context`] (re-exported so tiers need no tokio-util dependency).
pub use tokio_util::sync::CancellationToken;
pub use wait::{Probe, WaitError, WaitPolicy};
