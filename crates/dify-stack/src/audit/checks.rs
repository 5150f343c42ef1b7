//! The checks: describe calls, each control's verdict from what they return.

#[allow(unused_imports)]
use super::*;
use std::collections::BTreeSet;

use dify_stack_core::{AwsError, AwsResultExt, Context};
use serde_json::Value;

use dify_stack_core::audit::Verdict as V;

fn v(ok: bool, fail: impl FnOnce() -> String) -> Verdict {
    V::check(ok, fail)
}

fn missing(what: &str) -> Verdict {
    V::missing(what)
}

/// Audits the stack of `ctx` (with account id) through `sdk`.
pub async fn audit(ctx: &Context, sdk: &aws_types::SdkConfig) -> Result<AuditReport, AwsError> {
    let stack = ctx.stack().as_str();
    let mut verdicts: Vec<(&'static str, Verdict)> = Vec::new();

    // The datastores tier's controls (S3, RDS, ElastiCache, OpenSearch), read through its own
    // clients and checked by its own pure functions.
    let stores = dify_stack_datastores::SdkDatastores::from_conf(sdk);
    verdicts.extend(dify_stack_datastores::audit::audit(ctx, &stores).await?);

    // EKS.
    let eks = aws_sdk_eks::Client::new(sdk);
    let mut cluster_sgs: BTreeSet<String> = BTreeSet::new();
    let mut issuer = None;
    match eks.describe_cluster().name(stack).send().await.aws("DescribeCluster") {
        Ok(out) if out.cluster().is_some() => {
            let c = out.cluster().expect("checked");
            let vpc = c.resources_vpc_config();
            verdicts.push((
                "EKS.1",
                v(vpc.is_some_and(|v| v.endpoint_private_access()), || "private endpoint off".to_owned()),
            ));
            let open = vpc.is_some_and(|v| {
                v.endpoint_public_access()
                    && (v.public_access_cidrs().is_empty() || v.public_access_cidrs().iter().any(|c| c == "0.0.0.0/0"))
            });
            verdicts.push((
                "EKS.2",
                v(!open, || format!("public endpoint open to {:?}", vpc.map(|v| v.public_access_cidrs()))),
            ));
            let enabled = dify_stack_aws::eks::enabled_log_types(c);
            let missing: Vec<&str> =
                dify_stack_eks::ALL_LOG_TYPES.iter().copied().filter(|t| !enabled.contains(*t)).collect();
            verdicts.push(("EKS.3", v(missing.is_empty(), || format!("log types off: {missing:?}"))));
            let secrets = c.encryption_config().iter().any(|e| {
                e.resources().iter().any(|r| r == "secrets") && e.provider().and_then(|p| p.key_arn()).is_some()
            });
            verdicts.push(("EKS.4", v(secrets, || "secrets are not envelope-encrypted".to_owned())));
            cluster_sgs.extend(vpc.and_then(|v| v.cluster_security_group_id()).map(str::to_owned));
            issuer = c.identity().and_then(|i| i.oidc()).and_then(|o| o.issuer()).map(str::to_owned);
        }
        Ok(_) => {}
        Err(e) if e.is_not_found() => {}
        Err(e) => return Err(e),
    }
    if !verdicts.iter().any(|(id, _)| *id == "EKS.1") {
        for id in ["EKS.1", "EKS.2", "EKS.3", "EKS.4"] {
            verdicts.push((id, missing("the EKS cluster")));
        }
    }
    let ec2 = aws_sdk_ec2::Client::new(sdk);
    let lt_name = dify_stack_eks::Names::of(ctx).launch_template;
    match ec2
        .describe_launch_template_versions()
        .launch_template_name(&lt_name)
        .versions("$Default")
        .send()
        .await
        .aws("DescribeLaunchTemplateVersions")
    {
        Ok(out) if !out.launch_template_versions().is_empty() => {
            let tokens = out.launch_template_versions()[0]
                .launch_template_data()
                .and_then(|d| d.metadata_options())
                .and_then(|m| m.http_tokens())
                .map(|t| t.as_str().to_owned());
            verdicts.push(("EKS.5", v(tokens.as_deref() == Some("required"), || format!("http_tokens {tokens:?}"))));
        }
        Ok(_) => verdicts.push(("EKS.5", missing("the node launch template"))),
        Err(e) if e.is_not_found() => verdicts.push(("EKS.5", missing("the node launch template"))),
        Err(e) => return Err(e),
    }

    // ECR.
    let ecr = aws_sdk_ecr::Client::new(sdk);
    let (mut not_scanning, mut absent) = (Vec::new(), Vec::new());
    for name in [dify_stack_registry::names::app_repository(ctx), dify_stack_registry::names::plugin_repository(ctx)] {
        match ecr.describe_repositories().repository_names(&name).send().await.aws("DescribeRepositories") {
            Ok(out) if !out.repositories().is_empty() => {
                for r in out.repositories() {
                    if !r.image_scanning_configuration().is_some_and(|s| s.scan_on_push()) {
                        not_scanning.push(name.clone());
                    }
                }
            }
            Ok(_) => absent.push(name),
            Err(e) if e.is_not_found() => absent.push(name),
            Err(e) => return Err(e),
        }
    }
    verdicts.push((
        "ECR.1",
        if absent.is_empty() {
            v(not_scanning.is_empty(), || format!("no scan on push: {not_scanning:?}"))
        } else {
            missing(&format!("the repositories {absent:?}"))
        },
    ));

    // IAM.
    let iam = aws_sdk_iam::Client::new(sdk);
    let mut roles = 0;
    let (mut trust_bad, mut wild_actions, mut wild_resources) = (Vec::new(), Vec::new(), Vec::new());
    for kind in dify_stack_iam::RoleKind::ALL {
        let name = kind.role_name(stack);
        let role = match iam.get_role().role_name(&name).send().await.aws("GetRole") {
            Ok(r) => r,
            Err(e) if e.is_not_found() => continue,
            Err(e) => return Err(e),
        };
        roles += 1;
        let trust = role
            .role()
            .and_then(|r| r.assume_role_policy_document())
            .and_then(dify_stack_iam::policy::parse_document)
            .unwrap_or(Value::Null);
        let host = issuer.as_deref().map(dify_stack_iam::policy::issuer_host_path).unwrap_or_default().to_owned();
        let ok = trust["Statement"].as_array().into_iter().flatten().all(|s| {
            let cond = &s["Condition"]["StringEquals"];
            let sub_key = cond.as_object().and_then(|o| o.keys().find(|k| k.ends_with(":sub")).cloned());
            let aud_key = cond.as_object().and_then(|o| o.keys().find(|k| k.ends_with(":aud")).cloned());
            let subs_named = sub_key.as_ref().is_some_and(|k| {
                let subs: Vec<&str> = match &cond[k] {
                    Value::String(x) => vec![x.as_str()],
                    Value::Array(a) => a.iter().filter_map(Value::as_str).collect(),
                    _ => vec![],
                };
                !subs.is_empty() && subs.iter().all(|s| s.starts_with("system:serviceaccount:") && !s.contains('*'))
            });
            let aud_ok = aud_key.is_some_and(|k| {
                cond[&k] == "sts.amazonaws.com"
                    || cond[&k].as_array().is_some_and(|a| a.iter().all(|x| x == "sts.amazonaws.com"))
            });
            let issuer_ok = host.is_empty() || sub_key.as_ref().is_some_and(|k| k.starts_with(&host));
            subs_named && aud_ok && issuer_ok
        });
        if !ok {
            trust_bad.push(name.clone());
        }
        let inline = iam.list_role_policies().role_name(&name).send().await.aws("ListRolePolicies")?;
        for p in inline.policy_names() {
            let doc = iam.get_role_policy().role_name(&name).policy_name(p).send().await.aws("GetRolePolicy")?;
            let doc = dify_stack_iam::policy::parse_document(doc.policy_document()).unwrap_or(Value::Null);
            for st in doc["Statement"].as_array().into_iter().flatten().filter(|s| s["Effect"] == "Allow") {
                let actions: Vec<&str> =
                    st["Action"].as_array().into_iter().flatten().filter_map(Value::as_str).collect();
                let resources: Vec<&str> =
                    st["Resource"].as_array().into_iter().flatten().filter_map(Value::as_str).collect();
                for a in &actions {
                    if *a == "*" || a.ends_with(":*") {
                        wild_actions.push(format!("{name}: {a}"));
                    }
                }
                if resources.contains(&"*") && actions.iter().any(|a| *a != "ecr:GetAuthorizationToken") {
                    wild_resources.push(format!("{name}: {actions:?} on *"));
                }
            }
        }
    }
    if roles == 0 {
        for id in ["IAM.1", "IAM.2", "IAM.3"] {
            verdicts.push((id, missing("the IRSA roles")));
        }
    } else {
        verdicts.push(("IAM.1", v(trust_bad.is_empty(), || format!("loose trust: {trust_bad:?}"))));
        verdicts.push(("IAM.2", v(wild_actions.is_empty(), || wild_actions.join("; "))));
        verdicts.push(("IAM.3", v(wild_resources.is_empty(), || wild_resources.join("; "))));
    }

    // EC2 security groups.
    let (k, val) = ctx.ownership_filter();
    let sgs = ec2
        .describe_security_groups()
        .filters(aws_sdk_ec2::types::Filter::builder().name(k).values(val).build())
        .send()
        .await
        .aws("DescribeSecurityGroups")?;
    let ours: Vec<_> = sgs
        .security_groups()
        .iter()
        .filter(|g| ctx.owns(g.tags().iter().filter_map(|t| Some((t.key()?, t.value()?)))))
        .collect();
    let mut open = Vec::new();
    for g in &ours {
        for p in g.ip_permissions() {
            if p.ip_ranges().iter().any(|r| r.cidr_ip() == Some("0.0.0.0/0"))
                || p.ipv6_ranges().iter().any(|r| r.cidr_ipv6() == Some("::/0"))
            {
                open.push(g.group_name().unwrap_or("?").to_owned());
            }
        }
    }
    verdicts.push((
        "EC2.1",
        if ours.is_empty() {
            missing("the stack's security groups")
        } else {
            v(open.is_empty(), || format!("open to the internet: {open:?}"))
        },
    ));
    cluster_sgs.extend(
        ours.iter()
            .filter(|g| g.group_name() == Some(&dify_stack_eks::Names::of(ctx).node_security_group))
            .filter_map(|g| g.group_id().map(str::to_owned)),
    );
    let (mut strays, mut absent) = (Vec::new(), Vec::new());
    let stores = [
        (dify_stack_datastores::names::AuroraNames::of(ctx).security_group, 5432),
        (dify_stack_datastores::names::redis(ctx), 6379),
        (dify_stack_datastores::names::search_security_group(ctx), 443),
    ];
    for (name, port) in stores {
        let Some(g) = ours.iter().find(|g| g.group_name() == Some(&name)) else {
            absent.push(name);
            continue;
        };
        for p in g.ip_permissions() {
            let port_ok = p.from_port() == Some(port) && p.to_port() == Some(port);
            for pair in p.user_id_group_pairs() {
                let src = pair.group_id().unwrap_or_default();
                if !port_ok || !cluster_sgs.contains(src) {
                    strays.push(format!("{name}: {src} on {:?}-{:?}", p.from_port(), p.to_port()));
                }
            }
            for r in p.ip_ranges() {
                strays.push(format!("{name}: {} on {:?}", r.cidr_ip().unwrap_or("?"), p.from_port()));
            }
        }
    }
    verdicts.push((
        "EC2.2",
        if absent.is_empty() {
            v(strays.is_empty(), || strays.join("; "))
        } else {
            missing(&format!("the datastore security groups {absent:?}"))
        },
    ));

    let findings = CONTROLS
        .iter()
        .map(|c| Finding {
            control: *c,
            verdict: verdicts
                .iter()
                .find(|(id, _)| *id == c.id)
                .map(|(_, v)| v.clone())
                .unwrap_or_else(|| Verdict::Fail("not checked".to_owned())),
        })
        .collect();
    Ok(AuditReport { findings })
}
