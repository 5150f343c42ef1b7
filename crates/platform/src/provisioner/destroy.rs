//! Destroy: the releases and the IngressClass this stack installed.

use super::{
    Context, INGRESS_CLASS, METRICS_SERVER, PlatformProvisioner, ResourceRef, Result, SYSTEM_NAMESPACE, helm_err,
};
use crate::spec::PlatformSelector;
use dify_stack_core::AwsAt;

impl PlatformProvisioner {
    /// The releases (autoscaler and metrics first, the load balancer controller last: it deletes
    /// the load balancers of Ingresses that go before it), the IngressClass when ours, the
    /// metrics-server add-on when ours.
    pub(super) async fn destroy_tier(&self, ctx: &Context, selector: &PlatformSelector) -> Result<Vec<ResourceRef>> {
        let mut deleted = Vec::new();
        if let Some((helm, kube)) = self.cluster_if(selector.kubernetes)? {
            for name in selector.releases() {
                if helm.status(name.into(), SYSTEM_NAMESPACE.into()).await.map_err(helm_err(name))?.is_some() {
                    helm.uninstall(name.into(), SYSTEM_NAMESPACE.into()).await.map_err(helm_err(name))?;
                    deleted.push(ResourceRef::new("helm:release", crate::names::release(name)));
                }
            }
            if let Some(class) = kube.ingress_class(INGRESS_CLASS.into()).await?
                && class.ours
            {
                kube.delete_ingress_class(INGRESS_CLASS.into()).await?;
                deleted.push(ResourceRef::new("k8s:ingressclass", INGRESS_CLASS));
            }
        }
        if selector.metrics_server {
            let cluster = selector.cluster_name.clone();
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

#[cfg(test)]
mod tests {
    use super::super::{LOAD_BALANCER_CONTROLLER, desired_releases};
    use crate::spec::{Chart, PlatformSelector, PlatformSpec};
    use dify_stack_core::{Context, Environment, Provisioner};

    /// Destroy by selector uninstalls the releases destroy from the spec did, in the same order
    /// (the load balancer controller last), for every choice of add-ons.
    #[test]
    fn a_selectors_releases_are_the_specs() {
        let ctx = Context::new("sel-unit", Environment::Test, "us-west-2").unwrap();
        let platform = crate::PlatformProvisioner::new(crate::MockAddonApi::new());
        for bits in 0..8u8 {
            let on = |bit: u8| bits & (1 << bit) != 0;
            let spec = PlatformSpec {
                cluster_name: "sel-unit".into(),
                kubernetes_version: dify_stack_core::ids::KubernetesVersion::new(1, 33),
                vpc_id: "vpc-1".into(),
                kubernetes: true,
                load_balancer_controller: on(0).then(Chart::load_balancer_controller),
                cluster_autoscaler: on(1).then(Chart::cluster_autoscaler),
                metrics_server: on(2).then(Chart::metrics_server),
                roles: Default::default(),
            };
            let mut want = desired_releases(&ctx, &spec, false);
            want.sort_by_key(|r| r.name == LOAD_BALANCER_CONTROLLER);
            let want: Vec<&str> = want.iter().map(|r| r.name).collect();
            let selector: PlatformSelector = platform.selector(&ctx, &spec);
            assert_eq!(selector.releases(), want, "{bits:03b}");
            assert_eq!(selector.metrics_server, on(2));
        }
    }
}
