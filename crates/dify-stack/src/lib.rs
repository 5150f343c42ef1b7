//! Provision the complete AWS infrastructure for Dify Enterprise from Rust.
//!
//! This facade re-exports the tier crates, one cargo feature per tier (all on by default):
//!
//! | feature | module | crate |
//! |---|---|---|
//! | (always) | [`core`] | `dify-stack-core`: the `Provisioner` contract, plans, context, errors |
//! | `network` | `network` | `dify-stack-network`: VPC, subnets, NAT, routes, bring-your-own VPC |
//! | `eks` | `eks` | `dify-stack-eks` (not implemented yet) |
//! | `datastores` | `datastores` | `dify-stack-datastores` (not implemented yet) |
//! | `registry` | `registry` | `dify-stack-registry`: ECR repositories and lifecycle policies |
//! | `iam` | `iam` | `dify-stack-iam`: OIDC provider, IRSA roles, service accounts |
//!
//! Profiles, the stack graph and its concurrent executor will live here (see the README's
//! status section for what is built today).

pub use dify_stack_core as core;
pub use dify_stack_core::{Context, Environment, Plan, Provisioner};

#[cfg(feature = "datastores")]
pub use dify_stack_datastores as datastores;
#[cfg(feature = "eks")]
pub use dify_stack_eks as eks;
#[cfg(feature = "iam")]
pub use dify_stack_iam as iam;
#[cfg(feature = "network")]
pub use dify_stack_network as network;
#[cfg(feature = "registry")]
pub use dify_stack_registry as registry;
