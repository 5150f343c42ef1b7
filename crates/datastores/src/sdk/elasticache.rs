//! ElastiCache (Redis).

use super::{AwsError, SdkDatastores, Tags, async_trait, found};
use crate::ElastiCacheApi;
use crate::sdk::CacheEngine;
use crate::sdk::CacheStatus;
use crate::sdk::ReplicationGroupCreate;
use crate::sdk::ReplicationGroupInfo;
use dify_stack_core::AwsResultExt;
use dify_stack_core::ids::{Arn, SubnetId};
use secrecy::ExposeSecret;

pub(super) fn cache_tags(tags: &Tags) -> Vec<aws_sdk_elasticache::types::Tag> {
    tags.iter().map(|(k, v)| aws_sdk_elasticache::types::Tag::builder().key(k).value(v).build()).collect()
}

/// ElastiCache's answer to a tag read or write on a group or cluster that is not `available`.
pub(super) fn is_not_taggable_now(e: &AwsError) -> bool {
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
        let out = found(
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

    async fn create_subnet_group(&self, name: String, subnets: Vec<SubnetId>, tags: Tags) -> Result<(), AwsError> {
        self.cache
            .create_cache_subnet_group()
            .cache_subnet_group_name(&name)
            .cache_subnet_group_description(format!("dify-stack {name}"))
            .set_subnet_ids(Some(subnets.into_iter().map(SubnetId::into_inner).collect()))
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
        let out = found(
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
            arn: Arn::new(arn),
            status: CacheStatus::parse(g.status().unwrap_or_default()),
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
            .security_group_ids(c.security_group.into_inner())
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

    async fn tag(&self, arn: Arn, tags: Tags) -> Result<(), AwsError> {
        self.cache
            .add_tags_to_resource()
            .resource_name(arn.into_inner())
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

    async fn engine(&self, cluster: String) -> Result<Option<CacheEngine>, AwsError> {
        let out = found(
            self.cache.describe_cache_clusters().cache_cluster_id(cluster).send().await.aws("DescribeCacheClusters"),
        )?;
        // A node that reports no version (an emulator's) is an unknown engine, not a version "".
        Ok(out.and_then(|o| {
            o.cache_clusters().first().filter(|c| c.engine_version().is_some_and(|v| !v.is_empty())).map(|c| {
                CacheEngine {
                    version: c.engine_version().unwrap_or_default().to_owned(),
                    parameter_group: c
                        .cache_parameter_group()
                        .and_then(|g| g.cache_parameter_group_name())
                        .map(str::to_owned),
                }
            })
        }))
    }

    async fn upgrade_engine(
        &self,
        id: String,
        engine_version: String,
        parameter_group: Option<String>,
    ) -> Result<(), AwsError> {
        self.cache
            .modify_replication_group()
            .replication_group_id(id)
            .apply_immediately(true)
            .engine_version(engine_version)
            .set_cache_parameter_group_name(parameter_group)
            .send()
            .await
            .aws("ModifyReplicationGroup")?;
        Ok(())
    }

    async fn create_snapshot(&self, group: String, name: String, tags: Tags) -> Result<(), AwsError> {
        self.cache
            .create_snapshot()
            .replication_group_id(group)
            .snapshot_name(name)
            .set_tags(Some(cache_tags(&tags)))
            .send()
            .await
            .aws("CreateSnapshot")?;
        Ok(())
    }

    async fn snapshot_status(&self, name: String) -> Result<Option<String>, AwsError> {
        let out = found(self.cache.describe_snapshots().snapshot_name(name).send().await.aws("DescribeSnapshots"))?;
        Ok(out.and_then(|o| o.snapshots().first().map(|s| s.snapshot_status().unwrap_or_default().to_owned())))
    }
}

// ---------------------------------------------------------------- OpenSearch
