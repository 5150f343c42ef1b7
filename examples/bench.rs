//! Performance tables.
//!
//! 1. Simulated real-AWS time: the real graph executor with every node replaced by a fake that
//!    takes the median (and, in a second column, the p95) duration of `data/aws-durations.toml`
//!    on tokio's paused clock, for the test and prod profiles: simulated makespan, the critical
//!    path computed independently from the same durations, their ratio, the sequential sum, and
//!    the makespan of the original Terraform dependency graph on the same durations.
//! 2. Emulator timings (`--emulator`): wall time of apply from empty, no-op apply, plan and
//!    destroy of the test profile, medians of 5 runs, and the AWS requests per phase by service
//!    and operation (counted at the HTTP layer).
//!
//! ```text
//! cargo run --release --example bench              # simulated time only
//! cargo run --release --example bench -- --emulator # and the emulator table
//! ```

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use clap::Parser;
use dify_stack::internals::{self, TierRunner};
use dify_stack::{CancellationToken, DataPolicy, EventSink, Profile, ResourceRef, Stack, StackOutput};
use dify_stack::{Node, NodeError, NodeOutput};

#[derive(Debug, Parser)]
struct Args {
    /// Also run the emulator benchmark.
    #[arg(long)]
    emulator: bool,
    /// Runs per emulator phase.
    #[arg(long, default_value_t = 5)]
    runs: usize,
}

/// min / median / p95 seconds.
type Dist = [f64; 3];

fn durations() -> (BTreeMap<String, Dist>, BTreeMap<String, Dist>) {
    let text = include_str!("data/aws-durations.toml");
    let doc: toml::Table = toml::from_str(text).expect("aws-durations.toml parses");
    let table = |name: &str| -> BTreeMap<String, Dist> {
        doc[name]
            .as_table()
            .expect("table")
            .iter()
            .map(|(k, v)| {
                let a = v.as_array().expect("array");
                (k.clone(), [0, 1, 2].map(|i| a[i].as_integer().map(|x| x as f64).or(a[i].as_float()).unwrap_or(0.0)))
            })
            .collect()
    };
    (table("create"), table("delete"))
}

/// Per-node create time, modelled from the resource durations (`q` = 1 median, 2 p95). Inside a
/// node, steps that the tier runs together (NAT gateways of all AZs, node group and add-ons)
/// count once.
fn node_durations(
    create: &BTreeMap<String, Dist>,
    profile: Profile,
    q: usize,
    domain: bool,
) -> BTreeMap<Node, Duration> {
    let d = |k: &str| create[k][q];
    let cheap = d("cheap_object");
    let prod = profile == Profile::Prod;
    let secs = |s: f64| Duration::from_secs_f64(s);
    BTreeMap::from([
        // VPC, subnets, IGW, EIPs; NAT gateways in parallel; route tables and routes.
        (Node::Network, secs(4.0 * cheap + d("nat_gateway") + 2.0 * cheap)),
        (Node::NodeSecurityGroup, secs(cheap)),
        // Roles and key, cluster, launch template, then node group and add-ons together.
        (
            Node::Eks,
            secs(
                3.0 * cheap
                    + d("eks_cluster")
                    + cheap
                    + d(if prod { "eks_nodegroup_prod" } else { "eks_nodegroup_test" }).max(d("eks_addon")),
            ),
        ),
        // Security group, subnet group, cluster, instances (in parallel), databases.
        (Node::Aurora, secs(2.0 * cheap + d("aurora_cluster") + d("aurora_instance") + cheap)),
        (Node::Redis, secs(3.0 * cheap + d(if prod { "redis_prod" } else { "redis_test" }))),
        (Node::OpenSearch, secs(2.0 * cheap + d(if prod { "opensearch_3_nodes" } else { "opensearch_1_node" }))),
        (Node::Bucket, secs(2.0 * cheap)),
        (Node::AppSecrets, secs(cheap)),
        (Node::Registry, secs(2.0 * cheap)),
        (Node::Iam, secs(4.0 * cheap)),
        // The load balancer controller's release (and its IngressClass), then the autoscaler's;
        // the metrics-server add-on is created without a wait. aws-durations.toml has no Helm
        // or ACM figures: a release is modelled as an EKS add-on (a Deployment rolled out by a
        // controller), and the certificate's validation as ACM_DNS_VALIDATION below. Both are
        // assumptions, not measurements.
        (Node::Platform, secs(cheap + 2.0 * d("eks_addon"))),
        // Request, record, then ACM's validation; its own node, from the start.
        (Node::Certificate, secs(if domain { 2.0 * cheap + ACM_DNS_VALIDATION[q] } else { 0.0 })),
    ])
}

/// ACM DNS validation once the record is in place, seconds (min / median / p95): an assumption
/// from the ACM user guide ("can take up to 30 minutes"), not a measurement.
const ACM_DNS_VALIDATION: Dist = [60.0, 300.0, 1800.0];

/// The original Terraform's graph on the same durations: the stores wait for the EKS cluster
/// (their security groups reference it), the databases for the cluster instance, the add-ons
/// for the node group. Returns its makespan (longest path; Terraform runs up to 10 in parallel,
/// more than this graph ever has ready at once).
fn terraform_makespan(create: &BTreeMap<String, Dist>, profile: Profile, q: usize) -> Duration {
    let d = |k: &str| create[k][q];
    let cheap = d("cheap_object");
    let prod = profile == Profile::Prod;
    let nodes: Vec<(&str, f64, Vec<&str>)> = vec![
        ("network", 4.0 * cheap + d("nat_gateway") + 2.0 * cheap, vec![]),
        ("iam_roles_kms", 3.0 * cheap, vec![]),
        ("eks_cluster", d("eks_cluster"), vec!["network", "iam_roles_kms"]),
        ("nodegroup", cheap + d(if prod { "eks_nodegroup_prod" } else { "eks_nodegroup_test" }), vec!["eks_cluster"]),
        ("addons", d("eks_addon"), vec!["nodegroup"]),
        ("aurora_cluster", 2.0 * cheap + d("aurora_cluster"), vec!["eks_cluster"]),
        ("aurora_instance", d("aurora_instance"), vec!["aurora_cluster"]),
        ("databases", cheap, vec!["aurora_instance"]),
        ("redis", 3.0 * cheap + d(if prod { "redis_prod" } else { "redis_test" }), vec!["eks_cluster"]),
        (
            "opensearch",
            2.0 * cheap + d(if prod { "opensearch_3_nodes" } else { "opensearch_1_node" }),
            vec!["eks_cluster"],
        ),
        ("s3", 2.0 * cheap, vec![]),
        ("ecr", 2.0 * cheap, vec![]),
        ("irsa", 4.0 * cheap, vec!["eks_cluster", "s3", "ecr"]),
    ];
    let mut finish: BTreeMap<&str, f64> = BTreeMap::new();
    for (name, dur, deps) in &nodes {
        let start = deps.iter().map(|x| finish[x]).fold(0.0, f64::max);
        finish.insert(name, start + dur);
    }
    Duration::from_secs_f64(finish.values().copied().fold(0.0, f64::max))
}

struct Simulated(BTreeMap<Node, Duration>);

#[async_trait]
impl TierRunner for Simulated {
    async fn apply(&self, node: Node, _up: StackOutput) -> Result<NodeOutput, NodeError> {
        tokio::time::sleep(self.0[&node]).await;
        Ok(NodeOutput::NodeSecurityGroup(dify_stack::core::ids::SecurityGroupId::new(node.name())))
    }
    async fn destroy(&self, node: Node) -> Result<Vec<ResourceRef>, NodeError> {
        tokio::time::sleep(self.0[&node]).await;
        Ok(Vec::new())
    }
}

fn simulate(durations: BTreeMap<Node, Duration>) -> Duration {
    let rt = tokio::runtime::Builder::new_current_thread().enable_time().start_paused(true).build().expect("runtime");
    rt.block_on(async {
        let start = tokio::time::Instant::now();
        let runner = Simulated(durations);
        internals::apply(&runner, &CancellationToken::new(), &EventSink::default())
            .await
            .map_err(|(_, f)| f.to_string())
            .expect("simulated apply");
        start.elapsed()
    })
}

fn mins(d: Duration) -> String {
    format!("{:.1} min", d.as_secs_f64() / 60.0)
}

fn simulated_table() {
    let (create, _) = durations();
    println!("## Simulated real-AWS apply time (tokio paused clock, durations from aws-durations.toml)\n");
    println!(
        "| profile | quantile | makespan | critical path | makespan / critical | sequential sum | Terraform graph | Terraform / makespan | critical path nodes |"
    );
    println!("|---|---|---|---|---|---|---|---|---|");
    for (profile, domain) in
        [(Profile::Test, false), (Profile::Test, true), (Profile::Prod, false), (Profile::Prod, true)]
    {
        for (q, label) in [(1, "median"), (2, "p95")] {
            let nd = node_durations(&create, profile, q, domain);
            let makespan = simulate(nd.clone());
            let (critical, path) = internals::critical_path(&nd);
            let sum: Duration = nd.values().sum();
            let tf = terraform_makespan(&create, profile, q);
            let path: Vec<&str> = path.iter().map(|n| n.name()).collect();
            println!(
                "| {profile:?}{} | {label} | {} | {} | {:.3} | {} | {} | {:.2} | {} |",
                if domain { " + domain" } else { "" },
                mins(makespan),
                mins(critical),
                makespan.as_secs_f64() / critical.as_secs_f64(),
                mins(sum),
                mins(tf),
                tf.as_secs_f64() / makespan.as_secs_f64(),
                path.join(" > ")
            );
        }
    }
    println!();
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

async fn emulator_table(runs: usize) -> anyhow::Result<()> {
    let emulator = dify_stack_emulator::Emulator::shared()?;
    // Warm the server (moto bootstraps EC2 on its first call) outside the measurement.
    let warm = emulator.account("us-west-2").await;
    aws_sdk_ec2_warm(&warm.config).await;
    let mut phases: BTreeMap<&str, Vec<Duration>> = BTreeMap::new();
    let mut requests: BTreeMap<&str, BTreeMap<String, usize>> = BTreeMap::new();
    for _ in 0..runs {
        let account = emulator.account("us-west-2").await;
        let mut cfg = Profile::Test.config().with_name("dify-bench");
        cfg.iam.service_accounts = false;
        cfg.eks.checkip_url = emulator.checkip_url();
        cfg.iam.discover_thumbprint = false;
        let stack =
            Stack::connect(cfg, account.config.clone()).await?.with_data_policy(DataPolicy::delete_everything());
        for phase in ["apply", "no-op apply", "plan", "destroy"] {
            account.calls.reset();
            let t = Instant::now();
            match phase {
                "apply" | "no-op apply" => drop(stack.apply().await?),
                "plan" => drop(stack.plan().await?),
                _ => drop(stack.destroy().await?),
            }
            phases.entry(phase).or_default().push(t.elapsed());
            requests.insert(phase, account.calls.by_operation());
        }
    }
    println!(
        "## Emulator (moto 5.2.5 on loopback, test profile, median of {runs} runs; build profile: {})\n",
        if cfg!(debug_assertions) { "debug" } else { "release" }
    );
    println!("| phase | median wall time | min | max | requests (last run) |");
    println!("|---|---|---|---|---|");
    for phase in ["apply", "no-op apply", "plan", "destroy"] {
        let v = phases[phase].clone();
        let (min, max) = (v.iter().min().copied().unwrap_or_default(), v.iter().max().copied().unwrap_or_default());
        let total: usize = requests[phase].values().sum();
        println!(
            "| {phase} | {:.2} s | {:.2} s | {:.2} s | {total} |",
            median(v).as_secs_f64(),
            min.as_secs_f64(),
            max.as_secs_f64()
        );
    }
    println!();
    for phase in ["no-op apply", "apply", "plan", "destroy"] {
        let mut by_service: BTreeMap<String, usize> = BTreeMap::new();
        for (op, n) in &requests[phase] {
            *by_service.entry(op.split(' ').next().unwrap_or("?").to_owned()).or_default() += n;
        }
        println!("### {phase}: requests by service\n");
        println!("| service | requests |\n|---|---|");
        for (s, n) in &by_service {
            println!("| {s} | {n} |");
        }
        println!();
        println!("<details><summary>{phase}: by operation</summary>\n\n| operation | requests |\n|---|---|");
        for (op, n) in &requests[phase] {
            println!("| {op} | {n} |");
        }
        println!("\n</details>\n");
    }
    Ok(())
}

async fn aws_sdk_ec2_warm(config: &aws_types::SdkConfig) {
    let sts = aws_sdk_sts::Client::new(config);
    let _ = sts.get_caller_identity().send().await;
    let ec2 = aws_sdk_ec2::Client::new(config);
    let _ = ec2.describe_availability_zones().send().await;
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    simulated_table();
    if args.emulator {
        let rt = tokio::runtime::Runtime::new()?;
        rt.block_on(emulator_table(args.runs))?;
    }
    Ok(())
}
