//! The platform tier's in-memory fake of its client traits: ACM and Route 53 ([`DnsApi`]), the
//! EKS add-on catalogue ([`AddonApi`]), Helm ([`HelmApi`]) and the cluster's IngressClass and
//! CRDs ([`IngressClassApi`]), each answering from one shared [`World`] that behaves like the
//! services: ACM fills in the validation record a moment after the request and issues only once
//! the record is in the zone (or fails on a CAA record that names no Amazon CA), and answers a
//! repeated idempotency token within the hour with the certificate it made; Route 53 keeps
//! records by zone, name and type; EKS settles a creating add-on; Helm keeps releases by
//! namespace and name.
//!
//! Time comes from core's simulation ([`dify_stack_core::sim`]):
//! - [`FakePlatform::instant`] (also [`Default`]): [`Sim::instant`], every call answers at once
//!   and every resource is ready when made; what happens is scripted through the world's knobs
//!   (statuses, describe and read counts, CAA failures, add-on fates). The tier's own tests run
//!   over it.
//! - [`FakePlatform::new`]: a timed [`Sim`], for the simulated-time benchmark (the whole stack
//!   over the tiers' fakes on tokio's paused clock). Reads take one round trip, a control-plane
//!   write one `cheap_object` duration; `helm upgrade --install` (without `--wait`: the tier does
//!   not wait for the rollout) takes one `helm_release` duration; a certificate is
//!   PENDING_VALIDATION until its sampled `acm_validation` duration after the request has passed
//!   (and its record is in the zone); an add-on is CREATING until its sampled `eks_addon`
//!   duration has passed. Neither `helm_release` nor `acm_validation` is in `aws-durations.toml`:
//!   both are assumptions, listed as such in the benchmark's table.
//!
//! A scripted status overrides the timed one: timing only holds back the transitions the fake
//! makes itself (a pending certificate issued, a creating add-on settled).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};

use async_trait::async_trait;
use dify_stack_core::ids::{Arn, ClusterName};
use dify_stack_core::sim::{Sim, ready};
use dify_stack_core::{AwsError, KubeFailure, Tags};
use tokio::time::Instant;

use crate::client::{
    AddonApi, AddonState, Certificate, CertificateRequest, DnsApi, IngressClassApi, IngressClassState, Record,
    RecordAction,
};
use crate::helm::{HelmApi, HelmError, ReleaseInfo, ReleaseInstall};
use crate::spec::{Chart, INGRESS_CLASS, LOAD_BALANCER_CONTROLLER, METRICS_SERVER};

/// ACM's idempotency window: the same token within an hour returns the same certificate (ACM
/// API reference, RequestCertificate `IdempotencyToken`).
pub const TOKEN_WINDOW_MS: i64 = 3_600_000;

/// The value of every certificate's DNS validation record ([`validation_record`]).
pub const VALIDATION_VALUE: &str = "_9c2b.acm-validations.aws.";

/// The health issue of an add-on whose Service the controller's webhook refused (the webhook
/// error as aws-load-balancer-controller #4140 shows it, under EKS's AddonIssue code).
pub const WEBHOOK_REFUSAL: &str = "AdmissionRequestDenied: Internal error occurred: failed calling webhook \"mservice.elbv2.k8s.aws\": no endpoints available for service \"aws-load-balancer-webhook-service\"";

/// The metrics-server add-on version the timed fake offers ([`FakePlatform::new`]).
pub const OFFERED_METRICS_SERVER: &str = "v0.7.2-eksbuild.1";

/// The DNS validation record ACM gives a certificate for `domain`: `_3f1a.<domain>.` CNAME
/// [`VALIDATION_VALUE`].
pub fn validation_record(domain: &str) -> Record {
    Record::simple(&format!("_3f1a.{domain}"), "CNAME", VALIDATION_VALUE)
}

/// An ACM certificate of the fake world.
#[derive(Debug, Clone, Default)]
pub struct FakeCert {
    /// The domain it was requested for (its validation record is [`validation_record`]'s).
    pub domain: String,
    /// `PENDING_VALIDATION`, `ISSUED`, `FAILED`, `VALIDATION_TIMED_OUT`, ...
    pub status: String,
    /// Its tags.
    pub tags: Tags,
    /// DescribeCertificate calls so far (the record shows once there were more than
    /// [`World::record_after_describes`]).
    pub describes: u32,
    /// `CreatedAt`, milliseconds of the world's clock ([`World::now`]).
    pub created: i64,
    /// `FailureReason` of a failed certificate (`CAA_ERROR`, ...).
    pub reason: Option<String>,
    /// `InUseBy`: ACM refuses to delete it while any is listed.
    pub in_use_by: Vec<String>,
    /// When ACM's validation is done (a sampled `acm_validation` duration after the request):
    /// before, a validated certificate stays PENDING_VALIDATION. `None`: at once.
    pub validated_at: Option<Instant>,
}

impl FakeCert {
    /// A certificate for `domain` created at `created`, in `status`, its record already shown.
    pub fn new(domain: &str, status: &str, tags: Tags, created: i64) -> FakeCert {
        FakeCert { domain: domain.into(), status: status.into(), tags, describes: 5, created, ..Default::default() }
    }
}

/// What the fake's services hold, and the knobs that script them. Every field may be read and
/// set by a test.
#[derive(Debug, Default)]
pub struct World {
    /// ACM's certificates, by ARN.
    pub certs: BTreeMap<String, FakeCert>,
    /// Idempotency token -> (the certificate it made, when, on [`World::now`]).
    pub tokens: BTreeMap<String, (String, i64)>,
    /// The world's clock, milliseconds; each RequestCertificate moves it on a second.
    pub now: i64,
    /// A CAA record on the domain that names no Amazon CA: a validated certificate then fails
    /// with `CAA_ERROR` instead of being issued (ACM user guide, "(Optional) Configure a CAA
    /// record": ACM checks for CAA records after it validates the domain).
    pub caa_blocks: bool,
    /// DescribeCertificate calls of a new certificate that show no validation record yet (ACM
    /// fills it in asynchronously, seconds after the request).
    pub record_after_describes: u32,
    /// Route 53's records: (zone, name, kind) -> record.
    pub records: BTreeMap<(String, String, String), Record>,
    /// Public hosted zones: id -> name. A domain is in the longest zone name it ends with (a
    /// zone named `""` holds every domain).
    pub zones: BTreeMap<String, String>,
    /// The metrics-server version DescribeAddonVersions offers (`None`: not offered, the tier
    /// installs its chart).
    pub offered: Option<String>,
    /// EKS add-ons: (cluster, add-on) -> state.
    pub addons: BTreeMap<(String, String), AddonState>,
    /// When each add-on made by the fake is done creating or updating (a sampled `eks_addon`
    /// duration); one absent is at once.
    pub addon_ready: BTreeMap<(String, String), Instant>,
    /// DescribeAddon calls left before a CREATING or UPDATING add-on settles.
    pub addon_pending: u32,
    /// What CreateAddon and UpdateAddon set [`World::addon_pending`] to.
    pub addon_settle_reads: u32,
    /// What the add-on settles to, with its health issues (`None`: ACTIVE, no issue).
    pub addon_fate: Option<(String, Vec<String>)>,
    /// The add-on's health issues (DescribeAddon `health.issues`).
    pub addon_issues: Vec<String>,
    /// The CRDs applied (server-side), by name, with the chart version they came from.
    pub crds: BTreeMap<String, String>,
    /// Helm releases: (namespace, name) -> (chart, values).
    pub releases: BTreeMap<(String, String), (Chart, String)>,
    /// The IngressClass.
    pub ingress_class: Option<IngressClassState>,
    /// Every write, and the DescribeAddon that first saw an add-on settled, in order.
    pub log: Vec<String>,
}

/// The fake; clones share one account and cluster, so a test keeps one to read and script the
/// [`World`].
#[derive(Debug, Clone)]
pub struct FakePlatform {
    sim: Arc<Sim>,
    world: Arc<Mutex<World>>,
}

impl Default for FakePlatform {
    /// [`FakePlatform::instant`].
    fn default() -> FakePlatform {
        FakePlatform::instant()
    }
}

impl FakePlatform {
    /// An empty account and cluster where everything answers at once ([`Sim::instant`]), for
    /// scripted tests: no hosted zone, nothing offered; a new certificate shows its record from
    /// the second DescribeCertificate; a new add-on settles on the second DescribeAddon.
    pub fn instant() -> FakePlatform {
        let world = World { record_after_describes: 1, addon_settle_reads: 2, ..World::default() };
        FakePlatform { sim: Arc::new(Sim::instant()), world: Arc::new(Mutex::new(world)) }
    }

    /// An empty account and cluster timed by `sim`; `zone` is the public hosted zone of the
    /// domain, if any (it holds every domain). EKS offers metrics-server
    /// ([`OFFERED_METRICS_SERVER`]); a certificate shows its record from the first
    /// DescribeCertificate; an add-on settles on the first DescribeAddon after its sampled
    /// duration.
    pub fn new(sim: Arc<Sim>, zone: Option<String>) -> FakePlatform {
        let world = World {
            zones: zone.into_iter().map(|z| (z, String::new())).collect(),
            offered: Some(OFFERED_METRICS_SERVER.to_owned()),
            ..World::default()
        };
        FakePlatform { sim, world: Arc::new(Mutex::new(world)) }
    }

    /// The world, locked: to read what the provisioners made, or to script it.
    pub fn world(&self) -> MutexGuard<'_, World> {
        self.world.lock().unwrap()
    }

    fn log(&self, line: String) {
        self.world().log.push(line);
    }
}

/// DNS: each call charged one read or one write; RequestCertificate samples `acm_validation`.
#[async_trait]
impl DnsApi for FakePlatform {
    /// In ARN order, which is not the order they were requested in (as ListCertificates).
    async fn certificates_for(&self, domain: String) -> Result<Vec<Arn>, AwsError> {
        self.sim.read().await;
        Ok(self.world().certs.iter().filter(|(_, c)| c.domain == domain).map(|(a, _)| Arn::new(a)).collect())
    }
    /// A PENDING_VALIDATION certificate whose record is in a zone is issued (or fails on a CAA
    /// record, [`World::caa_blocks`]) once its validation time has passed.
    async fn describe_certificate(&self, arn: Arn) -> Result<Option<Certificate>, AwsError> {
        self.sim.read().await;
        let mut guard = self.world();
        let w = &mut *guard;
        let Some(c) = w.certs.get_mut(arn.as_str()) else { return Ok(None) };
        let record = validation_record(&c.domain);
        let validated = w.records.iter().any(|((_, n, k), r)| *n == record.name && *k == record.kind && *r == record);
        c.describes += 1;
        if validated && c.status == "PENDING_VALIDATION" && c.validated_at.is_none_or(ready) {
            if w.caa_blocks {
                (c.status, c.reason) = ("FAILED".into(), Some("CAA_ERROR".into()));
            } else {
                c.status = "ISSUED".into();
            }
        }
        // ACM fills in the record after the first reads.
        let validation = if c.describes > w.record_after_describes { vec![record] } else { vec![] };
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
        self.sim.write().await;
        self.log(format!("RequestCertificate {domain} {token}"));
        let mut w = self.world();
        w.now += 1000;
        let now = w.now;
        // Within the hour the token answers with the certificate it made, whatever its status.
        if let Some((arn, at)) = w.tokens.get(&token)
            && now - at < TOKEN_WINDOW_MS
            && w.certs.contains_key(arn)
        {
            return Ok(Arn::new(arn));
        }
        let arn = format!("arn:aws:acm:us-west-2:123456789012:certificate/{}", self.sim.id("cert"));
        let validated_at = Some(self.sim.ready_at("acm_validation"));
        w.tokens.insert(token, (arn.clone(), now));
        let cert = FakeCert { describes: 0, validated_at, ..FakeCert::new(&domain, "PENDING_VALIDATION", tags, now) };
        w.certs.insert(arn.clone(), cert);
        Ok(Arn::new(arn))
    }
    async fn delete_certificate(&self, arn: Arn) -> Result<(), AwsError> {
        self.sim.write().await;
        self.log(format!("DeleteCertificate {arn}"));
        let mut w = self.world();
        if w.certs.get(arn.as_str()).is_some_and(|c| !c.in_use_by.is_empty()) {
            return Err(AwsError::new("DeleteCertificate", "ResourceInUseException", "in use"));
        }
        w.certs.remove(arn.as_str());
        Ok(())
    }
    async fn find_public_zone(&self, domain: String) -> Result<Option<String>, AwsError> {
        self.sim.read().await;
        let w = self.world();
        Ok(w.zones
            .iter()
            .filter(|(_, name)| domain.ends_with(name.as_str()))
            .max_by_key(|(_, n)| n.len())
            .map(|(id, _)| id.clone()))
    }
    async fn get_record(&self, zone: String, name: String, kind: String) -> Result<Option<Record>, AwsError> {
        self.sim.read().await;
        Ok(self.world().records.get(&(zone, name, kind)).cloned())
    }
    /// One write for the batch.
    async fn change_records(&self, zone: String, changes: Vec<(RecordAction, Record)>) -> Result<(), AwsError> {
        self.sim.write().await;
        for (action, r) in changes {
            self.log(format!("{action:?} {} {} {}", r.name, r.kind, r.value));
            let key = (zone.clone(), r.name.clone(), r.kind.clone());
            let mut w = self.world();
            match action {
                RecordAction::Upsert => {
                    w.records.insert(key, r);
                }
                RecordAction::Delete => {
                    // Route 53 refuses a delete that does not match exactly.
                    if w.records.get(&key) != Some(&r) {
                        return Err(AwsError::new("ChangeResourceRecordSets", "InvalidChangeBatch", "not found"));
                    }
                    w.records.remove(&key);
                }
            }
        }
        Ok(())
    }
}

/// The add-on catalogue: each call charged one read or one write; CreateAddon and UpdateAddon
/// sample `eks_addon` (labelled with the add-on).
#[async_trait]
impl AddonApi for FakePlatform {
    async fn offered_version(&self, addon: String, kubernetes_version: String) -> Result<Option<String>, AwsError> {
        self.sim.read().await;
        assert_eq!(addon, METRICS_SERVER);
        assert!(kubernetes_version.starts_with("1."), "{kubernetes_version}");
        Ok(self.world().offered.clone())
    }
    /// A CREATING or UPDATING add-on settles after [`World::addon_pending`] reads and once its
    /// sampled duration has passed, to its fate (ACTIVE unless told otherwise,
    /// [`World::addon_fate`]); the read that first sees it settled is logged.
    async fn addon(&self, cluster: ClusterName, addon: String) -> Result<Option<AddonState>, AwsError> {
        self.sim.read().await;
        let mut guard = self.world();
        let w = &mut *guard;
        let key = (cluster.into_inner(), addon.clone());
        let Some(a) = w.addons.get_mut(&key) else { return Ok(None) };
        if matches!(a.status.as_str(), "CREATING" | "UPDATING") {
            w.addon_pending = w.addon_pending.saturating_sub(1);
            if w.addon_pending == 0 && w.addon_ready.get(&key).is_none_or(|at| ready(*at)) {
                let (status, issues) = w.addon_fate.take().unwrap_or_else(|| ("ACTIVE".into(), vec![]));
                a.status = status;
                w.addon_issues = issues;
                w.log.push(format!("DescribeAddon {addon} {}", a.status));
            }
        }
        Ok(Some(a.clone()))
    }
    /// A Deployment add-on: settled once its sampled duration has passed (the tier waits for it
    /// before the load balancer controller's release).
    async fn create_addon(
        &self,
        cluster: ClusterName,
        addon: String,
        version: String,
        tags: Tags,
    ) -> Result<(), AwsError> {
        self.sim.write().await;
        self.log(format!("CreateAddon {cluster} {addon} {version}"));
        let at = self.sim.ready_at_for("eks_addon", &addon);
        let mut w = self.world();
        w.addon_pending = w.addon_settle_reads;
        let key = (cluster.into_inner(), addon);
        w.addon_ready.insert(key.clone(), at);
        w.addons.insert(key, AddonState { version, status: "CREATING".into(), tags });
        Ok(())
    }
    async fn update_addon(&self, cluster: ClusterName, addon: String, version: String) -> Result<(), AwsError> {
        self.sim.write().await;
        self.log(format!("UpdateAddon {addon} {version} OVERWRITE"));
        let at = self.sim.ready_at_for("eks_addon", &addon);
        let mut w = self.world();
        w.addon_pending = w.addon_settle_reads;
        let key = (cluster.into_inner(), addon);
        w.addon_ready.insert(key.clone(), at);
        let a = w.addons.get_mut(&key).expect("UpdateAddon of an add-on that exists");
        (a.version, a.status) = (version, "UPDATING".into());
        Ok(())
    }
    async fn addon_issues(&self, cluster: ClusterName, addon: String) -> Result<Vec<String>, AwsError> {
        self.sim.read().await;
        let w = self.world();
        Ok(if w.addons.contains_key(&(cluster.into_inner(), addon)) { w.addon_issues.clone() } else { vec![] })
    }
    /// Gone at once.
    async fn delete_addon(&self, cluster: ClusterName, addon: String) -> Result<(), AwsError> {
        self.sim.write().await;
        self.log(format!("DeleteAddon {addon}"));
        let key = (cluster.into_inner(), addon);
        let mut w = self.world();
        w.addons.remove(&key);
        w.addon_ready.remove(&key);
        Ok(())
    }
}

/// Helm: each call charged one read (the cluster's API, not a control-plane object);
/// `upgrade --install` then takes a sampled `helm_release` duration.
#[async_trait]
impl HelmApi for FakePlatform {
    async fn status(&self, release: String, namespace: String) -> Result<Option<ReleaseInfo>, HelmError> {
        self.sim.read().await;
        Ok(self
            .world()
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
        self.sim.read().await;
        let took = self.sim.duration("helm_release");
        if !took.is_zero() {
            tokio::time::sleep(took).await;
        }
        let mut w = self.world();
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
        self.sim.read().await;
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
    /// Gone at once.
    async fn uninstall(&self, release: String, namespace: String) -> Result<(), HelmError> {
        self.sim.read().await;
        self.log(format!("helm uninstall {namespace}/{release}"));
        self.world().releases.remove(&(namespace, release));
        Ok(())
    }
    /// The values the release was given, read back as `helm get values --output yaml` does.
    async fn values(&self, release: String, namespace: String) -> Result<Option<serde_json::Value>, HelmError> {
        self.sim.read().await;
        let w = self.world();
        let Some((_, values)) = w.releases.get(&(namespace, release)) else { return Ok(None) };
        Ok(Some(serde_norway::from_str(values).unwrap()))
    }
}

/// The cluster's IngressClass and CRDs: each call charged one read (the cluster's API, not a
/// control-plane object).
#[async_trait]
impl IngressClassApi for FakePlatform {
    async fn ingress_class(&self, name: String) -> Result<Option<IngressClassState>, KubeFailure> {
        self.sim.read().await;
        assert_eq!(name, INGRESS_CLASS);
        Ok(self.world().ingress_class.clone())
    }
    async fn apply_ingress_class(&self, name: String, controller: String) -> Result<(), KubeFailure> {
        self.sim.read().await;
        self.log(format!("apply ingressclass {name} {controller}"));
        self.world().ingress_class = Some(IngressClassState { controller, ours: true });
        Ok(())
    }
    async fn apply_crd(&self, name: String, crd: serde_json::Value) -> Result<(), KubeFailure> {
        self.sim.read().await;
        assert_eq!(crd["kind"], "CustomResourceDefinition");
        assert_eq!(crd["metadata"]["name"], name.as_str());
        self.log(format!("apply crd {name}"));
        let chart = crd["metadata"]["annotations"]["chart"].as_str().unwrap_or_default().to_owned();
        self.world().crds.insert(name, chart);
        Ok(())
    }
    async fn delete_ingress_class(&self, name: String) -> Result<(), KubeFailure> {
        self.sim.read().await;
        self.log(format!("delete ingressclass {name}"));
        self.world().ingress_class = None;
        Ok(())
    }
}
