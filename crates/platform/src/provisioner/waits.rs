//! The waits of the tier's EKS add-on: metrics-server ACTIVE before the load balancer
//! controller's release, and gone before it is re-created. The condition is a pure function of
//! what DescribeAddon returned, tested on its own below.

use dify_stack_core::wait::{self, Condition, Probe};
use dify_stack_core::{AwsAt, from_wait};

use super::{AddonState, Context, METRICS_SERVER, PlatformError, PlatformProvisioner, PlatformSpec, Result, caps};

/// The add-on is ACTIVE. A failure state ends the wait at once (the next plan shows the repair);
/// `DEGRADED` is waited on, as the EKS tier does: it may recover. Gone while awaited is an error.
pub(super) fn addon_active(name: &str) -> impl Condition<AddonState, PlatformError> + '_ {
    move |a: Option<&AddonState>| match a {
        None => Err(PlatformError::AddonFailed { addon: name.to_owned(), status: "gone".to_owned(), issues: vec![] }),
        Some(a) if a.status == "ACTIVE" => Ok(Probe::Done(())),
        Some(a) if matches!(a.status.as_str(), "CREATE_FAILED" | "UPDATE_FAILED" | "DELETE_FAILED") => {
            Err(PlatformError::AddonFailed { addon: name.to_owned(), status: a.status.clone(), issues: vec![] })
        }
        Some(a) => Ok(Probe::Pending(a.status.clone())),
    }
}

impl PlatformProvisioner {
    /// Waits until the metrics-server add-on is ACTIVE; a failure names its health issues.
    pub(super) async fn wait_metrics_addon(&self, ctx: &Context, spec: &PlatformSpec) -> Result<()> {
        let cluster = spec.cluster_name.clone();
        let what = format!("EKS add-on {METRICS_SERVER} to be ACTIVE");
        let fetch = || async {
            Ok(self.addons.addon(cluster.clone(), METRICS_SERVER.into()).await.at("DescribeAddon", METRICS_SERVER)?)
        };
        // Add-ons are rarely ACTIVE in under 20 s (`eks_addon` min of aws-durations.toml).
        let policy = ctx.wait.capped(caps::ADDON).expecting(std::time::Duration::from_secs(20));
        match wait::until_state(&what, &policy, ctx.cancellation(), fetch, addon_active(METRICS_SERVER)).await {
            Ok(_) => Ok(()),
            Err(e) => Err(match from_wait(e) {
                PlatformError::AddonFailed { addon, status, .. } if status != "gone" => {
                    let issues = self
                        .addons
                        .addon_issues(cluster.clone(), METRICS_SERVER.into())
                        .await
                        .at("DescribeAddon", METRICS_SERVER)?;
                    PlatformError::AddonFailed { addon, status, issues }
                }
                other => other,
            }),
        }
    }

    /// Waits until the metrics-server add-on is gone (after DeleteAddon, before CreateAddon).
    pub(super) async fn wait_metrics_addon_gone(&self, ctx: &Context, spec: &PlatformSpec) -> Result<()> {
        let cluster = spec.cluster_name.clone();
        let what = format!("EKS add-on {METRICS_SERVER} to be deleted");
        let fetch = || async {
            let a =
                self.addons.addon(cluster.clone(), METRICS_SERVER.into()).await.at("DescribeAddon", METRICS_SERVER)?;
            Ok::<_, PlatformError>(a.map(|a| a.status))
        };
        wait::until_gone(&what, &ctx.wait.capped(caps::ADDON), ctx.cancellation(), fetch).await.map_err(from_wait)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_condition_follows_each_addon_status() {
        let addon =
            |s: &str| AddonState { version: "v0.7.2-eksbuild.1".into(), status: s.into(), tags: Default::default() };
        let c = addon_active(METRICS_SERVER);
        assert!(matches!(c(Some(&addon("ACTIVE"))), Ok(Probe::Done(()))));
        for pending in ["CREATING", "UPDATING", "DEGRADED", "SOMETHING_NEW"] {
            assert_eq!(c(Some(&addon(pending))).unwrap(), Probe::Pending(pending.to_owned()), "{pending}");
        }
        for failed in ["CREATE_FAILED", "UPDATE_FAILED", "DELETE_FAILED"] {
            assert!(
                matches!(c(Some(&addon(failed))), Err(PlatformError::AddonFailed { status, .. }) if status == failed),
                "{failed}"
            );
        }
        assert!(matches!(c(None), Err(PlatformError::AddonFailed { status, .. }) if status == "gone"));
    }
}
