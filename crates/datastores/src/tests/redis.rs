//! Redis against mocks: waits through busy and deleting states, ownership before any delete,
//! a replacement only when allowed, and apply making exactly the writes its plan shows.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use dify_stack_core::{Environment, Provisioner};

use super::*;

/// The engine a node runs, on the default parameter group of its family.
pub(super) fn running(version: &str) -> CacheEngine {
    let family = if version.starts_with('7') { "redis7" } else { "redis6.x" };
    CacheEngine { version: version.to_owned(), parameter_group: Some(format!("default.{family}")) }
}

#[tokio::test(start_paused = true)]
async fn redis_destroy_waits_through_deleting_until_gone() {
    let ctx = ctx_in("us-west-2", Environment::Test);
    let tags = owned_tags(&ctx, "redis", "ds-mock-redis");
    let describes = Arc::new(AtomicUsize::new(0));
    let mut cache = MockElastiCacheApi::new();
    let d = describes.clone();
    cache.expect_describe().withf(|id| id == "ds-mock-redis").returning(move |id| {
        // AWS: available, then deleting for a while, then gone (moto stays "deleting" forever).
        let n = d.fetch_add(1, Ordering::SeqCst);
        Ok(match n {
            0 => Some(ReplicationGroupInfo {
                id,
                status: "available".into(),
                tags: Some(tags.clone()),
                ..Default::default()
            }),
            1..=4 => {
                // Deleting: ElastiCache refuses tag reads, so none are known.
                Some(ReplicationGroupInfo { id, status: "deleting".into(), tags: None, ..Default::default() })
            }
            _ => None,
        })
    });
    cache.expect_delete().withf(|id| id == "ds-mock-redis").times(1).returning(|_| Ok(()));
    let sub_tags = owned_tags(&ctx, "redis-subnet-group", "ds-mock-redis");
    cache.expect_find_subnet_group().withf(|n| n == "ds-mock-redis").returning(move |_| Ok(Some(sub_tags.clone())));
    // The subnet group is "in use" once more while the last node goes away.
    let attempts = Arc::new(AtomicUsize::new(0));
    let a = attempts.clone();
    cache.expect_delete_subnet_group().withf(|n| n == "ds-mock-redis").returning(move |_| {
        if a.fetch_add(1, Ordering::SeqCst) == 0 {
            Err(dify_stack_core::AwsError::new("DeleteCacheSubnetGroup", "CacheSubnetGroupInUse", "in use"))
        } else {
            Ok(())
        }
    });
    let mut sg = ready_sg(&ctx, 6379, "ds-mock-redis");
    sg.expect_delete().withf(|id| id.as_str() == "sg-ds-mock-redis").times(1).returning(|_| Ok(()));
    let mut secrets = ready_secrets(&ctx, "ds-mock/redis-auth");
    secrets
        .expect_delete()
        .withf(|arn, force, days| *arn == secret_arn("ds-mock/redis-auth") && !*force && *days == 7)
        .times(1)
        .returning(|_, _, _| Ok(()));
    let redis = RedisProvisioner::new(Arc::new(cache), Arc::new(sg), Arc::new(secrets));
    let start = tokio::time::Instant::now();
    let deleted = redis.destroy(&ctx, &spec(Environment::Test, 2)).await.unwrap();
    assert_eq!(deleted.len(), 4, "{deleted:?}");
    assert!(describes.load(Ordering::SeqCst) >= 6);
    assert_eq!(attempts.load(Ordering::SeqCst), 2);
    assert!(start.elapsed() >= Duration::from_secs(10 + 20 + 40 + 60), "{:?}", start.elapsed());
}

#[tokio::test(start_paused = true)]
async fn a_busy_redis_group_is_observed_without_tags_and_destroyed_only_once_available_and_ours() {
    // Prod snapshot window: the group is `snapshotting`, so its tags cannot be read (the SDK
    // adapter returns `tags: None`; ElastiCache would answer InvalidReplicationGroupState).
    let ctx = ctx_in("us-west-2", Environment::Prod);
    let tags = owned_tags(&ctx, "redis", "ds-mock-redis");
    let describes = Arc::new(AtomicUsize::new(0));
    let mut cache = MockElastiCacheApi::new();
    let d = describes.clone();
    cache.expect_describe().withf(|id| id == "ds-mock-redis").returning(move |id| {
        let n = d.fetch_add(1, Ordering::SeqCst);
        let busy = |status: &str| ReplicationGroupInfo {
            id: id.clone(),
            status: status.into(),
            tags: None,
            ..Default::default()
        };
        Ok(match n {
            0..=3 => Some(busy("snapshotting")),
            4 => Some(ReplicationGroupInfo {
                id: id.clone(),
                status: "available".into(),
                tags: Some(tags.clone()),
                ..Default::default()
            }),
            5..=6 => Some(busy("deleting")),
            _ => None,
        })
    });
    let sub_tags = owned_tags(&ctx, "redis-subnet-group", "ds-mock-redis");
    cache.expect_find_subnet_group().withf(|n| n == "ds-mock-redis").returning(move |_| Ok(Some(sub_tags.clone())));
    cache.expect_delete().withf(|id| id == "ds-mock-redis").times(1).returning(|_| Ok(()));
    cache.expect_delete_subnet_group().withf(|n| n == "ds-mock-redis").times(1).returning(|_| Ok(()));
    let mut sg = ready_sg(&ctx, 6379, "ds-mock-redis");
    sg.expect_delete().withf(|id| id.as_str() == "sg-ds-mock-redis").times(1).returning(|_| Ok(()));
    let mut secrets = ready_secrets(&ctx, "ds-mock/redis-auth");
    secrets.expect_delete().withf(|arn, _, _| *arn == secret_arn("ds-mock/redis-auth")).returning(|_, _, _| Ok(()));
    let redis = RedisProvisioner::new(Arc::new(cache), Arc::new(sg), Arc::new(secrets));
    // Observe (plan) works while the group is busy and reads no tags.
    let o = redis.observe(&ctx, &spec(Environment::Prod, 3)).await.unwrap();
    assert_eq!(o.group.as_ref().map(|g| g.status.as_str()), Some("snapshotting"));
    // Destroy waits for `available` (3 more busy polls), checks our tags, then deletes once.
    let deleted = redis.destroy(&ctx, &spec(Environment::Prod, 3)).await.unwrap();
    assert!(deleted.iter().any(|r| r.kind == "elasticache:replication-group"), "{deleted:?}");
    assert!(describes.load(Ordering::SeqCst) >= 8);
}

#[tokio::test(start_paused = true)]
async fn a_foreign_busy_redis_group_is_never_deleted() {
    let ctx = ctx_in("us-west-2", Environment::Test);
    let mut cache = MockElastiCacheApi::new();
    let calls = Arc::new(AtomicUsize::new(0));
    let c = calls.clone();
    cache.expect_describe().withf(|id| id == "ds-mock-redis").returning(move |id| {
        // Modifying at first; once available its tags show another owner.
        let status = if c.fetch_add(1, Ordering::SeqCst) < 2 { "modifying" } else { "available" };
        let tags = (status == "available").then(|| [("owner".to_owned(), "someone-else".to_owned())].into());
        Ok(Some(ReplicationGroupInfo { id, status: status.into(), tags, ..Default::default() }))
    });
    cache.expect_find_subnet_group().withf(|n| n == "ds-mock-redis").returning(|_| Ok(None));
    cache.expect_delete().never();
    let mut sg = MockSgApi::new();
    sg.expect_find().withf(|vpc, n| vpc.as_str() == "vpc-1" && n == "ds-mock-redis").returning(|_, _| Ok(None));
    let mut secrets = MockSecretsApi::new();
    secrets.expect_describe().withf(|n| n == "ds-mock/redis-auth").returning(|_| Ok(None));
    let redis = RedisProvisioner::new(Arc::new(cache), Arc::new(sg), Arc::new(secrets));
    let deleted = redis.destroy(&ctx, &spec(Environment::Test, 2)).await.unwrap();
    assert!(deleted.is_empty(), "{deleted:?}");
}

#[tokio::test(start_paused = true)]
async fn an_unencrypted_redis_is_replaced_only_when_allowed() {
    use dify_stack_core::Permissions;
    let ctx = ctx_in("us-west-2", Environment::Test);
    let spec = spec(Environment::Test, 2);
    // 0: the old group, 1: deleting, 2: gone, 3: the new group.
    let world = |phase: Arc<AtomicUsize>, ctx: &Context| {
        let (tags, r) = (owned_tags(ctx, "redis", "ds-mock-redis"), spec.redis.clone());
        let mut cache = MockElastiCacheApi::new();
        let p = phase.clone();
        cache.expect_describe().withf(|id| id == "ds-mock-redis").returning(move |id| {
            let group = |encrypted: bool, host: &str| ReplicationGroupInfo {
                id: id.clone(),
                arn: Arn::new(format!("arn:aws:elasticache:us-west-2:1:replicationgroup:{id}")),
                status: "available".into(),
                node_type: r.node_type.clone(),
                members: (0..r.nodes).map(|i| format!("{id}-00{i}")).collect(),
                at_rest_encryption: encrypted,
                transit_encryption: true,
                auth_token_enabled: true,
                snapshot_retention_days: r.snapshot_retention_days,
                primary_endpoint: Some((host.to_owned(), 6379)),
                tags: Some(tags.clone()),
                ..Default::default()
            };
            Ok(match p.load(Ordering::SeqCst) {
                0 => Some(group(false, "old")),
                1 => {
                    p.store(2, Ordering::SeqCst);
                    Some(ReplicationGroupInfo { id, status: "deleting".into(), tags: None, ..Default::default() })
                }
                2 => None,
                _ => Some(group(true, "new")),
            })
        });
        let sub_tags = owned_tags(ctx, "redis-subnet-group", "ds-mock-redis");
        cache.expect_find_subnet_group().withf(|n| n == "ds-mock-redis").returning(move |_| Ok(Some(sub_tags.clone())));
        cache.expect_engine().withf(|m| m == "ds-mock-redis-000").returning(|_| Ok(Some(running("7.1.0"))));
        cache
    };
    let provisioner = |cache| {
        RedisProvisioner::new(
            Arc::new(cache),
            Arc::new(ready_sg(&ctx, 6379, "ds-mock-redis")),
            Arc::new(ready_secrets(&ctx, "ds-mock/redis-auth")),
        )
    };
    // Refused: the mock has no expectation for a delete or create, so one would panic.
    let refused = provisioner(world(Arc::new(AtomicUsize::new(0)), &ctx));
    let plan = refused.plan(&ctx, &spec).await.unwrap();
    assert!(plan.has_replacements(), "{plan}");
    let err = refused.apply(&ctx, &spec).await.unwrap_err();
    assert!(
        matches!(&err, DatastoresError::ReplacementRefused { field, .. } if field == "at_rest_encryption"),
        "{err}"
    );

    let phase = Arc::new(AtomicUsize::new(0));
    let mut cache = world(phase.clone(), &ctx);
    let p = phase.clone();
    cache.expect_delete().withf(|id| id == "ds-mock-redis").times(1).returning(move |_| {
        p.store(1, Ordering::SeqCst);
        Ok(())
    });
    let p = phase.clone();
    cache.expect_create().times(1).returning(move |c| {
        assert_eq!(p.load(Ordering::SeqCst), 2, "created before the old group was gone");
        assert_eq!(c.id, "ds-mock-redis");
        p.store(3, Ordering::SeqCst);
        Ok(())
    });
    let allowed =
        ctx.clone().with_permissions(Permissions { allow_replace: true, allow_data_loss: true, ..Default::default() });
    let out = provisioner(cache).apply(&allowed, &spec).await.unwrap();
    assert_eq!(out.primary_endpoint, "new");
}

/// A group that drifted in every way ElastiCache changes in place (node type, replica count,
/// snapshot retention, a lost tag), with a security group missing our tags: the plan shows one
/// update of each, and apply makes exactly those writes, once each, naming what the plan names.
/// The mocks have no create, delete, authorize or revoke: a write the plan did not show panics.
#[tokio::test(start_paused = true)]
async fn a_drifted_redis_gets_exactly_the_writes_its_plan_shows() {
    let ctx = ctx_in("us-west-2", Environment::Prod);
    let mut spec = spec(Environment::Prod, 3);
    spec.redis.nodes = 2;
    spec.redis.node_type = "cache.r7g.large".into();
    spec.redis.snapshot_retention_days = 7;
    let mut tags = owned_tags(&ctx, "redis", "ds-mock-redis");
    let lost = tags.keys().next().unwrap().clone();
    tags.remove(&lost);
    let modified = Arc::new(AtomicUsize::new(0));
    let mut cache = MockElastiCacheApi::new();
    let m = modified.clone();
    cache.expect_describe().withf(|id| id == "ds-mock-redis").returning(move |id| {
        // Before the modification: the old node type and retention; after it: the new ones.
        let done = m.load(Ordering::SeqCst) > 0;
        Ok(Some(ReplicationGroupInfo {
            arn: Arn::new(format!("arn:aws:elasticache:us-west-2:1:replicationgroup:{id}")),
            status: "available".into(),
            node_type: if done { "cache.r7g.large" } else { "cache.t4g.small" }.into(),
            members: vec![format!("{id}-001")],
            at_rest_encryption: true,
            transit_encryption: true,
            auth_token_enabled: true,
            snapshot_retention_days: if done { 7 } else { 1 },
            primary_endpoint: Some(("primary".into(), 6379)),
            tags: Some(tags.clone()),
            id,
            ..Default::default()
        }))
    });
    let sub_tags = owned_tags(&ctx, "redis-subnet-group", "ds-mock-redis");
    cache.expect_find_subnet_group().withf(|n| n == "ds-mock-redis").returning(move |_| Ok(Some(sub_tags.clone())));
    // The spec's 7.1 runs as 7.1.0: no engine change.
    cache.expect_engine().withf(|m| m == "ds-mock-redis-001").returning(|_| Ok(Some(running("7.1.0"))));
    let m = modified.clone();
    cache
        .expect_modify()
        .withf(|id, node_type, days| {
            id == "ds-mock-redis" && node_type.as_deref() == Some("cache.r7g.large") && *days == Some(7)
        })
        .times(1)
        .returning(move |_, _, _| {
            m.fetch_add(1, Ordering::SeqCst);
            Ok(())
        });
    cache
        .expect_set_replicas()
        .withf(|id, replicas, up| id == "ds-mock-redis" && *replicas == 1 && *up)
        .times(1)
        .returning(|_, _, _| Ok(()));
    let want_tag = lost.clone();
    cache
        .expect_tag()
        .withf(move |arn, t| arn.as_str().ends_with(":replicationgroup:ds-mock-redis") && t.keys().eq([&want_tag]))
        .times(1)
        .returning(|_, _| Ok(()));
    let mut sg = ready_sg(&ctx, 6379, "ds-mock-redis");
    sg.checkpoint();
    let sg_tags = owned_tags(&ctx, "x", "x");
    sg.expect_find().withf(|vpc, name| vpc.as_str() == "vpc-1" && name == "ds-mock-redis").returning(move |_, name| {
        Ok(Some(SgInfo {
            id: SecurityGroupId::new(format!("sg-{name}")),
            tags: sg_tags.clone(),
            ingress: vec![("tcp".into(), 6379, 6379, "sg-nodes".into())],
        }))
    });
    let planned_sg_tags = Arc::new(Mutex::new(Vec::<String>::new()));
    let p = planned_sg_tags.clone();
    sg.expect_tag().withf(|id, _| id.as_str() == "sg-ds-mock-redis").times(1).returning(move |_, t| {
        p.lock().unwrap().extend(t.keys().cloned());
        Ok(())
    });
    let redis =
        RedisProvisioner::new(Arc::new(cache), Arc::new(sg), Arc::new(ready_secrets(&ctx, "ds-mock/redis-auth")));

    let plan = redis.plan(&ctx, &spec).await.unwrap();
    let kinds: Vec<(&str, dify_stack_core::Action)> =
        plan.changes.iter().map(|c| (c.resource.kind.as_str(), c.action)).collect();
    assert_eq!(
        kinds,
        [
            ("ec2:security-group", dify_stack_core::Action::Update),
            ("elasticache:replication-group", dify_stack_core::Action::Update)
        ],
        "{plan}"
    );
    let group: Vec<&str> = plan.changes[1].fields.iter().map(|f| f.path.as_str()).collect();
    assert_eq!(group, ["node_type", "nodes", "snapshot_retention_days", &format!("tags.{lost}")], "{plan}");
    let sg_fields: Vec<String> = plan.changes[0].fields.iter().map(|f| f.path.clone()).collect();
    assert!(sg_fields.iter().all(|f| f.starts_with("tags.")), "the ingress is right: {plan}");

    let out = redis.apply(&ctx, &spec).await.unwrap();
    assert_eq!(out.primary_endpoint, "primary");
    let mut written: Vec<String> = planned_sg_tags.lock().unwrap().iter().map(|k| format!("tags.{k}")).collect();
    written.sort();
    let mut shown = sg_fields;
    shown.sort();
    assert_eq!(written, shown, "the security group's tags written are those the plan showed");
}
