//! The `Name` tags of the network tier's resources (they have no other name): the only place
//! they are derived. The desired model, observe (which finds an earlier run's VPC by it) and the
//! tests take them from here. Numbering is 1-based, one per availability zone.

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
}
