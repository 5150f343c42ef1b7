//! A Kubernetes upgrade against the strict emulator (moto with `moto_ext.py`, `moto_day2.py`
//! and `moto_upgrade.py`: UpdateClusterVersion one minor at a time, UpdateNodegroupVersion not
//! past the control plane, ListInsights, the add-on catalogue per minor): 1.33 to 1.35 is
//! planned and made as two steps of control plane, add-ons and nodes, in order; the next plan
//! is empty; an upgrade stopped after a control-plane step resumes from there.

use aws_sdk_eks::types::UpdateStatus;
use dify_stack_core::ids::{SubnetId, VpcId};
use dify_stack_core::{Context, Environment, Plan, Provisioner};
use dify_stack_eks::{EksProvisioner, EksSpec};
use dify_stack_emulator::{Emulator, TestAccount};

async fn setup(stack: &str) -> (TestAccount, EksSpec, Context) {
    let account = Emulator::shared().expect("emulator").account("us-west-2").await;
    let ec2 = aws_sdk_ec2::Client::new(&account.config);
    let vpc = ec2.create_vpc().cidr_block("10.0.0.0/16").send().await.unwrap();
    let vpc = vpc.vpc().unwrap().vpc_id().unwrap().to_owned();
    let mut subnets = Vec::new();
    for (cidr, az) in [("10.0.10.0/24", "us-west-2a"), ("10.0.11.0/24", "us-west-2b")] {
        let s = ec2.create_subnet().vpc_id(&vpc).cidr_block(cidr).availability_zone(az).send().await.unwrap();
        subnets.push(SubnetId::new(s.subnet().unwrap().subnet_id().unwrap()));
    }
    let spec = EksSpec::for_environment(Environment::Test, VpcId::new(vpc), subnets);
    (account, spec, Context::new(stack, Environment::Test, "us-west-2").unwrap())
}

/// The plan's lines as `kind name: field have -> want`.
fn lines(plan: &Plan) -> Vec<String> {
    plan.changes
        .iter()
        .map(|c| {
            let f = &c.fields[0];
            format!(
                "{} {}: {} {} -> {}",
                c.resource.kind,
                c.resource.name,
                f.path,
                f.before.as_deref().unwrap_or("-"),
                f.after.as_deref().unwrap_or("-")
            )
        })
        .collect()
}

/// What the cluster, its node group and its add-ons run.
async fn versions(eks: &aws_sdk_eks::Client, cluster: &str) -> (String, String, Vec<(String, String)>) {
    let c = eks.describe_cluster().name(cluster).send().await.unwrap();
    let ng = eks.describe_nodegroup().cluster_name(cluster).nodegroup_name(format!("{cluster}-main")).send().await;
    let mut addons = Vec::new();
    for name in eks.list_addons().cluster_name(cluster).send().await.unwrap().addons() {
        let a = eks.describe_addon().cluster_name(cluster).addon_name(name).send().await.unwrap();
        addons.push((name.clone(), a.addon().unwrap().addon_version().unwrap().to_owned()));
    }
    addons.sort();
    (
        c.cluster().unwrap().version().unwrap().to_owned(),
        ng.unwrap().nodegroup().unwrap().version().unwrap().to_owned(),
        addons,
    )
}

/// EKS's default version of each add-on for `minor`.
async fn defaults(eks: &aws_sdk_eks::Client, addons: &[(String, String)], minor: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for (name, _) in addons {
        let v = dify_stack_aws::eks::default_addon_version(eks, name, minor).await.unwrap().unwrap();
        out.push((name.clone(), v));
    }
    out
}

#[tokio::test]
async fn kubernetes_1_33_to_1_35_is_two_ordered_steps_and_an_interrupted_upgrade_resumes() {
    let (account, mut spec, ctx) = setup("upgrade-k8s").await;
    let eks = EksProvisioner::from_conf(&account.config);
    let client = aws_sdk_eks::Client::new(&account.config);
    spec.kubernetes_version = "1.33".parse().unwrap();
    eks.apply(&ctx, &spec).await.unwrap();
    let (_, _, installed) = versions(&client, "upgrade-k8s").await;
    assert_eq!(installed.len(), spec.addons.len(), "{installed:?}");

    spec.kubernetes_version = "1.35".parse().unwrap();
    let plan = eks.plan(&ctx, &spec).await.unwrap();
    let (d34, d35) = (defaults(&client, &installed, "1.34").await, defaults(&client, &installed, "1.35").await);
    let mut want = vec!["eks:cluster upgrade-k8s: version 1.33 -> 1.34".to_owned()];
    // In the spec's order of add-ons, each that moves.
    let moves = |from: &[(String, String)], to: &[(String, String)]| -> Vec<String> {
        let of = |list: &[(String, String)], name: &str| list.iter().find(|(n, _)| n == name).unwrap().1.clone();
        spec.addons
            .iter()
            .filter(|a| of(from, a) != of(to, a))
            .map(|a| format!("eks:addon {a}: version {} -> {}", of(from, a), of(to, a)))
            .collect()
    };
    want.extend(moves(&installed, &d34));
    want.push("eks:nodegroup upgrade-k8s-main: version 1.33 -> 1.34".into());
    want.push("eks:cluster upgrade-k8s: version 1.34 -> 1.35".into());
    want.extend(moves(&d34, &d35));
    want.push("eks:nodegroup upgrade-k8s-main: version 1.34 -> 1.35".into());
    assert_eq!(lines(&plan), want, "{plan}");
    assert!(want.len() > 4, "the catalogue moves some add-on between minors: {want:?}");

    // An apply stopped right after its first UpdateClusterVersion: the control plane goes on
    // to 1.34 on AWS whatever happens to the process.
    let out = client.update_cluster_version().name("upgrade-k8s").version("1.34").send().await.unwrap();
    let id = out.update().unwrap().id().unwrap().to_owned();
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let u = client.describe_update().name("upgrade-k8s").update_id(&id).send().await.unwrap();
        if u.update().unwrap().status() != Some(&UpdateStatus::InProgress) {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "update {id} did not finish");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let resumed = eks.plan(&ctx, &spec).await.unwrap();
    assert_eq!(lines(&resumed), want[1..], "resumes with the first step's add-ons and nodes:\n{resumed}");

    eks.apply(&ctx, &spec).await.unwrap();
    let (cluster, nodes, addons) = versions(&client, "upgrade-k8s").await;
    assert_eq!((cluster.as_str(), nodes.as_str()), ("1.35", "1.35"));
    assert_eq!(addons, d35, "every add-on at 1.35's default");
    let after = eks.plan(&ctx, &spec).await.unwrap();
    assert!(after.is_empty(), "{after}");
}
