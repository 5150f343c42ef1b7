//! Engine version upgrades against mocks that keep each store's state over time: the plan's
//! lines (effect, typical duration, the snapshot before the upgrade in prod and none in test),
//! apply making exactly the writes the plan shows (the mocks record every write and have no
//! expectation for any other: one would panic), refusals that name the field and change
//! nothing, and an interrupted upgrade that is waited for instead of started again.

use dify_stack_core::{Action, Effect, ErrorKind};

use super::*;
use crate::secrets::SecretKind;

const AURORA: &str = "ds-mock-aurora";
const REDIS: &str = "ds-mock-redis";
const SEARCH: &str = "ds-mock-search";

/// The lines of a plan as (kind, name, action, effect).
fn lines(plan: &dify_stack_core::Plan) -> Vec<(String, String, Action, Option<Effect>)> {
    plan.changes.iter().map(|c| (c.resource.kind.clone(), c.resource.name.clone(), c.action, c.effect)).collect()
}

fn line(kind: &str, name: &str, action: Action, effect: Option<Effect>) -> (String, String, Action, Option<Effect>) {
    (kind.to_owned(), name.to_owned(), action, effect)
}

// ---------------------------------------------------------------- Aurora

/// What the RDS mock answers and what was written to it, in order.
#[derive(Debug, Default)]
struct AuroraState {
    version: String,
    status: String,
    /// A started upgrade: DescribeDBClusters polls left while `upgrading`, and the version it
    /// ends on.
    upgrading: Option<(usize, String)>,
    snapshot: Option<String>,
    snapshot_reads: usize,
    group_reads: usize,
    writes: Vec<String>,
}

/// A converged Aurora cluster running `running` (everything else as `spec` wants it, no Data
/// API), whose instances use `groups`.
fn aurora_world(
    ctx: &Context,
    spec: &DatastoresSpec,
    running: &str,
    groups: DbParameterGroups,
) -> (AuroraProvisioner, Arc<Mutex<AuroraState>>) {
    let state = Arc::new(Mutex::new(AuroraState {
        version: running.to_owned(),
        status: "available".to_owned(),
        ..Default::default()
    }));
    let a = spec.aurora.clone();
    let mut rds = MockRdsApi::new();
    let sub_tags = owned_tags(ctx, "aurora-subnet-group", AURORA);
    rds.expect_find_subnet_group().withf(|n| n == AURORA).returning(move |_| Ok(Some(sub_tags.clone())));
    let (st, tags) = (state.clone(), owned_tags(ctx, "aurora", AURORA));
    rds.expect_describe_cluster().withf(|id| id == AURORA).returning(move |id| {
        let mut s = st.lock().unwrap();
        match s.upgrading.take() {
            Some((0, target)) => (s.version, s.status) = (target, "available".to_owned()),
            Some((n, target)) => (s.upgrading, s.status) = (Some((n - 1, target)), "upgrading".to_owned()),
            None => {}
        }
        Ok(Some(DbClusterInfo {
            arn: Arn::new(format!("arn:aws:rds:us-west-2:1:cluster:{id}")),
            id,
            status: s.status.as_str().into(),
            engine: "aurora-postgresql".into(),
            engine_version: s.version.clone(),
            acu: Some((a.min_acu, a.max_acu)),
            encrypted: true,
            backup_retention_days: a.backup_retention_days,
            deletion_protection: a.deletion_protection,
            security_groups: vec![SecurityGroupId::new(format!("sg-{AURORA}"))],
            endpoint: Some("writer".into()),
            tags: tags.clone(),
            ..Default::default()
        }))
    });
    let instances = spec.aurora.instances as usize;
    rds.expect_list_instances().withf(|c| c == AURORA).returning(move |_| {
        Ok((1..=instances)
            .map(|i| DbInstanceInfo { id: format!("{AURORA}-{i}"), status: "available".into(), ..Default::default() })
            .collect())
    });
    let st = state.clone();
    rds.expect_parameter_groups().withf(|c| c == AURORA).returning(move |_| {
        st.lock().unwrap().group_reads += 1;
        Ok(groups.clone())
    });
    let st = state.clone();
    rds.expect_cluster_snapshot_status().returning(move |id| {
        let mut s = st.lock().unwrap();
        s.snapshot_reads += 1;
        let now = s.snapshot.clone().filter(|_| id.starts_with(AURORA));
        // Creating for one read, then available.
        if now.as_deref() == Some("creating") {
            s.snapshot = Some("available".to_owned());
        }
        Ok(now)
    });
    let st = state.clone();
    rds.expect_create_cluster_snapshot().returning(move |cluster, id, tags| {
        let mut s = st.lock().unwrap();
        assert!(tags.contains_key(dify_stack_core::TAG_STACK), "the snapshot carries our tags: {tags:?}");
        s.writes.push(format!("CreateDBClusterSnapshot {id} of {cluster}"));
        s.snapshot = Some("creating".to_owned());
        Ok(())
    });
    let st = state.clone();
    rds.expect_upgrade_cluster().withf(|id, _| id == AURORA).returning(move |_, u| {
        let mut s = st.lock().unwrap();
        let snapshot = s.snapshot.clone().unwrap_or_else(|| "none".to_owned());
        s.writes.push(format!(
            "ModifyDBCluster {} allow_major={} groups={:?}/{:?} (snapshot {snapshot})",
            u.engine_version, u.allow_major_version_upgrade, u.cluster_parameter_group, u.instance_parameter_group
        ));
        s.upgrading = Some((2, u.engine_version));
        Ok(())
    });
    let aurora = AuroraProvisioner::new(
        Arc::new(rds),
        Arc::new(own_sg(ctx, "aurora-security-group", AURORA, 5432)),
        Arc::new(own_secret(ctx, SecretKind::AuroraApp, r#"{"username":"dify_app","password":"pw"}"#)),
    );
    (aurora, state)
}

fn default_groups(major: &str) -> DbParameterGroups {
    let g = Some(format!("default.aurora-postgresql{major}"));
    DbParameterGroups { cluster: g.clone(), instances: vec![(format!("{AURORA}-1"), g)] }
}

fn aurora_spec(env: Environment, want: &str) -> DatastoresSpec {
    let mut s = spec(env, if env == Environment::Prod { 3 } else { 2 });
    s.aurora.data_api = false;
    s.aurora.engine_version = want.to_owned();
    s
}

/// The Must show: a prod Aurora minor upgrade takes a named snapshot first. The plan shows the
/// snapshot as its own line before the in-place upgrade (marked as an upgrade, with its typical
/// duration); apply creates that snapshot, waits until it is available, then sends exactly one
/// ModifyDBCluster with the new version and no major-version flag; the next plan is empty.
#[tokio::test(start_paused = true)]
async fn a_prod_aurora_minor_upgrade_takes_a_named_snapshot_first() {
    let ctx = ctx_in("us-west-2", Environment::Prod);
    let spec = aurora_spec(Environment::Prod, "17.6");
    let (aurora, state) = aurora_world(&ctx, &spec, "17.5", default_groups("17"));
    let snapshot = "ds-mock-aurora-pre-upgrade-17-5-to-17-6";

    let plan = aurora.plan(&ctx, &spec).await.unwrap();
    assert_eq!(
        lines(&plan),
        [
            line("rds:cluster-snapshot", snapshot, Action::Create, None),
            line("rds:cluster", AURORA, Action::Update, Some(Effect::Upgrade)),
        ],
        "{plan}"
    );
    assert!(!plan.has_replacements(), "{plan}");
    assert_eq!(plan.changes[0].typical_secs, Some(typical::AURORA_SNAPSHOT.as_secs()));
    assert_eq!(plan.changes[1].typical_secs, Some(typical::AURORA_MINOR_UPGRADE.as_secs()));
    let fields: Vec<&str> = plan.changes[1].fields.iter().map(|f| f.path.as_str()).collect();
    assert_eq!(fields, ["engine_version"], "{plan}");
    let text = plan.to_string();
    assert!(text.contains("[upgrade, typically 15 min]"), "{text}");
    assert!(state.lock().unwrap().writes.is_empty(), "a plan writes nothing");
    assert_eq!(state.lock().unwrap().group_reads, 0, "a minor upgrade reads no parameter groups");

    aurora.apply(&ctx, &spec).await.unwrap();
    assert_eq!(
        state.lock().unwrap().writes,
        [
            format!("CreateDBClusterSnapshot {snapshot} of {AURORA}"),
            "ModifyDBCluster 17.6 allow_major=false groups=None/None (snapshot available)".to_owned(),
        ]
    );
    assert_eq!(state.lock().unwrap().version, "17.6");
    let next = aurora.plan(&ctx, &spec).await.unwrap();
    assert!(next.is_empty(), "{next}");
}

/// On a test stack the same change takes no snapshot (and reads none): the plan holds the
/// upgrade only, and apply sends only the ModifyDBCluster.
#[tokio::test(start_paused = true)]
async fn a_test_aurora_minor_upgrade_takes_no_snapshot() {
    let ctx = ctx_in("us-west-2", Environment::Test);
    let spec = aurora_spec(Environment::Test, "17.6");
    let (aurora, state) = aurora_world(&ctx, &spec, "17.5", default_groups("17"));
    let plan = aurora.plan(&ctx, &spec).await.unwrap();
    assert_eq!(lines(&plan), [line("rds:cluster", AURORA, Action::Update, Some(Effect::Upgrade))], "{plan}");
    aurora.apply(&ctx, &spec).await.unwrap();
    let s = state.lock().unwrap();
    assert_eq!(s.writes, ["ModifyDBCluster 17.6 allow_major=false groups=None/None (snapshot none)"]);
    assert_eq!(s.snapshot_reads, 0, "no snapshot is looked for on a test stack");
}

/// A major upgrade without `aurora.allow_major_version_upgrade` is refused: the plan says so
/// (no effect: nothing will run), apply fails before any write with an error naming the field
/// and the fix; with the flag the same change runs in place with AllowMajorVersionUpgrade and
/// the new family's default parameter groups, shown in the plan.
#[tokio::test(start_paused = true)]
async fn a_major_aurora_upgrade_runs_only_with_allow_major_version_upgrade() {
    let ctx = ctx_in("us-west-2", Environment::Test);
    let mut spec = aurora_spec(Environment::Test, "17.5");
    let (aurora, state) = aurora_world(&ctx, &spec, "16.9", default_groups("16"));
    let plan = aurora.plan(&ctx, &spec).await.unwrap();
    assert_eq!(lines(&plan), [line("rds:cluster", AURORA, Action::Update, None)], "{plan}");
    let reason = plan.changes[0].reason.clone().unwrap_or_default();
    assert!(
        reason.starts_with("refused: ") && reason.contains("aurora.allow_major_version_upgrade = true"),
        "{reason}"
    );
    let err = aurora.apply(&ctx, &spec).await.unwrap_err();
    assert!(matches!(&err, DatastoresError::UpgradeRefused { field, .. } if field == "engine_version"), "{err:?}");
    let text = err.to_string();
    for part in ["16.9 -> 17.5", "aurora.allow_major_version_upgrade = true", "nothing was changed", "keep"] {
        assert!(text.contains(part), "{part:?} missing from: {text}");
    }
    assert_eq!(err.kind(), ErrorKind::Refused);
    {
        let s = state.lock().unwrap();
        assert!(s.writes.is_empty(), "{:?}", s.writes);
        assert_eq!(s.group_reads, 0, "not read for a refused upgrade");
    }

    spec.aurora.allow_major_version_upgrade = true;
    let (aurora, state) = aurora_world(&ctx, &spec, "16.9", default_groups("16"));
    let plan = aurora.plan(&ctx, &spec).await.unwrap();
    assert_eq!(lines(&plan), [line("rds:cluster", AURORA, Action::Update, Some(Effect::Upgrade))], "{plan}");
    let fields: Vec<(&str, Option<&str>)> =
        plan.changes[0].fields.iter().map(|f| (f.path.as_str(), f.after.as_deref())).collect();
    assert_eq!(
        fields,
        [
            ("engine_version", Some("17.5")),
            ("parameter_groups", Some("default.aurora-postgresql17")),
            ("allow_major_version_upgrade", Some("true")),
        ],
        "{plan}"
    );
    assert_eq!(plan.changes[0].typical_secs, Some(typical::AURORA_MAJOR_UPGRADE.as_secs()));
    aurora.apply(&ctx, &spec).await.unwrap();
    assert_eq!(
        state.lock().unwrap().writes,
        [concat!(
            "ModifyDBCluster 17.5 allow_major=true ",
            "groups=Some(\"default.aurora-postgresql17\")/Some(\"default.aurora-postgresql17\") (snapshot none)"
        )]
    );
    assert!(aurora.plan(&ctx, &spec).await.unwrap().is_empty());
}

/// A downgrade, and a permitted major upgrade of a cluster whose instances use a parameter group
/// dify-stack does not manage (RDS would refuse it: terraform-provider-aws #35912), are refused
/// before any write, each naming what blocks it; a downgrade is never planned as a
/// replacement.
#[tokio::test(start_paused = true)]
async fn an_aurora_downgrade_or_a_custom_parameter_group_is_refused_before_any_write() {
    let ctx = ctx_in("us-west-2", Environment::Prod);
    // A later minor of the same major is AWS's automatic minor upgrade: not drift, no write.
    let spec = aurora_spec(Environment::Prod, "17.5");
    let (aurora, state) = aurora_world(&ctx, &spec, "17.6", default_groups("17"));
    assert!(aurora.plan(&ctx, &spec).await.unwrap().is_empty(), "AWS's own minor upgrade is no drift");
    aurora.apply(&ctx, &spec).await.unwrap();
    assert!(state.lock().unwrap().writes.is_empty());
    // An earlier major is refused.
    let (aurora, state) = aurora_world(&ctx, &spec, "18.1", default_groups("18"));
    let plan = aurora.plan(&ctx, &spec).await.unwrap();
    assert_eq!(lines(&plan), [line("rds:cluster", AURORA, Action::Update, None)], "{plan}");
    let err = aurora.apply(&ctx, &spec).await.unwrap_err().to_string();
    assert!(err.contains("18.1 -> 17.5") && err.contains("earlier engine version"), "{err}");
    assert!(state.lock().unwrap().writes.is_empty());
    assert_eq!(state.lock().unwrap().snapshot_reads, 0, "no snapshot for a refused change");

    let mut spec = aurora_spec(Environment::Prod, "17.5");
    spec.aurora.allow_major_version_upgrade = true;
    let custom = DbParameterGroups {
        cluster: Some("default.aurora-postgresql16".into()),
        instances: vec![(format!("{AURORA}-1"), Some("my-pg16".into()))],
    };
    let (aurora, state) = aurora_world(&ctx, &spec, "16.9", custom);
    let plan = aurora.plan(&ctx, &spec).await.unwrap();
    assert_eq!(lines(&plan), [line("rds:cluster", AURORA, Action::Update, None)], "no snapshot line: {plan}");
    let err = aurora.apply(&ctx, &spec).await.unwrap_err().to_string();
    assert!(err.contains("my-pg16 (instance ds-mock-aurora-1)") && err.contains("#35912"), "{err}");
    assert!(state.lock().unwrap().writes.is_empty());
}

/// A run stopped while the cluster upgraded: the next apply finds it `upgrading` on the old
/// version, waits until it is available, compares again and sends nothing (a second
/// ModifyDBCluster would be refused while it upgrades).
#[tokio::test(start_paused = true)]
async fn an_interrupted_aurora_upgrade_is_waited_for_not_started_again() {
    let ctx = ctx_in("us-west-2", Environment::Test);
    let spec = aurora_spec(Environment::Test, "17.6");
    let (aurora, state) = aurora_world(&ctx, &spec, "17.5", default_groups("17"));
    {
        let mut s = state.lock().unwrap();
        (s.status, s.upgrading) = ("upgrading".to_owned(), Some((3, "17.6".to_owned())));
    }
    aurora.apply(&ctx, &spec).await.unwrap();
    let s = state.lock().unwrap();
    assert!(s.writes.is_empty(), "{:?}", s.writes);
    assert_eq!((s.version.as_str(), s.status.as_str()), ("17.6", "available"));
}

// ---------------------------------------------------------------- Redis

#[derive(Debug, Default)]
struct RedisState {
    version: String,
    parameter_group: Option<String>,
    /// DescribeReplicationGroups polls left in `status` before the group is available again.
    busy: Option<(usize, &'static str)>,
    target: Option<String>,
    snapshot: Option<String>,
    snapshot_reads: usize,
    writes: Vec<String>,
}

/// A converged replication group of `spec` whose nodes run `running` on `group`.
fn redis_world(
    ctx: &Context,
    spec: &DatastoresSpec,
    running: &str,
    group: &str,
) -> (RedisProvisioner, Arc<Mutex<RedisState>>) {
    let state = Arc::new(Mutex::new(RedisState {
        version: running.to_owned(),
        parameter_group: Some(group.to_owned()),
        ..Default::default()
    }));
    let (r, tags) = (spec.redis.clone(), owned_tags(ctx, "redis", REDIS));
    let mut cache = MockElastiCacheApi::new();
    let st = state.clone();
    cache.expect_describe().withf(|id| id == REDIS).returning(move |id| {
        let mut s = st.lock().unwrap();
        let status = match s.busy.take() {
            Some((0, _)) | None => {
                if let Some(v) = s.target.take() {
                    s.version = v;
                }
                "available"
            }
            Some((n, status)) => {
                s.busy = Some((n - 1, status));
                status
            }
        };
        Ok(Some(ReplicationGroupInfo {
            arn: Arn::new(format!("arn:aws:elasticache:us-west-2:1:replicationgroup:{id}")),
            status: status.into(),
            node_type: r.node_type.clone(),
            members: (1..=r.nodes).map(|i| format!("{id}-00{i}")).collect(),
            at_rest_encryption: true,
            transit_encryption: true,
            auth_token_enabled: true,
            snapshot_retention_days: r.snapshot_retention_days,
            primary_endpoint: Some(("primary".into(), 6379)),
            // ElastiCache refuses tag reads unless available.
            tags: (status == "available").then(|| tags.clone()),
            id,
            ..Default::default()
        }))
    });
    let sub_tags = owned_tags(ctx, "redis-subnet-group", REDIS);
    cache.expect_find_subnet_group().withf(|n| n == REDIS).returning(move |_| Ok(Some(sub_tags.clone())));
    let st = state.clone();
    cache.expect_engine().withf(|m| m == "ds-mock-redis-001").returning(move |_| {
        let s = st.lock().unwrap();
        Ok(Some(CacheEngine { version: s.version.clone(), parameter_group: s.parameter_group.clone() }))
    });
    let st = state.clone();
    cache.expect_snapshot_status().returning(move |name| {
        let mut s = st.lock().unwrap();
        s.snapshot_reads += 1;
        let now = s.snapshot.clone().filter(|_| name.starts_with(REDIS));
        if now.as_deref() == Some("creating") {
            s.snapshot = Some("available".to_owned());
        }
        Ok(now)
    });
    let st = state.clone();
    cache.expect_create_snapshot().withf(|g, _, _| g == REDIS).returning(move |group, name, _| {
        let mut s = st.lock().unwrap();
        s.writes.push(format!("CreateSnapshot {name} of {group}"));
        (s.snapshot, s.busy) = (Some("creating".to_owned()), Some((1, "snapshotting")));
        Ok(())
    });
    let st = state.clone();
    cache.expect_upgrade_engine().withf(|id, _, _| id == REDIS).returning(move |_, version, group| {
        let mut s = st.lock().unwrap();
        if let Some((_, status)) = s.busy {
            // ElastiCache: "Replication group must be in available state to modify".
            let message = format!("the group is {status}");
            return Err(dify_stack_core::AwsError::new(
                "ModifyReplicationGroup",
                "InvalidReplicationGroupState",
                message,
            ));
        }
        let snapshot = s.snapshot.clone().unwrap_or_else(|| "none".to_owned());
        s.writes.push(format!("ModifyReplicationGroup {version} {group:?} (snapshot {snapshot})"));
        if group.is_some() {
            s.parameter_group = group;
        }
        (s.target, s.busy) = (Some(format!("{version}.0")), Some((2, "modifying")));
        Ok(())
    });
    let redis = RedisProvisioner::new(
        Arc::new(cache),
        Arc::new(own_sg(ctx, "redis-security-group", REDIS, 6379)),
        Arc::new(own_secret(ctx, SecretKind::RedisAuth, "token-token-token-token")),
    );
    (redis, state)
}

fn redis_spec(env: Environment, want: &str) -> DatastoresSpec {
    let mut s = spec(env, if env == Environment::Prod { 3 } else { 2 });
    s.redis.engine_version = want.to_owned();
    s
}

/// Prod Redis 7.0.7 -> 7.1: the plan shows the named snapshot, then the in-place upgrade;
/// apply takes the snapshot, waits for it (and for the group back from `snapshotting`), sends
/// one ModifyReplicationGroup with the version and no parameter group (same family), and waits
/// until the node runs 7.1; the next plan is empty (7.1 runs as 7.1.0).
#[tokio::test(start_paused = true)]
async fn a_prod_redis_upgrade_takes_a_named_snapshot_first_and_runs_in_place() {
    let ctx = ctx_in("us-west-2", Environment::Prod);
    let spec = redis_spec(Environment::Prod, "7.1");
    let (redis, state) = redis_world(&ctx, &spec, "7.0.7", "default.redis7");
    let snapshot = "ds-mock-redis-pre-upgrade-7-0-7-to-7-1";
    let plan = redis.plan(&ctx, &spec).await.unwrap();
    assert_eq!(
        lines(&plan),
        [
            line("elasticache:snapshot", snapshot, Action::Create, None),
            line("elasticache:replication-group", REDIS, Action::Update, Some(Effect::Upgrade)),
        ],
        "{plan}"
    );
    assert_eq!(plan.changes[1].typical_secs, Some(typical::REDIS_UPGRADE.as_secs()));
    assert!(plan.changes[1].reason.as_deref().unwrap_or_default().contains("online"), "{plan}");
    redis.apply(&ctx, &spec).await.unwrap();
    assert_eq!(
        state.lock().unwrap().writes,
        [
            format!("CreateSnapshot {snapshot} of {REDIS}"),
            "ModifyReplicationGroup 7.1 None (snapshot available)".to_owned()
        ]
    );
    let next = redis.plan(&ctx, &spec).await.unwrap();
    assert!(next.is_empty(), "{next}");
}

/// A test Redis 6.2 -> 7.1 changes family: no snapshot; the plan and the request carry the new
/// family's default group (`default.redis6.x` -> `default.redis7`). A group on a parameter group
/// of its own is refused (it would need a redis7 one), and so is a downgrade: no write.
#[tokio::test(start_paused = true)]
async fn a_redis_family_change_takes_the_new_default_group_and_a_downgrade_is_refused() {
    let ctx = ctx_in("us-west-2", Environment::Test);
    let spec = redis_spec(Environment::Test, "7.1");
    let (redis, state) = redis_world(&ctx, &spec, "6.2.6", "default.redis6.x");
    let plan = redis.plan(&ctx, &spec).await.unwrap();
    assert_eq!(
        lines(&plan),
        [line("elasticache:replication-group", REDIS, Action::Update, Some(Effect::Upgrade))],
        "{plan}"
    );
    let fields: Vec<(&str, Option<&str>)> =
        plan.changes[0].fields.iter().map(|f| (f.path.as_str(), f.after.as_deref())).collect();
    assert_eq!(fields, [("engine_version", Some("7.1")), ("parameter_group", Some("default.redis7"))]);
    redis.apply(&ctx, &spec).await.unwrap();
    {
        let s = state.lock().unwrap();
        assert_eq!(s.writes, ["ModifyReplicationGroup 7.1 Some(\"default.redis7\") (snapshot none)"]);
        assert_eq!(s.snapshot_reads, 0);
    }

    let (redis, state) = redis_world(&ctx, &spec, "6.2.6", "team-redis6");
    let err = redis.apply(&ctx, &spec).await.unwrap_err();
    let text = err.to_string();
    assert!(text.contains("team-redis6") && text.contains("redis7") && text.contains("nothing was changed"), "{text}");
    assert!(state.lock().unwrap().writes.is_empty());

    // A later minor of the same major is ElastiCache's automatic minor upgrade: no drift.
    let spec = redis_spec(Environment::Test, "7.0");
    let (redis, state) = redis_world(&ctx, &spec, "7.1.0", "default.redis7");
    assert!(redis.plan(&ctx, &spec).await.unwrap().is_empty());
    assert!(state.lock().unwrap().writes.is_empty());
    // An earlier major is refused.
    let spec = redis_spec(Environment::Test, "6.2");
    let (redis, state) = redis_world(&ctx, &spec, "7.1.0", "default.redis7");
    let plan = redis.plan(&ctx, &spec).await.unwrap();
    assert_eq!(lines(&plan), [line("elasticache:replication-group", REDIS, Action::Update, None)], "{plan}");
    let err = redis.apply(&ctx, &spec).await.unwrap_err();
    assert!(matches!(&err, DatastoresError::UpgradeRefused { have, want, .. } if have == "7.1.0" && want == "6.2"));
    assert!(err.to_string().contains("redis.engine_version"), "{err}");
    assert!(state.lock().unwrap().writes.is_empty());
}

/// A run stopped while the group upgraded: the next apply finds it `modifying` (no tags to
/// read), waits until it is available, compares the version it ended on and sends nothing.
#[tokio::test(start_paused = true)]
async fn an_interrupted_redis_upgrade_is_waited_for_not_started_again() {
    let ctx = ctx_in("us-west-2", Environment::Test);
    let spec = redis_spec(Environment::Test, "7.1");
    let (redis, state) = redis_world(&ctx, &spec, "7.0.7", "default.redis7");
    {
        let mut s = state.lock().unwrap();
        (s.target, s.busy) = (Some("7.1.0".to_owned()), Some((2, "modifying")));
    }
    redis.apply(&ctx, &spec).await.unwrap();
    let s = state.lock().unwrap();
    assert!(s.writes.is_empty(), "{:?}", s.writes);
    assert_eq!(s.version, "7.1.0");
}

// ---------------------------------------------------------------- OpenSearch

/// The stages GetUpgradeStatus reports after UpgradeDomain, one per DescribeDomain poll: (step,
/// status, processing). The `UPGRADE` step succeeds while the domain still processes (the old
/// fleet is removed after the switch).
const BLUE_GREEN: [(&str, &str, bool); 5] = [
    ("PRE_UPGRADE_CHECK", "IN_PROGRESS", true),
    ("SNAPSHOT", "IN_PROGRESS", true),
    ("UPGRADE", "IN_PROGRESS", true),
    ("UPGRADE", "SUCCEEDED", true),
    ("UPGRADE", "SUCCEEDED", false),
];

#[derive(Debug, Default)]
struct SearchState {
    version: String,
    target: Option<String>,
    stage: usize,
    polls: usize,
    writes: Vec<String>,
}

/// A converged domain of `spec` running `running`, to which GetCompatibleVersions offers
/// `targets`.
fn search_world(
    ctx: &Context,
    spec: &DatastoresSpec,
    running: &str,
    targets: &'static [&'static str],
    script: &'static [(&'static str, &'static str, bool)],
) -> (OpenSearchProvisioner, Arc<Mutex<SearchState>>) {
    let state = Arc::new(Mutex::new(SearchState { version: running.to_owned(), ..Default::default() }));
    let want = OpenSearchProvisioner::config_for(ctx, spec, "sg-ds-mock-opensearch");
    let mut search = MockOpenSearchApi::new();
    let st = state.clone();
    search.expect_describe().withf(|n| n == SEARCH).returning(move |name| {
        let mut s = st.lock().unwrap();
        let mut processing = false;
        if let Some(target) = s.target.clone() {
            s.polls += 1;
            let (_, status, busy) = script[s.stage];
            processing = busy;
            // Switched: the new version shows while the old fleet is still removed.
            if status == "SUCCEEDED" {
                s.version = target;
            }
            if s.stage + 1 == script.len() {
                s.target = None;
            } else {
                s.stage += 1;
            }
        }
        Ok(Some(DomainInfo {
            name,
            arn: Arn::new(format!("arn:aws:es:us-west-2:1:domain/{SEARCH}")),
            processing,
            engine_version: s.version.clone(),
            instance_type: want.instance_type.clone(),
            instance_count: want.instance_count,
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
            access_policy: Some(want.access_policy.clone()),
            tags: want.tags.clone(),
            ..Default::default()
        }))
    });
    let st = state.clone();
    search.expect_upgrade_status().withf(|n| n == SEARCH).returning(move |_| {
        let s = st.lock().unwrap();
        // The stage the last DescribeDomain showed.
        let shown = if s.target.is_some() { s.stage.saturating_sub(1) } else { script.len() - 1 };
        let (step, status, _) = script[shown];
        Ok((s.polls > 0).then(|| UpgradeStatusInfo { step: step.into(), status: status.into(), name: None }))
    });
    let st = state.clone();
    search.expect_compatible_versions().withf(|n| n == SEARCH).returning(move |_| {
        let source = st.lock().unwrap().version.clone();
        Ok(vec![(source, targets.iter().map(|t| (*t).to_owned()).collect())])
    });
    let st = state.clone();
    search.expect_upgrade_domain().withf(|n, _| n == SEARCH).returning(move |_, target| {
        let mut s = st.lock().unwrap();
        s.writes.push(format!("UpgradeDomain {target}"));
        s.target = Some(target);
        Ok(())
    });
    let os = OpenSearchProvisioner::new(
        Arc::new(search),
        Arc::new(own_sg(ctx, "opensearch-security-group", "ds-mock-opensearch", 443)),
        Arc::new(own_secret(ctx, SecretKind::OpenSearchMaster, r#"{"username":"dify-admin","password":"pw"}"#)),
    );
    (os, state)
}

/// The Must show: an OpenSearch version change is planned as a blue/green upgrade, never a
/// replacement. The plan's one line is an update marked blue/green with the 3-node typical
/// duration and says what protects the data; apply sends one UpgradeDomain and waits through
/// every stage GetUpgradeStatus reports until the upgrade step succeeded and the domain no
/// longer processes (not at the step's success while the old fleet is still being removed);
/// the next plan is empty.
#[tokio::test(start_paused = true)]
async fn an_opensearch_version_change_is_a_blue_green_upgrade_never_a_replacement() {
    let ctx = ctx_in("us-west-2", Environment::Prod);
    let mut spec = spec(Environment::Prod, 3);
    spec.opensearch.engine_version = "OpenSearch_2.19".into();
    let (os, state) =
        search_world(&ctx, &spec, "OpenSearch_2.17", &["OpenSearch_2.18", "OpenSearch_2.19"], &BLUE_GREEN);
    let plan = os.plan(&ctx, &spec).await.unwrap();
    assert_eq!(lines(&plan), [line("opensearch:domain", SEARCH, Action::Update, Some(Effect::BlueGreen))], "{plan}");
    assert!(!plan.has_replacements(), "{plan}");
    assert_eq!(plan.changes[0].typical_secs, Some(typical::OPENSEARCH_UPGRADE_3_NODES.as_secs()));
    let text = plan.to_string();
    for part in [
        "UpgradeDomain, a blue/green deployment",
        "snapshot",
        "old fleet serves until the switch",
        "[blue/green, typically 90 min]",
    ] {
        assert!(text.contains(part), "{part:?} missing from: {text}");
    }
    assert!(state.lock().unwrap().writes.is_empty(), "a plan writes nothing");

    os.apply(&ctx, &spec).await.unwrap();
    {
        let s = state.lock().unwrap();
        assert_eq!(s.writes, ["UpgradeDomain OpenSearch_2.19"]);
        assert_eq!(s.polls, BLUE_GREEN.len(), "waited through every stage, including the old fleet's removal");
    }
    let next = os.plan(&ctx, &spec).await.unwrap();
    assert!(next.is_empty(), "{next}");
}

/// A downgrade, and a version GetCompatibleVersions does not offer, are refused before any
/// write, the second listing what is offered; neither is ever a replacement.
#[tokio::test(start_paused = true)]
async fn an_opensearch_downgrade_or_an_unoffered_path_is_refused_before_any_write() {
    let ctx = ctx_in("us-west-2", Environment::Test);
    let mut spec = spec(Environment::Test, 2);
    spec.opensearch.engine_version = "OpenSearch_2.17".into();
    let (os, state) = search_world(&ctx, &spec, "OpenSearch_2.19", &[], &BLUE_GREEN);
    let plan = os.plan(&ctx, &spec).await.unwrap();
    assert_eq!(lines(&plan), [line("opensearch:domain", SEARCH, Action::Update, None)], "{plan}");
    let err = os.apply(&ctx, &spec).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Refused);
    assert!(err.to_string().contains("opensearch.engine_version = \"OpenSearch_2.19\""), "{err}");
    assert!(state.lock().unwrap().writes.is_empty());

    spec.opensearch.engine_version = "OpenSearch_2.19".into();
    let (os, state) =
        search_world(&ctx, &spec, "OpenSearch_2.11", &["OpenSearch_2.13", "OpenSearch_2.15"], &BLUE_GREEN);
    let plan = os.plan(&ctx, &spec).await.unwrap();
    assert!(!plan.has_replacements(), "{plan}");
    let err = os.apply(&ctx, &spec).await.unwrap_err().to_string();
    assert!(err.contains("offers: OpenSearch_2.13, OpenSearch_2.15"), "{err}");
    assert!(state.lock().unwrap().writes.is_empty());
}

/// An upgrade whose pre-upgrade check fails: the domain stops processing and stays on its
/// version. Apply reports the failed step (read through GetUpgradeStatus) instead of taking the
/// idle domain for done and leaving the next plan to show the same upgrade again.
#[tokio::test(start_paused = true)]
async fn a_failed_opensearch_upgrade_ends_apply_with_the_failed_step() {
    const FAILS: [(&str, &str, bool); 2] =
        [("PRE_UPGRADE_CHECK", "IN_PROGRESS", true), ("PRE_UPGRADE_CHECK", "FAILED", false)];
    let ctx = ctx_in("us-west-2", Environment::Test);
    let mut spec = spec(Environment::Test, 2);
    spec.opensearch.engine_version = "OpenSearch_2.19".into();
    let (os, state) = search_world(&ctx, &spec, "OpenSearch_2.17", &["OpenSearch_2.19"], &FAILS);
    let err = os.apply(&ctx, &spec).await.unwrap_err();
    let text = err.to_string();
    assert!(matches!(err, DatastoresError::Failed { kind: "OpenSearch domain", .. }), "{err:?}");
    assert!(text.contains("PRE_UPGRADE_CHECK step failed") && text.contains("stays on OpenSearch_2.17"), "{text}");
    let s = state.lock().unwrap();
    assert_eq!((s.writes.len(), s.version.as_str()), (1, "OpenSearch_2.17"));
}
