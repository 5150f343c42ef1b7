//! The in-memory fake of the EKS tier's AWS APIs.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Mutex;

use async_trait::async_trait;
use dify_stack_core::ids::{Arn, KmsKeyArn, RoleArn, SecurityGroupId, VpcId};
use dify_stack_core::{AwsError, Tags};

use super::*;

mod cluster;

#[derive(Default)]
pub(super) struct State {
    pub(super) roles: BTreeMap<String, RoleInfo>,
    /// Every key ever created (one scheduled for deletion stays listed, as in KMS).
    pub(super) keys: Vec<KeyInfo>,
    /// The alias (`alias/<name>`) and the id of its key; CreateKey and CreateAlias are two calls.
    pub(super) key_alias: Option<(String, String)>,
    /// The node security group and its VPC.
    pub(super) sg: Option<(String, SecurityGroupInfo)>,
    pub(super) lt: Option<LaunchTemplateInfo>,
    pub(super) cluster: Option<ClusterInfo>,
    /// Statuses the next describes return before settling on ACTIVE.
    pub(super) cluster_script: VecDeque<&'static str>,
    pub(super) nodegroup: Option<NodegroupInfo>,
    pub(super) nodegroup_script: VecDeque<&'static str>,
    pub(super) addons: BTreeMap<String, AddonInfo>,
    pub(super) addon_script: VecDeque<&'static str>,
    pub(super) access: BTreeMap<String, Vec<String>>,
    pub(super) log_group: Option<LogGroupInfo>,
    /// CreateCluster answers "role could not be assumed" this many times first.
    pub(super) iam_rejections: u32,
    /// A stuck cluster: never leaves this status.
    pub(super) cluster_stuck: Option<&'static str>,
    pub(super) calls: Vec<String>,
    /// Every CreateCluster token, in order.
    pub(super) tokens: Vec<String>,
    /// Cluster updates by id, each with the DescribeUpdate polls left before it is Successful.
    pub(super) updates: BTreeMap<String, (UpdateInfo, u32)>,
    /// Add-ons UPDATING for this many more DescribeAddon calls.
    pub(super) addon_busy: BTreeMap<String, u32>,
    /// Add-on versions DescribeAddonVersions lists as compatible besides the default.
    pub(super) extra_compatible: Vec<String>,
    /// EBS volumes: an attached one (`in-use`) detaches after this many DescribeVolumes.
    pub(super) volumes: Vec<(VolumeInfo, u32)>,
    pub(super) snapshots: Vec<SnapshotInfo>,
    /// Network interfaces, each with its VPC.
    pub(super) enis: Vec<(String, NetworkInterfaceInfo)>,
    /// EC2 resources only `tagged_resources` sees (what destroy's last step may find).
    pub(super) tagged: Vec<TaggedResource>,
    /// A late log flush: the control-plane log group comes back (untagged, no retention) after
    /// a DeleteLogGroup made once no cluster exists, this many times.
    pub(super) log_group_flushes: u32,
    /// Someone makes the log group (with these tags) between observe and CreateLogGroup.
    pub(super) log_group_race: Option<Tags>,
    /// What ListInsights answers (upgrade-readiness findings).
    pub(super) insights: Vec<Insight>,
}

/// Every lookup matches on its key (names, ids, ARNs, VPC): a call with a wrong key finds
/// nothing, as on AWS, so a provisioner passing the wrong name fails a test.
impl State {
    pub(super) fn cluster_named(&mut self, name: impl AsRef<str>) -> Option<&mut ClusterInfo> {
        self.cluster.as_mut().filter(|c| c.name == name.as_ref())
    }
    /// Whether calls naming `cluster` reach the one cluster (or, before it exists, its
    /// sub-resources set up alone by a test).
    pub(super) fn on_cluster(&self, cluster: impl AsRef<str>) -> bool {
        self.cluster.as_ref().is_none_or(|c| c.name == cluster.as_ref())
    }
    pub(super) fn nodegroup_named(&mut self, cluster: impl AsRef<str>, name: &str) -> Option<&mut NodegroupInfo> {
        let on_cluster = self.on_cluster(cluster);
        self.nodegroup.as_mut().filter(|n| on_cluster && n.name == name)
    }
    /// Starts a cluster update: refused while another is in progress or the cluster is busy
    /// (ResourceInUseException "Cannot <type> because cluster <name> currently has update <id>
    /// in progress", aws-controllers-k8s community #1192). The update stays InProgress for one
    /// DescribeUpdate poll, the cluster UPDATING for one DescribeCluster.
    pub(super) fn start_update(&mut self, cluster: impl AsRef<str>, kind: &str) -> Result<String, AwsError> {
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

/// EKS refuses a `clientRequestToken` outside 33 to 126 characters with
/// InvalidParameterException (EKS API reference, CreateCluster/CreateNodegroup request
/// parameters; ansible community.aws #817).
pub(super) fn check_token(op: &'static str, token: &str) -> Result<(), AwsError> {
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

/// Clones share the state: a test keeps one to look at what the provisioner did.
#[derive(Default, Clone)]
pub(super) struct FakeEks(pub(super) std::sync::Arc<Mutex<State>>);

impl FakeEks {
    pub(super) fn with(f: impl FnOnce(&mut State)) -> FakeEks {
        let fake = FakeEks::default();
        f(&mut fake.0.lock().unwrap());
        fake
    }
    pub(super) fn log(&self, call: impl Into<String>) {
        self.0.lock().unwrap().calls.push(call.into());
    }
    pub(super) fn calls(&self) -> Vec<String> {
        self.0.lock().unwrap().calls.clone()
    }
    pub(super) fn writes(&self) -> Vec<String> {
        self.calls()
            .into_iter()
            .filter(|c| {
                !c.starts_with("Describe") && !c.starts_with("List") && !c.starts_with("Get") && !c.starts_with("Find")
            })
            .collect()
    }
}

pub(super) fn default_version(addon: &str, k8s: &str) -> String {
    format!("v-{addon}-{k8s}")
}

/// EKS's answer to an update of a node group or add-on that is busy (EKS API reference,
/// UpdateNodegroupConfig / UpdateNodegroupVersion / UpdateAddon errors: ResourceInUseException).
pub(super) fn in_use(op: &'static str, what: &str) -> AwsError {
    AwsError::new(op, "ResourceInUseException", format!("the {what} has an update in progress"))
}

pub(super) fn not_found(op: &'static str) -> AwsError {
    AwsError::new(op, "ResourceNotFoundException", "not found")
}

#[async_trait]
impl LogsApi for FakeEks {
    async fn describe_log_group(&self, name: String) -> Result<Option<LogGroupInfo>, AwsError> {
        Ok(self.0.lock().unwrap().log_group.clone().filter(|g| g.name == name))
    }

    async fn create_log_group(&self, name: String, tags: Tags) -> Result<(), AwsError> {
        let mut s = self.0.lock().unwrap();
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
        let mut s = self.0.lock().unwrap();
        s.calls.push(format!("PutRetentionPolicy({days})"));
        let group = s.log_group.as_mut().filter(|g| g.name == name);
        group.ok_or_else(|| not_found("PutRetentionPolicy"))?.retention_days = Some(days);
        Ok(())
    }

    async fn delete_log_group(&self, name: String) -> Result<(), AwsError> {
        let mut s = self.0.lock().unwrap();
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
        let mut s = self.0.lock().unwrap();
        s.calls.push(format!("TagLogGroup({name})"));
        let group = s.log_group.as_mut().filter(|g| g.name == name);
        group.ok_or_else(|| not_found("TagLogGroup"))?.tags.extend(tags);
        Ok(())
    }
}

#[async_trait]
impl RolesApi for FakeEks {
    async fn get_role(&self, name: String) -> Result<Option<RoleInfo>, AwsError> {
        Ok(self.0.lock().unwrap().roles.get(&name).cloned())
    }

    async fn create_role(&self, name: String, trust: String, tags: Tags) -> Result<RoleArn, AwsError> {
        let mut s = self.0.lock().unwrap();
        s.calls.push(format!("CreateRole({name})"));
        let arn = RoleArn::new(format!("arn:aws:iam::1:role/{name}"));
        s.roles.insert(name.clone(), RoleInfo { name, arn: arn.clone(), trust, attached: Vec::new(), tags });
        Ok(arn)
    }

    async fn update_trust(&self, name: String, trust: String) -> Result<(), AwsError> {
        self.log(format!("UpdateAssumeRolePolicy({name})"));
        self.0.lock().unwrap().roles.get_mut(&name).ok_or_else(|| not_found("UpdateAssumeRolePolicy"))?.trust = trust;
        Ok(())
    }

    async fn tag_role(&self, name: String, tags: Tags) -> Result<(), AwsError> {
        self.log(format!("TagRole({name})"));
        self.0.lock().unwrap().roles.get_mut(&name).ok_or_else(|| not_found("TagRole"))?.tags.extend(tags);
        Ok(())
    }

    async fn attach_policy(&self, role: String, arn: Arn) -> Result<(), AwsError> {
        let mut s = self.0.lock().unwrap();
        s.calls.push("AttachRolePolicy".into());
        s.roles.get_mut(&role).ok_or_else(|| not_found("AttachRolePolicy"))?.attached.push(arn.into_inner());
        Ok(())
    }

    async fn detach_policy(&self, role: String, arn: Arn) -> Result<(), AwsError> {
        let mut s = self.0.lock().unwrap();
        s.calls.push("DetachRolePolicy".into());
        s.roles.get_mut(&role).ok_or_else(|| not_found("DetachRolePolicy"))?.attached.retain(|a| a != arn.as_str());
        Ok(())
    }

    async fn delete_role(&self, name: String) -> Result<(), AwsError> {
        let mut s = self.0.lock().unwrap();
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
        let mut s = self.0.lock().unwrap();
        let Some((a, id)) = s.key_alias.clone() else { return Ok(None) };
        Ok(if a == format!("alias/{alias}") { s.key_with_id(&id).cloned() } else { None })
    }

    /// As the SDK adapter: CreateKey, then its alias.
    async fn create_key(&self, alias: String, _d: String, tags: Tags) -> Result<KeyInfo, AwsError> {
        let mut s = self.0.lock().unwrap();
        s.calls.push("CreateKey".into());
        let key_id = format!("k{}", s.keys.len() + 1);
        let k = KeyInfo {
            arn: KmsKeyArn::new(format!("arn:aws:kms:us-west-2:1:key/{key_id}")),
            key_id: key_id.clone(),
            state: "Enabled".into(),
            tags,
        };
        s.keys.push(k.clone());
        s.alias(&alias, &key_id)?;
        Ok(k)
    }

    async fn find_keys_by_tags(&self, tags: Tags) -> Result<Vec<KeyInfo>, AwsError> {
        let s = self.0.lock().unwrap();
        Ok(s.keys.iter().filter(|k| tags.iter().all(|(t, v)| k.tags.get(t) == Some(v))).cloned().collect())
    }

    async fn create_alias(&self, alias: String, key_id: String) -> Result<(), AwsError> {
        self.log("CreateAlias");
        self.0.lock().unwrap().alias(&alias, &key_id)
    }

    async fn restore_key(&self, id: String) -> Result<(), AwsError> {
        let mut s = self.0.lock().unwrap();
        s.calls.push("CancelKeyDeletion".into());
        s.key_with_id(&id).ok_or_else(|| not_found("CancelKeyDeletion"))?.state = "Enabled".into();
        Ok(())
    }

    async fn tag_key(&self, id: String, tags: Tags) -> Result<(), AwsError> {
        self.log("TagKey");
        self.0.lock().unwrap().key_with_id(&id).ok_or_else(|| not_found("TagResource"))?.tags.extend(tags);
        Ok(())
    }

    /// As the SDK adapter: the alias is deleted with it (when named). KMS alone would keep the
    /// alias through the waiting period and delete it only with the key (KMS API reference,
    /// ScheduleKeyDeletion: "After the waiting period ends, KMS deletes the KMS key ... including
    /// all aliases that refer to it"); our adapter calls DeleteAlias first, so a re-apply names a
    /// new key.
    async fn schedule_key_deletion(&self, alias: String, id: String, days: i32) -> Result<(), AwsError> {
        let mut s = self.0.lock().unwrap();
        s.calls.push(format!("ScheduleKeyDeletion({days})"));
        let alias = format!("alias/{alias}");
        s.key_alias.take_if(|(a, _)| *a == alias);
        s.key_with_id(&id).ok_or_else(|| not_found("ScheduleKeyDeletion"))?.state = "PendingDeletion".into();
        Ok(())
    }
}

#[async_trait]
impl Ec2Api for FakeEks {
    async fn find_security_group(&self, vpc: VpcId, name: String) -> Result<Option<SecurityGroupInfo>, AwsError> {
        let s = self.0.lock().unwrap();
        Ok(s.sg.as_ref().filter(|(v, g)| v == vpc.as_str() && g.name == name).map(|(_, g)| g.clone()))
    }

    async fn create_security_group(
        &self,
        vpc: VpcId,
        name: String,
        _d: String,
        tags: Tags,
    ) -> Result<SecurityGroupId, AwsError> {
        let mut s = self.0.lock().unwrap();
        s.calls.push("CreateSecurityGroup".into());
        if s.sg.as_ref().is_some_and(|(v, g)| v == vpc.as_str() && g.name == name) {
            return Err(AwsError::new("CreateSecurityGroup", "InvalidGroup.Duplicate", "exists"));
        }
        s.sg = Some((vpc.into_inner(), SecurityGroupInfo { id: "sg-nodes".into(), name, tags }));
        Ok("sg-nodes".into())
    }

    async fn delete_security_group(&self, id: SecurityGroupId) -> Result<(), AwsError> {
        let mut s = self.0.lock().unwrap();
        s.calls.push("DeleteSecurityGroup".into());
        s.sg.take_if(|(_, g)| g.id == id).map(|_| ()).ok_or_else(|| not_found("DeleteSecurityGroup"))
    }

    async fn find_launch_template(&self, name: String) -> Result<Option<LaunchTemplateInfo>, AwsError> {
        Ok(self.0.lock().unwrap().lt.clone().filter(|t| t.name == name))
    }

    async fn create_launch_template(
        &self,
        name: String,
        data: LaunchTemplateData,
        tags: Tags,
    ) -> Result<LaunchTemplateInfo, AwsError> {
        let mut s = self.0.lock().unwrap();
        s.calls.push("CreateLaunchTemplate".into());
        if s.lt.as_ref().is_some_and(|t| t.name == name) {
            return Err(AwsError::new(
                "CreateLaunchTemplate",
                "InvalidLaunchTemplateName.AlreadyExistsException",
                "exists",
            ));
        }
        let lt = LaunchTemplateInfo { id: "lt-1".into(), name, latest_version: 1, data, tags };
        s.lt = Some(lt.clone());
        Ok(lt)
    }

    async fn update_launch_template(&self, id: String, data: LaunchTemplateData) -> Result<i64, AwsError> {
        let mut s = self.0.lock().unwrap();
        s.calls.push("CreateLaunchTemplateVersion".into());
        let lt = s.lt.as_mut().filter(|t| t.id == id).ok_or_else(|| not_found("CreateLaunchTemplateVersion"))?;
        lt.latest_version += 1;
        lt.data = data;
        Ok(lt.latest_version)
    }

    async fn delete_launch_template(&self, id: String) -> Result<(), AwsError> {
        let mut s = self.0.lock().unwrap();
        s.calls.push("DeleteLaunchTemplate".into());
        s.lt.take_if(|t| t.id == id).map(|_| ()).ok_or_else(|| not_found("DeleteLaunchTemplate"))
    }

    /// An attached volume stays `in-use` while any node group exists, then detaches after its
    /// count of describes (EC2: a terminated instance's volumes detach on their own).
    async fn tagged_volumes(&self, key: String, value: String) -> Result<Vec<VolumeInfo>, AwsError> {
        let mut s = self.0.lock().unwrap();
        s.calls.push("DescribeVolumes".into());
        let nodes = s.nodegroup.is_some();
        for (v, polls) in &mut s.volumes {
            if v.state == "in-use" && !nodes {
                if *polls == 0 {
                    v.state = "available".into();
                    v.attached_to.clear();
                } else {
                    *polls -= 1;
                }
            }
        }
        Ok(s.volumes.iter().map(|(v, _)| v).filter(|v| v.tags.get(&key) == Some(&value)).cloned().collect())
    }

    /// DeleteVolume of an attached volume fails with VolumeInUse (EC2 API reference).
    async fn delete_volume(&self, id: String) -> Result<(), AwsError> {
        let mut s = self.0.lock().unwrap();
        s.calls.push(format!("DeleteVolume({id})"));
        let at = s.volumes.iter().position(|(v, _)| v.id == id).ok_or_else(|| not_found("DeleteVolume"))?;
        if s.volumes[at].0.state != "available" {
            return Err(AwsError::new("DeleteVolume", "VolumeInUse", format!("Volume {id} is currently attached")));
        }
        s.volumes.remove(at);
        Ok(())
    }

    async fn tagged_snapshots(&self, key: String, value: String) -> Result<Vec<SnapshotInfo>, AwsError> {
        let s = self.0.lock().unwrap();
        Ok(s.snapshots.iter().filter(|v| v.tags.get(&key) == Some(&value)).cloned().collect())
    }

    async fn delete_snapshot(&self, id: String) -> Result<(), AwsError> {
        let mut s = self.0.lock().unwrap();
        s.calls.push(format!("DeleteSnapshot({id})"));
        let at = s.snapshots.iter().position(|v| v.id == id).ok_or_else(|| not_found("DeleteSnapshot"))?;
        s.snapshots.remove(at);
        Ok(())
    }

    async fn vpc_network_interfaces(&self, vpc: VpcId) -> Result<Vec<NetworkInterfaceInfo>, AwsError> {
        let s = self.0.lock().unwrap();
        Ok(s.enis.iter().filter(|(v, _)| v == vpc.as_str()).map(|(_, e)| e.clone()).collect())
    }

    async fn delete_network_interface(&self, id: String) -> Result<(), AwsError> {
        let mut s = self.0.lock().unwrap();
        s.calls.push(format!("DeleteNetworkInterface({id})"));
        let at = s.enis.iter().position(|(_, e)| e.id == id).ok_or_else(|| not_found("DeleteNetworkInterface"))?;
        if s.enis[at].1.status != "available" {
            return Err(AwsError::new("DeleteNetworkInterface", "InvalidNetworkInterface.InUse", "in use"));
        }
        s.enis.remove(at);
        Ok(())
    }

    /// What the fake holds that carries one of `keys`, plus `tagged`.
    async fn tagged_resources(&self, keys: Vec<String>) -> Result<Vec<TaggedResource>, AwsError> {
        let s = self.0.lock().unwrap();
        let has = |t: &Tags| keys.iter().any(|k| t.contains_key(k));
        let r =
            |kind: &str, id: &str, tags: &Tags| TaggedResource { kind: kind.into(), id: id.into(), tags: tags.clone() };
        let mut out: Vec<TaggedResource> = s.tagged.iter().filter(|t| has(&t.tags)).cloned().collect();
        out.extend(s.volumes.iter().filter(|(v, _)| has(&v.tags)).map(|(v, _)| r("ec2:volume", &v.id, &v.tags)));
        out.extend(s.snapshots.iter().filter(|v| has(&v.tags)).map(|v| r("ec2:snapshot", &v.id, &v.tags)));
        out.extend(
            s.enis.iter().filter(|(_, e)| has(&e.tags)).map(|(_, e)| r("ec2:network-interface", &e.id, &e.tags)),
        );
        out.extend(
            s.sg.iter().filter(|(_, g)| has(&g.tags)).map(|(_, g)| r("ec2:security-group", g.id.as_str(), &g.tags)),
        );
        out.extend(s.lt.iter().filter(|t| has(&t.tags)).map(|t| r("ec2:launch-template", &t.id, &t.tags)));
        Ok(out)
    }
}
