//! The datastores client traits over the AWS SDK.

use async_trait::async_trait;
use aws_sdk_ec2::types::{Filter, IpPermission, IpRange, ResourceType, TagSpecification, UserIdGroupPair};
use dify_stack_core::{AwsError, AwsResultExt, Tags, ignore_not_found};
use secrecy::{ExposeSecret as _, SecretString};

use crate::client::*;

/// All the SDK clients the tier uses.
#[derive(Debug, Clone)]
pub struct SdkDatastores {
    pub(crate) ec2: aws_sdk_ec2::Client,
    pub(crate) secrets: aws_sdk_secretsmanager::Client,
    pub(crate) rds: aws_sdk_rds::Client,
    pub(crate) data: aws_sdk_rdsdata::Client,
    pub(crate) cache: aws_sdk_elasticache::Client,
    pub(crate) search: aws_sdk_opensearch::Client,
    pub(crate) s3: aws_sdk_s3::Client,
    pub(crate) iam: aws_sdk_iam::Client,
}

impl SdkDatastores {
    /// Builds the clients from shared SDK configuration. S3 uses path-style addressing only
    /// when an endpoint override is set (emulators); virtual-hosted style otherwise.
    pub fn from_conf(config: &aws_types::SdkConfig) -> SdkDatastores {
        let s3 = aws_sdk_s3::config::Builder::from(config).force_path_style(config.endpoint_url().is_some()).build();
        SdkDatastores {
            ec2: aws_sdk_ec2::Client::new(config),
            secrets: aws_sdk_secretsmanager::Client::new(config),
            rds: aws_sdk_rds::Client::new(config),
            data: aws_sdk_rdsdata::Client::new(config),
            cache: aws_sdk_elasticache::Client::new(config),
            search: aws_sdk_opensearch::Client::new(config),
            iam: aws_sdk_iam::Client::new(config),
            s3: aws_sdk_s3::Client::from_conf(s3),
        }
    }
}

fn none_if_missing<T>(r: Result<T, AwsError>) -> Result<Option<T>, AwsError> {
    match r {
        Ok(v) => Ok(Some(v)),
        Err(e) if e.is_not_found() => Ok(None),
        Err(e) => Err(e),
    }
}

// ---------------------------------------------------------------- EC2

#[async_trait]
impl SgApi for SdkDatastores {
    async fn find(&self, vpc_id: String, name: String) -> Result<Option<SgInfo>, AwsError> {
        let out = self
            .ec2
            .describe_security_groups()
            .filters(Filter::builder().name("vpc-id").values(vpc_id).build())
            .filters(Filter::builder().name("group-name").values(name).build())
            .send()
            .await
            .aws("DescribeSecurityGroups")?;
        Ok(out.security_groups().first().map(|g| {
            let mut ingress = Vec::new();
            for p in g.ip_permissions() {
                let proto = p.ip_protocol().unwrap_or_default().to_owned();
                let (from, to) = (p.from_port().unwrap_or(-1), p.to_port().unwrap_or(-1));
                for pair in p.user_id_group_pairs() {
                    ingress.push((proto.clone(), from, to, pair.group_id().unwrap_or_default().to_owned()));
                }
                for r in p.ip_ranges() {
                    ingress.push((proto.clone(), from, to, r.cidr_ip().unwrap_or_default().to_owned()));
                }
            }
            ingress.sort();
            SgInfo {
                id: g.group_id().unwrap_or_default().to_owned(),
                tags: g.tags().iter().filter_map(|t| Some((t.key()?.to_owned(), t.value()?.to_owned()))).collect(),
                ingress,
            }
        }))
    }

    async fn create(&self, vpc_id: String, name: String, description: String, tags: Tags) -> Result<String, AwsError> {
        let out = self
            .ec2
            .create_security_group()
            .vpc_id(vpc_id)
            .group_name(name)
            .description(description)
            .tag_specifications(
                TagSpecification::builder()
                    .resource_type(ResourceType::SecurityGroup)
                    .set_tags(Some(
                        tags.iter().map(|(k, v)| aws_sdk_ec2::types::Tag::builder().key(k).value(v).build()).collect(),
                    ))
                    .build(),
            )
            .send()
            .await
            .aws("CreateSecurityGroup")?;
        Ok(out.group_id().unwrap_or_default().to_owned())
    }

    async fn authorize(&self, id: String, port: i32, source: String) -> Result<(), AwsError> {
        self.ec2
            .authorize_security_group_ingress()
            .group_id(id)
            .ip_permissions(
                IpPermission::builder()
                    .ip_protocol("tcp")
                    .from_port(port)
                    .to_port(port)
                    .user_id_group_pairs(UserIdGroupPair::builder().group_id(source).build())
                    .build(),
            )
            .send()
            .await
            .aws("AuthorizeSecurityGroupIngress")?;
        Ok(())
    }

    async fn revoke(&self, id: String, rule: (String, i32, i32, String)) -> Result<(), AwsError> {
        let (proto, from, to, source) = rule;
        let mut p = IpPermission::builder().ip_protocol(proto).from_port(from).to_port(to);
        p = if source.starts_with("sg-") {
            p.user_id_group_pairs(UserIdGroupPair::builder().group_id(source).build())
        } else {
            p.ip_ranges(IpRange::builder().cidr_ip(source).build())
        };
        self.ec2
            .revoke_security_group_ingress()
            .group_id(id)
            .ip_permissions(p.build())
            .send()
            .await
            .aws("RevokeSecurityGroupIngress")?;
        Ok(())
    }

    async fn tag(&self, id: String, tags: Tags) -> Result<(), AwsError> {
        self.ec2
            .create_tags()
            .resources(id)
            .set_tags(Some(
                tags.iter().map(|(k, v)| aws_sdk_ec2::types::Tag::builder().key(k).value(v).build()).collect(),
            ))
            .send()
            .await
            .aws("CreateTags")?;
        Ok(())
    }

    async fn delete(&self, id: String) -> Result<(), AwsError> {
        self.ec2.delete_security_group().group_id(id).send().await.aws("DeleteSecurityGroup")?;
        Ok(())
    }
}

// ---------------------------------------------------------------- Secrets Manager

#[async_trait]
impl SecretsApi for SdkDatastores {
    async fn describe(&self, name: String) -> Result<Option<SecretMeta>, AwsError> {
        let out = none_if_missing(self.secrets.describe_secret().secret_id(name).send().await.aws("DescribeSecret"))?;
        Ok(out.map(|s| SecretMeta {
            arn: s.arn().unwrap_or_default().to_owned(),
            name: s.name().unwrap_or_default().to_owned(),
            pending_deletion: s.deleted_date().is_some(),
            tags: s.tags().iter().filter_map(|t| Some((t.key()?.to_owned(), t.value()?.to_owned()))).collect(),
        }))
    }

    async fn get_value(&self, arn: String) -> Result<SecretString, AwsError> {
        let out = self.secrets.get_secret_value().secret_id(arn).send().await.aws("GetSecretValue")?;
        Ok(SecretString::from(out.secret_string().unwrap_or_default().to_owned()))
    }

    async fn put_value(&self, arn: String, value: SecretString) -> Result<(), AwsError> {
        self.secrets
            .put_secret_value()
            .secret_id(arn)
            .secret_string(value.expose_secret())
            .send()
            .await
            .aws("PutSecretValue")?;
        Ok(())
    }

    async fn create(&self, name: String, value: SecretString, tags: Tags) -> Result<String, AwsError> {
        let out = self
            .secrets
            .create_secret()
            .name(name)
            .secret_string(value.expose_secret())
            .set_tags(Some(
                tags.iter()
                    .map(|(k, v)| aws_sdk_secretsmanager::types::Tag::builder().key(k).value(v).build())
                    .collect(),
            ))
            .send()
            .await
            .aws("CreateSecret")?;
        Ok(out.arn().unwrap_or_default().to_owned())
    }

    async fn restore(&self, arn: String) -> Result<(), AwsError> {
        self.secrets.restore_secret().secret_id(arn).send().await.aws("RestoreSecret")?;
        Ok(())
    }

    async fn tag(&self, arn: String, tags: Tags) -> Result<(), AwsError> {
        self.secrets
            .tag_resource()
            .secret_id(arn)
            .set_tags(Some(
                tags.iter()
                    .map(|(k, v)| aws_sdk_secretsmanager::types::Tag::builder().key(k).value(v).build())
                    .collect(),
            ))
            .send()
            .await
            .aws("TagResource")?;
        Ok(())
    }

    async fn delete(&self, arn: String, force: bool, window_days: i64) -> Result<(), AwsError> {
        let req = self.secrets.delete_secret().secret_id(arn);
        let req =
            if force { req.force_delete_without_recovery(true) } else { req.recovery_window_in_days(window_days) };
        req.send().await.aws("DeleteSecret")?;
        Ok(())
    }
}

// ---------------------------------------------------------------- RDS

fn rds_tags(tags: &Tags) -> Vec<aws_sdk_rds::types::Tag> {
    tags.iter().map(|(k, v)| aws_sdk_rds::types::Tag::builder().key(k).value(v).build()).collect()
}

fn rds_tag_map(tags: &[aws_sdk_rds::types::Tag]) -> Tags {
    tags.iter().filter_map(|t| Some((t.key()?.to_owned(), t.value()?.to_owned()))).collect()
}

fn db_cluster_info(c: &aws_sdk_rds::types::DbCluster) -> DbClusterInfo {
    DbClusterInfo {
        id: c.db_cluster_identifier().unwrap_or_default().to_owned(),
        arn: c.db_cluster_arn().unwrap_or_default().to_owned(),
        status: c.status().unwrap_or_default().to_owned(),
        engine: c.engine().unwrap_or_default().to_owned(),
        engine_version: c.engine_version().unwrap_or_default().to_owned(),
        acu: c.serverless_v2_scaling_configuration().and_then(|s| Some((s.min_capacity()?, s.max_capacity()?))),
        encrypted: c.storage_encrypted().unwrap_or(false),
        backup_retention_days: c.backup_retention_period().unwrap_or_default(),
        deletion_protection: c.deletion_protection().unwrap_or(false),
        http_endpoint: c.http_endpoint_enabled().unwrap_or(false),
        copy_tags_to_snapshot: c.copy_tags_to_snapshot().unwrap_or(false),
        master_secret_arn: c.master_user_secret().and_then(|s| s.secret_arn()).map(str::to_owned),
        endpoint: c.endpoint().map(str::to_owned),
        reader_endpoint: c.reader_endpoint().map(str::to_owned),
        port: c.port(),
        security_groups: c
            .vpc_security_groups()
            .iter()
            .filter_map(|g| g.vpc_security_group_id().map(str::to_owned))
            .collect(),
        members: c.db_cluster_members().iter().filter_map(|m| m.db_instance_identifier().map(str::to_owned)).collect(),
        tags: rds_tag_map(c.tag_list()),
    }
}

#[async_trait]
impl RdsApi for SdkDatastores {
    async fn find_subnet_group(&self, name: String) -> Result<Option<Tags>, AwsError> {
        let out = none_if_missing(
            self.rds.describe_db_subnet_groups().db_subnet_group_name(&name).send().await.aws("DescribeDBSubnetGroups"),
        )?;
        let Some(arn) = out.as_ref().and_then(|o| o.db_subnet_groups().first()).and_then(|g| g.db_subnet_group_arn())
        else {
            return Ok(None);
        };
        let tags = self.rds.list_tags_for_resource().resource_name(arn).send().await.aws("ListTagsForResource")?;
        Ok(Some(rds_tag_map(tags.tag_list())))
    }

    async fn create_subnet_group(&self, name: String, subnets: Vec<String>, tags: Tags) -> Result<(), AwsError> {
        self.rds
            .create_db_subnet_group()
            .db_subnet_group_name(&name)
            .db_subnet_group_description(format!("dify-stack {name}"))
            .set_subnet_ids(Some(subnets))
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
        let out = none_if_missing(
            self.rds.describe_db_clusters().db_cluster_identifier(id).send().await.aws("DescribeDBClusters"),
        )?;
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
            .vpc_security_group_ids(c.security_group)
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
            .set_vpc_security_group_ids(m.security_groups)
            .send()
            .await
            .aws("ModifyDBCluster")?;
        Ok(())
    }

    async fn tag(&self, arn: String, tags: Tags) -> Result<(), AwsError> {
        self.rds
            .add_tags_to_resource()
            .resource_name(arn)
            .set_tags(Some(rds_tags(&tags)))
            .send()
            .await
            .aws("AddTagsToResource")?;
        Ok(())
    }

    async fn enable_http_endpoint(&self, arn: String) -> Result<(), AwsError> {
        self.rds.enable_http_endpoint().resource_arn(arn).send().await.aws("EnableHttpEndpoint")?;
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
                status: i.db_instance_status().unwrap_or_default().to_owned(),
                availability_zone: i.availability_zone().map(str::to_owned),
                class: i.db_instance_class().unwrap_or_default().to_owned(),
                public: i.publicly_accessible().unwrap_or(false),
                tags: rds_tag_map(i.tag_list()),
            })
            .collect())
    }

    async fn create_instance(&self, id: String, cluster: String, az: String, tags: Tags) -> Result<(), AwsError> {
        self.rds
            .create_db_instance()
            .db_instance_identifier(id)
            .db_cluster_identifier(cluster)
            .engine("aurora-postgresql")
            .db_instance_class("db.serverless")
            .availability_zone(az)
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
        cluster_arn: String,
        secret_arn: String,
        database: String,
        sql: String,
    ) -> Result<Vec<String>, AwsError> {
        let out = self
            .data
            .execute_statement()
            .resource_arn(cluster_arn)
            .secret_arn(secret_arn)
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
}

// ---------------------------------------------------------------- ElastiCache

fn cache_tags(tags: &Tags) -> Vec<aws_sdk_elasticache::types::Tag> {
    tags.iter().map(|(k, v)| aws_sdk_elasticache::types::Tag::builder().key(k).value(v).build()).collect()
}

/// ElastiCache's answer to a tag read or write on a group or cluster that is not `available`.
fn is_not_taggable_now(e: &AwsError) -> bool {
    matches!(
        e.code.as_deref(),
        Some(
            "InvalidReplicationGroupState"
                | "InvalidReplicationGroupStateFault"
                | "InvalidCacheClusterState"
                | "InvalidCacheClusterStateFault"
        )
    )
}

impl SdkDatastores {
    async fn cache_tags_of(&self, arn: &str) -> Result<Tags, AwsError> {
        let tags = self.cache.list_tags_for_resource().resource_name(arn).send().await.aws("ListTagsForResource")?;
        Ok(tags.tag_list().iter().filter_map(|t| Some((t.key()?.to_owned(), t.value()?.to_owned()))).collect())
    }
}

#[async_trait]
impl ElastiCacheApi for SdkDatastores {
    async fn find_subnet_group(&self, name: String) -> Result<Option<Tags>, AwsError> {
        let out = none_if_missing(
            self.cache
                .describe_cache_subnet_groups()
                .cache_subnet_group_name(name)
                .send()
                .await
                .aws("DescribeCacheSubnetGroups"),
        )?;
        let Some(arn) = out.as_ref().and_then(|o| o.cache_subnet_groups().first()).and_then(|g| g.arn()) else {
            return Ok(None);
        };
        Ok(Some(self.cache_tags_of(arn).await?))
    }

    async fn create_subnet_group(&self, name: String, subnets: Vec<String>, tags: Tags) -> Result<(), AwsError> {
        self.cache
            .create_cache_subnet_group()
            .cache_subnet_group_name(&name)
            .cache_subnet_group_description(format!("dify-stack {name}"))
            .set_subnet_ids(Some(subnets))
            .set_tags(Some(cache_tags(&tags)))
            .send()
            .await
            .aws("CreateCacheSubnetGroup")?;
        Ok(())
    }

    async fn delete_subnet_group(&self, name: String) -> Result<(), AwsError> {
        self.cache
            .delete_cache_subnet_group()
            .cache_subnet_group_name(name)
            .send()
            .await
            .aws("DeleteCacheSubnetGroup")?;
        Ok(())
    }

    async fn describe(&self, id: String) -> Result<Option<ReplicationGroupInfo>, AwsError> {
        let out = none_if_missing(
            self.cache
                .describe_replication_groups()
                .replication_group_id(id)
                .send()
                .await
                .aws("DescribeReplicationGroups"),
        )?;
        let Some(g) = out.as_ref().and_then(|o| o.replication_groups().first()) else { return Ok(None) };
        let arn = g.arn().unwrap_or_default().to_owned();
        // Tags only while available: in any other state ElastiCache refuses the read with
        // InvalidReplicationGroupState (terraform-provider-aws #33859, #30444, #41416). The state
        // may also change between the two calls: that refusal then means "not readable yet".
        let tags = if arn.is_empty() || g.status() != Some("available") {
            None
        } else {
            match self.cache_tags_of(&arn).await {
                Ok(t) => Some(t),
                Err(e) if is_not_taggable_now(&e) => None,
                Err(e) => return Err(e),
            }
        };
        let primary = g.node_groups().first().and_then(|n| n.primary_endpoint());
        Ok(Some(ReplicationGroupInfo {
            id: g.replication_group_id().unwrap_or_default().to_owned(),
            arn,
            status: g.status().unwrap_or_default().to_owned(),
            node_type: g.cache_node_type().unwrap_or_default().to_owned(),
            members: g.member_clusters().to_vec(),
            multi_az: g.multi_az().is_some_and(|m| m.as_str() == "enabled"),
            automatic_failover: g.automatic_failover().is_some_and(|a| a.as_str() == "enabled"),
            at_rest_encryption: g.at_rest_encryption_enabled().unwrap_or(false),
            transit_encryption: g.transit_encryption_enabled().unwrap_or(false),
            auth_token_enabled: g.auth_token_enabled().unwrap_or(false),
            snapshot_retention_days: g.snapshot_retention_limit().unwrap_or_default(),
            primary_endpoint: primary.and_then(|e| Some((e.address()?.to_owned(), e.port()?))),
            reader_endpoint: g
                .node_groups()
                .first()
                .and_then(|n| n.reader_endpoint())
                .and_then(|e| e.address())
                .map(str::to_owned),
            tags,
        }))
    }

    async fn create(&self, c: ReplicationGroupCreate) -> Result<(), AwsError> {
        self.cache
            .create_replication_group()
            .replication_group_id(&c.id)
            .replication_group_description(format!("dify-stack {}", c.id))
            .engine("redis")
            .engine_version(c.engine_version)
            .cache_node_type(c.node_type)
            .num_cache_clusters(c.nodes)
            .multi_az_enabled(c.multi_az)
            .automatic_failover_enabled(c.multi_az)
            .snapshot_retention_limit(c.snapshot_retention_days)
            .cache_subnet_group_name(c.subnet_group)
            .security_group_ids(c.security_group)
            .at_rest_encryption_enabled(true)
            .transit_encryption_enabled(true)
            .auth_token(c.auth_token.expose_secret())
            .port(6379)
            .set_tags(Some(cache_tags(&c.tags)))
            .send()
            .await
            .aws("CreateReplicationGroup")?;
        Ok(())
    }

    async fn modify(
        &self,
        id: String,
        node_type: Option<String>,
        snapshot_retention_days: Option<i32>,
    ) -> Result<(), AwsError> {
        self.cache
            .modify_replication_group()
            .replication_group_id(id)
            .apply_immediately(true)
            .set_cache_node_type(node_type)
            .set_snapshot_retention_limit(snapshot_retention_days)
            .send()
            .await
            .aws("ModifyReplicationGroup")?;
        Ok(())
    }

    async fn set_replicas(&self, id: String, replicas: i32, increase: bool) -> Result<(), AwsError> {
        if increase {
            self.cache
                .increase_replica_count()
                .replication_group_id(id)
                .new_replica_count(replicas)
                .apply_immediately(true)
                .send()
                .await
                .aws("IncreaseReplicaCount")?;
        } else {
            self.cache
                .decrease_replica_count()
                .replication_group_id(id)
                .new_replica_count(replicas)
                .apply_immediately(true)
                .send()
                .await
                .aws("DecreaseReplicaCount")?;
        }
        Ok(())
    }

    async fn tag(&self, arn: String, tags: Tags) -> Result<(), AwsError> {
        self.cache
            .add_tags_to_resource()
            .resource_name(arn)
            .set_tags(Some(cache_tags(&tags)))
            .send()
            .await
            .aws("AddTagsToResource")?;
        Ok(())
    }

    async fn delete(&self, id: String) -> Result<(), AwsError> {
        self.cache.delete_replication_group().replication_group_id(id).send().await.aws("DeleteReplicationGroup")?;
        Ok(())
    }
}

// ---------------------------------------------------------------- OpenSearch

fn domain_info(d: &aws_sdk_opensearch::types::DomainStatus, tags: Tags) -> DomainInfo {
    let cc = d.cluster_config();
    let ebs = d.ebs_options();
    let vpc = d.vpc_options();
    let ep = d.domain_endpoint_options();
    DomainInfo {
        name: d.domain_name().to_owned(),
        arn: d.arn().to_owned(),
        processing: d.processing().unwrap_or(false),
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
        subnet_ids: vpc.map(|v| v.subnet_ids().to_vec()).unwrap_or_default(),
        security_group_ids: vpc.map(|v| v.security_group_ids().to_vec()).unwrap_or_default(),
        vpc_endpoint: d.endpoints().and_then(|e| e.get("vpc")).cloned(),
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

fn domain_cluster(c: &DomainConfig) -> aws_sdk_opensearch::types::ClusterConfig {
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

fn domain_ebs(c: &DomainConfig) -> aws_sdk_opensearch::types::EbsOptions {
    aws_sdk_opensearch::types::EbsOptions::builder()
        .ebs_enabled(true)
        .volume_type(aws_sdk_opensearch::types::VolumeType::Gp3)
        .volume_size(c.volume_gib)
        .build()
}

fn domain_vpc(c: &DomainConfig) -> aws_sdk_opensearch::types::VpcOptions {
    aws_sdk_opensearch::types::VpcOptions::builder()
        .set_subnet_ids(Some(c.subnet_ids.clone()))
        .security_group_ids(&c.security_group_id)
        .build()
}

#[async_trait]
impl OpenSearchApi for SdkDatastores {
    async fn describe(&self, name: String) -> Result<Option<DomainInfo>, AwsError> {
        let out = none_if_missing(self.search.describe_domain().domain_name(name).send().await.aws("DescribeDomain"))?;
        let Some(d) = out.as_ref().and_then(|o| o.domain_status()) else { return Ok(None) };
        let tags = self.search.list_tags().arn(d.arn()).send().await.aws("ListTags")?;
        let tags = tags.tag_list().iter().map(|t| (t.key().to_owned(), t.value().to_owned())).collect();
        Ok(Some(domain_info(d, tags)))
    }

    async fn service_linked_role_exists(&self) -> Result<bool, AwsError> {
        let role = self.iam.get_role().role_name(crate::opensearch::SERVICE_LINKED_ROLE).send().await.aws("GetRole");
        Ok(none_if_missing(role)?.is_some())
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

    async fn tag(&self, arn: String, tags: Tags) -> Result<(), AwsError> {
        self.search
            .add_tags()
            .arn(arn)
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
}

// ---------------------------------------------------------------- S3

#[async_trait]
impl S3Api for SdkDatastores {
    async fn describe(&self, bucket: String) -> Result<Option<BucketInfo>, AwsError> {
        match self.s3.head_bucket().bucket(&bucket).send().await.aws("HeadBucket") {
            Ok(_) => {}
            // 404: absent. 403: someone else's bucket, reported as absent here; the create
            // then fails with BucketAlreadyExists, naming the problem.
            Err(e) if e.is_not_found() || e.status == Some(404) => return Ok(None),
            Err(e) => return Err(e),
        }
        let tags = match self.s3.get_bucket_tagging().bucket(&bucket).send().await.aws("GetBucketTagging") {
            Ok(t) => t.tag_set().iter().map(|t| (t.key().to_owned(), t.value().to_owned())).collect(),
            Err(e) if e.code.as_deref() == Some("NoSuchTagSet") || e.is_not_found() => Tags::new(),
            Err(e) => return Err(e),
        };
        let versioning = self.s3.get_bucket_versioning().bucket(&bucket).send().await.aws("GetBucketVersioning")?;
        let encryption = match self.s3.get_bucket_encryption().bucket(&bucket).send().await.aws("GetBucketEncryption") {
            Ok(e) => e
                .server_side_encryption_configuration()
                .and_then(|c| c.rules().first())
                .and_then(|r| r.apply_server_side_encryption_by_default())
                .map(|d| (d.sse_algorithm().as_str().to_owned(), d.kms_master_key_id().map(str::to_owned))),
            Err(e) if e.code.as_deref() == Some("ServerSideEncryptionConfigurationNotFoundError") => None,
            Err(e) => return Err(e),
        };
        let public_access_blocked =
            match self.s3.get_public_access_block().bucket(&bucket).send().await.aws("GetPublicAccessBlock") {
                Ok(p) => p.public_access_block_configuration().is_some_and(|c| {
                    c.block_public_acls() == Some(true)
                        && c.ignore_public_acls() == Some(true)
                        && c.block_public_policy() == Some(true)
                        && c.restrict_public_buckets() == Some(true)
                }),
                Err(e) if e.code.as_deref() == Some("NoSuchPublicAccessBlockConfiguration") => false,
                Err(e) => return Err(e),
            };
        let policy = match self.s3.get_bucket_policy().bucket(&bucket).send().await.aws("GetBucketPolicy") {
            Ok(p) => p.policy().map(str::to_owned),
            Err(e) if e.is_not_found() => None,
            Err(e) => return Err(e),
        };
        let abort_multipart_days = match self
            .s3
            .get_bucket_lifecycle_configuration()
            .bucket(&bucket)
            .send()
            .await
            .aws("GetBucketLifecycleConfiguration")
        {
            Ok(l) => l
                .rules()
                .iter()
                .find(|r| r.id() == Some(crate::bucket::LIFECYCLE_RULE_ID))
                .and_then(|r| r.abort_incomplete_multipart_upload())
                .and_then(|a| a.days_after_initiation()),
            Err(e) if e.is_not_found() => None,
            Err(e) => return Err(e),
        };
        Ok(Some(BucketInfo {
            tags,
            versioning: versioning.status().is_some_and(|s| s.as_str() == "Enabled"),
            encryption,
            public_access_blocked,
            policy,
            abort_multipart_days,
        }))
    }

    async fn create(&self, bucket: String, region: String) -> Result<(), AwsError> {
        use aws_sdk_s3::types::{BucketLocationConstraint, CreateBucketConfiguration};
        let mut req = self.s3.create_bucket().bucket(bucket);
        if region != "us-east-1" {
            req = req.create_bucket_configuration(
                CreateBucketConfiguration::builder()
                    .location_constraint(BucketLocationConstraint::from(region.as_str()))
                    .build(),
            );
        }
        req.send().await.aws("CreateBucket")?;
        Ok(())
    }

    async fn put_tags(&self, bucket: String, tags: Tags) -> Result<(), AwsError> {
        let set =
            tags.iter().filter_map(|(k, v)| aws_sdk_s3::types::Tag::builder().key(k).value(v).build().ok()).collect();
        let tagging = aws_sdk_s3::types::Tagging::builder()
            .set_tag_set(Some(set))
            .build()
            .map_err(|e| AwsError::new("PutBucketTagging", "Build", e.to_string()))?;
        self.s3.put_bucket_tagging().bucket(bucket).tagging(tagging).send().await.aws("PutBucketTagging")?;
        Ok(())
    }

    async fn enable_versioning(&self, bucket: String) -> Result<(), AwsError> {
        self.s3
            .put_bucket_versioning()
            .bucket(bucket)
            .versioning_configuration(
                aws_sdk_s3::types::VersioningConfiguration::builder()
                    .status(aws_sdk_s3::types::BucketVersioningStatus::Enabled)
                    .build(),
            )
            .send()
            .await
            .aws("PutBucketVersioning")?;
        Ok(())
    }

    async fn put_encryption(&self, bucket: String, kms_key_id: Option<String>) -> Result<(), AwsError> {
        use aws_sdk_s3::types::*;
        let default = match &kms_key_id {
            Some(key) => ServerSideEncryptionByDefault::builder()
                .sse_algorithm(ServerSideEncryption::AwsKms)
                .kms_master_key_id(key),
            None => ServerSideEncryptionByDefault::builder().sse_algorithm(ServerSideEncryption::Aes256),
        }
        .build()
        .map_err(|e| AwsError::new("PutBucketEncryption", "Build", e.to_string()))?;
        let config = ServerSideEncryptionConfiguration::builder()
            .rules(
                ServerSideEncryptionRule::builder()
                    .apply_server_side_encryption_by_default(default)
                    .bucket_key_enabled(kms_key_id.is_some())
                    .build(),
            )
            .build()
            .map_err(|e| AwsError::new("PutBucketEncryption", "Build", e.to_string()))?;
        self.s3
            .put_bucket_encryption()
            .bucket(bucket)
            .server_side_encryption_configuration(config)
            .send()
            .await
            .aws("PutBucketEncryption")?;
        Ok(())
    }

    async fn block_public_access(&self, bucket: String) -> Result<(), AwsError> {
        self.s3
            .put_public_access_block()
            .bucket(bucket)
            .public_access_block_configuration(
                aws_sdk_s3::types::PublicAccessBlockConfiguration::builder()
                    .block_public_acls(true)
                    .ignore_public_acls(true)
                    .block_public_policy(true)
                    .restrict_public_buckets(true)
                    .build(),
            )
            .send()
            .await
            .aws("PutPublicAccessBlock")?;
        Ok(())
    }

    async fn put_policy(&self, bucket: String, policy: String) -> Result<(), AwsError> {
        self.s3.put_bucket_policy().bucket(bucket).policy(policy).send().await.aws("PutBucketPolicy")?;
        Ok(())
    }

    async fn put_lifecycle(&self, bucket: String, days: i32) -> Result<(), AwsError> {
        use aws_sdk_s3::types::*;
        let rule = LifecycleRule::builder()
            .id(crate::bucket::LIFECYCLE_RULE_ID)
            .status(ExpirationStatus::Enabled)
            .filter(LifecycleRuleFilter::builder().prefix("").build())
            .abort_incomplete_multipart_upload(
                AbortIncompleteMultipartUpload::builder().days_after_initiation(days).build(),
            )
            .build()
            .map_err(|e| AwsError::new("PutBucketLifecycleConfiguration", "Build", e.to_string()))?;
        let config = BucketLifecycleConfiguration::builder()
            .rules(rule)
            .build()
            .map_err(|e| AwsError::new("PutBucketLifecycleConfiguration", "Build", e.to_string()))?;
        self.s3
            .put_bucket_lifecycle_configuration()
            .bucket(bucket)
            .lifecycle_configuration(config)
            .send()
            .await
            .aws("PutBucketLifecycleConfiguration")?;
        Ok(())
    }

    async fn list_versions(&self, bucket: String, marker: Option<(String, String)>) -> Result<VersionPage, AwsError> {
        let (key, version) = marker.unzip();
        let out = self
            .s3
            .list_object_versions()
            .bucket(bucket)
            .set_key_marker(key)
            .set_version_id_marker(version)
            .send()
            .await
            .aws("ListObjectVersions")?;
        let mut items: Vec<(String, String)> = out
            .versions()
            .iter()
            .filter_map(|v| Some((v.key()?.to_owned(), v.version_id().unwrap_or("null").to_owned())))
            .collect();
        items.extend(
            out.delete_markers()
                .iter()
                .filter_map(|m| Some((m.key()?.to_owned(), m.version_id().unwrap_or("null").to_owned()))),
        );
        let next = if out.is_truncated() == Some(true) {
            out.next_key_marker().map(|k| (k.to_owned(), out.next_version_id_marker().unwrap_or_default().to_owned()))
        } else {
            None
        };
        Ok((items, next))
    }

    async fn delete_versions(&self, bucket: String, versions: Vec<(String, String)>) -> Result<Vec<String>, AwsError> {
        use aws_sdk_s3::types::{Delete, ObjectIdentifier};
        let objects = versions
            .into_iter()
            .filter_map(|(k, v)| ObjectIdentifier::builder().key(k).version_id(v).build().ok())
            .collect();
        let delete = Delete::builder()
            .set_objects(Some(objects))
            .quiet(true)
            .build()
            .map_err(|e| AwsError::new("DeleteObjects", "Build", e.to_string()))?;
        let out = self.s3.delete_objects().bucket(bucket).delete(delete).send().await.aws("DeleteObjects")?;
        Ok(out.errors().iter().filter_map(|e| e.key().map(str::to_owned)).collect())
    }

    async fn delete(&self, bucket: String) -> Result<(), AwsError> {
        ignore_not_found(self.s3.delete_bucket().bucket(bucket).send().await.aws("DeleteBucket").map(|_| ()))?;
        Ok(())
    }
}
