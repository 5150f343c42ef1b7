//! Every resource carrying a stack's ownership tag, across all services the stack uses, as
//! sorted "kind name" lines (ids left out, so two inventories of equal stacks compare equal).
//!
//! Ownership is read from each resource's own tags, never inferred from its name or its parent:
//! a resource that lost its tag is missing here, and the tests comparing inventories fail.

use aws_types::SdkConfig;

const TAG: &str = "dify-stack:stack";

fn ec2_owned(tags: &[aws_sdk_ec2::types::Tag], stack: &str) -> bool {
    tags.iter().any(|t| t.key() == Some(TAG) && t.value() == Some(stack))
}

fn ec2_name(tags: &[aws_sdk_ec2::types::Tag]) -> String {
    tags.iter().find(|t| t.key() == Some("Name")).and_then(|t| t.value()).unwrap_or("?").to_owned()
}

/// The inventory of `stack` in the account of `config`.
pub(crate) async fn inventory(config: &SdkConfig, stack: &str) -> Vec<String> {
    let mut out = Vec::new();
    let ec2 = aws_sdk_ec2::Client::new(config);
    for v in ec2.describe_vpcs().send().await.unwrap().vpcs() {
        if ec2_owned(v.tags(), stack) {
            out.push(format!("vpc {}", ec2_name(v.tags())));
        }
    }
    for s in ec2.describe_subnets().send().await.unwrap().subnets() {
        if ec2_owned(s.tags(), stack) {
            out.push(format!("subnet {}", ec2_name(s.tags())));
        }
    }
    for g in ec2.describe_internet_gateways().send().await.unwrap().internet_gateways() {
        if ec2_owned(g.tags(), stack) {
            out.push(format!("igw {}", ec2_name(g.tags())));
        }
    }
    for n in ec2.describe_nat_gateways().send().await.unwrap().nat_gateways() {
        let live = !matches!(n.state().map(|s| s.as_str()), Some("deleted" | "deleting" | "failed"));
        if live && ec2_owned(n.tags(), stack) {
            out.push(format!("nat {}", ec2_name(n.tags())));
        }
    }
    for a in ec2.describe_addresses().send().await.unwrap().addresses() {
        if ec2_owned(a.tags(), stack) {
            out.push(format!("eip {}", ec2_name(a.tags())));
        }
    }
    for r in ec2.describe_route_tables().send().await.unwrap().route_tables() {
        if ec2_owned(r.tags(), stack) {
            out.push(format!("route-table {}", ec2_name(r.tags())));
        }
    }
    for g in ec2.describe_security_groups().send().await.unwrap().security_groups() {
        if ec2_owned(g.tags(), stack) {
            out.push(format!("sg {}", g.group_name().unwrap_or("?")));
        }
    }
    for l in ec2.describe_launch_templates().send().await.unwrap().launch_templates() {
        if ec2_owned(l.tags(), stack) {
            out.push(format!("launch-template {}", l.launch_template_name().unwrap_or("?")));
        }
    }
    let eks = aws_sdk_eks::Client::new(config);
    let ours = |t: Option<&std::collections::HashMap<String, String>>| {
        t.is_some_and(|t| t.get(TAG).map(String::as_str) == Some(stack))
    };
    for c in eks.list_clusters().send().await.unwrap().clusters() {
        let d = eks.describe_cluster().name(c).send().await.unwrap();
        if ours(d.cluster().and_then(|c| c.tags())) {
            out.push(format!("eks-cluster {c}"));
        }
        // Every cluster's node groups and add-ons, each by its own tags.
        for ng in eks.list_nodegroups().cluster_name(c).send().await.unwrap().nodegroups() {
            let d = eks.describe_nodegroup().cluster_name(c).nodegroup_name(ng).send().await.unwrap();
            if ours(d.nodegroup().and_then(|n| n.tags())) {
                out.push(format!("nodegroup {ng}"));
            }
        }
        for a in eks.list_addons().cluster_name(c).send().await.unwrap().addons() {
            let d = eks.describe_addon().cluster_name(c).addon_name(a).send().await.unwrap();
            if ours(d.addon().and_then(|x| x.tags())) {
                out.push(format!("addon {a}"));
            }
        }
    }
    let iam = aws_sdk_iam::Client::new(config);
    for r in iam.list_roles().send().await.unwrap().roles() {
        let tags = iam.list_role_tags().role_name(r.role_name()).send().await.unwrap();
        if tags.tags().iter().any(|t| t.key() == TAG && t.value() == stack) {
            out.push(format!("role {}", r.role_name()));
        }
    }
    for p in iam.list_open_id_connect_providers().send().await.unwrap().open_id_connect_provider_list() {
        let arn = p.arn().unwrap_or_default();
        let d = iam.get_open_id_connect_provider().open_id_connect_provider_arn(arn).send().await.unwrap();
        if d.tags().iter().any(|t| t.key() == TAG && t.value() == stack) {
            out.push("oidc-provider".to_owned());
        }
    }
    let kms = aws_sdk_kms::Client::new(config);
    for k in kms.list_keys().send().await.unwrap().keys() {
        let id = k.key_id().unwrap_or_default();
        let meta = kms.describe_key().key_id(id).send().await.unwrap();
        if meta.key_metadata().and_then(|m| m.key_state()).map(|s| s.as_str()) == Some("PendingDeletion") {
            continue;
        }
        let tags = kms.list_resource_tags().key_id(id).send().await.unwrap();
        if tags.tags().iter().any(|t| t.tag_key() == TAG && t.tag_value() == stack) {
            out.push("kms-key".to_owned());
        }
    }
    let rds = aws_sdk_rds::Client::new(config);
    for c in rds.describe_db_clusters().send().await.unwrap().db_clusters() {
        if c.tag_list().iter().any(|t| t.key() == Some(TAG) && t.value() == Some(stack)) {
            out.push(format!("rds-cluster {}", c.db_cluster_identifier().unwrap_or("?")));
        }
    }
    for i in rds.describe_db_instances().send().await.unwrap().db_instances() {
        if i.tag_list().iter().any(|t| t.key() == Some(TAG) && t.value() == Some(stack)) {
            out.push(format!("rds-instance {}", i.db_instance_identifier().unwrap_or("?")));
        }
    }
    for g in rds.describe_db_subnet_groups().send().await.unwrap().db_subnet_groups() {
        let arn = g.db_subnet_group_arn().unwrap_or_default();
        let t = rds.list_tags_for_resource().resource_name(arn).send().await.unwrap();
        if t.tag_list().iter().any(|t| t.key() == Some(TAG) && t.value() == Some(stack)) {
            out.push(format!("rds-subnet-group {}", g.db_subnet_group_name().unwrap_or("?")));
        }
    }
    let ec = aws_sdk_elasticache::Client::new(config);
    let cache_owned = async |arn: &str| -> Result<bool, String> {
        match ec.list_tags_for_resource().resource_name(arn).send().await {
            Ok(t) => Ok(t.tag_list().iter().any(|t| t.key() == Some(TAG) && t.value() == Some(stack))),
            Err(e) => Err(aws_smithy_types::error::metadata::ProvideErrorMetadata::code(&e).unwrap_or("?").to_owned()),
        }
    };
    for g in ec.describe_replication_groups().send().await.unwrap().replication_groups() {
        let id = g.replication_group_id().unwrap_or("?");
        // ElastiCache refuses tag reads while a group is not available (see the datastores SDK
        // adapter): such a group is listed with its state, so an inventory never silently drops it.
        match cache_owned(g.arn().unwrap_or_default()).await {
            Ok(true) => out.push(format!("redis {id}")),
            Ok(false) => {}
            Err(code) => out.push(format!("redis {id} (tags unreadable while {}: {code})", g.status().unwrap_or("?"))),
        }
    }
    for g in ec.describe_cache_subnet_groups().send().await.unwrap().cache_subnet_groups() {
        if cache_owned(g.arn().unwrap_or_default()).await.unwrap() {
            out.push(format!("cache-subnet-group {}", g.cache_subnet_group_name().unwrap_or("?")));
        }
    }
    let os = aws_sdk_opensearch::Client::new(config);
    for d in os.list_domain_names().send().await.unwrap().domain_names() {
        let name = d.domain_name().unwrap_or_default();
        let domain = os.describe_domain().domain_name(name).send().await.unwrap();
        let arn = domain.domain_status().map(|s| s.arn()).unwrap_or_default();
        let t = os.list_tags().arn(arn).send().await.unwrap();
        if t.tag_list().iter().any(|t| t.key() == TAG && t.value() == stack) {
            out.push(format!("opensearch {name}"));
        }
    }
    let s3 = aws_sdk_s3::Client::from_conf(aws_sdk_s3::config::Builder::from(config).force_path_style(true).build());
    for b in s3.list_buckets().send().await.unwrap().buckets() {
        let name = b.name().unwrap_or_default();
        if let Ok(t) = s3.get_bucket_tagging().bucket(name).send().await
            && t.tag_set().iter().any(|t| t.key() == TAG && t.value() == stack)
        {
            out.push(format!("bucket {name}"));
        }
    }
    let ecr = aws_sdk_ecr::Client::new(config);
    for r in ecr.describe_repositories().send().await.unwrap().repositories() {
        let arn = r.repository_arn().unwrap_or_default();
        let t = ecr.list_tags_for_resource().resource_arn(arn).send().await.unwrap();
        if t.tags().iter().any(|t| t.key() == TAG && t.value() == stack) {
            out.push(format!("ecr {}", r.repository_name().unwrap_or("?")));
        }
    }
    let sm = aws_sdk_secretsmanager::Client::new(config);
    for s in sm.list_secrets().send().await.unwrap().secret_list() {
        if s.deleted_date().is_none() && s.tags().iter().any(|t| t.key() == Some(TAG) && t.value() == Some(stack)) {
            out.push(format!("secret {}", s.name().unwrap_or("?")));
        }
    }
    let logs = aws_sdk_cloudwatchlogs::Client::new(config);
    for g in logs.describe_log_groups().send().await.unwrap().log_groups() {
        let name = g.log_group_name().unwrap_or_default();
        #[allow(deprecated)]
        let t = logs.list_tags_log_group().log_group_name(name).send().await.unwrap();
        if t.tags().and_then(|t| t.get(TAG)).is_some_and(|v| v == stack) {
            out.push(format!("log-group {name}"));
        }
    }
    out.sort();
    out
}
