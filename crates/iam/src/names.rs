//! The names of the IAM tier's objects: the only place they are derived. The IRSA role names
//! are the ones the Dify EE documentation refers to (STACK.md, "IRSA roles": names kept).

use crate::policy::RoleKind;

/// The IRSA role of `kind` for `cluster`, `DifyEE-Role-<cluster>-<suffix>`.
pub fn role(cluster: &str, kind: RoleKind) -> String {
    format!("DifyEE-Role-{cluster}-{}", kind.suffix())
}

/// A service account as a resource id, `<namespace>/<name>`.
pub fn service_account(namespace: &str, name: &str) -> String {
    format!("{namespace}/{name}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn role_names_are_those_of_the_dify_ee_docs() {
        let names: Vec<String> = RoleKind::ALL.iter().map(|k| role("dify-test", *k)).collect();
        assert_eq!(
            names,
            ["DifyEE-Role-dify-test-s3", "DifyEE-Role-dify-test-s3-ecr", "DifyEE-Role-dify-test-ecr-image-pull"]
        );
        assert_eq!(service_account("dify", "dify-api-sa"), "dify/dify-api-sa");
    }
}
