//! The in-memory fake of the EKS tier's AWS APIs.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Mutex;

use async_trait::async_trait;
use dify_stack_core::{AwsError, Tags};

use super::*;

mod cluster;

#[derive(Default)]
pub(super) struct State {
    pub(super) roles: BTreeMap<String, RoleInfo>,
    pub(super) key: Option<KeyInfo>,
    /// The key's alias exists (CreateKey and CreateAlias are two calls).
    pub(super) key_aliased: bool,
    pub(super) sg: Option<SecurityGroupInfo>,
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

pub(super) fn not_found(op: &'static str) -> AwsError {
    AwsError::new(op, "ResourceNotFoundException", "not found")
}

#[async_trait]
impl LogsApi for FakeEks {
    async fn describe_log_group(&self, _name: String) -> Result<Option<LogGroupInfo>, AwsError> {
        Ok(self.0.lock().unwrap().log_group.clone())
    }

    async fn create_log_group(&self, name: String, tags: Tags) -> Result<(), AwsError> {
        let mut s = self.0.lock().unwrap();
        s.calls.push(format!("CreateLogGroup({name})"));
        if s.log_group.is_some() {
            return Err(AwsError::new("CreateLogGroup", "ResourceAlreadyExistsException", "exists"));
        }
        s.log_group = Some(LogGroupInfo { name, retention_days: None, tags });
        Ok(())
    }

    async fn put_log_retention(&self, _name: String, days: i32) -> Result<(), AwsError> {
        let mut s = self.0.lock().unwrap();
        s.calls.push(format!("PutRetentionPolicy({days})"));
        s.log_group.as_mut().ok_or_else(|| not_found("PutRetentionPolicy"))?.retention_days = Some(days);
        Ok(())
    }

    async fn delete_log_group(&self, name: String) -> Result<(), AwsError> {
        let mut s = self.0.lock().unwrap();
        s.calls.push(format!("DeleteLogGroup({name})"));
        s.log_group.take().map(|_| ()).ok_or_else(|| not_found("DeleteLogGroup"))
    }
}

#[async_trait]
impl RolesApi for FakeEks {
    async fn get_role(&self, name: String) -> Result<Option<RoleInfo>, AwsError> {
        Ok(self.0.lock().unwrap().roles.get(&name).cloned())
    }

    async fn create_role(&self, name: String, trust: String, tags: Tags) -> Result<String, AwsError> {
        let mut s = self.0.lock().unwrap();
        s.calls.push(format!("CreateRole({name})"));
        let arn = format!("arn:aws:iam::1:role/{name}");
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

    async fn attach_policy(&self, role: String, arn: String) -> Result<(), AwsError> {
        let mut s = self.0.lock().unwrap();
        s.calls.push("AttachRolePolicy".into());
        s.roles.get_mut(&role).ok_or_else(|| not_found("AttachRolePolicy"))?.attached.push(arn);
        Ok(())
    }

    async fn detach_policy(&self, role: String, arn: String) -> Result<(), AwsError> {
        let mut s = self.0.lock().unwrap();
        s.calls.push("DetachRolePolicy".into());
        s.roles.get_mut(&role).ok_or_else(|| not_found("DetachRolePolicy"))?.attached.retain(|a| *a != arn);
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
    async fn find_key(&self, _alias: String) -> Result<Option<KeyInfo>, AwsError> {
        let s = self.0.lock().unwrap();
        Ok(s.key.clone().filter(|_| s.key_aliased))
    }

    async fn create_key(&self, _alias: String, _d: String, tags: Tags) -> Result<KeyInfo, AwsError> {
        let mut s = self.0.lock().unwrap();
        s.calls.push("CreateKey".into());
        let k = KeyInfo {
            key_id: "k1".into(),
            arn: "arn:aws:kms:us-west-2:1:key/k1".into(),
            state: "Enabled".into(),
            tags,
        };
        s.key = Some(k.clone());
        s.key_aliased = true;
        Ok(k)
    }

    async fn find_keys_by_tags(&self, _tags: Tags) -> Result<Vec<KeyInfo>, AwsError> {
        Ok(self.0.lock().unwrap().key.iter().cloned().collect())
    }

    async fn create_alias(&self, _alias: String, _key_id: String) -> Result<(), AwsError> {
        self.log("CreateAlias");
        self.0.lock().unwrap().key_aliased = true;
        Ok(())
    }

    async fn restore_key(&self, _id: String) -> Result<(), AwsError> {
        let mut s = self.0.lock().unwrap();
        s.calls.push("CancelKeyDeletion".into());
        s.key.as_mut().ok_or_else(|| not_found("CancelKeyDeletion"))?.state = "Enabled".into();
        Ok(())
    }

    async fn tag_key(&self, _id: String, tags: Tags) -> Result<(), AwsError> {
        self.log("TagKey");
        self.0.lock().unwrap().key.as_mut().ok_or_else(|| not_found("TagResource"))?.tags.extend(tags);
        Ok(())
    }

    async fn schedule_key_deletion(&self, _a: String, _id: String, days: i32) -> Result<(), AwsError> {
        let mut s = self.0.lock().unwrap();
        s.calls.push(format!("ScheduleKeyDeletion({days})"));
        s.key.as_mut().ok_or_else(|| not_found("ScheduleKeyDeletion"))?.state = "PendingDeletion".into();
        Ok(())
    }
}

#[async_trait]
impl Ec2Api for FakeEks {
    async fn find_security_group(&self, _v: String, _n: String) -> Result<Option<SecurityGroupInfo>, AwsError> {
        Ok(self.0.lock().unwrap().sg.clone())
    }

    async fn create_security_group(
        &self,
        _v: String,
        name: String,
        _d: String,
        tags: Tags,
    ) -> Result<String, AwsError> {
        let mut s = self.0.lock().unwrap();
        s.calls.push("CreateSecurityGroup".into());
        s.sg = Some(SecurityGroupInfo { id: "sg-nodes".into(), name, tags });
        Ok("sg-nodes".into())
    }

    async fn delete_security_group(&self, _id: String) -> Result<(), AwsError> {
        let mut s = self.0.lock().unwrap();
        s.calls.push("DeleteSecurityGroup".into());
        s.sg.take().map(|_| ()).ok_or_else(|| not_found("DeleteSecurityGroup"))
    }

    async fn find_launch_template(&self, _n: String) -> Result<Option<LaunchTemplateInfo>, AwsError> {
        Ok(self.0.lock().unwrap().lt.clone())
    }

    async fn create_launch_template(
        &self,
        name: String,
        data: LaunchTemplateData,
        tags: Tags,
    ) -> Result<LaunchTemplateInfo, AwsError> {
        let mut s = self.0.lock().unwrap();
        s.calls.push("CreateLaunchTemplate".into());
        let lt = LaunchTemplateInfo { id: "lt-1".into(), name, latest_version: 1, data, tags };
        s.lt = Some(lt.clone());
        Ok(lt)
    }

    async fn update_launch_template(&self, _id: String, data: LaunchTemplateData) -> Result<i64, AwsError> {
        let mut s = self.0.lock().unwrap();
        s.calls.push("CreateLaunchTemplateVersion".into());
        let lt = s.lt.as_mut().ok_or_else(|| not_found("CreateLaunchTemplateVersion"))?;
        lt.latest_version += 1;
        lt.data = data;
        Ok(lt.latest_version)
    }

    async fn delete_launch_template(&self, _id: String) -> Result<(), AwsError> {
        let mut s = self.0.lock().unwrap();
        s.calls.push("DeleteLaunchTemplate".into());
        s.lt.take().map(|_| ()).ok_or_else(|| not_found("DeleteLaunchTemplate"))
    }
}
