//! What the platform tier provisions: each part optional, pinned, and overridable for China.

use std::collections::BTreeMap;

use dify_stack_core::SpecErrors;
use dify_stack_core::ids::{ClusterName, KubernetesVersion, VpcId};
use serde::{Deserialize, Serialize};

/// The AWS Load Balancer Controller's add-on name (its role is `<cluster>-<this>`).
pub const LOAD_BALANCER_CONTROLLER: &str = "aws-load-balancer-controller";
/// The cluster autoscaler's add-on name.
pub const CLUSTER_AUTOSCALER: &str = "cluster-autoscaler";
/// metrics-server (the EKS community add-on where offered, else the Helm chart).
pub const METRICS_SERVER: &str = "metrics-server";
/// Where the add-ons run.
pub const SYSTEM_NAMESPACE: &str = "kube-system";
/// The IngressClass the Dify EE values name (`ingress.className`).
pub const INGRESS_CLASS: &str = "alb";
/// The controller behind [`INGRESS_CLASS`] (AWS Load Balancer Controller docs, "IngressClass").
pub const INGRESS_CONTROLLER: &str = "ingress.k8s.aws/alb";

/// A pinned Helm chart, with the image repository to use instead of the chart's (China regions
/// cannot pull from the public registries).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Chart {
    /// Chart repository URL.
    pub repository: String,
    /// Chart name.
    pub chart: String,
    /// Pinned chart version.
    pub version: String,
    /// Image repository override (`image.repository`), e.g. an ECR mirror.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_repository: Option<String>,
    /// Image tag override (`image.tag`), for a mirror that does not carry the chart's tag
    /// (the autoscaler's tag otherwise follows the cluster's minor).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_tag: Option<String>,
}

impl Chart {
    /// The chart `chart` version `version` from `repository`.
    pub fn new(repository: &str, chart: &str, version: &str) -> Chart {
        Chart {
            repository: repository.into(),
            chart: chart.into(),
            version: version.into(),
            image_repository: None,
            image_tag: None,
        }
    }

    /// The AWS Load Balancer Controller chart from the EKS charts repository. Chart 1.13.0 ships
    /// controller v2.13.0 (not verified from this machine: no access to the repository).
    pub fn load_balancer_controller() -> Chart {
        Chart::new("https://aws.github.io/eks-charts", LOAD_BALANCER_CONTROLLER, "1.13.0")
    }

    /// The cluster-autoscaler chart of the Kubernetes autoscaler project. Its image tag is set
    /// per cluster minor from [`CLUSTER_AUTOSCALER_RELEASES`] whatever the chart version;
    /// [`Chart::cluster_autoscaler_for`] also picks the chart made for the minor.
    pub fn cluster_autoscaler() -> Chart {
        Chart::new("https://kubernetes.github.io/autoscaler", CLUSTER_AUTOSCALER, "9.46.6")
    }

    /// The cluster-autoscaler chart made for the cluster's Kubernetes minor (its `appVersion` is
    /// that minor: [`CLUSTER_AUTOSCALER_RELEASES`]); [`Chart::cluster_autoscaler`] for a minor
    /// not in the table.
    pub fn cluster_autoscaler_for(kubernetes_version: KubernetesVersion) -> Chart {
        match cluster_autoscaler_release(kubernetes_version) {
            Some(r) => Chart { version: r.chart.to_owned(), ..Chart::cluster_autoscaler() },
            None => Chart::cluster_autoscaler(),
        }
    }

    /// The metrics-server chart (used where EKS does not offer the add-on).
    pub fn metrics_server() -> Chart {
        Chart::new("https://kubernetes-sigs.github.io/metrics-server/", METRICS_SERVER, "3.12.2")
    }

    /// Whether the chart is in an OCI registry (`oci://...`) rather than a chart repository.
    pub fn is_oci(&self) -> bool {
        self.repository.starts_with("oci://")
    }

    /// How Helm is told where the chart is, always with its pinned `--version`:
    ///
    /// - a chart repository (`https://`): `<chart> --repo <url> --version <v>`;
    /// - an OCI registry (`oci://`): `oci://<registry>/<path>/<chart> --version <v>`, without
    ///   `--repo`. Helm has no chart-repository mode for OCI: `--repo oci://...` (and `helm repo
    ///   add oci://...`) fail with "... is not a valid chart repository or cannot be reached"
    ///   (Helm docs, "Use OCI-based registries": charts are installed as
    ///   `helm install <release> oci://<registry>/<path>/<chart> --version <v>`; helm/helm #10565,
    ///   argo-cd #10823, cluster-api-addon-provider-helm #75).
    pub fn helm_source(&self) -> Vec<String> {
        let mut args = if self.is_oci() {
            vec![format!("{}/{}", self.repository.trim_end_matches('/'), self.chart)]
        } else {
            vec![self.chart.clone(), "--repo".to_owned(), self.repository.clone()]
        };
        args.extend(["--version".to_owned(), self.version.clone()]);
        args
    }
}

/// One row of [`CLUSTER_AUTOSCALER_RELEASES`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AutoscalerRelease {
    /// The cluster's Kubernetes minor, `1.33`.
    pub kubernetes: KubernetesVersion,
    /// The newest cluster-autoscaler chart whose `appVersion` is that minor.
    pub chart: &'static str,
    /// The chart's `appVersion` (its default `image.tag`).
    pub chart_app_version: &'static str,
    /// The newest cluster-autoscaler release of that minor: the image tag the release runs
    /// (`registry.k8s.io/autoscaling/cluster-autoscaler:<tag>`, or the mirror's).
    pub image_tag: &'static str,
}

/// The cluster autoscaler per Kubernetes minor. Its README ("Releases") recommends running the
/// autoscaler "with the Kubernetes control plane version for which it was meant" and "the
/// _latest_ Cluster Autoscaler release that corresponds to the minor version of Kubernetes that
/// their cluster is running"; the chart's default image is its `appVersion`, so chart 9.46.6
/// alone runs v1.32.0 against any cluster.
///
/// Sources, all in kubernetes/autoscaler as of its master of 2026-08-22:
/// - `chart`, `chart_app_version`: `charts/cluster-autoscaler/Chart.yaml` (moved to
///   `cluster-autoscaler/charts/cluster-autoscaler/Chart.yaml` from 9.52.0) at the chart
///   release tags `cluster-autoscaler-chart-<version>`; the newest chart of each `appVersion`
///   minor. (The README's table names chart "9.51.0+" for 1.34, but 9.51.0's Chart.yaml says
///   `appVersion: 1.33.0`; 9.52.0 is the first with 1.34.)
/// - `image_tag`: the newest release tag `cluster-autoscaler-<x.y.z>` of the minor (annotated
///   "Cluster Autoscaler release x.y.z", `cluster-autoscaler/version/version.go` at it says the
///   same). Not verified from here: that registry.k8s.io serves each tag (no registry access).
/// - The chart's deployment runs `{{ .Values.image.repository }}:{{ .Values.image.tag }}`
///   (`templates/deployment.yaml`), so the `image.tag` value selects the image.
///
/// 1.36 is left out: release 1.36.1 is tagged but no chart with a 1.36 `appVersion` was
/// released then (the newest, 9.59.0, has 1.35.0).
pub const CLUSTER_AUTOSCALER_RELEASES: [AutoscalerRelease; 8] = [
    AutoscalerRelease {
        kubernetes: KubernetesVersion::new(1, 28),
        chart: "9.34.1",
        chart_app_version: "1.28.2",
        image_tag: "v1.28.7",
    },
    AutoscalerRelease {
        kubernetes: KubernetesVersion::new(1, 29),
        chart: "9.36.0",
        chart_app_version: "1.29.0",
        image_tag: "v1.29.5",
    },
    AutoscalerRelease {
        kubernetes: KubernetesVersion::new(1, 30),
        chart: "9.37.0",
        chart_app_version: "1.30.0",
        image_tag: "v1.30.7",
    },
    AutoscalerRelease {
        kubernetes: KubernetesVersion::new(1, 31),
        chart: "9.44.0",
        chart_app_version: "1.31.0",
        image_tag: "v1.31.5",
    },
    AutoscalerRelease {
        kubernetes: KubernetesVersion::new(1, 32),
        chart: "9.46.6",
        chart_app_version: "1.32.0",
        image_tag: "v1.32.7",
    },
    AutoscalerRelease {
        kubernetes: KubernetesVersion::new(1, 33),
        chart: "9.51.0",
        chart_app_version: "1.33.0",
        image_tag: "v1.33.6",
    },
    AutoscalerRelease {
        kubernetes: KubernetesVersion::new(1, 34),
        chart: "9.53.0",
        chart_app_version: "1.34.2",
        image_tag: "v1.34.5",
    },
    AutoscalerRelease {
        kubernetes: KubernetesVersion::new(1, 35),
        chart: "9.59.0",
        chart_app_version: "1.35.0",
        image_tag: "v1.35.2",
    },
];

/// The cluster autoscaler made for the cluster's Kubernetes minor, if the table has it.
pub fn cluster_autoscaler_release(kubernetes_version: KubernetesVersion) -> Option<&'static AutoscalerRelease> {
    CLUSTER_AUTOSCALER_RELEASES.iter().find(|r| r.kubernetes == kubernetes_version)
}

/// The domain Dify EE is served under, and its Route 53 hosted zone.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DomainSpec {
    /// The domain (`dify.example.com`): the certificate covers it and `*.<domain>`.
    pub name: String,
    /// The public hosted zone that holds the domain; looked up by name (the domain, then its
    /// parents) when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hosted_zone_id: Option<String>,
}

/// What finds the platform tier for a destroy: the cluster, which add-ons the stack installs,
/// and whether this machine reaches the cluster's API.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlatformSelector {
    /// The EKS cluster (where the metrics-server add-on is looked up).
    pub cluster_name: ClusterName,
    /// Whether the Helm releases and the IngressClass are uninstalled here (needs the
    /// Kubernetes access, `PlatformProvisioner::with_kubernetes`). `false` (role-only access,
    /// or an API that does not answer): they go with the cluster.
    pub kubernetes: bool,
    /// The AWS Load Balancer Controller release (uninstalled last: it deletes the load
    /// balancers of Ingresses that go before it).
    pub load_balancer_controller: bool,
    /// The cluster autoscaler release.
    pub cluster_autoscaler: bool,
    /// metrics-server: the release, and the EKS add-on when ours.
    pub metrics_server: bool,
}

impl PlatformSelector {
    /// The selector of `spec`.
    pub fn of(spec: &PlatformSpec) -> Self {
        PlatformSelector {
            cluster_name: spec.cluster_name.clone(),
            kubernetes: spec.kubernetes,
            load_balancer_controller: spec.load_balancer_controller.is_some(),
            cluster_autoscaler: spec.cluster_autoscaler.is_some(),
            metrics_server: spec.metrics_server.is_some(),
        }
    }

    /// The releases destroy uninstalls (when installed), in order: the autoscaler, metrics-server,
    /// then the load balancer controller.
    pub fn releases(&self) -> Vec<&'static str> {
        [
            (self.cluster_autoscaler, CLUSTER_AUTOSCALER),
            (self.metrics_server, METRICS_SERVER),
            (self.load_balancer_controller, LOAD_BALANCER_CONTROLLER),
        ]
        .into_iter()
        .filter_map(|(on, name)| on.then_some(name))
        .collect()
    }
}

/// Desired platform tier.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PlatformSpec {
    /// The EKS cluster.
    pub cluster_name: ClusterName,
    /// Its Kubernetes version (for the add-on catalogue and the autoscaler's release).
    pub kubernetes_version: KubernetesVersion,
    /// Its VPC (the controller's `vpcId`).
    pub vpc_id: VpcId,
    /// Whether this machine installs the Helm releases and Kubernetes objects. `false` (role-only
    /// access): they are returned as commands in the output instead.
    pub kubernetes: bool,
    /// The AWS Load Balancer Controller (turns the chart's Ingress into an ALB). On by default.
    pub load_balancer_controller: Option<Chart>,
    /// The cluster autoscaler (scales the node group within its min and max). On by default.
    pub cluster_autoscaler: Option<Chart>,
    /// metrics-server: the EKS add-on where offered for the cluster version, else this chart.
    /// On by default.
    pub metrics_server: Option<Chart>,
    /// IRSA role ARNs of the add-ons (from the IAM tier), by add-on name.
    pub roles: BTreeMap<String, String>,
}

impl PlatformSpec {
    /// Checks the spec without I/O; every violation at once.
    pub fn validate(&self) -> Result<(), SpecErrors> {
        let mut errors = SpecErrors::new();
        for (field, chart) in [
            ("load_balancer_controller", &self.load_balancer_controller),
            ("cluster_autoscaler", &self.cluster_autoscaler),
            ("metrics_server", &self.metrics_server),
        ] {
            let Some(chart) = chart else { continue };
            let host = chart.repository.strip_prefix("https://").or_else(|| chart.repository.strip_prefix("oci://"));
            if host.is_none_or(|h| h.trim_matches('/').is_empty()) {
                errors.push(
                    format!("{field}.repository"),
                    format!("{:?} is not an https:// or oci:// URL", chart.repository),
                    "give the chart repository (or a mirror) URL, or the OCI registry path that holds the chart",
                );
            }
            // Always pinned: Helm installs the newest version without `--version`, and an OCI
            // registry needs the tag to pull.
            if chart.version.trim().is_empty() {
                errors.push(format!("{field}.version"), "is empty", "pin a chart version");
            }
        }
        if self.cluster_autoscaler.is_some() && cluster_autoscaler_release(self.kubernetes_version).is_none() {
            let known: Vec<String> = CLUSTER_AUTOSCALER_RELEASES.iter().map(|r| r.kubernetes.to_string()).collect();
            errors.push(
                "kubernetes_version",
                format!(
                    "no cluster-autoscaler release is known for Kubernetes {} (known: {}); the autoscaler must match the cluster's minor",
                    self.kubernetes_version,
                    known.join(", ")
                ),
                "use a Kubernetes version of the table, a dify-stack release that knows this one, or turn cluster_autoscaler off",
            );
        }
        let with_roles = [
            (LOAD_BALANCER_CONTROLLER, self.load_balancer_controller.is_some()),
            (CLUSTER_AUTOSCALER, self.cluster_autoscaler.is_some()),
        ];
        for (addon, on) in with_roles {
            if on && self.kubernetes && !self.roles.contains_key(addon) {
                errors.push(
                    format!("roles.{addon}"),
                    format!("{addon} is on but no IRSA role is given for it"),
                    "wire the IAM tier's addon_roles output",
                );
            }
        }
        errors.into_result()
    }
}
