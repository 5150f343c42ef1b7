//! Apply: executes the typed changes of one observation (the metrics-server add-on, the
//! releases, the IngressClass), or hands out the commands when the cluster is not reachable
//! from here.

use super::{
    AddonRepair, Context, INGRESS_CLASS, INGRESS_CONTROLLER, LOAD_BALANCER_CONTROLLER, METRICS_SERVER,
    ObservedPlatform, PlatformChange, PlatformOutput, PlatformProvisioner, PlatformSpec, ReleaseInstall, Result,
    SYSTEM_NAMESPACE, Tier, desired_releases, helm_err,
};
use crate::PlatformError;
use dify_stack_core::AwsAt;

impl PlatformProvisioner {
    /// Executes the changes computed from `o` and returns the outputs. Missing cluster clients
    /// were refused by `observe`, before its first read.
    pub(super) async fn execute_tier(
        &self,
        ctx: &Context,
        spec: &PlatformSpec,
        o: ObservedPlatform,
        changes: Vec<PlatformChange>,
    ) -> Result<PlatformOutput> {
        let cluster = self.cluster(spec)?;
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
        // metrics-server ACTIVE before the load balancer controller's release: the chart
        // registers its Service mutating webhook with failurePolicy Fail, so until its pods serve
        // every new Service is refused ("no endpoints available for service
        // aws-load-balancer-webhook-service": aws-load-balancer-controller #4140, eks-charts
        // #1058), the add-on's among them, and the add-on ends CREATE_FAILED. An add-on created
        // or repaired here, or found creating or updating, is awaited before the controller's
        // first step, else before apply returns (role-only: before the commands are handed out).
        let mut metrics_pending = spec.metrics_server.is_some()
            && o.metrics_offered.is_some()
            && o.metrics_addon.as_ref().is_some_and(|a| matches!(a.status.as_str(), "CREATING" | "UPDATING"));
        let mut gate = self.controller_gate.as_ref();
        for change in changes {
            let controller_step = match &change {
                PlatformChange::ApplyCrds { .. } => true,
                PlatformChange::Release { release, .. } => release.name == LOAD_BALANCER_CONTROLLER,
                _ => false,
            };
            if controller_step && metrics_pending {
                self.wait_metrics_addon(ctx, spec).await?;
                metrics_pending = false;
            }
            if controller_step && let Some(gate) = gate.take() {
                gate.settled().await.map_err(|reason| PlatformError::ControllerGate { reason })?;
            }
            match (change, cluster) {
                (PlatformChange::CreateMetricsAddon { version }, _) => {
                    self.create_metrics_addon(ctx, spec, version).await?;
                    metrics_pending = true;
                }
                (PlatformChange::RepairMetricsAddon { repair, version, .. }, _) => {
                    self.repair_metrics_addon(ctx, spec, repair, version).await?;
                    metrics_pending = true;
                }
                (PlatformChange::ApplyCrds { chart, .. }, Some((helm, kube))) => {
                    let text = helm.show_crds(chart.clone()).await.map_err(helm_err(LOAD_BALANCER_CONTROLLER))?;
                    let crds = crate::helm::crd_documents(&text).map_err(helm_err(LOAD_BALANCER_CONTROLLER))?;
                    let count = crds.len();
                    for (name, crd) in crds {
                        kube.apply_crd(name, crd).await?;
                    }
                    tracing::info!(chart = %chart.version, count, "applied the load balancer controller's CRDs");
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
        if metrics_pending {
            self.wait_metrics_addon(ctx, spec).await?;
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
                    // Whether the release is installed is not known from here: the controller's
                    // CRDs every time, before its release (Helm upgrades none of them; on a
                    // first install Helm then finds them and skips its own: Helm docs, "Custom
                    // Resource Definitions"). Forced as in [`IngressClassApi::apply_crd`].
                    if r.name == LOAD_BALANCER_CONTROLLER {
                        out.commands.push(format!(
                            "helm show crds {} | kubectl apply --server-side --field-manager {} --force-conflicts -f -",
                            r.chart.helm_source().join(" "),
                            crate::kube::FIELD_MANAGER
                        ));
                    }
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

    /// Repairs the metrics-server add-on ([`AddonState::repair`]): UpdateAddon with
    /// `resolveConflicts = OVERWRITE`, or DeleteAddon, wait until gone, CreateAddon. A crash
    /// between the delete and the create leaves no add-on: the next apply creates it.
    async fn repair_metrics_addon(
        &self,
        ctx: &Context,
        spec: &PlatformSpec,
        repair: AddonRepair,
        version: String,
    ) -> Result<()> {
        let cluster = spec.cluster_name.clone();
        match repair {
            AddonRepair::Overwrite => self
                .addons
                .update_addon(cluster, METRICS_SERVER.into(), version)
                .await
                .at("UpdateAddon", METRICS_SERVER)?,
            AddonRepair::Recreate => {
                self.addons.delete_addon(cluster, METRICS_SERVER.into()).await.at("DeleteAddon", METRICS_SERVER)?;
                self.wait_metrics_addon_gone(ctx, spec).await?;
                self.create_metrics_addon(ctx, spec, version).await?;
            }
        }
        tracing::info!(addon = METRICS_SERVER, ?repair, "repaired the EKS add-on");
        Ok(())
    }

    /// Creates the metrics-server add-on with our tags, or takes the one a lost response of ours
    /// made.
    async fn create_metrics_addon(&self, ctx: &Context, spec: &PlatformSpec, version: String) -> Result<()> {
        let tags = ctx.tags_for(Tier::Platform, "addon", METRICS_SERVER);
        let cluster_name = spec.cluster_name.clone();
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
