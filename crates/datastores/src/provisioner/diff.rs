//! Diff: the app secret when it is missing, then each store's plan in a fixed order.

use dify_stack_core::{Action, Change, Context, Plan, Provisioner, ResourceRef};

use super::{DatastoresProvisioner, ObservedDatastores};
use crate::secrets::SecretKind;
use crate::spec::DatastoresSpec;

impl DatastoresProvisioner {
    pub(super) fn diff_tier(&self, ctx: &Context, spec: &DatastoresSpec, o: &ObservedDatastores) -> Plan {
        let mut plan = Plan::new();
        if !o.app_secret {
            plan.push(
                Change::new(Action::Create, ResourceRef::new("secretsmanager:secret", SecretKind::DifyApp.name(ctx)))
                    .field("value", None::<&str>, Some("(generated)")),
            );
        }
        for p in [
            self.aurora.diff(ctx, spec, &o.aurora),
            self.redis.diff(ctx, spec, &o.redis),
            self.opensearch.diff(ctx, spec, &o.opensearch),
            self.bucket.diff(ctx, spec, &o.bucket),
        ] {
            plan.changes.extend(p.changes);
        }
        plan
    }
}
