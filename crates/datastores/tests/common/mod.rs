//! The world the datastores tier's emulator tests run in: an account of the shared emulator
//! with a VPC, a private subnet in each of three AZs and a stand-in for the EKS nodes' security
//! group (the stores' ingress source). Each test binary uses part of it.
#![allow(dead_code)]

use dify_stack_core::ids::{AvailabilityZone, SecurityGroupId, SubnetId, VpcId};
use dify_stack_core::{Context, Environment};
use dify_stack_datastores::{DatastoresSpec, PlacedSubnet};
use dify_stack_emulator::{Emulator, TestAccount};

pub(crate) struct Env {
    pub(crate) account: TestAccount,
    pub(crate) ec2: aws_sdk_ec2::Client,
    pub(crate) source_sg: String,
    pub(crate) vpc: String,
    pub(crate) subnets: Vec<PlacedSubnet>,
}

/// A fresh account with the VPC, subnets and node group stand-in.
pub(crate) async fn setup() -> Env {
    let account = Emulator::shared().expect("emulator").account("us-west-2").await;
    let ec2 = aws_sdk_ec2::Client::new(&account.config);
    let vpc =
        ec2.create_vpc().cidr_block("10.0.0.0/16").send().await.unwrap().vpc().unwrap().vpc_id().unwrap().to_owned();
    let mut subnets = Vec::new();
    for (i, az) in ["us-west-2a", "us-west-2b", "us-west-2c"].iter().enumerate() {
        let s = ec2
            .create_subnet()
            .vpc_id(&vpc)
            .cidr_block(format!("10.0.{}.0/24", 10 + i))
            .availability_zone(*az)
            .send()
            .await
            .unwrap();
        subnets.push(PlacedSubnet {
            id: SubnetId::new(s.subnet().unwrap().subnet_id().unwrap()),
            availability_zone: AvailabilityZone::new(*az),
        });
    }
    let source_sg = ec2
        .create_security_group()
        .vpc_id(&vpc)
        .group_name("cluster-nodes")
        .description("stand-in for the EKS node group")
        .send()
        .await
        .unwrap()
        .group_id()
        .unwrap()
        .to_owned();
    Env { account, ec2, source_sg, vpc, subnets }
}

impl Env {
    /// A context of `stack` in this account.
    pub(crate) fn ctx(&self, stack: &str, env: Environment) -> Context {
        Context::new(stack, env, "us-west-2").unwrap().with_account_id(&self.account.account_id)
    }

    /// The profile's datastores spec on this network.
    pub(crate) fn spec(&self, env: Environment) -> DatastoresSpec {
        DatastoresSpec::for_environment(
            env,
            VpcId::new(&self.vpc),
            self.subnets.clone(),
            vec![SecurityGroupId::new(&self.source_sg)],
        )
    }
}
