//! OpenSearch against mocks: polled until ready, a stuck domain bounded by its cap, and apply
//! making exactly the writes its plan shows.

use super::*;

#[tokio::test(start_paused = true)]
async fn opensearch_is_polled_until_not_processing_and_the_vpc_endpoint_is_set() {
    let ctx = ctx_in("us-west-2", Environment::Test);
    let tags = owned_tags(&ctx, "opensearch", "ds-mock-search");
    let calls = Arc::new(AtomicUsize::new(0));
    let mut search = MockOpenSearchApi::new();
    let c = calls.clone();
    search.expect_describe().returning(move |name| {
        let n = c.fetch_add(1, Ordering::SeqCst);
        let base = DomainInfo {
            name,
            arn: "arn:aws:es:us-west-2:1:domain/ds-mock-search".into(),
            tags: tags.clone(),
            ..Default::default()
        };
        Ok(match n {
            0 => None, // observe: absent
            1..=3 => Some(DomainInfo { processing: true, ..base }),
            4 => Some(DomainInfo { processing: false, vpc_endpoint: None, ..base }),
            _ => {
                Some(DomainInfo { vpc_endpoint: Some("vpc-ds-mock-search.us-west-2.es.amazonaws.com".into()), ..base })
            }
        })
    });
    // A fresh account: no service-linked role until we create it, and OpenSearch refuses the
    // first CreateDomain while the new role propagates (the refusal real AWS gives when the role
    // is missing).
    let slr = Arc::new(AtomicUsize::new(0));
    let s1 = slr.clone();
    search.expect_service_linked_role_exists().returning(move || Ok(s1.load(Ordering::SeqCst) > 0));
    let s2 = slr.clone();
    search.expect_create_service_linked_role().times(1).returning(move || {
        s2.fetch_add(1, Ordering::SeqCst);
        Ok(())
    });
    let created = Arc::new(Mutex::new(None));
    let cr = created.clone();
    let attempts = Arc::new(AtomicUsize::new(0));
    let a = attempts.clone();
    search.expect_create().times(2).returning(move |config| {
        if a.fetch_add(1, Ordering::SeqCst) == 0 {
            return Err(dify_stack_core::AwsError::new(
                "CreateDomain",
                "ValidationException",
                "Before you can proceed, you must enable a service-linked role to give Amazon OpenSearch Service permissions to access your VPC.",
            ));
        }
        *cr.lock().unwrap() = Some((
            config.subnet_ids.clone(),
            config.access_policy.clone(),
            config.master.as_ref().map(|m| m.0.clone()),
        ));
        Ok(DomainInfo::default())
    });
    let os = OpenSearchProvisioner::new(
        Arc::new(search),
        Arc::new(ready_sg(&ctx, 443, "ds-mock-opensearch")),
        Arc::new(ready_secrets(&ctx, "ds-mock/opensearch-master")),
    );
    let out = os.apply(&ctx, &spec(Environment::Test, 2)).await.unwrap();
    assert_eq!(out.endpoint, "vpc-ds-mock-search.us-west-2.es.amazonaws.com");
    assert_eq!(calls.load(Ordering::SeqCst), 6);
    assert_eq!(slr.load(Ordering::SeqCst), 1, "the service-linked role was created once");
    assert_eq!(attempts.load(Ordering::SeqCst), 2, "CreateDomain retried while the role propagated");
    let (subnets, policy, user) = created.lock().unwrap().clone().unwrap();
    assert_eq!(subnets, [SubnetId::new("subnet-0")], "one subnet per node AZ");
    assert_eq!(user.as_deref(), Some("dify-admin"));
    let policy: serde_json::Value = serde_json::from_str(&policy).unwrap();
    // Principal `*`: Dify signs nothing (basic auth as the master user); FGAC does the gating.
    assert_eq!(policy["Statement"][0]["Principal"]["AWS"], "*");
    assert_eq!(policy["Statement"][0]["Resource"], "arn:aws:es:us-west-2:123456789012:domain/ds-mock-search/*");
}

#[tokio::test(start_paused = true)]
async fn a_domain_stuck_processing_times_out_within_the_cap() {
    // The default wait policy: the OpenSearch cap applies as written, not cut to a shorter
    // global default (prod OpenSearch creates have a p95 of 60 min, aws-durations.toml).
    let ctx = Context::new("ds-mock", Environment::Test, "us-west-2").unwrap().with_account_id("123456789012");
    let tags = owned_tags(&ctx, "opensearch", "ds-mock-search");
    let mut search = MockOpenSearchApi::new();
    search.expect_describe().returning(move |name| {
        Ok(Some(DomainInfo {
            name,
            processing: true,
            tags: tags.clone(),
            at_rest_encryption: true,
            node_to_node: true,
            enforce_https: true,
            fine_grained: true,
            tls_policy: Some(crate::opensearch::TLS_POLICY.into()),
            engine_version: "OpenSearch_2.19".into(),
            ..Default::default()
        }))
    });
    let os = OpenSearchProvisioner::new(
        Arc::new(search),
        Arc::new(ready_sg(&ctx, 443, "ds-mock-opensearch")),
        Arc::new(ready_secrets(&ctx, "ds-mock/opensearch-master")),
    );
    let start = tokio::time::Instant::now();
    let err = os.apply(&ctx, &spec(Environment::Test, 2)).await.unwrap_err();
    assert!(matches!(err, DatastoresError::Wait(dify_stack_core::WaitError::TimedOut { .. })), "{err:?}");
    assert!(err.is_retryable());
    // The OpenSearch cap (90 min) is what the default policy waits, and no longer.
    assert!(
        start.elapsed() >= caps::OPENSEARCH && start.elapsed() < caps::OPENSEARCH + Duration::from_secs(61),
        "{:?}",
        start.elapsed()
    );
}

/// A domain that drifted in place (one node fewer, a lost tag, someone's access policy): the
/// plan shows one update listing exactly those, and apply makes one UpdateDomainConfig carrying
/// the spec's values and one AddTags with the lost tag. The mock has no create or delete.
#[tokio::test(start_paused = true)]
async fn a_drifted_domain_gets_exactly_the_writes_its_plan_shows() {
    let ctx = ctx_in("us-west-2", Environment::Prod);
    let spec = spec(Environment::Prod, 3);
    let want = OpenSearchProvisioner::config_for(&ctx, &spec, "sg-ds-mock-opensearch");
    let mut tags = want.tags.clone();
    let lost = tags.keys().next().unwrap().clone();
    tags.remove(&lost);
    let updated = Arc::new(AtomicUsize::new(0));
    let u = updated.clone();
    let (engine, count) = (spec.opensearch.engine_version.clone(), want.instance_count);
    let mut found = DomainInfo {
        name: "ds-mock-search".into(),
        arn: "arn:aws:es:us-west-2:1:domain/ds-mock-search".into(),
        engine_version: engine,
        instance_type: want.instance_type.clone(),
        instance_count: count - 1,
        zone_awareness: want.zone_awareness,
        volume: Some(("gp3".into(), want.volume_gib)),
        subnet_ids: want.subnet_ids.clone(),
        security_group_ids: vec![want.security_group_id.clone()],
        vpc_endpoint: Some("vpc-search".into()),
        at_rest_encryption: true,
        node_to_node: true,
        enforce_https: true,
        tls_policy: Some(crate::opensearch::TLS_POLICY.into()),
        fine_grained: true,
        access_policy: Some(r#"{"Statement":[]}"#.into()),
        tags,
        ..Default::default()
    };
    let mut search = MockOpenSearchApi::new();
    search.expect_describe().withf(|n| n == "ds-mock-search").returning(move |_| {
        if u.load(Ordering::SeqCst) > 0 {
            found.instance_count = count;
        }
        Ok(Some(found.clone()))
    });
    let u = updated.clone();
    search
        .expect_update()
        .withf(move |c| {
            c.instance_count == count && c.security_group_id.as_str() == "sg-ds-mock-opensearch" && c.master.is_none()
        })
        .times(1)
        .returning(move |_| {
            u.fetch_add(1, Ordering::SeqCst);
            Ok(())
        });
    let key = lost.clone();
    search
        .expect_tag()
        .withf(move |arn, t| arn.as_str().ends_with("domain/ds-mock-search") && t.keys().eq([&key]))
        .times(1)
        .returning(|_, _| Ok(()));
    let mut sg = MockSgApi::new();
    let sg_tags = owned_tags(&ctx, "opensearch-security-group", "ds-mock-opensearch");
    sg.expect_find().withf(|vpc, n| vpc.as_str() == "vpc-1" && n == "ds-mock-opensearch").returning(move |_, n| {
        Ok(Some(SgInfo {
            id: SecurityGroupId::new(format!("sg-{n}")),
            tags: sg_tags.clone(),
            ingress: vec![("tcp".into(), 443, 443, "sg-nodes".into())],
        }))
    });
    let os = OpenSearchProvisioner::new(
        Arc::new(search),
        Arc::new(sg),
        Arc::new(ready_secrets(&ctx, "ds-mock/opensearch-master")),
    );
    let plan = os.plan(&ctx, &spec).await.unwrap();
    assert_eq!(plan.changes.len(), 1, "{plan}");
    let fields: Vec<&str> = plan.changes[0].fields.iter().map(|f| f.path.as_str()).collect();
    assert_eq!(fields, ["instance_count", "access_policy", &format!("tags.{lost}")], "{plan}");
    let out = os.apply(&ctx, &spec).await.unwrap();
    assert_eq!(out.endpoint, "vpc-search");
    assert_eq!(updated.load(Ordering::SeqCst), 1);
}
