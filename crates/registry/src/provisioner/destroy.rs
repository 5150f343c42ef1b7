//! Destroy: what it would delete (with image counts) and the guarded delete.

use super::{
    Action, BTreeMap, Change, Context, Plan, RegistryError, RegistryProvisioner, RegistrySpec, RepoInfo, ResourceRef,
    Result, runtime_prefix,
};
use dify_stack_core::AwsAt;
use dify_stack_core::ids::RepositoryName;

impl RegistryProvisioner {
    /// What destroy would delete, including the run-time plugin repositories; image counts are
    /// shown so that data loss is visible before it is allowed.
    /// The spec plays no part: the context names the repositories.
    pub async fn plan_destroy(&self, ctx: &Context, _spec: &RegistrySpec) -> Result<Plan> {
        self.plan_destroy_selected(ctx).await
    }

    /// [`Self::plan_destroy`] without a spec.
    pub async fn plan_destroy_selected(&self, ctx: &Context) -> Result<Plan> {
        let all = self.client.list_repositories().await.at("DescribeRepositories", "*")?;
        let prefix = runtime_prefix(ctx);
        let mut targets: Vec<&RepoInfo> = Vec::new();
        for name in [crate::names::app_repository(ctx), crate::names::plugin_repository(ctx)] {
            let Some(info) = all.iter().find(|r| r.name.as_str() == name) else { continue };
            // A same-named repository of someone else is left alone.
            if ctx.owns_tags(&self.client.list_tags(info.arn.clone()).await.at("ListTagsForResource", &name)?) {
                targets.push(info);
            }
        }
        targets.extend(all.iter().filter(|r| r.name.as_str().starts_with(&prefix)));
        let mut plan = Plan::new();
        for RepoInfo { name, arn, .. } in targets {
            let images = self.client.image_count(name.clone()).await.at("ListImages", name.as_str())?;
            plan.push(
                Change::new(Action::Delete, ResourceRef::new("ecr:repository", name.as_str()).with_id(arn.as_str()))
                    .field("images", Some(images), None::<usize>),
            );
        }
        Ok(plan)
    }
    /// Deletes our two repositories and the run-time plugin repositories. When any of them holds
    /// images and data loss is not allowed, nothing is deleted.
    pub(super) async fn destroy_tier(&self, ctx: &Context) -> Result<Vec<ResourceRef>> {
        let plan = self.plan_destroy_selected(ctx).await?;
        let with_images: BTreeMap<String, usize> = plan
            .changes
            .iter()
            .filter_map(|c| {
                let n: usize = c.fields.first()?.before.as_deref()?.parse().ok()?;
                (n > 0).then(|| (c.resource.name.clone(), n))
            })
            .collect();
        if !with_images.is_empty() && !ctx.permissions.allow_data_loss {
            return Err(RegistryError::DataLossRefused { repositories: with_images });
        }
        let mut deleted = Vec::new();
        // Run-time repositories first, then ours.
        for c in plan.changes.iter().rev() {
            let name = &c.resource.name;
            match self.client.delete_repository(RepositoryName::new(name), ctx.permissions.allow_data_loss).await {
                Ok(()) => deleted.push(c.resource.clone()),
                Err(e) if e.is_not_found() => {}
                Err(e) => return Err(e.at("DeleteRepository", name).into()),
            }
        }
        Ok(deleted)
    }
}
