//! The platform node: observe, diff, apply and destroy of the add-ons and the IngressClass (the
//! domain's certificate is [`crate::certificate`]'s).

use std::collections::BTreeMap;
use std::sync::Arc;

use async_trait::async_trait;
use dify_stack_core::{Action, Change, Context, Planned, Provisioner, ResourceRef, SpecErrors, Tier};
use serde::Serialize;
use serde_json::json;

use crate::client::{AddonApi, AddonRepair, AddonState, IngressClassApi, IngressClassState};
use crate::helm::{HelmApi, HelmError, ReleaseInfo, ReleaseInstall};
use crate::policy;
mod apply;
mod destroy;
mod diff;
mod observe;
mod waits;

use diff::PlatformChange;
pub use diff::PlatformStep;

pub use crate::error::{PlatformError, Result};
use crate::spec::{
    CLUSTER_AUTOSCALER, Chart, INGRESS_CLASS, INGRESS_CONTROLLER, LOAD_BALANCER_CONTROLLER, METRICS_SERVER,
    PlatformSelector, PlatformSpec, SYSTEM_NAMESPACE,
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
    /// The metrics-server add-on ACTIVE after create or repair, or gone after delete: the EKS
    /// tier's add-on cap.
    pub const ADDON: Duration = Duration::from_secs(10 * 60);
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
    /// Its health issues, read when it is ours and in a failure state (the plan says why it is
    /// repaired).
    pub metrics_issues: Vec<String>,
    /// Each desired release, as installed (only when this machine drives the cluster).
    pub releases: BTreeMap<String, Option<ReleaseInfo>>,
    /// The values each installed release was given, where Helm tells them
    /// ([`HelmApi::values`]).
    pub release_values: BTreeMap<String, serde_json::Value>,
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
        values["image"]["repository"] = json!(repo);
    }
    if let Some(tag) = &chart.image_tag {
        values["image"]["tag"] = json!(tag);
    }
    values
}

/// The leaves of `want` (values at `path`) that `have` lacks or holds with another value, as
/// (dotted path, before, after); leaves of ours only, so what someone else added is not drift.
fn values_drift(
    want: &serde_json::Value,
    have: &serde_json::Value,
    path: &str,
) -> Vec<(String, Option<String>, String)> {
    fn walk(
        path: &str,
        want: &serde_json::Value,
        have: Option<&serde_json::Value>,
        out: &mut Vec<(String, Option<String>, String)>,
    ) {
        match want {
            serde_json::Value::Object(map) if !map.is_empty() => {
                for (k, w) in map {
                    let p = if path.is_empty() { k.clone() } else { format!("{path}.{k}") };
                    walk(&p, w, have.and_then(|h| h.get(k)), out);
                }
            }
            _ if have == Some(want) => {}
            _ => out.push((path.to_owned(), have.map(show_value), show_value(want))),
        }
    }
    fn show_value(v: &serde_json::Value) -> String {
        v.as_str().map_or_else(|| v.to_string(), str::to_owned)
    }
    let mut out = Vec::new();
    if !want.is_null() {
        walk(path, want, (!have.is_null()).then_some(have), &mut out);
    }
    out
}

/// The releases of the spec, with their values. metrics-server is a release only where EKS does
/// not offer it as an add-on.
fn desired_releases(ctx: &Context, spec: &PlatformSpec, metrics_offered: bool) -> Vec<DesiredRelease> {
    let role = |addon: &str| spec.roles.get(addon).cloned().unwrap_or_default();
    let mut out = Vec::new();
    if let Some(chart) = &spec.cluster_autoscaler {
        // The chart's values (kubernetes/autoscaler `charts/cluster-autoscaler/values.yaml`):
        // auto-discovery of the groups tagged for the cluster, within their min and max; the
        // image of the cluster's minor ([`crate::spec::CLUSTER_AUTOSCALER_RELEASES`]: the chart
        // would run its own appVersion), so a Kubernetes upgrade upgrades the release too.
        // Validation refuses a minor the table lacks; the tag is then left to the chart.
        let tag = crate::spec::cluster_autoscaler_release(spec.kubernetes_version).map(|r| r.image_tag);
        let mut values = json!({
            "cloudProvider": "aws",
            "awsRegion": ctx.region(),
            "autoDiscovery": {"clusterName": spec.cluster_name.as_str()},
            "rbac": {"serviceAccount": {
                "create": true,
                "name": CLUSTER_AUTOSCALER,
                "annotations": {"eks.amazonaws.com/role-arn": role(CLUSTER_AUTOSCALER)},
            }},
        });
        if let Some(tag) = tag {
            values["image"]["tag"] = json!(tag);
        }
        out.push(DesiredRelease { name: CLUSTER_AUTOSCALER, chart: chart.clone(), values: with_image(values, chart) });
    }
    if let Some(chart) = spec.metrics_server.as_ref().filter(|_| !metrics_offered) {
        out.push(DesiredRelease { name: METRICS_SERVER, chart: chart.clone(), values: with_image(json!({}), chart) });
    }
    // The load balancer controller last: its webhooks (Service mutator, Ingress validator, both
    // failurePolicy Fail) refuse every new Service until its pods serve, so a chart installed
    // after it fails with "no endpoints available for service aws-load-balancer-webhook-service"
    // (aws-load-balancer-controller #4140, eks-charts #1058). The charts before it make Services.
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
    out
}

/// Provisions the platform tier through an [`AddonApi`] and, when it drives the cluster, a
/// [`HelmApi`] and an [`IngressClassApi`]. Cheap to clone: clones share the clients.
#[derive(Clone)]
pub struct PlatformProvisioner {
    addons: Arc<dyn AddonApi>,
    helm: Option<Arc<dyn HelmApi>>,
    kube: Option<Arc<dyn IngressClassApi>>,
    controller_gate: Option<Arc<dyn ControllerGate>>,
}

/// What the load balancer controller's first step (its CRDs, then its release) also waits for,
/// beside this tier's metrics-server: the controller registers webhooks with failurePolicy Fail
/// that refuse every new Service until its pods serve (aws-load-balancer-controller #4140,
/// eks-charts #1058), so whatever else is still making Services in the cluster (the EKS tier's
/// CoreDNS add-on, `kube-dns`) must be settled first. The stack passes the EKS tier's add-on
/// wait, which it runs beside this tier.
#[async_trait]
pub trait ControllerGate: Send + Sync {
    /// Resolves once it is settled; an error says what failed (the controller is then not
    /// installed).
    async fn settled(&self) -> Result<(), String>;
}

impl std::fmt::Debug for PlatformProvisioner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PlatformProvisioner").field("kubernetes", &self.kube.is_some()).finish_non_exhaustive()
    }
}

impl PlatformProvisioner {
    /// A provisioner over the given EKS add-on client, without Kubernetes access.
    pub fn new(addons: impl AddonApi + 'static) -> Self {
        PlatformProvisioner { addons: Arc::new(addons), helm: None, kube: None, controller_gate: None }
    }

    /// A provisioner over the real AWS APIs, without Kubernetes access.
    pub fn from_conf(config: &aws_types::SdkConfig) -> Self {
        Self::new(crate::sdk::SdkAddons::from_conf(config))
    }

    /// Adds Helm and the Kubernetes API, for the releases and the IngressClass.
    pub fn with_kubernetes(mut self, helm: impl HelmApi + 'static, kube: impl IngressClassApi + 'static) -> Self {
        self.helm = Some(Arc::new(helm));
        self.kube = Some(Arc::new(kube));
        self
    }

    /// The load balancer controller's first step waits for `gate` too (see [`ControllerGate`]).
    pub fn with_controller_gate(mut self, gate: Arc<dyn ControllerGate>) -> Self {
        self.controller_gate = Some(gate);
        self
    }

    fn cluster(&self, spec: &PlatformSpec) -> Result<Option<(&dyn HelmApi, &dyn IngressClassApi)>> {
        self.cluster_if(spec.kubernetes)
    }

    /// Helm and the Kubernetes API when `kubernetes` wants them (an error when they are missing).
    fn cluster_if(&self, kubernetes: bool) -> Result<Option<(&dyn HelmApi, &dyn IngressClassApi)>> {
        match (&self.helm, &self.kube, kubernetes) {
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
    type Selector = PlatformSelector;
    type Change = PlatformStep;

    fn validate(&self, _ctx: &Context, spec: &PlatformSpec) -> Result<(), SpecErrors> {
        spec.validate()
    }

    async fn observe(&self, ctx: &Context, spec: &PlatformSpec) -> Result<ObservedPlatform> {
        self.observe_tier(ctx, spec).await
    }

    fn changes(&self, ctx: &Context, spec: &PlatformSpec, o: &ObservedPlatform) -> Vec<PlatformStep> {
        self.platform_changes(ctx, spec, o).into_iter().map(PlatformStep).collect()
    }

    /// The changes in order; a metrics-server add-on created or repaired here, or found
    /// creating or updating, is awaited before the load balancer controller's first step, else
    /// before it returns. Role-only access: the commands instead of the releases.
    async fn execute(
        &self,
        ctx: &Context,
        spec: &PlatformSpec,
        o: ObservedPlatform,
        changes: Vec<PlatformStep>,
    ) -> Result<PlatformOutput> {
        self.execute_tier(ctx, spec, o, changes.into_iter().map(|c| c.0).collect()).await
    }

    /// The releases (autoscaler and metrics first, the load balancer controller last: it deletes
    /// the load balancers of Ingresses that go before it), the IngressClass when ours, the
    /// metrics-server add-on when ours.
    fn selector(&self, _ctx: &Context, spec: &PlatformSpec) -> PlatformSelector {
        PlatformSelector::of(spec)
    }

    async fn destroy_selected(&self, ctx: &Context, selector: &PlatformSelector) -> Result<Vec<ResourceRef>> {
        self.destroy_tier(ctx, selector).await
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
