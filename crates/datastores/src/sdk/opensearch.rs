//! OpenSearch Service.

use super::{AwsError, SdkDatastores, Tags, async_trait, found};
use crate::OpenSearchApi;
use crate::sdk::DomainConfig;
use crate::sdk::DomainInfo;
use crate::sdk::UpgradeStatusInfo;
use dify_stack_core::AwsResultExt;
use dify_stack_core::ids::{Arn, SecurityGroupId, SubnetId};
use secrecy::ExposeSecret;

pub(super) fn domain_info(d: &aws_sdk_opensearch::types::DomainStatus, tags: Tags) -> DomainInfo {
    let cc = d.cluster_config();
    let ebs = d.ebs_options();
    let vpc = d.vpc_options();
    let ep = d.domain_endpoint_options();
    DomainInfo {
        name: d.domain_name().to_owned(),
        arn: Arn::new(d.arn()),
        // An engine upgrade shows as UpgradeProcessing (OpenSearch API reference, "DomainStatus");
        // it blocks other changes as Processing does.
        processing: d.processing().unwrap_or(false) || d.upgrade_processing().unwrap_or(false),
        deleted: d.deleted().unwrap_or(false),
        engine_version: d.engine_version().unwrap_or_default().to_owned(),
        instance_type: cc.and_then(|c| c.instance_type()).map(|t| t.as_str().to_owned()).unwrap_or_default(),
        instance_count: cc.and_then(|c| c.instance_count()).unwrap_or_default(),
        zone_awareness: cc
            .filter(|c| c.zone_awareness_enabled() == Some(true))
            .map(|c| c.zone_awareness_config().and_then(|z| z.availability_zone_count()).unwrap_or(2)),
        volume: ebs.filter(|e| e.ebs_enabled() == Some(true)).map(|e| {
            (e.volume_type().map(|t| t.as_str().to_owned()).unwrap_or_default(), e.volume_size().unwrap_or(0))
        }),
        subnet_ids: vpc.map(|v| v.subnet_ids().iter().map(SubnetId::new).collect()).unwrap_or_default(),
        security_group_ids: vpc
            .map(|v| v.security_group_ids().iter().map(SecurityGroupId::new).collect())
            .unwrap_or_default(),
        vpc_endpoint: d.endpoints().and_then(|e| e.get("vpc")).cloned(),
        public_endpoint: d.endpoint().map(str::to_owned),
        at_rest_encryption: d.encryption_at_rest_options().and_then(|e| e.enabled()).unwrap_or(false),
        node_to_node: d.node_to_node_encryption_options().and_then(|e| e.enabled()).unwrap_or(false),
        enforce_https: ep.and_then(|e| e.enforce_https()).unwrap_or(false),
        tls_policy: ep.and_then(|e| e.tls_security_policy()).map(|t| t.as_str().to_owned()),
        fine_grained: d
            .advanced_security_options()
            .is_some_and(|a| a.enabled() == Some(true) && a.internal_user_database_enabled() == Some(true)),
        access_policy: d.access_policies().map(str::to_owned),
        tags,
    }
}

pub(super) fn domain_cluster(c: &DomainConfig) -> aws_sdk_opensearch::types::ClusterConfig {
    use aws_sdk_opensearch::types::{ClusterConfig, OpenSearchPartitionInstanceType, ZoneAwarenessConfig};
    ClusterConfig::builder()
        .instance_type(OpenSearchPartitionInstanceType::from(c.instance_type.as_str()))
        .instance_count(c.instance_count)
        .dedicated_master_enabled(false)
        .zone_awareness_enabled(c.zone_awareness.is_some())
        .set_zone_awareness_config(
            c.zone_awareness.map(|n| ZoneAwarenessConfig::builder().availability_zone_count(n).build()),
        )
        .build()
}

pub(super) fn domain_ebs(c: &DomainConfig) -> aws_sdk_opensearch::types::EbsOptions {
    aws_sdk_opensearch::types::EbsOptions::builder()
        .ebs_enabled(true)
        .volume_type(aws_sdk_opensearch::types::VolumeType::Gp3)
        .volume_size(c.volume_gib)
        .build()
}

pub(super) fn domain_vpc(c: &DomainConfig) -> aws_sdk_opensearch::types::VpcOptions {
    aws_sdk_opensearch::types::VpcOptions::builder()
        .set_subnet_ids(Some(c.subnet_ids.iter().map(|s| s.as_str().to_owned()).collect()))
        .security_group_ids(c.security_group_id.as_str())
        .build()
}

#[async_trait]
impl OpenSearchApi for SdkDatastores {
    async fn describe(&self, name: String) -> Result<Option<DomainInfo>, AwsError> {
        let out = found(self.search.describe_domain().domain_name(name).send().await.aws("DescribeDomain"))?;
        let Some(d) = out.as_ref().and_then(|o| o.domain_status()) else { return Ok(None) };
        let tags = self.search.list_tags().arn(d.arn()).send().await.aws("ListTags")?;
        let tags = tags.tag_list().iter().map(|t| (t.key().to_owned(), t.value().to_owned())).collect();
        Ok(Some(domain_info(d, tags)))
    }

    async fn service_linked_role_exists(&self) -> Result<bool, AwsError> {
        let role = self.iam.get_role().role_name(crate::opensearch::SERVICE_LINKED_ROLE).send().await.aws("GetRole");
        Ok(found(role)?.is_some())
    }

    async fn create_service_linked_role(&self) -> Result<(), AwsError> {
        self.iam
            .create_service_linked_role()
            .aws_service_name(crate::opensearch::SERVICE_LINKED_ROLE_SERVICE)
            .send()
            .await
            .aws("CreateServiceLinkedRole")?;
        Ok(())
    }

    async fn create(&self, c: DomainConfig) -> Result<DomainInfo, AwsError> {
        use aws_sdk_opensearch::types::*;
        let (user, password) = c.master.clone().unwrap_or_default();
        let out = self
            .search
            .create_domain()
            .domain_name(&c.name)
            .engine_version(&c.engine_version)
            .cluster_config(domain_cluster(&c))
            .ebs_options(domain_ebs(&c))
            .vpc_options(domain_vpc(&c))
            .encryption_at_rest_options(EncryptionAtRestOptions::builder().enabled(true).build())
            .node_to_node_encryption_options(NodeToNodeEncryptionOptions::builder().enabled(true).build())
            .domain_endpoint_options(
                DomainEndpointOptions::builder()
                    .enforce_https(true)
                    .tls_security_policy(TlsSecurityPolicy::PolicyMinTls12201907)
                    .build(),
            )
            .advanced_security_options(
                AdvancedSecurityOptionsInput::builder()
                    .enabled(true)
                    .internal_user_database_enabled(true)
                    .master_user_options(
                        MasterUserOptions::builder()
                            .master_user_name(user)
                            .master_user_password(password.expose_secret())
                            .build(),
                    )
                    .build(),
            )
            .access_policies(&c.access_policy)
            .set_tag_list(Some(
                c.tags.iter().filter_map(|(k, v)| Tag::builder().key(k).value(v).build().ok()).collect(),
            ))
            .send()
            .await
            .aws("CreateDomain")?;
        out.domain_status()
            .map(|d| domain_info(d, c.tags.clone()))
            .ok_or_else(|| AwsError::new("CreateDomain", "EmptyResponse", "no domain in the response"))
    }

    async fn update(&self, c: DomainConfig) -> Result<(), AwsError> {
        self.search
            .update_domain_config()
            .domain_name(&c.name)
            .cluster_config(domain_cluster(&c))
            .ebs_options(domain_ebs(&c))
            .vpc_options(domain_vpc(&c))
            .access_policies(&c.access_policy)
            .send()
            .await
            .aws("UpdateDomainConfig")?;
        Ok(())
    }

    async fn tag(&self, arn: Arn, tags: Tags) -> Result<(), AwsError> {
        self.search
            .add_tags()
            .arn(arn.into_inner())
            .set_tag_list(Some(
                tags.iter()
                    .filter_map(|(k, v)| aws_sdk_opensearch::types::Tag::builder().key(k).value(v).build().ok())
                    .collect(),
            ))
            .send()
            .await
            .aws("AddTags")?;
        Ok(())
    }

    async fn delete(&self, name: String) -> Result<(), AwsError> {
        self.search.delete_domain().domain_name(name).send().await.aws("DeleteDomain")?;
        Ok(())
    }

    async fn compatible_versions(&self, name: String) -> Result<Vec<(String, Vec<String>)>, AwsError> {
        let out = self.search.get_compatible_versions().domain_name(name).send().await.aws("GetCompatibleVersions")?;
        Ok(out
            .compatible_versions()
            .iter()
            .map(|m| (m.source_version().unwrap_or_default().to_owned(), m.target_versions().to_vec()))
            .collect())
    }

    async fn upgrade_domain(&self, name: String, target: String) -> Result<(), AwsError> {
        self.search
            .upgrade_domain()
            .domain_name(name)
            .target_version(target)
            .perform_check_only(false)
            .send()
            .await
            .aws("UpgradeDomain")?;
        Ok(())
    }

    async fn upgrade_status(&self, name: String) -> Result<Option<UpgradeStatusInfo>, AwsError> {
        let out = found(self.search.get_upgrade_status().domain_name(name).send().await.aws("GetUpgradeStatus"))?;
        Ok(out.filter(|o| o.upgrade_step().is_some() || o.step_status().is_some()).map(|o| UpgradeStatusInfo {
            step: o.upgrade_step().map(|s| s.as_str().to_owned()).unwrap_or_default(),
            status: o.step_status().map(|s| s.as_str().to_owned()).unwrap_or_default(),
            name: o.upgrade_name().map(str::to_owned),
        }))
    }
}

// ---------------------------------------------------------------- S3
