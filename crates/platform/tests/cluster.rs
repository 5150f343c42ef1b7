//! The platform releases and the IngressClass through the real `HelmCli` and kube-rs, against a
//! fake `helm` executable that keeps its releases in a directory and records what it was given,
//! and an in-process fake Kubernetes API.

use std::path::{Path, PathBuf};
use std::pin::pin;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use dify_stack_core::ids::ClusterName;
use dify_stack_core::{AwsError, Context, Environment, Provisioner, Tags};
use dify_stack_platform::client::{AddonApi, AddonState};
use dify_stack_platform::kube::KubeIngressClasses;
use dify_stack_platform::spec::{CLUSTER_AUTOSCALER, LOAD_BALANCER_CONTROLLER};
use dify_stack_platform::{Chart, HelmCli, PlatformProvisioner, PlatformSpec};
use http::{Request, Response};
use kube::client::Body;
use serde_json::{Value, json};

const TOKEN: &str = "k8s-aws-v1.platform-secret-token";

/// A `helm` that answers `version`, keeps each installed release as a file in `dir/releases`
/// (`list` prints them as `helm list -o json` does, `get values` prints the values it was
/// given, `show crds` prints `dir/crds.yaml`), and logs each call's arguments (one per line, calls separated by `--`) and the mode
/// and content of the values file.
fn fake_helm(dir: &Path) -> PathBuf {
    for d in ["releases", "log"] {
        std::fs::create_dir_all(dir.join(d)).unwrap();
    }
    let script = format!(
        r#"#!/bin/sh
R="{dir}/releases"; L="{dir}/log"
case "$1" in
  version) echo "v3.16.2+g13654a5"; exit 0;;
esac
printf '%s\n' "$@" >> "$L/args"; echo "--" >> "$L/args"
env >> "$L/env"
case "$1" in
  list)
    printf '['; sep=""
    for f in "$R"/*; do [ -e "$f" ] || continue; printf '%s{{"name":"%s","chart":"%s","status":"deployed"}}' "$sep" "$(basename "$f")" "$(cat "$f")"; sep=","; done
    printf ']\n';;
  upgrade)
    release="$3"; chart="$4"; version=""
    while [ $# -gt 0 ]; do
      case "$1" in
        --version) version="$2";;
        --values) stat -c %a "$2" > "$L/$release.values.mode"; cp "$2" "$L/$release.values.yaml";;
      esac
      shift
    done
    echo "$chart-$version" > "$R/$release";;
  uninstall) rm -f "$R/$2";;
  get) cat "$L/$3.values.yaml" 2>/dev/null || echo null;;
  show) cat "{dir}/crds.yaml";;
esac
exit 0
"#,
        dir = dir.display()
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

type Seen = Arc<Mutex<Vec<(String, String, Value)>>>;
/// Each CRD applied, with the number of helm calls made before it.
type CrdsSeen = Arc<Mutex<Vec<(String, usize)>>>;

/// A fake API server holding at most one IngressClass (`alb`): GET, server-side apply PATCH,
/// DELETE; and taking CRDs by server-side apply PATCH (answered with the object sent), noting
/// how many calls the fake `helm` of `dir` had had by then.
fn fake_api(dir: PathBuf) -> (kube::Client, Seen, CrdsSeen) {
    let (service, handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
    let seen: Seen = Arc::default();
    let crds: CrdsSeen = Arc::default();
    let (log, crd_log) = (seen.clone(), crds.clone());
    tokio::spawn(async move {
        let mut handle = pin!(handle);
        let mut stored: Option<Value> = None;
        while let Some((request, send)) = handle.next_request().await {
            let (method, uri) = (request.method().to_string(), request.uri().to_string());
            let bytes = request.into_body().collect_bytes().await.unwrap_or_default();
            let body: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
            log.lock().unwrap().push((method.clone(), uri.clone(), body.clone()));
            if let Some(rest) = uri.strip_prefix("/apis/apiextensions.k8s.io/v1/customresourcedefinitions/") {
                assert_eq!(method, "PATCH", "{uri}");
                let name = rest.split('?').next().unwrap_or_default().to_owned();
                crd_log.lock().unwrap().push((name, calls(&dir).len()));
                send.send_response(Response::builder().status(200).body(Body::from(bytes.to_vec())).unwrap());
                continue;
            }
            assert!(uri.starts_with("/apis/networking.k8s.io/v1/ingressclasses/alb"), "{uri}");
            let not_found =
                json!({"kind": "Status", "apiVersion": "v1", "status": "Failure", "reason": "NotFound", "code": 404});
            let (code, reply) = match (method.as_str(), &stored) {
                ("GET", Some(o)) => (200, o.clone()),
                ("GET", None) | ("DELETE", None) => (404, not_found),
                ("PATCH", _) => {
                    stored = Some(body.clone());
                    (200, body)
                }
                ("DELETE", Some(_)) => {
                    stored = None;
                    (200, json!({"kind": "Status", "apiVersion": "v1", "status": "Success"}))
                }
                _ => (405, Value::Null),
            };
            send.send_response(
                Response::builder().status(code).body(Body::from(serde_json::to_vec(&reply).unwrap())).unwrap(),
            );
        }
    });
    (kube::Client::new(service, "default"), seen, crds)
}

/// No metrics-server in this test: the EKS add-on API is never called.
struct NoAws;

#[async_trait]
impl AddonApi for NoAws {
    async fn offered_version(&self, _: String, _: String) -> Result<Option<String>, AwsError> {
        unreachable!("no metrics-server")
    }
    async fn addon(&self, _: ClusterName, _: String) -> Result<Option<AddonState>, AwsError> {
        unreachable!("no metrics-server")
    }
    async fn create_addon(&self, _: ClusterName, _: String, _: String, _: Tags) -> Result<(), AwsError> {
        unreachable!("no metrics-server")
    }
    async fn delete_addon(&self, _: ClusterName, _: String) -> Result<(), AwsError> {
        unreachable!("no metrics-server")
    }
}

/// Two CRDs as `helm show crds` prints them (the chart's crds.yaml: IngressClassParams and
/// TargetGroupBinding, cut down).
const CRDS: &str = "---
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: ingressclassparams.elbv2.k8s.aws
spec:
  group: elbv2.k8s.aws
  names: {kind: IngressClassParams, listKind: IngressClassParamsList, plural: ingressclassparams, singular: ingressclassparams}
  scope: Cluster
  versions: []
---
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: targetgroupbindings.elbv2.k8s.aws
spec:
  group: elbv2.k8s.aws
  names: {kind: TargetGroupBinding, listKind: TargetGroupBindingList, plural: targetgroupbindings, singular: targetgroupbinding}
  scope: Namespaced
  versions: []
";

fn calls(dir: &Path) -> Vec<Vec<String>> {
    let text = std::fs::read_to_string(dir.join("log/args")).unwrap_or_default();
    text.split("--\n").filter(|c| !c.is_empty()).map(|c| c.lines().map(str::to_owned).collect()).collect()
}

#[tokio::test]
async fn releases_go_through_helm_with_private_values_the_ingress_class_and_crds_are_server_side_applied() {
    let dir = std::env::temp_dir().join(format!("dify-stack-platform-helm-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let helm_path = fake_helm(&dir);
    let kubeconfig = dify_stack_platform::helm::token_kubeconfig(
        "https://ABC.gr7.us-west-2.eks.amazonaws.com",
        "Q0E=",
        &secrecy::SecretString::from(TOKEN.to_owned()),
    );
    let helm = HelmCli::new(Some(&helm_path), &kubeconfig).await.unwrap();
    let (client, seen, crds) = fake_api(dir.clone());
    let p = PlatformProvisioner::new(NoAws).with_kubernetes(helm, KubeIngressClasses::new(client));
    let ctx = Context::new("plat-h", Environment::Test, "us-west-2").unwrap();
    let lbc_role = "arn:aws:iam::123456789012:role/plat-h-aws-load-balancer-controller";
    let spec = PlatformSpec {
        cluster_name: "plat-h".into(),
        kubernetes_version: "1.33".parse().unwrap(),
        vpc_id: "vpc-0abc".into(),
        kubernetes: true,
        load_balancer_controller: Some(Chart::load_balancer_controller()),
        cluster_autoscaler: Some(Chart {
            image_repository: Some("123456789012.dkr.ecr.cn-north-1.amazonaws.com.cn/mirror/cluster-autoscaler".into()),
            ..Chart::cluster_autoscaler()
        }),
        metrics_server: None,
        roles: [
            (LOAD_BALANCER_CONTROLLER.to_owned(), lbc_role.to_owned()),
            (CLUSTER_AUTOSCALER.to_owned(), "arn:aws:iam::123456789012:role/plat-h-cluster-autoscaler".to_owned()),
        ]
        .into(),
    };

    let plan = p.plan(&ctx, &spec).await.unwrap();
    assert_eq!(plan.changes.len(), 3, "{plan}");
    let out = p.apply(&ctx, &spec).await.unwrap();
    // The controller after the autoscaler: its webhooks refuse new Services until it serves.
    assert_eq!(
        out.releases,
        [
            "kube-system/cluster-autoscaler cluster-autoscaler-9.46.6",
            "kube-system/aws-load-balancer-controller aws-load-balancer-controller-1.13.0"
        ]
    );
    let upgrades: Vec<Vec<String>> = calls(&dir).into_iter().filter(|c| c[0] == "upgrade").collect();
    assert_eq!(upgrades.len(), 2);
    assert_eq!(upgrades[0][2], "cluster-autoscaler");
    assert_eq!(
        upgrades[1][..10],
        [
            "upgrade",
            "--install",
            "aws-load-balancer-controller",
            "aws-load-balancer-controller",
            "--repo",
            "https://aws.github.io/eks-charts",
            "--version",
            "1.13.0",
            "--namespace",
            "kube-system"
        ]
    );
    assert_eq!(
        (upgrades[1][10].as_str(), upgrades[1][12].as_str(), upgrades[1][14].as_str()),
        ("--values", "--kubeconfig", "--create-namespace")
    );
    for call in calls(&dir) {
        assert!(call.iter().all(|a| !a.contains("secret-token")), "a secret on the command line: {call:?}");
    }
    let env = std::fs::read_to_string(dir.join("log/env")).unwrap();
    assert!(!env.contains("secret-token"), "no secret in helm's environment");
    let log = |f: &str| std::fs::read_to_string(dir.join("log").join(f)).unwrap();
    assert_eq!(log("aws-load-balancer-controller.values.mode").trim(), "600");
    let values: Value = serde_norway::from_str(&log("aws-load-balancer-controller.values.yaml")).unwrap();
    assert_eq!(values["serviceAccount"]["annotations"]["eks.amazonaws.com/role-arn"], lbc_role);
    assert_eq!(values["vpcId"], "vpc-0abc");
    let values: Value = serde_norway::from_str(&log("cluster-autoscaler.values.yaml")).unwrap();
    assert_eq!(
        values["image"]["repository"],
        "123456789012.dkr.ecr.cn-north-1.amazonaws.com.cn/mirror/cluster-autoscaler"
    );
    assert_eq!(values["image"]["tag"], "v1.33.6", "the image of the cluster's minor");
    // The IngressClass: server-side apply with our field manager, our label, the ALB controller.
    let patches: Vec<(String, String, Value)> =
        seen.lock().unwrap().iter().filter(|(m, _, _)| m == "PATCH").cloned().collect();
    assert_eq!(patches.len(), 1);
    assert!(patches[0].1.contains("fieldManager=dify-stack"), "{}", patches[0].1);
    assert_eq!(patches[0].2["spec"]["controller"], "ingress.k8s.aws/alb");
    assert_eq!(patches[0].2["metadata"]["labels"]["app.kubernetes.io/managed-by"], "dify-stack");

    // No drift: a second plan is empty and a second apply installs and patches nothing.
    assert!(p.plan(&ctx, &spec).await.unwrap().is_empty(), "{}", p.plan(&ctx, &spec).await.unwrap());
    let before = (calls(&dir).len(), seen.lock().unwrap().len());
    p.apply(&ctx, &spec).await.unwrap();
    let after: Vec<Vec<String>> = calls(&dir)[before.0..].to_vec();
    assert!(after.iter().all(|c| c[0] == "list" || c[..2] == ["get", "values"]), "{after:?}");
    assert!(seen.lock().unwrap()[before.1..].iter().all(|(m, _, _)| m == "GET"));
    assert!(crds.lock().unwrap().is_empty(), "a first install: Helm installs the chart's crds/ itself");

    // A new controller chart: `helm show crds` of it, each CRD server-side applied (field
    // manager dify-stack, forced) before `helm upgrade`.
    std::fs::write(dir.join("crds.yaml"), CRDS).unwrap();
    let mut upgraded = spec.clone();
    upgraded.load_balancer_controller.as_mut().unwrap().version = "1.14.0".into();
    let before = (calls(&dir).len(), seen.lock().unwrap().len());
    p.apply(&ctx, &upgraded).await.unwrap();
    let after: Vec<Vec<String>> = calls(&dir)[before.0..].to_vec();
    let show = after.iter().position(|c| c[..2] == ["show", "crds"]).expect("helm show crds");
    assert_eq!(
        after[show],
        [
            "show",
            "crds",
            "aws-load-balancer-controller",
            "--repo",
            "https://aws.github.io/eks-charts",
            "--version",
            "1.14.0"
        ]
    );
    let upgrade = after.iter().position(|c| c[0] == "upgrade").expect("helm upgrade");
    assert!(show < upgrade);
    let applied = crds.lock().unwrap().clone();
    assert_eq!(
        applied,
        [
            ("ingressclassparams.elbv2.k8s.aws".to_owned(), before.0 + show + 1),
            ("targetgroupbindings.elbv2.k8s.aws".to_owned(), before.0 + show + 1)
        ],
        "both CRDs after helm show crds and before helm upgrade"
    );
    let patches: Vec<(String, String, Value)> = seen.lock().unwrap()[before.1..]
        .iter()
        .filter(|(m, u, _)| m == "PATCH" && u.contains("customresourcedefinitions"))
        .cloned()
        .collect();
    for (_, uri, body) in &patches {
        assert!(uri.contains("fieldManager=dify-stack") && uri.contains("force=true"), "{uri}");
        assert_eq!(body["kind"], "CustomResourceDefinition");
        assert_eq!(body["spec"]["group"], "elbv2.k8s.aws");
    }
    assert_eq!(patches.len(), 2);

    // Destroy: the autoscaler, then the controller, then our IngressClass.
    let deleted = p.destroy(&ctx, &spec).await.unwrap();
    let names: Vec<String> = deleted.iter().map(|r| r.to_string()).collect();
    assert_eq!(deleted.len(), 3, "{names:?}");
    let uninstalls: Vec<String> =
        calls(&dir).into_iter().filter(|c| c[0] == "uninstall").map(|c| c[1].clone()).collect();
    assert_eq!(uninstalls, [CLUSTER_AUTOSCALER, LOAD_BALANCER_CONTROLLER]);
    assert!(seen.lock().unwrap().iter().any(|(m, _, _)| m == "DELETE"));
    let _ = std::fs::remove_dir_all(&dir);
}
