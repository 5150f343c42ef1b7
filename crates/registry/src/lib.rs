//! Registry tier of [dify-stack](https://github.com/dify-stack/dify-stack): the ECR repository
//! for the Dify application images (`<stack>`) and the one for Dify EE plugin images
//! (`<stack>-ee-plugin-repo`), with scan on push, encryption, tag mutability and lifecycle
//! policies. Repositories the plugin connector creates at run time under
//! `<stack>-ee-plugin-repo/` are listed by [`RegistryProvisioner::plan_destroy`] and deleted,
//! like any repository holding images, only when the context allows data loss.

pub mod audit;
pub mod client;
mod error;
pub mod names;
mod provisioner;
mod sdk;
pub mod spec;
#[cfg(any(test, feature = "test-util"))]
pub mod testing;
#[cfg(test)]
mod tests;

#[cfg(any(test, feature = "test-util"))]
pub use client::MockEcrApi;
pub use client::{EcrApi, RepoInfo};
pub use error::{RegistryError, Result};
pub use names::repository_names;
pub use provisioner::{
    ObservedRegistry, ObservedRepo, RegistryOutput, RegistryProvisioner, RegistryStep, RepositoryOutput,
};
pub use sdk::SdkEcr;
pub use spec::{Encryption, PLUGIN_SUFFIX, RegistrySpec, RepositorySpec, TagMutability, lifecycle_policy};
