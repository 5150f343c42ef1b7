//! The EKS tier's EKS, CloudWatch Logs, IAM, KMS and EC2 calls, in memory. The cluster, node
//! group and add-ons are CREATING until their sampled durations have passed. An add-on whose
//! pods run as a Deployment (everything but the DaemonSet add-ons `vpc-cni`, `kube-proxy` and
//! `eks-pod-identity-agent`) cannot become ACTIVE before the node group has nodes: its ready time
//! is the later of its own and the node group's (an assumption: EKS reports such an add-on
//! CREATING or DEGRADED while its pods are pending).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use dify_stack::core::ids::{Arn, ClusterName, KmsKeyArn, RoleArn, SecurityGroupId, SubnetId, VpcId};
use dify_stack::core::{AwsError, Tags};
use dify_stack::eks::client::*;
use tokio::time::Instant;

use super::{Sim, has_tags, ready, unmodelled};

const DAEMONSET_ADDONS: [&str; 3] = ["vpc-cni", "kube-proxy", "eks-pod-identity-agent"];

#[derive(Default)]
struct State {
    roles: BTreeMap<String, RoleInfo>,
    keys: Vec<(Option<String>, KeyInfo)>,
    sgs: Vec<(String, SecurityGroupInfo)>,
    lts: BTreeMap<String, LaunchTemplateInfo>,
    logs: BTreeMap<String, LogGroupInfo>,
    cluster: Option<(ClusterInfo, Instant)>,
    nodegroup: Option<(NodegroupInfo, Instant)>,
    addons: BTreeMap<String, (AddonInfo, Instant)>,
    access: BTreeMap<String, Vec<String>>,
    /// When each role (by ARN) can be assumed by EKS: IAM is eventually consistent.
    usable: BTreeMap<String, Instant>,
}

impl FakeEks {
    /// EKS's refusal of a role IAM has not propagated yet (the message EKS gives, which the
    /// tier retries on: `AwsError::is_iam_propagation`).
    fn refused_role(&self, op: &'static str, role: &str) -> Result<(), AwsError> {
        match self.state.lock().unwrap().usable.get(role) {
            Some(at) if Instant::now() < *at => Err(AwsError::new(
                op,
                "InvalidParameterException",
                format!(
                    "Role with arn: {role}, could not be assumed because it does not exist or the trusted entity is not correct"
                ),
            )),
            _ => Ok(()),
        }
    }
}

/// The fake; clones share one account (the node security group and the EKS node use one each).
#[derive(Clone)]
pub(crate) struct FakeEks {
    sim: Arc<Sim>,
    nodegroup_kind: &'static str,
    state: Arc<Mutex<State>>,
}

impl FakeEks {
    /// An empty account; node groups take `nodegroup_kind` (`eks_nodegroup_test` or `_prod`).
    pub(crate) fn new(sim: Arc<Sim>, nodegroup_kind: &'static str) -> FakeEks {
        FakeEks { sim, nodegroup_kind, state: Arc::new(Mutex::new(State::default())) }
    }
}

fn status(at: Instant) -> Status {
    if ready(at) { Status::Active } else { Status::Creating }
}

#[async_trait]
impl ClusterApi for FakeEks {
    async fn describe_cluster(&self, name: ClusterName) -> Result<Option<ClusterInfo>, AwsError> {
        self.sim.read().await;
        let s = self.state.lock().unwrap();
        Ok(s.cluster.as_ref().filter(|(c, _)| c.name == name.as_str()).map(|(c, at)| {
            let mut c = c.clone();
            c.status = status(*at);
            if c.status == Status::Active {
                c.endpoint = Some(format!("https://{}.gr7.sim.eks.amazonaws.com", c.name));
                c.ca_data = Some("LS0tLS1CRUdJTg==".to_owned());
                c.oidc_issuer = Some(format!("https://oidc.eks.sim.amazonaws.com/id/{}", c.name.to_uppercase()));
                c.cluster_security_group_id = Some(SecurityGroupId::new(format!("sg-eks-{}", c.name)));
            }
            c
        }))
    }
    async fn create_cluster(&self, create: ClusterCreate) -> Result<ClusterInfo, AwsError> {
        self.sim.write().await;
        self.refused_role("CreateCluster", create.role_arn.as_str())?;
        let c = ClusterInfo {
            name: create.name.to_string(),
            arn: format!("arn:aws:eks:us-west-2:123456789012:cluster/{}", create.name),
            status: Status::Creating,
            version: create.version,
            subnet_ids: create.subnet_ids,
            endpoint_private: true,
            endpoint_public: !create.public_access_cidrs.is_empty(),
            public_access_cidrs: create.public_access_cidrs,
            enabled_logs: create.log_types.into_iter().collect::<BTreeSet<_>>(),
            secrets_key_arn: Some(create.key_arn),
            authentication_mode: Some("API".to_owned()),
            role_arn: create.role_arn.into_inner(),
            tags: create.tags,
            ..Default::default()
        };
        let at = self.sim.ready_at("eks_cluster");
        self.state.lock().unwrap().cluster = Some((c.clone(), at));
        Ok(c)
    }
    async fn update_cluster_subnets(
        &self,
        _: ClusterName,
        _: Vec<SubnetId>,
        _: Vec<SecurityGroupId>,
    ) -> Result<Option<String>, AwsError> {
        unmodelled("UpdateClusterConfig")
    }
    async fn update_cluster_access(&self, _: ClusterName, _: Vec<String>) -> Result<Option<String>, AwsError> {
        unmodelled("UpdateClusterConfig")
    }
    async fn update_cluster_logging(
        &self,
        _: ClusterName,
        _: Vec<String>,
        _: Vec<String>,
    ) -> Result<Option<String>, AwsError> {
        unmodelled("UpdateClusterConfig")
    }
    async fn update_cluster_version(&self, _: ClusterName, _: String) -> Result<Option<String>, AwsError> {
        unmodelled("UpdateClusterVersion")
    }
    async fn update_cluster_support(&self, _: ClusterName, _: String) -> Result<Option<String>, AwsError> {
        unmodelled("UpdateClusterConfig")
    }
    async fn upgrade_insights(&self, _: ClusterName) -> Result<Vec<Insight>, AwsError> {
        self.sim.read().await;
        Ok(Vec::new())
    }
    async fn describe_update(&self, _: ClusterName, _: String) -> Result<Option<UpdateInfo>, AwsError> {
        unmodelled("DescribeUpdate")
    }
    async fn tag_resource(&self, _arn: Arn, _tags: Tags) -> Result<(), AwsError> {
        self.sim.write().await;
        Ok(())
    }
    async fn delete_cluster(&self, _: ClusterName) -> Result<(), AwsError> {
        unmodelled("DeleteCluster")
    }
    async fn list_nodegroups(&self, _cluster: ClusterName) -> Result<Vec<String>, AwsError> {
        self.sim.read().await;
        Ok(self.state.lock().unwrap().nodegroup.iter().map(|(n, _)| n.name.clone()).collect())
    }
    async fn describe_nodegroup(&self, _cluster: ClusterName, name: String) -> Result<Option<NodegroupInfo>, AwsError> {
        self.sim.read().await;
        let s = self.state.lock().unwrap();
        Ok(s.nodegroup
            .as_ref()
            .filter(|(n, _)| n.name == name)
            .map(|(n, at)| NodegroupInfo { status: status(*at), ..n.clone() }))
    }
    async fn create_nodegroup(&self, c: NodegroupCreate) -> Result<NodegroupInfo, AwsError> {
        self.sim.write().await;
        self.refused_role("CreateNodegroup", c.node_role.as_str())?;
        let n = NodegroupInfo {
            arn: format!("arn:aws:eks:us-west-2:123456789012:nodegroup/{}/{}", c.cluster, c.name),
            name: c.name,
            status: Status::Creating,
            version: Some(c.version),
            ami_type: c.ami_type,
            instance_types: c.instance_types,
            min: c.min,
            max: c.max,
            desired: c.desired,
            subnet_ids: c.subnet_ids,
            labels: c.labels,
            launch_template: Some(c.launch_template),
            node_role: c.node_role.into_inner(),
            issues: Vec::new(),
            tags: c.tags,
        };
        let at = self.sim.ready_at(self.nodegroup_kind);
        self.state.lock().unwrap().nodegroup = Some((n.clone(), at));
        Ok(n)
    }
    async fn update_nodegroup_config(&self, _: NodegroupConfigUpdate) -> Result<(), AwsError> {
        unmodelled("UpdateNodegroupConfig")
    }
    async fn update_nodegroup_version(&self, _: NodegroupVersionUpdate) -> Result<(), AwsError> {
        unmodelled("UpdateNodegroupVersion")
    }
    async fn delete_nodegroup(&self, _: ClusterName, _: String) -> Result<(), AwsError> {
        unmodelled("DeleteNodegroup")
    }
    async fn list_addons(&self, _cluster: ClusterName) -> Result<Vec<String>, AwsError> {
        self.sim.read().await;
        Ok(self.state.lock().unwrap().addons.keys().cloned().collect())
    }
    async fn describe_addon(&self, _cluster: ClusterName, name: String) -> Result<Option<AddonInfo>, AwsError> {
        self.sim.read().await;
        let s = self.state.lock().unwrap();
        // Pods need nodes: not ready before the node group is (nor while there is none).
        let nodes = s.nodegroup.as_ref().map(|(_, at)| *at);
        Ok(s.addons.get(&name).map(|(a, own)| {
            let at = if DAEMONSET_ADDONS.contains(&name.as_str()) { Some(*own) } else { nodes.map(|n| n.max(*own)) };
            AddonInfo { status: at.map_or(Status::Creating, status), ..a.clone() }
        }))
    }
    async fn addon_versions(&self, name: String, k8s: String) -> Result<AddonVersions, AwsError> {
        self.sim.read().await;
        let v = format!("v-{name}-{k8s}-eksbuild.1");
        Ok(AddonVersions { default: Some(v.clone()), compatible: vec![v] })
    }
    async fn create_addon(
        &self,
        _cluster: ClusterName,
        name: String,
        version: String,
        tags: Tags,
        role: Option<AddonRole>,
    ) -> Result<(), AwsError> {
        self.sim.write().await;
        let at = self.sim.ready_at_for("eks_addon", &name);
        let mut s = self.state.lock().unwrap();
        let pod_identity_associations = role.map(|r| vec![r.role_arn.into_inner()]).unwrap_or_default();
        let a = AddonInfo { name: name.clone(), version, status: Status::Creating, tags, pod_identity_associations };
        s.addons.insert(name, (a, at));
        Ok(())
    }
    async fn update_addon(&self, _: ClusterName, _: String, _: String, _: Option<AddonRole>) -> Result<(), AwsError> {
        unmodelled("UpdateAddon")
    }
    async fn delete_addon(&self, _: ClusterName, _: String) -> Result<(), AwsError> {
        unmodelled("DeleteAddon")
    }
    async fn list_access_entries(&self, _cluster: ClusterName) -> Result<Vec<String>, AwsError> {
        self.sim.read().await;
        Ok(self.state.lock().unwrap().access.keys().cloned().collect())
    }
    async fn list_access_policies(&self, _cluster: ClusterName, principal: Arn) -> Result<Vec<String>, AwsError> {
        self.sim.read().await;
        Ok(self.state.lock().unwrap().access.get(principal.as_str()).cloned().unwrap_or_default())
    }
    async fn create_access_entry(&self, _cluster: ClusterName, principal: Arn, _tags: Tags) -> Result<(), AwsError> {
        self.sim.write().await;
        self.state.lock().unwrap().access.entry(principal.into_inner()).or_default();
        Ok(())
    }
    async fn associate_access_policy(
        &self,
        _cluster: ClusterName,
        principal: Arn,
        policy: Arn,
    ) -> Result<(), AwsError> {
        self.sim.write().await;
        self.state.lock().unwrap().access.entry(principal.into_inner()).or_default().push(policy.into_inner());
        Ok(())
    }
    async fn delete_access_entry(&self, _: ClusterName, _: Arn) -> Result<(), AwsError> {
        unmodelled("DeleteAccessEntry")
    }
}

#[async_trait]
impl LogsApi for FakeEks {
    async fn describe_log_group(&self, name: String) -> Result<Option<LogGroupInfo>, AwsError> {
        self.sim.read().await;
        Ok(self.state.lock().unwrap().logs.get(&name).cloned())
    }
    async fn create_log_group(&self, name: String, tags: Tags) -> Result<(), AwsError> {
        self.sim.write().await;
        self.state.lock().unwrap().logs.insert(name.clone(), LogGroupInfo { name, retention_days: None, tags });
        Ok(())
    }
    async fn put_log_retention(&self, name: String, days: i32) -> Result<(), AwsError> {
        self.sim.write().await;
        if let Some(g) = self.state.lock().unwrap().logs.get_mut(&name) {
            g.retention_days = Some(days);
        }
        Ok(())
    }
    async fn delete_log_group(&self, _: String) -> Result<(), AwsError> {
        unmodelled("DeleteLogGroup")
    }
}

#[async_trait]
impl RolesApi for FakeEks {
    async fn get_role(&self, name: String) -> Result<Option<RoleInfo>, AwsError> {
        self.sim.read().await;
        Ok(self.state.lock().unwrap().roles.get(&name).cloned())
    }
    async fn create_role(&self, name: String, trust: String, tags: Tags) -> Result<RoleArn, AwsError> {
        self.sim.write().await;
        let arn = RoleArn::new(format!("arn:aws:iam::123456789012:role/{name}"));
        let r = RoleInfo { name: name.clone(), arn: arn.clone(), trust, attached: Vec::new(), tags };
        let usable = self.sim.ready_at_for("iam_propagation", &name);
        let mut state = self.state.lock().unwrap();
        state.usable.insert(arn.to_string(), usable);
        state.roles.insert(name, r);
        Ok(arn)
    }
    async fn update_trust(&self, _: String, _: String) -> Result<(), AwsError> {
        unmodelled("UpdateAssumeRolePolicy")
    }
    async fn tag_role(&self, name: String, tags: Tags) -> Result<(), AwsError> {
        self.sim.write().await;
        if let Some(r) = self.state.lock().unwrap().roles.get_mut(&name) {
            r.tags.extend(tags);
        }
        Ok(())
    }
    async fn attach_policy(&self, role: String, policy_arn: Arn) -> Result<(), AwsError> {
        self.sim.write().await;
        if let Some(r) = self.state.lock().unwrap().roles.get_mut(&role) {
            r.attached.push(policy_arn.into_inner());
        }
        Ok(())
    }
    async fn detach_policy(&self, _: String, _: Arn) -> Result<(), AwsError> {
        unmodelled("DetachRolePolicy")
    }
    async fn delete_role(&self, _: String) -> Result<(), AwsError> {
        unmodelled("DeleteRole")
    }
}

#[async_trait]
impl KeysApi for FakeEks {
    async fn find_key(&self, alias: String) -> Result<Option<KeyInfo>, AwsError> {
        self.sim.read().await;
        let s = self.state.lock().unwrap();
        Ok(s.keys.iter().find(|(a, _)| a.as_deref() == Some(alias.as_str())).map(|(_, k)| k.clone()))
    }
    async fn create_key(&self, _alias: String, _description: String, tags: Tags) -> Result<KeyInfo, AwsError> {
        self.sim.write().await;
        let key_id = self.sim.id("key");
        let k = KeyInfo {
            arn: KmsKeyArn::new(format!("arn:aws:kms:us-west-2:123456789012:key/{key_id}")),
            key_id,
            state: "Enabled".to_owned(),
            tags,
        };
        self.state.lock().unwrap().keys.push((None, k.clone()));
        Ok(k)
    }
    async fn find_keys_by_tags(&self, tags: Tags) -> Result<Vec<KeyInfo>, AwsError> {
        self.sim.read().await;
        let s = self.state.lock().unwrap();
        Ok(s.keys.iter().filter(|(_, k)| has_tags(&k.tags, &tags)).map(|(_, k)| k.clone()).collect())
    }
    async fn create_alias(&self, alias: String, key_id: String) -> Result<(), AwsError> {
        self.sim.write().await;
        let mut s = self.state.lock().unwrap();
        let (a, _) = s
            .keys
            .iter_mut()
            .find(|(_, k)| k.key_id == key_id)
            .ok_or_else(|| AwsError::new("CreateAlias", "NotFoundException", key_id.clone()))?;
        *a = Some(alias);
        Ok(())
    }
    async fn restore_key(&self, _: String) -> Result<(), AwsError> {
        unmodelled("CancelKeyDeletion")
    }
    async fn tag_key(&self, _: String, _: Tags) -> Result<(), AwsError> {
        self.sim.write().await;
        Ok(())
    }
    async fn schedule_key_deletion(&self, _: String, _: String, _: i32) -> Result<(), AwsError> {
        unmodelled("ScheduleKeyDeletion")
    }
}

#[async_trait]
impl Ec2Api for FakeEks {
    async fn find_security_group(&self, vpc_id: VpcId, name: String) -> Result<Option<SecurityGroupInfo>, AwsError> {
        self.sim.read().await;
        let s = self.state.lock().unwrap();
        Ok(s.sgs.iter().find(|(v, g)| v == vpc_id.as_str() && g.name == name).map(|(_, g)| g.clone()))
    }
    async fn create_security_group(
        &self,
        vpc_id: VpcId,
        name: String,
        _description: String,
        tags: Tags,
    ) -> Result<SecurityGroupId, AwsError> {
        self.sim.write().await;
        let id = SecurityGroupId::new(self.sim.id("sg"));
        self.state.lock().unwrap().sgs.push((vpc_id.into_inner(), SecurityGroupInfo { id: id.clone(), name, tags }));
        Ok(id)
    }
    async fn delete_security_group(&self, _: SecurityGroupId) -> Result<(), AwsError> {
        unmodelled("DeleteSecurityGroup")
    }
    async fn find_launch_template(&self, name: String) -> Result<Option<LaunchTemplateInfo>, AwsError> {
        self.sim.read().await;
        Ok(self.state.lock().unwrap().lts.get(&name).cloned())
    }
    async fn create_launch_template(
        &self,
        name: String,
        data: LaunchTemplateData,
        tags: Tags,
    ) -> Result<LaunchTemplateInfo, AwsError> {
        self.sim.write().await;
        let lt = LaunchTemplateInfo { id: self.sim.id("lt"), name: name.clone(), latest_version: 1, data, tags };
        self.state.lock().unwrap().lts.insert(name, lt.clone());
        Ok(lt)
    }
    async fn update_launch_template(&self, _: String, _: LaunchTemplateData) -> Result<i64, AwsError> {
        unmodelled("CreateLaunchTemplateVersion")
    }
    async fn delete_launch_template(&self, _: String) -> Result<(), AwsError> {
        unmodelled("DeleteLaunchTemplate")
    }
}
