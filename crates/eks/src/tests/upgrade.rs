//! Kubernetes upgrades as ordered steps: each minor's control plane, its add-ons, its nodes;
//! stopped by a blocking insight; resumed after an interruption; the upgrade policy.

use super::*;

/// The updates since `mark`, in order.
fn updates_since(fake: &FakeEks, mark: usize) -> Vec<String> {
    fake.calls()[mark..].iter().filter(|c| c.starts_with("Update")).cloned().collect()
}

/// The plan's lines as `kind name: field have -> want [effect]`.
fn lines(plan: &dify_stack_core::Plan) -> Vec<String> {
    plan.changes
        .iter()
        .map(|c| {
            let f = &c.fields[0];
            format!(
                "{} {}: {} {} -> {} [{}]",
                c.resource.kind,
                c.resource.name,
                f.path,
                f.before.as_deref().unwrap_or("-"),
                f.after.as_deref().unwrap_or("-"),
                c.effect.map(|e| e.label()).unwrap_or("-")
            )
        })
        .collect()
}

/// The plan and the run of one minor's step, in the order apply makes them.
fn step_lines(from: &str, to: &str) -> Vec<String> {
    let mut out = vec![format!("eks:cluster eks-t: version {from} -> {to} [upgrade]")];
    for addon in DEFAULT_ADDONS {
        out.push(format!("eks:addon {addon}: version v-{addon}-{from} -> v-{addon}-{to} [upgrade]"));
    }
    out.push(format!("eks:nodegroup eks-t-main: version {from} -> {to} [rolling]"));
    out
}

fn step_writes(to: &str) -> Vec<String> {
    let mut out = vec![format!("UpdateClusterVersion({to})")];
    out.extend(DEFAULT_ADDONS.iter().map(|a| format!("UpdateAddon({a})")));
    out.push(format!("UpdateNodegroupVersion({to})"));
    out
}

#[tokio::test(start_paused = true)]
async fn a_two_minor_upgrade_is_planned_and_made_one_minor_at_a_time_nodes_following_each() {
    let fake = FakeEks::default();
    let eks = EksProvisioner::new(fake.clone());
    let ctx = ctx();
    let mut old = spec();
    old.kubernetes_version = "1.31".parse().unwrap();
    eks.apply(&ctx, &old).await.unwrap();
    let mark = fake.calls().len();

    let new = spec();
    assert_eq!(new.kubernetes_version.to_string(), "1.33");
    let writes_before = fake.writes().len();
    let plan = eks.plan(&ctx, &new).await.unwrap();
    assert_eq!(fake.writes().len(), writes_before, "plan writes nothing");
    let want: Vec<String> = [step_lines("1.31", "1.32"), step_lines("1.32", "1.33")].concat();
    let got = lines(&plan);
    assert_eq!(got, want, "{plan}");
    // Each step says which it is and how long it typically takes.
    let text = plan.to_string();
    assert!(text.contains("upgrade step 1 of 2") && text.contains("upgrade step 2 of 2"), "{text}");
    assert!(plan.changes.iter().all(|c| c.typical_secs.is_some()), "{text}");
    assert!(text.contains("[upgrade, typically 10 min]") && text.contains("[rolling, typically 20 min]"), "{text}");

    eks.apply(&ctx, &new).await.unwrap();
    assert_eq!(updates_since(&fake, mark), [step_writes("1.32"), step_writes("1.33")].concat());
    assert!(eks.plan(&ctx, &new).await.unwrap().is_empty(), "converged");
    let s = fake.state();
    assert_eq!(s.nodegroup.as_ref().unwrap().version.as_deref(), Some("1.33"));
    assert!(s.addons.iter().all(|(n, a)| a.version == format!("v-{n}-1.33")), "{:?}", s.addons);
}

#[tokio::test(start_paused = true)]
async fn a_downgrade_is_refused_before_any_write() {
    let fake = FakeEks::default();
    let eks = EksProvisioner::new(fake.clone());
    let ctx = ctx();
    eks.apply(&ctx, &spec()).await.unwrap();
    let mut old = spec();
    old.kubernetes_version = "1.32".parse().unwrap();
    let plan = eks.plan(&ctx, &old).await.unwrap();
    assert_eq!(plan.changes.len(), 1, "{plan}");
    assert!(plan.to_string().contains("downgrades are refused"), "{plan}");
    let before = fake.writes().len();
    let err = eks.apply(&ctx, &old).await.unwrap_err();
    assert!(matches!(err, EksError::DowngradeRefused { .. }), "{err:?}");
    assert!(err.to_string().contains("set kubernetes_version to 1.33"), "{err}");
    assert_eq!(fake.writes().len(), before);
}

#[tokio::test(start_paused = true)]
async fn a_blocking_upgrade_insight_stops_the_upgrade_before_its_first_step_with_the_fix() {
    let fake = FakeEks::default();
    let eks = EksProvisioner::new(fake.clone());
    let ctx = ctx();
    let mut old = spec();
    old.kubernetes_version = "1.32".parse().unwrap();
    eks.apply(&ctx, &old).await.unwrap();
    let insight = |status: &str| Insight {
        id: "a1b2".into(),
        name: "Deprecated APIs removed in Kubernetes v1.33".into(),
        kubernetes_version: "1.33".into(),
        status: status.into(),
        reason: "Deprecated API usage detected within last 30 days".into(),
        description: "Checks for usage of deprecated APIs".into(),
    };
    fake.state().insights = vec![insight("ERROR")];
    let plan = eks.plan(&ctx, &spec()).await.unwrap();
    assert!(plan.to_string().contains("BLOCKED by the upgrade insight"), "{plan}");
    let mark = fake.calls().len();
    let err = eks.apply(&ctx, &spec()).await.unwrap_err();
    assert!(matches!(err, EksError::UpgradeBlocked(_)), "{err:?}");
    let text = err.to_string();
    for part in ["Deprecated APIs removed", "ERROR", "describe-insight", "--id a1b2", "then apply again"] {
        assert!(text.contains(part), "{part:?} missing: {text}");
    }
    assert_eq!(err.kind(), dify_stack_core::ErrorKind::Refused);
    assert!(updates_since(&fake, mark).is_empty(), "nothing written: {:?}", updates_since(&fake, mark));
    // A warning does not stop it.
    fake.state().insights = vec![insight("WARNING")];
    eks.apply(&ctx, &spec()).await.unwrap();
    assert_eq!(updates_since(&fake, mark), step_writes("1.33"));
}

#[tokio::test(start_paused = true)]
async fn an_upgrade_interrupted_after_a_control_plane_step_resumes_with_its_add_ons_and_nodes() {
    let fake = FakeEks::default();
    let eks = EksProvisioner::new(fake.clone());
    let ctx = ctx();
    let mut old = spec();
    old.kubernetes_version = "1.31".parse().unwrap();
    eks.apply(&ctx, &old).await.unwrap();
    // The run stopped right after UpdateClusterVersion(1.32) finished.
    fake.state().cluster.as_mut().unwrap().version = "1.32".into();
    let plan = eks.plan(&ctx, &spec()).await.unwrap();
    let mut want = step_lines("1.31", "1.32");
    want.remove(0);
    want.extend(step_lines("1.32", "1.33"));
    assert_eq!(lines(&plan), want, "{plan}");
    let mark = fake.calls().len();
    eks.apply(&ctx, &spec()).await.unwrap();
    let mut writes = step_writes("1.32");
    writes.remove(0);
    writes.extend(step_writes("1.33"));
    assert_eq!(updates_since(&fake, mark), writes);
    assert!(eks.plan(&ctx, &spec()).await.unwrap().is_empty());
}

#[tokio::test(start_paused = true)]
async fn a_pinned_add_on_keeps_its_pin_through_an_upgrade() {
    let fake = FakeEks::default();
    let eks = EksProvisioner::new(fake.clone());
    let ctx = ctx();
    let mut old = spec();
    old.kubernetes_version = "1.32".parse().unwrap();
    old.addon_versions.insert("coredns".into(), "v-coredns-pinned".into());
    eks.apply(&ctx, &old).await.unwrap();
    let mut new = spec();
    new.addon_versions = old.addon_versions.clone();
    let plan = eks.plan(&ctx, &new).await.unwrap();
    assert!(!plan.changes.iter().any(|c| c.resource.name == "coredns"), "{plan}");
    eks.apply(&ctx, &new).await.unwrap();
    assert_eq!(fake.state().addons["coredns"].version, "v-coredns-pinned");
}

#[tokio::test(start_paused = true)]
async fn the_support_type_is_set_at_create_and_changed_alone() {
    let fake = FakeEks::default();
    let eks = EksProvisioner::new(fake.clone());
    let ctx = ctx();
    eks.apply(&ctx, &spec()).await.unwrap();
    assert_eq!(fake.state().cluster.as_ref().unwrap().support_type.as_deref(), Some("EXTENDED"));
    let mut standard = spec();
    standard.support_type = SupportType::Standard;
    let plan = eks.plan(&ctx, &standard).await.unwrap();
    assert_eq!(lines(&plan), ["eks:cluster eks-t: support_type EXTENDED -> STANDARD [-]"], "{plan}");
    let mark = fake.calls().len();
    eks.apply(&ctx, &standard).await.unwrap();
    assert_eq!(updates_since(&fake, mark), ["UpdateClusterConfig(support STANDARD)"]);
    assert!(eks.plan(&ctx, &standard).await.unwrap().is_empty());
}
