//! Helm, run as a program: Helm 3.x or 4.x found on `PATH` (or given), talking to the cluster
//! through a kubeconfig written for the run (owner-only, removed afterwards) that holds our own
//! EKS bearer token and the cluster CA, so no AWS CLI is needed. Values reach Helm through
//! owner-only files: no secret is ever on a command line or in Helm's environment.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use async_trait::async_trait;
use secrecy::{ExposeSecret as _, SecretString};

use crate::spec::Chart;

/// Why Helm could not do what was asked.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum HelmError {
    /// No `helm` executable: none on `PATH`, the given path is no file, or it could not be run.
    #[error(
        "helm was not found ({}{}): install Helm 3 or 4 (https://helm.sh/docs/intro/install/) or set the release's `helm` path",
        path.as_ref().map_or_else(|| "not on PATH".to_owned(), |p| p.display().to_string()),
        source.as_ref().map(|e| format!(": {e}")).unwrap_or_default()
    )]
    Missing {
        /// The path given or tried; `None` when no `helm` is on `PATH`.
        path: Option<PathBuf>,
        /// Why it could not be run, when it was tried.
        #[source]
        source: Option<Arc<std::io::Error>>,
    },
    /// Helm is there but not a 3.x or 4.x.
    #[error("{path} is Helm {version}; Helm 3.x or 4.x is needed")]
    Version {
        /// The executable.
        path: String,
        /// What it reported.
        version: String,
    },
    /// Helm ran and failed.
    #[error("helm {verb} failed (exit {code:?}): {stderr}")]
    Failed {
        /// `upgrade --install`, `uninstall`, `list`.
        verb: &'static str,
        /// Exit code.
        code: Option<i32>,
        /// What helm printed on stderr.
        stderr: String,
    },
    /// A temporary file (values, kubeconfig) could not be written.
    #[error("{}: {source}", path.display())]
    File {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: Arc<std::io::Error>,
    },
    /// Helm's answer could not be read as what the command prints.
    #[error(
        "helm {verb} printed no {expected} ({source}){}",
        output.as_ref().map(|o| format!(": {o}")).unwrap_or_default()
    )]
    Output {
        /// `list`, `get values`, `show crds`.
        verb: &'static str,
        /// What it should have printed (`JSON list`, `YAML`).
        expected: &'static str,
        /// What it printed, when short enough to show.
        output: Option<String>,
        /// The parser's error.
        #[source]
        source: Arc<dyn std::error::Error + Send + Sync>,
    },
    /// `helm show crds` printed a document that is not a named CustomResourceDefinition.
    #[error(
        "helm show crds printed a document that is not a named CustomResourceDefinition (kind {kind}, name {name:?})"
    )]
    NotACrd {
        /// The document's `kind`, as JSON (`null` when absent).
        kind: String,
        /// Its `metadata.name`.
        name: String,
    },
    /// This Helm client does not do what was asked.
    #[error("this Helm client cannot {0}")]
    Unsupported(&'static str),
}

impl dify_stack_core::Classify for HelmError {
    fn kind(&self) -> dify_stack_core::ErrorKind {
        use dify_stack_core::ErrorKind;
        match self {
            // Fixed by installing Helm, not by waiting.
            HelmError::Missing { .. } | HelmError::Version { .. } | HelmError::Unsupported(_) => ErrorKind::Invalid,
            // A release failing is mostly a cluster still settling (nodes, webhooks).
            HelmError::Failed { .. } => ErrorKind::Transient,
            HelmError::File { .. } | HelmError::Output { .. } | HelmError::NotACrd { .. } => ErrorKind::Other,
        }
    }
}

/// A file only the owner can read, removed when dropped.
#[derive(Debug)]
pub struct PrivateFile(PathBuf);

impl PrivateFile {
    /// Writes `text` to a new owner-only file in the temporary directory.
    pub fn write(name: &str, text: &str) -> Result<PrivateFile, HelmError> {
        use std::io::Write as _;
        let path = std::env::temp_dir().join(format!("dify-stack-{}-{}-{name}", std::process::id(), fastrand::u64(..)));
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt as _;
            options.mode(0o600);
        }
        let io = |e: std::io::Error| HelmError::File { path: path.clone(), source: Arc::new(e) };
        let mut f = options.open(&path).map_err(io)?;
        f.write_all(text.as_bytes()).map_err(io)?;
        Ok(PrivateFile(path))
    }

    /// Where it is.
    pub fn path(&self) -> &Path {
        &self.0
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
pub fn find_helm(given: Option<&Path>) -> Result<PathBuf, HelmError> {
    if let Some(p) = given {
        return if p.is_file() {
            Ok(p.to_owned())
        } else {
            Err(HelmError::Missing { path: Some(p.to_owned()), source: None })
        };
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .map(|d| d.join("helm"))
        .find(|p| p.is_file())
        .ok_or(HelmError::Missing { path: None, source: None })
}

/// Runs `helm args`; its stdout, or its stderr as the error.
pub async fn run_helm(helm: &Path, verb: &'static str, args: &[String]) -> Result<String, HelmError> {
    let out = tokio::process::Command::new(helm)
        .args(args)
        .stdin(std::process::Stdio::null())
        .output()
        .await
        .map_err(|e| HelmError::Missing { path: Some(helm.to_owned()), source: Some(Arc::new(e)) })?;
    if !out.status.success() {
        return Err(HelmError::Failed {
            verb,
            code: out.status.code(),
            stderr: String::from_utf8_lossy(&out.stderr).trim().to_owned(),
        });
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Checks that `helm` is Helm 3.x or 4.x; returns its version.
pub async fn check_helm(helm: &Path) -> Result<String, HelmError> {
    let version = run_helm(helm, "version", &["version".into(), "--short".into()]).await?.trim().to_owned();
    if !(version.starts_with("v3.") || version.starts_with("v4.")) {
        return Err(HelmError::Version { path: helm.display().to_string(), version });
    }
    Ok(version)
}

/// What `helm upgrade --install` is given: the release, its namespace, the chart and the values
/// (YAML; may hold secrets, so `Debug` leaves them out).
#[derive(Clone, PartialEq, Eq)]
pub struct ReleaseInstall {
    /// The release name.
    pub name: String,
    /// Its namespace (created when missing).
    pub namespace: String,
    /// The chart.
    pub chart: Chart,
    /// The values (YAML).
    pub values: String,
}

impl std::fmt::Debug for ReleaseInstall {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReleaseInstall")
            .field("name", &self.name)
            .field("namespace", &self.namespace)
            .field("chart", &self.chart)
            .field("values", &format_args!("<{} bytes>", self.values.len()))
            .finish()
    }
}

/// The arguments of `helm upgrade --install` of `release`: the values and the kubeconfig are
/// files, so no secret is among them. The chart is `<chart> --repo <url>` from a chart
/// repository and `oci://<registry>/<path>/<chart>` from an OCI registry, pinned with
/// `--version` either way ([`Chart::helm_source`]).
pub fn upgrade_install_args(release: &ReleaseInstall, values: &Path, kubeconfig: &Path) -> Vec<String> {
    let ReleaseInstall { name, namespace, chart, .. } = release;
    let mut args: Vec<String> = vec!["upgrade".to_owned(), "--install".to_owned(), name.clone()];
    args.extend(chart.helm_source());
    args.extend(
        [
            "--namespace",
            namespace,
            "--values",
            &values.display().to_string(),
            "--kubeconfig",
            &kubeconfig.display().to_string(),
            "--create-namespace",
        ]
        .iter()
        .map(|s| (*s).to_owned()),
    );
    args
}

/// The arguments of `helm show crds` of `chart`: the files of its `crds/` directory, which Helm
/// installs with the first install and never upgrades (Helm docs, "Custom Resource
/// Definitions": "there is no support at this time for upgrading or deleting CRDs using Helm").
/// The chart is named as for an install ([`Chart::helm_source`]); no kubeconfig: it reads the
/// chart only (Helm docs, `helm show crds [CHART] --repo --version`).
pub fn show_crds_args(chart: &Chart) -> Vec<String> {
    let mut args = vec!["show".to_owned(), "crds".to_owned()];
    args.extend(chart.helm_source());
    args
}

/// The CustomResourceDefinitions of `helm show crds` output (YAML documents, each file of
/// `crds/` after the other): each as (name, object). Empty documents are skipped; a document of
/// another kind is an error (it could not be applied as a CRD, and an upgrade without it would
/// be the drift this step prevents).
pub fn crd_documents(text: &str) -> Result<Vec<(String, serde_json::Value)>, HelmError> {
    use serde::Deserialize as _;
    let mut out = Vec::new();
    for document in serde_norway::Deserializer::from_str(text) {
        let value = serde_json::Value::deserialize(document).map_err(|e| HelmError::Output {
            verb: "show crds",
            expected: "YAML",
            output: None,
            source: Arc::new(e),
        })?;
        if value.is_null() {
            continue;
        }
        let name = value["metadata"]["name"].as_str().unwrap_or_default().to_owned();
        if value["kind"] != "CustomResourceDefinition" || name.is_empty() {
            return Err(HelmError::NotACrd { kind: value["kind"].to_string(), name });
        }
        out.push((name, value));
    }
    Ok(out)
}

/// A release as `helm list` reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReleaseInfo {
    /// `<chart>-<version>`, e.g. `aws-load-balancer-controller-1.13.0`.
    pub chart: String,
    /// `deployed`, `failed`, `pending-install`, ...
    pub status: String,
}

/// What the platform tier asks of Helm for one cluster.
#[cfg_attr(any(test, feature = "test-util"), mockall::automock)]
#[async_trait]
pub trait HelmApi: Send + Sync {
    /// The release in `namespace`, if installed.
    async fn status(&self, release: String, namespace: String) -> Result<Option<ReleaseInfo>, HelmError>;
    /// `helm upgrade --install` of the release with its values.
    async fn upgrade_install(&self, release: ReleaseInstall) -> Result<(), HelmError>;
    /// `helm uninstall` (absent is fine).
    async fn uninstall(&self, release: String, namespace: String) -> Result<(), HelmError>;
    /// The values the installed release was given (`helm get values`, the user-supplied ones;
    /// `{}` when none), to see what an upgrade would change. `None` when this client cannot tell:
    /// then only the chart and the status are compared.
    async fn values(&self, release: String, namespace: String) -> Result<Option<serde_json::Value>, HelmError> {
        let _ = (release, namespace);
        Ok(None)
    }
    /// `helm show crds` of the chart ([`show_crds_args`]): its CRDs as YAML documents, to apply
    /// before an upgrade of its release. A client without it refuses, and the upgrade stops
    /// before Helm runs.
    async fn show_crds(&self, chart: Chart) -> Result<String, HelmError> {
        let _ = chart;
        Err(HelmError::Unsupported("show a chart's CRDs (helm show crds)"))
    }
}

impl std::fmt::Debug for dyn HelmApi {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("HelmApi")
    }
}

/// [`HelmApi`] over the `helm` program and a private kubeconfig for one cluster.
#[derive(Debug)]
pub struct HelmCli {
    helm: PathBuf,
    kubeconfig: PrivateFile,
}

impl HelmCli {
    /// Finds and checks Helm (`given`, or `helm` on `PATH`) and writes the kubeconfig.
    pub async fn new(given: Option<&Path>, kubeconfig: &str) -> Result<HelmCli, HelmError> {
        let helm = find_helm(given)?;
        check_helm(&helm).await?;
        Ok(HelmCli { helm, kubeconfig: PrivateFile::write("kubeconfig", kubeconfig)? })
    }

    fn kubeconfig(&self) -> String {
        self.kubeconfig.path().display().to_string()
    }
}

#[async_trait]
impl HelmApi for HelmCli {
    async fn status(&self, release: String, namespace: String) -> Result<Option<ReleaseInfo>, HelmError> {
        let args: Vec<String> = [
            "list",
            "--namespace",
            &namespace,
            "--filter",
            &format!("^{release}$"),
            "--all",
            "--output",
            "json",
            "--kubeconfig",
            &self.kubeconfig(),
        ]
        .iter()
        .map(|s| (*s).to_owned())
        .collect();
        let out = run_helm(&self.helm, "list", &args).await?;
        let list: Vec<serde_json::Value> = serde_json::from_str(out.trim()).map_err(|e| HelmError::Output {
            verb: "list",
            expected: "JSON list",
            output: Some(out.clone()),
            source: Arc::new(e),
        })?;
        Ok(list.iter().find(|r| r["name"] == release.as_str()).map(|r| ReleaseInfo {
            chart: r["chart"].as_str().unwrap_or_default().to_owned(),
            status: r["status"].as_str().unwrap_or_default().to_owned(),
        }))
    }

    async fn upgrade_install(&self, release: ReleaseInstall) -> Result<(), HelmError> {
        let values = PrivateFile::write("values.yaml", &release.values)?;
        let args = upgrade_install_args(&release, values.path(), self.kubeconfig.path());
        run_helm(&self.helm, "upgrade --install", &args).await.map(|_| ())
    }

    async fn values(&self, release: String, namespace: String) -> Result<Option<serde_json::Value>, HelmError> {
        // `--output yaml` prints the values alone (the "USER-SUPPLIED VALUES:" heading is the
        // table format's: helm/helm `pkg/cmd/get_values.go`, valuesWriter); `null` when none.
        let args: Vec<String> = [
            "get",
            "values",
            &release,
            "--namespace",
            &namespace,
            "--output",
            "yaml",
            "--kubeconfig",
            &self.kubeconfig(),
        ]
        .iter()
        .map(|s| (*s).to_owned())
        .collect();
        let out = run_helm(&self.helm, "get values", &args).await?;
        let values: serde_json::Value = serde_norway::from_str(&out).map_err(|e| HelmError::Output {
            verb: "get values",
            expected: "YAML",
            output: Some(out.clone()),
            source: Arc::new(e),
        })?;
        Ok(Some(if values.is_null() { serde_json::json!({}) } else { values }))
    }

    async fn show_crds(&self, chart: Chart) -> Result<String, HelmError> {
        run_helm(&self.helm, "show crds", &show_crds_args(&chart)).await
    }

    async fn uninstall(&self, release: String, namespace: String) -> Result<(), HelmError> {
        // No chart here, so nothing differs between a chart repository and an OCI registry.
        let args: Vec<String> = [
            "uninstall",
            &release,
            "--namespace",
            &namespace,
            "--kubeconfig",
            &self.kubeconfig(),
            "--ignore-not-found",
        ]
        .iter()
        .map(|s| (*s).to_owned())
        .collect();
        run_helm(&self.helm, "uninstall", &args).await.map(|_| ())
    }
}
