//! A whole AWS account in memory, for tests and the simulated-time benchmark (feature
//! `test-util`): every tier's own fake (`dify_stack_<tier>::testing`) over one simulation
//! ([`Sim`]), the caller's identity and the control bucket answered at the SDK's HTTP layer
//! ([`ControlPlane`]), and a cluster whose Kubernetes API is the fakes' own. The real
//! [`Stack`](crate::Stack) runs over it unchanged: [`FakeAccount::sdk_config`] for
//! [`Stack::connect`](crate::Stack::connect), [`FakeAccount::provisioners`] for
//! [`Stack::with_provisioners`](crate::Stack::with_provisioners).
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use std::sync::Arc;
//! use dify_stack::testing::{FakeAccount, Sim};
//! use dify_stack::{KubernetesAccess, Profile, Stack};
//!
//! let mut cfg = Profile::Test.config().with_name("demo")?;
//! // Nothing leaves the process: no TLS read of the OIDC issuer, no checkip service.
//! cfg.iam.discover_thumbprint = false;
//! cfg.eks.kubernetes_access = KubernetesAccess::PublicCidrs;
//! cfg.eks.endpoint.public_access_cidrs = vec!["203.0.113.7/32".to_owned()];
//! let account = FakeAccount::new(Arc::new(Sim::instant()), cfg.environment(), &cfg.region);
//! let stack = Stack::connect(cfg, account.sdk_config()).await?.with_provisioners(account.provisioners());
//! stack.apply().await?;
//! assert!(stack.plan().await?.is_empty());
//! # Ok(())
//! # }
//! ```
//!
//! The fakes model apply from an empty account and plan; a change, a repair or a destroy makes
//! calls some of them do not model, which fail naming themselves (`NotModelled`).

mod control;

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
pub use control::{ACCOUNT, ControlPlane};
pub use dify_stack_core::sim::Sim;
use dify_stack_core::{Context, Environment};
use dify_stack_datastores::testing::FakeDatastores;
use dify_stack_datastores::{AuroraProvisioner, BucketProvisioner, OpenSearchProvisioner, RedisProvisioner};
use dify_stack_eks::testing::FakeEks;
use dify_stack_eks::{EksOutput, EksProvisioner, NodeSecurityGroupProvisioner};
use dify_stack_iam::IamProvisioner;
use dify_stack_iam::testing::FakeIam;
use dify_stack_network::NetworkProvisioner;
use dify_stack_network::testing::FakeEc2;
use dify_stack_platform::testing::FakePlatform;
use dify_stack_platform::{CertificateProvisioner, PlatformProvisioner};
use dify_stack_registry::RegistryProvisioner;
use dify_stack_registry::testing::FakeEcr;

use crate::{ClusterConnector, KubernetesAccess, NodeError, Provisioners};

/// The domain's public hosted zone in a [`FakeAccount`].
pub const HOSTED_ZONE_ID: &str = "ZSIMULATED";

/// One account and region in memory: the tiers' fakes, the control plane and the cluster.
/// Clones share the account, so a second [`Stack`](crate::Stack) over
/// [`provisioners`](FakeAccount::provisioners) is another operator's machine.
#[derive(Clone)]
pub struct FakeAccount {
    sim: Arc<Sim>,
    region: String,
    control: ControlPlane,
    network: FakeEc2,
    eks: FakeEks,
    datastores: Arc<FakeDatastores>,
    registry: FakeEcr,
    iam: FakeIam,
    platform: FakePlatform,
}

impl std::fmt::Debug for FakeAccount {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FakeAccount").field("region", &self.region).field("sim", &self.sim).finish_non_exhaustive()
    }
}

impl FakeAccount {
    /// An empty account in `region` (zones `a`..`d`) timed by `sim`, whose node group, Redis and
    /// OpenSearch take the durations of `environment`'s sizes (`aws-durations.toml`'s
    /// `eks_nodegroup_{test,prod}`, `redis_{test,prod}`, `opensearch_{1_node,3_nodes}`), with
    /// the public hosted zone [`HOSTED_ZONE_ID`] for any domain.
    pub fn new(sim: Arc<Sim>, environment: Environment, region: &str) -> FakeAccount {
        let prod = environment == Environment::Prod;
        FakeAccount {
            region: region.to_owned(),
            control: ControlPlane::new(sim.clone()),
            network: FakeEc2::new(sim.clone(), region),
            eks: FakeEks::new(sim.clone(), if prod { "eks_nodegroup_prod" } else { "eks_nodegroup_test" }),
            datastores: Arc::new(FakeDatastores::new(
                sim.clone(),
                if prod { "redis_prod" } else { "redis_test" },
                if prod { "opensearch_3_nodes" } else { "opensearch_1_node" },
            )),
            registry: FakeEcr::new(sim.clone()),
            iam: FakeIam::new(sim.clone()),
            platform: FakePlatform::new(sim.clone(), Some(HOSTED_ZONE_ID.to_owned())),
            sim,
        }
    }

    /// The simulation: its clock's draws, its calls and writes.
    pub fn sim(&self) -> &Arc<Sim> {
        &self.sim
    }

    /// An SDK config whose identity and control-bucket calls this account answers (static
    /// credentials: nothing leaves the process).
    pub fn sdk_config(&self) -> aws_types::SdkConfig {
        self.control.sdk_config(&self.region)
    }

    /// The real provisioners of every tier over this account's fakes.
    pub fn provisioners(&self) -> Provisioners {
        let ds = self.datastores.clone();
        Provisioners {
            network: NetworkProvisioner::new(self.network.clone()),
            node_security_group: NodeSecurityGroupProvisioner::new(self.eks.clone()),
            eks: EksProvisioner::new(self.eks.clone()).with_external_node_security_group(),
            aurora: AuroraProvisioner::new(ds.clone(), ds.clone(), ds.clone()),
            redis: RedisProvisioner::new(ds.clone(), ds.clone(), ds.clone()),
            opensearch: OpenSearchProvisioner::new(ds.clone(), ds.clone(), ds.clone()),
            bucket: BucketProvisioner::new(ds.clone()),
            secrets: ds,
            registry: RegistryProvisioner::new(self.registry.clone()),
            iam: IamProvisioner::new(self.iam.clone()),
            platform: PlatformProvisioner::new(self.platform.clone()),
            certificate: CertificateProvisioner::new(self.platform.clone()),
            cluster: Arc::new(FakeCluster { iam: self.iam.clone(), platform: self.platform.clone() }),
        }
    }

    /// The EKS tier's fake (its scripted knobs and what it holds).
    pub fn eks(&self) -> &FakeEks {
        &self.eks
    }

    /// The platform tier's fake (Helm releases, certificates, records).
    pub fn platform(&self) -> &FakePlatform {
        &self.platform
    }
}

/// The cluster's Kubernetes API in the fake account: the fakes' service accounts, Helm and
/// IngressClass; its endpoint always answers.
struct FakeCluster {
    iam: FakeIam,
    platform: FakePlatform,
}

#[async_trait]
impl ClusterConnector for FakeCluster {
    async fn probe(&self, _: &Context, _: &EksOutput, _: KubernetesAccess, _: Duration) -> Result<(), NodeError> {
        Ok(())
    }

    async fn iam(
        &self,
        _: &Context,
        iam: IamProvisioner,
        _: &EksOutput,
        _: Duration,
    ) -> Result<IamProvisioner, NodeError> {
        Ok(iam.with_kubernetes(self.iam.clone()))
    }

    async fn platform(&self, platform: PlatformProvisioner, _: &EksOutput) -> Result<PlatformProvisioner, NodeError> {
        Ok(platform.with_kubernetes(self.platform.clone(), self.platform.clone()))
    }

    async fn client(&self, _: &EksOutput) -> Option<kube::Client> {
        None
    }
}
