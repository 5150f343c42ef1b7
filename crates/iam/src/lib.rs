//! IAM tier of [dify-stack](https://github.com/dify-stack/dify-stack): the OpenID Connect
//! provider of the EKS cluster's issuer, the three Dify EE IRSA roles
//! (`DifyEE-Role-<cluster>-s3`, `-s3-ecr`, `-ecr-image-pull`) with trust scoped to exactly their
//! service accounts and least-privilege inline policies, and (unless in role-only mode) the
//! Kubernetes namespace and six service accounts annotated with the role ARNs, applied with
//! server-side apply.
//!
//! The OIDC provider thumbprint: the spec's thumbprints, or the SHA-1 of the last certificate of
//! the issuer's TLS chain when the issuer is reachable ([`thumbprint`]), or none (IAM validates
//! EKS issuers against its own trusted CA library).

pub mod audit;
pub mod client;
mod error;
pub mod k8s;
pub mod names;
pub mod policy;
mod provisioner;
mod sdk;
mod spec;
#[cfg(any(test, feature = "test-util"))]
pub mod testing;
#[cfg(test)]
mod tests;
pub mod thumbprint;
#[cfg(any(test, feature = "test-util"))]
pub use client::MockIamApi;
pub use client::{IamApi, OidcCreate, OidcInfo, RoleInfo};
pub use error::{IamError, Result};
#[cfg(any(test, feature = "test-util"))]
pub use k8s::MockServiceAccountApi;
pub use k8s::{IrsaServiceAccount, ManagedServiceAccount, ServiceAccountApi};
pub use policy::{AUDIENCE, RoleKind};
pub use provisioner::*;
pub use sdk::SdkIam;
pub use spec::*;
