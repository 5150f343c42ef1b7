//! Diff: the typed changes between the spec and what was observed.

#[allow(unused_imports)]
use super::*;

impl<C: EcrApi> RegistryProvisioner<C> {
    pub(super) fn diff_tier(&self, ctx: &Context, spec: &RegistrySpec, observed: &ObservedRegistry) -> Plan {
        let mut plan = Plan::new();
        for w in wanted(ctx, spec) {
            let r = ResourceRef::new("ecr:repository", &w.name);
            let mutability = format!("{:?}", w.spec.tag_mutability).to_uppercase();
            let Some(have) = observed.repos.get(&w.name) else {
                plan.push(
                    Change::new(Action::Create, r)
                        .field("scan_on_push", None::<bool>, Some(w.spec.scan_on_push))
                        .field("image_tag_mutability", None::<&str>, Some(&mutability))
                        .field("encryption", None::<&str>, Some(format!("{:?}", spec.encryption)))
                        .field("lifecycle.keep_last", None::<u32>, Some(w.spec.keep_last)),
                );
                continue;
            };
            let r = r.with_id(&have.info.arn);
            if have.info.encryption != spec.encryption {
                plan.push(
                    Change::new(Action::Replace, r.clone())
                        .field(
                            "encryption",
                            Some(format!("{:?}", have.info.encryption)),
                            Some(format!("{:?}", spec.encryption)),
                        )
                        .because("encryption cannot change in place"),
                );
            }
            let mut c = Change::new(Action::Update, r);
            if have.info.scan_on_push != w.spec.scan_on_push {
                c = c.field("scan_on_push", Some(have.info.scan_on_push), Some(w.spec.scan_on_push));
            }
            if have.info.mutability != w.spec.tag_mutability {
                let before = format!("{:?}", have.info.mutability).to_uppercase();
                c = c.field("image_tag_mutability", Some(before), Some(&mutability));
            }
            // Lifecycle policies are compared as normalised JSON, never as text.
            let want_policy = lifecycle_policy(w.spec.keep_last);
            if have.lifecycle.as_ref() != Some(&want_policy) {
                c = c.field("lifecycle_policy", have.lifecycle.as_ref(), Some(&want_policy));
            }
            let want_tags = ctx.tags_for(Tier::Registry, w.component, &w.name);
            for (k, v) in want_tags.iter().filter(|(k, v)| have.tags.get(*k) != Some(*v)) {
                c = c.field(format!("tags.{k}"), have.tags.get(k), Some(v));
            }
            if !c.fields.is_empty() {
                plan.push(c);
            }
        }
        plan
    }
}
