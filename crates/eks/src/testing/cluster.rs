//! The fake's EKS API: clusters, node groups, add-ons, access entries.

use std::collections::VecDeque;

use async_trait::async_trait;
use dify_stack_core::ids::{Arn, ClusterName, SecurityGroupId, SubnetId};
use dify_stack_core::{AwsError, Tags};

use super::{FakeEks, check_token, default_version, in_use, not_found, role_not_assumable, timed};
use crate::client::*;
use crate::spec::parse_version;

impl FakeEks {
    /// What EKS reports of a cluster once it is ACTIVE (none of it while CREATING): its API
    /// endpoint, certificate authority, OIDC issuer and cluster security group. Untimed: fixed
    /// values (the cluster security group `sg-cluster`); timed: values named after the cluster.
    fn connect(&self, c: &mut ClusterInfo) {
        if self.sim.is_some() {
            c.endpoint = Some(format!("https://{}.gr7.sim.eks.amazonaws.com", c.name));
            c.ca_data = Some("LS0tLS1CRUdJTg==".to_owned());
            c.oidc_issuer = Some(format!("https://oidc.eks.sim.amazonaws.com/id/{}", c.name.to_uppercase()));
            c.cluster_security_group_id = Some(SecurityGroupId::new(format!("sg-eks-{}", c.name)));
        } else {
            c.endpoint = Some("https://ABC.gr7.us-west-2.eks.amazonaws.com".into());
            c.ca_data = Some("Q0E=".into());
            c.oidc_issuer = Some("https://oidc.eks.us-west-2.amazonaws.com/id/ABC".into());
            c.cluster_security_group_id = Some("sg-cluster".into());
        }
    }
}

#[async_trait]
impl ClusterApi for FakeEks {
    /// The status: a stuck one, else the next scripted one, else the timed one (ACTIVE once the
    /// sampled creation time has passed). A cluster without an endpoint gets one when first
    /// reported ACTIVE.
    async fn describe_cluster(&self, name: ClusterName) -> Result<Option<ClusterInfo>, AwsError> {
        self.read().await;
        let mut s = self.state();
        s.calls.push("DescribeCluster".into());
        if s.cluster_named(&name).is_none() {
            return Ok(None);
        }
        let stuck = s.cluster_stuck;
        let next = s.cluster_script.pop_front();
        let ready_at = s.cluster_ready_at;
        let Some(c) = s.cluster.as_mut() else { return Ok(None) };
        c.status = stuck.or(next).unwrap_or_else(|| timed(ready_at)).into();
        if c.status.as_str() == "GONE" {
            s.cluster = None;
            s.cluster_ready_at = None;
            return Ok(None);
        }
        if c.status == Status::Active && c.endpoint.is_none() {
            self.connect(c);
        }
        Ok(Some(c.clone()))
    }

    /// Refused while the cluster role is not usable yet: [`State::iam_rejections`] times first,
    /// then (timed) until its sampled IAM propagation delay has passed.
    ///
    /// [`State::iam_rejections`]: super::State::iam_rejections
    async fn create_cluster(&self, c: ClusterCreate) -> Result<ClusterInfo, AwsError> {
        self.write().await;
        let mut s = self.state();
        s.calls.push("CreateCluster".into());
        check_token("CreateCluster", &c.client_request_token)?;
        s.tokens.push(c.client_request_token.clone());
        if s.iam_rejections > 0 {
            s.iam_rejections -= 1;
            return Err(role_not_assumable("CreateCluster", c.role_arn.as_str()));
        }
        s.refused_role("CreateCluster", c.role_arn.as_str())?;
        if s.cluster.is_some() {
            return Err(AwsError::new("CreateCluster", "ResourceInUseException", "exists"));
        }
        let info = ClusterInfo {
            name: c.name.to_string(),
            arn: format!("arn:aws:eks:us-west-2:{}:cluster/{}", self.account(), c.name),
            status: "CREATING".into(),
            version: c.version,
            subnet_ids: c.subnet_ids,
            endpoint_private: true,
            endpoint_public: !c.public_access_cidrs.is_empty(),
            public_access_cidrs: c.public_access_cidrs,
            enabled_logs: c.log_types.into_iter().collect(),
            secrets_key_arn: Some(c.key_arn),
            authentication_mode: Some("API_AND_CONFIG_MAP".into()),
            role_arn: c.role_arn.into_inner(),
            support_type: Some(c.support_type),
            tags: c.tags,
            ..Default::default()
        };
        s.cluster_ready_at = self.ready_at("eks_cluster", "");
        s.cluster = Some(info.clone());
        Ok(info)
    }

    async fn update_cluster_subnets(
        &self,
        name: ClusterName,
        subnets: Vec<SubnetId>,
        security_groups: Vec<SecurityGroupId>,
    ) -> Result<Option<String>, AwsError> {
        self.write().await;
        let mut s = self.state();
        s.calls.push("UpdateClusterConfig(subnets)".into());
        let id = s.start_update(&name, "VpcConfigUpdate")?;
        let c = s.cluster_named(&name).ok_or_else(|| not_found("UpdateClusterConfig"))?;
        c.subnet_ids = subnets;
        if !security_groups.is_empty() {
            c.security_group_ids = security_groups;
        }
        Ok(Some(id))
    }

    async fn update_cluster_access(&self, name: ClusterName, cidrs: Vec<String>) -> Result<Option<String>, AwsError> {
        self.write().await;
        let mut s = self.state();
        s.calls.push("UpdateClusterConfig(access)".into());
        let id = s.start_update(&name, "EndpointAccessUpdate")?;
        let c = s.cluster_named(&name).ok_or_else(|| not_found("UpdateClusterConfig"))?;
        c.endpoint_private = true;
        c.endpoint_public = !cidrs.is_empty();
        // With the public endpoint off EKS reports 0.0.0.0/0 (VpcConfigResponse.publicAccessCidrs).
        c.public_access_cidrs = if cidrs.is_empty() { vec!["0.0.0.0/0".into()] } else { cidrs };
        Ok(Some(id))
    }

    async fn update_cluster_logging(
        &self,
        name: ClusterName,
        enabled: Vec<String>,
        _d: Vec<String>,
    ) -> Result<Option<String>, AwsError> {
        self.write().await;
        let mut s = self.state();
        s.calls.push("UpdateClusterConfig(logging)".into());
        let id = s.start_update(&name, "LoggingUpdate")?;
        s.cluster_named(&name).ok_or_else(|| not_found("UpdateClusterConfig"))?.enabled_logs =
            enabled.into_iter().collect();
        Ok(Some(id))
    }

    async fn update_cluster_version(&self, name: ClusterName, version: String) -> Result<Option<String>, AwsError> {
        self.write().await;
        let mut s = self.state();
        s.calls.push(format!("UpdateClusterVersion({version})"));
        let c = s.cluster_named(&name).ok_or_else(|| not_found("UpdateClusterVersion"))?;
        let (hm, hn) = parse_version(&c.version).unwrap();
        let (wm, wn) = parse_version(&version).unwrap();
        // Real EKS: one minor version per update, never down.
        if wm != hm || wn != hn + 1 {
            return Err(AwsError::new("UpdateClusterVersion", "InvalidParameterException", "unsupported version step"));
        }
        let id = s.start_update(&name, "VersionUpdate")?;
        s.cluster_named(&name).ok_or_else(|| not_found("UpdateClusterVersion"))?.version = version;
        s.cluster_script.push_back("UPDATING");
        Ok(Some(id))
    }

    async fn update_cluster_support(
        &self,
        name: ClusterName,
        support_type: String,
    ) -> Result<Option<String>, AwsError> {
        self.write().await;
        let mut s = self.state();
        s.calls.push(format!("UpdateClusterConfig(support {support_type})"));
        let id = s.start_update(&name, "UpgradePolicyUpdate")?;
        s.cluster_named(&name).ok_or_else(|| not_found("UpdateClusterConfig"))?.support_type = Some(support_type);
        Ok(Some(id))
    }

    async fn upgrade_insights(&self, cluster: ClusterName) -> Result<Vec<Insight>, AwsError> {
        self.read().await;
        let mut s = self.state();
        s.calls.push("ListInsights".into());
        if s.cluster_named(&cluster).is_none() {
            return Err(not_found("ListInsights"));
        }
        Ok(s.insights.clone())
    }

    async fn describe_update(&self, cluster: ClusterName, id: String) -> Result<Option<UpdateInfo>, AwsError> {
        self.read().await;
        let mut s = self.state();
        s.calls.push("DescribeUpdate".into());
        if s.cluster_named(&cluster).is_none() {
            return Err(not_found("DescribeUpdate"));
        }
        let Some((update, polls)) = s.updates.get_mut(&id) else { return Ok(None) };
        if *polls == 0 {
            update.status = "Successful".into();
        } else {
            *polls -= 1;
        }
        Ok(Some(update.clone()))
    }

    async fn tag_resource(&self, arn: Arn, tags: Tags) -> Result<(), AwsError> {
        self.write().await;
        let mut s = self.state();
        s.calls.push("TagResource".into());
        let c = s.cluster.as_mut().filter(|c| c.arn == arn.as_str()).ok_or_else(|| not_found("TagResource"))?;
        c.tags.extend(tags);
        Ok(())
    }

    async fn delete_cluster(&self, name: ClusterName) -> Result<(), AwsError> {
        self.write().await;
        let mut s = self.state();
        s.calls.push("DeleteCluster".into());
        s.cluster_named(&name).ok_or_else(|| not_found("DeleteCluster"))?;
        if s.nodegroup.is_some() {
            return Err(AwsError::new("DeleteCluster", "ResourceInUseException", "Cluster has nodegroups attached"));
        }
        s.cluster_script = VecDeque::from(["DELETING", "DELETING", "GONE"]);
        Ok(())
    }

    async fn list_nodegroups(&self, cluster: ClusterName) -> Result<Vec<String>, AwsError> {
        self.read().await;
        let s = self.state();
        Ok(s.nodegroup.iter().filter(|_| s.on_cluster(&cluster)).map(|n| n.name.clone()).collect())
    }

    /// The status: the next scripted one, else the timed one.
    async fn describe_nodegroup(&self, cluster: ClusterName, name: String) -> Result<Option<NodegroupInfo>, AwsError> {
        self.read().await;
        let mut s = self.state();
        s.calls.push("DescribeNodegroup".into());
        if s.nodegroup_named(&cluster, &name).is_none() {
            return Ok(None);
        }
        let next = s.nodegroup_script.pop_front();
        let ready_at = s.nodegroup_ready_at;
        let Some(n) = s.nodegroup.as_mut() else { return Ok(None) };
        n.status = next.unwrap_or_else(|| timed(ready_at)).into();
        if n.status.as_str() == "GONE" {
            s.nodegroup = None;
            s.nodegroup_ready_at = None;
            return Ok(None);
        }
        Ok(Some(n.clone()))
    }

    /// Refused (timed) while the node role's IAM propagation is not done. Timed, the node group
    /// is CREATING until its sampled duration has passed; untimed, for its first two describes.
    async fn create_nodegroup(&self, c: NodegroupCreate) -> Result<NodegroupInfo, AwsError> {
        self.write().await;
        let mut s = self.state();
        s.calls.push("CreateNodegroup".into());
        check_token("CreateNodegroup", &c.client_request_token)?;
        s.refused_role("CreateNodegroup", c.node_role.as_str())?;
        let info = NodegroupInfo {
            arn: format!("arn:aws:eks:us-west-2:{}:nodegroup/{}/{}", self.account(), c.cluster, c.name),
            name: c.name,
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
            node_role: c.node_role.into_inner(),
            issues: Vec::new(),
            tags: c.tags,
        };
        s.nodegroup_ready_at = self.ready_at(self.nodegroup_kind, "");
        if s.nodegroup_ready_at.is_none() {
            s.nodegroup_script.extend(["CREATING", "CREATING"]);
        }
        s.nodegroup = Some(info.clone());
        Ok(info)
    }

    async fn update_nodegroup_config(&self, u: NodegroupConfigUpdate) -> Result<(), AwsError> {
        self.write().await;
        let NodegroupConfigUpdate { cluster, name, scaling, add_labels: add, remove_labels: remove } = u;
        let mut s = self.state();
        s.calls.push("UpdateNodegroupConfig".into());
        let busy = !s.nodegroup_script.is_empty();
        let n = s.nodegroup_named(&cluster, &name).ok_or_else(|| not_found("UpdateNodegroupConfig"))?;
        if busy {
            return Err(in_use("UpdateNodegroupConfig", "node group"));
        }
        if let Some((min, max, desired)) = scaling {
            let desired = desired.unwrap_or(n.desired);
            // EKS validates the resulting scaling (InvalidParameterException).
            if !(min <= desired && desired <= max) {
                return Err(AwsError::new(
                    "UpdateNodegroupConfig",
                    "InvalidParameterException",
                    format!("desired size {desired} is outside min {min} max {max}"),
                ));
            }
            (n.min, n.max, n.desired) = (min, max, desired);
        }
        n.labels.extend(add);
        for k in remove {
            n.labels.remove(&k);
        }
        s.nodegroup_script.push_back("UPDATING");
        Ok(())
    }

    async fn update_nodegroup_version(&self, u: NodegroupVersionUpdate) -> Result<(), AwsError> {
        self.write().await;
        let NodegroupVersionUpdate { cluster, name, version, launch_template: lt } = u;
        let mut s = self.state();
        s.calls.push(format!("UpdateNodegroupVersion({})", version.clone().unwrap_or_else(|| "template".into())));
        let cluster_version = s.cluster.as_ref().map(|c| c.version.clone());
        let busy = !s.nodegroup_script.is_empty();
        let n = s.nodegroup_named(&cluster, &name).ok_or_else(|| not_found("UpdateNodegroupVersion"))?;
        if busy {
            return Err(in_use("UpdateNodegroupVersion", "node group"));
        }
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

    async fn delete_nodegroup(&self, cluster: ClusterName, name: String) -> Result<(), AwsError> {
        self.write().await;
        let mut s = self.state();
        s.calls.push("DeleteNodegroup".into());
        s.nodegroup_named(&cluster, &name).ok_or_else(|| not_found("DeleteNodegroup"))?;
        s.nodegroup_script = VecDeque::from(["DELETING", "GONE"]);
        Ok(())
    }

    async fn list_addons(&self, cluster: ClusterName) -> Result<Vec<String>, AwsError> {
        self.read().await;
        let s = self.state();
        Ok(s.addons.keys().filter(|_| s.on_cluster(&cluster)).cloned().collect())
    }

    /// The status: UPDATING while [`State::addon_busy`], else the next scripted one, else the
    /// timed one (a Deployment add-on also waits for the node group: see the module).
    ///
    /// [`State::addon_busy`]: super::State::addon_busy
    async fn describe_addon(&self, cluster: ClusterName, name: String) -> Result<Option<AddonInfo>, AwsError> {
        self.read().await;
        let mut s = self.state();
        s.calls.push("DescribeAddon".into());
        if !s.on_cluster(&cluster) {
            return Ok(None);
        }
        let next = s.addon_script.pop_front();
        let busy = s.addon_busy.get_mut(&name).filter(|n| **n > 0).map(|n| {
            *n -= 1;
            "UPDATING"
        });
        let timed = s.addon_timed_status(&name);
        let Some(a) = s.addons.get_mut(&name) else { return Ok(None) };
        a.status = busy.or(next).unwrap_or(timed).into();
        Ok(Some(a.clone()))
    }

    async fn addon_versions(&self, name: String, k8s: String) -> Result<AddonVersions, AwsError> {
        self.read().await;
        self.log("DescribeAddonVersions");
        let default = default_version(&name, &k8s);
        let mut compatible = vec![default.clone()];
        compatible.extend(self.state().extra_compatible.iter().cloned());
        Ok(AddonVersions { default: Some(default), compatible })
    }

    async fn create_addon(
        &self,
        cluster: ClusterName,
        name: String,
        version: String,
        tags: Tags,
        role: Option<AddonRole>,
    ) -> Result<(), AwsError> {
        self.write().await;
        let mut s = self.state();
        s.calls.push(format!("CreateAddon({name})"));
        s.cluster_named(&cluster).ok_or_else(|| not_found("CreateAddon"))?;
        if s.addons.contains_key(&name) {
            return Err(AwsError::new("CreateAddon", "ResourceInUseException", "exists"));
        }
        let pod_identity_associations = role.iter().map(|r| format!("{}={}", r.service_account, r.role_arn)).collect();
        if let Some(at) = self.ready_at("eks_addon", &name) {
            s.addon_ready_at.insert(name.clone(), at);
        }
        s.addons.insert(
            name.clone(),
            AddonInfo { name, version, status: "CREATING".into(), tags, pod_identity_associations },
        );
        Ok(())
    }

    async fn update_addon(
        &self,
        cluster: ClusterName,
        name: String,
        version: String,
        role: Option<AddonRole>,
    ) -> Result<(), AwsError> {
        self.write().await;
        let mut s = self.state();
        s.calls.push(format!("UpdateAddon({name})"));
        let on_cluster = s.on_cluster(&cluster);
        let a = s.addons.get_mut(&name).filter(|_| on_cluster).ok_or_else(|| not_found("UpdateAddon"))?;
        if matches!(a.status, Status::Creating | Status::Updating | Status::Deleting) {
            return Err(in_use("UpdateAddon", "add-on"));
        }
        a.version = version;
        if let Some(r) = role {
            a.pod_identity_associations = vec![format!("{}={}", r.service_account, r.role_arn)];
        }
        Ok(())
    }

    async fn delete_addon(&self, cluster: ClusterName, name: String) -> Result<(), AwsError> {
        self.write().await;
        let mut s = self.state();
        s.calls.push(format!("DeleteAddon({name})"));
        s.cluster_named(&cluster).ok_or_else(|| not_found("DeleteAddon"))?;
        s.addon_ready_at.remove(&name);
        s.addons.remove(&name).map(|_| ()).ok_or_else(|| not_found("DeleteAddon"))
    }

    async fn list_access_entries(&self, cluster: ClusterName) -> Result<Vec<String>, AwsError> {
        self.read().await;
        let mut s = self.state();
        s.cluster_named(&cluster).ok_or_else(|| not_found("ListAccessEntries"))?;
        Ok(s.access.keys().cloned().collect())
    }

    async fn list_access_policies(&self, cluster: ClusterName, p: Arn) -> Result<Vec<String>, AwsError> {
        self.read().await;
        let mut s = self.state();
        s.cluster_named(&cluster).ok_or_else(|| not_found("ListAssociatedAccessPolicies"))?;
        s.access.get(p.as_str()).cloned().ok_or_else(|| not_found("ListAssociatedAccessPolicies"))
    }

    async fn create_access_entry(&self, cluster: ClusterName, p: Arn, _t: Tags) -> Result<(), AwsError> {
        self.write().await;
        let mut s = self.state();
        s.calls.push("CreateAccessEntry".into());
        s.cluster_named(&cluster).ok_or_else(|| not_found("CreateAccessEntry"))?;
        if s.access.contains_key(p.as_str()) {
            return Err(AwsError::new("CreateAccessEntry", "ResourceInUseException", "exists"));
        }
        s.access.insert(p.into_inner(), Vec::new());
        Ok(())
    }

    async fn associate_access_policy(&self, cluster: ClusterName, p: Arn, policy: Arn) -> Result<(), AwsError> {
        self.write().await;
        let mut s = self.state();
        s.calls.push("AssociateAccessPolicy".into());
        s.cluster_named(&cluster).ok_or_else(|| not_found("AssociateAccessPolicy"))?;
        s.access.get_mut(p.as_str()).ok_or_else(|| not_found("AssociateAccessPolicy"))?.push(policy.into_inner());
        Ok(())
    }

    async fn delete_access_entry(&self, cluster: ClusterName, p: Arn) -> Result<(), AwsError> {
        self.write().await;
        let mut s = self.state();
        s.cluster_named(&cluster).ok_or_else(|| not_found("DeleteAccessEntry"))?;
        s.access.remove(p.as_str());
        Ok(())
    }
}
