//! [`EksApi`] over the AWS SDK clients for EKS, IAM, KMS and EC2.

use std::collections::{BTreeMap, HashMap};

use async_trait::async_trait;
use aws_sdk_ec2::types::{
    Filter, LaunchTemplateBlockDeviceMappingRequest, LaunchTemplateEbsBlockDeviceRequest,
    LaunchTemplateHttpTokensState, LaunchTemplateInstanceMetadataEndpointState,
    LaunchTemplateInstanceMetadataOptionsRequest, RequestLaunchTemplateData, ResourceType, TagSpecification,
    VolumeType,
};
use aws_sdk_eks::types::{
    AccessScope, AccessScopeType, AddonPodIdentityAssociations, AuthenticationMode, CreateAccessConfigRequest,
    EncryptionConfig, LaunchTemplateSpecification, LogSetup, LogType, Logging, NodegroupScalingConfig, Provider,
    ResolveConflicts, UpdateLabelsPayload, VpcConfigRequest,
};
use dify_stack_core::{AwsError, AwsResultExt, Tags};

use crate::client::{
    AddonInfo, AddonRole, ClusterCreate, ClusterInfo, EksApi, KeyInfo, LaunchTemplateData, LaunchTemplateInfo,
    LogGroupInfo, NodegroupCreate, NodegroupInfo, RoleInfo, SecurityGroupInfo,
};

/// The `podIdentityAssociations` of CreateAddon / UpdateAddon (EKS user guide, "Use Pod
/// Identities to assign an IAM role to an Amazon EKS add-on": given on update, they replace the
/// add-on's earlier associations).
fn pod_identity(role: Option<AddonRole>) -> Result<Option<Vec<AddonPodIdentityAssociations>>, AwsError> {
    role.map(|r| {
        AddonPodIdentityAssociations::builder()
            .service_account(r.service_account)
            .role_arn(r.role_arn)
            .build()
            .map(|a| vec![a])
            .map_err(|e| AwsError::new("CreateAddon", "InvalidParameter", e.to_string()))
    })
    .transpose()
}

/// The real clients.
#[derive(Debug, Clone)]
pub struct SdkEks {
    eks: aws_sdk_eks::Client,
    iam: aws_sdk_iam::Client,
    kms: aws_sdk_kms::Client,
    ec2: aws_sdk_ec2::Client,
    logs: aws_sdk_cloudwatchlogs::Client,
}

impl SdkEks {
    /// Builds the clients from shared SDK configuration.
    pub fn from_conf(config: &aws_types::SdkConfig) -> SdkEks {
        SdkEks {
            eks: aws_sdk_eks::Client::new(config),
            iam: aws_sdk_iam::Client::new(config),
            kms: aws_sdk_kms::Client::new(config),
            ec2: aws_sdk_ec2::Client::new(config),
            logs: aws_sdk_cloudwatchlogs::Client::new(config),
        }
    }
}

fn hash_tags(tags: Option<&HashMap<String, String>>) -> Tags {
    tags.map(|t| t.iter().map(|(k, v)| (k.clone(), v.clone())).collect()).unwrap_or_default()
}

fn to_hash(tags: &Tags) -> HashMap<String, String> {
    tags.iter().map(|(k, v)| (k.clone(), v.clone())).collect()
}

fn ec2_tags(tags: &[aws_sdk_ec2::types::Tag]) -> Tags {
    tags.iter().filter_map(|t| Some((t.key()?.to_owned(), t.value()?.to_owned()))).collect()
}

fn ec2_tag_spec(kind: ResourceType, tags: &Tags) -> TagSpecification {
    TagSpecification::builder()
        .resource_type(kind)
        .set_tags(Some(tags.iter().map(|(k, v)| aws_sdk_ec2::types::Tag::builder().key(k).value(v).build()).collect()))
        .build()
}

fn not_found<T>(result: Result<T, AwsError>) -> Result<Option<T>, AwsError> {
    match result {
        Ok(v) => Ok(Some(v)),
        Err(e) if e.is_not_found() => Ok(None),
        Err(e) => Err(e),
    }
}

fn cluster_info(c: &aws_sdk_eks::types::Cluster) -> ClusterInfo {
    let vpc = c.resources_vpc_config();
    let enabled_logs = c
        .logging()
        .map(|l| {
            l.cluster_logging()
                .iter()
                .filter(|s| s.enabled() == Some(true))
                .flat_map(|s| s.types().iter().map(|t| t.as_str().to_owned()))
                .collect()
        })
        .unwrap_or_default();
    ClusterInfo {
        name: c.name().unwrap_or_default().to_owned(),
        arn: c.arn().unwrap_or_default().to_owned(),
        status: c.status().map(|s| s.as_str().to_owned()).unwrap_or_default(),
        version: c.version().unwrap_or_default().to_owned(),
        endpoint: c.endpoint().map(str::to_owned),
        ca_data: c.certificate_authority().and_then(|a| a.data()).map(str::to_owned),
        oidc_issuer: c.identity().and_then(|i| i.oidc()).and_then(|o| o.issuer()).map(str::to_owned),
        cluster_security_group_id: vpc.and_then(|v| v.cluster_security_group_id()).map(str::to_owned),
        subnet_ids: vpc.map(|v| v.subnet_ids().to_vec()).unwrap_or_default(),
        security_group_ids: vpc.map(|v| v.security_group_ids().to_vec()).unwrap_or_default(),
        endpoint_private: vpc.is_some_and(|v| v.endpoint_private_access()),
        endpoint_public: vpc.is_some_and(|v| v.endpoint_public_access()),
        public_access_cidrs: vpc.map(|v| v.public_access_cidrs().to_vec()).unwrap_or_default(),
        enabled_logs,
        secrets_key_arn: c
            .encryption_config()
            .iter()
            .find(|e| e.resources().iter().any(|r| r == "secrets"))
            .and_then(|e| e.provider())
            .and_then(|p| p.key_arn())
            .map(str::to_owned),
        authentication_mode: c.access_config().and_then(|a| a.authentication_mode()).map(|m| m.as_str().to_owned()),
        role_arn: c.role_arn().unwrap_or_default().to_owned(),
        tags: hash_tags(c.tags()),
    }
}

fn nodegroup_info(n: &aws_sdk_eks::types::Nodegroup) -> NodegroupInfo {
    let scaling = n.scaling_config();
    NodegroupInfo {
        name: n.nodegroup_name().unwrap_or_default().to_owned(),
        arn: n.nodegroup_arn().unwrap_or_default().to_owned(),
        status: n.status().map(|s| s.as_str().to_owned()).unwrap_or_default(),
        version: n.version().map(str::to_owned),
        ami_type: n.ami_type().map(|a| a.as_str().to_owned()).unwrap_or_default(),
        instance_types: n.instance_types().to_vec(),
        min: scaling.and_then(|s| s.min_size()).unwrap_or_default(),
        max: scaling.and_then(|s| s.max_size()).unwrap_or_default(),
        desired: scaling.and_then(|s| s.desired_size()).unwrap_or_default(),
        subnet_ids: n.subnets().to_vec(),
        labels: n.labels().map(|l| l.iter().map(|(k, v)| (k.clone(), v.clone())).collect()).unwrap_or_default(),
        launch_template: n
            .launch_template()
            .and_then(|t| Some((t.id()?.to_owned(), t.version().unwrap_or("$Default").to_owned()))),
        node_role: n.node_role().unwrap_or_default().to_owned(),
        issues: n
            .health()
            .map(|h| {
                h.issues()
                    .iter()
                    .map(|i| {
                        format!("{}: {}", i.code().map(|c| c.as_str()).unwrap_or("?"), i.message().unwrap_or_default())
                    })
                    .collect()
            })
            .unwrap_or_default(),
        tags: hash_tags(n.tags()),
    }
}

fn vpc_config(subnet_ids: Vec<String>, public_access_cidrs: Vec<String>) -> VpcConfigRequest {
    let public = !public_access_cidrs.is_empty();
    VpcConfigRequest::builder()
        .set_subnet_ids(Some(subnet_ids))
        .endpoint_private_access(true)
        .endpoint_public_access(public)
        .set_public_access_cidrs(public.then_some(public_access_cidrs))
        .build()
}

fn logging(enabled: Vec<String>, disabled: Vec<String>) -> Logging {
    let setup = |types: Vec<String>, on: bool| {
        LogSetup::builder()
            .set_types(Some(types.iter().map(|t| LogType::from(t.as_str())).collect()))
            .enabled(on)
            .build()
    };
    let mut b = Logging::builder();
    if !enabled.is_empty() {
        b = b.cluster_logging(setup(enabled, true));
    }
    if !disabled.is_empty() {
        b = b.cluster_logging(setup(disabled, false));
    }
    b.build()
}

fn lt_request(data: &LaunchTemplateData) -> RequestLaunchTemplateData {
    RequestLaunchTemplateData::builder()
        .metadata_options(
            LaunchTemplateInstanceMetadataOptionsRequest::builder()
                .http_endpoint(LaunchTemplateInstanceMetadataEndpointState::Enabled)
                .http_tokens(LaunchTemplateHttpTokensState::from(data.http_tokens.as_str()))
                .http_put_response_hop_limit(data.hop_limit)
                .build(),
        )
        .block_device_mappings(
            LaunchTemplateBlockDeviceMappingRequest::builder()
                .device_name("/dev/xvda")
                .ebs(
                    LaunchTemplateEbsBlockDeviceRequest::builder()
                        .volume_type(VolumeType::from(data.volume_type.as_str()))
                        .volume_size(data.volume_size)
                        .encrypted(data.encrypted)
                        .delete_on_termination(true)
                        .build(),
                )
                .build(),
        )
        .set_security_group_ids((!data.security_group_ids.is_empty()).then(|| data.security_group_ids.clone()))
        .build()
}

fn lt_data(d: &aws_sdk_ec2::types::ResponseLaunchTemplateData) -> LaunchTemplateData {
    let md = d.metadata_options();
    let ebs = d.block_device_mappings().first().and_then(|b| b.ebs());
    LaunchTemplateData {
        http_tokens: md.and_then(|m| m.http_tokens()).map(|t| t.as_str().to_owned()).unwrap_or_default(),
        hop_limit: md.and_then(|m| m.http_put_response_hop_limit()).unwrap_or_default(),
        volume_type: ebs.and_then(|e| e.volume_type()).map(|t| t.as_str().to_owned()).unwrap_or_default(),
        volume_size: ebs.and_then(|e| e.volume_size()).unwrap_or_default(),
        encrypted: ebs.and_then(|e| e.encrypted()).unwrap_or(false),
        security_group_ids: d.security_group_ids().to_vec(),
    }
}

#[async_trait]
impl EksApi for SdkEks {
    async fn describe_cluster(&self, name: String) -> Result<Option<ClusterInfo>, AwsError> {
        let out = not_found(self.eks.describe_cluster().name(name).send().await.aws("DescribeCluster"))?;
        Ok(out.and_then(|o| o.cluster().map(cluster_info)))
    }

    async fn create_cluster(&self, c: ClusterCreate) -> Result<ClusterInfo, AwsError> {
        let out = self
            .eks
            .create_cluster()
            .name(&c.name)
            .version(c.version)
            .role_arn(c.role_arn)
            .resources_vpc_config(vpc_config(c.subnet_ids, c.public_access_cidrs))
            .logging(logging(c.log_types, Vec::new()))
            .encryption_config(
                EncryptionConfig::builder()
                    .resources("secrets")
                    .provider(Provider::builder().key_arn(c.key_arn).build())
                    .build(),
            )
            .access_config(
                CreateAccessConfigRequest::builder()
                    .authentication_mode(AuthenticationMode::ApiAndConfigMap)
                    .bootstrap_cluster_creator_admin_permissions(true)
                    .build(),
            )
            .client_request_token(c.client_request_token)
            .set_tags(Some(to_hash(&c.tags)))
            .send()
            .await
            .aws("CreateCluster")?;
        out.cluster()
            .map(cluster_info)
            .ok_or_else(|| AwsError::new("CreateCluster", "EmptyResponse", "no cluster in the response"))
    }

    async fn update_cluster_endpoint(
        &self,
        name: String,
        subnet_ids: Vec<String>,
        public_access_cidrs: Vec<String>,
    ) -> Result<(), AwsError> {
        self.eks
            .update_cluster_config()
            .name(name)
            .resources_vpc_config(vpc_config(subnet_ids, public_access_cidrs))
            .send()
            .await
            .aws("UpdateClusterConfig")?;
        Ok(())
    }

    async fn update_cluster_logging(
        &self,
        name: String,
        enabled: Vec<String>,
        disabled: Vec<String>,
    ) -> Result<(), AwsError> {
        self.eks
            .update_cluster_config()
            .name(name)
            .logging(logging(enabled, disabled))
            .send()
            .await
            .aws("UpdateClusterConfig")?;
        Ok(())
    }

    async fn update_cluster_version(&self, name: String, version: String) -> Result<(), AwsError> {
        self.eks.update_cluster_version().name(name).version(version).send().await.aws("UpdateClusterVersion")?;
        Ok(())
    }

    async fn tag_resource(&self, arn: String, tags: Tags) -> Result<(), AwsError> {
        self.eks.tag_resource().resource_arn(arn).set_tags(Some(to_hash(&tags))).send().await.aws("TagResource")?;
        Ok(())
    }

    async fn delete_cluster(&self, name: String) -> Result<(), AwsError> {
        self.eks.delete_cluster().name(name).send().await.aws("DeleteCluster")?;
        Ok(())
    }

    async fn list_nodegroups(&self, cluster: String) -> Result<Vec<String>, AwsError> {
        self.eks
            .list_nodegroups()
            .cluster_name(&cluster)
            .into_paginator()
            .items()
            .send()
            .try_collect()
            .await
            .aws("ListNodegroups")
    }

    async fn describe_nodegroup(&self, cluster: String, name: String) -> Result<Option<NodegroupInfo>, AwsError> {
        let out = not_found(
            self.eks
                .describe_nodegroup()
                .cluster_name(cluster)
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
            .cluster_name(c.cluster)
            .nodegroup_name(c.name)
            .node_role(c.node_role)
            .set_subnets(Some(c.subnet_ids))
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

    async fn update_nodegroup_config(
        &self,
        cluster: String,
        name: String,
        scaling: Option<(i32, i32, i32)>,
        add_labels: BTreeMap<String, String>,
        remove_labels: Vec<String>,
    ) -> Result<(), AwsError> {
        let mut req = self.eks.update_nodegroup_config().cluster_name(cluster).nodegroup_name(name);
        if let Some((min, max, desired)) = scaling {
            req = req.scaling_config(
                NodegroupScalingConfig::builder().min_size(min).max_size(max).desired_size(desired).build(),
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

    async fn update_nodegroup_version(
        &self,
        cluster: String,
        name: String,
        version: Option<String>,
        launch_template: Option<(String, String)>,
    ) -> Result<(), AwsError> {
        self.eks
            .update_nodegroup_version()
            .cluster_name(cluster)
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

    async fn delete_nodegroup(&self, cluster: String, name: String) -> Result<(), AwsError> {
        self.eks.delete_nodegroup().cluster_name(cluster).nodegroup_name(name).send().await.aws("DeleteNodegroup")?;
        Ok(())
    }

    async fn list_addons(&self, cluster: String) -> Result<Vec<String>, AwsError> {
        self.eks
            .list_addons()
            .cluster_name(&cluster)
            .into_paginator()
            .items()
            .send()
            .try_collect()
            .await
            .aws("ListAddons")
    }

    async fn describe_addon(&self, cluster: String, name: String) -> Result<Option<AddonInfo>, AwsError> {
        let out = not_found(
            self.eks.describe_addon().cluster_name(cluster).addon_name(name).send().await.aws("DescribeAddon"),
        )?;
        Ok(out.and_then(|o| {
            o.addon().map(|a| AddonInfo {
                name: a.addon_name().unwrap_or_default().to_owned(),
                version: a.addon_version().unwrap_or_default().to_owned(),
                status: a.status().map(|s| s.as_str().to_owned()).unwrap_or_default(),
                tags: hash_tags(a.tags()),
                pod_identity_associations: a.pod_identity_associations().to_vec(),
            })
        }))
    }

    async fn default_addon_version(
        &self,
        name: String,
        kubernetes_version: String,
    ) -> Result<Option<String>, AwsError> {
        let out = self
            .eks
            .describe_addon_versions()
            .addon_name(name)
            .kubernetes_version(&kubernetes_version)
            .send()
            .await
            .aws("DescribeAddonVersions")?;
        Ok(out.addons().iter().flat_map(|a| a.addon_versions()).find_map(|v| {
            v.compatibilities()
                .iter()
                .any(|c| c.default_version() && c.cluster_version() == Some(kubernetes_version.as_str()))
                .then(|| v.addon_version().map(str::to_owned))
                .flatten()
        }))
    }

    async fn create_addon(
        &self,
        cluster: String,
        name: String,
        version: String,
        tags: Tags,
        role: Option<AddonRole>,
    ) -> Result<(), AwsError> {
        self.eks
            .create_addon()
            .cluster_name(cluster)
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
        cluster: String,
        name: String,
        version: String,
        role: Option<AddonRole>,
    ) -> Result<(), AwsError> {
        self.eks
            .update_addon()
            .cluster_name(cluster)
            .addon_name(name)
            .addon_version(version)
            .resolve_conflicts(ResolveConflicts::Overwrite)
            .set_pod_identity_associations(pod_identity(role)?)
            .send()
            .await
            .aws("UpdateAddon")?;
        Ok(())
    }

    async fn delete_addon(&self, cluster: String, name: String) -> Result<(), AwsError> {
        self.eks.delete_addon().cluster_name(cluster).addon_name(name).send().await.aws("DeleteAddon")?;
        Ok(())
    }

    async fn list_access_entries(&self, cluster: String) -> Result<Vec<String>, AwsError> {
        self.eks
            .list_access_entries()
            .cluster_name(&cluster)
            .into_paginator()
            .items()
            .send()
            .try_collect()
            .await
            .aws("ListAccessEntries")
    }

    async fn list_access_policies(&self, cluster: String, principal: String) -> Result<Vec<String>, AwsError> {
        let out = self
            .eks
            .list_associated_access_policies()
            .cluster_name(cluster)
            .principal_arn(principal)
            .send()
            .await
            .aws("ListAssociatedAccessPolicies")?;
        Ok(out.associated_access_policies().iter().filter_map(|p| p.policy_arn().map(str::to_owned)).collect())
    }

    async fn create_access_entry(&self, cluster: String, principal: String, tags: Tags) -> Result<(), AwsError> {
        self.eks
            .create_access_entry()
            .cluster_name(cluster)
            .principal_arn(principal)
            .set_tags(Some(to_hash(&tags)))
            .send()
            .await
            .aws("CreateAccessEntry")?;
        Ok(())
    }

    async fn associate_access_policy(
        &self,
        cluster: String,
        principal: String,
        policy_arn: String,
    ) -> Result<(), AwsError> {
        self.eks
            .associate_access_policy()
            .cluster_name(cluster)
            .principal_arn(principal)
            .policy_arn(policy_arn)
            .access_scope(AccessScope::builder().r#type(AccessScopeType::Cluster).build())
            .send()
            .await
            .aws("AssociateAccessPolicy")?;
        Ok(())
    }

    async fn delete_access_entry(&self, cluster: String, principal: String) -> Result<(), AwsError> {
        self.eks
            .delete_access_entry()
            .cluster_name(cluster)
            .principal_arn(principal)
            .send()
            .await
            .aws("DeleteAccessEntry")?;
        Ok(())
    }

    async fn get_role(&self, name: String) -> Result<Option<RoleInfo>, AwsError> {
        let Some(out) = not_found(self.iam.get_role().role_name(&name).send().await.aws("GetRole"))? else {
            return Ok(None);
        };
        let Some(role) = out.role() else { return Ok(None) };
        let attached = self
            .iam
            .list_attached_role_policies()
            .role_name(&name)
            .send()
            .await
            .aws("ListAttachedRolePolicies")?
            .attached_policies()
            .iter()
            .filter_map(|p| p.policy_arn().map(str::to_owned))
            .collect();
        Ok(Some(RoleInfo {
            name: role.role_name().to_owned(),
            arn: role.arn().to_owned(),
            trust: percent_encoding::percent_decode_str(role.assume_role_policy_document().unwrap_or_default())
                .decode_utf8_lossy()
                .into_owned(),
            attached,
            tags: role.tags().iter().map(|t| (t.key().to_owned(), t.value().to_owned())).collect(),
        }))
    }

    async fn create_role(&self, name: String, trust: String, tags: Tags) -> Result<String, AwsError> {
        let out = self
            .iam
            .create_role()
            .role_name(name)
            .assume_role_policy_document(trust)
            .set_tags(Some(
                tags.iter()
                    .filter_map(|(k, v)| aws_sdk_iam::types::Tag::builder().key(k).value(v).build().ok())
                    .collect(),
            ))
            .send()
            .await
            .aws("CreateRole")?;
        Ok(out.role().map(|r| r.arn().to_owned()).unwrap_or_default())
    }

    async fn update_trust(&self, name: String, trust: String) -> Result<(), AwsError> {
        self.iam
            .update_assume_role_policy()
            .role_name(name)
            .policy_document(trust)
            .send()
            .await
            .aws("UpdateAssumeRolePolicy")?;
        Ok(())
    }

    async fn tag_role(&self, name: String, tags: Tags) -> Result<(), AwsError> {
        self.iam
            .tag_role()
            .role_name(name)
            .set_tags(Some(
                tags.iter()
                    .filter_map(|(k, v)| aws_sdk_iam::types::Tag::builder().key(k).value(v).build().ok())
                    .collect(),
            ))
            .send()
            .await
            .aws("TagRole")?;
        Ok(())
    }

    async fn attach_policy(&self, role: String, policy_arn: String) -> Result<(), AwsError> {
        self.iam.attach_role_policy().role_name(role).policy_arn(policy_arn).send().await.aws("AttachRolePolicy")?;
        Ok(())
    }

    async fn detach_policy(&self, role: String, policy_arn: String) -> Result<(), AwsError> {
        self.iam.detach_role_policy().role_name(role).policy_arn(policy_arn).send().await.aws("DetachRolePolicy")?;
        Ok(())
    }

    async fn delete_role(&self, name: String) -> Result<(), AwsError> {
        self.iam.delete_role().role_name(name).send().await.aws("DeleteRole")?;
        Ok(())
    }

    async fn find_key(&self, alias: String) -> Result<Option<KeyInfo>, AwsError> {
        let Some(out) =
            not_found(self.kms.describe_key().key_id(format!("alias/{alias}")).send().await.aws("DescribeKey"))?
        else {
            return Ok(None);
        };
        let Some(meta) = out.key_metadata() else { return Ok(None) };
        let tags = self
            .kms
            .list_resource_tags()
            .key_id(meta.key_id())
            .send()
            .await
            .aws("ListResourceTags")?
            .tags()
            .iter()
            .map(|t| (t.tag_key().to_owned(), t.tag_value().to_owned()))
            .collect();
        Ok(Some(KeyInfo {
            key_id: meta.key_id().to_owned(),
            arn: meta.arn().unwrap_or_default().to_owned(),
            state: meta.key_state().map(|s| s.as_str().to_owned()).unwrap_or_default(),
            tags,
        }))
    }

    async fn find_keys_by_tags(&self, want: Tags) -> Result<Vec<KeyInfo>, AwsError> {
        let mut found = Vec::new();
        let mut marker = None;
        loop {
            let page = self.kms.list_keys().set_marker(marker).send().await.aws("ListKeys")?;
            for k in page.keys() {
                let Some(id) = k.key_id() else { continue };
                let tags: Tags = match self.kms.list_resource_tags().key_id(id).send().await.aws("ListResourceTags") {
                    Ok(t) => t.tags().iter().map(|t| (t.tag_key().to_owned(), t.tag_value().to_owned())).collect(),
                    // AWS-managed keys refuse tag listing: not ours anyway.
                    Err(e) if e.kind == dify_stack_core::ErrorKind::AccessDenied || e.is_not_found() => continue,
                    Err(e) => return Err(e),
                };
                if want.iter().all(|(k, v)| tags.get(k) == Some(v)) {
                    let meta = self.kms.describe_key().key_id(id).send().await.aws("DescribeKey")?;
                    let Some(meta) = meta.key_metadata() else { continue };
                    found.push(KeyInfo {
                        key_id: id.to_owned(),
                        arn: meta.arn().unwrap_or_default().to_owned(),
                        state: meta.key_state().map(|s| s.as_str().to_owned()).unwrap_or_default(),
                        tags,
                    });
                }
            }
            marker = page.next_marker().map(str::to_owned);
            if marker.is_none() || !page.truncated() {
                return Ok(found);
            }
        }
    }

    async fn create_alias(&self, alias: String, key_id: String) -> Result<(), AwsError> {
        self.kms
            .create_alias()
            .alias_name(format!("alias/{alias}"))
            .target_key_id(key_id)
            .send()
            .await
            .aws("CreateAlias")?;
        Ok(())
    }

    async fn create_key(&self, alias: String, description: String, tags: Tags) -> Result<KeyInfo, AwsError> {
        let out = self
            .kms
            .create_key()
            .description(description)
            .set_tags(Some(
                tags.iter()
                    .filter_map(|(k, v)| aws_sdk_kms::types::Tag::builder().tag_key(k).tag_value(v).build().ok())
                    .collect(),
            ))
            .send()
            .await
            .aws("CreateKey")?;
        let meta =
            out.key_metadata().ok_or_else(|| AwsError::new("CreateKey", "EmptyResponse", "no key in the response"))?;
        let key_id = meta.key_id().to_owned();
        self.kms.enable_key_rotation().key_id(&key_id).send().await.aws("EnableKeyRotation")?;
        self.kms
            .create_alias()
            .alias_name(format!("alias/{alias}"))
            .target_key_id(&key_id)
            .send()
            .await
            .aws("CreateAlias")?;
        Ok(KeyInfo {
            key_id,
            arn: meta.arn().unwrap_or_default().to_owned(),
            state: meta.key_state().map(|s| s.as_str().to_owned()).unwrap_or_default(),
            tags,
        })
    }

    async fn restore_key(&self, key_id: String) -> Result<(), AwsError> {
        self.kms.cancel_key_deletion().key_id(&key_id).send().await.aws("CancelKeyDeletion")?;
        self.kms.enable_key().key_id(key_id).send().await.aws("EnableKey")?;
        Ok(())
    }

    async fn tag_key(&self, key_id: String, tags: Tags) -> Result<(), AwsError> {
        self.kms
            .tag_resource()
            .key_id(key_id)
            .set_tags(Some(
                tags.iter()
                    .filter_map(|(k, v)| aws_sdk_kms::types::Tag::builder().tag_key(k).tag_value(v).build().ok())
                    .collect(),
            ))
            .send()
            .await
            .aws("TagResource")?;
        Ok(())
    }

    async fn describe_log_group(&self, name: String) -> Result<Option<LogGroupInfo>, AwsError> {
        let out = self.logs.describe_log_groups().log_group_name_prefix(&name).send().await.aws("DescribeLogGroups")?;
        let Some(g) = out.log_groups().iter().find(|g| g.log_group_name() == Some(name.as_str())) else {
            return Ok(None);
        };
        let retention_days = g.retention_in_days();
        // ListTagsLogGroup takes the name (ListTagsForResource would need the ARN without its
        // ":*" suffix).
        #[allow(deprecated)]
        let tags = self.logs.list_tags_log_group().log_group_name(&name).send().await.aws("ListTagsLogGroup")?;
        Ok(Some(LogGroupInfo { name, retention_days, tags: hash_tags(tags.tags()) }))
    }

    async fn create_log_group(&self, name: String, tags: Tags) -> Result<(), AwsError> {
        self.logs
            .create_log_group()
            .log_group_name(name)
            .set_tags(Some(to_hash(&tags)))
            .send()
            .await
            .aws("CreateLogGroup")?;
        Ok(())
    }

    async fn put_log_retention(&self, name: String, days: i32) -> Result<(), AwsError> {
        self.logs
            .put_retention_policy()
            .log_group_name(name)
            .retention_in_days(days)
            .send()
            .await
            .aws("PutRetentionPolicy")?;
        Ok(())
    }

    async fn delete_log_group(&self, name: String) -> Result<(), AwsError> {
        self.logs.delete_log_group().log_group_name(name).send().await.aws("DeleteLogGroup")?;
        Ok(())
    }

    async fn schedule_key_deletion(&self, alias: String, key_id: String, days: i32) -> Result<(), AwsError> {
        if !alias.is_empty() {
            dify_stack_core::ignore_not_found(
                self.kms
                    .delete_alias()
                    .alias_name(format!("alias/{alias}"))
                    .send()
                    .await
                    .aws("DeleteAlias")
                    .map(|_| ()),
            )?;
        }
        self.kms
            .schedule_key_deletion()
            .key_id(key_id)
            .pending_window_in_days(days)
            .send()
            .await
            .aws("ScheduleKeyDeletion")?;
        Ok(())
    }

    async fn find_security_group(&self, vpc_id: String, name: String) -> Result<Option<SecurityGroupInfo>, AwsError> {
        let out = self
            .ec2
            .describe_security_groups()
            .filters(Filter::builder().name("vpc-id").values(vpc_id).build())
            .filters(Filter::builder().name("group-name").values(name).build())
            .send()
            .await
            .aws("DescribeSecurityGroups")?;
        Ok(out.security_groups().first().map(|g| SecurityGroupInfo {
            id: g.group_id().unwrap_or_default().to_owned(),
            name: g.group_name().unwrap_or_default().to_owned(),
            tags: ec2_tags(g.tags()),
        }))
    }

    async fn create_security_group(
        &self,
        vpc_id: String,
        name: String,
        description: String,
        tags: Tags,
    ) -> Result<String, AwsError> {
        let out = self
            .ec2
            .create_security_group()
            .vpc_id(vpc_id)
            .group_name(name)
            .description(description)
            .tag_specifications(ec2_tag_spec(ResourceType::SecurityGroup, &tags))
            .send()
            .await
            .aws("CreateSecurityGroup")?;
        Ok(out.group_id().unwrap_or_default().to_owned())
    }

    async fn delete_security_group(&self, id: String) -> Result<(), AwsError> {
        self.ec2.delete_security_group().group_id(id).send().await.aws("DeleteSecurityGroup")?;
        Ok(())
    }

    async fn find_launch_template(&self, name: String) -> Result<Option<LaunchTemplateInfo>, AwsError> {
        let out = not_found(
            self.ec2
                .describe_launch_templates()
                .launch_template_names(&name)
                .send()
                .await
                .aws("DescribeLaunchTemplates"),
        )?;
        let Some(lt) = out.as_ref().and_then(|o| o.launch_templates().first()) else { return Ok(None) };
        let id = lt.launch_template_id().unwrap_or_default().to_owned();
        let versions = self
            .ec2
            .describe_launch_template_versions()
            .launch_template_id(&id)
            .versions("$Latest")
            .send()
            .await
            .aws("DescribeLaunchTemplateVersions")?;
        let data = versions
            .launch_template_versions()
            .first()
            .and_then(|v| v.launch_template_data())
            .map(lt_data)
            .unwrap_or_default();
        Ok(Some(LaunchTemplateInfo {
            id,
            name: lt.launch_template_name().unwrap_or_default().to_owned(),
            latest_version: lt.latest_version_number().unwrap_or(1),
            data,
            tags: ec2_tags(lt.tags()),
        }))
    }

    async fn create_launch_template(
        &self,
        name: String,
        data: LaunchTemplateData,
        tags: Tags,
    ) -> Result<LaunchTemplateInfo, AwsError> {
        let out = self
            .ec2
            .create_launch_template()
            .launch_template_name(&name)
            .launch_template_data(lt_request(&data))
            .tag_specifications(ec2_tag_spec(ResourceType::LaunchTemplate, &tags))
            .send()
            .await
            .aws("CreateLaunchTemplate")?;
        let lt = out.launch_template();
        Ok(LaunchTemplateInfo {
            id: lt.and_then(|l| l.launch_template_id()).unwrap_or_default().to_owned(),
            name,
            latest_version: lt.and_then(|l| l.latest_version_number()).unwrap_or(1),
            data,
            tags,
        })
    }

    async fn update_launch_template(&self, id: String, data: LaunchTemplateData) -> Result<i64, AwsError> {
        let out = self
            .ec2
            .create_launch_template_version()
            .launch_template_id(&id)
            .launch_template_data(lt_request(&data))
            .send()
            .await
            .aws("CreateLaunchTemplateVersion")?;
        let version = out.launch_template_version().and_then(|v| v.version_number()).unwrap_or(1);
        self.ec2
            .modify_launch_template()
            .launch_template_id(id)
            .default_version(version.to_string())
            .send()
            .await
            .aws("ModifyLaunchTemplate")?;
        Ok(version)
    }

    async fn delete_launch_template(&self, id: String) -> Result<(), AwsError> {
        self.ec2.delete_launch_template().launch_template_id(id).send().await.aws("DeleteLaunchTemplate")?;
        Ok(())
    }
}
