//! What the platform tier asks of AWS (ACM, Route 53, the EKS add-on catalogue) and of the
//! Kubernetes API (the IngressClass, the controller chart's CRDs), as small traits with SDK and
//! kube-rs implementations.

use async_trait::async_trait;
use dify_stack_core::ids::{Arn, ClusterName};
use dify_stack_core::{AwsError, KubeFailure, Tags};

/// An ACM certificate as observed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Certificate {
    /// Its ARN.
    pub arn: Arn,
    /// The domain it was requested for.
    pub domain: String,
    /// `PENDING_VALIDATION`, `ISSUED`, `FAILED`, `VALIDATION_TIMED_OUT`, ...
    pub status: String,
    /// The DNS validation records (empty for the first seconds after the request: ACM fills
    /// them in asynchronously).
    pub validation: Vec<Record>,
    /// Its tags.
    pub tags: Tags,
    /// When it was requested (DescribeCertificate `CreatedAt`), in milliseconds since the epoch.
    pub created_at: Option<i64>,
    /// Why it failed (`FailureReason`, e.g. `CAA_ERROR`), for a `FAILED` certificate.
    pub failure_reason: Option<String>,
    /// What uses it (`InUseBy`: load balancers and other AWS resources); ACM refuses to delete
    /// it while any does.
    pub in_use_by: Vec<Arn>,
}

impl Certificate {
    /// `ISSUED` or `PENDING_VALIDATION`: usable now or once validated.
    pub fn is_usable(&self) -> bool {
        matches!(self.status.as_str(), "ISSUED" | "PENDING_VALIDATION")
    }

    /// `FAILED` or `VALIDATION_TIMED_OUT`: it will never be issued. ACM: "If a certificate shows
    /// status FAILED or VALIDATION_TIMED_OUT, delete the request, correct the issue with DNS
    /// validation or Email validation, and try again"; it retries validation for 72 hours, then
    /// times out (ACM API reference, CertificateDetail `Status`).
    pub fn is_failed(&self) -> bool {
        matches!(self.status.as_str(), "FAILED" | "VALIDATION_TIMED_OUT")
    }

    /// `FAILED: CAA_ERROR`, or the status alone when there is no reason.
    pub fn status_reason(&self) -> String {
        match &self.failure_reason {
            Some(r) => format!("{}: {r}", self.status),
            None => self.status.clone(),
        }
    }
}

/// A DNS record: one value, or an alias.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// Fully qualified name with the trailing dot, lower case.
    pub name: String,
    /// `CNAME`, `A`, `TXT`.
    pub kind: String,
    /// The value (`Record` of a simple record), or the alias target's DNS name.
    pub value: String,
    /// The alias target's hosted zone, for an alias record.
    pub alias_zone: Option<String>,
}

impl Record {
    /// A simple record with one value.
    pub fn simple(name: &str, kind: &str, value: &str) -> Record {
        Record { name: fqdn(name), kind: kind.to_owned(), value: value.to_owned(), alias_zone: None }
    }
}

/// `name` lower case with one trailing dot, as Route 53 returns names.
pub fn fqdn(name: &str) -> String {
    format!("{}.", name.trim_end_matches('.').to_ascii_lowercase())
}

/// UPSERT or DELETE.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecordAction {
    /// Create or replace.
    Upsert,
    /// Delete (the record must match exactly).
    Delete,
}

/// What RequestCertificate is given (validation by DNS).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CertificateRequest {
    /// The domain.
    pub domain: String,
    /// Subject alternative names (the domain and `*.domain`).
    pub sans: Vec<String>,
    /// Makes a retried request return the same certificate (ACM idempotency token: up to 32
    /// word characters; "if you call RequestCertificate multiple times with the same idempotency
    /// token within one hour, ACM recognizes that you are requesting only one certificate": ACM
    /// API reference, RequestCertificate `IdempotencyToken`).
    pub token: String,
    /// Its tags.
    pub tags: Tags,
}

/// ACM and Route 53.
#[cfg_attr(any(test, feature = "test-util"), mockall::automock)]
#[async_trait]
pub trait DnsApi: Send + Sync {
    /// ARNs of the certificates requested for exactly `domain` (any status but expired).
    async fn certificates_for(&self, domain: String) -> Result<Vec<Arn>, AwsError>;
    /// DescribeCertificate with its tags; `None` when it is gone.
    async fn describe_certificate(&self, arn: Arn) -> Result<Option<Certificate>, AwsError>;
    /// RequestCertificate with DNS validation; returns the ARN.
    async fn request_certificate(&self, request: CertificateRequest) -> Result<Arn, AwsError>;
    /// DeleteCertificate; gone is fine.
    async fn delete_certificate(&self, arn: Arn) -> Result<(), AwsError>;
    /// The public hosted zone that holds `domain` (the longest matching zone name): its id.
    async fn find_public_zone(&self, domain: String) -> Result<Option<String>, AwsError>;
    /// The record `name`/`kind` in the zone.
    async fn get_record(&self, zone: String, name: String, kind: String) -> Result<Option<Record>, AwsError>;
    /// ChangeResourceRecordSets, one batch (atomic).
    async fn change_records(&self, zone: String, changes: Vec<(RecordAction, Record)>) -> Result<(), AwsError>;
}

impl std::fmt::Debug for dyn DnsApi {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("DnsApi")
    }
}

/// An EKS add-on as observed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AddonState {
    /// Its version.
    pub version: String,
    /// `CREATING`, `ACTIVE`, `DEGRADED`, ...
    pub status: String,
    /// Its tags.
    pub tags: Tags,
}

/// The EKS add-on catalogue, for metrics-server.
#[cfg_attr(any(test, feature = "test-util"), mockall::automock)]
#[async_trait]
pub trait AddonApi: Send + Sync {
    /// The default version of `addon` offered for `kubernetes_version` (DescribeAddonVersions),
    /// `None` when EKS does not offer it here.
    async fn offered_version(&self, addon: String, kubernetes_version: String) -> Result<Option<String>, AwsError>;
    /// The add-on on the cluster.
    async fn addon(&self, cluster: ClusterName, addon: String) -> Result<Option<AddonState>, AwsError>;
    /// CreateAddon.
    async fn create_addon(
        &self,
        cluster: ClusterName,
        addon: String,
        version: String,
        tags: Tags,
    ) -> Result<(), AwsError>;
    /// DeleteAddon; gone is fine.
    async fn delete_addon(&self, cluster: ClusterName, addon: String) -> Result<(), AwsError>;
    /// UpdateAddon to `version` with `resolveConflicts = OVERWRITE`: EKS re-applies the add-on's
    /// manifests over whatever changed them, the repair of an add-on that is `DEGRADED` or
    /// `UPDATE_FAILED`. A client without it refuses (the repair then fails, naming the call).
    async fn update_addon(&self, cluster: ClusterName, addon: String, version: String) -> Result<(), AwsError> {
        let _ = (cluster, version);
        Err(AwsError::new(
            "UpdateAddon",
            "UnsupportedOperation",
            format!("this AddonApi client does not implement UpdateAddon (add-on {addon})"),
        ))
    }
    /// The add-on's health issues (DescribeAddon `health.issues`), each `<code>: <message>`, to
    /// say why it failed; read only for an add-on in a failure state. A client that does not
    /// read them answers none.
    async fn addon_issues(&self, cluster: ClusterName, addon: String) -> Result<Vec<String>, AwsError> {
        let _ = (cluster, addon);
        Ok(Vec::new())
    }
}

/// How an add-on of ours in a failure state is repaired.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AddonRepair {
    /// UpdateAddon with `resolveConflicts = OVERWRITE` (`DEGRADED`, `UPDATE_FAILED`).
    Overwrite,
    /// DeleteAddon, wait until it is gone, CreateAddon (`CREATE_FAILED`, `DELETE_FAILED`).
    Recreate,
}

impl AddonState {
    /// How to repair the add-on, `None` unless it is in a failure state.
    ///
    /// - `DEGRADED`, `UPDATE_FAILED`: UpdateAddon with `resolveConflicts = OVERWRITE` (EKS API
    ///   reference, UpdateAddon `resolveConflicts`: "Overwrite – Amazon EKS overwrites the changed
    ///   value back to the Amazon EKS default value"; the ADOT add-on troubleshooting guide gives
    ///   the same fix for CREATE_FAILED/UPDATE_FAILED from a conflict).
    /// - `CREATE_FAILED`: delete and re-create. Neither the UpdateAddon reference nor the EKS user
    ///   guide says that an add-on that failed to create can be updated; EKS users report that
    ///   "once the add-on transitions to CREATE_FAILED, only deleting and re-creating the add-on
    ///   will resolve the situation" (aws/containers-roadmap #1411). Re-creating always works;
    ///   metrics-server being absent for the minutes it takes harms nothing that runs yet.
    /// - `DELETE_FAILED`: a delete that did not finish; delete again, then create.
    pub fn repair(&self) -> Option<AddonRepair> {
        match self.status.as_str() {
            "DEGRADED" | "UPDATE_FAILED" => Some(AddonRepair::Overwrite),
            "CREATE_FAILED" | "DELETE_FAILED" => Some(AddonRepair::Recreate),
            _ => None,
        }
    }
}

impl std::fmt::Debug for dyn AddonApi {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AddonApi")
    }
}

/// An IngressClass as observed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IngressClassState {
    /// `spec.controller`.
    pub controller: String,
    /// Whether it carries our label (only then may destroy delete it).
    pub ours: bool,
}

/// The Kubernetes objects of the tier, server-side applied: the IngressClass, and the load
/// balancer controller chart's CRDs before an upgrade of its release.
#[cfg_attr(any(test, feature = "test-util"), mockall::automock)]
#[async_trait]
pub trait IngressClassApi: Send + Sync {
    /// The IngressClass `name`.
    async fn ingress_class(&self, name: String) -> Result<Option<IngressClassState>, KubeFailure>;
    /// Server-side applies the IngressClass `name` for `controller`, labelled as ours.
    async fn apply_ingress_class(&self, name: String, controller: String) -> Result<(), KubeFailure>;
    /// Deletes it; gone is fine.
    async fn delete_ingress_class(&self, name: String) -> Result<(), KubeFailure>;
    /// Server-side applies the CustomResourceDefinition `name` (a document of a chart's `crds/`)
    /// with the field manager `dify-stack`, forced: Helm created the chart's CRDs on the first
    /// install and owns their fields, and a field another manager owns is a conflict unless the
    /// apply is forced (Kubernetes docs, "Server-Side Apply", Conflicts). A client without it
    /// refuses (the controller's upgrade then stops before Helm runs).
    async fn apply_crd(&self, name: String, crd: serde_json::Value) -> Result<(), KubeFailure> {
        let _ = crd;
        Err(KubeFailure {
            operation: "apply",
            object: format!("customresourcedefinition {name}"),
            message: "this Kubernetes client does not implement apply_crd".to_owned(),
            status: None,
            unreachable: false,
        })
    }
}

impl std::fmt::Debug for dyn IngressClassApi {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("IngressClassApi")
    }
}
