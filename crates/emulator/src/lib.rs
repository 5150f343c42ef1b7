//! Local AWS emulator harness for dify-stack tests, benchmarks and the demo.
//!
//! It finds (or installs, once) the pinned `moto[server]==5.2.5` in a project-local virtualenv,
//! starts it on a free port of 127.0.0.1, waits until it accepts connections, and hands out
//! [`SdkConfig`]s pointed at it.
//!
//! # Isolation
//!
//! Every [`Emulator::account`] call returns a fresh 12-digit account id; its `SdkConfig` sends
//! the `x-moto-account-id` header on every request, so each test sees an empty AWS of its own on
//! one shared server. Tests can therefore run in parallel without resetting the server, and no
//! test sees another's resources. (Moto keeps S3 bucket names global: use distinct stack names.)
//!
//! # Lifetime
//!
//! [`Emulator::shared`] starts one server per process, on first use. The server is started
//! through a small launcher that exits when its standard input closes, so it stops when the test
//! binary ends, however it ends. Set `DIFY_STACK_EMULATOR_URL` to use a server that is already
//! running instead (benchmarks do).
//!
//! # Locations
//!
//! The virtualenv is `DIFY_STACK_EMULATOR_VENV` if set, else `.venv-emulator` at the workspace
//! root when built from the workspace, else `~/.cache/dify-stack/venv-moto-5.2.5`.

use std::io::{BufRead, BufReader};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use aws_config::BehaviorVersion;
use aws_config::retry::RetryConfig;
use aws_credential_types::Credentials;
use aws_smithy_runtime_api::client::http::{
    HttpClient, HttpConnector, HttpConnectorFuture, HttpConnectorSettings, SharedHttpClient, SharedHttpConnector,
};
use aws_smithy_runtime_api::client::orchestrator::HttpRequest;
use aws_smithy_runtime_api::client::result::ConnectorError;
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_types::SdkConfig;
use aws_types::region::Region;

mod calls;
use calls::WithAccount;
pub use calls::{Calls, Cut, Fault};

/// The pinned emulator version.
pub const MOTO_VERSION: &str = "5.2.5";
/// Header moto reads to select the account of a request.
pub const ACCOUNT_HEADER: &str = "x-moto-account-id";
const LAUNCHER: &str = include_str!("../python/launch.py");
/// moto extensions that model what real AWS does and moto 5.2.5 lacks (EKS add-ons, access
/// entries, accessConfig and cluster security group; the RDS Data API flag and a stateful Data
/// API for databases; ElastiCache deletes that finish).
const MOTO_EXTENSION: &str = include_str!("../python/moto_ext.py");
/// EKS day-two rules on the extension's EKS model (one update type per call, busy refusals).
const MOTO_DAY2: &str = include_str!("../python/moto_day2.py");
/// The Elastic IP quota per account (DescribeAccountAttributes, AllocateAddress refusals).
const MOTO_QUOTA: &str = include_str!("../python/moto_quota.py");
/// Version upgrades: EKS UpdateClusterVersion, UpdateNodegroupVersion and upgrade insights,
/// OpenSearch UpgradeDomain, Aurora engine version changes.
const MOTO_UPGRADE: &str = include_str!("../python/moto_upgrade.py");

/// Why the emulator could not be provided.
#[derive(Debug, thiserror::Error)]
pub enum EmulatorError {
    /// No Python 3 interpreter on PATH.
    #[error(
        "python3 was not found on PATH; install Python 3.9+ with venv and pip (Debian: apt-get install python3 python3-venv python3-pip)"
    )]
    PythonMissing,
    /// Creating the virtualenv or installing moto failed.
    #[error("installing moto[server]=={MOTO_VERSION} into {venv} failed: {detail}")]
    Install {
        /// The virtualenv path.
        venv: PathBuf,
        /// What the installer said.
        detail: String,
    },
    /// The server process could not be started or did not come up.
    #[error("the emulator did not start: {0}")]
    Start(String),
}

/// A running emulator (owned or external).
#[derive(Debug)]
pub struct Emulator {
    endpoint: String,
    // Keeping the pipe open keeps the server alive; dropping it stops the server.
    process: Mutex<Option<(Child, ChildStdin)>>,
}

static SHARED: OnceLock<Result<Emulator, String>> = OnceLock::new();
static NEXT_ACCOUNT: AtomicU32 = AtomicU32::new(1);

impl Emulator {
    /// The emulator shared by everything in this process, started on first use (or the one at
    /// `DIFY_STACK_EMULATOR_URL`).
    ///
    /// # Panics
    ///
    /// Never; a start failure is returned as an error on every call.
    pub fn shared() -> Result<&'static Emulator, EmulatorError> {
        SHARED
            .get_or_init(|| match std::env::var("DIFY_STACK_EMULATOR_URL") {
                Ok(url) if !url.is_empty() => Ok(Emulator::external(url)),
                _ => Emulator::start().map_err(|e| e.to_string()),
            })
            .as_ref()
            .map_err(|e| EmulatorError::Start(e.clone()))
    }

    /// Uses a server that is already running at `endpoint` (e.g. `http://127.0.0.1:5000`).
    pub fn external(endpoint: impl Into<String>) -> Emulator {
        Emulator { endpoint: endpoint.into(), process: Mutex::new(None) }
    }

    /// Installs moto if needed and starts a new server on a free loopback port.
    pub fn start() -> Result<Emulator, EmulatorError> {
        let venv = venv_dir();
        let python = ensure_installed(&venv)?;
        let mut child = Command::new(&python)
            .arg("-c")
            .arg(LAUNCHER)
            .arg("0")
            .arg(MOTO_EXTENSION)
            .arg(MOTO_DAY2)
            .arg(MOTO_QUOTA)
            .arg(MOTO_UPGRADE)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| EmulatorError::Start(format!("spawning {}: {e}", python.display())))?;
        let stdin = child.stdin.take().ok_or_else(|| EmulatorError::Start("no stdin pipe".into()))?;
        let stderr = child.stderr.take().ok_or_else(|| EmulatorError::Start("no stderr pipe".into()))?;
        let (tx, rx) = std::sync::mpsc::channel();
        // Reads the server's log: reports the port once, then keeps draining so the server
        // never blocks on a full pipe.
        std::thread::spawn(move || {
            let mut tx = Some(tx);
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                let Some(sender) = tx.as_ref() else { continue };
                if let Some(port) = parse_port(&line) {
                    let _ = sender.send(Ok(port));
                    tx = None;
                } else if line.contains("Error") || line.contains("No module") {
                    let _ = sender.send(Err(line));
                }
            }
        });
        let port = match rx.recv_timeout(Duration::from_secs(60)) {
            Ok(Ok(port)) => port,
            Ok(Err(line)) => {
                let _ = child.kill();
                return Err(EmulatorError::Start(line));
            }
            Err(_) => {
                let _ = child.kill();
                return Err(EmulatorError::Start("no ' * Running on' line within 60 s".into()));
            }
        };
        wait_until_accepting(SocketAddr::from(([127, 0, 0, 1], port)))?;
        Ok(Emulator { endpoint: format!("http://127.0.0.1:{port}"), process: Mutex::new(Some((child, stdin))) })
    }

    /// The server's base URL.
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// The emulator's model of `https://checkip.amazonaws.com`: answers the caller's address as
    /// this server sees it (for `eks.checkip_url` in tests and the demo).
    pub fn checkip_url(&self) -> String {
        format!("{}/moto-api/dify-stack/checkip", self.endpoint)
    }

    /// A fresh, empty account: its id and an `SdkConfig` whose every request goes to that account.
    pub async fn account(&self, region: &str) -> TestAccount {
        let n = NEXT_ACCOUNT.fetch_add(1, Ordering::Relaxed);
        let account_id = format!("{:05}{:07}", std::process::id() % 100_000, n % 10_000_000);
        let calls = Arc::new(Calls::default());
        let config = self.build_config(region, Some((&account_id, calls.clone()))).await;
        TestAccount { account_id, config, calls }
    }

    /// An `SdkConfig` pointed at the emulator: static test credentials, the given region, one
    /// attempt per request (moto's "not implemented" answers fail fast), and the account header
    /// when `account_id` is given (otherwise moto's default account 123456789012).
    pub async fn sdk_config(&self, region: &str, account_id: Option<&str>) -> SdkConfig {
        self.build_config(region, account_id.map(|a| (a, Arc::new(Calls::default())))).await
    }

    async fn build_config(&self, region: &str, account: Option<(&str, Arc<Calls>)>) -> SdkConfig {
        let base = aws_config::defaults(BehaviorVersion::latest())
            .region(Region::new(region.to_owned()))
            .endpoint_url(&self.endpoint)
            .credentials_provider(Credentials::new("testing", "testing", None, None, "dify-stack-emulator"))
            .retry_config(RetryConfig::standard().with_max_attempts(1))
            .load()
            .await;
        // The emulator speaks plain HTTP on loopback: a plain connector, wrapped to add the
        // account header when asked.
        let http = aws_smithy_http_client::Builder::new().build_http();
        let builder = base.into_builder();
        match account {
            Some((account, calls)) => {
                builder.http_client(WithAccount { inner: http, account: account.to_owned(), calls }).build()
            }
            None => builder.http_client(http).build(),
        }
    }

    /// Every resource the emulator holds for `account_id` in `region` (and the global services),
    /// tagged or not, as sorted `service.collection key` lines; resources in a terminal deleted
    /// state AWS keeps listing (a NAT gateway `deleted`, a KMS key pending deletion, a secret
    /// scheduled for deletion) are left out. For leak checks that compare the whole account
    /// before and after, not only what a tag filter finds.
    pub async fn state(&self, account_id: &str, region: &str) -> Vec<String> {
        use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
        let host = self.endpoint.trim_start_matches("http://").trim_end_matches('/').to_owned();
        let mut stream = tokio::net::TcpStream::connect(&host).await.expect("the emulator is running");
        let request = format!(
            "GET /moto-api/dify-stack/state?account={account_id}&region={region} HTTP/1.0\r\nHost: {host}\r\n\r\n"
        );
        stream.write_all(request.as_bytes()).await.expect("request sent");
        let mut reply = String::new();
        stream.read_to_string(&mut reply).await.expect("reply read");
        let (head, body) = reply.split_once("\r\n\r\n").unwrap_or((&reply, ""));
        assert!(head.starts_with("HTTP/1.") && head.contains(" 200 "), "state dump failed: {head}");
        body.lines().map(str::to_owned).collect()
    }

    /// Stops an owned server (external servers are left alone). Also happens at process exit.
    pub fn stop(&self) {
        if let Ok(mut guard) = self.process.lock()
            && let Some((mut child, stdin)) = guard.take()
        {
            drop(stdin);
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for Emulator {
    fn drop(&mut self) {
        self.stop();
    }
}

/// An isolated account on the emulator.
#[derive(Debug, Clone)]
pub struct TestAccount {
    /// The 12-digit account id.
    pub account_id: String,
    /// SDK configuration whose requests all land in this account.
    pub config: SdkConfig,
    /// Counts the requests made with `config` and injects crashes.
    pub calls: Arc<Calls>,
}

fn parse_port(line: &str) -> Option<u16> {
    let rest = line.split("Running on http://127.0.0.1:").nth(1)?;
    rest.trim().trim_end_matches('/').parse().ok()
}

fn wait_until_accepting(addr: SocketAddr) -> Result<(), EmulatorError> {
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut pause = Duration::from_millis(10);
    loop {
        if TcpStream::connect_timeout(&addr, Duration::from_secs(1)).is_ok() {
            return Ok(());
        }
        if Instant::now() >= deadline {
            return Err(EmulatorError::Start(format!("{addr} did not accept connections within 30 s")));
        }
        std::thread::sleep(pause);
        pause = (pause * 2).min(Duration::from_millis(200));
    }
}

/// The virtualenv directory (see the crate docs).
pub fn venv_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("DIFY_STACK_EMULATOR_VENV") {
        return PathBuf::from(dir);
    }
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    if workspace.join("Cargo.toml").is_file() && workspace.join("crates/emulator").is_dir() {
        return workspace.join(".venv-emulator");
    }
    let cache = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
        .unwrap_or_else(std::env::temp_dir);
    cache.join("dify-stack").join(format!("venv-moto-{MOTO_VERSION}"))
}

static INSTALL: Mutex<()> = Mutex::new(());

/// Makes sure the virtualenv holds the pinned moto; returns its Python interpreter.
pub fn ensure_installed(venv: &Path) -> Result<PathBuf, EmulatorError> {
    let _guard = INSTALL.lock().unwrap_or_else(|p| p.into_inner());
    let python = venv.join("bin").join("python");
    let marker = venv.join(format!(".moto-{MOTO_VERSION}-installed"));
    if marker.is_file() && python.is_file() {
        return Ok(python);
    }
    let fail = |detail: String| EmulatorError::Install { venv: venv.to_owned(), detail };
    if !python.is_file() {
        let out = Command::new("python3").arg("-m").arg("venv").arg(venv).output().map_err(|e| {
            if e.kind() == std::io::ErrorKind::NotFound { EmulatorError::PythonMissing } else { fail(e.to_string()) }
        })?;
        if !out.status.success() {
            return Err(fail(String::from_utf8_lossy(&out.stderr).into_owned()));
        }
    }
    let out = Command::new(&python)
        .args(["-m", "pip", "install", "--quiet", "--disable-pip-version-check"])
        .arg(format!("moto[server]=={MOTO_VERSION}"))
        .output()
        .map_err(|e| fail(e.to_string()))?;
    if !out.status.success() {
        return Err(fail(String::from_utf8_lossy(&out.stderr).into_owned()));
    }
    std::fs::write(&marker, MOTO_VERSION).map_err(|e| fail(e.to_string()))?;
    Ok(python)
}

/// Runs a test fixture's create call that names an IAM role made moments before (e.g. a foreign
/// EKS cluster), retrying while the strict emulator answers as AWS does before IAM has
/// propagated the role ("could not be assumed"). Library code has its own bounded retry; this is
/// for fixtures that call the SDK directly. Gives up after 30 s with the last error.
pub async fn retry_while_role_propagates<T, E, F, Fut>(mut op: F) -> Result<T, E>
where
    E: std::fmt::Debug,
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, E>>,
{
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    let mut delay = Duration::from_millis(50);
    loop {
        match op().await {
            Err(e) if format!("{e:?}").contains("could not be assumed") && tokio::time::Instant::now() < deadline => {
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_millis(400));
            }
            other => return other,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_port_is_read_from_the_server_log() {
        assert_eq!(parse_port(" * Running on http://127.0.0.1:40123"), Some(40123));
        assert_eq!(parse_port("WARNING: This is a development server."), None);
    }

    /// The server started for tests answers on loopback and on no other address of the machine
    /// (where the machine has one a UDP socket can name; a sandbox without a route has none).
    #[test]
    fn the_emulator_listens_on_loopback_only() {
        let emulator = Emulator::start().expect("the emulator starts (scripts/install-emulator)");
        let port: u16 =
            emulator.endpoint().rsplit(':').next().and_then(|p| p.trim_end_matches('/').parse().ok()).unwrap();
        assert!(emulator.endpoint().starts_with("http://127.0.0.1:"), "{}", emulator.endpoint());
        assert!(std::net::TcpStream::connect(("127.0.0.1", port)).is_ok(), "it answers on loopback");
        let outward = std::net::UdpSocket::bind("0.0.0.0:0")
            .and_then(|s| s.connect("192.0.2.1:9").map(|()| s))
            .and_then(|s| s.local_addr())
            .ok()
            .map(|a| a.ip())
            .filter(|ip| !ip.is_loopback() && !ip.is_unspecified());
        if let Some(ip) = outward {
            let refused = std::net::TcpStream::connect_timeout(&(ip, port).into(), Duration::from_secs(2)).is_err();
            assert!(refused, "the emulator answers on {ip}:{port}, not only on loopback");
        }
        emulator.stop();
    }
}
