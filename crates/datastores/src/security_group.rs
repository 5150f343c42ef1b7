//! A store's security group (Aurora, Redis, OpenSearch each have one): ingress exactly TCP
//! `port` from the cluster's security groups, our tags. [`SgChange`] is what one observation
//! says must change; the plan shows it ([`Planned`]) and apply executes exactly it
//! ([`apply_change`]); [`delete`] is its part of destroy.
//!
//! A group is found by its group name in the VPC, which is its identity: EC2 never changes a
//! group's name ("They can't be edited after the security group is created", Amazon EC2 User
//! Guide, "Work with security groups", Create a security group), so no edit of a tag can hide
//! it. Our tags on it (`Name` included) are drift when edited: one tag update in the plan,
//! written back by apply (`tests/renamed.rs`).

use std::time::Duration;

use dify_stack_core::ids::{SecurityGroupId, VpcId};
use dify_stack_core::{
    Action, AwsAt, AwsError, Change, Context, NotOwned, Planned, ResourceRef, Tier, from_aws_wait, wait,
};

use crate::client::{SgApi, SgInfo};
use crate::common::{DatastoresError, Result};

/// One ingress rule as [`SgInfo::ingress`] lists it: (protocol, from port, to port, source).
pub(crate) type Rule = (String, i32, i32, String);

/// A store's security group as wanted.
#[derive(Clone, Copy)]
pub(crate) struct SgWant<'a> {
    pub(crate) vpc_id: &'a VpcId,
    pub(crate) name: &'a str,
    pub(crate) component: &'a str,
    pub(crate) port: i32,
    pub(crate) sources: &'a [String],
}

/// The cluster's security groups (the sources every store admits), as the rules name them.
pub(crate) fn sources(spec: &crate::spec::DatastoresSpec) -> Vec<String> {
    spec.source_security_groups.iter().map(|s| s.to_string()).collect()
}

/// The ingress rules the group must have: TCP `port` from each source group, sorted.
pub(crate) fn wanted_rules(port: i32, sources: &[String]) -> Vec<Rule> {
    let mut rules: Vec<_> = sources.iter().map(|s| ("tcp".to_owned(), port, port, s.clone())).collect();
    rules.sort();
    rules
}

/// What one observation says must change on a store's security group.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct SgChange {
    name: String,
    /// `None`: the group is created (with our tags), then `authorize` is granted.
    id: Option<SecurityGroupId>,
    /// The ingress as observed and as wanted (what the plan shows).
    before: Vec<Rule>,
    after: Vec<Rule>,
    /// Rules to revoke (anything else, e.g. someone's `0.0.0.0/0`) and to grant.
    revoke: Vec<Rule>,
    authorize: Vec<Rule>,
    /// Our tags that are missing or differ on an existing group: (key, before, after).
    tags: dify_stack_core::TagDrift,
}

impl Planned for SgChange {
    fn change(&self) -> Change {
        let r = ResourceRef::new("ec2:security-group", &self.name);
        let Some(id) = &self.id else {
            let sources: Vec<&str> = self.after.iter().map(|r| r.3.as_str()).collect();
            let port = self.after.first().map(|r| r.1).unwrap_or_default();
            return Change::new(Action::Create, r).field(
                "ingress",
                None::<&str>,
                Some(format!("tcp/{port} from {}", sources.join(", "))),
            );
        };
        let mut c = Change::new(Action::Update, r.with_id(id.as_str()));
        if !(self.revoke.is_empty() && self.authorize.is_empty()) {
            c = c.field("ingress", Some(format!("{:?}", self.before)), Some(format!("{:?}", self.after)));
        }
        c.tag_fields(&self.tags)
    }
}

/// The group's change against what was `observed` (ownership was checked by observe); `None`
/// when it is converged.
pub(crate) fn change(ctx: &Context, want: SgWant<'_>, observed: Option<&SgInfo>) -> Option<SgChange> {
    let after = wanted_rules(want.port, want.sources);
    let Some(sg) = observed else {
        return Some(SgChange {
            name: want.name.to_owned(),
            id: None,
            before: Vec::new(),
            authorize: after.clone(),
            after,
            revoke: Vec::new(),
            tags: Vec::new(),
        });
    };
    let ours = ctx.tags_for(Tier::Datastores, want.component, want.name);
    let tags: Vec<_> = dify_stack_core::tag_drift(&ours, &sg.tags);
    let revoke: Vec<Rule> = sg.ingress.iter().filter(|r| !after.contains(r)).cloned().collect();
    let authorize: Vec<Rule> = after.iter().filter(|r| !sg.ingress.contains(r)).cloned().collect();
    (!(revoke.is_empty() && authorize.is_empty() && tags.is_empty())).then(|| SgChange {
        name: want.name.to_owned(),
        id: Some(sg.id.clone()),
        before: sg.ingress.clone(),
        after,
        revoke,
        authorize,
        tags,
    })
}

/// Executes `change` (when there is one) and returns the group's id: the observed one, or the
/// created one. A group created by someone else between observe and create (`AlreadyExists`)
/// is read, its ownership checked, and its own change executed instead.
pub(crate) async fn apply_change(
    ctx: &Context,
    api: &dyn SgApi,
    want: SgWant<'_>,
    pending: Option<SgChange>,
    observed: Option<&SgInfo>,
) -> Result<SecurityGroupId> {
    let name = want.name;
    let Some(c) = pending else {
        return observed.map(|sg| sg.id.clone()).ok_or_else(|| {
            AwsError::new("DescribeSecurityGroups", "NotFound", "the security group was not observed")
                .at("DescribeSecurityGroups", name)
                .into()
        });
    };
    let id = match c.id {
        Some(id) => id,
        None => {
            let description =
                format!("dify-stack {}: {}, port {} from the cluster only", ctx.stack(), want.component, want.port);
            let tags = ctx.tags_for(Tier::Datastores, want.component, name);
            match api.create(want.vpc_id.clone(), name.to_owned(), description, tags).await {
                Ok(id) => id,
                Err(e) if e.is_already_exists() => {
                    let sg = api.find(want.vpc_id.clone(), name.to_owned()).await.at("DescribeSecurityGroups", name)?;
                    let sg = sg.ok_or(e).at("CreateSecurityGroup", name)?;
                    NotOwned::check(ctx, "security group", name, &sg.tags)?;
                    let again = change(ctx, want, Some(&sg));
                    return Box::pin(apply_change(ctx, api, want, again, Some(&sg))).await;
                }
                Err(e) => return Err(e.at("CreateSecurityGroup", name).into()),
            }
        }
    };
    for rule in c.revoke {
        dify_stack_core::ignore_not_found(api.revoke(id.clone(), rule).await).at("RevokeSecurityGroupIngress", name)?;
    }
    for (_, port, _, source) in c.authorize {
        match api.authorize(id.clone(), port, SecurityGroupId::new(source)).await {
            Ok(()) => {}
            Err(e) if e.is_already_exists() => {}
            Err(e) => return Err(e.at("AuthorizeSecurityGroupIngress", name).into()),
        }
    }
    if !c.tags.is_empty() {
        let tags = dify_stack_core::drift_tags(&c.tags);
        api.tag(id.clone(), tags).await.at("CreateTags", name)?;
    }
    Ok(id)
}

/// Deletes a store's security group if it is ours, retrying while ENIs of the deleted store
/// still hold it (`DependencyViolation`). Returns the deleted group's id.
pub(crate) async fn delete(
    ctx: &Context,
    api: &dyn SgApi,
    vpc_id: &VpcId,
    name: &str,
) -> Result<Option<SecurityGroupId>> {
    let Some(sg) = api.find(vpc_id.clone(), name.to_owned()).await.at("DescribeSecurityGroups", name)? else {
        return Ok(None);
    };
    if !ctx.owns_tags(&sg.tags) {
        return Ok(None);
    }
    wait::retry(
        &format!("DeleteSecurityGroup {name}"),
        &ctx.wait.capped(Duration::from_secs(15 * 60)),
        ctx.cancellation(),
        AwsError::is_dependency_violation,
        || async { dify_stack_core::ignore_not_found(api.delete(sg.id.clone()).await) },
    )
    .await
    .map_err(|e| from_aws_wait::<DatastoresError>(e, "DeleteSecurityGroup", name))?;
    Ok(Some(sg.id))
}
