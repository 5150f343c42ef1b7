//! Apply: converges the provider, roles and service accounts, in that order.

#[allow(unused_imports)]
use super::*;

impl<C: IamApi> IamProvisioner<C> {
    pub(super) async fn apply_tier(&self, ctx: &Context, spec: &IamSpec) -> Result<IamOutput> {
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
}
