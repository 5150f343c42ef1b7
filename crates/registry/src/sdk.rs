//! The ECR client over the AWS SDK: the only code of the tier that builds SDK requests.

use crate::spec::{Encryption, TagMutability};
use async_trait::async_trait;
use aws_sdk_ecr::Client;
use aws_sdk_ecr::types::{
    EncryptionConfiguration, EncryptionType, ImageScanningConfiguration, ImageTagMutability, Tag,
};
use dify_stack_core::ids::{Arn, RepositoryName};
use dify_stack_core::{AwsError, AwsResultExt, Tags};

use crate::client::{EcrApi, RepoInfo};

/// The real ECR client.
#[derive(Debug, Clone)]
pub struct SdkEcr {
    client: Client,
}

impl SdkEcr {
    /// Builds a client from shared SDK configuration.
    pub fn from_conf(config: &aws_types::SdkConfig) -> SdkEcr {
        SdkEcr { client: Client::new(config) }
    }
}

fn repo_info(r: &aws_sdk_ecr::types::Repository) -> RepoInfo {
    let encryption = match r.encryption_configuration() {
        Some(e) if e.encryption_type() == &EncryptionType::Kms => {
            Encryption::Kms { key_arn: e.kms_key().map(str::to_owned) }
        }
        _ => Encryption::Aes256,
    };
    RepoInfo {
        name: RepositoryName::new(r.repository_name().unwrap_or_default()),
        arn: Arn::new(r.repository_arn().unwrap_or_default()),
        uri: r.repository_uri().unwrap_or_default().to_owned(),
        scan_on_push: r.image_scanning_configuration().is_some_and(|s| s.scan_on_push()),
        mutability: match r.image_tag_mutability() {
            Some(ImageTagMutability::Immutable) => TagMutability::Immutable,
            _ => TagMutability::Mutable,
        },
        encryption,
    }
}

fn sdk_mutability(m: TagMutability) -> ImageTagMutability {
    match m {
        TagMutability::Mutable => ImageTagMutability::Mutable,
        TagMutability::Immutable => ImageTagMutability::Immutable,
    }
}

fn sdk_tags(tags: &Tags) -> Vec<Tag> {
    tags.iter().filter_map(|(k, v)| Tag::builder().key(k).value(v).build().ok()).collect()
}

#[async_trait]
impl EcrApi for SdkEcr {
    async fn list_repositories(&self) -> Result<Vec<RepoInfo>, AwsError> {
        let mut out = Vec::new();
        let mut token = None;
        loop {
            let page =
                self.client.describe_repositories().set_next_token(token).send().await.aws("DescribeRepositories")?;
            out.extend(page.repositories().iter().map(repo_info));
            token = page.next_token().map(str::to_owned);
            if token.is_none() {
                return Ok(out);
            }
        }
    }

    async fn list_tags(&self, arn: Arn) -> Result<Tags, AwsError> {
        let out = self
            .client
            .list_tags_for_resource()
            .resource_arn(arn.into_inner())
            .send()
            .await
            .aws("ListTagsForResource")?;
        Ok(out.tags().iter().map(|t| (t.key().to_owned(), t.value().to_owned())).collect())
    }

    async fn get_lifecycle_policy(&self, name: RepositoryName) -> Result<Option<String>, AwsError> {
        match self
            .client
            .get_lifecycle_policy()
            .repository_name(name.into_inner())
            .send()
            .await
            .aws("GetLifecyclePolicy")
        {
            Ok(out) => Ok(out.lifecycle_policy_text().map(str::to_owned)),
            Err(e) if e.is_not_found() => Ok(None),
            Err(e) => Err(e),
        }
    }

    async fn image_count(&self, name: RepositoryName) -> Result<usize, AwsError> {
        let out = self.client.list_images().repository_name(name.into_inner()).send().await.aws("ListImages")?;
        Ok(out.image_ids().len())
    }

    async fn create_repository(
        &self,
        name: RepositoryName,
        scan_on_push: bool,
        mutability: TagMutability,
        encryption: Encryption,
        tags: Tags,
    ) -> Result<RepoInfo, AwsError> {
        let enc = match &encryption {
            Encryption::Aes256 => EncryptionConfiguration::builder().encryption_type(EncryptionType::Aes256),
            Encryption::Kms { key_arn } => {
                EncryptionConfiguration::builder().encryption_type(EncryptionType::Kms).set_kms_key(key_arn.clone())
            }
        }
        .build()
        .map_err(|e| AwsError::new("CreateRepository", "InvalidParameter", e.to_string()))?;
        let out = self
            .client
            .create_repository()
            .repository_name(name.into_inner())
            .image_scanning_configuration(ImageScanningConfiguration::builder().scan_on_push(scan_on_push).build())
            .image_tag_mutability(sdk_mutability(mutability))
            .encryption_configuration(enc)
            .set_tags(Some(sdk_tags(&tags)))
            .send()
            .await
            .aws("CreateRepository")?;
        out.repository()
            .map(repo_info)
            .ok_or_else(|| AwsError::new("CreateRepository", "EmptyResponse", "no repository in the response"))
    }

    async fn set_scan_on_push(&self, name: RepositoryName, scan_on_push: bool) -> Result<(), AwsError> {
        self.client
            .put_image_scanning_configuration()
            .repository_name(name.into_inner())
            .image_scanning_configuration(ImageScanningConfiguration::builder().scan_on_push(scan_on_push).build())
            .send()
            .await
            .aws("PutImageScanningConfiguration")?;
        Ok(())
    }

    async fn set_mutability(&self, name: RepositoryName, mutability: TagMutability) -> Result<(), AwsError> {
        self.client
            .put_image_tag_mutability()
            .repository_name(name.into_inner())
            .image_tag_mutability(sdk_mutability(mutability))
            .send()
            .await
            .aws("PutImageTagMutability")?;
        Ok(())
    }

    async fn put_lifecycle_policy(&self, name: RepositoryName, policy: String) -> Result<(), AwsError> {
        self.client
            .put_lifecycle_policy()
            .repository_name(name.into_inner())
            .lifecycle_policy_text(policy)
            .send()
            .await
            .aws("PutLifecyclePolicy")?;
        Ok(())
    }

    async fn tag(&self, arn: Arn, tags: Tags) -> Result<(), AwsError> {
        self.client
            .tag_resource()
            .resource_arn(arn.into_inner())
            .set_tags(Some(sdk_tags(&tags)))
            .send()
            .await
            .aws("TagResource")?;
        Ok(())
    }

    async fn delete_repository(&self, name: RepositoryName, force: bool) -> Result<(), AwsError> {
        self.client
            .delete_repository()
            .repository_name(name.into_inner())
            .force(force)
            .send()
            .await
            .aws("DeleteRepository")?;
        Ok(())
    }
}
