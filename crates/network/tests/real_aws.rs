//! The network tier against real AWS. Never runs in CI; run by hand with credentials:
//! `DIFY_STACK_REAL_AWS_REGION=us-west-2 cargo test -p dify-stack-network --test real_aws -- --ignored`

use dify_stack_core::{Context, Environment, Provisioner};
use dify_stack_network::{NetworkProvisioner, NetworkSpec};

#[tokio::test]
#[ignore = "needs AWS account (creates a VPC with 2 NAT gateways for ~5 min, costs money)"]
async fn real_aws_apply_is_converged_and_destroy_leaves_nothing() {
    let region = std::env::var("DIFY_STACK_REAL_AWS_REGION").unwrap_or_else(|_| "us-west-2".into());
    let config = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .region(aws_config::Region::new(region.clone()))
        .load()
        .await;
    let ctx = Context::new("dify-rt-net", Environment::Test, &region).unwrap();
    let spec = NetworkSpec::for_environment(Environment::Test, "dify-rt-net");
    let network = NetworkProvisioner::from_conf(&config);
    let result = network.apply(&ctx, &spec).await;
    let plan = network.plan(&ctx, &spec).await;
    // Always clean up, even when the assertions below would fail.
    let deleted = network.destroy(&ctx, &spec).await.unwrap();
    let out = result.unwrap();
    assert_eq!(out.private_subnets.len(), 2);
    assert!(plan.unwrap().is_empty());
    assert!(!deleted.is_empty());
    assert!(network.destroy(&ctx, &spec).await.unwrap().is_empty());
}
