//! In-memory, timed fakes of every tier's client traits, for the simulated-time benchmark: the
//! real provisioners run over them on tokio's paused clock. The timing model is core's
//! (`dify_stack::core::sim`); the registry's, IAM's and the datastores' fakes are the
//! tiers' own (`dify_stack::registry::testing`, `dify_stack::iam::testing`,
//! `dify_stack::datastores::testing`).

pub(crate) use dify_stack::core::sim::*;

pub(crate) mod control;
pub(crate) mod eks;
pub(crate) mod graphs;
pub(crate) mod login;
pub(crate) mod network;
pub(crate) mod platform;
