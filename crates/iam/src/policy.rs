//! IAM documents of the Dify EE IRSA roles: trust policies scoped to exact service accounts and
//! least-privilege permission policies, built for the partition; plus normalisation for drift
//! detection (IAM returns documents percent-encoded and may reorder or un-array values).

use dify_stack_core::Partition;
use serde_json::{Value, json};

/// The audience every IRSA token must carry.
pub const AUDIENCE: &str = "sts.amazonaws.com";

/// Which of the three roles.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RoleKind {
    /// Storage bucket access (`DifyEE-Role-<cluster>-s3`).
    S3,
    /// Storage bucket + plugin image build/push (`DifyEE-Role-<cluster>-s3-ecr`).
    S3Ecr,
    /// Plugin image pull only (`DifyEE-Role-<cluster>-ecr-image-pull`).
    EcrImagePull,
}

impl RoleKind {
    /// All three, in a fixed order.
    pub const ALL: [RoleKind; 3] = [RoleKind::S3, RoleKind::S3Ecr, RoleKind::EcrImagePull];

    /// Role name suffix, as in the Dify EE documentation.
    pub fn suffix(self) -> &'static str {
        match self {
            RoleKind::S3 => "s3",
            RoleKind::S3Ecr => "s3-ecr",
            RoleKind::EcrImagePull => "ecr-image-pull",
        }
    }

    /// The role name for a cluster.
    pub fn role_name(self, cluster: &str) -> String {
        crate::names::role(cluster, self)
    }

    /// The service accounts (in the Dify namespace) that may assume the role.
    pub fn service_accounts(self) -> [&'static str; 2] {
        match self {
            RoleKind::S3 => ["dify-api-sa", "dify-plugin-connector-sa"],
            RoleKind::S3Ecr => ["dify-plugin-crd-sa", "dify-plugin-build-sa"],
            RoleKind::EcrImagePull => ["dify-plugin-runner-sa", "dify-plugin-build-run-sa"],
        }
    }
}

/// The issuer without its scheme, as IAM condition keys and provider ARNs use it.
pub fn issuer_host_path(issuer_url: &str) -> &str {
    issuer_url.trim_start_matches("https://").trim_end_matches('/')
}

/// The OIDC provider ARN for an issuer.
pub fn oidc_provider_arn(partition: Partition, account: &str, issuer_url: &str) -> String {
    partition.arn("iam", "", account, &format!("oidc-provider/{}", issuer_host_path(issuer_url)))
}

/// `system:serviceaccount:<namespace>:<sa>` of each account.
pub fn subjects(namespace: &str, service_accounts: &[&str]) -> Vec<String> {
    service_accounts.iter().map(|sa| format!("system:serviceaccount:{namespace}:{sa}")).collect()
}

/// Trust policy: only `sts:AssumeRoleWithWebIdentity` from the provider, only for the role's two
/// service accounts in `namespace`, only with the STS audience.
pub fn trust_policy(provider_arn: &str, issuer_url: &str, namespace: &str, kind: RoleKind) -> Value {
    trust_policy_for(provider_arn, issuer_url, &subjects(namespace, &kind.service_accounts()))
}

/// Trust policy for exactly `subjects` (`system:serviceaccount:<ns>:<sa>`) through the provider,
/// with the STS audience (EKS user guide, "Assign IAM roles to Kubernetes service accounts":
/// the `:sub` and `:aud` conditions).
pub fn trust_policy_for(provider_arn: &str, issuer_url: &str, subjects: &[String]) -> Value {
    let issuer = issuer_host_path(issuer_url);
    json!({
        "Version": "2012-10-17",
        "Statement": [{
            "Effect": "Allow",
            "Principal": {"Federated": provider_arn},
            "Action": "sts:AssumeRoleWithWebIdentity",
            "Condition": {"StringEquals": {
                format!("{issuer}:sub"): subjects,
                format!("{issuer}:aud"): AUDIENCE,
            }}
        }]
    })
}

const ECR_PULL: &[&str] = &[
    "ecr:BatchCheckLayerAvailability",
    "ecr:BatchGetImage",
    "ecr:GetDownloadUrlForLayer",
    "ecr:DescribeImages",
    "ecr:ListImages",
];
const ECR_PUSH_MANAGE: &[&str] = &[
    "ecr:InitiateLayerUpload",
    "ecr:UploadLayerPart",
    "ecr:CompleteLayerUpload",
    "ecr:PutImage",
    "ecr:BatchDeleteImage",
    "ecr:CreateRepository",
    "ecr:DeleteRepository",
    "ecr:DescribeRepositories",
    "ecr:TagResource",
];

/// Permission policy of a role. `plugin_repository_arn_pattern` covers the plugin repository and
/// the ones created under it (`...:repository/<stack>-ee-plugin-repo*`).
pub fn permission_policy(
    partition: Partition,
    bucket: &str,
    bucket_kms_key_arn: Option<&str>,
    plugin_repository_arn_pattern: &str,
    kind: RoleKind,
) -> Value {
    let bucket_arn = partition.arn("s3", "", "", bucket);
    let mut s3 = vec![
        json!({"Sid": "StorageBucket", "Effect": "Allow",
               "Action": ["s3:ListBucket", "s3:GetBucketLocation"], "Resource": bucket_arn}),
        json!({"Sid": "StorageObjects", "Effect": "Allow",
               "Action": ["s3:GetObject", "s3:PutObject", "s3:DeleteObject", "s3:AbortMultipartUpload", "s3:ListMultipartUploadParts"],
               "Resource": format!("{bucket_arn}/*")}),
    ];
    // An SSE-KMS bucket: writing needs kms:GenerateDataKey and reading kms:Decrypt on the key,
    // or S3 answers AccessDenied (S3 user guide, "Using server-side encryption with AWS KMS keys":
    // permissions needed to upload and download).
    if let Some(key) = bucket_kms_key_arn {
        s3.push(json!({"Sid": "StorageKey", "Effect": "Allow",
                       "Action": ["kms:GenerateDataKey", "kms:Decrypt"], "Resource": key}));
    }
    let token = json!({"Sid": "EcrLogin", "Effect": "Allow", "Action": "ecr:GetAuthorizationToken", "Resource": "*"});
    let statements: Vec<Value> = match kind {
        RoleKind::S3 => s3,
        RoleKind::S3Ecr => {
            let actions: Vec<&str> = ECR_PULL.iter().chain(ECR_PUSH_MANAGE).copied().collect();
            let mut v = s3;
            v.push(json!({"Sid": "PluginRepositories", "Effect": "Allow", "Action": actions, "Resource": plugin_repository_arn_pattern}));
            v.push(token);
            v
        }
        RoleKind::EcrImagePull => vec![
            json!({"Sid": "PluginRepositoriesPull", "Effect": "Allow", "Action": ECR_PULL, "Resource": plugin_repository_arn_pattern}),
            token,
        ],
    };
    json!({"Version": "2012-10-17", "Statement": statements})
}

/// Parses a document as IAM returns it (percent-encoded or not) into normalised JSON.
pub fn parse_document(text: &str) -> Option<Value> {
    let decoded = percent_encoding::percent_decode_str(text).decode_utf8().ok()?;
    serde_json::from_str(&decoded).or_else(|_| serde_json::from_str(text)).ok().map(normalize)
}

/// Normalises a policy document so that equal policies compare equal: a lone string where IAM
/// allows a list becomes a one-element list, lists of strings are sorted, `Statement` becomes a
/// list.
pub fn normalize(value: Value) -> Value {
    const LISTY: &[&str] = &["Action", "NotAction", "Resource", "NotResource", "Statement"];
    match value {
        Value::Object(map) => Value::Object(
            map.into_iter()
                .map(|(k, v)| {
                    let v = normalize(v);
                    let v = match v {
                        Value::String(_) | Value::Object(_) if LISTY.contains(&k.as_str()) => Value::Array(vec![v]),
                        other => other,
                    };
                    (k, v)
                })
                .collect(),
        ),
        Value::Array(items) => {
            let mut items: Vec<Value> = items.into_iter().map(normalize).collect();
            if items.iter().all(Value::is_string) {
                items.sort_by(|a, b| a.as_str().cmp(&b.as_str()));
            }
            Value::Array(items)
        }
        other => other,
    }
}

/// Statements that grant a wildcard: Action `*`, `s3:*` or `ecr:*`, or Resource `*` with any
/// action other than `ecr:GetAuthorizationToken`. Empty for our policies (tested).
pub fn wildcard_grants(policy: &Value) -> Vec<String> {
    let policy = normalize(policy.clone());
    let mut found = Vec::new();
    for st in policy["Statement"].as_array().into_iter().flatten() {
        let actions: Vec<&str> = st["Action"].as_array().into_iter().flatten().filter_map(Value::as_str).collect();
        let resources: Vec<&str> = st["Resource"].as_array().into_iter().flatten().filter_map(Value::as_str).collect();
        for a in &actions {
            if *a == "*" || a.ends_with(":*") {
                found.push(format!("action {a}"));
            }
        }
        if resources.contains(&"*") && actions.iter().any(|a| *a != "ecr:GetAuthorizationToken") {
            found.push(format!("resource * for {actions:?}"));
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    const ISSUER: &str = "https://oidc.eks.us-west-2.amazonaws.com/id/ABC123";

    #[test]
    fn trust_policy_golden() {
        let arn = oidc_provider_arn(Partition::Aws, "123456789012", ISSUER);
        assert_eq!(arn, "arn:aws:iam::123456789012:oidc-provider/oidc.eks.us-west-2.amazonaws.com/id/ABC123");
        let golden = r#"{"Statement":[{"Action":"sts:AssumeRoleWithWebIdentity","Condition":{"StringEquals":{"oidc.eks.us-west-2.amazonaws.com/id/ABC123:aud":"sts.amazonaws.com","oidc.eks.us-west-2.amazonaws.com/id/ABC123:sub":["system:serviceaccount:dify:dify-api-sa","system:serviceaccount:dify:dify-plugin-connector-sa"]}},"Effect":"Allow","Principal":{"Federated":"arn:aws:iam::123456789012:oidc-provider/oidc.eks.us-west-2.amazonaws.com/id/ABC123"}}],"Version":"2012-10-17"}"#;
        assert_eq!(trust_policy(&arn, ISSUER, "dify", RoleKind::S3).to_string(), golden);
    }

    #[test]
    fn permission_policies_golden_for_aws_and_aws_cn() {
        let golden_aws = r#"{"Statement":[{"Action":["s3:ListBucket","s3:GetBucketLocation"],"Effect":"Allow","Resource":"arn:aws:s3:::dify-test-storage-123456789012","Sid":"StorageBucket"},{"Action":["s3:GetObject","s3:PutObject","s3:DeleteObject","s3:AbortMultipartUpload","s3:ListMultipartUploadParts"],"Effect":"Allow","Resource":"arn:aws:s3:::dify-test-storage-123456789012/*","Sid":"StorageObjects"}],"Version":"2012-10-17"}"#;
        let p = permission_policy(Partition::Aws, "dify-test-storage-123456789012", None, "unused", RoleKind::S3);
        assert_eq!(p.to_string(), golden_aws);

        let repo = "arn:aws-cn:ecr:cn-north-1:123456789012:repository/dify-test-ee-plugin-repo*";
        let golden_cn = r#"{"Statement":[{"Action":["ecr:BatchCheckLayerAvailability","ecr:BatchGetImage","ecr:GetDownloadUrlForLayer","ecr:DescribeImages","ecr:ListImages"],"Effect":"Allow","Resource":"arn:aws-cn:ecr:cn-north-1:123456789012:repository/dify-test-ee-plugin-repo*","Sid":"PluginRepositoriesPull"},{"Action":"ecr:GetAuthorizationToken","Effect":"Allow","Resource":"*","Sid":"EcrLogin"}],"Version":"2012-10-17"}"#;
        let p = permission_policy(Partition::AwsCn, "b", None, repo, RoleKind::EcrImagePull);
        assert_eq!(p.to_string(), golden_cn);
        let s3ecr = permission_policy(Partition::AwsCn, "b", None, repo, RoleKind::S3Ecr);
        assert!(s3ecr.to_string().contains("arn:aws-cn:s3:::b/*"));
        assert!(!s3ecr.to_string().contains("arn:aws:"), "no commercial ARNs in China");
    }

    #[test]
    fn no_policy_grants_a_wildcard_beyond_the_ecr_login() {
        for kind in RoleKind::ALL {
            let p = permission_policy(Partition::Aws, "b", None, "arn:aws:ecr:r:1:repository/x*", kind);
            assert!(wildcard_grants(&p).is_empty(), "{kind:?}: {:?}", wildcard_grants(&p));
            let key = "arn:aws:kms:us-west-2:1:key/1234abcd-12ab-34cd-56ef-1234567890ab";
            let p = permission_policy(Partition::Aws, "b", Some(key), "arn:aws:ecr:r:1:repository/x*", kind);
            // The bucket key's rights go exactly to the roles with the bucket's rights.
            assert_eq!(p.to_string().contains(key), kind != RoleKind::EcrImagePull, "{kind:?}: {p}");
            assert!(wildcard_grants(&p).is_empty(), "{kind:?}: {:?}", wildcard_grants(&p));
        }
        let bad = json!({"Statement": {"Effect": "Allow", "Action": "s3:*", "Resource": "*"}});
        assert_eq!(wildcard_grants(&bad).len(), 2);
    }

    #[test]
    fn documents_compare_after_decoding_and_normalising() {
        let ours = trust_policy("arn:aws:iam::1:oidc-provider/x", "https://x", "dify", RoleKind::S3Ecr);
        let encoded: String =
            percent_encoding::utf8_percent_encode(&ours.to_string(), percent_encoding::NON_ALPHANUMERIC).to_string();
        assert_eq!(parse_document(&encoded), Some(normalize(ours.clone())));
        // IAM may turn a one-element list into a string and reorder lists.
        let a = json!({"Statement": [{"Action": ["b", "a"], "Resource": "r"}]});
        let b = json!({"Statement": {"Action": ["a", "b"], "Resource": ["r"]}});
        assert_eq!(normalize(a), normalize(b));
    }
}
