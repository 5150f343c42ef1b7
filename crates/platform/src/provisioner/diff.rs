//! Diff: the typed changes between the spec and what was observed.

#[allow(unused_imports)]
use super::*;

impl PlatformProvisioner {
    pub(super) fn diff_tier(&self, ctx: &Context, spec: &PlatformSpec, o: &ObservedPlatform) -> Plan {
        let mut plan = Plan::new();
        if spec.metrics_server.is_some()
            && let Some(version) = &o.metrics_offered
            && o.metrics_addon.is_none()
        {
            plan.push(Change::new(Action::Create, ResourceRef::new("eks:addon", METRICS_SERVER)).field(
                "version",
                None::<&str>,
                Some(version),
            ));
        }
        if spec.kubernetes {
            for r in desired_releases(ctx, spec, o.metrics_offered.is_some()) {
                let id = ResourceRef::new("helm:release", crate::names::release(r.name));
                match o.releases.get(r.name).cloned().flatten() {
                    None => plan.push(Change::new(Action::Create, id).field("chart", None::<&str>, Some(r.chart_id()))),
                    Some(have) if have.chart != r.chart_id() => {
                        plan.push(Change::new(Action::Update, id).field("chart", Some(&have.chart), Some(r.chart_id())))
                    }
                    Some(have) if have.status != "deployed" => {
                        plan.push(Change::new(Action::Update, id).field("status", Some(&have.status), Some("deployed")))
                    }
                    Some(_) => {}
                }
            }
            if spec.load_balancer_controller.is_some()
                && o.ingress_class.as_ref().map(|c| c.controller.as_str()) != Some(INGRESS_CONTROLLER)
            {
                let action = if o.ingress_class.is_some() { Action::Update } else { Action::Create };
                plan.push(Change::new(action, ResourceRef::new("k8s:ingressclass", INGRESS_CLASS)).field(
                    "controller",
                    o.ingress_class.as_ref().map(|c| c.controller.as_str()),
                    Some(INGRESS_CONTROLLER),
                ));
            }
        }
        plan
    }
}
