//! `HelmCli` names a chart in the form its repository needs, through a fake `helm` executable
//! that records its arguments: a chart repository (`https://`) with `--repo`, an OCI registry
//! (`oci://`) by reference without `--repo` (Helm has no repository mode for OCI: Helm docs, "Use
//! OCI-based registries"; helm/helm #10565), `--version` always; `uninstall` names no chart.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use dify_stack_platform::helm::token_kubeconfig;
use dify_stack_platform::{Chart, HelmApi as _, HelmCli, ReleaseInstall};

/// The fake `helm` of this test binary, written once before any test runs it: an executable
/// being written while another thread forks can be inherited open for writing, and exec then
/// fails with ETXTBSY. It logs each call's arguments to `log/<release>.args` (one per line,
/// calls separated by `--`) and answers `get values` with `null`.
fn fake_helm() -> &'static (PathBuf, PathBuf) {
    static HELM: OnceLock<(PathBuf, PathBuf)> = OnceLock::new();
    HELM.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("dify-stack-helm-forms-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("log")).unwrap();
        let script = format!(
            r#"#!/bin/sh
L="{log}"
case "$1" in
  version) echo "v3.16.2+g13654a5"; exit 0;;
  upgrade) release="$3";;
  uninstall) release="$2";;
  get) release="$3"; echo null;;
  *) release="other";;
esac
printf '%s\n' "$@" >> "$L/$release.args"; echo "--" >> "$L/$release.args"
exit 0
"#,
            log = dir.join("log").display()
        );
        let helm = dir.join("helm");
        std::fs::write(&helm, script).unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            std::fs::set_permissions(&helm, std::fs::Permissions::from_mode(0o755)).unwrap();
        }
        (helm, dir)
    })
}

fn calls(dir: &Path, release: &str) -> Vec<Vec<String>> {
    let text = std::fs::read_to_string(dir.join("log").join(format!("{release}.args"))).unwrap_or_default();
    text.split("--\n").filter(|c| !c.is_empty()).map(|c| c.lines().map(str::to_owned).collect()).collect()
}

async fn helm() -> HelmCli {
    let (path, _) = fake_helm();
    let kubeconfig = token_kubeconfig(
        "https://ABC.gr7.us-west-2.eks.amazonaws.com",
        "Q0E=",
        &secrecy::SecretString::from("k8s-aws-v1.token".to_owned()),
    );
    HelmCli::new(Some(path), &kubeconfig).await.unwrap()
}

/// Installs, reads the values of and uninstalls `release` of `chart`; the calls helm got.
async fn install_and_uninstall(release: &str, chart: Chart) -> Vec<Vec<String>> {
    let helm = helm().await;
    let install = ReleaseInstall { name: release.into(), namespace: "dify".into(), chart, values: "a: 1\n".into() };
    helm.upgrade_install(install).await.unwrap();
    assert_eq!(helm.values(release.into(), "dify".into()).await.unwrap(), Some(serde_json::json!({})));
    helm.uninstall(release.into(), "dify".into()).await.unwrap();
    let calls = calls(&fake_helm().1, release);
    assert_eq!(calls.len(), 3, "{calls:?}");
    // Uninstall names the release only, whatever the chart's repository.
    assert_eq!(calls[2][..4], ["uninstall", release, "--namespace", "dify"]);
    assert!(!calls[2].iter().any(|a| a == "--repo" || a == "--version" || a.contains("://")), "{:?}", calls[2]);
    assert_eq!(calls[1][..3], ["get", "values", release]);
    calls
}

#[tokio::test]
async fn a_chart_repository_chart_is_installed_with_repo_and_version() {
    let calls = install_and_uninstall("from-https", Chart::new("https://charts.example.com", "dify", "3.9.0")).await;
    assert_eq!(
        calls[0][..10],
        [
            "upgrade",
            "--install",
            "from-https",
            "dify",
            "--repo",
            "https://charts.example.com",
            "--version",
            "3.9.0",
            "--namespace",
            "dify"
        ]
    );
}

#[tokio::test]
async fn an_oci_chart_is_installed_by_reference_with_version_and_without_repo() {
    let chart = Chart::new("oci://123456789012.dkr.ecr.us-west-2.amazonaws.com/charts", "dify", "3.9.0");
    let calls = install_and_uninstall("from-oci", chart).await;
    assert_eq!(
        calls[0][..8],
        [
            "upgrade",
            "--install",
            "from-oci",
            "oci://123456789012.dkr.ecr.us-west-2.amazonaws.com/charts/dify",
            "--version",
            "3.9.0",
            "--namespace",
            "dify"
        ]
    );
    assert!(!calls[0].iter().any(|a| a == "--repo"), "{:?}", calls[0]);
}
