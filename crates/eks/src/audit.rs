//! The EKS tier's security controls (EKS.1-5 of the facade's report): pure functions of what
//! the tier's clients observe, and [`audit`], the read that feeds them. It also hands back what
//! the facade's cross-tier checks need from the cluster (its security group and OIDC issuer).

use dify_stack_core::audit::{Verdict, Verdicts, all_missing};
use dify_stack_core::ids::{ClusterName, SecurityGroupId};
use dify_stack_core::{AwsError, Context};

use crate::client::{ClusterApi, ClusterInfo, Ec2Api, LaunchTemplateInfo};
use crate::names::Names;
use crate::spec::ALL_LOG_TYPES;

/// The EKS controls' verdicts and what other checks need from the cluster.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ClusterAudit {
    /// EKS.1-5.
    pub verdicts: Verdicts,
    /// The security group EKS made for the control plane and managed nodes.
    pub cluster_security_group: Option<String>,
    /// The cluster's OIDC issuer URL.
    pub oidc_issuer: Option<String>,
}

/// Reads the cluster and the node launch template through the tier's clients and checks them.
pub async fn audit<C: ClusterApi + Ec2Api>(ctx: &Context, client: &C) -> Result<ClusterAudit, AwsError> {
    let names = Names::of(ctx);
    let cluster_info = client.describe_cluster(ClusterName::new(names.cluster)).await?;
    let template = client.find_launch_template(names.launch_template).await?;
    let mut verdicts = cluster(cluster_info.as_ref());
    verdicts.extend(launch_template(template.as_ref()));
    Ok(ClusterAudit {
        verdicts,
        cluster_security_group: cluster_info
            .as_ref()
            .and_then(|c| c.cluster_security_group_id.clone())
            .map(SecurityGroupId::into_inner),
        oidc_issuer: cluster_info.and_then(|c| c.oidc_issuer),
    })
}

/// EKS.1-4 of the cluster.
pub fn cluster(c: Option<&ClusterInfo>) -> Verdicts {
    let Some(c) = c else { return all_missing(&["EKS.1", "EKS.2", "EKS.3", "EKS.4"], "the EKS cluster") };
    // An empty list on a public endpoint means 0.0.0.0/0 (EKS API reference, VpcConfigRequest
    // `publicAccessCidrs`: "The default value is 0.0.0.0/0").
    let open = c.endpoint_public
        && (c.public_access_cidrs.is_empty() || c.public_access_cidrs.iter().any(|x| x == "0.0.0.0/0"));
    let off: Vec<&str> = ALL_LOG_TYPES.iter().copied().filter(|t| !c.enabled_logs.contains(*t)).collect();
    vec![
        ("EKS.1", Verdict::check(c.endpoint_private, || "private endpoint off".to_owned())),
        ("EKS.2", Verdict::check(!open, || format!("public endpoint open to {:?}", c.public_access_cidrs))),
        ("EKS.3", Verdict::check(off.is_empty(), || format!("log types off: {off:?}"))),
        ("EKS.4", Verdict::check(c.secrets_key_arn.is_some(), || "secrets are not envelope-encrypted".to_owned())),
    ]
}

/// EKS.5 of the node launch template: its latest version (the one the tier makes the default
/// and runs the node group on) requires IMDSv2.
pub fn launch_template(lt: Option<&LaunchTemplateInfo>) -> Verdicts {
    let Some(lt) = lt else { return all_missing(&["EKS.5"], "the node launch template") };
    let tokens = &lt.data.http_tokens;
    vec![("EKS.5", Verdict::check(tokens == "required", || format!("http_tokens {tokens:?}")))]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::client::LaunchTemplateData;

    fn failed(v: &Verdicts) -> Vec<&'static str> {
        v.iter().filter(|(_, v)| matches!(v, Verdict::Fail(_))).map(|(id, _)| *id).collect()
    }

    #[test]
    fn each_weakened_cluster_setting_fails_its_own_control() {
        let good = ClusterInfo {
            endpoint_private: true,
            endpoint_public: true,
            public_access_cidrs: vec!["203.0.113.0/24".into()],
            enabled_logs: ALL_LOG_TYPES.iter().map(|t| t.to_string()).collect(),
            secrets_key_arn: Some("arn:aws:kms:us-east-1:1:key/k".into()),
            ..Default::default()
        };
        assert!(failed(&cluster(Some(&good))).is_empty());
        let mut no_audit_log = good.clone();
        no_audit_log.enabled_logs.remove("audit");
        let cases = [
            ("EKS.1", ClusterInfo { endpoint_private: false, ..good.clone() }),
            ("EKS.2", ClusterInfo { public_access_cidrs: vec![], ..good.clone() }),
            ("EKS.2", ClusterInfo { public_access_cidrs: vec!["0.0.0.0/0".into()], ..good.clone() }),
            ("EKS.3", no_audit_log),
            ("EKS.4", ClusterInfo { secrets_key_arn: None, ..good.clone() }),
        ];
        for (id, weak) in cases {
            assert_eq!(failed(&cluster(Some(&weak))), [id]);
        }
        let private_only = ClusterInfo { endpoint_public: false, public_access_cidrs: vec![], ..good };
        assert!(failed(&cluster(Some(&private_only))).is_empty(), "no public endpoint: nothing is open");
        assert_eq!(failed(&cluster(None)), ["EKS.1", "EKS.2", "EKS.3", "EKS.4"]);
    }

    #[test]
    fn imdsv2_is_required_on_the_launch_template() {
        let lt = |tokens: &str| LaunchTemplateInfo {
            data: LaunchTemplateData { http_tokens: tokens.into(), ..Default::default() },
            ..Default::default()
        };
        assert!(failed(&launch_template(Some(&lt("required")))).is_empty());
        assert_eq!(failed(&launch_template(Some(&lt("optional")))), ["EKS.5"]);
        assert_eq!(failed(&launch_template(None)), ["EKS.5"]);
    }
}
