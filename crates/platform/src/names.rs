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
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in format!("{}/{domain}", ctx.stack()).bytes() {
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
    }
}
