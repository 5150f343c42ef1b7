//! The registry provisioner: its state, output and the `Provisioner` contract; observe, diff,
//! apply and destroy are in the child modules.

use std::collections::BTreeMap;

use async_trait::async_trait;
use dify_stack_core::{
    Action, Change, Context, NotOwned, Plan, Planned, Provisioner, ResourceRef, SpecErrors, Tags, Tier,
};
use serde::Serialize;

use crate::client::{EcrApi, RepoInfo};
use crate::error::{RegistryError, Result};
use crate::names::{self, runtime_prefix};
use crate::sdk::SdkEcr;
use crate::spec::{Encryption, RegistrySpec, RepositorySpec, TagMutability, lifecycle_policy};
use apply::replacement_refusal;
pub use diff::RegistryStep;
use diff::{NewRepo, RepoChange};

mod apply;
mod destroy;
mod diff;
mod observe;

/// One repository in the output.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct RepositoryOutput {
    /// Name.
    pub name: String,
    /// ARN.
    pub arn: String,
    /// URI to push to.
    pub uri: String,
}

/// What the registry tier hands to the other tiers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct RegistryOutput {
    /// The application repository.
    pub app: RepositoryOutput,
    /// The EE plugin repository.
    pub plugin: RepositoryOutput,
    /// ARN pattern covering the plugin repository and those created under it at run time
    /// (`arn:<partition>:ecr:<region>:<account>:repository/<stack>-ee-plugin-repo*`), for IAM.
    pub plugin_repository_arn_pattern: String,
    /// The image repository prefix for the plugin connector (`<registry>/<stack>-ee-plugin-repo`).
    pub plugin_image_repo_prefix: String,
}

/// The tier's output from its two repositories.
fn registry_output(app: &RepoInfo, plugin: &RepoInfo) -> RegistryOutput {
    let repo = |r: &RepoInfo| RepositoryOutput { name: r.name.to_string(), arn: r.arn.to_string(), uri: r.uri.clone() };
    let arn_prefix = plugin.arn.as_str().rsplit_once(":repository/").map(|(p, _)| p.to_owned()).unwrap_or_default();
    let registry = plugin.uri.split('/').next().unwrap_or_default().to_owned();
    RegistryOutput {
        plugin_repository_arn_pattern: format!("{arn_prefix}:repository/{}*", plugin.name),
        plugin_image_repo_prefix: format!("{registry}/{}", plugin.name),
        app: repo(app),
        plugin: repo(plugin),
    }
}

/// An owned repository with what was read about it.
#[derive(Debug, Clone)]
pub struct ObservedRepo {
    /// The repository.
    pub info: RepoInfo,
    /// Its tags.
    pub tags: Tags,
    /// Its lifecycle policy, parsed.
    pub lifecycle: Option<serde_json::Value>,
}

/// What exists.
#[derive(Debug, Clone, Default)]
pub struct ObservedRegistry {
    /// Our repositories by name (app, plugin).
    pub repos: BTreeMap<String, ObservedRepo>,
    /// Repositories created at run time under `<stack>-ee-plugin-repo/`.
    pub runtime: Vec<RepoInfo>,
}

/// Provisions the registry tier through an [`EcrApi`] (the SDK's [`SdkEcr`], a mock or fake in
/// tests). Cheap to clone: clones share the client.
#[derive(Clone)]
pub struct RegistryProvisioner {
    client: std::sync::Arc<dyn EcrApi>,
}

impl std::fmt::Debug for RegistryProvisioner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RegistryProvisioner").finish_non_exhaustive()
    }
}

impl RegistryProvisioner {
    /// A provisioner over the real ECR API.
    pub fn from_conf(config: &aws_types::SdkConfig) -> Self {
        RegistryProvisioner::new(SdkEcr::from_conf(config))
    }
}

struct Wanted<'a> {
    name: String,
    component: &'static str,
    spec: &'a RepositorySpec,
}

fn wanted<'a>(ctx: &Context, spec: &'a RegistrySpec) -> [Wanted<'a>; 2] {
    [
        Wanted { name: names::app_repository(ctx), component: "app-repository", spec: &spec.app },
        Wanted { name: names::plugin_repository(ctx), component: "plugin-repository", spec: &spec.plugin },
    ]
}

impl RegistryProvisioner {
    /// A provisioner over the given client.
    pub fn new(client: impl EcrApi + 'static) -> Self {
        RegistryProvisioner { client: std::sync::Arc::new(client) }
    }
}

#[async_trait]
impl Provisioner for RegistryProvisioner {
    type Spec = RegistrySpec;
    type Observed = ObservedRegistry;
    type Output = RegistryOutput;
    type Error = RegistryError;
    /// The context names the repositories: destroy needs nothing else.
    type Selector = ();
    type Change = RegistryStep;

    fn validate(&self, ctx: &Context, spec: &RegistrySpec) -> Result<(), SpecErrors> {
        spec.validate(ctx)
    }

    async fn observe(&self, ctx: &Context, spec: &RegistrySpec) -> Result<ObservedRegistry> {
        self.observe_tier(ctx, spec).await
    }

    fn changes(&self, ctx: &Context, spec: &RegistrySpec, observed: &ObservedRegistry) -> Vec<RegistryStep> {
        self.repo_changes(ctx, spec, observed).into_iter().map(RegistryStep).collect()
    }

    /// A replacement deletes the repository with its images: refused unless the context allows
    /// both replacement and data loss.
    fn refusal(&self, ctx: &Context, _spec: &RegistrySpec, change: &RegistryStep) -> Option<RegistryError> {
        replacement_refusal(ctx, &change.0)
    }

    async fn execute(
        &self,
        ctx: &Context,
        spec: &RegistrySpec,
        observed: ObservedRegistry,
        changes: Vec<RegistryStep>,
    ) -> Result<RegistryOutput> {
        self.execute_tier(ctx, spec, observed, changes.into_iter().map(|c| c.0).collect()).await
    }

    fn output(&self, ctx: &Context, spec: &RegistrySpec, observed: &ObservedRegistry) -> Option<RegistryOutput> {
        let found: Vec<&RepoInfo> =
            wanted(ctx, spec).iter().map(|w| observed.repos.get(&w.name).map(|r| &r.info)).collect::<Option<_>>()?;
        let [app, plugin] = found.as_slice() else { return None };
        Some(registry_output(app, plugin))
    }

    /// Deletes our two repositories and the run-time plugin repositories. When any of them holds
    /// images and data loss is not allowed, nothing is deleted.
    fn selector(&self, _ctx: &Context, _spec: &RegistrySpec) {}

    async fn destroy_selected(&self, ctx: &Context, _selector: &()) -> Result<Vec<ResourceRef>> {
        self.destroy_tier(ctx).await
    }
}
