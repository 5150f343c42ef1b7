//! One plan for the whole stack: every node observed, each against its upstream's planned or
//! real output.

use super::{
    AwsRunner, BucketName, IamProvisioner, KUBE_API_WAIT_CAP, Node, NodeError, ResourceRef, SecretKind,
    SecurityGroupId, StackOutput, fail, iam_inputs, wiring,
};
use dify_stack_core::Provisioner;

impl AwsRunner {
    /// The quota and capacity preflight (the network tier's: Elastic IPs against the account's
    /// quota, the private subnets' addresses against the node group's maximum and the VPC CNI's
    /// use per node): notes for the plan, or one error listing every shortfall with its fix.
    pub(crate) async fn capacity_preflight(&self) -> Result<Vec<String>, NodeError> {
        let ng = &self.cfg.eks.node_group;
        // The region's clusters for the clusters-per-Region quota; unread (refused, or a client
        // without ListClusters), the preflight notes that quota as not checked.
        let spec = wiring::network_spec(&self.cfg);
        let cluster = spec.cluster_name.as_str();
        let clusters = self.eks.clusters_in_region().await.ok().map(|names| dify_stack_network::ClusterUse {
            in_region: u32::try_from(names.len()).unwrap_or(u32::MAX),
            makes_one: !names.iter().any(|n| n == cluster),
        });
        let nodes = dify_stack_network::NodeDemand {
            instance_types: ng.instance_types.clone(),
            max_nodes: u32::try_from(ng.max).unwrap_or(0),
            clusters,
        };
        self.network
            .preflight(&self.ctx, &spec, &nodes)
            .await
            .map_err(|e| fail(dify_stack_network::NetworkError::from(e)))
    }

    /// Plans every node in graph order, read-only by construction: no tier's `apply` runs. A
    /// node whose upstream is converged is planned against the upstream's real outputs (its
    /// [`Provisioner::output`] from the same observation); otherwise against planned ids, so its
    /// resources show as to be created.
    pub(crate) async fn plan_all(&self) -> Result<crate::StackPlan, (Node, NodeError)> {
        use std::collections::BTreeMap;

        let ctx = &self.ctx;
        let cfg = &self.cfg;
        let err = |node: Node| move |e: NodeError| (node, e);
        let mut nodes = BTreeMap::new();
        let mut up = StackOutput::default();
        let mut put = |node: Node, plan: dify_stack_core::Plan, pending: bool| {
            nodes.insert(node, crate::NodePlan { plan, upstream_pending: pending });
        };
        macro_rules! plan_or_diff {
            ($prov:expr, $spec:expr, $ready:expr, $default:expr) => {{
                if $ready {
                    let p = $prov.plan(ctx, &$spec).await.map_err(fail);
                    (p, false)
                } else {
                    (Ok($prov.diff(ctx, &$spec, &$default)), true)
                }
            }};
        }
        // Plan and output of a node whose upstream is known; only a diff against nothing when not.
        macro_rules! plan_out {
            ($node:expr, $prov:expr, $spec:expr, $ready:expr, $default:expr) => {{
                if $ready {
                    let (p, out) = $prov.plan_with_output(ctx, &$spec).await.map_err(|e| ($node, fail(e)))?;
                    (p, out, false)
                } else {
                    ($prov.diff(ctx, &$spec, &$default), None, true)
                }
            }};
        }

        // Network (no upstream).
        let net_spec = wiring::network_spec(cfg);
        let (p, out) = self.network.plan_with_output(ctx, &net_spec).await.map_err(|e| (Node::Network, fail(e)))?;
        up.network = out;
        // One observation of one tier, shown as the two nodes that apply it: the VPC and subnets,
        // then the egress.
        let (core, egress): (Vec<_>, Vec<_>) =
            p.changes.into_iter().partition(|c| dify_stack_network::CORE_KINDS.contains(&c.resource.kind.as_str()));
        put(Node::Network, dify_stack_core::Plan { changes: core }, false);
        put(Node::Egress, dify_stack_core::Plan { changes: egress }, false);
        let net_ready = up.network.is_some();
        let net = up.network.clone().unwrap_or_else(|| wiring::planned_network(cfg));

        // Node security group.
        let sg_spec = wiring::node_sg_spec(&net);
        let (p, out, pending) = plan_out!(Node::NodeSecurityGroup, self.node_sg, sg_spec, net_ready, None);
        up.node_security_group = out;
        put(Node::NodeSecurityGroup, p, pending);
        let sg_ready = up.node_security_group.is_some();
        let sg = up.node_security_group.clone().unwrap_or_else(|| SecurityGroupId::new("sg-planned"));

        // EKS.
        let eks_spec = wiring::eks_spec(cfg, &net);
        let (mut p, out, pending) = plan_out!(Node::Eks, self.eks, eks_spec, net_ready && sg_ready, Default::default());
        // The node security group is the node-security-group node's (listed there once).
        p.changes.retain(|c| !(c.resource.kind == "ec2:security-group" && c.action == dify_stack_core::Action::Create));
        up.eks = out;
        // One observation of one tier, shown as the two nodes that apply it: the control plane,
        // then the node group and add-ons. A Kubernetes upgrade's steps (the control plane's
        // minors among them, marked as upgrades) are the second node's: it makes them in order,
        // each minor's control plane, add-ons and nodes.
        let (control, nodes_part): (Vec<_>, Vec<_>) = p.changes.into_iter().partition(|c| {
            dify_stack_eks::CONTROL_PLANE_KINDS.contains(&c.resource.kind.as_str())
                && c.effect != Some(dify_stack_core::Effect::Upgrade)
        });
        put(Node::EksControlPlane, dify_stack_core::Plan { changes: control }, pending);
        put(Node::Eks, dify_stack_core::Plan { changes: nodes_part }, pending);

        // Stores.
        let ds = wiring::datastores_spec(cfg, &net, &sg);
        let ready = net_ready && sg_ready;
        let (p, pending) = plan_or_diff!(self.aurora, ds, ready, Default::default());
        put(Node::Aurora, p.map_err(err(Node::Aurora))?, pending);
        let (p, pending) = plan_or_diff!(self.redis, ds, ready, Default::default());
        put(Node::Redis, p.map_err(err(Node::Redis))?, pending);
        let (p, pending) = plan_or_diff!(self.opensearch, ds, ready, Default::default());
        put(Node::OpenSearch, p.map_err(err(Node::OpenSearch))?, pending);
        let bucket_spec = wiring::datastores_spec(cfg, &wiring::planned_network(cfg), &SecurityGroupId::new("sg-none"));
        let (p, out) = self.bucket.plan_with_output(ctx, &bucket_spec).await.map_err(|e| (Node::Bucket, fail(e)))?;
        up.bucket = out;
        put(Node::Bucket, p, false);
        let exists = dify_stack_datastores::secrets::secret_exists(ctx, self.ds.as_ref(), SecretKind::DifyApp)
            .await
            .map_err(|e| (Node::AppSecrets, fail(e)))?;
        let mut p = dify_stack_core::Plan::new();
        if !exists {
            p.push(
                dify_stack_core::Change::new(
                    dify_stack_core::Action::Create,
                    ResourceRef::new("secretsmanager:secret", SecretKind::DifyApp.name(ctx)),
                )
                .field("value", None::<&str>, Some("(generated)")),
            );
        }
        put(Node::AppSecrets, p, false);

        // Registry.
        let reg_spec = wiring::registry_spec(cfg);
        let (p, out) = self.registry.plan_with_output(ctx, &reg_spec).await.map_err(|e| (Node::Registry, fail(e)))?;
        up.registry = out;
        put(Node::Registry, p, false);

        // IAM.
        let p = match (&up.eks, &up.bucket, &up.registry) {
            (Some(eks), Some(bucket), Some(registry)) => {
                let spec = wiring::iam_spec(cfg, ctx, eks, &bucket.name, registry);
                let iam = self.iam(eks, KUBE_API_WAIT_CAP).await.map_err(err(Node::Iam))?;
                (iam.plan(ctx, &spec).await.map_err(|e| (Node::Iam, self.iam_err(&eks.endpoint, e)))?, false)
            }
            _ => {
                let (eks, registry) = iam_inputs(
                    cfg,
                    "https://oidc.eks.planned/id/KNOWN-AFTER-APPLY".to_owned(),
                    String::new(),
                    String::new(),
                );
                let bucket = BucketName::new(dify_stack_datastores::names::bucket(ctx));
                let spec = wiring::iam_spec(cfg, ctx, &eks, &bucket, &registry);
                let iam = IamProvisioner::from_conf(&self.sdk);
                (iam.diff(ctx, &spec, &Default::default()), true)
            }
        };
        put(Node::Iam, p.0, p.1);

        // Platform: the add-on roles are the IAM node's (named, ARNs known after apply).
        let cluster = up.eks.as_ref().map(|e| e.cluster_name.to_string()).unwrap_or_else(|| cfg.name.clone());
        let spec = wiring::platform_spec(cfg, &net, &cluster, &Default::default());
        let p = match &up.eks {
            Some(eks) if net_ready => {
                let platform = self.platform(spec.kubernetes.then_some(eks)).await.map_err(err(Node::Platform))?;
                (platform.plan(ctx, &spec).await.map_err(|e| (Node::Platform, fail(e)))?, false)
            }
            _ => {
                // No cluster yet: the AWS side is observed (the add-on catalogue, the domain's
                // zone and certificate), the cluster side is all to create.
                let platform = dify_stack_platform::PlatformProvisioner::from_conf(&self.sdk);
                let aws_only = dify_stack_platform::PlatformSpec { kubernetes: false, ..spec.clone() };
                let observed = platform.observe(ctx, &aws_only).await.map_err(|e| (Node::Platform, fail(e)))?;
                (platform.diff(ctx, &spec, &observed), true)
            }
        };
        put(Node::Platform, p.0, p.1);

        // Certificate (no upstream).
        let p = match wiring::certificate_spec(cfg) {
            Some(spec) => dify_stack_platform::CertificateProvisioner::from_conf(&self.sdk)
                .plan(ctx, &spec)
                .await
                .map_err(|e| (Node::Certificate, fail(e)))?,
            None => dify_stack_core::Plan::new(),
        };
        put(Node::Certificate, p, false);
        Ok(crate::StackPlan { notes: Vec::new(), nodes, observed: up })
    }
}
