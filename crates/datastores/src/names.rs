//! The names of the datastores tier's resources: the only place they are derived. Validation
//! checks every one of them against core's naming rules ([`NameKind`]) before anything is
//! created; the stores' observe, apply and destroy, the facade's plan and audit, and the tests'
//! inventories all take them from here.

use dify_stack_core::{Context, NameError, NameKind};

use crate::secrets::SecretKind;

/// The Aurora cluster's names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuroraNames {
    /// Cluster identifier, `<stack>-aurora`.
    pub cluster: String,
    /// DB subnet group.
    pub subnet_group: String,
    /// Security group.
    pub security_group: String,
}

impl AuroraNames {
    /// The names for a context.
    pub fn of(ctx: &Context) -> AuroraNames {
        let base = format!("{}-aurora", ctx.stack());
        AuroraNames { cluster: base.clone(), subnet_group: base.clone(), security_group: base }
    }

    /// Instance `i` (1-based): `<stack>-aurora-<i>`.
    pub fn instance(&self, i: usize) -> String {
        format!("{}-{i}", self.cluster)
    }
}

/// The Redis replication group id, `<stack>-redis` (also its subnet group and security group).
pub fn redis(ctx: &Context) -> String {
    format!("{}-redis", ctx.stack())
}

/// The OpenSearch domain name, `<stack>-search`.
pub fn search_domain(ctx: &Context) -> String {
    format!("{}-search", ctx.stack())
}

/// The OpenSearch domain's security group, `<stack>-opensearch`.
pub fn search_security_group(ctx: &Context) -> String {
    format!("{}-opensearch", ctx.stack())
}

/// The storage bucket, `<stack>-storage-<account>` (bucket names are global: the account id
/// keeps two accounts' stacks of the same name apart).
pub fn bucket(ctx: &Context) -> String {
    format!("{}-storage-{}", ctx.stack(), ctx.account_id().unwrap_or("unknown-account"))
}

/// A generated secret, `<stack>/<suffix>` (STACK.md, "Secrets").
pub fn secret(ctx: &Context, kind: SecretKind) -> String {
    format!("{}/{}", ctx.stack(), kind.suffix())
}

/// Aurora's final snapshot at destroy, `<stack>-final-<UTC yyyymmddhhmmss>`.
pub fn final_snapshot(ctx: &Context, now: std::time::SystemTime) -> String {
    let now = aws_smithy_types::DateTime::from(now);
    let stamp: String = now
        .fmt(aws_smithy_types::date_time::Format::DateTime)
        .unwrap_or_default()
        .chars()
        .filter(char::is_ascii_digit)
        .take(14)
        .collect();
    format!("{}-final-{stamp}", ctx.stack())
}

/// The snapshot taken before an engine upgrade of the cluster or replication group `base`:
/// `<base>-pre-upgrade-<have>-to-<want>`, e.g. `dify-prod-aurora-pre-upgrade-17-5-to-17-6`.
/// The versions' dots become dashes: an RDS cluster snapshot identifier has 1-63 letters,
/// digits or hyphens, starts with a letter, and neither ends with a hyphen nor holds two in a
/// row (RDS API reference, "CreateDBClusterSnapshot", `DBClusterSnapshotIdentifier`; core's
/// [`NameKind::RdsCluster`] rule). ElastiCache documents no rule for `SnapshotName` beyond
/// uniqueness (API reference, "CreateSnapshot"), so Redis's takes the same, stricter, one. A
/// name over 63 characters is cut there (and a trailing dash dropped): deterministic, so a
/// re-run finds the snapshot an interrupted run took.
pub fn pre_upgrade_snapshot(base: &str, have: &str, want: &str) -> String {
    let mut name = String::new();
    for c in format!("{base}-pre-upgrade-{have}-to-{want}").chars() {
        let c = if c.is_ascii_alphanumeric() { c.to_ascii_lowercase() } else { '-' };
        if !(c == '-' && name.ends_with('-')) {
            name.push(c);
        }
    }
    name.truncate(63);
    name.trim_end_matches('-').to_owned()
}

/// Every name the tier creates for `instances` Aurora instances, each with the AWS naming rule
/// it must meet. The bucket counts only once the account is known (its name embeds the id).
pub fn all(ctx: &Context, instances: usize) -> Vec<(NameKind, String)> {
    let aurora = AuroraNames::of(ctx);
    let mut names = vec![(NameKind::RdsCluster, aurora.cluster.clone())];
    names.extend((1..=instances).map(|i| (NameKind::RdsCluster, aurora.instance(i))));
    names.push((NameKind::RdsCluster, final_snapshot(ctx, std::time::SystemTime::UNIX_EPOCH)));
    names.push((NameKind::ElastiCacheReplicationGroup, redis(ctx)));
    names.push((NameKind::OpenSearchDomain, search_domain(ctx)));
    for sg in [aurora.security_group, redis(ctx), search_security_group(ctx)] {
        names.push((NameKind::Tag, sg));
    }
    names.extend(SecretKind::ALL.iter().map(|k| (NameKind::Secret, secret(ctx, *k))));
    if ctx.account_id().is_some() {
        names.push((NameKind::S3Bucket, bucket(ctx)));
    }
    names
}

/// The names of [`all`] that break their rule.
pub fn check(ctx: &Context, instances: usize) -> Vec<NameError> {
    all(ctx, instances).into_iter().filter_map(|(kind, name)| kind.check(&name).err()).collect()
}

#[cfg(test)]
mod tests {
    use dify_stack_core::Environment;

    use super::*;

    #[test]
    fn names_are_those_of_stack_md() {
        let ctx = Context::new("dify-test", Environment::Test, "us-east-1").unwrap().with_account_id("123456789012");
        let aurora = AuroraNames::of(&ctx);
        assert_eq!((aurora.cluster.as_str(), aurora.instance(2).as_str()), ("dify-test-aurora", "dify-test-aurora-2"));
        assert_eq!(redis(&ctx), "dify-test-redis");
        assert_eq!(search_domain(&ctx), "dify-test-search");
        assert_eq!(bucket(&ctx), "dify-test-storage-123456789012");
        assert_eq!(secret(&ctx, SecretKind::RedisAuth), "dify-test/redis-auth");
        let epoch_plus = std::time::UNIX_EPOCH + std::time::Duration::from_secs(1_700_000_000);
        assert_eq!(final_snapshot(&ctx, epoch_plus), "dify-test-final-20231114221320");
        assert!(check(&ctx, 2).is_empty());
    }

    #[test]
    fn a_pre_upgrade_snapshot_is_named_after_both_versions_and_meets_the_rds_rule() {
        assert_eq!(
            pre_upgrade_snapshot("dify-prod-aurora", "17.5", "17.6"),
            "dify-prod-aurora-pre-upgrade-17-5-to-17-6"
        );
        assert_eq!(pre_upgrade_snapshot("dify-prod-redis", "7.0.7", "7.1"), "dify-prod-redis-pre-upgrade-7-0-7-to-7-1");
        // The longest legal stack with long versions: cut at 63, no trailing dash, no "--".
        let long = pre_upgrade_snapshot("abcdefghij-klmnopqrs-aurora", "123.456.789", "124.4.789");
        assert_eq!(long, "abcdefghij-klmnopqrs-aurora-pre-upgrade-123-456-789-to-124-4-78");
        NameKind::RdsCluster.check(&long).unwrap();
        NameKind::RdsCluster.check(&pre_upgrade_snapshot("abcdefghij-klmnopqrs-redis", "6.x", "7.1")).unwrap();
    }

    #[test]
    fn every_name_of_the_longest_legal_stack_meets_its_aws_rule() {
        // Stack names are 3-20 characters (core's StackName): at 20, the OpenSearch domain
        // `<stack>-search` is 27 characters, one under its limit of 28. A longer suffix here
        // would fail this test rather than a create on AWS.
        let ctx = Context::new("abcdefghij-klmnopqrs", Environment::Prod, "us-east-1")
            .unwrap()
            .with_account_id("123456789012");
        assert_eq!(check(&ctx, 2), vec![]);
        let names = all(&ctx, 2);
        assert_eq!(names.len(), 14, "{names:?}");
        // The rule is the kind's: two characters more (29) would break the domain name.
        let (kind, domain) = names.iter().find(|(k, _)| *k == NameKind::OpenSearchDomain).unwrap();
        assert_eq!(domain.len(), 27);
        assert!(kind.check(&format!("{domain}x")).is_ok() && kind.check(&format!("{domain}xx")).is_err());
    }
}
