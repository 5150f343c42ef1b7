//! Installing Dify EE: the helm invocation through a fake `helm` executable that records what it
//! was given, and the rollout wait against an in-process fake Kubernetes API.

use std::path::{Path, PathBuf};
use std::pin::pin;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use dify_stack::install::{self, DifyRelease, InstallError};
use dify_stack::{CancellationToken, core::WaitPolicy};
use dify_stack_platform::HelmError;
use http::{Request, Response};
use kube::client::Body;
use secrecy::SecretString;
use serde_json::{Value, json};

/// A directory of its own for one test.
fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("dify-stack-install-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// A fake `helm`: answers `version` with `version`, records every other call's arguments, the
/// mode and content of the files it was given and its environment, and exits with `code`.
fn fake_helm(dir: &Path, version: &str, code: i32) -> PathBuf {
    let log = dir.join("log");
    std::fs::create_dir_all(&log).unwrap();
    let script = format!(
        r#"#!/bin/sh
if [ "$1" = "version" ]; then echo "{version}"; exit 0; fi
printf '%s\n' "$@" > "{log}/args"
env > "{log}/env"
while [ $# -gt 0 ]; do
  case "$1" in
    --values) stat -c %a "$2" > "{log}/values.mode"; cp "$2" "{log}/values.yaml"; echo "$2" > "{log}/values.path";;
    --kubeconfig) stat -c %a "$2" > "{log}/kubeconfig.mode"; cp "$2" "{log}/kubeconfig"; echo "$2" > "{log}/kubeconfig.path";;
  esac
  shift
done
if [ {code} -ne 0 ]; then echo "Error: INSTALLATION FAILED: chart not found" >&2; fi
exit {code}
"#,
        log = log.display()
    );
    let helm = dir.join("helm");
    std::fs::write(&helm, script).unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        std::fs::set_permissions(&helm, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    helm
}

fn read(dir: &Path, file: &str) -> String {
    std::fs::read_to_string(dir.join("log").join(file)).unwrap_or_default()
}

const TOKEN: &str = "k8s-aws-v1.secret-token-value";
const VALUES: &str = "externalDatabase:\n  password: db-secret-value\n";

#[tokio::test]
async fn helm_gets_files_not_secrets_on_its_command_line_and_the_files_are_private_and_removed() {
    let dir = scratch("args");
    let release = DifyRelease { helm: Some(fake_helm(&dir, "v3.16.2+g13654a5", 0)), ..DifyRelease::default() };
    let token = SecretString::from(TOKEN.to_owned());
    install::helm_install(&release, VALUES, "https://ABC.gr7.us-west-2.eks.amazonaws.com", "Q0E=", &token)
        .await
        .unwrap();

    let args: Vec<String> = read(&dir, "args").lines().map(str::to_owned).collect();
    assert_eq!(
        &args[..10],
        [
            "upgrade",
            "--install",
            "dify",
            "dify",
            "--repo",
            install::DEFAULT_REPOSITORY,
            "--version",
            install::DEFAULT_CHART_VERSION,
            "--namespace",
            "dify"
        ]
    );
    assert_eq!((args[10].as_str(), args[12].as_str()), ("--values", "--kubeconfig"));
    for a in &args {
        assert!(!a.contains("secret-token") && !a.contains("db-secret"), "a secret on the command line: {a}");
    }
    assert!(!read(&dir, "env").contains("secret-token"), "no secret in helm's environment");
    // The values and the token reach helm through owner-only files, removed afterwards.
    assert_eq!(read(&dir, "values.mode").trim(), "600");
    assert_eq!(read(&dir, "kubeconfig.mode").trim(), "600");
    assert_eq!(read(&dir, "values.yaml"), VALUES);
    let kubeconfig = read(&dir, "kubeconfig");
    assert!(kubeconfig.contains(TOKEN) && kubeconfig.contains("certificate-authority-data: \"Q0E=\""), "{kubeconfig}");
    assert!(!kubeconfig.contains("exec:"), "no AWS CLI needed");
    for f in ["values.path", "kubeconfig.path"] {
        let p = read(&dir, f);
        assert!(!Path::new(p.trim()).exists(), "{} was left behind", p.trim());
    }
    let _ = std::fs::remove_dir_all(&dir);

    // In the same test: fake executables written while another test forks could be inherited
    // open for writing, and exec would then fail with ETXTBSY; one test writes and runs them all.
    a_missing_old_or_failing_helm_is_a_clear_error().await;
}

async fn a_missing_old_or_failing_helm_is_a_clear_error() {
    let release = DifyRelease { helm: Some(PathBuf::from("/nonexistent/helm")), ..DifyRelease::default() };
    let token = SecretString::from(TOKEN.to_owned());
    let err = install::helm_install(&release, VALUES, "https://x", "Q0E=", &token).await.unwrap_err();
    assert!(matches!(err, InstallError::Helm(HelmError::Missing { .. })), "{err}");
    assert!(err.to_string().contains("install Helm 3 or 4"), "{err}");

    let dir = scratch("v2");
    let release = DifyRelease { helm: Some(fake_helm(&dir, "v2.17.0", 0)), ..DifyRelease::default() };
    let err = install::helm_install(&release, VALUES, "https://x", "Q0E=", &token).await.unwrap_err();
    assert!(matches!(&err, InstallError::Helm(HelmError::Version { version, .. }) if version == "v2.17.0"), "{err}");

    let dir2 = scratch("fails");
    let release = DifyRelease { helm: Some(fake_helm(&dir2, "v4.0.0", 1)), ..DifyRelease::default() };
    let err = install::helm_install(&release, VALUES, "https://x", "Q0E=", &token).await.unwrap_err();
    assert!(err.to_string().contains("chart not found"), "{err}");
    for d in [dir, dir2] {
        let _ = std::fs::remove_dir_all(&d);
    }
}

type Requests = Arc<Mutex<Vec<String>>>;

/// A fake API server answering each `GET` with `respond(path, n)` (n: how many times this path
/// was asked before).
fn fake_api(respond: impl Fn(&str, usize) -> Value + Send + 'static) -> (kube::Client, Requests) {
    let (service, handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
    let seen: Requests = Arc::default();
    let log = seen.clone();
    tokio::spawn(async move {
        let mut handle = pin!(handle);
        while let Some((request, send)) = handle.next_request().await {
            let path = request.uri().path().to_owned();
            let n = {
                let mut l = log.lock().unwrap();
                let n = l.iter().filter(|p| **p == path).count();
                l.push(path.clone());
                n
            };
            let body = respond(&path, n);
            send.send_response(
                Response::builder().status(200).body(Body::from(serde_json::to_vec(&body).unwrap())).unwrap(),
            );
        }
    });
    (kube::Client::new(service, "dify"), seen)
}

fn deployment(name: &str, replicas: i32, available: i32) -> Value {
    json!({"metadata": {"name": name, "namespace": "dify", "generation": 2},
           "spec": {"replicas": replicas, "selector": {}, "template": {}},
           "status": {"observedGeneration": 2, "replicas": replicas, "updatedReplicas": available, "availableReplicas": available}})
}

fn list(kind: &str, items: Vec<Value>) -> Value {
    json!({"apiVersion": "v1", "kind": kind, "metadata": {}, "items": items})
}

fn quick() -> WaitPolicy {
    WaitPolicy {
        initial_interval: Duration::from_secs(1),
        max_interval: Duration::from_secs(5),
        max_wait: Duration::from_secs(3600),
        ..Default::default()
    }
}

#[tokio::test(start_paused = true)]
async fn the_rollout_is_followed_per_workload_until_every_one_is_ready() {
    let (client, seen) = fake_api(|path, n| match path {
        "/apis/apps/v1/namespaces/dify/deployments" => {
            list("DeploymentList", vec![deployment("dify-api", 1, i32::from(n >= 2)), deployment("dify-web", 1, 1)])
        }
        "/apis/apps/v1/namespaces/dify/statefulsets" => list("StatefulSetList", vec![]),
        _ => list("List", vec![]),
    });
    let lines = Arc::new(Mutex::new(Vec::<String>::new()));
    let l = lines.clone();
    let progress = move |s: &str| l.lock().unwrap().push(s.to_owned());
    install::wait_rollout(&client, &DifyRelease::default(), &quick(), &CancellationToken::new(), &progress)
        .await
        .unwrap();
    assert_eq!(
        *lines.lock().unwrap(),
        ["deployment dify-api: 0/1 ready, 0 updated", "every workload is rolled out"],
        "one line per change"
    );
    assert!(seen.lock().unwrap().len() >= 6, "polled until ready");
}

#[tokio::test(start_paused = true)]
async fn a_stuck_workload_times_out_naming_it_and_its_last_events() {
    let (client, _) = fake_api(|path, _| match path {
        "/apis/apps/v1/namespaces/dify/deployments" => {
            list("DeploymentList", vec![deployment("dify-api", 1, 1), deployment("dify-plugin-daemon", 1, 0)])
        }
        "/apis/apps/v1/namespaces/dify/statefulsets" => list("StatefulSetList", vec![]),
        "/api/v1/namespaces/dify/events" => list(
            "EventList",
            vec![json!({"metadata": {"name": "e1", "namespace": "dify"},
                        "involvedObject": {"kind": "Pod", "name": "dify-plugin-daemon-7c9f-abcde"},
                        "reason": "BackOff", "message": "Back-off restarting failed container",
                        "lastTimestamp": "2026-11-30T08:00:00Z"})],
        ),
        _ => list("List", vec![]),
    });
    let release = DifyRelease { rollout_timeout_secs: 600, ..DifyRelease::default() };
    let err =
        install::wait_rollout(&client, &release, &quick(), &CancellationToken::new(), &|_: &str| {}).await.unwrap_err();
    let text = err.to_string();
    assert!(matches!(&err, InstallError::Rollout { waited, .. } if *waited <= Duration::from_secs(600)), "{text}");
    assert!(text.contains("deployment dify-plugin-daemon: 0/1 ready"), "{text}");
    assert!(text.contains("BackOff: Back-off restarting failed container"), "{text}");
    assert!(!text.contains("dify-api:"), "ready workloads are not named: {text}");
}

#[tokio::test]
async fn an_installed_release_is_found_by_helms_release_secrets() {
    // Helm keeps each revision in a Secret labelled owner=helm,name=<release>.
    let (client, seen) = fake_api(|path, _| match path {
        "/api/v1/namespaces/dify/secrets" => list(
            "PartialObjectMetadataList",
            vec![json!({"apiVersion": "meta.k8s.io/v1", "kind": "PartialObjectMetadata",
                        "metadata": {"name": "sh.helm.release.v1.dify.v1", "namespace": "dify"}})],
        ),
        _ => list("List", vec![]),
    });
    assert!(install::release_installed(&client, &DifyRelease::default()).await.unwrap());
    assert_eq!(seen.lock().unwrap().as_slice(), ["/api/v1/namespaces/dify/secrets"]);
    let (client, _) = fake_api(|_, _| list("PartialObjectMetadataList", vec![]));
    assert!(!install::release_installed(&client, &DifyRelease::default()).await.unwrap());
}

#[tokio::test]
async fn the_console_probe_waits_through_errors_until_the_login_page_answers() {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    // A loopback server: the load balancer answers 503 twice (targets not healthy yet), then the
    // login page.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        for n in 0.. {
            let Ok((mut socket, _)) = listener.accept().await else { break };
            let mut buf = [0u8; 1024];
            let _ = socket.read(&mut buf).await;
            let status = if n < 2 { "503 Service Unavailable" } else { "200 OK" };
            let body = "<html>Dify sign in</html>";
            let reply =
                format!("HTTP/1.1 {status}\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}", body.len());
            let _ = socket.write_all(reply.as_bytes()).await;
        }
    });
    let policy = WaitPolicy {
        initial_interval: Duration::from_millis(10),
        max_interval: Duration::from_millis(20),
        max_wait: Duration::from_secs(20),
        ..Default::default()
    };
    let url = format!("http://127.0.0.1:{port}/signin");
    let status = install::probe_console(&url, &policy, &CancellationToken::new()).await.unwrap();
    assert_eq!(status, 200);

    // Nobody listening: a bounded wait, then an error naming the URL (a loopback port the
    // system gave and that was closed again: the connection is refused).
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let dead = format!("http://127.0.0.1:{closed}/");
    let policy = WaitPolicy { max_wait: Duration::from_millis(200), ..policy };
    let err = install::probe_console(&dead, &policy, &CancellationToken::new()).await.unwrap_err();
    assert!(err.to_string().contains(&dead), "{err}");
}

#[tokio::test(start_paused = true)]
async fn the_load_balancer_controller_is_waited_for_before_the_chart_when_the_platform_installed_it() {
    let mut out = dify_stack::StackOutput::default();
    // Role-only access (no release installed) or no platform: nothing to wait for.
    assert!(install::load_balancer_controller(&out).is_none());
    out.platform = Some(dify_stack_platform::PlatformOutput {
        releases: vec!["kube-system/cluster-autoscaler cluster-autoscaler-9.46.6".into()],
        ..Default::default()
    });
    assert!(install::load_balancer_controller(&out).is_none());
    out.platform
        .as_mut()
        .unwrap()
        .releases
        .push("kube-system/aws-load-balancer-controller aws-load-balancer-controller-1.13.0".into());
    let controller = install::load_balancer_controller(&out).expect("installed by the platform");
    // Its Deployment is followed in kube-system until both replicas serve.
    let (client, seen) = fake_api(|path, n| match path {
        "/apis/apps/v1/namespaces/kube-system/deployments" => {
            list("DeploymentList", vec![deployment("aws-load-balancer-controller", 2, if n >= 1 { 2 } else { 0 })])
        }
        "/apis/apps/v1/namespaces/kube-system/statefulsets" => list("StatefulSetList", vec![]),
        _ => list("List", vec![]),
    });
    install::wait_rollout(&client, &controller, &quick(), &CancellationToken::new(), &|_: &str| {}).await.unwrap();
    let seen = seen.lock().unwrap();
    assert_eq!(seen.iter().filter(|p| p.ends_with("kube-system/deployments")).count(), 2, "{seen:?}");
    assert!(seen.iter().all(|p| p.contains("/namespaces/kube-system/")), "{seen:?}");
}
