//! Installing Dify EE on the stack: `helm upgrade --install` of the Dify EE chart with the
//! rendered values, then a rollout wait with kube-rs; and the uninstall.
//!
//! Helm (3.x or 4.x) is found on `PATH` (or given). It gets a kubeconfig written for this run
//! (owner-only, deleted afterwards) that holds our own EKS bearer token and the cluster CA, so no
//! AWS CLI is needed, and the values from an owner-only file: no secret is ever on a command line.
//! `--wait` is not used: the rollout is watched here, per workload, with a timeout that names
//! what is not ready and its last events.

use std::path::{Path, PathBuf};
use std::time::Duration;

use dify_stack_core::wait::{self, Probe};
use dify_stack_core::{CancellationToken, WaitPolicy};
use k8s_openapi::api::apps::v1::{Deployment, StatefulSet};
use k8s_openapi::api::core::v1::Event;
use kube::api::{Api, ListParams};
use secrecy::{ExposeSecret as _, SecretString};
use serde::{Deserialize, Serialize};

/// The official Dify Helm repository, which serves the Dify EE chart `dify` (3.x).
pub const DEFAULT_REPOSITORY: &str = "https://langgenius.github.io/dify-helm";
/// The chart version this library's values are written for (3.9.x).
pub const DEFAULT_CHART_VERSION: &str = "3.9.0";

/// How long an uninstall waits for the load balancers of the release's Ingress to be deleted by
/// their controller (an ALB takes about a minute; `aws-durations.toml`).
pub const LOAD_BALANCERS_GONE_CAP: Duration = Duration::from_secs(600);

/// Which Dify EE release to install, and from where.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DifyRelease {
    /// Helm release name (the service accounts carry it for adoption). Default `dify`.
    #[serde(default = "default_name")]
    pub name: String,
    /// Namespace (the service accounts' namespace). Default `dify`.
    #[serde(default = "default_name")]
    pub namespace: String,
    /// Chart name in the repository. Default `dify`.
    #[serde(default = "default_name")]
    pub chart: String,
    /// Chart repository URL (override for China regions or a mirror).
    #[serde(default = "default_repository")]
    pub repository: String,
    /// Pinned chart version.
    #[serde(default = "default_version")]
    pub version: String,
    /// How long the rollout may take, in seconds. Default 900.
    #[serde(default = "default_rollout")]
    pub rollout_timeout_secs: u64,
    /// The `helm` executable; found on `PATH` when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub helm: Option<PathBuf>,
}

fn default_name() -> String {
    "dify".to_owned()
}
fn default_repository() -> String {
    DEFAULT_REPOSITORY.to_owned()
}
fn default_version() -> String {
    DEFAULT_CHART_VERSION.to_owned()
}
fn default_rollout() -> u64 {
    900
}

impl Default for DifyRelease {
    fn default() -> Self {
        DifyRelease {
            name: default_name(),
            namespace: default_name(),
            chart: default_name(),
            repository: default_repository(),
            version: default_version(),
            rollout_timeout_secs: default_rollout(),
            helm: None,
        }
    }
}

/// Why the install or uninstall failed.
#[derive(Debug, thiserror::Error)]
pub enum InstallError {
    /// No `helm` executable.
    #[error(
        "helm was not found ({0}): install Helm 3 or 4 (https://helm.sh/docs/intro/install/) or set the release's `helm` path"
    )]
    HelmMissing(String),
    /// Helm is there but not a 3.x or 4.x.
    #[error("{path} is Helm {version}; Helm 3.x or 4.x is needed")]
    HelmVersion {
        /// The executable.
        path: String,
        /// What it reported.
        version: String,
    },
    /// Helm ran and failed.
    #[error("helm {verb} failed (exit {code:?}): {stderr}")]
    Helm {
        /// `upgrade --install` or `uninstall`.
        verb: &'static str,
        /// Exit code.
        code: Option<i32>,
        /// What helm printed on stderr.
        stderr: String,
    },
    /// A workload did not become ready in time.
    #[error("the rollout of release {release} did not finish within {waited:?}; not ready: {}", not_ready.join("; "))]
    Rollout {
        /// The release.
        release: String,
        /// How long it waited.
        waited: Duration,
        /// Each workload not ready, with its last events.
        not_ready: Vec<String>,
    },
    /// The release's load balancers were still there after the uninstall.
    #[error(
        "{0}. The release is uninstalled; its load balancers hold the subnets: delete them, or run destroy, which deletes those left"
    )]
    LoadBalancersLeft(String),
    /// A Kubernetes or file-system call failed.
    #[error("{0}")]
    Io(String),
}

/// A file only the owner can read, removed when dropped.
struct PrivateFile(PathBuf);

impl PrivateFile {
    fn write(name: &str, text: &str) -> Result<PrivateFile, InstallError> {
        use std::io::Write as _;
        let path = std::env::temp_dir().join(format!("dify-stack-{}-{}-{name}", std::process::id(), fastrand::u64(..)));
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt as _;
            options.mode(0o600);
        }
        let mut f = options.open(&path).map_err(|e| InstallError::Io(format!("{}: {e}", path.display())))?;
        f.write_all(text.as_bytes()).map_err(|e| InstallError::Io(format!("{}: {e}", path.display())))?;
        Ok(PrivateFile(path))
    }
}

impl Drop for PrivateFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// A kubeconfig with a bearer token (no exec plugin, no AWS CLI).
pub fn token_kubeconfig(server: &str, ca_data: &str, token: &SecretString) -> String {
    let q = |s: &str| serde_json::to_string(s).unwrap_or_default();
    format!(
        "apiVersion: v1\nkind: Config\nclusters:\n- name: eks\n  cluster:\n    server: {}\n    certificate-authority-data: {}\ncontexts:\n- name: eks\n  context:\n    cluster: eks\n    user: eks\ncurrent-context: eks\nusers:\n- name: eks\n  user:\n    token: {}\n",
        q(server),
        q(ca_data),
        q(token.expose_secret())
    )
}

/// The `helm` to run: the given path, or the first `helm` on `PATH`.
pub fn find_helm(given: Option<&Path>) -> Result<PathBuf, InstallError> {
    if let Some(p) = given {
        return if p.is_file() { Ok(p.to_owned()) } else { Err(InstallError::HelmMissing(p.display().to_string())) };
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .map(|d| d.join("helm"))
        .find(|p| p.is_file())
        .ok_or_else(|| InstallError::HelmMissing("not on PATH".to_owned()))
}

async fn run_helm(helm: &Path, verb: &'static str, args: &[String]) -> Result<String, InstallError> {
    let out = tokio::process::Command::new(helm)
        .args(args)
        .stdin(std::process::Stdio::null())
        .output()
        .await
        .map_err(|e| InstallError::HelmMissing(format!("{}: {e}", helm.display())))?;
    if !out.status.success() {
        return Err(InstallError::Helm {
            verb,
            code: out.status.code(),
            stderr: String::from_utf8_lossy(&out.stderr).trim().to_owned(),
        });
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Checks that `helm` is Helm 3.x or 4.x.
pub async fn check_helm(helm: &Path) -> Result<String, InstallError> {
    let version = run_helm(helm, "version", &["version".into(), "--short".into()]).await?.trim().to_owned();
    if !(version.starts_with("v3.") || version.starts_with("v4.")) {
        return Err(InstallError::HelmVersion { path: helm.display().to_string(), version });
    }
    Ok(version)
}

/// The arguments of the install: no secret among them (values and token are in files).
pub fn install_args(release: &DifyRelease, values: &Path, kubeconfig: &Path) -> Vec<String> {
    [
        "upgrade",
        "--install",
        &release.name,
        &release.chart,
        "--repo",
        &release.repository,
        "--version",
        &release.version,
        "--namespace",
        &release.namespace,
        "--values",
        &values.display().to_string(),
        "--kubeconfig",
        &kubeconfig.display().to_string(),
        // The stack makes the namespace, except in role-only mode.
        "--create-namespace",
    ]
    .iter()
    .map(|s| (*s).to_owned())
    .collect()
}

/// Runs the install with `values` (YAML, secrets inside) against the cluster.
pub async fn helm_install(
    release: &DifyRelease,
    values: &str,
    server: &str,
    ca_data: &str,
    token: &SecretString,
) -> Result<(), InstallError> {
    let helm = find_helm(release.helm.as_deref())?;
    check_helm(&helm).await?;
    let values = PrivateFile::write("values.yaml", values)?;
    let kubeconfig = PrivateFile::write("kubeconfig", &token_kubeconfig(server, ca_data, token))?;
    run_helm(&helm, "upgrade --install", &install_args(release, &values.0, &kubeconfig.0)).await?;
    Ok(())
}

/// Runs `helm uninstall` of the release (the service accounts carry `helm.sh/resource-policy:
/// keep` and stay, with their IRSA annotations).
pub async fn helm_uninstall(
    release: &DifyRelease,
    server: &str,
    ca_data: &str,
    token: &SecretString,
) -> Result<(), InstallError> {
    let helm = find_helm(release.helm.as_deref())?;
    check_helm(&helm).await?;
    let kubeconfig = PrivateFile::write("kubeconfig", &token_kubeconfig(server, ca_data, token))?;
    let args: Vec<String> = [
        "uninstall",
        &release.name,
        "--namespace",
        &release.namespace,
        "--kubeconfig",
        &kubeconfig.0.display().to_string(),
        "--ignore-not-found",
    ]
    .iter()
    .map(|s| (*s).to_owned())
    .collect();
    run_helm(&helm, "uninstall", &args).await?;
    Ok(())
}

/// One workload's rollout state: `None` when rolled out, else what is missing.
fn pending(
    kind: &str,
    name: &str,
    generation: Option<i64>,
    observed: Option<i64>,
    want: i32,
    updated: i32,
    ready: i32,
) -> Option<String> {
    let caught_up = observed.unwrap_or(0) >= generation.unwrap_or(0);
    (!(caught_up && updated >= want && ready >= want))
        .then(|| format!("{kind} {name}: {ready}/{want} ready, {updated} updated"))
}

/// The workloads of the release that are not rolled out, with their messages.
pub async fn not_rolled_out(
    client: &kube::Client,
    release: &DifyRelease,
) -> Result<Vec<(String, String)>, kube::Error> {
    let selector = ListParams::default().labels(&format!("app.kubernetes.io/instance={}", release.name));
    // (kind, metadata, wanted replicas, observed generation, updated, ready)
    let mut states = Vec::new();
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), &release.namespace);
    for d in deployments.list(&selector).await?.items {
        let s = d.status.unwrap_or_default();
        let want = d.spec.and_then(|s| s.replicas);
        states.push(("deployment", d.metadata, want, s.observed_generation, s.updated_replicas, s.available_replicas));
    }
    let sets: Api<StatefulSet> = Api::namespaced(client.clone(), &release.namespace);
    for x in sets.list(&selector).await?.items {
        let s = x.status.unwrap_or_default();
        let want = x.spec.and_then(|s| s.replicas);
        states.push(("statefulset", x.metadata, want, s.observed_generation, s.updated_replicas, s.ready_replicas));
    }
    Ok(states
        .into_iter()
        .filter_map(|(kind, meta, want, observed, updated, ready)| {
            let name = meta.name.unwrap_or_default();
            let message = pending(
                kind,
                &name,
                meta.generation,
                observed,
                want.unwrap_or(1),
                updated.unwrap_or(0),
                ready.unwrap_or(0),
            )?;
            Some((name, message))
        })
        .collect())
}

/// The last events about pods of `workload` (their names start with it).
async fn last_events(client: &kube::Client, namespace: &str, workload: &str) -> Vec<String> {
    let events: Api<Event> = Api::namespaced(client.clone(), namespace);
    let Ok(list) = events.list(&ListParams::default()).await else { return Vec::new() };
    let mut mine: Vec<Event> = list
        .items
        .into_iter()
        .filter(|e| e.involved_object.name.as_deref().is_some_and(|n| n.starts_with(workload)))
        .collect();
    mine.sort_by_key(|e| e.last_timestamp.as_ref().map(|t| t.0));
    mine.iter()
        .rev()
        .take(3)
        .map(|e| format!("{}: {}", e.reason.clone().unwrap_or_default(), e.message.clone().unwrap_or_default()))
        .collect()
}

/// Waits until every Deployment and StatefulSet of the release is rolled out; `progress` gets a
/// line each time the set of pending workloads changes. A timeout names each workload not ready
/// and its last events.
pub async fn wait_rollout(
    client: &kube::Client,
    release: &DifyRelease,
    policy: &WaitPolicy,
    cancel: &CancellationToken,
    progress: &(dyn Fn(&str) + Send + Sync),
) -> Result<(), InstallError> {
    let policy = policy.capped(Duration::from_secs(release.rollout_timeout_secs));
    let last = std::sync::Mutex::new(String::new());
    let result = wait::until(&format!("rollout of release {}", release.name), &policy, cancel, || async {
        let pending = not_rolled_out(client, release).await?;
        let line = if pending.is_empty() {
            "every workload is rolled out".to_owned()
        } else {
            pending.iter().map(|(_, m)| m.as_str()).collect::<Vec<_>>().join(", ")
        };
        let mut seen = last.lock().unwrap_or_else(|e| e.into_inner());
        if *seen != line {
            progress(&line);
            *seen = line.clone();
        }
        Ok::<_, kube::Error>(if pending.is_empty() { Probe::Done(()) } else { Probe::Pending(line) })
    })
    .await;
    match result {
        Ok(()) => Ok(()),
        Err(wait::WaitError::TimedOut { waited, .. }) => {
            let mut not_ready = Vec::new();
            for (name, message) in not_rolled_out(client, release).await.unwrap_or_default() {
                let events = last_events(client, &release.namespace, &name).await;
                not_ready.push(if events.is_empty() {
                    message
                } else {
                    format!("{message} (last events: {})", events.join(" | "))
                });
            }
            Err(InstallError::Rollout { release: release.name.clone(), waited, not_ready })
        }
        Err(e) => Err(InstallError::Io(e.to_string())),
    }
}

/// Whether the release is installed: Helm 3/4 keep each release revision in a Secret named
/// `sh.helm.release.v1.<release>.v<N>` in the release namespace.
pub async fn release_installed(client: &kube::Client, release: &DifyRelease) -> Result<bool, kube::Error> {
    let secrets: Api<k8s_openapi::api::core::v1::Secret> = Api::namespaced(client.clone(), &release.namespace);
    let list =
        secrets.list_metadata(&ListParams::default().labels(&format!("owner=helm,name={}", release.name))).await?;
    Ok(!list.items.is_empty())
}

/// Probes `url` (the console's login page) until it answers with a status below 500 (the page,
/// or a redirect to it), within `policy` capped at 10 min (DNS and the ALB take minutes to come
/// up). Returns the status.
pub async fn probe_console(url: &str, policy: &WaitPolicy, cancel: &CancellationToken) -> Result<u16, InstallError> {
    let (client, path) = crate::access::plain_client(url).map_err(InstallError::Io)?;
    let policy = policy.capped(Duration::from_secs(600));
    wait::until(&format!("{url} to answer"), &policy, cancel, || async {
        let request = http::Request::get(path.as_str()).body(kube::client::Body::empty()).map_err(|e| e.to_string())?;
        Ok::<_, String>(match client.send(request).await {
            Ok(r) if r.status().as_u16() < 500 => Probe::Done(r.status().as_u16()),
            Ok(r) => Probe::Pending(format!("HTTP {}", r.status().as_u16())),
            Err(e) => Probe::Pending(e.to_string()),
        })
    })
    .await
    .map_err(|e| InstallError::Io(format!("the console at {url} did not answer: {e}")))
}
