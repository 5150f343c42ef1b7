//! Destroy: instances, cluster (final snapshot unless the data policy says otherwise), subnet group, security group.

use super::{
    AuroraNames, AuroraProvisioner, AuroraSelector, Context, DataPolicy, DatastoresError, DbClusterModify, RdsStatus,
    ResourceRef, Result, SecretKind, caps, secrets, security_group, wait_for,
};
use dify_stack_core::AwsAt;

impl AuroraProvisioner {
    pub(super) async fn destroy_tier(&self, ctx: &Context, selector: &AuroraSelector) -> Result<Vec<ResourceRef>> {
        let policy = DataPolicy::from_context(ctx);
        let holders = self.data_holders_of(ctx, selector.final_snapshot, policy).await?;
        if !holders.is_empty() {
            return Err(DatastoresError::DataLossRefused {
                holders,
                hint: "set lift_deletion_protection (and delete_data to skip the final snapshot) in the data policy"
                    .to_owned(),
            });
        }
        let names = AuroraNames::of(ctx);
        let mut deleted = Vec::new();
        let cluster_id = names.cluster.clone();
        if let Some(c) = self
            .rds
            .describe_cluster(cluster_id.clone())
            .await
            .at("DescribeDBClusters", &cluster_id)?
            .filter(|c| ctx.owns_tags(&c.tags))
        {
            if c.deletion_protection {
                self.rds
                    .modify_cluster(
                        cluster_id.clone(),
                        DbClusterModify { deletion_protection: Some(false), ..Default::default() },
                    )
                    .await
                    .at("ModifyDBCluster", &cluster_id)?;
            }
            for x in self.rds.list_instances(cluster_id.clone()).await.at("DescribeDBInstances", &cluster_id)? {
                if x.status != RdsStatus::Deleting {
                    dify_stack_core::ignore_not_found(self.rds.delete_instance(x.id.clone()).await)
                        .at("DeleteDBInstance", &x.id)?;
                }
                deleted.push(ResourceRef::new("rds:instance", &x.id));
            }
            wait_for(
                ctx,
                format!("Aurora instances of {cluster_id} to be deleted"),
                caps::AURORA_INSTANCE,
                None,
                || async {
                    let left =
                        self.rds.list_instances(cluster_id.clone()).await.at("DescribeDBInstances", &cluster_id)?;
                    Ok((!left.is_empty()).then(|| format!("{} left", left.len())))
                },
            )
            .await?;
            let snapshot = (selector.final_snapshot && !policy.delete_data)
                .then(|| crate::names::final_snapshot(ctx, std::time::SystemTime::now()));
            if c.status != RdsStatus::Deleting {
                dify_stack_core::ignore_not_found(self.rds.delete_cluster(cluster_id.clone(), snapshot.clone()).await)
                    .at("DeleteDBCluster", &cluster_id)?;
            }
            if let Some(s) = &snapshot {
                tracing::info!(cluster = %cluster_id, snapshot = %s, "final snapshot requested");
            }
            wait_for(ctx, format!("Aurora cluster {cluster_id} to be deleted"), caps::AURORA_CLUSTER, None, || async {
                Ok(self
                    .rds
                    .describe_cluster(cluster_id.clone())
                    .await
                    .at("DescribeDBClusters", &cluster_id)?
                    .map(|c| c.status.to_string()))
            })
            .await?;
            deleted.push(ResourceRef::new("rds:cluster", &cluster_id).with_id(c.arn.as_str()));
        }
        if let Some(tags) = self
            .rds
            .find_subnet_group(names.subnet_group.clone())
            .await
            .at("DescribeDBSubnetGroups", &names.subnet_group)?
            && ctx.owns_tags(&tags)
        {
            dify_stack_core::ignore_not_found(self.rds.delete_subnet_group(names.subnet_group.clone()).await)
                .at("DeleteDBSubnetGroup", &names.subnet_group)?;
            deleted.push(ResourceRef::new("rds:db-subnet-group", &names.subnet_group));
        }
        // Without the VPC, no group in it.
        if let Some(vpc_id) = &selector.vpc_id
            && let Some(id) = security_group::delete(ctx, self.sg.as_ref(), vpc_id, &names.security_group).await?
        {
            deleted.push(ResourceRef::new("ec2:security-group", &names.security_group).with_id(id.into_inner()));
        }
        // The application role went with the cluster; its password with it.
        if let Some(arn) = secrets::delete_secret(ctx, self.secrets.as_ref(), SecretKind::AuroraApp, policy).await? {
            deleted.push(ResourceRef::new("secretsmanager:secret", SecretKind::AuroraApp.name(ctx)).with_id(arn));
        }
        Ok(deleted)
    }
}
