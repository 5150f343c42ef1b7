//! Apply: executes the typed changes of one observation (the metrics-server add-on, the
//! releases, the IngressClass), or hands out the commands when the cluster is not reachable
//! from here.

#[allow(unused_imports)]
use super::*;

impl PlatformProvisioner {
    pub(super) async fn apply_tier(&self, ctx: &Context, spec: &PlatformSpec) -> Result<PlatformOutput> {
        spec.validate()?;
        let cluster = self.cluster(spec)?;
        let o = self.observe(ctx, spec).await?;
        let releases = desired_releases(ctx, spec, o.metrics_offered.is_some());
        let mut out = PlatformOutput {
            metrics_server: match (&o.metrics_offered, &o.metrics_addon, &spec.metrics_server) {
                (_, _, None) => None,
                // Installed by someone else: used, never touched.
                (Some(_), Some(a), _) if !ctx.owns_tags(&a.tags) => Some(format!("eks-addon {} (not ours)", a.version)),
                (Some(_), Some(a), _) => Some(format!("eks-addon {}", a.version)),
                (Some(version), None, _) => Some(format!("eks-addon {version}")),
                (None, _, Some(chart)) => Some(format!("helm {}-{}", chart.chart, chart.version)),
            },
            ..Default::default()
        };
        for change in self.changes(ctx, spec, &o) {
            match (change, cluster) {
                (PlatformChange::CreateMetricsAddon { version }, _) => {
                    self.create_metrics_addon(ctx, spec, version).await?
                }
                (PlatformChange::Release { release: r, .. }, Some((helm, _))) => {
                    let values = serde_norway::to_string(&r.values).unwrap_or_default();
                    let install = ReleaseInstall {
                        name: r.name.into(),
                        namespace: SYSTEM_NAMESPACE.into(),
                        chart: r.chart.clone(),
                        values,
                    };
                    helm.upgrade_install(install).await.map_err(helm_err(r.name))?;
                    tracing::info!(release = r.name, chart = %r.chart_id(), "installed Helm release");
                }
                (PlatformChange::IngressClass { .. }, Some((_, kube))) => {
                    kube.apply_ingress_class(INGRESS_CLASS.into(), INGRESS_CONTROLLER.into()).await?;
                }
                // `changes` lists cluster changes only when the spec drives the cluster, and
                // `cluster` is then `Some` (else it was an error above).
                (_, None) => unreachable!("a cluster change without cluster access"),
            }
        }
        match cluster {
            Some(_) => {
                out.releases =
                    releases.iter().map(|r| format!("{} {}", crate::names::release(r.name), r.chart_id())).collect();
                out.ingress_class = spec.load_balancer_controller.is_some().then(|| INGRESS_CLASS.to_owned());
            }
            None => {
                for r in &releases {
                    out.release_values
                        .insert(r.name.to_owned(), serde_norway::to_string(&r.values).unwrap_or_default());
                    // `<chart> --repo <url>` or `oci://<registry>/<chart>`, `--version` either way.
                    out.commands.push(format!(
                        "helm upgrade --install {} {} --namespace {SYSTEM_NAMESPACE} --values {}-values.yaml",
                        r.name,
                        r.chart.helm_source().join(" "),
                        r.name
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

    /// Creates the metrics-server add-on with our tags, or takes the one a lost response of ours
    /// made.
    async fn create_metrics_addon(&self, ctx: &Context, spec: &PlatformSpec, version: String) -> Result<()> {
        let tags = ctx.tags_for(Tier::Platform, "addon", METRICS_SERVER);
        let cluster_name = spec.cluster_name.to_string();
        if let Err(e) = self.addons.create_addon(cluster_name.clone(), METRICS_SERVER.into(), version, tags).await {
            // A retried create whose first response was lost: ours now, fine.
            let now =
                self.addons.addon(cluster_name, METRICS_SERVER.into()).await.at("DescribeAddon", METRICS_SERVER)?;
            if !now.is_some_and(|a| ctx.owns_tags(&a.tags)) {
                return Err(e.at("CreateAddon", METRICS_SERVER).into());
            }
        }
        Ok(())
    }
}
