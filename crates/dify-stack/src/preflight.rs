//! The image preflight: before Helm runs, every image the release will run is looked up in its
//! registry over the OCI distribution API (`oci-client`: the bearer-token flow of Docker Hub,
//! public ECR and the China mirror, HTTP basic for a private ECR registry with a token from our
//! own credentials, image indexes and Docker manifest lists), and must have a manifest for the
//! nodes' platform (`linux/arm64` on the stack's Graviton nodes).
//!
//! What the check can and cannot say:
//! - an image whose manifest (or index) lacks the platform, or that does not exist (404), is an
//!   error: its pods would crash with "exec format error" or never pull;
//! - a registry that cannot be reached, times out, rate-limits (429) or refuses anonymous reads
//!   (401: Docker Hub answers so for private and for missing repositories alike) is a warning:
//!   the nodes may still pull (they have other addresses, credentials or limits), so the install
//!   goes on and says so.
//!
//! Docker Hub counts manifest `GET`s against its anonymous pull limit (100 per 6 h per address;
//! "Usage and limits", Docker docs: "a pull is up to two GET requests on registry manifest URLs;
//! HEAD requests are not counted"). The check first asks with `HEAD` for the manifest's digest
//! and answers from its cache of platforms by digest when it can (digests name content, so a
//! cached answer never goes stale); only an unknown digest costs one `GET` of the manifest (and,
//! for a single-platform manifest, a blob read of its config, which is not counted).
//!
//! Proven against an in-process fake registry (`tests/images.rs`); no real registry is reachable
//! from the machine the tests run on.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use oci_client::client::{ClientConfig, ClientProtocol};
use oci_client::errors::{OciDistributionError, OciErrorCode};
use oci_client::manifest;
use oci_client::secrets::RegistryAuth;
use oci_client::{Client, Reference};

use crate::chart::{Arch, ResolvedImage};

/// Credentials for a registry (`host[:port]`), asked once per registry per check.
#[async_trait]
pub trait RegistryCredentials: Send + Sync {
    /// The credentials for `registry`; anonymous where none are known.
    async fn auth(&self, registry: &str) -> RegistryAuth;
}

/// Anonymous access everywhere.
#[derive(Debug, Clone, Copy, Default)]
pub struct Anonymous;

#[async_trait]
impl RegistryCredentials for Anonymous {
    async fn auth(&self, _registry: &str) -> RegistryAuth {
        RegistryAuth::Anonymous
    }
}

/// How the check runs.
#[derive(Clone)]
pub struct ImageCheckOptions {
    /// The nodes' architecture (the OS is Linux).
    pub arch: Arch,
    /// Registries spoken to over plain HTTP (a local mirror; the tests' fake registry).
    pub plain_http: Vec<String>,
    /// Per image, how long the registry may take in all (token, HEAD, GET, blob).
    pub timeout: Duration,
    /// Platforms by manifest digest, read before and written after the check (JSON); none: no
    /// cache.
    pub cache: Option<PathBuf>,
    /// Credentials per registry.
    pub credentials: Arc<dyn RegistryCredentials>,
}

impl std::fmt::Debug for ImageCheckOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ImageCheckOptions")
            .field("arch", &self.arch)
            .field("plain_http", &self.plain_http)
            .field("timeout", &self.timeout)
            .field("cache", &self.cache)
            .finish_non_exhaustive()
    }
}

impl ImageCheckOptions {
    /// Anonymous, HTTPS only, 30 s per image, no cache.
    pub fn new(arch: Arch) -> Self {
        ImageCheckOptions {
            arch,
            plain_http: Vec::new(),
            timeout: Duration::from_secs(30),
            cache: None,
            credentials: Arc::new(Anonymous),
        }
    }
}

/// What the registry said of one image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// It has a manifest for the nodes' platform.
    Runs,
    /// It exists, without the platform; the platforms it has.
    WrongPlatform(Vec<String>),
    /// The registry has no such image or tag.
    NotFound,
    /// The registry could not be asked, or would not say (why).
    Unknown(String),
}

/// One image checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checked {
    /// Where the values set it (`enterprise.image`, `plugin_connector.busyBoxImage`).
    pub path: String,
    /// `repository:tag`.
    pub reference: String,
    /// What the registry said.
    pub outcome: Outcome,
}

/// The images that will not run, each with why and the fix, in one error.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "{} image(s) of the release cannot run on {platform} nodes:\n{}\nFix: set [dify.images.<component>] repository/tag (or [dify.plugin_connector]) to an image that has {platform}{}; or run install with --skip-image-check if you know the nodes can pull them",
    problems.len(),
    problems.iter().map(|p| format!("  - {p}")).collect::<Vec<_>>().join("\n"),
    if platform.ends_with("arm64") { " (Dify publishes `<tag>-arm64` tags for its amd64-only images), or run x86_64 nodes (eks.node_group.ami_type and instance_types)" } else { "" }
)]
pub struct ImagesUnavailable {
    /// `linux/arm64`.
    pub platform: String,
    /// One line per image: its path, reference and what is wrong.
    pub problems: Vec<String>,
}

/// The result of a check: every image with its outcome.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ImageReport {
    /// Each image, in the order given.
    pub images: Vec<Checked>,
    /// The platform checked for.
    pub platform: String,
}

impl ImageReport {
    /// The images that could not be checked, as warning lines.
    pub fn warnings(&self) -> Vec<String> {
        self.images
            .iter()
            .filter_map(|c| match &c.outcome {
                Outcome::Unknown(why) => {
                    Some(format!("{} ({}): not checked, {why}; the install goes on", c.reference, c.path))
                }
                _ => None,
            })
            .collect()
    }

    /// `Ok(warnings)` when no image is known not to run, else the error listing each one.
    pub fn into_result(self) -> Result<Vec<String>, ImagesUnavailable> {
        let problems: Vec<String> = self
            .images
            .iter()
            .filter_map(|c| match &c.outcome {
                Outcome::WrongPlatform(has) => Some(format!(
                    "{} ({}): no {} manifest (it has {})",
                    c.reference,
                    c.path,
                    self.platform,
                    if has.is_empty() { "none".to_owned() } else { has.join(", ") }
                )),
                Outcome::NotFound => Some(format!("{} ({}): not found in its registry", c.reference, c.path)),
                _ => None,
            })
            .collect();
        if problems.is_empty() {
            Ok(self.warnings())
        } else {
            Err(ImagesUnavailable { platform: self.platform, problems })
        }
    }
}

/// Media types of an image index / manifest list and of single-platform manifests.
const ACCEPTED: &[&str] = &[
    manifest::OCI_IMAGE_INDEX_MEDIA_TYPE,
    manifest::IMAGE_MANIFEST_LIST_MEDIA_TYPE,
    manifest::OCI_IMAGE_MEDIA_TYPE,
    manifest::IMAGE_MANIFEST_MEDIA_TYPE,
];

/// Checks each image (one at a time: the registries are few and Docker Hub's limits are per
/// address).
pub async fn check_images(images: &[ResolvedImage], options: &ImageCheckOptions) -> ImageReport {
    let platform = format!("linux/{}", options.arch.oci());
    let mut config = ClientConfig {
        protocol: if options.plain_http.is_empty() {
            ClientProtocol::Https
        } else {
            ClientProtocol::HttpsExcept(options.plain_http.clone())
        },
        // Each request bounded as well as the whole image.
        connect_timeout: Some(options.timeout.min(Duration::from_secs(10))),
        read_timeout: Some(options.timeout),
        platform_resolver: None,
        ..ClientConfig::default()
    };
    config.user_agent = concat!("dify-stack/", env!("CARGO_PKG_VERSION"));
    let client = Client::new(config);
    let mut cache = read_cache(options.cache.as_ref());
    let mut auths: BTreeMap<String, RegistryAuth> = BTreeMap::new();
    let mut report = ImageReport { images: Vec::new(), platform: platform.clone() };
    for image in images {
        let reference = image.reference();
        let outcome = match Reference::try_from(reference.as_str()) {
            Err(e) => Outcome::Unknown(format!("not a valid image reference: {e}")),
            Ok(r) => {
                let registry = r.resolve_registry().to_owned();
                if !auths.contains_key(&registry) {
                    let auth = options.credentials.auth(&registry).await;
                    auths.insert(registry.clone(), auth);
                }
                let auth = &auths[&registry];
                match tokio::time::timeout(options.timeout, platforms(&client, &r, auth, &mut cache)).await {
                    Err(_) => Outcome::Unknown(format!("{registry} did not answer within {:?}", options.timeout)),
                    Ok(Err(e)) => classify(&registry, e),
                    Ok(Ok(has)) if has.iter().any(|p| p == &platform) => Outcome::Runs,
                    Ok(Ok(has)) => Outcome::WrongPlatform(has),
                }
            }
        };
        report.images.push(Checked { path: image.path.clone(), reference, outcome });
    }
    write_cache(options.cache.as_ref(), &cache);
    report
}

/// The platforms (`os/arch[/variant]`) of an image: HEAD for the digest, the cache by digest,
/// else the manifest (an index lists its platforms; a single manifest's config names its own).
async fn platforms(
    client: &Client,
    image: &Reference,
    auth: &RegistryAuth,
    cache: &mut BTreeMap<String, Vec<String>>,
) -> Result<Vec<String>, OciDistributionError> {
    let digest = client.fetch_manifest_digest(image, auth).await?;
    if let Some(known) = cache.get(&digest) {
        return Ok(known.clone());
    }
    let (body, digest) = client.pull_manifest_raw(image, auth, ACCEPTED).await?;
    let doc: serde_json::Value = serde_json::from_slice(&body)?;
    let has = if let Some(entries) = doc["manifests"].as_array() {
        entries
            .iter()
            .filter_map(|m| {
                let p = &m["platform"];
                let (os, arch) = (p["os"].as_str()?, p["architecture"].as_str()?);
                // Attestation manifests (buildx provenance) are `unknown/unknown`.
                (os != "unknown").then(|| match p["variant"].as_str() {
                    Some(v) if arch == "arm" => format!("{os}/{arch}/{v}"),
                    _ => format!("{os}/{arch}"),
                })
            })
            .collect()
    } else {
        let config = doc["config"]["digest"]
            .as_str()
            .ok_or_else(|| OciDistributionError::ManifestParsingError("a manifest without config".into()))?;
        let mut blob = Vec::new();
        client.pull_blob(image, config, &mut blob).await?;
        let config: serde_json::Value = serde_json::from_slice(&blob)?;
        match (config["os"].as_str(), config["architecture"].as_str()) {
            (Some(os), Some(arch)) => vec![format!("{os}/{arch}")],
            _ => Vec::new(),
        }
    };
    cache.insert(digest, has.clone());
    Ok(has)
}

fn classify(registry: &str, e: OciDistributionError) -> Outcome {
    let status = |code: u16| match code {
        404 => Outcome::NotFound,
        429 => Outcome::Unknown(format!("{registry} is rate-limiting (HTTP 429)")),
        401 | 403 => Outcome::Unknown(format!(
            "{registry} refused to show it (HTTP {code}: a private repository, a missing one, or credentials needed)"
        )),
        other => Outcome::Unknown(format!("{registry} answered HTTP {other}")),
    };
    match e {
        OciDistributionError::ImageManifestNotFoundError(_) => Outcome::NotFound,
        OciDistributionError::RegistryError { envelope, .. } => {
            let codes: Vec<&OciErrorCode> = envelope.errors.iter().map(|x| &x.code).collect();
            if codes.iter().any(|c| {
                matches!(c, OciErrorCode::ManifestUnknown | OciErrorCode::NameUnknown | OciErrorCode::NotFound)
            }) {
                Outcome::NotFound
            } else if codes.iter().any(|c| matches!(c, OciErrorCode::Toomanyrequests)) {
                status(429)
            } else if codes.iter().any(|c| matches!(c, OciErrorCode::Unauthorized | OciErrorCode::Denied)) {
                status(401)
            } else {
                Outcome::Unknown(format!("{registry} refused: {envelope}"))
            }
        }
        OciDistributionError::ServerError { code, .. } => status(code),
        OciDistributionError::UnauthorizedError { .. } | OciDistributionError::AuthenticationFailure(_) => status(401),
        OciDistributionError::RequestError(e) => Outcome::Unknown(format!("{registry} cannot be reached: {e}")),
        other => Outcome::Unknown(format!("{registry}: {other}")),
    }
}

fn read_cache(path: Option<&PathBuf>) -> BTreeMap<String, Vec<String>> {
    path.and_then(|p| std::fs::read(p).ok()).and_then(|b| serde_json::from_slice(&b).ok()).unwrap_or_default()
}

fn write_cache(path: Option<&PathBuf>, cache: &BTreeMap<String, Vec<String>>) {
    let Some(path) = path else { return };
    if let Some(dir) = path.parent() {
        let _ = std::fs::create_dir_all(dir);
    }
    // A cache: losing a write costs one GET next time.
    if let Ok(text) = serde_json::to_vec_pretty(cache) {
        let _ = std::fs::write(path, text);
    }
}
