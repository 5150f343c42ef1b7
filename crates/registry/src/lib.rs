//! Registry tier of [dify-stack](https://github.com/dify-stack/dify-stack): the ECR repository
//! for the Dify application images (`<stack>`) and the one for Dify EE plugin images
//! (`<stack>-ee-plugin-repo`), with scan on push, encryption, tag mutability and lifecycle
//! policies. Repositories the plugin connector creates at run time under
//! `<stack>-ee-plugin-repo/` are listed by [`RegistryProvisioner::plan_destroy`] and deleted,
//! like any repository holding images, only when the context allows data loss.

pub mod client;
pub mod names;
pub mod spec;
#[cfg(test)]
mod tests;

use std::collections::BTreeMap;

use async_trait::async_trait;
use dify_stack_core::{
    Action, AwsAt, AwsFailure, Change, Classify, Context, ErrorKind, NameKind, NotOwned, Plan, Provisioner,
    ResourceRef, SpecErrors, Tags, Tier,
};
use serde::Serialize;

#[cfg(any(test, feature = "test-util"))]
pub use client::MockEcrApi;
pub use client::{EcrApi, RepoInfo, SdkEcr};
pub use spec::{Encryption, PLUGIN_SUFFIX, RegistrySpec, RepositorySpec, TagMutability, lifecycle_policy};

/// Everything that can go wrong in the registry tier.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    /// The spec is invalid. Permanent: fix the spec.
    #[error("invalid registry spec:\n{0}")]
    Invalid(#[from] SpecErrors),
    /// A repository with our name exists without our ownership tag. Never adopted or deleted.
    #[error(transparent)]
    NotOwned(#[from] NotOwned),
    /// The encryption of a repository differs and replacement is not allowed (it would delete
    /// the images).
    #[error(
        "repository {name:?} would be replaced (encryption cannot change in place); set allow_replace and allow_data_loss to permit it"
    )]
    ReplacementRefused {
        /// The repository.
        name: String,
    },
    /// Destroy found images and the context does not allow data loss. Nothing was deleted.
    #[error(
        "repositories still hold images {repositories:?} (name -> image count); nothing was deleted: set allow_data_loss to delete them with their images"
    )]
    DataLossRefused {
        /// Repository name -> number of images.
        repositories: BTreeMap<String, usize>,
    },
    /// An ECR call failed. Retryable when the AWS error is; re-running resumes.
    #[error(transparent)]
    Aws(#[from] AwsFailure),
}

/// Result alias of the registry tier.
pub type Result<T, E = RegistryError> = std::result::Result<T, E>;

impl Classify for RegistryError {
    fn kind(&self) -> ErrorKind {
        match self {
            RegistryError::Invalid(_) => ErrorKind::Invalid,
            RegistryError::NotOwned(e) => e.kind(),
            RegistryError::ReplacementRefused { .. } | RegistryError::DataLossRefused { .. } => ErrorKind::Refused,
            RegistryError::Aws(e) => e.kind(),
        }
    }
}

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
    let repo = |r: &RepoInfo| RepositoryOutput { name: r.name.clone(), arn: r.arn.clone(), uri: r.uri.clone() };
    let arn_prefix = plugin.arn.rsplit_once(":repository/").map(|(p, _)| p.to_owned()).unwrap_or_default();
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

/// Provisions the registry tier.
#[derive(Debug, Clone)]
pub struct RegistryProvisioner<C = SdkEcr> {
    client: C,
}

impl RegistryProvisioner<SdkEcr> {
    /// A provisioner over the real ECR API.
    pub fn from_conf(config: &aws_types::SdkConfig) -> Self {
        RegistryProvisioner { client: SdkEcr::from_conf(config) }
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

use names::runtime_prefix;

impl<C: EcrApi> RegistryProvisioner<C> {
    /// A provisioner over the given client.
    pub fn new(client: C) -> Self {
        RegistryProvisioner { client }
    }

    /// What destroy would delete, including the run-time plugin repositories; image counts are
    /// shown so that data loss is visible before it is allowed.
    pub async fn plan_destroy(&self, ctx: &Context, spec: &RegistrySpec) -> Result<Plan> {
        let all = self.client.list_repositories().await.at("DescribeRepositories", "*")?;
        let prefix = runtime_prefix(ctx);
        let mut targets: Vec<&RepoInfo> = Vec::new();
        for w in wanted(ctx, spec) {
            let Some(info) = all.iter().find(|r| r.name == w.name) else { continue };
            // A same-named repository of someone else is left alone.
            if ctx.owns_tags(&self.client.list_tags(info.arn.clone()).await.at("ListTagsForResource", &w.name)?) {
                targets.push(info);
            }
        }
        targets.extend(all.iter().filter(|r| r.name.starts_with(&prefix)));
        let mut plan = Plan::new();
        for RepoInfo { name, arn, .. } in targets {
            let images = self.client.image_count(name.clone()).await.at("ListImages", name)?;
            plan.push(Change::new(Action::Delete, ResourceRef::new("ecr:repository", name).with_id(arn)).field(
                "images",
                Some(images),
                None::<usize>,
            ));
        }
        Ok(plan)
    }
}

#[async_trait]
impl<C: EcrApi> Provisioner for RegistryProvisioner<C> {
    type Spec = RegistrySpec;
    type Observed = ObservedRegistry;
    type Output = RegistryOutput;
    type Error = RegistryError;

    fn validate(&self, ctx: &Context, spec: &RegistrySpec) -> Result<(), SpecErrors> {
        spec.validate(ctx)
    }

    async fn observe(&self, ctx: &Context, spec: &RegistrySpec) -> Result<ObservedRegistry> {
        let all = self.client.list_repositories().await.at("DescribeRepositories", "*")?;
        let prefix = runtime_prefix(ctx);
        let mut observed = ObservedRegistry {
            runtime: all.iter().filter(|r| r.name.starts_with(&prefix)).cloned().collect(),
            ..Default::default()
        };
        for w in wanted(ctx, spec) {
            let Some(info) = all.iter().find(|r| r.name == w.name) else { continue };
            let tags = self.client.list_tags(info.arn.clone()).await.at("ListTagsForResource", &w.name)?;
            if !ctx.owns_tags(&tags) {
                return Err(NotOwned::new(ctx, "ECR repository", w.name).into());
            }
            let lifecycle = self
                .client
                .get_lifecycle_policy(w.name.clone())
                .await
                .at("GetLifecyclePolicy", &w.name)?
                .and_then(|text| serde_json::from_str(&text).ok());
            observed.repos.insert(w.name.clone(), ObservedRepo { info: info.clone(), tags, lifecycle });
        }
        Ok(observed)
    }

    fn diff(&self, ctx: &Context, spec: &RegistrySpec, observed: &ObservedRegistry) -> Plan {
        let mut plan = Plan::new();
        for w in wanted(ctx, spec) {
            let r = ResourceRef::new("ecr:repository", &w.name);
            let mutability = format!("{:?}", w.spec.tag_mutability).to_uppercase();
            let Some(have) = observed.repos.get(&w.name) else {
                plan.push(
                    Change::new(Action::Create, r)
                        .field("scan_on_push", None::<bool>, Some(w.spec.scan_on_push))
                        .field("image_tag_mutability", None::<&str>, Some(&mutability))
                        .field("encryption", None::<&str>, Some(format!("{:?}", spec.encryption)))
                        .field("lifecycle.keep_last", None::<u32>, Some(w.spec.keep_last)),
                );
                continue;
            };
            let r = r.with_id(&have.info.arn);
            if have.info.encryption != spec.encryption {
                plan.push(
                    Change::new(Action::Replace, r.clone())
                        .field(
                            "encryption",
                            Some(format!("{:?}", have.info.encryption)),
                            Some(format!("{:?}", spec.encryption)),
                        )
                        .because("encryption cannot change in place"),
                );
            }
            let mut c = Change::new(Action::Update, r);
            if have.info.scan_on_push != w.spec.scan_on_push {
                c = c.field("scan_on_push", Some(have.info.scan_on_push), Some(w.spec.scan_on_push));
            }
            if have.info.mutability != w.spec.tag_mutability {
                let before = format!("{:?}", have.info.mutability).to_uppercase();
                c = c.field("image_tag_mutability", Some(before), Some(&mutability));
            }
            // Lifecycle policies are compared as normalised JSON, never as text.
            let want_policy = lifecycle_policy(w.spec.keep_last);
            if have.lifecycle.as_ref() != Some(&want_policy) {
                c = c.field("lifecycle_policy", have.lifecycle.as_ref(), Some(&want_policy));
            }
            let want_tags = ctx.tags_for(Tier::Registry, w.component, &w.name);
            for (k, v) in want_tags.iter().filter(|(k, v)| have.tags.get(*k) != Some(*v)) {
                c = c.field(format!("tags.{k}"), have.tags.get(k), Some(v));
            }
            if !c.fields.is_empty() {
                plan.push(c);
            }
        }
        plan
    }

    async fn apply(&self, ctx: &Context, spec: &RegistrySpec) -> Result<RegistryOutput> {
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

    fn output(&self, ctx: &Context, spec: &RegistrySpec, observed: &ObservedRegistry) -> Option<RegistryOutput> {
        let found: Vec<&RepoInfo> =
            wanted(ctx, spec).iter().map(|w| observed.repos.get(&w.name).map(|r| &r.info)).collect::<Option<_>>()?;
        let [app, plugin] = found.as_slice() else { return None };
        Some(registry_output(app, plugin))
    }

    /// Deletes our two repositories and the run-time plugin repositories. When any of them holds
    /// images and data loss is not allowed, nothing is deleted.
    async fn destroy(&self, ctx: &Context, spec: &RegistrySpec) -> Result<Vec<ResourceRef>> {
        let plan = self.plan_destroy(ctx, spec).await?;
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
            match self.client.delete_repository(name.clone(), ctx.permissions.allow_data_loss).await {
                Ok(()) => deleted.push(c.resource.clone()),
                Err(e) if e.is_not_found() => {}
                Err(e) => return Err(e.at("DeleteRepository", name).into()),
            }
        }
        Ok(deleted)
    }
}

/// The derived repository names, checked against ECR's rules: `[app, plugin]`.
pub fn repository_names(ctx: &Context) -> Result<[String; 2], dify_stack_core::NameError> {
    Ok([ctx.name(NameKind::EcrRepository, "")?, ctx.name(NameKind::EcrRepository, PLUGIN_SUFFIX)?])
}
