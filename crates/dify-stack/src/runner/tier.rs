//! The [`TierRunner`] implementation: each graph node's apply and destroy, with the real tier
//! provisioners.

use super::{
    AwsRunner, IamProvisioner, KUBE_API_DESTROY_CAP, KUBE_API_WAIT_CAP, Node, NodeError, NodeOutput, ResourceRef,
    SecretKind, SecurityGroupId, StackOutput, TierRunner, async_trait, fail, live_eks, missing, wiring,
};
use dify_stack_core::Provisioner;
use dify_stack_core::ids::ClusterName;
use dify_stack_eks::{EksSelector, NodeSecurityGroupSelector};
use dify_stack_iam::IamSelector;
use dify_stack_platform::PlatformSelector;

#[async_trait]
impl TierRunner for AwsRunner {
    async fn apply(&self, node: Node, up: StackOutput) -> Result<NodeOutput, NodeError> {
        let ctx = &self.ctx;
        let cfg = &self.cfg;
        Ok(match node {
            // The VPC and subnets first; the egress node then converges the whole network (the
            // same idempotent apply, which finds them made) and its output replaces this one.
            Node::Network => NodeOutput::Network(Box::new(
                self.network.apply_core(ctx, &wiring::network_spec(cfg)).await.map_err(fail)?,
            )),
            Node::Egress => {
                NodeOutput::Network(Box::new(self.network.apply(ctx, &wiring::network_spec(cfg)).await.map_err(fail)?))
            }
            Node::NodeSecurityGroup => {
                let net = up.network.as_ref().ok_or_else(|| missing(node, "network"))?;
                NodeOutput::NodeSecurityGroup(self.node_sg.apply(ctx, &wiring::node_sg_spec(net)).await.map_err(fail)?)
            }
            // The cluster first (its output already names the node group); the EKS node then
            // converges the whole tier (the same idempotent apply, which finds the control plane
            // made) and its output replaces this one.
            Node::EksControlPlane => {
                let net = up.network.as_ref().ok_or_else(|| missing(node, "network"))?;
                NodeOutput::Eks(Box::new(
                    self.eks.apply_control_plane(ctx, &wiring::eks_spec(cfg, net)).await.map_err(fail)?,
                ))
            }
            Node::Eks => {
                let net = up.network.as_ref().ok_or_else(|| missing(node, "network"))?;
                let out = self.eks.apply(ctx, &wiring::eks_spec(cfg, net)).await.map_err(fail)?;
                // The nodes after this one talk to the Kubernetes API from this machine: the
                // endpoint access just set is checked here, naming the fix, before they start.
                if wiring::creates_service_accounts(cfg) {
                    let mode = cfg.eks.kubernetes_access.to_string();
                    let policy = ctx.wait.capped(super::KUBE_API_WAIT_CAP);
                    crate::access::probe_endpoint(&out.endpoint, &mode, &policy, ctx.cancellation())
                        .await
                        .map_err(fail)?;
                }
                NodeOutput::Eks(Box::new(out))
            }
            Node::Aurora => {
                let spec = self.datastores_spec(&up, node)?;
                NodeOutput::Aurora(Box::new(self.aurora.apply(ctx, &spec).await.map_err(fail)?))
            }
            Node::Redis => {
                let spec = self.datastores_spec(&up, node)?;
                NodeOutput::Redis(Box::new(self.redis.apply(ctx, &spec).await.map_err(fail)?))
            }
            Node::OpenSearch => {
                let spec = self.datastores_spec(&up, node)?;
                NodeOutput::OpenSearch(Box::new(self.opensearch.apply(ctx, &spec).await.map_err(fail)?))
            }
            Node::Bucket => {
                let spec =
                    wiring::datastores_spec(cfg, &wiring::planned_network(cfg), &SecurityGroupId::new("sg-none"));
                NodeOutput::Bucket(Box::new(self.bucket.apply(ctx, &spec).await.map_err(fail)?))
            }
            Node::AppSecrets => NodeOutput::AppSecrets(Box::new(
                dify_stack_datastores::secrets::ensure_secret(ctx, self.ds.as_ref(), SecretKind::DifyApp, "")
                    .await
                    .map_err(fail)?,
            )),
            Node::Registry => NodeOutput::Registry(Box::new(
                self.registry.apply(ctx, &wiring::registry_spec(cfg)).await.map_err(fail)?,
            )),
            Node::Iam => {
                let eks = up.eks.as_ref().ok_or_else(|| missing(node, "eks"))?;
                let bucket = up.bucket.as_ref().ok_or_else(|| missing(node, "bucket"))?;
                let registry = up.registry.as_ref().ok_or_else(|| missing(node, "registry"))?;
                let spec = wiring::iam_spec(cfg, ctx, eks, &bucket.name, registry);
                let iam = self.iam(eks, KUBE_API_WAIT_CAP).await?;
                NodeOutput::Iam(Box::new(iam.apply(ctx, &spec).await.map_err(|e| self.iam_err(&eks.endpoint, e))?))
            }
            // Boxed: Helm, kube-rs and ACM waits make a large future.
            Node::Platform => NodeOutput::Platform(Box::new(Box::pin(self.apply_platform(&up)).await?)),
            Node::Certificate => NodeOutput::Certificate(Box::new(match wiring::certificate_spec(cfg) {
                Some(spec) => {
                    Box::pin(dify_stack_platform::CertificateProvisioner::from_conf(&self.sdk).apply(ctx, &spec))
                        .await
                        .map_err(fail)?
                }
                None => Default::default(),
            })),
        })
    }

    /// Each tier's destroy takes its selector, built from what exists now (the VPC, the live
    /// cluster) and the configuration: never a spec with made-up ids.
    async fn destroy(&self, node: Node) -> Result<Vec<ResourceRef>, NodeError> {
        let ctx = &self.ctx;
        let cfg = &self.cfg;
        match node {
            Node::Network => {
                // The VPC as it was (cached from the nodes before), for the last step's load
                // balancer check in an existing VPC.
                let vpc = self.discover_vpc().await?;
                let selector = self.network.selector(ctx, &wiring::network_spec(cfg));
                let deleted = self.network.destroy_selected(ctx, &selector).await.map_err(fail)?;
                self.check_leftovers(vpc.as_ref()).await?;
                Ok(deleted)
            }
            // The network node's destroy removes the NAT gateways, addresses and route tables
            // with the VPC, in the order AWS needs, after every node that uses the network.
            Node::Egress => Ok(Vec::new()),
            // The EKS node's destroy removes the cluster after its node group and add-ons.
            Node::EksControlPlane => Ok(Vec::new()),
            Node::NodeSecurityGroup => {
                let selector = NodeSecurityGroupSelector { vpc_id: self.discover_vpc().await? };
                self.node_sg.destroy_selected(ctx, &selector).await.map_err(fail)
            }
            Node::Eks => {
                let selector = EksSelector { vpc_id: self.discover_vpc().await? };
                let eks = match self.load_balancer_objects().await {
                    Some(objects) => self.eks.clone().with_kubernetes_objects(objects),
                    None => self.eks.clone(),
                };
                eks.destroy_selected(ctx, &selector).await.map_err(fail)
            }
            Node::Aurora => {
                let selector = self.store_selector().await?.aurora();
                self.aurora.destroy_selected(ctx, &selector).await.map_err(fail)
            }
            Node::Redis => {
                let selector = self.store_selector().await?.store();
                self.redis.destroy_selected(ctx, &selector).await.map_err(fail)
            }
            Node::OpenSearch => {
                let selector = self.store_selector().await?.store();
                self.opensearch.destroy_selected(ctx, &selector).await.map_err(fail)
            }
            // The context names the bucket.
            Node::Bucket => self.bucket.destroy_selected(ctx, &()).await.map_err(fail),
            Node::AppSecrets => {
                let deleted = dify_stack_datastores::secrets::delete_secret(
                    ctx,
                    self.ds.as_ref(),
                    SecretKind::DifyApp,
                    self.policy,
                )
                .await
                .map_err(fail)?;
                Ok(deleted
                    .map(|arn| ResourceRef::new("secretsmanager:secret", SecretKind::DifyApp.name(ctx)).with_id(arn))
                    .into_iter()
                    .collect())
            }
            // The context names the repositories.
            Node::Registry => self.registry.destroy_selected(ctx, &()).await.map_err(fail),
            Node::Iam => {
                // The issuer and API come from the live cluster; when it is gone, roles are still
                // found by name and the OIDC provider by ownership tag.
                let cluster = self.eks.observe_cluster(ctx).await.map_err(fail)?;
                let selector = IamSelector {
                    cluster_name: ClusterName::new(&cfg.name),
                    oidc_issuer_url: cluster.as_ref().and_then(|c| c.oidc_issuer.clone()),
                    namespace: cfg.iam.namespace.clone(),
                    // Without a cluster there is no Kubernetes API to clean up.
                    service_accounts: wiring::creates_service_accounts(cfg) && cluster.is_some(),
                    addons: wiring::addon_roles(cfg, ctx, &cfg.name).into_iter().map(|a| a.addon).collect(),
                };
                let iam = match &cluster {
                    Some(c) if selector.service_accounts => self.iam(&live_eks(cfg, c), KUBE_API_DESTROY_CAP).await?,
                    _ => IamProvisioner::from_conf(&self.sdk),
                };
                iam.destroy_selected(ctx, &selector).await.map_err(fail)
            }
            Node::Certificate => match wiring::certificate_spec(cfg) {
                Some(spec) => dify_stack_platform::CertificateProvisioner::from_conf(&self.sdk)
                    .destroy_selected(ctx, &spec.domain)
                    .await
                    .map_err(fail),
                None => Ok(Vec::new()),
            },
            Node::Platform => {
                // The releases go only when the API answers (else they go with the cluster).
                let live = self.reachable_cluster().await;
                let cluster = dify_stack_eks::cluster_name(ctx).unwrap_or_else(|_| cfg.name.clone());
                let p = &cfg.platform;
                let mut selector = PlatformSelector {
                    cluster_name: ClusterName::new(cluster),
                    kubernetes: live.is_some(),
                    load_balancer_controller: p.load_balancer_controller.chart().is_some(),
                    cluster_autoscaler: p.cluster_autoscaler.chart().is_some(),
                    metrics_server: p.metrics_server.chart().is_some(),
                };
                let platform = match self.platform(live.as_ref()).await {
                    Ok(p) => p,
                    Err(e) => {
                        tracing::warn!(error = %e, "Helm cannot run here: the add-on releases go with the cluster");
                        selector.kubernetes = false;
                        self.platform(None).await?
                    }
                };
                platform.destroy_selected(ctx, &selector).await.map_err(fail)
            }
        }
    }
}
