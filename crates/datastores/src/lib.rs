//! Datastores tier of [dify-stack](https://github.com/dify-stack/dify-stack): Aurora
//! Serverless v2 PostgreSQL ([`aurora`]), ElastiCache Redis ([`redis`]), OpenSearch
//! ([`opensearch`]) and the S3 storage bucket ([`bucket`]), each with its own provisioner and
//! security group (ingress only from the cluster's security groups, on the store's port), plus
//! the generated secrets ([`secrets`]) and [`DatastoresProvisioner`], which runs the four
//! stores concurrently.
//!
//! Inputs come from the network and EKS tiers as core typed ids; this crate depends on neither.
//! Destroy is data-safe: what holds data is deleted only as the [`DataPolicy`] allows, and the
//! checks run before the first delete, so a refused destroy deletes nothing.

pub mod audit;
pub mod aurora;
pub mod bucket;
pub mod client;
mod common;
mod error;
pub mod names;
pub mod opensearch;
mod provisioner;
pub mod redis;
mod sdk;
pub mod secrets;
mod security_group;
pub mod spec;
#[cfg(any(test, feature = "test-util"))]
pub mod testing;
#[cfg(test)]
mod tests;
mod upgrade;

pub use aurora::{AuroraOutput, AuroraProvisioner, AuroraStep};
pub use bucket::{BucketOutput, BucketProvisioner, BucketStep};
pub use client::{ElastiCacheApi, OpenSearchApi, RdsApi, S3Api, SecretsApi, SgApi};
#[cfg(any(test, feature = "test-util"))]
pub use client::{MockElastiCacheApi, MockOpenSearchApi, MockRdsApi, MockS3Api, MockSecretsApi, MockSgApi};
pub use common::{DataPolicy, DatastoresError, Result, caps, ready_from, typical};
pub use opensearch::{OpenSearchOutput, OpenSearchProvisioner, OpenSearchStep};
pub use provisioner::{DatastoresOutput, DatastoresProvisioner, DatastoresStep, ObservedDatastores};
pub use redis::{RedisOutput, RedisProvisioner, RedisStep};
pub use sdk::SdkDatastores;
pub use secrets::{SecretKind, StoredSecret};
pub use spec::{
    AuroraSelector, AuroraSpec, BucketSpec, DATABASES, DatastoresSelector, DatastoresSettings, DatastoresSpec,
    OpenSearchSpec, PlacedSubnet, RedisSpec, StoreSelector,
};
