//! CloudWatch Logs: the control-plane log group.

use async_trait::async_trait;
use dify_stack_core::{AwsError, Tags};

/// A CloudWatch Logs log group.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LogGroupInfo {
    /// Name, `/aws/eks/<cluster>/cluster`.
    pub name: String,
    /// Retention in days; `None` keeps the logs forever.
    pub retention_days: Option<i32>,
    /// Tags.
    pub tags: Tags,
}

/// What the EKS tier asks of CloudWatch Logs: the control-plane log group.
#[cfg_attr(any(test, feature = "test-util"), mockall::automock)]
#[async_trait]
pub trait LogsApi: Send + Sync {
    /// DescribeLogGroups (exact name) + ListTagsLogGroup; `None` when it does not exist.
    async fn describe_log_group(&self, name: String) -> Result<Option<LogGroupInfo>, AwsError>;
    /// CreateLogGroup with tags.
    async fn create_log_group(&self, name: String, tags: Tags) -> Result<(), AwsError>;
    /// TagLogGroup: adds `tags` to an existing group (adopting one EKS made). The default
    /// answers an error (a client that does not model it).
    async fn tag_log_group(&self, name: String, tags: Tags) -> Result<(), AwsError> {
        let _ = (name, tags);
        Err(AwsError::new("TagLogGroup", "UnsupportedOperation", "this client does not implement the call"))
    }
    /// PutRetentionPolicy.
    async fn put_log_retention(&self, name: String, days: i32) -> Result<(), AwsError>;
    /// DeleteLogGroup.
    async fn delete_log_group(&self, name: String) -> Result<(), AwsError>;
}
