//! The demo: provisions the `test` profile into a local AWS emulator that it starts itself,
//! then shows the plan before, the outputs, and the (empty) plan after.
//!
//! ```text
//! cargo run -p dify-examples --example demo             # provision, show outputs, keep
//! cargo run -p dify-examples --example demo -- --destroy # ... and destroy again
//! ```
//!
//! Today the demo provisions the network and registry tiers (concurrently); the EKS and
//! datastores tiers are not implemented yet, and the IAM tier needs their outputs (the OIDC
//! issuer and the bucket), so it is listed as not provisioned.

use std::time::Instant;

use anyhow::Context as _;
use clap::Parser;
use dify_stack::network::{NetworkProvisioner, NetworkSpec};
use dify_stack::registry::{RegistryProvisioner, RegistrySpec};
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
    let registry_spec = RegistrySpec::default();
    let registry = RegistryProvisioner::from_conf(&config);

    let (network_plan, registry_plan) =
        tokio::try_join!(async { network.plan(&ctx, &spec).await.map_err(anyhow::Error::from) }, async {
            registry.plan(&ctx, &registry_spec).await.map_err(anyhow::Error::from)
        },)?;
    println!("== plan (network tier)\n{network_plan}\n== plan (registry tier)\n{registry_plan}");
    // The two tiers need nothing from each other: they run concurrently.
    let t = Instant::now();
    let (output, registry_output) =
        tokio::try_join!(async { network.apply(&ctx, &spec).await.map_err(anyhow::Error::from) }, async {
            registry.apply(&ctx, &registry_spec).await.map_err(anyhow::Error::from)
        },)?;
    eprintln!("apply: {:.2?}", t.elapsed());
    let outputs = serde_json::json!({
        "stack": args.stack,
        "environment": "test",
        "region": args.region,
        "network": output,
        "registry": registry_output,
        "not_implemented_yet": ["eks", "datastores", "iam (implemented, but needs the EKS issuer and the bucket)"],
    });
    println!("== outputs\n{}", serde_json::to_string_pretty(&outputs)?);
    println!("== plan after apply\n{}{}", network.plan(&ctx, &spec).await?, registry.plan(&ctx, &registry_spec).await?);
    if args.destroy {
        let mut deleted = registry.destroy(&ctx, &registry_spec).await?;
        deleted.extend(network.destroy(&ctx, &spec).await?);
        println!("== destroyed {} resources", deleted.len());
    }
    Ok(())
}
