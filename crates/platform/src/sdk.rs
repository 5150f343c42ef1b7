//! The SDK implementations of [`DnsApi`] (ACM, Route 53) and [`AddonApi`] (EKS).

use std::collections::HashMap;

use async_trait::async_trait;
use dify_stack_core::ids::{Arn, ClusterName};
use dify_stack_core::{AwsError, AwsResultExt, Tags, found, ignore_not_found};

use crate::client::{AddonApi, AddonState, Certificate, CertificateRequest, DnsApi, Record, RecordAction, fqdn};

/// [`DnsApi`] over the ACM and Route 53 clients.
#[derive(Debug, Clone)]
pub struct SdkDns {
    acm: aws_sdk_acm::Client,
    route53: aws_sdk_route53::Client,
}

impl SdkDns {
    /// Builds the clients from shared SDK configuration (Route 53 is global; its client signs
    /// for the partition's global region itself).
    pub fn from_conf(config: &aws_types::SdkConfig) -> Self {
        SdkDns { acm: aws_sdk_acm::Client::new(config), route53: aws_sdk_route53::Client::new(config) }
    }
}

/// Route 53 hosted zone ids come as `/hostedzone/Z...`.
fn zone_id(id: &str) -> String {
    id.trim_start_matches("/hostedzone/").to_owned()
}

/// Route 53 returns `*` in names as `\052` (Route 53 developer guide, "DNS domain name format").
fn unescape(name: &str) -> String {
    name.replace("\\052", "*")
}

#[async_trait]
impl DnsApi for SdkDns {
    async fn certificates_for(&self, domain: String) -> Result<Vec<Arn>, AwsError> {
        use aws_sdk_acm::types::CertificateStatus as S;
        let summaries: Vec<_> = self
            .acm
            .list_certificates()
            .set_certificate_statuses(Some(vec![
                S::PendingValidation,
                S::Issued,
                S::Inactive,
                S::Failed,
                S::ValidationTimedOut,
            ]))
            .into_paginator()
            .items()
            .send()
            .collect::<Result<Vec<_>, _>>()
            .await
            .aws("ListCertificates")?;
        Ok(summaries
            .iter()
            .filter(|c| c.domain_name() == Some(domain.as_str()))
            .filter_map(|c| c.certificate_arn().map(Arn::new))
            .collect())
    }

    async fn describe_certificate(&self, arn: Arn) -> Result<Option<Certificate>, AwsError> {
        let Some(out) = found(
            self.acm.describe_certificate().certificate_arn(arn.as_str()).send().await.aws("DescribeCertificate"),
        )?
        else {
            return Ok(None);
        };
        let Some(c) = out.certificate() else { return Ok(None) };
        let tags = found(
            self.acm
                .list_tags_for_certificate()
                .certificate_arn(arn.as_str())
                .send()
                .await
                .aws("ListTagsForCertificate"),
        )?
        .map(|t| t.tags().iter().map(|t| (t.key().to_owned(), t.value().unwrap_or_default().to_owned())).collect())
        .unwrap_or_default();
        let mut validation: Vec<Record> = c
            .domain_validation_options()
            .iter()
            .filter_map(|v| v.resource_record())
            .map(|r| Record::simple(r.name(), r.r#type().as_str(), r.value()))
            .collect();
        // The domain and its wildcard share one record.
        validation.sort_by(|a, b| a.name.cmp(&b.name));
        validation.dedup();
        Ok(Some(Certificate {
            arn,
            domain: c.domain_name().unwrap_or_default().to_owned(),
            status: c.status().map(|s| s.as_str().to_owned()).unwrap_or_default(),
            validation,
            tags,
            created_at: c.created_at().and_then(|t| t.to_millis().ok()),
            failure_reason: c.failure_reason().map(|r| r.as_str().to_owned()),
            in_use_by: c.in_use_by().iter().map(Arn::new).collect(),
        }))
    }

    async fn request_certificate(&self, r: CertificateRequest) -> Result<Arn, AwsError> {
        let CertificateRequest { domain, sans, token, tags } = r;
        let tags = tags
            .into_iter()
            .map(|(k, v)| aws_sdk_acm::types::Tag::builder().key(k).value(v).build())
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| AwsError::new("RequestCertificate", "ValidationException", e.to_string()))?;
        let out = self
            .acm
            .request_certificate()
            .domain_name(domain)
            .set_subject_alternative_names(Some(sans))
            .validation_method(aws_sdk_acm::types::ValidationMethod::Dns)
            .idempotency_token(token)
            .set_tags(Some(tags))
            .send()
            .await
            .aws("RequestCertificate")?;
        Ok(Arn::new(out.certificate_arn().unwrap_or_default()))
    }

    async fn delete_certificate(&self, arn: Arn) -> Result<(), AwsError> {
        ignore_not_found(
            self.acm
                .delete_certificate()
                .certificate_arn(arn.into_inner())
                .send()
                .await
                .aws("DeleteCertificate")
                .map(|_| ()),
        )
        .map(|_| ())
    }

    async fn find_public_zone(&self, domain: String) -> Result<Option<String>, AwsError> {
        let zones: Vec<_> = self
            .route53
            .list_hosted_zones()
            .into_paginator()
            .items()
            .send()
            .collect::<Result<Vec<_>, _>>()
            .await
            .aws("ListHostedZones")?;
        let domain = fqdn(&domain);
        Ok(zones
            .iter()
            .filter(|z| !z.config().is_some_and(|c| c.private_zone()))
            .filter(|z| {
                let name = fqdn(z.name());
                domain == name || domain.ends_with(&format!(".{name}"))
            })
            .max_by_key(|z| z.name().len())
            .map(|z| zone_id(z.id())))
    }

    async fn get_record(&self, zone: String, name: String, kind: String) -> Result<Option<Record>, AwsError> {
        let out = self
            .route53
            .list_resource_record_sets()
            .hosted_zone_id(&zone)
            .start_record_name(&name)
            .start_record_type(aws_sdk_route53::types::RrType::from(kind.as_str()))
            .max_items(1)
            .send()
            .await
            .aws("ListResourceRecordSets")?;
        let want = fqdn(&name);
        Ok(out
            .resource_record_sets()
            .iter()
            .find(|r| fqdn(&unescape(r.name())) == want && r.r#type().as_str() == kind)
            .map(|r| match r.alias_target() {
                Some(a) => Record {
                    name: want.clone(),
                    kind: kind.clone(),
                    value: fqdn(a.dns_name()),
                    alias_zone: Some(a.hosted_zone_id().to_owned()),
                },
                None => Record {
                    name: want.clone(),
                    kind: kind.clone(),
                    value: r.resource_records().first().map(|v| v.value().to_owned()).unwrap_or_default(),
                    alias_zone: None,
                },
            }))
    }

    async fn change_records(&self, zone: String, changes: Vec<(RecordAction, Record)>) -> Result<(), AwsError> {
        use aws_sdk_route53::types::{
            AliasTarget, Change, ChangeAction, ChangeBatch, ResourceRecord, ResourceRecordSet,
        };
        let bad = |e: aws_sdk_route53::error::BuildError| {
            AwsError::new("ChangeResourceRecordSets", "InvalidInput", e.to_string())
        };
        let mut batch = ChangeBatch::builder().comment("dify-stack");
        for (action, r) in changes {
            let mut set = ResourceRecordSet::builder().name(&r.name).r#type(r.kind.as_str().into());
            set = match &r.alias_zone {
                Some(z) => set.alias_target(
                    AliasTarget::builder()
                        .dns_name(&r.value)
                        .hosted_zone_id(z)
                        .evaluate_target_health(true)
                        .build()
                        .map_err(bad)?,
                ),
                None => set.ttl(300).resource_records(ResourceRecord::builder().value(&r.value).build().map_err(bad)?),
            };
            let action = match action {
                RecordAction::Upsert => ChangeAction::Upsert,
                RecordAction::Delete => ChangeAction::Delete,
            };
            batch = batch.changes(
                Change::builder().action(action).resource_record_set(set.build().map_err(bad)?).build().map_err(bad)?,
            );
        }
        self.route53
            .change_resource_record_sets()
            .hosted_zone_id(zone)
            .change_batch(batch.build().map_err(bad)?)
            .send()
            .await
            .aws("ChangeResourceRecordSets")?;
        Ok(())
    }
}

/// [`AddonApi`] over the EKS client.
#[derive(Debug, Clone)]
pub struct SdkAddons {
    eks: aws_sdk_eks::Client,
}

impl SdkAddons {
    /// Builds the client from shared SDK configuration.
    pub fn from_conf(config: &aws_types::SdkConfig) -> Self {
        SdkAddons { eks: aws_sdk_eks::Client::new(config) }
    }

    /// DescribeAddon; `None` when the add-on does not exist.
    async fn describe_addon(
        &self,
        cluster: ClusterName,
        addon: String,
    ) -> Result<Option<aws_sdk_eks::operation::describe_addon::DescribeAddonOutput>, AwsError> {
        found(
            self.eks
                .describe_addon()
                .cluster_name(cluster.into_inner())
                .addon_name(addon)
                .send()
                .await
                .aws("DescribeAddon"),
        )
    }
}

#[async_trait]
impl AddonApi for SdkAddons {
    async fn offered_version(&self, addon: String, kubernetes_version: String) -> Result<Option<String>, AwsError> {
        dify_stack_aws::eks::default_addon_version(&self.eks, &addon, &kubernetes_version).await
    }

    async fn addon(&self, cluster: ClusterName, addon: String) -> Result<Option<AddonState>, AwsError> {
        let out = self.describe_addon(cluster, addon).await?;
        Ok(out.and_then(|o| {
            o.addon().map(|a| AddonState {
                version: a.addon_version().unwrap_or_default().to_owned(),
                status: a.status().map(|s| s.as_str().to_owned()).unwrap_or_default(),
                tags: a.tags().map(|t| t.iter().map(|(k, v)| (k.clone(), v.clone())).collect()).unwrap_or_default(),
            })
        }))
    }

    async fn create_addon(
        &self,
        cluster: ClusterName,
        addon: String,
        version: String,
        tags: Tags,
    ) -> Result<(), AwsError> {
        let tags: HashMap<String, String> = tags.into_iter().collect();
        self.eks
            .create_addon()
            .cluster_name(cluster.into_inner())
            .addon_name(addon)
            .addon_version(version)
            .set_tags(Some(tags))
            .send()
            .await
            .aws("CreateAddon")?;
        Ok(())
    }

    async fn delete_addon(&self, cluster: ClusterName, addon: String) -> Result<(), AwsError> {
        ignore_not_found(
            self.eks
                .delete_addon()
                .cluster_name(cluster.into_inner())
                .addon_name(addon)
                .send()
                .await
                .aws("DeleteAddon")
                .map(|_| ()),
        )
        .map(|_| ())
    }

    async fn update_addon(&self, cluster: ClusterName, addon: String, version: String) -> Result<(), AwsError> {
        self.eks
            .update_addon()
            .cluster_name(cluster.into_inner())
            .addon_name(addon)
            .addon_version(version)
            .resolve_conflicts(aws_sdk_eks::types::ResolveConflicts::Overwrite)
            .send()
            .await
            .aws("UpdateAddon")?;
        Ok(())
    }

    /// `health.issues` of DescribeAddon (EKS API reference, AddonHealth and AddonIssue: a code
    /// such as `AdmissionRequestDenied` or `InsufficientNumberOfReplicas`, and a message).
    async fn addon_issues(&self, cluster: ClusterName, addon: String) -> Result<Vec<String>, AwsError> {
        let out = self.describe_addon(cluster, addon).await?;
        Ok(out
            .and_then(|o| o.addon().and_then(|a| a.health()).map(|h| h.issues().to_vec()))
            .unwrap_or_default()
            .iter()
            .map(|i| format!("{}: {}", i.code().map_or("?", |c| c.as_str()), i.message().unwrap_or_default()))
            .collect())
    }
}
