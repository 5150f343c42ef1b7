//! Destroy: the releases and the IngressClass this stack installed.

use super::{
    Context, INGRESS_CLASS, LOAD_BALANCER_CONTROLLER, METRICS_SERVER, PlatformProvisioner, PlatformSpec, ResourceRef,
    Result, SYSTEM_NAMESPACE, desired_releases, helm_err,
};
use dify_stack_core::AwsAt;

impl PlatformProvisioner {
    /// The releases (autoscaler and metrics first, the load balancer controller last: it deletes
    /// the load balancers of Ingresses that go before it), the IngressClass when ours, the
    /// metrics-server add-on when ours.
    pub(super) async fn destroy_tier(&self, ctx: &Context, spec: &PlatformSpec) -> Result<Vec<ResourceRef>> {
        let mut deleted = Vec::new();
        if let Some((helm, kube)) = self.cluster(spec)? {
            let mut releases = desired_releases(ctx, spec, false);
            releases.sort_by_key(|r| r.name == LOAD_BALANCER_CONTROLLER);
            for r in releases {
                if helm.status(r.name.into(), SYSTEM_NAMESPACE.into()).await.map_err(helm_err(r.name))?.is_some() {
                    helm.uninstall(r.name.into(), SYSTEM_NAMESPACE.into()).await.map_err(helm_err(r.name))?;
                    deleted.push(ResourceRef::new("helm:release", crate::names::release(r.name)));
                }
            }
            if let Some(class) = kube.ingress_class(INGRESS_CLASS.into()).await?
                && class.ours
            {
                kube.delete_ingress_class(INGRESS_CLASS.into()).await?;
                deleted.push(ResourceRef::new("k8s:ingressclass", INGRESS_CLASS));
            }
        }
        if spec.metrics_server.is_some() {
            let cluster = spec.cluster_name.to_string();
            if let Some(a) =
                self.addons.addon(cluster.clone(), METRICS_SERVER.into()).await.at("DescribeAddon", METRICS_SERVER)?
                && ctx.owns_tags(&a.tags)
            {
                self.addons.delete_addon(cluster, METRICS_SERVER.into()).await.at("DeleteAddon", METRICS_SERVER)?;
                deleted.push(ResourceRef::new("eks:addon", METRICS_SERVER));
            }
        }
        Ok(deleted)
    }
}
