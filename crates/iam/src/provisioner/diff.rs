//! Diff: the typed changes between the spec and what was observed (provider, roles, trust,
//! policies, tags, the default StorageClass, service accounts). `apply` executes exactly these;
//! the plan shows each through [`Planned`].

use super::{
    Action, Change, Context, DesiredRole, IamProvisioner, ObservedIam, Planned, ResourceRef, Tags, Tier, Value,
    desired_roles, provider_arn_of,
};
use crate::AUDIENCE;
use crate::IamSpec;
use crate::RoleKind;
use crate::k8s;
use crate::policy;
use dify_stack_core::ids::{OidcProviderArn, RoleArn};

/// Shown where a value names the provider the same run creates.
const AFTER_APPLY: &str = "(known after apply)";

/// Fields to set: path (or tag key), value before (if any), value wanted.
pub(super) type Drift = Vec<(String, Option<String>, String)>;

/// One change of the IAM tier, in the order apply executes them. Trust policies name the
/// provider's ARN, so they are computed when the change executes (after a created provider).
#[derive(Debug, Clone)]
pub(super) enum IamChange {
    /// No provider for the issuer: create it (audience `sts.amazonaws.com`, with its tags).
    CreateProvider { url: String, tags: Tags },
    /// The provider lacks our audience.
    AddClientId { url: String, arn: OidcProviderArn, before: Vec<String> },
    /// A missing role: create it with its trust and tags, then put its inline policy.
    CreateRole { role: DesiredRole, tags: Tags },
    /// An existing role drifted. `trust` is `Some(before)` when the trust policy is rewritten
    /// (always, when the provider is created by this run); `policy` likewise.
    UpdateRole {
        role: DesiredRole,
        arn: RoleArn,
        trust: Option<Option<Value>>,
        policy: Option<Option<Value>>,
        tags: Drift,
    },
    /// Our default StorageClass (gp3, encrypted) is missing.
    CreateStorageClass,
    /// A service account to server-side apply with its role annotation and Helm adoption
    /// metadata. `fields` are what the plan shows (empty for a create).
    ServiceAccount { namespace: String, account: &'static str, kind: RoleKind, create: bool, fields: Drift },
}

impl Planned for IamChange {
    fn change(&self) -> Change {
        match self {
            IamChange::CreateProvider { url, .. } => Change::new(
                Action::Create,
                ResourceRef::new("iam:oidc-provider", url),
            )
            .field("client_ids", None::<&str>, Some(AUDIENCE)),
            IamChange::AddClientId { url, arn, before } => Change::new(
                Action::Update,
                ResourceRef::new("iam:oidc-provider", url).with_id(arn.as_str()),
            )
            .field("client_ids", Some(before.join(",")), Some(AUDIENCE)),
            IamChange::CreateRole { role, .. } => Change::new(Action::Create, ResourceRef::new("iam:role", &role.name))
                .field("trust", None::<&str>, Some(role.shown_trust.as_deref().unwrap_or(AFTER_APPLY)))
                .field("policy", None::<&str>, Some(policy::normalize(role.policy.clone()))),
            IamChange::UpdateRole { role, arn, trust, policy, tags } => {
                let mut c = Change::new(Action::Update, ResourceRef::new("iam:role", &role.name).with_id(arn.as_str()));
                if let Some(before) = trust {
                    c = c.field("trust", before.as_ref(), Some(role.shown_trust.as_deref().unwrap_or(AFTER_APPLY)));
                }
                if let Some(before) = policy {
                    c = c.field("policy", before.as_ref(), Some(policy::normalize(role.policy.clone())));
                }
                c.tag_fields(tags)
            }
            IamChange::CreateStorageClass => Change::new(
                Action::Create,
                ResourceRef::new("k8s:storageclass", k8s::STORAGE_CLASS),
            )
            .field("provisioner", None::<&str>, Some("ebs.csi.aws.com (gp3, encrypted, default)")),
            IamChange::ServiceAccount { namespace, account, create, fields, .. } => {
                let action = if *create { Action::Create } else { Action::Update };
                let name = crate::names::service_account(namespace, account);
                let mut c = Change::new(action, ResourceRef::new("k8s:serviceaccount", name));
                for (path, before, after) in fields {
                    c = c.field(path, before.as_ref(), Some(after));
                }
                c
            }
        }
    }
}

/// One change of the IAM tier, as [`Provisioner::changes`](dify_stack_core::Provisioner::changes)
/// computes it and [`Provisioner::execute`](dify_stack_core::Provisioner::execute) carries it out.
/// Opaque: what a plan shows of it is its [`Planned::change`].
#[derive(Debug, Clone)]
pub struct IamStep(pub(super) IamChange);

impl Planned for IamStep {
    fn change(&self) -> Change {
        self.0.change()
    }
}

impl IamProvisioner {
    /// The typed changes, in the order apply executes them.
    pub(super) fn iam_changes(&self, ctx: &Context, spec: &IamSpec, observed: &ObservedIam) -> Vec<IamChange> {
        let mut changes = Vec::new();
        let url = policy::issuer_host_path(&spec.oidc_issuer_url).to_owned();
        match &observed.provider {
            None => {
                let tags = ctx.tags_for(Tier::Iam, "oidc-provider", &url);
                changes.push(IamChange::CreateProvider { url, tags });
            }
            Some(p) if !p.client_ids.iter().any(|c| c == AUDIENCE) => {
                changes.push(IamChange::AddClientId { url, arn: p.arn.clone(), before: p.client_ids.clone() })
            }
            Some(_) => {}
        }
        let provider_arn = provider_arn_of(observed);
        for mut role in desired_roles(ctx, spec) {
            let tags = ctx.tags_for(Tier::Iam, &role.tag_suffix, &role.name);
            // The trust names the provider: known now when it exists, else after its create.
            let trust = provider_arn.map(|arn| policy::normalize(role.trust(spec, arn)));
            role.shown_trust = trust.as_ref().map(Value::to_string);
            let Some(have) = observed.role(&role.key) else {
                changes.push(IamChange::CreateRole { role, tags });
                continue;
            };
            let trust = match &trust {
                Some(t) => (have.trust.as_ref() != Some(t)).then(|| have.trust.clone()),
                None => Some(have.trust.clone()),
            };
            let perms = policy::normalize(role.policy.clone());
            let policy = (have.policy.as_ref() != Some(&perms)).then(|| have.policy.clone());
            let tags: Drift = dify_stack_core::tag_drift(&tags, &have.info.tags);
            if trust.is_some() || policy.is_some() || !tags.is_empty() {
                changes.push(IamChange::UpdateRole { role, arn: have.info.arn.clone(), trust, policy, tags });
            }
        }
        if spec.service_accounts {
            if !observed.default_storage_class {
                changes.push(IamChange::CreateStorageClass);
            }
            for kind in RoleKind::ALL {
                // The role's ARN when it exists; a created role's is known after apply.
                let role = observed.roles.get(&kind).map(|r| r.info.arn.to_string());
                for sa in kind.service_accounts() {
                    let namespace = spec.namespace.clone();
                    let Some(have) = observed.service_accounts.iter().find(|s| s.name == sa) else {
                        changes.push(IamChange::ServiceAccount {
                            namespace,
                            account: sa,
                            kind,
                            create: true,
                            fields: Vec::new(),
                        });
                        continue;
                    };
                    let mut fields = Drift::new();
                    if have.role_arn != role || role.is_none() {
                        fields.push((
                            "annotations.eks.amazonaws.com/role-arn".into(),
                            have.role_arn.clone(),
                            role.clone().unwrap_or_else(|| AFTER_APPLY.to_owned()),
                        ));
                    }
                    if have.helm_release.as_deref() != Some(spec.helm_release.as_str()) {
                        fields.push((
                            "annotations.meta.helm.sh/release-name".into(),
                            have.helm_release.clone(),
                            spec.helm_release.clone(),
                        ));
                    }
                    if !fields.is_empty() {
                        changes.push(IamChange::ServiceAccount { namespace, account: sa, kind, create: false, fields });
                    }
                }
            }
        }
        changes
    }
}
