//! The registry tier against the local AWS emulator.

use aws_sdk_ecr::Client;
use dify_stack_core::{Context, Environment, Permissions, Provisioner};
use dify_stack_emulator::Emulator;
use dify_stack_registry::{RegistryError, RegistryProvisioner, RegistrySpec, TagMutability, lifecycle_policy};

async fn setup() -> (Client, RegistryProvisioner) {
    let account = Emulator::shared().expect("emulator").account("us-west-2").await;
    (Client::new(&account.config), RegistryProvisioner::from_conf(&account.config))
}

fn ctx(stack: &str) -> Context {
    Context::new(stack, Environment::Test, "us-west-2").unwrap()
}

async fn repo_names(ecr: &Client) -> Vec<String> {
    let out = ecr.describe_repositories().send().await.unwrap();
    let mut names: Vec<String> =
        out.repositories().iter().filter_map(|r| r.repository_name()).map(str::to_owned).collect();
    names.sort();
    names
}

#[tokio::test]
async fn repositories_are_created_as_specified_and_reapply_is_a_no_op() {
    let (ecr, registry) = setup().await;
    let ctx = ctx("reg-a");
    let spec = RegistrySpec::default();
    assert_eq!(registry.plan(&ctx, &spec).await.unwrap().summary().create, 2);
    let out = registry.apply(&ctx, &spec).await.unwrap();
    assert_eq!(out.app.name, "reg-a");
    assert_eq!(out.plugin.name, "reg-a-ee-plugin-repo");
    assert!(out.plugin_repository_arn_pattern.ends_with(":repository/reg-a-ee-plugin-repo*"), "{out:?}");
    assert!(out.plugin_repository_arn_pattern.starts_with("arn:aws:ecr:us-west-2:"));
    assert_eq!(repo_names(&ecr).await, vec!["reg-a", "reg-a-ee-plugin-repo"]);

    for (name, keep, mutability) in [("reg-a", 10, "IMMUTABLE"), ("reg-a-ee-plugin-repo", 20, "MUTABLE")] {
        let r = ecr.describe_repositories().repository_names(name).send().await.unwrap();
        let r = &r.repositories()[0];
        assert!(r.image_scanning_configuration().unwrap().scan_on_push(), "{name}");
        assert_eq!(r.image_tag_mutability().unwrap().as_str(), mutability, "{name}");
        let text = ecr.get_lifecycle_policy().repository_name(name).send().await.unwrap();
        let policy: serde_json::Value = serde_json::from_str(text.lifecycle_policy_text().unwrap()).unwrap();
        assert_eq!(policy, lifecycle_policy(keep), "{name}");
        assert_eq!(policy["rules"][0]["selection"]["countNumber"], keep);
        assert_eq!(policy["rules"][0]["selection"]["tagStatus"], "any");
        let tags = ecr.list_tags_for_resource().resource_arn(r.repository_arn().unwrap()).send().await.unwrap();
        assert!(tags.tags().iter().any(|t| t.key() == "dify-stack:stack" && t.value() == "reg-a"));
    }

    assert!(registry.plan(&ctx, &spec).await.unwrap().is_empty());
    assert_eq!(registry.apply(&ctx, &spec).await.unwrap(), out);
    registry.destroy(&ctx, &spec).await.unwrap();
    assert!(repo_names(&ecr).await.is_empty());
}

#[tokio::test]
async fn drift_in_settings_and_lifecycle_is_planned_and_repaired() {
    let (ecr, registry) = setup().await;
    let ctx = ctx("reg-b");
    let spec = RegistrySpec::default();
    registry.apply(&ctx, &spec).await.unwrap();
    ecr.put_image_tag_mutability()
        .repository_name("reg-b")
        .image_tag_mutability(aws_sdk_ecr::types::ImageTagMutability::Mutable)
        .send()
        .await
        .unwrap();
    ecr.put_lifecycle_policy()
        .repository_name("reg-b-ee-plugin-repo")
        .lifecycle_policy_text(lifecycle_policy(3).to_string())
        .send()
        .await
        .unwrap();
    let plan = registry.plan(&ctx, &spec).await.unwrap();
    assert_eq!(plan.summary().update, 2, "{plan}");
    assert!(plan.to_string().contains("image_tag_mutability: \"MUTABLE\" -> \"IMMUTABLE\""), "{plan}");
    registry.apply(&ctx, &spec).await.unwrap();
    assert!(registry.plan(&ctx, &spec).await.unwrap().is_empty());

    let mut changed = spec.clone();
    changed.plugin.tag_mutability = TagMutability::Immutable;
    changed.app.keep_last = 5;
    assert_eq!(registry.plan(&ctx, &changed).await.unwrap().summary().update, 2);
    registry.apply(&ctx, &changed).await.unwrap();
    assert!(registry.plan(&ctx, &changed).await.unwrap().is_empty());
    registry.destroy(&ctx, &changed).await.unwrap();
}

#[tokio::test]
async fn runtime_plugin_repositories_and_images_are_deleted_only_with_permission() {
    let (ecr, registry) = setup().await;
    let ctx = ctx("reg-c");
    let spec = RegistrySpec::default();
    registry.apply(&ctx, &spec).await.unwrap();
    // The plugin connector creates repositories under the prefix at run time (without our tags),
    // and someone else has a repository that merely looks similar.
    ecr.create_repository().repository_name("reg-c-ee-plugin-repo/langgenius/openai").send().await.unwrap();
    ecr.create_repository().repository_name("reg-cx-ee-plugin-repo/other").send().await.unwrap();
    ecr.put_image()
        .repository_name("reg-c")
        .image_manifest(r#"{"schemaVersion":2,"mediaType":"application/vnd.docker.distribution.manifest.v2+json","config":{},"layers":[]}"#)
        .image_tag("1.0.0")
        .send()
        .await
        .unwrap();

    let plan = registry.plan_destroy(&ctx, &spec).await.unwrap();
    let names: Vec<&str> = plan.changes.iter().map(|c| c.resource.name.as_str()).collect();
    assert_eq!(names, vec!["reg-c", "reg-c-ee-plugin-repo", "reg-c-ee-plugin-repo/langgenius/openai"], "{plan}");
    assert_eq!(plan.changes[0].fields[0].before.as_deref(), Some("1"), "the image count is shown");

    match registry.destroy(&ctx, &spec).await.unwrap_err() {
        RegistryError::DataLossRefused { repositories } => assert_eq!(repositories.get("reg-c"), Some(&1)),
        other => panic!("{other}"),
    }
    assert_eq!(repo_names(&ecr).await.len(), 4, "nothing was deleted");

    let allowed = ctx.clone().with_permissions(Permissions { allow_data_loss: true, ..Default::default() });
    assert_eq!(registry.destroy(&allowed, &spec).await.unwrap().len(), 3);
    assert_eq!(repo_names(&ecr).await, vec!["reg-cx-ee-plugin-repo/other"]);
}

#[tokio::test]
async fn a_same_named_repository_of_someone_else_is_not_owned() {
    let (ecr, registry) = setup().await;
    ecr.create_repository().repository_name("reg-d").send().await.unwrap();
    let ctx = ctx("reg-d");
    let spec = RegistrySpec::default();
    assert!(matches!(registry.apply(&ctx, &spec).await.unwrap_err(), RegistryError::NotOwned { .. }));
    assert!(registry.destroy(&ctx, &spec).await.unwrap().is_empty(), "destroy leaves it alone");
    assert_eq!(repo_names(&ecr).await, vec!["reg-d"]);
}
