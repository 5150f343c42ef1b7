//! The platform tier's security controls (PLT.1-2 of the facade's report), over the IRSA roles
//! of its add-ons (the AWS Load Balancer Controller, the cluster autoscaler), which the IAM tier
//! creates from [`addon_role_requests`](crate::provisioner::addon_role_requests):
//!
//! - PLT.1: each role trusts only its add-on's service account (`sub`, exact, no wildcard) for
//!   STS (`aud`), through the cluster's OIDC issuer when it is known;
//! - PLT.2: each role's permissions are exactly its add-on's published policy as this tier
//!   builds it (`policy.rs`): one inline policy, nothing added.
//!
//! Pure functions of what was read; the facade reads the roles through the IAM tier's client
//! (no tier imports another).

use dify_stack_core::audit::{Verdict, Verdicts, all_missing};
use serde_json::Value;

use crate::provisioner::AddonRoleRequest;

/// An add-on role as read: its trust policy and the documents of its inline policies (decoded
/// JSON text).
#[derive(Debug, Clone, Default)]
pub struct AddonRoleRead {
    /// The role's name.
    pub name: String,
    /// The trust policy.
    pub trust: String,
    /// The inline policies' documents.
    pub policies: Vec<String>,
}

/// PLT.1-2 for the wanted add-on roles, each with what was read of it (`None`: absent).
/// Without add-ons that have a role, both controls are not applicable.
pub fn addon_roles(wanted: &[(AddonRoleRequest, Option<AddonRoleRead>)], issuer: Option<&str>) -> Verdicts {
    if wanted.is_empty() {
        return ["PLT.1", "PLT.2"]
            .into_iter()
            .map(|id| (id, Verdict::not_applicable("no add-on with a role")))
            .collect();
    }
    let absent: Vec<&str> = wanted.iter().filter(|(_, read)| read.is_none()).map(|(r, _)| r.addon).collect();
    if !absent.is_empty() {
        return all_missing(&["PLT.1", "PLT.2"], &format!("the IRSA role of {absent:?}"));
    }
    let host = issuer.map(|i| i.trim_start_matches("https://").trim_end_matches('/')).unwrap_or_default();
    let (mut loose, mut extra) = (Vec::new(), Vec::new());
    for (request, read) in wanted {
        let Some(read) = read else { continue };
        let sub = format!("system:serviceaccount:{}:{}", request.namespace, request.service_account);
        let trust: Value = serde_json::from_str(&read.trust).unwrap_or(Value::Null);
        if !trust_is_exact(&trust, &sub, host) {
            loose.push(read.name.clone());
        }
        let docs: Vec<Value> = read.policies.iter().map(|p| serde_json::from_str(p).unwrap_or(Value::Null)).collect();
        if docs != [request.policy.clone()] {
            extra.push(format!("{}: {} inline policies, not exactly the published one", read.name, docs.len()));
        }
    }
    vec![
        (
            "PLT.1",
            Verdict::check(loose.is_empty(), || {
                format!("trust not limited to the add-on's service account: {loose:?}")
            }),
        ),
        ("PLT.2", Verdict::check(extra.is_empty(), || extra.join("; "))),
    ]
}

/// Every statement allows `sts:AssumeRoleWithWebIdentity` only on `StringEquals` of exactly
/// `sub` and of `aud` = `sts.amazonaws.com`, under the issuer's keys when `host` is known.
fn trust_is_exact(trust: &Value, sub: &str, host: &str) -> bool {
    let statements = trust["Statement"].as_array().map(Vec::as_slice).unwrap_or_default();
    !statements.is_empty()
        && statements.iter().all(|s| {
            let Some(cond) = s["Condition"].as_object() else { return false };
            let Some(equals) = cond.get("StringEquals").and_then(Value::as_object) else { return false };
            let value = |suffix: &str| {
                equals
                    .iter()
                    .find(|(k, _)| k.ends_with(suffix) && (host.is_empty() || k.starts_with(host)))
                    .map(|(_, v)| v)
            };
            let one = |v: Option<&Value>, want: &str| match v {
                Some(Value::String(x)) => x == want,
                Some(Value::Array(a)) => a.len() == 1 && a[0] == want,
                _ => false,
            };
            cond.len() == 1 && one(value(":sub"), sub) && one(value(":aud"), "sts.amazonaws.com")
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use dify_stack_core::{Context, Environment};

    const ISSUER: &str = "https://oidc.eks.us-east-1.amazonaws.com/id/ABC";

    fn failed(v: &Verdicts) -> Vec<&'static str> {
        v.iter().filter(|(_, v)| matches!(v, Verdict::Fail(_))).map(|(id, _)| *id).collect()
    }

    /// The trust the IAM tier writes for an add-on role (IAM user guide, "Create an IAM role for
    /// a service account": `sub` and `aud` under the issuer's host and path).
    fn trust(sub: &str) -> String {
        let host = ISSUER.trim_start_matches("https://");
        serde_json::json!({"Version": "2012-10-17", "Statement": [{
            "Effect": "Allow",
            "Principal": {"Federated": format!("arn:aws:iam::1:oidc-provider/{host}")},
            "Action": "sts:AssumeRoleWithWebIdentity",
            "Condition": {"StringEquals": {format!("{host}:sub"): sub, format!("{host}:aud"): "sts.amazonaws.com"}},
        }]})
        .to_string()
    }

    #[test]
    fn the_tiers_own_roles_pass_and_each_loosening_fails_its_control() {
        let ctx = Context::new("plt", Environment::Test, "us-east-1").unwrap();
        let requests = crate::provisioner::addon_role_requests(&ctx, "plt", true, true);
        let read = |r: &AddonRoleRequest, trust: String, policies: Vec<String>| {
            Some(AddonRoleRead { name: format!("plt-{}", r.addon), trust, policies })
        };
        let own = |r: &AddonRoleRequest| {
            read(
                r,
                trust(&format!("system:serviceaccount:kube-system:{}", r.service_account)),
                vec![r.policy.to_string()],
            )
        };
        let wanted: Vec<_> = requests.iter().map(|r| (r.clone(), own(r))).collect();
        assert_eq!(addon_roles(&wanted, Some(ISSUER)), [("PLT.1", Verdict::Pass), ("PLT.2", Verdict::Pass)]);

        // Any service account of the namespace; another issuer's keys; a second statement.
        let mut loose = wanted.clone();
        loose[0].1 =
            read(&requests[0], trust("system:serviceaccount:kube-system:*"), vec![requests[0].policy.to_string()]);
        assert_eq!(failed(&addon_roles(&loose, Some(ISSUER))), ["PLT.1"]);
        assert_eq!(failed(&addon_roles(&wanted, Some("https://oidc.eks.us-east-1.amazonaws.com/id/OTHER"))), ["PLT.1"]);
        let mut like = wanted.clone();
        let t = trust("system:serviceaccount:kube-system:aws-load-balancer-controller")
            .replace("StringEquals", "StringLike");
        like[0].1 = read(&requests[0], t, vec![requests[0].policy.to_string()]);
        assert_eq!(failed(&addon_roles(&like, Some(ISSUER))), ["PLT.1"]);

        // A statement added to the published policy, or a second inline policy.
        let mut widened = wanted.clone();
        let mut policy = requests[1].policy.clone();
        policy["Statement"]
            .as_array_mut()
            .unwrap()
            .push(serde_json::json!({"Effect": "Allow", "Action": "ec2:*", "Resource": "*"}));
        widened[1].1 =
            read(&requests[1], trust("system:serviceaccount:kube-system:cluster-autoscaler"), vec![policy.to_string()]);
        assert_eq!(failed(&addon_roles(&widened, Some(ISSUER))), ["PLT.2"]);
        let mut second = wanted.clone();
        if let Some(r) = second[1].1.as_mut() {
            r.policies.push(r#"{"Statement":[]}"#.into());
        }
        assert_eq!(failed(&addon_roles(&second, Some(ISSUER))), ["PLT.2"]);

        // A wanted role that does not exist fails both; no add-on with a role: not applicable.
        let mut gone = wanted.clone();
        gone[1].1 = None;
        assert_eq!(failed(&addon_roles(&gone, Some(ISSUER))), ["PLT.1", "PLT.2"]);
        assert!(addon_roles(&[], None).iter().all(|(_, v)| matches!(v, Verdict::NotApplicable(_))));
    }
}
