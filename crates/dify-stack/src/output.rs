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
#[derive(Debug, Clone, Default, PartialEq, Serialize, serde::Deserialize)]
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
    /// Platform.
    pub platform: Option<dify_stack_platform::PlatformOutput>,
    /// The domain's certificate (empty without a domain, or with your own certificate).
    pub certificate: Option<dify_stack_platform::CertificateOutput>,
}

impl StackOutput {
    /// True when every output this one holds is the same in `other` (a partial observation
    /// agrees with a full record).
    pub(crate) fn agrees_with(&self, other: &StackOutput) -> bool {
        fn same<T: PartialEq>(mine: &Option<T>, theirs: &Option<T>) -> bool {
            mine.is_none() || mine == theirs
        }
        same(&self.network, &other.network)
            && same(&self.node_security_group, &other.node_security_group)
            && same(&self.eks, &other.eks)
            && same(&self.aurora, &other.aurora)
            && same(&self.redis, &other.redis)
            && same(&self.opensearch, &other.opensearch)
            && same(&self.bucket, &other.bucket)
            && same(&self.app_secret, &other.app_secret)
            && same(&self.registry, &other.registry)
            && same(&self.iam, &other.iam)
            && same(&self.platform, &other.platform)
            && same(&self.certificate, &other.certificate)
    }

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
            NodeOutput::Platform(x) => self.platform = Some(*x),
            NodeOutput::Certificate(x) => self.certificate = Some(*x),
            NodeOutput::Done => {}
        }
    }

    /// An exec-based kubeconfig for the cluster (`aws eks get-token`), once it exists.
    pub fn kubeconfig(&self) -> Option<String> {
        self.eks.as_ref().map(|e| dify_stack_eks::kubeconfig(e, None))
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
            && self.platform.is_some()
            && self.certificate.is_some()
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

/// Why the manifests cannot be rendered.
#[derive(Debug, thiserror::Error)]
#[error("cannot render values.yaml: {0} has no output yet (apply the stack first)")]
pub struct IncompleteStack(pub &'static str);

/// Why the values file cannot be rendered.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ValuesError {
    /// A node has no output yet.
    #[error(transparent)]
    Incomplete(#[from] IncompleteStack),
    /// A generated secret lacks a key the values need (never rendered as an empty string: Dify
    /// would start with an empty key).
    #[error(
        "cannot render values.yaml: the secret {secret} has no {key:?}; apply again (a secret from an older version gains the missing keys), or restore it"
    )]
    MissingSecret {
        /// The secret's name.
        secret: String,
        /// The missing key.
        key: &'static str,
    },
}

/// The `[dify]` settings; the name of this type before the chart and image settings joined
/// the domain's.
#[deprecated(since = "0.2.0", note = "renamed `chart::DifySettings` (it now holds the chart and image settings too)")]
pub type DifyDomain = crate::chart::DifySettings;

/// Service accounts bound through the chart's values (the chart's own accounts are not used:
/// the default `default` account has no IRSA role, so S3 and ECR would be denied).
pub const API_SERVICE_ACCOUNT: &str = "dify-api-sa";
/// The plugin connector's CRD account (S3 + ECR push).
pub const PLUGIN_CRD_SERVICE_ACCOUNT: &str = "dify-plugin-crd-sa";
/// The plugin runner's account (ECR pull).
pub const PLUGIN_RUNNER_SERVICE_ACCOUNT: &str = "dify-plugin-runner-sa";

/// The Dify EE Helm values for `site.chart_version` on nodes of `arch`, filled from live state:
/// the keys of `tests/data/dify-ee-values-keys.txt`, each inside the chart 3.9.1's own key tree
/// (`tests/data/dify-ee-3.9.1-chart-keys.txt`); the images with the `-arm64` tag where the chart's
/// plain tag is amd64-only ([`crate::chart`]), from the mirror in China regions. Contains
/// secrets: write it with owner-only permissions.
pub fn helm_values(
    out: &StackOutput,
    secrets: &ValuesSecrets,
    site: &crate::chart::DifySettings,
    arch: crate::chart::Arch,
) -> Result<String, ValuesError> {
    let aurora = out.aurora.as_ref().ok_or(IncompleteStack("aurora"))?;
    let redis = out.redis.as_ref().ok_or(IncompleteStack("redis"))?;
    let os = out.opensearch.as_ref().ok_or(IncompleteStack("opensearch"))?;
    let bucket = out.bucket.as_ref().ok_or(IncompleteStack("bucket"))?;
    let registry = out.registry.as_ref().ok_or(IncompleteStack("registry"))?;
    let app = out.app_secret.as_ref().ok_or(IncompleteStack("app-secrets"))?;
    // Every key the values need, read up front: one missing is an error naming it.
    let mut keys = std::collections::BTreeMap::new();
    // (The secret also holds per-service API keys that charts before 3.9 read; 3.9.1 has one
    // inner API key, `global.innerApiKey`.)
    for key in ["app_secret_key", "inner_api_key", "enterprise_admin_apis_salt", "password_encryption_key"] {
        let value = app.field(key).map(|s| s.expose_secret().to_owned()).filter(|v| !v.is_empty());
        keys.insert(key, value.ok_or_else(|| ValuesError::MissingSecret { secret: app.name.clone(), key })?);
    }
    let field = |k: &str| keys.get(k).cloned().unwrap_or_default();
    let db = |name: &str| aurora.databases.iter().find(|d| *d == name).cloned().unwrap_or_else(|| name.to_owned());
    let mut global = json!({
        "appSecretKey": field("app_secret_key"),
        "innerApiKey": field("inner_api_key"),
    });
    let mut values = json!({
        "api": {"serviceAccountName": API_SERVICE_ACCOUNT},
        "worker": {"serviceAccountName": API_SERVICE_ACCOUNT},
        "workerBeat": {"serviceAccountName": API_SERVICE_ACCOUNT},
        "plugin_daemon": {"serviceAccountName": API_SERVICE_ACCOUNT},
        // The audit service writes its archives to the bucket: the S3 role's account.
        "enterpriseAudit": {"serviceAccountName": API_SERVICE_ACCOUNT},
        "plugin_connector": {
            "customServiceAccount": PLUGIN_CRD_SERVICE_ACCOUNT,
            "runnerServiceAccount": PLUGIN_RUNNER_SERVICE_ACCOUNT,
            "imageRepoType": "ecr",
            "imageRepoPrefix": registry.plugin_image_repo_prefix,
            "ecrRegion": bucket.region,
        },
        "enterprise": {
            "appSecretKey": field("app_secret_key"),
            "adminAPIsSecretKeySalt": field("enterprise_admin_apis_salt"),
            "passwordEncryptionKey": field("password_encryption_key"),
        },
        // The chart's default trigger worker has no service account with the S3 role and
        // crash-loops on NoCredentialsError.
        "additionalWorkers": [{"name": "trigger-worker", "enabled": false}],
        "externalDatabase": {
            "enabled": true,
            "engine": "postgres",
            "host": aurora.writer_endpoint,
            "port": aurora.port,
            "user": aurora.app_username,
            "password": secrets.database_password.expose_secret(),
            "databases": {
                "dify": db("dify"),
                "plugin_daemon": db("dify_plugin_daemon"),
                "enterprise": db("enterprise"),
                "audit": db("audit"),
            },
            "dialectOptions": {"postgres": {"sslMode": "require", "uriScheme": "postgresql"}},
        },
        "externalRedis": {
            "enabled": true,
            "host": redis.primary_endpoint,
            "port": redis.port,
            "username": "",
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
        // A non-empty endpoint breaks the plugin builder's (kaniko) STS calls; IRSA gives the
        // credentials, so no keys either.
        "persistence": {
            "type": "s3",
            "s3": {
                "endpoint": "",
                "accessKey": "",
                "secretKey": "",
                "region": bucket.region,
                "bucketName": bucket.name,
                "useAwsManagedIam": true,
                "useAwsS3": true,
            },
        },
    });
    if let Some(domain) = &site.domain {
        let tls = site.certificate_arn.is_some();
        for (key, host) in [
            ("consoleApiDomain", "console"),
            ("consoleWebDomain", "console"),
            ("serviceApiDomain", "api"),
            ("appApiDomain", "app"),
            ("appWebDomain", "app"),
            ("filesDomain", "upload"),
            ("enterpriseDomain", "enterprise"),
            ("triggerDomain", "trigger"),
        ] {
            global[key] = json!(format!("{host}.{domain}"));
        }
        global["useTLS"] = json!(tls);
        let mut annotations = json!({
            "alb.ingress.kubernetes.io/scheme": "internet-facing",
            "alb.ingress.kubernetes.io/target-type": "ip",
            // Streamed LLM answers outlive the ALB's default 60 s idle timeout.
            "alb.ingress.kubernetes.io/load-balancer-attributes":
                format!("idle_timeout.timeout_seconds={}", site.idle_timeout_secs),
        });
        match &site.certificate_arn {
            Some(arn) => {
                annotations["alb.ingress.kubernetes.io/listen-ports"] = json!(r#"[{"HTTP": 80}, {"HTTPS": 443}]"#);
                annotations["alb.ingress.kubernetes.io/ssl-redirect"] = json!("443");
                annotations["alb.ingress.kubernetes.io/certificate-arn"] = json!(arn);
            }
            None => annotations["alb.ingress.kubernetes.io/listen-ports"] = json!(r#"[{"HTTP": 80}]"#),
        }
        values["ingress"] = json!({"enabled": true, "className": "alb", "annotations": annotations});
    }
    values["global"] = global;
    // Images: the arm64 tags on Graviton, the China mirror, the configured overrides.
    let partition = dify_stack_core::Partition::of_region(&bucket.region).unwrap_or(dify_stack_core::Partition::Aws);
    for image in site.images(arch, partition) {
        for (path, value) in image.values {
            set_path(&mut values, &path, json!(value));
        }
    }
    if let Some(conf) = &site.plugin_connector.generator_conf {
        set_path(&mut values, "plugin_connector.generatorConf", json!(conf));
    }
    let no_domain = if site.domain.is_none() {
        "# No [dify] domain: Dify EE needs DNS host names; set it before `install`.\n"
    } else {
        ""
    };
    Ok(format!(
        "# Dify EE Helm values (chart {}, {} nodes), rendered by dify-stack from live state.\n# Contains secrets: keep it private.\n{no_domain}{}",
        site.chart_version,
        arch.oci(),
        serde_norway::to_string(&values).unwrap_or_default()
    ))
}

/// Sets `a.b.c` in `root`, making the objects on the way.
fn set_path(root: &mut serde_json::Value, path: &str, value: serde_json::Value) {
    let mut node = root;
    for key in path.split('.') {
        if !node.is_object() {
            *node = json!({});
        }
        node = node
            .as_object_mut()
            .expect("made an object above")
            .entry(key.to_owned())
            .or_insert(serde_json::Value::Null);
    }
    *node = value;
}

/// Every key path of a values document, `a.b.c` (list items as `a[].b`), sorted.
pub fn value_paths(yaml: &str) -> Vec<String> {
    fn walk(v: &serde_json::Value, path: String, out: &mut Vec<String>) {
        match v {
            serde_json::Value::Object(m) => {
                for (k, x) in m {
                    walk(x, if path.is_empty() { k.clone() } else { format!("{path}.{k}") }, out);
                }
            }
            serde_json::Value::Array(items) if items.iter().any(|i| i.is_object()) => {
                for i in items {
                    walk(i, format!("{path}[]"), out);
                }
            }
            _ => out.push(path),
        }
    }
    let mut out = Vec::new();
    if let Ok(v) = serde_norway::from_str::<serde_json::Value>(yaml) {
        walk(&v, String::new(), &mut out);
    }
    out.sort();
    out.dedup();
    out
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
pub fn kubernetes_manifests(
    out: &StackOutput,
    helm_release: &str,
    volume_tags: &dify_stack_core::Tags,
) -> Result<String, IncompleteStack> {
    let iam = out.iam.as_ref().ok_or(IncompleteStack("iam"))?;
    let managed_by = dify_stack_iam::k8s::MANAGED_BY;
    let mut docs = vec![
        // Every volume the class makes carries the stack's tags, so destroy finds it.
        dify_stack_iam::k8s::storage_class_manifest_tagged(volume_tags),
        json!({
            "apiVersion": "v1",
            "kind": "Namespace",
            "metadata": {"name": iam.namespace, "labels": {managed_by.0: managed_by.1}},
        }),
    ];
    docs.extend(service_accounts(iam, helm_release).iter().map(dify_stack_iam::IrsaServiceAccount::manifest));
    Ok(docs.iter().map(|d| serde_norway::to_string(d).unwrap_or_default()).collect::<Vec<_>>().join("---\n"))
}

/// The six IRSA service accounts of the stack, each with its role and the Helm release that
/// adopts it.
pub fn service_accounts(iam: &IamOutput, helm_release: &str) -> Vec<dify_stack_iam::IrsaServiceAccount> {
    let mut accounts = Vec::new();
    for kind in dify_stack_iam::RoleKind::ALL {
        let Some(role) = iam.roles.get(&kind) else { continue };
        for sa in kind.service_accounts() {
            accounts.push(dify_stack_iam::IrsaServiceAccount {
                namespace: iam.namespace.clone(),
                name: sa.to_owned(),
                role_arn: role.as_str().to_owned(),
                helm_release: helm_release.to_owned(),
            });
        }
    }
    accounts
}
