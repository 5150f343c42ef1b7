//! Issue 27: metrics-server ACTIVE before the load balancer controller's webhook, an add-on in a
//! failure state planned and repaired, and the controller chart's CRDs applied before an upgrade
//! of its release.

use super::*;

const OFFERED: &str = "v0.7.2-eksbuild.1";

/// The position of `line` in `log`; a panic naming the log when it is not there.
fn at(log: &[String], line: &str) -> usize {
    log.iter().position(|l| l == line).unwrap_or_else(|| panic!("{line:?} not in {log:#?}"))
}

fn metrics_key() -> (String, String) {
    ("dify-test".to_owned(), METRICS_SERVER.to_owned())
}

const CONTROLLER_INSTALL: &str =
    "helm upgrade --install kube-system/aws-load-balancer-controller aws-load-balancer-controller-1.13.0";

/// The add-on is awaited ACTIVE after it is created and before the controller's chart (whose
/// Service webhook, failurePolicy Fail, refuses new Services until its pods serve) is installed;
/// the autoscaler is not held up. In the fake, as on a cluster, a controller installed while the
/// add-on is still creating leaves the add-on CREATE_FAILED.
#[tokio::test(start_paused = true)]
async fn the_metrics_addon_is_active_before_the_controller_is_installed() {
    let (fake, p, _) = world(Some(OFFERED));
    let (ctx, spec) = (ctx(), spec());
    p.apply(&ctx, &spec).await.unwrap();
    let log = fake.world().log.clone();
    let active = at(&log, "DescribeAddon metrics-server ACTIVE");
    assert!(at(&log, &format!("CreateAddon dify-test metrics-server {OFFERED}")) < active, "{log:#?}");
    assert!(active < at(&log, CONTROLLER_INSTALL), "the add-on ACTIVE before the controller: {log:#?}");
    assert!(
        at(&log, "helm upgrade --install kube-system/cluster-autoscaler cluster-autoscaler-9.46.6") < active,
        "the autoscaler goes in while the add-on is created: {log:#?}"
    );
    assert_eq!(fake.world().addons[&metrics_key()].status, "ACTIVE");
    assert!(p.plan(&ctx, &spec).await.unwrap().is_empty());

    // An add-on found creating (a crash right after CreateAddon) is awaited too, not created again.
    let (fake, p, _) = world(Some(OFFERED));
    {
        let mut w = fake.world();
        let tags = ctx.tags_for(Tier::Platform, "addon", METRICS_SERVER);
        w.addons.insert(metrics_key(), AddonState { version: OFFERED.into(), status: "CREATING".into(), tags });
        w.addon_pending = 3;
    }
    p.apply(&ctx, &spec).await.unwrap();
    let log = fake.world().log.clone();
    assert!(!log.iter().any(|l| l.starts_with("CreateAddon")), "{log:#?}");
    assert!(at(&log, "DescribeAddon metrics-server ACTIVE") < at(&log, CONTROLLER_INSTALL), "{log:#?}");

    // Role-only: the commands (the controller among them) are handed out once the add-on is ACTIVE.
    let fake = FakePlatform::default();
    fake.world().offered = Some(OFFERED.into());
    let mut role_only = spec.clone();
    role_only.kubernetes = false;
    let out = PlatformProvisioner::new(fake.clone()).apply(&ctx, &role_only).await.unwrap();
    assert!(out.commands.iter().any(|c| c.contains("helm upgrade --install aws-load-balancer-controller")));
    assert_eq!(fake.world().log.last().map(String::as_str), Some("DescribeAddon metrics-server ACTIVE"));
}

/// An add-on of ours that failed to create (the controller's webhook refused its Service) is a
/// replacement in the plan, with its status and health issues; apply deletes it, waits until it is
/// gone, creates it at the offered version and waits until it is ACTIVE. Someone else's failed
/// add-on is used as it is.
#[tokio::test(start_paused = true)]
async fn a_create_failed_metrics_addon_is_planned_as_a_repair_and_recreated() {
    let (fake, p, _) = world(Some(OFFERED));
    let (ctx, spec) = (ctx(), spec());
    p.apply(&ctx, &spec).await.unwrap();
    {
        let mut w = fake.world();
        w.addons.get_mut(&metrics_key()).unwrap().status = "CREATE_FAILED".into();
        w.addon_issues = vec![WEBHOOK_REFUSAL.into()];
        w.offered = Some("v0.7.2-eksbuild.2".into());
    }
    let plan = p.plan(&ctx, &spec).await.unwrap();
    assert_eq!(plan.changes.len(), 1, "{plan}");
    let repair = &plan.changes[0];
    assert_eq!(
        (repair.action, repair.resource.kind.as_str(), repair.resource.name.as_str()),
        (Action::Replace, "eks:addon", METRICS_SERVER)
    );
    let fields: Vec<(&str, Option<&str>, Option<&str>)> =
        repair.fields.iter().map(|f| (f.path.as_str(), f.before.as_deref(), f.after.as_deref())).collect();
    assert_eq!(
        fields,
        [("status", Some("CREATE_FAILED"), Some("ACTIVE")), ("version", Some(OFFERED), Some("v0.7.2-eksbuild.2"))]
    );
    let line = format!(
        "# repair: the add-on is CREATE_FAILED ({WEBHOOK_REFUSAL}); delete and re-create it (an add-on that failed to create or to delete is not updated)"
    );
    assert!(plan.to_string().contains(&line), "{plan}");

    let before = fake.world().log.len();
    p.apply(&ctx, &spec).await.unwrap();
    let writes = fake.world().log[before..].to_vec();
    assert_eq!(
        writes,
        [
            "DeleteAddon metrics-server",
            "CreateAddon dify-test metrics-server v0.7.2-eksbuild.2",
            "DescribeAddon metrics-server ACTIVE"
        ]
    );
    assert!(p.plan(&ctx, &spec).await.unwrap().is_empty());

    // Not ours: never repaired.
    {
        let mut w = fake.world();
        let a = w.addons.get_mut(&metrics_key()).unwrap();
        (a.status, a.tags) = ("CREATE_FAILED".into(), Tags::new());
    }
    assert!(p.plan(&ctx, &spec).await.unwrap().is_empty());
    let before = fake.world().log.len();
    p.apply(&ctx, &spec).await.unwrap();
    assert_eq!(fake.world().log.len(), before);
}

/// DEGRADED and UPDATE_FAILED are repaired in place: UpdateAddon at the add-on's version with
/// resolveConflicts OVERWRITE, awaited ACTIVE.
#[tokio::test(start_paused = true)]
async fn a_degraded_or_update_failed_metrics_addon_is_repaired_by_update_with_overwrite() {
    const REPLICAS: &str =
        "InsufficientNumberOfReplicas: The add-on is unhealthy because it doesn't have the desired number of replicas.";
    for status in ["DEGRADED", "UPDATE_FAILED"] {
        let (fake, p, _) = world(Some(OFFERED));
        let (ctx, spec) = (ctx(), spec());
        p.apply(&ctx, &spec).await.unwrap();
        {
            let mut w = fake.world();
            w.addons.get_mut(&metrics_key()).unwrap().status = status.into();
            w.addon_issues = vec![REPLICAS.into()];
        }
        let plan = p.plan(&ctx, &spec).await.unwrap();
        assert_eq!(plan.changes.len(), 1, "{plan}");
        let repair = &plan.changes[0];
        assert_eq!((repair.action, repair.resource.kind.as_str()), (Action::Update, "eks:addon"), "{plan}");
        assert_eq!(
            repair.reason.as_deref(),
            Some(
                format!("repair: the add-on is {status} ({REPLICAS}); UpdateAddon with resolveConflicts OVERWRITE")
                    .as_str()
            )
        );
        let before = fake.world().log.len();
        p.apply(&ctx, &spec).await.unwrap();
        let writes = fake.world().log[before..].to_vec();
        assert_eq!(
            writes,
            [format!("UpdateAddon metrics-server {OFFERED} OVERWRITE"), "DescribeAddon metrics-server ACTIVE".into()],
            "{status}"
        );
        assert!(p.plan(&ctx, &spec).await.unwrap().is_empty(), "{status}");
    }
}

/// A repair that fails again ends apply with the add-on's status and health issues, before the
/// controller's chart is touched.
#[tokio::test(start_paused = true)]
async fn a_repair_that_fails_again_names_the_status_and_the_issues() {
    let (fake, p, _) = world(Some(OFFERED));
    let (ctx, spec) = (ctx(), spec());
    {
        let mut w = fake.world();
        let tags = ctx.tags_for(Tier::Platform, "addon", METRICS_SERVER);
        w.addons.insert(metrics_key(), AddonState { version: OFFERED.into(), status: "CREATE_FAILED".into(), tags });
        w.addon_fate = Some(("CREATE_FAILED".into(), vec![WEBHOOK_REFUSAL.into()]));
    }
    let err = p.apply(&ctx, &spec).await.unwrap_err();
    assert!(
        matches!(&err, PlatformError::AddonFailed { status, issues, .. } if status == "CREATE_FAILED" && issues == &[WEBHOOK_REFUSAL]),
        "{err}"
    );
    assert!(!fake.world().log.iter().any(|l| l.contains("aws-load-balancer-controller")), "{:#?}", fake.world().log);
}

/// A first install gets the CRDs from Helm (no step of ours); a new controller chart on an
/// installed release is two changes, the CRDs first: `helm show crds` of the new chart, each CRD
/// server-side applied, then the upgrade.
#[tokio::test]
async fn a_new_controller_chart_applies_its_crds_before_the_upgrade_and_a_first_install_does_not() {
    let (fake, p, _) = world(None);
    let (ctx, mut spec) = (ctx(), spec());
    spec.metrics_server = None;
    let plan = p.plan(&ctx, &spec).await.unwrap();
    assert!(!plan.changes.iter().any(|c| c.resource.kind == "k8s:crds"), "{plan}");
    p.apply(&ctx, &spec).await.unwrap();
    assert!(!fake.world().log.iter().any(|l| l.contains("crd")), "{:#?}", fake.world().log);

    spec.load_balancer_controller.as_mut().unwrap().version = "1.14.0".into();
    let plan = p.plan(&ctx, &spec).await.unwrap();
    let shown: Vec<(Action, &str, &str)> =
        plan.changes.iter().map(|c| (c.action, c.resource.kind.as_str(), c.resource.name.as_str())).collect();
    assert_eq!(
        shown,
        [
            (Action::Update, "k8s:crds", LOAD_BALANCER_CONTROLLER),
            (Action::Update, "helm:release", "kube-system/aws-load-balancer-controller")
        ],
        "{plan}"
    );
    assert!(
        plan.to_string().contains("# apply CRDs of aws-load-balancer-controller 1.14.0 before upgrading the release"),
        "{plan}"
    );

    let before = fake.world().log.len();
    p.apply(&ctx, &spec).await.unwrap();
    let writes = fake.world().log[before..].to_vec();
    assert_eq!(
        writes,
        [
            "helm show crds aws-load-balancer-controller-1.14.0",
            "apply crd ingressclassparams.elbv2.k8s.aws",
            "apply crd targetgroupbindings.elbv2.k8s.aws",
            "helm upgrade --install kube-system/aws-load-balancer-controller aws-load-balancer-controller-1.14.0"
        ]
    );
    assert!(fake.world().crds.values().all(|chart| chart == "1.14.0"), "{:?}", fake.world().crds);
    assert!(p.plan(&ctx, &spec).await.unwrap().is_empty());
}

/// Helm without `show_crds` (the trait's default): the upgrade stops before Helm runs, as an
/// error no retry fixes.
#[tokio::test]
async fn a_helm_client_that_cannot_show_crds_stops_the_upgrade_before_helm_runs() {
    struct OldHelm(FakePlatform);
    #[async_trait]
    impl HelmApi for OldHelm {
        async fn status(&self, release: String, namespace: String) -> Result<Option<ReleaseInfo>, HelmError> {
            self.0.status(release, namespace).await
        }
        async fn upgrade_install(&self, r: ReleaseInstall) -> Result<(), HelmError> {
            self.0.upgrade_install(r).await
        }
        async fn uninstall(&self, release: String, namespace: String) -> Result<(), HelmError> {
            self.0.uninstall(release, namespace).await
        }
    }
    let (fake, p, _) = world(None);
    let (ctx, mut spec) = (ctx(), spec());
    spec.metrics_server = None;
    p.apply(&ctx, &spec).await.unwrap();
    let old = PlatformProvisioner::new(fake.clone()).with_kubernetes(OldHelm(fake.clone()), fake.clone());
    spec.load_balancer_controller.as_mut().unwrap().version = "1.14.0".into();
    let before = fake.world().log.len();
    let err = old.apply(&ctx, &spec).await.unwrap_err();
    assert!(err.to_string().contains("helm show crds"), "{err}");
    assert_eq!(dify_stack_core::Classify::kind(&err), dify_stack_core::ErrorKind::Invalid);
    assert!(fake.world().log[before..].is_empty(), "{:?}", &fake.world().log[before..]);
}

/// `helm show crds` is named like the install (`--repo` or an OCI reference, `--version`
/// always); its output is split into documents, empty ones skipped, anything but a named CRD
/// refused.
#[test]
fn crds_come_from_the_chart_and_only_crds_are_taken() {
    use crate::helm::{crd_documents, show_crds_args};
    assert_eq!(
        show_crds_args(&Chart::load_balancer_controller()),
        [
            "show",
            "crds",
            "aws-load-balancer-controller",
            "--repo",
            "https://aws.github.io/eks-charts",
            "--version",
            "1.13.0"
        ]
    );
    let oci =
        Chart::new("oci://123456789012.dkr.ecr.us-west-2.amazonaws.com/mirror", LOAD_BALANCER_CONTROLLER, "1.13.0");
    assert_eq!(
        show_crds_args(&oci),
        [
            "show",
            "crds",
            "oci://123456789012.dkr.ecr.us-west-2.amazonaws.com/mirror/aws-load-balancer-controller",
            "--version",
            "1.13.0"
        ]
    );
    let text = "---\n---\napiVersion: apiextensions.k8s.io/v1\nkind: CustomResourceDefinition\nmetadata:\n  name: a.example.com\n---\n# comment only\n---\napiVersion: apiextensions.k8s.io/v1\nkind: CustomResourceDefinition\nmetadata:\n  name: b.example.com\n";
    let names: Vec<String> = crd_documents(text).unwrap().into_iter().map(|(n, _)| n).collect();
    assert_eq!(names, ["a.example.com", "b.example.com"]);
    assert!(crd_documents("").unwrap().is_empty());
    let kustomization = "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nresources:\n- crds.yaml\n";
    assert!(crd_documents(kustomization).unwrap_err().to_string().contains("Kustomization"));
    assert!(crd_documents("kind: CustomResourceDefinition\n").is_err(), "a CRD without a name");
    assert!(crd_documents("a: [").is_err());
}
