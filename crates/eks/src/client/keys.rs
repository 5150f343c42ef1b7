//! KMS: the secrets-encryption key.

use async_trait::async_trait;
use dify_stack_core::ids::KmsKeyArn;
use dify_stack_core::{AwsError, Tags};

/// A KMS key.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KeyInfo {
    /// Key id.
    pub key_id: String,
    /// Key ARN.
    pub arn: KmsKeyArn,
    /// `Enabled`, `Disabled`, `PendingDeletion`, ...
    pub state: String,
    /// Tags.
    pub tags: Tags,
}

/// What the EKS tier asks of KMS: the secrets-encryption key.
#[cfg_attr(any(test, feature = "test-util"), mockall::automock)]
#[async_trait]
pub trait KeysApi: Send + Sync {
    /// DescribeKey by alias + ListResourceTags; `None` when the alias does not exist.
    async fn find_key(&self, alias: String) -> Result<Option<KeyInfo>, AwsError>;
    /// CreateKey (symmetric, rotation on) with tags, then CreateAlias.
    async fn create_key(&self, alias: String, description: String, tags: Tags) -> Result<KeyInfo, AwsError>;
    /// ListKeys + ListResourceTags: the keys carrying all of `tags` (a key whose alias was never
    /// created because the run died right after CreateKey, or a twin made by an SDK retry of a
    /// CreateKey whose response was lost).
    async fn find_keys_by_tags(&self, tags: Tags) -> Result<Vec<KeyInfo>, AwsError>;
    /// CreateAlias `alias/<alias>` for a key.
    async fn create_alias(&self, alias: String, key_id: String) -> Result<(), AwsError>;
    /// CancelKeyDeletion + EnableKey (a key scheduled for deletion is restored, not replaced).
    async fn restore_key(&self, key_id: String) -> Result<(), AwsError>;
    /// TagResource.
    async fn tag_key(&self, key_id: String, tags: Tags) -> Result<(), AwsError>;
    /// DeleteAlias (unless `alias` is empty) + ScheduleKeyDeletion.
    async fn schedule_key_deletion(&self, alias: String, key_id: String, days: i32) -> Result<(), AwsError>;
}
