//! The node security group as a provisioner of its own, so that a stack can create it right
//! after the network and let the datastores admit it without waiting for the cluster (about
//! ten minutes). [`EksProvisioner`](crate::EksProvisioner) finds and uses the same group (same
//! name and tags), and deletes it on destroy.
//!
//! The group is found by its group name in the VPC, which is its identity: EC2 never changes a
//! group's name ("They can't be edited after the security group is created", Amazon EC2 User
//! Guide, "Work with security groups", Create a security group), so no edit of a tag can hide
//! it. Its tags are ours to keep: one that is missing or differs (a `Name` edited in the
//! console) is drift, planned as one tag update and written back by apply.

use std::time::Duration;

use async_trait::async_trait;
use dify_stack_core::ids::{SecurityGroupId, VpcId};
use dify_stack_core::{
    Action, AwsAt, AwsError, Change, Context, NotOwned, Planned, Provisioner, ResourceRef, SpecErrors, TagDrift, Tier,
    from_aws_wait,
};
use serde::{Deserialize, Serialize};

use crate::client::{EksApi, SecurityGroupInfo};
use crate::provisioner::{Names, create_node_security_group};
use crate::{EksError, Result};

/// Where the group lives.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NodeSecurityGroupSpec {
    /// The VPC.
    pub vpc_id: VpcId,
}

/// What finds the node security group for a destroy: its VPC, when the VPC still exists.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct NodeSecurityGroupSelector {
    /// The VPC the group is in (its name is the group's identity only within it); `None` when
    /// the VPC is gone, and the group with it: nothing is looked up or deleted.
    pub vpc_id: Option<VpcId>,
}

/// A change of the node security group, as
/// [`Provisioner::changes`] computes it and [`Provisioner::execute`] carries it out. Opaque: what
/// a plan shows of it is its [`Planned::change`].
#[derive(Debug, Clone)]
pub struct NodeSecurityGroupChange(Step);

/// The node security group's changes.
#[derive(Debug, Clone)]
enum Step {
    /// The group made (find-or-create).
    Create { name: String },
    /// Our tags, missing or different on the group, written back.
    Tag { name: String, id: SecurityGroupId, sg_name: String, drift: TagDrift },
}

impl Planned for NodeSecurityGroupChange {
    fn change(&self) -> Change {
        match &self.0 {
            Step::Create { name } => Change::new(Action::Create, ResourceRef::new("ec2:security-group", name)),
            Step::Tag { name, id, drift, .. } => {
                Change::new(Action::Update, ResourceRef::new("ec2:security-group", name).with_id(id.as_str()))
                    .tag_fields(drift)
            }
        }
    }
}

/// Provisions the node security group `<stack>-eks-nodes`. Cheap to clone: clones share the
/// client.
#[derive(Clone)]
pub struct NodeSecurityGroupProvisioner {
    client: std::sync::Arc<dyn EksApi>,
}

impl std::fmt::Debug for NodeSecurityGroupProvisioner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NodeSecurityGroupProvisioner").finish_non_exhaustive()
    }
}

impl NodeSecurityGroupProvisioner {
    /// A provisioner over the real EC2 API.
    pub fn from_conf(config: &aws_types::SdkConfig) -> Self {
        NodeSecurityGroupProvisioner::new(crate::SdkEks::from_conf(config))
    }

    /// A provisioner over the given client.
    pub fn new(client: impl EksApi + 'static) -> Self {
        NodeSecurityGroupProvisioner { client: std::sync::Arc::new(client) }
    }
}

#[async_trait]
impl Provisioner for NodeSecurityGroupProvisioner {
    type Spec = NodeSecurityGroupSpec;
    type Observed = Option<SecurityGroupInfo>;
    type Output = SecurityGroupId;
    type Error = EksError;
    type Selector = NodeSecurityGroupSelector;
    type Change = NodeSecurityGroupChange;

    fn validate(&self, _ctx: &Context, _spec: &NodeSecurityGroupSpec) -> Result<(), SpecErrors> {
        Ok(())
    }

    async fn observe(&self, ctx: &Context, spec: &NodeSecurityGroupSpec) -> Result<Option<SecurityGroupInfo>> {
        let names = Names::of(ctx);
        let sg = self
            .client
            .find_security_group(spec.vpc_id.clone(), names.node_security_group.clone())
            .await
            .at("DescribeSecurityGroups", &names.node_security_group)?;
        match sg {
            Some(sg) if !ctx.owns_tags(&sg.tags) => {
                Err(NotOwned::new(ctx, "security group", names.node_security_group).into())
            }
            other => Ok(other),
        }
    }

    fn changes(
        &self,
        ctx: &Context,
        _spec: &NodeSecurityGroupSpec,
        observed: &Option<SecurityGroupInfo>,
    ) -> Vec<NodeSecurityGroupChange> {
        let name = Names::of(ctx).node_security_group;
        let step = match observed {
            None => Some(Step::Create { name }),
            Some(sg) => {
                let drift = tag_drift(ctx, sg);
                (!drift.is_empty()).then(|| Step::Tag { name, id: sg.id.clone(), sg_name: sg.name.clone(), drift })
            }
        };
        step.into_iter().map(NodeSecurityGroupChange).collect()
    }

    fn output(
        &self,
        _ctx: &Context,
        _spec: &NodeSecurityGroupSpec,
        observed: &Option<SecurityGroupInfo>,
    ) -> Option<SecurityGroupId> {
        observed.as_ref().map(|sg| sg.id.clone())
    }

    /// Our tags written back on the group found, or the group created; its id.
    async fn execute(
        &self,
        ctx: &Context,
        spec: &NodeSecurityGroupSpec,
        observed: Option<SecurityGroupInfo>,
        changes: Vec<NodeSecurityGroupChange>,
    ) -> Result<SecurityGroupId> {
        let mut id = observed.map(|sg| sg.id);
        for NodeSecurityGroupChange(step) in changes {
            match step {
                Step::Tag { id, sg_name, drift, .. } => {
                    let tags = dify_stack_core::drift_tags(&drift);
                    self.client.tag_security_group(id, tags).await.at("CreateTags", &sg_name)?;
                }
                Step::Create { .. } => {
                    id = Some(
                        create_node_security_group(self.client.as_ref(), ctx, &spec.vpc_id, &Names::of(ctx)).await?,
                    )
                }
            }
        }
        Ok(id
            .ok_or_else(|| AwsError::new("CreateSecurityGroup", "NotFound", "neither observed nor created"))
            .at("CreateSecurityGroup", &Names::of(ctx).node_security_group)?)
    }

    fn selector(&self, _ctx: &Context, spec: &NodeSecurityGroupSpec) -> NodeSecurityGroupSelector {
        NodeSecurityGroupSelector { vpc_id: Some(spec.vpc_id.clone()) }
    }

    async fn destroy_selected(&self, ctx: &Context, selector: &NodeSecurityGroupSelector) -> Result<Vec<ResourceRef>> {
        let Some(vpc_id) = &selector.vpc_id else { return Ok(Vec::new()) };
        let names = Names::of(ctx);
        let Some(sg) = self
            .client
            .find_security_group(vpc_id.clone(), names.node_security_group.clone())
            .await
            .at("DescribeSecurityGroups", &names.node_security_group)?
            .filter(|s| ctx.owns_tags(&s.tags))
        else {
            return Ok(Vec::new());
        };
        dify_stack_core::wait::retry(
            &format!("DeleteSecurityGroup {}", sg.id),
            &ctx.wait.capped(Duration::from_secs(10 * 60)),
            ctx.cancellation(),
            AwsError::is_dependency_violation,
            || async { dify_stack_core::ignore_not_found(self.client.delete_security_group(sg.id.clone()).await) },
        )
        .await
        .map_err(|e| from_aws_wait::<EksError>(e, "DeleteSecurityGroup", &names.node_security_group))?;
        Ok(vec![ResourceRef::new("ec2:security-group", &names.node_security_group).with_id(sg.id.as_str())])
    }
}

/// Our tags (as `create_node_security_group` writes them) that are missing or differ on `sg`.
fn tag_drift(ctx: &Context, sg: &SecurityGroupInfo) -> TagDrift {
    let want = ctx.tags_for(Tier::Eks, "node-security-group", &Names::of(ctx).node_security_group);
    dify_stack_core::tag_drift(&want, &sg.tags)
}
