//! Rendering shared by the `dify-stack` CLI and the demo: a coloured plan, a progress view per
//! node (indicatif), a summary table, and the output files.

#![allow(dead_code, unreachable_pub)]

use std::collections::BTreeMap;
use std::io::IsTerminal as _;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use dify_stack::{Event, Node, Stack, StackOutput, StackPlan};
use indicatif::{MultiProgress, ProgressBar, ProgressStyle};
use tokio::sync::mpsc::UnboundedReceiver;

/// The plan with `+` green, `~` yellow, `-` red, `-/+` magenta when stdout is a terminal.
pub fn coloured_plan(plan: &StackPlan) -> String {
    let colour = std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none();
    let text = plan.to_string();
    if !colour {
        return text;
    }
    text.lines()
        .map(|l| {
            let t = l.trim_start();
            let code = if t.starts_with("-/+") {
                "35"
            } else if t.starts_with('+') {
                "32"
            } else if t.starts_with('~') {
                "33"
            } else if t.starts_with('-') {
                "31"
            } else if t.starts_with('#') || t.starts_with("Plan:") {
                "1"
            } else {
                return l.to_owned();
            };
            format!("\x1b[{code}m{l}\x1b[0m")
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// How each node ended, for the summary table.
#[derive(Debug, Default)]
pub struct Summary {
    rows: BTreeMap<Node, (String, Option<Duration>)>,
}

impl Summary {
    /// A table: node, result, elapsed.
    pub fn table(&self) -> String {
        let mut out = format!("{:<22} {:<34} {:>9}\n", "node", "result", "elapsed");
        for (node, (status, elapsed)) in &self.rows {
            let e = elapsed.map(|d| format!("{:.1}s", d.as_secs_f64())).unwrap_or_default();
            out.push_str(&format!("{:<22} {:<34} {:>9}\n", node.name(), status, e));
        }
        out
    }

    /// True when every node finished.
    pub fn all_ok(&self) -> bool {
        self.rows.values().all(|(s, _)| s == "ok" || s.starts_with("deleted"))
    }
}

/// Renders events as one spinner per node until the channel closes; returns the summary.
pub async fn progress(mut rx: UnboundedReceiver<Event>, verb: &'static str) -> Summary {
    let multi = MultiProgress::new();
    if !std::io::stderr().is_terminal() {
        multi.set_draw_target(indicatif::ProgressDrawTarget::hidden());
    }
    let style = ProgressStyle::with_template("{spinner} {prefix:<22} {wide_msg} {elapsed:>4}")
        .unwrap_or_else(|_| ProgressStyle::default_spinner());
    let mut bars: BTreeMap<Node, (ProgressBar, Instant)> = BTreeMap::new();
    let mut summary = Summary::default();
    let mut deleted: BTreeMap<Node, usize> = BTreeMap::new();
    let quiet = !std::io::stderr().is_terminal();
    while let Some(e) = rx.recv().await {
        match e {
            Event::NodeStarted { node } => {
                let bar = multi.add(ProgressBar::new_spinner().with_style(style.clone()).with_prefix(node.name()));
                bar.set_message(format!("{verb}ing"));
                bar.enable_steady_tick(Duration::from_millis(120));
                if quiet {
                    eprintln!("  {node}: {verb}ing");
                }
                bars.insert(node, (bar, Instant::now()));
                summary.rows.insert(node, ("running".into(), None));
            }
            Event::ResourceDeleted { node, resource } => {
                *deleted.entry(node).or_default() += 1;
                if let Some((bar, _)) = bars.get(&node) {
                    bar.set_message(format!("deleted {resource}"));
                }
            }
            Event::NodeFinished { node, elapsed } => {
                let status = match deleted.get(&node) {
                    Some(n) => format!("deleted {n} resource(s)"),
                    None if verb == "destroy" => "nothing to delete".to_owned(),
                    None => "ok".to_owned(),
                };
                if let Some((bar, _)) = bars.get(&node) {
                    bar.finish_with_message(format!("✓ {status}"));
                }
                if quiet {
                    eprintln!("  {node}: {status} ({:.1}s)", elapsed.as_secs_f64());
                }
                summary.rows.insert(node, (if verb == "destroy" { status } else { "ok".into() }, Some(elapsed)));
            }
            Event::NodeFailed { node, error } => {
                let elapsed = bars.get(&node).map(|(_, t)| t.elapsed());
                if let Some((bar, _)) = bars.get(&node) {
                    bar.abandon_with_message(format!("✗ {}", error.message));
                }
                if quiet {
                    eprintln!("  {node}: FAILED: {}", error.message);
                }
                summary.rows.insert(node, ("FAILED".into(), elapsed));
            }
            Event::NodeSkipped { node, because } => {
                summary.rows.insert(node, (format!("not started ({because} failed)"), None));
            }
            Event::NodeCancelled { node } => {
                summary.rows.insert(node, ("not started (cancelled)".into(), None));
            }
            // Events a later version adds are not shown by this view.
            _ => {}
        }
    }
    summary
}

/// Writes `outputs.json`, `values.yaml` (owner-only: it holds secrets) and `kubeconfig` into
/// `dir`; returns their paths.
pub async fn write_out(stack: &Stack, out: &StackOutput, dir: &Path) -> anyhow::Result<Vec<PathBuf>> {
    std::fs::create_dir_all(dir)?;
    let mut written = Vec::new();
    let outputs = dir.join("outputs.json");
    std::fs::write(&outputs, serde_json::to_string_pretty(out)? + "\n")?;
    written.push(outputs);
    let values = dir.join("values.yaml");
    write_private(&values, &stack.helm_values(out).await?)?;
    written.push(values);
    if !stack.config().creates_service_accounts() {
        // Role-only (or the emulator): the objects apply did not make, for `kubectl apply -f`.
        let manifests = dir.join("kubernetes.yaml");
        std::fs::write(
            &manifests,
            dify_stack::output::kubernetes_manifests(
                out,
                &stack.config().iam.helm_release,
                &dify_stack::eks::workloads::volume_tags(stack.context()),
            )?,
        )?;
        written.push(manifests);
    }
    if let Some(p) = out.platform.as_ref().filter(|p| !p.commands.is_empty()) {
        // Role-only: the add-on releases, for a machine that reaches the cluster.
        for (release, values) in &p.release_values {
            let file = dir.join(format!("{release}-values.yaml"));
            std::fs::write(&file, values)?;
            written.push(file);
        }
        let script = dir.join("platform.sh");
        std::fs::write(&script, format!("#!/bin/sh\nset -e\ncd \"$(dirname \"$0\")\"\n{}\n", p.commands.join("\n")))?;
        written.push(script);
    }
    if let Some(k) = Stack::kubeconfig(out) {
        let kubeconfig = dir.join("kubeconfig");
        write_private(&kubeconfig, &k)?;
        written.push(kubeconfig);
    }
    Ok(written)
}

fn write_private(path: &Path, text: &str) -> std::io::Result<()> {
    use std::io::Write as _;
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        let mut f = std::fs::OpenOptions::new().write(true).create(true).truncate(true).mode(0o600).open(path)?;
        f.write_all(text.as_bytes())
    }
    #[cfg(not(unix))]
    {
        std::fs::write(path, text)
    }
}
