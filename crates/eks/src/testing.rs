//! The EKS tier's in-memory fake of its EKS, CloudWatch Logs, IAM, KMS and EC2 calls
//! ([`FakeEks`]), following real AWS behaviour where the emulator cannot: resources pass
//! through CREATING/UPDATING before ACTIVE, failures surface as FAILED/CREATE_FAILED, version
//! upgrades go one minor version at a time, a fresh role is rejected until IAM propagates,
//! add-on versions come from DescribeAddonVersions. The tier's own tests and the simulated-time
//! benchmark (the whole stack) run the real provisioners over it on tokio's paused clock.
//!
//! Its time comes from one of two sources:
//! - none ([`FakeEks::default`], [`FakeEks::with`]): every call answers at once and every
//!   resource is ready when made, unless a test scripts otherwise through [`State`] (statuses
//!   per describe, IAM rejections, a stuck cluster, busy add-ons, detaching volumes, ...);
//! - core's simulation ([`FakeEks::new`], [`dify_stack_core::sim`]): every call is charged
//!   (`Sim::read` / `Sim::write`), the cluster, node group and add-ons are CREATING until their
//!   sampled durations have passed, and a role EKS is handed is refused until its sampled IAM
//!   propagation delay has passed. An add-on whose pods run as a Deployment (everything but the
//!   DaemonSet add-ons `vpc-cni`, `kube-proxy` and `eks-pod-identity-agent`) cannot become
//!   ACTIVE before the node group has nodes: its ready time is the later of its own and the node
//!   group's (an assumption: EKS reports such an add-on CREATING or DEGRADED while its pods are
//!   pending).
//!
//! A scripted status (or a stuck one, or a busy add-on) overrides the timed one. Untimed, a new
//! node group reports CREATING for its first two describes (standing in for its creation time).

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};

use async_trait::async_trait;
use dify_stack_core::ids::{Arn, KmsKeyArn, RoleArn};
use dify_stack_core::sim::{Sim, ready};
use dify_stack_core::{AwsError, Tags};
use tokio::time::Instant;

use crate::client::*;

mod cluster;
mod ec2;

/// The add-ons whose pods run as a DaemonSet: they run on whatever nodes there are, so they do
/// not wait for the node group (every other add-on runs a Deployment, whose pods need nodes).
const DAEMONSET_ADDONS: [&str; 3] = ["vpc-cni", "kube-proxy", "eks-pod-identity-agent"];

/// The account id in the ARNs of a timed fake (the benchmark's account).
const SIM_ACCOUNT: &str = "123456789012";

/// The account id in the ARNs of an untimed fake (`arn:aws:iam::1:role/<name>`).
const TEST_ACCOUNT: &str = "1";

/// What the fake's account holds, and the knobs a test scripts it with. Every field is open: a
/// test sets up an account before the provisioner runs, and looks at what it did after.
#[derive(Debug, Default)]
pub struct State {
    /// IAM roles by name.
    pub roles: BTreeMap<String, RoleInfo>,
    /// Every key ever created (one scheduled for deletion stays listed, as in KMS).
    pub keys: Vec<KeyInfo>,
    /// The alias (`alias/<name>`) and the id of its key; CreateKey and CreateAlias are two calls.
    pub key_alias: Option<(String, String)>,
    /// The node security group and its VPC.
    pub sg: Option<(String, SecurityGroupInfo)>,
    /// The launch template.
    pub lt: Option<LaunchTemplateInfo>,
    /// The cluster.
    pub cluster: Option<ClusterInfo>,
    /// When the cluster becomes ACTIVE (a timed fake's sampled creation time); `None`: at once.
    pub cluster_ready_at: Option<Instant>,
    /// Statuses the next describes return before settling on ACTIVE.
    pub cluster_script: VecDeque<&'static str>,
    /// The node group.
    pub nodegroup: Option<NodegroupInfo>,
    /// When the node group becomes ACTIVE; `None`: at once.
    pub nodegroup_ready_at: Option<Instant>,
    /// Statuses the next node group describes return before settling on ACTIVE.
    pub nodegroup_script: VecDeque<&'static str>,
    /// Add-ons by name.
    pub addons: BTreeMap<String, AddonInfo>,
    /// When each add-on made by a timed fake is ready on its own (before the node group rule);
    /// an add-on without an entry is ready at once.
    pub addon_ready_at: BTreeMap<String, Instant>,
    /// Statuses the next add-on describes (of any add-on) return before settling on ACTIVE.
    pub addon_script: VecDeque<&'static str>,
    /// Access entries: principal ARN -> associated policy ARNs.
    pub access: BTreeMap<String, Vec<String>>,
    /// The control-plane log group.
    pub log_group: Option<LogGroupInfo>,
    /// CreateCluster answers "role could not be assumed" this many times first.
    pub iam_rejections: u32,
    /// When each role (by ARN) can be assumed by EKS: IAM is eventually consistent. A role
    /// without an entry is usable at once.
    pub role_usable_at: BTreeMap<String, Instant>,
    /// A stuck cluster: never leaves this status.
    pub cluster_stuck: Option<&'static str>,
    /// Every call that changes something, and the describes the tests count, in order.
    pub calls: Vec<String>,
    /// Every CreateCluster token, in order.
    pub tokens: Vec<String>,
    /// Cluster updates by id, each with the DescribeUpdate polls left before it is Successful.
    pub updates: BTreeMap<String, (UpdateInfo, u32)>,
    /// Add-ons UPDATING for this many more DescribeAddon calls.
    pub addon_busy: BTreeMap<String, u32>,
    /// Add-on versions DescribeAddonVersions lists as compatible besides the default.
    pub extra_compatible: Vec<String>,
    /// EBS volumes: an attached one (`in-use`) detaches after this many DescribeVolumes.
    pub volumes: Vec<(VolumeInfo, u32)>,
    /// EBS snapshots.
    pub snapshots: Vec<SnapshotInfo>,
    /// Network interfaces, each with its VPC.
    pub enis: Vec<(String, NetworkInterfaceInfo)>,
    /// EC2 resources only `tagged_resources` sees (what destroy's last step may find).
    pub tagged: Vec<TaggedResource>,
    /// A late log flush: the control-plane log group comes back (untagged, no retention) after
    /// a DeleteLogGroup made once no cluster exists, this many times.
    pub log_group_flushes: u32,
    /// Someone makes the log group (with these tags) between observe and CreateLogGroup.
    pub log_group_race: Option<Tags>,
    /// What ListInsights answers (upgrade-readiness findings).
    pub insights: Vec<Insight>,
}

/// ACTIVE once `at` has passed (or without a ready time), CREATING before.
fn timed(at: Option<Instant>) -> &'static str {
    if at.is_none_or(ready) { "ACTIVE" } else { "CREATING" }
}

/// Every lookup matches on its key (names, ids, ARNs, VPC): a call with a wrong key finds
/// nothing, as on AWS, so a provisioner passing the wrong name fails a test.
impl State {
    fn cluster_named(&mut self, name: impl AsRef<str>) -> Option<&mut ClusterInfo> {
        self.cluster.as_mut().filter(|c| c.name == name.as_ref())
    }
    /// Whether calls naming `cluster` reach the one cluster (or, before it exists, its
    /// sub-resources set up alone by a test).
    fn on_cluster(&self, cluster: impl AsRef<str>) -> bool {
        self.cluster.as_ref().is_none_or(|c| c.name == cluster.as_ref())
    }
    fn nodegroup_named(&mut self, cluster: impl AsRef<str>, name: &str) -> Option<&mut NodegroupInfo> {
        let on_cluster = self.on_cluster(cluster);
        self.nodegroup.as_mut().filter(|n| on_cluster && n.name == name)
    }
    /// Starts a cluster update: refused while another is in progress or the cluster is busy
    /// (ResourceInUseException "Cannot <type> because cluster <name> currently has update <id>
    /// in progress", aws-controllers-k8s community #1192). The update stays InProgress for one
    /// DescribeUpdate poll, the cluster UPDATING for one DescribeCluster.
    fn start_update(&mut self, cluster: impl AsRef<str>, kind: &str) -> Result<String, AwsError> {
        let cluster = cluster.as_ref();
        self.cluster_named(cluster).ok_or_else(|| not_found("UpdateClusterConfig"))?;
        if let Some((u, _)) = self.updates.values().find(|(u, _)| u.status == "InProgress") {
            let message = format!("Cannot {kind} because cluster {cluster} currently has update {} in progress", u.id);
            return Err(AwsError::new("UpdateClusterConfig", "ResourceInUseException", message));
        }
        if !self.cluster_script.is_empty() {
            return Err(AwsError::new("UpdateClusterConfig", "ResourceInUseException", "the cluster is busy"));
        }
        let id = format!("u-{}", self.updates.len() + 1);
        let update = UpdateInfo { id: id.clone(), status: "InProgress".into(), kind: kind.to_owned(), errors: vec![] };
        self.updates.insert(id.clone(), (update, 1));
        self.cluster_script.push_back("UPDATING");
        Ok(id)
    }
    /// The status an add-on's time gives it: ACTIVE once its own ready time has passed; an
    /// add-on whose pods run as a Deployment also needs the node group's nodes (not ready before
    /// the node group is, nor while there is none). An add-on without a ready time (made by an
    /// untimed fake, or set up by a test) is ACTIVE.
    fn addon_timed_status(&self, name: &str) -> &'static str {
        let Some(own) = self.addon_ready_at.get(name).copied() else { return "ACTIVE" };
        if DAEMONSET_ADDONS.contains(&name) {
            return timed(Some(own));
        }
        match &self.nodegroup {
            // Pods need nodes.
            None => "CREATING",
            Some(_) => timed(Some(self.nodegroup_ready_at.map_or(own, |nodes| nodes.max(own)))),
        }
    }
    /// EKS's refusal of a role IAM has not propagated yet (the message EKS gives, which the
    /// tier retries on: `AwsError::is_iam_propagation`).
    fn refused_role(&self, op: &'static str, role: &str) -> Result<(), AwsError> {
        match self.role_usable_at.get(role) {
            Some(at) if !ready(*at) => Err(role_not_assumable(op, role)),
            _ => Ok(()),
        }
    }
    fn key_with_id(&mut self, id: &str) -> Option<&mut KeyInfo> {
        self.keys.iter_mut().find(|k| k.key_id == id || k.arn.as_str() == id)
    }
    /// CreateAlias: an alias name in use is AlreadyExistsException (KMS API reference, CreateAlias
    /// errors); the target key must exist (NotFoundException).
    fn alias(&mut self, alias: &str, key_id: &str) -> Result<(), AwsError> {
        let name = format!("alias/{alias}");
        if self.key_alias.as_ref().is_some_and(|(a, _)| *a == name) {
            return Err(AwsError::new("CreateAlias", "AlreadyExistsException", "alias exists"));
        }
        self.key_with_id(key_id).ok_or_else(|| not_found("CreateAlias"))?;
        self.key_alias = Some((name, key_id.to_owned()));
        Ok(())
    }
}

/// EKS's answer to a role it cannot assume yet (IAM propagation; the tier retries on it:
/// `AwsError::is_iam_propagation`).
fn role_not_assumable(op: &'static str, role: &str) -> AwsError {
    AwsError::new(
        op,
        "InvalidParameterException",
        format!(
            "Role with arn: {role}, could not be assumed because it does not exist or the trusted entity is not correct"
        ),
    )
}

/// EKS refuses a `clientRequestToken` outside 33 to 126 characters with
/// InvalidParameterException (EKS API reference, CreateCluster/CreateNodegroup request
/// parameters; ansible community.aws #817).
fn check_token(op: &'static str, token: &str) -> Result<(), AwsError> {
    if (33..=126).contains(&token.len()) {
        Ok(())
    } else {
        Err(AwsError::new(
            op,
            "InvalidParameterException",
            "The client request token parameter must be between 33 and 126 characters",
        ))
    }
}

/// The default version DescribeAddonVersions gives `addon` on Kubernetes `k8s`.
pub fn default_version(addon: &str, k8s: &str) -> String {
    format!("v-{addon}-{k8s}")
}

/// EKS's answer to an update of a node group or add-on that is busy (EKS API reference,
/// UpdateNodegroupConfig / UpdateNodegroupVersion / UpdateAddon errors: ResourceInUseException).
fn in_use(op: &'static str, what: &str) -> AwsError {
    AwsError::new(op, "ResourceInUseException", format!("the {what} has an update in progress"))
}

fn not_found(op: &'static str) -> AwsError {
    AwsError::new(op, "ResourceNotFoundException", "not found")
}

/// The fake; clones share one account (a test keeps one to look at what the provisioner did;
/// the benchmark's node security group and EKS node use one each).
#[derive(Debug, Clone)]
pub struct FakeEks {
    /// The clock and durations; `None`: every call answers at once, every resource is ready
    /// when made (unless scripted).
    sim: Option<Arc<Sim>>,
    /// The duration kind of a node group's creation (`eks_nodegroup_test` or `_prod`).
    nodegroup_kind: &'static str,
    state: Arc<Mutex<State>>,
}

impl Default for FakeEks {
    /// An empty account, untimed.
    fn default() -> FakeEks {
        FakeEks { sim: None, nodegroup_kind: "eks_nodegroup_test", state: Arc::default() }
    }
}

impl FakeEks {
    /// An empty account timed by `sim`; node groups take `nodegroup_kind` (`eks_nodegroup_test`
    /// or `eks_nodegroup_prod`). Fresh ids come from the simulation (unique across every tier's
    /// fake of one run) and ARNs carry the account `123456789012`.
    pub fn new(sim: Arc<Sim>, nodegroup_kind: &'static str) -> FakeEks {
        FakeEks { sim: Some(sim), nodegroup_kind, state: Arc::default() }
    }

    /// An untimed account set up by `f`. Its ids are fixed (`sg-nodes`, `lt-1`, `k1`, ...) and
    /// ARNs carry the account `1`.
    pub fn with(f: impl FnOnce(&mut State)) -> FakeEks {
        let fake = FakeEks::default();
        f(&mut fake.state());
        fake
    }

    /// The account, to set up or look at.
    pub fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap()
    }

    /// Every call recorded so far (see [`State::calls`]).
    pub fn calls(&self) -> Vec<String> {
        self.state().calls.clone()
    }

    /// The recorded calls that are writes (neither Describe, List, Get nor Find).
    pub fn writes(&self) -> Vec<String> {
        self.calls()
            .into_iter()
            .filter(|c| {
                !c.starts_with("Describe") && !c.starts_with("List") && !c.starts_with("Get") && !c.starts_with("Find")
            })
            .collect()
    }

    fn log(&self, call: impl Into<String>) {
        self.state().calls.push(call.into());
    }

    /// A read (or any call that changes no resource): one API round trip when timed.
    async fn read(&self) {
        if let Some(sim) = &self.sim {
            sim.read().await;
        }
    }

    /// A write to a control-plane object: one `cheap_object` duration when timed.
    async fn write(&self) {
        if let Some(sim) = &self.sim {
            sim.write().await;
        }
    }

    /// When a resource of `kind` made now is ready (sampled under `kind:label`, `kind` without a
    /// label); `None` untimed: at once.
    fn ready_at(&self, kind: &str, label: &str) -> Option<Instant> {
        self.sim.as_ref().map(|sim| sim.ready_at_for(kind, label))
    }

    /// A fresh id: the simulation's `prefix-<n>` when timed, `fixed` untimed.
    fn id(&self, prefix: &str, fixed: impl FnOnce() -> String) -> String {
        self.sim.as_ref().map_or_else(fixed, |sim| sim.id(prefix))
    }

    /// The account id in ARNs.
    fn account(&self) -> &'static str {
        if self.sim.is_some() { SIM_ACCOUNT } else { TEST_ACCOUNT }
    }
}

#[async_trait]
impl LogsApi for FakeEks {
    async fn describe_log_group(&self, name: String) -> Result<Option<LogGroupInfo>, AwsError> {
        self.read().await;
        Ok(self.state().log_group.clone().filter(|g| g.name == name))
    }

    async fn create_log_group(&self, name: String, tags: Tags) -> Result<(), AwsError> {
        self.write().await;
        let mut s = self.state();
        s.calls.push(format!("CreateLogGroup({name})"));
        if let Some(tags) = s.log_group_race.take() {
            s.log_group = Some(LogGroupInfo { name: name.clone(), retention_days: None, tags });
        }
        if s.log_group.is_some() {
            return Err(AwsError::new("CreateLogGroup", "ResourceAlreadyExistsException", "exists"));
        }
        s.log_group = Some(LogGroupInfo { name, retention_days: None, tags });
        Ok(())
    }

    async fn put_log_retention(&self, name: String, days: i32) -> Result<(), AwsError> {
        self.write().await;
        let mut s = self.state();
        s.calls.push(format!("PutRetentionPolicy({days})"));
        let group = s.log_group.as_mut().filter(|g| g.name == name);
        group.ok_or_else(|| not_found("PutRetentionPolicy"))?.retention_days = Some(days);
        Ok(())
    }

    async fn delete_log_group(&self, name: String) -> Result<(), AwsError> {
        self.write().await;
        let mut s = self.state();
        s.calls.push(format!("DeleteLogGroup({name})"));
        s.log_group.take_if(|g| g.name == name).ok_or_else(|| not_found("DeleteLogGroup"))?;
        if s.log_group_flushes > 0 && s.cluster.is_none() {
            // EKS writes the logs it still held: CreateLogGroup without tags or retention.
            s.log_group_flushes -= 1;
            s.log_group = Some(LogGroupInfo { name, retention_days: None, tags: Tags::new() });
        }
        Ok(())
    }

    async fn tag_log_group(&self, name: String, tags: Tags) -> Result<(), AwsError> {
        self.write().await;
        let mut s = self.state();
        s.calls.push(format!("TagLogGroup({name})"));
        let group = s.log_group.as_mut().filter(|g| g.name == name);
        group.ok_or_else(|| not_found("TagLogGroup"))?.tags.extend(tags);
        Ok(())
    }
}

#[async_trait]
impl RolesApi for FakeEks {
    async fn get_role(&self, name: String) -> Result<Option<RoleInfo>, AwsError> {
        self.read().await;
        Ok(self.state().roles.get(&name).cloned())
    }

    /// A timed role is usable by EKS only after its sampled IAM propagation delay.
    async fn create_role(&self, name: String, trust: String, tags: Tags) -> Result<RoleArn, AwsError> {
        self.write().await;
        let arn = RoleArn::new(format!("arn:aws:iam::{}:role/{name}", self.account()));
        let usable = self.ready_at("iam_propagation", &name);
        let mut s = self.state();
        s.calls.push(format!("CreateRole({name})"));
        if let Some(usable) = usable {
            s.role_usable_at.insert(arn.to_string(), usable);
        }
        s.roles.insert(name.clone(), RoleInfo { name, arn: arn.clone(), trust, attached: Vec::new(), tags });
        Ok(arn)
    }

    async fn update_trust(&self, name: String, trust: String) -> Result<(), AwsError> {
        self.write().await;
        self.log(format!("UpdateAssumeRolePolicy({name})"));
        self.state().roles.get_mut(&name).ok_or_else(|| not_found("UpdateAssumeRolePolicy"))?.trust = trust;
        Ok(())
    }

    async fn tag_role(&self, name: String, tags: Tags) -> Result<(), AwsError> {
        self.write().await;
        self.log(format!("TagRole({name})"));
        self.state().roles.get_mut(&name).ok_or_else(|| not_found("TagRole"))?.tags.extend(tags);
        Ok(())
    }

    async fn attach_policy(&self, role: String, arn: Arn) -> Result<(), AwsError> {
        self.write().await;
        let mut s = self.state();
        s.calls.push("AttachRolePolicy".into());
        s.roles.get_mut(&role).ok_or_else(|| not_found("AttachRolePolicy"))?.attached.push(arn.into_inner());
        Ok(())
    }

    async fn detach_policy(&self, role: String, arn: Arn) -> Result<(), AwsError> {
        self.write().await;
        let mut s = self.state();
        s.calls.push("DetachRolePolicy".into());
        s.roles.get_mut(&role).ok_or_else(|| not_found("DetachRolePolicy"))?.attached.retain(|a| a != arn.as_str());
        Ok(())
    }

    async fn delete_role(&self, name: String) -> Result<(), AwsError> {
        self.write().await;
        let mut s = self.state();
        s.calls.push(format!("DeleteRole({name})"));
        if s.roles.get(&name).is_some_and(|r| !r.attached.is_empty()) {
            return Err(AwsError::new("DeleteRole", "DeleteConflict", "policies attached"));
        }
        s.roles.remove(&name).map(|_| ()).ok_or_else(|| not_found("DeleteRole"))
    }
}

#[async_trait]
impl KeysApi for FakeEks {
    async fn find_key(&self, alias: String) -> Result<Option<KeyInfo>, AwsError> {
        self.read().await;
        let mut s = self.state();
        let Some((a, id)) = s.key_alias.clone() else { return Ok(None) };
        Ok(if a == format!("alias/{alias}") { s.key_with_id(&id).cloned() } else { None })
    }

    /// As the SDK adapter ([`SdkEks`](crate::SdkEks)): CreateKey, EnableKeyRotation and
    /// CreateAlias, three writes one after the other.
    async fn create_key(&self, alias: String, _d: String, tags: Tags) -> Result<KeyInfo, AwsError> {
        for _ in 0..3 {
            self.write().await;
        }
        let n = self.state().keys.len() + 1;
        let key_id = self.id("key", || format!("k{n}"));
        let mut s = self.state();
        s.calls.push("CreateKey".into());
        let k = KeyInfo {
            arn: KmsKeyArn::new(format!("arn:aws:kms:us-west-2:{}:key/{key_id}", self.account())),
            key_id: key_id.clone(),
            state: "Enabled".into(),
            tags,
        };
        s.keys.push(k.clone());
        s.alias(&alias, &key_id)?;
        Ok(k)
    }

    async fn find_keys_by_tags(&self, tags: Tags) -> Result<Vec<KeyInfo>, AwsError> {
        self.read().await;
        let s = self.state();
        Ok(s.keys.iter().filter(|k| tags.iter().all(|(t, v)| k.tags.get(t) == Some(v))).cloned().collect())
    }

    async fn create_alias(&self, alias: String, key_id: String) -> Result<(), AwsError> {
        self.write().await;
        self.log("CreateAlias");
        self.state().alias(&alias, &key_id)
    }

    async fn restore_key(&self, id: String) -> Result<(), AwsError> {
        self.write().await;
        let mut s = self.state();
        s.calls.push("CancelKeyDeletion".into());
        s.key_with_id(&id).ok_or_else(|| not_found("CancelKeyDeletion"))?.state = "Enabled".into();
        Ok(())
    }

    async fn tag_key(&self, id: String, tags: Tags) -> Result<(), AwsError> {
        self.write().await;
        self.log("TagKey");
        self.state().key_with_id(&id).ok_or_else(|| not_found("TagResource"))?.tags.extend(tags);
        Ok(())
    }

    /// As the SDK adapter: the alias is deleted with it (when named). KMS alone would keep the
    /// alias through the waiting period and delete it only with the key (KMS API reference,
    /// ScheduleKeyDeletion: "After the waiting period ends, KMS deletes the KMS key ... including
    /// all aliases that refer to it"); our adapter calls DeleteAlias first, so a re-apply names a
    /// new key.
    async fn schedule_key_deletion(&self, alias: String, id: String, days: i32) -> Result<(), AwsError> {
        self.write().await;
        let mut s = self.state();
        s.calls.push(format!("ScheduleKeyDeletion({days})"));
        let alias = format!("alias/{alias}");
        s.key_alias.take_if(|(a, _)| *a == alias);
        s.key_with_id(&id).ok_or_else(|| not_found("ScheduleKeyDeletion"))?.state = "PendingDeletion".into();
        Ok(())
    }
}
