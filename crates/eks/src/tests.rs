//! EKS tier against an in-memory fake of [`EksApi`] that follows real AWS behaviour where the
//! emulator cannot: resources pass through CREATING/UPDATING before ACTIVE, failures surface as
//! FAILED/CREATE_FAILED, version upgrades go one minor version at a time, a fresh role is
//! rejected until IAM propagates, add-on versions come from DescribeAddonVersions.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Mutex;
use std::time::Duration;

use async_trait::async_trait;
use dify_stack_core::ids::{SubnetId, VpcId};
use dify_stack_core::{Action, AwsError, Context, Environment, Provisioner, Tags, WaitPolicy};

use super::*;
use crate::client::*;
use crate::provisioner::names::request_token;
use crate::provisioner::token;
use crate::spec::*;

#[derive(Default)]
struct State {
    roles: BTreeMap<String, RoleInfo>,
    key: Option<KeyInfo>,
    sg: Option<SecurityGroupInfo>,
    lt: Option<LaunchTemplateInfo>,
    cluster: Option<ClusterInfo>,
    /// Statuses the next describes return before settling on ACTIVE.
    cluster_script: VecDeque<&'static str>,
    nodegroup: Option<NodegroupInfo>,
    nodegroup_script: VecDeque<&'static str>,
    addons: BTreeMap<String, AddonInfo>,
    addon_script: VecDeque<&'static str>,
    access: BTreeMap<String, Vec<String>>,
    log_group: Option<LogGroupInfo>,
    /// CreateCluster answers "role could not be assumed" this many times first.
    iam_rejections: u32,
    /// A stuck cluster: never leaves this status.
    cluster_stuck: Option<&'static str>,
    calls: Vec<String>,
    /// Every CreateCluster token, in order.
    tokens: Vec<String>,
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

#[derive(Default)]
struct FakeEks(Mutex<State>);

impl FakeEks {
    fn with(f: impl FnOnce(&mut State)) -> FakeEks {
        let fake = FakeEks::default();
        f(&mut fake.0.lock().unwrap());
        fake
    }
    fn log(&self, call: impl Into<String>) {
        self.0.lock().unwrap().calls.push(call.into());
    }
    fn calls(&self) -> Vec<String> {
        self.0.lock().unwrap().calls.clone()
    }
    fn writes(&self) -> Vec<String> {
        self.calls()
            .into_iter()
            .filter(|c| {
                !c.starts_with("Describe") && !c.starts_with("List") && !c.starts_with("Get") && !c.starts_with("Find")
            })
            .collect()
    }
}

fn default_version(addon: &str, k8s: &str) -> String {
    format!("v-{addon}-{k8s}")
}

fn not_found(op: &'static str) -> AwsError {
    AwsError::new(op, "ResourceNotFoundException", "not found")
}

#[async_trait]
impl ClusterApi for FakeEks {
    async fn describe_cluster(&self, _name: String) -> Result<Option<ClusterInfo>, AwsError> {
        let mut s = self.0.lock().unwrap();
        s.calls.push("DescribeCluster".into());
        let stuck = s.cluster_stuck;
        let next = s.cluster_script.pop_front();
        let Some(c) = s.cluster.as_mut() else { return Ok(None) };
        c.status = stuck.or(next).unwrap_or("ACTIVE").to_owned();
        if c.status == "GONE" {
            s.cluster = None;
            return Ok(None);
        }
        Ok(Some(c.clone()))
    }

    async fn create_cluster(&self, c: ClusterCreate) -> Result<ClusterInfo, AwsError> {
        let mut s = self.0.lock().unwrap();
        s.calls.push("CreateCluster".into());
        check_token("CreateCluster", &c.client_request_token)?;
        s.tokens.push(c.client_request_token.clone());
        if s.iam_rejections > 0 {
            s.iam_rejections -= 1;
            return Err(AwsError::new(
                "CreateCluster",
                "InvalidParameterException",
                "Role with arn: arn:aws:iam::1:role/x, could not be assumed because it does not exist or the trusted entity is not correct",
            ));
        }
        if s.cluster.is_some() {
            return Err(AwsError::new("CreateCluster", "ResourceInUseException", "exists"));
        }
        let info = ClusterInfo {
            name: c.name.clone(),
            arn: format!("arn:aws:eks:us-west-2:1:cluster/{}", c.name),
            status: "CREATING".into(),
            version: c.version,
            endpoint: Some("https://ABC.gr7.us-west-2.eks.amazonaws.com".into()),
            ca_data: Some("Q0E=".into()),
            oidc_issuer: Some("https://oidc.eks.us-west-2.amazonaws.com/id/ABC".into()),
            cluster_security_group_id: Some("sg-cluster".into()),
            subnet_ids: c.subnet_ids,
            endpoint_private: true,
            endpoint_public: !c.public_access_cidrs.is_empty(),
            public_access_cidrs: c.public_access_cidrs,
            enabled_logs: c.log_types.into_iter().collect(),
            secrets_key_arn: Some(c.key_arn),
            authentication_mode: Some("API_AND_CONFIG_MAP".into()),
            role_arn: c.role_arn,
            tags: c.tags,
            ..Default::default()
        };
        s.cluster = Some(info.clone());
        Ok(info)
    }

    async fn update_cluster_endpoint(
        &self,
        _n: String,
        subnets: Vec<String>,
        cidrs: Vec<String>,
    ) -> Result<(), AwsError> {
        let mut s = self.0.lock().unwrap();
        s.calls.push("UpdateClusterConfig(endpoint)".into());
        let c = s.cluster.as_mut().ok_or_else(|| not_found("UpdateClusterConfig"))?;
        c.subnet_ids = subnets;
        c.endpoint_public = !cidrs.is_empty();
        c.public_access_cidrs = cidrs;
        s.cluster_script.push_back("UPDATING");
        Ok(())
    }

    async fn update_cluster_logging(&self, _n: String, enabled: Vec<String>, _d: Vec<String>) -> Result<(), AwsError> {
        let mut s = self.0.lock().unwrap();
        s.calls.push("UpdateClusterConfig(logging)".into());
        s.cluster.as_mut().ok_or_else(|| not_found("UpdateClusterConfig"))?.enabled_logs =
            enabled.into_iter().collect();
        s.cluster_script.push_back("UPDATING");
        Ok(())
    }

    async fn update_cluster_version(&self, _n: String, version: String) -> Result<(), AwsError> {
        let mut s = self.0.lock().unwrap();
        s.calls.push(format!("UpdateClusterVersion({version})"));
        let c = s.cluster.as_mut().ok_or_else(|| not_found("UpdateClusterVersion"))?;
        let (hm, hn) = parse_version(&c.version).unwrap();
        let (wm, wn) = parse_version(&version).unwrap();
        // Real EKS: one minor version per update, never down.
        if wm != hm || wn != hn + 1 {
            return Err(AwsError::new("UpdateClusterVersion", "InvalidParameterException", "unsupported version step"));
        }
        c.version = version;
        s.cluster_script.extend(["UPDATING", "UPDATING"]);
        Ok(())
    }

    async fn tag_resource(&self, _arn: String, tags: Tags) -> Result<(), AwsError> {
        let mut s = self.0.lock().unwrap();
        s.calls.push("TagResource".into());
        if let Some(c) = s.cluster.as_mut() {
            c.tags.extend(tags);
        }
        Ok(())
    }

    async fn delete_cluster(&self, _n: String) -> Result<(), AwsError> {
        let mut s = self.0.lock().unwrap();
        s.calls.push("DeleteCluster".into());
        if s.nodegroup.is_some() {
            return Err(AwsError::new("DeleteCluster", "ResourceInUseException", "Cluster has nodegroups attached"));
        }
        s.cluster.as_ref().ok_or_else(|| not_found("DeleteCluster"))?;
        s.cluster_script = VecDeque::from(["DELETING", "DELETING", "GONE"]);
        Ok(())
    }

    async fn list_nodegroups(&self, _c: String) -> Result<Vec<String>, AwsError> {
        let s = self.0.lock().unwrap();
        Ok(s.nodegroup.iter().map(|n| n.name.clone()).collect())
    }

    async fn describe_nodegroup(&self, _c: String, _n: String) -> Result<Option<NodegroupInfo>, AwsError> {
        let mut s = self.0.lock().unwrap();
        s.calls.push("DescribeNodegroup".into());
        let next = s.nodegroup_script.pop_front();
        let Some(n) = s.nodegroup.as_mut() else { return Ok(None) };
        n.status = next.unwrap_or("ACTIVE").to_owned();
        if n.status == "GONE" {
            s.nodegroup = None;
            return Ok(None);
        }
        Ok(Some(n.clone()))
    }

    async fn create_nodegroup(&self, c: NodegroupCreate) -> Result<NodegroupInfo, AwsError> {
        let mut s = self.0.lock().unwrap();
        s.calls.push("CreateNodegroup".into());
        check_token("CreateNodegroup", &c.client_request_token)?;
        let info = NodegroupInfo {
            name: c.name,
            arn: "arn:aws:eks:us-west-2:1:nodegroup/x".into(),
            status: "CREATING".into(),
            version: Some(c.version),
            ami_type: c.ami_type,
            instance_types: c.instance_types,
            min: c.min,
            max: c.max,
            desired: c.desired,
            subnet_ids: c.subnet_ids,
            labels: c.labels,
            launch_template: Some(c.launch_template),
            node_role: c.node_role,
            issues: Vec::new(),
            tags: c.tags,
        };
        s.nodegroup = Some(info.clone());
        s.nodegroup_script.extend(["CREATING", "CREATING"]);
        Ok(info)
    }

    async fn update_nodegroup_config(
        &self,
        _c: String,
        _n: String,
        scaling: Option<(i32, i32, i32)>,
        add: BTreeMap<String, String>,
        remove: Vec<String>,
    ) -> Result<(), AwsError> {
        let mut s = self.0.lock().unwrap();
        s.calls.push("UpdateNodegroupConfig".into());
        let n = s.nodegroup.as_mut().ok_or_else(|| not_found("UpdateNodegroupConfig"))?;
        if let Some((min, max, desired)) = scaling {
            (n.min, n.max, n.desired) = (min, max, desired);
        }
        n.labels.extend(add);
        for k in remove {
            n.labels.remove(&k);
        }
        s.nodegroup_script.push_back("UPDATING");
        Ok(())
    }

    async fn update_nodegroup_version(
        &self,
        _c: String,
        _n: String,
        version: Option<String>,
        lt: Option<(String, String)>,
    ) -> Result<(), AwsError> {
        let mut s = self.0.lock().unwrap();
        s.calls.push(format!("UpdateNodegroupVersion({})", version.clone().unwrap_or_else(|| "template".into())));
        let cluster_version = s.cluster.as_ref().map(|c| c.version.clone());
        let n = s.nodegroup.as_mut().ok_or_else(|| not_found("UpdateNodegroupVersion"))?;
        if version.is_some() && version != cluster_version {
            return Err(AwsError::new(
                "UpdateNodegroupVersion",
                "InvalidParameterException",
                "must match the control plane",
            ));
        }
        if let Some(v) = version {
            n.version = Some(v);
        }
        if let Some(lt) = lt {
            n.launch_template = Some(lt);
        }
        s.nodegroup_script.push_back("UPDATING");
        Ok(())
    }

    async fn delete_nodegroup(&self, _c: String, _n: String) -> Result<(), AwsError> {
        let mut s = self.0.lock().unwrap();
        s.calls.push("DeleteNodegroup".into());
        s.nodegroup_script = VecDeque::from(["DELETING", "GONE"]);
        Ok(())
    }

    async fn list_addons(&self, _c: String) -> Result<Vec<String>, AwsError> {
        Ok(self.0.lock().unwrap().addons.keys().cloned().collect())
    }

    async fn describe_addon(&self, _c: String, name: String) -> Result<Option<AddonInfo>, AwsError> {
        let mut s = self.0.lock().unwrap();
        s.calls.push("DescribeAddon".into());
        let next = s.addon_script.pop_front();
        let Some(a) = s.addons.get_mut(&name) else { return Ok(None) };
        a.status = next.unwrap_or("ACTIVE").to_owned();
        Ok(Some(a.clone()))
    }

    async fn default_addon_version(&self, name: String, k8s: String) -> Result<Option<String>, AwsError> {
        self.log("DescribeAddonVersions");
        Ok(Some(default_version(&name, &k8s)))
    }

    async fn create_addon(
        &self,
        _c: String,
        name: String,
        version: String,
        tags: Tags,
        role: Option<AddonRole>,
    ) -> Result<(), AwsError> {
        let mut s = self.0.lock().unwrap();
        s.calls.push(format!("CreateAddon({name})"));
        if s.addons.contains_key(&name) {
            return Err(AwsError::new("CreateAddon", "ResourceInUseException", "exists"));
        }
        let pod_identity_associations = role.iter().map(|r| format!("{}={}", r.service_account, r.role_arn)).collect();
        s.addons.insert(
            name.clone(),
            AddonInfo { name, version, status: "CREATING".into(), tags, pod_identity_associations },
        );
        Ok(())
    }

    async fn update_addon(
        &self,
        _c: String,
        name: String,
        version: String,
        role: Option<AddonRole>,
    ) -> Result<(), AwsError> {
        let mut s = self.0.lock().unwrap();
        s.calls.push(format!("UpdateAddon({name})"));
        let a = s.addons.get_mut(&name).ok_or_else(|| not_found("UpdateAddon"))?;
        a.version = version;
        if let Some(r) = role {
            a.pod_identity_associations = vec![format!("{}={}", r.service_account, r.role_arn)];
        }
        Ok(())
    }

    async fn delete_addon(&self, _c: String, name: String) -> Result<(), AwsError> {
        let mut s = self.0.lock().unwrap();
        s.calls.push(format!("DeleteAddon({name})"));
        s.addons.remove(&name).map(|_| ()).ok_or_else(|| not_found("DeleteAddon"))
    }

    async fn list_access_entries(&self, _c: String) -> Result<Vec<String>, AwsError> {
        Ok(self.0.lock().unwrap().access.keys().cloned().collect())
    }

    async fn list_access_policies(&self, _c: String, p: String) -> Result<Vec<String>, AwsError> {
        Ok(self.0.lock().unwrap().access.get(&p).cloned().unwrap_or_default())
    }

    async fn create_access_entry(&self, _c: String, p: String, _t: Tags) -> Result<(), AwsError> {
        let mut s = self.0.lock().unwrap();
        s.calls.push("CreateAccessEntry".into());
        s.access.insert(p, Vec::new());
        Ok(())
    }

    async fn associate_access_policy(&self, _c: String, p: String, policy: String) -> Result<(), AwsError> {
        let mut s = self.0.lock().unwrap();
        s.calls.push("AssociateAccessPolicy".into());
        s.access.get_mut(&p).ok_or_else(|| not_found("AssociateAccessPolicy"))?.push(policy);
        Ok(())
    }

    async fn delete_access_entry(&self, _c: String, p: String) -> Result<(), AwsError> {
        self.0.lock().unwrap().access.remove(&p);
        Ok(())
    }
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
        self.0.lock().unwrap().roles.get_mut(&name).ok_or_else(|| not_found("UpdateAssumeRolePolicy"))?.trust = trust;
        Ok(())
    }

    async fn tag_role(&self, name: String, tags: Tags) -> Result<(), AwsError> {
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
        Ok(self.0.lock().unwrap().key.clone())
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
        Ok(k)
    }

    async fn find_keys_by_tags(&self, _tags: Tags) -> Result<Vec<KeyInfo>, AwsError> {
        Ok(self.0.lock().unwrap().key.iter().cloned().collect())
    }

    async fn create_alias(&self, _alias: String, _key_id: String) -> Result<(), AwsError> {
        self.log("CreateAlias");
        Ok(())
    }

    async fn restore_key(&self, _id: String) -> Result<(), AwsError> {
        let mut s = self.0.lock().unwrap();
        s.calls.push("CancelKeyDeletion".into());
        s.key.as_mut().ok_or_else(|| not_found("CancelKeyDeletion"))?.state = "Enabled".into();
        Ok(())
    }

    async fn tag_key(&self, _id: String, tags: Tags) -> Result<(), AwsError> {
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

fn ctx() -> Context {
    Context::new("eks-t", Environment::Test, "us-west-2").unwrap().with_wait(WaitPolicy {
        initial_interval: Duration::from_secs(5),
        max_interval: Duration::from_secs(30),
        multiplier: 2.0,
        jitter: 0.0,
        max_wait: Duration::from_secs(3600),
    })
}

fn spec() -> EksSpec {
    EksSpec::for_environment(
        Environment::Test,
        VpcId::new("vpc-1"),
        vec![SubnetId::new("subnet-a"), SubnetId::new("subnet-b")],
    )
}

#[test]
fn validation_rejects_mismatched_architectures_and_open_endpoints_with_paths() {
    let ctx = ctx();
    let mut s = spec();
    s.node_group.instance_types = vec!["m7i.xlarge".into(), "m7g.xlarge".into()];
    s.endpoint.public_access_cidrs = vec!["0.0.0.0/0".into(), "bogus".into()];
    s.node_group.min = 3;
    s.kubernetes_version = "latest".into();
    s.private_subnet_ids.truncate(1);
    s.admin_principals = vec!["me".into()];
    let errs = s.validate(&ctx).unwrap_err();
    let paths = errs.paths();
    for p in [
        "node_group.instance_types[0]",
        "endpoint.public_access_cidrs[0]",
        "endpoint.public_access_cidrs[1]",
        "node_group.desired",
        "kubernetes_version",
        "private_subnet_ids",
        "admin_principals[0]",
    ] {
        assert!(paths.contains(&p), "{p} missing in {paths:?}");
    }
    assert_eq!(paths.len(), 7, "{errs}");
    assert!(errs.to_string().contains("m7i.xlarge is an x86_64 instance type"), "{errs}");

    // The x86 AMI with a Graviton type is refused the other way round.
    let mut s = spec();
    s.node_group.ami_type = "AL2023_x86_64_STANDARD".into();
    let errs = s.validate(&ctx).unwrap_err();
    assert_eq!(errs.paths(), vec!["node_group.instance_types[0]"]);
    // 0.0.0.0/0 only with the explicit switch.
    let mut s = spec();
    s.endpoint = EndpointSpec { public_access_cidrs: vec!["0.0.0.0/0".into()], allow_public_internet: true };
    s.validate(&ctx).unwrap();
}

#[test]
fn instance_families_are_classified() {
    for (t, arm) in
        [("m7g.xlarge", true), ("c6gn.large", true), ("t4g.micro", true), ("r8gd.2xlarge", true), ("a1.large", true)]
    {
        assert_eq!(instance_is_arm(t), Some(arm), "{t}");
    }
    for t in ["m7i.xlarge", "g4dn.xlarge", "c5.large", "m6a.large", "t3.micro"] {
        assert_eq!(instance_is_arm(t), Some(false), "{t}");
    }
    for t in ["m7g", "", ".large", "7g.large", "M7G.large"] {
        assert_eq!(instance_is_arm(t), None, "{t:?}");
    }
}

#[test]
fn request_tokens_fit_eks_limits_for_every_stack_name_and_differ_per_creation() {
    for stack in ["abc", "dify-t", "a-twenty-char-stack1"] {
        for (what, extra) in [("cluster", "1.33"), ("nodegroup", "1"), ("nodegroup", "123456789012345")] {
            for nonce in [0, 1, u128::MAX] {
                let t = request_token(stack, what, extra, nonce);
                assert!((33..=126).contains(&t.len()), "{t} is {} characters", t.len());
                assert!(t.chars().all(|c| c.is_ascii_alphanumeric() || c == '-'), "{t}");
            }
        }
    }
    assert_ne!(token(&ctx(), "cluster", "1.33"), token(&ctx(), "cluster", "1.33"), "one token per creation");
}

#[test]
fn profiles_follow_the_spec() {
    let t = NodeGroupSpec::for_environment(Environment::Test);
    assert_eq!((t.instance_types[0].as_str(), t.desired, t.min, t.max), ("m7g.xlarge", 1, 1, 2));
    let p = NodeGroupSpec::for_environment(Environment::Prod);
    assert_eq!((p.instance_types[0].as_str(), p.desired, p.min, p.max), ("m7g.2xlarge", 6, 6, 10));
    assert_eq!(p.ami_type, "AL2023_ARM_64_STANDARD");
    let s = spec();
    assert_eq!(s.kubernetes_version, "1.33");
    assert_eq!(s.log_types.len(), 5);
    assert_eq!(s.addons, DEFAULT_ADDONS.map(String::from).to_vec());
    assert!(s.endpoint.public_access_cidrs.is_empty(), "private endpoint only by default");
}

#[tokio::test(start_paused = true)]
async fn apply_waits_through_creating_and_installs_everything_then_is_a_no_op() {
    let fake = FakeEks::with(|s| {
        s.cluster_script = VecDeque::from(["CREATING"; 6]);
        s.addon_script = VecDeque::from(["CREATING", "CREATING"]);
        s.iam_rejections = 2;
    });
    let eks = EksProvisioner::new(fake);
    let (ctx, spec) = (ctx(), spec());
    let plan = eks.plan(&ctx, &spec).await.unwrap();
    let creates: Vec<&str> = plan.with_action(Action::Create).map(|c| c.resource.kind.as_str()).collect();
    assert_eq!(
        creates,
        [
            "iam:role",
            "iam:role",
            "iam:role",
            "logs:log-group",
            "kms:key",
            "ec2:security-group",
            "eks:cluster",
            "ec2:launch-template",
            "eks:nodegroup",
            "eks:addon",
            "eks:addon",
            "eks:addon",
            "eks:addon",
            "eks:addon"
        ]
    );
    let start = tokio::time::Instant::now();
    let out = eks.apply(&ctx, &spec).await.unwrap();
    assert!(start.elapsed() > Duration::from_secs(60), "waited on the paused clock: {:?}", start.elapsed());
    assert_eq!(out.cluster_name.as_str(), "eks-t");
    assert_eq!(out.kubernetes_version, "1.33");
    assert_eq!(out.workload_security_groups().len(), 2);
    assert_eq!(out.node_role_arn.as_str(), "arn:aws:iam::1:role/eks-t-eks-node");

    {
        let s = eks.client.0.lock().unwrap();
        // Two IAM-propagation rejections were retried.
        assert_eq!(s.calls.iter().filter(|c| *c == "CreateCluster").count(), 3);
        // ... with one token, stable across the retries of this creation.
        assert_eq!(s.tokens.len(), 3);
        assert!(s.tokens.iter().all(|t| t == &s.tokens[0]), "{:?}", s.tokens);
        let node_role = &s.roles["eks-t-eks-node"];
        assert_eq!(node_role.attached.len(), 3);
        assert!(node_role.trust.contains("ec2.amazonaws.com"));
        assert!(s.roles["eks-t-eks-cluster"].attached[0].ends_with("policy/AmazonEKSClusterPolicy"));
        let lt = s.lt.as_ref().unwrap();
        assert_eq!((lt.data.http_tokens.as_str(), lt.data.hop_limit), ("required", 1));
        assert_eq!((lt.data.volume_type.as_str(), lt.data.encrypted), ("gp3", true));
        assert_eq!(lt.data.security_group_ids, ["sg-cluster", "sg-nodes"]);
        for addon in DEFAULT_ADDONS {
            assert_eq!(s.addons[addon].version, default_version(addon, "1.33"));
        }
        // The EBS CSI driver's role: Pod Identity trust, the EBS policy, associated with the
        // controller's service account at CreateAddon. Without it every PVC stays Pending.
        let ebs = &s.roles["eks-t-ebs-csi"];
        assert!(ebs.trust.contains("pods.eks.amazonaws.com") && ebs.trust.contains("sts:TagSession"), "{}", ebs.trust);
        assert_eq!(ebs.attached, ["arn:aws:iam::aws:policy/service-role/AmazonEBSCSIDriverPolicy"]);
        assert_eq!(
            s.addons[EBS_CSI_ADDON].pod_identity_associations,
            ["ebs-csi-controller-sa=arn:aws:iam::1:role/eks-t-ebs-csi"]
        );
        assert!(s.addons["coredns"].pod_identity_associations.is_empty());
        // The control-plane log group, ours, made before the cluster with the profile's retention
        // (EKS would make one that never expires, and never delete it).
        let lg = s.log_group.as_ref().unwrap();
        assert_eq!((lg.name.as_str(), lg.retention_days), ("/aws/eks/eks-t/cluster", Some(7)));
        assert!(ctx.owns_tags(&lg.tags));
        let made = s.calls.iter().position(|c| c.starts_with("CreateLogGroup")).unwrap();
        assert!(made < s.calls.iter().position(|c| c == "CreateCluster").unwrap());
    }
    assert!(eks.plan(&ctx, &spec).await.unwrap().is_empty());
    let before = eks.client.writes().len();
    eks.apply(&ctx, &spec).await.unwrap();
    assert_eq!(eks.client.writes().len(), before, "no-op apply wrote: {:?}", &eks.client.writes()[before..]);
}

#[tokio::test(start_paused = true)]
async fn a_failed_cluster_ends_the_wait_at_once() {
    let fake = FakeEks::with(|s| s.cluster_script = VecDeque::from(["CREATING", "FAILED"]));
    let eks = EksProvisioner::new(fake);
    let err = eks.apply(&ctx(), &spec()).await.unwrap_err();
    assert!(matches!(&err, EksError::Failed { kind: "cluster", status, .. } if status == "FAILED"), "{err:?}");
    assert!(!eks.client.calls().iter().any(|c| c == "CreateNodegroup"));
}

#[tokio::test(start_paused = true)]
async fn a_stuck_cluster_times_out_within_the_policy_and_is_retryable() {
    let fake = FakeEks::with(|s| s.cluster_stuck = Some("CREATING"));
    let eks = EksProvisioner::new(fake);
    let ctx = ctx().with_wait(WaitPolicy { max_wait: Duration::from_secs(600), ..ctx().wait });
    let start = tokio::time::Instant::now();
    let err = eks.apply(&ctx, &spec()).await.unwrap_err();
    assert!(
        matches!(&err, EksError::Wait(dify_stack_core::WaitError::TimedOut { last_status, .. }) if last_status == "CREATING"),
        "{err:?}"
    );
    assert!(err.is_retryable());
    let waited = start.elapsed();
    assert!(waited >= Duration::from_secs(600) && waited < Duration::from_secs(640), "{waited:?}");
}

#[tokio::test(start_paused = true)]
async fn an_addon_dropped_from_the_spec_is_removed_but_not_one_another_tier_installed() {
    let fake = FakeEks::default();
    let eks = EksProvisioner::new(fake);
    let ctx = ctx();
    let mut s = spec();
    eks.apply(&ctx, &s).await.unwrap();
    // The platform tier's metrics-server add-on: the stack's tags, another tier.
    let platform_tags = ctx.tags_for(dify_stack_core::Tier::Platform, "addon", "metrics-server");
    eks.client.0.lock().unwrap().addons.insert(
        "metrics-server".into(),
        AddonInfo {
            name: "metrics-server".into(),
            version: "v0.7.2-eksbuild.1".into(),
            status: "ACTIVE".into(),
            tags: platform_tags,
            pod_identity_associations: vec![],
        },
    );
    assert!(eks.plan(&ctx, &s).await.unwrap().is_empty(), "another tier's add-on is not drift");
    s.addons.retain(|a| a != "coredns");
    let plan = eks.plan(&ctx, &s).await.unwrap();
    let deletes: Vec<String> = plan.with_action(Action::Delete).map(|c| c.resource.name.clone()).collect();
    assert_eq!(deletes, ["coredns"], "{plan}");
    eks.apply(&ctx, &s).await.unwrap();
    let left: Vec<String> = eks.client.0.lock().unwrap().addons.keys().cloned().collect();
    assert!(left.contains(&"metrics-server".to_owned()) && !left.contains(&"coredns".to_owned()), "{left:?}");
}

#[tokio::test(start_paused = true)]
async fn upgrades_go_one_minor_version_at_a_time_control_plane_first() {
    let fake = FakeEks::default();
    let eks = EksProvisioner::new(fake);
    let ctx = ctx();
    let mut old = spec();
    old.kubernetes_version = "1.31".into();
    eks.apply(&ctx, &old).await.unwrap();
    let mark = eks.client.calls().len();

    let new = spec();
    let plan = eks.plan(&ctx, &new).await.unwrap();
    let updates: Vec<String> =
        plan.with_action(Action::Update).map(|c| format!("{} {}", c.resource.kind, c.fields[0].path)).collect();
    assert_eq!(
        updates[..3],
        ["eks:cluster version", "eks:nodegroup version", "eks:addon version"],
        "control plane, then nodes, then add-ons: {updates:?}"
    );
    eks.apply(&ctx, &new).await.unwrap();
    let writes: Vec<String> = eks.client.calls()[mark..].iter().filter(|c| c.starts_with("Update")).cloned().collect();
    assert_eq!(
        writes[..3],
        ["UpdateClusterVersion(1.32)", "UpdateClusterVersion(1.33)", "UpdateNodegroupVersion(1.33)"],
        "{writes:?}"
    );
    assert_eq!(writes.iter().filter(|w| w.starts_with("UpdateAddon")).count(), 5, "{writes:?}");
    assert!(eks.plan(&ctx, &new).await.unwrap().is_empty());

    // Downgrades are refused before anything is written.
    let before = eks.client.writes().len();
    let err = eks.apply(&ctx, &old).await.unwrap_err();
    assert!(matches!(err, EksError::DowngradeRefused { .. }), "{err:?}");
    assert!(err.to_string().contains("set kubernetes_version to 1.33"), "{err}");
    assert_eq!(eks.client.writes().len(), before);
}

#[tokio::test(start_paused = true)]
async fn scaling_labels_endpoint_logs_and_admins_update_in_place() {
    let eks = EksProvisioner::new(FakeEks::default());
    let ctx = ctx();
    let mut s = spec();
    eks.apply(&ctx, &s).await.unwrap();
    s.node_group.max = 4;
    s.node_group.desired = 2;
    s.node_group.labels.insert("team".into(), "ai".into());
    s.endpoint.public_access_cidrs = vec!["203.0.113.0/24".into()];
    s.log_types.retain(|l| l != "scheduler");
    s.admin_principals = vec!["arn:aws:iam::1:role/admin".into()];
    let plan = eks.plan(&ctx, &s).await.unwrap();
    assert!(plan.with_action(Action::Replace).next().is_none());
    let text = plan.to_string();
    for needle in ["scaling", "labels", "endpoint_public_access_cidrs", "logging", "eks:access-entry"] {
        assert!(text.contains(needle), "{needle} missing in\n{text}");
    }
    eks.apply(&ctx, &s).await.unwrap();
    assert!(eks.plan(&ctx, &s).await.unwrap().is_empty());
    let st = eks.client.0.lock().unwrap();
    let ng = st.nodegroup.as_ref().unwrap();
    assert_eq!((ng.min, ng.desired, ng.max), (1, 2, 4));
    assert_eq!(ng.labels["team"], "ai");
    let c = st.cluster.as_ref().unwrap();
    assert!(c.endpoint_public && c.endpoint_private);
    assert_eq!(c.enabled_logs.len(), 4);
    assert!(st.access["arn:aws:iam::1:role/admin"][0].ends_with("cluster-access-policy/AmazonEKSClusterAdminPolicy"));
    // Updates are serialised: the endpoint and logging updates each waited for ACTIVE.
    let i = st.calls.iter().position(|c| c == "UpdateClusterConfig(endpoint)").unwrap();
    assert_eq!(st.calls[i + 1], "DescribeCluster");
}

#[tokio::test(start_paused = true)]
async fn instance_type_changes_are_refused_without_writes() {
    let eks = EksProvisioner::new(FakeEks::default());
    let ctx = ctx();
    let mut s = spec();
    eks.apply(&ctx, &s).await.unwrap();
    s.node_group.instance_types = vec!["c7g.xlarge".into()];
    let before = eks.client.writes().len();
    let err = eks.apply(&ctx, &s).await.unwrap_err();
    assert!(matches!(&err, EksError::ImmutableChange { field, .. } if field == "instance_types"), "{err:?}");
    assert_eq!(eks.client.writes().len(), before);
}

#[tokio::test(start_paused = true)]
async fn destroy_goes_nodegroup_addons_cluster_template_roles_key() {
    let eks = EksProvisioner::new(FakeEks::default());
    let ctx = ctx();
    let s = spec();
    eks.apply(&ctx, &s).await.unwrap();
    let mark = eks.client.calls().len();
    let deleted = eks.destroy(&ctx, &s).await.unwrap();
    assert_eq!(deleted.len(), 5 + 1 + 1 + 1 + 1 + 1 + 3 + 1, "{deleted:?}");
    let order: Vec<String> = eks.client.calls()[mark..]
        .iter()
        .filter(|c| c.starts_with("Delete") && !c.starts_with("DeleteAddon") || c.starts_with("Schedule"))
        .cloned()
        .collect();
    assert_eq!(
        order,
        [
            "DeleteNodegroup",
            "DeleteCluster",
            "DeleteLogGroup(/aws/eks/eks-t/cluster)",
            "DeleteLaunchTemplate",
            "DeleteSecurityGroup",
            "DeleteRole(eks-t-eks-cluster)",
            "DeleteRole(eks-t-eks-node)",
            "DeleteRole(eks-t-ebs-csi)",
            "ScheduleKeyDeletion(7)"
        ]
    );
    let calls = eks.client.calls();
    let first_addon = calls[mark..].iter().position(|c| c.starts_with("DeleteAddon")).unwrap();
    let ng = calls[mark..].iter().position(|c| c == "DeleteNodegroup").unwrap();
    let cluster = calls[mark..].iter().position(|c| c == "DeleteCluster").unwrap();
    // Add-ons after the node group is gone (the CNI and CSI driver serve the draining nodes).
    assert!(ng < first_addon && first_addon < cluster, "{:?}", &calls[mark..]);
    // A second destroy finds nothing (the key is already pending deletion) and succeeds.
    assert!(eks.destroy(&ctx, &s).await.unwrap().is_empty());
    // Apply afterwards restores the key instead of creating another.
    eks.apply(&ctx, &s).await.unwrap();
    assert!(eks.client.calls().iter().any(|c| c == "CancelKeyDeletion"));
    assert_eq!(eks.client.calls().iter().filter(|c| *c == "CreateKey").count(), 1);
}

#[tokio::test(start_paused = true)]
async fn resources_without_our_tag_are_never_adopted() {
    let fake = FakeEks::with(|s| {
        s.cluster = Some(ClusterInfo {
            name: "eks-t".into(),
            status: "ACTIVE".into(),
            version: "1.33".into(),
            ..Default::default()
        });
    });
    let eks = EksProvisioner::new(fake);
    let err = eks.apply(&ctx(), &spec()).await.unwrap_err();
    assert!(matches!(&err, EksError::NotOwned(e) if e.kind == "EKS cluster"), "{err:?}");
    assert!(eks.client.writes().is_empty());
    // Destroy leaves it alone.
    assert!(eks.destroy(&ctx(), &spec()).await.unwrap().is_empty());
    assert!(eks.client.0.lock().unwrap().cluster.is_some());
}

mod token_tests {
    use std::collections::BTreeMap;
    use std::time::{Duration, SystemTime};

    use aws_credential_types::Credentials;
    use base64::Engine as _;
    use secrecy::ExposeSecret as _;

    use crate::token::*;

    fn decode(region: &str) -> (String, BTreeMap<String, String>, EksToken) {
        let creds = Credentials::new("AKIDEXAMPLE", "secret", Some("session".into()), None, "test");
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000);
        let token = eks_token(&creds, "my-cluster", region, now).unwrap();
        let text = token.secret().expose_secret().to_owned();
        let body = text.strip_prefix("k8s-aws-v1.").expect("prefix");
        assert!(!body.contains('='), "no padding");
        assert!(!body.contains('+') && !body.contains('/'), "base64url alphabet");
        let url = String::from_utf8(base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(body).unwrap()).unwrap();
        let uri: http::Uri = url.parse().unwrap();
        let query = uri
            .query()
            .unwrap()
            .split('&')
            .map(|kv| {
                let (k, v) = kv.split_once('=').unwrap();
                (k.to_owned(), percent_encoding::percent_decode_str(v).decode_utf8().unwrap().into_owned())
            })
            .collect();
        (uri.host().unwrap().to_owned(), query, token)
    }

    #[test]
    fn token_is_a_presigned_get_caller_identity_bound_to_the_cluster() {
        let (host, q, token) = decode("us-west-2");
        assert_eq!(host, "sts.us-west-2.amazonaws.com");
        assert_eq!(q["Action"], "GetCallerIdentity");
        assert_eq!(q["Version"], "2011-06-15");
        assert_eq!(q["X-Amz-Expires"], "60");
        assert_eq!(q["X-Amz-Algorithm"], "AWS4-HMAC-SHA256");
        assert!(q["X-Amz-SignedHeaders"].split(';').any(|h| h == "x-k8s-aws-id"), "{q:?}");
        assert!(q["X-Amz-SignedHeaders"].split(';').any(|h| h == "host"), "{q:?}");
        assert!(q["X-Amz-Credential"].starts_with("AKIDEXAMPLE/20270115/us-west-2/sts/aws4_request"), "{q:?}");
        assert_eq!(q["X-Amz-Security-Token"], "session");
        assert_eq!(q["X-Amz-Signature"].len(), 64);
        assert!(!format!("{token:?}").contains("k8s-aws-v1"), "Debug hides the token");
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000);
        assert!(!token.needs_refresh(now + Duration::from_secs(13 * 60)));
        assert!(token.needs_refresh(now + Duration::from_secs(14 * 60 + 1)));
    }

    #[test]
    fn china_tokens_use_the_china_sts_endpoint() {
        let (host, q, _) = decode("cn-north-1");
        assert_eq!(host, "sts.cn-north-1.amazonaws.com.cn");
        assert!(q["X-Amz-Credential"].contains("/cn-north-1/sts/aws4_request"));
    }

    #[test]
    fn kubeconfig_runs_get_token_for_the_cluster() {
        let out = crate::EksOutput {
            cluster_name: dify_stack_core::ids::ClusterName::new("c"),
            cluster_arn: dify_stack_core::ids::Arn::new("arn:aws:eks:us-west-2:1:cluster/c"),
            kubernetes_version: "1.33".into(),
            endpoint: "https://x.eks.amazonaws.com".into(),
            ca_data: "Q0E=".into(),
            oidc_issuer_url: String::new(),
            cluster_security_group_id: None,
            node_security_group_id: dify_stack_core::ids::SecurityGroupId::new("sg-1"),
            cluster_role_arn: dify_stack_core::ids::RoleArn::new("r"),
            node_role_arn: dify_stack_core::ids::RoleArn::new("n"),
            kms_key_arn: dify_stack_core::ids::KmsKeyArn::new("k"),
            nodegroup_name: "ng".into(),
            region: "us-west-2".into(),
        };
        let k = kubeconfig(&out, Some("prod"));
        for needle in [
            "server: \"https://x.eks.amazonaws.com\"",
            "certificate-authority-data: \"Q0E=\"",
            "command: aws",
            "- get-token",
            "- \"c\"",
            "value: \"prod\"",
            "current-context: \"arn:aws:eks:us-west-2:1:cluster/c\"",
        ] {
            assert!(k.contains(needle), "{needle} missing in\n{k}");
        }
    }
}

mod kubernetes_load_balancers {
    use std::sync::{Arc, Mutex};

    use super::*;
    use crate::load_balancers::*;

    fn lb(id: &str) -> ClusterLoadBalancer {
        ClusterLoadBalancer { id: id.into(), kind: LoadBalancerKind::V2 }
    }

    /// Load balancers, target groups and security groups Kubernetes made, deleted as asked.
    fn world(log: Arc<Mutex<Vec<String>>>) -> MockLoadBalancerApi {
        let lbs = Arc::new(Mutex::new(vec![lb("arn:lb/k8s-dify-api"), lb("arn:lb/k8s-dify-ingress")]));
        let mut m = MockLoadBalancerApi::new();
        let l = lbs.clone();
        m.expect_cluster_load_balancers().returning(move |vpc, cluster, namespace| {
            assert_eq!((vpc.as_str(), cluster.as_str(), namespace), ("vpc-1", "eks-t", None));
            Ok(l.lock().unwrap().clone())
        });
        let (l, g) = (lbs.clone(), log.clone());
        m.expect_delete_load_balancer().returning(move |lb| {
            g.lock().unwrap().push(format!("DeleteLoadBalancer {}", lb.id));
            l.lock().unwrap().retain(|x| x != &lb);
            Ok(())
        });
        m.expect_cluster_target_groups().returning(|_, _| Ok(vec!["arn:tg/k8s".into()]));
        let g = log.clone();
        m.expect_delete_target_group().returning(move |tg| {
            g.lock().unwrap().push(format!("DeleteTargetGroup {tg}"));
            Ok(())
        });
        m.expect_cluster_security_groups().returning(|_, _, skip| {
            assert_eq!(skip, dify_stack_core::TAG_STACK, "groups carrying the stack's tag are left to their tier");
            Ok(vec!["sg-k8s-elb".into()])
        });
        // The load balancer's ENIs linger for a moment after it is gone.
        let tries = Arc::new(Mutex::new(0));
        let g = log.clone();
        m.expect_delete_security_group().returning(move |sg| {
            let mut n = tries.lock().unwrap();
            *n += 1;
            if *n == 1 {
                return Err(AwsError::new("DeleteSecurityGroup", "DependencyViolation", "has a dependent object"));
            }
            g.lock().unwrap().push(format!("DeleteSecurityGroup {sg}"));
            Ok(())
        });
        m
    }

    #[tokio::test(start_paused = true)]
    async fn an_unreachable_api_does_not_block_destroy_and_the_load_balancers_are_deleted_directly() {
        let log = Arc::new(Mutex::new(Vec::<String>::new()));
        let mut objects = MockLoadBalancerObjects::new();
        objects
            .expect_delete_load_balancer_objects()
            .times(1)
            .returning(|| Err(KubeCleanupError { message: "tcp connect error".into(), unreachable: true }));
        let eks = EksProvisioner::new(FakeEks::default())
            .with_load_balancers(world(log.clone()))
            .with_kubernetes_objects(objects);
        let (ctx, s) = (ctx(), spec());
        eks.apply(&ctx, &s).await.unwrap();
        eks.destroy(&ctx, &s).await.unwrap();
        assert_eq!(
            *log.lock().unwrap(),
            [
                "DeleteLoadBalancer arn:lb/k8s-dify-api",
                "DeleteLoadBalancer arn:lb/k8s-dify-ingress",
                "DeleteTargetGroup arn:tg/k8s",
                "DeleteSecurityGroup sg-k8s-elb"
            ]
        );
        assert!(eks.client.calls().iter().any(|c| c == "DeleteNodegroup"));
    }

    #[tokio::test(start_paused = true)]
    async fn services_and_ingresses_go_first_and_a_refusal_stops_destroy_before_the_node_group() {
        // The API answers: the objects are deleted and their controller removes the load
        // balancers (here: nothing is left to delete directly).
        let log = Arc::new(Mutex::new(Vec::<String>::new()));
        let mut m = MockLoadBalancerApi::new();
        let listed = Arc::new(Mutex::new(0));
        m.expect_cluster_load_balancers().returning(move |_, _, _| {
            let mut n = listed.lock().unwrap();
            *n += 1;
            Ok(if *n < 3 { vec![lb("arn:lb/k8s-dify-api")] } else { vec![] })
        });
        m.expect_delete_load_balancer().never();
        m.expect_cluster_target_groups().returning(|_, _| Ok(vec![]));
        m.expect_cluster_security_groups().returning(|_, _, _| Ok(vec![]));
        let mut objects = MockLoadBalancerObjects::new();
        let g = log.clone();
        objects.expect_delete_load_balancer_objects().times(1).returning(move || {
            g.lock().unwrap().push("delete objects".into());
            Ok(vec!["service dify/dify-nginx".into(), "ingress dify/dify".into()])
        });
        let eks = EksProvisioner::new(FakeEks::default()).with_load_balancers(m).with_kubernetes_objects(objects);
        let (ctx, s) = (ctx(), spec());
        eks.apply(&ctx, &s).await.unwrap();
        eks.destroy(&ctx, &s).await.unwrap();
        assert_eq!(*log.lock().unwrap(), ["delete objects"]);

        // An API error (not reachability) ends destroy before anything is deleted.
        let mut objects = MockLoadBalancerObjects::new();
        objects
            .expect_delete_load_balancer_objects()
            .returning(|| Err(KubeCleanupError { message: "services is forbidden".into(), unreachable: false }));
        let mut m = MockLoadBalancerApi::new();
        m.expect_cluster_load_balancers().never();
        let eks = EksProvisioner::new(FakeEks::default()).with_load_balancers(m).with_kubernetes_objects(objects);
        eks.apply(&ctx, &s).await.unwrap();
        let err = eks.destroy(&ctx, &s).await.unwrap_err();
        assert!(matches!(&err, EksError::Kubernetes(m) if m.contains("forbidden")), "{err:?}");
        assert!(!eks.client.calls().iter().any(|c| c.starts_with("Delete")), "{:?}", eks.client.calls());
    }

    #[test]
    fn a_namespace_picks_only_the_load_balancers_made_for_its_ingresses_and_services() {
        let tags = |pairs: &[(&str, &str)]| -> dify_stack_core::Tags {
            pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect()
        };
        let ingress = tags(&[("elbv2.k8s.aws/cluster", "eks-t"), ("ingress.k8s.aws/stack", "dify/dify")]);
        let service = tags(&[("elbv2.k8s.aws/cluster", "eks-t"), ("service.k8s.aws/stack", "dify/proxy")]);
        let in_tree = tags(&[("kubernetes.io/cluster/eks-t", "owned"), ("kubernetes.io/service-name", "dify/web")]);
        let other_ns = tags(&[("elbv2.k8s.aws/cluster", "eks-t"), ("ingress.k8s.aws/stack", "difyx/dify")]);
        let group = tags(&[("elbv2.k8s.aws/cluster", "eks-t"), ("ingress.k8s.aws/stack", "shared-group")]);
        let other_cluster = tags(&[("elbv2.k8s.aws/cluster", "eks-u"), ("ingress.k8s.aws/stack", "dify/dify")]);
        for t in [&ingress, &service, &in_tree] {
            assert!(made_for(t, "eks-t", Some("dify")), "{t:?}");
        }
        for t in [&other_ns, &group, &other_cluster] {
            assert!(!made_for(t, "eks-t", Some("dify")), "{t:?}");
        }
        // Without a namespace every load balancer of the cluster counts (destroy).
        assert!(made_for(&other_ns, "eks-t", None) && made_for(&group, "eks-t", None));
        assert!(!made_for(&other_cluster, "eks-t", None));
    }

    #[tokio::test(start_paused = true)]
    async fn uninstall_waits_for_the_namespaces_load_balancers_and_a_timeout_names_those_left() {
        let policy = dify_stack_core::WaitPolicy {
            initial_interval: std::time::Duration::from_secs(1),
            max_interval: std::time::Duration::from_secs(5),
            multiplier: 2.0,
            jitter: 0.0,
            max_wait: std::time::Duration::from_secs(60),
        };
        let cancel = dify_stack_core::CancellationToken::new();
        // The controller deletes the ALB after two polls.
        let listed = Arc::new(Mutex::new(0));
        let mut m = MockLoadBalancerApi::new();
        let l = listed.clone();
        m.expect_cluster_load_balancers().returning(move |vpc, cluster, namespace| {
            assert_eq!((vpc.as_str(), cluster.as_str(), namespace.as_deref()), ("vpc-1", "eks-t", Some("dify")));
            let mut n = l.lock().unwrap();
            *n += 1;
            Ok(if *n <= 2 { vec![lb("arn:lb/k8s-dify-dify")] } else { vec![] })
        });
        m.expect_delete_load_balancer().never();
        wait_namespace_load_balancers_gone(&m, "vpc-1", "eks-t", "dify", &policy, &cancel).await.unwrap();
        assert_eq!(*listed.lock().unwrap(), 3);

        // It never goes: the timeout names it.
        let mut m = MockLoadBalancerApi::new();
        m.expect_cluster_load_balancers().returning(|_, _, _| Ok(vec![lb("arn:lb/k8s-dify-dify")]));
        let err = wait_namespace_load_balancers_gone(&m, "vpc-1", "eks-t", "dify", &policy, &cancel).await.unwrap_err();
        assert!(
            err.to_string().contains("arn:lb/k8s-dify-dify") && err.to_string().contains("namespace dify"),
            "{err}"
        );
    }
}
