//! The domain's certificate against the strict emulator: it is issued only once
//! its validation record is in the domain's public hosted zone, and destroy removes exactly what
//! apply wrote.

use dify_stack_core::{Context, Environment, Provisioner};
use dify_stack_emulator::Emulator;
use dify_stack_platform::{CertificateProvisioner, CertificateSpec, DomainSpec};

fn spec(domain: &str) -> CertificateSpec {
    CertificateSpec { domain: DomainSpec { name: domain.into(), hosted_zone_id: None } }
}

async fn zone(r53: &aws_sdk_route53::Client, name: &str, private: bool) -> String {
    let mut req = r53.create_hosted_zone().name(name).caller_reference(format!("{name}-{private}"));
    if private {
        req = req
            .hosted_zone_config(aws_sdk_route53::types::HostedZoneConfig::builder().private_zone(true).build())
            .vpc(aws_sdk_route53::types::Vpc::builder().vpc_id("vpc-0123").vpc_region("us-west-2".into()).build());
    }
    let out = req.send().await.unwrap();
    out.hosted_zone().unwrap().id().trim_start_matches("/hostedzone/").to_owned()
}

async fn cnames(r53: &aws_sdk_route53::Client, zone: &str) -> Vec<(String, String)> {
    let out = r53.list_resource_record_sets().hosted_zone_id(zone).send().await.unwrap();
    out.resource_record_sets()
        .iter()
        .filter(|r| r.r#type().as_str() == "CNAME")
        .map(|r| (r.name().to_owned(), r.resource_records()[0].value().to_owned()))
        .collect()
}

#[tokio::test]
async fn the_certificate_is_issued_through_its_validation_record_and_destroy_removes_only_ours() {
    let account = Emulator::shared().expect("emulator").account("us-west-2").await;
    let r53 = aws_sdk_route53::Client::new(&account.config);
    let acm = aws_sdk_acm::Client::new(&account.config);
    let public = zone(&r53, "example.com", false).await;
    let _private = zone(&r53, "dify.example.com", true).await;
    // Someone else's record in the zone.
    r53.change_resource_record_sets()
        .hosted_zone_id(&public)
        .change_batch(
            aws_sdk_route53::types::ChangeBatch::builder()
                .changes(
                    aws_sdk_route53::types::Change::builder()
                        .action(aws_sdk_route53::types::ChangeAction::Create)
                        .resource_record_set(
                            aws_sdk_route53::types::ResourceRecordSet::builder()
                                .name("www.example.com.")
                                .r#type(aws_sdk_route53::types::RrType::Cname)
                                .ttl(60)
                                .resource_records(
                                    aws_sdk_route53::types::ResourceRecord::builder()
                                        .value("elsewhere.net")
                                        .build()
                                        .unwrap(),
                                )
                                .build()
                                .unwrap(),
                        )
                        .build()
                        .unwrap(),
                )
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap();

    let ctx = Context::new("plat-a", Environment::Test, "us-west-2").unwrap();
    let p = CertificateProvisioner::from_conf(&account.config);
    let spec = spec("dify.example.com");
    let plan = p.plan(&ctx, &spec).await.unwrap();
    assert!(plan.to_string().contains("acm:certificate") && plan.to_string().contains(&public), "{plan}");

    let out = p.apply(&ctx, &spec).await.unwrap();
    assert_eq!(out.hosted_zone_id.as_deref(), Some(public.as_str()), "the public zone, never the private one");
    let arn = out.certificate_arn.clone().unwrap();
    let cert = acm.describe_certificate().certificate_arn(&arn).send().await.unwrap();
    let cert = cert.certificate().unwrap();
    assert_eq!(cert.status().unwrap().as_str(), "ISSUED");
    let mut sans = cert.subject_alternative_names().to_vec();
    sans.sort();
    assert_eq!(sans, ["*.dify.example.com", "dify.example.com"]);
    let tags = acm.list_tags_for_certificate().certificate_arn(&arn).send().await.unwrap();
    assert!(tags.tags().iter().any(|t| t.key() == dify_stack_core::TAG_STACK && t.value() == Some("plat-a")));
    let record = cert.domain_validation_options()[0].resource_record().unwrap();
    assert!(cnames(&r53, &public).await.contains(&(record.name().to_owned(), record.value().to_owned())));
    assert!(p.plan(&ctx, &spec).await.unwrap().is_empty(), "a second plan is empty");
    assert_eq!(p.apply(&ctx, &spec).await.unwrap(), out, "the same certificate");

    // After the install: the six host names as aliases of the release's load balancer.
    let dns = dify_stack_platform::SdkDns::from_conf(&account.config);
    let target = dify_stack_platform::aliases::AliasTarget {
        dns_name: "k8s-dify-dify-0123456789.us-west-2.elb.amazonaws.com".into(),
        hosted_zone_id: "Z1H1FL5HABSF5".into(),
    };
    dify_stack_platform::aliases::publish(&ctx, &dns, &public, "dify.example.com", &target).await.unwrap();
    let sets = r53.list_resource_record_sets().hosted_zone_id(&public).send().await.unwrap();
    let console = sets
        .resource_record_sets()
        .iter()
        .find(|r| r.name() == "console.dify.example.com." && r.r#type().as_str() == "A")
        .expect("console alias");
    let alias = console.alias_target().unwrap();
    assert_eq!(
        (alias.dns_name(), alias.hosted_zone_id()),
        ("k8s-dify-dify-0123456789.us-west-2.elb.amazonaws.com.", "Z1H1FL5HABSF5")
    );
    // Re-publishing finds every record as wanted (read back through the SDK) and writes nothing.
    account.calls.reset();
    dify_stack_platform::aliases::publish(&ctx, &dns, &public, "dify.example.com", &target).await.unwrap();
    assert!(
        !account.calls.by_operation().keys().any(|op| op.contains("ChangeResourceRecordSets")),
        "{:?}",
        account.calls.by_operation()
    );

    let deleted = p.destroy(&ctx, &spec).await.unwrap();
    assert_eq!(deleted.len(), 8, "six aliases, the validation record, the certificate: {deleted:?}");
    assert_eq!(cnames(&r53, &public).await, [("www.example.com.".to_owned(), "elsewhere.net".to_owned())]);
    let left = r53.list_resource_record_sets().hosted_zone_id(&public).send().await.unwrap();
    assert!(left.resource_record_sets().iter().all(|r| !r.name().contains("dify.example.com")), "{left:?}");
    assert!(acm.describe_certificate().certificate_arn(&arn).send().await.is_err(), "certificate left");
}

#[tokio::test]
async fn without_the_record_in_a_public_zone_the_certificate_is_not_issued() {
    let account = Emulator::shared().expect("emulator").account("us-west-2").await;
    let r53 = aws_sdk_route53::Client::new(&account.config);
    // Only a private zone holds the name: ACM cannot see the record.
    let private = zone(&r53, "example.org", true).await;
    let mut ctx = Context::new("plat-b", Environment::Test, "us-west-2").unwrap();
    ctx.wait = ctx.wait.with_max_wait(std::time::Duration::from_secs(2));
    let p = CertificateProvisioner::from_conf(&account.config);
    let mut spec = spec("dify.example.org");
    spec.domain.hosted_zone_id = Some(private);
    let err = p.apply(&ctx, &spec).await.unwrap_err();
    assert!(err.to_string().contains("ACM to issue") && err.to_string().contains("dify.example.org"), "{err}");
    p.destroy(&ctx, &spec).await.unwrap();
}

async fn upsert_caa(r53: &aws_sdk_route53::Client, zone: &str, name: &str, value: &str) {
    use aws_sdk_route53::types::{Change, ChangeAction, ChangeBatch, ResourceRecord, ResourceRecordSet, RrType};
    let set = ResourceRecordSet::builder()
        .name(name)
        .r#type(RrType::Caa)
        .ttl(60)
        .resource_records(ResourceRecord::builder().value(value).build().unwrap())
        .build()
        .unwrap();
    let change = Change::builder().action(ChangeAction::Upsert).resource_record_set(set).build().unwrap();
    r53.change_resource_record_sets()
        .hosted_zone_id(zone)
        .change_batch(ChangeBatch::builder().changes(change).build().unwrap())
        .send()
        .await
        .unwrap();
}

/// A CAA record that allows only another CA fails the certificate after validation (the strict
/// emulator's model of ACM's CAA check). Within the hour the stack's idempotency token gets the
/// failed certificate back; once the CAA record allows Amazon, the plan shows the replacement and
/// apply requests a new certificate under another token, which is issued, and deletes the failed
/// one.
#[tokio::test]
async fn a_certificate_failed_by_caa_is_replaced_once_the_record_allows_amazon() {
    let account = Emulator::shared().expect("emulator").account("us-west-2").await;
    let r53 = aws_sdk_route53::Client::new(&account.config);
    let acm = aws_sdk_acm::Client::new(&account.config);
    let public = zone(&r53, "example.net", false).await;
    upsert_caa(&r53, &public, "example.net.", "0 issue \"letsencrypt.org\"").await;
    let mut ctx = Context::new("plat-c", Environment::Test, "us-west-2").unwrap();
    ctx.wait = ctx.wait.with_max_wait(std::time::Duration::from_secs(60));
    let p = CertificateProvisioner::from_conf(&account.config);
    let spec = spec("dify.example.net");

    let err = p.apply(&ctx, &spec).await.unwrap_err();
    assert!(err.to_string().contains("is FAILED: CAA_ERROR"), "{err}");
    let listed = acm.list_certificates().send().await.unwrap();
    let failed = listed.certificate_summary_list()[0].certificate_arn().unwrap().to_owned();
    // ACM's one-hour idempotency window: the stack's token answers with the failed certificate.
    let again = acm
        .request_certificate()
        .domain_name("dify.example.net")
        .subject_alternative_names("dify.example.net")
        .subject_alternative_names("*.dify.example.net")
        .validation_method(aws_sdk_acm::types::ValidationMethod::Dns)
        .idempotency_token(dify_stack_platform::names::certificate_token(&ctx, "dify.example.net"))
        .send()
        .await
        .unwrap();
    assert_eq!(again.certificate_arn(), Some(failed.as_str()));
    // While the cause stays, each apply replaces the failed certificate and fails again: one
    // certificate at a time, under a new token each time.
    assert!(p.apply(&ctx, &spec).await.unwrap_err().to_string().contains("CAA_ERROR"));
    let listed = acm.list_certificates().send().await.unwrap();
    assert_eq!(listed.certificate_summary_list().len(), 1, "{listed:?}");
    let failed_again = listed.certificate_summary_list()[0].certificate_arn().unwrap().to_owned();
    assert_ne!(failed_again, failed);
    let failed = failed_again;

    upsert_caa(&r53, &public, "example.net.", "0 issue \"amazon.com\"").await;
    let plan = p.plan(&ctx, &spec).await.unwrap();
    assert!(
        plan.to_string().contains(&format!("replace failed certificate {failed} (status FAILED: CAA_ERROR)")),
        "{plan}"
    );
    let out = p.apply(&ctx, &spec).await.unwrap();
    let arn = out.certificate_arn.clone().unwrap();
    assert_ne!(arn, failed);
    let cert = acm.describe_certificate().certificate_arn(&arn).send().await.unwrap();
    assert_eq!(cert.certificate().unwrap().status().unwrap().as_str(), "ISSUED");
    assert!(acm.describe_certificate().certificate_arn(&failed).send().await.is_err(), "the failed one is deleted");
    assert!(p.plan(&ctx, &spec).await.unwrap().is_empty(), "a second plan is empty");
    p.destroy(&ctx, &spec).await.unwrap();
}
