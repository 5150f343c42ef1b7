//! EKS tier of [dify-stack](https://github.com/dify-stack/dify-stack): cluster and node IAM
//! roles, a KMS key for secrets envelope encryption, the cluster (private endpoint, all
//! control-plane logs, `API_AND_CONFIG_MAP` access), a Graviton managed node group behind an
//! IMDSv2-only launch template with an encrypted gp3 root volume, managed add-ons (created at the
//! default version for the cluster version, then kept until the Kubernetes version moves), access
//! entries for extra admins, and programmatic access
//! (EKS bearer token, kubeconfig, `kube::Client`).
//!
//! Inputs come from the network tier as core typed ids ([`EksSpec::vpc_id`],
//! [`EksSpec::private_subnet_ids`]); this crate does not depend on the network crate.
//!
//! Waits poll the Describe calls on the context's [`WaitPolicy`](dify_stack_core::WaitPolicy)
//! (first poll at once, then backing off, capped per resource kind in [`caps`]) rather than the
//! SDK waiters, whose fixed 30-second delay and lack of cancellation do not fit a cancellable
//! executor; failure states (`FAILED`, `CREATE_FAILED`, `DEGRADED`) end a wait at once.

pub mod audit;
pub mod client;
mod error;
pub mod lifecycle;
pub mod load_balancers;
pub mod names;
pub mod node_sg;
pub mod provisioner;
mod sdk;
pub mod spec;
#[cfg(any(test, feature = "test-util"))]
pub mod testing;
#[cfg(test)]
mod tests;
pub mod token;
pub mod workloads;

pub use client::{
    AddonInfo, AddonRole, AddonVersions, ClusterApi, ClusterCreate, ClusterInfo, Ec2Api, EksApi, KeyInfo, KeysApi,
    LaunchTemplateData, LaunchTemplateInfo, LogGroupInfo, LogsApi, NetworkInterfaceInfo, NodegroupConfigUpdate,
    NodegroupCreate, NodegroupInfo, NodegroupVersionUpdate, RoleInfo, RolesApi, SecurityGroupInfo, SnapshotInfo,
    Status, TaggedResource, UpdateInfo, VolumeInfo,
};
#[cfg(any(test, feature = "test-util"))]
pub use client::{MockClusterApi, MockEc2Api, MockKeysApi, MockLogsApi, MockRolesApi};
pub use error::{EksError, Result, UpgradeBlock};
pub use node_sg::{
    NodeSecurityGroupChange, NodeSecurityGroupProvisioner, NodeSecurityGroupSelector, NodeSecurityGroupSpec,
};
pub use provisioner::{
    CONTROL_PLANE_KINDS, EksChange, EksOutput, EksProvisioner, NODE_ADDONS, Names, ObservedEks, POD_NETWORK_ADDON,
    caps, cluster_name, next_version, ready_from,
};
pub use sdk::SdkEks;
pub use spec::{
    ALL_LOG_TYPES, DEFAULT_ADDONS, EBS_CSI_ADDON, EBS_CSI_SERVICE_ACCOUNT, EksSelector, EksSettings, EksSpec,
    EndpointSpec, MAX_PUBLIC_ACCESS_CIDRS, NodeGroupSpec, POD_IDENTITY_AGENT_ADDON, SupportType,
};
pub use token::{EksToken, TokenError, TokenSource, eks_token, kube_client, kubeconfig};
