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
    let max = |key: &str| drawn.get(key).map_or(0.0, |v| v.iter().map(Duration::as_secs_f64).fold(0.0, f64::max));
    let addons = |daemonset: bool| {
        drawn
            .iter()
            .filter(|(k, _)| {
                k.strip_prefix("eks_addon:")
                    .is_some_and(|a| ["vpc-cni", "kube-proxy", "eks-pod-identity-agent"].contains(&a) == daemonset)
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
        ("eks_cluster", cheap + max("eks_cluster"), vec!["subnets", "eks_role_policies", "kms_key", "log_group"]),
        ("access_entries", cheap, vec!["eks_cluster"]),
        ("access_policies", cheap, vec!["access_entries"]),
        ("launch_template", cheap, vec!["node_sg", "eks_cluster"]),
        ("nodegroup", cheap + nodegroup, vec!["eks_cluster", "launch_template", "private_routes", "associations"]),
        ("daemonset_addons", cheap + addons(true), vec!["eks_cluster"]),
        ("deployment_addons", cheap + addons(false), vec!["eks_cluster", "nodegroup"]),
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
        ("metrics_server", cheap, vec!["eks_cluster"]),
        ("helm_releases", max("helm_release"), vec!["irsa_policies", "eks_cluster"]),
    ];
    if domain {
        graph.push(("certificate", cheap, vec![]));
        graph.push(("validation_record", cheap, vec!["certificate"]));
        graph.push(("certificate_issued", max("acm_validation"), vec!["validation_record"]));
    }
    let mut finish: BTreeMap<&str, (f64, Option<&str>)> = BTreeMap::new();
    for (name, d, deps) in &graph {
        let (start, prev) = deps
            .iter()
            .map(|x| (finish.get(x).unwrap_or_else(|| panic!("{name} listed before {x}")).0, Some(*x)))
            .fold((0.0, None), |a, b| if b.0 > a.0 { b } else { a });
        finish.insert(name, (start + d, prev));
    }
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

/// The original Terraform's graph (the seed repository's `depends_on` and references: the stores
/// wait for the EKS cluster because their security groups reference it, the databases for the
/// cluster instance, the add-ons for the node group, IRSA for the cluster, bucket and
/// repositories), charged with the same draws, resources of a module in sequence as Terraform's
/// module dependencies order them. Returns its makespan (Terraform runs up to 10 in parallel,
/// more than this graph ever has ready at once).
pub(crate) fn terraform_makespan(prod: bool, drawn: &BTreeMap<String, Vec<Duration>>, cheap: f64) -> f64 {
    let max = |key: &str| drawn.get(key).map_or(0.0, |v| v.iter().map(Duration::as_secs_f64).fold(0.0, f64::max));
    let addon = drawn
        .iter()
        .filter(|(k, _)| k.starts_with("eks_addon:"))
        .flat_map(|(_, v)| v.iter().map(Duration::as_secs_f64))
        .fold(0.0, f64::max);
    let nodes: Vec<(&str, f64, Vec<&str>)> = vec![
        ("network", 4.0 * cheap + max("nat_gateway") + 2.0 * cheap, vec![]),
        ("iam_roles_kms", 3.0 * cheap, vec![]),
        ("eks_cluster", max("eks_cluster"), vec!["network", "iam_roles_kms"]),
        ("nodegroup", cheap + max(if prod { "eks_nodegroup_prod" } else { "eks_nodegroup_test" }), vec!["eks_cluster"]),
        ("addons", addon, vec!["nodegroup"]),
        ("aurora_cluster", 2.0 * cheap + max("aurora_cluster"), vec!["eks_cluster"]),
        ("aurora_instance", max("aurora_instance"), vec!["aurora_cluster"]),
        ("databases", cheap, vec!["aurora_instance"]),
        ("redis", 3.0 * cheap + max(if prod { "redis_prod" } else { "redis_test" }), vec!["eks_cluster"]),
        (
            "opensearch",
            2.0 * cheap + max(if prod { "opensearch_3_nodes" } else { "opensearch_1_node" }),
            vec!["eks_cluster"],
        ),
        ("s3", 2.0 * cheap, vec![]),
        ("ecr", 2.0 * cheap, vec![]),
        ("irsa", 4.0 * cheap, vec!["eks_cluster", "s3", "ecr"]),
    ];
    let mut finish: BTreeMap<&str, f64> = BTreeMap::new();
    for (name, dur, deps) in &nodes {
        let start = deps.iter().map(|x| finish[x]).fold(0.0, f64::max);
        finish.insert(name, start + dur);
    }
    finish.values().copied().fold(0.0, f64::max)
}
