//! KMS: the secrets-encryption key.

use super::{AwsError, KeyInfo, KeysApi, SdkEks, Tags, async_trait, found};
use dify_stack_core::AwsResultExt;
use dify_stack_core::ids::KmsKeyArn;

#[async_trait]
impl KeysApi for SdkEks {
    async fn find_key(&self, alias: String) -> Result<Option<KeyInfo>, AwsError> {
        let Some(out) =
            found(self.kms.describe_key().key_id(format!("alias/{alias}")).send().await.aws("DescribeKey"))?
        else {
            return Ok(None);
        };
        let Some(meta) = out.key_metadata() else { return Ok(None) };
        let tags = self
            .kms
            .list_resource_tags()
            .key_id(meta.key_id())
            .send()
            .await
            .aws("ListResourceTags")?
            .tags()
            .iter()
            .map(|t| (t.tag_key().to_owned(), t.tag_value().to_owned()))
            .collect();
        Ok(Some(KeyInfo {
            key_id: meta.key_id().to_owned(),
            arn: KmsKeyArn::new(meta.arn().unwrap_or_default()),
            state: meta.key_state().map(|s| s.as_str().to_owned()).unwrap_or_default(),
            tags,
        }))
    }

    async fn find_keys_by_tags(&self, want: Tags) -> Result<Vec<KeyInfo>, AwsError> {
        let mut found = Vec::new();
        let mut marker = None;
        loop {
            let page = self.kms.list_keys().set_marker(marker).send().await.aws("ListKeys")?;
            for k in page.keys() {
                let Some(id) = k.key_id() else { continue };
                let tags: Tags = match self.kms.list_resource_tags().key_id(id).send().await.aws("ListResourceTags") {
                    Ok(t) => t.tags().iter().map(|t| (t.tag_key().to_owned(), t.tag_value().to_owned())).collect(),
                    // AWS-managed keys refuse tag listing: not ours anyway.
                    Err(e) if e.kind == dify_stack_core::ErrorKind::AccessDenied || e.is_not_found() => continue,
                    Err(e) => return Err(e),
                };
                if want.iter().all(|(k, v)| tags.get(k) == Some(v)) {
                    let meta = self.kms.describe_key().key_id(id).send().await.aws("DescribeKey")?;
                    let Some(meta) = meta.key_metadata() else { continue };
                    found.push(KeyInfo {
                        key_id: id.to_owned(),
                        arn: KmsKeyArn::new(meta.arn().unwrap_or_default()),
                        state: meta.key_state().map(|s| s.as_str().to_owned()).unwrap_or_default(),
                        tags,
                    });
                }
            }
            marker = page.next_marker().map(str::to_owned);
            if marker.is_none() || !page.truncated() {
                return Ok(found);
            }
        }
    }

    async fn create_alias(&self, alias: String, key_id: String) -> Result<(), AwsError> {
        self.kms
            .create_alias()
            .alias_name(format!("alias/{alias}"))
            .target_key_id(key_id)
            .send()
            .await
            .aws("CreateAlias")?;
        Ok(())
    }

    async fn create_key(&self, alias: String, description: String, tags: Tags) -> Result<KeyInfo, AwsError> {
        let out = self
            .kms
            .create_key()
            .description(description)
            .set_tags(Some(
                tags.iter()
                    .filter_map(|(k, v)| aws_sdk_kms::types::Tag::builder().tag_key(k).tag_value(v).build().ok())
                    .collect(),
            ))
            .send()
            .await
            .aws("CreateKey")?;
        let meta =
            out.key_metadata().ok_or_else(|| AwsError::new("CreateKey", "EmptyResponse", "no key in the response"))?;
        let key_id = meta.key_id().to_owned();
        self.kms.enable_key_rotation().key_id(&key_id).send().await.aws("EnableKeyRotation")?;
        self.kms
            .create_alias()
            .alias_name(format!("alias/{alias}"))
            .target_key_id(&key_id)
            .send()
            .await
            .aws("CreateAlias")?;
        Ok(KeyInfo {
            key_id,
            arn: KmsKeyArn::new(meta.arn().unwrap_or_default()),
            state: meta.key_state().map(|s| s.as_str().to_owned()).unwrap_or_default(),
            tags,
        })
    }

    async fn restore_key(&self, key_id: String) -> Result<(), AwsError> {
        self.kms.cancel_key_deletion().key_id(&key_id).send().await.aws("CancelKeyDeletion")?;
        self.kms.enable_key().key_id(key_id).send().await.aws("EnableKey")?;
        Ok(())
    }

    async fn tag_key(&self, key_id: String, tags: Tags) -> Result<(), AwsError> {
        self.kms
            .tag_resource()
            .key_id(key_id)
            .set_tags(Some(
                tags.iter()
                    .filter_map(|(k, v)| aws_sdk_kms::types::Tag::builder().tag_key(k).tag_value(v).build().ok())
                    .collect(),
            ))
            .send()
            .await
            .aws("TagResource")?;
        Ok(())
    }

    async fn schedule_key_deletion(&self, alias: String, key_id: String, days: i32) -> Result<(), AwsError> {
        if !alias.is_empty() {
            dify_stack_core::ignore_not_found(
                self.kms
                    .delete_alias()
                    .alias_name(format!("alias/{alias}"))
                    .send()
                    .await
                    .aws("DeleteAlias")
                    .map(|_| ()),
            )?;
        }
        self.kms
            .schedule_key_deletion()
            .key_id(key_id)
            .pending_window_in_days(days)
            .send()
            .await
            .aws("ScheduleKeyDeletion")?;
        Ok(())
    }
}
