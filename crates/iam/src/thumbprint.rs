//! The OIDC provider thumbprint fallback: the SHA-1 fingerprint of the last certificate the
//! issuer presents in its TLS chain (its root or top intermediate CA), as `aws iam` and eksctl
//! compute it. IAM validates EKS issuers against its own trusted CAs, so a failure to reach the
//! issuer is not an error: the provider is then created without a thumbprint.

use std::sync::Arc;
use std::time::Duration;

use rustls::RootCertStore;
use rustls_pki_types::ServerName;
use tokio::net::TcpStream;

/// Why no thumbprint could be computed.
#[derive(Debug, thiserror::Error)]
#[error("no thumbprint for {url}: {reason}")]
pub struct ThumbprintError {
    /// The issuer URL.
    pub url: String,
    /// What failed.
    pub reason: String,
}

/// The trust anchors of the operating system.
pub fn native_roots() -> RootCertStore {
    let mut roots = RootCertStore::empty();
    for cert in rustls_native_certs::load_native_certs().certs {
        let _ = roots.add(cert);
    }
    roots
}

/// Connects to the issuer (verifying its chain against `roots`) and returns the lowercase hex
/// SHA-1 of the last certificate of the presented chain. Bounded by `timeout`.
pub async fn issuer_thumbprint(url: &str, roots: RootCertStore, timeout: Duration) -> Result<String, ThumbprintError> {
    let fail = |reason: String| ThumbprintError { url: url.to_owned(), reason };
    let authority = url
        .strip_prefix("https://")
        .ok_or_else(|| fail("not an https URL".into()))?
        .split('/')
        .next()
        .unwrap_or_default();
    let (host, port) = match authority.rsplit_once(':') {
        Some((h, p)) => (h, p.parse::<u16>().map_err(|e| fail(format!("bad port: {e}")))?),
        None => (authority, 443),
    };
    let name = ServerName::try_from(host.to_owned()).map_err(|e| fail(e.to_string()))?;
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| fail(e.to_string()))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let handshake = async {
        let tcp = TcpStream::connect((host, port)).await.map_err(|e| fail(format!("connect: {e}")))?;
        connector.connect(name, tcp).await.map_err(|e| fail(format!("TLS: {e}")))
    };
    let stream =
        tokio::time::timeout(timeout, handshake).await.map_err(|_| fail(format!("no answer within {timeout:?}")))??;
    let chain = stream.get_ref().1.peer_certificates().ok_or_else(|| fail("no certificate presented".into()))?;
    let last = chain.last().ok_or_else(|| fail("empty certificate chain".into()))?;
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA1_FOR_LEGACY_USE_ONLY, last.as_ref());
    Ok(digest.as_ref().iter().map(|b| format!("{b:02x}")).collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use rcgen::{BasicConstraints, CertificateParams, IsCa, KeyPair};
    use rustls_pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

    /// A CA and a `localhost` leaf it signed, served on a loopback port with the chain
    /// `[leaf, ca]`; returns the URL, the CA (as the only trust anchor) and the CA's DER.
    async fn issuer() -> (String, RootCertStore, Vec<u8>) {
        let ca_key = KeyPair::generate().unwrap();
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let ca = ca_params.self_signed(&ca_key).unwrap();
        let issuer = rcgen::Issuer::from_params(&ca_params, &ca_key);
        let leaf_key = KeyPair::generate().unwrap();
        let leaf = CertificateParams::new(vec!["localhost".to_owned()]).unwrap().signed_by(&leaf_key, &issuer).unwrap();
        let chain = vec![leaf.der().clone(), ca.der().clone()];
        let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(leaf_key.serialize_der()));
        let config =
            rustls::ServerConfig::builder_with_provider(Arc::new(rustls::crypto::aws_lc_rs::default_provider()))
                .with_safe_default_protocol_versions()
                .unwrap()
                .with_no_client_auth()
                .with_single_cert(chain, key)
                .unwrap();
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        tokio::spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                let _ = acceptor.accept(tcp).await;
            }
        });
        let mut roots = RootCertStore::empty();
        roots.add(CertificateDer::from(ca.der().to_vec())).unwrap();
        (format!("https://localhost:{port}/id/TEST"), roots, ca.der().to_vec())
    }

    #[tokio::test]
    async fn the_thumbprint_is_the_sha1_of_the_last_certificate_in_the_chain() {
        let (url, roots, ca) = issuer().await;
        let thumb = issuer_thumbprint(&url, roots, Duration::from_secs(5)).await.unwrap();
        let expected: String = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA1_FOR_LEGACY_USE_ONLY, &ca)
            .as_ref()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        assert_eq!(thumb, expected);
        assert_eq!(thumb.len(), 40);
    }

    #[tokio::test]
    async fn an_untrusted_or_unreachable_issuer_gives_no_thumbprint() {
        let (url, _, _) = issuer().await;
        let err = issuer_thumbprint(&url, RootCertStore::empty(), Duration::from_secs(5)).await.unwrap_err();
        assert!(err.reason.contains("TLS"), "{err}");
        let closed = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = closed.local_addr().unwrap().port();
        drop(closed);
        let err = issuer_thumbprint(&format!("https://127.0.0.1:{port}/x"), native_roots(), Duration::from_secs(5))
            .await
            .unwrap_err();
        assert!(err.reason.contains("connect"), "{err}");
    }
}
