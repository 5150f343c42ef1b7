//! The EKS tier's client traits over the AWS SDK clients for EKS, CloudWatch Logs, IAM, KMS and EC2 (one file per service).

use std::collections::HashMap;

use async_trait::async_trait;
use aws_sdk_ec2::types::{
    LaunchTemplateBlockDeviceMappingRequest, LaunchTemplateEbsBlockDeviceRequest, LaunchTemplateHttpTokensState,
    LaunchTemplateInstanceMetadataEndpointState, LaunchTemplateInstanceMetadataOptionsRequest,
    RequestLaunchTemplateData, ResourceType, VolumeType,
};
use aws_sdk_eks::types::{
    AccessScope, AccessScopeType, AddonPodIdentityAssociations, AuthenticationMode, CreateAccessConfigRequest,
    EncryptionConfig, LaunchTemplateSpecification, LogSetup, LogType, Logging, NodegroupScalingConfig, Provider,
    ResolveConflicts, SupportType, UpdateLabelsPayload, UpgradePolicyRequest, VpcConfigRequest,
};
use dify_stack_aws as shared;
use dify_stack_core::ids::{KmsKeyArn, SecurityGroupId, SubnetId};
use dify_stack_core::{AwsError, Tags, found};

use crate::client::{
    AddonInfo, AddonRole, AddonVersions, ClusterApi, ClusterCreate, ClusterInfo, Ec2Api, Insight, KeyInfo, KeysApi,
    LaunchTemplateData, LaunchTemplateInfo, LogGroupInfo, LogsApi, NetworkInterfaceInfo, NodegroupConfigUpdate,
    NodegroupCreate, NodegroupInfo, NodegroupVersionUpdate, RoleInfo, RolesApi, SecurityGroupInfo, SnapshotInfo,
    Status, TaggedResource, UpdateInfo, VolumeInfo,
};

mod ec2;
mod eks;
mod iam;
mod kms;
mod logs;

/// The `podIdentityAssociations` of CreateAddon / UpdateAddon (EKS user guide, "Use Pod
/// Identities to assign an IAM role to an Amazon EKS add-on": given on update, they replace the
/// add-on's earlier associations).
fn pod_identity(role: Option<AddonRole>) -> Result<Option<Vec<AddonPodIdentityAssociations>>, AwsError> {
    role.map(|r| {
        AddonPodIdentityAssociations::builder()
            .service_account(r.service_account)
            .role_arn(r.role_arn.into_inner())
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

fn cluster_info(c: &aws_sdk_eks::types::Cluster) -> ClusterInfo {
    let vpc = c.resources_vpc_config();
    let enabled_logs = dify_stack_aws::eks::enabled_log_types(c);
    ClusterInfo {
        name: c.name().unwrap_or_default().to_owned(),
        arn: c.arn().unwrap_or_default().to_owned(),
        status: c.status().map(|s| Status::parse(s.as_str())).unwrap_or_default(),
        version: c.version().unwrap_or_default().to_owned(),
        endpoint: c.endpoint().map(str::to_owned),
        ca_data: c.certificate_authority().and_then(|a| a.data()).map(str::to_owned),
        oidc_issuer: c.identity().and_then(|i| i.oidc()).and_then(|o| o.issuer()).map(str::to_owned),
        cluster_security_group_id: vpc.and_then(|v| v.cluster_security_group_id()).map(SecurityGroupId::new),
        subnet_ids: vpc.map(|v| v.subnet_ids().iter().map(SubnetId::new).collect()).unwrap_or_default(),
        security_group_ids: vpc
            .map(|v| v.security_group_ids().iter().map(SecurityGroupId::new).collect())
            .unwrap_or_default(),
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
            .map(KmsKeyArn::new),
        authentication_mode: c.access_config().and_then(|a| a.authentication_mode()).map(|m| m.as_str().to_owned()),
        role_arn: c.role_arn().unwrap_or_default().to_owned(),
        support_type: c.upgrade_policy().and_then(|u| u.support_type()).map(|s| s.as_str().to_owned()),
        tags: hash_tags(c.tags()),
    }
}

/// The `upgradePolicy` of CreateCluster / UpdateClusterConfig.
fn upgrade_policy(support_type: &str) -> UpgradePolicyRequest {
    UpgradePolicyRequest::builder().support_type(SupportType::from(support_type)).build()
}

fn nodegroup_info(n: &aws_sdk_eks::types::Nodegroup) -> NodegroupInfo {
    let scaling = n.scaling_config();
    NodegroupInfo {
        name: n.nodegroup_name().unwrap_or_default().to_owned(),
        arn: n.nodegroup_arn().unwrap_or_default().to_owned(),
        status: n.status().map(|s| Status::parse(s.as_str())).unwrap_or_default(),
        version: n.version().map(str::to_owned),
        ami_type: n.ami_type().map(|a| a.as_str().to_owned()).unwrap_or_default(),
        instance_types: n.instance_types().to_vec(),
        min: scaling.and_then(|s| s.min_size()).unwrap_or_default(),
        max: scaling.and_then(|s| s.max_size()).unwrap_or_default(),
        desired: scaling.and_then(|s| s.desired_size()).unwrap_or_default(),
        subnet_ids: n.subnets().iter().map(SubnetId::new).collect(),
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

fn vpc_config(subnet_ids: Vec<SubnetId>, public_access_cidrs: Vec<String>) -> VpcConfigRequest {
    let public = !public_access_cidrs.is_empty();
    VpcConfigRequest::builder()
        .set_subnet_ids(Some(subnet_ids.into_iter().map(SubnetId::into_inner).collect()))
        .endpoint_private_access(true)
        .endpoint_public_access(public)
        .set_public_access_cidrs(public.then_some(public_access_cidrs))
        .build()
}

/// The endpoint access alone (an EndpointAccessUpdate): private on, public on with its CIDRs, or
/// off when there are none.
fn endpoint_access(public_access_cidrs: Vec<String>) -> VpcConfigRequest {
    let public = !public_access_cidrs.is_empty();
    VpcConfigRequest::builder()
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
        .set_security_group_ids(
            (!data.security_group_ids.is_empty())
                .then(|| data.security_group_ids.iter().map(|g| g.as_str().to_owned()).collect()),
        )
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
        security_group_ids: d.security_group_ids().iter().map(SecurityGroupId::new).collect(),
    }
}
