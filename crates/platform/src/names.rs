//! The names of the platform tier's objects: the only place they are derived. The Helm
//! releases keep their charts' names (in `kube-system`); the ACM certificate is found again by
//! an idempotency token derived from the stack and domain.

use dify_stack_core::Context;

use crate::spec::SYSTEM_NAMESPACE;

/// A system release as a resource id, `kube-system/<release>`.
pub fn release(name: &str) -> String {
    format!("{SYSTEM_NAMESPACE}/{name}")
}

/// The ACM idempotency token of the stack's certificate for `domain`: `\w+`, at most 32
/// characters (ACM API reference, RequestCertificate `IdempotencyToken`), stable across runs
/// and builds (FNV-1a of `<stack>/<domain>`).
pub fn certificate_token(ctx: &Context, domain: &str) -> String {
    token(&format!("{}/{domain}", ctx.stack()))
}

/// The token of the certificate that replaces the failed certificate `failed_arn`: not
/// [`certificate_token`], which ACM answers with the failed certificate for an hour after it
/// was requested ("if you call RequestCertificate multiple times with the same idempotency token
/// within one hour, ACM recognizes that you are requesting only one certificate and will issue
/// only one": ACM API reference, RequestCertificate `IdempotencyToken`; it does not check the
/// other parameters then: terraform-provider-aws #6666). Derived from the failed ARN, so a
/// retry of the same replacement within the hour gets the same new certificate, and each failed
/// certificate gets its own.
pub fn replacement_certificate_token(ctx: &Context, domain: &str, failed_arn: &str) -> String {
    token(&format!("{}/{domain}/replaces/{failed_arn}", ctx.stack()))
}

/// `difystack` and the FNV-1a hash of `key` in hex: 25 word characters.
fn token(key: &str) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in key.bytes() {
        h = (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
    }
    format!("difystack{h:016x}")
}

#[cfg(test)]
mod tests {
    use dify_stack_core::Environment;

    use super::*;

    #[test]
    fn names_are_stable_and_within_the_service_rules() {
        let ctx = Context::new("dify-test", Environment::Test, "us-east-1").unwrap();
        assert_eq!(release("metrics-server"), "kube-system/metrics-server");
        let token = certificate_token(&ctx, "dify.example.com");
        assert_eq!(token, certificate_token(&ctx, "dify.example.com"), "stable");
        assert_ne!(token, certificate_token(&ctx, "other.example.com"));
        assert!(token.len() <= 32 && token.chars().all(|c| c.is_ascii_alphanumeric()), "{token}");
        // A replacement's token: its own per failed certificate, stable for retries.
        let failed = "arn:aws:acm:us-east-1:123456789012:certificate/1";
        let replacement = replacement_certificate_token(&ctx, "dify.example.com", failed);
        assert_eq!(replacement, replacement_certificate_token(&ctx, "dify.example.com", failed), "stable");
        assert_ne!(replacement, token);
        assert_ne!(replacement, replacement_certificate_token(&ctx, "dify.example.com", &format!("{failed}0")));
        assert!(replacement.len() <= 32 && replacement.chars().all(|c| c.is_ascii_alphanumeric()));
    }
}
