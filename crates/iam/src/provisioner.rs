//! The IAM provisioner: the OIDC provider, the IRSA roles and their service accounts.

use std::collections::BTreeMap;

use async_trait::async_trait;
use dify_stack_core::ids::{OidcProviderArn, RoleArn};
use dify_stack_core::{
    Action, AwsAt, AwsError, Change, Context, KubeFailure, NotOwned, Planned, Provisioner, ResourceRef, SpecErrors,
    Tags, Tier,
};
use serde::Serialize;
use serde_json::Value;

use crate::*;

mod apply;
mod destroy;
mod diff;
mod observe;

use diff::IamChange;
pub use diff::IamStep;

/// A role as observed, with its parsed documents.
#[derive(Debug, Clone)]
pub struct ObservedRole {
    /// The role.
    pub info: RoleInfo,
    /// Normalised trust policy.
    pub trust: Option<Value>,
    /// Normalised inline permission policy.
    pub policy: Option<Value>,
}

/// What exists.
#[derive(Debug, Clone, Default)]
pub struct ObservedIam {
    /// The provider for the issuer, if any.
    pub provider: Option<OidcInfo>,
    /// Our roles.
    pub roles: BTreeMap<RoleKind, ObservedRole>,
    /// The add-on roles, by add-on.
    pub addon_roles: BTreeMap<String, ObservedRole>,
    /// Service accounts labelled as ours in the namespace (empty in role-only mode).
    pub service_accounts: Vec<ManagedServiceAccount>,
    /// Whether our default StorageClass exists (false in role-only mode).
    pub default_storage_class: bool,
}

/// What the IAM tier hands on (to the Helm values).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct IamOutput {
    /// The OIDC provider ARN.
    pub oidc_provider_arn: String,
    /// Role ARNs by role.
    pub roles: BTreeMap<RoleKind, RoleArn>,
    /// Service account name -> role ARN it is annotated with.
    pub service_accounts: BTreeMap<String, RoleArn>,
    /// The namespace of the service accounts.
    pub namespace: String,
    /// Add-on role ARNs, by add-on.
    pub addon_roles: BTreeMap<String, RoleArn>,
}

/// Provisions the IAM tier.
///
/// Through an [`IamApi`] (the SDK's [`SdkIam`], a mock or fake in tests) and, for the service
/// accounts, a [`ServiceAccountApi`]. Cheap to clone: clones share the clients.
#[derive(Clone)]
pub struct IamProvisioner {
    client: std::sync::Arc<dyn IamApi>,
    kube: Option<std::sync::Arc<dyn ServiceAccountApi>>,
}

impl std::fmt::Debug for IamProvisioner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IamProvisioner").field("kube", &self.kube.is_some()).finish_non_exhaustive()
    }
}

impl IamProvisioner {
    /// A provisioner over the real IAM API, without Kubernetes access (role-only unless
    /// [`IamProvisioner::with_kubernetes`] is used).
    pub fn from_conf(config: &aws_types::SdkConfig) -> Self {
        IamProvisioner::new(SdkIam::from_conf(config))
    }
}

fn provider_arn_of(observed: &ObservedIam) -> Option<&str> {
    observed.provider.as_ref().map(|p| p.arn.as_str())
}

impl IamProvisioner {
    /// A provisioner over the given client.
    pub fn new(client: impl IamApi + 'static) -> Self {
        IamProvisioner { client: std::sync::Arc::new(client), kube: None }
    }

    /// Adds the Kubernetes access used for the namespace and service accounts.
    pub fn with_kubernetes(mut self, kube: impl ServiceAccountApi + 'static) -> Self {
        self.kube = Some(std::sync::Arc::new(kube));
        self
    }

    fn kube(&self, spec: &IamSpec) -> Result<Option<&dyn ServiceAccountApi>> {
        self.kube_if(spec.service_accounts)
    }

    /// The Kubernetes access when `service_accounts` wants it (an error when it is missing).
    fn kube_if(&self, service_accounts: bool) -> Result<Option<&dyn ServiceAccountApi>> {
        match (&self.kube, service_accounts) {
            (_, false) => Ok(None),
            (Some(k), true) => Ok(Some(k.as_ref())),
            (None, true) => Err(IamError::NoKubernetesClient),
        }
    }

    async fn find_provider(&self, spec: &IamSpec) -> Result<Option<OidcInfo>> {
        let url = policy::issuer_host_path(&spec.oidc_issuer_url).to_owned();
        let providers = self.client.list_oidc_providers().await.at("ListOpenIDConnectProviders", &url)?;
        Ok(providers.into_iter().find(|p| policy::issuer_host_path(&p.url) == url))
    }

    async fn observe_role(&self, ctx: &Context, name: &str) -> Result<Option<ObservedRole>> {
        let Some(info) = self.client.get_role(name.to_owned()).await.at("GetRole", name)? else { return Ok(None) };
        if !ctx.owns_tags(&info.tags) {
            return Err(NotOwned::new(ctx, "IAM role", name).into());
        }
        let policy =
            self.client.get_role_policy(name.to_owned(), INLINE_POLICY.into()).await.at("GetRolePolicy", name)?;
        Ok(Some(ObservedRole {
            trust: policy::parse_document(&info.trust),
            policy: policy.as_deref().and_then(policy::parse_document),
            info,
        }))
    }

    /// Deletes the role (inline policies deleted, managed ones detached) when it is ours.
    async fn delete_role(&self, ctx: &Context, name: &str) -> Result<Option<ResourceRef>> {
        let name = name.to_owned();
        let Some(role) = self.client.get_role(name.clone()).await.at("GetRole", &name)? else { return Ok(None) };
        if !ctx.owns_tags(&role.tags) {
            return Ok(None); // never touch what is not ours
        }
        for p in self.client.list_role_policies(name.clone()).await.at("ListRolePolicies", &name)? {
            ignore(self.client.delete_role_policy(name.clone(), p).await).at("DeleteRolePolicy", &name)?;
        }
        for p in self.client.list_attached_policies(name.clone()).await.at("ListAttachedRolePolicies", &name)? {
            ignore(self.client.detach_role_policy(name.clone(), p).await).at("DetachRolePolicy", &name)?;
        }
        ignore(self.client.delete_role(name.clone()).await).at("DeleteRole", &name)?;
        Ok(Some(ResourceRef::new("iam:role", &name).with_id(role.arn.into_inner())))
    }
}

/// Which role: one of the three Dify roles or an add-on's.
#[derive(Debug, Clone, PartialEq, Eq)]
enum RoleKey {
    Dify(RoleKind),
    Addon(String),
}

/// A role the tier owns, as the spec wants it.
#[derive(Debug, Clone)]
struct DesiredRole {
    key: RoleKey,
    name: String,
    /// The component part of its ownership tags.
    tag_suffix: String,
    /// `system:serviceaccount:<ns>:<sa>` of each account that may assume it.
    subjects: Vec<String>,
    policy: Value,
    /// The normalised trust policy as a plan shows it; `None` while the provider it names is
    /// yet to be created.
    shown_trust: Option<String>,
}

impl DesiredRole {
    fn trust(&self, spec: &IamSpec, provider_arn: &str) -> Value {
        policy::trust_policy_for(provider_arn, &spec.oidc_issuer_url, &self.subjects)
    }
}

/// Every role of the spec: the three Dify roles, then the add-on roles.
fn desired_roles(ctx: &Context, spec: &IamSpec) -> Vec<DesiredRole> {
    let cluster = spec.cluster_name.as_str();
    let dify = RoleKind::ALL.into_iter().map(|kind| DesiredRole {
        key: RoleKey::Dify(kind),
        name: kind.role_name(cluster),
        tag_suffix: kind.suffix().to_owned(),
        subjects: policy::subjects(&spec.namespace, &kind.service_accounts()),
        policy: policy::permission_policy(
            ctx.partition(),
            spec.bucket.as_str(),
            spec.bucket_kms_key_arn.as_deref(),
            spec.plugin_repository_arn_pattern.as_str(),
            kind,
        ),
        shown_trust: None,
    });
    let addons = spec.addon_roles.iter().map(|a| DesiredRole {
        key: RoleKey::Addon(a.addon.clone()),
        name: a.role_name(cluster),
        tag_suffix: a.addon.clone(),
        subjects: policy::subjects(&a.namespace, &[a.service_account.as_str()]),
        policy: a.policy.clone(),
        shown_trust: None,
    });
    dify.chain(addons).collect()
}

impl ObservedIam {
    fn role(&self, key: &RoleKey) -> Option<&ObservedRole> {
        match key {
            RoleKey::Dify(kind) => self.roles.get(kind),
            RoleKey::Addon(addon) => self.addon_roles.get(addon),
        }
    }

    fn insert_role(&mut self, key: RoleKey, role: ObservedRole) {
        match key {
            RoleKey::Dify(kind) => self.roles.insert(kind, role),
            RoleKey::Addon(addon) => self.addon_roles.insert(addon, role),
        };
    }
}

#[async_trait]
impl Provisioner for IamProvisioner {
    type Spec = IamSpec;
    type Observed = ObservedIam;
    type Output = IamOutput;
    type Error = IamError;
    type Selector = IamSelector;
    type Change = IamStep;

    fn validate(&self, _ctx: &Context, spec: &IamSpec) -> Result<(), SpecErrors> {
        spec.validate()
    }

    async fn observe(&self, ctx: &Context, spec: &IamSpec) -> Result<ObservedIam> {
        self.observe_tier(ctx, spec).await
    }

    fn changes(&self, ctx: &Context, spec: &IamSpec, observed: &ObservedIam) -> Vec<IamStep> {
        self.iam_changes(ctx, spec, observed).into_iter().map(IamStep).collect()
    }

    /// The namespace (server-side applied on every run when the tier manages service accounts),
    /// then the changes. A role's trust names the provider, which a `CreateProvider` change of
    /// the same run makes: it is computed when the role's change executes.
    async fn execute(
        &self,
        ctx: &Context,
        spec: &IamSpec,
        observed: ObservedIam,
        changes: Vec<IamStep>,
    ) -> Result<IamOutput> {
        self.execute_tier(ctx, spec, observed, changes.into_iter().map(|c| c.0).collect()).await
    }

    /// Service accounts (and the namespace, when ours and otherwise empty), then the roles (inline
    /// policies deleted, managed ones detached), then the OIDC provider if the stack created it.
    fn selector(&self, _ctx: &Context, spec: &IamSpec) -> IamSelector {
        IamSelector::of(spec)
    }

    async fn destroy_selected(&self, ctx: &Context, selector: &IamSelector) -> Result<Vec<ResourceRef>> {
        self.destroy_tier(ctx, selector).await
    }
}

/// Our service accounts in the namespace, then the namespace when ours and otherwise empty.
async fn delete_service_accounts(
    kube: &dyn ServiceAccountApi,
    namespace: &str,
) -> std::result::Result<Vec<ResourceRef>, KubeFailure> {
    let mut deleted = Vec::new();
    let ours: Vec<&str> = RoleKind::ALL.iter().flat_map(|k| k.service_accounts()).collect();
    for sa in kube.list_managed(namespace.to_owned()).await? {
        if ours.contains(&sa.name.as_str()) {
            kube.delete_service_account(namespace.to_owned(), sa.name.clone()).await?;
            deleted.push(ResourceRef::new("k8s:serviceaccount", crate::names::service_account(namespace, &sa.name)));
        }
    }
    if kube.delete_namespace_if_ours_and_empty(namespace.to_owned()).await? {
        deleted.push(ResourceRef::new("k8s:namespace", namespace));
    }
    Ok(deleted)
}

fn ignore(result: std::result::Result<(), AwsError>) -> std::result::Result<(), AwsError> {
    dify_stack_core::ignore_not_found(result).map(|_| ())
}

#[cfg(test)]
mod selector_tests {
    use super::*;
    use serde_json::json;

    /// Destroy by selector deletes the roles apply makes, by the same names, in the same order.
    #[test]
    fn a_selectors_roles_are_the_specs() {
        let ctx = Context::new("sel-unit", dify_stack_core::Environment::Test, "us-west-2").unwrap();
        let addon = |name: &str| AddonRole {
            addon: name.into(),
            namespace: "kube-system".into(),
            service_account: name.into(),
            policy: json!({}),
        };
        let spec = IamSpec {
            cluster_name: "sel-unit".into(),
            oidc_issuer_url: "https://oidc.eks.us-west-2.amazonaws.com/id/X".into(),
            bucket: "b".into(),
            bucket_kms_key_arn: None,
            plugin_repository_arn_pattern: "arn:aws:ecr:us-west-2:1:repository/sel-unit-ee-plugin-repo*".into(),
            settings: crate::IamSettings {
                namespace: "dify".into(),
                thumbprints: vec![],
                discover_thumbprint: false,
                service_accounts: true,
                helm_release: "dify".into(),
            },
            addon_roles: vec![addon("aws-load-balancer-controller"), addon("cluster-autoscaler")],
        };
        let selector = IamProvisioner::new(MockIamApi::new()).selector(&ctx, &spec);
        let want: Vec<String> = desired_roles(&ctx, &spec).into_iter().map(|r| r.name).collect();
        assert_eq!(selector.role_names(), want);
        assert_eq!(want.len(), 5);
        assert_eq!(selector.oidc_issuer_url.as_deref(), Some(spec.oidc_issuer_url.as_str()));
        assert!(selector.service_accounts);
    }
}
