//! The [`TierRunner`] implementation: each graph node's apply and destroy, with the real tier
//! provisioners.

use super::{
    AwsRunner, BucketName, IamProvisioner, KUBE_API_DESTROY_CAP, KUBE_API_WAIT_CAP, Node, NodeError, NodeOutput,
    NodeSecurityGroupSpec, ResourceRef, SecretKind, SecurityGroupId, StackOutput, TierRunner, VpcId, async_trait, fail,
    iam_inputs, missing, wiring,
};
use dify_stack_core::Provisioner;

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

    async fn destroy(&self, node: Node) -> Result<Vec<ResourceRef>, NodeError> {
        let ctx = &self.ctx;
        let cfg = &self.cfg;
        match node {
            Node::Network => {
                // The VPC as it was (cached from the nodes before), for the last step's load
                // balancer check in an existing VPC.
                let vpc = self.discover_vpc().await?;
                let deleted = self.network.destroy(ctx, &wiring::network_spec(cfg)).await.map_err(fail)?;
                self.check_leftovers(vpc.as_ref()).await?;
                Ok(deleted)
            }
            // The network node's destroy removes the NAT gateways, addresses and route tables
            // with the VPC, in the order AWS needs, after every node that uses the network.
            Node::Egress => Ok(Vec::new()),
            // The EKS node's destroy removes the cluster after its node group and add-ons.
            Node::EksControlPlane => Ok(Vec::new()),
            Node::NodeSecurityGroup => {
                let Some(vpc_id) = self.discover_vpc().await? else { return Ok(Vec::new()) };
                self.node_sg.destroy(ctx, &NodeSecurityGroupSpec { vpc_id }).await.map_err(fail)
            }
            Node::Eks => {
                let mut net = wiring::planned_network(cfg);
                net.vpc_id = self.discover_vpc().await?.unwrap_or_else(|| VpcId::new("vpc-none"));
                let spec = wiring::eks_spec(cfg, &net);
                let eks = match self.load_balancer_objects(&spec).await {
                    Some(objects) => self.eks.clone().with_kubernetes_objects(objects),
                    None => self.eks.clone(),
                };
                eks.destroy(ctx, &spec).await.map_err(fail)
            }
            Node::Aurora => self.destroy_store(&self.aurora).await,
            Node::Redis => self.destroy_store(&self.redis).await,
            Node::OpenSearch => self.destroy_store(&self.opensearch).await,
            Node::Bucket => self.destroy_store(&self.bucket).await,
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
            Node::Registry => self.registry.destroy(ctx, &wiring::registry_spec(cfg)).await.map_err(fail),
            Node::Iam => {
                // The issuer and API come from the live cluster; when it is gone, roles are still
                // found by name and the OIDC provider by ownership tag.
                let mut net = wiring::planned_network(cfg);
                net.vpc_id = self.discover_vpc().await?.unwrap_or_else(|| VpcId::new("vpc-none"));
                let observed = self.eks.observe(ctx, &wiring::eks_spec(cfg, &net)).await.map_err(fail)?;
                let issuer = observed
                    .cluster
                    .as_ref()
                    .and_then(|c| c.oidc_issuer.clone())
                    .unwrap_or_else(|| "https://cluster-gone.invalid/id/none".to_owned());
                let bucket = BucketName::new(dify_stack_datastores::names::bucket(ctx));
                let (eks_out, registry) = iam_inputs(
                    cfg,
                    issuer,
                    observed.cluster.as_ref().and_then(|c| c.endpoint.clone()).unwrap_or_default(),
                    observed.cluster.as_ref().and_then(|c| c.ca_data.clone()).unwrap_or_default(),
                );
                let mut spec = wiring::iam_spec(cfg, ctx, &eks_out, &bucket, &registry);
                // Without a cluster there is no Kubernetes API to clean up.
                spec.service_accounts &= observed.cluster.is_some();
                let iam = if spec.service_accounts {
                    self.iam(&eks_out, KUBE_API_DESTROY_CAP).await?
                } else {
                    IamProvisioner::from_conf(&self.sdk)
                };
                iam.destroy(ctx, &spec).await.map_err(fail)
            }
            Node::Certificate => match wiring::certificate_spec(cfg) {
                Some(spec) => dify_stack_platform::CertificateProvisioner::from_conf(&self.sdk)
                    .destroy(ctx, &spec)
                    .await
                    .map_err(fail),
                None => Ok(Vec::new()),
            },
            Node::Platform => {
                // The releases go only when the API answers (else they go with the cluster).
                let mut net = wiring::planned_network(cfg);
                net.vpc_id = self.discover_vpc().await?.unwrap_or_else(|| VpcId::new("vpc-none"));
                let live = self.reachable_cluster(&net).await;
                let cluster = dify_stack_eks::cluster_name(ctx).unwrap_or_else(|_| cfg.name.clone());
                let mut spec = wiring::platform_spec(cfg, &net, &cluster, &Default::default());
                spec.kubernetes = live.is_some();
                let platform = match self.platform(live.as_ref()).await {
                    Ok(p) => p,
                    Err(e) => {
                        tracing::warn!(error = %e, "Helm cannot run here: the add-on releases go with the cluster");
                        spec.kubernetes = false;
                        self.platform(None).await?
                    }
                };
                platform.destroy(ctx, &spec).await.map_err(fail)
            }
        }
    }
}
