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
    use super::parse_address;

    #[test]
    fn checkip_answers_are_parsed_and_garbage_is_refused() {
        assert_eq!(parse_address("198.51.100.7\n").unwrap().to_string(), "198.51.100.7");
        assert_eq!(parse_address("10.0.0.1, 198.51.100.7\n").unwrap().to_string(), "198.51.100.7");
        assert!(parse_address("<html>captive portal</html>").unwrap_err().contains("not an IPv4"));
        assert!(parse_address("2001:db8::1").is_err());
    }
}
