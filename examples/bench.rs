//! Performance tables.
//!
//! 1. Simulated real-AWS time: the real graph executor and the real provisioners of every tier
//!    over in-memory fakes of their client traits whose resources take time (durations drawn per
//!    resource from `data/aws-durations.toml`, see `sim/mod.rs`), on tokio's paused clock, 200
//!    runs per scenario: makespan (median, p95), the critical path of the resource dependency
//!    graph computed apart from the executor with the same draws, their ratio, and the makespan
//!    of the original Terraform's dependency graph on the same draws.
//! 2. Emulator timings (`--emulator`): wall time of apply from empty, no-op apply, plan and
//!    destroy of the test profile, medians of 5 runs, and the AWS requests per phase by service
//!    and operation (counted at the HTTP layer).
//!
//! ```text
//! cargo run --release --example bench              # simulated time only
//! cargo run --release --example bench -- --emulator # and the emulator table
//! ```

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use clap::Parser;
use dify_stack::internals::{self, AwsRunner, PlanStep, TierRunner, wiring};
use dify_stack::testing::FakeAccount;
use dify_stack::{CancellationToken, DataPolicy, EventSink, Profile, ResourceRef, Stack, StackConfig, StackOutput};
use dify_stack::{Node, NodeError, NodeOutput};

mod sim;
use sim::Sim;

#[derive(Debug, Parser)]
struct Args {
    /// Also run the emulator benchmark.
    #[arg(long)]
    emulator: bool,
    /// Runs per emulator phase.
    #[arg(long, default_value_t = 5)]
    runs: usize,
    /// Print the simulated tables on the seeds the waits were tuned on, not the report seeds.
    #[arg(long)]
    tuning: bool,
    /// Instead of the tables: one run (test profile, or prod with `--prod`) on this seed, each node's start and end on
    /// the simulated clock, against the critical path's resources.
    #[arg(long)]
    trace: Option<u64>,
    /// With `--trace`: the prod profile.
    #[arg(long)]
    prod: bool,
}

/// min / median / p95 seconds.
type Dist = sim::Dist;

/// ACM DNS validation once the record is in place, seconds (min / median / p95): an assumption,
/// not a measurement; draws are clamped at 30 min, the ACM user guide's "can take up to 30
/// minutes" ("DNS validation").
const ACM_DNS_VALIDATION: Dist = [60.0, 300.0, 1500.0];

/// How long after its creation a new IAM role is refused by EKS, seconds (min / median / p95):
/// from the durations file's note ("a new role can be rejected by EKS/STS for 2-10 s (rarely
/// 60 s)"); the median is an assumption inside that range. Draws are clamped at 60 s.
const IAM_PROPAGATION: Dist = [2.0, 4.0, 10.0];

/// `helm upgrade --install` without `--wait` (chart download and apply), seconds: an
/// assumption, not a measurement (aws-durations.toml has no Helm figures).
const HELM_RELEASE: Dist = [5.0, 10.0, 30.0];

/// Simulated runs per scenario.
const RUNS: u64 = 200;

/// The seeds the wait caps and poll schedules were tuned on (every table before 2026-12-07's
/// third session was printed on them): `--tuning` prints the table on them.
const TUNING_SEEDS: std::ops::Range<u64> = 0..RUNS;

/// The seeds the README's table is printed on, apart from the tuning ones, so that the table
/// is not fitted to its own draws.
const REPORT_SEEDS: std::ops::Range<u64> = 1_000_000..1_000_000 + RUNS;

/// The durations, parsed once.
fn durations() -> BTreeMap<String, Dist> {
    static PARSED: std::sync::LazyLock<BTreeMap<String, Dist>> = std::sync::LazyLock::new(parse_durations);
    PARSED.clone()
}

fn parse_durations() -> BTreeMap<String, Dist> {
    let text = include_str!("data/aws-durations.toml");
    let doc: toml::Table = toml::from_str(text).expect("aws-durations.toml parses");
    let mut create: BTreeMap<String, Dist> = doc["create"]
        .as_table()
        .expect("table")
        .iter()
        .map(|(k, v)| {
            let a = v.as_array().expect("array");
            (k.clone(), [0, 1, 2].map(|i| a[i].as_integer().map(|x| x as f64).or(a[i].as_float()).unwrap_or(0.0)))
        })
        .collect();
    create.insert("acm_validation".to_owned(), ACM_DNS_VALIDATION);
    create.insert("iam_propagation".to_owned(), IAM_PROPAGATION);
    create.insert("helm_release".to_owned(), HELM_RELEASE);
    create
}

/// One scenario of the table.
#[derive(Debug, Clone, Copy)]
struct Scenario {
    profile: Profile,
    domain: bool,
}

impl Scenario {
    fn prod(self) -> bool {
        self.profile == Profile::Prod
    }

    fn label(self) -> String {
        format!("{:?}{}", self.profile, if self.domain { " + domain" } else { "" }).to_lowercase()
    }

    fn config(self) -> StackConfig {
        let mut cfg = self.profile.config().with_name("dify-bench").expect("a valid stack name");
        // The OIDC thumbprint is read from the issuer over TLS: no network in the simulation.
        cfg.iam.discover_thumbprint = false;
        // This machine's address is asked of a checkip service over the internet in the default
        // `caller_address` mode: the simulation gives the public endpoint's range instead (the
        // operators' record in the control bucket is then not read or written).
        cfg.eks.kubernetes_access = dify_stack::KubernetesAccess::PublicCidrs;
        cfg.eks.endpoint.public_access_cidrs = vec!["203.0.113.7/32".to_owned()];
        if self.domain {
            cfg.dify.domain = Some("dify.example.com".to_owned());
            cfg.dify.hosted_zone_id = Some(dify_stack::testing::HOSTED_ZONE_ID.to_owned());
        }
        cfg
    }
}

/// The graph before the EKS split, for the side-by-side column: the control-plane node waits
/// for the egress and applies the whole tier (the EKS node's apply), so EKS and IAM run as one
/// EKS node after the egress and IAM after it. Every other node is the facade's own.
struct Unsplit {
    runner: AwsRunner,
    /// Set once the egress node is done.
    egress_done: tokio::sync::watch::Sender<bool>,
}

#[async_trait]
impl TierRunner for Unsplit {
    async fn plan(&self, node: Node, up: StackOutput) -> Result<PlanStep, NodeError> {
        self.runner.plan(node, up).await
    }

    async fn apply(&self, node: Node, up: StackOutput) -> Result<NodeOutput, NodeError> {
        match node {
            Node::EksControlPlane => {
                let mut done = self.egress_done.subscribe();
                done.wait_for(|d| *d).await.map_err(|_| NodeError::new("egress never finished", false))?;
                self.runner.apply(Node::Eks, up).await
            }
            // Before the split the control plane made its own roles and key.
            Node::EksPrerequisites => Ok(NodeOutput::Done),
            Node::Egress => {
                let out = self.runner.apply(node, up).await?;
                self.egress_done.send_replace(true);
                Ok(out)
            }
            _ => self.runner.apply(node, up).await,
        }
    }

    async fn destroy(&self, node: Node) -> Result<Vec<ResourceRef>, NodeError> {
        self.runner.destroy(node).await
    }
}

/// What one simulated apply from empty did: its makespan, what it drew, how many calls it made,
/// and its failure (a wait that hit its cap on a long draw).
struct Run {
    /// What the user waits for: `Stack::connect` and `Stack::apply` (the split graph), or the
    /// graph alone (the unsplit column).
    makespan: Duration,
    /// The fixed steps before the graph's first node starts (the caller's identity, the quota
    /// and capacity preflight, the control bucket and the stack lock) and after its last node
    /// ends (the recorded outputs, the lock's release), seconds: the critical path is charged
    /// the same.
    before: f64,
    after: f64,
    drawn: BTreeMap<String, Vec<Duration>>,
    calls: u64,
    failure: Option<String>,
    /// When the platform node (the load balancer controller's release) finished, seconds.
    platform_end: Option<f64>,
    /// Each node's start and end, seconds from the start.
    timeline: Vec<(f64, String)>,
}

/// One run's node timeline and the resource critical path's finish times, printed.
fn trace(scenario: Scenario, seed: u64) {
    let run = simulate(scenario, seed, true);
    for (at, line) in &run.timeline {
        println!("{at:8.1} s  {line}");
    }
    let cheap = durations()["cheap_object"][1];
    let (critical, path) = sim::graphs::critical_path(scenario.prod(), scenario.domain, &run.drawn, cheap);
    for r in &path {
        println!(
            "critical path: {r} ready at {:.1} s",
            sim::graphs::finish_of(scenario.prod(), scenario.domain, &run.drawn, cheap, r)
        );
    }
    println!(
        "makespan {:.1} s (graph {:.1} s after {:.1} s before it, {:.1} s after it), critical path {critical:.1} s, failure {:?}",
        run.makespan.as_secs_f64(),
        run.makespan.as_secs_f64() - run.before - run.after,
        run.before,
        run.after,
        run.failure
    );
}

/// When the graph's first node started and its last node ended, and when the platform node
/// ended, seconds from `start`.
#[derive(Default)]
struct Marks {
    first_start: Option<f64>,
    last_end: f64,
    platform_end: Option<f64>,
    timeline: Vec<(f64, String)>,
}

fn simulate(scenario: Scenario, seed: u64, split: bool) -> Run {
    let rt = tokio::runtime::Builder::new_current_thread().enable_time().start_paused(true).build().expect("runtime");
    // The waits' jitter comes from this thread's generator (`core::wait`'s backoff forks it):
    // seeded per run, so a seed gives the same run, and two runs of the bench the same table.
    fastrand::seed(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ u64::from(split));
    rt.block_on(async {
        let max = BTreeMap::from([("acm_validation".to_owned(), 1800.0), ("iam_propagation".to_owned(), 60.0)]);
        let sim = Arc::new(Sim::new(durations(), max, seed));
        let cfg = scenario.config();
        let account = FakeAccount::new(sim.clone(), cfg.environment(), &cfg.region);
        let provisioners = account.provisioners();
        let start = tokio::time::Instant::now();
        let marks = Arc::new(std::sync::Mutex::new(Marks::default()));
        let seen = marks.clone();
        let events = EventSink::new(move |e| {
            let at = start.elapsed().as_secs_f64();
            let mut m = seen.lock().unwrap();
            match e {
                dify_stack::Event::NodeStarted { node } => {
                    m.first_start.get_or_insert(at);
                    m.timeline.push((at, format!("{node} started")));
                }
                dify_stack::Event::NodeFinished { node, .. } => {
                    m.timeline.push((at, format!("{node} finished")));
                    m.last_end = m.last_end.max(at);
                    if node == Node::Platform {
                        m.platform_end = Some(at);
                    }
                }
                _ => {}
            }
        });
        let failure = if split {
            // What the CLI's `apply` runs: connect (identity), then apply (preflight, lock,
            // graph, recorded outputs, release), over the AWS the simulation answers.
            let sdk = account.sdk_config();
            match Stack::connect(cfg, sdk).await {
                Ok(stack) => {
                    stack.with_provisioners(provisioners).with_events(events).apply().await.err().map(|e| e.to_string())
                }
                Err(e) => Some(e.to_string()),
            }
        } else {
            let ctx = wiring::context(&cfg, Some(dify_stack::testing::ACCOUNT)).expect("valid context");
            let runner = AwsRunner::new(cfg, ctx, provisioners);
            let runner = Unsplit { runner, egress_done: tokio::sync::watch::Sender::new(false) };
            internals::apply(&runner, &CancellationToken::new(), &events).await.err().map(|(_, f)| f.to_string())
        };
        let makespan = start.elapsed();
        let m = marks.lock().unwrap();
        let before = m.first_start.unwrap_or_default();
        Run {
            makespan,
            before,
            after: (makespan.as_secs_f64() - m.last_end).max(0.0),
            drawn: sim.sampled(),
            calls: sim.calls(),
            failure,
            platform_end: m.platform_end,
            timeline: m.timeline.clone(),
        }
    })
}

fn quantile(v: &[f64], q: f64) -> f64 {
    let mut v = v.to_vec();
    v.sort_by(f64::total_cmp);
    v[((v.len() - 1) as f64 * q).round() as usize]
}

fn mins(secs: f64) -> String {
    format!("{:.1} min", secs / 60.0)
}

fn simulated_table(seeds: std::ops::Range<u64>) {
    let cheap = durations()["cheap_object"][1];
    println!(
        "## Simulated real-AWS apply from empty: the real provisioners over timed in-memory fakes (tokio paused clock, {RUNS} sampled runs per row, seeds {}..{})\n",
        seeds.start, seeds.end
    );
    println!(
        "| scenario | `Stack::connect` + `Stack::apply` median / p95 | of which the steps around the graph (identity, preflight, lock, outputs) median / p95 | critical path (charged the same steps) median / p95 | makespan / critical path, median / p95 / max | sequential sum median / p95 | EKS in one node after the egress, IAM after it: median / p95, its makespan / ours (median) | Terraform graph median / p95 | Terraform / makespan, median / p95 | calls per run | failed runs | most common critical path |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|---|---|");
    let mut login_rows = Vec::new();
    for scenario in [
        Scenario { profile: Profile::Test, domain: false },
        Scenario { profile: Profile::Test, domain: true },
        Scenario { profile: Profile::Prod, domain: false },
        Scenario { profile: Profile::Prod, domain: true },
    ] {
        let (mut makespans, mut criticals, mut ratios, mut terraform) =
            (Vec::new(), Vec::new(), Vec::new(), Vec::new());
        let (mut sequential, mut terraform_ratios) = (Vec::new(), Vec::new());
        let (mut unsplit, mut graph_spans, mut fixed_steps) = (Vec::new(), Vec::new(), Vec::new());
        let mut login = Login::default();
        let mut paths: BTreeMap<Vec<&str>, usize> = BTreeMap::new();
        let (mut calls, mut failures) = (0, Vec::new());
        for seed in seeds.clone() {
            let run = simulate(scenario, seed, true);
            // The same seed draws the same durations per kind: the same AWS, with the whole EKS
            // tier applied in one node after the egress and IAM after it.
            let before = simulate(scenario, seed, false);
            if let Some(f) = run.failure.or(before.failure) {
                failures.push(f);
                continue;
            }
            unsplit.push(before.makespan.as_secs_f64());
            let drawn = run.drawn;
            // The steps around the graph are charged to the critical path and to Terraform's
            // graph alike (Terraform too reads the caller's identity, takes and releases its
            // state lock and writes its state).
            let fixed = run.before + run.after;
            let (critical, path) = sim::graphs::critical_path(scenario.prod(), scenario.domain, &drawn, cheap);
            let critical = critical + fixed;
            let makespan = run.makespan.as_secs_f64();
            graph_spans.push(makespan - fixed);
            fixed_steps.push(fixed);
            makespans.push(makespan);
            criticals.push(critical);
            ratios.push(makespan / critical);
            let tf = sim::graphs::terraform_makespan(scenario.prod(), scenario.domain, &drawn, cheap) + fixed;
            terraform.push(tf);
            terraform_ratios.push(tf / makespan);
            sequential.push(sim::graphs::sequential_sum(&drawn));
            *paths.entry(path).or_default() += 1;
            calls = run.calls;
            if scenario.domain {
                // Install needs a domain: the login-page rows are the rows with one.
                let platform_end = run.platform_end.expect("the platform node finished");
                let releases_end =
                    run.before + sim::graphs::finish_of(scenario.prod(), true, &drawn, cheap, "helm_releases");
                login.add(seed, makespan, platform_end, critical, releases_end, cheap);
            }
        }
        if scenario.domain {
            login_rows.push((scenario, login, failures.len()));
        }
        let (path, count) = paths.iter().max_by_key(|(_, c)| **c).expect("runs");
        println!(
            "| {} | {} / {} | {:.1} s / {:.1} s | {} / {} | {:.3} / {:.3} / {:.3} | {} / {} | {} / {}, {:.3} | {} / {} | {:.2} / {:.2} | {calls} | {} of {RUNS} | {} ({count} of {RUNS}) |",
            scenario.label(),
            mins(quantile(&makespans, 0.5)),
            mins(quantile(&makespans, 0.95)),
            quantile(&fixed_steps, 0.5),
            quantile(&fixed_steps, 0.95),
            mins(quantile(&criticals, 0.5)),
            mins(quantile(&criticals, 0.95)),
            quantile(&ratios, 0.5),
            quantile(&ratios, 0.95),
            quantile(&ratios, 1.0),
            mins(quantile(&sequential, 0.5)),
            mins(quantile(&sequential, 0.95)),
            mins(quantile(&unsplit, 0.5)),
            mins(quantile(&unsplit, 0.95)),
            quantile(&unsplit, 0.5) / quantile(&graph_spans, 0.5),
            mins(quantile(&terraform, 0.5)),
            mins(quantile(&terraform, 0.95)),
            quantile(&terraform_ratios, 0.5),
            quantile(&terraform_ratios, 0.95),
            failures.len(),
            path.join(" > "),
        );
        for f in &failures {
            println!("|   failed run (left out above) | {f} |||||||| ");
        }
    }
    println!();
    login_table(&login_rows);
}

/// The login-page figures of one scenario's runs (`sim::login`).
#[derive(Default)]
struct Login {
    ours: Vec<f64>,
    critical: Vec<f64>,
    ratios: Vec<f64>,
    sequential: Vec<f64>,
    install: Vec<f64>,
    install_critical: Vec<f64>,
}

impl Login {
    fn add(&mut self, seed: u64, makespan: f64, platform_end: f64, critical: f64, releases_end: f64, cheap: f64) {
        use sim::login::{InstallDraws, Order, critical as login_critical, ours};
        let d = InstallDraws::draw(seed);
        let now = ours(makespan, platform_end, &d, cheap, Order::Overlapped);
        let cp = login_critical(critical, releases_end, &d, cheap);
        self.ours.push(now);
        self.critical.push(cp);
        self.ratios.push(now / cp);
        self.sequential.push(ours(makespan, platform_end, &d, cheap, Order::Sequential));
        self.install.push(now - makespan);
        self.install_critical.push(cp - critical);
    }
}

fn login_table(rows: &[(Scenario, Login, usize)]) {
    println!(
        "## Empty account to Dify EE's login page: the apply above, then `install`'s steps charged on a timeline with estimated durations (`examples/sim/login.rs`), same seeds\n"
    );
    println!(
        "| scenario | login page median / p95 | its critical path median / p95 | ratio median / p95 / max | install after the apply, ours median / its critical path median | before (rollout, then load balancer and aliases) median / p95, its time / ours (median) | failed runs |"
    );
    println!("|---|---|---|---|---|---|---|");
    for (scenario, l, failed) in rows {
        println!(
            "| {} | {} / {} | {} / {} | {:.3} / {:.3} / {:.3} | {} / {} | {} / {}, {:.3} | {failed} of {RUNS} |",
            scenario.label(),
            mins(quantile(&l.ours, 0.5)),
            mins(quantile(&l.ours, 0.95)),
            mins(quantile(&l.critical, 0.5)),
            mins(quantile(&l.critical, 0.95)),
            quantile(&l.ratios, 0.5),
            quantile(&l.ratios, 0.95),
            quantile(&l.ratios, 1.0),
            mins(quantile(&l.install, 0.5)),
            mins(quantile(&l.install_critical, 0.5)),
            mins(quantile(&l.sequential, 0.5)),
            mins(quantile(&l.sequential, 0.95)),
            quantile(&l.sequential, 0.5) / quantile(&l.ours, 0.5),
        );
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
        let mut cfg = Profile::Test.config().with_name("dify-bench").expect("a valid stack name");
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
    if let Some(seed) = args.trace {
        trace(Scenario { profile: if args.prod { Profile::Prod } else { Profile::Test }, domain: false }, seed);
        return Ok(());
    }
    simulated_table(if args.tuning { TUNING_SEEDS } else { REPORT_SEEDS });
    if args.emulator {
        let rt = tokio::runtime::Runtime::new()?;
        rt.block_on(emulator_table(args.runs))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    //! The simulation on a few seeds (the table runs 200): the real provisioners complete over
    //! the fakes, every long-lived resource of the scenario was created (drew its duration), and
    //! the executor never beats the critical path of the resource graph (which would mean the
    //! graph charges work the provisioners do not do, or misses a dependency they respect).

    use super::*;

    fn scenarios() -> [Scenario; 4] {
        [
            Scenario { profile: Profile::Test, domain: false },
            Scenario { profile: Profile::Test, domain: true },
            Scenario { profile: Profile::Prod, domain: false },
            Scenario { profile: Profile::Prod, domain: true },
        ]
    }

    #[test]
    fn the_real_provisioners_apply_from_empty_over_the_timed_fakes() {
        let cheap = durations()["cheap_object"][1];
        for scenario in scenarios() {
            let prod = scenario.profile == Profile::Prod;
            for seed in 0..3 {
                let run = simulate(scenario, seed, true);
                assert_eq!(run.failure, None, "{scenario:?} seed {seed}");
                let mut kinds = vec![
                    "nat_gateway",
                    "eks_cluster",
                    if prod { "eks_nodegroup_prod" } else { "eks_nodegroup_test" },
                    "aurora_cluster",
                    "aurora_instance",
                    if prod { "redis_prod" } else { "redis_test" },
                    if prod { "opensearch_3_nodes" } else { "opensearch_1_node" },
                    "helm_release",
                ];
                if scenario.domain {
                    kinds.push("acm_validation");
                }
                for k in &kinds {
                    assert!(run.drawn.contains_key(*k), "{scenario:?}: no {k} created; drew {:?}", run.drawn.keys());
                }
                assert!(run.drawn.keys().any(|k| k.starts_with("eks_addon:")), "{scenario:?}: no add-on");
                assert_eq!(run.drawn.contains_key("acm_validation"), scenario.domain);
                // One NAT gateway per AZ in prod, one in test; one Aurora instance per AZ in prod.
                let count = |k: &str| run.drawn.get(k).map_or(0, Vec::len);
                assert_eq!(count("aurora_instance"), if prod { 2 } else { 1 }, "{scenario:?}");
                let (critical, _) = sim::graphs::critical_path(scenario.prod(), scenario.domain, &run.drawn, cheap);
                let makespan = run.makespan.as_secs_f64();
                assert!(
                    makespan + 1e-6 >= critical,
                    "{scenario:?} seed {seed}: makespan {makespan} s below the critical path {critical} s"
                );
            }
        }
    }

    /// The in-repo copy of the durations (the published crate needs it) is the shared file,
    /// where that file is present beside the checkout.
    #[test]
    fn the_durations_file_is_the_shared_one() {
        let shared = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/spec/aws-durations.toml");
        if let Ok(text) = std::fs::read_to_string(&shared) {
            assert_eq!(
                include_str!("data/aws-durations.toml"),
                text,
                "examples/data/aws-durations.toml drifted from {}: copy it over",
                shared.display()
            );
        }
    }

    /// The log-normal each kind is drawn from meets the durations file: over many draws the
    /// median and the p95 are the file's (within 4 %), and no draw is below its min.
    #[test]
    fn the_fitted_distributions_have_the_files_median_and_p95() {
        let dists = durations();
        let sim = Sim::new(dists.clone(), BTreeMap::new(), 42);
        for (kind, [min, median, p95]) in &dists {
            let mut draws: Vec<f64> = (0..20_000).map(|_| sim.duration(kind).as_secs_f64()).collect();
            draws.sort_by(f64::total_cmp);
            let (m, p) = (quantile(&draws, 0.5), quantile(&draws, 0.95));
            assert!(draws[0] >= *min, "{kind}: a draw below the min {min}");
            if median > min {
                assert!((m / median - 1.0).abs() < 0.04, "{kind}: median {m} against the file's {median}");
            }
            assert!((p / p95 - 1.0).abs() < 0.04, "{kind}: p95 {p} against the file's {p95}");
        }
    }

    #[test]
    fn a_seed_gives_the_same_run_jitter_included() {
        for scenario in [scenarios()[1], scenarios()[2]] {
            let (a, b) = (simulate(scenario, 7, true), simulate(scenario, 7, true));
            assert_eq!((a.makespan, a.calls, &a.drawn), (b.makespan, b.calls, &b.drawn), "{scenario:?}");
            let other = simulate(scenario, 8, true);
            assert_ne!(a.drawn, other.drawn, "another seed draws other durations");
        }
    }

    #[test]
    fn the_critical_path_follows_the_longest_chain_of_the_draws() {
        let s = |v: f64| vec![Duration::from_secs_f64(v)];
        let scenario = Scenario { profile: Profile::Test, domain: false };
        let mut drawn = BTreeMap::from([
            ("nat_gateway".to_owned(), s(100.0)),
            ("eks_cluster".to_owned(), s(600.0)),
            ("eks_nodegroup_test".to_owned(), s(150.0)),
            ("eks_addon:coredns".to_owned(), s(60.0)),
            ("eks_addon:vpc-cni".to_owned(), s(30.0)),
            ("aurora_cluster".to_owned(), s(60.0)),
            ("aurora_instance".to_owned(), s(400.0)),
            ("redis_test".to_owned(), s(400.0)),
            ("opensearch_1_node".to_owned(), s(700.0)),
            ("helm_release".to_owned(), s(10.0)),
        ]);
        let (t, path) = sim::graphs::critical_path(scenario.prod(), scenario.domain, &drawn, 3.0);
        // EKS: roles, policies, cluster (create + 600), launch template, node group (create + 150),
        // metrics-server (create, no draw), the releases (10) = 6 + 603 + 3 + 153 + 3 + 10; the
        // coredns add-on, made with the cluster (create + 60), is ready with the nodes.
        assert_eq!(path[path.len() - 3..], ["nodegroup", "metrics_server", "helm_releases"], "{path:?}");
        assert!((t - (6.0 + 603.0 + 3.0 + 153.0 + 3.0 + 10.0)).abs() < 1e-9, "{t}");
        // A coredns add-on slower than the nodes holds the releases back.
        drawn.insert("eks_addon:coredns".to_owned(), s(300.0));
        let (t, path) = sim::graphs::critical_path(scenario.prod(), scenario.domain, &drawn, 3.0);
        assert_eq!(
            path[path.len() - 3..],
            ["deployment_addons_made", "deployment_addons", "helm_releases"],
            "{path:?}"
        );
        assert!((t - (6.0 + 603.0 + 303.0 + 10.0)).abs() < 1e-9, "{t}");
        // A slower OpenSearch domain takes the path over.
        drawn.insert("opensearch_1_node".to_owned(), s(2000.0));
        let (t, path) = sim::graphs::critical_path(scenario.prod(), scenario.domain, &drawn, 3.0);
        assert_eq!(path, ["vpc", "search_sg", "opensearch"]);
        assert!((t - (3.0 + 3.0 + 2003.0)).abs() < 1e-9, "{t}");
    }
}
