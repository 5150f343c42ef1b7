//! The image preflight against an in-process fake OCI registry on loopback: the bearer-token
//! flow (`GET /v2/` answers 401 with a `WWW-Authenticate: Bearer realm=...` challenge, the realm
//! hands out a token, manifests need it), image indexes and Docker manifest lists with and
//! without arm64, single-platform manifests whose config names the architecture, 404, 401, 429
//! and a registry that never answers. No real registry is reachable from here.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use dify_stack::chart::{Arch, DifySettings, ImageOverride, ResolvedImage};
use dify_stack::core::Partition;
use dify_stack::preflight::{self, ImageCheckOptions, Outcome};
use serde_json::json;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

/// What the fake registry holds at `(repository, tag)`.
#[derive(Clone)]
enum Entry {
    /// An image index / manifest list (its media type) listing these platforms.
    Index(&'static str, Vec<&'static str>),
    /// A single-platform manifest whose config says `linux/<arch>`.
    Single(&'static str),
    /// The registry answers this status (with an OCI error body for 404 and 429).
    Status(u16),
}

#[derive(Default)]
struct Registry {
    entries: BTreeMap<(String, String), Entry>,
    /// Every request line seen, `METHOD path`.
    seen: Vec<String>,
}

type Shared = Arc<Mutex<Registry>>;

const TOKEN: &str = "fake-anonymous-token";

/// `sha256:<hex>` of `body`, as registries name content (and oci-client verifies).
fn digest_of(body: &[u8]) -> String {
    let d = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, body);
    format!("sha256:{}", d.as_ref().iter().map(|b| format!("{b:02x}")).collect::<String>())
}

/// The config blob of a single-platform `linux/<arch>` image.
fn config_blob(arch: &str) -> Vec<u8> {
    json!({"os": "linux", "architecture": arch, "rootfs": {"type": "layers", "diff_ids": []}}).to_string().into_bytes()
}

/// Answers one request: (status, headers, body).
fn answer(
    registry: &Shared,
    method: &str,
    path: &str,
    auth: Option<&str>,
    port: u16,
) -> (u16, Vec<(String, String)>, Vec<u8>) {
    let mut r = registry.lock().unwrap();
    r.seen.push(format!("{method} {path}"));
    let challenge = || {
        vec![(
            "WWW-Authenticate".to_owned(),
            format!(r#"Bearer realm="http://127.0.0.1:{port}/token",service="fake-registry""#),
        )]
    };
    if path == "/v2/" {
        return (401, challenge(), b"{}".to_vec());
    }
    if path.starts_with("/token") {
        return (200, vec![], json!({"token": TOKEN, "expires_in": 300}).to_string().into_bytes());
    }
    if auth != Some(&format!("Bearer {TOKEN}")) {
        return (
            401,
            challenge(),
            json!({"errors": [{"code": "UNAUTHORIZED", "message": "authentication required"}]})
                .to_string()
                .into_bytes(),
        );
    }
    let Some(rest) = path.strip_prefix("/v2/") else { return (404, vec![], vec![]) };
    if let Some((_, digest)) = rest.split_once("/blobs/") {
        return match ["amd64", "arm64"].iter().map(|a| config_blob(a)).find(|b| digest_of(b) == digest) {
            Some(blob) => (200, vec![("Docker-Content-Digest".to_owned(), digest.to_owned())], blob),
            None => (404, vec![], b"{}".to_vec()),
        };
    }
    let Some((repo, reference)) = rest.split_once("/manifests/") else { return (404, vec![], vec![]) };
    let Some(entry) = r.entries.get(&(repo.to_owned(), reference.to_owned())).cloned() else {
        let body = json!({"errors": [{"code": "MANIFEST_UNKNOWN", "message": "manifest unknown"}]});
        return (404, vec![], body.to_string().into_bytes());
    };
    let (media, body) = match entry {
        Entry::Status(429) => {
            let body =
                json!({"errors": [{"code": "TOOMANYREQUESTS", "message": "You have reached your pull rate limit"}]});
            return (429, vec![], body.to_string().into_bytes());
        }
        Entry::Status(code) => return (code, vec![], b"{}".to_vec()),
        Entry::Index(media, platforms) => {
            let manifests: Vec<_> = platforms
                .iter()
                .map(|p| {
                    let (os, arch) = p.split_once('/').unwrap();
                    json!({"mediaType": "application/vnd.oci.image.manifest.v1+json", "size": 1,
                           "digest": format!("sha256:{:064}", 7), "platform": {"os": os, "architecture": arch}})
                })
                .collect();
            (media, json!({"schemaVersion": 2, "mediaType": media, "manifests": manifests}))
        }
        Entry::Single(arch) => {
            let media = "application/vnd.docker.distribution.manifest.v2+json";
            (
                media,
                json!({"schemaVersion": 2, "mediaType": media,
                           "config": {"mediaType": "application/vnd.docker.container.image.v1+json",
                                      "size": config_blob(arch).len(), "digest": digest_of(&config_blob(arch))},
                           "layers": []}),
            )
        }
    };
    let body = body.to_string().into_bytes();
    let headers =
        vec![("Content-Type".to_owned(), media.to_owned()), ("Docker-Content-Digest".to_owned(), digest_of(&body))];
    (200, headers, if method == "HEAD" { Vec::new() } else { body })
}

/// Starts the fake registry; `silent` makes it accept connections and never answer.
async fn start(entries: Vec<(String, String, Entry)>, silent: bool) -> (u16, Shared) {
    let registry: Shared = Arc::default();
    registry.lock().unwrap().entries = entries.into_iter().map(|(repo, tag, e)| ((repo, tag), e)).collect();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let shared = registry.clone();
    tokio::spawn(async move {
        loop {
            let Ok((mut socket, _)) = listener.accept().await else { break };
            let shared = shared.clone();
            tokio::spawn(async move {
                if silent {
                    let mut sink = [0u8; 1024];
                    while socket.read(&mut sink).await.is_ok_and(|n| n > 0) {}
                    return;
                }
                let mut buffer = Vec::new();
                loop {
                    // One request at a time on a kept-alive connection.
                    let end = loop {
                        if let Some(i) = buffer.windows(4).position(|w| w == b"\r\n\r\n") {
                            break i + 4;
                        }
                        let mut chunk = [0u8; 4096];
                        match socket.read(&mut chunk).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => buffer.extend_from_slice(&chunk[..n]),
                        }
                    };
                    let head = String::from_utf8_lossy(&buffer[..end]).to_string();
                    buffer.drain(..end);
                    let mut lines = head.lines();
                    let mut first = lines.next().unwrap_or_default().split(' ');
                    let (method, path) =
                        (first.next().unwrap_or_default().to_owned(), first.next().unwrap_or_default().to_owned());
                    let auth = lines
                        .filter_map(|l| l.split_once(':'))
                        .find(|(k, _)| k.eq_ignore_ascii_case("authorization"))
                        .map(|(_, v)| v.trim().to_owned());
                    let (status, headers, body) = answer(&shared, &method, &path, auth.as_deref(), port);
                    let mut reply = format!(
                        "HTTP/1.1 {status} X\r\ncontent-length: {}\r\n",
                        if method == "HEAD" && status == 200 { 0 } else { body.len() }
                    );
                    for (k, v) in headers {
                        reply.push_str(&format!("{k}: {v}\r\n"));
                    }
                    reply.push_str("\r\n");
                    let mut bytes = reply.into_bytes();
                    bytes.extend_from_slice(&body);
                    if socket.write_all(&bytes).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    (port, registry)
}

fn at(repository: &str, tag: &str, entry: Entry) -> (String, String, Entry) {
    (repository.to_owned(), tag.to_owned(), entry)
}

fn image(path: &str, port: u16, repository: &str, tag: &str) -> ResolvedImage {
    ResolvedImage {
        path: path.to_owned(),
        repository: format!("127.0.0.1:{port}/{repository}"),
        tag: tag.to_owned(),
        values: Vec::new(),
    }
}

fn options(port: u16, arch: Arch) -> ImageCheckOptions {
    ImageCheckOptions {
        plain_http: vec![format!("127.0.0.1:{port}")],
        timeout: Duration::from_secs(5),
        ..ImageCheckOptions::new(arch)
    }
}

const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
const DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";

#[tokio::test]
async fn an_amd64_only_image_is_an_error_naming_each_image_and_the_fix() {
    let (port, registry) = start(
        vec![
            at(
                "langgenius/dify-ee-api",
                "3.9.1",
                Entry::Index(OCI_INDEX, vec!["linux/amd64", "linux/arm64", "unknown/unknown"]),
            ),
            at("ubuntu/squid", "6.13", Entry::Index(DOCKER_LIST, vec!["linux/amd64", "linux/arm64"])),
            at("langgenius/dify-ee-enterprise", "3.9.1", Entry::Single("amd64")),
            at("langgenius/dify-ee-enterprise", "3.9.1-arm64", Entry::Single("arm64")),
            at("langgenius/dify-ee-gateway", "3.9.1", Entry::Index(DOCKER_LIST, vec!["linux/amd64"])),
        ],
        false,
    )
    .await;
    let images = [
        image("api.image", port, "langgenius/dify-ee-api", "3.9.1"),
        image("ssrfProxy.image", port, "ubuntu/squid", "6.13"),
        image("enterprise.image", port, "langgenius/dify-ee-enterprise", "3.9.1"),
        image("gateway.image", port, "langgenius/dify-ee-gateway", "3.9.1"),
        image("plugin_manager.image", port, "langgenius/dify-ee-plugin-manager", "3.9.1"),
    ];
    let report = preflight::check_images(&images, &options(port, Arch::Arm64)).await;
    let outcomes: Vec<&Outcome> = report.images.iter().map(|c| &c.outcome).collect();
    assert_eq!(
        outcomes,
        [
            &Outcome::Runs,
            &Outcome::Runs,
            &Outcome::WrongPlatform(vec!["linux/amd64".into()]),
            &Outcome::WrongPlatform(vec!["linux/amd64".into()]),
            &Outcome::NotFound
        ]
    );
    let err = report.into_result().unwrap_err();
    let text = err.to_string();
    assert_eq!(err.problems.len(), 3, "{text}");
    for needle in [
        "3 image(s) of the release cannot run on linux/arm64 nodes",
        &format!(
            "127.0.0.1:{port}/langgenius/dify-ee-enterprise:3.9.1 (enterprise.image): no linux/arm64 manifest (it has linux/amd64)"
        ),
        "(gateway.image): no linux/arm64 manifest",
        "(plugin_manager.image): not found in its registry",
        "Fix: set [dify.images.<component>]",
        "`<tag>-arm64` tags",
        "--skip-image-check",
    ] {
        assert!(text.contains(needle), "{needle:?} missing in:\n{text}");
    }
    assert!(!text.contains("dify-ee-api"), "an image that runs is not named: {text}");
    // The token flow was used: the challenge, the realm, then manifests with the token.
    let seen = registry.lock().unwrap().seen.clone();
    assert!(seen.iter().any(|s| s.starts_with("GET /token?")), "{seen:?}");

    // The -arm64 tag of the same image runs; on x86_64 nodes the plain tag does.
    let arm = [image("enterprise.image", port, "langgenius/dify-ee-enterprise", "3.9.1-arm64")];
    assert_eq!(preflight::check_images(&arm, &options(port, Arch::Arm64)).await.into_result(), Ok(vec![]));
    let plain = [image("enterprise.image", port, "langgenius/dify-ee-enterprise", "3.9.1")];
    assert_eq!(preflight::check_images(&plain, &options(port, Arch::Amd64)).await.into_result(), Ok(vec![]));
}

#[tokio::test]
async fn a_registry_that_rate_limits_refuses_or_does_not_answer_is_a_warning_and_the_install_goes_on() {
    let (port, _) = start(
        vec![
            at("library/busybox", "latest", Entry::Status(429)),
            at("private/thing", "1", Entry::Status(401)),
            at("langgenius/dify-ee-web", "3.9.1", Entry::Index(OCI_INDEX, vec!["linux/arm64"])),
        ],
        false,
    )
    .await;
    let images = [
        image("plugin_connector.busyBoxImage", port, "library/busybox", "latest"),
        image("x.image", port, "private/thing", "1"),
        image("web.image", port, "langgenius/dify-ee-web", "3.9.1"),
    ];
    let warnings = preflight::check_images(&images, &options(port, Arch::Arm64)).await.into_result().unwrap();
    assert_eq!(warnings.len(), 2, "{warnings:?}");
    assert!(
        warnings[0].contains("rate-limiting (HTTP 429)") && warnings[0].contains("the install goes on"),
        "{warnings:?}"
    );
    assert!(warnings[1].contains("refused to show it (HTTP 401"), "{warnings:?}");

    // A registry that accepts the connection and never answers: bounded, a warning.
    let (silent, _) = start(vec![], true).await;
    let opts = ImageCheckOptions { timeout: Duration::from_millis(300), ..options(silent, Arch::Arm64) };
    let warnings = preflight::check_images(&[image("api.image", silent, "langgenius/dify-ee-api", "3.9.1")], &opts)
        .await
        .into_result()
        .unwrap();
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    assert!(warnings[0].contains("did not answer within"), "{warnings:?}");
    // Nobody listening at all (a port just closed): a warning too.
    let closed = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let dead = closed.local_addr().unwrap().port();
    drop(closed);
    let warnings = preflight::check_images(
        &[image("api.image", dead, "langgenius/dify-ee-api", "3.9.1")],
        &options(dead, Arch::Arm64),
    )
    .await
    .into_result()
    .unwrap();
    assert!(warnings.len() == 1 && warnings[0].contains("not checked"), "{warnings:?}");
}

#[tokio::test]
async fn a_known_digest_is_answered_from_the_cache_with_a_head_and_no_manifest_get() {
    let (port, registry) =
        start(vec![at("langgenius/dify-ee-api", "3.9.1", Entry::Index(OCI_INDEX, vec!["linux/arm64"]))], false).await;
    let cache = std::env::temp_dir().join(format!("dify-stack-image-cache-{}.json", std::process::id()));
    let _ = std::fs::remove_file(&cache);
    let opts = ImageCheckOptions { cache: Some(cache.clone()), ..options(port, Arch::Arm64) };
    let images = [image("api.image", port, "langgenius/dify-ee-api", "3.9.1")];
    let manifest_gets =
        |r: &Shared| r.lock().unwrap().seen.iter().filter(|s| s.starts_with("GET /v2/langgenius")).count();
    assert_eq!(preflight::check_images(&images, &opts).await.into_result(), Ok(vec![]));
    assert_eq!(manifest_gets(&registry), 1, "the first check reads the index once");
    assert_eq!(preflight::check_images(&images, &opts).await.into_result(), Ok(vec![]));
    assert_eq!(manifest_gets(&registry), 1, "the second check: HEAD only");
    let heads = registry.lock().unwrap().seen.iter().filter(|s| s.starts_with("HEAD /v2/")).count();
    assert_eq!(heads, 2);
    let _ = std::fs::remove_file(&cache);
}

#[tokio::test]
async fn the_release_images_are_the_ones_checked_and_an_override_fixes_a_missing_platform() {
    // The release's own images, served by a mirror on loopback: every Dify image is there with
    // arm64 under the tags the stack chooses, but the mirror's unstructured is amd64-only.
    let mut entries = Vec::new();
    let settings = |port: u16| DifySettings {
        image_mirror: Some(format!("127.0.0.1:{port}/langgenius")),
        ..DifySettings::default()
    };
    let planned = settings(1).images(Arch::Arm64, Partition::Aws);
    let names: Vec<(String, String)> = planned
        .iter()
        .filter_map(|i| i.repository.strip_prefix("127.0.0.1:1/").map(|r| (r.to_owned(), i.tag.clone())))
        .collect();
    assert_eq!(names.len(), 15, "14 Dify images and squid: {names:?}");
    for (repo, tag) in names {
        entries.push((repo, tag, Entry::Index(OCI_INDEX, vec!["linux/amd64", "linux/arm64"])));
    }
    entries.push(at("unstructured", "0.0.70", Entry::Index(OCI_INDEX, vec!["linux/amd64"])));
    entries.push(at("unstructured", "0.0.70-arm64", Entry::Index(OCI_INDEX, vec!["linux/arm64"])));
    let (port, _) = start(entries, false).await;
    let mut s = settings(port);
    // The other third-party image from the same mirror, so nothing leaves loopback.
    s.images.insert(
        "unstructured".into(),
        ImageOverride { repository: Some(format!("127.0.0.1:{port}/unstructured")), tag: None },
    );
    // (The plugin connector's helper images are Docker Hub's and gcr.io's: not asked here.)
    let mut release: Vec<ResolvedImage> =
        s.images(Arch::Arm64, Partition::Aws).into_iter().filter(|i| i.path.ends_with(".image")).collect();
    let err = preflight::check_images(&release, &options(port, Arch::Arm64)).await.into_result().unwrap_err();
    assert_eq!(err.problems.len(), 1, "{err}");
    assert!(err.problems[0].contains("unstructured:0.0.70 (unstructured.image)"), "{err}");
    // The amd64-only Dify components were asked for under their -arm64 tags.
    assert!(release.iter().any(|i| i.reference().ends_with("dify-ee-enterprise:3.9.1-arm64")));
    s.images.get_mut("unstructured").unwrap().tag = Some("0.0.70-arm64".into());
    release = s.images(Arch::Arm64, Partition::Aws).into_iter().filter(|i| i.path.ends_with(".image")).collect();
    assert_eq!(preflight::check_images(&release, &options(port, Arch::Arm64)).await.into_result(), Ok(vec![]));
}
