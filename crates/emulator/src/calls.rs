//! What the emulator's clients send: request counting, cut points and injected faults, applied
//! by a connector in front of the HTTP client.

use super::{
    ACCOUNT_HEADER, Arc, AtomicBool, AtomicUsize, ConnectorError, Duration, HttpClient, HttpConnector,
    HttpConnectorFuture, HttpConnectorSettings, HttpRequest, Mutex, Ordering, RuntimeComponents, SharedHttpClient,
    SharedHttpConnector,
};

/// How a simulated crash cuts a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cut {
    /// The request never reaches the emulator.
    BeforeSend,
    /// The emulator applies the request but the response is lost, and so on for every later
    /// request: a lost connection that the run outlives (its tasks keep sending until their
    /// waits give up), harsher than a crash.
    AfterSend,
    /// A process stopped at the cut: the emulator applies the first request past it with the
    /// response lost, and no later request reaches it (nothing the dead run does afterwards
    /// lands).
    Stop,
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
    // With `Cut::Stop`: whether the one request past the cut was sent (later ones never are).
    stop: AtomicBool,
    stopped: AtomicBool,
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
pub(crate) struct FaultPlan {
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
pub(crate) fn mix(a: u64, b: u64) -> u64 {
    let mut z = a ^ b.wrapping_add(0x9E37_79B9_7F4A_7C15).wrapping_add(a << 6).wrapping_add(a >> 2);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// FNV-1a over bytes: a hash that is the same in every process (unlike `DefaultHasher`'s
/// guarantees), for fault keys.
pub(crate) fn fnv(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3))
}

/// The identity of a request for fault injection: its operation, URI and body with the parts
/// that differ between runs removed (ids, account ids, tokens and generated secrets: any run of
/// 4+ hex digits holding a digit, or of 16+ alphanumerics, becomes `#`), so the same logical request gets the same
/// key in every run.
pub(crate) fn fault_key(op: &str, request: &HttpRequest) -> u64 {
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
            stop: AtomicBool::new(false),
            stopped: AtomicBool::new(false),
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
        self.stop.store(cut == Cut::Stop, Ordering::SeqCst);
        self.stopped.store(false, Ordering::SeqCst);
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
        } else if self.stop.load(Ordering::SeqCst) {
            // The first request past the cut is sent (its response lost); none after it is.
            if self.stopped.swap(true, Ordering::SeqCst) { Some(Cut::BeforeSend) } else { Some(Cut::AfterSend) }
        } else if self.cut_after_send.load(Ordering::SeqCst) {
            Some(Cut::AfterSend)
        } else {
            Some(Cut::BeforeSend)
        }
    }
}

/// Adds the account header to every request (and counts / cuts requests).
#[derive(Debug, Clone)]
pub(crate) struct WithAccount {
    pub(crate) inner: SharedHttpClient,
    pub(crate) account: String,
    pub(crate) calls: Arc<Calls>,
}

#[derive(Debug)]
pub(crate) struct WithAccountConnector {
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
            Some(Cut::BeforeSend | Cut::Stop) => HttpConnectorFuture::ready(Err(crashed())),
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
pub(crate) fn inject(
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
pub(crate) fn operation_of(request: &HttpRequest) -> String {
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

#[cfg(test)]
mod tests {
    use super::{Calls, Cut};

    /// The cut points as the connector sees them, request by request.
    fn cuts(cut: Cut) -> Vec<Option<Cut>> {
        let calls = Calls::default();
        calls.crash_after(2, cut);
        (0..5).map(|_| calls.next()).collect()
    }

    /// Before-send never lets a request past the cut through; after-send lets every later one
    /// land with its response lost; a stop lets exactly the first land and none after it.
    #[test]
    fn the_three_cuts_differ_in_what_reaches_the_emulator_after_the_cut() {
        let (b, a) = (Some(Cut::BeforeSend), Some(Cut::AfterSend));
        assert_eq!(cuts(Cut::BeforeSend), [None, None, b, b, b]);
        assert_eq!(cuts(Cut::AfterSend), [None, None, a, a, a]);
        assert_eq!(cuts(Cut::Stop), [None, None, a, b, b]);
        let healed = Calls::default();
        healed.crash_after(0, Cut::Stop);
        healed.heal();
        assert_eq!(healed.next(), None, "heal removes the cut");
    }
}
