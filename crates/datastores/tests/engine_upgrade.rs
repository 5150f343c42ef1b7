//! Engine version upgrades of the datastores tier against the strict emulator (moto with
//! `moto_ext.py` and `moto_upgrade.py`, whose UpgradeDomain, GetUpgradeStatus and
//! ModifyDBCluster EngineVersion rules are proven in `upgrade_rules.rs`): through the tier's own
//! plan and apply, an OpenSearch version change is a blue/green upgrade and never a replacement,
//! an Aurora minor change is an in-place upgrade, a prod Aurora upgrade takes its named snapshot
//! first, and the plan after each apply is empty.

use dify_stack_core::{Action, Effect, Environment, Plan, Provisioner};
use dify_stack_datastores::DatastoresProvisioner;

mod common;

use common::setup;

/// The plan's lines as (kind, name, action, effect).
fn lines(plan: &Plan) -> Vec<(String, String, Action, Option<Effect>)> {
    plan.changes.iter().map(|c| (c.resource.kind.clone(), c.resource.name.clone(), c.action, c.effect)).collect()
}

fn line(kind: &str, name: &str, action: Action, effect: Option<Effect>) -> (String, String, Action, Option<Effect>) {
    (kind.to_owned(), name.to_owned(), action, effect)
}

/// The test profile on OpenSearch 2.17 and Aurora 17.5, then both raised: the plan shows an
/// in-place Aurora upgrade and an OpenSearch blue/green upgrade (no replacement, no snapshot on
/// a test stack); apply runs them (UpgradeDomain through its steps, ModifyDBCluster through
/// `upgrading`); AWS then reports the new versions, the domain's history one successful upgrade,
/// and the next plan is empty.
#[tokio::test]
async fn a_test_stack_upgrades_opensearch_blue_green_and_aurora_in_place() {
    let env = setup().await;
    let ctx = env.ctx("eu-test", Environment::Test);
    let mut spec = env.spec(Environment::Test);
    spec.opensearch.engine_version = "OpenSearch_2.17".into();
    let ds = DatastoresProvisioner::from_conf(&env.account.config);
    ds.apply(&ctx, &spec).await.unwrap();
    let converged = ds.plan(&ctx, &spec).await.unwrap();
    assert!(converged.is_empty(), "{converged}");

    spec.opensearch.engine_version = "OpenSearch_2.19".into();
    spec.aurora.engine_version = "17.6".into();
    let plan = ds.plan(&ctx, &spec).await.unwrap();
    assert!(!plan.has_replacements(), "{plan}");
    assert_eq!(
        lines(&plan),
        [
            line("rds:cluster", "eu-test-aurora", Action::Update, Some(Effect::Upgrade)),
            line("opensearch:domain", "eu-test-search", Action::Update, Some(Effect::BlueGreen)),
        ],
        "{plan}"
    );
    let text = plan.to_string();
    assert!(text.contains("blue/green deployment") && text.contains("[blue/green, typically 45 min]"), "{text}");

    ds.apply(&ctx, &spec).await.unwrap();
    let c = &env.account.config;
    let os = aws_sdk_opensearch::Client::new(c);
    let d = os.describe_domain().domain_name("eu-test-search").send().await.unwrap();
    let d = d.domain_status().unwrap();
    assert_eq!(d.engine_version(), Some("OpenSearch_2.19"));
    assert_eq!((d.processing(), d.upgrade_processing()), (Some(false), Some(false)));
    let history = os.get_upgrade_history().domain_name("eu-test-search").send().await.unwrap();
    let upgrades: Vec<(Option<&str>, Option<&str>)> = history
        .upgrade_histories()
        .iter()
        .map(|h| (h.upgrade_name(), h.upgrade_status().map(|s| s.as_str())))
        .collect();
    assert_eq!(upgrades, [(Some("Upgrade from OpenSearch_2.17 to OpenSearch_2.19"), Some("SUCCEEDED"))]);
    let rds = aws_sdk_rds::Client::new(c);
    let cl = rds.describe_db_clusters().db_cluster_identifier("eu-test-aurora").send().await.unwrap();
    assert_eq!(cl.db_clusters()[0].engine_version(), Some("17.6"));
    assert_eq!(cl.db_clusters()[0].status(), Some("available"));
    let next = ds.plan(&ctx, &spec).await.unwrap();
    assert!(next.is_empty(), "{next}");
}

/// The Must show: a prod Aurora minor upgrade takes a named snapshot first. The plan shows the
/// snapshot `<cluster>-pre-upgrade-17-5-to-17-6` as its own line before the upgrade; after apply
/// the snapshot exists, available, holding the cluster as it was on 17.5, the cluster runs 17.6,
/// and the next plan is empty.
#[tokio::test]
async fn a_prod_aurora_minor_upgrade_takes_the_named_snapshot_first() {
    let env = setup().await;
    let ctx = env.ctx("eu-prod", Environment::Prod);
    let mut spec = env.spec(Environment::Prod);
    let aurora = DatastoresProvisioner::from_conf(&env.account.config).aurora;
    aurora.apply(&ctx, &spec).await.unwrap();
    let converged = aurora.plan(&ctx, &spec).await.unwrap();
    assert!(converged.is_empty(), "{converged}");

    spec.aurora.engine_version = "17.6".into();
    let snapshot = "eu-prod-aurora-pre-upgrade-17-5-to-17-6";
    let plan = aurora.plan(&ctx, &spec).await.unwrap();
    assert_eq!(
        lines(&plan),
        [
            line("rds:cluster-snapshot", snapshot, Action::Create, None),
            line("rds:cluster", "eu-prod-aurora", Action::Update, Some(Effect::Upgrade)),
        ],
        "{plan}"
    );
    let rds = aws_sdk_rds::Client::new(&env.account.config);
    let none = rds.describe_db_cluster_snapshots().db_cluster_snapshot_identifier(snapshot).send().await;
    assert!(none.is_err(), "a plan takes no snapshot");

    aurora.apply(&ctx, &spec).await.unwrap();
    let snaps = rds.describe_db_cluster_snapshots().db_cluster_snapshot_identifier(snapshot).send().await.unwrap();
    let s = &snaps.db_cluster_snapshots()[0];
    assert_eq!(s.db_cluster_identifier(), Some("eu-prod-aurora"));
    assert_eq!(s.status(), Some("available"));
    assert_eq!(s.engine_version(), Some("17.5"), "taken before the upgrade");
    let cl = rds.describe_db_clusters().db_cluster_identifier("eu-prod-aurora").send().await.unwrap();
    assert_eq!(cl.db_clusters()[0].engine_version(), Some("17.6"));
    let next = aurora.plan(&ctx, &spec).await.unwrap();
    assert!(next.is_empty(), "{next}");
}
