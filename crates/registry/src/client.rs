//! The thin ECR client of the registry tier (mocked in tests as `MockEcrApi`).

use async_trait::async_trait;
use dify_stack_core::ids::{Arn, RepositoryName};
use dify_stack_core::{AwsError, Tags};

use crate::spec::{Encryption, TagMutability};

/// A repository as ECR describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RepoInfo {
    /// Repository name.
    pub name: RepositoryName,
    /// Repository ARN.
    pub arn: Arn,
    /// Repository URI (`<account>.dkr.ecr.<region>.<suffix>/<name>`).
    pub uri: String,
    /// Scan on push.
    pub scan_on_push: bool,
    /// Tag mutability.
    pub mutability: TagMutability,
    /// Encryption at rest.
    pub encryption: Encryption,
}

/// Everything the registry tier asks of ECR.
#[cfg_attr(any(test, feature = "test-util"), mockall::automock)]
#[async_trait]
pub trait EcrApi: Send + Sync {
    /// DescribeRepositories over all repositories of the registry (paginated).
    async fn list_repositories(&self) -> Result<Vec<RepoInfo>, AwsError>;
    /// ListTagsForResource.
    async fn list_tags(&self, arn: Arn) -> Result<Tags, AwsError>;
    /// GetLifecyclePolicy; `None` when the repository has none.
    async fn get_lifecycle_policy(&self, name: RepositoryName) -> Result<Option<String>, AwsError>;
    /// Number of images in a repository (ListImages, stops at the first page).
    async fn image_count(&self, name: RepositoryName) -> Result<usize, AwsError>;
    /// CreateRepository with its settings and tags.
    async fn create_repository(
        &self,
        name: RepositoryName,
        scan_on_push: bool,
        mutability: TagMutability,
        encryption: Encryption,
        tags: Tags,
    ) -> Result<RepoInfo, AwsError>;
    /// PutImageScanningConfiguration.
    async fn set_scan_on_push(&self, name: RepositoryName, scan_on_push: bool) -> Result<(), AwsError>;
    /// PutImageTagMutability.
    async fn set_mutability(&self, name: RepositoryName, mutability: TagMutability) -> Result<(), AwsError>;
    /// PutLifecyclePolicy.
    async fn put_lifecycle_policy(&self, name: RepositoryName, policy: String) -> Result<(), AwsError>;
    /// TagResource.
    async fn tag(&self, arn: Arn, tags: Tags) -> Result<(), AwsError>;
    /// DeleteRepository; `force` also deletes the images.
    async fn delete_repository(&self, name: RepositoryName, force: bool) -> Result<(), AwsError>;
}
