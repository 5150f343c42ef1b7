//! The graph executor, the runner and the facade's errors, against mocked and timed runners.

use super::{
    Arc, BTreeMap, CancellationToken, ConfigError, Duration, Event, EventSink, MockTierRunner, Mutex, Node, NodeError,
    NodeOutput, Profile, ResourceRef, SecurityGroupId, StackConfig, SubnetId, VpcId, graph, wiring,
};

fn network() -> dify_stack_network::NetworkOutput {
    let subnet = |i: usize, az: &str| dify_stack_network::SubnetOutput {
        id: SubnetId::new(format!("subnet-{i}")),
        az: az.to_owned(),
        cidr: format!("10.0.{}.0/24", 10 + i),
    };
    dify_stack_network::NetworkOutput {
        vpc_id: VpcId::new("vpc-1"),
        vpc_cidr: "10.0.0.0/16".into(),
        public_subnets: vec![],
        private_subnets: vec![subnet(0, "us-west-2a"), subnet(1, "us-west-2b")],
        nat_gateways: vec![],
        public_route_table: None,
        private_route_tables: vec![],
        owned: true,
    }
}

#[test]
fn wiring_passes_only_what_each_tier_needs() {
    let cfg = Profile::Test.config();
    let net = network();
    let eks = wiring::eks_spec(&cfg, &net);
    assert_eq!(eks.vpc_id.as_str(), "vpc-1");
    assert_eq!(eks.private_subnet_ids, [SubnetId::new("subnet-0"), SubnetId::new("subnet-1")]);
    assert_eq!(eks.node_group, cfg.eks.node_group);
    let ds = wiring::datastores_spec(&cfg, &net, &SecurityGroupId::new("sg-nodes"));
    assert_eq!(ds.source_security_groups, [SecurityGroupId::new("sg-nodes")]);
    assert_eq!(ds.subnets[1].availability_zone.as_str(), "us-west-2b");
    assert_eq!(ds.aurora, cfg.datastores.aurora);
    let n = wiring::network_spec(&cfg, &wiring::context(&cfg, None).unwrap());
    assert_eq!(n.cluster_name, "dify-test");
    assert!(matches!(n.vpc(), dify_stack_network::VpcSpec::New(v) if v.az_count == 2));
    assert_eq!(n.settings, cfg.network);
    assert_eq!(wiring::node_sg_spec(&net).vpc_id.as_str(), "vpc-1");
    // The graph encodes the same needs: the stores wait for the network and the node group's
    // security group only, never for the cluster.
    assert_eq!(Node::Aurora.deps(), [Node::Network, Node::NodeSecurityGroup]);
    // Only the cluster's node group needs the NAT gateways: the control plane is built meanwhile.
    assert_eq!(Node::EksControlPlane.deps(), [Node::Network, Node::NodeSecurityGroup, Node::EksPrerequisites]);
    // The cluster's role, key and log group need nothing: made (the role propagated by IAM)
    // while the VPC is.
    assert!(Node::EksPrerequisites.deps().is_empty());
    assert_eq!(Node::Eks.deps(), [Node::EksControlPlane, Node::Egress, Node::NodeSecurityGroup]);
    // The platform starts on the nodes; the add-ons that need no more than nodes are waited for
    // beside it (its load balancer controller waits for them through its gate).
    assert_eq!(Node::EksAddons.deps(), [Node::Eks, Node::EksAccess]);
    // The access entries: for this machine's Kubernetes calls (IAM's), not for the node group.
    assert_eq!(Node::EksAccess.deps(), [Node::EksControlPlane]);
    assert!(!Node::Eks.deps().contains(&Node::EksAccess));
    assert!(!Node::Platform.deps().contains(&Node::EksAddons));
    assert_eq!(Node::Egress.deps(), [Node::Network]);
    assert_eq!(Node::Iam.deps(), [Node::EksControlPlane, Node::EksAccess, Node::Bucket, Node::Registry]);
    assert!(Node::Bucket.deps().is_empty() && Node::Registry.deps().is_empty());
}

/// A fake runner: every node takes `durations[node]` of (paused) time and records when it
/// ran; `fail` nodes fail. (mockall's async mocks return at once, so timing needs a fake.)
struct Timed {
    durations: BTreeMap<Node, u64>,
    fail: &'static [Node],
    log: Arc<Mutex<Vec<(Node, u64, u64)>>>,
}

fn timed_runner(
    durations: BTreeMap<Node, u64>,
    fail: &'static [Node],
    log: Arc<Mutex<Vec<(Node, u64, u64)>>>,
) -> Timed {
    Timed { durations, fail, log }
}

impl Timed {
    async fn work(&self, node: Node) -> Result<(), NodeError> {
        let secs = self.durations.get(&node).copied().unwrap_or(1);
        let start = tokio::time::Instant::now();
        tokio::time::sleep(Duration::from_secs(secs)).await;
        let t0 = start.duration_since(base()).as_secs();
        self.log.lock().unwrap().push((node, t0, t0 + secs));
        if self.fail.contains(&node) {
            return Err(NodeError::new(format!("{node} broke"), true));
        }
        Ok(())
    }
}

#[async_trait::async_trait]
impl graph::TierRunner for Timed {
    /// Plans need their upstream's plan first (its output, when observed converged): each node
    /// shows one change named after it.
    async fn plan(&self, node: Node, up: crate::StackOutput) -> Result<graph::PlanStep, NodeError> {
        for dep in node.deps() {
            assert!(has(&up, *dep), "{node}'s plan started without {dep}'s output");
        }
        self.work(node).await?;
        let mut plan = dify_stack_core::Plan::new();
        plan.push(dify_stack_core::Change::new(dify_stack_core::Action::Update, ResourceRef::new("test", node.name())));
        Ok(graph::PlanStep {
            plans: vec![(node, crate::NodePlan { plan, upstream_pending: false })],
            output: Some(fake_output(node)),
        })
    }

    async fn apply(&self, node: Node, up: crate::StackOutput) -> Result<NodeOutput, NodeError> {
        for dep in node.deps() {
            assert!(has(&up, *dep), "{node} started without {dep}'s output");
        }
        self.work(node).await?;
        Ok(fake_output(node))
    }

    async fn destroy(&self, node: Node) -> Result<Vec<ResourceRef>, NodeError> {
        self.work(node).await?;
        Ok(vec![ResourceRef::new("test", node.name())])
    }
}

#[tokio::test]
async fn with_a_mocked_runner_a_failed_cluster_never_starts_iam() {
    let mut runner = MockTierRunner::new();
    runner
        .expect_apply()
        .withf(|n, _| *n == Node::EksControlPlane)
        .times(1)
        .returning(|_, _| Err(NodeError::new("quota", false)));
    runner
        .expect_apply()
        .withf(|n, _| matches!(n, Node::Eks | Node::EksAccess | Node::EksAddons | Node::Iam | Node::Platform))
        .times(0)
        .returning(|n, _| Ok(fake_output(n)));
    runner.expect_apply().returning(|n, _| Ok(fake_output(n)));
    let (_, failure) = graph::apply(&runner, &CancellationToken::new(), &EventSink::default()).await.unwrap_err();
    assert_eq!(failure.failed.len(), 1);
    assert!(!failure.is_retryable());
    let cluster = Node::EksControlPlane;
    assert_eq!(
        failure.skipped,
        BTreeMap::from([
            (Node::EksAccess, cluster),
            (Node::Eks, cluster),
            (Node::EksAddons, cluster),
            (Node::Iam, cluster),
            (Node::Platform, cluster)
        ])
    );
}

thread_local! {
    static BASE: std::cell::Cell<Option<tokio::time::Instant>> = const { std::cell::Cell::new(None) };
}

fn base() -> tokio::time::Instant {
    BASE.with(|b| {
        b.get().unwrap_or_else(|| {
            let now = tokio::time::Instant::now();
            b.set(Some(now));
            now
        })
    })
}

fn has(up: &crate::StackOutput, node: Node) -> bool {
    match node {
        Node::Network | Node::Egress => up.network.is_some(),
        Node::NodeSecurityGroup => up.node_security_group.is_some(),
        Node::EksControlPlane | Node::Eks | Node::EksAddons => up.eks.is_some(),
        Node::Bucket => up.bucket.is_some(),
        Node::Registry => up.registry.is_some(),
        _ => true,
    }
}

fn fake_output(node: Node) -> NodeOutput {
    match node {
        Node::Network | Node::Egress => NodeOutput::Network(Box::new(network())),
        Node::NodeSecurityGroup => NodeOutput::NodeSecurityGroup(SecurityGroupId::new("sg-nodes")),
        Node::EksControlPlane | Node::Eks | Node::EksAddons => NodeOutput::Eks(Box::new(fake_eks())),
        Node::Bucket => NodeOutput::Bucket(Box::new(dify_stack_datastores::BucketOutput {
            name: dify_stack_core::ids::BucketName::new("b"),
            arn: dify_stack_core::ids::Arn::new("arn:aws:s3:::b"),
            region: "us-west-2".into(),
        })),
        Node::Registry => NodeOutput::Registry(Box::new(dify_stack_registry::RegistryOutput {
            app: dify_stack_registry::RepositoryOutput { name: "a".into(), arn: "a".into(), uri: "a".into() },
            plugin: dify_stack_registry::RepositoryOutput { name: "p".into(), arn: "p".into(), uri: "p".into() },
            plugin_repository_arn_pattern: "p*".into(),
            plugin_image_repo_prefix: "r/p".into(),
        })),
        // The stores and IAM: their outputs are not consumed by other nodes.
        _ => NodeOutput::Done,
    }
}

fn fake_eks() -> dify_stack_eks::EksOutput {
    dify_stack_eks::EksOutput {
        cluster_name: dify_stack_core::ids::ClusterName::new("c"),
        cluster_arn: dify_stack_core::ids::Arn::new("arn"),
        kubernetes_version: "1.33".into(),
        endpoint: "https://e".into(),
        ca_data: String::new(),
        oidc_issuer_url: "https://oidc".into(),
        cluster_security_group_id: None,
        node_security_group_id: SecurityGroupId::new("sg-nodes"),
        cluster_role_arn: dify_stack_core::ids::RoleArn::new("r"),
        node_role_arn: dify_stack_core::ids::RoleArn::new("n"),
        kms_key_arn: dify_stack_core::ids::KmsKeyArn::new("k"),
        nodegroup_name: "ng".into(),
        region: "us-west-2".into(),
    }
}

fn durations() -> BTreeMap<Node, u64> {
    BTreeMap::from([
        (Node::Network, 10),
        (Node::Egress, 95),
        (Node::NodeSecurityGroup, 3),
        (Node::EksControlPlane, 600),
        (Node::Eks, 180),
        (Node::EksAddons, 60),
        (Node::EksAccess, 6),
        (Node::Aurora, 480),
        (Node::Redis, 420),
        (Node::OpenSearch, 960),
        (Node::Bucket, 3),
        (Node::AppSecrets, 3),
        (Node::Registry, 3),
        (Node::Iam, 10),
        (Node::Platform, 30),
        (Node::Certificate, 3),
    ])
}

/// The plan runs through the same executor as apply: every node planned once, after what it
/// needs, independent nodes together; a failed plan skips its dependants.
#[tokio::test(start_paused = true)]
async fn plan_runs_over_the_graph_concurrently_and_a_failed_node_skips_its_dependants() {
    base();
    let runner = timed_runner(durations(), &[], Arc::new(Mutex::new(Vec::new())));
    let start = tokio::time::Instant::now();
    let (plans, out) = graph::plan(&runner, &CancellationToken::new()).await.unwrap();
    let (critical, _) =
        graph::critical_path(&durations().into_iter().map(|(n, s)| (n, Duration::from_secs(s))).collect());
    assert_eq!(start.elapsed(), critical);
    assert_eq!(plans.keys().copied().collect::<Vec<_>>(), Node::ALL.to_vec());
    assert!(plans.iter().all(|(n, p)| p.plan.changes.len() == 1 && p.plan.changes[0].resource.name == n.name()));
    assert!(out.network.is_some() && out.eks.is_some());

    let runner = timed_runner(durations(), &[Node::EksControlPlane], Arc::new(Mutex::new(Vec::new())));
    let failure = graph::plan(&runner, &CancellationToken::new()).await.unwrap_err();
    assert_eq!(failure.failed.keys().copied().collect::<Vec<_>>(), [Node::EksControlPlane]);
    assert_eq!(failure.skipped.get(&Node::Iam), Some(&Node::EksControlPlane));
    assert_eq!(failure.skipped.get(&Node::Platform), Some(&Node::EksControlPlane));
    assert!(!failure.skipped.contains_key(&Node::Aurora));
}

/// A test of the graph executor, not evidence about the stack: the nodes sleep the durations the
/// critical path is computed from, so the two agree by construction unless the executor
/// serialises what its graph lets run together. Evidence about the stack's graph is the
/// benchmark (the real provisioners over timed fakes against a resource-level critical path).
#[tokio::test(start_paused = true)]
async fn the_executor_overlaps_independent_nodes_up_to_the_critical_path_of_its_own_graph() {
    base();
    let log = Arc::new(Mutex::new(Vec::new()));
    let runner = timed_runner(durations(), &[], log.clone());
    let (sink, mut rx) = EventSink::channel();
    let start = tokio::time::Instant::now();
    let out = graph::apply(&runner, &CancellationToken::new(), &sink).await.unwrap();
    let makespan = start.elapsed().as_secs();
    assert!(out.network.is_some() && out.eks.is_some());
    let runs: BTreeMap<Node, (u64, u64)> = log.lock().unwrap().iter().map(|(n, a, b)| (*n, (*a, *b))).collect();
    // No-dependency nodes start at once, together.
    for n in [Node::Network, Node::Bucket, Node::AppSecrets, Node::Registry, Node::Certificate] {
        assert_eq!(runs[&n].0, 0, "{n}");
    }
    // The stores and the control plane start as soon as the node security group exists, before
    // the NAT gateways are done; the node group once both the control plane and egress are.
    let sg_done = runs[&Node::NodeSecurityGroup].1;
    for n in [Node::Aurora, Node::Redis, Node::OpenSearch, Node::EksControlPlane] {
        assert_eq!(runs[&n].0, sg_done, "{n}");
    }
    assert!(sg_done < runs[&Node::Egress].1);
    assert_eq!(runs[&Node::Eks].0, runs[&Node::Egress].1.max(runs[&Node::EksControlPlane].1));
    // IAM needs the cluster and this machine's access to it, not its nodes: it runs while the
    // node group is made, which starts without waiting for the access entries.
    assert_eq!(runs[&Node::EksAccess].0, runs[&Node::EksControlPlane].1);
    assert_eq!(runs[&Node::Iam].0, runs[&Node::EksAccess].1);
    assert!(runs[&Node::Iam].0 < runs[&Node::Eks].1);
    assert!(runs[&Node::Eks].0 < runs[&Node::EksAccess].1);
    // The platform starts on the nodes; the other add-ons are waited for beside it.
    assert_eq!(runs[&Node::EksAddons].0, runs[&Node::Eks].1);
    assert_eq!(runs[&Node::Platform].0, runs[&Node::Eks].1.max(runs[&Node::Iam].1));
    let (critical, path) =
        graph::critical_path(&durations().into_iter().map(|(n, s)| (n, Duration::from_secs(s))).collect());
    assert_eq!(Duration::from_secs(makespan), critical, "path {path:?}");
    assert_eq!(path, [Node::Network, Node::NodeSecurityGroup, Node::OpenSearch]);
    let sequential: u64 = durations().values().sum();
    assert!(makespan * 2 < sequential, "{makespan} vs {sequential}");
    let mut started = 0;
    while let Ok(e) = rx.try_recv() {
        started += usize::from(matches!(e, Event::NodeStarted { .. }));
    }
    assert_eq!(started, Node::ALL.len());
}

#[tokio::test(start_paused = true)]
async fn a_failing_node_stops_only_its_dependants_and_all_failures_are_listed() {
    base();
    let log = Arc::new(Mutex::new(Vec::new()));
    let cluster = Node::EksControlPlane;
    let runner = timed_runner(durations(), &[Node::EksControlPlane, Node::Redis], log.clone());
    let (sink, mut rx) = EventSink::channel();
    let (partial, failure) = graph::apply(&runner, &CancellationToken::new(), &sink).await.unwrap_err();
    assert_eq!(failure.failed.keys().copied().collect::<Vec<_>>(), [cluster, Node::Redis]);
    let skipped_by_cluster = [
        (Node::EksAccess, cluster),
        (Node::Eks, cluster),
        (Node::EksAddons, cluster),
        (Node::Iam, cluster),
        (Node::Platform, cluster),
    ];
    assert_eq!(failure.skipped, BTreeMap::from(skipped_by_cluster));
    let ran: Vec<Node> = log.lock().unwrap().iter().map(|(n, _, _)| *n).collect();
    assert!(!ran.contains(&Node::Eks) && !ran.contains(&Node::Iam) && !ran.contains(&Node::Platform));
    // Independent branches finished their work.
    for n in [Node::Aurora, Node::OpenSearch, Node::Bucket, Node::Registry, Node::AppSecrets] {
        assert!(ran.contains(&n), "{n}");
    }
    assert!(partial.network.is_some() && partial.bucket.is_some() && partial.eks.is_none());
    let text = failure.to_string();
    assert!(
        text.contains("eks-control-plane failed: eks-control-plane broke")
            && text.contains("redis failed")
            && text.contains("iam not started: eks-control-plane failed"),
        "{text}"
    );
    let mut skipped = Vec::new();
    while let Ok(e) = rx.try_recv() {
        if let Event::NodeSkipped { node, because } = e {
            skipped.push((node, because));
        }
    }
    skipped.sort();
    assert_eq!(skipped, skipped_by_cluster);
}

#[tokio::test(start_paused = true)]
async fn progress_is_also_a_stream_that_ends_with_the_run() {
    use futures::StreamExt as _;
    base();
    let runner = timed_runner(durations(), &[Node::Redis], Arc::new(Mutex::new(Vec::new())));
    let (sink, events) = EventSink::stream();
    let collected = tokio::spawn(events.collect::<Vec<Event>>());
    graph::apply(&runner, &CancellationToken::new(), &sink).await.unwrap_err();
    drop(sink);
    let events = collected.await.unwrap();
    let position = |want: &dyn Fn(&Event) -> bool| events.iter().position(want).unwrap();
    // Every node starts once; a node's start comes after the finish of each node it needs.
    assert_eq!(events.iter().filter(|e| matches!(e, Event::NodeStarted { .. })).count(), Node::ALL.len());
    let started = |n: Node| position(&|e| matches!(e, Event::NodeStarted { node } if *node == n));
    let finished = |n: Node| position(&|e| matches!(e, Event::NodeFinished { node, .. } if *node == n));
    for n in [Node::Eks, Node::Iam, Node::Platform] {
        for d in n.deps() {
            assert!(finished(*d) < started(n), "{n} started before {d} finished");
        }
    }
    assert!(
        events
            .iter()
            .any(|e| matches!(e, Event::NodeFailed { node: Node::Redis, error } if error.message == "redis broke"))
    );
}

#[tokio::test(start_paused = true)]
async fn destroy_runs_the_reverse_graph() {
    base();
    let log = Arc::new(Mutex::new(Vec::new()));
    let runner = timed_runner(durations(), &[], log.clone());
    let deleted = graph::destroy(&runner, &CancellationToken::new(), &EventSink::default()).await.unwrap();
    assert_eq!(deleted.len(), Node::ALL.len());
    let runs: BTreeMap<Node, (u64, u64)> = log.lock().unwrap().iter().map(|(n, a, b)| (*n, (*a, *b))).collect();
    for n in Node::ALL {
        for d in n.deps() {
            assert!(runs[d].0 >= runs[&n].1, "{d} was destroyed before its dependant {n} finished");
        }
    }
    // IAM before the cluster, though it does not need the node group to apply: it deletes its
    // service accounts through the cluster's API.
    assert!(runs[&Node::Eks].0 >= runs[&Node::Iam].1);
    // The platform goes first (its releases before the roles they use), then IAM.
    assert_eq!(runs[&Node::Platform].0, 0);
    assert_eq!(runs[&Node::Iam].0, runs[&Node::Platform].1);
    // The VPC goes once everything in it is gone: the egress (after the cluster), the stores and
    // the node security group.
    let last = Node::Network.dependants().iter().map(|d| runs[d].1).max().unwrap();
    assert_eq!(runs[&Node::Network].0, last);
    assert!(runs[&Node::Egress].0 >= runs[&Node::Eks].1 && last >= runs[&Node::OpenSearch].1);
}

#[tokio::test(start_paused = true)]
async fn a_failed_destroy_keeps_what_the_failed_node_depends_on() {
    base();
    let log = Arc::new(Mutex::new(Vec::new()));
    let runner = timed_runner(durations(), &[Node::Aurora], log.clone());
    let (_, failure) = graph::destroy(&runner, &CancellationToken::new(), &EventSink::default()).await.unwrap_err();
    assert_eq!(failure.skipped.get(&Node::Network), Some(&Node::Aurora));
    assert_eq!(failure.skipped.get(&Node::NodeSecurityGroup), Some(&Node::Aurora));
    assert!(failure.is_retryable());
    let ran: Vec<Node> = log.lock().unwrap().iter().map(|(n, _, _)| *n).collect();
    assert!(!ran.contains(&Node::Network), "the VPC is kept while the database still exists");
}

#[tokio::test(start_paused = true)]
async fn cancellation_stops_starting_new_nodes() {
    base();
    let log = Arc::new(Mutex::new(Vec::new()));
    let runner = timed_runner(durations(), &[], log.clone());
    let cancel = CancellationToken::new();
    let c = cancel.clone();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_secs(5)).await;
        c.cancel();
    });
    let (partial, failure) = graph::apply(&runner, &cancel, &EventSink::default()).await.unwrap_err();
    assert!(failure.cancelled);
    // The network finished (it was running); nothing downstream of it started.
    assert!(partial.network.is_some());
    for n in [Node::Egress, Node::NodeSecurityGroup, Node::Iam] {
        assert!(failure.not_started.contains(&n), "{n}");
    }
    assert!(failure.to_string().contains("the next run resumes"));
}

#[test]
fn kubernetes_access_modes_parse_and_role_only_makes_no_kubernetes_object() {
    let c = StackConfig::from_str_with_format("[eks]\nkubernetes_access = \"role_only\"\n", false).unwrap();
    assert_eq!(c.eks.kubernetes_access, crate::KubernetesAccess::RoleOnly);
    assert!(c.iam.service_accounts && !wiring::creates_service_accounts(&c));
    wiring::validate(&c).unwrap();
    let c = StackConfig::from_str_with_format(
        "[eks]\nkubernetes_access = \"public_cidrs\"\n[eks.endpoint]\npublic_access_cidrs = [\"198.51.100.0/24\"]\n",
        false,
    )
    .unwrap();
    assert!(wiring::creates_service_accounts(&c));
    wiring::validate(&c).unwrap();
    let err = StackConfig::from_str_with_format("[eks]\nkubernetes_access = \"vpn\"\n", false).unwrap_err();
    assert!(matches!(&err, ConfigError::Field { field, .. } if field == "eks.kubernetes_access"), "{err:?}");
    assert!(err.to_string().contains("caller_address"), "{err}");
    assert_eq!(Profile::Test.config().eks.kubernetes_access, crate::KubernetesAccess::CallerAddress);
}

#[test]
fn an_unreachable_kubernetes_api_fails_naming_the_endpoint_and_the_fix() {
    let cfg = Profile::Test.config();
    let ctx = wiring::context(&cfg, Some("123456789012")).unwrap();
    let sdk = aws_types::SdkConfig::builder().build();
    let runner = crate::runner::AwsRunner::new(cfg, ctx, crate::Provisioners::from_conf(&sdk));
    let endpoint = "https://ABCDEF.gr7.us-west-2.eks.amazonaws.com";
    let unreachable = dify_stack_core::KubeFailure {
        operation: "apply",
        object: "namespace dify".into(),
        message: "client error (Connect): tcp connect error: deadline has elapsed".into(),
        status: None,
        unreachable: true,
    };
    let e = runner.iam_err(endpoint, dify_stack_iam::IamError::Kubernetes(unreachable.clone()));
    for needle in [endpoint, "cannot be reached", "kubernetes_access = caller_address", "Fix:", "role_only"] {
        assert!(e.message.contains(needle), "{needle} missing in {}", e.message);
    }
    // An API answer (403) is not a reachability problem and keeps its own message.
    let forbidden = dify_stack_core::KubeFailure { status: Some(403), unreachable: false, ..unreachable };
    let e = runner.iam_err(endpoint, dify_stack_iam::IamError::Kubernetes(forbidden));
    assert!(!e.message.contains("cannot be reached"), "{}", e.message);
}

#[test]
fn an_sse_kms_bucket_gives_the_s3_roles_its_key_by_arn() {
    let mut cfg = Profile::Test.config();
    let ctx = wiring::context(&cfg, Some("123456789012")).unwrap();
    let eks = crate::runner::tests_support::eks_output();
    let registry = crate::runner::tests_support::registry_output();
    let bucket = dify_stack_core::ids::BucketName::new("b");
    assert_eq!(wiring::iam_spec(&cfg, &ctx, &eks, &bucket, &registry).bucket_kms_key_arn, None);
    cfg.datastores.bucket.kms_key_id = Some("1234abcd-12ab-34cd-56ef-1234567890ab".into());
    assert_eq!(
        wiring::iam_spec(&cfg, &ctx, &eks, &bucket, &registry).bucket_kms_key_arn.as_deref(),
        Some("arn:aws:kms:us-west-2:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab")
    );
    let cn = wiring::context(&cfg.clone().with_region("cn-north-1"), Some("123456789012")).unwrap();
    assert!(
        wiring::iam_spec(&cfg, &cn, &eks, &bucket, &registry)
            .bucket_kms_key_arn
            .unwrap()
            .starts_with("arn:aws-cn:kms:cn-north-1:")
    );
}

#[test]
fn a_failed_runs_error_is_never_replaced_by_the_lock_release_error() {
    use crate::StackError;
    use crate::lock::LockError;
    let lost = || LockError::Lost { stack: "s".into() };
    let failed = || {
        Err::<(), _>(StackError::Node {
            node: crate::Node::Network,
            error: crate::NodeError::new("the run broke", false),
        })
    };
    // The run failed and so did the release: the run's error stands.
    let e = crate::settle(failed(), Err(lost())).unwrap_err();
    assert!(e.to_string().contains("the run broke"), "{e}");
    // The run succeeded but the lock was lost: said.
    let e = crate::settle(Ok(()), Err(lost())).unwrap_err();
    assert!(matches!(e, StackError::Lock(LockError::Lost { .. })), "{e}");
    assert!(crate::settle(Ok(7), Ok(())).unwrap() == 7);
    assert!(crate::settle(failed(), Ok(())).unwrap_err().to_string().contains("the run broke"));
}

/// Compile-time check: an embedder can spawn the stack's operations on a multi-threaded runtime
/// (the futures are `Send`). Never called; it compiles only while that holds.
#[allow(dead_code)]
fn stack_futures_are_send(stack: &crate::Stack, release: &crate::install::DifyRelease) {
    fn send<T: Send>(_: T) {}
    send(stack.plan());
    send(stack.apply());
    send(stack.destroy());
    send(stack.destroy_uninstalling(release));
    #[cfg(feature = "audit")]
    send(stack.audit());
}

#[test]
fn a_node_error_keeps_the_tiers_typed_error_for_embedders() {
    use dify_stack_eks::EksError;
    let e = NodeError::from_error(EksError::DowngradeRefused { have: "1.33".into(), want: "1.32".into() });
    assert!(matches!(e.downcast_ref::<EksError>(), Some(EksError::DowngradeRefused { have, .. }) if have == "1.33"));
    assert!(e.downcast_ref::<dify_stack_iam::IamError>().is_none());
    assert!(NodeError::new("text only", true).downcast_ref::<EksError>().is_none());
    // Equality and serialisation stay on the text.
    assert_eq!(e, NodeError::new(e.message.clone(), false));
    assert_eq!(serde_json::to_value(&e).unwrap(), serde_json::json!({"message": e.message, "retryable": false}));
}

#[test]
fn a_node_errors_retryability_comes_from_the_tiers_error() {
    use dify_stack_core::{AwsError, AwsFailure, NotOwned, WaitError};
    use dify_stack_eks::EksError;
    use dify_stack_platform::PlatformError;
    let aws = |code: &str| AwsFailure {
        operation: "X",
        resource: "r".into(),
        source: Box::new(AwsError::new("X", code, "m")),
    };
    let timed_out = WaitError::TimedOut {
        what: "cluster".into(),
        waited: std::time::Duration::from_secs(1),
        last_status: "CREATING".into(),
    };
    let ctx = wiring::context(&Profile::Test.config(), Some("123456789012")).unwrap();
    let cases: Vec<(NodeError, bool)> = vec![
        (NodeError::from_error(EksError::DowngradeRefused { have: "1.33".into(), want: "1.32".into() }), false),
        (NodeError::from_error(EksError::Wait(timed_out)), true),
        (NodeError::from_error(EksError::Wait(WaitError::Cancelled { what: "cluster".into() })), false),
        (NodeError::from_error(EksError::Aws(aws("ThrottlingException"))), true),
        (NodeError::from_error(EksError::Aws(aws("AccessDeniedException"))), false),
        (NodeError::from_error(EksError::NotOwned(NotOwned::new(&ctx, "EKS cluster", "dify-test"))), false),
        (NodeError::from_error(PlatformError::Aws(aws("InternalError"))), true),
        (NodeError::from_error(PlatformError::NoKubernetesClient), false),
        (NodeError::from_error(dify_stack_registry::RegistryError::Aws(aws("RepositoryNotEmptyException"))), false),
    ];
    for (e, retryable) in cases {
        assert_eq!(e.retryable, retryable, "{}", e.message);
    }
}
