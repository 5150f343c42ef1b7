//! Installing Dify EE on the stack: `helm upgrade --install` of the Dify EE chart with the
//! rendered values, then a rollout wait with kube-rs; and the uninstall.
//!
//! Helm runs as the platform tier runs it ([`dify_stack_platform::helm`]): Helm 3.x or 4.x from
//! `PATH` (or given), a kubeconfig written for this run (owner-only, deleted afterwards) holding
//! our own EKS bearer token and the cluster CA, so no AWS CLI is needed, and the values from an
//! owner-only file: no secret is ever on a command line.
//! `--wait` is not used: the rollout is watched here, per workload, with a timeout that names
//! what is not ready and its last events.

use std::path::PathBuf;
use std::time::Duration;

use dify_stack_core::wait::{self, Probe};
use dify_stack_core::{CancellationToken, WaitPolicy};
use dify_stack_platform::Chart;
use dify_stack_platform::helm::{HelmApi as _, HelmCli, HelmError, token_kubeconfig};
use k8s_openapi::api::apps::v1::{Deployment, StatefulSet};
use k8s_openapi::api::core::v1::Event;
use kube::api::{Api, ListParams};
use secrecy::SecretString;
use serde::{Deserialize, Serialize};

pub use crate::chart::{DEFAULT_CHART_VERSION, DEFAULT_REPOSITORY};

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
    /// Skip the image preflight ([`crate::preflight`]) before Helm runs.
    #[serde(default)]
    pub skip_image_check: bool,
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
            skip_image_check: false,
        }
    }
}

/// Why the install or uninstall failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum InstallError {
    /// Helm is missing, too old, or failed.
    #[error(transparent)]
    Helm(#[from] HelmError),
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
    LoadBalancersLeft(#[source] Box<wait::WaitError<dify_stack_core::AwsError>>),
    /// The rollout could not be watched (the Kubernetes API failed), or the wait was cancelled.
    #[error(transparent)]
    RolloutWatch(Box<wait::WaitError<dify_stack_core::KubeFailure>>),
    /// The console URL or the HTTP client for it is unusable.
    #[error(transparent)]
    Access(#[from] crate::AccessError),
    /// The console did not answer.
    #[error("the console at {url} did not answer: {source}")]
    Console {
        /// The console's URL.
        url: String,
        /// The wait that ended.
        #[source]
        source: Box<wait::WaitError<crate::AccessError>>,
    },
    /// A Kubernetes call failed (re-applying the service accounts after an uninstall).
    #[error(transparent)]
    Kubernetes(#[from] dify_stack_core::KubeFailure),
    /// An image of the release has no manifest for the nodes' platform, or does not exist.
    #[error(transparent)]
    Images(#[from] crate::preflight::ImagesUnavailable),
    /// No `[dify] domain`: Dify EE needs DNS host names.
    #[error(
        "Dify EE needs DNS host names and the stack has no domain: set [dify] domain (e.g. dify.example.com; \
         with a Route 53 public zone for it the stack requests the certificate and points console., api., app., \
         upload., enterprise. and trigger. at the load balancer), apply, then install"
    )]
    NoDomain,
}

impl dify_stack_core::Classify for InstallError {
    fn kind(&self) -> dify_stack_core::ErrorKind {
        use dify_stack_core::ErrorKind;
        match self {
            InstallError::Helm(e) => e.kind(),
            InstallError::Rollout { .. } => ErrorKind::TimedOut,
            InstallError::LoadBalancersLeft(e) => e.kind(),
            InstallError::RolloutWatch(e) => e.kind(),
            InstallError::Access(e) => e.kind(),
            InstallError::Console { source, .. } => source.kind(),
            InstallError::Kubernetes(e) => e.kind(),
            // Fixed by choosing other images (or tags), not by waiting.
            InstallError::Images(_) | InstallError::NoDomain => ErrorKind::Invalid,
        }
    }
}

impl DifyRelease {
    /// The release of a stack: its name and namespace from `iam`, the chart from `[dify]`.
    pub fn of(cfg: &crate::StackConfig) -> DifyRelease {
        DifyRelease {
            name: cfg.iam.helm_release.clone(),
            namespace: cfg.iam.namespace.clone(),
            repository: cfg.dify.chart_repository.clone(),
            version: cfg.dify.chart_version.clone(),
            ..DifyRelease::default()
        }
    }

    /// The pinned chart.
    pub fn chart(&self) -> Chart {
        Chart {
            repository: self.repository.clone(),
            chart: self.chart.clone(),
            version: self.version.clone(),
            image_repository: None,
            image_tag: None,
        }
    }

    async fn helm(&self, server: &str, ca_data: &str, token: &SecretString) -> Result<HelmCli, InstallError> {
        Ok(HelmCli::new(self.helm.as_deref(), &token_kubeconfig(server, ca_data, token)).await?)
    }
}

/// Runs `helm upgrade --install` of the release with `values` (YAML, secrets inside) against the
/// cluster: the values and the token reach Helm through owner-only files.
pub async fn helm_install(
    release: &DifyRelease,
    values: &str,
    server: &str,
    ca_data: &str,
    token: &SecretString,
) -> Result<(), InstallError> {
    let helm = release.helm(server, ca_data, token).await?;
    let install = dify_stack_platform::ReleaseInstall {
        name: release.name.clone(),
        namespace: release.namespace.clone(),
        chart: release.chart(),
        values: values.to_owned(),
    };
    helm.upgrade_install(install).await?;
    Ok(())
}

/// Runs `helm uninstall` of the release. Helm deletes every object of the release's manifest,
/// including a service account it adopted (the chart renders `dify-plugin-connector-sa` itself):
/// it reads `helm.sh/resource-policy: keep` from the manifest it rendered, not from the live
/// object (Helm docs, "Chart Development Tips and Tricks: Tell Helm Not To Uninstall a
/// Resource": the annotation goes on the chart's template). [`restore_service_accounts`]
/// re-applies them.
pub async fn helm_uninstall(
    release: &DifyRelease,
    server: &str,
    ca_data: &str,
    token: &SecretString,
) -> Result<(), InstallError> {
    let helm = release.helm(server, ca_data, token).await?;
    helm.uninstall(release.name.clone(), release.namespace.clone()).await?;
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

/// The platform's AWS Load Balancer Controller as a release to wait for (its workloads carry
/// Helm's `app.kubernetes.io/instance` label, as any release's), when the platform installed
/// it (`PlatformOutput::releases`); `None` otherwise (role-only access, or turned off).
pub fn load_balancer_controller(out: &crate::StackOutput) -> Option<DifyRelease> {
    use dify_stack_platform::spec::{LOAD_BALANCER_CONTROLLER, SYSTEM_NAMESPACE};
    let platform = out.platform.as_ref()?;
    let release = dify_stack_platform::names::release(LOAD_BALANCER_CONTROLLER);
    platform.releases.iter().any(|r| r.split(' ').next() == Some(release.as_str())).then(|| DifyRelease {
        name: LOAD_BALANCER_CONTROLLER.to_owned(),
        namespace: SYSTEM_NAMESPACE.to_owned(),
        // Two replicas pulling one image: minutes, not the chart's quarter hour.
        rollout_timeout_secs: 600,
        ..DifyRelease::default()
    })
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
        let pending = not_rolled_out(client, release).await.map_err(|e| {
            kube_failure("list", format!("the deployments and statefulsets of release {}", release.name), e)
        })?;
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
        Ok::<_, dify_stack_core::KubeFailure>(if pending.is_empty() { Probe::Done(()) } else { Probe::Pending(line) })
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
        Err(e) => Err(InstallError::RolloutWatch(Box::new(e))),
    }
}

/// A kube-rs error as the failure of `operation` on `object`: the API server's answer with its
/// status, or an unreachable server.
fn kube_failure(operation: &'static str, object: String, e: kube::Error) -> dify_stack_core::KubeFailure {
    dify_stack_core::KubeFailure::from_kube(operation, object, &e)
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
    let (client, path) = crate::access::plain_client(url)?;
    let policy = policy.capped(Duration::from_secs(600));
    wait::until(&format!("{url} to answer"), &policy, cancel, || async {
        let request = http::Request::get(path.as_str()).body(kube::client::Body::empty())?;
        Ok::<_, crate::AccessError>(match client.send(request).await {
            Ok(r) if r.status().as_u16() < 500 => Probe::Done(r.status().as_u16()),
            Ok(r) => Probe::Pending(format!("HTTP {}", r.status().as_u16())),
            Err(e) => Probe::Pending(e.to_string()),
        })
    })
    .await
    .map_err(|e| InstallError::Console { url: url.to_owned(), source: Box::new(e) })
}

/// `helm uninstall` of the release, then the stack's service accounts re-applied
/// ([`restore_service_accounts`]); returns the names Helm had deleted.
pub async fn uninstall_keeping_accounts(
    release: &DifyRelease,
    server: &str,
    ca_data: &str,
    token: &SecretString,
    client: &kube::Client,
    accounts: &[dify_stack_iam::IrsaServiceAccount],
) -> Result<Vec<String>, InstallError> {
    helm_uninstall(release, server, ca_data, token).await?;
    restore_service_accounts(client, accounts).await
}

/// Re-applies the stack's IRSA service accounts (server-side apply, field manager `dify-stack`)
/// after `helm uninstall`, which deletes the ones the release adopted. Returns the names that
/// were gone and are back.
pub async fn restore_service_accounts(
    client: &kube::Client,
    accounts: &[dify_stack_iam::IrsaServiceAccount],
) -> Result<Vec<String>, InstallError> {
    use dify_stack_iam::ServiceAccountApi as _;
    let api = dify_stack_iam::k8s::KubeServiceAccounts::new(client.clone());
    let mut gone = Vec::new();
    let mut namespaces: Vec<&str> = accounts.iter().map(|a| a.namespace.as_str()).collect();
    namespaces.dedup();
    for namespace in namespaces {
        let present = api.list_managed(namespace.to_owned()).await?;
        for account in accounts.iter().filter(|a| a.namespace == namespace) {
            if !present.iter().any(|p| p.name == account.name && p.role_arn.as_deref() == Some(&account.role_arn)) {
                gone.push(account.name.clone());
            }
        }
    }
    for account in accounts {
        api.apply_service_account(account.clone()).await?;
    }
    Ok(gone)
}

#[cfg(test)]
mod error_kind_tests {
    use super::InstallError;
    use dify_stack_core::{Classify as _, ErrorKind};
    use dify_stack_platform::helm::HelmError;

    /// A rollout that ran out of time may finish on a later run; a missing domain or Helm needs
    /// a fix; a Kubernetes failure keeps its own kind.
    #[test]
    fn install_errors_classify() {
        let rollout = InstallError::Rollout {
            release: "dify".into(),
            waited: std::time::Duration::from_secs(1),
            not_ready: vec!["deployment dify-api: 0/1 ready, 0 updated".into()],
        };
        assert_eq!(rollout.kind(), ErrorKind::TimedOut);
        assert!(rollout.is_retryable());
        assert_eq!(InstallError::NoDomain.kind(), ErrorKind::Invalid);
        let helm = InstallError::Helm(HelmError::Failed { verb: "uninstall", code: Some(1), stderr: "busy".into() });
        assert_eq!(helm.kind(), ErrorKind::Transient);
        let forbidden = InstallError::Kubernetes(dify_stack_core::KubeFailure {
            operation: "apply",
            object: "serviceaccount dify/dify-api-sa".into(),
            message: "forbidden".into(),
            status: Some(403),
            unreachable: false,
        });
        assert_eq!(forbidden.kind(), ErrorKind::AccessDenied);
    }
}
