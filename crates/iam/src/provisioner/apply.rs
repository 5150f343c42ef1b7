//! Apply: executes the typed changes of one observation (provider, roles, StorageClass,
//! service accounts, in that order) and returns the outputs.

use super::{
    BTreeMap, Context, DesiredRole, IamChange, IamOutput, IamProvisioner, NotOwned, ObservedIam, OidcProviderArn,
    RoleArn, RoleKey, Tags, Value, desired_roles, provider_arn_of,
};
use crate::AUDIENCE;
use crate::INLINE_POLICY;
use crate::IamSpec;
use crate::IrsaServiceAccount;
use crate::OidcCreate;
use crate::Result;
use crate::RoleKind;
use dify_stack_core::AwsAt;

impl IamProvisioner {
    /// Executes the changes computed from `observed` and returns the outputs. A missing
    /// Kubernetes client was refused by `observe`, before its first read.
    pub(super) async fn execute_tier(
        &self,
        ctx: &Context,
        spec: &IamSpec,
        observed: ObservedIam,
        changes: Vec<IamChange>,
    ) -> Result<IamOutput> {
        let kube = self.kube(spec)?;
        let mut provider_arn = provider_arn_of(&observed).map(str::to_owned);
        let desired = desired_roles(ctx, spec);
        // Role ARNs by role name: the observed ones, then those this run creates.
        let mut arns: BTreeMap<String, RoleArn> = desired
            .iter()
            .filter_map(|r| observed.role(&r.key).map(|have| (r.name.clone(), have.info.arn.clone())))
            .collect();
        if let Some(kube) = kube {
            // Server-side applied on every run: the service accounts' namespace.
            kube.apply_namespace(spec.namespace.clone()).await?;
        }
        for change in changes {
            match change {
                IamChange::CreateProvider { url, tags } => {
                    provider_arn = Some(self.create_provider(spec, &url, tags).await?.into_inner());
                }
                IamChange::AddClientId { url, arn, .. } => {
                    self.client
                        .add_client_id(arn, AUDIENCE.into())
                        .await
                        .at("AddClientIDToOpenIDConnectProvider", &url)?;
                }
                IamChange::CreateRole { role, tags } => {
                    let trust = role.trust(spec, provider_arn.as_deref().unwrap_or_default());
                    let arn = self.create_role(ctx, &role, trust, tags).await?;
                    arns.insert(role.name, arn);
                }
                IamChange::UpdateRole { role, trust, policy, tags, .. } => {
                    let name = role.name.clone();
                    if trust.is_some() {
                        let trust = role.trust(spec, provider_arn.as_deref().unwrap_or_default());
                        self.client
                            .update_trust(name.clone(), trust.to_string())
                            .await
                            .at("UpdateAssumeRolePolicy", &name)?;
                    }
                    if policy.is_some() {
                        self.client
                            .put_role_policy(name.clone(), INLINE_POLICY.into(), role.policy.to_string())
                            .await
                            .at("PutRolePolicy", &name)?;
                    }
                    if !tags.is_empty() {
                        let drift = dify_stack_core::drift_tags(&tags);
                        self.client.tag_role(name.clone(), drift).await.at("TagRole", &name)?;
                    }
                }
                IamChange::CreateStorageClass => {
                    if let Some(kube) = kube {
                        kube.apply_default_storage_class().await?;
                    }
                }
                IamChange::ServiceAccount { namespace, account, kind, .. } => {
                    if let Some(kube) = kube {
                        let role_arn = arns[&kind.role_name(spec.cluster_name.as_str())].to_string();
                        let (name, helm_release) = (account.to_owned(), spec.helm_release.clone());
                        kube.apply_service_account(IrsaServiceAccount { namespace, name, role_arn, helm_release })
                            .await?;
                    }
                }
            }
        }
        let (mut roles, mut addon_roles) = (BTreeMap::new(), BTreeMap::new());
        for role in desired {
            let arn = arns[&role.name].clone();
            match role.key {
                RoleKey::Dify(kind) => roles.insert(kind, arn),
                RoleKey::Addon(addon) => addon_roles.insert(addon, arn),
            };
        }
        let service_accounts = match kube {
            None => BTreeMap::new(),
            Some(_) => RoleKind::ALL
                .into_iter()
                .flat_map(|kind| kind.service_accounts().into_iter().map(move |sa| (sa, kind)))
                .map(|(sa, kind)| (sa.to_owned(), roles[&kind].clone()))
                .collect(),
        };
        Ok(IamOutput {
            oidc_provider_arn: provider_arn.unwrap_or_default(),
            roles,
            service_accounts,
            namespace: spec.namespace.clone(),
            addon_roles,
        })
    }

    /// Creates the provider for the issuer, or finds the one a lost response of ours made.
    async fn create_provider(&self, spec: &IamSpec, url: &str, tags: Tags) -> Result<OidcProviderArn> {
        let create = OidcCreate {
            url: spec.oidc_issuer_url.clone(),
            client_ids: vec![AUDIENCE.into()],
            thumbprints: spec.thumbprints.clone(),
            tags,
        };
        let created = self.client.create_oidc_provider(create).await;
        match created {
            Ok(arn) => Ok(arn),
            // A lost response to our own create: find it again by URL.
            Err(e) if e.is_already_exists() => match self.find_provider(spec).await? {
                Some(p) => Ok(p.arn),
                None => Err(e.at("CreateOpenIDConnectProvider", url).into()),
            },
            Err(e) => Err(e.at("CreateOpenIDConnectProvider", url).into()),
        }
    }

    /// Creates the role (or takes back the one a lost response of ours made, its trust
    /// rewritten), then puts its inline policy; returns its ARN.
    async fn create_role(&self, ctx: &Context, role: &DesiredRole, trust: Value, tags: Tags) -> Result<RoleArn> {
        let name = role.name.clone();
        let arn = match self.client.create_role(name.clone(), trust.to_string(), tags).await {
            Ok(r) => r.arn,
            Err(e) if e.is_already_exists() => match self.client.get_role(name.clone()).await.at("GetRole", &name)? {
                Some(r) if ctx.owns_tags(&r.tags) => {
                    self.client
                        .update_trust(name.clone(), trust.to_string())
                        .await
                        .at("UpdateAssumeRolePolicy", &name)?;
                    r.arn
                }
                _ => return Err(NotOwned::new(ctx, "IAM role", name).into()),
            },
            Err(e) => return Err(e.at("CreateRole", &name).into()),
        };
        self.client
            .put_role_policy(name.clone(), INLINE_POLICY.into(), role.policy.to_string())
            .await
            .at("PutRolePolicy", &name)?;
        tracing::info!(role = %name, "created IAM role");
        Ok(arn)
    }
}
