//! The in-memory world the platform tests run against: DNS and ACM, EKS add-ons, Helm and the
//! IngressClass API, each answering from one shared state.

use super::{
    Arc, AwsError, BTreeMap, CertificateProvisioner, CertificateSpec, Context, Environment, HelmApi, HelmError,
    KubeFailure, Mutex, PlatformProvisioner, ReleaseInfo, ReleaseInstall, Tags, WaitPolicy, async_trait,
};
use crate::AddonApi;
use crate::Certificate;
use crate::CertificateRequest;
use crate::Chart;
use crate::DnsApi;
use crate::DomainSpec;
use crate::IngressClassApi;
use crate::PlatformSpec;
use crate::Record;
use crate::RecordAction;
use crate::tests::AddonState;
use crate::tests::CLUSTER_AUTOSCALER;
use crate::tests::INGRESS_CLASS;
use crate::tests::IngressClassState;
use crate::tests::LOAD_BALANCER_CONTROLLER;
use crate::tests::METRICS_SERVER;
use dify_stack_core::ids::{Arn, ClusterName};

/// An ACM certificate of the fake world.
#[derive(Debug, Clone, Default)]
pub(super) struct FakeCert {
    pub(super) domain: String,
    pub(super) status: String,
    pub(super) tags: Tags,
    /// DescribeCertificate calls so far (the record shows from the second on).
    pub(super) describes: u32,
    /// `CreatedAt`, milliseconds of the world's clock.
    pub(super) created: i64,
    pub(super) reason: Option<String>,
    pub(super) in_use_by: Vec<String>,
}

impl FakeCert {
    /// A certificate for `domain` created at `created`, in `status`.
    pub(super) fn new(domain: &str, status: &str, tags: Tags, created: i64) -> FakeCert {
        FakeCert { domain: domain.into(), status: status.into(), tags, describes: 5, created, ..Default::default() }
    }
}

/// ACM's idempotency window: the same token within an hour returns the same certificate (ACM
/// API reference, RequestCertificate `IdempotencyToken`).
pub(super) const TOKEN_WINDOW_MS: i64 = 3_600_000;

#[derive(Debug, Default)]
pub(super) struct World {
    pub(super) certs: BTreeMap<String, FakeCert>,
    /// token -> (the certificate it made, when)
    pub(super) tokens: BTreeMap<String, (String, i64)>,
    /// The world's clock, milliseconds; each request moves it on a second.
    pub(super) now: i64,
    /// A CAA record on the domain that names no Amazon CA: a validated certificate then fails
    /// with `CAA_ERROR` instead of being issued (ACM user guide, "(Optional) Configure a CAA
    /// record": ACM checks for CAA records after it validates the domain).
    pub(super) caa_blocks: bool,
    /// (zone, name, kind) -> record
    pub(super) records: BTreeMap<(String, String, String), Record>,
    pub(super) zones: BTreeMap<String, String>,
    pub(super) offered: Option<String>,
    pub(super) addons: BTreeMap<(String, String), AddonState>,
    /// DescribeAddon calls left before a CREATING or UPDATING add-on settles.
    pub(super) addon_pending: u32,
    /// What the add-on settles to, with its health issues (`None`: ACTIVE, no issue).
    pub(super) addon_fate: Option<(String, Vec<String>)>,
    /// The add-on's health issues (DescribeAddon `health.issues`).
    pub(super) addon_issues: Vec<String>,
    /// The CRDs applied (server-side), by name, with the chart version they came from.
    pub(super) crds: BTreeMap<String, String>,
    /// (namespace, name) -> (chart, values)
    pub(super) releases: BTreeMap<(String, String), (Chart, String)>,
    pub(super) ingress_class: Option<IngressClassState>,
    pub(super) log: Vec<String>,
}

#[derive(Debug, Clone, Default)]
pub(super) struct Fake(pub(super) Arc<Mutex<World>>);

impl Fake {
    pub(super) fn w(&self) -> std::sync::MutexGuard<'_, World> {
        self.0.lock().unwrap()
    }
    fn log(&self, line: String) {
        self.w().log.push(line);
    }
}

/// The health issue of an add-on whose Service the controller's webhook refused (the webhook
/// error as aws-load-balancer-controller #4140 shows it, under EKS's AddonIssue code).
pub(super) const WEBHOOK_REFUSAL: &str = "AdmissionRequestDenied: Internal error occurred: failed calling webhook \"mservice.elbv2.k8s.aws\": no endpoints available for service \"aws-load-balancer-webhook-service\"";

pub(super) const TOKEN_NAME: &str = "_3f1a.dify.example.com.";
pub(super) const TOKEN_VALUE: &str = "_9c2b.acm-validations.aws.";

#[async_trait]
impl DnsApi for Fake {
    /// In ARN order, which is not the order they were requested in (as ListCertificates).
    async fn certificates_for(&self, domain: String) -> Result<Vec<Arn>, AwsError> {
        Ok(self.w().certs.iter().filter(|(_, c)| c.domain == domain).map(|(a, _)| Arn::new(a)).collect())
    }
    async fn describe_certificate(&self, arn: Arn) -> Result<Option<Certificate>, AwsError> {
        let mut w = self.0.lock().unwrap();
        let validated =
            w.records.iter().any(|((_, n, k), r)| n == TOKEN_NAME && k == "CNAME" && r.value == TOKEN_VALUE);
        let caa_blocks = w.caa_blocks;
        let Some(c) = w.certs.get_mut(arn.as_str()) else { return Ok(None) };
        c.describes += 1;
        if validated && c.status == "PENDING_VALIDATION" {
            if caa_blocks {
                (c.status, c.reason) = ("FAILED".into(), Some("CAA_ERROR".into()));
            } else {
                c.status = "ISSUED".into();
            }
        }
        // ACM fills in the record after the first read.
        let validation = if c.describes > 1 { vec![Record::simple(TOKEN_NAME, "CNAME", TOKEN_VALUE)] } else { vec![] };
        Ok(Some(Certificate {
            arn,
            domain: c.domain.clone(),
            status: c.status.clone(),
            validation,
            tags: c.tags.clone(),
            created_at: Some(c.created),
            failure_reason: c.reason.clone(),
            in_use_by: c.in_use_by.iter().map(Arn::new).collect(),
        }))
    }
    async fn request_certificate(&self, r: CertificateRequest) -> Result<Arn, AwsError> {
        let CertificateRequest { domain, sans, token, tags } = r;
        assert_eq!(sans, [domain.clone(), format!("*.{domain}")]);
        assert!(token.len() <= 32 && token.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'), "{token}");
        self.log(format!("RequestCertificate {domain} {token}"));
        let mut w = self.w();
        w.now += 1000;
        let now = w.now;
        // Within the hour the token answers with the certificate it made, whatever its status.
        if let Some((arn, at)) = w.tokens.get(&token)
            && now - at < TOKEN_WINDOW_MS
            && w.certs.contains_key(arn)
        {
            return Ok(Arn::new(arn));
        }
        let arn = format!("arn:aws:acm:us-west-2:123456789012:certificate/c{}", now / 1000);
        w.tokens.insert(token, (arn.clone(), now));
        w.certs
            .insert(arn.clone(), FakeCert { describes: 0, ..FakeCert::new(&domain, "PENDING_VALIDATION", tags, now) });
        Ok(Arn::new(arn))
    }
    async fn delete_certificate(&self, arn: Arn) -> Result<(), AwsError> {
        self.log(format!("DeleteCertificate {arn}"));
        let mut w = self.w();
        if w.certs.get(arn.as_str()).is_some_and(|c| !c.in_use_by.is_empty()) {
            return Err(AwsError::new("DeleteCertificate", "ResourceInUseException", "in use"));
        }
        w.certs.remove(arn.as_str());
        Ok(())
    }
    async fn find_public_zone(&self, domain: String) -> Result<Option<String>, AwsError> {
        let w = self.w();
        Ok(w.zones
            .iter()
            .filter(|(_, name)| domain.ends_with(name.as_str()))
            .max_by_key(|(_, n)| n.len())
            .map(|(id, _)| id.clone()))
    }
    async fn get_record(&self, zone: String, name: String, kind: String) -> Result<Option<Record>, AwsError> {
        Ok(self.w().records.get(&(zone, name, kind)).cloned())
    }
    async fn change_records(&self, zone: String, changes: Vec<(RecordAction, Record)>) -> Result<(), AwsError> {
        for (action, r) in changes {
            self.log(format!("{action:?} {} {} {}", r.name, r.kind, r.value));
            let key = (zone.clone(), r.name.clone(), r.kind.clone());
            match action {
                RecordAction::Upsert => {
                    self.w().records.insert(key, r);
                }
                RecordAction::Delete => {
                    // Route 53 refuses a delete that does not match exactly.
                    if self.w().records.get(&key) != Some(&r) {
                        return Err(AwsError::new("ChangeResourceRecordSets", "InvalidChangeBatch", "not found"));
                    }
                    self.w().records.remove(&key);
                }
            }
        }
        Ok(())
    }
}

#[async_trait]
impl AddonApi for Fake {
    async fn offered_version(&self, addon: String, kubernetes_version: String) -> Result<Option<String>, AwsError> {
        assert_eq!(addon, METRICS_SERVER);
        assert!(kubernetes_version.starts_with("1."), "{kubernetes_version}");
        Ok(self.w().offered.clone())
    }
    /// A CREATING or UPDATING add-on settles after [`World::addon_pending`] reads, to its fate
    /// (ACTIVE unless told otherwise); the read that first sees it settled is logged.
    async fn addon(&self, cluster: ClusterName, addon: String) -> Result<Option<AddonState>, AwsError> {
        let mut guard = self.w();
        let w = &mut *guard;
        let Some(a) = w.addons.get_mut(&(cluster.into_inner(), addon.clone())) else { return Ok(None) };
        if matches!(a.status.as_str(), "CREATING" | "UPDATING") {
            w.addon_pending = w.addon_pending.saturating_sub(1);
            if w.addon_pending == 0 {
                let (status, issues) = w.addon_fate.take().unwrap_or_else(|| ("ACTIVE".into(), vec![]));
                a.status = status;
                w.addon_issues = issues;
                w.log.push(format!("DescribeAddon {addon} {}", a.status));
            }
        }
        Ok(Some(a.clone()))
    }
    async fn create_addon(
        &self,
        cluster: ClusterName,
        addon: String,
        version: String,
        tags: Tags,
    ) -> Result<(), AwsError> {
        self.log(format!("CreateAddon {cluster} {addon} {version}"));
        let mut w = self.w();
        w.addon_pending = 2;
        w.addons.insert((cluster.into_inner(), addon), AddonState { version, status: "CREATING".into(), tags });
        Ok(())
    }
    async fn update_addon(&self, cluster: ClusterName, addon: String, version: String) -> Result<(), AwsError> {
        self.log(format!("UpdateAddon {addon} {version} OVERWRITE"));
        let mut w = self.w();
        w.addon_pending = 2;
        let a = w.addons.get_mut(&(cluster.into_inner(), addon)).expect("UpdateAddon of an add-on that exists");
        (a.version, a.status) = (version, "UPDATING".into());
        Ok(())
    }
    async fn addon_issues(&self, cluster: ClusterName, addon: String) -> Result<Vec<String>, AwsError> {
        let w = self.w();
        Ok(if w.addons.contains_key(&(cluster.into_inner(), addon)) { w.addon_issues.clone() } else { vec![] })
    }
    async fn delete_addon(&self, cluster: ClusterName, addon: String) -> Result<(), AwsError> {
        self.log(format!("DeleteAddon {addon}"));
        self.w().addons.remove(&(cluster.into_inner(), addon));
        Ok(())
    }
}

#[async_trait]
impl HelmApi for Fake {
    async fn status(&self, release: String, namespace: String) -> Result<Option<ReleaseInfo>, HelmError> {
        Ok(self
            .w()
            .releases
            .get(&(namespace, release))
            .map(|(c, _)| ReleaseInfo { chart: format!("{}-{}", c.chart, c.version), status: "deployed".into() }))
    }
    /// The controller's chart registers its Service mutating webhook (failurePolicy Fail) before
    /// its pods serve: an add-on still creating or updating then has its Service refused and
    /// ends CREATE_FAILED or UPDATE_FAILED (aws-load-balancer-controller #4140, eks-charts
    /// #1058; EKS AddonIssue code `AdmissionRequestDenied`).
    async fn upgrade_install(&self, r: ReleaseInstall) -> Result<(), HelmError> {
        let ReleaseInstall { name: release, namespace, chart, values } = r;
        self.log(format!("helm upgrade --install {namespace}/{release} {}-{}", chart.chart, chart.version));
        let mut w = self.w();
        if release == LOAD_BALANCER_CONTROLLER {
            let refused = w.addons.values().find_map(|a| match a.status.as_str() {
                "CREATING" => Some("CREATE_FAILED"),
                "UPDATING" => Some("UPDATE_FAILED"),
                _ => None,
            });
            if let Some(status) = refused {
                w.addon_fate = Some((status.into(), vec![WEBHOOK_REFUSAL.into()]));
            }
        }
        w.releases.insert((namespace, release), (chart, values));
        Ok(())
    }
    /// The chart's two CRDs (as eks-charts' crds.yaml of chart 1.13.0: IngressClassParams and
    /// TargetGroupBinding), each carrying the chart version, after an empty document.
    async fn show_crds(&self, chart: Chart) -> Result<String, HelmError> {
        self.log(format!("helm show crds {}-{}", chart.chart, chart.version));
        assert_eq!(chart.chart, LOAD_BALANCER_CONTROLLER, "only the controller's chart has CRDs");
        Ok(["ingressclassparams", "targetgroupbindings"]
            .iter()
            .map(|plural| {
                format!(
                    "---\napiVersion: apiextensions.k8s.io/v1\nkind: CustomResourceDefinition\nmetadata:\n  name: {plural}.elbv2.k8s.aws\n  annotations:\n    chart: \"{}\"\nspec:\n  group: elbv2.k8s.aws\n",
                    chart.version
                )
            })
            .collect::<Vec<_>>()
            .join("---\n"))
    }
    async fn uninstall(&self, release: String, namespace: String) -> Result<(), HelmError> {
        self.log(format!("helm uninstall {namespace}/{release}"));
        self.w().releases.remove(&(namespace, release));
        Ok(())
    }
    /// The values the release was given, read back as `helm get values --output yaml` does.
    async fn values(&self, release: String, namespace: String) -> Result<Option<serde_json::Value>, HelmError> {
        let w = self.w();
        let Some((_, values)) = w.releases.get(&(namespace, release)) else { return Ok(None) };
        Ok(Some(serde_norway::from_str(values).unwrap()))
    }
}

#[async_trait]
impl IngressClassApi for Fake {
    async fn ingress_class(&self, name: String) -> Result<Option<IngressClassState>, KubeFailure> {
        assert_eq!(name, INGRESS_CLASS);
        Ok(self.w().ingress_class.clone())
    }
    async fn apply_ingress_class(&self, name: String, controller: String) -> Result<(), KubeFailure> {
        self.log(format!("apply ingressclass {name} {controller}"));
        self.w().ingress_class = Some(IngressClassState { controller, ours: true });
        Ok(())
    }
    async fn apply_crd(&self, name: String, crd: serde_json::Value) -> Result<(), KubeFailure> {
        assert_eq!(crd["kind"], "CustomResourceDefinition");
        assert_eq!(crd["metadata"]["name"], name.as_str());
        self.log(format!("apply crd {name}"));
        let chart = crd["metadata"]["annotations"]["chart"].as_str().unwrap_or_default().to_owned();
        self.w().crds.insert(name, chart);
        Ok(())
    }
    async fn delete_ingress_class(&self, name: String) -> Result<(), KubeFailure> {
        self.log(format!("delete ingressclass {name}"));
        self.w().ingress_class = None;
        Ok(())
    }
}

pub(super) fn ctx() -> Context {
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

pub(super) fn spec() -> PlatformSpec {
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

pub(super) fn cert_spec() -> CertificateSpec {
    CertificateSpec { domain: DomainSpec { name: "dify.example.com".into(), hosted_zone_id: None } }
}

pub(super) fn world(offered: Option<&str>) -> (Fake, PlatformProvisioner, CertificateProvisioner) {
    let fake = Fake::default();
    {
        let mut w = fake.w();
        w.zones.insert("ZPARENT".into(), "example.com".into());
        w.zones.insert("ZOTHER".into(), "other.com".into());
        w.offered = offered.map(str::to_owned);
    }
    let p = PlatformProvisioner::new(fake.clone()).with_kubernetes(fake.clone(), fake.clone());
    (fake.clone(), p, CertificateProvisioner::new(fake))
}
