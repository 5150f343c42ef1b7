//! The context every provisioner call receives: who the stack is, where it lives, how resources
//! are named and tagged, how long waits may take, and how to cancel.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;

use crate::naming::{NameError, NameKind};
use crate::partition::Partition;
use crate::spec::SpecErrors;
use crate::wait::WaitPolicy;

/// Tag key naming the owning stack. A resource without it (with our value) is never touched.
pub const TAG_STACK: &str = "dify-stack:stack";
/// Tag key naming the tier that created the resource.
pub const TAG_TIER: &str = "dify-stack:tier";
/// Tag key naming the component inside the tier (e.g. `nat-gateway`).
pub const TAG_COMPONENT: &str = "dify-stack:component";
/// Tag key naming a resource's logical id inside the stack (e.g. `network/vpc`), for resources
/// that are found by their tags: with [`TAG_STACK`] it is their identity. Set at creation and
/// never taken from anything a person edits; `Name` and the other tags are attributes (drift).
pub const TAG_ID: &str = "dify-stack:id";
/// The conventional `Name` tag.
pub const TAG_NAME: &str = "Name";

/// A set of tags, ordered by key for deterministic requests and plans.
pub type Tags = BTreeMap<String, String>;

/// A validated stack name: 3-20 characters, `[a-z][a-z0-9-]*`, no trailing `-`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct StackName(String);

impl StackName {
    /// Validates a stack name.
    pub fn parse(name: &str) -> Result<StackName, InvalidStackName> {
        let bad = |reason: &str| Err(InvalidStackName { name: name.to_owned(), reason: reason.to_owned() });
        let len = name.chars().count();
        if !(3..=20).contains(&len) {
            return bad("must be 3-20 characters long");
        }
        if !name.starts_with(|c: char| c.is_ascii_lowercase()) {
            return bad("must start with a lowercase letter");
        }
        if !name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-') {
            return bad("may contain only a-z, 0-9 and '-'");
        }
        if name.ends_with('-') || name.contains("--") {
            return bad("may not end with '-' or contain '--'");
        }
        Ok(StackName(name.to_owned()))
    }

    /// The name as a string slice.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for StackName {
    type Error = InvalidStackName;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        StackName::parse(&s)
    }
}

impl From<StackName> for String {
    fn from(s: StackName) -> String {
        s.0
    }
}

impl FromStr for StackName {
    type Err = InvalidStackName;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        StackName::parse(s)
    }
}

impl fmt::Display for StackName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A stack name that breaks the rules.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "stack name {name:?} {reason} (it prefixes every resource name: use 3-20 chars of [a-z0-9-], starting with a letter)"
)]
pub struct InvalidStackName {
    /// The rejected name.
    pub name: String,
    /// Why it was rejected.
    pub reason: String,
}

/// The environment (profile) a stack is provisioned for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Environment {
    /// Small, cheap, no deletion protection.
    #[default]
    Test,
    /// Multi-AZ, larger sizes, deletion protection.
    Prod,
}

impl Environment {
    /// `test` or `prod`.
    pub fn as_str(self) -> &'static str {
        match self {
            Environment::Test => "test",
            Environment::Prod => "prod",
        }
    }
}

impl fmt::Display for Environment {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The tier a resource belongs to (recorded in the `dify-stack:tier` tag).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Tier {
    /// VPC, subnets, gateways, routes.
    Network,
    /// EKS cluster, node group, add-ons.
    Eks,
    /// Aurora, Redis, OpenSearch, S3.
    Datastores,
    /// ECR.
    Registry,
    /// OIDC provider, IRSA roles, service accounts.
    Iam,
    /// Cluster add-ons (load balancer controller, autoscaler, metrics), certificate, DNS.
    Platform,
}

impl Tier {
    /// The tag value of the tier.
    pub fn as_str(self) -> &'static str {
        match self {
            Tier::Network => "network",
            Tier::Eks => "eks",
            Tier::Datastores => "datastores",
            Tier::Registry => "registry",
            Tier::Iam => "iam",
            Tier::Platform => "platform",
        }
    }
}

impl fmt::Display for Tier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What a run may do beyond converging: every one defaults to `false`. The one place a run's
/// permission to lose data lives: apply's replacements and destroy's deletions both read it
/// (the datastores' `DataPolicy` is a view of it).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Permissions {
    /// Apply may delete and re-create resources whose immutable settings drifted (`Replace`).
    pub allow_replace: bool,
    /// Data may be lost: destroy deletes non-empty buckets, repositories holding images,
    /// databases without a final snapshot, the volumes the cluster's claims made; apply (with
    /// `allow_replace`) replaces what holds data. Implies `lift_deletion_protection`.
    pub allow_data_loss: bool,
    /// Destroy may lift Aurora's deletion protection (the cluster then goes with its final
    /// snapshot when the spec takes one).
    #[serde(default)]
    pub lift_deletion_protection: bool,
}

/// Everything a provisioner needs to know about the stack it works on.
///
/// Cheap to clone; clones share the cancellation token.
#[derive(Debug, Clone)]
pub struct Context {
    stack: StackName,
    environment: Environment,
    region: String,
    partition: Partition,
    account_id: Option<String>,
    user_tags: Tags,
    /// How long and how often to poll in waits and retries.
    pub wait: WaitPolicy,
    /// What the run may do beyond converging.
    pub permissions: Permissions,
    cancel: CancellationToken,
}

impl Context {
    /// Builds a context for `stack` in `region`, deriving the partition from the region.
    ///
    /// Every problem is reported at once, with the field path and the fix.
    pub fn new(stack: &str, environment: Environment, region: &str) -> Result<Context, SpecErrors> {
        let mut errors = SpecErrors::new();
        let stack = match StackName::parse(stack) {
            Ok(s) => Some(s),
            Err(e) => {
                errors.push("stack", e.to_string(), "e.g. \"dify-test\"");
                None
            }
        };
        let partition = Partition::of_region(region);
        if partition.is_none() {
            errors.push(
                "region",
                format!("unknown region {region:?}"),
                "use a commercial, China (cn-*) or GovCloud (us-gov-*) region such as us-west-2",
            );
        }
        errors.into_result()?;
        let (Some(stack), Some(partition)) = (stack, partition) else { unreachable!("errors were reported above") };
        Ok(Context {
            stack,
            environment,
            region: region.to_owned(),
            partition,
            account_id: None,
            user_tags: Tags::new(),
            wait: WaitPolicy::default(),
            permissions: Permissions::default(),
            cancel: CancellationToken::new(),
        })
    }

    /// Adds user tags applied to every taggable resource. Keys starting with `dify-stack:` or
    /// `aws:` and the `Name` key are reserved.
    pub fn with_tags(mut self, tags: Tags) -> Result<Context, SpecErrors> {
        let mut errors = SpecErrors::new();
        for (k, v) in &tags {
            if k.starts_with("dify-stack:") || k.starts_with("aws:") || k == TAG_NAME {
                errors.push(
                    format!("tags.{k}"),
                    "is a reserved tag key",
                    "remove it; dify-stack sets its ownership tags and Name itself",
                );
            }
            if k.is_empty() || k.chars().count() > 128 || v.chars().count() > 256 {
                errors.push(format!("tags.{k}"), "tag keys must be 1-128 and values 0-256 characters", "shorten it");
            }
        }
        errors.into_result()?;
        self.user_tags = tags;
        Ok(self)
    }

    /// Sets the account id (needed for account-scoped names such as the storage bucket).
    pub fn with_account_id(mut self, account_id: impl Into<String>) -> Context {
        self.account_id = Some(account_id.into());
        self
    }

    /// Replaces the wait policy.
    pub fn with_wait(mut self, wait: WaitPolicy) -> Context {
        self.wait = wait;
        self
    }

    /// Replaces the permissions.
    pub fn with_permissions(mut self, permissions: Permissions) -> Context {
        self.permissions = permissions;
        self
    }

    /// The stack name.
    pub fn stack(&self) -> &StackName {
        &self.stack
    }

    /// The environment.
    pub fn environment(&self) -> Environment {
        self.environment
    }

    /// The region, e.g. `us-west-2`.
    pub fn region(&self) -> &str {
        &self.region
    }

    /// The partition derived from the region.
    pub fn partition(&self) -> Partition {
        self.partition
    }

    /// The account id, when known.
    pub fn account_id(&self) -> Option<&str> {
        self.account_id.as_deref()
    }

    /// The user's extra tags.
    pub fn user_tags(&self) -> &Tags {
        &self.user_tags
    }

    /// The cancellation token: cancelling it makes waits and retries stop at their next step.
    pub fn cancellation(&self) -> &CancellationToken {
        &self.cancel
    }

    /// Replaces the cancellation token (e.g. with a child token of the caller's).
    pub fn with_cancellation(mut self, token: CancellationToken) -> Context {
        self.cancel = token;
        self
    }

    /// True once cancellation was requested.
    pub fn is_cancelled(&self) -> bool {
        self.cancel.is_cancelled()
    }

    /// The deterministic name `<stack>-<suffix>`, checked against the service's rules.
    /// An empty suffix yields the stack name itself.
    pub fn name(&self, kind: NameKind, suffix: &str) -> Result<String, NameError> {
        let name = if suffix.is_empty() { self.stack.0.clone() } else { format!("{}-{suffix}", self.stack.0) };
        kind.check(&name)?;
        Ok(name)
    }

    /// The `Name` tag value `<stack>-<suffix>` for resources identified only by tags (VPC,
    /// subnets, gateways). Infallible: a 20-character stack name plus a tier suffix stays far
    /// below the 255-character tag limit.
    pub fn tag_name(&self, suffix: &str) -> String {
        format!("{}-{suffix}", self.stack.0)
    }

    /// The tag set of a resource: ownership tags, `Name`, then the user's tags.
    pub fn tags_for(&self, tier: Tier, component: &str, name: &str) -> Tags {
        let mut tags = self.user_tags.clone();
        tags.insert(TAG_STACK.to_owned(), self.stack.0.clone());
        tags.insert(TAG_TIER.to_owned(), tier.as_str().to_owned());
        tags.insert(TAG_COMPONENT.to_owned(), component.to_owned());
        tags.insert(TAG_NAME.to_owned(), name.to_owned());
        tags
    }

    /// The EC2-style filter that selects this stack's resources: `("tag:dify-stack:stack", <stack>)`.
    /// Describe calls filter by it; results are still re-checked with [`Context::owns`], because
    /// not every API honours tag filters (moto's DescribeNatGateways ignores them).
    pub fn ownership_filter(&self) -> (String, String) {
        (format!("tag:{TAG_STACK}"), self.stack.0.clone())
    }

    /// [`Context::owns`] for a [`Tags`] map, as the tier clients return them.
    pub fn owns_tags(&self, tags: &Tags) -> bool {
        tags.get(TAG_STACK).is_some_and(|v| *v == self.stack.0)
    }

    /// True when `tags` carry this stack's ownership tag. Matches the full stack name, never a
    /// substring, so `dify` never claims `dify-test`'s resources.
    pub fn owns<'a, I>(&self, tags: I) -> bool
    where
        I: IntoIterator<Item = (&'a str, &'a str)>,
    {
        tags.into_iter().any(|(k, v)| k == TAG_STACK && v == self.stack.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stack_names_follow_the_rules() {
        for ok in ["dif", "dify-test", "a1-b2", "abcdefghijklmnopqrst"] {
            assert!(StackName::parse(ok).is_ok(), "{ok}");
        }
        for bad in ["di", "abcdefghijklmnopqrstu", "1dify", "Dify", "dify_test", "dify-", "di--fy", "dify test"] {
            assert!(StackName::parse(bad).is_err(), "{bad}");
        }
        let err: Result<StackName, _> = serde_json::from_str("\"Bad\"");
        assert!(err.is_err());
    }

    #[test]
    fn context_reports_stack_and_region_problems_together() {
        let errs = Context::new("X", Environment::Test, "moon-1").unwrap_err();
        assert_eq!(errs.paths(), vec!["stack", "region"]);
        let ctx = Context::new("dify-test", Environment::Test, "cn-north-1").unwrap();
        assert_eq!(ctx.partition(), Partition::AwsCn);
    }

    #[test]
    fn tags_carry_ownership_name_and_user_tags() {
        let ctx = Context::new("dify-test", Environment::Test, "us-west-2")
            .unwrap()
            .with_tags(Tags::from([("team".to_owned(), "platform".to_owned())]))
            .unwrap();
        let tags = ctx.tags_for(Tier::Network, "vpc", "dify-test-vpc");
        let expected: Tags = [
            ("Name", "dify-test-vpc"),
            ("dify-stack:component", "vpc"),
            ("dify-stack:stack", "dify-test"),
            ("dify-stack:tier", "network"),
            ("team", "platform"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
        assert_eq!(tags, expected);
        assert!(ctx.owns(tags.iter().map(|(k, v)| (k.as_str(), v.as_str()))));
        assert!(!ctx.owns([(TAG_STACK, "dify-test-2")]));
        assert!(!ctx.owns([(TAG_STACK, "dify")]));
    }

    #[test]
    fn reserved_user_tag_keys_are_rejected() {
        let ctx = Context::new("dify-test", Environment::Test, "us-west-2").unwrap();
        let errs = ctx
            .with_tags(Tags::from([
                ("dify-stack:stack".to_owned(), "x".to_owned()),
                ("Name".to_owned(), "y".to_owned()),
            ]))
            .unwrap_err();
        assert_eq!(errs.len(), 2);
    }

    #[test]
    fn names_are_derived_and_checked_per_service() {
        let ctx = Context::new("dify-prod", Environment::Prod, "us-west-2").unwrap();
        assert_eq!(ctx.name(NameKind::OpenSearchDomain, "search").unwrap(), "dify-prod-search");
        assert_eq!(ctx.name(NameKind::EcrRepository, "").unwrap(), "dify-prod");
        let long = Context::new("abcdefghijklmnopqrst", Environment::Prod, "us-west-2").unwrap();
        let err = long.name(NameKind::OpenSearchDomain, "opensearch").unwrap_err();
        assert!(err.to_string().contains("limit is 3-28"), "{err}");
    }
}
