//! Destroy: the data policy is checked for every store before the first delete (a refusal
//! deletes nothing), then the four stores concurrently, then the app secret.

use dify_stack_core::{Context, Provisioner, ResourceRef};

use super::DatastoresProvisioner;
use super::apply::gather;
use crate::common::{DataPolicy, DatastoresError, Result};
use crate::secrets::{self, SecretKind};
use crate::spec::DatastoresSelector;

impl DatastoresProvisioner {
    pub(super) async fn destroy_tier(&self, ctx: &Context, selector: &DatastoresSelector) -> Result<Vec<ResourceRef>> {
        let policy = DataPolicy::from_context(ctx);
        let holders = self.data_holders_of(ctx, selector.final_snapshot).await?;
        if !holders.is_empty() {
            return Err(DatastoresError::DataLossRefused {
                holders,
                hint: "allow it with a DataPolicy (lift_deletion_protection; delete_data, i.e. --delete-data, to skip the final snapshot and empty buckets)".to_owned(),
            });
        }
        let (aurora, store) = (selector.aurora(), selector.store());
        let (a, r, o, b) = futures::future::join4(
            self.aurora.destroy_selected(ctx, &aurora),
            self.redis.destroy_selected(ctx, &store),
            self.opensearch.destroy_selected(ctx, &store),
            self.bucket.destroy_selected(ctx, &()),
        )
        .await;
        let mut deleted: Vec<ResourceRef> = gather(vec![a, r, o, b])?.into_iter().flatten().collect();
        if let Some(arn) = secrets::delete_secret(ctx, self.secrets.as_ref(), SecretKind::DifyApp, policy).await? {
            deleted.push(ResourceRef::new("secretsmanager:secret", SecretKind::DifyApp.name(ctx)).with_id(arn));
        }
        Ok(deleted)
    }
}
