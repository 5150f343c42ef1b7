//! The tier provisioners a [`Stack`](crate::Stack) runs over, injected as one bundle: from the
//! SDK config in production ([`Provisioners::from_conf`]), from in-memory fakes in tests and the
//! benchmark ([`Provisioners`] is plain data: build it from each tier's `new`).

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use dify_stack_core::{Classify, Context};
use dify_stack_datastores::{
    AuroraProvisioner, BucketProvisioner, OpenSearchProvisioner, RedisProvisioner, SdkDatastores, SecretsApi,
};
use dify_stack_eks::{EksOutput, EksProvisioner, NodeSecurityGroupProvisioner};
use dify_stack_iam::IamProvisioner;
use dify_stack_network::NetworkProvisioner;
use dify_stack_platform::{CertificateProvisioner, PlatformProvisioner};
use dify_stack_registry::RegistryProvisioner;

use crate::config::KubernetesAccess;
use crate::graph::NodeError;

/// Every tier's provisioner over its AWS clients, and the way to a cluster's Kubernetes API.
/// The IAM and platform provisioners are their AWS side: the Kubernetes side is added per run
/// by [`cluster`](Provisioners::cluster) once the cluster's endpoint is known. Cheap to clone
/// (the provisioners share their clients). Plain data, built field by field from fakes in
/// tests: a new tier is a new field.
#[derive(Clone)]
pub struct Provisioners {
    /// The network tier.
    pub network: NetworkProvisioner,
    /// The node security group.
    pub node_security_group: NodeSecurityGroupProvisioner,
    /// The EKS tier (uses the node security group made by `node_security_group`).
    pub eks: EksProvisioner,
    /// Aurora.
    pub aurora: AuroraProvisioner,
    /// Redis.
    pub redis: RedisProvisioner,
    /// OpenSearch.
    pub opensearch: OpenSearchProvisioner,
    /// The storage bucket.
    pub bucket: BucketProvisioner,
    /// Secrets Manager (the generated application secret; reading values for the Helm values).
    pub secrets: Arc<dyn SecretsApi>,
    /// ECR.
    pub registry: RegistryProvisioner,
    /// IAM's AWS side (OIDC provider, roles).
    pub iam: IamProvisioner,
    /// The platform's AWS side (the add-on catalogue, Route 53).
    pub platform: PlatformProvisioner,
    /// The domain's ACM certificate.
    pub certificate: CertificateProvisioner,
    /// How the stack reaches a cluster's Kubernetes API.
    pub cluster: Arc<dyn ClusterConnector>,
}

impl std::fmt::Debug for Provisioners {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Provisioners").finish_non_exhaustive()
    }
}

impl Provisioners {
    /// Every provisioner over the real AWS APIs of `sdk`, and the Kubernetes API reached with
    /// EKS tokens signed by `sdk`'s credentials.
    pub fn from_conf(sdk: &aws_types::SdkConfig) -> Provisioners {
        let ds = Arc::new(SdkDatastores::from_conf(sdk));
        Provisioners {
            network: NetworkProvisioner::from_conf(sdk),
            node_security_group: NodeSecurityGroupProvisioner::from_conf(sdk),
            eks: EksProvisioner::from_conf(sdk).with_external_node_security_group(),
            aurora: AuroraProvisioner::new(ds.clone(), ds.clone(), ds.clone()),
            redis: RedisProvisioner::new(ds.clone(), ds.clone(), ds.clone()),
            opensearch: OpenSearchProvisioner::new(ds.clone(), ds.clone(), ds.clone()),
            bucket: BucketProvisioner::new(ds.clone()),
            secrets: ds,
            registry: RegistryProvisioner::from_conf(sdk),
            iam: IamProvisioner::from_conf(sdk),
            platform: PlatformProvisioner::from_conf(sdk),
            certificate: CertificateProvisioner::from_conf(sdk),
            cluster: Arc::new(SdkClusterConnector { sdk: sdk.clone() }),
        }
    }

    /// The bundle with `cluster` as the way to the Kubernetes API.
    pub fn with_cluster(mut self, cluster: impl ClusterConnector + 'static) -> Self {
        self.cluster = Arc::new(cluster);
        self
    }
}

/// How the stack reaches a cluster's Kubernetes API: the IAM tier's service accounts, the
/// platform's Helm releases and IngressClass, and the objects that make load balancers. In
/// production Kubernetes is reached with an EKS token signed by the SDK's credentials
/// ([`Provisioners::from_conf`]); tests and the benchmark give fakes.
#[async_trait]
pub trait ClusterConnector: Send + Sync {
    /// Checks that `eks`'s API can be reached from this machine (`mode` names the setting in the
    /// error), retried within `cap`: the nodes after the cluster talk to it.
    async fn probe(
        &self,
        ctx: &Context,
        eks: &EksOutput,
        mode: KubernetesAccess,
        cap: Duration,
    ) -> Result<(), NodeError>;

    /// `iam` with `eks`'s service accounts, each call retried within `cap` while the API cannot
    /// be reached.
    async fn iam(
        &self,
        ctx: &Context,
        iam: IamProvisioner,
        eks: &EksOutput,
        cap: Duration,
    ) -> Result<IamProvisioner, NodeError>;

    /// `platform` with Helm and the IngressClass API of `eks`.
    async fn platform(&self, platform: PlatformProvisioner, eks: &EksOutput) -> Result<PlatformProvisioner, NodeError>;

    /// A Kubernetes client for `eks` (the objects that make load balancers, the Dify release),
    /// when one can be built here. Building it makes no connection.
    async fn client(&self, eks: &EksOutput) -> Option<kube::Client>;
}

/// Kubernetes through EKS tokens signed by an SDK config's credentials.
#[derive(Debug, Clone)]
pub struct SdkClusterConnector {
    sdk: aws_types::SdkConfig,
}

impl SdkClusterConnector {
    /// EKS bearer tokens for `eks` from the SDK's credentials (the one place the stack makes them).
    fn tokens(&self, eks: &EksOutput) -> Result<dify_stack_eks::TokenSource, NodeError> {
        let credentials = self
            .sdk
            .credentials_provider()
            .ok_or_else(|| NodeError::new("no AWS credentials provider for the EKS token", false))?;
        Ok(dify_stack_eks::TokenSource::new(credentials, eks.cluster_name.as_str(), &eks.region))
    }
}

#[async_trait]
impl ClusterConnector for SdkClusterConnector {
    async fn probe(
        &self,
        ctx: &Context,
        eks: &EksOutput,
        mode: KubernetesAccess,
        cap: Duration,
    ) -> Result<(), NodeError> {
        crate::access::probe_endpoint(&eks.endpoint, &mode.to_string(), &ctx.wait.capped(cap), ctx.cancellation())
            .await
            .map_err(NodeError::from_error)
    }

    async fn iam(
        &self,
        ctx: &Context,
        iam: IamProvisioner,
        eks: &EksOutput,
        cap: Duration,
    ) -> Result<IamProvisioner, NodeError> {
        let token = self.tokens(eks)?.token().await.map_err(NodeError::from_error)?;
        // The default StorageClass tags every volume with the stack's ownership tags, so destroy
        // finds them (the EKS tier's `workloads`).
        let kube =
            dify_stack_iam::k8s::KubeServiceAccounts::from_cluster(&eks.endpoint, &eks.ca_data, token.secret().clone())
                .map_err(NodeError::from_error)?
                .with_retry(ctx.wait.capped(cap), ctx.cancellation().clone())
                .with_volume_tags(dify_stack_eks::workloads::volume_tags(ctx));
        Ok(iam.with_kubernetes(kube))
    }

    async fn platform(&self, platform: PlatformProvisioner, eks: &EksOutput) -> Result<PlatformProvisioner, NodeError> {
        let tokens = self.tokens(eks)?;
        let token = tokens.token().await.map_err(NodeError::from_error)?;
        let kubeconfig = dify_stack_platform::helm::token_kubeconfig(&eks.endpoint, &eks.ca_data, token.secret());
        let helm = dify_stack_platform::HelmCli::new(None, &kubeconfig).await.map_err(|e| NodeError {
            message: format!(
                "{e}. The platform add-ons are installed with Helm; or set eks.kubernetes_access = role_only to get the commands instead"
            ),
            retryable: e.is_retryable(),
            source: Some(Arc::new(e)),
        })?;
        let client = dify_stack_eks::kube_client(eks, &tokens).await.map_err(NodeError::from_error)?;
        Ok(platform.with_kubernetes(helm, dify_stack_platform::kube::KubeIngressClasses::new(client)))
    }

    async fn client(&self, eks: &EksOutput) -> Option<kube::Client> {
        let tokens = self.tokens(eks).ok()?;
        dify_stack_eks::kube_client(eks, &tokens).await.ok()
    }
}
