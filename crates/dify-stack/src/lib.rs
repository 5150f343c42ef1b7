//! Provision the complete AWS infrastructure for Dify Enterprise from Rust.
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use dify_stack::{Profile, Stack};
//!
//! let sdk = aws_config::load_from_env().await;
//! let stack = Stack::connect(Profile::Test.config().with_name("dify-demo"), sdk).await?;
//! println!("{}", stack.plan().await?);
//! let outputs = stack.apply().await?;
//! println!("{}", serde_json::to_string_pretty(&outputs)?);
//! # Ok(()) }
//! ```
//!
//! A [`StackConfig`] comes from a [`Profile`] (every value of STACK.md) and may be overridden
//! in code or from a TOML/YAML file. [`Stack`] validates it all before any call, then plans,
//! applies (tiers run concurrently as the [`graph`] allows, under a [stack lock](lock)) and
//! destroys (reverse graph, data-safe by [`DataPolicy`]). Progress arrives as [`Event`]s.
//!
//! The tier crates are re-exported: [`core`], [`network`], [`eks`], [`datastores`],
//! [`registry`], [`iam`].

mod access;
pub mod audit;
pub mod config;
mod graph;
pub mod install;
pub mod lock;
pub mod output;
mod runner;
#[cfg(test)]
mod tests;
mod wiring;

use std::collections::BTreeMap;

pub use dify_stack_core as core;
pub use dify_stack_core::{CancellationToken, Context, Environment, Plan, Provisioner, ResourceRef};
pub use dify_stack_datastores as datastores;
pub use dify_stack_datastores::DataPolicy;
pub use dify_stack_eks as eks;
pub use dify_stack_iam as iam;
pub use dify_stack_network as network;
pub use dify_stack_registry as registry;

pub use config::{ConfigError, KubernetesAccess, Profile, StackConfig};
pub use graph::{Event, EventSink, EventStream, Node, NodeError, NodeOutput, RunFailure};
pub use lock::{ControlBucket, LockError, LockInfo};
pub use output::{StackOutput, ValuesSecrets, helm_values};
use runner::AwsRunner;

/// The composition machinery under [`Stack`]: the graph executor, the runner over the real tier
/// provisioners, and the functions that turn a [`StackConfig`] into each tier's spec. For tests,
/// benchmarks and custom runners; an embedder provisioning a stack needs only [`Stack`].
pub mod internals {
    #[cfg(any(test, feature = "test-util"))]
    pub use crate::graph::MockTierRunner;
    pub use crate::graph::{TierRunner, apply, critical_path, destroy};
    pub use crate::runner::AwsRunner;

    /// Each tier's spec from a [`StackConfig`](crate::StackConfig), and whole-stack validation.
    pub mod wiring {
        pub use crate::wiring::*;
    }
}

use dify_stack_core::SpecErrors;
use secrecy::{ExposeSecret as _, SecretString};
use serde::Serialize;

/// Everything that can go wrong at the stack level.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StackError {
    /// The configuration is invalid; nothing was called. Every violation is listed.
    #[error("invalid stack configuration:\n{0}")]
    Invalid(SpecErrors),
    /// The account could not be identified (credentials?).
    #[error("{}", account_hint(.0))]
    Account(dify_stack_core::AwsError),
    /// The stack lock.
    #[error(transparent)]
    Lock(#[from] LockError),
    /// Some nodes failed, were skipped or the run was cancelled.
    #[error("{0}")]
    Run(RunFailure),
    /// A single node failed (plan).
    #[error("{node}: {error}")]
    Node {
        /// Node.
        node: Node,
        /// Error.
        error: NodeError,
    },
    /// An AWS call outside the tiers failed.
    #[error(transparent)]
    Aws(#[from] dify_stack_core::AwsError),
    /// Outputs are missing.
    #[error("{0}")]
    Incomplete(String),
    /// Destroy refused: the Dify EE release is still installed on the cluster.
    #[error(
        "destroy refused, nothing was deleted: the Dify EE release {release} is installed on the cluster. Fix: run uninstall first, or destroy --uninstall (Stack::destroy_uninstalling)"
    )]
    ReleaseInstalled {
        /// The Helm release.
        release: String,
    },
    /// Installing or uninstalling Dify EE failed.
    #[error(transparent)]
    Install(#[from] install::InstallError),
    /// `eks.kubernetes_access = caller_address` could not learn this machine's public address.
    #[error(
        "cannot learn this machine's public address from {url} (eks.kubernetes_access = caller_address opens the Kubernetes API to it): {message}. Fix: set eks.checkip_url to a reachable service, or choose eks.kubernetes_access = public_cidrs with eks.endpoint.public_access_cidrs, inside_vpc, or role_only"
    )]
    CallerAddress {
        /// The address service asked.
        url: String,
        /// What went wrong.
        message: String,
    },
    /// Destroy refused before any delete: these hold data the data policy does not allow to
    /// delete.
    #[error(
        "destroy refused, nothing was deleted: {}. Fix: destroy with --lift-deletion-protection (and --delete-data to skip the final snapshot and empty the bucket)",
        holders.join("; ")
    )]
    DataLossRefused {
        /// What holds data, one line each.
        holders: Vec<String>,
    },
}

impl StackError {
    /// Exit code for CLIs: 2 for bad input/config, 1 otherwise.
    pub fn exit_code(&self) -> i32 {
        match self {
            StackError::Invalid(_) => 2,
            _ => 1,
        }
    }
}

/// One node's plan.
#[derive(Debug, Clone, Serialize)]
pub struct NodePlan {
    /// The changes.
    pub plan: Plan,
    /// An upstream node is not converged yet: the plan is computed against planned ids and
    /// shows what will be created once it is (ids known after apply).
    pub upstream_pending: bool,
}

/// The plan of the whole stack.
#[derive(Debug, Clone, Serialize)]
pub struct StackPlan {
    /// What the plan cannot show as a change but the user must know (how the Kubernetes API is
    /// reached, a Kubernetes version in extended support), printed before the changes.
    pub notes: Vec<String>,
    /// Per node, in graph order.
    pub nodes: BTreeMap<Node, NodePlan>,
}

impl StackPlan {
    /// True when nothing would change.
    pub fn is_empty(&self) -> bool {
        self.nodes.values().all(|p| p.plan.is_empty())
    }

    /// Number of changes.
    pub fn len(&self) -> usize {
        self.nodes.values().map(|p| p.plan.changes.len()).sum()
    }
}

impl std::fmt::Display for StackPlan {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for note in &self.notes {
            writeln!(f, "Note: {note}")?;
        }
        if !self.notes.is_empty() {
            writeln!(f)?;
        }
        for (node, p) in &self.nodes {
            if p.plan.is_empty() {
                continue;
            }
            writeln!(
                f,
                "# {node}{}",
                if p.upstream_pending { " (after its upstream; ids known after apply)" } else { "" }
            )?;
            // The node's changes without its own summary line (one total follows).
            let text = p.plan.to_string();
            for line in text.lines().filter(|l| !l.starts_with("Plan:") && !l.is_empty()) {
                writeln!(f, "{line}")?;
            }
            writeln!(f)?;
        }
        let s = self.nodes.values().fold((0, 0, 0, 0), |acc, p| {
            let x = p.plan.summary();
            (acc.0 + x.create, acc.1 + x.update, acc.2 + x.replace, acc.3 + x.delete)
        });
        if self.is_empty() {
            write!(f, "No changes. The stack matches the configuration.")
        } else {
            write!(f, "Plan: {} to add, {} to change, {} to replace, {} to destroy.", s.0, s.1, s.2, s.3)
        }
    }
}

/// A stack bound to an account: plan, apply, destroy, outputs, unlock.
pub struct Stack {
    cfg: StackConfig,
    sdk: aws_types::SdkConfig,
    account: String,
    ctx: Context,
    events: EventSink,
    policy: DataPolicy,
    /// This machine's public address, in `caller_address` mode.
    caller: Option<std::net::Ipv4Addr>,
}

impl std::fmt::Debug for Stack {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Stack")
            .field("name", &self.cfg.name)
            .field("account", &self.account)
            .field("region", &self.cfg.region)
            .finish()
    }
}

impl Stack {
    /// Validates `cfg` (no call is made when it is invalid), identifies the account and binds
    /// the stack to it. The SDK config's region is overridden by `cfg.region`.
    pub async fn connect(cfg: StackConfig, sdk: aws_types::SdkConfig) -> Result<Stack, StackError> {
        wiring::validate(&cfg).map_err(StackError::Invalid)?;
        let sdk = sdk.into_builder().region(aws_types::region::Region::new(cfg.region.clone())).build();
        let sts = aws_sdk_sts::Client::new(&sdk);
        let who = dify_stack_core::AwsResultExt::aws(sts.get_caller_identity().send().await, "GetCallerIdentity")
            .map_err(StackError::Account)?;
        let account = who.account().unwrap_or_default().to_owned();
        let ctx = wiring::context(&cfg, Some(&account)).map_err(StackError::Invalid)?;
        let mut cfg = cfg;
        let caller = match cfg.eks.kubernetes_access {
            KubernetesAccess::CallerAddress => {
                let ip = access::caller_address(&cfg.eks.checkip_url)
                    .await
                    .map_err(|message| StackError::CallerAddress { url: cfg.eks.checkip_url.clone(), message })?;
                let cidr = format!("{ip}/32");
                if !cfg.eks.endpoint.public_access_cidrs.contains(&cidr) {
                    cfg.eks.endpoint.public_access_cidrs.push(cidr);
                }
                Some(ip)
            }
            _ => None,
        };
        Ok(Stack { cfg, sdk, account, ctx, events: EventSink::default(), policy: DataPolicy::default(), caller })
    }

    /// Sends progress events to `sink`.
    pub fn with_events(mut self, sink: EventSink) -> Self {
        self.events = sink;
        self
    }

    /// Progress as a [`Stream`](futures::Stream) of [`Event`]s, instead of a callback:
    ///
    /// ```no_run
    /// use futures::StreamExt as _;
    ///
    /// # async fn run(stack: dify_stack::Stack) -> Result<(), dify_stack::StackError> {
    /// let (stack, mut events) = stack.event_stream();
    /// let progress = tokio::spawn(async move {
    ///     while let Some(event) = events.next().await {
    ///         println!("{}", serde_json::to_string(&event).unwrap());
    ///     }
    /// });
    /// stack.apply().await?;
    /// drop(stack); // ends the stream
    /// progress.await.unwrap();
    /// # Ok(())
    /// # }
    /// ```
    pub fn event_stream(self) -> (Self, EventStream) {
        let (sink, stream) = EventSink::stream();
        (self.with_events(sink), stream)
    }

    /// What destroy may delete that holds data (default: nothing).
    pub fn with_data_policy(mut self, policy: DataPolicy) -> Self {
        self.policy = policy;
        if policy.delete_data {
            self.ctx.permissions.allow_data_loss = true;
        }
        self
    }

    /// Replaces the wait/retry policy (deadlines and polling schedule of every wait).
    pub fn with_wait(mut self, policy: dify_stack_core::WaitPolicy) -> Self {
        self.ctx = self.ctx.with_wait(policy);
        self
    }

    /// Cancels runs through `token`: no new node starts; running nodes stop at their next wait.
    pub fn with_cancellation(mut self, token: CancellationToken) -> Self {
        self.ctx = self.ctx.with_cancellation(token);
        self
    }

    /// The configuration.
    pub fn config(&self) -> &StackConfig {
        &self.cfg
    }

    /// The account id.
    pub fn account(&self) -> &str {
        &self.account
    }

    /// The context (stack, region, partition, tags, account).
    pub fn context(&self) -> &Context {
        &self.ctx
    }

    fn runner(&self) -> AwsRunner {
        AwsRunner::new(self.cfg.clone(), self.ctx.clone(), self.sdk.clone(), self.policy)
    }

    /// The control bucket (lock and recorded outputs).
    pub fn control(&self) -> ControlBucket {
        ControlBucket::new(&self.sdk, &self.account, &self.cfg.region)
    }

    /// The plan of every node. Writes nothing and takes no lock.
    pub async fn plan(&self) -> Result<StackPlan, StackError> {
        let mut plan = self.runner().plan_all().await.map_err(|(node, error)| StackError::Node { node, error })?;
        plan.notes = self.notes();
        Ok(plan)
    }

    /// The plan's notes: how the Kubernetes API is reached from here.
    fn notes(&self) -> Vec<String> {
        let cidrs = &self.cfg.eks.endpoint.public_access_cidrs;
        let public = if cidrs.is_empty() { "off".to_owned() } else { format!("limited to {}", cidrs.join(", ")) };
        let access = match (self.cfg.eks.kubernetes_access, self.caller) {
            (KubernetesAccess::CallerAddress, Some(ip)) => format!(
                "Kubernetes API: private endpoint on; public endpoint {public} ({ip}/32 is this machine, eks.kubernetes_access = caller_address)"
            ),
            (mode, _) => format!(
                "Kubernetes API: private endpoint on; public endpoint {public} (eks.kubernetes_access = {mode}{})",
                match mode {
                    KubernetesAccess::InsideVpc => ": apply must run inside the VPC",
                    KubernetesAccess::RoleOnly => ": no Kubernetes object is made; apply the written manifests",
                    _ => ": apply must run from one of these ranges",
                }
            ),
        };
        let mut notes = vec![access];
        notes.extend(dify_stack_eks::lifecycle::support_note(
            &self.cfg.eks.kubernetes_version,
            std::time::SystemTime::now(),
        ));
        notes
    }

    /// Converges the whole stack under the stack lock; returns every output. The outputs (no
    /// secret values) are recorded in the control bucket for [`Stack::output`].
    pub async fn apply(&self) -> Result<StackOutput, StackError> {
        let lock = self.control().acquire(&self.cfg.name, "apply").await?;
        // Boxed: the runner (every provisioner and the whole config) would otherwise live in
        // this future, which embedders hold on their stack.
        let runner = Box::new(self.runner());
        let result = graph::apply(runner.as_ref(), self.ctx.cancellation(), &self.events).await;
        let outcome = match result {
            Ok(out) => {
                let json = serde_json::to_value(&out).unwrap_or_default();
                self.control().save_outputs(&self.cfg.name, &json).await.map(|_| out).map_err(StackError::from)
            }
            Err((_, failure)) => Err(StackError::Run(failure)),
        };
        settle(outcome, lock.release().await)
    }

    /// Destroys the whole stack (reverse graph) under the stack lock; returns what was deleted.
    /// Refuses, deleting nothing, while the Dify EE release (`iam.helm_release` in
    /// `iam.namespace`) is installed: see [`Stack::destroy_uninstalling`].
    pub async fn destroy(&self) -> Result<Vec<ResourceRef>, StackError> {
        self.destroy_with(&self.configured_release(), false).await
    }

    /// Uninstalls `release` when it is installed (as [`Stack::uninstall_dify`], waiting for its
    /// load balancers to go), then destroys the stack, all under the stack lock.
    pub async fn destroy_uninstalling(&self, release: &install::DifyRelease) -> Result<Vec<ResourceRef>, StackError> {
        self.destroy_with(release, true).await
    }

    /// The release the service accounts were made for (`iam.helm_release` in `iam.namespace`).
    fn configured_release(&self) -> install::DifyRelease {
        install::DifyRelease {
            name: self.cfg.iam.helm_release.clone(),
            namespace: self.cfg.iam.namespace.clone(),
            ..Default::default()
        }
    }

    async fn destroy_with(
        &self,
        release: &install::DifyRelease,
        uninstall: bool,
    ) -> Result<Vec<ResourceRef>, StackError> {
        let lock = self.control().acquire(&self.cfg.name, "destroy").await?;
        let outcome = self.destroy_locked(release, uninstall).await;
        settle(outcome, lock.release().await)
    }

    async fn destroy_locked(
        &self,
        release: &install::DifyRelease,
        uninstall: bool,
    ) -> Result<Vec<ResourceRef>, StackError> {
        let runner = Box::new(self.runner());
        // A running Dify EE holds load balancers and volumes the stack did not make: uninstall it
        // first, on purpose rather than as a side effect of destroy.
        if runner.release_installed(release).await == Some(true) {
            match (uninstall, runner.live_cluster().await) {
                (true, Some((eks, vpc))) => self.uninstall_from(release, &eks, vpc.as_str()).await?,
                _ => return Err(StackError::ReleaseInstalled { release: release.name.clone() }),
            }
        }
        // The whole stack's data policy before the first delete: the graph would otherwise
        // delete IAM, EKS and the registry before the Aurora node refuses.
        let holders = runner
            .data_holders()
            .await
            .map_err(|e| StackError::Incomplete(format!("cannot check what holds data before destroy: {e}")))?;
        if !holders.is_empty() {
            return Err(StackError::DataLossRefused { holders });
        }
        match graph::destroy(runner.as_ref(), self.ctx.cancellation(), &self.events).await {
            Ok(deleted) => {
                self.control().delete_outputs(&self.cfg.name).await.map(|_| deleted).map_err(StackError::from)
            }
            Err((_, failure)) => Err(StackError::Run(failure)),
        }
    }

    /// The outputs recorded by the last successful apply.
    pub async fn output(&self) -> Result<StackOutput, StackError> {
        let json = self.control().load_outputs(&self.cfg.name).await?.ok_or_else(|| {
            StackError::Incomplete(format!("stack {} has no recorded outputs: run apply first", self.cfg.name))
        })?;
        serde_json::from_value(json).map_err(|e| {
            StackError::Incomplete(format!(
                "the recorded outputs of stack {} cannot be read ({e}): run apply to record them again",
                self.cfg.name
            ))
        })
    }

    /// Removes a stale lock; returns what it was.
    pub async fn unlock(&self) -> Result<Option<LockInfo>, StackError> {
        Ok(self.control().unlock(&self.cfg.name).await?)
    }

    /// The Dify EE Helm values for `out`, with the secret values read from Secrets Manager.
    pub async fn helm_values(&self, out: &StackOutput) -> Result<String, StackError> {
        use dify_stack_datastores::SecretsApi as _;
        let runner = self.runner();
        let secrets = runner.secrets();
        let read = |arn: Option<String>, what: &'static str| async move {
            let arn = arn.ok_or_else(|| StackError::Incomplete(format!("{what} secret is missing; apply first")))?;
            secrets.get_value(arn).await.map_err(StackError::from)
        };
        // The application role's secret, never the RDS-managed master secret (rotated every 7
        // days: Dify would lose its database a week after install).
        let db = read(out.aurora.as_ref().map(|a| a.app_secret.arn.to_string()), "Aurora application role").await?;
        // A secret without the key the values need is an error, never an empty string.
        let key = |value: &SecretString, what: &str, key: &str| -> Result<String, StackError> {
            let json: serde_json::Value = serde_json::from_str(value.expose_secret()).unwrap_or_default();
            json[key].as_str().filter(|v| !v.is_empty()).map(str::to_owned).ok_or_else(|| {
                StackError::Incomplete(format!("the {what} secret has no {key:?}: apply again, or restore it"))
            })
        };
        let redis = read(out.redis.as_ref().map(|r| r.auth_secret_arn.to_string()), "Redis AUTH").await?;
        if redis.expose_secret().is_empty() {
            return Err(StackError::Incomplete("the Redis AUTH secret is empty: apply again, or restore it".into()));
        }
        let os = read(out.opensearch.as_ref().map(|o| o.master_secret_arn.to_string()), "OpenSearch master").await?;
        let values = ValuesSecrets {
            database_password: SecretString::from(key(&db, "Aurora application role", "password")?),
            redis_password: redis,
            opensearch_user: key(&os, "OpenSearch master", "username")?,
            opensearch_password: SecretString::from(key(&os, "OpenSearch master", "password")?),
        };
        helm_values(out, &values, &self.site(out)).map_err(|e| StackError::Incomplete(e.to_string()))
    }

    /// Where Dify is served: the configured domain, with your certificate or the one the
    /// platform node made for it.
    fn site(&self, out: &StackOutput) -> output::DifyDomain {
        let mut site = self.cfg.dify.clone();
        if site.certificate_arn.is_none() {
            site.certificate_arn = out.certificate.as_ref().and_then(|c| c.certificate_arn.clone());
        }
        site
    }

    /// Installs (or upgrades) Dify EE: `helm upgrade --install` with the values rendered from
    /// `out`, then waits until every Deployment and StatefulSet of the release is rolled out,
    /// telling `progress` what is pending. With a domain, then probes the console's login page
    /// until it answers; returns where Dify answers (the console URL, or the address of the
    /// release's load balancer when its Ingress has one).
    pub async fn install_dify(
        &self,
        release: &install::DifyRelease,
        out: &StackOutput,
        progress: &(dyn Fn(&str) + Send + Sync),
    ) -> Result<Option<String>, StackError> {
        let values = self.helm_values(out).await?;
        let eks =
            out.eks.as_ref().ok_or_else(|| StackError::Incomplete("the cluster has no output: apply first".into()))?;
        let (token, client) = self.cluster_access(eks).await?;
        install::helm_install(release, &values, &eks.endpoint, &eks.ca_data, &token).await?;
        install::wait_rollout(&client, release, &self.ctx.wait, self.ctx.cancellation(), progress).await?;
        if let (Some(domain), Some(zone)) =
            (&self.cfg.dify.domain, out.certificate.as_ref().and_then(|c| c.hosted_zone_id.as_ref()))
        {
            progress(&format!("waiting for the load balancer of the release's Ingress, for the {domain} aliases"));
            let target = self.release_load_balancer(release, out).await?;
            let dns = dify_stack_platform::SdkDns::from_conf(&self.sdk);
            let names = dify_stack_platform::aliases::publish(&self.ctx, &dns, zone, domain, &target)
                .await
                .map_err(|e| StackError::Incomplete(format!("cannot publish the aliases of {domain}: {e}")))?;
            progress(&format!("{} now point at {}", names.join(", "), target.dns_name));
        }
        if let Some(domain) = &self.cfg.dify.domain {
            let scheme = if self.site(out).certificate_arn.is_some() { "https" } else { "http" };
            let url = format!("{scheme}://console.{domain}/");
            progress(&format!("waiting for {url} to answer"));
            let status = install::probe_console(&url, &self.ctx.wait, self.ctx.cancellation()).await?;
            return Ok(Some(format!("{url} (HTTP {status})")));
        }
        Ok(ingress_address(&client, release).await)
    }

    /// Uninstalls the Dify EE release, then waits (up to 10 min) until the load balancers that
    /// its Ingress and Services made are deleted by their controller, so a destroy that follows
    /// finds the subnets free. The service accounts and their IRSA annotations stay.
    pub async fn uninstall_dify(&self, release: &install::DifyRelease, out: &StackOutput) -> Result<(), StackError> {
        let eks =
            out.eks.as_ref().ok_or_else(|| StackError::Incomplete("the cluster has no output: apply first".into()))?;
        let vpc = out
            .network
            .as_ref()
            .ok_or_else(|| StackError::Incomplete("the network has no output: apply first".into()))?;
        self.uninstall_from(release, eks, vpc.vpc_id.as_str()).await
    }

    /// The load balancer the controller made for the release's Ingress, waited for (up to 10
    /// min: the controller makes it within a minute or two of the Ingress).
    async fn release_load_balancer(
        &self,
        release: &install::DifyRelease,
        out: &StackOutput,
    ) -> Result<dify_stack_platform::aliases::AliasTarget, StackError> {
        use dify_stack_core::wait::{self, Probe};
        use dify_stack_eks::load_balancers::{LoadBalancerApi as _, LoadBalancerKind, SdkLoadBalancers};
        let eks = out.eks.as_ref().ok_or_else(|| StackError::Incomplete("the cluster has no output".into()))?;
        let vpc = out.network.as_ref().ok_or_else(|| StackError::Incomplete("the network has no output".into()))?;
        let lbs = SdkLoadBalancers::from_conf(&self.sdk);
        let (vpc, cluster, ns) = (vpc.vpc_id.to_string(), eks.cluster_name.to_string(), release.namespace.clone());
        let what = format!("the load balancer of namespace {ns}'s Ingress");
        wait::until(&what, &self.ctx.wait.capped(install::LOAD_BALANCERS_GONE_CAP), self.ctx.cancellation(), || async {
            let found = lbs.cluster_load_balancers(vpc.clone(), cluster.clone(), Some(ns.clone())).await?;
            for lb in found.iter().filter(|l| l.kind == LoadBalancerKind::V2) {
                if let Some((dns_name, hosted_zone_id)) = lbs.alias_target(&lb.id).await? {
                    return Ok(Probe::Done(dify_stack_platform::aliases::AliasTarget { dns_name, hosted_zone_id }));
                }
            }
            Ok::<_, dify_stack_core::AwsError>(Probe::Pending("none yet".into()))
        })
        .await
        .map_err(|e| {
            StackError::Incomplete(format!(
                "{e}: is the AWS Load Balancer Controller running (platform.load_balancer_controller)?"
            ))
        })
    }

    async fn uninstall_from(
        &self,
        release: &install::DifyRelease,
        eks: &dify_stack_eks::EksOutput,
        vpc: &str,
    ) -> Result<(), StackError> {
        // The aliases first: the names must not point at a load balancer about to go.
        // Aliases exist only where the certificate node manages the domain.
        if let Some(spec) = wiring::certificate_spec(&self.cfg) {
            let domain = &spec.domain.name;
            let no_aliases = |e| StackError::Incomplete(format!("cannot remove the aliases of {domain}: {e}"));
            let certificates = dify_stack_platform::CertificateProvisioner::from_conf(&self.sdk);
            if let Some(zone) = certificates.hosted_zone(&spec).await.map_err(no_aliases)? {
                let dns = dify_stack_platform::SdkDns::from_conf(&self.sdk);
                dify_stack_platform::aliases::remove(&self.ctx, &dns, &zone, domain).await.map_err(no_aliases)?;
            }
        }
        let (token, _) = self.cluster_access(eks).await?;
        install::helm_uninstall(release, &eks.endpoint, &eks.ca_data, &token).await?;
        let lbs = dify_stack_eks::load_balancers::SdkLoadBalancers::from_conf(&self.sdk);
        dify_stack_eks::load_balancers::wait_namespace_load_balancers_gone(
            &lbs,
            vpc,
            eks.cluster_name.as_str(),
            &release.namespace,
            &self.ctx.wait.capped(install::LOAD_BALANCERS_GONE_CAP),
            self.ctx.cancellation(),
        )
        .await
        .map_err(|e| install::InstallError::LoadBalancersLeft(e.to_string()))?;
        Ok(())
    }

    /// A fresh EKS token for `eks` and a client, for Helm and kube-rs.
    async fn cluster_access(
        &self,
        eks: &dify_stack_eks::EksOutput,
    ) -> Result<(SecretString, kube::Client), StackError> {
        let credentials = self
            .sdk
            .credentials_provider()
            .ok_or_else(|| StackError::Incomplete("no AWS credentials for the EKS token".into()))?;
        let tokens = dify_stack_eks::TokenSource::new(credentials, eks.cluster_name.as_str(), &eks.region);
        let token = tokens.token().await.map_err(|e| StackError::Incomplete(e.to_string()))?;
        let client =
            dify_stack_eks::kube_client(eks, &tokens).await.map_err(|e| StackError::Incomplete(e.to_string()))?;
        Ok((SecretString::from(token.secret().expose_secret().to_owned()), client))
    }

    /// Checks the live stack against the security controls of [`audit::CONTROLS`]. Read-only.
    pub async fn audit(&self) -> Result<audit::AuditReport, StackError> {
        Ok(audit::audit(&self.ctx, &self.sdk).await?)
    }

    /// An exec-based kubeconfig for the cluster in `out` ([`StackOutput::kubeconfig`]).
    pub fn kubeconfig(out: &StackOutput) -> Option<String> {
        out.kubeconfig()
    }
}

/// What to do when the account cannot be identified: the cause in one line, then the fix.
fn account_hint(e: &dify_stack_core::AwsError) -> String {
    let text = e.to_string();
    let lower = text.to_ascii_lowercase();
    if lower.contains("no providers in chain provided credentials") || lower.contains("credentialsnotloaded") {
        "no AWS credentials found. Fix: set AWS_PROFILE (then `aws sso login` for SSO profiles), or AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY; or run against the local emulator with --emulator".to_owned()
    } else if lower.contains("dispatch failure") || lower.contains("connect") || lower.contains("timeout") {
        format!(
            "cannot reach AWS to identify the account (sts:GetCallerIdentity): {text}. Fix: check the network or proxy, AWS_ENDPOINT_URL if set, and the region"
        )
    } else {
        format!(
            "cannot identify the AWS account (sts:GetCallerIdentity): {text}. Fix: check the credentials' validity and that they may call sts:GetCallerIdentity"
        )
    }
}

/// The result of a locked run and of releasing its lock: the run's own error is never replaced
/// by the release's (logged instead); a successful run whose lock was lost or could not be
/// released reports that.
fn settle<T>(outcome: Result<T, StackError>, released: Result<(), LockError>) -> Result<T, StackError> {
    match (outcome, released) {
        (Err(e), Err(r)) => {
            tracing::warn!(error = %r, "the stack lock could not be released after the failed run");
            Err(e)
        }
        (Ok(_), Err(r)) => Err(r.into()),
        (outcome, Ok(())) => outcome,
    }
}

/// The hostname of the load balancer of the release's Ingress, when it has one.
async fn ingress_address(client: &kube::Client, release: &install::DifyRelease) -> Option<String> {
    let api: kube::Api<k8s_openapi::api::networking::v1::Ingress> =
        kube::Api::namespaced(client.clone(), &release.namespace);
    let list = api.list(&kube::api::ListParams::default()).await.ok()?;
    list.items.iter().find_map(|i| {
        let lb = i.status.as_ref()?.load_balancer.as_ref()?.ingress.as_ref()?.first()?;
        lb.hostname.clone().or_else(|| lb.ip.clone())
    })
}
