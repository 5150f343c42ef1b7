//! Aurora against mocks: apply makes exactly the writes its plan shows.

use super::*;

/// A cluster that drifted in place (ACU range, backup retention, someone's security group in
/// place of ours, a lost tag) with one instance more than the spec asks for, in a region without
/// the Data API: the plan shows one cluster update listing exactly those and one instance
/// delete; apply makes one ModifyDBCluster carrying exactly the plan's fields, one
/// AddTagsToResource with the lost tag and one DeleteDBInstance. The mocks have no create:
/// a write the plan did not show panics.
#[tokio::test(start_paused = true)]
async fn a_drifted_cluster_gets_exactly_the_writes_its_plan_shows() {
    // A region without the Data API (the SQL phase only lists its statements).
    let ctx = ctx_in("us-west-2", Environment::Test);
    let mut spec = spec(Environment::Test, 2);
    spec.aurora.data_api = false;
    let a = spec.aurora.clone();
    let mut tags = owned_tags(&ctx, "aurora", "ds-mock-aurora");
    let lost = tags.keys().next().unwrap().clone();
    tags.remove(&lost);
    let mut rds = MockRdsApi::new();
    let sub_tags = owned_tags(&ctx, "aurora-subnet-group", "ds-mock-aurora");
    rds.expect_find_subnet_group().withf(|n| n == "ds-mock-aurora").returning(move |_| Ok(Some(sub_tags.clone())));
    let cluster = DbClusterInfo {
        id: "ds-mock-aurora".into(),
        arn: "arn:aws:rds:us-west-2:1:cluster:ds-mock-aurora".into(),
        status: "available".into(),
        engine_version: a.engine_version.clone(),
        acu: Some((0.5, 1.0)),
        backup_retention_days: a.backup_retention_days + 1,
        deletion_protection: a.deletion_protection,
        security_groups: vec!["sg-someone".into()],
        endpoint: Some("writer".into()),
        tags,
        ..Default::default()
    };
    rds.expect_describe_cluster().withf(|id| id == "ds-mock-aurora").returning(move |_| Ok(Some(cluster.clone())));
    let deleted = Arc::new(AtomicUsize::new(0));
    let d = deleted.clone();
    let wanted = a.instances as usize;
    rds.expect_list_instances().withf(|c| c == "ds-mock-aurora").returning(move |_| {
        let gone = d.load(Ordering::SeqCst) > 0;
        Ok((1..=wanted + 1)
            .map(|i| DbInstanceInfo {
                id: format!("ds-mock-aurora-{i}"),
                status: if i > wanted && gone { "deleting" } else { "available" }.into(),
                ..Default::default()
            })
            .collect())
    });
    let (min, max) = (a.min_acu, a.max_acu);
    let retention = a.backup_retention_days;
    rds.expect_modify_cluster()
        .withf(move |id, m| {
            id == "ds-mock-aurora"
                && *m
                    == DbClusterModify {
                        acu: Some((min, max)),
                        backup_retention_days: Some(retention),
                        deletion_protection: None,
                        security_groups: Some(vec!["sg-ds-mock-aurora".into()]),
                    }
        })
        .times(1)
        .returning(|_, _| Ok(()));
    let key = lost.clone();
    rds.expect_tag()
        .withf(move |arn, t| arn.as_str().ends_with(":cluster:ds-mock-aurora") && t.keys().eq([&key]))
        .times(1)
        .returning(|_, _| Ok(()));
    let extra = format!("ds-mock-aurora-{}", wanted + 1);
    let d = deleted.clone();
    rds.expect_delete_instance().withf(move |id| *id == extra).times(1).returning(move |_| {
        d.fetch_add(1, Ordering::SeqCst);
        Ok(())
    });
    let mut sg = MockSgApi::new();
    let sg_tags = owned_tags(&ctx, "aurora-security-group", "ds-mock-aurora");
    sg.expect_find().withf(|vpc, n| vpc.as_str() == "vpc-1" && n == "ds-mock-aurora").returning(move |_, n| {
        Ok(Some(SgInfo {
            id: SecurityGroupId::new(format!("sg-{n}")),
            tags: sg_tags.clone(),
            ingress: vec![("tcp".into(), 5432, 5432, "sg-nodes".into())],
        }))
    });
    let aurora =
        AuroraProvisioner::new(Arc::new(rds), Arc::new(sg), Arc::new(ready_secrets(&ctx, "ds-mock/aurora-app")));

    let plan = aurora.plan(&ctx, &spec).await.unwrap();
    let shown: Vec<(&str, dify_stack_core::Action)> =
        plan.changes.iter().map(|c| (c.resource.kind.as_str(), c.action)).collect();
    assert_eq!(
        shown,
        [("rds:cluster", dify_stack_core::Action::Update), ("rds:instance", dify_stack_core::Action::Delete)],
        "{plan}"
    );
    let fields: Vec<&str> = plan.changes[0].fields.iter().map(|f| f.path.as_str()).collect();
    assert_eq!(
        fields,
        ["serverless_v2_acu", "backup_retention_days", "security_groups", &format!("tags.{lost}")],
        "{plan}"
    );
    let out = aurora.apply(&ctx, &spec).await.unwrap();
    assert_eq!(out.writer_endpoint, "writer");
    assert!(!out.pending_statements.is_empty(), "without the Data API the statements are listed");
    assert_eq!(deleted.load(Ordering::SeqCst), 1);
}
