//! A Kubernetes upgrade of the whole test stack against the strict emulator (moto with
//! `moto_ext.py`, `moto_day2.py` and `moto_upgrade.py`): 1.33 to 1.35 is planned as the EKS
//! node's steps in order (each minor's control plane, its add-ons, its nodes), made in that
//! order, then the platform node moves the cluster autoscaler to the 1.35 image; the next plan
//! is empty.

use dify_stack::{DataPolicy, Event, EventSink, Node, Profile, Stack, StackConfig};
use dify_stack_emulator::Emulator;

/// The test profile as the emulator can run it (as in `tests/emulator.rs`): no Kubernetes API,
/// no internet.
fn config(name: &str, version: &str) -> StackConfig {
    let mut cfg = Profile::Test.config().with_name(name).expect("a valid stack name");
    cfg.iam.service_accounts = false;
    cfg.eks.checkip_url = Emulator::shared().expect("emulator").checkip_url();
    cfg.iam.discover_thumbprint = false;
    cfg.eks.kubernetes_version = version.parse().expect("a Kubernetes version");
    cfg
}

#[tokio::test]
async fn the_test_stack_upgrades_from_1_33_to_1_35_in_ordered_steps_then_the_autoscaler_follows() {
    let account = Emulator::shared().expect("emulator").account("us-west-2").await;
    let stack = Stack::connect(config("upgrade-e2e", "1.33"), account.config.clone()).await.unwrap();
    let out = stack.apply().await.unwrap();
    // The autoscaler's release as the platform node hands it over (no Kubernetes API here): its
    // chart version and image tag follow the cluster's minor.
    let autoscaler = |out: &dify_stack::StackOutput| {
        let p = out.platform.as_ref().unwrap();
        let command = p.commands.iter().find(|c| c.contains("cluster-autoscaler")).cloned().unwrap();
        format!("{command}\n{}", p.release_values["cluster-autoscaler"])
    };
    assert!(
        autoscaler(&out).contains("--version 9.51.0") && autoscaler(&out).contains("v1.33.6"),
        "{}",
        autoscaler(&out)
    );

    let up = Stack::connect(config("upgrade-e2e", "1.35"), account.config.clone()).await.unwrap();
    let plan = up.plan().await.unwrap();
    assert!(plan.nodes[&Node::EksControlPlane].plan.is_empty(), "the upgrade is the EKS node's:\n{plan}");
    let steps: Vec<String> = plan.nodes[&Node::Eks]
        .plan
        .changes
        .iter()
        .filter(|c| c.resource.kind != "eks:addon")
        .map(|c| {
            let f = &c.fields[0];
            format!("{} {} -> {}", c.resource.kind, f.before.as_deref().unwrap(), f.after.as_deref().unwrap())
        })
        .collect();
    assert_eq!(
        steps,
        [
            "eks:cluster 1.33 -> 1.34",
            "eks:nodegroup 1.33 -> 1.34",
            "eks:cluster 1.34 -> 1.35",
            "eks:nodegroup 1.34 -> 1.35"
        ],
        "{plan}"
    );
    // Add-ons move between each control-plane step and its nodes.
    let kinds: Vec<&str> = plan.nodes[&Node::Eks].plan.changes.iter().map(|c| c.resource.kind.as_str()).collect();
    let first_nodes = kinds.iter().position(|k| *k == "eks:nodegroup").unwrap();
    assert!(kinds[1..first_nodes].iter().all(|k| *k == "eks:addon") && first_nodes > 1, "{kinds:?}");
    // Each step's kind and typical duration, as `plan --json` gives them.
    let report = plan.report();
    assert_eq!(report.summary.get("rolling"), Some(&2), "{:?}", report.summary);
    assert!(report.changes.iter().filter(|c| c.kind == "upgrade").count() >= 2 + 2, "{:?}", report.summary);
    assert!(report.changes.iter().filter(|c| c.kind != "update").all(|c| c.typical_secs.is_some()));
    let text = plan.to_string();
    assert!(text.contains("upgrade step 1 of 2") && text.contains("typically"), "{text}");

    // The run: the EKS node (the upgrade) finishes before the platform node starts.
    let (sink, mut events) = EventSink::channel();
    let up = up.with_events(sink);
    let out = up.apply().await.unwrap();
    let mut order = Vec::new();
    while let Ok(e) = events.try_recv() {
        match e {
            Event::NodeFinished { node: Node::Eks, .. } => order.push("eks finished"),
            Event::NodeStarted { node: Node::Platform } => order.push("platform started"),
            _ => {}
        }
    }
    assert_eq!(order, ["eks finished", "platform started"]);
    assert_eq!(out.eks.as_ref().unwrap().kubernetes_version, "1.35");
    let moved = autoscaler(&out);
    assert!(
        moved.contains("--version 9.59.0") && moved.contains("v1.35.2"),
        "the autoscaler follows the minor: {moved}"
    );
    let after = up.plan().await.unwrap();
    assert!(after.is_empty(), "{after}");

    up.with_data_policy(DataPolicy::delete_everything()).destroy().await.unwrap();
}
