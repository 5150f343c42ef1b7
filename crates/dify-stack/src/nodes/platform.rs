//! The cluster add-ons (load balancer controller, autoscaler, metrics-server) and the
//! IngressClass.

use async_trait::async_trait;
use dify_stack_core::ids::KubernetesVersion;
use dify_stack_core::{CancellationToken, Provisioner, ResourceRef};
use dify_stack_platform::{ControllerGate, PlatformSelector, PlatformSpec};
use std::sync::Arc;

use super::{StackNode, planned};
use crate::graph::{Node, NodeError, NodeOutput, PlanStep};
use crate::output::StackOutput;
use crate::runner::{AwsRunner, fail, missing};
use crate::wiring;

pub(super) struct Platform;

/// The EKS add-ons node's end, as the load balancer controller's gate; a cancelled run ends
/// the wait too (the executor starts no node after a cancellation, so the add-ons node may
/// never run).
struct EksAddonsSettled {
    ended: tokio::sync::watch::Receiver<Option<Result<(), String>>>,
    cancel: CancellationToken,
}

#[async_trait]
impl ControllerGate for EksAddonsSettled {
    async fn settled(&self) -> Result<(), String> {
        let mut rx = self.ended.clone();
        tokio::select! {
            ended = rx.wait_for(Option::is_some) => match ended {
                Ok(ended) => match ended.as_ref() {
                    Some(Err(e)) => Err(format!("the EKS add-ons failed: {e}")),
                    _ => Ok(()),
                },
                Err(_) => Err("the EKS add-ons node never ended".to_owned()),
            },
            () = self.cancel.cancelled() => Err("cancelled before the EKS add-ons were ACTIVE".to_owned()),
        }
    }
}

#[async_trait]
impl StackNode for Platform {
    fn deps(&self) -> &'static [Node] {
        &[Node::Egress, Node::Eks, Node::Iam]
    }

    /// The add-on roles are the IAM node's: their ARNs as IAM will name them (the IAM node's
    /// plan has no output; validation of the spec needs a role for every enabled add-on).
    async fn plan(&self, run: &AwsRunner, up: &StackOutput) -> Result<PlanStep, NodeError> {
        let (ctx, cfg) = (&run.ctx, &run.cfg);
        let planned_net = wiring::planned_network(cfg);
        let net = up.network.as_ref().unwrap_or(&planned_net);
        // The cluster as the EKS plan leaves it: the configured version (an upgrade the plan
        // shows is made before the platform).
        let cluster = up.eks.as_ref().map(|e| e.cluster_name.clone()).unwrap_or_else(|| wiring::cluster_name(ctx));
        let roles = wiring::planned_addon_role_arns(cfg, ctx, cluster.as_str());
        let spec = wiring::platform_spec(cfg, net, &cluster, cfg.eks.kubernetes_version, &roles);
        Ok(match &up.eks {
            Some(eks) if up.network.is_some() => {
                let platform = run.platform(spec.kubernetes.then_some(eks)).await?;
                planned(Node::Platform, platform.plan(ctx, &spec).await.map_err(fail)?, false, None)
            }
            _ => {
                // No cluster yet: the AWS side is observed (the add-on catalogue, the domain's
                // zone and certificate), the cluster side is all to create.
                let aws_only = PlatformSpec { kubernetes: false, ..spec.clone() };
                let observed = run.p.platform.observe(ctx, &aws_only).await.map_err(fail)?;
                planned(Node::Platform, run.p.platform.diff(ctx, &spec, &observed), true, None)
            }
        })
    }

    async fn apply(&self, run: &AwsRunner, up: &StackOutput) -> Result<NodeOutput, NodeError> {
        let net = up.network.as_ref().ok_or_else(|| missing(Node::Platform, "network"))?;
        let eks = up.eks.as_ref().ok_or_else(|| missing(Node::Platform, "eks"))?;
        let iam = up.iam.as_ref().ok_or_else(|| missing(Node::Platform, "iam"))?;
        // The version the cluster reports (AWS's answer, parsed here where it enters); the
        // configured one when it names no minor.
        let version = KubernetesVersion::of_release(&eks.kubernetes_version).unwrap_or(run.cfg.eks.kubernetes_version);
        let spec = wiring::platform_spec(&run.cfg, net, &eks.cluster_name, version, &iam.addon_roles);
        let platform =
            run.platform(spec.kubernetes.then_some(eks)).await?.with_controller_gate(Arc::new(EksAddonsSettled {
                ended: run.eks_addons.subscribe(),
                cancel: run.ctx.cancellation().clone(),
            }));
        // Boxed: Helm, kube-rs and ACM waits make a large future.
        let out = Box::pin(platform.apply(&run.ctx, &spec)).await.map_err(fail)?;
        Ok(NodeOutput::Platform(Box::new(out)))
    }

    /// The releases go only when the API answers (else they go with the cluster).
    async fn destroy(&self, run: &AwsRunner) -> Result<Vec<ResourceRef>, NodeError> {
        let (ctx, cfg) = (&run.ctx, &run.cfg);
        let live = run.reachable_cluster().await;
        let p = &cfg.platform;
        let mut selector = PlatformSelector {
            cluster_name: wiring::cluster_name(ctx),
            kubernetes: live.is_some(),
            load_balancer_controller: p.load_balancer_controller.chart().is_some(),
            cluster_autoscaler: p.cluster_autoscaler.chart().is_some(),
            metrics_server: p.metrics_server.chart().is_some(),
        };
        let platform = match run.platform(live.as_ref()).await {
            Ok(p) => p,
            Err(e) => {
                tracing::warn!(error = %e, "Helm cannot run here: the add-on releases go with the cluster");
                selector.kubernetes = false;
                run.platform(None).await?
            }
        };
        platform.destroy_selected(ctx, &selector).await.map_err(fail)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The controller's gate waits for the EKS add-ons node's end: it passes when the node
    /// succeeded, fails naming the add-ons' error when it failed, and ends with the run when the
    /// run is cancelled before the node ends.
    #[tokio::test(start_paused = true)]
    async fn the_controller_gate_follows_the_addons_node_or_the_cancelled_run() {
        let gate = |tx: &tokio::sync::watch::Sender<Option<Result<(), String>>>, cancel: &CancellationToken| {
            EksAddonsSettled { ended: tx.subscribe(), cancel: cancel.clone() }
        };
        let (tx, cancel) = (tokio::sync::watch::Sender::new(None), CancellationToken::new());
        let pending = tokio::time::timeout(std::time::Duration::from_secs(3600), gate(&tx, &cancel).settled()).await;
        assert!(pending.is_err(), "the gate passed before the add-ons node ended");
        tx.send_replace(Some(Err("add-on coredns is CREATE_FAILED".to_owned())));
        let err = gate(&tx, &cancel).settled().await.unwrap_err();
        assert!(err.contains("coredns is CREATE_FAILED"), "{err}");
        tx.send_replace(Some(Ok(())));
        gate(&tx, &cancel).settled().await.unwrap();

        let (tx, cancel) = (tokio::sync::watch::Sender::new(None), CancellationToken::new());
        let waiting = gate(&tx, &cancel);
        cancel.cancel();
        let err = waiting.settled().await.unwrap_err();
        assert!(err.contains("cancelled"), "{err}");
    }
}
