//! The registry tier's security control (ECR.1 of the facade's report): both repositories scan
//! images on push. A pure function of what the tier's client lists, and [`audit`], the read.

use dify_stack_core::audit::{Verdict, Verdicts};
use dify_stack_core::{AwsError, Context};

use crate::client::{EcrApi, RepoInfo};
use crate::names;

/// Lists the repositories through the tier's client and checks ours.
pub async fn audit<C: EcrApi + ?Sized>(ctx: &Context, client: &C) -> Result<Verdicts, AwsError> {
    let all = client.list_repositories().await?;
    Ok(repositories(&[names::app_repository(ctx), names::plugin_repository(ctx)], &all))
}

/// ECR.1 for the `wanted` repositories among those `found`.
pub fn repositories(wanted: &[String], found: &[RepoInfo]) -> Verdicts {
    let absent: Vec<&String> = wanted.iter().filter(|w| !found.iter().any(|r| r.name.as_str() == w.as_str())).collect();
    if !absent.is_empty() {
        return vec![("ECR.1", Verdict::missing(&format!("the repositories {absent:?}")))];
    }
    let not_scanning: Vec<&str> = found
        .iter()
        .filter(|r| wanted.iter().any(|w| w == r.name.as_str()) && !r.scan_on_push)
        .map(|r| r.name.as_str())
        .collect();
    vec![("ECR.1", Verdict::check(not_scanning.is_empty(), || format!("no scan on push: {not_scanning:?}")))]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::{Encryption, TagMutability};
    use dify_stack_core::ids::Arn;

    fn repo(name: &str, scan_on_push: bool) -> RepoInfo {
        RepoInfo {
            name: name.into(),
            arn: Arn::new(""),
            uri: String::new(),
            scan_on_push,
            mutability: TagMutability::Immutable,
            encryption: Encryption::Aes256,
        }
    }

    #[test]
    fn both_repositories_must_exist_and_scan_on_push() {
        let wanted = ["s".to_owned(), "s-ee-plugin-repo".to_owned()];
        let other = repo("someone-else", false);
        let ok = [repo("s", true), repo("s-ee-plugin-repo", true), other.clone()];
        assert_eq!(repositories(&wanted, &ok), [("ECR.1", Verdict::Pass)], "another repository is not ours to judge");
        let off = [repo("s", true), repo("s-ee-plugin-repo", false)];
        assert!(matches!(&repositories(&wanted, &off)[0].1, Verdict::Fail(e) if e.contains("s-ee-plugin-repo")));
        let half = [repo("s", true), other];
        assert!(matches!(&repositories(&wanted, &half)[0].1, Verdict::Fail(e) if e.contains("does not exist")));
    }
}
