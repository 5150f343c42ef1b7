//! The platform node: observe, diff, apply and destroy of the add-ons and the IngressClass (the
//! domain's certificate is [`crate::certificate`]'s).

use std::collections::BTreeMap;

use async_trait::async_trait;
use dify_stack_core::{
    Action, AwsAt, AwsFailure, Change, Classify, Context, ErrorKind, KubeFailure, NotOwned, Plan, Provisioner,
    ResourceRef, SpecErrors, Tier, WaitEnded,
};
use serde::Serialize;
use serde_json::json;

use crate::client::{AddonApi, AddonState, IngressClassApi, IngressClassState};
use crate::helm::{HelmApi, HelmError, ReleaseInfo};
use crate::policy;
use crate::spec::{
    CLUSTER_AUTOSCALER, Chart, INGRESS_CLASS, INGRESS_CONTROLLER, LOAD_BALANCER_CONTROLLER, METRICS_SERVER,
    PlatformSpec, SYSTEM_NAMESPACE,
};

/// Wait caps of the tier.
pub mod caps {
    use std::time::Duration;

    /// ACM fills in the validation records of a new certificate within seconds (RequestCertificate
    /// API reference: DescribeCertificate may not return them at once).
    pub const VALIDATION_RECORDS: Duration = Duration::from_secs(120);
    /// DNS validation: "can take up to 30 minutes" after the record is in place (ACM user guide,
    /// "DNS validation"); 45 min before giving up.
    pub const CERTIFICATE_ISSUED: Duration = Duration::from_secs(45 * 60);
}

/// Everything that can go wrong in the platform tier.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PlatformError {
    /// The spec is invalid. Permanent.
    #[error("invalid platform spec:\n{0}")]
    Invalid(#[from] SpecErrors),
    /// An AWS call failed. Retryable when the AWS error is.
    #[error(transparent)]
    Aws(#[from] AwsFailure),
    /// A Helm release could not be installed, read or removed.
    #[error("Helm release {release}: {source}")]
    Helm {
        /// `<namespace>/<release>`.
        release: String,
        /// What Helm said.
        #[source]
        source: HelmError,
    },
    /// A Kubernetes call failed.
    #[error("Kubernetes: {0}")]
    Kubernetes(#[from] KubeFailure),
    /// Something with our name exists without our ownership tag or label. Never adopted.
    #[error(transparent)]
    NotOwned(#[from] NotOwned),
    /// No public hosted zone holds the domain.
    #[error(
        "no public Route 53 hosted zone holds {domain}: create one (and delegate the domain to it), or set dify.hosted_zone_id"
    )]
    NoHostedZone {
        /// The domain.
        domain: String,
    },
    /// The certificate can no longer be issued.
    #[error("the ACM certificate {arn} is {status}: delete it and apply again")]
    CertificateFailed {
        /// The certificate.
        arn: String,
        /// Its status.
        status: String,
    },
    /// A wait ended without success (timeout or cancellation); names what is pending.
    #[error(transparent)]
    Wait(#[from] WaitEnded),
    /// The spec asks for Helm releases but no Helm or Kubernetes client was given.
    #[error(
        "kubernetes is true but the provisioner has no Helm or Kubernetes client: build it with PlatformProvisioner::with_kubernetes, or set kubernetes = false"
    )]
    NoKubernetesClient,
}

/// Result alias of the platform tier.
pub type Result<T, E = PlatformError> = std::result::Result<T, E>;

impl Classify for PlatformError {
    fn kind(&self) -> ErrorKind {
        match self {
            PlatformError::Invalid(_) | PlatformError::NoKubernetesClient | PlatformError::NoHostedZone { .. } => {
                ErrorKind::Invalid
            }
            PlatformError::Aws(e) => e.kind(),
            // Helm and the Kubernetes API failing are usually a cluster still settling (nodes not
            // ready, webhook not serving yet): a later run may succeed.
            PlatformError::Helm { .. } | PlatformError::Kubernetes(_) => ErrorKind::Transient,
            PlatformError::NotOwned(e) => e.kind(),
            PlatformError::CertificateFailed { .. } => ErrorKind::Failed,
            PlatformError::Wait(e) => e.kind(),
        }
    }
}

fn helm_err(release: &str) -> impl FnOnce(HelmError) -> PlatformError + '_ {
    move |source| PlatformError::Helm { release: crate::names::release(release), source }
}

/// What exists.
#[derive(Debug, Clone, Default)]
pub struct ObservedPlatform {
    /// The metrics-server add-on version EKS offers for the cluster version.
    pub metrics_offered: Option<String>,
    /// The metrics-server add-on on the cluster.
    pub metrics_addon: Option<AddonState>,
    /// Each desired release, as installed (only when this machine drives the cluster).
    pub releases: BTreeMap<String, Option<ReleaseInfo>>,
    /// The IngressClass (only when this machine drives the cluster).
    pub ingress_class: Option<IngressClassState>,
}

/// What the platform tier hands on.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct PlatformOutput {
    /// The releases installed, `<namespace>/<release> <chart>-<version>`.
    pub releases: Vec<String>,
    /// How metrics-server runs: `eks-addon <version>` or `helm <chart>-<version>`.
    pub metrics_server: Option<String>,
    /// The IngressClass for the Dify EE Ingress.
    pub ingress_class: Option<String>,
    /// Role-only access: the commands that install the releases from a machine that reaches the
    /// cluster (no secret in them), run where `<release>-values.yaml` of [`Self::release_values`]
    /// are written.
    pub commands: Vec<String>,
    /// Role-only access: each release's values (YAML; role ARNs and names, no secret).
    pub release_values: BTreeMap<String, String>,
}

/// A release the spec wants.
#[derive(Debug, Clone)]
struct DesiredRelease {
    name: &'static str,
    chart: Chart,
    values: serde_json::Value,
}

impl DesiredRelease {
    fn chart_id(&self) -> String {
        format!("{}-{}", self.chart.chart, self.chart.version)
    }
}

fn with_image(mut values: serde_json::Value, chart: &Chart) -> serde_json::Value {
    if let Some(repo) = &chart.image_repository {
        values["image"] = json!({"repository": repo});
    }
    values
}

/// The releases of the spec, with their values. metrics-server is a release only where EKS does
/// not offer it as an add-on.
fn desired_releases(ctx: &Context, spec: &PlatformSpec, metrics_offered: bool) -> Vec<DesiredRelease> {
    let role = |addon: &str| spec.roles.get(addon).cloned().unwrap_or_default();
    let mut out = Vec::new();
    if let Some(chart) = &spec.load_balancer_controller {
        // The chart's values (eks-charts `aws-load-balancer-controller/values.yaml`): the
        // IngressClass is ours (server-side applied), so the chart does not make one.
        let values = json!({
            "clusterName": spec.cluster_name.as_str(),
            "region": ctx.region(),
            "vpcId": spec.vpc_id.as_str(),
            "createIngressClassResource": false,
            "serviceAccount": {
                "create": true,
                "name": LOAD_BALANCER_CONTROLLER,
                "annotations": {"eks.amazonaws.com/role-arn": role(LOAD_BALANCER_CONTROLLER)},
            },
        });
        out.push(DesiredRelease {
            name: LOAD_BALANCER_CONTROLLER,
            chart: chart.clone(),
            values: with_image(values, chart),
        });
    }
    if let Some(chart) = &spec.cluster_autoscaler {
        // The chart's values (kubernetes/autoscaler `charts/cluster-autoscaler/values.yaml`):
        // auto-discovery of the groups tagged for the cluster, within their min and max.
        let values = json!({
            "cloudProvider": "aws",
            "awsRegion": ctx.region(),
            "autoDiscovery": {"clusterName": spec.cluster_name.as_str()},
            "rbac": {"serviceAccount": {
                "create": true,
                "name": CLUSTER_AUTOSCALER,
                "annotations": {"eks.amazonaws.com/role-arn": role(CLUSTER_AUTOSCALER)},
            }},
        });
        out.push(DesiredRelease { name: CLUSTER_AUTOSCALER, chart: chart.clone(), values: with_image(values, chart) });
    }
    if let Some(chart) = spec.metrics_server.as_ref().filter(|_| !metrics_offered) {
        out.push(DesiredRelease { name: METRICS_SERVER, chart: chart.clone(), values: with_image(json!({}), chart) });
    }
    out
}

/// Provisions the platform tier.
pub struct PlatformProvisioner {
    addons: Box<dyn AddonApi>,
    helm: Option<Box<dyn HelmApi>>,
    kube: Option<Box<dyn IngressClassApi>>,
}

impl std::fmt::Debug for PlatformProvisioner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PlatformProvisioner").field("kubernetes", &self.kube.is_some()).finish_non_exhaustive()
    }
}

impl PlatformProvisioner {
    /// A provisioner over the given EKS add-on client, without Kubernetes access.
    pub fn new(addons: impl AddonApi + 'static) -> Self {
        PlatformProvisioner { addons: Box::new(addons), helm: None, kube: None }
    }

    /// A provisioner over the real AWS APIs, without Kubernetes access.
    pub fn from_conf(config: &aws_types::SdkConfig) -> Self {
        Self::new(crate::sdk::SdkAddons::from_conf(config))
    }

    /// Adds Helm and the Kubernetes API, for the releases and the IngressClass.
    pub fn with_kubernetes(mut self, helm: impl HelmApi + 'static, kube: impl IngressClassApi + 'static) -> Self {
        self.helm = Some(Box::new(helm));
        self.kube = Some(Box::new(kube));
        self
    }

    fn cluster(&self, spec: &PlatformSpec) -> Result<Option<(&dyn HelmApi, &dyn IngressClassApi)>> {
        match (&self.helm, &self.kube, spec.kubernetes) {
            (_, _, false) => Ok(None),
            (Some(h), Some(k), true) => Ok(Some((h.as_ref(), k.as_ref()))),
            _ => Err(PlatformError::NoKubernetesClient),
        }
    }
}

#[async_trait]
impl Provisioner for PlatformProvisioner {
    type Spec = PlatformSpec;
    type Observed = ObservedPlatform;
    type Output = PlatformOutput;
    type Error = PlatformError;

    fn validate(&self, _ctx: &Context, spec: &PlatformSpec) -> Result<(), SpecErrors> {
        spec.validate()
    }

    async fn observe(&self, ctx: &Context, spec: &PlatformSpec) -> Result<ObservedPlatform> {
        let mut o = ObservedPlatform::default();
        if spec.metrics_server.is_some() {
            let (cluster, version) = (spec.cluster_name.to_string(), spec.kubernetes_version.clone());
            o.metrics_offered = self
                .addons
                .offered_version(METRICS_SERVER.into(), version)
                .await
                .at("DescribeAddonVersions", METRICS_SERVER)?;
            o.metrics_addon =
                self.addons.addon(cluster, METRICS_SERVER.into()).await.at("DescribeAddon", METRICS_SERVER)?;
        }
        if let Some((helm, kube)) = self.cluster(spec)? {
            for r in desired_releases(ctx, spec, o.metrics_offered.is_some()) {
                let status = helm.status(r.name.into(), SYSTEM_NAMESPACE.into()).await.map_err(helm_err(r.name))?;
                o.releases.insert(r.name.to_owned(), status);
            }
            if spec.load_balancer_controller.is_some() {
                o.ingress_class = kube.ingress_class(INGRESS_CLASS.into()).await?;
            }
        }
        Ok(o)
    }

    fn diff(&self, ctx: &Context, spec: &PlatformSpec, o: &ObservedPlatform) -> Plan {
        let mut plan = Plan::new();
        if spec.metrics_server.is_some()
            && let Some(version) = &o.metrics_offered
            && o.metrics_addon.is_none()
        {
            plan.push(Change::new(Action::Create, ResourceRef::new("eks:addon", METRICS_SERVER)).field(
                "version",
                None::<&str>,
                Some(version),
            ));
        }
        if spec.kubernetes {
            for r in desired_releases(ctx, spec, o.metrics_offered.is_some()) {
                let id = ResourceRef::new("helm:release", crate::names::release(r.name));
                match o.releases.get(r.name).cloned().flatten() {
                    None => plan.push(Change::new(Action::Create, id).field("chart", None::<&str>, Some(r.chart_id()))),
                    Some(have) if have.chart != r.chart_id() => {
                        plan.push(Change::new(Action::Update, id).field("chart", Some(&have.chart), Some(r.chart_id())))
                    }
                    Some(have) if have.status != "deployed" => {
                        plan.push(Change::new(Action::Update, id).field("status", Some(&have.status), Some("deployed")))
                    }
                    Some(_) => {}
                }
            }
            if spec.load_balancer_controller.is_some()
                && o.ingress_class.as_ref().map(|c| c.controller.as_str()) != Some(INGRESS_CONTROLLER)
            {
                let action = if o.ingress_class.is_some() { Action::Update } else { Action::Create };
                plan.push(Change::new(action, ResourceRef::new("k8s:ingressclass", INGRESS_CLASS)).field(
                    "controller",
                    o.ingress_class.as_ref().map(|c| c.controller.as_str()),
                    Some(INGRESS_CONTROLLER),
                ));
            }
        }
        plan
    }

    async fn apply(&self, ctx: &Context, spec: &PlatformSpec) -> Result<PlatformOutput> {
        spec.validate()?;
        let cluster = self.cluster(spec)?;
        let o = self.observe(ctx, spec).await?;
        let mut out = PlatformOutput::default();

        // 1. metrics-server: the EKS add-on where offered.
        if spec.metrics_server.is_some() {
            if let Some(version) = &o.metrics_offered {
                match &o.metrics_addon {
                    Some(a) if !ctx.owns_tags(&a.tags) => {
                        // Installed by someone else: used, never touched.
                        out.metrics_server = Some(format!("eks-addon {} (not ours)", a.version));
                    }
                    Some(a) => out.metrics_server = Some(format!("eks-addon {}", a.version)),
                    None => {
                        let tags = ctx.tags_for(Tier::Platform, "addon", METRICS_SERVER);
                        let cluster_name = spec.cluster_name.to_string();
                        let created = self
                            .addons
                            .create_addon(cluster_name.clone(), METRICS_SERVER.into(), version.clone(), tags)
                            .await;
                        if let Err(e) = created {
                            // A retried create whose first response was lost: ours now, fine.
                            let now = self
                                .addons
                                .addon(cluster_name, METRICS_SERVER.into())
                                .await
                                .at("DescribeAddon", METRICS_SERVER)?;
                            if !now.is_some_and(|a| ctx.owns_tags(&a.tags)) {
                                return Err(e.at("CreateAddon", METRICS_SERVER).into());
                            }
                        }
                        out.metrics_server = Some(format!("eks-addon {version}"));
                    }
                }
            } else if let Some(chart) = &spec.metrics_server {
                out.metrics_server = Some(format!("helm {}-{}", chart.chart, chart.version));
            }
        }

        // 2. The releases and the IngressClass, or the commands for them.
        let releases = desired_releases(ctx, spec, o.metrics_offered.is_some());
        match cluster {
            Some((helm, kube)) => {
                for r in &releases {
                    let current = o.releases.get(r.name).cloned().flatten();
                    if current.as_ref().is_none_or(|c| c.chart != r.chart_id() || c.status != "deployed") {
                        let values = serde_norway::to_string(&r.values).unwrap_or_default();
                        helm.upgrade_install(r.name.into(), SYSTEM_NAMESPACE.into(), r.chart.clone(), values)
                            .await
                            .map_err(helm_err(r.name))?;
                        tracing::info!(release = r.name, chart = %r.chart_id(), "installed Helm release");
                    }
                    out.releases.push(format!("{} {}", crate::names::release(r.name), r.chart_id()));
                    if r.name == LOAD_BALANCER_CONTROLLER {
                        if o.ingress_class.as_ref().map(|c| c.controller.as_str()) != Some(INGRESS_CONTROLLER) {
                            kube.apply_ingress_class(INGRESS_CLASS.into(), INGRESS_CONTROLLER.into()).await?;
                        }
                        out.ingress_class = Some(INGRESS_CLASS.to_owned());
                    }
                }
            }
            None => {
                for r in &releases {
                    out.release_values
                        .insert(r.name.to_owned(), serde_norway::to_string(&r.values).unwrap_or_default());
                    out.commands.push(format!(
                        "helm upgrade --install {} {} --repo {} --version {} --namespace {SYSTEM_NAMESPACE} --values {}-values.yaml",
                        r.name, r.chart.chart, r.chart.repository, r.chart.version, r.name
                    ));
                }
                if spec.load_balancer_controller.is_some() {
                    out.commands.push(format!(
                        "kubectl apply --server-side --field-manager dify-stack -f - <<'EOF'\n{}EOF",
                        serde_norway::to_string(&crate::kube::ingress_class_manifest(
                            INGRESS_CLASS,
                            INGRESS_CONTROLLER
                        ))
                        .unwrap_or_default()
                    ));
                }
            }
        }

        Ok(out)
    }

    /// The releases (autoscaler and metrics first, the load balancer controller last: it deletes
    /// the load balancers of Ingresses that go before it), the IngressClass when ours, the
    /// metrics-server add-on when ours.
    async fn destroy(&self, ctx: &Context, spec: &PlatformSpec) -> Result<Vec<ResourceRef>> {
        let mut deleted = Vec::new();
        if let Some((helm, kube)) = self.cluster(spec)? {
            let mut releases = desired_releases(ctx, spec, false);
            releases.sort_by_key(|r| r.name == LOAD_BALANCER_CONTROLLER);
            for r in releases {
                if helm.status(r.name.into(), SYSTEM_NAMESPACE.into()).await.map_err(helm_err(r.name))?.is_some() {
                    helm.uninstall(r.name.into(), SYSTEM_NAMESPACE.into()).await.map_err(helm_err(r.name))?;
                    deleted.push(ResourceRef::new("helm:release", crate::names::release(r.name)));
                }
            }
            if let Some(class) = kube.ingress_class(INGRESS_CLASS.into()).await?
                && class.ours
            {
                kube.delete_ingress_class(INGRESS_CLASS.into()).await?;
                deleted.push(ResourceRef::new("k8s:ingressclass", INGRESS_CLASS));
            }
        }
        if spec.metrics_server.is_some() {
            let cluster = spec.cluster_name.to_string();
            if let Some(a) =
                self.addons.addon(cluster.clone(), METRICS_SERVER.into()).await.at("DescribeAddon", METRICS_SERVER)?
                && ctx.owns_tags(&a.tags)
            {
                self.addons.delete_addon(cluster, METRICS_SERVER.into()).await.at("DeleteAddon", METRICS_SERVER)?;
                deleted.push(ResourceRef::new("eks:addon", METRICS_SERVER));
            }
        }
        Ok(deleted)
    }
}

/// An IRSA role an add-on needs from the IAM tier.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AddonRoleRequest {
    /// The add-on (the role is `<cluster>-<addon>`).
    pub addon: &'static str,
    /// Namespace of its service account.
    pub namespace: &'static str,
    /// Its service account (the chart's, named in the release values).
    pub service_account: &'static str,
    /// The permission policy.
    pub policy: serde_json::Value,
}

/// The IRSA roles of the enabled add-ons of `cluster`, for the IAM tier (`IamSpec::addon_roles`).
pub fn addon_role_requests(
    ctx: &Context,
    cluster: &str,
    load_balancer_controller: bool,
    cluster_autoscaler: bool,
) -> Vec<AddonRoleRequest> {
    let mut out = Vec::new();
    if load_balancer_controller {
        out.push(AddonRoleRequest {
            addon: LOAD_BALANCER_CONTROLLER,
            namespace: SYSTEM_NAMESPACE,
            service_account: LOAD_BALANCER_CONTROLLER,
            policy: policy::load_balancer_controller_policy(ctx.partition()),
        });
    }
    if cluster_autoscaler {
        out.push(AddonRoleRequest {
            addon: CLUSTER_AUTOSCALER,
            namespace: SYSTEM_NAMESPACE,
            service_account: CLUSTER_AUTOSCALER,
            policy: policy::cluster_autoscaler_policy(cluster),
        });
    }
    out
}
