//! The simulated-time benchmark's own parts: the resource and Terraform graphs its critical
//! paths are computed on (`graphs`) and the install steps after the apply (`login`). The
//! account it runs in is the facade's (`dify_stack::testing::FakeAccount`: every tier's own
//! in-memory fake, `dify_stack_<tier>::testing`, over core's timing model,
//! `dify_stack::core::sim`), the one the tiers' and the facade's own tests use.

pub(crate) use dify_stack::core::sim::*;

pub(crate) mod graphs;
pub(crate) mod login;
