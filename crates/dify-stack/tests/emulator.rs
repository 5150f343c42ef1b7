//! The whole stack, end to end, against the local AWS emulator.

mod contract;
mod inventory;

use dify_stack::{DataPolicy, EventSink, LockError, Profile, Stack, StackConfig, StackError};
use dify_stack_emulator::Emulator;

/// The test profile as the emulator can run it: no Kubernetes API (service accounts are left
/// to the Helm chart) and no internet (no thumbprint discovery).
fn config(name: &str) -> StackConfig {
    let mut cfg = Profile::Test.config().with_name(name).expect("a valid stack name");
    cfg.iam.service_accounts = false;
    cfg.eks.checkip_url = Emulator::shared().expect("emulator").checkip_url();
    cfg.iam.discover_thumbprint = false;
    cfg
}

#[tokio::test]
async fn test_profile_end_to_end_apply_noop_values_and_destroy() {
    // On the heap: the whole scenario's future holds every step's state.
    Box::pin(end_to_end()).await;
}

async fn end_to_end() {
    let account = Emulator::shared().expect("emulator").account("us-west-2").await;
    // Dify served under a domain of the account's public hosted zone: the certificate node
    // requests the certificate and validates it through the zone, alongside everything else.
    let r53 = aws_sdk_route53::Client::new(&account.config);
    let zone = r53.create_hosted_zone().name("example.com").caller_reference("e2e").send().await.unwrap();
    let zone_id = zone.hosted_zone().unwrap().id().trim_start_matches("/hostedzone/").to_owned();
    let mut cfg = config("e2e-test");
    cfg.dify.domain = Some("dify.example.com".into());
    // The whole account before the first apply, tagged or not (the zone is the user's).
    let before = Emulator::shared().unwrap().state(&account.account_id, "us-west-2").await;
    let stack = Stack::connect(cfg, account.config.clone()).await.unwrap();
    assert_eq!(stack.account(), account.account_id);

    let plan = stack.plan().await.unwrap();
    assert!(plan.len() >= 40, "{plan}");
    assert!(plan.nodes.values().all(|p| !p.plan.is_empty()), "every node shows its resources:\n{plan}");
    assert!(plan.nodes[&dify_stack::Node::Eks].upstream_pending);
    assert!(inventory::inventory(&account.config, "e2e-test").await.is_empty(), "plan writes nothing");
    // The default Kubernetes access: the public endpoint opened to this machine only, and said so.
    assert!(plan.notes.iter().any(|n| n.contains("127.0.0.1/32 is this machine")), "{:?}", plan.notes);
    assert!(plan.to_string().starts_with("Note: Kubernetes API: private endpoint on; public endpoint limited to"));
    // The quota preflight through the whole stack: the EKS clusters quota judged on the region's
    // clusters (ListClusters through the EKS tier), the VPC quotas through Service Quotas.
    for quota in ["eks L-1194D53C", "vpc L-F678F1CE", "vpc L-FE5A380F"] {
        assert!(plan.notes.iter().any(|n| n.contains(quota) && n.ends_with("fits")), "{quota}: {:?}", plan.notes);
    }

    let (sink, mut events) = EventSink::channel();
    let stack = stack.with_events(sink);
    let out = stack.apply().await.unwrap();
    assert!(out.is_complete(), "{out:?}");
    let mut finished = 0;
    while let Ok(e) = events.try_recv() {
        finished += usize::from(matches!(e, dify_stack::Event::NodeFinished { .. }));
    }
    assert_eq!(finished, dify_stack::Node::ALL.len());
    let cert = out.certificate.as_ref().unwrap();
    assert_eq!(cert.hosted_zone_id.as_deref(), Some(zone_id.as_str()));
    let acm = aws_sdk_acm::Client::new(&account.config);
    let issued =
        acm.describe_certificate().certificate_arn(cert.certificate_arn.clone().unwrap()).send().await.unwrap();
    assert_eq!(issued.certificate().and_then(|c| c.status()).map(|s| s.as_str()), Some("ISSUED"));
    // The platform: metrics-server as the EKS add-on (offered for 1.33), owned by the platform
    // node; no Kubernetes API here, so the releases come back as commands with their values,
    // whose IRSA roles the IAM node made, each trusted by exactly its service account.
    let platform = out.platform.as_ref().unwrap();
    assert_eq!(platform.metrics_server.as_deref(), Some("eks-addon v0.7.2-eksbuild.3"));
    let addon = aws_sdk_eks::Client::new(&account.config)
        .describe_addon()
        .cluster_name("e2e-test")
        .addon_name("metrics-server")
        .send()
        .await
        .unwrap();
    assert_eq!(
        addon.addon().and_then(|a| a.tags()).and_then(|t| t.get("dify-stack:tier")).map(String::as_str),
        Some("platform")
    );
    // The autoscaler's release, the controller's CRDs (server-side applied: Helm never upgrades
    // crds/), the controller's release, the IngressClass.
    assert_eq!(platform.commands.len(), 4, "{:?}", platform.commands);
    assert!(platform.commands[1].starts_with("helm show crds aws-load-balancer-controller"), "{:?}", platform.commands);
    let iam = out.iam.as_ref().unwrap();
    for (addon, sa) in
        [("aws-load-balancer-controller", "aws-load-balancer-controller"), ("cluster-autoscaler", "cluster-autoscaler")]
    {
        let arn = iam.addon_roles[addon].to_string();
        assert!(platform.release_values[addon].contains(&arn), "{addon} values name its role");
        let role = aws_sdk_iam::Client::new(&account.config)
            .get_role()
            .role_name(format!("e2e-test-{addon}"))
            .send()
            .await
            .unwrap();
        let trust = dify_stack_iam::policy::parse_document(role.role().unwrap().assume_role_policy_document().unwrap())
            .unwrap();
        let sub = trust["Statement"][0]["Condition"]["StringEquals"]
            .as_object()
            .unwrap()
            .iter()
            .find(|(k, _)| k.ends_with(":sub"))
            .unwrap()
            .1
            .clone();
        assert_eq!(sub, serde_json::json!([format!("system:serviceaccount:kube-system:{sa}")]));
    }
    let after_apply = inventory::inventory(&account.config, "e2e-test").await;
    let cluster = aws_sdk_eks::Client::new(&account.config).describe_cluster().name("e2e-test").send().await.unwrap();
    let vpc = cluster.cluster().and_then(|c| c.resources_vpc_config()).unwrap();
    assert!(vpc.endpoint_private_access() && vpc.endpoint_public_access());
    assert_eq!(vpc.public_access_cidrs(), ["127.0.0.1/32"], "the caller's /32 and nothing else");
    assert!(after_apply.len() >= 40, "{after_apply:#?}");

    // Second run: nothing to do, nothing new.
    let plan = stack.plan().await.unwrap();
    assert!(plan.is_empty(), "{plan}");
    let again = stack.apply().await.unwrap();
    assert_eq!(again, out);
    assert_eq!(inventory::inventory(&account.config, "e2e-test").await, after_apply);

    // Outputs are recorded; values.yaml is filled from live state.
    // Recorded typed: everything but secret values (never stored) reads back as applied.
    let recorded = stack.output().await.unwrap();
    assert_eq!(serde_json::to_value(&recorded).unwrap(), serde_json::to_value(&out).unwrap());
    assert_eq!(recorded.eks.as_ref().unwrap().cluster_name.as_str(), "e2e-test");
    assert_eq!(recorded.kubeconfig(), out.kubeconfig());
    let values = stack.helm_values(&out).await.unwrap();
    // Empty on purpose: no Redis user (AUTH token only), no S3 endpoint or keys (IRSA).
    let mut empty = dify_stack::output::empty_values(&values);
    empty.sort();
    assert_eq!(
        empty,
        ["externalRedis.username", "persistence.s3.accessKey", "persistence.s3.endpoint", "persistence.s3.secretKey"],
        "{values}"
    );
    for needle in [
        "sslMode: require",
        "useSSL: true",
        "useAwsManagedIam: true",
        "imageRepoType: ecr",
        out.aurora.as_ref().unwrap().writer_endpoint.as_str(),
        out.opensearch.as_ref().unwrap().endpoint.as_str(),
        out.bucket.as_ref().unwrap().name.as_str(),
        "dify_plugin_daemon",
        // The application role, never the RDS-managed master user (its password rotates).
        "user: dify_app",
    ] {
        assert!(values.contains(needle), "{needle} missing in\n{values}");
    }
    // The emulator has no Kubernetes API: the objects apply did not make are written instead.
    let manifests = dify_stack::output::kubernetes_manifests(
        &out,
        "dify",
        &dify_stack_eks::workloads::volume_tags(stack.context()),
    )
    .unwrap();
    assert!(manifests.contains("tagSpecification_1"), "{manifests}");
    assert_eq!(manifests.matches("kind: ServiceAccount").count(), 6, "{manifests}");
    assert!(manifests.contains("eks.amazonaws.com/role-arn: arn:aws:iam::"), "{manifests}");
    assert!(manifests.contains("provisioner: ebs.csi.aws.com"), "{manifests}");
    assert_eq!(manifests.matches("meta.helm.sh/release-name: dify").count(), 6, "{manifests}");
    // The values contract: every key is one the chart has, every required key is there; with a
    // domain and a certificate the domain keys and the ALB Ingress appear too, with the
    // certificate the stack made.
    contract::check_values_contract(&values, true, true);
    assert!(values.contains(&format!("certificate-arn: {}", cert.certificate_arn.as_deref().unwrap())), "{values}");
    golden_from_the_emulator(&values, &out);
    let plain = Stack::connect(config("e2e-test"), account.config.clone()).await.unwrap();
    contract::check_values_contract(&plain.helm_values(&out).await.unwrap(), false, true);
    // Without a domain, install is refused before Helm, the image check or any change, naming
    // the field and the fix (README, "Installing Dify EE").
    let release = dify_stack::install::DifyRelease::of(plain.config());
    assert_eq!(release.version, "3.9.1");
    let refused = plain.install_dify(&release, &out, &|_: &str| {}).await.unwrap_err();
    assert!(matches!(refused, StackError::Install(dify_stack::install::InstallError::NoDomain)), "{refused}");
    assert!(refused.to_string().contains("set [dify] domain"), "{refused}");
    // Permissions: none by default; a replacement permission keeps destroy's data permission.
    use dify_stack::core::Permissions;
    assert_eq!(plain.context().permissions, Permissions::default());
    let allowed = plain.with_data_policy(DataPolicy::delete_everything()).with_permissions(Permissions {
        allow_replace: true,
        allow_data_loss: false,
        ..Default::default()
    });
    assert_eq!(
        allowed.context().permissions,
        Permissions { allow_replace: true, allow_data_loss: true, lift_deletion_protection: true }
    );
    let mut with_domain = config("e2e-test");
    with_domain.dify.domain = Some("dify.example.com".into());
    with_domain.dify.certificate_arn = Some("arn:aws:acm:us-west-2:123456789012:certificate/abc".into());
    let site = Stack::connect(with_domain, account.config.clone()).await.unwrap();
    let values = site.helm_values(&out).await.unwrap();
    contract::check_values_contract(&values, true, true);
    assert!(values.contains("consoleApiDomain: console.dify.example.com"), "{values}");
    assert!(values.contains("className: alb"), "{values}");

    let kubeconfig = Stack::kubeconfig(&out).unwrap();
    assert!(kubeconfig.contains("get-token") && kubeconfig.contains("e2e-test"));

    // What the AWS Load Balancer Controller makes for an Ingress: a load balancer, a target
    // group and a security group in the stack's public subnets, tagged for the cluster and not
    // for the stack. Destroy must remove them, or the VPC cannot be deleted.
    let net = out.network.as_ref().unwrap();
    let ec2 = aws_sdk_ec2::Client::new(&account.config);
    let lbc_tag = aws_sdk_ec2::types::Tag::builder().key("elbv2.k8s.aws/cluster").value("e2e-test").build();
    let lb_sg = ec2
        .create_security_group()
        .group_name("k8s-dify-dify-0123456789")
        .description("[k8s] Managed SecurityGroup for LoadBalancer")
        .vpc_id(net.vpc_id.as_str())
        .tag_specifications(
            aws_sdk_ec2::types::TagSpecification::builder()
                .resource_type(aws_sdk_ec2::types::ResourceType::SecurityGroup)
                .tags(lbc_tag)
                .build(),
        )
        .send()
        .await
        .unwrap()
        .group_id()
        .unwrap()
        .to_owned();
    let elb = aws_sdk_elasticloadbalancingv2::Client::new(&account.config);
    let elb_tag =
        aws_sdk_elasticloadbalancingv2::types::Tag::builder().key("elbv2.k8s.aws/cluster").value("e2e-test").build();
    let lb = elb
        .create_load_balancer()
        .name("k8s-dify-dify-0123456789")
        .set_subnets(Some(net.public_subnets.iter().map(|s| s.id.to_string()).collect()))
        .security_groups(&lb_sg)
        .tags(elb_tag.clone())
        .tags(
            aws_sdk_elasticloadbalancingv2::types::Tag::builder()
                .key("ingress.k8s.aws/stack")
                .value("dify/dify")
                .build(),
        )
        .send()
        .await
        .unwrap();
    let lb_arn = lb.load_balancers()[0].load_balancer_arn().unwrap().to_owned();
    // What an uninstall waits for: the load balancers of the release's namespace, by their tags.
    {
        use dify_stack_eks::load_balancers::{LoadBalancerApi as _, SdkLoadBalancers};
        let lbs = SdkLoadBalancers::from_conf(&account.config);
        let (vpc, cluster) = (net.vpc_id.clone(), dify_stack::core::ids::ClusterName::new("e2e-test"));
        let of = |ns: &str| lbs.cluster_load_balancers(vpc.clone(), cluster.clone(), Some(ns.to_owned()));
        let found = of("dify").await.unwrap();
        assert_eq!(found.iter().map(|l| l.id.as_str()).collect::<Vec<_>>(), [lb_arn.as_str()]);
        assert!(of("other").await.unwrap().is_empty());
        assert!(lbs.cluster_load_balancers(vpc.clone(), "other".into(), Some("dify".into())).await.unwrap().is_empty());
        // After install: the six hosts become aliases of this load balancer, found by the
        // controller's tags (what `install` does once the rollout is done).
        let (dns_name, lb_zone) = lbs.alias_target(&lb_arn).await.unwrap().unwrap();
        assert!(dns_name.contains("k8s-dify-dify") && !lb_zone.is_empty(), "{dns_name} {lb_zone}");
        let ctx = dify_stack::core::Context::new("e2e-test", dify_stack::core::Environment::Test, "us-west-2").unwrap();
        let target = dify_stack_platform::aliases::AliasTarget { dns_name: dns_name.clone(), hosted_zone_id: lb_zone };
        let dns = dify_stack_platform::SdkDns::from_conf(&account.config);
        dify_stack_platform::aliases::publish(&ctx, &dns, &zone_id, "dify.example.com", &target).await.unwrap();
        let sets = r53.list_resource_record_sets().hosted_zone_id(&zone_id).send().await.unwrap();
        let aliases: Vec<&str> = sets
            .resource_record_sets()
            .iter()
            .filter(|r| r.r#type().as_str() == "A")
            .filter(|r| r.alias_target().is_some_and(|a| a.dns_name().trim_end_matches('.') == dns_name))
            .map(|r| r.name())
            .collect();
        assert_eq!(aliases.len(), 6, "{sets:?}");
        assert!(aliases.contains(&"console.dify.example.com."), "{aliases:?}");
    }
    elb.create_target_group()
        .name("k8s-dify-dify-tg")
        .protocol(aws_sdk_elasticloadbalancingv2::types::ProtocolEnum::Http)
        .port(80)
        .vpc_id(net.vpc_id.as_str())
        .target_type(aws_sdk_elasticloadbalancingv2::types::TargetTypeEnum::Ip)
        .tags(elb_tag)
        .send()
        .await
        .unwrap();

    // Another operator applied from their machine (their /32 is in the control bucket) and
    // an office range is now allowed: the plan is the endpoint access update alone, apply makes
    // it, the next plan is empty, and every address stays on the cluster.
    let control = stack.control();
    let mut operators = control.load_operators("e2e-test").await.unwrap();
    assert_eq!(operators.cidrs(), ["127.0.0.1/32"], "this machine's address is recorded");
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
    operators.touch("203.0.113.7".parse().unwrap(), "arn:aws:iam::123456789012:user/other-operator", now);
    control.save_operators("e2e-test", &operators).await.unwrap();
    let mut office = config("e2e-test");
    office.dify.domain = Some("dify.example.com".into());
    office.eks.endpoint.public_access_cidrs.push("198.51.100.0/24".into());
    let office = Stack::connect(office, account.config.clone()).await.unwrap();
    let plan = office.plan().await.unwrap();
    let changes: Vec<_> = plan.nodes.values().flat_map(|p| p.plan.changes.iter()).collect();
    assert_eq!(changes.len(), 1, "the endpoint access update alone:\n{plan}");
    assert!(plan.to_string().contains("198.51.100.0/24") && plan.to_string().contains("203.0.113.7/32"), "{plan}");
    office.apply().await.unwrap();
    assert!(office.plan().await.unwrap().is_empty(), "converged");
    let eks = aws_sdk_eks::Client::new(&account.config);
    let cluster = eks.describe_cluster().name("e2e-test").send().await.unwrap();
    let mut cidrs = cluster.cluster().unwrap().resources_vpc_config().unwrap().public_access_cidrs().to_vec();
    cidrs.sort();
    assert_eq!(cidrs, ["127.0.0.1/32", "198.51.100.0/24", "203.0.113.7/32"]);

    // Destroy with --delete-data leaves nothing carrying the stack tag ...
    let stack = stack.with_data_policy(DataPolicy::delete_everything());
    let deleted = stack.destroy().await.unwrap();
    assert!(deleted.len() >= 40, "{deleted:?}");
    assert_eq!(inventory::inventory(&account.config, "e2e-test").await, Vec::<String>::new());
    // ... and nothing at all, tagged or not: the account's whole state is what it was before
    // the first apply, the control bucket (the lock and recorded outputs live there) aside.
    let after = Emulator::shared().unwrap().state(&account.account_id, "us-west-2").await;
    let control = stack.control().name().to_owned();
    // The OpenSearch service-linked role is the account's, made once for every domain (AWS
    // documents it as created on the first domain and kept; deleting it while any domain exists
    // fails), so destroy keeps it.
    let leaked: Vec<&String> = after
        .iter()
        .filter(|l| !before.contains(l) && !l.contains(&control))
        .filter(|l| !l.contains("(AWSServiceRoleForAmazonOpenSearchService)"))
        .collect();
    assert!(leaked.is_empty(), "left in the account after destroy: {leaked:#?}");
    assert!(stack.output().await.is_err(), "outputs forgotten");
    let certs = acm.list_certificates().send().await.unwrap();
    assert!(certs.certificate_summary_list().is_empty(), "certificate left: {certs:?}");
    let records = r53.list_resource_record_sets().hosted_zone_id(&zone_id).send().await.unwrap();
    assert!(records.resource_record_sets().iter().all(|r| !r.name().starts_with('_')), "validation record left");
    assert!(
        records.resource_record_sets().iter().all(|r| !r.name().ends_with("dify.example.com.")),
        "aliases or markers left: {records:?}"
    );
    // ... and nothing Kubernetes made for the cluster.
    let lbs = elb.describe_load_balancers().send().await.unwrap();
    assert!(lbs.load_balancers().iter().all(|l| l.load_balancer_arn() != Some(lb_arn.as_str())), "load balancer left");
    assert!(elb.describe_target_groups().send().await.unwrap().target_groups().is_empty(), "target group left");
    let sgs = ec2.describe_security_groups().group_ids(&lb_sg).send().await;
    assert!(sgs.map(|r| r.security_groups().is_empty()).unwrap_or(true), "the load balancer's security group left");
}

#[tokio::test]
async fn prod_profile_end_to_end_refused_destroy_deletes_nothing_anywhere() {
    let account = Emulator::shared().expect("emulator").account("us-west-2").await;
    let mut cfg = Profile::Prod.config().with_name("e2e-prod").expect("a valid stack name");
    cfg.iam.service_accounts = false;
    cfg.eks.checkip_url = Emulator::shared().expect("emulator").checkip_url();
    cfg.iam.discover_thumbprint = false;
    let stack = Stack::connect(cfg, account.config.clone()).await.unwrap();
    let out = stack.apply().await.unwrap();
    assert!(out.is_complete(), "{out:?}");
    let after_apply = inventory::inventory(&account.config, "e2e-prod").await;
    // Second run: the emulator reports two Redis members for two nodes (as AWS does), so the
    // plan is empty and the apply writes nothing new.
    let plan = stack.plan().await.unwrap();
    assert!(plan.is_empty(), "{plan}");
    assert_eq!(stack.apply().await.unwrap(), out);
    assert_eq!(inventory::inventory(&account.config, "e2e-prod").await, after_apply);

    // The default data policy refuses (deletion protection, a final snapshot is kept only with
    // permission): checked for the whole stack before the first delete, so nothing goes.
    let err = stack.destroy().await.unwrap_err();
    assert!(
        matches!(&err, StackError::DataLossRefused { holders } if holders.iter().any(|h| h.contains("deletion protection"))),
        "{err}"
    );
    assert_eq!(
        inventory::inventory(&account.config, "e2e-prod").await,
        after_apply,
        "a refused destroy deleted something"
    );

    let stack = stack.with_data_policy(DataPolicy::delete_everything());
    stack.destroy().await.unwrap();
    assert_eq!(inventory::inventory(&account.config, "e2e-prod").await, Vec::<String>::new());
}

/// The requests among `ops` that can change something: everything but Describe/List/Get/Head
/// and REST GET/HEAD. The Data API's ExecuteStatement is counted too (observe only sends
/// `SELECT datname FROM pg_database`, but the emulator cannot tell SQL apart, so it counts).
fn writes(ops: &[String]) -> Vec<String> {
    ops.iter()
        .filter(|op| {
            let verb = op.split(' ').nth(1).unwrap_or("");
            !(["Describe", "List", "Get", "Head"].iter().any(|p| verb.starts_with(p))
                || verb == "GET"
                || verb == "HEAD")
        })
        .cloned()
        .collect()
}

#[tokio::test]
async fn plan_writes_nothing_on_a_half_built_or_a_converged_stack() {
    let account = Emulator::shared().expect("emulator").account("us-west-2").await;
    let stack = Stack::connect(config("plan-ro"), account.config.clone()).await.unwrap();
    // Half-built: the apply dies after 60 requests (network done, the rest partly made).
    account.calls.crash_after(60, dify_stack_emulator::Cut::BeforeSend);
    assert!(stack.apply().await.is_err());
    account.calls.heal();
    stack.unlock().await.unwrap();
    let half = inventory::inventory(&account.config, "plan-ro").await;
    assert!(!half.is_empty());
    account.calls.reset();
    let plan = stack.plan().await.unwrap();
    assert!(!plan.is_empty());
    let ops = account.calls.operations();
    assert!(!ops.is_empty());
    let w: Vec<String> = writes(&ops).into_iter().filter(|o| o != "rds-data POST /Execute").collect();
    assert_eq!(w, Vec::<String>::new(), "plan of a half-built stack wrote");
    assert_eq!(inventory::inventory(&account.config, "plan-ro").await, half);

    // A plan with changes is applied by a full apply (observed again under the lock).
    let applied = stack.apply_plan(&plan).await.unwrap();
    assert!(applied.is_complete());

    // Converged.
    account.calls.reset();
    let plan = stack.plan().await.unwrap();
    assert!(plan.is_empty(), "{plan}");
    let ops = account.calls.operations();
    let w: Vec<String> = writes(&ops).into_iter().filter(|o| o != "rds-data POST /Execute").collect();
    assert_eq!(w, Vec::<String>::new(), "plan of a converged stack wrote");
    // Applying the empty plan is its one observation, one read of the recorded outputs and the
    // two generated secrets' values (not recorded).
    account.calls.reset();
    assert_eq!(stack.apply_plan(&plan).await.unwrap(), applied);
    let ops = account.calls.operations();
    assert_eq!(ops.len(), 3, "{ops:?}");
    assert!(writes(&ops).is_empty(), "{ops:?}");
    // Without recorded outputs, it applies in full.
    stack.control().delete_outputs("plan-ro").await.unwrap();
    account.calls.reset();
    assert_eq!(stack.apply_plan(&plan).await.unwrap(), applied);
    assert!(!writes(&account.calls.operations()).is_empty(), "a full apply takes the lock and records the outputs");

    stack.with_data_policy(DataPolicy::delete_everything()).destroy().await.unwrap();
}

#[tokio::test]
async fn two_concurrent_applies_one_is_refused_by_the_lock_and_nothing_is_duplicated() {
    let account = Emulator::shared().expect("emulator").account("us-west-2").await;
    let a = Stack::connect(config("e2e-lock"), account.config.clone()).await.unwrap();
    let b = Stack::connect(config("e2e-lock"), account.config.clone()).await.unwrap();
    let (ra, rb) = tokio::join!(a.apply(), b.apply());
    let (ok, refused) = match (ra, rb) {
        (Ok(o), Err(e)) | (Err(e), Ok(o)) => (o, e),
        (ra, rb) => panic!("expected one success and one refusal, got {:?} / {:?}", ra.err(), rb.err()),
    };
    assert!(ok.is_complete());
    match &refused {
        StackError::Lock(LockError::Held { holder, .. }) => {
            assert_eq!(holder.operation, "apply");
            assert!(
                refused.to_string().contains("is locked by") && refused.to_string().contains("unlock"),
                "{refused}"
            );
        }
        other => panic!("expected a lock refusal, got {other}"),
    }
    let once = inventory::inventory(&account.config, "e2e-lock").await;
    let mut kinds: Vec<&str> = once.iter().map(|l| l.split(' ').next().unwrap()).collect();
    kinds.dedup();
    // One of each: one VPC, one cluster, one Aurora cluster, one bucket, ...
    for kind in ["vpc", "eks-cluster", "rds-cluster", "redis", "opensearch", "bucket", "igw"] {
        assert_eq!(once.iter().filter(|l| l.starts_with(&format!("{kind} "))).count(), 1, "{kind}: {once:#?}");
    }

    // A stale lock (a run that died) blocks until unlocked; unlock removes it.
    let control = a.control();
    let guard = control.acquire("e2e-lock", "apply").await.unwrap();
    drop(guard); // the process "died": the lock stays until it expires
    assert!(matches!(b.apply().await, Err(StackError::Lock(_))));
    let removed = b.unlock().await.unwrap().expect("there was a lock");
    assert_eq!(removed.operation, "apply");
    assert!(b.unlock().await.unwrap().is_none());

    // A lock taken over by another run while held (here: overwritten, as an `unlock` plus a new
    // apply would) is detected at the next renewal and on release, and never overwritten or
    // deleted.
    let held = control.acquire("e2e-lock", "apply").await.unwrap();
    held.renew().await.expect("a renewal of our own lock");
    let s3_thief = aws_sdk_s3::Client::from_conf(
        aws_sdk_s3::config::Builder::from(&account.config).force_path_style(true).build(),
    );
    let thief = serde_json::json!({
        "owner": "other@host pid 2", "host": "host", "operation": "apply",
        "started": 4_000_000_000u64, "expires": 4_000_000_600u64, "id": "thief"
    });
    s3_thief
        .put_object()
        .bucket(control.name())
        .key("locks/e2e-lock.json")
        .body(aws_sdk_s3::primitives::ByteStream::from(thief.to_string().into_bytes()))
        .send()
        .await
        .unwrap();
    assert!(matches!(held.renew().await, Err(LockError::Lost { .. })));
    assert!(matches!(held.release().await, Err(LockError::Lost { .. })));
    assert_eq!(control.read_lock("e2e-lock").await.unwrap().unwrap().id, "thief", "the other run's lock stands");
    b.unlock().await.unwrap();

    // An expired lock (its holder stopped renewing long ago) is taken over without unlock.
    let s3 = aws_sdk_s3::Client::from_conf(
        aws_sdk_s3::config::Builder::from(&account.config).force_path_style(true).build(),
    );
    let expired = serde_json::json!({
        "owner": "ci@gone pid 1", "host": "gone", "operation": "destroy",
        "started": 1_000_000_000u64, "expires": 1_000_000_600u64, "id": "dead"
    });
    s3.put_object()
        .bucket(control.name())
        .key("locks/e2e-lock.json")
        .body(aws_sdk_s3::primitives::ByteStream::from(expired.to_string().into_bytes()))
        .send()
        .await
        .unwrap();
    assert_eq!(b.control().read_lock("e2e-lock").await.unwrap().unwrap().owner, "ci@gone pid 1");
    b.apply().await.expect("an expired lock is taken over");
    assert!(b.control().read_lock("e2e-lock").await.unwrap().is_none(), "released after the run");

    b.with_data_policy(DataPolicy::delete_everything()).destroy().await.unwrap();
    assert_eq!(inventory::inventory(&account.config, "e2e-lock").await, Vec::<String>::new());
}

/// The values rendered from this real emulator run, against `tests/data/golden/values-emulator-test.yaml`:
/// every secret, id, endpoint and ARN of the run replaced by a stable placeholder, so the file
/// shows what the renderer makes of live state. `DIFY_STACK_UPDATE_GOLDEN=1` rewrites it.
fn golden_from_the_emulator(values: &str, out: &dify_stack::StackOutput) {
    let mut doc: serde_json::Value = serde_norway::from_str(values).unwrap();
    for path in [
        "global.appSecretKey",
        "global.innerApiKey",
        "enterprise.appSecretKey",
        "enterprise.adminAPIsSecretKeySalt",
        "enterprise.passwordEncryptionKey",
        "externalDatabase.password",
        "externalRedis.password",
        "vectorDB.externalOpenSearch.user",
        "vectorDB.externalOpenSearch.password",
    ] {
        let slot = path.split('.').fold(&mut doc, |v, k| &mut v[k]);
        assert!(slot.as_str().is_some_and(|s| !s.is_empty()), "{path} is empty in\n{values}");
        *slot = serde_json::json!(format!("<secret {path}>"));
    }
    let mut text = serde_norway::to_string(&doc).unwrap();
    let (aurora, redis, os, bucket, registry, cert) = (
        out.aurora.as_ref().unwrap(),
        out.redis.as_ref().unwrap(),
        out.opensearch.as_ref().unwrap(),
        out.bucket.as_ref().unwrap(),
        out.registry.as_ref().unwrap(),
        out.certificate.as_ref().unwrap(),
    );
    for (live, placeholder) in [
        (aurora.writer_endpoint.clone(), "<aurora writer endpoint>"),
        (redis.primary_endpoint.clone(), "<redis primary endpoint>"),
        (os.endpoint.clone(), "<opensearch endpoint>"),
        (registry.plugin_image_repo_prefix.clone(), "<plugin repository uri>"),
        (bucket.name.to_string(), "<bucket>"),
        (cert.certificate_arn.clone().unwrap_or_default(), "<certificate arn>"),
    ] {
        assert!(text.contains(&live), "{live} is not in\n{text}");
        text = text.replace(&live, placeholder);
    }
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/golden/values-emulator-test.yaml");
    if std::env::var_os("DIFY_STACK_UPDATE_GOLDEN").is_some() {
        std::fs::write(&path, &text).unwrap();
    }
    assert_eq!(
        std::fs::read_to_string(&path).unwrap_or_default(),
        text,
        "DIFY_STACK_UPDATE_GOLDEN=1 rewrites {path:?}"
    );
}
