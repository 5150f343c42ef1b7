//! Access to the cluster for programs: the EKS bearer token (what `aws eks get-token` prints),
//! an exec-based kubeconfig and a [`kube::Client`] built from the tier's output.
//!
//! The token is a presigned STS `GetCallerIdentity` URL whose signed headers include
//! `x-k8s-aws-id: <cluster>`, encoded as `k8s-aws-v1.` + base64url without padding. EKS
//! accepts it for 15 minutes; [`TokenSource`] hands out a cached token and mints a new one a
//! minute before that.

use std::time::{Duration, SystemTime};

use aws_credential_types::Credentials;
use aws_credential_types::provider::{ProvideCredentials, SharedCredentialsProvider};
use aws_sigv4::http_request::{SignableBody, SignableRequest, SignatureLocation, SigningSettings, sign};
use aws_sigv4::sign::v4;
use base64::Engine as _;
use dify_stack_core::Partition;
use secrecy::{ExposeSecret as _, SecretString};
use tokio::sync::Mutex;

use crate::EksOutput;

/// The header that binds a token to one cluster.
pub const CLUSTER_ID_HEADER: &str = "x-k8s-aws-id";
/// The token prefix EKS expects.
pub const TOKEN_PREFIX: &str = "k8s-aws-v1.";
/// How long EKS accepts a token.
pub const TOKEN_LIFETIME: Duration = Duration::from_secs(15 * 60);
/// A token is replaced this long before its lifetime ends.
pub const REFRESH_MARGIN: Duration = Duration::from_secs(60);
/// Validity of the presigned URL itself, as `aws eks get-token` sets it.
const PRESIGN_EXPIRES: Duration = Duration::from_secs(60);

/// Why no token or client could be made.
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    /// No credentials could be resolved.
    #[error("no AWS credentials for the EKS token: {0}")]
    Credentials(String),
    /// Signing failed.
    #[error("signing the EKS token failed: {0}")]
    Signing(String),
    /// The cluster output cannot configure a client.
    #[error("cannot configure a Kubernetes client for {cluster}: {message}")]
    Config {
        /// Cluster.
        cluster: String,
        /// What is wrong.
        message: String,
    },
    /// The region belongs to no known partition.
    #[error("unknown region {0:?}: cannot derive the STS endpoint")]
    UnknownRegion(String),
}

impl dify_stack_core::Classify for TokenError {
    fn kind(&self) -> dify_stack_core::ErrorKind {
        use dify_stack_core::ErrorKind;
        match self {
            TokenError::Credentials(_) => ErrorKind::AccessDenied,
            TokenError::Signing(_) => ErrorKind::Other,
            TokenError::Config { .. } | TokenError::UnknownRegion(_) => ErrorKind::Invalid,
        }
    }
}

/// A bearer token for one cluster. The value is secret: `Debug` hides it.
#[derive(Clone)]
pub struct EksToken {
    token: SecretString,
    /// When EKS stops accepting it.
    pub expires_at: SystemTime,
}

impl std::fmt::Debug for EksToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EksToken").field("token", &"<redacted>").field("expires_at", &self.expires_at).finish()
    }
}

impl EksToken {
    /// The bearer token.
    pub fn secret(&self) -> &SecretString {
        &self.token
    }

    /// True when the token should be replaced at `now`.
    pub fn needs_refresh(&self, now: SystemTime) -> bool {
        now + REFRESH_MARGIN >= self.expires_at
    }
}

/// Mints a token for `cluster` in `region` signed with `credentials` at time `now`.
/// The STS endpoint follows the partition (`sts.cn-north-1.amazonaws.com.cn` in China).
pub fn eks_token(
    credentials: &Credentials,
    cluster: &str,
    region: &str,
    now: SystemTime,
) -> Result<EksToken, TokenError> {
    let partition = Partition::of_region(region).ok_or_else(|| TokenError::UnknownRegion(region.to_owned()))?;
    let host = partition.endpoint_host("sts", region);
    let url = format!("https://{host}/?Action=GetCallerIdentity&Version=2011-06-15");
    let identity = credentials.clone().into();
    let mut settings = SigningSettings::default();
    settings.signature_location = SignatureLocation::QueryParams;
    settings.expires_in = Some(PRESIGN_EXPIRES);
    let params = v4::SigningParams::builder()
        .identity(&identity)
        .region(region)
        .name("sts")
        .time(now)
        .settings(settings)
        .build()
        .map_err(|e| TokenError::Signing(e.to_string()))?
        .into();
    let headers = [("host", host.as_str()), (CLUSTER_ID_HEADER, cluster)];
    let signable = SignableRequest::new("GET", url.clone(), headers.into_iter(), SignableBody::Bytes(&[]))
        .map_err(|e| TokenError::Signing(e.to_string()))?;
    let (instructions, _) = sign(signable, &params).map_err(|e| TokenError::Signing(e.to_string()))?.into_parts();
    let mut request = http::Request::builder()
        .method("GET")
        .uri(&url)
        .header(CLUSTER_ID_HEADER, cluster)
        .body(())
        .map_err(|e| TokenError::Signing(e.to_string()))?;
    instructions.apply_to_request_http1x(&mut request);
    let signed = request.uri().to_string();
    let encoded = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(signed);
    Ok(EksToken { token: SecretString::from(format!("{TOKEN_PREFIX}{encoded}")), expires_at: now + TOKEN_LIFETIME })
}

/// Hands out a valid token for one cluster, minting a new one before the old one expires.
#[derive(Debug)]
pub struct TokenSource {
    credentials: SharedCredentialsProvider,
    cluster: String,
    region: String,
    current: Mutex<Option<EksToken>>,
}

impl TokenSource {
    /// A source over a credentials provider (e.g. `sdk_config.credentials_provider()`).
    pub fn new(credentials: SharedCredentialsProvider, cluster: impl Into<String>, region: impl Into<String>) -> Self {
        TokenSource { credentials, cluster: cluster.into(), region: region.into(), current: Mutex::new(None) }
    }

    /// A valid token: the cached one, or a new one when it is within a minute of expiry.
    pub async fn token(&self) -> Result<EksToken, TokenError> {
        let mut current = self.current.lock().await;
        let now = SystemTime::now();
        if let Some(t) = current.as_ref().filter(|t| !t.needs_refresh(now)) {
            return Ok(t.clone());
        }
        let creds = self.credentials.provide_credentials().await.map_err(|e| TokenError::Credentials(e.to_string()))?;
        let token = eks_token(&creds, &self.cluster, &self.region, now)?;
        *current = Some(token.clone());
        Ok(token)
    }
}

/// A `kube::Client` for the cluster in `output`, trusting only the cluster CA and
/// authenticating with a fresh token from `tokens`. The token lives 15 minutes: long-running
/// programs build a new client (cheap) from the same source when they see `401 Unauthorized`.
pub async fn kube_client(output: &EksOutput, tokens: &TokenSource) -> Result<kube::Client, TokenError> {
    let fail = |message: String| TokenError::Config { cluster: output.cluster_name.to_string(), message };
    let uri: http::Uri = output.endpoint.parse().map_err(|e: http::uri::InvalidUri| fail(format!("endpoint: {e}")))?;
    let certs = dify_stack_core::tls::ca_certificates(&output.ca_data).map_err(fail)?;
    let token = tokens.token().await?;
    let mut config = kube::Config::new(uri);
    config.root_cert = Some(certs);
    config.auth_info.token = Some(SecretString::from(token.secret().expose_secret().to_owned()));
    kube::Client::try_from(config).map_err(|e| fail(e.to_string()))
}

/// An exec-based kubeconfig (YAML) for the cluster, like `aws eks update-kubeconfig` writes:
/// `kubectl` runs `aws eks get-token` for every token. `profile` selects an AWS CLI profile.
pub fn kubeconfig(output: &EksOutput, profile: Option<&str>) -> String {
    let name = output.cluster_arn.as_str();
    let mut env = String::new();
    if let Some(p) = profile {
        env = format!("      env:\n      - name: AWS_PROFILE\n        value: {}\n", yaml_str(p));
    }
    format!(
        "apiVersion: v1\nkind: Config\nclusters:\n- name: {n}\n  cluster:\n    server: {server}\n    certificate-authority-data: {ca}\ncontexts:\n- name: {n}\n  context:\n    cluster: {n}\n    user: {n}\ncurrent-context: {n}\nusers:\n- name: {n}\n  user:\n    exec:\n      apiVersion: client.authentication.k8s.io/v1beta1\n      command: aws\n      args:\n      - --region\n      - {region}\n      - eks\n      - get-token\n      - --cluster-name\n      - {cluster}\n      - --output\n      - json\n{env}      interactiveMode: Never\n",
        n = yaml_str(name),
        server = yaml_str(&output.endpoint),
        ca = yaml_str(&output.ca_data),
        region = yaml_str(&output.region),
        cluster = yaml_str(output.cluster_name.as_str()),
    )
}

/// A YAML double-quoted scalar (JSON string syntax is valid YAML).
fn yaml_str(s: &str) -> String {
    serde_json::to_string(s).unwrap_or_default()
}
