//! The cluster CA bundle as EKS returns it (`certificateAuthority.data`: base64 of PEM), decoded
//! once for every tier that opens a Kubernetes client (the EKS tier's `kube_client`, the IAM
//! tier's service-account client).

use base64::Engine as _;
use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject as _;

/// The DER certificates in `base64_pem`, or what is wrong with it ("CA data: ..."). At least one
/// certificate is required: an empty bundle would trust nothing and fail later, less clearly.
pub fn ca_certificates(base64_pem: &str) -> Result<Vec<Vec<u8>>, String> {
    let pem =
        base64::engine::general_purpose::STANDARD.decode(base64_pem.trim()).map_err(|e| format!("CA data: {e}"))?;
    let certs: Vec<Vec<u8>> = CertificateDer::pem_slice_iter(&pem)
        .map(|c| c.map(|c| c.to_vec()))
        .collect::<Result<_, _>>()
        .map_err(|e| format!("CA data: {e}"))?;
    if certs.is_empty() {
        return Err("CA data holds no certificate".to_owned());
    }
    Ok(certs)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b64(text: &str) -> String {
        base64::engine::general_purpose::STANDARD.encode(text)
    }

    #[test]
    fn decodes_every_certificate_of_the_bundle() {
        let pem = "-----BEGIN CERTIFICATE-----\nAAECAw==\n-----END CERTIFICATE-----\n\
                   -----BEGIN CERTIFICATE-----\nBAU=\n-----END CERTIFICATE-----\n";
        assert_eq!(ca_certificates(&format!(" {}\n", b64(pem))), Ok(vec![vec![0, 1, 2, 3], vec![4, 5]]));
    }

    #[test]
    fn bad_data_is_named() {
        assert!(ca_certificates("not base64!").unwrap_err().starts_with("CA data: "));
        assert_eq!(ca_certificates(&b64("no pem here")), Err("CA data holds no certificate".to_owned()));
        let broken = b64("-----BEGIN CERTIFICATE-----\nAAECAw==\n");
        assert!(ca_certificates(&broken).unwrap_err().starts_with("CA data: "), "an unterminated block");
    }
}
