//! Apply: installs or upgrades the releases and add-ons and applies the IngressClass.

#[allow(unused_imports)]
use super::*;

impl PlatformProvisioner {
    pub(super) async fn apply_tier(&self, ctx: &Context, spec: &PlatformSpec) -> Result<PlatformOutput> {
        spec.validate()?;
        let cluster = self.cluster(spec)?;
        let o = self.observe(ctx, spec).await?;
        let mut out = PlatformOutput::default();

        // 1. metrics-server: the EKS add-on where offered.
        if spec.metrics_server.is_some() {
            if let Some(version) = &o.metrics_offered {
                match &o.metrics_addon {
                    Some(a) if !ctx.owns_tags(&a.tags) => {
                        // Installed by someone else: used, never touched.
                        out.metrics_server = Some(format!("eks-addon {} (not ours)", a.version));
                    }
                    Some(a) => out.metrics_server = Some(format!("eks-addon {}", a.version)),
                    None => {
                        let tags = ctx.tags_for(Tier::Platform, "addon", METRICS_SERVER);
                        let cluster_name = spec.cluster_name.to_string();
                        let created = self
                            .addons
                            .create_addon(cluster_name.clone(), METRICS_SERVER.into(), version.clone(), tags)
                            .await;
                        if let Err(e) = created {
                            // A retried create whose first response was lost: ours now, fine.
                            let now = self
                                .addons
                                .addon(cluster_name, METRICS_SERVER.into())
                                .await
                                .at("DescribeAddon", METRICS_SERVER)?;
                            if !now.is_some_and(|a| ctx.owns_tags(&a.tags)) {
                                return Err(e.at("CreateAddon", METRICS_SERVER).into());
                            }
                        }
                        out.metrics_server = Some(format!("eks-addon {version}"));
                    }
                }
            } else if let Some(chart) = &spec.metrics_server {
                out.metrics_server = Some(format!("helm {}-{}", chart.chart, chart.version));
            }
        }

        // 2. The releases and the IngressClass, or the commands for them.
        let releases = desired_releases(ctx, spec, o.metrics_offered.is_some());
        match cluster {
            Some((helm, kube)) => {
                for r in &releases {
                    let current = o.releases.get(r.name).cloned().flatten();
                    if current.as_ref().is_none_or(|c| c.chart != r.chart_id() || c.status != "deployed") {
                        let values = serde_norway::to_string(&r.values).unwrap_or_default();
                        helm.upgrade_install(r.name.into(), SYSTEM_NAMESPACE.into(), r.chart.clone(), values)
                            .await
                            .map_err(helm_err(r.name))?;
                        tracing::info!(release = r.name, chart = %r.chart_id(), "installed Helm release");
                    }
                    out.releases.push(format!("{} {}", crate::names::release(r.name), r.chart_id()));
                    if r.name == LOAD_BALANCER_CONTROLLER {
                        if o.ingress_class.as_ref().map(|c| c.controller.as_str()) != Some(INGRESS_CONTROLLER) {
                            kube.apply_ingress_class(INGRESS_CLASS.into(), INGRESS_CONTROLLER.into()).await?;
                        }
                        out.ingress_class = Some(INGRESS_CLASS.to_owned());
                    }
                }
            }
            None => {
                for r in &releases {
                    out.release_values
                        .insert(r.name.to_owned(), serde_norway::to_string(&r.values).unwrap_or_default());
                    out.commands.push(format!(
                        "helm upgrade --install {} {} --repo {} --version {} --namespace {SYSTEM_NAMESPACE} --values {}-values.yaml",
                        r.name, r.chart.chart, r.chart.repository, r.chart.version, r.name
                    ));
                }
                if spec.load_balancer_controller.is_some() {
                    out.commands.push(format!(
                        "kubectl apply --server-side --field-manager dify-stack -f - <<'EOF'\n{}EOF",
                        serde_norway::to_string(&crate::kube::ingress_class_manifest(
                            INGRESS_CLASS,
                            INGRESS_CONTROLLER
                        ))
                        .unwrap_or_default()
                    ));
                }
            }
        }

        Ok(out)
    }
}
