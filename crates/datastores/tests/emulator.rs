//! The datastores tier against the local AWS emulator (moto with the dify-stack extension for
//! the RDS Data API and ElastiCache deletes).

use dify_stack_core::{Action, Environment, Provisioner, TAG_STACK};
use dify_stack_datastores::{BucketProvisioner, DataPolicy, DatastoresError, DatastoresProvisioner, SdkDatastores};
use futures::StreamExt as _;
use std::sync::Arc;

mod common;

use common::{Env, setup};

impl Env {
    async fn ingress_of(&self, name: &str) -> Vec<(i32, String)> {
        let out = self
            .ec2
            .describe_security_groups()
            .filters(aws_sdk_ec2::types::Filter::builder().name("group-name").values(name).build())
            .send()
            .await
            .unwrap();
        let g = &out.security_groups()[0];
        g.ip_permissions()
            .iter()
            .flat_map(|p| {
                let port = p.from_port().unwrap_or(-1);
                p.user_id_group_pairs()
                    .iter()
                    .map(move |u| (port, u.group_id().unwrap().to_owned()))
                    .chain(p.ip_ranges().iter().map(move |r| (port, r.cidr_ip().unwrap().to_owned())))
            })
            .collect()
    }

    /// Every resource of any kind the datastores tier makes that still carries the stack tag.
    async fn tagged(&self, stack: &str) -> Vec<String> {
        let c = &self.account.config;
        let mut out = Vec::new();
        let sgs = self
            .ec2
            .describe_security_groups()
            .filters(aws_sdk_ec2::types::Filter::builder().name(format!("tag:{TAG_STACK}")).values(stack).build())
            .send()
            .await
            .unwrap();
        out.extend(sgs.security_groups().iter().map(|g| format!("sg {}", g.group_name().unwrap())));
        let rds = aws_sdk_rds::Client::new(c);
        out.extend(
            rds.describe_db_clusters()
                .send()
                .await
                .unwrap()
                .db_clusters()
                .iter()
                .map(|x| format!("rds {}", x.db_cluster_identifier().unwrap())),
        );
        out.extend(
            rds.describe_db_instances()
                .send()
                .await
                .unwrap()
                .db_instances()
                .iter()
                .map(|x| format!("rds-instance {}", x.db_instance_identifier().unwrap())),
        );
        out.extend(
            rds.describe_db_subnet_groups()
                .send()
                .await
                .unwrap()
                .db_subnet_groups()
                .iter()
                .map(|x| format!("rds-subnets {}", x.db_subnet_group_name().unwrap())),
        );
        let ec = aws_sdk_elasticache::Client::new(c);
        out.extend(
            ec.describe_replication_groups()
                .send()
                .await
                .unwrap()
                .replication_groups()
                .iter()
                .map(|x| format!("redis {}", x.replication_group_id().unwrap())),
        );
        out.extend(
            ec.describe_cache_subnet_groups()
                .send()
                .await
                .unwrap()
                .cache_subnet_groups()
                .iter()
                .map(|x| format!("cache-subnets {}", x.cache_subnet_group_name().unwrap())),
        );
        let os = aws_sdk_opensearch::Client::new(c);
        out.extend(
            os.list_domain_names()
                .send()
                .await
                .unwrap()
                .domain_names()
                .iter()
                .map(|x| format!("domain {}", x.domain_name().unwrap())),
        );
        let s3 = aws_sdk_s3::Client::new(c);
        out.extend(
            s3.list_buckets()
                .send()
                .await
                .unwrap()
                .buckets()
                .iter()
                .filter_map(|b| b.name())
                .filter(|n| n.starts_with(&format!("{stack}-")))
                .map(|n| format!("bucket {n}")),
        );
        let sm = aws_sdk_secretsmanager::Client::new(c);
        out.extend(
            sm.list_secrets()
                .send()
                .await
                .unwrap()
                .secret_list()
                .iter()
                .filter(|s| s.deleted_date().is_none())
                .map(|s| format!("secret {}", s.name().unwrap())),
        );
        out.sort();
        out
    }
}

#[tokio::test]
async fn test_profile_applies_as_specified_reapplies_as_a_no_op_updates_acu_and_destroys_everything() {
    let env = setup().await;
    let ctx = env.ctx("ds-test", Environment::Test);
    let spec = env.spec(Environment::Test);
    let ds = DatastoresProvisioner::from_conf(&env.account.config);
    let plan = ds.plan(&ctx, &spec).await.unwrap();
    assert!(plan.summary().create >= 15, "{plan}");
    let out = ds.apply(&ctx, &spec).await.unwrap();
    let c = &env.account.config;

    // Aurora.
    let rds = aws_sdk_rds::Client::new(c);
    let cl = rds.describe_db_clusters().db_cluster_identifier("ds-test-aurora").send().await.unwrap();
    let cl = &cl.db_clusters()[0];
    assert_eq!((cl.engine(), cl.engine_version()), (Some("aurora-postgresql"), Some("17.5")));
    let sv2 = cl.serverless_v2_scaling_configuration().unwrap();
    assert_eq!((sv2.min_capacity(), sv2.max_capacity()), (Some(0.5), Some(4.0)));
    assert_eq!(cl.storage_encrypted(), Some(true));
    assert_eq!(cl.backup_retention_period(), Some(1));
    assert_eq!(cl.deletion_protection(), Some(false));
    assert_eq!(cl.http_endpoint_enabled(), Some(true));
    assert!(cl.master_user_secret().unwrap().secret_arn().is_some(), "RDS manages the master password");
    let inst = rds.describe_db_instances().send().await.unwrap();
    let inst: Vec<_> =
        inst.db_instances().iter().filter(|i| i.db_cluster_identifier() == Some("ds-test-aurora")).collect();
    assert_eq!(inst.len(), 1);
    assert_eq!(inst[0].db_instance_class(), Some("db.serverless"));
    assert_eq!(inst[0].publicly_accessible(), Some(false));
    assert_eq!(out.aurora.databases, ["dify", "dify_plugin_daemon", "enterprise", "audit"]);
    assert!(out.aurora.pending_statements.is_empty());
    let data = aws_sdk_rdsdata::Client::new(c);
    let dbs = data
        .execute_statement()
        .resource_arn(cl.db_cluster_arn().unwrap())
        .secret_arn(cl.master_user_secret().unwrap().secret_arn().unwrap())
        .database("postgres")
        .sql("SELECT datname FROM pg_database")
        .send()
        .await
        .unwrap();
    let names: Vec<&str> =
        dbs.records().iter().filter_map(|r| r[0].as_string_value().ok()).map(String::as_str).collect();
    for db in ["dify", "dify_plugin_daemon", "enterprise", "audit"] {
        assert!(names.contains(&db), "{db} missing in {names:?}");
    }

    // Redis.
    let ec = aws_sdk_elasticache::Client::new(c);
    let rg = ec.describe_replication_groups().replication_group_id("ds-test-redis").send().await.unwrap();
    let rg = &rg.replication_groups()[0];
    assert_eq!(rg.cache_node_type(), Some("cache.t4g.micro"));
    assert_eq!(rg.transit_encryption_enabled(), Some(true));
    assert_eq!(rg.at_rest_encryption_enabled(), Some(true));
    assert_eq!(rg.auth_token_enabled(), Some(true));
    assert_eq!(rg.member_clusters().len(), 1);
    assert!(out.redis.tls);

    // OpenSearch.
    let os = aws_sdk_opensearch::Client::new(c);
    let d = os.describe_domain().domain_name("ds-test-search").send().await.unwrap();
    let d = d.domain_status().unwrap();
    assert_eq!(d.engine_version(), Some("OpenSearch_2.19"));
    let cc = d.cluster_config().unwrap();
    assert_eq!((cc.instance_type().unwrap().as_str(), cc.instance_count()), ("m6g.large.search", Some(1)));
    assert_eq!(cc.zone_awareness_enabled(), Some(false));
    let ebs = d.ebs_options().unwrap();
    assert_eq!((ebs.volume_type().unwrap().as_str(), ebs.volume_size()), ("gp3", Some(100)));
    assert_eq!(d.encryption_at_rest_options().unwrap().enabled(), Some(true));
    assert_eq!(d.node_to_node_encryption_options().unwrap().enabled(), Some(true));
    let ep = d.domain_endpoint_options().unwrap();
    assert_eq!(ep.enforce_https(), Some(true));
    assert_eq!(ep.tls_security_policy().unwrap().as_str(), "Policy-Min-TLS-1-2-2019-07");
    let adv = d.advanced_security_options().unwrap();
    assert_eq!((adv.enabled(), adv.internal_user_database_enabled()), (Some(true), Some(true)));
    let policy: serde_json::Value = serde_json::from_str(d.access_policies().unwrap()).unwrap();
    assert_eq!(policy["Statement"][0]["Resource"], format!("{}/*", out.opensearch.arn));
    assert_ne!(policy["Statement"][0]["Principal"], "*");
    assert_eq!(d.vpc_options().unwrap().subnet_ids().len(), 1);

    // S3.
    let s3 = aws_sdk_s3::Client::from_conf(aws_sdk_s3::config::Builder::from(c).force_path_style(true).build());
    let bucket = format!("ds-test-storage-{}", env.account.account_id);
    assert_eq!(out.bucket.name.as_str(), bucket);
    let v = s3.get_bucket_versioning().bucket(&bucket).send().await.unwrap();
    assert_eq!(v.status().unwrap().as_str(), "Enabled");
    let enc = s3.get_bucket_encryption().bucket(&bucket).send().await.unwrap();
    let rule = &enc.server_side_encryption_configuration().unwrap().rules()[0];
    assert_eq!(rule.apply_server_side_encryption_by_default().unwrap().sse_algorithm().as_str(), "AES256");
    let pab = s3.get_public_access_block().bucket(&bucket).send().await.unwrap();
    let pab = pab.public_access_block_configuration().unwrap();
    assert!(
        [pab.block_public_acls(), pab.ignore_public_acls(), pab.block_public_policy(), pab.restrict_public_buckets()]
            .iter()
            .all(|f| *f == Some(true))
    );
    let pol: serde_json::Value =
        serde_json::from_str(s3.get_bucket_policy().bucket(&bucket).send().await.unwrap().policy().unwrap()).unwrap();
    assert_eq!(pol["Statement"][0]["Effect"], "Deny");
    assert_eq!(pol["Statement"][0]["Condition"]["Bool"]["aws:SecureTransport"], "false");
    let lc = s3.get_bucket_lifecycle_configuration().bucket(&bucket).send().await.unwrap();
    assert_eq!(lc.rules()[0].abort_incomplete_multipart_upload().unwrap().days_after_initiation(), Some(7));

    // Security groups: only the source group, only the store's port.
    for (name, port) in [("ds-test-aurora", 5432), ("ds-test-redis", 6379), ("ds-test-opensearch", 443)] {
        assert_eq!(env.ingress_of(name).await, [(port, env.source_sg.clone())], "{name}");
    }

    // Re-apply: nothing to do, same outputs and secret values.
    let plan = ds.plan(&ctx, &spec).await.unwrap();
    assert!(plan.is_empty(), "{plan}");
    let again = ds.apply(&ctx, &spec).await.unwrap();
    assert_eq!(again, out, "same ARNs, endpoints and secret values");

    // An ACU change is an Update, applied in place.
    let mut bigger = spec.clone();
    bigger.aurora.max_acu = 8.0;
    let plan = ds.plan(&ctx, &bigger).await.unwrap();
    assert_eq!(plan.changes.len(), 1, "{plan}");
    assert_eq!(plan.changes[0].action, Action::Update);
    assert_eq!(plan.changes[0].fields[0].path, "serverless_v2_acu");
    ds.apply(&ctx, &bigger).await.unwrap();
    let cl = rds.describe_db_clusters().db_cluster_identifier("ds-test-aurora").send().await.unwrap();
    assert_eq!(cl.db_clusters()[0].serverless_v2_scaling_configuration().unwrap().max_capacity(), Some(8.0));
    assert!(ds.plan(&ctx, &bigger).await.unwrap().is_empty());

    // A someone-else's 0.0.0.0/0 rule is drift and is revoked.
    let sg_id = out.redis.security_group_id.to_string();
    env.ec2
        .authorize_security_group_ingress()
        .group_id(&sg_id)
        .ip_permissions(
            aws_sdk_ec2::types::IpPermission::builder()
                .ip_protocol("tcp")
                .from_port(6379)
                .to_port(6379)
                .ip_ranges(aws_sdk_ec2::types::IpRange::builder().cidr_ip("0.0.0.0/0").build())
                .build(),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(ds.plan(&ctx, &bigger).await.unwrap().changes.len(), 1);
    ds.apply(&ctx, &bigger).await.unwrap();
    assert_eq!(env.ingress_of("ds-test-redis").await, [(6379, env.source_sg.clone())]);

    // The test Aurora takes no final snapshot, so destroy needs the data policy.
    let err = ds.destroy(&ctx, &bigger).await.unwrap_err();
    assert!(matches!(&err, DatastoresError::DataLossRefused { holders, .. } if holders.len() == 1), "{err}");
    assert!(err.to_string().contains("without a final snapshot"), "{err}");
    assert!(env.tagged("ds-test").await.len() >= 12, "a refused destroy deletes nothing");
    let deleted = ds
        .clone()
        .destroy(&ctx.clone().with_permissions(DataPolicy::delete_everything().permissions(false)), &bigger)
        .await
        .unwrap();
    assert!(deleted.len() >= 12, "{deleted:?}");
    assert_eq!(env.tagged("ds-test").await, Vec::<String>::new());
}

#[tokio::test]
async fn prod_destroy_refuses_without_permission_and_keeps_a_final_snapshot_with_it() {
    let env = setup().await;
    let ctx = env.ctx("ds-prod", Environment::Prod);
    let spec = env.spec(Environment::Prod);
    let ds = DatastoresProvisioner::from_conf(&env.account.config);
    let out = ds.apply(&ctx, &spec).await.unwrap();
    let c = &env.account.config;
    let rds = aws_sdk_rds::Client::new(c);
    let cl = rds.describe_db_clusters().db_cluster_identifier("ds-prod-aurora").send().await.unwrap();
    let cl = &cl.db_clusters()[0];
    assert_eq!(cl.deletion_protection(), Some(true));
    assert_eq!(cl.backup_retention_period(), Some(7));
    let sv2 = cl.serverless_v2_scaling_configuration().unwrap();
    assert_eq!((sv2.min_capacity(), sv2.max_capacity()), (Some(1.0), Some(8.0)));
    let inst = rds.describe_db_instances().send().await.unwrap();
    let mut azs: Vec<&str> = inst.db_instances().iter().filter_map(|i| i.availability_zone()).collect();
    azs.sort();
    assert_eq!(azs, ["us-west-2a", "us-west-2b"], "writer and reader in different AZs");
    let os = aws_sdk_opensearch::Client::new(c);
    let d = os.describe_domain().domain_name("ds-prod-search").send().await.unwrap();
    let cc = d.domain_status().unwrap().cluster_config().unwrap();
    assert_eq!((cc.instance_type().unwrap().as_str(), cc.instance_count()), ("m6g.4xlarge.search", Some(3)));
    assert_eq!(cc.zone_awareness_enabled(), Some(true));
    assert_eq!(cc.zone_awareness_config().unwrap().availability_zone_count(), Some(3));
    assert_eq!(d.domain_status().unwrap().vpc_options().unwrap().subnet_ids().len(), 3);
    let ec = aws_sdk_elasticache::Client::new(c);
    let rg = ec.describe_replication_groups().replication_group_id("ds-prod-redis").send().await.unwrap();
    let rg = &rg.replication_groups()[0];
    assert_eq!(rg.cache_node_type(), Some("cache.t4g.small"));
    assert_eq!(rg.snapshot_retention_limit(), Some(3));
    assert_eq!(rg.multi_az().map(|m| m.as_str()), Some("enabled"));
    assert_eq!(rg.automatic_failover().map(|m| m.as_str()), Some("enabled"));

    let before = env.tagged("ds-prod").await;
    let err = ds.destroy(&ctx, &spec).await.unwrap_err();
    let text = err.to_string();
    assert!(text.contains("Aurora cluster ds-prod-aurora has deletion protection on"), "{text}");
    assert!(text.contains("nothing was deleted"), "{text}");
    assert_eq!(env.tagged("ds-prod").await, before, "nothing deleted");

    let allowed = DataPolicy { lift_deletion_protection: true, delete_data: false };
    ds.clone().destroy(&ctx.clone().with_permissions(allowed.permissions(false)), &spec).await.unwrap();
    let snaps = rds.describe_db_cluster_snapshots().send().await.unwrap();
    let finals: Vec<&str> = snaps
        .db_cluster_snapshots()
        .iter()
        .filter_map(|s| s.db_cluster_snapshot_identifier())
        .filter(|s| s.starts_with("ds-prod-final-"))
        .collect();
    assert_eq!(finals.len(), 1, "{finals:?}");
    assert_eq!(finals[0].len(), "ds-prod-final-".len() + 14, "timestamp yyyymmddhhmmss: {}", finals[0]);
    assert_eq!(env.tagged("ds-prod").await, Vec::<String>::new());
    // Without delete_data the secrets wait out their recovery window, restorable.
    let sm = aws_sdk_secretsmanager::Client::new(c);
    let s = sm.describe_secret().secret_id(out.redis.auth_secret_arn.as_str()).send().await.unwrap();
    assert!(s.deleted_date().is_some());
}

#[tokio::test]
async fn a_bucket_with_1500_versions_is_refused_then_fully_drained() {
    let env = setup().await;
    let ctx = env.ctx("ds-drain", Environment::Test);
    let spec = env.spec(Environment::Test);
    let sdk = Arc::new(SdkDatastores::from_conf(&env.account.config));
    let bucket = BucketProvisioner::new(sdk);
    let out = bucket.apply(&ctx, &spec).await.unwrap();
    let name = out.name.to_string();
    let s3 = aws_sdk_s3::Client::from_conf(
        aws_sdk_s3::config::Builder::from(&env.account.config).force_path_style(true).build(),
    );
    // The emulator speaks plain HTTP, which our TLS-only policy rightly denies: lift it to load data.
    s3.delete_bucket_policy().bucket(&name).send().await.unwrap();
    // 500 keys x 2 versions + 500 delete markers = 1500 versions and markers.
    futures::stream::iter(0..1000)
        .map(|i| {
            let s3 = s3.clone();
            let name = name.clone();
            async move {
                s3.put_object()
                    .bucket(&name)
                    .key(format!("k/{:03}", i % 500))
                    .body(vec![b'x'; 8].into())
                    .send()
                    .await
                    .unwrap();
            }
        })
        .buffer_unordered(16)
        .collect::<Vec<_>>()
        .await;
    futures::stream::iter(0..500)
        .map(|i| {
            let s3 = s3.clone();
            let name = name.clone();
            async move {
                s3.delete_object().bucket(&name).key(format!("k/{i:03}")).send().await.unwrap();
            }
        })
        .buffer_unordered(16)
        .collect::<Vec<_>>()
        .await;
    assert_eq!(bucket.version_count(&ctx).await.unwrap(), 1500);
    let err = bucket.destroy(&ctx, &spec).await.unwrap_err();
    assert!(err.to_string().contains("holds 1500 object versions"), "{err}");
    assert!(s3.head_bucket().bucket(&name).send().await.is_ok(), "refused destroy keeps the bucket");
    let deleted = bucket
        .destroy(&ctx.clone().with_permissions(DataPolicy::delete_everything().permissions(false)), &spec)
        .await
        .unwrap();
    assert_eq!(deleted.len(), 1);
    assert!(s3.head_bucket().bucket(&name).send().await.is_err(), "bucket gone");
}

#[tokio::test]
async fn secrets_are_stable_and_never_in_debug_output() {
    let env = setup().await;
    let ctx = env.ctx("ds-sec", Environment::Test);
    let spec = env.spec(Environment::Test);
    let ds = DatastoresProvisioner::from_conf(&env.account.config);
    let first = ds.apply(&ctx, &spec).await.unwrap();
    let second = ds.apply(&ctx, &spec).await.unwrap();
    assert_eq!(first.app_secret, second.app_secret, "same ARN and value");
    assert_eq!(first.redis.auth_secret_arn, second.redis.auth_secret_arn);
    let sm = aws_sdk_secretsmanager::Client::new(&env.account.config);
    let mut values = Vec::new();
    for arn in [
        first.app_secret.arn.as_str(),
        first.redis.auth_secret_arn.as_str(),
        first.opensearch.master_secret_arn.as_str(),
    ] {
        let v = sm.get_secret_value().secret_id(arn).send().await.unwrap();
        values.push(v.secret_string().unwrap().to_owned());
    }
    let app: serde_json::Value = serde_json::from_str(&values[0]).unwrap();
    let os: serde_json::Value = serde_json::from_str(&values[2]).unwrap();
    let needles = [
        values[1].clone(),
        app["password_encryption_key"].as_str().unwrap().to_owned(),
        app["app_secret_key"].as_str().unwrap().to_owned(),
        os["password"].as_str().unwrap().to_owned(),
    ];
    let plan = ds.plan(&ctx, &spec).await.unwrap();
    let err = ds.destroy(&ctx, &spec).await.unwrap_err();
    let haystacks = [
        format!("{first:?}"),
        format!("{:#?}", first),
        serde_json::to_string(&first).unwrap(),
        format!("{spec:?}"),
        format!("{plan:?}"),
        plan.to_string(),
        format!("{err:?}"),
        err.to_string(),
    ];
    for n in &needles {
        assert!(n.len() >= 16);
        for h in &haystacks {
            assert!(!h.contains(n.as_str()), "secret leaked into {h}");
        }
    }
    // A secret scheduled for deletion is restored, not recreated.
    sm.delete_secret().secret_id(first.app_secret.arn.as_str()).recovery_window_in_days(7).send().await.unwrap();
    let third = ds.apply(&ctx, &spec).await.unwrap();
    assert_eq!(third.app_secret, first.app_secret);
    ds.destroy(&ctx.clone().with_permissions(DataPolicy::delete_everything().permissions(false)), &spec).await.unwrap();
    assert_eq!(env.tagged("ds-sec").await, Vec::<String>::new());
}
