//! Destroy: service accounts first (when the API answers), then roles, then the provider.

use super::{Context, IamProvisioner, ResourceRef, delete_service_accounts, ignore};
use crate::IamSelector;
use crate::Result;
use dify_stack_core::AwsAt;

impl IamProvisioner {
    /// Service accounts (and the namespace, when ours and otherwise empty), then the roles (inline
    /// policies deleted, managed ones detached), then the OIDC providers carrying the stack's ownership tags.
    pub(super) async fn destroy_tier(&self, ctx: &Context, selector: &IamSelector) -> Result<Vec<ResourceRef>> {
        let mut deleted = Vec::new();
        if let Some(kube) = self.kube_if(selector.service_accounts)? {
            match delete_service_accounts(kube, &selector.namespace).await {
                Ok(refs) => deleted.extend(refs),
                // Destroy never blocks on the Kubernetes API: objects inside the cluster go
                // with it (the cluster is deleted after this node), the roles must not wait.
                Err(e) if e.unreachable => tracing::warn!(
                    error = %e,
                    "the Kubernetes API cannot be reached; the service accounts go with the cluster"
                ),
                Err(e) => return Err(e.into()),
            }
        }
        for role in selector.role_names() {
            deleted.extend(self.delete_role(ctx, &role).await?);
        }
        // The providers carrying our ownership tags, found by tag and not by the live cluster's
        // issuer: one whose cluster is already gone (a destroy interrupted after the EKS node)
        // is not left behind.
        let issuer = selector.oidc_issuer_url.as_deref().unwrap_or("*");
        let providers = self.client.list_oidc_providers().await.at("ListOpenIDConnectProviders", issuer)?;
        for p in providers.into_iter().filter(|p| ctx.owns_tags(&p.tags)) {
            ignore(self.client.delete_oidc_provider(p.arn.clone()).await)
                .at("DeleteOpenIDConnectProvider", p.arn.as_str())?;
            deleted.push(ResourceRef::new("iam:oidc-provider", &p.url).with_id(p.arn.into_inner()));
        }
        Ok(deleted)
    }
}
