//! The domain's certificate: an ACM certificate for the domain and `*.<domain>`, validated
//! through a record in the domain's public Route 53 hosted zone, waited until issued; on destroy
//! also the aliases of the Dify hosts ([`crate::aliases`]). Its own node in the stack graph,
//! with no upstream: DNS validation (minutes, up to 30 by the ACM user guide) runs while the
//! network and the cluster are built.

use async_trait::async_trait;
use dify_stack_core::wait::{self, Probe};
use dify_stack_core::{Action, Change, Context, Planned, Provisioner, ResourceRef, SpecErrors, Tier};
use serde::{Deserialize, Serialize};

use crate::client::{Certificate, CertificateRequest, DnsApi, Record, RecordAction};
use dify_stack_core::ids::Arn;
use dify_stack_core::{AwsAt, from_wait};

use crate::provisioner::{PlatformError, Result, caps};
use crate::spec::DomainSpec;

/// What finds the certificate for a destroy: the domain and its hosted zone (the context's
/// tags find the certificates, the domain their aliases and validation records). The whole
/// [`CertificateSpec`] is no more than this.
pub type CertificateSelector = DomainSpec;

/// Desired certificate.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CertificateSpec {
    /// The domain and its hosted zone.
    pub domain: DomainSpec,
}

impl CertificateSpec {
    /// Checks the spec without I/O; every violation at once.
    pub fn validate(&self) -> Result<(), SpecErrors> {
        let mut errors = SpecErrors::new();
        DomainSpec::check_name(&self.domain.name, "domain.name", &mut errors);
        if let Some(z) = &self.domain.hosted_zone_id {
            DomainSpec::check_hosted_zone_id(z, "domain.hosted_zone_id", &mut errors);
        }
        errors.into_result()
    }
}

impl DomainSpec {
    /// Checks a domain name as the certificate needs it (a lower-case DNS name of at least two
    /// labels, RFC 1035 lengths), recording a violation at `path`: the certificate's own
    /// `domain.name`, or the field of a configuration that holds it (the stack's
    /// `dify.domain`).
    pub fn check_name(name: &str, path: &str, errors: &mut SpecErrors) {
        let labels: Vec<&str> = name.split('.').collect();
        let valid = labels.len() >= 2
            && name.len() <= 253
            && labels.iter().all(|l| {
                !l.is_empty()
                    && l.len() <= 63
                    && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
                    && !l.starts_with('-')
                    && !l.ends_with('-')
            });
        if !valid || name != name.to_ascii_lowercase() {
            errors.push(
                path,
                format!("{name:?} is not a lower-case DNS name with at least two labels"),
                "give the domain Dify is served under, e.g. dify.example.com",
            );
        }
    }

    /// Checks a Route 53 hosted zone id (`Z...`, without `/hostedzone/`), recording a
    /// violation at `path`.
    pub fn check_hosted_zone_id(id: &str, path: &str, errors: &mut SpecErrors) {
        if id.is_empty() || !id.chars().all(|c| c.is_ascii_alphanumeric()) {
            errors.push(
                path,
                format!("{id:?} is not a hosted zone id"),
                "give the id (Z...) without /hostedzone/, or leave it out to look the zone up by name",
            );
        }
    }
}

/// What exists.
#[derive(Debug, Clone, Default)]
pub struct ObservedCertificate {
    /// The hosted zone of the domain.
    pub zone: Option<String>,
    /// Our certificate for the domain: the newest `ISSUED` or `PENDING_VALIDATION` one.
    pub certificate: Option<Certificate>,
    /// Our certificates for the domain that failed (`FAILED`, `VALIDATION_TIMED_OUT`), newest
    /// first: never issued, replaced and deleted.
    pub failed: Vec<Certificate>,
    /// Its validation records found in the zone with the right value.
    pub validation_present: Vec<Record>,
}

/// What the certificate node hands on.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CertificateOutput {
    /// The domain.
    pub domain: Option<String>,
    /// The issued certificate (for the Ingress's `certificate-arn`).
    pub certificate_arn: Option<String>,
    /// The hosted zone of the domain (for the hosts' alias records).
    pub hosted_zone_id: Option<String>,
}

use crate::names::{certificate_token as idempotency_token, replacement_certificate_token};

/// Provisions the domain's certificate through a [`DnsApi`] (ACM and Route 53). Cheap to clone:
/// clones share the client.
#[derive(Clone)]
pub struct CertificateProvisioner {
    dns: std::sync::Arc<dyn DnsApi>,
}

impl std::fmt::Debug for CertificateProvisioner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CertificateProvisioner")
    }
}

impl CertificateProvisioner {
    /// A provisioner over the given ACM and Route 53 client.
    pub fn new(dns: impl DnsApi + 'static) -> Self {
        CertificateProvisioner { dns: std::sync::Arc::new(dns) }
    }

    /// A provisioner over the real ACM and Route 53 APIs.
    pub fn from_conf(config: &aws_types::SdkConfig) -> Self {
        Self::new(crate::sdk::SdkDns::from_conf(config))
    }

    /// The domain's public hosted zone: the configured one, or the longest public zone whose
    /// name holds the domain.
    pub async fn hosted_zone(&self, spec: &CertificateSpec) -> Result<Option<String>> {
        self.domain_zone(&spec.domain).await
    }

    async fn domain_zone(&self, domain: &DomainSpec) -> Result<Option<String>> {
        if let Some(z) = &domain.hosted_zone_id {
            return Ok(Some(z.clone()));
        }
        Ok(self.dns.find_public_zone(domain.name.clone()).await.at("ListHostedZones", &domain.name)?)
    }

    /// Our certificates for the domain (those carrying our tags), newest first by `CreatedAt`:
    /// ListCertificates does not list them in the order they were requested. Ties (`CreatedAt`
    /// missing or equal): `ISSUED` first, then by ARN, so the choice is stable.
    async fn ours(&self, ctx: &Context, domain: &str) -> Result<Vec<Certificate>> {
        let mut ours = Vec::new();
        for arn in self.dns.certificates_for(domain.to_owned()).await.at("ListCertificates", domain)? {
            let Some(c) = self.dns.describe_certificate(arn.clone()).await.at("DescribeCertificate", arn.as_str())?
            else {
                continue;
            };
            if ctx.owns_tags(&c.tags) {
                ours.push(c);
            }
        }
        ours.sort_by(|a, b| {
            b.created_at
                .cmp(&a.created_at)
                .then_with(|| (b.status == "ISSUED").cmp(&(a.status == "ISSUED")))
                .then_with(|| a.arn.cmp(&b.arn))
        });
        Ok(ours)
    }

    async fn present_records(&self, zone: &str, records: &[Record]) -> Result<Vec<Record>> {
        let mut present = Vec::new();
        for r in records {
            let have = self
                .dns
                .get_record(zone.to_owned(), r.name.clone(), r.kind.clone())
                .await
                .at("ListResourceRecordSets", &r.name)?;
            if have.as_ref() == Some(r) {
                present.push(r.clone());
            }
        }
        Ok(present)
    }

    /// Waits until ACM has filled in the certificate's validation records.
    async fn validation_records(&self, ctx: &Context, arn: &str) -> Result<Certificate> {
        wait::until(
            &format!("the validation records of {arn}"),
            &ctx.wait.capped(caps::VALIDATION_RECORDS),
            ctx.cancellation(),
            || async {
                let c = self.dns.describe_certificate(Arn::new(arn)).await.at("DescribeCertificate", arn)?;
                Ok::<_, PlatformError>(match c {
                    Some(c) if !c.validation.is_empty() => Probe::Done(c),
                    _ => Probe::Pending("no ResourceRecord yet".to_owned()),
                })
            },
        )
        .await
        .map_err(from_wait)
    }

    /// Waits until the certificate is issued; a timeout names the record ACM is waiting for.
    async fn wait_issued(&self, ctx: &Context, cert: &Certificate) -> Result<()> {
        let records: Vec<String> =
            cert.validation.iter().map(|r| format!("{} {} {}", r.name, r.kind, r.value)).collect();
        let what = format!("ACM to issue {} (validation record: {})", cert.arn, records.join("; "));
        wait::until(&what, &ctx.wait.capped(caps::CERTIFICATE_ISSUED), ctx.cancellation(), || async {
            let c =
                self.dns.describe_certificate(cert.arn.clone()).await.at("DescribeCertificate", cert.arn.as_str())?;
            let Some(c) = c else {
                return Err(PlatformError::CertificateFailed { arn: cert.arn.to_string(), status: "gone".to_owned() });
            };
            match c.status.as_str() {
                "ISSUED" => Ok(Probe::Done(())),
                "PENDING_VALIDATION" => Ok(Probe::Pending(c.status)),
                // FAILED (with its reason), VALIDATION_TIMED_OUT, ...: the next apply replaces it.
                _ => Err(PlatformError::CertificateFailed { arn: cert.arn.to_string(), status: c.status_reason() }),
            }
        })
        .await
        .map_err(from_wait)
    }
}

/// One change of the certificate node, in the order apply executes them.
#[derive(Debug, Clone)]
enum CertChange {
    /// No usable certificate of ours for the domain: request one (the domain and `*.domain`, DNS
    /// validation, our tags, an idempotency token). `replaces`: our newest failed certificate,
    /// which is deleted once the new one is requested (when nothing uses it), and whose ARN the
    /// new request's token is derived from (the stack's own token would get the failed
    /// certificate back from ACM within the hour: [`replacement_certificate_token`]).
    Request { domain: String, replaces: Option<Certificate> },
    /// Another failed certificate of ours that nothing uses (left by an earlier replacement, or
    /// older): deleted.
    DeleteFailed { domain: String, cert: Certificate },
    /// Validation records the zone lacks: `Some` when ACM has given them, `None` when they are
    /// known only once ACM fills them in after the request.
    Records { domain: String, zone: String, records: Option<Vec<Record>> },
}

impl Planned for CertChange {
    fn change(&self) -> Change {
        match self {
            CertChange::Request { domain, replaces: None } => {
                Change::new(Action::Create, ResourceRef::new("acm:certificate", domain))
                    .field("subject_alternative_names", None::<&str>, Some(format!("*.{domain}")))
                    .field("validation", None::<&str>, Some("DNS"))
            }
            CertChange::Request { domain, replaces: Some(failed) } => {
                let kept = if failed.in_use_by.is_empty() {
                    String::new()
                } else {
                    format!(
                        "; it is kept while in use by {}",
                        failed.in_use_by.iter().map(Arn::as_str).collect::<Vec<_>>().join(", ")
                    )
                };
                Change::new(Action::Replace, ResourceRef::new("acm:certificate", domain).with_id(failed.arn.as_str()))
                    .field("status", Some(failed.status_reason()), Some("PENDING_VALIDATION"))
                    .field("subject_alternative_names", None::<&str>, Some(format!("*.{domain}")))
                    .field("validation", None::<&str>, Some("DNS"))
                    .because(format!(
                        "replace failed certificate {} (status {}): ACM never issues it; a new one is requested{kept}",
                        failed.arn,
                        failed.status_reason()
                    ))
            }
            CertChange::DeleteFailed { domain, cert } => {
                Change::new(Action::Delete, ResourceRef::new("acm:certificate", domain).with_id(cert.arn.as_str()))
                    .field("status", Some(cert.status_reason()), None::<&str>)
                    .because(format!("failed certificate {} (status {}), replaced", cert.arn, cert.status_reason()))
            }
            CertChange::Records { domain, zone, records: None } => {
                Change::new(Action::Create, ResourceRef::new("route53:record", format!("_<token>.{domain}")))
                    .field("zone", None::<&str>, Some(zone))
                    .field("value", None::<&str>, Some("(known after the certificate request)"))
            }
            CertChange::Records { zone, records: Some(records), .. } => {
                let name = records.iter().map(|r| r.name.as_str()).collect::<Vec<_>>().join(", ");
                records.iter().fold(
                    Change::new(Action::Create, ResourceRef::new("route53:record", name)).field(
                        "zone",
                        None::<&str>,
                        Some(zone),
                    ),
                    |c, r| c.field(r.kind.clone(), None::<&str>, Some(&r.value)),
                )
            }
        }
    }
}

/// One change of the certificate node, as [`Provisioner::changes`] computes it and
/// [`Provisioner::execute`] carries it out. Opaque: what a plan shows of it is its
/// [`Planned::change`].
#[derive(Debug, Clone)]
pub struct CertificateStep(CertChange);

impl Planned for CertificateStep {
    fn change(&self) -> Change {
        self.0.change()
    }
}

/// The changes against one observation.
fn changes(spec: &CertificateSpec, o: &ObservedCertificate) -> Vec<CertChange> {
    let domain = spec.domain.name.clone();
    let zone = o.zone.clone().unwrap_or_else(|| "(no public hosted zone found: apply fails)".into());
    // The newest failed certificate is the one a new request replaces; the others of ours that
    // failed are deleted beside it (ACM refuses to delete one in use: those are left alone).
    // Not gated on `Permissions::allow_replace`: a failed certificate is never issued and serves
    // nothing, so replacing it loses nothing.
    let replaces = if o.certificate.is_none() { o.failed.first().cloned() } else { None };
    let others = o.failed.iter().skip(usize::from(replaces.is_some())).filter(|c| c.in_use_by.is_empty());
    let mut changes = Vec::new();
    match &o.certificate {
        None => {
            changes.push(CertChange::Request { domain: domain.clone(), replaces });
            changes.extend(others.map(|c| CertChange::DeleteFailed { domain: domain.clone(), cert: c.clone() }));
            changes.push(CertChange::Records { domain, zone, records: None });
        }
        Some(cert) => {
            changes.extend(others.map(|c| CertChange::DeleteFailed { domain: domain.clone(), cert: c.clone() }));
            if cert.validation.is_empty() {
                changes.push(CertChange::Records { domain, zone, records: None });
            } else {
                let missing: Vec<Record> =
                    cert.validation.iter().filter(|r| !o.validation_present.contains(r)).cloned().collect();
                if !missing.is_empty() {
                    changes.push(CertChange::Records { domain, zone, records: Some(missing) });
                }
            }
        }
    }
    changes
}

#[async_trait]
impl Provisioner for CertificateProvisioner {
    type Spec = CertificateSpec;
    type Observed = ObservedCertificate;
    type Output = CertificateOutput;
    type Error = PlatformError;
    type Selector = CertificateSelector;
    type Change = CertificateStep;

    fn validate(&self, _ctx: &Context, spec: &CertificateSpec) -> Result<(), SpecErrors> {
        spec.validate()
    }

    async fn observe(&self, ctx: &Context, spec: &CertificateSpec) -> Result<ObservedCertificate> {
        let mut o = ObservedCertificate { zone: self.hosted_zone(spec).await?, ..Default::default() };
        let ours = self.ours(ctx, &spec.domain.name).await?;
        o.certificate = ours.iter().find(|c| c.is_usable()).cloned();
        o.failed = ours.into_iter().filter(Certificate::is_failed).collect();
        if let (Some(zone), Some(cert)) = (&o.zone, &o.certificate) {
            o.validation_present = self.present_records(zone, &cert.validation).await?;
        }
        Ok(o)
    }

    fn changes(&self, _ctx: &Context, spec: &CertificateSpec, o: &ObservedCertificate) -> Vec<CertificateStep> {
        changes(spec, o).into_iter().map(CertificateStep).collect()
    }

    /// Without the domain's hosted zone nothing is written: the zone is checked before the
    /// first change. A request's validation records are known only once ACM fills them in
    /// after the request: that change waits for them here.
    async fn execute(
        &self,
        ctx: &Context,
        spec: &CertificateSpec,
        o: ObservedCertificate,
        changes: Vec<CertificateStep>,
    ) -> Result<CertificateOutput> {
        let domain = &spec.domain;
        let zone = o.zone.clone().ok_or_else(|| PlatformError::NoHostedZone { domain: domain.name.clone() })?;
        let mut cert = o.certificate.clone();
        for CertificateStep(change) in changes {
            match change {
                CertChange::Request { replaces, .. } => {
                    let token = match &replaces {
                        Some(failed) => replacement_certificate_token(ctx, &domain.name, failed.arn.as_str()),
                        None => idempotency_token(ctx, &domain.name),
                    };
                    let request = CertificateRequest {
                        domain: domain.name.clone(),
                        sans: vec![domain.name.clone(), format!("*.{}", domain.name)],
                        token,
                        tags: ctx.tags_for(Tier::Platform, "certificate", &domain.name),
                    };
                    let arn = self.dns.request_certificate(request).await.at("RequestCertificate", &domain.name)?;
                    tracing::info!(%arn, domain = %domain.name, "requested ACM certificate");
                    cert = Some(Certificate { arn, status: "PENDING_VALIDATION".to_owned(), ..Default::default() });
                    // The failed one goes once its replacement exists (a crash in between leaves
                    // it for the next apply's DeleteFailed), and only when nothing uses it.
                    if let Some(failed) = replaces.filter(|f| f.in_use_by.is_empty()) {
                        self.delete_failed(&failed).await?;
                    }
                }
                CertChange::DeleteFailed { cert: failed, .. } => self.delete_failed(&failed).await?,
                CertChange::Records { records, .. } => {
                    let records = match records {
                        Some(known) => known,
                        // ACM fills them in a moment after the request.
                        None => {
                            let arn = cert.as_ref().map(|c| c.arn.to_string()).unwrap_or_default();
                            let filled = self.validation_records(ctx, &arn).await?;
                            let missing = filled.validation.iter().filter(|r| !o.validation_present.contains(r));
                            let missing = missing.cloned().collect();
                            cert = Some(filled);
                            missing
                        }
                    };
                    if !records.is_empty() {
                        let upserts = records.into_iter().map(|r| (RecordAction::Upsert, r)).collect();
                        self.dns.change_records(zone.clone(), upserts).await.at("ChangeResourceRecordSets", &zone)?;
                    }
                }
            }
        }
        let cert = cert.unwrap_or_default();
        if cert.status != "ISSUED" {
            self.wait_issued(ctx, &cert).await?;
        }
        Ok(CertificateOutput {
            domain: Some(domain.name.clone()),
            certificate_arn: Some(cert.arn.into_inner()),
            hosted_zone_id: Some(zone),
        })
    }

    /// The hosts' aliases (only those carrying our marker), then the validation records (only
    /// while they still hold exactly a certificate's value), then our certificates for the
    /// domain, failed ones too.
    fn selector(&self, _ctx: &Context, spec: &CertificateSpec) -> CertificateSelector {
        spec.domain.clone()
    }

    async fn destroy_selected(&self, ctx: &Context, domain: &CertificateSelector) -> Result<Vec<ResourceRef>> {
        let mut deleted = Vec::new();
        let zone = self.domain_zone(domain).await?;
        if let Some(zone) = &zone {
            deleted.extend(crate::aliases::remove(ctx, self.dns.as_ref(), zone, &domain.name).await?);
        }
        let certs = self.ours(ctx, &domain.name).await?;
        if certs.is_empty() {
            return Ok(deleted);
        }
        // A record several certificates share (the domain and its wildcard share one; older and
        // newer certificates of the domain may too) is deleted once.
        let mut validation: Vec<Record> = Vec::new();
        for r in certs.iter().flat_map(|c| &c.validation) {
            if !validation.contains(r) {
                validation.push(r.clone());
            }
        }
        if let Some(zone) = &zone {
            let ours = self.present_records(zone, &validation).await?;
            if !ours.is_empty() {
                let names: Vec<String> = ours.iter().map(|r| r.name.clone()).collect();
                let changes = ours.into_iter().map(|r| (RecordAction::Delete, r)).collect();
                if let Err(e) = self.dns.change_records(zone.clone(), changes).await {
                    // A retried delete whose first response was lost finds nothing to delete.
                    if !self.present_records(zone, &validation).await?.is_empty() {
                        return Err(e.at("ChangeResourceRecordSets", zone).into());
                    }
                }
                deleted.extend(names.iter().map(|n| ResourceRef::new("route53:record", n)));
            }
        }
        for cert in certs {
            self.dns.delete_certificate(cert.arn.clone()).await.at("DeleteCertificate", cert.arn.as_str())?;
            deleted.push(ResourceRef::new("acm:certificate", &domain.name).with_id(cert.arn.into_inner()));
        }
        Ok(deleted)
    }
}

impl CertificateProvisioner {
    /// Deletes a failed certificate of ours (the caller checked that nothing uses it: ACM refuses
    /// to delete a certificate in use, ACM API reference, DeleteCertificate).
    async fn delete_failed(&self, failed: &Certificate) -> Result<()> {
        self.dns.delete_certificate(failed.arn.clone()).await.at("DeleteCertificate", failed.arn.as_str())?;
        tracing::info!(arn = %failed.arn, status = %failed.status_reason(), "deleted failed ACM certificate");
        Ok(())
    }
}
