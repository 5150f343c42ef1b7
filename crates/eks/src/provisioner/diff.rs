//! The plan: the observed state against the spec.

use std::collections::BTreeSet;

#[allow(unused_imports)]
use super::*;

impl EksProvisioner {
    pub(super) fn diff_tier(&self, ctx: &Context, spec: &EksSpec, o: &ObservedEks) -> Plan {
        let names = Names::of(ctx);
        let mut plan = Plan::new();
        for (want, have) in role_wants(ctx, &names, spec).iter().zip(o.roles()) {
            let r = ResourceRef::new("iam:role", &want.name);
            let tags = ctx.tags_for(Tier::Eks, want.component, &want.name);
            let Some(have) = have else {
                plan.push(Change::new(Action::Create, r).field(
                    "managed_policies",
                    None::<String>,
                    Some(list(&want.policies)),
                ));
                continue;
            };
            let mut c = Change::new(Action::Update, r.with_id(&have.arn));
            if serde_json::from_str::<Value>(&have.trust).ok().as_ref() != Some(&want.trust) {
                c = c.field("assume_role_policy", Some(&have.trust), Some(want.trust.to_string()));
            }
            let missing: Vec<&String> = want.policies.iter().filter(|p| !have.attached.contains(p)).collect();
            if !missing.is_empty() {
                c = c.field("managed_policies", Some(list(&have.attached)), Some(list(&want.policies)));
            }
            push_if_changed(&mut plan, tag_drift(c, &tags, &have.tags));
        }
        let lg = ResourceRef::new("logs:log-group", &names.log_group);
        match &o.log_group {
            None => plan.push(Change::new(Action::Create, lg).field(
                "retention_days",
                None::<i32>,
                Some(spec.log_retention_days),
            )),
            Some(g) if ctx.owns_tags(&g.tags) && g.retention_days != Some(spec.log_retention_days) => {
                plan.push(Change::new(Action::Update, lg).field(
                    "retention_days",
                    g.retention_days,
                    Some(spec.log_retention_days),
                ))
            }
            _ => {}
        }
        let key_ref = ResourceRef::new("kms:key", format!("alias/{}", names.key_alias));
        match &o.key {
            None => plan.push(Change::new(Action::Create, key_ref).field("rotation", None::<bool>, Some(true))),
            Some(k) => {
                let mut c = Change::new(Action::Update, key_ref.with_id(&k.arn));
                if k.state != "Enabled" {
                    c = c
                        .field("state", Some(&k.state), Some("Enabled"))
                        .because("a key scheduled for deletion is restored");
                }
                let tags = ctx.tags_for(Tier::Eks, "secrets-key", &names.key_alias);
                push_if_changed(&mut plan, tag_drift(c, &tags, &k.tags));
            }
        }
        if o.node_security_group.is_none() {
            plan.push(Change::new(Action::Create, ResourceRef::new("ec2:security-group", &names.node_security_group)));
        }
        let cluster_ref = ResourceRef::new("eks:cluster", &names.cluster);
        let want_logs: BTreeSet<String> = spec.log_types.iter().cloned().collect();
        match &o.cluster {
            None => plan.push(
                Change::new(Action::Create, cluster_ref)
                    .field("version", None::<&str>, Some(&spec.kubernetes_version))
                    .field("subnets", None::<String>, Some(list(&spec.private_subnet_ids)))
                    .field(
                        "endpoint_public_access_cidrs",
                        None::<String>,
                        Some(list(&spec.endpoint.public_access_cidrs)),
                    )
                    .field("logging", None::<String>, Some(list(&want_logs)))
                    .field("authentication_mode", None::<&str>, Some("API_AND_CONFIG_MAP")),
            ),
            Some(have) => {
                let r = cluster_ref.with_id(&have.arn);
                if have.version != spec.kubernetes_version {
                    let c = Change::new(Action::Update, r.clone()).field(
                        "version",
                        Some(&have.version),
                        Some(&spec.kubernetes_version),
                    );
                    plan.push(match next_version(&have.version, &spec.kubernetes_version) {
                        Ok(_) => c.because("control plane first, one minor version at a time; then the node group"),
                        Err(_) => c.because("downgrades are refused"),
                    });
                }
                let mut c = Change::new(Action::Update, r);
                if endpoint_drift(have, spec) {
                    c = c
                        .field(
                            "endpoint_public_access_cidrs",
                            Some(list(&have.public_access_cidrs)),
                            Some(list(&spec.endpoint.public_access_cidrs)),
                        )
                        .field("subnets", Some(list(sorted(&have.subnet_ids))), Some(list(&spec.private_subnet_ids)));
                }
                if have.enabled_logs != want_logs {
                    c = c.field("logging", Some(list(&have.enabled_logs)), Some(list(&want_logs)));
                }
                let tags = ctx.tags_for(Tier::Eks, "cluster", &names.cluster);
                push_if_changed(&mut plan, tag_drift(c, &tags, &have.tags));
            }
        }
        for principal in &spec.admin_principals {
            let r = ResourceRef::new("eks:access-entry", principal);
            match o.access.get(principal) {
                None => {
                    plan.push(Change::new(Action::Create, r).field("policy", None::<&str>, Some(CLUSTER_ADMIN_POLICY)))
                }
                Some(p) if !p.iter().any(|a| a.ends_with(CLUSTER_ADMIN_POLICY)) => {
                    plan.push(Change::new(Action::Update, r).field("policy", None::<&str>, Some(CLUSTER_ADMIN_POLICY)))
                }
                Some(_) => {}
            }
        }
        let node_sg = o.node_security_group.as_ref().map(|s| s.id.as_str()).unwrap_or("(known after apply)");
        let lt_want = launch_template_data(spec, lt_security_groups(node_sg, o.cluster.as_ref()));
        let lt_ref = ResourceRef::new("ec2:launch-template", &names.launch_template);
        match &o.launch_template {
            None => plan.push(
                Change::new(Action::Create, lt_ref)
                    .field("metadata.http_tokens", None::<&str>, Some("required"))
                    .field("metadata.hop_limit", None::<i32>, Some(NODE_METADATA_HOP_LIMIT))
                    .field(
                        "root_volume",
                        None::<&str>,
                        Some(format!("gp3 {} GiB encrypted", spec.node_group.disk_size_gib)),
                    ),
            ),
            Some(lt) => {
                let mut have = lt.data.clone();
                have.security_group_ids.sort();
                if have != lt_want && o.node_security_group.is_some() {
                    plan.push(
                        Change::new(Action::Update, lt_ref.with_id(&lt.id))
                            .field("data", Some(format!("{:?}", lt.data)), Some(format!("{lt_want:?}")))
                            .because("a new launch template version rolls the nodes"),
                    );
                }
            }
        }
        let ng = &spec.node_group;
        let ng_ref = ResourceRef::new("eks:nodegroup", &names.nodegroup);
        match &o.nodegroup {
            None => plan.push(
                Change::new(Action::Create, ng_ref)
                    .field("ami_type", None::<&str>, Some(&ng.ami_type))
                    .field("instance_types", None::<String>, Some(list(&ng.instance_types)))
                    .field(
                        "scaling",
                        None::<&str>,
                        Some(format!("min {} desired {} max {}", ng.min, ng.desired, ng.max)),
                    )
                    .field("labels", None::<&str>, Some(format!("{:?}", ng.labels))),
            ),
            Some(have) => {
                let r = ng_ref.with_id(&have.arn);
                let mut replace =
                    Change::new(Action::Replace, r.clone()).because("node group settings that cannot change in place");
                if sorted(&have.instance_types) != sorted(&ng.instance_types) {
                    replace = replace.field(
                        "instance_types",
                        Some(list(&have.instance_types)),
                        Some(list(&ng.instance_types)),
                    );
                }
                if have.ami_type != ng.ami_type {
                    replace = replace.field("ami_type", Some(&have.ami_type), Some(&ng.ami_type));
                }
                push_if_changed(&mut plan, replace);
                let mut c = Change::new(Action::Update, r);
                if (have.min, have.max, have.desired) != (ng.min, ng.max, ng.desired) {
                    c = c.field(
                        "scaling",
                        Some(format!("min {} desired {} max {}", have.min, have.desired, have.max)),
                        Some(format!("min {} desired {} max {}", ng.min, ng.desired, ng.max)),
                    );
                }
                if have.labels != ng.labels {
                    c = c.field("labels", Some(format!("{:?}", have.labels)), Some(format!("{:?}", ng.labels)));
                }
                if have.version.as_deref().is_some_and(|v| v != spec.kubernetes_version) {
                    c = c
                        .field("version", have.version.as_deref(), Some(&spec.kubernetes_version))
                        .because("after the control plane");
                }
                push_if_changed(&mut plan, c);
            }
        }
        for addon in &spec.addons {
            let r = ResourceRef::new("eks:addon", addon);
            let want = o.addon_versions.get(addon).map(String::as_str).unwrap_or("(default for the cluster version)");
            let pod_identity = (addon == EBS_CSI_ADDON)
                .then(|| format!("kube-system/{EBS_CSI_SERVICE_ACCOUNT} -> {}", names.ebs_csi_role));
            match o.addons.get(addon) {
                None => {
                    let mut c = Change::new(Action::Create, r).field("version", None::<&str>, Some(want));
                    if let Some(p) = &pod_identity {
                        c = c.field("pod_identity_associations", None::<&str>, Some(p.as_str()));
                    }
                    plan.push(c)
                }
                Some(a) => {
                    let mut c = Change::new(Action::Update, r);
                    if o.addon_versions.get(addon).is_some_and(|v| *v != a.version) {
                        c = c.field("version", Some(&a.version), Some(want));
                    }
                    if let Some(p) = pod_identity.as_ref().filter(|_| a.pod_identity_associations.is_empty()) {
                        c = c.field("pod_identity_associations", Some("(none)"), Some(p.as_str()));
                    }
                    push_if_changed(&mut plan, c);
                }
            }
        }
        for (name, a) in o.addons.iter().filter(|(n, a)| !spec.addons.contains(n) && made_by_this_tier(ctx, &a.tags)) {
            plan.push(Change::new(Action::Delete, ResourceRef::new("eks:addon", name)).field(
                "version",
                Some(&a.version),
                None::<&str>,
            ));
        }
        plan
    }
}

pub(super) fn endpoint_drift(cluster: &ClusterInfo, spec: &EksSpec) -> bool {
    let want_public = !spec.endpoint.public_access_cidrs.is_empty();
    let want_subnets: Vec<String> = spec.private_subnet_ids.iter().map(|s| s.as_str().to_owned()).collect();
    !cluster.endpoint_private
        || cluster.endpoint_public != want_public
        || (want_public && sorted(&cluster.public_access_cidrs) != sorted(&spec.endpoint.public_access_cidrs))
        || sorted(&cluster.subnet_ids) != sorted(&want_subnets)
}

pub(super) fn tag_drift(change: Change, want: &Tags, have: &Tags) -> Change {
    want.iter()
        .filter(|(k, v)| have.get(*k) != Some(*v))
        .fold(change, |c, (k, v)| c.field(format!("tags.{k}"), have.get(k), Some(v)))
}

pub(super) fn push_if_changed(plan: &mut Plan, c: Change) {
    if !c.fields.is_empty() {
        plan.push(c);
    }
}
