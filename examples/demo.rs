//! The demo: provisions the `test` profile into a local AWS emulator that it starts itself,
//! showing the plan, the apply progress, the outputs and where values.yaml and kubeconfig were
//! written, then that a second plan is empty.
//!
//! ```text
//! cargo run -p dify-examples --example demo              # provision, show, keep until exit
//! cargo run -p dify-examples --example demo -- --destroy # ... then destroy with --delete-data
//! ```
//!
//! The emulator has no Kubernetes API and no internet: the IAM tier creates the IRSA roles but
//! leaves the service accounts to the Helm chart, and skips thumbprint discovery.

#[path = "support/mod.rs"]
mod support;

use std::path::PathBuf;
use std::time::Instant;

use anyhow::Context as _;
use clap::Parser;
use dify_stack::{DataPolicy, EventSink, Profile, Stack};
use dify_stack_emulator::Emulator;

#[derive(Debug, Parser)]
#[command(about = "Provision the dify-stack test profile into a local AWS emulator")]
struct Args {
    /// Stack name.
    #[arg(long, default_value = "dify-test")]
    name: String,
    /// Region to emulate.
    #[arg(long, default_value = "us-west-2")]
    region: String,
    /// Where to write values.yaml, kubeconfig and outputs.json.
    #[arg(long, default_value = "dify-stack-out")]
    out: PathBuf,
    /// Destroy the stack again at the end (with --delete-data).
    #[arg(long)]
    destroy: bool,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(std::env::var("RUST_LOG").unwrap_or_else(|_| "warn".into()))
        .init();
    let args = Args::parse();
    let started = Instant::now();
    let emulator = Emulator::shared().context("starting the local AWS emulator")?;
    println!(
        "== local AWS emulator: moto {} at {} (ready in {:.1?})",
        dify_stack_emulator::MOTO_VERSION,
        emulator.endpoint(),
        started.elapsed()
    );
    let sdk = emulator.sdk_config(&args.region, None).await;

    let mut cfg = Profile::Test.config().with_name(&args.name)?.with_region(&args.region);
    cfg.iam.service_accounts = false;
    cfg.eks.checkip_url = emulator.checkip_url();
    cfg.iam.discover_thumbprint = false;
    let stack = Stack::connect(cfg, sdk).await?;
    println!("== stack {} (profile test) in account {} / {}", args.name, stack.account(), args.region);

    let plan = stack.plan().await?;
    println!("== plan\n{}", support::coloured_plan(&plan));

    println!("== apply");
    let (sink, rx) = EventSink::channel();
    let stack = stack.with_events(sink);
    let view = tokio::spawn(support::progress(rx, "apply"));
    let t = Instant::now();
    let result = stack.apply().await;
    let stack = stack.with_events(EventSink::default());
    let summary = view.await?;
    println!("{}", summary.table());
    let out = result?;
    println!("apply took {:.2?}", t.elapsed());

    println!("== outputs\n{}", serde_json::to_string_pretty(&out)?);
    for f in support::write_out(&stack, &out, &args.out).await? {
        println!("wrote {}", f.display());
    }

    let plan = stack.plan().await?;
    println!("== plan after apply\n{}", support::coloured_plan(&plan));
    anyhow::ensure!(plan.is_empty(), "the second plan should be empty");

    if args.destroy {
        println!("== destroy --delete-data");
        let stack = stack.with_data_policy(DataPolicy::delete_everything());
        let deleted = stack.destroy().await?;
        println!("deleted {} resource(s)", deleted.len());
    }
    println!("== done in {:.1?}", started.elapsed());
    Ok(())
}
