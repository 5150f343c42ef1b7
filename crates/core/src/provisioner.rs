//! The contract every tier implements.

use async_trait::async_trait;

use crate::context::Context;
use crate::plan::{Plan, Planned, ResourceRef};
use crate::spec::SpecErrors;

/// Converges one tier of the stack to its spec. AWS is the state: there is no state file.
///
/// # Promises
///
/// * [`validate`](Provisioner::validate) does no I/O and reports every violation at once, each
///   with a path into the spec and a hint.
/// * [`observe`](Provisioner::observe) only reads (Describe/List/Get), finds resources by the
///   stack's ownership tags, never by `Name` alone, and never returns a resource the stack does
///   not own.
/// * [`changes`](Provisioner::changes) (and so [`diff`](Provisioner::diff)) is a pure function
///   of the context, spec and observation: the tier's typed changes, which a plan shows and
///   [`execute`](Provisioner::execute) carries out.
/// * [`apply`](Provisioner::apply) is the one converge loop, provided here for every tier:
///   validate, observe, [`settle`](Provisioner::settle) what an earlier run left in flight,
///   compute the changes, refuse before any write what the context's permissions do not allow
///   ([`refusal`](Provisioner::refusal)), execute. A tier implements observation, changes and
///   execution; values known only after an earlier change of the same run ("known after
///   apply") are resolved inside `execute`, re-observing where the tier needs it.
/// * [`plan`](Provisioner::plan) and [`output`](Provisioner::output) never write. An empty plan means converged; after a successful
///   [`apply`](Provisioner::apply) the plan is empty.
/// * `apply` converges: every write is find-or-create or compare-then-modify, resources are
///   created with their ownership tags in the same call where the API allows, and client tokens
///   are deterministic, so re-running after a crash at any point finishes the job without
///   duplicates. Immutable drift is refused (an error naming the field) unless
///   [`Permissions::allow_replace`](crate::Permissions::allow_replace) is set.
/// * [`destroy`](Provisioner::destroy) needs no remembered ids: it discovers by tag, tolerates
///   half-built stacks, treats not-found as done, and never touches a resource without the stack's
///   ownership tag. It returns what it deleted. It takes what finds the tier's resources, a
///   [`Selector`](Provisioner::Selector) (the ids it needs beyond the context, derived from a
///   spec with [`selector`](Provisioner::selector) or from what exists), never a whole spec:
///   [`destroy_selected`](Provisioner::destroy_selected); `destroy(spec)` is the same from a
///   spec.
/// * Waits are bounded by the context's [`WaitPolicy`](crate::WaitPolicy), cancellable through
///   its token, and use SDK waiters where they exist.
#[async_trait]
pub trait Provisioner: Send + Sync {
    /// Desired state: serde, `deny_unknown_fields`, documented, never a secret value.
    type Spec: Send + Sync;
    /// What exists now and is owned by this stack.
    type Observed: Send + Sync;
    /// Ids, ARNs and endpoints that dependants consume.
    type Output: Send + Sync;
    /// The tier's error type.
    type Error: std::error::Error + Send + Sync + From<SpecErrors> + 'static;
    /// What finds the tier's resources for a destroy: the ids it needs beyond the [`Context`]
    /// (which names and tags everything), never a whole spec. `Option` fields are ids that may
    /// be gone (a VPC already deleted): `None` skips what they would find. `()` when the context
    /// alone finds everything.
    type Selector: Send + Sync;

    /// The tier's typed change (opaque outside the tier): computed by
    /// [`changes`](Provisioner::changes), shown by a plan, carried out by
    /// [`execute`](Provisioner::execute).
    type Change: Planned + Send + Sync;

    /// Checks the spec without I/O. All violations at once.
    fn validate(&self, ctx: &Context, spec: &Self::Spec) -> Result<(), SpecErrors>;

    /// Reads what exists (read-only calls only).
    async fn observe(&self, ctx: &Context, spec: &Self::Spec) -> Result<Self::Observed, Self::Error>;

    /// The changes that would bring `observed` to `spec`, in the order `execute` carries them
    /// out. Pure. An id an earlier change of the same run makes is a placeholder here.
    fn changes(&self, ctx: &Context, spec: &Self::Spec, observed: &Self::Observed) -> Vec<Self::Change>;

    /// The plan of [`changes`](Provisioner::changes). Pure.
    fn diff(&self, ctx: &Context, spec: &Self::Spec, observed: &Self::Observed) -> Plan {
        Planned::plan(&self.changes(ctx, spec, observed))
    }

    /// Work an earlier run left in flight that must end before the changes are computed (a
    /// cluster still creating, an engine upgrade, a domain processing a change): waited for,
    /// and what it changed observed again. The default waits for nothing.
    async fn settle(
        &self,
        _ctx: &Context,
        _spec: &Self::Spec,
        observed: Self::Observed,
    ) -> Result<Self::Observed, Self::Error> {
        Ok(observed)
    }

    /// Why `change` may not run under the context's permissions (a replacement, a deletion of
    /// data, a downgrade): checked for every change before the first write. The default
    /// refuses nothing.
    fn refusal(&self, _ctx: &Context, _spec: &Self::Spec, _change: &Self::Change) -> Option<Self::Error> {
        None
    }

    /// Carries out `changes` (computed from `observed`, which it may re-read where a value is
    /// known only after an earlier change) and returns the outputs.
    async fn execute(
        &self,
        ctx: &Context,
        spec: &Self::Spec,
        observed: Self::Observed,
        changes: Vec<Self::Change>,
    ) -> Result<Self::Output, Self::Error>;

    /// `validate`, then `observe`, then `diff`. Never writes.
    async fn plan(&self, ctx: &Context, spec: &Self::Spec) -> Result<Plan, Self::Error> {
        self.validate(ctx, spec)?;
        let observed = self.observe(ctx, spec).await?;
        Ok(self.diff(ctx, spec, &observed))
    }

    /// The outputs as they are now, from `observed` alone (no call): `Some` when everything
    /// dependants consume exists as `spec` wants it. Plans wire a converged tier's real ids into
    /// its dependants' plans through this, so a plan never runs `apply`. The default knows
    /// nothing (dependants are then planned against placeholder ids).
    fn output(&self, _ctx: &Context, _spec: &Self::Spec, _observed: &Self::Observed) -> Option<Self::Output> {
        None
    }

    /// `plan`, plus the outputs when the plan holds no change that makes, replaces or deletes a
    /// resource: in-place updates (a tag edited in the console, an endpoint's CIDRs, scaling)
    /// leave every id and endpoint as observed, so the tiers downstream are planned against the
    /// real outputs and show no change of their own. Never writes.
    async fn plan_with_output(
        &self,
        ctx: &Context,
        spec: &Self::Spec,
    ) -> Result<(Plan, Option<Self::Output>), Self::Error> {
        self.validate(ctx, spec)?;
        let observed = self.observe(ctx, spec).await?;
        let plan = self.diff(ctx, spec, &observed);
        let in_place = plan.changes.iter().all(|c| c.action == crate::Action::Update);
        let output = if in_place { self.output(ctx, spec, &observed) } else { None };
        Ok((plan, output))
    }

    /// Converges the world to `spec` and returns the outputs: the one converge loop (the
    /// trait's promises). Tiers do not override it.
    async fn apply(&self, ctx: &Context, spec: &Self::Spec) -> Result<Self::Output, Self::Error> {
        self.validate(ctx, spec)?;
        let observed = self.observe(ctx, spec).await?;
        let observed = self.settle(ctx, spec, observed).await?;
        let changes = self.changes(ctx, spec, &observed);
        if let Some(refused) = changes.iter().find_map(|c| self.refusal(ctx, spec, c)) {
            return Err(refused);
        }
        self.execute(ctx, spec, observed, changes).await
    }

    /// What finds the resources `spec` describes, for [`destroy_selected`](Provisioner::destroy_selected).
    /// Pure.
    fn selector(&self, ctx: &Context, spec: &Self::Spec) -> Self::Selector;

    /// Deletes everything this tier owns for the stack that `selector` finds; returns what was
    /// deleted. A caller without a spec (destroy discovers the stack) builds the selector from
    /// what exists.
    async fn destroy_selected(&self, ctx: &Context, selector: &Self::Selector)
    -> Result<Vec<ResourceRef>, Self::Error>;

    /// Deletes everything this tier owns for the stack; returns what was deleted.
    /// [`destroy_selected`](Provisioner::destroy_selected) with the [`selector`](Provisioner::selector) of `spec`.
    async fn destroy(&self, ctx: &Context, spec: &Self::Spec) -> Result<Vec<ResourceRef>, Self::Error> {
        let selector = self.selector(ctx, spec);
        self.destroy_selected(ctx, &selector).await
    }
}
