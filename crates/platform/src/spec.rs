//! What the platform tier provisions: each part optional, pinned, and overridable for China.

use std::collections::BTreeMap;

use dify_stack_core::SpecErrors;
use dify_stack_core::ids::{ClusterName, VpcId};
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
}

impl Chart {
    /// The chart `chart` version `version` from `repository`.
    pub fn new(repository: &str, chart: &str, version: &str) -> Chart {
        Chart { repository: repository.into(), chart: chart.into(), version: version.into(), image_repository: None }
    }

    /// The AWS Load Balancer Controller chart from the EKS charts repository. Chart 1.13.0 ships
    /// controller v2.13.0 (not verified from this machine: no access to the repository).
    pub fn load_balancer_controller() -> Chart {
        Chart::new("https://aws.github.io/eks-charts", LOAD_BALANCER_CONTROLLER, "1.13.0")
    }

    /// The cluster-autoscaler chart of the Kubernetes autoscaler project.
    pub fn cluster_autoscaler() -> Chart {
        Chart::new("https://kubernetes.github.io/autoscaler", CLUSTER_AUTOSCALER, "9.46.6")
    }

    /// The metrics-server chart (used where EKS does not offer the add-on).
    pub fn metrics_server() -> Chart {
        Chart::new("https://kubernetes-sigs.github.io/metrics-server/", METRICS_SERVER, "3.12.2")
    }
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

/// Desired platform tier.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PlatformSpec {
    /// The EKS cluster.
    pub cluster_name: ClusterName,
    /// Its Kubernetes version (for the add-on catalogue).
    pub kubernetes_version: String,
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
            if !chart.repository.starts_with("https://") && !chart.repository.starts_with("oci://") {
                errors.push(
                    format!("{field}.repository"),
                    format!("{:?} is not an https:// or oci:// URL", chart.repository),
                    "give the chart repository (or a mirror) URL",
                );
            }
            if chart.version.is_empty() {
                errors.push(format!("{field}.version"), "is empty", "pin a chart version");
            }
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
