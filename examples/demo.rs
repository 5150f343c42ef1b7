//! The demo: provisions the `test` profile into a local AWS emulator that it starts itself,
//! then shows the plan before, the outputs, and the (empty) plan after.
//!
//! ```text
//! cargo run -p dify-examples --example demo             # provision, show outputs, keep
//! cargo run -p dify-examples --example demo -- --destroy # ... and destroy again
//! ```
//!
//! Today the stack consists of the network tier; the EKS, datastores, registry and IAM tiers
//! are not implemented yet and are listed as such.

use std::time::Instant;

use anyhow::Context as _;
use clap::Parser;
use dify_stack::network::{NetworkProvisioner, NetworkSpec};
use dify_stack::{Context, Environment, Provisioner};
use dify_stack_emulator::Emulator;

#[derive(Debug, Parser)]
#[command(about = "Provision the dify-stack test profile into a local AWS emulator")]
struct Args {
    /// Stack name.
    #[arg(long, default_value = "dify-test")]
    stack: String,
    /// Region to emulate.
    #[arg(long, default_value = "us-west-2")]
    region: String,
    /// Destroy the stack again after showing the outputs.
    #[arg(long)]
    destroy: bool,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt().with_env_filter(std::env::var("RUST_LOG").unwrap_or_else(|_| "warn".into())).init();
    let args = Args::parse();
    let started = Instant::now();
    let emulator = Emulator::shared().context("starting the local AWS emulator")?;
    eprintln!(
        "emulator: moto {} at {} ({:.1?})",
        dify_stack_emulator::MOTO_VERSION,
        emulator.endpoint(),
        started.elapsed()
    );
    let config = emulator.sdk_config(&args.region, None).await;

    let ctx = Context::new(&args.stack, Environment::Test, &args.region).map_err(|e| anyhow::anyhow!("{e}"))?;
    let spec = NetworkSpec::for_environment(Environment::Test, args.stack.clone());
    let network = NetworkProvisioner::from_conf(&config);

    let plan = network.plan(&ctx, &spec).await?;
    println!("== plan (network tier)\n{plan}");
    let t = Instant::now();
    let output = network.apply(&ctx, &spec).await?;
    eprintln!("apply: {:.2?}", t.elapsed());
    let outputs = serde_json::json!({
        "stack": args.stack,
        "environment": "test",
        "region": args.region,
        "network": output,
        "not_implemented_yet": ["eks", "datastores", "registry", "iam"],
    });
    println!("== outputs\n{}", serde_json::to_string_pretty(&outputs)?);
    println!("== plan after apply\n{}", network.plan(&ctx, &spec).await?);
    if args.destroy {
        let deleted = network.destroy(&ctx, &spec).await?;
        println!("== destroyed {} resources", deleted.len());
    }
    Ok(())
}
