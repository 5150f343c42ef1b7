//! Secrets Manager.

use super::{AwsError, SdkDatastores, SecretString, Tags, async_trait, found};
use crate::SecretsApi;
use crate::sdk::SecretMeta;
use dify_stack_core::AwsResultExt;
use dify_stack_core::ids::SecretArn;
use secrecy::ExposeSecret;

#[async_trait]
impl SecretsApi for SdkDatastores {
    async fn describe(&self, name: String) -> Result<Option<SecretMeta>, AwsError> {
        let out = found(self.secrets.describe_secret().secret_id(name).send().await.aws("DescribeSecret"))?;
        Ok(out.map(|s| SecretMeta {
            arn: SecretArn::new(s.arn().unwrap_or_default()),
            name: s.name().unwrap_or_default().to_owned(),
            pending_deletion: s.deleted_date().is_some(),
            tags: s.tags().iter().filter_map(|t| Some((t.key()?.to_owned(), t.value()?.to_owned()))).collect(),
        }))
    }

    async fn get_value(&self, arn: SecretArn) -> Result<SecretString, AwsError> {
        let out = self.secrets.get_secret_value().secret_id(arn.into_inner()).send().await.aws("GetSecretValue")?;
        Ok(SecretString::from(out.secret_string().unwrap_or_default().to_owned()))
    }

    async fn put_value(&self, arn: SecretArn, value: SecretString) -> Result<(), AwsError> {
        self.secrets
            .put_secret_value()
            .secret_id(arn.into_inner())
            .secret_string(value.expose_secret())
            .send()
            .await
            .aws("PutSecretValue")?;
        Ok(())
    }

    async fn create(&self, name: String, value: SecretString, tags: Tags) -> Result<SecretArn, AwsError> {
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
        Ok(SecretArn::new(out.arn().unwrap_or_default()))
    }

    async fn restore(&self, arn: SecretArn) -> Result<(), AwsError> {
        self.secrets.restore_secret().secret_id(arn.into_inner()).send().await.aws("RestoreSecret")?;
        Ok(())
    }

    async fn tag(&self, arn: SecretArn, tags: Tags) -> Result<(), AwsError> {
        self.secrets
            .tag_resource()
            .secret_id(arn.into_inner())
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

    async fn delete(&self, arn: SecretArn, force: bool, window_days: i64) -> Result<(), AwsError> {
        let req = self.secrets.delete_secret().secret_id(arn.into_inner());
        let req =
            if force { req.force_delete_without_recovery(true) } else { req.recovery_window_in_days(window_days) };
        req.send().await.aws("DeleteSecret")?;
        Ok(())
    }
}

// ---------------------------------------------------------------- RDS
