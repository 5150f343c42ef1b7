//! EKS: the default add-on version for a Kubernetes version (the EKS tier installs its
//! add-ons at it, the platform tier its own) and the cluster's enabled log types (the EKS tier
//! observes them, the facade's audit checks them).

use std::collections::BTreeSet;

use aws_sdk_eks::Client;
use aws_sdk_eks::types::Cluster;
use dify_stack_core::{AwsError, AwsResultExt};

/// The version EKS marks as the default of `addon` for clusters at `kubernetes_version`, if the
/// add-on is offered there (EKS API reference, DescribeAddonVersions: `compatibilities[].
/// defaultVersion` is per cluster version).
pub async fn default_addon_version(
    eks: &Client,
    addon: &str,
    kubernetes_version: &str,
) -> Result<Option<String>, AwsError> {
    let out = eks
        .describe_addon_versions()
        .addon_name(addon)
        .kubernetes_version(kubernetes_version)
        .send()
        .await
        .aws("DescribeAddonVersions")?;
    Ok(out.addons().iter().flat_map(|a| a.addon_versions()).find_map(|v| {
        v.compatibilities()
            .iter()
            .any(|c| c.default_version() && c.cluster_version() == Some(kubernetes_version))
            .then(|| v.addon_version().map(str::to_owned))
            .flatten()
    }))
}

/// The control-plane log types the cluster has enabled (`api`, `audit`, ...).
pub fn enabled_log_types(cluster: &Cluster) -> BTreeSet<String> {
    cluster
        .logging()
        .map(|l| {
            l.cluster_logging()
                .iter()
                .filter(|s| s.enabled() == Some(true))
                .flat_map(|s| s.types().iter().map(|t| t.as_str().to_owned()))
                .collect()
        })
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use aws_sdk_eks::types::{LogSetup, LogType, Logging};

    use super::*;

    #[test]
    fn only_enabled_log_setups_count() {
        let cluster = Cluster::builder()
            .logging(
                Logging::builder()
                    .cluster_logging(
                        LogSetup::builder().enabled(true).types(LogType::Api).types(LogType::Audit).build(),
                    )
                    .cluster_logging(LogSetup::builder().enabled(false).types(LogType::Scheduler).build())
                    .build(),
            )
            .build();
        assert_eq!(enabled_log_types(&cluster), ["api".to_owned(), "audit".to_owned()].into());
        assert!(enabled_log_types(&Cluster::builder().build()).is_empty());
    }
}
