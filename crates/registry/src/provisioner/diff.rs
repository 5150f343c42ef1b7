//! Diff: the typed changes between the spec and what was observed. `apply` executes exactly
//! these; the plan shows each through [`Planned`].

use super::{
    Action, Change, Context, Encryption, ObservedRegistry, Planned, RegistryProvisioner, RegistrySpec, ResourceRef,
    TagMutability, Tags, Tier, lifecycle_policy, wanted,
};
use dify_stack_core::ids::Arn;

/// A repository to create, with everything its create and lifecycle policy need.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct NewRepo {
    pub(crate) name: String,
    pub(crate) scan_on_push: bool,
    pub(crate) mutability: TagMutability,
    pub(crate) encryption: Encryption,
    pub(crate) keep_last: u32,
    pub(crate) tags: Tags,
}

/// One change of the registry tier.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum RepoChange {
    /// Missing: create it with its tags, then put its lifecycle policy.
    Create(NewRepo),
    /// Its encryption drifted (immutable): delete it with its images, then create it again.
    /// Refused unless the context allows replacement and data loss.
    Replace { arn: Arn, before: Encryption, new: NewRepo },
    /// Settings drifted in place; `None` leaves a setting alone.
    Update {
        name: String,
        arn: Arn,
        scan_on_push: Option<(bool, bool)>,
        mutability: Option<(TagMutability, TagMutability)>,
        lifecycle: Option<(Option<serde_json::Value>, serde_json::Value)>,
        /// Tags to set: key, value before (if any), value wanted.
        tags: dify_stack_core::TagDrift,
    },
}

fn shown(m: TagMutability) -> String {
    format!("{m:?}").to_uppercase()
}

fn created(c: Change, new: &NewRepo) -> Change {
    c.field("scan_on_push", None::<bool>, Some(new.scan_on_push))
        .field("image_tag_mutability", None::<&str>, Some(shown(new.mutability)))
        .field("encryption", None::<&str>, Some(format!("{:?}", new.encryption)))
        .field("lifecycle.keep_last", None::<u32>, Some(new.keep_last))
}

impl Planned for RepoChange {
    fn change(&self) -> Change {
        match self {
            RepoChange::Create(new) => {
                created(Change::new(Action::Create, ResourceRef::new("ecr:repository", &new.name)), new)
            }
            RepoChange::Replace { arn, before, new } => {
                Change::new(Action::Replace, ResourceRef::new("ecr:repository", &new.name).with_id(arn.as_str()))
                    .field("encryption", Some(format!("{before:?}")), Some(format!("{:?}", new.encryption)))
                    .because("encryption cannot change in place")
            }
            RepoChange::Update { name, arn, scan_on_push, mutability, lifecycle, tags } => {
                let mut c = Change::new(Action::Update, ResourceRef::new("ecr:repository", name).with_id(arn.as_str()));
                if let Some((before, after)) = scan_on_push {
                    c = c.field("scan_on_push", Some(before), Some(after));
                }
                if let Some((before, after)) = mutability {
                    c = c.field("image_tag_mutability", Some(shown(*before)), Some(shown(*after)));
                }
                // Lifecycle policies are compared as normalised JSON, never as text.
                if let Some((before, after)) = lifecycle {
                    c = c.field("lifecycle_policy", before.as_ref(), Some(after));
                }
                c.tag_fields(tags)
            }
        }
    }
}

/// One change of the registry tier, as [`Provisioner::changes`](dify_stack_core::Provisioner::changes)
/// computes it and [`Provisioner::execute`](dify_stack_core::Provisioner::execute) carries it out.
/// Opaque: what a plan shows of it is its [`Planned::change`].
#[derive(Debug, Clone)]
pub struct RegistryStep(pub(crate) RepoChange);

impl Planned for RegistryStep {
    fn change(&self) -> Change {
        self.0.change()
    }
}

impl RegistryProvisioner {
    /// The typed changes, in the order apply executes them.
    pub(super) fn repo_changes(
        &self,
        ctx: &Context,
        spec: &RegistrySpec,
        observed: &ObservedRegistry,
    ) -> Vec<RepoChange> {
        let mut changes = Vec::new();
        for w in wanted(ctx, spec) {
            let tags = ctx.tags_for(Tier::Registry, w.component, &w.name);
            let new = NewRepo {
                name: w.name.clone(),
                scan_on_push: w.spec.scan_on_push,
                mutability: w.spec.tag_mutability,
                encryption: spec.encryption.clone(),
                keep_last: w.spec.keep_last,
                tags: tags.clone(),
            };
            let Some(have) = observed.repos.get(&w.name) else {
                changes.push(RepoChange::Create(new));
                continue;
            };
            let arn = have.info.arn.clone();
            if have.info.encryption != spec.encryption {
                changes.push(RepoChange::Replace { arn, before: have.info.encryption.clone(), new });
                continue;
            }
            let want_policy = lifecycle_policy(w.spec.keep_last);
            let update = RepoChange::Update {
                name: w.name.clone(),
                arn,
                scan_on_push: (have.info.scan_on_push != w.spec.scan_on_push)
                    .then_some((have.info.scan_on_push, w.spec.scan_on_push)),
                mutability: (have.info.mutability != w.spec.tag_mutability)
                    .then_some((have.info.mutability, w.spec.tag_mutability)),
                lifecycle: (have.lifecycle.as_ref() != Some(&want_policy))
                    .then(|| (have.lifecycle.clone(), want_policy)),
                tags: dify_stack_core::tag_drift(&tags, &have.tags),
            };
            if let RepoChange::Update { scan_on_push: None, mutability: None, lifecycle: None, tags, .. } = &update
                && tags.is_empty()
            {
                continue;
            }
            changes.push(update);
        }
        changes
    }
}
