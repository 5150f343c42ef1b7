//! How the machine running apply reaches the Kubernetes API: in the default
//! [`KubernetesAccess::CallerAddress`](crate::config::KubernetesAccess) mode, this machine's
//! public IPv4 address, asked of a "what is my address" endpoint (`https://checkip.amazonaws.com`
//! by default, which answers the caller's address as plain text).

use std::net::Ipv4Addr;
use std::time::Duration;

/// How long the address lookup may take in all.
const LOOKUP_TIMEOUT: Duration = Duration::from_secs(15);

/// Why a plain web request (the caller-address lookup, the console probe) could not be made or
/// answered.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AccessError {
    /// The URL does not parse.
    #[error("{url:?} is not a URL: {source}")]
    NotAUrl {
        /// The URL given.
        url: String,
        /// The parser's error.
        #[source]
        source: http::uri::InvalidUri,
    },
    /// The URL has no scheme or no host.
    #[error("{url:?} needs a scheme and a host, e.g. {}", crate::config::DEFAULT_CHECKIP_URL)]
    NoHost {
        /// The URL given.
        url: String,
    },
    /// The request could not be built.
    #[error(transparent)]
    Request(#[from] http::Error),
    /// The HTTP client could not be made, or the request failed.
    #[error(transparent)]
    Client(#[from] kube::Error),
    /// No answer in time.
    #[error("no answer within {0:?}")]
    NoAnswer(Duration),
    /// The answer is not an IPv4 address.
    #[error("the answer {answer:?} is not an IPv4 address (EKS public access CIDRs are IPv4)")]
    NotIpv4 {
        /// The start of the answer (60 characters at most).
        answer: String,
    },
}

impl dify_stack_core::Classify for AccessError {
    fn kind(&self) -> dify_stack_core::ErrorKind {
        use dify_stack_core::ErrorKind;
        match self {
            // Fixed in the configuration (eks.checkip_url), not by waiting.
            AccessError::NotAUrl { .. } | AccessError::NoHost { .. } | AccessError::Request(_) => ErrorKind::Invalid,
            AccessError::Client(_) | AccessError::NoAnswer(_) => ErrorKind::Transient,
            AccessError::NotIpv4 { .. } => ErrorKind::Other,
        }
    }
}

/// This machine's public IPv4 address as `url` sees it.
pub(crate) async fn caller_address(url: &str) -> Result<Ipv4Addr, AccessError> {
    let (client, path) = plain_client(url)?;
    let request = http::Request::get(path).body(Vec::new())?;
    let body = tokio::time::timeout(LOOKUP_TIMEOUT, client.request_text(request))
        .await
        .map_err(|_| AccessError::NoAnswer(LOOKUP_TIMEOUT))??;
    parse_address(&body)
}

/// An HTTP(S) client for `url`'s scheme and host (no authentication; the system's roots for TLS;
/// 10 s to connect and to read) and the path and query to ask it, for plain web requests such as
/// the caller-address lookup and the console probe.
pub(crate) fn plain_client(url: &str) -> Result<(kube::Client, String), AccessError> {
    let not_a_url = |source| AccessError::NotAUrl { url: url.to_owned(), source };
    let uri: http::Uri = url.parse().map_err(not_a_url)?;
    let (Some(scheme), Some(authority)) = (uri.scheme(), uri.authority()) else {
        return Err(AccessError::NoHost { url: url.to_owned() });
    };
    let base: http::Uri = format!("{scheme}://{authority}").parse().map_err(not_a_url)?;
    let path = uri.path_and_query().map_or("/", |p| p.as_str()).to_owned();
    let mut config = kube::Config::new(base);
    config.connect_timeout = Some(Duration::from_secs(10));
    config.read_timeout = Some(Duration::from_secs(10));
    Ok((kube::Client::try_from(config)?, path))
}

/// The Kubernetes API's endpoint could not be reached from this machine after apply set the
/// endpoint access: the run stops here, before the nodes that use the API, naming the fix.
#[derive(Debug, thiserror::Error)]
#[error(
    "the Kubernetes API at {endpoint} cannot be reached from this machine after the endpoint access was set (eks.kubernetes_access = {mode}; last attempt: {last}). Fix: run apply from inside the VPC or from an address in eks.endpoint.public_access_cidrs, use eks.kubernetes_access = caller_address, or role_only to write the manifests instead"
)]
pub(crate) struct EndpointUnreachable {
    /// The endpoint URL.
    pub(crate) endpoint: String,
    /// The configured access mode.
    pub(crate) mode: String,
    /// The last attempt's failure (connect refused, timed out, name not resolved).
    pub(crate) last: String,
    /// The wait that ended.
    #[source]
    pub(crate) source: dify_stack_core::wait::WaitError<std::io::Error>,
}

impl dify_stack_core::Classify for EndpointUnreachable {
    /// Refused: the access configuration or where apply runs must change (a re-run from the same
    /// place meets the same refusal).
    fn kind(&self) -> dify_stack_core::ErrorKind {
        dify_stack_core::ErrorKind::Refused
    }
}

/// Probes the Kubernetes API endpoint from this machine: a TCP connection to its host and port
/// (443 for https), which the public endpoint accepts only from an allowed CIDR (EKS user guide,
/// "Cluster API server endpoint": requests from addresses outside the public access CIDRs are
/// not answered) and the private one only from inside the VPC. No credentials are sent. A new
/// endpoint or a new access rule can take a moment to apply, so the probe is retried within
/// `policy`.
pub(crate) async fn probe_endpoint(
    endpoint: &str,
    mode: &str,
    policy: &dify_stack_core::WaitPolicy,
    cancel: &dify_stack_core::CancellationToken,
) -> Result<(), EndpointUnreachable> {
    use dify_stack_core::wait::{self, Probe};
    let unreachable = |last: String, source| EndpointUnreachable {
        endpoint: endpoint.to_owned(),
        mode: mode.to_owned(),
        last,
        source,
    };
    let uri: http::Uri = endpoint.parse().map_err(|e: http::uri::InvalidUri| {
        let io = std::io::Error::new(std::io::ErrorKind::InvalidInput, e.to_string());
        unreachable(
            format!("{endpoint:?} is not a URL"),
            wait::WaitError::Failed { what: "the endpoint".into(), attempts: 0, source: io },
        )
    })?;
    let host = uri.host().unwrap_or_default().to_owned();
    let port = uri.port_u16().unwrap_or(if uri.scheme_str() == Some("http") { 80 } else { 443 });
    let last = std::sync::Mutex::new(String::new());
    let what = format!("the Kubernetes API at {endpoint} to accept a connection");
    let result = wait::until(&what, policy, cancel, || async {
        match tokio::time::timeout(CONNECT_TIMEOUT, tokio::net::TcpStream::connect((host.as_str(), port))).await {
            Ok(Ok(_)) => Ok::<_, std::io::Error>(Probe::Done(())),
            Ok(Err(e)) => {
                *last.lock().unwrap_or_else(|p| p.into_inner()) = e.to_string();
                Ok(Probe::Pending(e.to_string()))
            }
            Err(_) => {
                let text = format!("no connection within {CONNECT_TIMEOUT:?}");
                *last.lock().unwrap_or_else(|p| p.into_inner()) = text.clone();
                Ok(Probe::Pending(text))
            }
        }
    })
    .await;
    result.map_err(|e| unreachable(last.into_inner().unwrap_or_else(|p| p.into_inner()), e))
}

/// How long one connection attempt of the endpoint probe may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// The address in a checkip answer. Behind some proxies the service answers a comma-separated
/// list whose last entry is the address the service saw; that one is used.
pub(crate) fn parse_address(body: &str) -> Result<Ipv4Addr, AccessError> {
    let last = body.trim().rsplit(',').next().unwrap_or_default().trim();
    last.parse::<Ipv4Addr>().map_err(|_| AccessError::NotIpv4 { answer: body.chars().take(60).collect() })
}

#[cfg(test)]
mod tests {
    use super::{parse_address, probe_endpoint};
    use dify_stack_core::{CancellationToken, WaitPolicy};

    fn brief() -> WaitPolicy {
        WaitPolicy {
            initial_interval: std::time::Duration::from_millis(20),
            max_interval: std::time::Duration::from_millis(50),
            max_wait: std::time::Duration::from_millis(300),
            ..Default::default()
        }
    }

    /// An endpoint that accepts connections passes; one whose port is closed (as an address
    /// outside the public access CIDRs meets it) fails naming the endpoint, the mode and the fix.
    #[tokio::test]
    async fn the_endpoint_probe_passes_a_listening_endpoint_and_names_the_fix_for_a_closed_one() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let open = format!("https://127.0.0.1:{}", listener.local_addr().unwrap().port());
        probe_endpoint(&open, "caller_address", &brief(), &CancellationToken::new()).await.unwrap();
        let closed = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            format!("https://127.0.0.1:{}", l.local_addr().unwrap().port())
        };
        let err = probe_endpoint(&closed, "public_cidrs", &brief(), &CancellationToken::new()).await.unwrap_err();
        let text = err.to_string();
        for part in [closed.as_str(), "public_cidrs", "Fix:", "eks.endpoint.public_access_cidrs", "role_only"] {
            assert!(text.contains(part), "{part:?} missing: {text}");
        }
        assert_eq!(dify_stack_core::Classify::kind(&err), dify_stack_core::ErrorKind::Refused);
    }

    #[test]
    fn checkip_answers_are_parsed_and_garbage_is_refused() {
        assert_eq!(parse_address("198.51.100.7\n").unwrap().to_string(), "198.51.100.7");
        assert_eq!(parse_address("10.0.0.1, 198.51.100.7\n").unwrap().to_string(), "198.51.100.7");
        assert!(parse_address("<html>captive portal</html>").unwrap_err().to_string().contains("not an IPv4"));
        assert!(parse_address("2001:db8::1").is_err());
    }

    /// Each way a checkip URL or answer is unusable is a typed error with its message and kind.
    #[test]
    fn access_errors_keep_their_messages_and_classify() {
        use super::{AccessError, plain_client};
        use dify_stack_core::{Classify as _, ErrorKind};
        let Err(no_host) = plain_client("checkip") else { panic!("checkip is no URL") };
        assert!(matches!(&no_host, AccessError::NoHost { url } if url == "checkip"), "{no_host:?}");
        assert!(no_host.to_string().starts_with("\"checkip\" needs a scheme and a host, e.g. https://"), "{no_host}");
        assert_eq!(no_host.kind(), ErrorKind::Invalid);
        let Err(not_a_url) = plain_client("http://exa mple") else { panic!("a space is no URL") };
        assert!(not_a_url.to_string().starts_with("\"http://exa mple\" is not a URL: "), "{not_a_url}");
        assert_eq!(AccessError::NoAnswer(super::LOOKUP_TIMEOUT).to_string(), "no answer within 15s");
        assert!(AccessError::NoAnswer(super::LOOKUP_TIMEOUT).is_retryable());
        let garbage = parse_address("<html>").unwrap_err();
        assert!(matches!(&garbage, AccessError::NotIpv4 { answer } if answer == "<html>"), "{garbage:?}");
    }
}
