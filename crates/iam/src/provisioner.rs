//! The IAM provisioner: the OIDC provider, the IRSA roles and their service accounts.

use std::collections::BTreeMap;

use async_trait::async_trait;
use dify_stack_core::ids::RoleArn;
use dify_stack_core::{
    Action, AwsAt, AwsError, Change, Context, KubeFailure, NotOwned, Plan, Provisioner, ResourceRef, SpecErrors, Tags,
    Tier,
};
use serde::Serialize;
use serde_json::Value;

#[allow(unused_imports)]
use crate::*;

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
pub struct IamProvisioner<C = SdkIam> {
    client: C,
    kube: Option<Box<dyn ServiceAccountApi>>,
}

impl<C: std::fmt::Debug> std::fmt::Debug for IamProvisioner<C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IamProvisioner").field("client", &self.client).field("kube", &self.kube.is_some()).finish()
    }
}

impl IamProvisioner<SdkIam> {
    /// A provisioner over the real IAM API, without Kubernetes access (role-only unless
    /// [`IamProvisioner::with_kubernetes`] is used).
    pub fn from_conf(config: &aws_types::SdkConfig) -> Self {
        IamProvisioner { client: SdkIam::from_conf(config), kube: None }
    }
}

fn provider_arn_of(observed: &ObservedIam) -> Option<&str> {
    observed.provider.as_ref().map(|p| p.arn.as_str())
}

impl<C: IamApi> IamProvisioner<C> {
    /// A provisioner over the given client.
    pub fn new(client: C) -> Self {
        IamProvisioner { client, kube: None }
    }

    /// Adds the Kubernetes access used for the namespace and service accounts.
    pub fn with_kubernetes(mut self, kube: impl ServiceAccountApi + 'static) -> Self {
        self.kube = Some(Box::new(kube));
        self
    }

    fn kube(&self, spec: &IamSpec) -> Result<Option<&dyn ServiceAccountApi>> {
        match (&self.kube, spec.service_accounts) {
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

    /// Creates the role or converges its trust, policy and tags; returns its ARN.
    async fn ensure_role(
        &self,
        ctx: &Context,
        role: &DesiredRole,
        trust: Value,
        have: Option<&ObservedRole>,
    ) -> Result<String> {
        let name = role.name.clone();
        let tags = ctx.tags_for(Tier::Iam, &role.tag_suffix, &name);
        let Some(have) = have else {
            let created = match self.client.create_role(name.clone(), trust.to_string(), tags).await {
                Ok(r) => r.arn,
                Err(e) if e.is_already_exists() => {
                    match self.client.get_role(name.clone()).await.at("GetRole", &name)? {
                        Some(r) if ctx.owns_tags(&r.tags) => {
                            self.client
                                .update_trust(name.clone(), trust.to_string())
                                .await
                                .at("UpdateAssumeRolePolicy", &name)?;
                            r.arn
                        }
                        _ => return Err(NotOwned::new(ctx, "IAM role", name).into()),
                    }
                }
                Err(e) => return Err(e.at("CreateRole", &name).into()),
            };
            self.client
                .put_role_policy(name.clone(), INLINE_POLICY.into(), role.policy.to_string())
                .await
                .at("PutRolePolicy", &name)?;
            tracing::info!(role = %name, "created IAM role");
            return Ok(created);
        };
        if have.trust.as_ref() != Some(&policy::normalize(trust.clone())) {
            self.client.update_trust(name.clone(), trust.to_string()).await.at("UpdateAssumeRolePolicy", &name)?;
        }
        if have.policy.as_ref() != Some(&policy::normalize(role.policy.clone())) {
            self.client
                .put_role_policy(name.clone(), INLINE_POLICY.into(), role.policy.to_string())
                .await
                .at("PutRolePolicy", &name)?;
        }
        let drift: Tags = tags.into_iter().filter(|(k, v)| have.info.tags.get(k) != Some(v)).collect();
        if !drift.is_empty() {
            self.client.tag_role(name.clone(), drift).await.at("TagRole", &name)?;
        }
        Ok(have.info.arn.clone())
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
        Ok(Some(ResourceRef::new("iam:role", &name).with_id(role.arn)))
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
    });
    let addons = spec.addon_roles.iter().map(|a| DesiredRole {
        key: RoleKey::Addon(a.addon.clone()),
        name: a.role_name(cluster),
        tag_suffix: a.addon.clone(),
        subjects: policy::subjects(&a.namespace, &[a.service_account.as_str()]),
        policy: a.policy.clone(),
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
impl<C: IamApi> Provisioner for IamProvisioner<C> {
    type Spec = IamSpec;
    type Observed = ObservedIam;
    type Output = IamOutput;
    type Error = IamError;

    fn validate(&self, _ctx: &Context, spec: &IamSpec) -> Result<(), SpecErrors> {
        spec.validate()
    }

    async fn observe(&self, ctx: &Context, spec: &IamSpec) -> Result<ObservedIam> {
        let mut observed = ObservedIam { provider: self.find_provider(spec).await?, ..Default::default() };
        for role in desired_roles(ctx, spec) {
            if let Some(have) = self.observe_role(ctx, &role.name).await? {
                observed.insert_role(role.key, have);
            }
        }
        if let Some(kube) = self.kube(spec)? {
            observed.service_accounts = kube.list_managed(spec.namespace.clone()).await?;
            observed.default_storage_class = kube.default_storage_class_present().await?;
        }
        Ok(observed)
    }

    fn diff(&self, ctx: &Context, spec: &IamSpec, observed: &ObservedIam) -> Plan {
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

    async fn apply(&self, ctx: &Context, spec: &IamSpec) -> Result<IamOutput> {
        spec.validate()?;
        let kube = self.kube(spec)?;
        let observed = self.observe(ctx, spec).await?;
        let url = policy::issuer_host_path(&spec.oidc_issuer_url).to_owned();
        let provider_arn = match provider_arn_of(&observed) {
            Some(arn) => {
                let p = observed.provider.as_ref().map(|p| &p.client_ids);
                if !p.is_some_and(|ids| ids.iter().any(|c| c == AUDIENCE)) {
                    self.client
                        .add_client_id(arn.to_owned(), AUDIENCE.into())
                        .await
                        .at("AddClientIDToOpenIDConnectProvider", arn)?;
                }
                arn.to_owned()
            }
            None => {
                let tags = ctx.tags_for(Tier::Iam, "oidc-provider", &url);
                match self
                    .client
                    .create_oidc_provider(
                        spec.oidc_issuer_url.clone(),
                        vec![AUDIENCE.into()],
                        spec.thumbprints.clone(),
                        tags,
                    )
                    .await
                {
                    Ok(arn) => arn,
                    // A lost response to our own create: find it again by URL.
                    Err(e) if e.is_already_exists() => match self.find_provider(spec).await? {
                        Some(p) => p.arn,
                        None => return Err(e.at("CreateOpenIDConnectProvider", &url).into()),
                    },
                    Err(e) => return Err(e.at("CreateOpenIDConnectProvider", &url).into()),
                }
            }
        };
        let (mut roles, mut addon_roles) = (BTreeMap::new(), BTreeMap::new());
        for role in desired_roles(ctx, spec) {
            let trust = role.trust(spec, &provider_arn);
            let arn = RoleArn::new(self.ensure_role(ctx, &role, trust, observed.role(&role.key)).await?);
            match role.key {
                RoleKey::Dify(kind) => roles.insert(kind, arn),
                RoleKey::Addon(addon) => addon_roles.insert(addon, arn),
            };
        }
        let mut service_accounts = BTreeMap::new();
        if let Some(kube) = kube {
            if !observed.default_storage_class {
                kube.apply_default_storage_class().await?;
            }
            kube.apply_namespace(spec.namespace.clone()).await?;
            for kind in RoleKind::ALL {
                let role = &roles[&kind];
                for sa in kind.service_accounts() {
                    let current = observed.service_accounts.iter().find(|s| s.name == sa);
                    if current.and_then(|s| s.role_arn.as_deref()) != Some(role.as_str())
                        || current.and_then(|s| s.helm_release.as_deref()) != Some(spec.helm_release.as_str())
                    {
                        kube.apply_service_account(
                            spec.namespace.clone(),
                            sa.to_owned(),
                            role.to_string(),
                            spec.helm_release.clone(),
                        )
                        .await?;
                    }
                    service_accounts.insert(sa.to_owned(), role.clone());
                }
            }
        }
        Ok(IamOutput {
            oidc_provider_arn: provider_arn,
            roles,
            service_accounts,
            namespace: spec.namespace.clone(),
            addon_roles,
        })
    }

    /// Service accounts (and the namespace, when ours and otherwise empty), then the roles (inline
    /// policies deleted, managed ones detached), then the OIDC provider if the stack created it.
    async fn destroy(&self, ctx: &Context, spec: &IamSpec) -> Result<Vec<ResourceRef>> {
        let mut deleted = Vec::new();
        if let Some(kube) = self.kube(spec)? {
            match delete_service_accounts(kube, &spec.namespace).await {
                Ok(refs) => deleted.extend(refs),
                // Destroy never blocks on the Kubernetes API: objects inside the cluster go
                // with it (the cluster is deleted after this node), the roles must not wait.
                Err(e) if e.unreachable => tracing::warn!(
                    error = %e,
                    "the Kubernetes API cannot be reached; the service accounts go with the cluster"
                ),
                Err(e) => return Err(e.into()),
            }
        }
        for role in desired_roles(ctx, spec) {
            deleted.extend(self.delete_role(ctx, &role.name).await?);
        }
        if let Some(p) = self.find_provider(spec).await?
            && ctx.owns_tags(&p.tags)
        {
            ignore(self.client.delete_oidc_provider(p.arn.clone()).await).at("DeleteOpenIDConnectProvider", &p.arn)?;
            deleted.push(ResourceRef::new("iam:oidc-provider", &p.url).with_id(p.arn));
        }
        Ok(deleted)
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
