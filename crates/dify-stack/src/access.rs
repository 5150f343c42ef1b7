//! How the machine running apply reaches the Kubernetes API: in the default
//! [`KubernetesAccess::CallerAddress`](crate::config::KubernetesAccess) mode, this machine's
//! public IPv4 address, asked of a "what is my address" endpoint (`https://checkip.amazonaws.com`
//! by default, which answers the caller's address as plain text).

use std::net::Ipv4Addr;
use std::time::Duration;

/// How long the address lookup may take in all.
const LOOKUP_TIMEOUT: Duration = Duration::from_secs(15);

/// This machine's public IPv4 address as `url` sees it.
pub(crate) async fn caller_address(url: &str) -> Result<Ipv4Addr, String> {
    let (client, path) = plain_client(url)?;
    let request = http::Request::get(path).body(Vec::new()).map_err(|e| e.to_string())?;
    let body = tokio::time::timeout(LOOKUP_TIMEOUT, client.request_text(request))
        .await
        .map_err(|_| format!("no answer within {LOOKUP_TIMEOUT:?}"))?
        .map_err(|e| e.to_string())?;
    parse_address(&body)
}

/// An HTTP(S) client for `url`'s scheme and host (no authentication; the system's roots for TLS;
/// 10 s to connect and to read) and the path and query to ask it, for plain web requests such as
/// the caller-address lookup and the console probe.
pub(crate) fn plain_client(url: &str) -> Result<(kube::Client, String), String> {
    let uri: http::Uri = url.parse().map_err(|e| format!("{url:?} is not a URL: {e}"))?;
    let (Some(scheme), Some(authority)) = (uri.scheme(), uri.authority()) else {
        return Err(format!("{url:?} needs a scheme and a host, e.g. {}", crate::config::DEFAULT_CHECKIP_URL));
    };
    let base: http::Uri =
        format!("{scheme}://{authority}").parse().map_err(|e: http::uri::InvalidUri| e.to_string())?;
    let path = uri.path_and_query().map_or("/", |p| p.as_str()).to_owned();
    let mut config = kube::Config::new(base);
    config.connect_timeout = Some(Duration::from_secs(10));
    config.read_timeout = Some(Duration::from_secs(10));
    Ok((kube::Client::try_from(config).map_err(|e| e.to_string())?, path))
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
pub(crate) fn parse_address(body: &str) -> Result<Ipv4Addr, String> {
    let last = body.trim().rsplit(',').next().unwrap_or_default().trim();
    last.parse::<Ipv4Addr>().map_err(|_| {
        format!(
            "the answer {:?} is not an IPv4 address (EKS public access CIDRs are IPv4)",
            body.chars().take(60).collect::<String>()
        )
    })
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
        assert!(parse_address("<html>captive portal</html>").unwrap_err().contains("not an IPv4"));
        assert!(parse_address("2001:db8::1").is_err());
    }
}
