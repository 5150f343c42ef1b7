//! Provision the complete AWS infrastructure for Dify Enterprise from Rust.
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use dify_stack::{Profile, Stack};
//!
//! let sdk = aws_config::load_from_env().await;
//! let stack = Stack::connect(Profile::Test.config().with_name("dify-demo")?, sdk).await?;
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
#[cfg(feature = "audit")]
pub mod audit;
pub mod chart;
pub mod config;
mod dify;
mod error;
mod graph;
pub mod install;
pub mod lock;
mod nodes;
pub mod output;
mod plan;
pub mod preflight;
mod provisioners;
mod runner;
#[cfg(any(test, feature = "test-util"))]
pub mod testing;
#[cfg(test)]
mod tests;
mod wiring;

pub use dify_stack_core as core;
pub use dify_stack_core::{CancellationToken, Context, Environment, Plan, Provisioner, ResourceRef};
pub use dify_stack_datastores as datastores;
pub use dify_stack_datastores::DataPolicy;
pub use dify_stack_eks as eks;
pub use dify_stack_iam as iam;
pub use dify_stack_network as network;
pub use dify_stack_platform as platform;
pub use dify_stack_registry as registry;
/// The kube-rs version [`ClusterConnector`] speaks.
pub use kube;

pub use access::AccessError;
pub use config::{ConfigError, KubernetesAccess, Profile, StackConfig};
pub use error::{Incomplete, StackError};
pub use graph::{Event, EventSink, EventStream, Node, NodeError, NodeOutput, RunFailure};
pub use lock::{ControlBucket, LockError, LockInfo};
pub use output::{StackOutput, ValuesSecrets, helm_values};
pub use plan::{NodePlan, PlanReport, ReportedChange, StackPlan};
pub use provisioners::{ClusterConnector, Provisioners, SdkClusterConnector};
use runner::AwsRunner;

/// The composition machinery under [`Stack`]: the graph executor, the runner over the real tier
/// provisioners, and the functions that turn a [`StackConfig`] into each tier's spec. For tests,
/// benchmarks and custom runners; an embedder provisioning a stack needs only [`Stack`].
pub mod internals {
    #[cfg(any(test, feature = "test-util"))]
    pub use crate::graph::MockTierRunner;
    pub use crate::graph::{PlanStep, TierRunner, apply, critical_path, destroy, plan};
    pub use crate::runner::AwsRunner;

    /// Each tier's spec from a [`StackConfig`](crate::StackConfig), and whole-stack validation.
    pub mod wiring {
        pub use crate::wiring::*;
    }
}

/// A stack bound to an account: plan, apply, destroy, outputs, unlock.
pub struct Stack {
    cfg: StackConfig,
    sdk: aws_types::SdkConfig,
    /// The tier provisioners (over `sdk` unless [`Stack::with_provisioners`] replaced them).
    provisioners: Provisioners,
    account: String,
    ctx: Context,
    events: EventSink,
    /// This machine's public address, in `caller_address` mode.
    caller: Option<std::net::Ipv4Addr>,
    /// The operators' addresses as `connect` found and updated them, and whether this
    /// machine's is recorded (at `connect`, or by an apply since; `caller_address` mode).
    operators: Option<(lock::Operators, std::sync::atomic::AtomicBool)>,
}

impl std::fmt::Debug for Stack {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Stack")
            .field("name", self.ctx.stack())
            .field("account", &self.account)
            .field("region", &self.cfg.region)
            .finish()
    }
}

/// The key of the recorded outputs that names who recorded them.
const RECORDED_BY: &str = "recorded_by";

impl Stack {
    /// Validates `cfg` (no call is made when it is invalid), identifies the account and binds
    /// the stack to it. The SDK config's region is overridden by `cfg.region`.
    pub async fn connect(cfg: StackConfig, sdk: aws_types::SdkConfig) -> Result<Stack, StackError> {
        // Boxed: the identity, address and operators reads make a large future.
        Box::pin(Self::connect_checked(cfg, sdk)).await
    }

    async fn connect_checked(cfg: StackConfig, sdk: aws_types::SdkConfig) -> Result<Stack, StackError> {
        wiring::validate(&cfg).map_err(StackError::Invalid)?;
        let sdk = sdk.into_builder().region(aws_types::region::Region::new(cfg.region.clone())).build();
        let sts = aws_sdk_sts::Client::new(&sdk);
        let who = dify_stack_core::AwsResultExt::aws(sts.get_caller_identity().send().await, "GetCallerIdentity")
            .map_err(StackError::Account)?;
        let account = who.account().unwrap_or_default().to_owned();
        let ctx = wiring::context(&cfg, Some(&account)).map_err(StackError::Invalid)?;
        let mut cfg = cfg;
        let (caller, operators) = match cfg.eks.kubernetes_access {
            KubernetesAccess::CallerAddress => {
                let ip = access::caller_address(&cfg.eks.checkip_url)
                    .await
                    .map_err(|source| StackError::CallerAddress { url: cfg.eks.checkip_url.clone(), source })?;
                // Every operator's /32 is kept beside the recorded outputs: this machine's is
                // added (or its last use moved), stale and removed ones dropped; the others'
                // stay, so two operators never evict each other.
                let control = ControlBucket::new(&sdk, &account, &cfg.region);
                let mut operators = control.load_operators(ctx.stack().as_str()).await.map_err(StackError::Account)?;
                let now = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map(|d| d.as_secs())
                    .unwrap_or_default();
                if operators.entries.is_empty() {
                    adopt_cluster_operators(&sdk, &ctx, &cfg, &mut operators, now).await?;
                }
                let known = operators.cidrs().contains(&format!("{ip}/32"));
                operators.touch(ip, who.arn().unwrap_or_default(), now);
                operators.prune(cfg.eks.operator_cidr_ttl_days, &cfg.eks.remove_operator_cidrs, Some(ip), now);
                cfg.eks.operator_cidrs = operators.cidrs();
                (Some(ip), Some((operators, std::sync::atomic::AtomicBool::new(known))))
            }
            _ => (None, None),
        };
        Ok(Stack {
            cfg,
            provisioners: Provisioners::from_conf(&sdk),
            sdk,
            account,
            ctx,
            events: EventSink::default(),
            caller,
            operators,
        })
    }

    /// Records the operators' addresses (under the stack lock).
    async fn save_operators(&self) -> Result<(), StackError> {
        if let Some((operators, recorded)) = &self.operators {
            self.control().save_operators(self.ctx.stack().as_str(), operators).await?;
            recorded.store(true, std::sync::atomic::Ordering::Relaxed);
        }
        Ok(())
    }

    /// Runs the tiers over `provisioners` instead of those [`Stack::connect`] built from its SDK
    /// config (the stack lock, the recorded outputs and the caller's identity stay on the SDK
    /// config). For tests and simulations over in-memory fakes, or clients an embedder
    /// configures itself.
    pub fn with_provisioners(mut self, provisioners: Provisioners) -> Self {
        self.provisioners = provisioners;
        self
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

    /// What destroy may delete that holds data (default: nothing): kept in the context's
    /// [`Permissions`](dify_stack_core::Permissions), the one place every tier reads it from
    /// (`delete_data` is `allow_data_loss`, which also lets apply replace what holds data when
    /// `allow_replace` is given).
    pub fn with_data_policy(mut self, policy: DataPolicy) -> Self {
        let allow_replace = self.ctx.permissions.allow_replace;
        self.ctx = self.ctx.with_permissions(policy.permissions(allow_replace));
        self
    }

    /// What apply may do beyond converging (default: nothing). `allow_replace` with
    /// `allow_data_loss` lets apply delete and re-create what cannot change in place, as the plan
    /// shows it (`-/+`): the VPC or subnets whose CIDR or zone drifted, an ECR repository whose encryption
    /// changed (its images are lost), a Redis group without encryption (its cache is lost).
    /// Aurora and OpenSearch are never replaced, whatever the permissions. Destroy's data
    /// permission is [`Stack::with_data_policy`]'s.
    pub fn with_permissions(mut self, permissions: dify_stack_core::Permissions) -> Self {
        let keep = self.ctx.permissions;
        self.ctx = self.ctx.with_permissions(dify_stack_core::Permissions {
            allow_replace: permissions.allow_replace,
            allow_data_loss: permissions.allow_data_loss || keep.allow_data_loss,
            lift_deletion_protection: permissions.lift_deletion_protection || keep.lift_deletion_protection,
        });
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
        AwsRunner::new(self.cfg.clone(), self.ctx.clone(), self.provisioners.clone())
    }

    /// The control bucket (lock and recorded outputs).
    pub fn control(&self) -> ControlBucket {
        ControlBucket::new(&self.sdk, &self.account, &self.cfg.region)
    }

    /// The plan of every node. Writes nothing and takes no lock.
    pub async fn plan(&self) -> Result<StackPlan, StackError> {
        let runner = self.runner();
        let capacity =
            runner.capacity_preflight().await.map_err(|error| StackError::Node { node: Node::Network, error })?;
        let (nodes, observed) = graph::plan(&runner, self.ctx.cancellation()).await.map_err(plan_failure)?;
        let mut plan = StackPlan { notes: self.notes(), nodes, observed };
        // A Kubernetes upgrade that changes what the control plane costs says so.
        if let Some(eks) = plan.observed.eks.as_ref() {
            plan.notes.extend(dify_stack_eks::lifecycle::upgrade_cost_note(
                &eks.kubernetes_version,
                &self.cfg.eks.kubernetes_version.to_string(),
                std::time::SystemTime::now(),
            ));
        }
        plan.notes.extend(capacity);
        Ok(plan)
    }

    /// The plan's notes: how the Kubernetes API is reached from here.
    fn notes(&self) -> Vec<String> {
        let mut cidrs = self.cfg.eks.endpoint.public_access_cidrs.clone();
        cidrs.extend(self.cfg.eks.operator_cidrs.iter().filter(|c| !cidrs.contains(c)).cloned().collect::<Vec<_>>());
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
        let now = std::time::SystemTime::now();
        notes.extend(dify_stack_eks::lifecycle::support_note(&self.cfg.eks.kubernetes_version.to_string(), now));
        notes.extend(dify_stack_eks::lifecycle::support_type_note(
            &self.cfg.eks.kubernetes_version.to_string(),
            self.cfg.eks.support_type,
            now,
        ));
        notes
    }

    /// Converges the whole stack under the stack lock; returns every output. The outputs (no
    /// secret values) are recorded in the control bucket for [`Stack::output`].
    pub async fn apply(&self) -> Result<StackOutput, StackError> {
        // Boxed: embedders hold this future on their stack (the preflight, the lock, the run).
        Box::pin(self.apply_locked()).await
    }

    async fn apply_locked(&self) -> Result<StackOutput, StackError> {
        // Quotas and capacity first: a shortfall writes nothing, not even the lock.
        Box::pin(self.runner().capacity_preflight())
            .await
            .map_err(|error| StackError::Node { node: Node::Network, error })?;
        let lock = self.control().acquire(self.ctx.stack().as_str(), "apply").await?;
        if let Err(e) = self.save_operators().await {
            return settle(Err(e), lock.release().await);
        }
        // Boxed: the runner (every provisioner and the whole config) would otherwise live in
        // this future, which embedders hold on their stack.
        let runner = Box::new(self.runner());
        let result = graph::apply(runner.as_ref(), self.ctx.cancellation(), &self.events).await;
        let outcome = match result {
            Ok(out) => {
                let json = self.recorded(&out);
                self.control()
                    .save_outputs(self.ctx.stack().as_str(), &json)
                    .await
                    .map(|_| out)
                    .map_err(StackError::from)
            }
            Err((_, failure)) => Err(StackError::Run(failure)),
        };
        settle(outcome, lock.release().await)
    }

    /// Applies what `plan` (from [`Stack::plan`]) showed, from that one observation where it can:
    /// when the plan has no change, and the outputs the last apply recorded were written by this
    /// version of dify-stack for this very configuration and agree with every output the plan
    /// observed, nothing is observed again and nothing is written: the recorded outputs are
    /// returned, with the generated secrets' values read back (as `terraform apply` of a plan
    /// without changes prints the outputs of its state). Otherwise (a change, no or foreign
    /// recorded outputs) it is [`Stack::apply`], which observes again under the stack lock. A
    /// no-op CLI apply so costs the plan's requests and three reads.
    pub async fn apply_plan(&self, plan: &StackPlan) -> Result<StackOutput, StackError> {
        if plan.is_empty()
            && let Some(json) = self.control().load_outputs(self.ctx.stack().as_str()).await?
            && json.get(RECORDED_BY) == Some(&self.recorder())
            && let Ok(recorded) = serde_json::from_value::<StackOutput>(json)
            && plan.observed.agrees_with(&recorded)
            && recorded.is_complete()
            && self.operators.as_ref().is_none_or(|(_, recorded)| recorded.load(std::sync::atomic::Ordering::Relaxed))
        {
            // (A new operator's address is on the cluster only once apply recorded it.)
            return self.with_secret_values(recorded).await;
        }
        self.apply().await
    }

    /// The recorded outputs hold the generated secrets' names and ARNs, never their values
    /// (not written to the control bucket): read the values back, as apply returns them.
    async fn with_secret_values(&self, mut out: StackOutput) -> Result<StackOutput, StackError> {
        use dify_stack_datastores::StoredSecret;
        let runner = self.runner();
        let secrets = runner.secrets();
        let fill = |s: StoredSecret| async move {
            let value = secrets.get_value(s.arn.clone()).await?;
            Ok::<_, StackError>(StoredSecret::new(s.name, s.arn, value))
        };
        if let Some(s) = out.app_secret.take() {
            out.app_secret = Some(fill(s).await?);
        }
        if let Some(a) = out.aurora.as_mut() {
            a.app_secret = fill(a.app_secret.clone()).await?;
        }
        Ok(out)
    }

    /// The outputs as recorded in the control bucket: the outputs, plus who recorded them (this
    /// version and a fingerprint of the configuration), which [`Stack::apply_plan`] checks before
    /// it trusts them.
    fn recorded(&self, out: &StackOutput) -> serde_json::Value {
        let mut json = serde_json::to_value(out).unwrap_or_default();
        if let Some(map) = json.as_object_mut() {
            map.insert(RECORDED_BY.to_owned(), self.recorder());
        }
        json
    }

    fn recorder(&self) -> serde_json::Value {
        use std::hash::{Hash, Hasher};
        // The std hasher is not promised stable across Rust releases: a binary built otherwise
        // may compute another fingerprint, which only costs a full apply (never a wrong skip).
        let mut h = std::collections::hash_map::DefaultHasher::new();
        serde_json::to_string(&self.cfg).unwrap_or_default().hash(&mut h);
        serde_json::json!({ "version": env!("CARGO_PKG_VERSION"), "config": format!("{:016x}", h.finish()) })
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
        let lock = self.control().acquire(self.ctx.stack().as_str(), "destroy").await?;
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
                (true, Some((eks, vpc))) => self.uninstall_from(release, &eks, vpc.as_str(), &[]).await?,
                _ => return Err(StackError::ReleaseInstalled { release: release.name.clone() }),
            }
        }
        // The whole stack's data policy before the first delete: the graph would otherwise
        // delete IAM, EKS and the registry before the Aurora node refuses.
        let holders = runner.data_holders().await.map_err(|error| StackError::DataCheck { error })?;
        if !holders.is_empty() {
            return Err(StackError::DataLossRefused { holders });
        }
        match graph::destroy(runner.as_ref(), self.ctx.cancellation(), &self.events).await {
            Ok(deleted) => {
                self.control().delete_outputs(self.ctx.stack().as_str()).await?;
                self.control().delete_operators(self.ctx.stack().as_str()).await?;
                Ok(deleted)
            }
            Err((_, failure)) => Err(StackError::Run(failure)),
        }
    }

    /// The outputs recorded by the last successful apply.
    pub async fn output(&self) -> Result<StackOutput, StackError> {
        let stack = || self.ctx.stack().to_string();
        let json = self
            .control()
            .load_outputs(self.ctx.stack().as_str())
            .await?
            .ok_or_else(|| Incomplete::NoRecordedOutputs { stack: stack() })?;
        serde_json::from_value(json).map_err(|source| StackError::UnreadableOutputs { stack: stack(), source })
    }

    /// Removes a stale lock; returns what it was.
    pub async fn unlock(&self) -> Result<Option<LockInfo>, StackError> {
        Ok(self.control().unlock(self.ctx.stack().as_str()).await?)
    }

    /// Checks the live stack against the security controls of [`audit::CONTROLS`]. Read-only.
    /// (Feature `audit`, on by default.)
    #[cfg(feature = "audit")]
    pub async fn audit(&self) -> Result<audit::AuditReport, StackError> {
        Ok(audit::audit(&self.ctx, &self.sdk, &self.cfg).await?)
    }

    /// An exec-based kubeconfig for the cluster in `out` ([`StackOutput::kubeconfig`]).
    pub fn kubeconfig(out: &StackOutput) -> Option<String> {
        out.kubeconfig()
    }
}

/// What to do when the account cannot be identified: the cause in one line, then the fix.
/// Classified by the error, not its text: an answer from AWS (a code or a status) means the
/// credentials were sent and refused; no answer, with the request stopped before it was sent
/// (the SDK's "other" dispatch failure: the credentials could not be resolved), means none were
/// found; any other failure to send it (connection, timeout) means AWS could not be reached.
fn account_hint(e: &dify_stack_core::AwsError) -> String {
    match account_failure(e) {
        AccountFailure::NoCredentials => "no AWS credentials found. Fix: set AWS_PROFILE (then `aws sso login` for SSO profiles), or AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY; or run against the local emulator with --emulator".to_owned(),
        AccountFailure::Unreachable => format!(
            "cannot reach AWS to identify the account (sts:GetCallerIdentity): {e}. Fix: check the network or proxy, AWS_ENDPOINT_URL if set, and the region"
        ),
        AccountFailure::Refused => format!(
            "cannot identify the AWS account (sts:GetCallerIdentity): {e}. Fix: check the credentials' validity and that they may call sts:GetCallerIdentity"
        ),
    }
}

/// Why sts:GetCallerIdentity failed, as [`account_hint`] tells it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum AccountFailure {
    /// No credentials could be resolved: the request was never sent.
    NoCredentials,
    /// AWS could not be reached (connection, timeout, a 5xx).
    Unreachable,
    /// AWS answered and refused (or anything else).
    Refused,
}

fn account_failure(e: &dify_stack_core::AwsError) -> AccountFailure {
    use dify_stack_core::ErrorKind;
    let answered = e.code.is_some() || e.status.is_some();
    if e.kind != ErrorKind::Transient || (answered && e.status.is_some_and(|s| s < 500)) {
        return AccountFailure::Refused;
    }
    // The connector error in the SDK's chain says how the request failed to go out.
    let mut cause = std::error::Error::source(e);
    while let Some(c) = cause {
        if let Some(connector) = c.downcast_ref::<aws_sdk_sts::error::ConnectorError>() {
            return if connector.is_other() && !answered {
                AccountFailure::NoCredentials
            } else {
                AccountFailure::Unreachable
            };
        }
        cause = c.source();
    }
    AccountFailure::Unreachable
}

/// The result of a locked run and of releasing its lock: the run's own error is never replaced
/// by the release's (logged instead); a successful run whose lock was lost or could not be
/// released reports that.
/// A failed plan as the first node that failed (in graph order), or the cancellation.
fn plan_failure(failure: RunFailure) -> StackError {
    match failure.failed.first_key_value() {
        Some((node, error)) => StackError::Node { node: *node, error: error.clone() },
        None => StackError::Run(failure),
    }
}

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

/// The operators of a stack whose operators were never recorded (made before the record
/// existed): each /32 on its cluster's public endpoint that is not a configured CIDR is an
/// earlier operator's address, adopted (identity unknown, last used now) so that this first
/// apply under the record does not remove it. A cluster that is not the stack's is ignored.
async fn adopt_cluster_operators(
    sdk: &aws_types::SdkConfig,
    ctx: &dify_stack_core::Context,
    cfg: &StackConfig,
    operators: &mut lock::Operators,
    now: u64,
) -> Result<(), StackError> {
    use dify_stack_eks::client::ClusterApi as _;
    let eks = dify_stack_eks::SdkEks::from_conf(sdk);
    let name = dify_stack_core::ids::ClusterName::new(dify_stack_eks::Names::of(ctx).cluster);
    let Some(cluster) = eks.describe_cluster(name).await.map_err(StackError::Account)? else { return Ok(()) };
    if !ctx.owns_tags(&cluster.tags) || !cluster.endpoint_public {
        return Ok(());
    }
    let configured = &cfg.eks.endpoint.public_access_cidrs;
    for cidr in cluster.public_access_cidrs.iter().filter(|c| !configured.contains(c)) {
        if let Some(ip) = cidr.strip_suffix("/32").and_then(|a| a.parse().ok()) {
            tracing::info!(%cidr, "adopting an operator address found on the cluster (no operators recorded yet)");
            operators.touch(ip, "(found on the cluster: recorded before operators were kept)", now);
        }
    }
    Ok(())
}

#[cfg(test)]
mod account_tests {
    use super::{AccountFailure, account_failure, account_hint};
    use aws_sdk_sts::error::{ConnectorError, SdkError};
    use aws_sdk_sts::operation::get_caller_identity::GetCallerIdentityError;
    use dify_stack_core::AwsError;

    fn dispatch(connector: ConnectorError) -> AwsError {
        let err: SdkError<GetCallerIdentityError> = SdkError::dispatch_failure(connector);
        AwsError::from_sdk("GetCallerIdentity", err)
    }

    /// No credentials, no network and a refusal are told apart by the error's kind, code and
    /// the SDK's connector error, each with its fix.
    #[test]
    fn account_failures_are_classified_by_the_error_not_its_text() {
        let none = dispatch(ConnectorError::other("no providers in chain provided credentials".into(), None));
        assert_eq!(account_failure(&none), AccountFailure::NoCredentials);
        assert!(account_hint(&none).starts_with("no AWS credentials found. Fix: set AWS_PROFILE"));
        let offline = dispatch(ConnectorError::io("connection refused".into()));
        assert_eq!(account_failure(&offline), AccountFailure::Unreachable);
        assert!(account_hint(&offline).contains("cannot reach AWS"), "{}", account_hint(&offline));
        let slow = dispatch(ConnectorError::timeout("timed out".into()));
        assert_eq!(account_failure(&slow), AccountFailure::Unreachable);
        let expired =
            AwsError::new("GetCallerIdentity", "ExpiredToken", "The security token included in the request is expired");
        assert_eq!(account_failure(&expired), AccountFailure::Refused);
        let hint = account_hint(&expired);
        assert!(hint.contains("ExpiredToken") && hint.contains("check the credentials' validity"), "{hint}");
    }
}
