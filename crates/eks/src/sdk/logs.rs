//! CloudWatch Logs: the control-plane log group.

use super::{AwsError, LogGroupInfo, LogsApi, SdkEks, Tags, async_trait, hash_tags, to_hash};
use dify_stack_core::AwsResultExt;

#[async_trait]
impl LogsApi for SdkEks {
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

    async fn tag_log_group(&self, name: String, tags: Tags) -> Result<(), AwsError> {
        // TagLogGroup takes the name (TagResource would need the ARN).
        #[allow(deprecated)]
        self.logs
            .tag_log_group()
            .log_group_name(name)
            .set_tags(Some(to_hash(&tags)))
            .send()
            .await
            .aws("TagLogGroup")?;
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
}
