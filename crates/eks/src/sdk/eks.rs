//! EKS: clusters, node groups, add-ons and access entries.

use super::{
    AccessScope, AccessScopeType, AddonInfo, AddonRole, AddonVersions, AuthenticationMode, AwsError, ClusterApi,
    ClusterCreate, ClusterInfo, CreateAccessConfigRequest, EncryptionConfig, Insight, LaunchTemplateSpecification,
    NodegroupConfigUpdate, NodegroupCreate, NodegroupInfo, NodegroupScalingConfig, NodegroupVersionUpdate, Provider,
    ResolveConflicts, SdkEks, Status, Tags, UpdateInfo, UpdateLabelsPayload, VpcConfigRequest, async_trait,
    cluster_info, endpoint_access, found, hash_tags, logging, nodegroup_info, pod_identity, to_hash, upgrade_policy,
    vpc_config,
};
use dify_stack_core::AwsResultExt;
use dify_stack_core::ids::{Arn, ClusterName, SecurityGroupId, SubnetId};

#[async_trait]
impl ClusterApi for SdkEks {
    async fn describe_cluster(&self, name: ClusterName) -> Result<Option<ClusterInfo>, AwsError> {
        let out = found(self.eks.describe_cluster().name(name.into_inner()).send().await.aws("DescribeCluster"))?;
        Ok(out.and_then(|o| o.cluster().map(cluster_info)))
    }

    async fn list_clusters(&self) -> Result<Vec<String>, AwsError> {
        let mut names = Vec::new();
        let mut pages = self.eks.list_clusters().into_paginator().send();
        while let Some(page) = pages.next().await {
            names.extend(page.aws("ListClusters")?.clusters().iter().cloned());
        }
        Ok(names)
    }

    async fn create_cluster(&self, c: ClusterCreate) -> Result<ClusterInfo, AwsError> {
        let out = self
            .eks
            .create_cluster()
            .name(c.name.as_str())
            .version(c.version)
            .role_arn(c.role_arn.into_inner())
            .resources_vpc_config(vpc_config(c.subnet_ids, c.public_access_cidrs))
            .logging(logging(c.log_types, Vec::new()))
            .encryption_config(
                EncryptionConfig::builder()
                    .resources("secrets")
                    .provider(Provider::builder().key_arn(c.key_arn.into_inner()).build())
                    .build(),
            )
            .access_config(
                CreateAccessConfigRequest::builder()
                    .authentication_mode(AuthenticationMode::ApiAndConfigMap)
                    .bootstrap_cluster_creator_admin_permissions(true)
                    .build(),
            )
            .upgrade_policy(upgrade_policy(&c.support_type))
            .client_request_token(c.client_request_token)
            .set_tags(Some(to_hash(&c.tags)))
            .send()
            .await
            .aws("CreateCluster")?;
        out.cluster()
            .map(cluster_info)
            .ok_or_else(|| AwsError::new("CreateCluster", "EmptyResponse", "no cluster in the response"))
    }

    async fn update_cluster_subnets(
        &self,
        name: ClusterName,
        subnet_ids: Vec<SubnetId>,
        security_group_ids: Vec<SecurityGroupId>,
    ) -> Result<Option<String>, AwsError> {
        // Only the VpcConfigUpdate's fields: with any endpoint field beside them EKS refuses the
        // call, "Only one type of update - VpcConfigUpdate, LoggingUpdate or EndpointAccessUpdate
        // can be allowed" (aws-cdk PR #30114; aws-controllers-k8s eks-controller PR #119 splits
        // the calls for it). Fields not sent keep their values (UpdateClusterConfig merges).
        let vpc = VpcConfigRequest::builder()
            .set_subnet_ids(Some(subnet_ids.into_iter().map(SubnetId::into_inner).collect()))
            .set_security_group_ids(
                (!security_group_ids.is_empty())
                    .then(|| security_group_ids.into_iter().map(SecurityGroupId::into_inner).collect()),
            )
            .build();
        let out = self
            .eks
            .update_cluster_config()
            .name(name.into_inner())
            .resources_vpc_config(vpc)
            .send()
            .await
            .aws("UpdateClusterConfig")?;
        Ok(out.update().and_then(|u| u.id()).map(str::to_owned))
    }

    async fn update_cluster_access(
        &self,
        name: ClusterName,
        public_access_cidrs: Vec<String>,
    ) -> Result<Option<String>, AwsError> {
        // Only the EndpointAccessUpdate's fields (see update_cluster_subnets).
        let out = self
            .eks
            .update_cluster_config()
            .name(name.into_inner())
            .resources_vpc_config(endpoint_access(public_access_cidrs))
            .send()
            .await
            .aws("UpdateClusterConfig")?;
        Ok(out.update().and_then(|u| u.id()).map(str::to_owned))
    }

    async fn update_cluster_logging(
        &self,
        name: ClusterName,
        enabled: Vec<String>,
        disabled: Vec<String>,
    ) -> Result<Option<String>, AwsError> {
        let out = self
            .eks
            .update_cluster_config()
            .name(name.into_inner())
            .logging(logging(enabled, disabled))
            .send()
            .await
            .aws("UpdateClusterConfig")?;
        Ok(out.update().and_then(|u| u.id()).map(str::to_owned))
    }

    async fn update_cluster_version(&self, name: ClusterName, version: String) -> Result<Option<String>, AwsError> {
        let out = self
            .eks
            .update_cluster_version()
            .name(name.into_inner())
            .version(version)
            .send()
            .await
            .aws("UpdateClusterVersion")?;
        Ok(out.update().and_then(|u| u.id()).map(str::to_owned))
    }

    async fn update_cluster_support(
        &self,
        name: ClusterName,
        support_type: String,
    ) -> Result<Option<String>, AwsError> {
        // The upgrade policy alone: an UpgradePolicyUpdate is its own type of update (EKS API
        // reference, `UpdateParamType` `UpgradePolicy`; see update_cluster_subnets).
        let out = self
            .eks
            .update_cluster_config()
            .name(name.into_inner())
            .upgrade_policy(upgrade_policy(&support_type))
            .send()
            .await
            .aws("UpdateClusterConfig")?;
        Ok(out.update().and_then(|u| u.id()).map(str::to_owned))
    }

    async fn upgrade_insights(&self, cluster: ClusterName) -> Result<Vec<Insight>, AwsError> {
        let filter = aws_sdk_eks::types::InsightsFilter::builder()
            .categories(aws_sdk_eks::types::Category::UpgradeReadiness)
            .build();
        let mut pages =
            self.eks.list_insights().cluster_name(cluster.into_inner()).filter(filter).into_paginator().send();
        let mut out = Vec::new();
        while let Some(page) = pages.next().await {
            for i in page.aws("ListInsights")?.insights() {
                out.push(Insight {
                    id: i.id().unwrap_or_default().to_owned(),
                    name: i.name().unwrap_or_default().to_owned(),
                    kubernetes_version: i.kubernetes_version().unwrap_or_default().to_owned(),
                    status: i
                        .insight_status()
                        .and_then(|s| s.status())
                        .map(|s| s.as_str().to_owned())
                        .unwrap_or_default(),
                    reason: i.insight_status().and_then(|s| s.reason()).unwrap_or_default().to_owned(),
                    description: i.description().unwrap_or_default().to_owned(),
                });
            }
        }
        Ok(out)
    }

    async fn describe_update(&self, cluster: ClusterName, update_id: String) -> Result<Option<UpdateInfo>, AwsError> {
        let out = found(
            self.eks
                .describe_update()
                .name(cluster.into_inner())
                .update_id(update_id)
                .send()
                .await
                .aws("DescribeUpdate"),
        )?;
        Ok(out.and_then(|o| {
            o.update().map(|u| UpdateInfo {
                id: u.id().unwrap_or_default().to_owned(),
                status: u.status().map(|s| s.as_str().to_owned()).unwrap_or_default(),
                kind: u.r#type().map(|t| t.as_str().to_owned()).unwrap_or_default(),
                errors: u
                    .errors()
                    .iter()
                    .map(|e| {
                        format!(
                            "{}: {}",
                            e.error_code().map(|c| c.as_str()).unwrap_or("?"),
                            e.error_message().unwrap_or_default()
                        )
                    })
                    .collect(),
            })
        }))
    }

    async fn tag_resource(&self, arn: Arn, tags: Tags) -> Result<(), AwsError> {
        self.eks
            .tag_resource()
            .resource_arn(arn.into_inner())
            .set_tags(Some(to_hash(&tags)))
            .send()
            .await
            .aws("TagResource")?;
        Ok(())
    }

    async fn delete_cluster(&self, name: ClusterName) -> Result<(), AwsError> {
        self.eks.delete_cluster().name(name.into_inner()).send().await.aws("DeleteCluster")?;
        Ok(())
    }

    async fn list_nodegroups(&self, cluster: ClusterName) -> Result<Vec<String>, AwsError> {
        self.eks
            .list_nodegroups()
            .cluster_name(cluster.as_str())
            .into_paginator()
            .items()
            .send()
            .try_collect()
            .await
            .aws("ListNodegroups")
    }

    async fn describe_nodegroup(&self, cluster: ClusterName, name: String) -> Result<Option<NodegroupInfo>, AwsError> {
        let out = found(
            self.eks
                .describe_nodegroup()
                .cluster_name(cluster.into_inner())
                .nodegroup_name(name)
                .send()
                .await
                .aws("DescribeNodegroup"),
        )?;
        Ok(out.and_then(|o| o.nodegroup().map(nodegroup_info)))
    }

    async fn create_nodegroup(&self, c: NodegroupCreate) -> Result<NodegroupInfo, AwsError> {
        let out = self
            .eks
            .create_nodegroup()
            .cluster_name(c.cluster.into_inner())
            .nodegroup_name(c.name)
            .node_role(c.node_role.into_inner())
            .set_subnets(Some(c.subnet_ids.into_iter().map(SubnetId::into_inner).collect()))
            .set_instance_types(Some(c.instance_types))
            .ami_type(aws_sdk_eks::types::AmiTypes::from(c.ami_type.as_str()))
            .scaling_config(
                NodegroupScalingConfig::builder().min_size(c.min).max_size(c.max).desired_size(c.desired).build(),
            )
            .set_labels(Some(c.labels.into_iter().collect()))
            .launch_template(
                LaunchTemplateSpecification::builder().id(c.launch_template.0).version(c.launch_template.1).build(),
            )
            .version(c.version)
            .set_tags(Some(to_hash(&c.tags)))
            .client_request_token(c.client_request_token)
            .send()
            .await
            .aws("CreateNodegroup")?;
        out.nodegroup()
            .map(nodegroup_info)
            .ok_or_else(|| AwsError::new("CreateNodegroup", "EmptyResponse", "no node group in the response"))
    }

    async fn update_nodegroup_config(&self, u: NodegroupConfigUpdate) -> Result<(), AwsError> {
        let NodegroupConfigUpdate { cluster, name, scaling, add_labels, remove_labels } = u;
        let mut req = self.eks.update_nodegroup_config().cluster_name(cluster.into_inner()).nodegroup_name(name);
        if let Some((min, max, desired)) = scaling {
            // desiredSize only when it must move into the new range: when Cluster Autoscaler
            // runs, "you shouldn't change the desiredSize value directly" (EKS API reference,
            // NodegroupScalingConfig); on update every property is optional.
            req = req.scaling_config(
                NodegroupScalingConfig::builder().min_size(min).max_size(max).set_desired_size(desired).build(),
            );
        }
        if !add_labels.is_empty() || !remove_labels.is_empty() {
            req = req.labels(
                UpdateLabelsPayload::builder()
                    .set_add_or_update_labels((!add_labels.is_empty()).then(|| add_labels.into_iter().collect()))
                    .set_remove_labels((!remove_labels.is_empty()).then_some(remove_labels))
                    .build(),
            );
        }
        req.send().await.aws("UpdateNodegroupConfig")?;
        Ok(())
    }

    async fn update_nodegroup_version(&self, u: NodegroupVersionUpdate) -> Result<(), AwsError> {
        let NodegroupVersionUpdate { cluster, name, version, launch_template } = u;
        self.eks
            .update_nodegroup_version()
            .cluster_name(cluster.into_inner())
            .nodegroup_name(name)
            .set_version(version)
            .set_launch_template(
                launch_template.map(|(id, v)| LaunchTemplateSpecification::builder().id(id).version(v).build()),
            )
            .send()
            .await
            .aws("UpdateNodegroupVersion")?;
        Ok(())
    }

    async fn delete_nodegroup(&self, cluster: ClusterName, name: String) -> Result<(), AwsError> {
        self.eks
            .delete_nodegroup()
            .cluster_name(cluster.into_inner())
            .nodegroup_name(name)
            .send()
            .await
            .aws("DeleteNodegroup")?;
        Ok(())
    }

    async fn list_addons(&self, cluster: ClusterName) -> Result<Vec<String>, AwsError> {
        self.eks
            .list_addons()
            .cluster_name(cluster.as_str())
            .into_paginator()
            .items()
            .send()
            .try_collect()
            .await
            .aws("ListAddons")
    }

    async fn describe_addon(&self, cluster: ClusterName, name: String) -> Result<Option<AddonInfo>, AwsError> {
        let out = found(
            self.eks
                .describe_addon()
                .cluster_name(cluster.into_inner())
                .addon_name(name)
                .send()
                .await
                .aws("DescribeAddon"),
        )?;
        Ok(out.and_then(|o| {
            o.addon().map(|a| AddonInfo {
                name: a.addon_name().unwrap_or_default().to_owned(),
                version: a.addon_version().unwrap_or_default().to_owned(),
                status: a.status().map(|s| Status::parse(s.as_str())).unwrap_or_default(),
                tags: hash_tags(a.tags()),
                pod_identity_associations: a.pod_identity_associations().to_vec(),
            })
        }))
    }

    async fn addon_versions(&self, name: String, kubernetes_version: String) -> Result<AddonVersions, AwsError> {
        let out = self
            .eks
            .describe_addon_versions()
            .addon_name(&name)
            .kubernetes_version(&kubernetes_version)
            .send()
            .await
            .aws("DescribeAddonVersions")?;
        let mut versions = AddonVersions::default();
        for v in out.addons().iter().flat_map(|a| a.addon_versions()) {
            let Some(version) = v.addon_version() else { continue };
            let on_this =
                v.compatibilities().iter().filter(|c| c.cluster_version() == Some(kubernetes_version.as_str()));
            let mut compatible = false;
            for c in on_this {
                compatible = true;
                if c.default_version() && versions.default.is_none() {
                    versions.default = Some(version.to_owned());
                }
            }
            if compatible {
                versions.compatible.push(version.to_owned());
            }
        }
        Ok(versions)
    }

    async fn create_addon(
        &self,
        cluster: ClusterName,
        name: String,
        version: String,
        tags: Tags,
        role: Option<AddonRole>,
    ) -> Result<(), AwsError> {
        self.eks
            .create_addon()
            .cluster_name(cluster.into_inner())
            .addon_name(name)
            .addon_version(version)
            .resolve_conflicts(ResolveConflicts::Overwrite)
            .set_tags(Some(to_hash(&tags)))
            .set_pod_identity_associations(pod_identity(role)?)
            .send()
            .await
            .aws("CreateAddon")?;
        Ok(())
    }

    async fn update_addon(
        &self,
        cluster: ClusterName,
        name: String,
        version: String,
        role: Option<AddonRole>,
    ) -> Result<(), AwsError> {
        self.eks
            .update_addon()
            .cluster_name(cluster.into_inner())
            .addon_name(name)
            .addon_version(version)
            .resolve_conflicts(ResolveConflicts::Preserve)
            .set_pod_identity_associations(pod_identity(role)?)
            .send()
            .await
            .aws("UpdateAddon")?;
        Ok(())
    }

    async fn delete_addon(&self, cluster: ClusterName, name: String) -> Result<(), AwsError> {
        self.eks.delete_addon().cluster_name(cluster.into_inner()).addon_name(name).send().await.aws("DeleteAddon")?;
        Ok(())
    }

    async fn list_access_entries(&self, cluster: ClusterName) -> Result<Vec<String>, AwsError> {
        self.eks
            .list_access_entries()
            .cluster_name(cluster.as_str())
            .into_paginator()
            .items()
            .send()
            .try_collect()
            .await
            .aws("ListAccessEntries")
    }

    async fn list_access_policies(&self, cluster: ClusterName, principal: Arn) -> Result<Vec<String>, AwsError> {
        let out = self
            .eks
            .list_associated_access_policies()
            .cluster_name(cluster.into_inner())
            .principal_arn(principal.into_inner())
            .send()
            .await
            .aws("ListAssociatedAccessPolicies")?;
        Ok(out.associated_access_policies().iter().filter_map(|p| p.policy_arn().map(str::to_owned)).collect())
    }

    async fn create_access_entry(&self, cluster: ClusterName, principal: Arn, tags: Tags) -> Result<(), AwsError> {
        self.eks
            .create_access_entry()
            .cluster_name(cluster.into_inner())
            .principal_arn(principal.into_inner())
            .set_tags(Some(to_hash(&tags)))
            .send()
            .await
            .aws("CreateAccessEntry")?;
        Ok(())
    }

    async fn associate_access_policy(
        &self,
        cluster: ClusterName,
        principal: Arn,
        policy_arn: Arn,
    ) -> Result<(), AwsError> {
        self.eks
            .associate_access_policy()
            .cluster_name(cluster.into_inner())
            .principal_arn(principal.into_inner())
            .policy_arn(policy_arn.into_inner())
            .access_scope(AccessScope::builder().r#type(AccessScopeType::Cluster).build())
            .send()
            .await
            .aws("AssociateAccessPolicy")?;
        Ok(())
    }

    async fn delete_access_entry(&self, cluster: ClusterName, principal: Arn) -> Result<(), AwsError> {
        self.eks
            .delete_access_entry()
            .cluster_name(cluster.into_inner())
            .principal_arn(principal.into_inner())
            .send()
            .await
            .aws("DeleteAccessEntry")?;
        Ok(())
    }
}
