//! The stack graph and its executor. Each [`Node`] runs as soon as the nodes it needs are
//! done; independent nodes run concurrently. When a node fails, nodes already running finish,
//! its dependants never start, and the error lists every failure. Destroy runs the reverse
//! graph. Cancellation stops starting new nodes; what ran is left consistent for the next run.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use dify_stack_core::{CancellationToken, ResourceRef};
use futures::StreamExt as _;
use futures::stream::FuturesUnordered;
use serde::Serialize;
use tokio::time::Instant;

use crate::output::StackOutput;

mod events;
pub use events::{Event, EventSink, EventStream};

/// A unit of work in the stack graph.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "kebab-case")]
#[non_exhaustive]
pub enum Node {
    /// The VPC and its subnets (what the data stores and the node security group need).
    Network,
    /// The rest of the network: internet gateway, Elastic IPs, NAT gateways, route tables. Split
    /// from [`Node::Network`] because the NAT gateways take minutes and only the node group needs
    /// them: the data stores start as soon as their subnets exist.
    Egress,
    /// The node security group (datastores admit it; the node group uses it).
    NodeSecurityGroup,
    /// What the EKS cluster needs besides the subnets: its IAM role, the secrets key and the
    /// control-plane log group. Split from [`Node::EksControlPlane`] because they need nothing
    /// of the network: made while the VPC is built, so IAM has propagated the cluster role by
    /// the time the subnets exist (EKS refuses a role it cannot assume yet).
    EksPrerequisites,
    /// The EKS control plane: the cluster (until ACTIVE), the node and EBS CSI roles beside it,
    /// and whatever of [`Node::EksPrerequisites`]'s the observation still finds to do. Split from [`Node::Eks`] because the cluster takes about ten minutes
    /// and needs only the subnets: it is built while the NAT gateways are; and the IAM tier,
    /// which needs only the cluster's API and OIDC issuer, runs while the node group is made.
    EksControlPlane,
    /// The cluster's access entries (the admin principals, the caller's among them). Split from
    /// [`Node::EksControlPlane`] because only this machine's Kubernetes calls (IAM's service
    /// accounts, the platform's releases) need them, not the node group: made beside it.
    EksAccess,
    /// Cluster, node group, add-ons: the whole EKS tier, after the control plane and the egress
    /// its nodes register through; done when the nodes and the pod network (the VPC CNI) are.
    Eks,
    /// The other EKS add-ons (CoreDNS, kube-proxy, the EBS CSI driver, the Pod Identity agent),
    /// waited for while the platform starts on the nodes. Split from [`Node::Eks`] because they
    /// can take two minutes after the nodes, and of the platform only the load balancer
    /// controller needs them (its webhooks would refuse their Services).
    EksAddons,
    /// Aurora PostgreSQL.
    Aurora,
    /// ElastiCache Redis.
    Redis,
    /// OpenSearch.
    OpenSearch,
    /// S3 storage bucket.
    Bucket,
    /// Generated Dify application secrets.
    AppSecrets,
    /// ECR repositories.
    Registry,
    /// OIDC provider, IRSA roles, service accounts.
    Iam,
    /// Cluster add-ons (load balancer controller, autoscaler, metrics-server), IngressClass.
    Platform,
    /// The domain's ACM certificate and its validation record (no upstream: validated while the
    /// rest is built).
    Certificate,
}

impl Node {
    /// Every node, in a stable order.
    pub const ALL: [Node; 17] = [
        Node::Network,
        Node::Egress,
        Node::NodeSecurityGroup,
        Node::EksPrerequisites,
        Node::EksControlPlane,
        Node::EksAccess,
        Node::Eks,
        Node::EksAddons,
        Node::Aurora,
        Node::Redis,
        Node::OpenSearch,
        Node::Bucket,
        Node::AppSecrets,
        Node::Registry,
        Node::Iam,
        Node::Platform,
        Node::Certificate,
    ];

    /// The nodes whose outputs this node needs: nothing more (declared in the node's module).
    pub fn deps(self) -> &'static [Node] {
        crate::nodes::of(self).deps()
    }

    /// The nodes that need this node.
    pub fn dependants(self) -> Vec<Node> {
        Node::ALL.into_iter().filter(|n| n.deps().contains(&self)).collect()
    }

    /// The nodes destroy removes before this one: its dependants, and for the EKS node also the
    /// IAM node, which does not need the node group to apply but deletes its service accounts
    /// through the cluster's API, so it goes while the cluster answers (a deleting cluster's API
    /// can refuse rather than be unreachable). Its OIDC provider is found by ownership tag, so a
    /// run interrupted in between orphans nothing.
    pub fn destroyed_after(self) -> Vec<Node> {
        let mut before = self.dependants();
        if self == Node::Eks {
            before.push(Node::Iam);
        }
        before
    }

    /// Display name.
    pub fn name(self) -> &'static str {
        match self {
            Node::Network => "network",
            Node::Egress => "egress",
            Node::NodeSecurityGroup => "node-security-group",
            Node::EksPrerequisites => "eks-prerequisites",
            Node::EksControlPlane => "eks-control-plane",
            Node::EksAccess => "eks-access",
            Node::Eks => "eks",
            Node::EksAddons => "eks-addons",
            Node::Aurora => "aurora",
            Node::Redis => "redis",
            Node::OpenSearch => "opensearch",
            Node::Bucket => "bucket",
            Node::AppSecrets => "app-secrets",
            Node::Registry => "registry",
            Node::Iam => "iam",
            Node::Platform => "platform",
            Node::Certificate => "certificate",
        }
    }
}

impl std::fmt::Display for Node {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// A node's error: its text (with causes), whether a re-run may succeed, and the tier's own
/// typed error, for embedders to match on ([`NodeError::downcast_ref`]).
#[derive(Debug, Clone, Serialize)]
pub struct NodeError {
    /// The message, with its causes.
    pub message: String,
    /// A later run may succeed (throttling, timeouts).
    pub retryable: bool,
    /// The tier's error (e.g. `dify_stack_eks::EksError`), when the failure came from one.
    #[serde(skip)]
    pub source: Option<Arc<dyn std::error::Error + Send + Sync + 'static>>,
}

impl PartialEq for NodeError {
    fn eq(&self, other: &Self) -> bool {
        self.message == other.message && self.retryable == other.retryable
    }
}

impl Eq for NodeError {}

impl NodeError {
    /// An error with a message only.
    pub fn new(message: impl Into<String>, retryable: bool) -> NodeError {
        NodeError { message: message.into(), retryable, source: None }
    }

    /// From a tier's error, kept as the source, with its causes in the message; retryable when
    /// the error's [`Classify::kind`](dify_stack_core::Classify::kind) is.
    pub fn from_error<E>(e: E) -> NodeError
    where
        E: std::error::Error + dify_stack_core::Classify + Send + Sync + 'static,
    {
        let retryable = e.is_retryable();
        let mut message = e.to_string();
        let mut src = e.source();
        while let Some(s) = src {
            message.push_str(&format!(": {s}"));
            src = s.source();
        }
        NodeError { message, retryable, source: Some(Arc::new(e)) }
    }

    /// The tier's error as `E`, when it is one. For example, a refused EKS downgrade (refused by
    /// the control-plane node, before any write; the `eks` node is then skipped):
    ///
    /// ```no_run
    /// use dify_stack::eks::EksError;
    /// use dify_stack::{Node, StackError};
    ///
    /// # async fn run(stack: dify_stack::Stack) {
    /// match stack.apply().await {
    ///     Err(StackError::Run(failure)) => {
    ///         let eks = failure.failed.get(&Node::EksControlPlane).and_then(|e| e.downcast_ref::<EksError>());
    ///         if let Some(EksError::DowngradeRefused { have, want }) = eks {
    ///             eprintln!("the cluster runs {have}; set eks.kubernetes_version back from {want}");
    ///         }
    ///     }
    ///     Err(other) => eprintln!("{other}"),
    ///     Ok(_) => {}
    /// }
    /// # }
    /// ```
    pub fn downcast_ref<E: std::error::Error + 'static>(&self) -> Option<&E> {
        self.source.as_deref().and_then(|e| (e as &(dyn std::error::Error + 'static)).downcast_ref::<E>())
    }
}

impl std::fmt::Display for NodeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

/// What one node hands on.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum NodeOutput {
    /// Network.
    Network(Box<dify_stack_network::NetworkOutput>),
    /// Node security group.
    NodeSecurityGroup(dify_stack_core::ids::SecurityGroupId),
    /// EKS.
    Eks(Box<dify_stack_eks::EksOutput>),
    /// Aurora.
    Aurora(Box<dify_stack_datastores::AuroraOutput>),
    /// Redis.
    Redis(Box<dify_stack_datastores::RedisOutput>),
    /// OpenSearch.
    OpenSearch(Box<dify_stack_datastores::OpenSearchOutput>),
    /// Bucket.
    Bucket(Box<dify_stack_datastores::BucketOutput>),
    /// App secrets.
    AppSecrets(Box<dify_stack_datastores::StoredSecret>),
    /// Registry.
    Registry(Box<dify_stack_registry::RegistryOutput>),
    /// IAM.
    Iam(Box<dify_stack_iam::IamOutput>),
    /// Platform.
    Platform(Box<dify_stack_platform::PlatformOutput>),
    /// Certificate.
    Certificate(Box<dify_stack_platform::CertificateOutput>),
    /// The node's work is done and it hands nothing on.
    Done,
}

/// What planning one node gave: the plans it shows (a node observed once may show the plan of a
/// node that applies part of it, such as the egress of the network) and its output, when the
/// observation tells it (its dependants are then planned against real ids).
#[derive(Debug, Clone, Default)]
pub struct PlanStep {
    /// Plans, by the node that applies them.
    pub plans: Vec<(Node, crate::NodePlan)>,
    /// The node's output as observed.
    pub output: Option<NodeOutput>,
}

/// Runs one node of the stack. The real implementation is [`AwsRunner`](crate::AwsRunner);
/// composition tests use the mockall mock.
#[cfg_attr(any(test, feature = "test-util"), mockall::automock)]
#[async_trait]
pub trait TierRunner: Send + Sync {
    /// Plans `node` (read-only) given what is known of the nodes it depends on: their outputs
    /// when observed converged, else missing (planned ids).
    async fn plan(&self, node: Node, upstream: StackOutput) -> Result<PlanStep, NodeError>;
    /// Converges `node` given the outputs of the nodes it depends on.
    async fn apply(&self, node: Node, upstream: StackOutput) -> Result<NodeOutput, NodeError>;
    /// Deletes what `node` owns.
    async fn destroy(&self, node: Node) -> Result<Vec<ResourceRef>, NodeError>;
}

/// How a run ended when not every node succeeded.
#[derive(Debug, Clone, thiserror::Error, Serialize)]
#[error("{}", render_failure(.failed, .skipped, *.cancelled))]
pub struct RunFailure {
    /// Failed nodes with their errors.
    pub failed: BTreeMap<Node, NodeError>,
    /// Nodes not started because of a failure: node -> the failed node.
    pub skipped: BTreeMap<Node, Node>,
    /// The run was cancelled; nodes not started are listed in `not_started`.
    pub cancelled: bool,
    /// Nodes not started because of the cancellation.
    pub not_started: Vec<Node>,
}

fn render_failure(failed: &BTreeMap<Node, NodeError>, skipped: &BTreeMap<Node, Node>, cancelled: bool) -> String {
    let mut out = String::new();
    if cancelled {
        out.push_str("cancelled; the next run resumes where this one stopped\n");
    }
    for (n, e) in failed {
        out.push_str(&format!("{n} failed: {e}\n"));
    }
    for (n, b) in skipped {
        out.push_str(&format!("{n} not started: {b} failed\n"));
    }
    out.trim_end().to_owned()
}

impl RunFailure {
    /// True when every failure is retryable (or the run was only cancelled).
    pub fn is_retryable(&self) -> bool {
        self.failed.values().all(|e| e.retryable)
    }
}

#[derive(Clone, Copy)]
enum Direction {
    Plan,
    Apply,
    Destroy,
}

/// Plans every node, in graph order and concurrently where the graph allows (each node
/// read-only); returns each node's plan and the outputs the observation told.
pub async fn plan(
    runner: &dyn TierRunner,
    cancel: &CancellationToken,
) -> Result<(BTreeMap<Node, crate::NodePlan>, StackOutput), RunFailure> {
    let mut out = StackOutput::default();
    let mut plans = BTreeMap::new();
    let events = EventSink::default();
    match run(runner, cancel, &events, Direction::Plan, &mut out, &mut plans).await {
        Ok(_) => Ok((plans, out)),
        Err((_, f)) => Err(f),
    }
}

/// Applies the graph; returns every node's output.
pub async fn apply(
    runner: &dyn TierRunner,
    cancel: &CancellationToken,
    events: &EventSink,
) -> Result<StackOutput, (StackOutput, RunFailure)> {
    let mut out = StackOutput::default();
    match run(runner, cancel, events, Direction::Apply, &mut out, &mut BTreeMap::new()).await {
        Ok(_) => Ok(out),
        Err((_, f)) => Err((out, f)),
    }
}

/// Destroys the graph in reverse order; returns what was deleted.
pub async fn destroy(
    runner: &dyn TierRunner,
    cancel: &CancellationToken,
    events: &EventSink,
) -> Result<Vec<ResourceRef>, (Vec<ResourceRef>, RunFailure)> {
    let mut out = StackOutput::default();
    run(runner, cancel, events, Direction::Destroy, &mut out, &mut BTreeMap::new()).await
}

async fn run(
    runner: &dyn TierRunner,
    cancel: &CancellationToken,
    events: &EventSink,
    dir: Direction,
    out: &mut StackOutput,
    plans: &mut BTreeMap<Node, crate::NodePlan>,
) -> Result<Vec<ResourceRef>, (Vec<ResourceRef>, RunFailure)> {
    // Apply: a node waits for its deps. Destroy: a node waits for its dependants.
    let waits_for = |n: Node| -> Vec<Node> {
        match dir {
            Direction::Plan | Direction::Apply => n.deps().to_vec(),
            Direction::Destroy => n.destroyed_after(),
        }
    };
    let mut pending: BTreeSet<Node> = Node::ALL.into_iter().collect();
    let mut done: BTreeSet<Node> = BTreeSet::new();
    let mut failure =
        RunFailure { failed: BTreeMap::new(), skipped: BTreeMap::new(), cancelled: false, not_started: Vec::new() };
    let mut deleted = Vec::new();
    let mut running = FuturesUnordered::new();
    loop {
        // Skip what can never run: something it waits for failed or was skipped.
        let mut changed = true;
        while changed {
            changed = false;
            for n in pending.clone() {
                let blocker = waits_for(n).into_iter().find_map(|d| {
                    failure.failed.contains_key(&d).then_some(d).or_else(|| failure.skipped.get(&d).copied())
                });
                if let Some(b) = blocker {
                    pending.remove(&n);
                    failure.skipped.insert(n, b);
                    events.emit(Event::NodeSkipped { node: n, because: b });
                    changed = true;
                }
            }
        }
        if cancel.is_cancelled() {
            failure.cancelled = true;
        } else {
            for n in pending.clone() {
                if waits_for(n).iter().all(|d| done.contains(d)) {
                    pending.remove(&n);
                    events.emit(Event::NodeStarted { node: n });
                    let upstream = out.clone();
                    let started = Instant::now();
                    running.push(async move {
                        let result = match dir {
                            Direction::Plan => runner.plan(n, upstream).await.map(Step::Planned),
                            Direction::Apply => runner.apply(n, upstream).await.map(Step::Applied),
                            Direction::Destroy => runner.destroy(n).await.map(Step::Destroyed),
                        };
                        (n, started.elapsed(), result)
                    });
                }
            }
        }
        let Some((node, elapsed, result)) = running.next().await else { break };
        match result {
            Ok(step) => {
                match step {
                    Step::Planned(p) => {
                        plans.extend(p.plans);
                        if let Some(o) = p.output {
                            out.set(o);
                        }
                    }
                    Step::Applied(o) => out.set(o),
                    Step::Destroyed(refs) => {
                        for r in refs {
                            events.emit(Event::ResourceDeleted { node, resource: r.clone() });
                            deleted.push(r);
                        }
                    }
                }
                done.insert(node);
                events.emit(Event::NodeFinished { node, elapsed });
            }
            Err(error) => {
                events.emit(Event::NodeFailed { node, error: error.clone() });
                failure.failed.insert(node, error);
            }
        }
    }
    if failure.cancelled {
        failure.not_started = pending.iter().copied().collect();
        for n in &pending {
            events.emit(Event::NodeCancelled { node: *n });
        }
    }
    if failure.failed.is_empty() && failure.skipped.is_empty() && !failure.cancelled {
        Ok(deleted)
    } else {
        Err((deleted, failure))
    }
}

enum Step {
    Planned(PlanStep),
    Applied(NodeOutput),
    Destroyed(Vec<ResourceRef>),
}

/// The critical path of the graph under per-node durations: (length, nodes on it).
pub fn critical_path(durations: &BTreeMap<Node, Duration>) -> (Duration, Vec<Node>) {
    let mut finish: BTreeMap<Node, (Duration, Option<Node>)> = BTreeMap::new();
    // Node::ALL is in topological order.
    for n in Node::ALL {
        let (start, prev) =
            n.deps().iter().map(|d| (finish[d].0, Some(*d))).max_by_key(|(t, _)| *t).unwrap_or((Duration::ZERO, None));
        finish.insert(n, (start + durations.get(&n).copied().unwrap_or_default(), prev));
    }
    let (mut at, (len, _)) = finish
        .iter()
        .max_by_key(|(_, (t, _))| *t)
        .map(|(n, v)| (*n, *v))
        .unwrap_or((Node::Network, (Duration::ZERO, None)));
    let mut path = vec![at];
    while let Some(prev) = finish[&at].1 {
        path.push(prev);
        at = prev;
    }
    path.reverse();
    (len, path)
}
