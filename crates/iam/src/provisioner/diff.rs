//! Diff: the typed changes between the spec and what was observed (provider, roles, trust,
//! policies, tags, service accounts).

#[allow(unused_imports)]
use super::*;

impl<C: IamApi> IamProvisioner<C> {
    pub(super) fn diff_tier(&self, ctx: &Context, spec: &IamSpec, observed: &ObservedIam) -> Plan {
        let mut plan = Plan::new();
        let url = policy::issuer_host_path(&spec.oidc_issuer_url);
        let provider_arn =
            match &observed.provider {
                None => {
                    plan.push(Change::new(Action::Create, ResourceRef::new("iam:oidc-provider", url)).field(
                        "client_ids",
                        None::<&str>,
                        Some(AUDIENCE),
                    ));
                    "(known after apply)".to_owned()
                }
                Some(p) => {
                    if !p.client_ids.iter().any(|c| c == AUDIENCE) {
                        plan.push(
                            Change::new(Action::Update, ResourceRef::new("iam:oidc-provider", url).with_id(&p.arn))
                                .field("client_ids", Some(p.client_ids.join(",")), Some(AUDIENCE)),
                        );
                    }
                    p.arn.clone()
                }
            };
        for role in desired_roles(ctx, spec) {
            let name = &role.name;
            let trust = policy::normalize(role.trust(spec, &provider_arn));
            let perms = policy::normalize(role.policy.clone());
            let Some(have) = observed.role(&role.key) else {
                plan.push(
                    Change::new(Action::Create, ResourceRef::new("iam:role", name))
                        .field("trust", None::<&str>, Some(&trust))
                        .field("policy", None::<&str>, Some(&perms)),
                );
                continue;
            };
            let mut c = Change::new(Action::Update, ResourceRef::new("iam:role", name).with_id(&have.info.arn));
            if observed.provider.is_some() && have.trust.as_ref() != Some(&trust) {
                c = c.field("trust", have.trust.as_ref(), Some(&trust));
            }
            if have.policy.as_ref() != Some(&perms) {
                c = c.field("policy", have.policy.as_ref(), Some(&perms));
            }
            for (k, v) in ctx.tags_for(Tier::Iam, &role.tag_suffix, name) {
                if have.info.tags.get(&k) != Some(&v) {
                    c = c.field(format!("tags.{k}"), have.info.tags.get(&k), Some(v));
                }
            }
            if !c.fields.is_empty() {
                plan.push(c);
            }
        }
        if spec.service_accounts {
            if !observed.default_storage_class {
                plan.push(Change::new(Action::Create, ResourceRef::new("k8s:storageclass", k8s::STORAGE_CLASS)).field(
                    "provisioner",
                    None::<&str>,
                    Some("ebs.csi.aws.com (gp3, encrypted, default)"),
                ));
            }
            for kind in RoleKind::ALL {
                let role = observed.roles.get(&kind).map(|r| r.info.arn.clone());
                for sa in kind.service_accounts() {
                    let have = observed.service_accounts.iter().find(|s| s.name == sa);
                    let r = ResourceRef::new("k8s:serviceaccount", crate::names::service_account(&spec.namespace, sa));
                    match (have, &role) {
                        (None, _) => plan.push(Change::new(Action::Create, r)),
                        (Some(h), Some(role)) if h.role_arn.as_deref() != Some(role.as_str()) => {
                            plan.push(Change::new(Action::Update, r).field(
                                "annotations.eks.amazonaws.com/role-arn",
                                h.role_arn.as_deref(),
                                Some(role),
                            ))
                        }
                        (Some(h), _) if h.helm_release.as_deref() != Some(spec.helm_release.as_str()) => {
                            plan.push(Change::new(Action::Update, r).field(
                                "annotations.meta.helm.sh/release-name",
                                h.helm_release.as_deref(),
                                Some(spec.helm_release.as_str()),
                            ))
                        }
                        _ => {}
                    }
                }
            }
        }
        plan
    }
}
