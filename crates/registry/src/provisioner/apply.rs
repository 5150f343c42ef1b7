//! Apply: executes the typed changes of one observation (creates, in-place updates, guarded
//! replacements) and returns the outputs.

use super::{
    BTreeMap, Context, NewRepo, ObservedRegistry, RegistryError, RegistryOutput, RegistryProvisioner, RegistrySpec,
    RepoChange, RepoInfo, Result, lifecycle_policy, registry_output, wanted,
};
use dify_stack_core::AwsAt;
use dify_stack_core::Provisioner;
use dify_stack_core::ids::RepositoryName;

/// Why `change` may not run: a replacement deletes the images, so it needs both replacement
/// and data loss allowed. Checked for every change before the first write.
pub(super) fn replacement_refusal(ctx: &Context, change: &RepoChange) -> Option<RegistryError> {
    let RepoChange::Replace { new, .. } = change else { return None };
    let p = ctx.permissions;
    (!(p.allow_replace && p.allow_data_loss)).then(|| RegistryError::ReplacementRefused { name: new.name.clone() })
}

impl RegistryProvisioner {
    /// Executes the changes computed from `observed` (already validated and checked against
    /// the permissions by the converge loop) and returns the outputs.
    pub(super) async fn execute_tier(
        &self,
        ctx: &Context,
        spec: &RegistrySpec,
        observed: ObservedRegistry,
        changes: Vec<RepoChange>,
    ) -> Result<RegistryOutput> {
        let mut repos: BTreeMap<String, RepoInfo> =
            observed.repos.into_iter().map(|(name, r)| (name, r.info)).collect();
        for change in changes {
            if let Some(info) = self.execute_one(ctx, spec, change).await? {
                repos.insert(info.name.to_string(), info);
            }
        }
        let [app, plugin] = wanted(ctx, spec).map(|w| repos.remove(&w.name));
        match (app, plugin) {
            (Some(app), Some(plugin)) => Ok(registry_output(&app, &plugin)),
            _ => unreachable!("every wanted repository existed or was created"),
        }
    }

    /// Executes one change; returns the repository when it was (re)created.
    async fn execute_one(&self, ctx: &Context, spec: &RegistrySpec, change: RepoChange) -> Result<Option<RepoInfo>> {
        match change {
            RepoChange::Create(new) => self.create(ctx, spec, new).await.map(Some),
            RepoChange::Replace { new, .. } => {
                self.client
                    .delete_repository(RepositoryName::new(&new.name), true)
                    .await
                    .at("DeleteRepository", &new.name)?;
                self.create(ctx, spec, new).await.map(Some)
            }
            RepoChange::Update { name, arn, scan_on_push, mutability, lifecycle, tags } => {
                if let Some((_, on)) = scan_on_push {
                    self.client
                        .set_scan_on_push(RepositoryName::new(&name), on)
                        .await
                        .at("PutImageScanningConfiguration", &name)?;
                }
                if let Some((_, m)) = mutability {
                    self.client
                        .set_mutability(RepositoryName::new(&name), m)
                        .await
                        .at("PutImageTagMutability", &name)?;
                }
                if let Some((_, policy)) = lifecycle {
                    self.client
                        .put_lifecycle_policy(RepositoryName::new(&name), policy.to_string())
                        .await
                        .at("PutLifecyclePolicy", &name)?;
                }
                if !tags.is_empty() {
                    let drift = dify_stack_core::drift_tags(&tags);
                    self.client.tag(arn, drift).await.at("TagResource", &name)?;
                }
                Ok(None)
            }
        }
    }

    /// Creates a repository (or reads back the one a lost response of ours made) and puts its
    /// lifecycle policy.
    async fn create(&self, ctx: &Context, spec: &RegistrySpec, new: NewRepo) -> Result<RepoInfo> {
        let name = new.name;
        let created = match self
            .client
            .create_repository(RepositoryName::new(&name), new.scan_on_push, new.mutability, new.encryption, new.tags)
            .await
        {
            Ok(info) => info,
            // A lost response to our own earlier create: read it back (tags checked).
            Err(e) if e.is_already_exists() => match self.observe(ctx, spec).await?.repos.remove(&name) {
                Some(r) => r.info,
                None => return Err(e.at("CreateRepository", &name).into()),
            },
            Err(e) => return Err(e.at("CreateRepository", &name).into()),
        };
        self.client
            .put_lifecycle_policy(RepositoryName::new(&name), lifecycle_policy(new.keep_last).to_string())
            .await
            .at("PutLifecyclePolicy", &name)?;
        tracing::info!(repository = %name, "created ECR repository");
        Ok(created)
    }
}
