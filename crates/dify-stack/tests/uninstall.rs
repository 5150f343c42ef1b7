//! What survives an uninstall: a fake `helm` that does what `helm uninstall` does (deletes every
//! object of the release's manifest through the API server its kubeconfig names, whatever
//! `helm.sh/resource-policy` the live object carries), against a loopback fake Kubernetes API
//! that keeps the service accounts; then the six accounts must be there with their IRSA roles.
//! (One test in its own binary: a fake executable written while another test forks can be
//! inherited open for writing, and exec then fails with ETXTBSY.)

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use dify_stack::install::{self, DifyRelease};
use dify_stack_core::ids::RoleArn;
use dify_stack_iam::{IamOutput, RoleKind};
use secrecy::SecretString;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

type Accounts = Arc<Mutex<BTreeMap<String, Value>>>;

/// A loopback API server holding the ServiceAccounts of namespace `dify`: list, get, delete and
/// server-side apply (PATCH). Returns its port and the log of `METHOD name` requests.
async fn fake_api(accounts: Accounts) -> (u16, Arc<Mutex<Vec<String>>>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let log: Arc<Mutex<Vec<String>>> = Arc::default();
    let seen = log.clone();
    tokio::spawn(async move {
        loop {
            let Ok((mut socket, _)) = listener.accept().await else { break };
            let (accounts, seen) = (accounts.clone(), seen.clone());
            tokio::spawn(async move {
                let mut buffer = Vec::new();
                loop {
                    let end = loop {
                        if let Some(i) = buffer.windows(4).position(|w| w == b"\r\n\r\n") {
                            break i + 4;
                        }
                        let mut chunk = [0u8; 8192];
                        match socket.read(&mut chunk).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => buffer.extend_from_slice(&chunk[..n]),
                        }
                    };
                    let head = String::from_utf8_lossy(&buffer[..end]).to_string();
                    buffer.drain(..end);
                    let length = head
                        .lines()
                        .filter_map(|l| l.split_once(':'))
                        .find(|(k, _)| k.eq_ignore_ascii_case("content-length"))
                        .and_then(|(_, v)| v.trim().parse::<usize>().ok())
                        .unwrap_or(0);
                    while buffer.len() < length {
                        let mut chunk = [0u8; 8192];
                        match socket.read(&mut chunk).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => buffer.extend_from_slice(&chunk[..n]),
                        }
                    }
                    let body: Vec<u8> = buffer.drain(..length).collect();
                    let mut first = head.lines().next().unwrap_or_default().split(' ');
                    let method = first.next().unwrap_or_default().to_owned();
                    let target = first.next().unwrap_or_default().to_owned();
                    let path = target.split('?').next().unwrap_or_default().to_owned();
                    let name = path
                        .strip_prefix("/api/v1/namespaces/dify/serviceaccounts")
                        .unwrap_or("")
                        .trim_start_matches('/');
                    seen.lock().unwrap().push(format!("{method} {}", if name.is_empty() { "(list)" } else { name }));
                    let (status, reply) = {
                        let mut all = accounts.lock().unwrap();
                        match (method.as_str(), name) {
                            ("GET", "") => {
                                let items: Vec<Value> = all.values().cloned().collect();
                                (
                                    200,
                                    json!({"apiVersion": "v1", "kind": "ServiceAccountList", "metadata": {}, "items": items}),
                                )
                            }
                            ("GET", n) => match all.get(n) {
                                Some(sa) => (200, sa.clone()),
                                None => (
                                    404,
                                    json!({"kind": "Status", "apiVersion": "v1", "status": "Failure", "reason": "NotFound", "code": 404, "message": "not found"}),
                                ),
                            },
                            ("DELETE", n) => match all.remove(n) {
                                Some(_) => (200, json!({"kind": "Status", "apiVersion": "v1", "status": "Success"})),
                                None => (
                                    404,
                                    json!({"kind": "Status", "apiVersion": "v1", "status": "Failure", "reason": "NotFound", "code": 404, "message": "not found"}),
                                ),
                            },
                            ("PATCH", n) => {
                                let applied: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
                                all.insert(n.to_owned(), applied.clone());
                                (200, applied)
                            }
                            _ => (
                                404,
                                json!({"kind": "Status", "apiVersion": "v1", "code": 404, "message": "unknown path"}),
                            ),
                        }
                    };
                    let text = reply.to_string();
                    let answer = format!(
                        "HTTP/1.1 {status} X\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{text}",
                        text.len()
                    );
                    if socket.write_all(answer.as_bytes()).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    (port, log)
}

/// A fake `helm` (Python, as this machine's CI installs it for the emulator): `version` answers
/// Helm 3; `uninstall` deletes, through the kubeconfig's server, each object of the release's
/// manifest (`manifest.txt` beside it: what the chart rendered), as Helm does.
fn fake_helm(dir: &std::path::Path) -> PathBuf {
    std::fs::write(
        dir.join("manifest.txt"),
        "serviceaccount dify-plugin-connector-sa\nserviceaccount dify-enterprise\n",
    )
    .unwrap();
    let script = format!(
        r#"#!/usr/bin/env python3
import sys, urllib.request, urllib.error
args = sys.argv[1:]
if args[:1] == ["version"]:
    print("v3.16.2+g13654a5"); sys.exit(0)
kubeconfig = args[args.index("--kubeconfig") + 1]
server = [l.split("server:", 1)[1].strip().strip('"') for l in open(kubeconfig) if "server:" in l][0]
namespace = args[args.index("--namespace") + 1]
assert args[0] == "uninstall", args
for line in open("{dir}/manifest.txt"):
    kind, name = line.split()
    request = urllib.request.Request(f"{{server}}/api/v1/namespaces/{{namespace}}/{{kind}}s/{{name}}", method="DELETE")
    try:
        urllib.request.urlopen(request).read()
    except urllib.error.HTTPError as e:
        if e.code != 404: raise
print(f"release \"{{args[1]}}\" uninstalled")
"#,
        dir = dir.display()
    );
    let helm = dir.join("helm");
    std::fs::write(&helm, script).unwrap();
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::set_permissions(&helm, std::fs::Permissions::from_mode(0o755)).unwrap();
    helm
}

#[tokio::test]
async fn after_uninstall_the_six_service_accounts_exist_with_their_irsa_roles() {
    let dir = std::env::temp_dir().join(format!("dify-stack-uninstall-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let helm = fake_helm(&dir);

    // What apply made: the six accounts with their roles and Helm's adoption metadata.
    let iam = IamOutput {
        oidc_provider_arn: String::new(),
        service_accounts: BTreeMap::new(),
        addon_roles: BTreeMap::new(),
        namespace: "dify".into(),
        roles: RoleKind::ALL
            .iter()
            .map(|k| (*k, RoleArn::new(format!("arn:aws:iam::123456789012:role/DifyEE-Role-t-{k:?}"))))
            .collect(),
    };
    let mine = dify_stack::output::service_accounts(&iam, "dify");
    assert_eq!(mine.len(), 6);
    let accounts: Accounts = Arc::default();
    {
        let mut all = accounts.lock().unwrap();
        for a in &mine {
            all.insert(a.name.clone(), a.manifest());
        }
        // The chart's own account, which only the release owns.
        all.insert("dify-enterprise".into(), json!({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "dify-enterprise", "namespace": "dify"}}));
        // Every account apply made carries resource-policy keep: Helm does not read it there.
        assert!(all["dify-plugin-connector-sa"]["metadata"]["annotations"]["helm.sh/resource-policy"] == "keep");
    }
    let (port, log) = fake_api(accounts.clone()).await;
    let server = format!("http://127.0.0.1:{port}");
    let client = kube::Client::try_from(kube::Config::new(server.parse().unwrap())).unwrap();
    let release = DifyRelease { helm: Some(helm), ..DifyRelease::default() };
    let token = SecretString::from("k8s-aws-v1.token".to_owned());

    // Helm alone: the adopted account goes with the release (the defect).
    install::helm_uninstall(&release, &server, "Q0E=", &token).await.unwrap();
    assert!(!accounts.lock().unwrap().contains_key("dify-plugin-connector-sa"), "the fake deletes what Helm deletes");
    accounts.lock().unwrap().insert("dify-plugin-connector-sa".into(), mine[1].manifest());

    // The uninstall the stack runs: the same, then the accounts re-applied.
    let restored =
        install::uninstall_keeping_accounts(&release, &server, "Q0E=", &token, &client, &mine).await.unwrap();
    assert_eq!(restored, ["dify-plugin-connector-sa"]);
    let all = accounts.lock().unwrap();
    for a in &mine {
        let sa = all.get(&a.name).unwrap_or_else(|| panic!("{} is gone", a.name));
        assert_eq!(sa["metadata"]["annotations"]["eks.amazonaws.com/role-arn"], a.role_arn.as_str(), "{sa}");
        assert_eq!(sa["metadata"]["annotations"]["meta.helm.sh/release-name"], "dify", "{sa}");
    }
    assert!(!all.contains_key("dify-enterprise"), "the chart's own account goes with the release");
    let log = log.lock().unwrap();
    assert!(log.iter().filter(|l| *l == "DELETE dify-plugin-connector-sa").count() == 2, "{log:?}");
    assert!(log.iter().any(|l| l == "PATCH dify-plugin-connector-sa"), "{log:?}");
    let _ = std::fs::remove_dir_all(&dir);
}
