//! The checks: describe calls, each control's verdict from what they return.

#[allow(unused_imports)]
use super::*;
use std::collections::BTreeSet;

use dify_stack_core::{AwsError, AwsResultExt, Context};

use dify_stack_core::audit::Verdict as V;

fn v(ok: bool, fail: impl FnOnce() -> String) -> Verdict {
    V::check(ok, fail)
}

fn missing(what: &str) -> Verdict {
    V::missing(what)
}

/// Audits the stack of `ctx` (with account id) through `sdk`.
pub async fn audit(ctx: &Context, sdk: &aws_types::SdkConfig) -> Result<AuditReport, AwsError> {
    let mut verdicts: Vec<(&'static str, Verdict)> = Vec::new();

    // The datastores tier's controls (S3, RDS, ElastiCache, OpenSearch), read through its own
    // clients and checked by its own pure functions.
    let stores = dify_stack_datastores::SdkDatastores::from_conf(sdk);
    verdicts.extend(dify_stack_datastores::audit::audit(ctx, &stores).await?);

    // The EKS tier's controls, read through its own clients.
    let cluster = dify_stack_eks::audit::audit(ctx, &dify_stack_eks::SdkEks::from_conf(sdk)).await?;
    verdicts.extend(cluster.verdicts);
    let mut cluster_sgs: BTreeSet<String> = cluster.cluster_security_group.into_iter().collect();
    let issuer = cluster.oidc_issuer;

    // The registry and IAM tiers' controls, read through their own clients.
    verdicts.extend(dify_stack_registry::audit::audit(ctx, &dify_stack_registry::SdkEcr::from_conf(sdk)).await?);
    let iam = dify_stack_iam::SdkIam::from_conf(sdk);
    verdicts.extend(dify_stack_iam::audit::audit(ctx, issuer.as_deref(), &iam).await?);

    // EC2 security groups.
    let ec2 = aws_sdk_ec2::Client::new(sdk);
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
