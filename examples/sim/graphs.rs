//! The two graphs the simulated makespan is compared with, charged with the durations one run
//! drew: the resource dependency graph of STACK.md (the critical path) and the seed Terraform's
//! module graph.

use std::collections::BTreeMap;
use std::time::Duration;

/// The longest path through the resource dependency graph of STACK.md, charged with the
/// durations one run drew (`cheap` for a control-plane object), computed without the executor or
/// the provisioners: how fast an apply could be if every resource started the moment its
/// dependencies were ready. Returns it and the resources on it.
pub(crate) fn critical_path(
    prod: bool,
    domain: bool,
    drawn: &BTreeMap<String, Vec<Duration>>,
    cheap: f64,
) -> (f64, Vec<&'static str>) {
    let graph = resource_graph(prod, domain, drawn, cheap);
    let finish = finish_times(&graph);
    let (mut at, end) = finish.iter().map(|(n, (f, _))| (*n, *f)).fold(("", 0.0), |a, b| if b.1 > a.1 { b } else { a });
    let total = end;
    let mut path = Vec::new();
    while !at.is_empty() {
        let name = graph.iter().find(|(n, _, _)| *n == at).map(|(n, _, _)| *n).expect("in graph");
        path.push(name);
        at = finish[at].1.unwrap_or("");
    }
    path.reverse();
    (total, path)
}

/// When `resource` of the resource dependency graph ([`critical_path`]) is ready, at the
/// earliest, on the durations one run drew.
pub(crate) fn finish_of(
    prod: bool,
    domain: bool,
    drawn: &BTreeMap<String, Vec<Duration>>,
    cheap: f64,
    resource: &str,
) -> f64 {
    let graph = resource_graph(prod, domain, drawn, cheap);
    finish_times(&graph).get(resource).unwrap_or_else(|| panic!("{resource} is not in the graph")).0
}

/// Every resource's earliest finish and the dependency that made it wait last.
fn finish_times<'a>(graph: &'a [(&'static str, f64, Vec<&'static str>)]) -> BTreeMap<&'a str, (f64, Option<&'a str>)> {
    let mut finish: BTreeMap<&str, (f64, Option<&str>)> = BTreeMap::new();
    for (name, d, deps) in graph {
        let (start, prev) = deps
            .iter()
            .map(|x| (finish.get(x).unwrap_or_else(|| panic!("{name} listed before {x}")).0, Some(*x)))
            .fold((0.0, None), |a, b| if b.0 > a.0 { b } else { a });
        finish.insert(name, (start + d, prev));
    }
    finish
}

/// The resource dependency graph of STACK.md: (resource, its own duration, what it needs ready
/// first), charged with one run's draws.
fn resource_graph(
    prod: bool,
    domain: bool,
    drawn: &BTreeMap<String, Vec<Duration>>,
    cheap: f64,
) -> Vec<(&'static str, f64, Vec<&'static str>)> {
    let max = |key: &str| drawn.get(key).map_or(0.0, |v| v.iter().map(Duration::as_secs_f64).fold(0.0, f64::max));
    let addons = |daemonset: bool| {
        drawn
            .iter()
            .filter(|(k, _)| {
                k.strip_prefix("eks_addon:").is_some_and(|a| {
                    a != "metrics-server"
                        && ["vpc-cni", "kube-proxy", "eks-pod-identity-agent"].contains(&a) == daemonset
                })
            })
            .flat_map(|(_, v)| v.iter().map(Duration::as_secs_f64))
            .fold(0.0, f64::max)
    };
    let nodegroup = max(if prod { "eks_nodegroup_prod" } else { "eks_nodegroup_test" });
    let redis = max(if prod { "redis_prod" } else { "redis_test" });
    let search = max(if prod { "opensearch_3_nodes" } else { "opensearch_1_node" });
    // (resource, its own duration, what it needs ready first). Sources: STACK.md's resources and
    // the AWS rules between them (a NAT gateway needs its subnet, Elastic IP and an attached
    // internet gateway; a node group needs the cluster ACTIVE, its launch template and egress
    // through the NAT routes; a Deployment add-on needs nodes; an Aurora instance needs its
    // cluster; the IRSA roles need the OIDC provider, the bucket and the repositories).
    let mut graph: Vec<(&'static str, f64, Vec<&'static str>)> = vec![
        ("vpc", cheap, vec![]),
        ("vpc_dns", cheap, vec!["vpc"]),
        ("subnets", cheap, vec!["vpc"]),
        ("igw", cheap, vec![]),
        ("igw_attach", cheap, vec!["igw", "vpc"]),
        ("eips", cheap, vec![]),
        ("nat_gateways", cheap + max("nat_gateway"), vec!["subnets", "eips", "igw_attach"]),
        ("route_tables", cheap, vec!["vpc"]),
        ("public_routes", cheap, vec!["route_tables", "igw_attach"]),
        ("private_routes", cheap, vec!["route_tables", "nat_gateways"]),
        ("associations", cheap, vec!["route_tables", "subnets"]),
        ("node_sg", cheap, vec!["vpc"]),
        ("eks_roles", cheap, vec![]),
        ("eks_role_policies", cheap, vec!["eks_roles"]),
        ("kms_key", cheap, vec![]),
        ("kms_alias", cheap, vec!["kms_key"]),
        ("log_group", cheap, vec![]),
        ("log_retention", cheap, vec!["log_group"]),
        // IAM propagates a new role before EKS can assume it (`iam_propagation`).
        ("cluster_role_usable", max("iam_propagation:dify-bench-eks-cluster"), vec!["eks_roles"]),
        ("node_role_usable", max("iam_propagation:dify-bench-eks-node"), vec!["eks_roles"]),
        (
            "eks_cluster",
            cheap + max("eks_cluster"),
            vec!["subnets", "eks_role_policies", "cluster_role_usable", "kms_key", "log_group"],
        ),
        ("access_entries", cheap, vec!["eks_cluster"]),
        ("access_policies", cheap, vec!["access_entries"]),
        ("launch_template", cheap, vec!["node_sg", "eks_cluster"]),
        (
            "nodegroup",
            cheap + nodegroup,
            vec!["eks_cluster", "launch_template", "node_role_usable", "private_routes", "associations"],
        ),
        ("daemonset_addons", cheap + addons(true), vec!["eks_cluster"]),
        // The pod network: pods get no address before the VPC CNI runs on their node.
        ("vpc_cni", cheap + max("eks_addon:vpc-cni"), vec!["eks_cluster"]),
        // A Deployment add-on is made with the cluster; its pods start once nodes are there:
        // ready when both are (as the EKS fake answers).
        ("deployment_addons_made", cheap + addons(false), vec!["eks_cluster"]),
        ("deployment_addons", 0.0, vec!["deployment_addons_made", "nodegroup"]),
        ("aurora_sg", cheap, vec!["vpc"]),
        ("aurora_ingress", cheap, vec!["aurora_sg", "node_sg"]),
        ("aurora_subnet_group", cheap, vec!["subnets"]),
        ("aurora_cluster", cheap + max("aurora_cluster"), vec!["aurora_sg", "aurora_subnet_group"]),
        ("aurora_instances", cheap + max("aurora_instance"), vec!["aurora_cluster"]),
        ("aurora_app_secret", cheap, vec![]),
        ("aurora_databases", cheap, vec!["aurora_instances", "aurora_app_secret"]),
        ("redis_sg", cheap, vec!["vpc"]),
        ("redis_ingress", cheap, vec!["redis_sg", "node_sg"]),
        ("redis_subnet_group", cheap, vec!["subnets"]),
        ("redis_secret", cheap, vec![]),
        ("redis", cheap + redis, vec!["redis_sg", "redis_subnet_group", "redis_secret"]),
        ("search_sg", cheap, vec!["vpc"]),
        ("search_ingress", cheap, vec!["search_sg", "node_sg"]),
        ("search_linked_role", cheap, vec![]),
        ("search_secret", cheap, vec![]),
        ("opensearch", cheap + search, vec!["search_sg", "search_linked_role", "search_secret", "subnets"]),
        ("bucket", cheap, vec![]),
        ("bucket_settings", cheap, vec!["bucket"]),
        ("app_secret", cheap, vec![]),
        ("repositories", cheap, vec![]),
        ("repository_policies", cheap, vec!["repositories"]),
        ("oidc_provider", cheap, vec!["eks_cluster"]),
        ("irsa_roles", cheap, vec!["oidc_provider", "bucket", "repositories"]),
        ("irsa_policies", cheap, vec!["irsa_roles"]),
        // The platform's metrics-server add-on (a Deployment: it needs nodes with the pod
        // network), and the EKS
        // tier's Deployment add-ons (CoreDNS makes the `kube-dns` Service), ACTIVE before the
        // load balancer controller's release: its webhooks would refuse their Services
        // (aws-load-balancer-controller #4140). Helm runs with this machine's access entry.
        ("metrics_server", cheap + max("eks_addon:metrics-server"), vec!["eks_cluster", "nodegroup", "vpc_cni"]),
        (
            "helm_releases",
            max("helm_release"),
            vec!["irsa_policies", "eks_cluster", "access_policies", "metrics_server", "deployment_addons"],
        ),
    ];
    if domain {
        graph.push(("certificate", cheap, vec![]));
        graph.push(("validation_record", cheap, vec!["certificate"]));
        graph.push(("certificate_issued", max("acm_validation"), vec!["validation_record"]));
    }
    graph
}

/// When Terraform notices a resource is ready `d` seconds after it started waiting: its waiters
/// (terraform-plugin-sdk `helper/retry` `StateChangeConf`, which terraform-provider-aws uses)
/// refresh after 100 ms, then at intervals doubling up to 10 s, so the wait ends at the first
/// refresh at or after `d`. The same kind of lag our own waits pay on our side.
pub(crate) fn terraform_polled(d: f64) -> f64 {
    if d <= 0.0 {
        return 0.0;
    }
    let (mut at, mut step) = (0.0, 0.1);
    while at < d {
        at += step;
        step = (step * 2.0).min(10.0);
    }
    at
}

/// The original Terraform's graph, from its own references (written beside the bench so the
/// two are read together): the cluster references the private subnets (not the NAT gateways);
/// the node group needs the NAT routes (its nodes join through them); the stores reference the
/// cluster's security group, so they wait for the cluster; the databases wait for the cluster
/// instance; the IRSA roles for the cluster, bucket and repositories. The same work as our side
/// (its Helm releases after the node group and IRSA; ACM in the rows with a domain), no EKS
/// add-ons (the original creates none: ours are charged on our side only), each long wait
/// polled as Terraform polls ([`terraform_polled`]), the resources of a module in sequence.
/// Returns its makespan (Terraform runs up to 10 in parallel, more than this graph ever has
/// ready at once).
pub(crate) fn terraform_makespan(prod: bool, domain: bool, drawn: &BTreeMap<String, Vec<Duration>>, cheap: f64) -> f64 {
    let max = |key: &str| drawn.get(key).map_or(0.0, |v| v.iter().map(Duration::as_secs_f64).fold(0.0, f64::max));
    let wait = |key: &str| terraform_polled(max(key));
    let mut nodes: Vec<(&str, f64, Vec<&str>)> = vec![
        ("vpc_subnets", 4.0 * cheap, vec![]),
        ("nat_routes", wait("nat_gateway") + 2.0 * cheap, vec!["vpc_subnets"]),
        ("iam_roles_kms", 3.0 * cheap, vec![]),
        // The provider retries CreateCluster while the new role propagates: charged exactly (no
        // poll lag, in Terraform's favour).
        ("cluster_role_usable", max("iam_propagation:dify-bench-eks-cluster"), vec!["iam_roles_kms"]),
        ("eks_cluster", wait("eks_cluster"), vec!["vpc_subnets", "cluster_role_usable"]),
        (
            "nodegroup",
            cheap + wait(if prod { "eks_nodegroup_prod" } else { "eks_nodegroup_test" }),
            vec!["eks_cluster", "nat_routes"],
        ),
        ("aurora_cluster", 2.0 * cheap + wait("aurora_cluster"), vec!["eks_cluster"]),
        ("aurora_instance", wait("aurora_instance"), vec!["aurora_cluster"]),
        ("databases", cheap, vec!["aurora_instance"]),
        ("redis", 3.0 * cheap + wait(if prod { "redis_prod" } else { "redis_test" }), vec!["eks_cluster"]),
        (
            "opensearch",
            2.0 * cheap + wait(if prod { "opensearch_3_nodes" } else { "opensearch_1_node" }),
            vec!["eks_cluster"],
        ),
        ("s3", 2.0 * cheap, vec![]),
        ("ecr", 2.0 * cheap, vec![]),
        ("irsa", 4.0 * cheap, vec!["eks_cluster", "s3", "ecr"]),
        ("helm_releases", max("helm_release"), vec!["nodegroup", "irsa"]),
    ];
    if domain {
        nodes.push(("certificate", 2.0 * cheap + wait("acm_validation"), vec![]));
    }
    let mut finish: BTreeMap<&str, f64> = BTreeMap::new();
    for (name, dur, deps) in &nodes {
        let start = deps.iter().map(|x| finish[x]).fold(0.0, f64::max);
        finish.insert(name, start + dur);
    }
    finish.values().copied().fold(0.0, f64::max)
}

/// Every drawn duration one after the other: the apply with no concurrency at all.
pub(crate) fn sequential_sum(drawn: &BTreeMap<String, Vec<Duration>>) -> f64 {
    drawn.values().flatten().map(Duration::as_secs_f64).sum()
}
