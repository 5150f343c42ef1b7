//! Observe: lists the repositories once, reads tags and lifecycle policies of ours, and
//! refuses a same-named repository without our ownership tag.

use super::{
    Context, NotOwned, ObservedRegistry, ObservedRepo, RegistryProvisioner, RegistrySpec, Result, runtime_prefix,
    wanted,
};
use dify_stack_core::AwsAt;
use dify_stack_core::ids::RepositoryName;

impl RegistryProvisioner {
    pub(super) async fn observe_tier(&self, ctx: &Context, spec: &RegistrySpec) -> Result<ObservedRegistry> {
        let all = self.client.list_repositories().await.at("DescribeRepositories", "*")?;
        let prefix = runtime_prefix(ctx);
        let mut observed = ObservedRegistry {
            runtime: all.iter().filter(|r| r.name.as_str().starts_with(&prefix)).cloned().collect(),
            ..Default::default()
        };
        for w in wanted(ctx, spec) {
            let Some(info) = all.iter().find(|r| r.name.as_str() == w.name) else { continue };
            let tags = self.client.list_tags(info.arn.clone()).await.at("ListTagsForResource", &w.name)?;
            if !ctx.owns_tags(&tags) {
                return Err(NotOwned::new(ctx, "ECR repository", w.name).into());
            }
            let lifecycle = self
                .client
                .get_lifecycle_policy(RepositoryName::new(&w.name))
                .await
                .at("GetLifecyclePolicy", &w.name)?
                .and_then(|text| serde_json::from_str(&text).ok());
            observed.repos.insert(w.name.clone(), ObservedRepo { info: info.clone(), tags, lifecycle });
        }
        Ok(observed)
    }
}
