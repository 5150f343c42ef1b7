//! Registry logic against the mocked ECR client: a mock without write expectations panics on
//! any write.

use dify_stack_core::{AwsError, Context, Environment, Provisioner, Tier};

use crate::*;

fn ctx() -> Context {
    Context::new("unit", Environment::Test, "cn-north-1").unwrap()
}

fn repo(name: &str, spec: &RepositorySpec) -> RepoInfo {
    RepoInfo {
        name: name.into(),
        arn: format!("arn:aws-cn:ecr:cn-north-1:123456789012:repository/{name}").into(),
        uri: format!("123456789012.dkr.ecr.cn-north-1.amazonaws.com.cn/{name}"),
        scan_on_push: spec.scan_on_push,
        mutability: spec.tag_mutability,
        encryption: Encryption::Aes256,
    }
}

/// The two repositories of stack `unit` as STACK.md names them: `<stack>` and
/// `<stack>-ee-plugin-repo`. The mocks below answer only for these, so a provisioner that asks
/// under another name or ARN fails the test.
const REPOS: [&str; 2] = ["unit", "unit-ee-plugin-repo"];

/// A converged registry: both repositories with our tags and lifecycle policies.
fn converged(spec: &RegistrySpec) -> MockEcrApi {
    let repos = vec![repo(REPOS[0], &spec.app), repo(REPOS[1], &spec.plugin)];
    let (app_keep, plugin_keep) = (spec.app.keep_last, spec.plugin.keep_last);
    let mut m = MockEcrApi::new();
    m.expect_list_repositories().returning(move || Ok(repos.clone()));
    let arns = REPOS.map(|n| format!("arn:aws-cn:ecr:cn-north-1:123456789012:repository/{n}"));
    m.expect_list_tags().withf(move |arn| arns.iter().any(|a| a == arn.as_str())).returning(|arn| {
        let name = arn.as_str().rsplit('/').next().unwrap().to_owned();
        let component = if name == REPOS[1] { "plugin-repository" } else { "app-repository" };
        Ok(ctx().tags_for(Tier::Registry, component, &name))
    });
    m.expect_get_lifecycle_policy().withf(|name| REPOS.contains(&name.as_str())).returning(move |name| {
        let keep = if name.as_str() == REPOS[1] { plugin_keep } else { app_keep };
        // ECR answers with its own formatting: compared as JSON, not text.
        Ok(Some(serde_json::to_string_pretty(&lifecycle_policy(keep)).unwrap()))
    });
    m
}

#[test]
fn defaults_and_validation() {
    let spec = RegistrySpec::default();
    assert_eq!((spec.app.tag_mutability, spec.app.keep_last), (TagMutability::Immutable, 10));
    assert_eq!((spec.plugin.tag_mutability, spec.plugin.keep_last), (TagMutability::Mutable, 20));
    let mut bad = spec.clone();
    bad.app.keep_last = 0;
    bad.encryption = Encryption::Kms { key_arn: Some("alias/x".into()) };
    assert_eq!(bad.validate(&ctx()).unwrap_err().paths(), vec!["app.keep_last", "encryption.key_arn"]);
    let parsed: RegistrySpec = serde_json::from_str(r#"{"encryption":{"type":"kms"}}"#).unwrap();
    assert_eq!(parsed.encryption, Encryption::Kms { key_arn: None });
    assert!(serde_json::from_str::<RegistrySpec>(r#"{"extra":1}"#).is_err());
}

#[tokio::test]
async fn plan_on_an_empty_registry_reads_only() {
    let mut m = MockEcrApi::new();
    m.expect_list_repositories().returning(|| Ok(vec![]));
    let plan = RegistryProvisioner::new(m).plan(&ctx(), &RegistrySpec::default()).await.unwrap();
    assert_eq!(plan.summary().create, 2);
}

#[tokio::test]
async fn apply_on_a_converged_registry_writes_nothing_and_outputs_partition_arns() {
    let spec = RegistrySpec::default();
    let p = RegistryProvisioner::new(converged(&spec));
    assert!(p.plan(&ctx(), &spec).await.unwrap().is_empty());
    let out = p.apply(&ctx(), &spec).await.unwrap();
    assert_eq!(
        out.plugin_repository_arn_pattern,
        "arn:aws-cn:ecr:cn-north-1:123456789012:repository/unit-ee-plugin-repo*"
    );
    assert_eq!(out.plugin_image_repo_prefix, "123456789012.dkr.ecr.cn-north-1.amazonaws.com.cn/unit-ee-plugin-repo");
}

#[tokio::test]
async fn a_lost_create_response_is_read_back_not_duplicated() {
    let spec = RegistrySpec::default();
    let mut m = MockEcrApi::new();
    let mut calls = 0;
    let app = repo("unit", &spec.app);
    let listed = app.clone();
    // First listing: nothing. After the AlreadyExists answer: the repository our lost call made.
    m.expect_list_repositories().returning(move || {
        calls += 1;
        Ok(if calls == 1 { vec![] } else { vec![listed.clone()] })
    });
    m.expect_list_tags()
        .withf(|arn| arn.as_str().ends_with(":repository/unit"))
        .returning(|_| Ok(ctx().tags_for(Tier::Registry, "app-repository", "unit")));
    m.expect_get_lifecycle_policy().withf(|name| REPOS.contains(&name.as_str())).returning(|_| Ok(None));
    m.expect_create_repository().times(2).returning(move |name, _, _, _, _| {
        if name.as_str() == "unit" {
            Err(AwsError::new("CreateRepository", "RepositoryAlreadyExistsException", "exists"))
        } else {
            Ok(repo(name.as_str(), &RegistrySpec::default().plugin))
        }
    });
    m.expect_put_lifecycle_policy().withf(|name, _| REPOS.contains(&name.as_str())).times(2).returning(|_, _| Ok(()));
    let out = RegistryProvisioner::new(m).apply(&ctx(), &spec).await.unwrap();
    assert_eq!(out.app.arn, app.arn.as_str());
}

#[tokio::test]
async fn encryption_drift_is_a_replacement_refused_by_default() {
    let spec = RegistrySpec { encryption: Encryption::Kms { key_arn: None }, ..Default::default() };
    let p = RegistryProvisioner::new(converged(&RegistrySpec::default()));
    assert!(p.plan(&ctx(), &spec).await.unwrap().has_replacements());
    assert!(matches!(p.apply(&ctx(), &spec).await.unwrap_err(), RegistryError::ReplacementRefused { .. }));
}

/// A converged registry with drift: the app repository's scanning off and the plugin
/// repository's `Name` tag gone.
fn drifted(spec: &RegistrySpec) -> MockEcrApi {
    let mut repos = vec![repo(REPOS[0], &spec.app), repo(REPOS[1], &spec.plugin)];
    repos[0].scan_on_push = false;
    let (app_keep, plugin_keep) = (spec.app.keep_last, spec.plugin.keep_last);
    let mut m = MockEcrApi::new();
    m.expect_list_repositories().returning(move || Ok(repos.clone()));
    let arns = REPOS.map(|n| format!("arn:aws-cn:ecr:cn-north-1:123456789012:repository/{n}"));
    m.expect_list_tags().withf(move |arn| arns.iter().any(|a| a == arn.as_str())).returning(|arn| {
        let name = arn.as_str().rsplit('/').next().unwrap().to_owned();
        let plugin = name == REPOS[1];
        let mut tags =
            ctx().tags_for(Tier::Registry, if plugin { "plugin-repository" } else { "app-repository" }, &name);
        if plugin {
            tags.remove("Name");
        }
        Ok(tags)
    });
    m.expect_get_lifecycle_policy().withf(|name| REPOS.contains(&name.as_str())).returning(move |name| {
        Ok(Some(lifecycle_policy(if name.as_str() == REPOS[1] { plugin_keep } else { app_keep }).to_string()))
    });
    m
}

#[tokio::test]
async fn apply_makes_exactly_the_writes_the_plan_shows() {
    use std::sync::{Arc, Mutex};
    let spec = RegistrySpec::default();
    let plan = RegistryProvisioner::new(drifted(&spec)).plan(&ctx(), &spec).await.unwrap();
    let shown: Vec<(String, Vec<String>)> = plan
        .changes
        .iter()
        .map(|c| (c.resource.name.clone(), c.fields.iter().map(|f| f.path.clone()).collect()))
        .collect();
    assert_eq!(
        shown,
        vec![("unit".into(), vec!["scan_on_push".into()]), ("unit-ee-plugin-repo".into(), vec!["tags.Name".into()])]
    );
    let writes = Arc::new(Mutex::new(Vec::new()));
    let mut m = drifted(&spec);
    let w = writes.clone();
    m.expect_set_scan_on_push().returning(move |name, on| {
        w.lock().unwrap().push(format!("scan_on_push {name} {on}"));
        Ok(())
    });
    let w = writes.clone();
    m.expect_tag().returning(move |arn, tags| {
        w.lock().unwrap().push(format!(
            "tag {} {:?}",
            arn.as_str().rsplit('/').next().unwrap(),
            tags.keys().collect::<Vec<_>>()
        ));
        Ok(())
    });
    RegistryProvisioner::new(m).apply(&ctx(), &spec).await.unwrap();
    assert_eq!(*writes.lock().unwrap(), ["scan_on_push unit true", "tag unit-ee-plugin-repo [\"Name\"]"]);
}

#[tokio::test]
async fn an_allowed_replacement_deletes_then_creates_with_the_new_encryption() {
    use dify_stack_core::Permissions;
    let spec = RegistrySpec { encryption: Encryption::Kms { key_arn: None }, ..Default::default() };
    let mut m = converged(&RegistrySpec::default());
    let mut seq = mockall::Sequence::new();
    for name in REPOS {
        m.expect_delete_repository()
            .withf(move |n, force| n.as_str() == name && *force)
            .times(1)
            .in_sequence(&mut seq)
            .returning(|_, _| Ok(()));
        m.expect_create_repository()
            .withf(move |n, _, _, enc, _| n.as_str() == name && *enc == Encryption::Kms { key_arn: None })
            .times(1)
            .in_sequence(&mut seq)
            .returning(|n, _, _, _, _| Ok(repo(n.as_str(), &RegistrySpec::default().app)));
        m.expect_put_lifecycle_policy()
            .withf(move |n, _| n.as_str() == name)
            .times(1)
            .in_sequence(&mut seq)
            .returning(|_, _| Ok(()));
    }
    let ctx = ctx().with_permissions(Permissions { allow_replace: true, allow_data_loss: true, ..Default::default() });
    let plan = RegistryProvisioner::new(converged(&RegistrySpec::default())).plan(&ctx, &spec).await.unwrap();
    assert_eq!(plan.summary().replace, 2);
    assert_eq!(plan.summary().update, 0, "a replaced repository has nothing else to update");
    RegistryProvisioner::new(m).apply(&ctx, &spec).await.unwrap();
}

/// The tier over its own in-memory fake (`testing::FakeEcr`, the one the simulated-time
/// benchmark runs the stack on): apply from empty makes both repositories with our tags and
/// lifecycle policies, a second plan is empty and a second apply leaves them as they were,
/// destroy removes both.
#[tokio::test(start_paused = true)]
async fn over_its_fake_apply_makes_both_repositories_a_second_apply_changes_nothing_and_destroy_removes_them() {
    let sim = std::sync::Arc::new(dify_stack_core::sim::Sim::instant());
    let fake = testing::FakeEcr::new(sim.clone());
    let registry = RegistryProvisioner::new(fake.clone());
    let (ctx, spec) = (ctx(), RegistrySpec::default());
    let out = registry.apply(&ctx, &spec).await.unwrap();
    assert_eq!((out.app.name.as_str(), out.plugin.name.as_str()), (REPOS[0], REPOS[1]));
    let made = fake.repositories();
    assert_eq!(made.keys().map(String::as_str).collect::<Vec<_>>(), REPOS);
    assert!(made.values().all(|p| p.as_deref().is_some_and(|p| p.contains("imageCountMoreThan"))), "{made:?}");
    assert!(registry.plan(&ctx, &spec).await.unwrap().is_empty());
    let calls = sim.calls();
    registry.apply(&ctx, &spec).await.unwrap();
    let again = fake.repositories();
    assert_eq!(again, made);
    assert!(sim.calls() > calls, "the second apply read");
    let deleted = registry.destroy(&ctx, &spec).await.unwrap();
    assert_eq!(deleted.len(), 2, "{deleted:?}");
    assert!(fake.repositories().is_empty());
}
