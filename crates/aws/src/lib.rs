//! SDK adapters shared by the dify-stack tiers.
//!
//! The tiers never import each other (core <- tiers <- facade). What two tiers (or a tier and
//! the facade) say to the same AWS API is written here once: free functions over the SDK
//! client that return core's [`AwsError`](dify_stack_core::AwsError) with the operation named,
//! and absence as `None` rather than an error. Each tier's client trait stays its own (that is
//! what its unit tests mock); the tier's SDK implementation of it calls these.

#[cfg(feature = "ec2")]
pub mod ec2;
#[cfg(feature = "eks")]
pub mod eks;
#[cfg(feature = "iam")]
pub mod iam;
#[cfg(feature = "s3")]
pub mod s3;
