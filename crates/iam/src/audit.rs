//! The IAM tier's security controls (IAM.1-3 of the facade's report): every IRSA role trusts
//! only named service accounts for STS, and no inline policy grants a wildcard action or, except
//! `ecr:GetAuthorizationToken` (which has no resource-level permissions: ECR user guide, "Private
//! registry authentication"), a `*` resource. Pure functions of what the tier's client reads, and
//! [`audit`], the read.

use dify_stack_core::audit::{Verdict, Verdicts, all_missing};
use dify_stack_core::{AwsError, Context};
use serde_json::Value;

use crate::client::{IamApi, RoleInfo};
use crate::policy::{self, RoleKind};

/// An IRSA role with its inline policy documents, as read.
#[derive(Debug, Clone)]
pub struct AuditedRole {
    /// The role.
    pub role: RoleInfo,
    /// Its inline policies' documents (decoded text).
    pub policies: Vec<String>,
}

/// Reads the stack's IRSA roles and their inline policies through the tier's client and checks
/// them against the cluster's OIDC issuer (when the cluster exists).
pub async fn audit<C: IamApi + ?Sized>(ctx: &Context, issuer: Option<&str>, client: &C) -> Result<Verdicts, AwsError> {
    let mut read = Vec::new();
    for kind in RoleKind::ALL {
        read.extend(read_role(client, kind.role_name(ctx.stack().as_str())).await?);
    }
    Ok(roles(&read, issuer))
}

/// A role with the documents of its inline policies, as the tier's client reads them; `None`
/// when it does not exist. Also what the facade reads the platform's add-on roles with.
pub async fn read_role<C: IamApi + ?Sized>(client: &C, name: String) -> Result<Option<AuditedRole>, AwsError> {
    let Some(role) = client.get_role(name).await? else { return Ok(None) };
    let mut policies = Vec::new();
    for policy in client.list_role_policies(role.name.clone()).await? {
        policies.extend(client.get_role_policy(role.name.clone(), policy).await?);
    }
    Ok(Some(AuditedRole { role, policies }))
}

/// IAM.1-3 over the roles read.
pub fn roles(roles: &[AuditedRole], issuer: Option<&str>) -> Verdicts {
    if roles.is_empty() {
        return all_missing(&["IAM.1", "IAM.2", "IAM.3"], "the IRSA roles");
    }
    let host = issuer.map(policy::issuer_host_path).unwrap_or_default().to_owned();
    let (mut trust_bad, mut wild_actions, mut wild_resources) = (Vec::new(), Vec::new(), Vec::new());
    for AuditedRole { role, policies } in roles {
        let trust = policy::parse_document(&role.trust).unwrap_or(Value::Null);
        if !trust_is_tight(&trust, &host) {
            trust_bad.push(role.name.clone());
        }
        for doc in policies {
            let doc = policy::parse_document(doc).unwrap_or(Value::Null);
            for st in doc["Statement"].as_array().into_iter().flatten().filter(|s| s["Effect"] == "Allow") {
                let actions: Vec<&str> =
                    st["Action"].as_array().into_iter().flatten().filter_map(Value::as_str).collect();
                let resources: Vec<&str> =
                    st["Resource"].as_array().into_iter().flatten().filter_map(Value::as_str).collect();
                for a in &actions {
                    if *a == "*" || a.ends_with(":*") {
                        wild_actions.push(format!("{}: {a}", role.name));
                    }
                }
                if resources.contains(&"*") && actions.iter().any(|a| *a != "ecr:GetAuthorizationToken") {
                    wild_resources.push(format!("{}: {actions:?} on *", role.name));
                }
            }
        }
    }
    vec![
        ("IAM.1", Verdict::check(trust_bad.is_empty(), || format!("loose trust: {trust_bad:?}"))),
        ("IAM.2", Verdict::check(wild_actions.is_empty(), || wild_actions.join("; "))),
        ("IAM.3", Verdict::check(wild_resources.is_empty(), || wild_resources.join("; "))),
    ]
}

/// Every statement conditions `sub` on named service accounts (no wildcard) and `aud` on STS,
/// with keys of the cluster's issuer when it is known (`host`, empty otherwise).
fn trust_is_tight(trust: &Value, host: &str) -> bool {
    trust["Statement"].as_array().into_iter().flatten().all(|s| {
        let cond = &s["Condition"]["StringEquals"];
        let sub_key = cond.as_object().and_then(|o| o.keys().find(|k| k.ends_with(":sub")).cloned());
        let aud_key = cond.as_object().and_then(|o| o.keys().find(|k| k.ends_with(":aud")).cloned());
        let subs_named = sub_key.as_ref().is_some_and(|k| {
            let subs: Vec<&str> = match &cond[k] {
                Value::String(x) => vec![x.as_str()],
                Value::Array(a) => a.iter().filter_map(Value::as_str).collect(),
                _ => vec![],
            };
            !subs.is_empty() && subs.iter().all(|s| s.starts_with("system:serviceaccount:") && !s.contains('*'))
        });
        let aud_ok = aud_key.is_some_and(|k| {
            cond[&k] == "sts.amazonaws.com"
                || cond[&k].as_array().is_some_and(|a| a.iter().all(|x| x == "sts.amazonaws.com"))
        });
        let issuer_ok = host.is_empty() || sub_key.as_ref().is_some_and(|k| k.starts_with(host));
        subs_named && aud_ok && issuer_ok
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use dify_stack_core::ids::RoleArn;

    const ISSUER: &str = "https://oidc.eks.us-east-1.amazonaws.com/id/ABC";
    const PROVIDER: &str = "arn:aws:iam::1:oidc-provider/oidc.eks.us-east-1.amazonaws.com/id/ABC";

    fn role(trust: String, policies: Vec<String>) -> AuditedRole {
        AuditedRole {
            role: RoleInfo { name: "r".into(), arn: RoleArn::new(""), trust, tags: Default::default() },
            policies,
        }
    }

    fn failed(v: &Verdicts) -> Vec<&'static str> {
        v.iter().filter(|(_, v)| matches!(v, Verdict::Fail(_))).map(|(id, _)| *id).collect()
    }

    #[test]
    fn the_tiers_own_policies_pass_and_each_loosening_fails_its_control() {
        let trust = policy::trust_policy(PROVIDER, ISSUER, "dify", RoleKind::S3).to_string();
        let allow = |action: &str, resource: &str| {
            format!(r#"{{"Statement":[{{"Effect":"Allow","Action":["{action}"],"Resource":["{resource}"]}}]}}"#)
        };
        let own = allow("s3:GetObject", "arn:aws:s3:::b/*");
        assert!(failed(&roles(&[role(trust.clone(), vec![own.clone()])], Some(ISSUER))).is_empty());
        let loose = trust.replace("system:serviceaccount:dify:dify-api-sa", "system:serviceaccount:dify:*");
        assert_eq!(failed(&roles(&[role(loose, vec![own.clone()])], Some(ISSUER))), ["IAM.1"]);
        let other_issuer = Some("https://oidc.eks.us-east-1.amazonaws.com/id/OTHER");
        assert_eq!(failed(&roles(&[role(trust.clone(), vec![own])], other_issuer)), ["IAM.1"]);
        assert_eq!(failed(&roles(&[role(trust.clone(), vec![allow("s3:*", "arn:aws:s3:::b/*")])], None)), ["IAM.2"]);
        assert_eq!(failed(&roles(&[role(trust.clone(), vec![allow("s3:GetObject", "*")])], None)), ["IAM.3"]);
        let token = allow("ecr:GetAuthorizationToken", "*");
        assert!(failed(&roles(&[role(trust, vec![token])], None)).is_empty(), "the one action without resources");
        assert_eq!(failed(&roles(&[], None)), ["IAM.1", "IAM.2", "IAM.3"]);
    }
}
