//! The checks: describe calls, each control's verdict from what they return.

#[allow(unused_imports)]
use super::*;
use std::collections::BTreeSet;

use dify_stack_core::{AwsError, AwsResultExt, Context, Environment};
use serde_json::Value;

fn v(ok: bool, fail: impl FnOnce() -> String) -> Verdict {
    if ok { Verdict::Pass } else { Verdict::Fail(fail()) }
}

fn na(why: &str) -> Verdict {
    Verdict::NotApplicable(why.to_owned())
}

/// The resource a control is about does not exist.
fn missing(what: &str) -> Verdict {
    Verdict::Fail(format!("{what} does not exist"))
}

/// Audits the stack of `ctx` (with account id) through `sdk`.
pub async fn audit(ctx: &Context, sdk: &aws_types::SdkConfig) -> Result<AuditReport, AwsError> {
    let stack = ctx.stack().as_str();
    let prod = ctx.environment() == Environment::Prod;
    let mut verdicts: Vec<(&'static str, Verdict)> = Vec::new();

    // S3.
    let s3 = aws_sdk_s3::Client::from_conf(
        aws_sdk_s3::config::Builder::from(sdk).force_path_style(sdk.endpoint_url().is_some()).build(),
    );
    let bucket = dify_stack_datastores::names::bucket(ctx);
    if s3.head_bucket().bucket(&bucket).send().await.is_ok() {
        let pab = s3.get_public_access_block().bucket(&bucket).send().await.ok();
        let c = pab.as_ref().and_then(|p| p.public_access_block_configuration());
        let all = c.is_some_and(|c| {
            [c.block_public_acls(), c.ignore_public_acls(), c.block_public_policy(), c.restrict_public_buckets()]
                .iter()
                .all(|x| *x == Some(true))
        });
        verdicts.push(("S3.1", v(all, || format!("public-access block incomplete: {c:?}"))));
        let enc = s3.get_bucket_encryption().bucket(&bucket).send().await.ok();
        let alg = enc
            .as_ref()
            .and_then(|e| e.server_side_encryption_configuration())
            .and_then(|c| c.rules().first())
            .and_then(|r| r.apply_server_side_encryption_by_default())
            .map(|d| d.sse_algorithm().as_str().to_owned());
        verdicts.push(("S3.2", v(alg.is_some(), || "no default encryption".to_owned())));
        let policy: Option<Value> = s3
            .get_bucket_policy()
            .bucket(&bucket)
            .send()
            .await
            .ok()
            .and_then(|p| p.policy().and_then(|t| serde_json::from_str(t).ok()));
        let denies = policy.as_ref().is_some_and(|p| {
            p["Statement"].as_array().into_iter().flatten().any(|s| {
                s["Effect"] == "Deny" && s["Condition"]["Bool"]["aws:SecureTransport"].as_str() == Some("false")
            })
        });
        verdicts.push(("S3.3", v(denies, || "no statement denies aws:SecureTransport = false".to_owned())));
        let ver = s3.get_bucket_versioning().bucket(&bucket).send().await.ok();
        let on = ver.as_ref().and_then(|x| x.status()).is_some_and(|s| s.as_str() == "Enabled");
        verdicts.push(("S3.4", v(on, || format!("versioning is {:?}", ver.as_ref().and_then(|x| x.status())))));
    } else {
        for id in ["S3.1", "S3.2", "S3.3", "S3.4"] {
            verdicts.push((id, missing("the storage bucket")));
        }
    }

    // RDS.
    let rds = aws_sdk_rds::Client::new(sdk);
    let cluster_id = dify_stack_datastores::names::AuroraNames::of(ctx).cluster;
    match rds.describe_db_clusters().db_cluster_identifier(&cluster_id).send().await.aws("DescribeDBClusters") {
        Ok(out) if !out.db_clusters().is_empty() => {
            let c = &out.db_clusters()[0];
            verdicts.push(("RDS.1", v(c.storage_encrypted() == Some(true), || "StorageEncrypted is false".to_owned())));
            let inst = rds
                .describe_db_instances()
                .filters(aws_sdk_rds::types::Filter::builder().name("db-cluster-id").values(&cluster_id).build())
                .send()
                .await
                .aws("DescribeDBInstances")?;
            let public: Vec<&str> = inst
                .db_instances()
                .iter()
                .filter(|i| i.publicly_accessible() == Some(true))
                .filter_map(|i| i.db_instance_identifier())
                .collect();
            verdicts.push(("RDS.2", v(public.is_empty(), || format!("publicly accessible: {public:?}"))));
            verdicts.push((
                "RDS.3",
                v(c.master_user_secret().is_some(), || "no RDS-managed master user secret".to_owned()),
            ));
            verdicts.push((
                "RDS.4",
                if prod {
                    v(c.deletion_protection() == Some(true), || "deletion protection off".to_owned())
                } else {
                    na("test profile")
                },
            ));
            let days = c.backup_retention_period().unwrap_or(0);
            let min = if prod { 7 } else { 1 };
            verdicts.push(("RDS.5", v(days >= min, || format!("backup retention {days} day(s), need >= {min}"))));
        }
        Ok(_) => {}
        Err(e) if e.is_not_found() => {}
        Err(e) => return Err(e),
    }
    if !verdicts.iter().any(|(id, _)| *id == "RDS.1") {
        for id in ["RDS.1", "RDS.2", "RDS.3", "RDS.4", "RDS.5"] {
            verdicts.push((id, missing("the Aurora cluster")));
        }
    }

    // ElastiCache.
    let ec = aws_sdk_elasticache::Client::new(sdk);
    match ec
        .describe_replication_groups()
        .replication_group_id(dify_stack_datastores::names::redis(ctx))
        .send()
        .await
        .aws("DescribeReplicationGroups")
    {
        Ok(out) if !out.replication_groups().is_empty() => {
            let g = &out.replication_groups()[0];
            verdicts.push((
                "EC.1",
                v(g.at_rest_encryption_enabled() == Some(true), || "at-rest encryption off".to_owned()),
            ));
            verdicts.push((
                "EC.2",
                v(g.transit_encryption_enabled() == Some(true), || "in-transit encryption off".to_owned()),
            ));
            verdicts.push(("EC.3", v(g.auth_token_enabled() == Some(true), || "no AUTH token".to_owned())));
            let multi = g.multi_az().is_some_and(|m| m.as_str() == "enabled")
                && g.automatic_failover().is_some_and(|a| a.as_str() == "enabled");
            verdicts.push((
                "EC.4",
                if prod { v(multi, || "not Multi-AZ with automatic failover".to_owned()) } else { na("test profile") },
            ));
        }
        Ok(_) => {}
        Err(e) if e.is_not_found() => {}
        Err(e) => return Err(e),
    }
    if !verdicts.iter().any(|(id, _)| *id == "EC.1") {
        for id in ["EC.1", "EC.2", "EC.3", "EC.4"] {
            verdicts.push((id, missing("the Redis replication group")));
        }
    }

    // OpenSearch.
    let os = aws_sdk_opensearch::Client::new(sdk);
    match os
        .describe_domain()
        .domain_name(dify_stack_datastores::names::search_domain(ctx))
        .send()
        .await
        .aws("DescribeDomain")
    {
        Ok(out) if out.domain_status().is_some() => {
            let d = out.domain_status().expect("checked");
            let in_vpc = d.vpc_options().is_some_and(|v| !v.subnet_ids().is_empty()) && d.endpoint().is_none();
            verdicts.push(("OS.1", v(in_vpc, || format!("public endpoint {:?}", d.endpoint()))));
            verdicts.push((
                "OS.2",
                v(d.encryption_at_rest_options().and_then(|e| e.enabled()) == Some(true), || {
                    "at-rest encryption off".to_owned()
                }),
            ));
            verdicts.push((
                "OS.3",
                v(d.node_to_node_encryption_options().and_then(|e| e.enabled()) == Some(true), || {
                    "node-to-node encryption off".to_owned()
                }),
            ));
            let ep = d.domain_endpoint_options();
            let tls = ep.and_then(|e| e.tls_security_policy()).map(|t| t.as_str().to_owned()).unwrap_or_default();
            let https = ep.and_then(|e| e.enforce_https()) == Some(true) && tls.contains("TLS-1-2");
            verdicts.push((
                "OS.4",
                v(https, || format!("enforce_https {:?}, policy {tls:?}", ep.and_then(|e| e.enforce_https()))),
            ));
            let fgac = d
                .advanced_security_options()
                .is_some_and(|a| a.enabled() == Some(true) && a.internal_user_database_enabled() == Some(true));
            verdicts.push(("OS.5", v(fgac, || "fine-grained access control off".to_owned())));
            let policy: Value = d.access_policies().and_then(|p| serde_json::from_str(p).ok()).unwrap_or(Value::Null);
            // Principal `*` is what STACK.md asks for (Dify authenticates with basic auth as
            // the FGAC master user; an IAM principal would demand SigV4). What must not happen
            // is an Allow on anything beyond `arn:...:domain/<name>/*`.
            let own = format!("{}/*", d.arn());
            let wide =
                policy["Statement"].as_array().into_iter().flatten().filter(|s| s["Effect"] == "Allow").any(|s| {
                    let r = &s["Resource"];
                    let resources: Vec<&Value> = r.as_array().map(|a| a.iter().collect()).unwrap_or_else(|| vec![r]);
                    resources.iter().any(|x| x.as_str() != Some(own.as_str()))
                });
            verdicts.push(("OS.6", v(!wide, || format!("an Allow statement reaches beyond {own}"))));
        }
        Ok(_) => {}
        Err(e) if e.is_not_found() => {}
        Err(e) => return Err(e),
    }
    if !verdicts.iter().any(|(id, _)| *id == "OS.1") {
        for id in ["OS.1", "OS.2", "OS.3", "OS.4", "OS.5", "OS.6"] {
            verdicts.push((id, missing("the OpenSearch domain")));
        }
    }

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
