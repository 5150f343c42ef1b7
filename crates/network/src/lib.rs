//! Network tier of [dify-stack](https://github.com/dify-stack/dify-stack): the VPC, its public
//! and private subnets over 2-6 availability zones, the internet gateway, NAT gateways with
//! their Elastic IPs (one per AZ or a single one), and route tables; or an existing VPC brought
//! by the user (validated, optionally tagged for Kubernetes load balancers, never deleted).
//!
//! ```no_run
//! # async fn run(config: aws_types::SdkConfig) -> Result<(), Box<dyn std::error::Error>> {
//! use dify_stack_core::{Context, Environment, Provisioner};
//! use dify_stack_network::{NetworkProvisioner, NetworkSpec};
//!
//! let ctx = Context::new("dify-test", Environment::Test, "us-west-2")?;
//! let spec = NetworkSpec::for_environment(Environment::Test, "dify-test");
//! let network = NetworkProvisioner::from_conf(&config);
//! println!("{}", network.plan(&ctx, &spec).await?);
//! let output = network.apply(&ctx, &spec).await?;
//! println!("VPC {} with private subnets {:?}", output.vpc_id, output.private_subnet_ids());
//! # Ok(()) }
//! ```

pub mod audit;
pub mod client;
pub mod error;
pub mod model;
pub mod names;
pub mod preflight;
pub mod provisioner;
pub mod quotas;
pub mod sdk;
pub mod spec;
#[cfg(any(test, feature = "test-util"))]
pub mod testing;

pub use client::Ec2Api;
#[cfg(any(test, feature = "test-util"))]
pub use client::MockEc2Api;
pub use error::{NetworkError, Result};
pub use model::{NatOutput, NetworkOutput, ObservedNetwork, SubnetOutput, SubnetRole};
pub use preflight::{CapacityShortfall, ClusterUse, NodeDemand, Shortfall, capacity_preflight};
pub use provisioner::{CORE_KINDS, NetworkProvisioner, NetworkStep};
#[cfg(any(test, feature = "test-util"))]
pub use quotas::MockQuotasApi;
pub use quotas::{QuotasApi, SdkQuotas};
pub use sdk::SdkEc2;
pub use spec::{ExistingVpcSpec, NatMode, NetworkSelector, NetworkSettings, NetworkSpec, NewVpcSpec, VpcSpec};

#[cfg(test)]
mod tests;
