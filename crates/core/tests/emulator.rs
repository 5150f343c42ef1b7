//! Core helpers against the local AWS emulator, through the real SDK.

use aws_sdk_ec2::Client;
use aws_sdk_ec2::types::{Filter, ResourceType, Tag, TagSpecification};
use dify_stack_core::{AwsResultExt, Context, Environment, ErrorKind, Tier};
use dify_stack_emulator::Emulator;

async fn ec2() -> Client {
    let account = Emulator::shared().expect("emulator").account("us-west-2").await;
    Client::new(&account.config)
}

fn ctx(stack: &str) -> Context {
    Context::new(stack, Environment::Test, "us-west-2").unwrap()
}

async fn owned_vpcs(client: &Client, ctx: &Context) -> Vec<String> {
    let (name, value) = ctx.ownership_filter();
    let out = client
        .describe_vpcs()
        .filters(Filter::builder().name(name).values(value).build())
        .send()
        .await
        .aws("DescribeVpcs")
        .unwrap();
    out.vpcs()
        .iter()
        .filter(|v| ctx.owns(v.tags().iter().map(|t| (t.key().unwrap_or(""), t.value().unwrap_or("")))))
        .filter_map(|v| v.vpc_id().map(str::to_owned))
        .collect()
}

#[tokio::test]
async fn a_tagged_vpc_is_found_by_ownership_tag_and_deleted() {
    let client = ec2().await;
    let ctx = ctx("core-e2e");
    let other = self::ctx("core-e2e-other");
    let tags = ctx.tags_for(Tier::Network, "vpc", "core-e2e-vpc");
    let spec = TagSpecification::builder()
        .resource_type(ResourceType::Vpc)
        .set_tags(Some(tags.iter().map(|(k, v)| Tag::builder().key(k).value(v).build()).collect()))
        .build();
    let created =
        client.create_vpc().cidr_block("10.0.0.0/16").tag_specifications(spec).send().await.aws("CreateVpc").unwrap();
    let id = created.vpc().and_then(|v| v.vpc_id()).unwrap().to_owned();

    assert_eq!(owned_vpcs(&client, &ctx).await, vec![id.clone()]);
    assert!(owned_vpcs(&client, &other).await.is_empty(), "another stack must not see our VPC");

    client.delete_vpc().vpc_id(&id).send().await.aws("DeleteVpc").unwrap();
    assert!(owned_vpcs(&client, &ctx).await.is_empty());

    // Deleting again is a real NotFound from the service, classified as such.
    let err = client.delete_vpc().vpc_id(&id).send().await.aws("DeleteVpc").unwrap_err();
    assert_eq!(err.kind, ErrorKind::NotFound, "{err:?}");
    assert_eq!(err.code.as_deref(), Some("InvalidVpcID.NotFound"));
    assert_eq!(err.operation, "DeleteVpc");
    assert_eq!(err.status, Some(400));
}

#[tokio::test]
async fn real_error_responses_are_classified() {
    let client = ec2().await;
    let vpc = client.create_vpc().cidr_block("10.1.0.0/16").send().await.aws("CreateVpc").unwrap();
    let vpc_id = vpc.vpc().and_then(|v| v.vpc_id()).unwrap().to_owned();
    client.create_subnet().vpc_id(&vpc_id).cidr_block("10.1.1.0/24").send().await.aws("CreateSubnet").unwrap();

    // A VPC that still has a subnet cannot be deleted.
    let err = client.delete_vpc().vpc_id(&vpc_id).send().await.aws("DeleteVpc").unwrap_err();
    assert_eq!(err.kind, ErrorKind::DependencyViolation, "{err:?}");

    // A duplicate security group name.
    let sg = |name: &'static str| client.create_security_group().group_name(name).description("d").vpc_id(&vpc_id);
    sg("dup").send().await.aws("CreateSecurityGroup").unwrap();
    let err = sg("dup").send().await.aws("CreateSecurityGroup").unwrap_err();
    assert_eq!(err.kind, ErrorKind::AlreadyExists, "{err:?}");

    // A malformed CIDR is a permanent error of kind Other.
    let err = client.create_vpc().cidr_block("10.0.0.0/99").send().await.aws("CreateVpc").unwrap_err();
    assert_eq!(err.kind, ErrorKind::Other, "{err:?}");
    assert!(!err.is_retryable());
}

#[tokio::test]
async fn accounts_are_isolated_from_each_other() {
    let a = ec2().await;
    let b = ec2().await;
    a.create_vpc().cidr_block("10.9.0.0/16").send().await.aws("CreateVpc").unwrap();
    let count = |c: Client| async move {
        c.describe_vpcs()
            .filters(Filter::builder().name("cidr").values("10.9.0.0/16").build())
            .send()
            .await
            .unwrap()
            .vpcs()
            .len()
    };
    assert_eq!(count(a).await, 1);
    assert_eq!(count(b).await, 0);
}
