//! Load balancers that Kubernetes made for the cluster: a Service of type `LoadBalancer` (the
//! in-tree service controller, or the AWS Load Balancer Controller) or an Ingress (the latter)
//! makes an ELB with ENIs, a security group and public addresses in the stack's subnets. None
//! carries the stack's tag, none is deleted with the cluster, and while one exists the subnets,
//! the internet gateway and the VPC cannot be deleted (DependencyViolation). Before the node
//! group goes, destroy deletes those Kubernetes objects when the API is reachable, waits for the
//! load balancers tagged for the cluster to disappear, deletes any left (their controller may be
//! gone with the nodes), and after the cluster sweeps their target groups and security groups
//! (eksctl does the same in `pkg/elb` before deleting a cluster).
//!
//! "Tagged for the cluster": `elbv2.k8s.aws/cluster = <cluster>` (AWS Load Balancer Controller
//! docs, "Resource tags") or `kubernetes.io/cluster/<cluster> = owned` (the in-tree controller's
//! ownership tag; Kubernetes cloud-provider-aws). Groups made by EKS itself (`aws:eks:cluster-name`)
//! and groups carrying the stack's own tag are left to their owners.

use std::collections::HashMap;
use std::time::Duration;

use async_trait::async_trait;
use dify_stack_core::ids::{Arn, ClusterName, SecurityGroupId, VpcId};
use dify_stack_core::{AwsError, AwsResultExt, KubeFailure, Tags};

/// The tag the AWS Load Balancer Controller puts on everything it makes.
pub const LBC_CLUSTER_TAG: &str = "elbv2.k8s.aws/cluster";
/// EKS's tag on the cluster security group it manages.
pub const EKS_CLUSTER_NAME_TAG: &str = "aws:eks:cluster-name";

/// The AWS Load Balancer Controller's tag naming what a resource was made for: `<namespace>/<name>`
/// of the Ingress (or the IngressGroup's name) and of the Service (kubernetes-sigs/
/// aws-load-balancer-controller PR #1469, "finalize user-facing elements": `ingress.k8s.aws/stack`
/// is `groupName` or `namespace/ingressName`; `service.k8s.aws/stack` is `namespace/serviceName`).
pub const LBC_STACK_TAGS: [&str; 2] = ["ingress.k8s.aws/stack", "service.k8s.aws/stack"];
/// The in-tree service controller's tag on a Classic Load Balancer: `<namespace>/<service>`
/// (Kubernetes cloud-provider-aws, `kubernetes.io/service-name`).
pub const IN_TREE_SERVICE_TAG: &str = "kubernetes.io/service-name";

/// Whether `tags` mark a resource made by Kubernetes for `cluster`.
pub fn made_for_cluster(tags: &Tags, cluster: &str) -> bool {
    tags.get(LBC_CLUSTER_TAG).is_some_and(|v| v == cluster)
        || tags.get(&format!("kubernetes.io/cluster/{cluster}")).is_some_and(|v| v == "owned")
}

/// Whether `tags` mark a load balancer made for `cluster` and, when `namespace` is given, for an
/// Ingress or Service in that namespace.
pub fn made_for(tags: &Tags, cluster: &str, namespace: Option<&str>) -> bool {
    made_for_cluster(tags, cluster)
        && namespace.is_none_or(|ns| {
            let prefix = format!("{ns}/");
            LBC_STACK_TAGS
                .iter()
                .chain([&IN_TREE_SERVICE_TAG])
                .any(|k| tags.get(*k).is_some_and(|v| v.starts_with(&prefix)))
        })
}

/// Which API a load balancer belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LoadBalancerKind {
    /// Application or Network Load Balancer (`elasticloadbalancing` v2): identified by ARN.
    V2,
    /// Classic Load Balancer: identified by name.
    Classic,
}

/// A load balancer (or target group) that Kubernetes made for the cluster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterLoadBalancer {
    /// ELBv2 ARN, or the Classic Load Balancer name.
    pub id: String,
    /// Which API.
    pub kind: LoadBalancerKind,
}

/// The reads and deletes of Kubernetes-made load balancing resources.
#[cfg_attr(any(test, feature = "test-util"), mockall::automock)]
#[async_trait]
pub trait LoadBalancerApi: Send + Sync {
    /// Load balancers in `vpc` tagged for `cluster` (both APIs); with `namespace`, only those
    /// made for an Ingress or Service in it ([`made_for`]).
    async fn cluster_load_balancers(
        &self,
        vpc: VpcId,
        cluster: ClusterName,
        namespace: Option<String>,
    ) -> Result<Vec<ClusterLoadBalancer>, AwsError>;
    /// DeleteLoadBalancer (either API); gone is fine.
    async fn delete_load_balancer(&self, lb: ClusterLoadBalancer) -> Result<(), AwsError>;
    /// Target group ARNs in `vpc` tagged for `cluster`.
    async fn cluster_target_groups(&self, vpc: VpcId, cluster: ClusterName) -> Result<Vec<Arn>, AwsError>;
    /// DeleteTargetGroup; gone is fine.
    async fn delete_target_group(&self, arn: Arn) -> Result<(), AwsError>;
    /// Security group ids in `vpc` tagged for `cluster`, without EKS's own and without those
    /// carrying `skip_tag` (the stack's ownership tag key).
    async fn cluster_security_groups(
        &self,
        vpc: VpcId,
        cluster: ClusterName,
        skip_tag: String,
    ) -> Result<Vec<SecurityGroupId>, AwsError>;
    /// DeleteSecurityGroup; gone is fine.
    async fn delete_security_group(&self, id: SecurityGroupId) -> Result<(), AwsError>;
}

impl std::fmt::Debug for dyn LoadBalancerApi {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("LoadBalancerApi")
    }
}

/// Waits until no load balancer made for an Ingress or Service in `namespace` of `cluster` is
/// left in `vpc` (after `helm uninstall`: the controller deletes them as their Ingress goes, which
/// takes a minute or two; until then the subnets cannot be deleted). A timeout names those left.
pub async fn wait_namespace_load_balancers_gone(
    api: &dyn LoadBalancerApi,
    vpc: &str,
    cluster: &str,
    namespace: &str,
    policy: &dify_stack_core::WaitPolicy,
    cancel: &dify_stack_core::CancellationToken,
) -> Result<(), dify_stack_core::wait::WaitError<AwsError>> {
    use dify_stack_core::wait::{self, Probe};
    let what = format!("the load balancers of namespace {namespace} to be deleted by their controller");
    wait::until(&what, policy, cancel, || async {
        let left =
            api.cluster_load_balancers(VpcId::new(vpc), ClusterName::new(cluster), Some(namespace.to_owned())).await?;
        Ok(if left.is_empty() {
            Probe::Done(())
        } else {
            Probe::Pending(format!("{} left: {}", left.len(), list_ids(&left)))
        })
    })
    .await
}

/// The ids of `lbs`, comma-separated.
pub(crate) fn list_ids(lbs: &[ClusterLoadBalancer]) -> String {
    lbs.iter().map(|l| l.id.as_str()).collect::<Vec<_>>().join(", ")
}

/// The Kubernetes side: delete what makes load balancers.
#[cfg_attr(any(test, feature = "test-util"), mockall::automock)]
#[async_trait]
pub trait LoadBalancerObjects: Send + Sync {
    /// Deletes every Service of type `LoadBalancer` and every Ingress in the cluster; returns
    /// them as `service <ns>/<name>` and `ingress <ns>/<name>`.
    /// An error whose `unreachable` is set means the API server could not be reached (destroy
    /// then goes on without it).
    async fn delete_load_balancer_objects(&self) -> Result<Vec<String>, KubeFailure>;
}

impl std::fmt::Debug for dyn LoadBalancerObjects {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("LoadBalancerObjects")
    }
}

/// [`LoadBalancerObjects`] over a `kube::Client`, each call bounded by `timeout`.
#[derive(Clone)]
pub struct KubeLoadBalancerObjects {
    client: kube::Client,
    timeout: Duration,
}

impl std::fmt::Debug for KubeLoadBalancerObjects {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KubeLoadBalancerObjects").field("timeout", &self.timeout).finish_non_exhaustive()
    }
}

impl KubeLoadBalancerObjects {
    /// Uses `client`; an API server that does not answer within `timeout` counts as unreachable.
    pub fn new(client: kube::Client, timeout: Duration) -> Self {
        KubeLoadBalancerObjects { client, timeout }
    }

    /// `call`, bounded by the timeout: an API error is the API server's answer; any other
    /// failure, or no answer in time, counts as unreachable.
    async fn bounded<T>(
        &self,
        operation: &'static str,
        object: impl Into<String>,
        call: impl std::future::Future<Output = Result<T, kube::Error>>,
    ) -> Result<T, KubeFailure> {
        let fail = |message: String, status: Option<u16>| KubeFailure {
            operation,
            object: object.into(),
            message,
            status,
            unreachable: status.is_none(),
        };
        match tokio::time::timeout(self.timeout, call).await {
            Err(_) => Err(fail(format!("no answer within {:?}", self.timeout), None)),
            Ok(Err(kube::Error::Api(e))) => Err(fail(e.to_string(), Some(e.code))),
            Ok(Err(e)) => Err(fail(e.to_string(), None)),
            Ok(Ok(v)) => Ok(v),
        }
    }
}

#[async_trait]
impl LoadBalancerObjects for KubeLoadBalancerObjects {
    async fn delete_load_balancer_objects(&self) -> Result<Vec<String>, KubeFailure> {
        use k8s_openapi::api::core::v1::Service;
        use k8s_openapi::api::networking::v1::Ingress;
        use kube::api::{Api, DeleteParams, ListParams};
        let mut deleted = Vec::new();
        let services: Api<Service> = Api::all(self.client.clone());
        let list = self.bounded("list", "services", services.list(&ListParams::default())).await?;
        for s in list.items {
            if s.spec.as_ref().and_then(|s| s.type_.as_deref()) != Some("LoadBalancer") {
                continue;
            }
            let (ns, name) = (s.metadata.namespace.unwrap_or_default(), s.metadata.name.unwrap_or_default());
            let api: Api<Service> = Api::namespaced(self.client.clone(), &ns);
            match self
                .bounded("delete", format!("service {ns}/{name}"), api.delete(&name, &DeleteParams::default()))
                .await
            {
                Ok(_) => deleted.push(format!("service {ns}/{name}")),
                Err(e) if e.is_not_found() => {}
                Err(e) => return Err(e),
            }
        }
        let ingresses: Api<Ingress> = Api::all(self.client.clone());
        let list = self.bounded("list", "ingresses", ingresses.list(&ListParams::default())).await?;
        for i in list.items {
            let (ns, name) = (i.metadata.namespace.unwrap_or_default(), i.metadata.name.unwrap_or_default());
            let api: Api<Ingress> = Api::namespaced(self.client.clone(), &ns);
            match self
                .bounded("delete", format!("ingress {ns}/{name}"), api.delete(&name, &DeleteParams::default()))
                .await
            {
                Ok(_) => deleted.push(format!("ingress {ns}/{name}")),
                Err(e) if e.is_not_found() => {}
                Err(e) => return Err(e),
            }
        }
        Ok(deleted)
    }
}

/// [`LoadBalancerApi`] over the ELB, ELBv2 and EC2 SDK clients.
#[derive(Debug, Clone)]
pub struct SdkLoadBalancers {
    elbv2: aws_sdk_elasticloadbalancingv2::Client,
    elb: aws_sdk_elasticloadbalancing::Client,
    ec2: aws_sdk_ec2::Client,
}

impl SdkLoadBalancers {
    /// Builds the clients from shared SDK configuration.
    pub fn from_conf(config: &aws_types::SdkConfig) -> Self {
        SdkLoadBalancers {
            elbv2: aws_sdk_elasticloadbalancingv2::Client::new(config),
            elb: aws_sdk_elasticloadbalancing::Client::new(config),
            ec2: aws_sdk_ec2::Client::new(config),
        }
    }

    /// The DNS name and canonical hosted zone of an ELBv2 load balancer (for Route 53 aliases);
    /// `None` when it is gone.
    pub async fn alias_target(&self, arn: &str) -> Result<Option<(String, String)>, AwsError> {
        let out = dify_stack_core::found(
            self.elbv2.describe_load_balancers().load_balancer_arns(arn).send().await.aws("DescribeLoadBalancers"),
        )?;
        Ok(out.and_then(|o| {
            let lb = o.load_balancers().first()?;
            Some((lb.dns_name()?.to_owned(), lb.canonical_hosted_zone_id()?.to_owned()))
        }))
    }

    /// ELBv2 tags of up to 20 resources per call (DescribeTags limit).
    async fn v2_tags(&self, arns: &[String]) -> Result<HashMap<String, Tags>, AwsError> {
        let mut out = HashMap::new();
        for chunk in arns.chunks(20) {
            let r =
                self.elbv2.describe_tags().set_resource_arns(Some(chunk.to_vec())).send().await.aws("DescribeTags")?;
            for d in r.tag_descriptions() {
                let tags = d.tags().iter().filter_map(|t| Some((t.key()?.to_owned(), t.value()?.to_owned()))).collect();
                out.insert(d.resource_arn().unwrap_or_default().to_owned(), tags);
            }
        }
        Ok(out)
    }
}

fn gone(result: Result<(), AwsError>) -> Result<(), AwsError> {
    dify_stack_core::ignore_not_found(result).map(|_| ())
}

#[async_trait]
impl LoadBalancerApi for SdkLoadBalancers {
    async fn cluster_load_balancers(
        &self,
        vpc: VpcId,
        cluster: ClusterName,
        namespace: Option<String>,
    ) -> Result<Vec<ClusterLoadBalancer>, AwsError> {
        let mine = |t: &Tags| made_for(t, cluster.as_str(), namespace.as_deref());
        let mut found = Vec::new();
        let v2: Vec<_> = self
            .elbv2
            .describe_load_balancers()
            .into_paginator()
            .items()
            .send()
            .collect::<Result<Vec<_>, _>>()
            .await
            .aws("DescribeLoadBalancers")?;
        let arns: Vec<String> = v2
            .iter()
            .filter(|lb| lb.vpc_id() == Some(vpc.as_str()))
            .filter_map(|lb| lb.load_balancer_arn().map(str::to_owned))
            .collect();
        let tags = self.v2_tags(&arns).await?;
        found.extend(
            arns.into_iter()
                .filter(|a| tags.get(a).is_some_and(mine))
                .map(|id| ClusterLoadBalancer { id, kind: LoadBalancerKind::V2 }),
        );
        let classic = self.elb.describe_load_balancers().send().await.aws("DescribeLoadBalancers")?;
        let names: Vec<String> = classic
            .load_balancer_descriptions()
            .iter()
            .filter(|lb| lb.vpc_id() == Some(vpc.as_str()))
            .filter_map(|lb| lb.load_balancer_name().map(str::to_owned))
            .collect();
        for chunk in names.chunks(20) {
            let r = self
                .elb
                .describe_tags()
                .set_load_balancer_names(Some(chunk.to_vec()))
                .send()
                .await
                .aws("DescribeTags")?;
            for d in r.tag_descriptions() {
                let t: Tags =
                    d.tags().iter().filter_map(|t| Some((t.key().to_owned(), t.value()?.to_owned()))).collect();
                if mine(&t) {
                    let id = d.load_balancer_name().unwrap_or_default().to_owned();
                    found.push(ClusterLoadBalancer { id, kind: LoadBalancerKind::Classic });
                }
            }
        }
        Ok(found)
    }

    async fn delete_load_balancer(&self, lb: ClusterLoadBalancer) -> Result<(), AwsError> {
        match lb.kind {
            LoadBalancerKind::V2 => gone(
                self.elbv2
                    .delete_load_balancer()
                    .load_balancer_arn(lb.id)
                    .send()
                    .await
                    .aws("DeleteLoadBalancer")
                    .map(|_| ()),
            ),
            LoadBalancerKind::Classic => gone(
                self.elb
                    .delete_load_balancer()
                    .load_balancer_name(lb.id)
                    .send()
                    .await
                    .aws("DeleteLoadBalancer")
                    .map(|_| ()),
            ),
        }
    }

    async fn cluster_target_groups(&self, vpc: VpcId, cluster: ClusterName) -> Result<Vec<Arn>, AwsError> {
        let groups: Vec<_> = self
            .elbv2
            .describe_target_groups()
            .into_paginator()
            .items()
            .send()
            .collect::<Result<Vec<_>, _>>()
            .await
            .aws("DescribeTargetGroups")?;
        let arns: Vec<String> = groups
            .iter()
            .filter(|g| g.vpc_id() == Some(vpc.as_str()))
            .filter_map(|g| g.target_group_arn().map(str::to_owned))
            .collect();
        let tags = self.v2_tags(&arns).await?;
        Ok(arns
            .into_iter()
            .filter(|a| tags.get(a).is_some_and(|t| made_for_cluster(t, cluster.as_str())))
            .map(Arn::new)
            .collect())
    }

    async fn delete_target_group(&self, arn: Arn) -> Result<(), AwsError> {
        gone(
            self.elbv2
                .delete_target_group()
                .target_group_arn(arn.into_inner())
                .send()
                .await
                .aws("DeleteTargetGroup")
                .map(|_| ()),
        )
    }

    async fn cluster_security_groups(
        &self,
        vpc: VpcId,
        cluster: ClusterName,
        skip_tag: String,
    ) -> Result<Vec<SecurityGroupId>, AwsError> {
        let filter = |name: &str, value: &str| aws_sdk_ec2::types::Filter::builder().name(name).values(value).build();
        let groups = self
            .ec2
            .describe_security_groups()
            .filters(filter("vpc-id", vpc.as_str()))
            .send()
            .await
            .aws("DescribeSecurityGroups")?;
        Ok(groups
            .security_groups()
            .iter()
            .filter_map(|g| {
                let tags: Tags =
                    g.tags().iter().filter_map(|t| Some((t.key()?.to_owned(), t.value()?.to_owned()))).collect();
                (made_for_cluster(&tags, cluster.as_str())
                    && !tags.contains_key(EKS_CLUSTER_NAME_TAG)
                    && !tags.contains_key(&skip_tag))
                .then(|| g.group_id().map(SecurityGroupId::new))
                .flatten()
            })
            .collect())
    }

    async fn delete_security_group(&self, id: SecurityGroupId) -> Result<(), AwsError> {
        gone(
            self.ec2
                .delete_security_group()
                .group_id(id.into_inner())
                .send()
                .await
                .aws("DeleteSecurityGroup")
                .map(|_| ()),
        )
    }
}
