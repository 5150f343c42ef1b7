//! Observe: the OIDC provider, the IRSA roles with their inline policies, and the service
//! accounts when the tier manages them.

use super::{Context, IamProvisioner, ObservedIam, desired_roles};
use crate::IamSpec;
use crate::Result;

impl IamProvisioner {
    pub(super) async fn observe_tier(&self, ctx: &Context, spec: &IamSpec) -> Result<ObservedIam> {
        // Checked before the first read: apply fails on a missing Kubernetes client before any
        // call.
        let kube = self.kube(spec)?;
        let mut observed = ObservedIam { provider: self.find_provider(spec).await?, ..Default::default() };
        for role in desired_roles(ctx, spec) {
            if let Some(have) = self.observe_role(ctx, &role.name).await? {
                observed.insert_role(role.key, have);
            }
        }
        if let Some(kube) = kube {
            observed.service_accounts = kube.list_managed(spec.namespace.clone()).await?;
            observed.default_storage_class = kube.default_storage_class_present().await?;
        }
        Ok(observed)
    }
}
