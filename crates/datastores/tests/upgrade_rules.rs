//! Engine version upgrades of the data stores against the strict emulator (moto with
//! `moto_ext.py` and `moto_upgrade.py`): OpenSearch upgrades a domain in place only along its
//! supported paths and only when the domain is idle, reporting the upgrade's steps; Aurora takes
//! a new major version only with AllowMajorVersionUpgrade and parameter groups of the new family,
//! and goes `upgrading` before it reports the new version. Each rule is shown twice, at the SDK
//! level: the call a broken caller would make is refused with the service's code, and the call a
//! correct caller makes goes through to the settled state.

use std::time::Duration;

use aws_sdk_opensearch::types::{UpgradeStatus, UpgradeStep};
use aws_sdk_rds::error::{ProvideErrorMetadata, SdkError};
use dify_stack_emulator::Emulator;

const NOT_LOADED: &str = "the strict emulator must load crates/emulator/python/moto_upgrade.py (the harness passes its source to launch.py as the fifth argument)";

fn code<E: ProvideErrorMetadata, R>(e: &SdkError<E, R>) -> Option<String> {
    e.as_service_error().and_then(|s| s.code()).map(str::to_owned)
}

fn message<E: ProvideErrorMetadata, R>(e: &SdkError<E, R>) -> String {
    e.as_service_error().and_then(|s| s.message()).unwrap_or_default().to_owned()
}

/// Polls `done` until it holds (bounded; the emulator's pending states last a fraction of a
/// second).
async fn until<F, Fut>(mut done: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while !done().await {
        assert!(tokio::time::Instant::now() < deadline, "not settled within 30 s");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

// ---------------------------------------------------------------- OpenSearch

async fn opensearch() -> aws_sdk_opensearch::Client {
    let account = Emulator::shared().expect("emulator").account("us-west-2").await;
    aws_sdk_opensearch::Client::new(&account.config)
}

/// (Processing, UpgradeProcessing, EngineVersion) of a domain.
async fn domain(os: &aws_sdk_opensearch::Client, name: &str) -> (bool, bool, String) {
    let out = os.describe_domain().domain_name(name).send().await.unwrap();
    let d = out.domain_status().unwrap();
    (
        d.processing().unwrap_or_default(),
        d.upgrade_processing().unwrap_or_default(),
        d.engine_version().unwrap_or_default().to_owned(),
    )
}

/// A domain on `version`, created and no longer processing.
async fn idle_domain(os: &aws_sdk_opensearch::Client, name: &str, version: &str) {
    os.create_domain().domain_name(name).engine_version(version).send().await.unwrap();
    until(|| async { !domain(os, name).await.0 }).await;
}

/// (UpgradeStep, StepStatus) of the domain's last upgrade or check.
async fn upgrade_status(os: &aws_sdk_opensearch::Client, name: &str) -> (Option<UpgradeStep>, Option<UpgradeStatus>) {
    let s = os.get_upgrade_status().domain_name(name).send().await.unwrap();
    (s.upgrade_step().cloned(), s.step_status().cloned())
}

#[tokio::test]
async fn opensearch_upgrades_only_along_the_supported_paths() {
    let os = opensearch().await;
    idle_domain(&os, "up-paths", "OpenSearch_2.17").await;
    // A broken caller goes straight to 3.x, or back.
    for target in ["OpenSearch_3.1", "OpenSearch_2.11", "OpenSearch_2.17", "Elasticsearch_7.10"] {
        let err = os.upgrade_domain().domain_name("up-paths").target_version(target).send().await.unwrap_err();
        assert_eq!(code(&err).as_deref(), Some("ValidationException"), "{NOT_LOADED}: {target}: {err:?}");
        assert!(message(&err).contains("not supported"), "{err:?}");
    }
    assert_eq!(domain(&os, "up-paths").await, (false, false, "OpenSearch_2.17".to_owned()));
    // GetCompatibleVersions names the way: 2.19 first (3.x only from 2.19).
    let out = os.get_compatible_versions().domain_name("up-paths").send().await.unwrap();
    let [map] = out.compatible_versions() else { panic!("{:?}", out.compatible_versions()) };
    assert_eq!(map.source_version(), Some("OpenSearch_2.17"));
    assert_eq!(map.target_versions(), ["OpenSearch_2.19"]);
}

#[tokio::test]
async fn opensearch_upgrade_is_refused_while_the_domain_is_processing() {
    let os = opensearch().await;
    os.create_domain().domain_name("up-proc").engine_version("OpenSearch_2.17").send().await.unwrap();
    let err = os.upgrade_domain().domain_name("up-proc").target_version("OpenSearch_2.19").send().await.unwrap_err();
    assert_eq!(code(&err).as_deref(), Some("ValidationException"), "{NOT_LOADED}: {err:?}");
    assert!(message(&err).starts_with("A change/update is in progress"), "{err:?}");
    until(|| async { !domain(&os, "up-proc").await.0 }).await;
    os.upgrade_domain().domain_name("up-proc").target_version("OpenSearch_2.19").send().await.unwrap();
}

#[tokio::test]
async fn opensearch_upgrade_runs_its_steps_then_the_domain_reports_the_new_version() {
    let os = opensearch().await;
    idle_domain(&os, "up-steps", "OpenSearch_2.17").await;

    // An eligibility check changes nothing on the domain.
    let out = os
        .upgrade_domain()
        .domain_name("up-steps")
        .target_version("OpenSearch_2.19")
        .perform_check_only(true)
        .send()
        .await
        .unwrap_or_else(|e| panic!("{NOT_LOADED}: {e:?}"));
    assert_eq!(out.perform_check_only(), Some(true));
    assert_eq!(domain(&os, "up-steps").await, (false, false, "OpenSearch_2.17".to_owned()));
    until(|| async { upgrade_status(&os, "up-steps").await.1 == Some(UpgradeStatus::Succeeded) }).await;
    assert_eq!(upgrade_status(&os, "up-steps").await.0, Some(UpgradeStep::PreUpgradeCheck));

    // The upgrade: the domain is processing an upgrade, and takes no other change meanwhile.
    let out = os.upgrade_domain().domain_name("up-steps").target_version("OpenSearch_2.19").send().await.unwrap();
    assert_eq!(out.target_version(), Some("OpenSearch_2.19"));
    let (processing, upgrading, version) = domain(&os, "up-steps").await;
    assert!(processing && upgrading, "DescribeDomain during the upgrade");
    assert_eq!(version, "OpenSearch_2.17", "the version changes when the upgrade is done");
    let err = os.upgrade_domain().domain_name("up-steps").target_version("OpenSearch_3.1").send().await.unwrap_err();
    assert_eq!(code(&err).as_deref(), Some("ValidationException"), "{err:?}");
    let config = aws_sdk_opensearch::types::ClusterConfig::builder().instance_count(2).build();
    let err = os.update_domain_config().domain_name("up-steps").cluster_config(config).send().await.unwrap_err();
    assert_eq!(
        code(&err).as_deref(),
        Some("ValidationException"),
        "no configuration change during an upgrade: {err:?}"
    );

    // It goes through its steps and ends on the new version.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    let mut seen = Vec::new();
    loop {
        let status = upgrade_status(&os, "up-steps").await;
        if seen.last() != Some(&status) {
            seen.push(status.clone());
        }
        if status == (Some(UpgradeStep::Upgrade), Some(UpgradeStatus::Succeeded)) {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "not settled within 30 s: {seen:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(seen.iter().all(|(step, status)| step.is_some() && status.is_some()), "{seen:?}");
    assert_eq!(domain(&os, "up-steps").await, (false, false, "OpenSearch_2.19".to_owned()));
    let history = os.get_upgrade_history().domain_name("up-steps").send().await.unwrap();
    let [upgrade, check] = history.upgrade_histories() else { panic!("{:?}", history.upgrade_histories()) };
    assert_eq!(upgrade.upgrade_status(), Some(&UpgradeStatus::Succeeded));
    let steps: Vec<_> = upgrade.steps_list().iter().filter_map(|s| s.upgrade_step().cloned()).collect();
    assert_eq!(steps, [UpgradeStep::PreUpgradeCheck, UpgradeStep::Snapshot, UpgradeStep::Upgrade]);
    assert_eq!(check.steps_list().len(), 1, "{check:?}");

    // From 2.19, the next major is open.
    os.upgrade_domain().domain_name("up-steps").target_version("OpenSearch_3.1").send().await.unwrap();
    until(|| async { domain(&os, "up-steps").await.2 == "OpenSearch_3.1" }).await;
}

// ---------------------------------------------------------------- Aurora

async fn rds() -> aws_sdk_rds::Client {
    let account = Emulator::shared().expect("emulator").account("us-west-2").await;
    aws_sdk_rds::Client::new(&account.config)
}

/// (Status, EngineVersion, DBClusterParameterGroup, PendingModifiedValues.EngineVersion).
async fn cluster(rds: &aws_sdk_rds::Client, id: &str) -> (String, String, String, Option<String>) {
    let out = rds.describe_db_clusters().db_cluster_identifier(id).send().await.unwrap();
    let c = &out.db_clusters()[0];
    (
        c.status().unwrap_or_default().to_owned(),
        c.engine_version().unwrap_or_default().to_owned(),
        c.db_cluster_parameter_group().unwrap_or_default().to_owned(),
        c.pending_modified_values().and_then(|p| p.engine_version()).map(str::to_owned),
    )
}

async fn instance_status(rds: &aws_sdk_rds::Client, id: &str) -> (String, String) {
    let out = rds.describe_db_instances().db_instance_identifier(id).send().await.unwrap();
    let i = &out.db_instances()[0];
    (i.db_instance_status().unwrap_or_default().to_owned(), i.engine_version().unwrap_or_default().to_owned())
}

/// An Aurora PostgreSQL 17.5 cluster with one instance (on `instance_group` when given), both
/// available.
async fn aurora(rds: &aws_sdk_rds::Client, id: &str, instance_group: Option<&str>) {
    rds.create_db_cluster()
        .db_cluster_identifier(id)
        .engine("aurora-postgresql")
        .engine_version("17.5")
        .master_username("dify")
        .manage_master_user_password(true)
        .send()
        .await
        .unwrap();
    rds.create_db_instance()
        .db_instance_identifier(format!("{id}-1"))
        .db_cluster_identifier(id)
        .engine("aurora-postgresql")
        .db_instance_class("db.serverless")
        .set_db_parameter_group_name(instance_group.map(str::to_owned))
        .send()
        .await
        .unwrap();
    until(|| async {
        cluster(rds, id).await.0 == "available" && instance_status(rds, &format!("{id}-1")).await.0 == "available"
    })
    .await;
}

async fn cluster_group(rds: &aws_sdk_rds::Client, name: &str, family: &str) {
    rds.create_db_cluster_parameter_group()
        .db_cluster_parameter_group_name(name)
        .db_parameter_group_family(family)
        .description(name)
        .send()
        .await
        .unwrap();
}

async fn instance_group(rds: &aws_sdk_rds::Client, name: &str, family: &str) {
    rds.create_db_parameter_group()
        .db_parameter_group_name(name)
        .db_parameter_group_family(family)
        .description(name)
        .send()
        .await
        .unwrap();
}

#[tokio::test]
async fn aurora_major_upgrade_needs_the_flag_and_parameter_groups_of_the_new_family() {
    let rds = rds().await;
    aurora(&rds, "up-major", None).await;
    cluster_group(&rds, "up-major-17", "aurora-postgresql17").await;
    cluster_group(&rds, "up-major-18", "aurora-postgresql18").await;
    let modify = || rds.modify_db_cluster().db_cluster_identifier("up-major").apply_immediately(true);

    // A broken caller changes the version alone, keeps the old family, or goes back.
    let err = modify().engine_version("18.1").send().await.unwrap_err();
    assert_eq!(code(&err).as_deref(), Some("InvalidParameterCombination"), "{NOT_LOADED}: {err:?}");
    assert_eq!(
        message(&err),
        "The AllowMajorVersionUpgrade flag must be present when upgrading to a new major version."
    );
    let err = modify()
        .engine_version("18.1")
        .allow_major_version_upgrade(true)
        .db_cluster_parameter_group_name("up-major-17")
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&err).as_deref(), Some("InvalidParameterCombination"), "{err:?}");
    assert!(message(&err).contains("DBParameterGroupFamily aurora-postgresql18"), "{err:?}");
    let err = modify().engine_version("16.4").allow_major_version_upgrade(true).send().await.unwrap_err();
    assert_eq!(code(&err).as_deref(), Some("InvalidParameterCombination"), "{err:?}");
    assert!(message(&err).contains("Cannot upgrade aurora-postgresql from 17.5 to 16.4"), "{err:?}");
    assert_eq!(cluster(&rds, "up-major").await.1, "17.5");

    // A named snapshot first (the provisioner's prod rule), then the upgrade: `upgrading` on the
    // old version, nothing else taken meanwhile, then `available` on the new one.
    let snap = rds
        .create_db_cluster_snapshot()
        .db_cluster_identifier("up-major")
        .db_cluster_snapshot_identifier("up-major-before-18")
        .send()
        .await
        .unwrap();
    let snap = snap.db_cluster_snapshot().unwrap();
    assert_eq!(snap.engine_version(), Some("17.5"));
    until(|| async {
        let out = rds.describe_db_cluster_snapshots().db_cluster_snapshot_identifier("up-major-before-18").send().await;
        out.unwrap().db_cluster_snapshots().first().and_then(|s| s.status()) == Some("available")
    })
    .await;
    let out = modify()
        .engine_version("18.1")
        .allow_major_version_upgrade(true)
        .db_cluster_parameter_group_name("up-major-18")
        .send()
        .await
        .unwrap();
    assert_eq!(out.db_cluster().unwrap().engine_version(), Some("17.5"));
    let (status, version, _, _) = cluster(&rds, "up-major").await;
    assert_eq!((status.as_str(), version.as_str()), ("upgrading", "17.5"));
    assert_eq!(instance_status(&rds, "up-major-1").await.0, "upgrading");
    let err = modify().engine_version("18.2").send().await.unwrap_err();
    assert_eq!(code(&err).as_deref(), Some("InvalidDBClusterStateFault"), "{err:?}");
    until(|| async { cluster(&rds, "up-major").await.0 == "available" }).await;
    assert_eq!(cluster(&rds, "up-major").await, ("available".into(), "18.1".into(), "up-major-18".into(), None));
    assert_eq!(instance_status(&rds, "up-major-1").await, ("available".into(), "18.1".into()));
}

#[tokio::test]
async fn aurora_major_upgrade_names_a_new_instance_parameter_group_when_the_old_one_is_custom() {
    let rds = rds().await;
    instance_group(&rds, "up-inst-17", "aurora-postgresql17").await;
    instance_group(&rds, "up-inst-18", "aurora-postgresql18").await;
    aurora(&rds, "up-inst", Some("up-inst-17")).await;
    let modify = || {
        rds.modify_db_cluster()
            .db_cluster_identifier("up-inst")
            .engine_version("18.1")
            .allow_major_version_upgrade(true)
            .apply_immediately(true)
    };
    let err = modify().send().await.unwrap_err();
    assert_eq!(code(&err).as_deref(), Some("InvalidParameterCombination"), "{NOT_LOADED}: {err:?}");
    assert!(message(&err).contains("The current DB instance parameter group up-inst-17 is custom"), "{err:?}");
    let err = modify().db_instance_parameter_group_name("up-inst-17").send().await.unwrap_err();
    assert_eq!(code(&err).as_deref(), Some("InvalidParameterCombination"), "{err:?}");

    modify().db_instance_parameter_group_name("up-inst-18").send().await.unwrap();
    until(|| async { cluster(&rds, "up-inst").await.0 == "available" }).await;
    assert_eq!(cluster(&rds, "up-inst").await.1, "18.1");
    let out = rds.describe_db_instances().db_instance_identifier("up-inst-1").send().await.unwrap();
    let groups: Vec<_> =
        out.db_instances()[0].db_parameter_groups().iter().filter_map(|g| g.db_parameter_group_name()).collect();
    assert_eq!(groups, ["up-inst-18"]);
}

#[tokio::test]
async fn aurora_minor_upgrade_without_apply_immediately_waits_for_the_maintenance_window() {
    let rds = rds().await;
    aurora(&rds, "up-minor", None).await;
    // A broken caller leaves out ApplyImmediately: nothing changes but a pending value.
    rds.modify_db_cluster().db_cluster_identifier("up-minor").engine_version("17.6").send().await.unwrap();
    until(|| async { cluster(&rds, "up-minor").await.0 == "available" }).await;
    let (_, version, _, pending) = cluster(&rds, "up-minor").await;
    assert_eq!((version.as_str(), pending.as_deref()), ("17.5", Some("17.6")), "{NOT_LOADED}");

    // Applied immediately, a minor needs no flag and goes `upgrading`, then `available`.
    rds.modify_db_cluster()
        .db_cluster_identifier("up-minor")
        .engine_version("17.6")
        .apply_immediately(true)
        .send()
        .await
        .unwrap();
    assert_eq!(cluster(&rds, "up-minor").await.0, "upgrading");
    until(|| async { cluster(&rds, "up-minor").await.0 == "available" }).await;
    let (_, version, _, pending) = cluster(&rds, "up-minor").await;
    assert_eq!((version.as_str(), pending), ("17.6", None));
}
