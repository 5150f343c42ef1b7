//! Datastores against mocks of the client traits, for what the emulator cannot show: state
//! transitions (RDS/ElastiCache/OpenSearch change state only over time in AWS), regions without
//! the Data API, and that refused destroys make no write at all.

mod aurora;
mod conditions;
mod opensearch;
mod redis;
mod upgrades;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use dify_stack_core::ids::{Arn, AvailabilityZone, BucketName, SecretArn, SecurityGroupId, SubnetId, VpcId};
use dify_stack_core::{Classify, Context, Environment, Provisioner, Tier, WaitPolicy};
use secrecy::SecretString;

use crate::client::*;
use crate::*;

fn ctx_in(region: &str, env: Environment) -> Context {
    Context::new("ds-mock", env, region).unwrap().with_account_id("123456789012").with_wait(WaitPolicy {
        initial_interval: Duration::from_secs(10),
        max_interval: Duration::from_secs(60),
        multiplier: 2.0,
        jitter: 0.0,
        max_wait: Duration::from_secs(4 * 3600),
        ..Default::default()
    })
}

fn spec(env: Environment, azs: usize) -> DatastoresSpec {
    let subnets = (0..azs)
        .map(|i| PlacedSubnet {
            id: SubnetId::new(format!("subnet-{i}")),
            availability_zone: AvailabilityZone::new(format!("us-west-2{}", (b'a' + i as u8) as char)),
        })
        .collect();
    DatastoresSpec::for_environment(env, VpcId::new("vpc-1"), subnets, vec![SecurityGroupId::new("sg-nodes")])
}

fn owned_tags(ctx: &Context, component: &str, name: &str) -> dify_stack_core::Tags {
    ctx.tags_for(Tier::Datastores, component, name)
}

/// A security group API in which the group `group` (its name as STACK.md gives it) exists in
/// `vpc-1` with the right rule. Looked up under any other VPC or name, the mock has no answer
/// and the test fails: a provisioner that asks with the wrong key cannot pass.
fn ready_sg(ctx: &Context, port: i32, group: &'static str) -> MockSgApi {
    let tags = owned_tags(ctx, "x", "x");
    let mut sg = MockSgApi::new();
    sg.expect_find().withf(move |vpc, name| vpc.as_str() == "vpc-1" && name == group).returning(move |_, name| {
        Ok(Some(SgInfo {
            id: SecurityGroupId::new(format!("sg-{name}")),
            tags: tags.clone(),
            ingress: vec![("tcp".into(), port, port, "sg-nodes".into())],
        }))
    });
    // The stand-in tags differ in Name/component: re-tagging them is expected.
    sg.expect_tag().withf(move |id, _| id.as_str() == format!("sg-{group}")).returning(|_, _| Ok(()));
    sg
}

/// The ARN the secrets mock gives the secret `name`.
fn secret_arn(name: &str) -> SecretArn {
    SecretArn::new(format!("arn:aws:secretsmanager:us-west-2:1:secret:{name}"))
}

/// A secrets API in which the secret `secret` (its name as STACK.md gives it, e.g.
/// `<stack>/redis-auth`) exists; asked for any other name or ARN, the mock has no answer.
fn ready_secrets(ctx: &Context, secret: &'static str) -> MockSecretsApi {
    let tags = owned_tags(ctx, "x", "x");
    let mut s = MockSecretsApi::new();
    s.expect_describe().withf(move |name| name == secret).returning(move |name| {
        Ok(Some(SecretMeta { arn: secret_arn(&name), name, pending_deletion: false, tags: tags.clone() }))
    });
    s.expect_tag().withf(move |arn, _| *arn == secret_arn(secret)).returning(|_, _| Ok(()));
    s.expect_get_value().withf(move |arn| *arn == secret_arn(secret)).returning(|_| {
        Ok(SecretString::from(r#"{"username":"dify-admin","password":"Pw1!xxxxxxxxxxxxxxxxxxxxxxx"}"#.to_owned()))
    });
    s
}

/// A security group API in which the group `group` exists exactly as the store wants it (our
/// tags for `component`, the one rule): the mock has no write, so any write panics.
fn own_sg(ctx: &Context, component: &str, group: &'static str, port: i32) -> MockSgApi {
    let tags = owned_tags(ctx, component, group);
    let mut sg = MockSgApi::new();
    sg.expect_find().withf(move |vpc, name| vpc.as_str() == "vpc-1" && name == group).returning(move |_, name| {
        Ok(Some(SgInfo {
            id: SecurityGroupId::new(format!("sg-{name}")),
            tags: tags.clone(),
            ingress: vec![("tcp".into(), port, port, "sg-nodes".into())],
        }))
    });
    sg
}

/// A secrets API in which the secret of `kind` exists with our tags and the complete `value`:
/// reads only, so any write panics.
fn own_secret(ctx: &Context, kind: secrets::SecretKind, value: &'static str) -> MockSecretsApi {
    let name = kind.name(ctx);
    let tags = ctx.tags_for(Tier::Datastores, &format!("secret-{}", kind.suffix()), &name);
    let mut s = MockSecretsApi::new();
    let n = name.clone();
    s.expect_describe().withf(move |x| *x == n).returning(move |name| {
        Ok(Some(SecretMeta { arn: secret_arn(&name), name, pending_deletion: false, tags: tags.clone() }))
    });
    s.expect_get_value()
        .withf(move |arn| *arn == secret_arn(&name))
        .returning(move |_| Ok(SecretString::from(value.to_owned())));
    s
}

#[test]
fn validation_names_each_bad_field() {
    let ctx = ctx_in("us-west-2", Environment::Prod);
    // Prod OpenSearch on a 2-AZ network: 3 zone-aware nodes cannot be placed.
    let errs = spec(Environment::Prod, 2).validate(&ctx).unwrap_err();
    assert_eq!(errs.paths(), ["opensearch.zone_awareness"], "{errs}");
    assert!(errs.to_string().contains("3 zone-aware nodes need 3 availability zones but the network has 2"), "{errs}");
    assert!(errs.to_string().contains("network.az_count = 3"), "{errs}");
    spec(Environment::Prod, 3).validate(&ctx).unwrap();

    let mut s = spec(Environment::Prod, 3);
    s.aurora.min_acu = 0.3;
    s.aurora.max_acu = 300.0;
    s.redis.nodes = 1;
    s.opensearch.instance_count = 4;
    s.aurora.databases.push("Robert'); DROP".into());
    s.aurora.deletion_protection = false;
    s.aurora.final_snapshot = false;
    s.source_security_groups.clear();
    let errs = s.validate(&ctx).unwrap_err();
    let paths = errs.paths();
    for p in [
        "aurora.min_acu",
        "aurora.max_acu",
        "redis.multi_az",
        "opensearch.instance_count",
        "aurora.databases[4]",
        "aurora.deletion_protection",
        "source_security_groups",
    ] {
        assert!(paths.contains(&p), "{p} missing: {paths:?}");
    }
    let mut s = spec(Environment::Test, 2);
    s.aurora.min_acu = 5.0;
    let errs = s.validate(&ctx_in("us-west-2", Environment::Test)).unwrap_err();
    assert!(errs.to_string().contains("min 5 > max 4"), "{errs}");
}

/// The settings are the user's part of the spec: flattened into its serialized form (which still
/// refuses unknown keys), read through by the spec, and validated at their own paths.
#[test]
fn the_settings_are_flattened_into_the_spec_and_keep_their_paths() {
    let mut s = spec(Environment::Test, 2);
    assert_eq!(s.settings, DatastoresSettings::for_environment(Environment::Test));
    let v = serde_json::to_value(&s).unwrap();
    assert!(v.get("settings").is_none() && v["aurora"]["instances"] == 1 && v["vpc_id"] == "vpc-1", "{v}");
    assert_eq!(serde_json::from_value::<DatastoresSpec>(v.clone()).unwrap(), s);
    let mut extra = v;
    extra["auroa"] = serde_json::json!({});
    let err = serde_json::from_value::<DatastoresSpec>(extra).unwrap_err().to_string();
    assert!(err.contains("auroa"), "{err}");
    s.redis.nodes = 9;
    assert_eq!(s.settings.redis.nodes, 9);
    assert_eq!(s.validate(&ctx_in("us-west-2", Environment::Test)).unwrap_err().paths(), ["redis.nodes"]);
}

#[test]
fn profiles_follow_the_spec() {
    let t = spec(Environment::Test, 2);
    assert_eq!(
        (t.aurora.min_acu, t.aurora.max_acu, t.aurora.instances, t.aurora.backup_retention_days),
        (0.5, 4.0, 1, 1)
    );
    assert!(!t.aurora.deletion_protection);
    assert_eq!((t.redis.node_type.as_str(), t.redis.nodes, t.redis.multi_az), ("cache.t4g.micro", 1, false));
    assert_eq!((t.opensearch.instance_type.as_str(), t.opensearch.instance_count), ("m6g.large.search", 1));
    let p = spec(Environment::Prod, 3);
    assert_eq!(
        (p.aurora.min_acu, p.aurora.max_acu, p.aurora.instances, p.aurora.backup_retention_days),
        (1.0, 8.0, 2, 7)
    );
    assert!(p.aurora.deletion_protection && p.aurora.final_snapshot);
    assert_eq!(
        (p.redis.node_type.as_str(), p.redis.nodes, p.redis.multi_az, p.redis.snapshot_retention_days),
        ("cache.t4g.small", 2, true, 3)
    );
    assert_eq!(
        (p.opensearch.instance_type.as_str(), p.opensearch.instance_count, p.opensearch.zone_awareness),
        ("m6g.4xlarge.search", 3, true)
    );
    assert_eq!(p.aurora.engine_version, "17.5");
    assert_eq!(p.redis.engine_version, "7.1");
    assert_eq!(p.opensearch.engine_version, "OpenSearch_2.19");
}

#[tokio::test(start_paused = true)]
async fn without_the_data_api_the_output_lists_the_statements_to_run() {
    // China regions have no RDS Data API.
    let ctx = ctx_in("cn-north-1", Environment::Test);
    let tags = owned_tags(&ctx, "aurora", "ds-mock-aurora");
    let mut rds = MockRdsApi::new();
    let t = tags.clone();
    rds.expect_find_subnet_group().withf(|n| n == "ds-mock-aurora").returning(move |_| Ok(Some(t.clone())));
    let cluster = DbClusterInfo {
        id: "ds-mock-aurora".into(),
        arn: "arn:aws-cn:rds:cn-north-1:1:cluster:ds-mock-aurora".into(),
        status: "available".into(),
        engine_version: "17.5".into(),
        acu: Some((0.5, 4.0)),
        backup_retention_days: 1,
        security_groups: vec!["sg-ds-mock-aurora".into()],
        master_secret_arn: Some("arn:aws-cn:secretsmanager:cn-north-1:1:secret:rds".into()),
        endpoint: Some("w.example".into()),
        tags,
        ..Default::default()
    };
    rds.expect_describe_cluster().withf(|id| id == "ds-mock-aurora").returning(move |_| Ok(Some(cluster.clone())));
    rds.expect_list_instances().withf(|c| c == "ds-mock-aurora").returning(|_| {
        Ok(vec![DbInstanceInfo { id: "ds-mock-aurora-1".into(), status: "available".into(), ..Default::default() }])
    });
    rds.expect_execute().never();
    rds.expect_enable_http_endpoint().never();
    let aurora = AuroraProvisioner::new(
        Arc::new(rds),
        Arc::new(ready_sg(&ctx, 5432, "ds-mock-aurora")),
        Arc::new(ready_secrets(&ctx, "ds-mock/aurora-app")),
    );
    let out = aurora.apply(&ctx, &spec(Environment::Test, 2)).await.unwrap();
    assert!(out.databases.is_empty());
    assert_eq!(
        out.pending_statements,
        [
            "CREATE DATABASE \"dify\"",
            "CREATE DATABASE \"dify_plugin_daemon\"",
            "CREATE DATABASE \"enterprise\"",
            "CREATE DATABASE \"audit\"",
            "CREATE ROLE \"dify_app\" WITH LOGIN PASSWORD '<password from the secret ds-mock/aurora-app>'",
            "GRANT \"dify_app\" TO CURRENT_USER",
            "ALTER DATABASE \"dify\" OWNER TO \"dify_app\"",
            "ALTER DATABASE \"dify_plugin_daemon\" OWNER TO \"dify_app\"",
            "ALTER DATABASE \"enterprise\" OWNER TO \"dify_app\"",
            "ALTER DATABASE \"audit\" OWNER TO \"dify_app\""
        ]
    );
    assert_eq!(out.app_username, "dify_app");
    assert_eq!(out.app_secret.name, "ds-mock/aurora-app");
}

#[tokio::test(start_paused = true)]
async fn aurora_waits_for_available_and_fails_fast_on_a_failed_instance() {
    let ctx = ctx_in("us-west-2", Environment::Test);
    let tags = owned_tags(&ctx, "aurora", "ds-mock-aurora");
    let mut rds = MockRdsApi::new();
    rds.expect_find_subnet_group().withf(|n| n == "ds-mock-aurora").returning(|_| Ok(None));
    rds.expect_create_subnet_group().withf(|n, _, _| n == "ds-mock-aurora").times(1).returning(|_, _, _| Ok(()));
    let n = Arc::new(AtomicUsize::new(0));
    let n2 = n.clone();
    let t = tags.clone();
    rds.expect_describe_cluster().withf(|id| id == "ds-mock-aurora").returning(move |id| {
        let k = n2.fetch_add(1, Ordering::SeqCst);
        Ok((k > 0).then(|| DbClusterInfo {
            id,
            status: if k < 3 { "creating" } else { "available" }.into(),
            tags: t.clone(),
            ..Default::default()
        }))
    });
    rds.expect_create_cluster()
        .withf(|c| c.acu == (0.5, 4.0) && c.http_endpoint && c.engine_version == "17.5")
        .times(1)
        .returning(|c| Ok(DbClusterInfo { id: c.id, status: "creating".into(), ..Default::default() }));
    rds.expect_create_instance()
        .withf(|id, _, az, _| id == "ds-mock-aurora-1" && az.as_str() == "us-west-2a")
        .times(1)
        .returning(|_, _, _, _| Ok(()));
    let listed = Arc::new(AtomicUsize::new(0));
    rds.expect_list_instances().withf(|c| c == "ds-mock-aurora").returning(move |_| {
        let k = listed.fetch_add(1, Ordering::SeqCst);
        // First list is the observation (nothing yet), then creating, then incompatible-network.
        Ok(match k {
            0 => vec![],
            1 => {
                vec![DbInstanceInfo { id: "ds-mock-aurora-1".into(), status: "creating".into(), ..Default::default() }]
            }
            _ => vec![DbInstanceInfo {
                id: "ds-mock-aurora-1".into(),
                status: "incompatible-network".into(),
                ..Default::default()
            }],
        })
    });
    let mut sg = MockSgApi::new();
    sg.expect_find().withf(|vpc, n| vpc.as_str() == "vpc-1" && n == "ds-mock-aurora").returning(|_, _| Ok(None));
    sg.expect_create()
        .withf(|vpc, n, _, _| vpc.as_str() == "vpc-1" && n == "ds-mock-aurora")
        .times(1)
        .returning(|_, _, _, _| Ok("sg-new".into()));
    sg.expect_authorize()
        .withf(|id, port, src| id.as_str() == "sg-new" && *port == 5432 && src.as_str() == "sg-nodes")
        .times(1)
        .returning(|_, _, _| Ok(()));
    let aurora = AuroraProvisioner::new(Arc::new(rds), Arc::new(sg), Arc::new(MockSecretsApi::new()));
    let err = aurora.apply(&ctx, &spec(Environment::Test, 2)).await.unwrap_err();
    assert!(
        matches!(&err, DatastoresError::Failed { kind: "Aurora instance", status, .. } if status == "incompatible-network"),
        "{err:?}"
    );
    assert!(n.load(Ordering::SeqCst) >= 4, "waited for the cluster to become available first");
}

#[tokio::test]
async fn a_refused_prod_destroy_makes_no_write() {
    let ctx = ctx_in("us-west-2", Environment::Prod);
    let tags = owned_tags(&ctx, "aurora", "ds-mock-aurora");
    let mut rds = MockRdsApi::new();
    rds.expect_describe_cluster().withf(|id| id == "ds-mock-aurora").returning(move |id| {
        Ok(Some(DbClusterInfo {
            id,
            status: "available".into(),
            deletion_protection: true,
            tags: tags.clone(),
            ..Default::default()
        }))
    });
    // No expectation for any delete or modify: mockall panics if one is made.
    let btags = owned_tags(&ctx, "bucket", "b");
    let mut s3 = MockS3Api::new();
    let bucket = |n: &BucketName| n.as_str() == "ds-mock-storage-123456789012";
    s3.expect_describe()
        .withf(bucket)
        .returning(move |_| Ok(Some(BucketInfo { tags: btags.clone(), ..Default::default() })));
    s3.expect_list_versions()
        .withf(move |n, _| bucket(n))
        .returning(|_, _| Ok((vec![("a".into(), "v1".into()), ("b".into(), "v1".into())], None)));
    let ds = DatastoresProvisioner::new(
        AuroraProvisioner::new(Arc::new(rds), Arc::new(MockSgApi::new()), Arc::new(MockSecretsApi::new())),
        RedisProvisioner::new(
            Arc::new(MockElastiCacheApi::new()),
            Arc::new(MockSgApi::new()),
            Arc::new(MockSecretsApi::new()),
        ),
        OpenSearchProvisioner::new(
            Arc::new(MockOpenSearchApi::new()),
            Arc::new(MockSgApi::new()),
            Arc::new(MockSecretsApi::new()),
        ),
        BucketProvisioner::new(Arc::new(s3)),
        Arc::new(MockSecretsApi::new()),
    );
    let err = ds.destroy(&ctx, &spec(Environment::Prod, 3)).await.unwrap_err();
    let text = err.to_string();
    assert!(text.contains("deletion protection"), "{text}");
    assert!(text.contains("bucket ds-mock-storage-123456789012 holds 2 object versions"), "{text}");
    assert!(text.contains("--delete-data"), "{text}");
}

/// A bucket with versioning suspended and its TLS-only policy gone: the plan shows those two
/// settings, and apply makes those two writes and no other (a mock without an expectation for a
/// write panics when it is made).
#[tokio::test]
async fn a_drifted_bucket_gets_exactly_the_writes_its_plan_shows() {
    let ctx = ctx_in("us-west-2", Environment::Test);
    let spec = spec(Environment::Test, 2);
    let name = "ds-mock-storage-123456789012";
    let tags = owned_tags(&ctx, "bucket", name);
    let mut s3 = MockS3Api::new();
    s3.expect_describe().withf(move |n| n.as_str() == name).returning(move |_| {
        Ok(Some(BucketInfo {
            tags: tags.clone(),
            versioning: false,
            encryption: Some(("AES256".into(), None)),
            public_access_blocked: true,
            policy: None,
            abort_multipart_days: Some(bucket::ABORT_MULTIPART_DAYS),
        }))
    });
    let writes = Arc::new(Mutex::new(Vec::new()));
    let w = writes.clone();
    s3.expect_enable_versioning().returning(move |n| {
        w.lock().unwrap().push(format!("versioning {n}"));
        Ok(())
    });
    let w = writes.clone();
    s3.expect_put_policy().returning(move |n, policy| {
        assert!(policy.contains("aws:SecureTransport"), "{policy}");
        w.lock().unwrap().push(format!("policy {n}"));
        Ok(())
    });
    let p = BucketProvisioner::new(Arc::new(s3));
    let plan = p.plan(&ctx, &spec).await.unwrap();
    let fields: Vec<&str> = plan.changes.iter().flat_map(|c| c.fields.iter().map(|f| f.path.as_str())).collect();
    assert_eq!(fields, ["versioning", "policy"], "{plan}");
    p.apply(&ctx, &spec).await.unwrap();
    assert_eq!(*writes.lock().unwrap(), [format!("versioning {name}"), format!("policy {name}")]);
}

/// A Redis group without encryption at rest (set only at creation): refused without the
/// permissions, and no write is made; with them, apply does what the plan shows: the group is
/// deleted, waited gone (its id is reused) and created again, encrypted.
/// OpenSearch refuses a replacement whatever the permissions (no code path replaces a store of
/// record; an engine version change is an upgrade, never a replacement): the error names the
/// field, both values and the reason, and does not point at permissions that would not help.
#[test]
fn a_refused_replacement_of_a_store_of_record_names_no_permission_as_the_fix() {
    let change = dify_stack_core::Change::new(
        dify_stack_core::Action::Replace,
        dify_stack_core::ResourceRef::new("opensearch:domain", "ds-mock-search"),
    )
    .field("encryption_at_rest", Some("false"), Some("true"))
    .because("cannot change in place");
    let err = crate::common::immutable_change(&change);
    let text = err.to_string();
    for part in ["ds-mock-search", "encryption_at_rest", "false -> true", "cannot change in place", "keep false"] {
        assert!(text.contains(part), "{part:?} missing from: {text}");
    }
    assert!(!text.contains("allow_replace"), "{text}");
    assert_eq!(err.kind(), dify_stack_core::ErrorKind::Refused);
}

/// The tier over its own in-memory fake (`testing::FakeDatastores`, the one the simulated-time
/// benchmark runs the stack on): Redis, Aurora and the bucket from empty, then an empty plan
/// for each. The fake's resources are pending until their drawn time has passed: here,
/// `Sim::instant`, none.
#[tokio::test(start_paused = true)]
async fn over_its_fake_redis_aurora_and_the_bucket_apply_from_empty_then_plan_nothing() {
    let sim = std::sync::Arc::new(dify_stack_core::sim::Sim::instant());
    let ds = std::sync::Arc::new(testing::FakeDatastores::new(sim.clone(), "redis_test", "opensearch_1_node"));
    let (ctx, spec) = (ctx_in("us-west-2", Environment::Test), spec(Environment::Test, 2));
    let redis = RedisProvisioner::new(ds.clone(), ds.clone(), ds.clone());
    let out = redis.apply(&ctx, &spec).await.unwrap();
    assert!(out.tls && out.port == 6379 && !out.primary_endpoint.is_empty(), "{out:?}");
    assert!(redis.plan(&ctx, &spec).await.unwrap().is_empty(), "{}", redis.plan(&ctx, &spec).await.unwrap());
    let aurora = AuroraProvisioner::new(ds.clone(), ds.clone(), ds.clone());
    let out = aurora.apply(&ctx, &spec).await.unwrap();
    assert!(!out.writer_endpoint.is_empty() && !out.reader_endpoint.is_empty(), "{out:?}");
    assert!(aurora.plan(&ctx, &spec).await.unwrap().is_empty(), "{}", aurora.plan(&ctx, &spec).await.unwrap());
    let bucket = BucketProvisioner::new(ds.clone());
    bucket.apply(&ctx, &spec).await.unwrap();
    assert!(bucket.plan(&ctx, &spec).await.unwrap().is_empty(), "{}", bucket.plan(&ctx, &spec).await.unwrap());
    assert!(sim.calls() > 0);
}
