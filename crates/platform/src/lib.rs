//! Cluster platform tier of [dify-stack](https://github.com/dify-stack/dify-stack): what a Dify EE
//! install needs beside the chart, each part optional.
//!
//! - **AWS Load Balancer Controller** (Helm, pinned) with an IRSA role from the IAM tier
//!   ([`policy::load_balancer_controller_policy`]), and the IngressClass `alb` server-side
//!   applied: it turns the chart's Ingress into an ALB. Installed last, once the metrics-server
//!   add-on is ACTIVE: its webhooks refuse new Services until its pods serve. An upgrade to
//!   another chart version server-side applies the new chart's CRDs first (`helm show crds`):
//!   Helm never upgrades a chart's `crds/`.
//! - **Cluster autoscaler** (Helm, auto-discovery) with an IRSA role that may scale only groups
//!   tagged for the cluster ([`policy::cluster_autoscaler_policy`]), running the image made for
//!   the cluster's Kubernetes minor ([`spec::CLUSTER_AUTOSCALER_RELEASES`]).
//! - **metrics-server**: the EKS community add-on where `DescribeAddonVersions` offers it for the
//!   cluster version (EKS user guide, "Community add-ons"), else its Helm chart. An add-on of
//!   ours in a failure state is repaired ([`client::AddonState::repair`]).
//! - **Domain and TLS**: an ACM certificate for the domain and `*.<domain>` validated through
//!   Route 53 (the records written in the domain's public hosted zone, waited until `ISSUED`;
//!   one that failed or timed out is replaced, under an idempotency token of its own);
//!   after the Dify EE install, alias records of its six host names to the release's load
//!   balancer ([`aliases`]).
//!
//! Helm releases and Kubernetes objects need a machine that reaches the cluster's API; without
//! one (role-only access) apply returns the commands instead ([`PlatformOutput::commands`]).
//! Charts come from a chart repository (`https://`, `--repo`) or an OCI registry (`oci://`, by
//! reference), pinned with `--version` either way ([`Chart::helm_source`]).

pub mod aliases;
pub mod audit;
pub mod certificate;
pub mod client;
mod error;
pub mod helm;
pub mod kube;
pub mod names;
pub mod policy;
pub mod provisioner;
pub mod sdk;
pub mod spec;
#[cfg(any(test, feature = "test-util"))]
pub mod testing;
#[cfg(test)]
mod tests;

pub use certificate::{
    CertificateOutput, CertificateProvisioner, CertificateSelector, CertificateSpec, CertificateStep,
};
pub use client::{
    AddonApi, AddonRepair, Certificate, CertificateRequest, DnsApi, IngressClassApi, Record, RecordAction,
};
#[cfg(any(test, feature = "test-util"))]
pub use client::{MockAddonApi, MockDnsApi, MockIngressClassApi};
#[cfg(any(test, feature = "test-util"))]
pub use helm::MockHelmApi;
pub use helm::{HelmApi, HelmCli, HelmError, ReleaseInstall};
pub use provisioner::{
    ControllerGate, ObservedPlatform, PlatformError, PlatformOutput, PlatformProvisioner, PlatformStep,
    addon_role_requests, caps,
};
pub use sdk::{SdkAddons, SdkDns};
pub use spec::{Chart, DomainSpec, PlatformSelector, PlatformSpec};
