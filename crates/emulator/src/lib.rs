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

/// The pinned emulator version.
pub const MOTO_VERSION: &str = "5.2.5";
/// Header moto reads to select the account of a request.
pub const ACCOUNT_HEADER: &str = "x-moto-account-id";
const LAUNCHER: &str = include_str!("../python/launch.py");
/// moto extensions that model what real AWS does and moto 5.2.5 lacks (EKS add-ons, access
/// entries, accessConfig and cluster security group; the RDS Data API flag and a stateful Data
/// API for databases; ElastiCache deletes that finish).
const MOTO_EXTENSION: &str = include_str!("../python/moto_ext.py");

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

/// How a simulated crash cuts a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cut {
    /// The request never reaches the emulator.
    BeforeSend,
    /// The emulator applies the request but the response is lost.
    AfterSend,
}

/// A request counter with an optional crash point, shared by every client built from one
/// [`TestAccount`]'s config. Used to prove that apply resumes after a crash at any call.
#[derive(Debug)]
pub struct Calls {
    sent: AtomicUsize,
    // "service Operation" of every request, in order.
    log: std::sync::Mutex<Vec<String>>,
    // Requests still allowed through before the crash; usize::MAX = no crash planned.
    budget: AtomicUsize,
    cut_after_send: AtomicBool,
    faults: Mutex<Option<FaultPlan>>,
}

/// A kind of injected fault.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Fault {
    /// A throttling answer in the service's own format (EC2 `RequestLimitExceeded`, S3
    /// `SlowDown` 503, JSON services `ThrottlingException`, query services `Throttling`).
    Throttle,
    /// HTTP 500 with the service's internal-error code.
    ServerError,
    /// HTTP 503 `ServiceUnavailable`.
    Unavailable,
    /// The connection resets before the request reaches the emulator.
    ResetBeforeSend,
    /// The emulator applies the request, then the connection resets (response lost).
    ResetAfterSend,
    /// 20-120 ms of added latency (the request then goes through).
    Latency,
}

#[derive(Debug)]
struct FaultPlan {
    seed: u64,
    rate: f64,
    // How often each request key was seen (the n-th occurrence of a key rolls its own dice).
    occurrences: std::collections::HashMap<u64, u64>,
    seen: std::collections::BTreeMap<Fault, usize>,
}

impl FaultPlan {
    /// The fault (if any) for the `key`'s next occurrence: a pure function of the seed, the
    /// request and how many identical requests came before it, so the same seed injects the
    /// same faults into the same requests whatever order concurrent tasks send them in.
    fn roll(&mut self, key: u64) -> Option<(Fault, u64)> {
        let n = self.occurrences.entry(key).or_default();
        *n += 1;
        let mut rng = fastrand::Rng::with_seed(mix(self.seed, mix(key, *n)));
        if self.rate <= 0.0 || rng.f64() >= self.rate {
            return None;
        }
        const KINDS: [Fault; 6] = [
            Fault::Throttle,
            Fault::ServerError,
            Fault::Unavailable,
            Fault::ResetBeforeSend,
            Fault::ResetAfterSend,
            Fault::Latency,
        ];
        let kind = KINDS[rng.usize(..KINDS.len())];
        *self.seen.entry(kind).or_default() += 1;
        Some((kind, rng.u64(20..120)))
    }
}

/// A 64-bit mix of two values (splitmix64 finaliser over their combination).
fn mix(a: u64, b: u64) -> u64 {
    let mut z = a ^ b.wrapping_add(0x9E37_79B9_7F4A_7C15).wrapping_add(a << 6).wrapping_add(a >> 2);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// FNV-1a over bytes: a hash that is the same in every process (unlike `DefaultHasher`'s
/// guarantees), for fault keys.
fn fnv(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3))
}

/// The identity of a request for fault injection: its operation, URI and body with the parts
/// that differ between runs removed (ids, account ids, tokens and generated secrets: any run of
/// 4+ hex digits holding a digit, or of 16+ alphanumerics, becomes `#`), so the same logical request gets the same
/// key in every run.
fn fault_key(op: &str, request: &HttpRequest) -> u64 {
    let body = request.body().bytes().map(String::from_utf8_lossy).unwrap_or_default();
    let text = format!("{op}\n{}\n{body}", request.uri());
    let mut out = String::with_capacity(text.len());
    let mut run = String::new();
    let flush = |run: &mut String, out: &mut String| {
        // 4+ hex digits with a digit among them: ids, account ids, UUID parts (SDK-generated
        // idempotency tokens). Blanking a constant too (a date) only costs key precision.
        let hex =
            run.len() >= 4 && run.chars().all(|c| c.is_ascii_hexdigit()) && run.chars().any(|c| c.is_ascii_digit());
        out.push_str(if hex || run.len() >= 16 { "#" } else { run.as_str() });
        run.clear();
    };
    for c in text.chars() {
        if c.is_ascii_alphanumeric() {
            run.push(c);
        } else {
            flush(&mut run, &mut out);
            out.push(c);
        }
    }
    flush(&mut run, &mut out);
    fnv(out.as_bytes())
}

impl Default for Calls {
    fn default() -> Self {
        Calls {
            sent: AtomicUsize::new(0),
            log: std::sync::Mutex::new(Vec::new()),
            budget: AtomicUsize::new(usize::MAX),
            cut_after_send: AtomicBool::new(false),
            faults: Mutex::new(None),
        }
    }
}

impl Calls {
    /// Requests seen so far (including the cut ones).
    pub fn count(&self) -> usize {
        self.sent.load(Ordering::SeqCst)
    }

    /// From now on, let `k` requests through, then fail every later one the given way (the
    /// `k+1`-th and all after it), like a process that died at that point.
    pub fn crash_after(&self, k: usize, cut: Cut) {
        self.cut_after_send.store(cut == Cut::AfterSend, Ordering::SeqCst);
        self.budget.store(k, Ordering::SeqCst);
    }

    /// Every request so far as `"service Operation"` (e.g. `"ec2 DescribeVpcs"`,
    /// `"eks GET /clusters/*"` for REST APIs), in order.
    pub fn operations(&self) -> Vec<String> {
        self.log.lock().map(|l| l.clone()).unwrap_or_default()
    }

    /// Requests per `"service Operation"` since the last [`Calls::reset`].
    pub fn by_operation(&self) -> std::collections::BTreeMap<String, usize> {
        let mut out = std::collections::BTreeMap::new();
        for op in self.operations() {
            *out.entry(op).or_insert(0) += 1;
        }
        out
    }

    /// Forgets the recorded operations (the total count keeps running).
    pub fn reset(&self) {
        if let Ok(mut l) = self.log.lock() {
            l.clear();
        }
    }

    fn record(&self, op: String) {
        if let Ok(mut l) = self.log.lock() {
            l.push(op);
        }
    }

    /// From now on, fail a `rate` fraction of requests with a mix of [`Fault`]s. Which request
    /// fails, and how, depends only on `seed`, the request (operation, URI and body, with ids and
    /// generated values blanked) and how many identical requests came before it: the same seed
    /// gives the same faults to the same requests whatever the interleaving of concurrent tasks.
    pub fn inject_faults(&self, seed: u64, rate: f64) {
        if let Ok(mut f) = self.faults.lock() {
            let seen = f.take().map(|p| p.seen).unwrap_or_default();
            *f = Some(FaultPlan { seed, rate, occurrences: Default::default(), seen });
        }
    }

    /// Stops injecting faults (the counts are kept).
    pub fn stop_faults(&self) {
        if let Ok(mut f) = self.faults.lock()
            && let Some(p) = f.as_mut()
        {
            p.rate = 0.0;
        }
    }

    /// How many faults of each kind were injected.
    pub fn faults_injected(&self) -> std::collections::BTreeMap<Fault, usize> {
        self.faults.lock().ok().and_then(|f| f.as_ref().map(|p| p.seen.clone())).unwrap_or_default()
    }

    fn roll_fault(&self, key: u64) -> Option<(Fault, u64)> {
        self.faults.lock().ok()?.as_mut()?.roll(key)
    }

    /// Removes the crash point.
    pub fn heal(&self) {
        self.budget.store(usize::MAX, Ordering::SeqCst);
    }

    /// `Some(cut)` when this request is past the crash point.
    fn next(&self) -> Option<Cut> {
        self.sent.fetch_add(1, Ordering::SeqCst);
        let allowed = self
            .budget
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |b| {
                if b == usize::MAX || b == 0 { None } else { Some(b - 1) }
            })
            .is_ok();
        if allowed || self.budget.load(Ordering::SeqCst) == usize::MAX {
            None
        } else if self.cut_after_send.load(Ordering::SeqCst) {
            Some(Cut::AfterSend)
        } else {
            Some(Cut::BeforeSend)
        }
    }
}

/// Adds the account header to every request (and counts / cuts requests).
#[derive(Debug, Clone)]
struct WithAccount {
    inner: SharedHttpClient,
    account: String,
    calls: Arc<Calls>,
}

#[derive(Debug)]
struct WithAccountConnector {
    inner: SharedHttpConnector,
    account: String,
    calls: Arc<Calls>,
}

impl HttpClient for WithAccount {
    fn http_connector(&self, settings: &HttpConnectorSettings, components: &RuntimeComponents) -> SharedHttpConnector {
        SharedHttpConnector::new(WithAccountConnector {
            inner: self.inner.http_connector(settings, components),
            account: self.account.clone(),
            calls: self.calls.clone(),
        })
    }
}

impl HttpConnector for WithAccountConnector {
    fn call(&self, mut request: HttpRequest) -> HttpConnectorFuture {
        request.headers_mut().insert(ACCOUNT_HEADER, self.account.clone());
        let op = operation_of(&request);
        self.calls.record(op.clone());
        if let Some((fault, millis)) = self.calls.roll_fault(fault_key(&op, &request)) {
            return inject(fault, millis, &op, &request, self.inner.clone());
        }
        let crashed = || ConnectorError::io("simulated crash (dify-stack-emulator Calls::crash_after)".into());
        match self.calls.next() {
            None => self.inner.call(request),
            Some(Cut::BeforeSend) => HttpConnectorFuture::ready(Err(crashed())),
            Some(Cut::AfterSend) => {
                let sent = self.inner.call(request);
                HttpConnectorFuture::new(async move {
                    let _ = sent.await;
                    Err(crashed())
                })
            }
        }
    }
}

/// Answers `request` with `fault`, in the format of the service `op` belongs to.
fn inject(
    fault: Fault,
    millis: u64,
    op: &str,
    request: &HttpRequest,
    inner: SharedHttpConnector,
) -> HttpConnectorFuture {
    let reset = || ConnectorError::io("connection reset by peer (injected fault)".into());
    let service = op.split(' ').next().unwrap_or("?");
    let json = request.headers().get("x-amz-target").is_some()
        || matches!(service, "eks" | "es" | "rds-data" | "ecr" | "kms" | "secretsmanager");
    let (status, code, message) = match fault {
        Fault::Throttle => match service {
            "ec2" => (503, "RequestLimitExceeded", "Request limit exceeded."),
            "s3" => (503, "SlowDown", "Please reduce your request rate."),
            _ if json => (400, "ThrottlingException", "Rate exceeded"),
            _ => (400, "Throttling", "Rate exceeded"),
        },
        Fault::ServerError => (
            500,
            if service == "ec2" || service == "s3" { "InternalError" } else { "InternalFailure" },
            "We encountered an internal error. Please try again.",
        ),
        Fault::Unavailable => (503, "ServiceUnavailable", "Service is unavailable. Please try again."),
        Fault::ResetBeforeSend => return HttpConnectorFuture::ready(Err(reset())),
        Fault::ResetAfterSend => {
            let sent = inner.call(request.try_clone().expect("in-memory request body"));
            return HttpConnectorFuture::new(async move {
                let _ = sent.await;
                Err(reset())
            });
        }
        Fault::Latency => {
            let sent = inner.call(request.try_clone().expect("in-memory request body"));
            return HttpConnectorFuture::new(async move {
                tokio::time::sleep(Duration::from_millis(millis)).await;
                sent.await
            });
        }
    };
    let body = match service {
        "ec2" => format!(
            "<Response><Errors><Error><Code>{code}</Code><Message>{message}</Message></Error></Errors><RequestID>injected</RequestID></Response>"
        ),
        "s3" => {
            format!("<Error><Code>{code}</Code><Message>{message}</Message><RequestId>injected</RequestId></Error>")
        }
        _ if json => format!("{{\"__type\":\"{code}\",\"message\":\"{message}\"}}"),
        _ => format!(
            "<ErrorResponse><Error><Type>Sender</Type><Code>{code}</Code><Message>{message}</Message></Error><RequestId>injected</RequestId></ErrorResponse>"
        ),
    };
    let mut response = aws_smithy_runtime_api::http::Response::new(
        aws_smithy_runtime_api::http::StatusCode::try_from(status).expect("valid status"),
        aws_smithy_types::body::SdkBody::from(body),
    );
    response.headers_mut().insert("content-type", if json { "application/x-amz-json-1.1" } else { "text/xml" });
    if json {
        response.headers_mut().insert("x-amzn-errortype", code);
    }
    response.headers_mut().insert("x-amzn-requestid", "injected");
    HttpConnectorFuture::ready(Ok(response))
}

/// `"service Operation"` of a signed request: the service from the SigV4 credential scope,
/// the operation from `X-Amz-Target` (JSON protocols), `Action=` (query protocols), or the
/// method and path with ids elided (REST protocols).
fn operation_of(request: &HttpRequest) -> String {
    let headers = request.headers();
    let service = headers
        .get("authorization")
        .and_then(|a| a.split("Credential=").nth(1))
        .and_then(|c| c.split('/').nth(3))
        .unwrap_or("?")
        .to_owned();
    if let Some(target) = headers.get("x-amz-target") {
        return format!("{service} {}", target.rsplit('.').next().unwrap_or(target));
    }
    if let Some(body) = request.body().bytes() {
        let body = String::from_utf8_lossy(body);
        if let Some(action) = body.split('&').find_map(|kv| kv.strip_prefix("Action=")) {
            return format!("{service} {action}");
        }
    }
    let uri = request.uri();
    let (path, query) = uri.split_once('?').unwrap_or((uri, ""));
    let path = path.split("://").nth(1).and_then(|p| p.split_once('/')).map(|(_, p)| p).unwrap_or(path);
    let shape: Vec<&str> = path
        .trim_start_matches('/')
        .split('/')
        .enumerate()
        .map(|(i, seg)| {
            if i % 2 == 0 && !seg.is_empty() && service != "s3" {
                seg
            } else if seg.is_empty() {
                ""
            } else {
                "*"
            }
        })
        .collect();
    let sub = query
        .split('&')
        .next()
        .filter(|q| !q.contains('=') && !q.is_empty())
        .map(|q| format!("?{q}"))
        .unwrap_or_default();
    format!("{service} {} /{}{sub}", request.method(), shape.join("/"))
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

    #[test]
    fn the_launcher_binds_loopback_only() {
        assert!(LAUNCHER.contains("\"-H\", \"127.0.0.1\""));
    }
}
