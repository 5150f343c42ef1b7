//! Observe: the system add-ons (EKS add-on or Helm release), their releases and the IngressClass.

use super::{
    Context, INGRESS_CLASS, METRICS_SERVER, ObservedPlatform, PlatformProvisioner, PlatformSpec, Result,
    SYSTEM_NAMESPACE, desired_releases, helm_err,
};
use dify_stack_core::AwsAt;

impl PlatformProvisioner {
    pub(super) async fn observe_tier(&self, ctx: &Context, spec: &PlatformSpec) -> Result<ObservedPlatform> {
        // Checked before the first read: apply fails on missing cluster clients before any call.
        let cluster = self.cluster(spec)?;
        let mut o = ObservedPlatform::default();
        if spec.metrics_server.is_some() {
            let (cluster, version) = (spec.cluster_name.clone(), spec.kubernetes_version.to_string());
            o.metrics_offered = self
                .addons
                .offered_version(METRICS_SERVER.into(), version)
                .await
                .at("DescribeAddonVersions", METRICS_SERVER)?;
            o.metrics_addon =
                self.addons.addon(cluster.clone(), METRICS_SERVER.into()).await.at("DescribeAddon", METRICS_SERVER)?;
            if o.metrics_addon.as_ref().is_some_and(|a| ctx.owns_tags(&a.tags) && a.repair().is_some()) {
                o.metrics_issues = self
                    .addons
                    .addon_issues(cluster, METRICS_SERVER.into())
                    .await
                    .at("DescribeAddon", METRICS_SERVER)?;
            }
        }
        if let Some((helm, kube)) = cluster {
            for r in desired_releases(ctx, spec, o.metrics_offered.is_some()) {
                let status = helm.status(r.name.into(), SYSTEM_NAMESPACE.into()).await.map_err(helm_err(r.name))?;
                if status.is_some()
                    && let Some(values) =
                        helm.values(r.name.into(), SYSTEM_NAMESPACE.into()).await.map_err(helm_err(r.name))?
                {
                    o.release_values.insert(r.name.to_owned(), values);
                }
                o.releases.insert(r.name.to_owned(), status);
            }
            if spec.load_balancer_controller.is_some() {
                o.ingress_class = kube.ingress_class(INGRESS_CLASS.into()).await?;
            }
        }
        Ok(o)
    }
}
