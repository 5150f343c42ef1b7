//! The names and logical ids of the network tier's resources: the only place they are derived.
//!
//! # Identity
//!
//! A VPC, subnet, internet gateway, NAT gateway, Elastic IP or route table has no name of its own
//! in AWS: only an id AWS picks, and tags. The tier finds each one by two tags nobody has a reason
//! to edit: the stack's ownership tag (`dify-stack:stack`) and its logical id
//! ([`dify_stack_core::TAG_ID`], `dify-stack:id`, one of the values in [`id`]). The `Name` tag
//! ([`vpc`], [`subnet`], ...) is what the console shows, and a person may rename it there (CreateTags
//! overwrites a tag's value, EC2 API reference, "CreateTags"): a changed `Name`, like any other of
//! our tags apart from the two identity tags, is drift, planned as a tag update and written back by
//! apply, never taken as absence. The tier makes no security group; the groups of the other tiers
//! it deletes on destroy are found by the ownership tag in the stack's VPCs.
//!
//! Resources made before the logical-id tag existed carry only the ownership tags and `Name`:
//! observe finds them once by their `Name` (the VPC also by its `dify-stack:component` tag, as a
//! stack has exactly one), and the plan adds the logical id as a tag update.
//!
//! Elsewhere in the stack the name is the identity, because AWS makes it one: unique in its scope,
//! looked up by it, and no API renames it, so a different name means another resource (replace):
//! - IAM roles (`RoleName`, unique per account; UpdateRole changes no name) of the EKS cluster and
//!   nodes, the IRSA roles and the platform's add-on roles;
//! - EC2 launch templates (`LaunchTemplateName`, unique per region) of the node group;
//! - security-group names (`GroupName`, unique per VPC; no rename operation) of the node, Aurora,
//!   Redis and OpenSearch groups;
//! - CloudWatch log groups (`/aws/eks/<cluster>/cluster`, unique per region);
//! - likewise the EKS cluster, node group and add-on names, RDS cluster and instance identifiers,
//!   the ElastiCache replication group id, the OpenSearch domain, S3 bucket, ECR repository,
//!   Secrets Manager secret and KMS alias names, and the OIDC provider's URL.
//!
//! Numbering is 1-based, one per availability zone.

use dify_stack_core::Context;

use crate::model::SubnetRole;

/// The VPC, `<stack>-vpc`.
pub fn vpc(ctx: &Context) -> String {
    ctx.tag_name("vpc")
}

/// The internet gateway, `<stack>-igw`.
pub fn internet_gateway(ctx: &Context) -> String {
    ctx.tag_name("igw")
}

/// Subnet `i` of a role, `<stack>-public-<i>` or `<stack>-private-<i>`.
pub fn subnet(ctx: &Context, role: SubnetRole, i: usize) -> String {
    ctx.tag_name(&format!("{}-{i}", role.label()))
}

/// NAT gateway `i` and its Elastic IP, `<stack>-nat-<i>`.
pub fn nat(ctx: &Context, i: usize) -> String {
    ctx.tag_name(&format!("nat-{i}"))
}

/// The public route table, `<stack>-public`.
pub fn public_route_table(ctx: &Context) -> String {
    ctx.tag_name("public")
}

/// Private route table `i`, `<stack>-private-<i>`.
pub fn private_route_table(ctx: &Context, i: usize) -> String {
    ctx.tag_name(&format!("private-{i}"))
}

/// The logical ids, the values of the `dify-stack:id` tag: `network/<kind>[/<which>]`. Unlike
/// names they hold no stack name (the ownership tag does), so they never change with it.
pub mod id {
    use crate::model::SubnetRole;

    /// What every logical id of this tier starts with. An owned resource whose logical id starts
    /// otherwise belongs to another tier and is never the network's to change or delete.
    pub const PREFIX: &str = "network/";

    /// The VPC.
    pub fn vpc() -> String {
        "network/vpc".to_owned()
    }

    /// The internet gateway.
    pub fn internet_gateway() -> String {
        "network/internet-gateway".to_owned()
    }

    /// Subnet `i` of a role: `network/subnet/public-<i>`, `network/subnet/private-<i>`.
    pub fn subnet(role: SubnetRole, i: usize) -> String {
        format!("network/subnet/{}-{i}", role.label())
    }

    /// NAT gateway `i`: `network/nat/<i>`.
    pub fn nat(i: usize) -> String {
        format!("network/nat/{i}")
    }

    /// The Elastic IP of NAT gateway `i`: `network/eip/<i>`.
    pub fn eip(i: usize) -> String {
        format!("network/eip/{i}")
    }

    /// The public route table: `network/route-table/public`.
    pub fn public_route_table() -> String {
        "network/route-table/public".to_owned()
    }

    /// Private route table `i`: `network/route-table/private-<i>`.
    pub fn private_route_table(i: usize) -> String {
        format!("network/route-table/private-{i}")
    }
}

#[cfg(test)]
mod tests {
    use dify_stack_core::Environment;

    use super::*;

    #[test]
    fn names_are_the_stack_name_and_a_suffix() {
        let ctx = Context::new("dify-test", Environment::Test, "us-east-1").unwrap();
        assert_eq!(vpc(&ctx), "dify-test-vpc");
        assert_eq!(internet_gateway(&ctx), "dify-test-igw");
        assert_eq!(subnet(&ctx, SubnetRole::Private, 2), "dify-test-private-2");
        assert_eq!(nat(&ctx, 1), "dify-test-nat-1");
        assert_eq!(public_route_table(&ctx), "dify-test-public");
        assert_eq!(private_route_table(&ctx, 3), "dify-test-private-3");
    }

    #[test]
    fn logical_ids_are_the_tier_the_kind_and_the_index_without_the_stack_name() {
        let ids = [
            id::vpc(),
            id::internet_gateway(),
            id::subnet(SubnetRole::Public, 1),
            id::subnet(SubnetRole::Private, 2),
            id::nat(2),
            id::eip(2),
            id::public_route_table(),
            id::private_route_table(1),
        ];
        assert_eq!(
            ids,
            [
                "network/vpc",
                "network/internet-gateway",
                "network/subnet/public-1",
                "network/subnet/private-2",
                "network/nat/2",
                "network/eip/2",
                "network/route-table/public",
                "network/route-table/private-1",
            ]
        );
        assert!(ids.iter().all(|i| i.starts_with(id::PREFIX)));
    }
}
