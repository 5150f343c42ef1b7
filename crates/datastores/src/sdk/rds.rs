//! Aurora (RDS) and the RDS Data API.

use super::{AwsError, SdkDatastores, Tags, async_trait, found};
use crate::RdsApi;
use crate::sdk::DbClusterCreate;
use crate::sdk::DbClusterInfo;
use crate::sdk::DbClusterModify;
use crate::sdk::DbEngineUpgrade;
use crate::sdk::DbInstanceInfo;
use crate::sdk::DbParameterGroups;
use crate::sdk::RdsStatus;
use dify_stack_core::AwsResultExt;
use dify_stack_core::ids::{Arn, AvailabilityZone, SecretArn, SecurityGroupId, SubnetId};

pub(super) fn rds_tags(tags: &Tags) -> Vec<aws_sdk_rds::types::Tag> {
    tags.iter().map(|(k, v)| aws_sdk_rds::types::Tag::builder().key(k).value(v).build()).collect()
}

pub(super) fn rds_tag_map(tags: &[aws_sdk_rds::types::Tag]) -> Tags {
    tags.iter().filter_map(|t| Some((t.key()?.to_owned(), t.value()?.to_owned()))).collect()
}

pub(super) fn db_cluster_info(c: &aws_sdk_rds::types::DbCluster) -> DbClusterInfo {
    DbClusterInfo {
        id: c.db_cluster_identifier().unwrap_or_default().to_owned(),
        arn: Arn::new(c.db_cluster_arn().unwrap_or_default()),
        status: RdsStatus::parse(c.status().unwrap_or_default()),
        engine: c.engine().unwrap_or_default().to_owned(),
        engine_version: c.engine_version().unwrap_or_default().to_owned(),
        acu: c.serverless_v2_scaling_configuration().and_then(|s| Some((s.min_capacity()?, s.max_capacity()?))),
        encrypted: c.storage_encrypted().unwrap_or(false),
        backup_retention_days: c.backup_retention_period().unwrap_or_default(),
        deletion_protection: c.deletion_protection().unwrap_or(false),
        http_endpoint: c.http_endpoint_enabled().unwrap_or(false),
        copy_tags_to_snapshot: c.copy_tags_to_snapshot().unwrap_or(false),
        master_secret_arn: c.master_user_secret().and_then(|s| s.secret_arn()).map(SecretArn::new),
        endpoint: c.endpoint().map(str::to_owned),
        reader_endpoint: c.reader_endpoint().map(str::to_owned),
        port: c.port(),
        security_groups: c
            .vpc_security_groups()
            .iter()
            .filter_map(|g| g.vpc_security_group_id().map(SecurityGroupId::new))
            .collect(),
        members: c.db_cluster_members().iter().filter_map(|m| m.db_instance_identifier().map(str::to_owned)).collect(),
        tags: rds_tag_map(c.tag_list()),
    }
}

#[async_trait]
impl RdsApi for SdkDatastores {
    async fn find_subnet_group(&self, name: String) -> Result<Option<Tags>, AwsError> {
        let out = found(
            self.rds.describe_db_subnet_groups().db_subnet_group_name(&name).send().await.aws("DescribeDBSubnetGroups"),
        )?;
        let Some(arn) = out.as_ref().and_then(|o| o.db_subnet_groups().first()).and_then(|g| g.db_subnet_group_arn())
        else {
            return Ok(None);
        };
        let tags = self.rds.list_tags_for_resource().resource_name(arn).send().await.aws("ListTagsForResource")?;
        Ok(Some(rds_tag_map(tags.tag_list())))
    }

    async fn create_subnet_group(&self, name: String, subnets: Vec<SubnetId>, tags: Tags) -> Result<(), AwsError> {
        self.rds
            .create_db_subnet_group()
            .db_subnet_group_name(&name)
            .db_subnet_group_description(format!("dify-stack {name}"))
            .set_subnet_ids(Some(subnets.into_iter().map(SubnetId::into_inner).collect()))
            .set_tags(Some(rds_tags(&tags)))
            .send()
            .await
            .aws("CreateDBSubnetGroup")?;
        Ok(())
    }

    async fn delete_subnet_group(&self, name: String) -> Result<(), AwsError> {
        self.rds.delete_db_subnet_group().db_subnet_group_name(name).send().await.aws("DeleteDBSubnetGroup")?;
        Ok(())
    }

    async fn describe_cluster(&self, id: String) -> Result<Option<DbClusterInfo>, AwsError> {
        let out =
            found(self.rds.describe_db_clusters().db_cluster_identifier(id).send().await.aws("DescribeDBClusters"))?;
        Ok(out.and_then(|o| o.db_clusters().first().map(db_cluster_info)))
    }

    async fn create_cluster(&self, c: DbClusterCreate) -> Result<DbClusterInfo, AwsError> {
        let out = self
            .rds
            .create_db_cluster()
            .db_cluster_identifier(c.id)
            .engine("aurora-postgresql")
            .engine_version(c.engine_version)
            .serverless_v2_scaling_configuration(
                aws_sdk_rds::types::ServerlessV2ScalingConfiguration::builder()
                    .min_capacity(c.acu.0)
                    .max_capacity(c.acu.1)
                    .build(),
            )
            .storage_encrypted(true)
            .manage_master_user_password(true)
            .master_username(c.master_username)
            .db_subnet_group_name(c.subnet_group)
            .vpc_security_group_ids(c.security_group.into_inner())
            .backup_retention_period(c.backup_retention_days)
            .copy_tags_to_snapshot(true)
            .deletion_protection(c.deletion_protection)
            .enable_http_endpoint(c.http_endpoint)
            .set_tags(Some(rds_tags(&c.tags)))
            .send()
            .await
            .aws("CreateDBCluster")?;
        out.db_cluster()
            .map(db_cluster_info)
            .ok_or_else(|| AwsError::new("CreateDBCluster", "EmptyResponse", "no cluster in the response"))
    }

    async fn modify_cluster(&self, id: String, m: DbClusterModify) -> Result<(), AwsError> {
        self.rds
            .modify_db_cluster()
            .db_cluster_identifier(id)
            .apply_immediately(true)
            .set_serverless_v2_scaling_configuration(m.acu.map(|(min, max)| {
                aws_sdk_rds::types::ServerlessV2ScalingConfiguration::builder()
                    .min_capacity(min)
                    .max_capacity(max)
                    .build()
            }))
            .set_backup_retention_period(m.backup_retention_days)
            .set_deletion_protection(m.deletion_protection)
            .set_vpc_security_group_ids(
                m.security_groups.map(|groups| groups.into_iter().map(SecurityGroupId::into_inner).collect()),
            )
            .send()
            .await
            .aws("ModifyDBCluster")?;
        Ok(())
    }

    async fn tag(&self, arn: Arn, tags: Tags) -> Result<(), AwsError> {
        self.rds
            .add_tags_to_resource()
            .resource_name(arn.into_inner())
            .set_tags(Some(rds_tags(&tags)))
            .send()
            .await
            .aws("AddTagsToResource")?;
        Ok(())
    }

    async fn enable_http_endpoint(&self, arn: Arn) -> Result<(), AwsError> {
        self.rds.enable_http_endpoint().resource_arn(arn.into_inner()).send().await.aws("EnableHttpEndpoint")?;
        Ok(())
    }

    async fn delete_cluster(&self, id: String, final_snapshot: Option<String>) -> Result<(), AwsError> {
        let req = self.rds.delete_db_cluster().db_cluster_identifier(id);
        let req = match final_snapshot {
            Some(name) => req.skip_final_snapshot(false).final_db_snapshot_identifier(name),
            None => req.skip_final_snapshot(true),
        };
        req.send().await.aws("DeleteDBCluster")?;
        Ok(())
    }

    async fn list_instances(&self, cluster: String) -> Result<Vec<DbInstanceInfo>, AwsError> {
        let out = self
            .rds
            .describe_db_instances()
            .filters(aws_sdk_rds::types::Filter::builder().name("db-cluster-id").values(cluster).build())
            .send()
            .await
            .aws("DescribeDBInstances")?;
        Ok(out
            .db_instances()
            .iter()
            .map(|i| DbInstanceInfo {
                id: i.db_instance_identifier().unwrap_or_default().to_owned(),
                status: RdsStatus::parse(i.db_instance_status().unwrap_or_default()),
                availability_zone: i.availability_zone().map(AvailabilityZone::new),
                class: i.db_instance_class().unwrap_or_default().to_owned(),
                public: i.publicly_accessible().unwrap_or(false),
                tags: rds_tag_map(i.tag_list()),
            })
            .collect())
    }

    async fn create_instance(
        &self,
        id: String,
        cluster: String,
        az: AvailabilityZone,
        tags: Tags,
    ) -> Result<(), AwsError> {
        self.rds
            .create_db_instance()
            .db_instance_identifier(id)
            .db_cluster_identifier(cluster)
            .engine("aurora-postgresql")
            .db_instance_class("db.serverless")
            .availability_zone(az.into_inner())
            .publicly_accessible(false)
            .set_tags(Some(rds_tags(&tags)))
            .send()
            .await
            .aws("CreateDBInstance")?;
        Ok(())
    }

    async fn delete_instance(&self, id: String) -> Result<(), AwsError> {
        self.rds.delete_db_instance().db_instance_identifier(id).send().await.aws("DeleteDBInstance")?;
        Ok(())
    }

    async fn list_snapshots(&self, cluster: String) -> Result<Vec<String>, AwsError> {
        let out = self
            .rds
            .describe_db_cluster_snapshots()
            .db_cluster_identifier(cluster)
            .send()
            .await
            .aws("DescribeDBClusterSnapshots")?;
        Ok(out
            .db_cluster_snapshots()
            .iter()
            .filter_map(|s| s.db_cluster_snapshot_identifier().map(str::to_owned))
            .collect())
    }

    async fn execute(
        &self,
        cluster_arn: Arn,
        secret_arn: SecretArn,
        database: String,
        sql: String,
    ) -> Result<Vec<String>, AwsError> {
        let out = self
            .data
            .execute_statement()
            .resource_arn(cluster_arn.into_inner())
            .secret_arn(secret_arn.into_inner())
            .database(database)
            .sql(sql)
            .send()
            .await
            .aws("ExecuteStatement")?;
        Ok(out
            .records()
            .iter()
            .filter_map(|row| row.first())
            .filter_map(|f| f.as_string_value().ok().cloned())
            .collect())
    }

    async fn upgrade_cluster(&self, id: String, u: DbEngineUpgrade) -> Result<(), AwsError> {
        self.rds
            .modify_db_cluster()
            .db_cluster_identifier(id)
            .apply_immediately(true)
            .engine_version(u.engine_version)
            .set_allow_major_version_upgrade(u.allow_major_version_upgrade.then_some(true))
            .set_db_cluster_parameter_group_name(u.cluster_parameter_group)
            .set_db_instance_parameter_group_name(u.instance_parameter_group)
            .send()
            .await
            .aws("ModifyDBCluster")?;
        Ok(())
    }

    async fn parameter_groups(&self, cluster: String) -> Result<DbParameterGroups, AwsError> {
        let c =
            self.rds.describe_db_clusters().db_cluster_identifier(&cluster).send().await.aws("DescribeDBClusters")?;
        let instances = self
            .rds
            .describe_db_instances()
            .filters(aws_sdk_rds::types::Filter::builder().name("db-cluster-id").values(cluster).build())
            .send()
            .await
            .aws("DescribeDBInstances")?;
        Ok(DbParameterGroups {
            cluster: c.db_clusters().first().and_then(|c| c.db_cluster_parameter_group()).map(str::to_owned),
            instances: instances
                .db_instances()
                .iter()
                .map(|i| {
                    let group = i.db_parameter_groups().first().and_then(|g| g.db_parameter_group_name());
                    (i.db_instance_identifier().unwrap_or_default().to_owned(), group.map(str::to_owned))
                })
                .collect(),
        })
    }

    async fn create_cluster_snapshot(&self, cluster: String, id: String, tags: Tags) -> Result<(), AwsError> {
        self.rds
            .create_db_cluster_snapshot()
            .db_cluster_identifier(cluster)
            .db_cluster_snapshot_identifier(id)
            .set_tags(Some(rds_tags(&tags)))
            .send()
            .await
            .aws("CreateDBClusterSnapshot")?;
        Ok(())
    }

    async fn cluster_snapshot_status(&self, id: String) -> Result<Option<String>, AwsError> {
        let out = found(
            self.rds
                .describe_db_cluster_snapshots()
                .db_cluster_snapshot_identifier(id)
                .send()
                .await
                .aws("DescribeDBClusterSnapshots"),
        )?;
        Ok(out.and_then(|o| o.db_cluster_snapshots().first().map(|s| s.status().unwrap_or_default().to_owned())))
    }
}

// ---------------------------------------------------------------- ElastiCache
