//! The stack's outputs: every id, ARN and endpoint as JSON, the Dify EE Helm values file and
//! the kubeconfig.

use dify_stack_core::ids::SecurityGroupId;
use dify_stack_datastores::{AuroraOutput, BucketOutput, OpenSearchOutput, RedisOutput, StoredSecret};
use dify_stack_eks::EksOutput;
use dify_stack_iam::IamOutput;
use dify_stack_network::NetworkOutput;
use dify_stack_registry::RegistryOutput;
use secrecy::{ExposeSecret as _, SecretString};
use serde::Serialize;
use serde_json::json;

use crate::graph::NodeOutput;

/// Every output of the stack. A node's field is `None` until it has run. Secret values are
/// never serialised (only their ARNs).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct StackOutput {
    /// Network.
    pub network: Option<NetworkOutput>,
    /// Node security group.
    pub node_security_group: Option<SecurityGroupId>,
    /// EKS.
    pub eks: Option<EksOutput>,
    /// Aurora.
    pub aurora: Option<AuroraOutput>,
    /// Redis.
    pub redis: Option<RedisOutput>,
    /// OpenSearch.
    pub opensearch: Option<OpenSearchOutput>,
    /// Bucket.
    pub bucket: Option<BucketOutput>,
    /// `<stack>/dify-app` secret.
    pub app_secret: Option<StoredSecret>,
    /// Registry.
    pub registry: Option<RegistryOutput>,
    /// IAM.
    pub iam: Option<IamOutput>,
}

impl StackOutput {
    /// Records a node's output.
    pub fn set(&mut self, o: NodeOutput) {
        match o {
            NodeOutput::Network(x) => self.network = Some(*x),
            NodeOutput::NodeSecurityGroup(x) => self.node_security_group = Some(x),
            NodeOutput::Eks(x) => self.eks = Some(*x),
            NodeOutput::Aurora(x) => self.aurora = Some(*x),
            NodeOutput::Redis(x) => self.redis = Some(*x),
            NodeOutput::OpenSearch(x) => self.opensearch = Some(*x),
            NodeOutput::Bucket(x) => self.bucket = Some(*x),
            NodeOutput::AppSecrets(x) => self.app_secret = Some(*x),
            NodeOutput::Registry(x) => self.registry = Some(*x),
            NodeOutput::Iam(x) => self.iam = Some(*x),
        }
    }

    /// True when every node has an output.
    pub fn is_complete(&self) -> bool {
        self.network.is_some()
            && self.node_security_group.is_some()
            && self.eks.is_some()
            && self.aurora.is_some()
            && self.redis.is_some()
            && self.opensearch.is_some()
            && self.bucket.is_some()
            && self.app_secret.is_some()
            && self.registry.is_some()
            && self.iam.is_some()
    }
}

/// The secret values the Helm values file carries, read from Secrets Manager.
#[derive(Clone)]
pub struct ValuesSecrets {
    /// The Aurora application role's password (`<stack>/aurora-app`).
    pub database_password: SecretString,
    /// Redis AUTH token.
    pub redis_password: SecretString,
    /// OpenSearch master user and password.
    pub opensearch_user: String,
    /// OpenSearch master password.
    pub opensearch_password: SecretString,
}

impl std::fmt::Debug for ValuesSecrets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ValuesSecrets(<redacted>)")
    }
}

/// Why the values file cannot be rendered.
#[derive(Debug, thiserror::Error)]
#[error("cannot render values.yaml: {0} has no output yet (apply the stack first)")]
pub struct IncompleteStack(pub &'static str);

/// The Dify EE Helm values (chart 3.9+ layout) filled from live state. Contains secrets:
/// write it with owner-only permissions.
pub fn helm_values(out: &StackOutput, secrets: &ValuesSecrets) -> Result<String, IncompleteStack> {
    let aurora = out.aurora.as_ref().ok_or(IncompleteStack("aurora"))?;
    let redis = out.redis.as_ref().ok_or(IncompleteStack("redis"))?;
    let os = out.opensearch.as_ref().ok_or(IncompleteStack("opensearch"))?;
    let bucket = out.bucket.as_ref().ok_or(IncompleteStack("bucket"))?;
    let registry = out.registry.as_ref().ok_or(IncompleteStack("registry"))?;
    let iam = out.iam.as_ref().ok_or(IncompleteStack("iam"))?;
    let app = out.app_secret.as_ref().ok_or(IncompleteStack("app-secrets"))?;
    let field = |k: &str| app.field(k).map(|s| s.expose_secret().to_owned()).unwrap_or_default();
    let db = |name: &str| aurora.databases.iter().find(|d| *d == name).cloned().unwrap_or_else(|| name.to_owned());
    // The role of each service account, whether or not the stack created the accounts.
    let sa_role = |sa: &str| {
        dify_stack_iam::RoleKind::ALL
            .iter()
            .find(|k| k.service_accounts().contains(&sa))
            .and_then(|k| iam.roles.get(k))
            .map(|r| r.to_string())
            .unwrap_or_default()
    };
    let sa = |sa: &str| json!({ "name": sa, "roleArn": sa_role(sa) });
    let values = json!({
        "global": {
            "appSecretKey": field("app_secret_key"),
            "innerApiKey": field("inner_api_key"),
        },
        "enterprise": {
            "appSecretKey": field("app_secret_key"),
            "innerApiKey": field("inner_api_key"),
            "passwordEncryptionKey": field("password_encryption_key"),
        },
        "plugin_daemon": {
            "apiKey": field("plugin_daemon_key"),
            "innerApiKey": field("plugin_inner_api_key"),
        },
        "externalDatabase": {
            "enabled": true,
            "host": aurora.writer_endpoint,
            "port": aurora.port,
            "user": aurora.app_username,
            "password": secrets.database_password.expose_secret(),
            "sslMode": "require",
            "databases": {
                "api": db("dify"),
                "pluginDaemon": db("dify_plugin_daemon"),
                "enterprise": db("enterprise"),
                "audit": db("audit"),
            },
        },
        "externalRedis": {
            "enabled": true,
            "host": redis.primary_endpoint,
            "port": redis.port,
            "password": secrets.redis_password.expose_secret(),
            "useSSL": redis.tls,
        },
        "vectorDB": {
            "useExternal": true,
            "externalType": "opensearch",
            "externalOpenSearch": {
                "host": os.endpoint,
                "port": os.port,
                "user": secrets.opensearch_user,
                "password": secrets.opensearch_password.expose_secret(),
                "useTLS": true,
            },
        },
        "persistence": {
            "type": "s3",
            "s3": {
                "endpoint": "",
                "region": bucket.region,
                "bucketName": bucket.name,
                "useAwsManagedIam": true,
            },
        },
        "serviceAccounts": {
            "namespace": iam.namespace,
            "api": sa("dify-api-sa"),
            "pluginConnector": sa("dify-plugin-connector-sa"),
            "pluginCrd": sa("dify-plugin-crd-sa"),
            "pluginBuild": sa("dify-plugin-build-sa"),
            "pluginRunner": sa("dify-plugin-runner-sa"),
            "pluginBuildRun": sa("dify-plugin-build-run-sa"),
        },
        "plugin_connector": {
            "imageRepoType": "ecr",
            "imageRepoPrefix": registry.plugin_image_repo_prefix,
            "ecrRegion": bucket.region,
        },
    });
    Ok(format!(
        "# Dify EE Helm values (chart 3.9+), rendered by dify-stack from live state.\n# Contains secrets: keep it private.\n{}",
        serde_norway::to_string(&values).unwrap_or_default()
    ))
}

/// Paths of values that are empty (a placeholder left unfilled), for checks.
pub fn empty_values(yaml: &str) -> Vec<String> {
    fn walk(v: &serde_json::Value, path: String, out: &mut Vec<String>) {
        match v {
            serde_json::Value::Object(m) => {
                for (k, x) in m {
                    walk(x, if path.is_empty() { k.clone() } else { format!("{path}.{k}") }, out);
                }
            }
            serde_json::Value::String(s) if s.is_empty() => out.push(path),
            serde_json::Value::Null => out.push(path),
            _ => {}
        }
    }
    let mut out = Vec::new();
    if let Ok(v) = serde_norway::from_str::<serde_json::Value>(yaml) {
        walk(&v, String::new(), &mut out);
    }
    out
}

/// The Kubernetes objects apply makes itself unless `eks.kubernetes_access = role_only`: the
/// default gp3 StorageClass, the namespace and each service account annotated with its IRSA role,
/// as multi-document YAML for
/// `kubectl apply -f` from a machine that reaches the API.
pub fn kubernetes_manifests(out: &StackOutput) -> Result<String, IncompleteStack> {
    let iam = out.iam.as_ref().ok_or(IncompleteStack("iam"))?;
    let managed_by = dify_stack_iam::k8s::MANAGED_BY;
    let mut docs = vec![
        dify_stack_iam::k8s::storage_class_manifest(),
        json!({
            "apiVersion": "v1",
            "kind": "Namespace",
            "metadata": {"name": iam.namespace, "labels": {managed_by.0: managed_by.1}},
        }),
    ];
    for kind in dify_stack_iam::RoleKind::ALL {
        let Some(role) = iam.roles.get(&kind) else { continue };
        for sa in kind.service_accounts() {
            docs.push(json!({
                "apiVersion": "v1",
                "kind": "ServiceAccount",
                "metadata": {
                    "name": sa,
                    "namespace": iam.namespace,
                    "labels": {managed_by.0: managed_by.1},
                    "annotations": {dify_stack_iam::k8s::ROLE_ARN_ANNOTATION: role.to_string()},
                },
            }));
        }
    }
    Ok(docs.iter().map(|d| serde_norway::to_string(d).unwrap_or_default()).collect::<Vec<_>>().join("---\n"))
}
