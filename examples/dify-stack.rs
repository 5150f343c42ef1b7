//! The `dify-stack` command line: plan, apply, destroy, output and unlock a Dify Enterprise
//! stack on AWS.
//!
//! ```text
//! cargo run --release --example dify-stack -- plan    --profile test --name dify-test
//! cargo run --release --example dify-stack -- apply   --profile prod --config prod.yaml --yes --out ./out
//! cargo run --release --example dify-stack -- destroy --name dify-test --delete-data --yes
//! cargo run --release --example dify-stack -- output  --name dify-test --json
//! cargo run --release --example dify-stack -- unlock  --name dify-test
//! cargo run --release --example dify-stack -- audit   --name dify-test
//! ```
//!
//! Credentials and endpoints come from the standard AWS chain (profiles, `AWS_*` variables
//! including `AWS_ENDPOINT_URL`, SSO, IMDS). `--emulator` starts a local AWS emulator instead
//! (state lives as long as the command). Logs: `RUST_LOG=dify_stack=debug`.
//! Exit codes: 0 ok, 1 failed, 2 bad input or configuration; `plan --detailed-exitcode`: 0 no
//! changes, 2 changes, 1 any error.

#[path = "support/mod.rs"]
mod support;

use std::io::{BufRead as _, IsTerminal as _, Write as _};
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use dify_stack::{DataPolicy, EventSink, Profile, Stack, StackConfig, StackError};

#[derive(Debug, Parser)]
#[command(name = "dify-stack", about = "Provision Dify Enterprise on AWS", version)]
struct Cli {
    #[command(subcommand)]
    verb: Verb,
    /// Profile giving the defaults: test or prod.
    #[arg(long, global = true, default_value = "test")]
    profile: Profile,
    /// Stack name (default: dify-<profile>, or the config file's): 3-20 chars of [a-z0-9-],
    /// starting with a letter; refused here otherwise.
    #[arg(long, global = true)]
    name: Option<dify_stack::core::StackName>,
    /// A TOML or YAML file overriding any setting (its `profile` wins over --profile).
    #[arg(long, global = true)]
    config: Option<PathBuf>,
    /// AWS region (default: us-west-2, or the config file's).
    #[arg(long, global = true)]
    region: Option<String>,
    /// Do not ask for confirmation.
    #[arg(long, global = true)]
    yes: bool,
    /// Machine-readable output only on stdout (JSON).
    #[arg(long, global = true)]
    json: bool,
    /// Write values.yaml, kubeconfig and outputs.json into this directory (apply, output).
    #[arg(long, global = true)]
    out: Option<PathBuf>,
    /// Run against a local AWS emulator started for this command.
    #[arg(long, global = true)]
    emulator: bool,
}

#[derive(Debug, Subcommand)]
enum Verb {
    /// Show what apply would change. Writes nothing.
    Plan {
        /// Also check that every image of the Dify EE release has a manifest for the nodes'
        /// platform (asks the registries; exit 1 when one cannot run).
        #[arg(long)]
        check_images: bool,
        /// Exit 0 when the stack matches its configuration, 2 when the plan has changes (drift
        /// or a changed setting), 1 on any error, bad input included (as Terraform's
        /// `plan -detailed-exitcode`). For drift checks on a schedule.
        #[arg(long)]
        detailed_exitcode: bool,
    },
    /// Create or converge the stack.
    Apply {
        /// Allow apply to delete and re-create what cannot change in place (a replacement the
        /// plan shows as -/+: the VPC or subnets, an ECR repository's encryption, Redis's encryption), losing
        /// what it holds. Aurora and OpenSearch are never replaced.
        #[arg(long)]
        allow_replace: bool,
    },
    /// Delete the stack.
    Destroy {
        /// Allow deleting data: databases without a final snapshot, non-empty buckets and
        /// repositories, secrets without a recovery window.
        #[arg(long)]
        delete_data: bool,
        /// Lift Aurora deletion protection (prod); the final snapshot is still taken unless
        /// --delete-data.
        #[arg(long)]
        lift_deletion_protection: bool,
        /// Uninstall the Dify EE release first when it is installed (destroy refuses otherwise),
        /// waiting until its load balancers are gone.
        #[arg(long)]
        uninstall: bool,
        #[command(flatten)]
        release: ReleaseArgs,
    },
    /// Print the outputs of the last apply.
    Output,
    /// Remove a stale stack lock left by a run that is gone.
    Unlock,
    /// Check the live stack against the security controls (exit 1 when one fails).
    Audit,
    /// Converge the stack (a no-op when it is), then install or upgrade Dify EE with Helm and
    /// wait until every workload is rolled out.
    Install {
        #[command(flatten)]
        release: ReleaseArgs,
        /// Do not check, before any change, that every image of the release has a manifest
        /// for the nodes' platform (linux/arm64 on Graviton).
        #[arg(long)]
        skip_image_check: bool,
    },
    /// Uninstall the Dify EE release. Its load balancers are waited until gone; the namespace,
    /// the six IRSA service accounts (re-applied if Helm deleted one it had adopted) and their
    /// IRSA roles stay.
    Uninstall {
        #[command(flatten)]
        release: ReleaseArgs,
    },
}

/// Which Dify EE release, from where.
#[derive(Debug, clap::Args)]
struct ReleaseArgs {
    /// Chart version (default: [dify] chart_version, 3.9.1). A version dify-stack has no image
    /// table for needs every image in [dify.images.<component>].
    #[arg(long)]
    chart_version: Option<String>,
    /// Chart repository, https:// or oci:// (default: [dify] chart_repository).
    #[arg(long)]
    chart_repository: Option<String>,
    /// The helm executable (default: helm on PATH).
    #[arg(long)]
    helm: Option<std::path::PathBuf>,
}

impl ReleaseArgs {
    /// Puts the flags into the configuration (validated with the rest by `Stack::connect`).
    fn configure(&self, cfg: &mut dify_stack::StackConfig) {
        if let Some(v) = &self.chart_version {
            cfg.dify.chart_version.clone_from(v);
        }
        if let Some(r) = &self.chart_repository {
            cfg.dify.chart_repository.clone_from(r);
        }
    }

    fn release(&self, cfg: &dify_stack::StackConfig) -> dify_stack::install::DifyRelease {
        dify_stack::install::DifyRelease { helm: self.helm.clone(), ..dify_stack::install::DifyRelease::of(cfg) }
    }
}

/// `plan --detailed-exitcode`: 2 means "changes", so every error (bad input too) exits 1, as
/// Terraform's `plan -detailed-exitcode` does.
static DETAILED_EXITCODE: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

fn error_code(code: u8) -> ExitCode {
    ExitCode::from(if DETAILED_EXITCODE.load(std::sync::atomic::Ordering::Relaxed) { 1 } else { code })
}

fn bad_input(message: impl std::fmt::Display) -> ExitCode {
    eprintln!("error: {message}");
    error_code(2)
}

fn failed(e: &StackError) -> ExitCode {
    eprintln!("error: {e}");
    error_code(e.exit_code() as u8)
}

#[tokio::main]
async fn main() -> ExitCode {
    use std::io::IsTerminal as _;
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        // Escape codes only for a person at a terminal, not into logs and pipes.
        .with_ansi(std::io::stderr().is_terminal())
        .with_env_filter(std::env::var("RUST_LOG").unwrap_or_else(|_| "warn".into()))
        .init();
    if std::env::args().any(|a| a == "--detailed-exitcode") {
        DETAILED_EXITCODE.store(true, std::sync::atomic::Ordering::Relaxed);
    }
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) if !e.use_stderr() => {
            // --help, --version
            let _ = e.print();
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            let _ = e.print();
            return error_code(2);
        }
    };
    let mut cfg = match &cli.config {
        Some(path) => match StackConfig::from_file(path) {
            Ok(c) => c,
            Err(e) => return bad_input(e),
        },
        None => cli.profile.config(),
    };
    if let Some(n) = &cli.name {
        cfg.name = n.clone();
    }
    if let Some(r) = &cli.region {
        cfg.region = r.clone();
    }
    if let Verb::Install { release, .. } | Verb::Uninstall { release } | Verb::Destroy { release, .. } = &cli.verb {
        release.configure(&mut cfg);
    }
    let sdk = if cli.emulator {
        let emu = match dify_stack_emulator::Emulator::shared() {
            Ok(e) => e,
            Err(e) => return bad_input(format!("cannot start the local emulator: {e}")),
        };
        // No Kubernetes API and no internet behind the emulator.
        cfg.iam.service_accounts = false;
        cfg.eks.checkip_url = emu.checkip_url();
        cfg.iam.discover_thumbprint = false;
        if !cli.json {
            eprintln!(
                "using the local AWS emulator at {} (service accounts are left to the Helm chart)",
                emu.endpoint()
            );
        }
        emu.sdk_config(&cfg.region, None).await
    } else {
        aws_config::defaults(aws_config::BehaviorVersion::latest())
            .region(aws_config::Region::new(cfg.region.clone()))
            .load()
            .await
    };
    let stack = match Stack::connect(cfg, sdk).await {
        Ok(s) => s,
        Err(e) => return failed(&e),
    };
    let cancel = dify_stack::CancellationToken::new();
    let c = cancel.clone();
    tokio::spawn(async move {
        if tokio::signal::ctrl_c().await.is_ok() {
            eprintln!("\ninterrupted: no new work starts; running steps stop at their next wait (run again to resume)");
            c.cancel();
        }
    });
    let stack = stack.with_cancellation(cancel);
    match cli.verb {
        Verb::Plan { check_images, detailed_exitcode } => {
            let changed = match stack.plan().await {
                Ok(plan) => {
                    if cli.json {
                        println!("{}", serde_json::to_string_pretty(&plan.report()).unwrap_or_default());
                    } else {
                        println!("{}", support::coloured_plan(&plan));
                    }
                    !plan.is_empty()
                }
                Err(e) => return failed(&e),
            };
            if check_images {
                match stack.check_images(None).await {
                    Ok(warnings) => {
                        warnings.iter().for_each(|w| eprintln!("warning: {w}"));
                        eprintln!(
                            "images: {} checked for linux/{}, none known not to run",
                            stack.release_images().len(),
                            release_arch(&stack)
                        );
                    }
                    Err(e) => return failed(&e),
                }
            }
            if detailed_exitcode && changed {
                return ExitCode::from(2);
            }
        }
        Verb::Apply { allow_replace } => {
            let stack = stack.with_permissions(dify_stack::core::Permissions {
                allow_replace,
                allow_data_loss: allow_replace,
                ..Default::default()
            });
            // The plan shown is the plan applied: without changes, its one observation is the
            // whole apply (`Stack::apply_plan`).
            let shown = if cli.json {
                None
            } else {
                match stack.plan().await {
                    Ok(plan) if plan.is_empty() => {
                        println!("{}", support::coloured_plan(&plan));
                        Some(plan)
                    }
                    Ok(plan) => {
                        println!("{}", support::coloured_plan(&plan));
                        if !confirm(&cli, &format!("Apply these changes to stack {}?", stack.config().name)) {
                            return bad_input("not confirmed (use --yes to skip the question)");
                        }
                        Some(plan)
                    }
                    Err(e) => return failed(&e),
                }
            };
            let (sink, rx) = EventSink::channel();
            let stack = stack.with_events(sink);
            let view = tokio::spawn(support::progress(rx, "apply"));
            let result = match &shown {
                Some(plan) => stack.apply_plan(plan).await,
                None => stack.apply().await,
            };
            let stack = stack.with_events(EventSink::default());
            let summary = view.await.unwrap_or_default();
            match result {
                Ok(out) => {
                    if cli.json {
                        println!("{}", serde_json::to_string_pretty(&out).unwrap_or_default());
                    } else {
                        eprintln!("\n{}", summary.table());
                        println!("{}", serde_json::to_string_pretty(&out).unwrap_or_default());
                    }
                    if let Some(dir) = &cli.out {
                        match support::write_out(&stack, &out, dir).await {
                            Ok(files) => {
                                for f in files {
                                    eprintln!("wrote {}", f.display());
                                }
                            }
                            Err(e) => {
                                eprintln!("error: writing outputs: {e:#}");
                                return ExitCode::from(1);
                            }
                        }
                    }
                }
                Err(e) => {
                    eprintln!("\n{}", summary.table());
                    return failed(&e);
                }
            }
        }
        Verb::Destroy { delete_data, lift_deletion_protection, uninstall, ref release } => {
            let policy = DataPolicy { delete_data, lift_deletion_protection: lift_deletion_protection || delete_data };
            if !confirm(&cli, &format!("Destroy stack {} in {}?", stack.config().name, stack.config().region)) {
                return bad_input("not confirmed (use --yes to skip the question)");
            }
            let (sink, rx) = EventSink::channel();
            let stack = stack.with_data_policy(policy).with_events(sink);
            let view = tokio::spawn(support::progress(rx, "destroy"));
            let result = if uninstall {
                stack.destroy_uninstalling(&release.release(stack.config())).await
            } else {
                stack.destroy().await
            };
            drop(stack);
            let summary = view.await.unwrap_or_default();
            match result {
                Ok(deleted) => {
                    if cli.json {
                        println!("{}", serde_json::to_string_pretty(&deleted).unwrap_or_default());
                    } else {
                        eprintln!("\n{}", summary.table());
                        println!("Destroy complete: {} resource(s) deleted.", deleted.len());
                    }
                }
                Err(e) => {
                    eprintln!("\n{}", summary.table());
                    return failed(&e);
                }
            }
        }
        Verb::Output => match stack.output().await {
            Ok(v) => println!("{}", serde_json::to_string_pretty(&v).unwrap_or_default()),
            Err(e) => return failed(&e),
        },
        Verb::Audit => match stack.audit().await {
            Ok(report) => {
                if cli.json {
                    println!("{}", serde_json::to_string_pretty(&report).unwrap_or_default());
                } else {
                    println!("{report}");
                }
                if !report.passed() {
                    return ExitCode::from(1);
                }
            }
            Err(e) => return failed(&e),
        },
        Verb::Install { ref release, .. } | Verb::Uninstall { ref release } => {
            let install = matches!(cli.verb, Verb::Install { .. });
            let mut release = release.release(stack.config());
            if install {
                // Before the apply below: nothing changes for an install that cannot work.
                if let Err(e) = stack.check_install() {
                    return failed(&e);
                }
                if !matches!(cli.verb, Verb::Install { skip_image_check: true, .. }) {
                    eprintln!("checking the release's images for linux/{} ...", release_arch(&stack));
                    match stack.check_images(None).await {
                        Ok(warnings) => warnings.iter().for_each(|w| eprintln!("warning: {w}")),
                        Err(e) => return failed(&e),
                    }
                }
                release.skip_image_check = true;
            }
            // The outputs come from an apply, which must have nothing to do unless confirmed.
            match stack.plan().await {
                Ok(plan) if plan.is_empty() => {}
                Ok(plan) if install => {
                    println!("{}", support::coloured_plan(&plan));
                    if !confirm(&cli, &format!("Apply these changes to stack {} first?", stack.config().name)) {
                        return bad_input("not confirmed (use --yes to skip the question)");
                    }
                }
                Ok(_) => return bad_input("the stack differs from its configuration: run apply first"),
                Err(e) => return failed(&e),
            }
            let out = match stack.apply().await {
                Ok(out) => out,
                Err(e) => return failed(&e),
            };
            if install {
                let progress = |line: &str| eprintln!("rollout: {line}");
                match stack.install_dify(&release, &out, &progress).await {
                    Ok(Some(address)) => {
                        println!("Dify EE {} is rolled out and answers at {address}", release.name)
                    }
                    Ok(None) => println!("Dify EE {} is rolled out (no Ingress address yet)", release.name),
                    Err(e) => return failed(&e),
                }
            } else if let Err(e) = stack.uninstall_dify(&release, &out).await {
                return failed(&e);
            } else {
                println!("Dify EE {} uninstalled; the service accounts stay", release.name);
            }
        }
        Verb::Unlock => match stack.unlock().await {
            Ok(Some(lock)) if cli.json => println!("{}", serde_json::to_string_pretty(&lock).unwrap_or_default()),
            Ok(Some(lock)) => println!("removed the lock held by {} ({})", lock.owner, lock.operation),
            Ok(None) if cli.json => println!("null"),
            Ok(None) => println!("stack {} was not locked", stack.config().name),
            Err(e) => return failed(&e),
        },
    }
    ExitCode::SUCCESS
}

fn confirm(cli: &Cli, question: &str) -> bool {
    if cli.yes {
        return true;
    }
    if !std::io::stdin().is_terminal() {
        return false;
    }
    eprint!("{question} Type yes to continue: ");
    let _ = std::io::stderr().flush();
    let mut line = String::new();
    std::io::stdin().lock().read_line(&mut line).is_ok() && line.trim() == "yes"
}

fn release_arch(stack: &Stack) -> &'static str {
    dify_stack::internals::wiring::node_arch(stack.config()).oci()
}
