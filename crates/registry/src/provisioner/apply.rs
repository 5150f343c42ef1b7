//! Apply: creates what is missing, updates settings and lifecycle policies, replaces only
//! when the context allows it.

#[allow(unused_imports)]
use super::*;

impl<C: EcrApi> RegistryProvisioner<C> {
    pub(super) async fn apply_tier(&self, ctx: &Context, spec: &RegistrySpec) -> Result<RegistryOutput> {
        spec.validate(ctx)?;
        let mut observed = self.observe(ctx, spec).await?;
        if let Some(c) = self.diff(ctx, spec, &observed).with_action(Action::Replace).next() {
            let name = c.resource.name.clone();
            let p = ctx.permissions;
            if !(p.allow_replace && p.allow_data_loss) {
                return Err(RegistryError::ReplacementRefused { name });
            }
            self.client.delete_repository(name.clone(), true).await.at("DeleteRepository", &name)?;
            observed.repos.remove(&name);
        }
        let mut outputs = Vec::new();
        for w in wanted(ctx, spec) {
            let tags = ctx.tags_for(Tier::Registry, w.component, &w.name);
            let info = match observed.repos.get(&w.name) {
                None => {
                    let created = match self
                        .client
                        .create_repository(
                            w.name.clone(),
                            w.spec.scan_on_push,
                            w.spec.tag_mutability,
                            spec.encryption.clone(),
                            tags.clone(),
                        )
                        .await
                    {
                        Ok(info) => info,
                        // A lost response to our own earlier create: read it back (tags checked).
                        Err(e) if e.is_already_exists() => {
                            let again = self.observe(ctx, spec).await?;
                            match again.repos.get(&w.name) {
                                Some(r) => r.info.clone(),
                                None => return Err(e.at("CreateRepository", &w.name).into()),
                            }
                        }
                        Err(e) => return Err(e.at("CreateRepository", &w.name).into()),
                    };
                    self.client
                        .put_lifecycle_policy(w.name.clone(), lifecycle_policy(w.spec.keep_last).to_string())
                        .await
                        .at("PutLifecyclePolicy", &w.name)?;
                    tracing::info!(repository = %w.name, "created ECR repository");
                    created
                }
                Some(have) => {
                    if have.info.scan_on_push != w.spec.scan_on_push {
                        self.client
                            .set_scan_on_push(w.name.clone(), w.spec.scan_on_push)
                            .await
                            .at("PutImageScanningConfiguration", &w.name)?;
                    }
                    if have.info.mutability != w.spec.tag_mutability {
                        self.client
                            .set_mutability(w.name.clone(), w.spec.tag_mutability)
                            .await
                            .at("PutImageTagMutability", &w.name)?;
                    }
                    let policy = lifecycle_policy(w.spec.keep_last);
                    if have.lifecycle.as_ref() != Some(&policy) {
                        self.client
                            .put_lifecycle_policy(w.name.clone(), policy.to_string())
                            .await
                            .at("PutLifecyclePolicy", &w.name)?;
                    }
                    let drift: Tags = tags.into_iter().filter(|(k, v)| have.tags.get(k) != Some(v)).collect();
                    if !drift.is_empty() {
                        self.client.tag(have.info.arn.clone(), drift).await.at("TagResource", &w.name)?;
                    }
                    have.info.clone()
                }
            };
            outputs.push(info);
        }
        let [app, plugin]: [RepoInfo; 2] =
            outputs.try_into().unwrap_or_else(|_| unreachable!("two repositories are wanted"));
        Ok(registry_output(&app, &plugin))
    }
}
