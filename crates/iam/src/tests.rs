//! The Kubernetes side of the IAM tier against a fake API server (kube's tower-test mock
//! service): the exact server-side apply requests, idempotent re-apply, destroy of our objects
//! only, and bounded retries while the API server is unreachable.

use std::pin::pin;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::k8s::{IrsaServiceAccount, KubeServiceAccounts, ServiceAccountApi};
use crate::policy::{self, RoleKind};
use crate::{IamProvisioner, IamSettings, IamSpec, MockIamApi, OidcInfo, RoleInfo};
use dify_stack_core::{Action, CancellationToken, Context, Environment, Provisioner, Tier, WaitPolicy};
use http::{Request, Response};
use kube::client::Body;
use serde_json::{Value, json};

#[derive(Debug, Clone)]
struct Seen {
    method: String,
    uri: String,
    content_type: String,
    body: Value,
}

type Log = Arc<Mutex<Vec<Seen>>>;
type Reply = Option<(u16, Value)>;

/// A fake API server: `respond` answers each request (`None` = connection error).
fn fake(respond: impl Fn(&Seen) -> Reply + Send + 'static) -> (kube::Client, Log) {
    let (service, handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
    let log: Log = Arc::default();
    let seen = log.clone();
    tokio::spawn(async move {
        let mut handle = pin!(handle);
        while let Some((request, send)) = handle.next_request().await {
            let method = request.method().to_string();
            let uri = request.uri().to_string();
            let content_type = request
                .headers()
                .get(http::header::CONTENT_TYPE)
                .map(|v| v.to_str().unwrap_or_default().to_owned())
                .unwrap_or_default();
            let bytes = request.into_body().collect_bytes().await.unwrap_or_default();
            let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
            let s = Seen { method, uri, content_type, body };
            let reply = respond(&s);
            seen.lock().unwrap().push(s);
            match reply {
                Some((code, body)) => send.send_response(
                    Response::builder().status(code).body(Body::from(serde_json::to_vec(&body).unwrap())).unwrap(),
                ),
                None => {
                    send.send_error(std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "connection refused"))
                }
            }
        }
    });
    (kube::Client::new(service, "default"), log)
}

fn not_found() -> Reply {
    Some((
        404,
        json!({"kind": "Status", "apiVersion": "v1", "status": "Failure", "reason": "NotFound", "code": 404, "message": "not found"}),
    ))
}

fn sa(name: &str, role: &str, ours: bool) -> Value {
    if ours {
        let sa = IrsaServiceAccount {
            namespace: "dify".into(),
            name: name.into(),
            role_arn: role.into(),
            helm_release: "dify".into(),
        };
        return sa.manifest();
    }
    json!({"apiVersion": "v1", "kind": "ServiceAccount",
           "metadata": {"name": name, "namespace": "dify", "labels": {},
                        "annotations": {"eks.amazonaws.com/role-arn": role}}})
}

fn list(items: Vec<Value>) -> Reply {
    Some((200, json!({"apiVersion": "v1", "kind": "List", "metadata": {}, "items": items})))
}

fn quick() -> WaitPolicy {
    WaitPolicy {
        initial_interval: Duration::from_millis(2),
        max_interval: Duration::from_millis(5),
        max_wait: Duration::from_millis(200),
        ..Default::default()
    }
}

#[tokio::test]
async fn service_accounts_are_server_side_applied_with_our_field_manager_and_annotation() {
    let (client, log) = fake(|s| Some((200, s.body.clone())));
    let api = KubeServiceAccounts::new(client);
    let account = IrsaServiceAccount {
        namespace: "dify".into(),
        name: "dify-api-sa".into(),
        role_arn: "arn:aws:iam::1:role/r".into(),
        helm_release: "dify".into(),
    };
    api.apply_service_account(account).await.unwrap();
    let seen = log.lock().unwrap().clone();
    assert_eq!(seen.len(), 1);
    let r = &seen[0];
    assert_eq!(r.method, "PATCH");
    assert!(r.uri.starts_with("/api/v1/namespaces/dify/serviceaccounts/dify-api-sa?"), "{}", r.uri);
    assert!(r.uri.contains("fieldManager=dify-stack"), "{}", r.uri);
    assert!(r.uri.contains("force=true"), "{}", r.uri);
    assert_eq!(r.content_type, "application/apply-patch+yaml");
    assert_eq!(r.body["metadata"]["annotations"]["eks.amazonaws.com/role-arn"], "arn:aws:iam::1:role/r");
    // Helm's adoption metadata, so `helm install` of the release adopts the account instead of
    // failing on "invalid ownership metadata", and keeps it (with its annotation) on uninstall.
    assert_eq!(r.body["metadata"]["labels"]["app.kubernetes.io/managed-by"], "Helm");
    assert_eq!(r.body["metadata"]["labels"]["dify-stack.io/owned"], "true");
    assert_eq!(r.body["metadata"]["annotations"]["meta.helm.sh/release-name"], "dify");
    assert_eq!(r.body["metadata"]["annotations"]["meta.helm.sh/release-namespace"], "dify");
    assert_eq!(r.body["metadata"]["annotations"]["helm.sh/resource-policy"], "keep");
    assert_eq!(r.body["kind"], "ServiceAccount");
}

#[tokio::test]
async fn the_namespace_is_created_only_when_missing() {
    let (client, log) = fake(|s| if s.method == "GET" { not_found() } else { Some((200, s.body.clone())) });
    KubeServiceAccounts::new(client).apply_namespace("dify".into()).await.unwrap();
    let seen = log.lock().unwrap().clone();
    assert_eq!(seen.iter().map(|s| s.method.as_str()).collect::<Vec<_>>(), ["GET", "PATCH"]);
    assert!(seen[1].uri.starts_with("/api/v1/namespaces/dify?"), "{}", seen[1].uri);
    assert_eq!(seen[1].body["metadata"]["labels"]["app.kubernetes.io/managed-by"], "dify-stack");

    // An existing namespace (maybe the user's) is left untouched.
    let (client, log) =
        fake(|_| Some((200, json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "dify"}}))));
    KubeServiceAccounts::new(client).apply_namespace("dify".into()).await.unwrap();
    assert_eq!(log.lock().unwrap().iter().map(|s| s.method.as_str()).collect::<Vec<_>>(), ["GET"]);
}

#[tokio::test]
async fn an_unreachable_api_server_is_retried_then_reported_clearly() {
    // Two refused connections, then the server answers: the call succeeds.
    let calls = Arc::new(Mutex::new(0));
    let c = calls.clone();
    let (client, _) = fake(move |_| {
        let mut n = c.lock().unwrap();
        *n += 1;
        if *n <= 2 { None } else { list(vec![]) }
    });
    let api = KubeServiceAccounts::new(client).with_retry(quick(), CancellationToken::new());
    assert!(api.list_managed("dify".into()).await.unwrap().is_empty());
    assert_eq!(*calls.lock().unwrap(), 3);

    // Never reachable: a bounded number of attempts, then an error that says so.
    let (client, log) = fake(|_| None);
    let api = KubeServiceAccounts::new(client).with_retry(quick(), CancellationToken::new());
    let err = api.list_managed("dify".into()).await.unwrap_err();
    assert!(err.unreachable, "{err}");
    assert!(err.to_string().contains("serviceaccounts in dify"), "{err}");
    let attempts = log.lock().unwrap().len();
    assert!((2..100).contains(&attempts), "{attempts} attempts");

    // An API error (403) is not retried.
    let (client, log) = fake(|_| {
        Some((
            403,
            json!({"kind": "Status", "apiVersion": "v1", "status": "Failure", "reason": "Forbidden", "code": 403, "message": "forbidden"}),
        ))
    });
    let api = KubeServiceAccounts::new(client).with_retry(quick(), CancellationToken::new());
    let err = api.list_managed("dify".into()).await.unwrap_err();
    assert_eq!((err.status, err.unreachable), (Some(403), false));
    assert_eq!(log.lock().unwrap().len(), 1);
}

const ISSUER: &str = "https://oidc.eks.us-west-2.amazonaws.com/id/ABC";
const PROVIDER: &str = "arn:aws:iam::123456789012:oidc-provider/oidc.eks.us-west-2.amazonaws.com/id/ABC";

fn ctx() -> Context {
    Context::new("k8s-unit", Environment::Test, "us-west-2").unwrap()
}

/// The settings are the user's part of the spec: flattened into its serialized form (which still
/// refuses unknown keys), read through by the spec, and validated at their own paths.
#[test]
fn the_settings_are_flattened_into_the_spec_and_keep_their_paths() {
    let mut s = spec();
    let v = serde_json::to_value(&s).unwrap();
    assert!(v.get("settings").is_none() && v["namespace"] == "dify" && v["cluster_name"] == "k8s-unit", "{v}");
    assert_eq!(serde_json::from_value::<IamSpec>(v.clone()).unwrap(), s);
    let mut extra = v;
    extra["namspace"] = json!("x");
    let err = serde_json::from_value::<IamSpec>(extra).unwrap_err().to_string();
    assert!(err.contains("namspace"), "{err}");
    s.namespace = "Dify_NS".into();
    s.thumbprints = vec!["abc".into()];
    assert_eq!(s.settings.namespace, "Dify_NS");
    assert_eq!(s.settings.validate().unwrap_err().paths(), ["namespace", "thumbprints[0]"]);
    assert_eq!(s.validate().unwrap_err().paths(), ["namespace", "thumbprints[0]"]);
    assert_eq!(IamSettings::default().namespace, "dify");
}

fn spec() -> IamSpec {
    IamSpec {
        cluster_name: "k8s-unit".into(),
        oidc_issuer_url: ISSUER.into(),
        bucket: "b".into(),
        bucket_kms_key_arn: None,
        plugin_repository_arn_pattern: "arn:aws:ecr:us-west-2:1:repository/k8s-unit-ee-plugin-repo*".into(),
        settings: IamSettings {
            namespace: "dify".into(),
            thumbprints: vec![],
            discover_thumbprint: false,
            service_accounts: true,
            helm_release: "dify".into(),
        },
        addon_roles: vec![],
    }
}

/// The role a name stands for, from the IRSA role names of STACK.md (written out here, not
/// derived with the production `role_name`): a mock asked for any other name panics, so a
/// provisioner that looks a role up under a wrong name fails the test.
fn role_kind(name: &str) -> RoleKind {
    match name {
        "DifyEE-Role-k8s-unit-s3" => RoleKind::S3,
        "DifyEE-Role-k8s-unit-s3-ecr" => RoleKind::S3Ecr,
        "DifyEE-Role-k8s-unit-ecr-image-pull" => RoleKind::EcrImagePull,
        other => panic!("no IRSA role of STACK.md is named {other:?}"),
    }
}

/// Whether `name` is one of the three IRSA roles of STACK.md (for mocks that answer "none").
fn is_irsa_role(name: &str) -> bool {
    ["DifyEE-Role-k8s-unit-s3", "DifyEE-Role-k8s-unit-s3-ecr", "DifyEE-Role-k8s-unit-ecr-image-pull"].contains(&name)
}

fn role_arn(kind: RoleKind) -> String {
    format!("arn:aws:iam::123456789012:role/{}", kind.role_name("k8s-unit"))
}

/// IAM already converged: provider and the three roles with the desired documents.
fn converged_iam() -> MockIamApi {
    iam_world(true)
}

/// The three roles with the desired documents, with or without the provider they trust.
fn iam_world(provider: bool) -> MockIamApi {
    let mut m = MockIamApi::new();
    m.expect_list_oidc_providers().returning(move || {
        if !provider {
            return Ok(vec![]);
        }
        Ok(vec![OidcInfo {
            arn: PROVIDER.into(),
            url: policy::issuer_host_path(ISSUER).into(),
            client_ids: vec!["sts.amazonaws.com".into()],
            tags: ctx().tags_for(Tier::Iam, "oidc-provider", "x"),
        }])
    });
    m.expect_get_role().returning(|name: String| {
        let name = name.as_str();
        let kind = role_kind(name);
        Ok(Some(RoleInfo {
            arn: role_arn(kind).into(),
            trust: policy::trust_policy(PROVIDER, ISSUER, "dify", kind).to_string(),
            tags: ctx().tags_for(Tier::Iam, kind.suffix(), name),
            name: name.to_owned(),
        }))
    });
    m.expect_get_role_policy().returning(|name, _| {
        let kind = role_kind(&name);
        Ok(Some(
            policy::permission_policy(
                dify_stack_core::Partition::Aws,
                "b",
                None,
                spec().plugin_repository_arn_pattern.as_str(),
                kind,
            )
            .to_string(),
        ))
    });
    m
}

fn all_ours(wrong: Option<&str>) -> Vec<Value> {
    RoleKind::ALL
        .into_iter()
        .flat_map(|k| k.service_accounts().into_iter().map(move |sa| (k, sa)))
        .map(|(k, name)| {
            let role = if Some(name) == wrong { "arn:aws:iam::1:role/old".to_owned() } else { role_arn(k) };
            sa(name, &role, true)
        })
        .collect()
}

#[tokio::test]
async fn apply_patches_only_service_accounts_that_drifted() {
    let (client, log) = fake(|s| match (s.method.as_str(), s.uri.as_str()) {
        ("GET", u) if u.starts_with("/api/v1/namespaces/dify/serviceaccounts") => {
            list(all_ours(Some("dify-plugin-runner-sa")))
        }
        ("GET", u) if u.starts_with("/apis/storage.k8s.io/v1/storageclasses/gp3") => {
            Some((200, dify_stack_iam_storage_class()))
        }
        ("GET", _) => Some((200, json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "dify"}}))),
        _ => Some((200, s.body.clone())),
    });
    let provisioner = IamProvisioner::new(converged_iam()).with_kubernetes(KubeServiceAccounts::new(client));
    let plan = provisioner.plan(&ctx(), &spec()).await.unwrap();
    assert_eq!(plan.summary().update, 1, "{plan}");
    let out = provisioner.apply(&ctx(), &spec()).await.unwrap();
    assert_eq!(out.service_accounts.len(), 6);
    let patches: Vec<Seen> = log.lock().unwrap().iter().filter(|s| s.method == "PATCH").cloned().collect();
    assert_eq!(patches.len(), 1, "only the drifted account is re-applied");
    assert!(patches[0].uri.contains("/serviceaccounts/dify-plugin-runner-sa?"));
    assert_eq!(
        patches[0].body["metadata"]["annotations"]["eks.amazonaws.com/role-arn"],
        role_arn(RoleKind::EcrImagePull)
    );
}

#[tokio::test]
async fn destroy_deletes_only_our_service_accounts_and_keeps_a_namespace_that_is_not_ours() {
    let (client, log) = fake(|s| match (s.method.as_str(), s.uri.as_str()) {
        // The label selector returns our accounts and one labelled account we do not know.
        ("GET", u) if u.contains("labelSelector") => {
            let mut items = all_ours(None);
            items.push(sa("someone-elses-sa", "arn:aws:iam::1:role/x", true));
            list(items)
        }
        ("GET", "/api/v1/namespaces/dify") => {
            Some((200, json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "dify"}})))
        }
        ("DELETE", _) => Some((200, json!({"kind": "Status", "apiVersion": "v1", "status": "Success", "code": 200}))),
        _ => list(vec![]),
    });
    let mut iam = MockIamApi::new();
    iam.expect_get_role().withf(|n| is_irsa_role(n)).returning(|_| Ok(None));
    iam.expect_list_oidc_providers().returning(|| Ok(vec![]));
    let provisioner = IamProvisioner::new(iam).with_kubernetes(KubeServiceAccounts::new(client));
    let deleted = provisioner.destroy(&ctx(), &spec()).await.unwrap();
    assert_eq!(deleted.len(), 6);
    let deletes: Vec<String> =
        log.lock().unwrap().iter().filter(|s| s.method == "DELETE").map(|s| s.uri.clone()).collect();
    assert_eq!(deletes.len(), 6, "{deletes:?}");
    assert!(deletes.iter().all(|u| u.starts_with("/api/v1/namespaces/dify/serviceaccounts/dify-")), "{deletes:?}");
    assert!(!deletes.iter().any(|u| u.contains("someone-elses-sa")));
}

#[tokio::test]
async fn role_only_mode_makes_no_kubernetes_call_and_needs_no_client() {
    let spec = IamSpec { settings: IamSettings { service_accounts: false, ..spec().settings }, ..spec() };
    let out = IamProvisioner::new(converged_iam()).apply(&ctx(), &spec).await.unwrap();
    assert!(out.service_accounts.is_empty());
    assert_eq!(out.roles.len(), 3);
    let err = IamProvisioner::new(converged_iam()).apply(&ctx(), &self::spec()).await.unwrap_err();
    assert!(err.to_string().contains("role-only"), "{err}");
}

#[tokio::test]
async fn a_client_is_built_from_the_eks_output_and_bad_ca_data_is_a_clear_error() {
    use base64::Engine as _;
    let key = rcgen::KeyPair::generate().unwrap();
    let ca = rcgen::CertificateParams::new(vec!["kubernetes".to_owned()]).unwrap().self_signed(&key).unwrap();
    let ca_data = base64::engine::general_purpose::STANDARD.encode(ca.pem());
    let token = secrecy::SecretString::from("k8s-aws-v1.token".to_owned());
    assert!(KubeServiceAccounts::from_cluster("https://127.0.0.1:6443", &ca_data, token.clone()).is_ok());
    let err = KubeServiceAccounts::from_cluster("https://127.0.0.1:6443", "not base64!", token.clone()).unwrap_err();
    assert!(err.message.contains("CA data"), "{err}");
    let empty = base64::engine::general_purpose::STANDARD.encode("no pem here");
    let err = KubeServiceAccounts::from_cluster("https://127.0.0.1:6443", &empty, token).unwrap_err();
    assert!(err.message.contains("no certificate"), "{err}");
}

#[tokio::test]
async fn destroy_deletes_the_roles_when_the_kubernetes_api_cannot_be_reached() {
    // A private-only endpoint seen from outside the VPC: every Kubernetes call fails to connect.
    // The old destroy returned that error before the roles, so nothing behind IAM was deleted.
    let (client, log) = fake(|_| None);
    let mut iam = MockIamApi::new();
    iam.expect_get_role().returning(|name: String| {
        let kind = role_kind(&name);
        Ok(Some(RoleInfo {
            arn: role_arn(kind).into(),
            trust: String::new(),
            tags: ctx().tags_for(Tier::Iam, kind.suffix(), &name),
            name,
        }))
    });
    iam.expect_list_role_policies().returning(|_| Ok(vec![]));
    iam.expect_list_attached_policies().returning(|_| Ok(vec![]));
    iam.expect_delete_role().times(3).returning(|_| Ok(()));
    iam.expect_list_oidc_providers().returning(|| Ok(vec![]));
    let kube = KubeServiceAccounts::new(client).with_retry(quick(), CancellationToken::new());
    let deleted = IamProvisioner::new(iam).with_kubernetes(kube).destroy(&ctx(), &spec()).await.unwrap();
    assert_eq!(deleted.iter().filter(|r| r.kind == "iam:role").count(), 3, "{deleted:?}");
    assert!(!log.lock().unwrap().is_empty(), "the API was tried");
}

/// Our StorageClass as the API server returns it.
fn dify_stack_iam_storage_class() -> Value {
    crate::k8s::storage_class_manifest()
}

#[tokio::test]
async fn a_missing_default_storage_class_is_planned_and_applied_encrypted_gp3() {
    // A fresh EKS 1.30+ cluster has no default class: PVCs without one stay Pending.
    let (client, log) = fake(|s| match (s.method.as_str(), s.uri.as_str()) {
        ("GET", u) if u.starts_with("/apis/storage.k8s.io/") => not_found(),
        ("GET", u) if u.starts_with("/api/v1/namespaces/dify/serviceaccounts") => list(all_ours(None)),
        ("GET", _) => Some((200, json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "dify"}}))),
        _ => Some((200, s.body.clone())),
    });
    let provisioner = IamProvisioner::new(converged_iam()).with_kubernetes(KubeServiceAccounts::new(client));
    let plan = provisioner.plan(&ctx(), &spec()).await.unwrap();
    let creates: Vec<String> = plan.with_action(Action::Create).map(|c| c.resource.to_string()).collect();
    assert_eq!(plan.changes.len(), 1, "{plan}");
    assert!(creates[0].contains("k8s:storageclass") && creates[0].contains("gp3"), "{creates:?}");
    provisioner.apply(&ctx(), &spec()).await.unwrap();
    let patches: Vec<Seen> = log.lock().unwrap().iter().filter(|s| s.method == "PATCH").cloned().collect();
    assert_eq!(patches.len(), 1, "only the StorageClass is applied");
    let sc = &patches[0];
    assert!(sc.uri.starts_with("/apis/storage.k8s.io/v1/storageclasses/gp3?"), "{}", sc.uri);
    assert!(sc.uri.contains("fieldManager=dify-stack"), "{}", sc.uri);
    assert_eq!(sc.body["provisioner"], "ebs.csi.aws.com");
    assert_eq!(sc.body["parameters"], json!({"type": "gp3", "encrypted": "true"}));
    assert_eq!(sc.body["metadata"]["annotations"]["storageclass.kubernetes.io/is-default-class"], "true");
}

/// Roles that exist while their provider is gone (deleted by hand): the plan shows the provider
/// to create and each role's trust to rewrite once the provider's ARN is known; apply makes
/// exactly those writes, each trust naming the ARN the create returned.
#[tokio::test]
async fn roles_without_their_provider_get_the_created_providers_arn_in_their_trust() {
    let role_only = IamSpec { settings: IamSettings { service_accounts: false, ..spec().settings }, ..spec() };
    let plan = IamProvisioner::new(iam_world(false)).plan(&ctx(), &role_only).await.unwrap();
    let shown: Vec<String> =
        plan.changes.iter().map(|c| format!("{} {}", c.action.symbol(), c.resource.kind)).collect();
    assert_eq!(shown, ["+ iam:oidc-provider", "~ iam:role", "~ iam:role", "~ iam:role"]);
    for c in &plan.changes[1..] {
        let fields: Vec<(&str, Option<&str>)> =
            c.fields.iter().map(|f| (f.path.as_str(), f.after.as_deref())).collect();
        assert_eq!(fields, [("trust", Some("(known after apply)"))]);
    }
    let created = "arn:aws:iam::123456789012:oidc-provider/created-by-this-run";
    let writes = Arc::new(Mutex::new(Vec::new()));
    let mut m = iam_world(false);
    m.expect_create_oidc_provider().times(1).returning(move |c| {
        assert_eq!(c.client_ids, ["sts.amazonaws.com"]);
        Ok(created.into())
    });
    let w = writes.clone();
    m.expect_update_trust().returning(move |name, trust| {
        let trust: Value = serde_json::from_str(&trust).unwrap();
        w.lock().unwrap().push((name, trust["Statement"][0]["Principal"]["Federated"].as_str().unwrap().to_owned()));
        Ok(())
    });
    let out = IamProvisioner::new(m).apply(&ctx(), &role_only).await.unwrap();
    assert_eq!(out.oidc_provider_arn, created);
    let mut writes = writes.lock().unwrap().clone();
    writes.sort();
    let want: Vec<(String, String)> =
        ["DifyEE-Role-k8s-unit-ecr-image-pull", "DifyEE-Role-k8s-unit-s3", "DifyEE-Role-k8s-unit-s3-ecr"]
            .map(|r| (r.to_owned(), created.to_owned()))
            .into();
    assert_eq!(writes, want, "each role's trust is rewritten once, naming the created provider");
}

/// Destroy after the cluster is gone (its issuer unknown): the stack's provider is found by its
/// ownership tags and deleted; another stack's provider is left alone.
#[tokio::test]
async fn destroy_finds_the_provider_by_tag_when_the_cluster_is_gone() {
    let gone = IamSpec {
        oidc_issuer_url: "https://cluster-gone.invalid/id/none".into(),
        settings: IamSettings { service_accounts: false, ..spec().settings },
        ..spec()
    };
    let mut iam = MockIamApi::new();
    iam.expect_list_oidc_providers().returning(|| {
        Ok(vec![
            OidcInfo {
                arn: PROVIDER.into(),
                url: policy::issuer_host_path(ISSUER).into(),
                client_ids: vec!["sts.amazonaws.com".into()],
                tags: ctx().tags_for(Tier::Iam, "oidc-provider", "x"),
            },
            OidcInfo {
                arn: "arn:aws:iam::123456789012:oidc-provider/other".into(),
                url: "other".into(),
                client_ids: vec!["sts.amazonaws.com".into()],
                tags: Context::new("someone-else", Environment::Test, "us-west-2").unwrap().tags_for(
                    Tier::Iam,
                    "oidc-provider",
                    "other",
                ),
            },
        ])
    });
    iam.expect_get_role().withf(|n| is_irsa_role(n)).returning(|_| Ok(None));
    iam.expect_delete_oidc_provider().withf(|arn| arn.as_str() == PROVIDER).times(1).returning(|_| Ok(()));
    let deleted = IamProvisioner::new(iam).destroy(&ctx(), &gone).await.unwrap();
    assert_eq!(deleted.iter().map(|r| r.kind.as_str()).collect::<Vec<_>>(), ["iam:oidc-provider"]);
}

/// The stack's volume tags as the stack passes them (`dify_stack_eks::workloads::volume_tags`),
/// with a user tag whose value would otherwise be a template and a key the driver cannot split.
fn volume_tags() -> dify_stack_core::Tags {
    [
        (dify_stack_core::TAG_STACK, "k8s-unit"),
        (dify_stack_core::TAG_TIER, "eks"),
        (dify_stack_core::TAG_COMPONENT, "ebs-volume"),
        ("cost-center", "{{ .PVCName }}"),
        ("a=b", "c"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect()
}

#[tokio::test]
async fn the_default_storage_class_tags_every_volume_with_the_stacks_tags() {
    // aws-ebs-csi-driver docs/tagging.md, "StorageClass Tagging": `tagSpecification_<n>` =
    // "key=value", each value a Go template.
    let want = json!({
        "type": "gp3",
        "encrypted": "true",
        "tagSpecification_1": "cost-center={{\"{{\"}} .PVCName }}",
        "tagSpecification_2": "dify-stack:component=ebs-volume",
        "tagSpecification_3": "dify-stack:stack=k8s-unit",
        "tagSpecification_4": "dify-stack:tier=eks",
    });
    assert_eq!(json!(crate::k8s::storage_class_parameters(&volume_tags())), want);
    assert_eq!(crate::k8s::storage_class_manifest_tagged(&volume_tags())["parameters"], want);
    assert_eq!(crate::k8s::storage_class_manifest()["parameters"], json!({"type": "gp3", "encrypted": "true"}));

    let (client, log) = fake(|s| match (s.method.as_str(), s.uri.as_str()) {
        ("GET", u) if u.starts_with("/apis/storage.k8s.io/") => not_found(),
        ("GET", u) if u.starts_with("/api/v1/namespaces/dify/serviceaccounts") => list(all_ours(None)),
        ("GET", _) => Some((200, json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "dify"}}))),
        _ => Some((200, s.body.clone())),
    });
    let kube = KubeServiceAccounts::new(client).with_volume_tags(volume_tags());
    let provisioner = IamProvisioner::new(converged_iam()).with_kubernetes(kube);
    provisioner.apply(&ctx(), &spec()).await.unwrap();
    let patches: Vec<Seen> = log.lock().unwrap().iter().filter(|s| s.method == "PATCH").cloned().collect();
    assert_eq!(patches.len(), 1, "{patches:?}");
    assert_eq!(patches[0].body["parameters"], want);
}

#[tokio::test]
async fn our_older_storage_class_without_volume_tags_is_replaced_and_a_foreign_one_is_left() {
    // Ours from an earlier version: parameters without tags. They cannot change in place
    // ("updates to parameters are forbidden"), so plan shows the class and apply deletes it and
    // applies the tagged one.
    let gone = Arc::new(Mutex::new(false));
    let g = gone.clone();
    let (client, log) = fake(move |s| match (s.method.as_str(), s.uri.as_str()) {
        ("GET", u) if u.starts_with("/apis/storage.k8s.io/v1/storageclasses/gp3") => {
            if *g.lock().unwrap() {
                not_found()
            } else {
                Some((200, crate::k8s::storage_class_manifest()))
            }
        }
        ("DELETE", u) if u.starts_with("/apis/storage.k8s.io/v1/storageclasses/gp3") => {
            *g.lock().unwrap() = true;
            Some((200, json!({"kind": "Status", "apiVersion": "v1", "status": "Success", "code": 200})))
        }
        ("GET", u) if u.starts_with("/api/v1/namespaces/dify/serviceaccounts") => list(all_ours(None)),
        ("GET", _) => Some((200, json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "dify"}}))),
        _ => Some((200, s.body.clone())),
    });
    let kube = KubeServiceAccounts::new(client).with_volume_tags(volume_tags());
    let provisioner = IamProvisioner::new(converged_iam()).with_kubernetes(kube);
    let plan = provisioner.plan(&ctx(), &spec()).await.unwrap();
    assert!(plan.changes.iter().any(|c| c.resource.kind == "k8s:storageclass"), "{plan}");
    provisioner.apply(&ctx(), &spec()).await.unwrap();
    let writes: Vec<String> = log
        .lock()
        .unwrap()
        .iter()
        .filter(|s| s.method != "GET")
        .map(|s| format!("{} {}", s.method, s.uri.split('?').next().unwrap_or_default()))
        .collect();
    assert_eq!(
        writes,
        ["DELETE /apis/storage.k8s.io/v1/storageclasses/gp3", "PATCH /apis/storage.k8s.io/v1/storageclasses/gp3"]
    );

    // Someone else's class named gp3 (not our label) is never deleted.
    let mut foreign = crate::k8s::storage_class_manifest();
    foreign["metadata"]["labels"] = json!({});
    let (client, log) = fake(move |s| match (s.method.as_str(), s.uri.as_str()) {
        ("GET", u) if u.starts_with("/apis/storage.k8s.io/v1/storageclasses/gp3") => Some((200, foreign.clone())),
        _ => Some((200, s.body.clone())),
    });
    let kube = KubeServiceAccounts::new(client).with_volume_tags(volume_tags());
    assert!(!kube.default_storage_class_present().await.unwrap());
    kube.apply_default_storage_class().await.unwrap();
    assert!(!log.lock().unwrap().iter().any(|s| s.method == "DELETE"));
}

/// The tier over its own in-memory fake (`testing::FakeIam`, the one the simulated-time
/// benchmark runs the stack on): apply from empty makes the OIDC provider, the IRSA roles and
/// the service accounts annotated with them; a second plan is empty and a second apply leaves
/// the service accounts as they were.
#[tokio::test(start_paused = true)]
async fn over_its_fake_apply_makes_the_provider_roles_and_service_accounts_and_a_second_plan_is_empty() {
    let sim = std::sync::Arc::new(dify_stack_core::sim::Sim::instant());
    let fake = crate::testing::FakeIam::new(sim.clone());
    let iam = IamProvisioner::new(fake.clone()).with_kubernetes(fake.clone());
    let (ctx, spec) = (ctx(), spec());
    let out = iam.apply(&ctx, &spec).await.unwrap();
    assert!(out.oidc_provider_arn.contains("oidc-provider/"), "{}", out.oidc_provider_arn);
    assert!(!out.roles.is_empty() && !out.service_accounts.is_empty(), "{out:?}");
    assert_eq!(out.namespace, "dify");
    // Each service account is annotated with a role the apply made.
    for (account, role) in &out.service_accounts {
        assert!(out.roles.values().any(|r| r == role), "{account} -> {role} not among {:?}", out.roles);
    }
    let plan = iam.plan(&ctx, &spec).await.unwrap();
    assert!(plan.is_empty(), "{plan}");
    let again = iam.apply(&ctx, &spec).await.unwrap();
    assert_eq!(again.service_accounts, out.service_accounts);
    assert_eq!(again.roles, out.roles);
}
