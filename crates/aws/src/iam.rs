//! IAM roles: the EKS tier's cluster and node roles and the IAM tier's IRSA roles are read,
//! created, re-trusted, tagged, given managed policies and deleted the same way.

use aws_sdk_iam::Client;
use aws_sdk_iam::types::Tag;
use dify_stack_core::{AwsError, AwsResultExt, Tags, found};

/// A role as observed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Role {
    /// The role name.
    pub name: String,
    /// The role ARN.
    pub arn: String,
    /// The trust policy, URL-decoded.
    pub trust: String,
    /// The role's tags.
    pub tags: Tags,
}

/// A policy document as IAM returns it, URL-decoded. IAM returns policy documents URL-encoded
/// (RFC 3986) in GetRole, GetRolePolicy and GetPolicyVersion (IAM API reference, Role:
/// "AssumeRolePolicyDocument ... URL-encoded compliant with RFC 3986").
pub fn decode_policy(text: &str) -> String {
    percent_encoding::percent_decode_str(text).decode_utf8_lossy().into_owned()
}

/// IAM tags as a map.
pub fn tags_of(tags: &[Tag]) -> Tags {
    tags.iter().map(|t| (t.key().to_owned(), t.value().to_owned())).collect()
}

/// A tag map as IAM tags (keys and values are required by the builder; none is empty here).
pub fn sdk_tags(tags: &Tags) -> Vec<Tag> {
    tags.iter().filter_map(|(k, v)| Tag::builder().key(k).value(v).build().ok()).collect()
}

/// The role, or `None` when it does not exist.
pub async fn get_role(iam: &Client, name: &str) -> Result<Option<Role>, AwsError> {
    let out = found(iam.get_role().role_name(name).send().await.aws("GetRole"))?;
    Ok(out.and_then(|o| {
        o.role().map(|r| Role {
            name: r.role_name().to_owned(),
            arn: r.arn().to_owned(),
            trust: decode_policy(r.assume_role_policy_document().unwrap_or_default()),
            tags: tags_of(r.tags()),
        })
    }))
}

/// Creates a role with its trust policy, optional description and tags; returns its ARN.
pub async fn create_role(
    iam: &Client,
    name: &str,
    trust: &str,
    description: Option<&str>,
    tags: &Tags,
) -> Result<String, AwsError> {
    let out = iam
        .create_role()
        .role_name(name)
        .assume_role_policy_document(trust)
        .set_description(description.map(str::to_owned))
        .set_tags(Some(sdk_tags(tags)))
        .send()
        .await
        .aws("CreateRole")?;
    Ok(out.role().map(|r| r.arn().to_owned()).unwrap_or_default())
}

/// Replaces the role's trust policy.
pub async fn update_trust(iam: &Client, name: &str, trust: &str) -> Result<(), AwsError> {
    iam.update_assume_role_policy()
        .role_name(name)
        .policy_document(trust)
        .send()
        .await
        .aws("UpdateAssumeRolePolicy")?;
    Ok(())
}

/// Adds or overwrites tags on the role.
pub async fn tag_role(iam: &Client, name: &str, tags: &Tags) -> Result<(), AwsError> {
    iam.tag_role().role_name(name).set_tags(Some(sdk_tags(tags))).send().await.aws("TagRole")?;
    Ok(())
}

/// The ARNs of the managed policies attached to the role.
pub async fn attached_policies(iam: &Client, role: &str) -> Result<Vec<String>, AwsError> {
    let out = iam.list_attached_role_policies().role_name(role).send().await.aws("ListAttachedRolePolicies")?;
    Ok(out.attached_policies().iter().filter_map(|p| p.policy_arn()).map(str::to_owned).collect())
}

/// Attaches a managed policy.
pub async fn attach_policy(iam: &Client, role: &str, policy_arn: &str) -> Result<(), AwsError> {
    iam.attach_role_policy().role_name(role).policy_arn(policy_arn).send().await.aws("AttachRolePolicy")?;
    Ok(())
}

/// Detaches a managed policy.
pub async fn detach_policy(iam: &Client, role: &str, policy_arn: &str) -> Result<(), AwsError> {
    iam.detach_role_policy().role_name(role).policy_arn(policy_arn).send().await.aws("DetachRolePolicy")?;
    Ok(())
}

/// Deletes the role (its policies must be gone first: IAM refuses with DeleteConflict otherwise,
/// IAM API reference, DeleteRole).
pub async fn delete_role(iam: &Client, name: &str) -> Result<(), AwsError> {
    iam.delete_role().role_name(name).send().await.aws("DeleteRole")?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn policy_documents_are_url_decoded() {
        assert_eq!(decode_policy("%7B%22Version%22%3A%222012-10-17%22%7D"), r#"{"Version":"2012-10-17"}"#);
        assert_eq!(decode_policy(r#"{"plain":true}"#), r#"{"plain":true}"#, "an unencoded document is kept");
    }

    #[test]
    fn tags_round_trip() {
        let tags: Tags = [("dify-stack:stack".to_owned(), "t".to_owned()), ("b".to_owned(), "2".to_owned())].into();
        assert_eq!(tags_of(&sdk_tags(&tags)), tags);
    }
}
