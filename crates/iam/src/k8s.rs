//! The Kubernetes side of the IAM tier: the Dify namespace and the six service accounts,
//! annotated with their IRSA role ARNs and applied with server-side apply (field manager
//! `dify-stack`), so a later Helm install can adopt them without drift.

use std::time::Duration;

use std::collections::BTreeMap;

use async_trait::async_trait;
use dify_stack_core::wait;
use dify_stack_core::{CancellationToken, KubeFailure};
use dify_stack_core::{Tags, WaitPolicy};
use k8s_openapi::api::core::v1::{Namespace, Pod, ServiceAccount};
use k8s_openapi::api::storage::v1::StorageClass;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams};
use serde_json::json;

/// Field manager of every server-side apply.
pub const FIELD_MANAGER: &str = "dify-stack";
/// Label put on every object we create.
pub const MANAGED_BY: (&str, &str) = ("app.kubernetes.io/managed-by", "dify-stack");
/// Label that marks the service accounts we made (their `managed-by` label is Helm's, so the
/// chart can adopt them).
pub const OWNED_BY: (&str, &str) = ("dify-stack.io/owned", "true");
/// Helm's adoption metadata: `helm install` takes over an existing object only when it carries
/// the release's name and namespace annotations and `app.kubernetes.io/managed-by: Helm`, and
/// aborts with "invalid ownership metadata" otherwise (Helm docs, "Adopting resources"; helm
/// #7649). `helm.sh/resource-policy: keep` is carried for tools that read it from live
/// objects, but does not stop `helm uninstall` from deleting an account the release adopted:
/// Helm reads the policy from the manifest the chart rendered. The facade re-applies the
/// accounts after an uninstall (`dify_stack::install::restore_service_accounts`).
pub const HELM_RELEASE_NAME: &str = "meta.helm.sh/release-name";
/// See [`HELM_RELEASE_NAME`].
pub const HELM_RELEASE_NAMESPACE: &str = "meta.helm.sh/release-namespace";
/// See [`HELM_RELEASE_NAME`].
pub const HELM_KEEP: (&str, &str) = ("helm.sh/resource-policy", "keep");
/// The default StorageClass the stack makes: gp3, encrypted, provisioned by the EBS CSI driver.
/// EKS clusters from 1.30 on mark no StorageClass as default (EKS user guide, "Amazon EBS CSI
/// driver" / Kubernetes 1.30 release notes), so a PersistentVolumeClaim without a class would stay
/// Pending; the in-tree `gp2` class is unencrypted.
pub const STORAGE_CLASS: &str = "gp3";

/// The parameter key prefix the EBS CSI driver reads as a tag of every volume it provisions:
/// `tagSpecification_<n>: "key=value"` (aws-ebs-csi-driver `docs/tagging.md`, "StorageClass
/// Tagging"; `pkg/driver/constants.go` `TagKeyPrefix = "tagSpecification"`).
pub const TAG_SPECIFICATION_PREFIX: &str = "tagSpecification_";

/// The StorageClass's parameters: gp3, encrypted, and one `tagSpecification_<n>` per tag of
/// `volume_tags` (the stack's ownership tags, so destroy finds the volumes: see
/// `dify_stack_eks::workloads::volume_tags`), numbered in key order. The driver evaluates each
/// value as a Go `text/template` (the same document: `{{ .PVCName }}`...), so a literal `{{` is
/// written as `{{"{{"}}`; it splits the tag at the first `=`, so a key holding `=` cannot be
/// expressed and is left out.
pub fn storage_class_parameters(volume_tags: &Tags) -> BTreeMap<String, String> {
    let mut parameters =
        BTreeMap::from([("type".to_owned(), "gp3".to_owned()), ("encrypted".to_owned(), "true".to_owned())]);
    let literal = |s: &str| s.replace("{{", "{{\"{{\"}}");
    for (n, (key, value)) in volume_tags.iter().filter(|(k, _)| !k.contains('=')).enumerate() {
        parameters
            .insert(format!("{TAG_SPECIFICATION_PREFIX}{}", n + 1), format!("{}={}", literal(key), literal(value)));
    }
    parameters
}

/// The StorageClass object (server-side applied; also written as a manifest in role-only mode),
/// whose volumes carry `volume_tags` ([`storage_class_parameters`]).
pub fn storage_class_manifest_tagged(volume_tags: &Tags) -> serde_json::Value {
    json!({
        "apiVersion": "storage.k8s.io/v1",
        "kind": "StorageClass",
        "metadata": {
            "name": STORAGE_CLASS,
            "labels": {MANAGED_BY.0: MANAGED_BY.1},
            "annotations": {"storageclass.kubernetes.io/is-default-class": "true"},
        },
        "provisioner": "ebs.csi.aws.com",
        "parameters": storage_class_parameters(volume_tags),
        "volumeBindingMode": "WaitForFirstConsumer",
        "allowVolumeExpansion": true,
        "reclaimPolicy": "Delete",
    })
}

/// [`storage_class_manifest_tagged`] without volume tags: its volumes are not found by destroy.
/// Kept only until `dify_stack::output::kubernetes_manifests` passes the stack's tags.
pub fn storage_class_manifest() -> serde_json::Value {
    storage_class_manifest_tagged(&Tags::new())
}

/// A service account as we apply it: annotated with its IRSA role and carrying Helm's adoption
/// metadata for `helm_release` in `namespace`. Named fields, not four positional strings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IrsaServiceAccount {
    /// Its namespace (also the Helm release's namespace).
    pub namespace: String,
    /// Its name.
    pub name: String,
    /// The IRSA role it assumes.
    pub role_arn: String,
    /// The Helm release that adopts it.
    pub helm_release: String,
}

impl IrsaServiceAccount {
    /// Its manifest (server-side applied; also written out in role-only mode).
    pub fn manifest(&self) -> serde_json::Value {
        json!({
            "apiVersion": "v1",
            "kind": "ServiceAccount",
            "metadata": {
                "name": self.name,
                "namespace": self.namespace,
                "labels": {OWNED_BY.0: OWNED_BY.1, "app.kubernetes.io/managed-by": "Helm"},
                "annotations": {
                    ROLE_ARN_ANNOTATION: self.role_arn,
                    HELM_RELEASE_NAME: self.helm_release,
                    HELM_RELEASE_NAMESPACE: self.namespace,
                    HELM_KEEP.0: HELM_KEEP.1,
                }
            }
        })
    }
}

/// The IRSA annotation.
pub const ROLE_ARN_ANNOTATION: &str = "eks.amazonaws.com/role-arn";

/// A service account carrying our managed-by label.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ManagedServiceAccount {
    /// Its name.
    pub name: String,
    /// Its `eks.amazonaws.com/role-arn` annotation.
    pub role_arn: Option<String>,
    /// The Helm release it is ready to be adopted by (`meta.helm.sh/release-name`).
    pub helm_release: Option<String>,
}

/// What the IAM tier asks of the Kubernetes API.
#[cfg_attr(any(test, feature = "test-util"), mockall::automock)]
#[async_trait]
pub trait ServiceAccountApi: Send + Sync {
    /// Creates the namespace (labelled as ours) when it does not exist; an existing namespace is
    /// left untouched.
    async fn apply_namespace(&self, namespace: String) -> Result<(), KubeFailure>;
    /// Server-side applies a service account with the role annotation and our label.
    async fn apply_service_account(&self, account: IrsaServiceAccount) -> Result<(), KubeFailure>;
    /// Service accounts in the namespace that carry our label.
    async fn list_managed(&self, namespace: String) -> Result<Vec<ManagedServiceAccount>, KubeFailure>;
    /// Deletes a service account (absent is fine).
    async fn delete_service_account(&self, namespace: String, name: String) -> Result<(), KubeFailure>;
    /// Deletes the namespace if it carries our label and holds no pods and no service account
    /// besides `default`; returns whether it was deleted.
    async fn delete_namespace_if_ours_and_empty(&self, namespace: String) -> Result<bool, KubeFailure>;
    /// Whether [`STORAGE_CLASS`] exists, carrying our label, marked default and with the
    /// parameters we want (its volumes tagged for the stack).
    async fn default_storage_class_present(&self) -> Result<bool, KubeFailure>;
    /// Server-side applies [`storage_class_manifest_tagged`] (replacing our class when its
    /// parameters differ: they cannot change in place).
    async fn apply_default_storage_class(&self) -> Result<(), KubeFailure>;
}

/// [`ServiceAccountApi`] over a `kube::Client` (built from the EKS output and token).
#[derive(Clone)]
pub struct KubeServiceAccounts {
    client: kube::Client,
    retry: WaitPolicy,
    cancel: CancellationToken,
    volume_tags: Tags,
}

impl std::fmt::Debug for KubeServiceAccounts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KubeServiceAccounts")
            .field("retry", &self.retry)
            .field("volume_tags", &self.volume_tags)
            .finish()
    }
}

impl KubeServiceAccounts {
    /// Uses `client`; calls are retried for up to 5 minutes while the API server is not
    /// reachable yet (a fresh EKS endpoint takes a moment to resolve).
    pub fn new(client: kube::Client) -> Self {
        KubeServiceAccounts {
            client,
            retry: WaitPolicy::default().with_max_wait(Duration::from_secs(300)),
            cancel: CancellationToken::new(),
            volume_tags: Tags::new(),
        }
    }

    /// The tags every volume of the default StorageClass carries (the stack's ownership tags:
    /// `dify_stack_eks::workloads::volume_tags`), so destroy finds them. Without it the class
    /// tags nothing.
    pub fn with_volume_tags(mut self, volume_tags: Tags) -> Self {
        self.volume_tags = volume_tags;
        self
    }

    /// Builds the client from the EKS output: the API endpoint, the base64 PEM CA data of
    /// `DescribeCluster`, and a bearer token (EKS tokens live 15 minutes: build a new client for
    /// each run).
    pub fn from_cluster(
        endpoint: &str,
        ca_data_base64: &str,
        token: secrecy::SecretString,
    ) -> Result<Self, KubeFailure> {
        let fail = |message: String| KubeFailure {
            operation: "configure",
            object: format!("cluster {endpoint}"),
            message,
            status: None,
            unreachable: false,
        };
        let uri: http::Uri = endpoint.parse().map_err(|e: http::uri::InvalidUri| fail(e.to_string()))?;
        let certs = dify_stack_core::tls::ca_certificates(ca_data_base64).map_err(fail)?;
        let mut config = kube::Config::new(uri);
        config.root_cert = Some(certs);
        config.auth_info.token = Some(token);
        // A private-only endpoint seen from outside the VPC resolves to addresses that never
        // answer: fail each attempt in 10 s rather than kube's 30 s default, so the bounded
        // retry of the caller (2 min in the stack) holds.
        config.connect_timeout = Some(Duration::from_secs(10));
        let client = kube::Client::try_from(config).map_err(|e| fail(e.to_string()))?;
        Ok(Self::new(client))
    }

    /// Replaces the retry policy and cancellation token (e.g. the stack context's).
    pub fn with_retry(mut self, retry: WaitPolicy, cancel: CancellationToken) -> Self {
        self.retry = retry;
        self.cancel = cancel;
        self
    }

    async fn call<T, F, Fut>(&self, operation: &'static str, object: String, f: F) -> Result<T, KubeFailure>
    where
        F: Fn() -> Fut,
        Fut: std::future::Future<Output = Result<T, kube::Error>>,
    {
        let attempt = || async { f().await.map_err(|e| convert(operation, &object, e)) };
        wait::retry(
            &format!("{operation} {object}"),
            &self.retry,
            &self.cancel,
            |e: &KubeFailure| e.unreachable,
            attempt,
        )
        .await
        .map_err(|e| match e {
            wait::WaitError::Failed { source, .. } => source,
            other => KubeFailure {
                operation,
                object: object.clone(),
                message: other.to_string(),
                status: None,
                unreachable: true,
            },
        })
    }
}

fn convert(operation: &'static str, object: &str, e: kube::Error) -> KubeFailure {
    KubeFailure::from_kube(operation, object, &e)
}

fn not_found(e: &KubeFailure) -> bool {
    e.is_not_found()
}

#[async_trait]
impl ServiceAccountApi for KubeServiceAccounts {
    async fn apply_namespace(&self, namespace: String) -> Result<(), KubeFailure> {
        let api: Api<Namespace> = Api::all(self.client.clone());
        let object = format!("namespace {namespace}");
        if self.call("get", object.clone(), || api.get_opt(&namespace)).await?.is_some() {
            return Ok(());
        }
        let body = json!({
            "apiVersion": "v1",
            "kind": "Namespace",
            "metadata": {"name": namespace, "labels": {MANAGED_BY.0: MANAGED_BY.1}}
        });
        let params = PatchParams::apply(FIELD_MANAGER);
        let patch = Patch::Apply(&body);
        self.call("apply", object, || api.patch(&namespace, &params, &patch)).await?;
        Ok(())
    }

    async fn apply_service_account(&self, account: IrsaServiceAccount) -> Result<(), KubeFailure> {
        let IrsaServiceAccount { namespace, name, .. } = &account;
        let api: Api<ServiceAccount> = Api::namespaced(self.client.clone(), namespace);
        let body = account.manifest();
        let params = PatchParams::apply(FIELD_MANAGER).force();
        let object = format!("serviceaccount {namespace}/{name}");
        let patch = Patch::Apply(&body);
        self.call("apply", object, || api.patch(name, &params, &patch)).await?;
        Ok(())
    }

    async fn list_managed(&self, namespace: String) -> Result<Vec<ManagedServiceAccount>, KubeFailure> {
        let api: Api<ServiceAccount> = Api::namespaced(self.client.clone(), &namespace);
        let params = ListParams::default().labels(&format!("{}={}", OWNED_BY.0, OWNED_BY.1));
        let list = self.call("list", format!("serviceaccounts in {namespace}"), || api.list(&params)).await?;
        Ok(list
            .items
            .into_iter()
            .map(|sa| {
                let annotations = sa.metadata.annotations.unwrap_or_default();
                ManagedServiceAccount {
                    name: sa.metadata.name.unwrap_or_default(),
                    role_arn: annotations.get(ROLE_ARN_ANNOTATION).cloned(),
                    helm_release: annotations.get(HELM_RELEASE_NAME).cloned(),
                }
            })
            .collect())
    }

    async fn delete_service_account(&self, namespace: String, name: String) -> Result<(), KubeFailure> {
        let api: Api<ServiceAccount> = Api::namespaced(self.client.clone(), &namespace);
        let object = format!("serviceaccount {namespace}/{name}");
        let params = DeleteParams::default();
        match self.call("delete", object, || api.delete(&name, &params)).await {
            Ok(_) => Ok(()),
            Err(e) if not_found(&e) => Ok(()),
            Err(e) => Err(e),
        }
    }

    async fn delete_namespace_if_ours_and_empty(&self, namespace: String) -> Result<bool, KubeFailure> {
        let namespaces: Api<Namespace> = Api::all(self.client.clone());
        let object = format!("namespace {namespace}");
        let Some(ns) = self.call("get", object.clone(), || namespaces.get_opt(&namespace)).await? else {
            return Ok(false);
        };
        let ours = ns.metadata.labels.as_ref().and_then(|l| l.get(MANAGED_BY.0)).is_some_and(|v| v == MANAGED_BY.1);
        if !ours {
            return Ok(false);
        }
        let sas: Api<ServiceAccount> = Api::namespaced(self.client.clone(), &namespace);
        let all = ListParams::default();
        let others = self.call("list", format!("serviceaccounts in {namespace}"), || sas.list(&all)).await?;
        if others.items.iter().any(|sa| sa.metadata.name.as_deref() != Some("default")) {
            return Ok(false);
        }
        let pods: Api<Pod> = Api::namespaced(self.client.clone(), &namespace);
        let one = ListParams::default().limit(1);
        let pods = self.call("list", format!("pods in {namespace}"), || pods.list(&one)).await?;
        if !pods.items.is_empty() {
            return Ok(false);
        }
        let params = DeleteParams::default();
        match self.call("delete", object, || namespaces.delete(&namespace, &params)).await {
            Ok(_) => Ok(true),
            Err(e) if not_found(&e) => Ok(false),
            Err(e) => Err(e),
        }
    }

    async fn default_storage_class_present(&self) -> Result<bool, KubeFailure> {
        let api: Api<StorageClass> = Api::all(self.client.clone());
        let object = format!("storageclass {STORAGE_CLASS}");
        let sc = self.call("get", object, || api.get_opt(STORAGE_CLASS)).await?;
        let want = storage_class_parameters(&self.volume_tags);
        Ok(sc.is_some_and(|sc| {
            let m = &sc.metadata;
            managed(&sc)
                && m.annotations
                    .as_ref()
                    .and_then(|a| a.get("storageclass.kubernetes.io/is-default-class"))
                    .map(String::as_str)
                    == Some("true")
                && sc.parameters.as_ref() == Some(&want)
        }))
    }

    async fn apply_default_storage_class(&self) -> Result<(), KubeFailure> {
        let api: Api<StorageClass> = Api::all(self.client.clone());
        let object = format!("storageclass {STORAGE_CLASS}");
        let want = storage_class_parameters(&self.volume_tags);
        if let Some(sc) = self.call("get", object.clone(), || api.get_opt(STORAGE_CLASS)).await?
            && managed(&sc)
            && sc.parameters.as_ref() != Some(&want)
        {
            // A StorageClass's parameters cannot change: the API server refuses the update
            // ("updates to parameters are forbidden", Kubernetes `pkg/apis/storage/validation`
            // ValidateStorageClassUpdate). Ours (made by an earlier version, without the volume
            // tags) is replaced; the volumes it provisioned keep theirs (parameters are read at
            // CreateVolume only) and their claims stay bound.
            let params = DeleteParams::default();
            match self.call("delete", object.clone(), || api.delete(STORAGE_CLASS, &params)).await {
                Ok(_) => tracing::info!("replacing the default StorageClass: its parameters changed"),
                Err(e) if not_found(&e) => {}
                Err(e) => return Err(e),
            }
        }
        let body = storage_class_manifest_tagged(&self.volume_tags);
        let params = PatchParams::apply(FIELD_MANAGER);
        let patch = Patch::Apply(&body);
        self.call("apply", format!("storageclass {STORAGE_CLASS}"), || api.patch(STORAGE_CLASS, &params, &patch))
            .await?;
        Ok(())
    }
}

/// Whether `sc` carries our managed-by label.
fn managed(sc: &StorageClass) -> bool {
    sc.metadata.labels.as_ref().and_then(|l| l.get(MANAGED_BY.0)).map(String::as_str) == Some(MANAGED_BY.1)
}
