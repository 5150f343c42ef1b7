//! The platform tier against an in-memory world that behaves like the services: ACM fills in the
//! validation record a moment after the request and issues only once the record is in the zone;
//! Route 53 keeps records by name and type; Helm keeps releases by namespace and name (the tier's
//! fake, [`crate::testing::FakePlatform`], answering at once).

use std::sync::Arc;

use async_trait::async_trait;
use dify_stack_core::ids::Arn;
use dify_stack_core::{Action, AwsError, Context, Environment, Provisioner, Tags, Tier, WaitPolicy};

use crate::certificate::{CertificateProvisioner, CertificateSpec};
use crate::client::*;
use crate::helm::{HelmApi, HelmError, ReleaseInfo, ReleaseInstall};
use crate::spec::*;
use crate::{PlatformError, PlatformProvisioner};

use crate::testing::*;
mod repairs;

const TOKEN_NAME: &str = "_3f1a.dify.example.com.";
const TOKEN_VALUE: &str = VALIDATION_VALUE;

fn ctx() -> Context {
    let mut ctx = Context::new("dify-test", Environment::Test, "us-west-2").unwrap();
    ctx.wait = WaitPolicy {
        initial_interval: std::time::Duration::from_millis(1),
        max_interval: std::time::Duration::from_millis(2),
        multiplier: 2.0,
        jitter: 0.0,
        max_wait: std::time::Duration::from_secs(5),
        ..Default::default()
    };
    ctx
}

fn spec() -> PlatformSpec {
    PlatformSpec {
        cluster_name: "dify-test".into(),
        kubernetes_version: "1.33".parse().unwrap(),
        vpc_id: "vpc-1".into(),
        kubernetes: true,
        load_balancer_controller: Some(Chart::load_balancer_controller()),
        cluster_autoscaler: Some(Chart::cluster_autoscaler()),
        metrics_server: Some(Chart::metrics_server()),
        roles: [
            (
                LOAD_BALANCER_CONTROLLER.to_owned(),
                "arn:aws:iam::123456789012:role/dify-test-aws-load-balancer-controller".to_owned(),
            ),
            (CLUSTER_AUTOSCALER.to_owned(), "arn:aws:iam::123456789012:role/dify-test-cluster-autoscaler".to_owned()),
        ]
        .into(),
    }
}

fn cert_spec() -> CertificateSpec {
    CertificateSpec { domain: DomainSpec { name: "dify.example.com".into(), hosted_zone_id: None } }
}

/// The instant fake with two public zones (`example.com`, `other.com`), EKS offering
/// metrics-server at `offered`, and the two provisioners over it.
fn world(offered: Option<&str>) -> (FakePlatform, PlatformProvisioner, CertificateProvisioner) {
    let fake = FakePlatform::default();
    {
        let mut w = fake.world();
        w.zones.insert("ZPARENT".into(), "example.com".into());
        w.zones.insert("ZOTHER".into(), "other.com".into());
        w.offered = offered.map(str::to_owned);
    }
    let p = PlatformProvisioner::new(fake.clone()).with_kubernetes(fake.clone(), fake.clone());
    (fake.clone(), p, CertificateProvisioner::new(fake))
}

#[tokio::test]
async fn apply_installs_the_releases_and_the_addon_and_a_second_plan_is_empty() {
    let (fake, p, _) = world(Some("v0.7.2-eksbuild.1"));
    let (ctx, spec) = (ctx(), spec());
    let plan = p.plan(&ctx, &spec).await.unwrap();
    let text = plan.to_string();
    for expected in [
        "eks:addon",
        "helm:release",
        "kube-system/aws-load-balancer-controller",
        "kube-system/cluster-autoscaler",
        "k8s:ingressclass",
    ] {
        assert!(text.contains(expected), "{expected} missing from:\n{text}");
    }
    assert!(!text.contains("kube-system/metrics-server"), "the add-on is offered: no chart\n{text}");

    let out = p.apply(&ctx, &spec).await.unwrap();
    assert_eq!(out.metrics_server.as_deref(), Some("eks-addon v0.7.2-eksbuild.1"));
    assert_eq!(out.ingress_class.as_deref(), Some(INGRESS_CLASS));
    assert!(out.commands.is_empty());
    {
        let w = fake.world();
        // The controller's values: cluster, region, VPC, its IRSA role; no IngressClass of the chart's.
        let (_, values) = &w.releases[&(SYSTEM_NAMESPACE.to_owned(), LOAD_BALANCER_CONTROLLER.to_owned())];
        let v: serde_json::Value = serde_norway::from_str(values).unwrap();
        assert_eq!(v["clusterName"], "dify-test");
        assert_eq!(v["region"], "us-west-2");
        assert_eq!(v["vpcId"], "vpc-1");
        assert_eq!(v["createIngressClassResource"], false);
        assert_eq!(
            v["serviceAccount"]["annotations"]["eks.amazonaws.com/role-arn"],
            spec.roles[LOAD_BALANCER_CONTROLLER]
        );
        let (_, values) = &w.releases[&(SYSTEM_NAMESPACE.to_owned(), CLUSTER_AUTOSCALER.to_owned())];
        let v: serde_json::Value = serde_norway::from_str(values).unwrap();
        assert_eq!(v["autoDiscovery"]["clusterName"], "dify-test");
        assert_eq!(
            v["rbac"]["serviceAccount"]["annotations"]["eks.amazonaws.com/role-arn"],
            spec.roles[CLUSTER_AUTOSCALER]
        );
        // The controller (then its IngressClass) after the autoscaler, whose chart makes a Service
        // that the controller's webhook would refuse until its pods serve.
        let order: Vec<&String> = w.log.iter().filter(|l| l.starts_with("helm") || l.starts_with("apply")).collect();
        assert_eq!(order.len(), 3, "{order:?}");
        assert!(order[0].contains(CLUSTER_AUTOSCALER), "{order:?}");
        assert!(order[1].contains(LOAD_BALANCER_CONTROLLER) && order[2].contains("ingressclass"), "{order:?}");
    }
    let before = fake.world().log.len();
    assert!(p.plan(&ctx, &spec).await.unwrap().is_empty(), "{}", p.plan(&ctx, &spec).await.unwrap());
    p.apply(&ctx, &spec).await.unwrap();
    let writes: Vec<String> = fake.world().log[before..].to_vec();
    assert!(writes.is_empty(), "a second apply wrote: {writes:?}");
}

#[tokio::test]
async fn the_certificate_is_issued_once_its_record_is_in_the_zone_and_a_second_plan_is_empty() {
    let (fake, _, c) = world(None);
    let (ctx, spec) = (ctx(), cert_spec());
    let plan = c.plan(&ctx, &spec).await.unwrap();
    assert!(plan.to_string().contains("acm:certificate") && plan.to_string().contains("ZPARENT"), "{plan}");
    let out = c.apply(&ctx, &spec).await.unwrap();
    assert!(out.certificate_arn.as_deref().is_some_and(|a| a.starts_with("arn:aws:acm:")));
    assert_eq!(out.hosted_zone_id.as_deref(), Some("ZPARENT"), "the longest zone holding the domain");
    {
        let w = fake.world();
        assert_eq!(w.certs.values().next().unwrap().status, "ISSUED");
        let record = w.records.get(&("ZPARENT".into(), TOKEN_NAME.into(), "CNAME".into()));
        assert_eq!(record.map(|r| r.value.as_str()), Some(TOKEN_VALUE));
    }
    let before = fake.world().log.len();
    assert!(c.plan(&ctx, &spec).await.unwrap().is_empty());
    assert_eq!(c.apply(&ctx, &spec).await.unwrap(), out, "the same certificate");
    assert_eq!(fake.world().log.len(), before, "a second apply writes nothing");
}

#[tokio::test]
async fn a_new_chart_version_is_an_update_and_without_the_addon_metrics_server_is_a_release() {
    let (fake, p, _) = world(None);
    let (ctx, mut spec) = (ctx(), spec());
    let out = p.apply(&ctx, &spec).await.unwrap();
    assert_eq!(out.metrics_server.as_deref(), Some("helm metrics-server-3.12.2"));
    assert!(fake.world().releases.contains_key(&(SYSTEM_NAMESPACE.to_owned(), METRICS_SERVER.to_owned())));
    assert!(fake.world().addons.is_empty());
    // The metrics-server chart, too, goes before the controller's webhooks.
    let helm: Vec<String> = fake.world().log.iter().filter(|l| l.starts_with("helm upgrade")).cloned().collect();
    assert_eq!(helm.len(), 3, "{helm:?}");
    assert!(helm[2].contains(LOAD_BALANCER_CONTROLLER), "{helm:?}");

    spec.cluster_autoscaler.as_mut().unwrap().version = "9.50.0".into();
    let plan = p.plan(&ctx, &spec).await.unwrap();
    assert_eq!(plan.changes.len(), 1, "{plan}");
    assert!(plan.to_string().contains("cluster-autoscaler-9.50.0"), "{plan}");
    // Apply makes the one write the plan shows: that release upgraded, nothing else.
    let before = fake.world().log.len();
    p.apply(&ctx, &spec).await.unwrap();
    let writes = fake.world().log[before..].to_vec();
    assert_eq!(writes.len(), 1, "{writes:?}");
    assert!(writes[0].starts_with("helm upgrade") && writes[0].contains("cluster-autoscaler-9.50.0"), "{writes:?}");
}

#[tokio::test]
async fn role_only_access_returns_the_commands_and_touches_no_cluster() {
    let fake = FakePlatform::default();
    let p = PlatformProvisioner::new(fake.clone());
    let (ctx, mut spec) = (ctx(), spec());
    spec.kubernetes = false;
    spec.metrics_server = None;
    let plan = p.plan(&ctx, &spec).await.unwrap();
    assert!(plan.is_empty(), "{plan}");
    let out = p.apply(&ctx, &spec).await.unwrap();
    assert_eq!(out.commands.len(), 4, "{:?}", out.commands);
    // In the order to run them: the controller after the autoscaler (its webhooks refuse new
    // Services until it serves), its chart's CRDs just before it (Helm upgrades none), then the
    // IngressClass.
    assert!(out.commands[0].starts_with("helm upgrade --install cluster-autoscaler"), "{}", out.commands[0]);
    assert_eq!(
        out.commands[1],
        "helm show crds aws-load-balancer-controller --repo https://aws.github.io/eks-charts --version 1.13.0 | kubectl apply --server-side --field-manager dify-stack --force-conflicts -f -"
    );
    assert!(out.commands[2].starts_with("helm upgrade --install aws-load-balancer-controller aws-load-balancer-controller --repo https://aws.github.io/eks-charts --version 1.13.0"));
    assert!(out.commands[3].contains("kind: IngressClass"), "{}", out.commands[3]);
    assert!(out.release_values[LOAD_BALANCER_CONTROLLER].contains("dify-test-aws-load-balancer-controller"));
    assert!(fake.world().releases.is_empty() && fake.world().ingress_class.is_none());
    // With kubernetes on, a provisioner without the clients is a clear error, not a silent skip.
    spec.kubernetes = true;
    let err = p.apply(&ctx, &spec).await.unwrap_err();
    assert!(matches!(err, PlatformError::NoKubernetesClient), "{err}");
}

#[tokio::test]
async fn destroy_removes_releases_controller_last_and_only_the_records_the_certificate_wrote() {
    let (fake, p, c) = world(Some("v0.7.2-eksbuild.1"));
    let (ctx, spec) = (ctx(), spec());
    p.apply(&ctx, &spec).await.unwrap();
    c.apply(&ctx, &cert_spec()).await.unwrap();
    // Someone else's record in the same zone.
    fake.world().records.insert(
        ("ZPARENT".into(), "www.dify.example.com.".into(), "CNAME".into()),
        Record::simple("www.dify.example.com", "CNAME", "elsewhere."),
    );
    let before = fake.world().log.len();
    let deleted = p.destroy(&ctx, &spec).await.unwrap();
    let log: Vec<String> = fake.world().log[before..].to_vec();
    let at =
        |needle: &str| log.iter().position(|l| l.contains(needle)).unwrap_or_else(|| panic!("{needle} not in {log:?}"));
    assert!(
        at("helm uninstall kube-system/cluster-autoscaler")
            < at("helm uninstall kube-system/aws-load-balancer-controller")
    );
    assert!(at("aws-load-balancer-controller") < at("delete ingressclass"));
    assert!(log.iter().any(|l| l.starts_with("DeleteAddon")));
    assert_eq!(deleted.len(), 4, "{deleted:?}");
    let before = fake.world().log.len();
    let deleted = c.destroy(&ctx, &cert_spec()).await.unwrap();
    let log: Vec<String> = fake.world().log[before..].to_vec();
    let at =
        |needle: &str| log.iter().position(|l| l.contains(needle)).unwrap_or_else(|| panic!("{needle} not in {log:?}"));
    assert!(at("Delete _3f1a.dify.example.com.") < at("DeleteCertificate"));
    assert_eq!(deleted.len(), 2, "{deleted:?}");
    {
        let w = fake.world();
        assert!(w.certs.is_empty() && w.releases.is_empty() && w.addons.is_empty() && w.ingress_class.is_none());
        assert_eq!(w.records.len(), 1, "only the record that is not ours stays: {:?}", w.records);
    }
    // Twice is fine.
    assert!(p.destroy(&ctx, &spec).await.unwrap().is_empty());
    assert!(c.destroy(&ctx, &cert_spec()).await.unwrap().is_empty());
}

#[tokio::test]
async fn what_is_not_ours_is_used_or_left_never_taken_over() {
    let (fake, p, c) = world(Some("v0.7.2-eksbuild.1"));
    let (ctx, spec) = (ctx(), spec());
    // A certificate for the domain from someone else, a metrics-server add-on someone installed,
    // an IngressClass `alb` without our label.
    fake.world().certs.insert(
        "arn:aws:acm:us-west-2:123456789012:certificate/theirs".into(),
        FakeCert::new("dify.example.com", "ISSUED", Tags::new(), 0),
    );
    fake.world().addons.insert(
        ("dify-test".into(), METRICS_SERVER.into()),
        AddonState { version: "v0.7.0".into(), status: "ACTIVE".into(), tags: Tags::new() },
    );
    fake.world().ingress_class = Some(IngressClassState { controller: INGRESS_CONTROLLER.into(), ours: false });
    let out = p.apply(&ctx, &spec).await.unwrap();
    assert_eq!(out.metrics_server.as_deref(), Some("eks-addon v0.7.0 (not ours)"));
    let cert = c.apply(&ctx, &cert_spec()).await.unwrap();
    assert!(!cert.certificate_arn.unwrap().ends_with("/theirs"), "a certificate of our own is requested");
    p.destroy(&ctx, &spec).await.unwrap();
    c.destroy(&ctx, &cert_spec()).await.unwrap();
    let w = fake.world();
    assert!(w.certs.contains_key("arn:aws:acm:us-west-2:123456789012:certificate/theirs"));
    assert!(w.addons.contains_key(&("dify-test".to_owned(), METRICS_SERVER.to_owned())));
    assert!(w.ingress_class.is_some());
}

#[tokio::test(start_paused = true)]
async fn a_missing_zone_or_an_unvalidated_certificate_fails_naming_the_fix_or_the_record() {
    let (fake, _, c) = world(None);
    let ctx = ctx();
    let spec = CertificateSpec { domain: DomainSpec { name: "dify.nowhere.org".into(), hosted_zone_id: None } };
    let err = c.apply(&ctx, &spec).await.unwrap_err();
    assert!(matches!(&err, PlatformError::NoHostedZone { domain } if domain == "dify.nowhere.org"), "{err}");
    assert!(fake.world().certs.is_empty(), "nothing requested without a zone");

    // The zone is given but the record never validates (a zone the domain is not delegated to).
    let spec = CertificateSpec {
        domain: DomainSpec { name: "dify.example.com".into(), hosted_zone_id: Some("ZOTHER".into()) },
    };
    fake.world().zones.clear();
    let err = CertificateProvisioner::new(Unvalidated(fake.clone())).apply(&ctx, &spec).await.unwrap_err();
    assert!(matches!(err, PlatformError::Wait(_)), "{err}");
    let text = err.to_string();
    assert!(text.contains(TOKEN_NAME) && text.contains(TOKEN_VALUE), "the timeout names the record: {text}");
}

/// DNS whose certificates never validate.
#[derive(Debug, Clone)]
struct Unvalidated(FakePlatform);

#[async_trait]
impl DnsApi for Unvalidated {
    async fn certificates_for(&self, domain: String) -> Result<Vec<Arn>, AwsError> {
        self.0.certificates_for(domain).await
    }
    async fn describe_certificate(&self, arn: Arn) -> Result<Option<Certificate>, AwsError> {
        self.0.world().records.clear();
        self.0.describe_certificate(arn).await
    }
    async fn request_certificate(&self, r: CertificateRequest) -> Result<Arn, AwsError> {
        self.0.request_certificate(r).await
    }
    async fn delete_certificate(&self, arn: Arn) -> Result<(), AwsError> {
        self.0.delete_certificate(arn).await
    }
    async fn find_public_zone(&self, domain: String) -> Result<Option<String>, AwsError> {
        self.0.find_public_zone(domain).await
    }
    async fn get_record(&self, zone: String, name: String, kind: String) -> Result<Option<Record>, AwsError> {
        self.0.get_record(zone, name, kind).await
    }
    async fn change_records(&self, zone: String, changes: Vec<(RecordAction, Record)>) -> Result<(), AwsError> {
        self.0.change_records(zone, changes).await
    }
}

#[test]
fn validation_names_each_bad_field() {
    let mut s = spec();
    s.load_balancer_controller.as_mut().unwrap().repository = "http://insecure".into();
    s.roles.clear();
    let err = s.validate().unwrap_err().to_string();
    for field in
        ["load_balancer_controller.repository", "roles.aws-load-balancer-controller", "roles.cluster-autoscaler"]
    {
        assert!(err.contains(field), "{field} missing: {err}");
    }
    s.kubernetes = false;
    assert!(!s.validate().unwrap_err().to_string().contains("roles."), "role-only needs no role for the releases");
    // Every chart pinned (an OCI chart needs the tag, a repository chart would float to the
    // newest); an OCI reference names a registry; the autoscaler needs a known minor.
    let mut s = spec();
    s.cluster_autoscaler.as_mut().unwrap().version = " ".into();
    s.metrics_server.as_mut().unwrap().repository = "oci://".into();
    s.kubernetes_version = "1.99".parse().unwrap();
    let err = s.validate().unwrap_err().to_string();
    for field in ["cluster_autoscaler.version", "metrics_server.repository", "kubernetes_version"] {
        assert!(err.contains(field), "{field} missing: {err}");
    }
    s.cluster_autoscaler = None;
    assert!(!s.validate().unwrap_err().to_string().contains("kubernetes_version"), "no autoscaler, no table");
    let mut s = spec();
    s.load_balancer_controller.as_mut().unwrap().repository =
        "oci://123456789012.dkr.ecr.us-west-2.amazonaws.com/charts".into();
    s.validate().unwrap();
    let c = CertificateSpec {
        domain: DomainSpec { name: "Dify_Example".into(), hosted_zone_id: Some("/hostedzone/Z1".into()) },
    };
    let err = c.validate().unwrap_err().to_string();
    for field in ["domain.name", "domain.hosted_zone_id"] {
        assert!(err.contains(field), "{field} missing: {err}");
    }
}

#[tokio::test]
async fn aliases_point_the_six_hosts_at_the_load_balancer_and_never_take_over_a_record() {
    use crate::aliases::{self, AliasTarget};
    let (fake, _, _) = world(None);
    let ctx = ctx();
    let target = AliasTarget {
        dns_name: "k8s-dify-dify-0123.us-west-2.elb.amazonaws.com".into(),
        hosted_zone_id: "Z1H1FL5HABSF5".into(),
    };
    let names = aliases::publish(&ctx, &fake, "ZPARENT", "dify.example.com", &target).await.unwrap();
    assert_eq!(names.len(), 6);
    {
        let w = fake.world();
        let a = &w.records[&("ZPARENT".to_owned(), "console.dify.example.com.".to_owned(), "A".to_owned())];
        assert_eq!(
            (a.value.as_str(), a.alias_zone.as_deref()),
            ("k8s-dify-dify-0123.us-west-2.elb.amazonaws.com.", Some("Z1H1FL5HABSF5"))
        );
        let txt = &w.records[&("ZPARENT".to_owned(), "trigger.dify.example.com.".to_owned(), "TXT".to_owned())];
        assert_eq!(txt.value, "\"heritage=dify-stack,stack=dify-test\"");
    }
    // Again: nothing to change.
    let before = fake.world().log.len();
    aliases::publish(&ctx, &fake, "ZPARENT", "dify.example.com", &target).await.unwrap();
    assert_eq!(fake.world().log.len(), before);
    // Another stack's (or a hand-made) record is never overwritten: nothing is written at all.
    let other = Context::new("other", Environment::Test, "us-west-2").unwrap();
    let err = aliases::publish(&other, &fake, "ZPARENT", "dify.example.com", &target).await.unwrap_err();
    assert!(matches!(err, PlatformError::NotOwned { .. }), "{err}");
    assert_eq!(fake.world().log.len(), before);
    // Destroy of the other stack removes nothing; ours removes all twelve records.
    assert!(aliases::remove(&other, &fake, "ZPARENT", "dify.example.com").await.unwrap().is_empty());
    assert_eq!(aliases::remove(&ctx, &fake, "ZPARENT", "dify.example.com").await.unwrap().len(), 6);
    assert!(fake.world().records.is_empty(), "{:?}", fake.world().records);
}

/// A validation record removed by hand: the plan shows that record with its value, and apply
/// writes exactly it back (the certificate is not requested again).
#[tokio::test]
async fn a_lost_validation_record_is_planned_and_written_back_alone() {
    let (fake, _, c) = world(None);
    let (ctx, spec) = (ctx(), cert_spec());
    c.apply(&ctx, &spec).await.unwrap();
    fake.world().records.clear();
    let plan = c.plan(&ctx, &spec).await.unwrap();
    assert_eq!(plan.changes.len(), 1, "{plan}");
    let change = &plan.changes[0];
    assert_eq!((change.resource.kind.as_str(), change.resource.name.as_str()), ("route53:record", TOKEN_NAME));
    assert!(change.fields.iter().any(|f| f.after.as_deref() == Some(TOKEN_VALUE)), "{plan}");
    let before = fake.world().log.len();
    c.apply(&ctx, &spec).await.unwrap();
    let writes = fake.world().log[before..].to_vec();
    assert_eq!(writes, [format!("Upsert {TOKEN_NAME} CNAME {TOKEN_VALUE}")]);
}

/// Helm is told where a chart is in one of two forms, `--version` always: a chart repository
/// with `--repo`, an OCI registry by reference (Helm has no repository mode for OCI).
#[test]
fn the_chart_is_named_by_repo_or_by_oci_reference_and_always_pinned() {
    use crate::helm::upgrade_install_args;
    let install =
        |chart: Chart| ReleaseInstall { name: "dify".into(), namespace: "dify".into(), chart, values: String::new() };
    let (values, kubeconfig) = (std::path::Path::new("/v.yaml"), std::path::Path::new("/k"));
    let https =
        upgrade_install_args(&install(Chart::new("https://charts.example.com", "dify", "3.9.0")), values, kubeconfig);
    assert_eq!(
        https,
        [
            "upgrade",
            "--install",
            "dify",
            "dify",
            "--repo",
            "https://charts.example.com",
            "--version",
            "3.9.0",
            "--namespace",
            "dify",
            "--values",
            "/v.yaml",
            "--kubeconfig",
            "/k",
            "--create-namespace"
        ]
    );
    let oci = Chart::new("oci://123456789012.dkr.ecr.us-west-2.amazonaws.com/charts/", "dify", "3.9.0");
    assert!(oci.is_oci());
    let args = upgrade_install_args(&install(oci), values, kubeconfig);
    assert_eq!(
        args,
        [
            "upgrade",
            "--install",
            "dify",
            "oci://123456789012.dkr.ecr.us-west-2.amazonaws.com/charts/dify",
            "--version",
            "3.9.0",
            "--namespace",
            "dify",
            "--values",
            "/v.yaml",
            "--kubeconfig",
            "/k",
            "--create-namespace"
        ]
    );
}

#[tokio::test]
async fn role_only_commands_install_an_oci_chart_by_reference() {
    let p = PlatformProvisioner::new(FakePlatform::default());
    let (ctx, mut spec) = (ctx(), spec());
    spec.kubernetes = false;
    spec.metrics_server = None;
    spec.cluster_autoscaler.as_mut().unwrap().repository = "oci://registry.example.com/mirror".into();
    let out = p.apply(&ctx, &spec).await.unwrap();
    assert_eq!(
        out.commands[0],
        "helm upgrade --install cluster-autoscaler oci://registry.example.com/mirror/cluster-autoscaler --version 9.46.6 --namespace kube-system --values cluster-autoscaler-values.yaml"
    );
    assert!(
        out.commands[2].contains(" --repo https://aws.github.io/eks-charts --version 1.13.0 "),
        "{}",
        out.commands[2]
    );
    // The controller's CRDs come from its chart in the same form: by reference from a registry.
    spec.load_balancer_controller.as_mut().unwrap().repository = "oci://registry.example.com/mirror".into();
    let out = p.apply(&ctx, &spec).await.unwrap();
    assert_eq!(
        out.commands[1],
        "helm show crds oci://registry.example.com/mirror/aws-load-balancer-controller --version 1.13.0 | kubectl apply --server-side --field-manager dify-stack --force-conflicts -f -"
    );
    assert!(out.commands[2].starts_with("helm upgrade --install aws-load-balancer-controller oci://registry.example.com/mirror/aws-load-balancer-controller --version 1.13.0 "));
}

/// The autoscaler runs the image made for the cluster's minor (the chart alone would run its
/// own appVersion, v1.32.0 for 9.46.6), and a Kubernetes upgrade plans and makes exactly one
/// write: the release upgraded to the new minor's image.
#[tokio::test]
async fn the_autoscaler_image_follows_the_cluster_minor_and_a_kubernetes_upgrade_upgrades_the_release() {
    let (fake, p, _) = world(None);
    let (ctx, mut spec) = (ctx(), spec());
    spec.metrics_server = None;
    let autoscaler_values = |fake: &FakePlatform| -> serde_json::Value {
        let w = fake.world();
        serde_norway::from_str(&w.releases[&(SYSTEM_NAMESPACE.to_owned(), CLUSTER_AUTOSCALER.to_owned())].1).unwrap()
    };
    let plan = p.plan(&ctx, &spec).await.unwrap();
    let create = plan.changes.iter().find(|c| c.resource.name.ends_with(CLUSTER_AUTOSCALER)).unwrap();
    assert!(
        create.fields.iter().any(|f| f.path == "values.image.tag" && f.after.as_deref() == Some("v1.33.6")),
        "{plan}"
    );
    p.apply(&ctx, &spec).await.unwrap();
    assert_eq!(autoscaler_values(&fake)["image"]["tag"], "v1.33.6");
    assert!(p.plan(&ctx, &spec).await.unwrap().is_empty());
    // Only the image is compared: a plan that does not know the role ARNs yet (the facade's,
    // before the IAM node applied) shows no change for them.
    let mut unknown_roles = spec.clone();
    unknown_roles.roles.clear();
    let observed = p.observe(&ctx, &unknown_roles).await.unwrap();
    assert!(p.diff(&ctx, &unknown_roles, &observed).is_empty());

    spec.kubernetes_version = "1.34".parse().unwrap();
    let plan = p.plan(&ctx, &spec).await.unwrap();
    assert_eq!(plan.changes.len(), 1, "{plan}");
    let change = &plan.changes[0];
    assert_eq!((change.action, change.resource.name.as_str()), (Action::Update, "kube-system/cluster-autoscaler"));
    let tag = change.fields.iter().find(|f| f.path == "values.image.tag").expect("the tag in the plan");
    assert_eq!((tag.before.as_deref(), tag.after.as_deref()), (Some("v1.33.6"), Some("v1.34.5")));
    let before = fake.world().log.len();
    p.apply(&ctx, &spec).await.unwrap();
    let writes = fake.world().log[before..].to_vec();
    assert_eq!(writes, ["helm upgrade --install kube-system/cluster-autoscaler cluster-autoscaler-9.46.6"]);
    assert_eq!(autoscaler_values(&fake)["image"]["tag"], "v1.34.5");
    assert!(p.plan(&ctx, &spec).await.unwrap().is_empty());

    // A mirror keeps the minor's tag.
    spec.cluster_autoscaler.as_mut().unwrap().image_repository = Some("mirror.example.com/cluster-autoscaler".into());
    p.apply(&ctx, &spec).await.unwrap();
    let v = autoscaler_values(&fake);
    assert_eq!(
        (v["image"]["repository"].as_str(), v["image"]["tag"].as_str()),
        (Some("mirror.example.com/cluster-autoscaler"), Some("v1.34.5"))
    );
}

#[test]
fn the_autoscaler_table_has_one_row_per_minor_whose_chart_and_image_are_of_that_minor() {
    use crate::spec::{CLUSTER_AUTOSCALER_RELEASES, cluster_autoscaler_release};
    for (i, r) in CLUSTER_AUTOSCALER_RELEASES.iter().enumerate() {
        assert!(r.image_tag.starts_with(&format!("v{}.", r.kubernetes)), "{r:?}");
        assert!(r.chart_app_version.starts_with(&format!("{}.", r.kubernetes)), "{r:?}");
        assert_eq!(cluster_autoscaler_release(r.kubernetes), Some(r));
        if let Some(next) = CLUSTER_AUTOSCALER_RELEASES.get(i + 1) {
            assert_eq!(next.kubernetes, r.kubernetes.next_minor(), "one row per minor, in order");
        }
    }
    let v = |s: &str| s.parse::<dify_stack_core::ids::KubernetesVersion>().unwrap();
    assert_eq!(cluster_autoscaler_release(v("1.33")).map(|r| r.image_tag), Some("v1.33.6"));
    assert!(cluster_autoscaler_release(v("1.99")).is_none());
    assert_eq!(Chart::cluster_autoscaler_for(v("1.33")).version, "9.51.0");
    assert_eq!(Chart::cluster_autoscaler_for(v("1.99")), Chart::cluster_autoscaler());
}

fn our_cert(ctx: &Context, status: &str, created: i64) -> FakeCert {
    FakeCert::new("dify.example.com", status, ctx.tags_for(Tier::Platform, "certificate", "dify.example.com"), created)
}

const ARN: &str = "arn:aws:acm:us-west-2:123456789012:certificate/";

/// A certificate that failed (here a CAA record that names no Amazon CA) fails every later
/// apply at once, and asking again with the stack's token gets the failed one back from ACM for
/// an hour. Once the cause is fixed, the plan shows the replacement and why; apply requests a new
/// certificate under a token of its own and deletes the failed one.
#[tokio::test]
async fn a_failed_certificate_is_replaced_under_a_token_of_its_own_and_deleted() {
    let (fake, _, c) = world(None);
    let (ctx, spec) = (ctx(), cert_spec());
    fake.world().caa_blocks = true;
    let err = c.apply(&ctx, &spec).await.unwrap_err();
    assert!(matches!(&err, PlatformError::CertificateFailed { status, .. } if status == "FAILED: CAA_ERROR"), "{err}");
    let failed = fake.world().certs.keys().next().unwrap().clone();
    // ACM's idempotency window: the stack's token answers with the failed certificate.
    let base = crate::names::certificate_token(&ctx, "dify.example.com");
    let request = |token: String| CertificateRequest {
        domain: "dify.example.com".into(),
        sans: vec!["dify.example.com".into(), "*.dify.example.com".into()],
        token,
        tags: ctx.tags_for(Tier::Platform, "certificate", "dify.example.com"),
    };
    assert_eq!(fake.request_certificate(request(base.clone())).await.unwrap().as_str(), failed);

    fake.world().caa_blocks = false;
    let plan = c.plan(&ctx, &spec).await.unwrap();
    let replace = &plan.changes[0];
    assert_eq!((replace.action, replace.resource.id.as_deref()), (Action::Replace, Some(failed.as_str())), "{plan}");
    let reason = replace.reason.as_deref().unwrap_or_default();
    assert!(reason.contains(&format!("replace failed certificate {failed} (status FAILED: CAA_ERROR)")), "{plan}");

    let before = fake.world().log.len();
    let out = c.apply(&ctx, &spec).await.unwrap();
    let new = out.certificate_arn.clone().unwrap();
    assert_ne!(new, failed);
    let token = crate::names::replacement_certificate_token(&ctx, "dify.example.com", &failed);
    assert_ne!(token, base);
    let log = fake.world().log[before..].to_vec();
    let at = |line: &str| log.iter().position(|l| l == line).unwrap_or_else(|| panic!("{line} not in {log:?}"));
    assert!(at(&format!("RequestCertificate dify.example.com {token}")) < at(&format!("DeleteCertificate {failed}")));
    {
        let w = fake.world();
        assert_eq!(w.certs.keys().collect::<Vec<_>>(), [&new], "the failed one is gone");
        assert_eq!(w.certs[&new].status, "ISSUED");
    }
    // A retry of the replacement's request within the hour gets the same certificate.
    assert_eq!(fake.request_certificate(request(token)).await.unwrap().as_str(), new);
    assert_eq!(fake.world().certs.len(), 1);
    let before = fake.world().log.len();
    assert!(c.plan(&ctx, &spec).await.unwrap().is_empty());
    assert_eq!(c.apply(&ctx, &spec).await.unwrap(), out);
    assert_eq!(fake.world().log.len(), before, "a second apply writes nothing");
}

/// ListCertificates' order is not creation order: the newest ISSUED or PENDING_VALIDATION
/// certificate of ours is used; FAILED and VALIDATION_TIMED_OUT ones are never used, and are
/// deleted when nothing uses them.
#[tokio::test]
async fn only_the_newest_issued_or_pending_certificate_is_used_and_failed_ones_are_deleted() {
    let (fake, _, c) = world(None);
    let (ctx, spec) = (ctx(), cert_spec());
    {
        let mut w = fake.world();
        w.records.insert(
            ("ZPARENT".into(), TOKEN_NAME.into(), "CNAME".into()),
            Record::simple(TOKEN_NAME, "CNAME", TOKEN_VALUE),
        );
        w.certs.insert(format!("{ARN}a-old-issued"), our_cert(&ctx, "ISSUED", 1_000));
        w.certs.insert(format!("{ARN}b-newest-pending"), our_cert(&ctx, "PENDING_VALIDATION", 5_000));
        let failed = FakeCert { reason: Some("CAA_ERROR".into()), ..our_cert(&ctx, "FAILED", 9_000) };
        w.certs.insert(format!("{ARN}c-failed"), failed);
        w.certs.insert(format!("{ARN}d-timed-out"), our_cert(&ctx, "VALIDATION_TIMED_OUT", 3_000));
        let in_use =
            FakeCert { in_use_by: vec!["arn:aws:elasticloadbalancing:x".into()], ..our_cert(&ctx, "FAILED", 2_000) };
        w.certs.insert(format!("{ARN}e-failed-in-use"), in_use);
        w.certs.insert(format!("{ARN}z-theirs"), FakeCert::new("dify.example.com", "ISSUED", Tags::new(), 10_000));
    }
    let plan = c.plan(&ctx, &spec).await.unwrap();
    let deletes: Vec<(Action, Option<&str>)> =
        plan.changes.iter().map(|c| (c.action, c.resource.id.as_deref())).collect();
    let (c_failed, d_timed_out) = (format!("{ARN}c-failed"), format!("{ARN}d-timed-out"));
    assert_eq!(
        deletes,
        [(Action::Delete, Some(c_failed.as_str())), (Action::Delete, Some(d_timed_out.as_str()))],
        "{plan}"
    );
    assert!(plan.changes[1].reason.as_deref().is_some_and(|r| r.contains("VALIDATION_TIMED_OUT")), "{plan}");

    let before = fake.world().log.len();
    let out = c.apply(&ctx, &spec).await.unwrap();
    assert_eq!(out.certificate_arn.unwrap(), format!("{ARN}b-newest-pending"));
    let writes = fake.world().log[before..].to_vec();
    assert_eq!(writes, [format!("DeleteCertificate {c_failed}"), format!("DeleteCertificate {d_timed_out}")]);
    assert!(fake.world().certs.contains_key(&format!("{ARN}e-failed-in-use")), "in use: never deleted");
    assert!(c.plan(&ctx, &spec).await.unwrap().is_empty());

    // Destroy deletes every certificate of ours, the failed one in use is refused by ACM.
    let err = c.destroy(&ctx, &spec).await.unwrap_err();
    assert!(
        err.to_string().contains("DeleteCertificate failed for") && err.to_string().contains("e-failed-in-use"),
        "{err}"
    );
    fake.world().certs.get_mut(&format!("{ARN}e-failed-in-use")).unwrap().in_use_by.clear();
    c.destroy(&ctx, &spec).await.unwrap();
    assert_eq!(fake.world().certs.keys().collect::<Vec<_>>(), [&format!("{ARN}z-theirs")]);
}

/// A certificate that timed out (72 hours without validation) and is alone is replaced too.
#[tokio::test]
async fn a_timed_out_certificate_alone_is_replaced() {
    let (fake, _, c) = world(None);
    let (ctx, spec) = (ctx(), cert_spec());
    let timed_out = format!("{ARN}timed-out");
    fake.world().certs.insert(timed_out.clone(), our_cert(&ctx, "VALIDATION_TIMED_OUT", 1_000));
    let plan = c.plan(&ctx, &spec).await.unwrap();
    assert_eq!(plan.changes[0].action, Action::Replace, "{plan}");
    assert!(
        plan.to_string().contains(&format!("replace failed certificate {timed_out} (status VALIDATION_TIMED_OUT)")),
        "{plan}"
    );
    let out = c.apply(&ctx, &spec).await.unwrap();
    assert_ne!(out.certificate_arn.as_deref(), Some(timed_out.as_str()));
    assert!(!fake.world().certs.contains_key(&timed_out));
}

/// The load balancer controller's gate (the stack passes the EKS add-ons' wait): the charts
/// before the controller go on while it is pending; the controller's first step waits for it,
/// and when it fails the controller is not installed and the error names why.
#[tokio::test]
async fn the_controller_waits_for_its_gate_and_is_not_installed_when_the_gate_fails() {
    struct Gate(FakePlatform, Result<(), String>);
    #[async_trait]
    impl crate::ControllerGate for Gate {
        async fn settled(&self) -> Result<(), String> {
            self.0.world().log.push("gate settled".to_owned());
            self.1.clone()
        }
    }
    let (ctx, spec) = (ctx(), spec());

    let (fake, p, _) = world(Some("v0.7.2-eksbuild.1"));
    let p = p.with_controller_gate(Arc::new(Gate(fake.clone(), Ok(()))));
    p.apply(&ctx, &spec).await.unwrap();
    {
        let w = fake.world();
        let at =
            |what: &str| w.log.iter().position(|l| l.contains(what)).unwrap_or_else(|| panic!("{what}: {:?}", w.log));
        assert!(at(CLUSTER_AUTOSCALER) < at("gate settled"), "{:?}", w.log);
        assert!(at("gate settled") < at(LOAD_BALANCER_CONTROLLER), "{:?}", w.log);
        assert_eq!(w.log.iter().filter(|l| *l == "gate settled").count(), 1, "{:?}", w.log);
    }
    // Nothing for the controller to do: the gate is not waited for.
    let before = fake.world().log.len();
    p.apply(&ctx, &spec).await.unwrap();
    assert!(!fake.world().log[before..].iter().any(|l| l == "gate settled"), "{:?}", &fake.world().log[before..]);

    let (fake, p, _) = world(Some("v0.7.2-eksbuild.1"));
    let p = p.with_controller_gate(Arc::new(Gate(fake.clone(), Err("coredns is CREATE_FAILED".to_owned()))));
    let err = p.apply(&ctx, &spec).await.unwrap_err();
    assert!(matches!(&err, PlatformError::ControllerGate { reason } if reason.contains("coredns")), "{err}");
    assert_eq!(dify_stack_core::Classify::kind(&err), dify_stack_core::ErrorKind::Failed);
    let w = fake.world();
    assert!(w.releases.contains_key(&(SYSTEM_NAMESPACE.to_owned(), CLUSTER_AUTOSCALER.to_owned())));
    assert!(!w.releases.contains_key(&(SYSTEM_NAMESPACE.to_owned(), LOAD_BALANCER_CONTROLLER.to_owned())));
    assert!(!w.log.iter().any(|l| l.contains("crd")), "no controller CRDs either: {:?}", w.log);
}
