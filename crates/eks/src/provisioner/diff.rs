//! The changes: the observed state against the spec, as typed changes. The plan shows each as
//! one entry; apply executes exactly the list. The node side (launch template, node group,
//! add-ons) depends on what the control plane makes (the node security group's id, the cluster's
//! security group): the plan shows those values as known after apply, and apply computes the
//! node side's changes with the same function once the control plane is converged.

use std::collections::BTreeSet;

use super::change::scaling;
#[allow(unused_imports)]
use super::*;
use dify_stack_core::tag_drift as drift;

/// Pushes `change` when its plan entry has a field (each difference is one field).
fn push_if_changed(out: &mut Vec<EksChange>, change: EksChange) {
    if !change.change().fields.is_empty() {
        out.push(change);
    }
}

impl EksProvisioner {
    pub(super) fn diff_tier(&self, ctx: &Context, spec: &EksSpec, o: &ObservedEks) -> Plan {
        let mut changes = control_plane_changes(ctx, spec, o);
        let node_sg = o.node_security_group.as_ref().map(|s| s.id.as_str());
        changes.extend(node_changes(ctx, spec, o, node_sg, o.cluster.as_ref(), o.cluster.is_none()));
        EksChange::plan(&changes)
    }
}

/// An existing role's change (trust, missing managed policies, our tags); `None` when converged.
pub(super) fn role_change(ctx: &Context, index: usize, want: &RoleWant, have: &RoleInfo) -> Option<EksChange> {
    let missing = want.policies.iter().any(|p| !have.attached.contains(p));
    let change = EksChange::UpdateRole {
        index,
        name: want.name.clone(),
        arn: have.arn.clone(),
        trust: (serde_json::from_str::<Value>(&have.trust).ok().as_ref() != Some(&want.trust))
            .then(|| (have.trust.clone(), want.trust.to_string())),
        policies: missing.then(|| (have.attached.clone(), want.policies.clone())),
        tags: drift(&ctx.tags_for(Tier::Eks, want.component, &want.name), &have.tags),
    };
    (!change.change().fields.is_empty()).then_some(change)
}

/// The control plane's changes: roles, log group, key, node security group, cluster, access.
pub(super) fn control_plane_changes(ctx: &Context, spec: &EksSpec, o: &ObservedEks) -> Vec<EksChange> {
    let names = Names::of(ctx);
    let mut out = Vec::new();
    for (index, (want, have)) in role_wants(ctx, &names, spec).iter().zip(o.roles()).enumerate() {
        match have {
            None => out.push(EksChange::CreateRole { index, name: want.name.clone(), policies: want.policies.clone() }),
            Some(have) => out.extend(role_change(ctx, index, want, have)),
        }
    }
    match &o.log_group {
        None => out
            .push(EksChange::CreateLogGroup { name: names.log_group.clone(), retention_days: spec.log_retention_days }),
        // One without our tag (made by EKS for an older cluster, or by someone else) is left as is.
        Some(g) if ctx.owns_tags(&g.tags) && g.retention_days != Some(spec.log_retention_days) => {
            out.push(EksChange::LogRetention {
                name: names.log_group.clone(),
                have: g.retention_days,
                want: spec.log_retention_days,
            })
        }
        _ => {}
    }
    if let Some(k) = o.key.as_ref().filter(|_| o.key_alias_missing) {
        out.push(EksChange::AliasKey { alias: names.key_alias.clone(), key_id: k.key_id.clone() });
    }
    match &o.key {
        None => out.push(EksChange::CreateKey { alias: names.key_alias.clone() }),
        Some(k) => push_if_changed(
            &mut out,
            EksChange::UpdateKey {
                alias: names.key_alias.clone(),
                arn: k.arn.clone(),
                key_id: k.key_id.clone(),
                restore: (k.state == "PendingDeletion" || k.state == "Disabled").then(|| k.state.clone()),
                tags: drift(&ctx.tags_for(Tier::Eks, "secrets-key", &names.key_alias), &k.tags),
            },
        ),
    }
    if o.node_security_group.is_none() {
        out.push(EksChange::CreateNodeSecurityGroup { name: names.node_security_group.clone() });
    }
    let want_logs: BTreeSet<String> = spec.log_types.iter().cloned().collect();
    match &o.cluster {
        None => out.push(EksChange::CreateCluster {
            name: names.cluster.clone(),
            version: spec.kubernetes_version.clone(),
            subnets: list(&spec.private_subnet_ids),
            cidrs: list(&spec.endpoint.public_access_cidrs),
            logs: list(&want_logs),
        }),
        Some(have) => {
            if have.version != spec.kubernetes_version {
                out.push(EksChange::UpgradeCluster {
                    name: names.cluster.clone(),
                    arn: have.arn.clone(),
                    have: have.version.clone(),
                    want: spec.kubernetes_version.clone(),
                    refused: next_version(&have.version, &spec.kubernetes_version).is_err(),
                });
            }
            if let (Some(have_key), Some(k)) = (&have.secrets_key_arn, &o.key)
                && *have_key != k.arn
            {
                out.push(EksChange::ReplaceClusterKey {
                    name: names.cluster.clone(),
                    arn: have.arn.clone(),
                    have: have_key.clone(),
                    want: k.arn.clone(),
                });
            }
            push_if_changed(
                &mut out,
                EksChange::UpdateCluster {
                    name: names.cluster.clone(),
                    arn: have.arn.clone(),
                    endpoint: endpoint_drift(have, spec).then(|| {
                        (
                            (list(&have.public_access_cidrs), list(&spec.endpoint.public_access_cidrs)),
                            (list(sorted(&have.subnet_ids)), list(&spec.private_subnet_ids)),
                        )
                    }),
                    logging: (have.enabled_logs != want_logs).then(|| (list(&have.enabled_logs), list(&want_logs))),
                    tags: drift(&ctx.tags_for(Tier::Eks, "cluster", &names.cluster), &have.tags),
                },
            );
        }
    }
    for principal in &spec.admin_principals {
        match o.access.get(principal) {
            None => out.push(EksChange::CreateAccessEntry { principal: principal.clone() }),
            Some(p) if !p.iter().any(|a| a.ends_with(CLUSTER_ADMIN_POLICY)) => {
                out.push(EksChange::AssociateAccessPolicy { principal: principal.clone() })
            }
            Some(_) => {}
        }
    }
    out
}

/// The node side's changes: launch template, node group, add-ons. `node_sg` and `cluster` are
/// the control plane's (`None` while it is to be made: shown as known after apply);
/// `cluster_created` says the cluster is made by this run (its security group is then unknown).
pub(super) fn node_changes(
    ctx: &Context,
    spec: &EksSpec,
    o: &ObservedEks,
    node_sg: Option<&str>,
    cluster: Option<&ClusterInfo>,
    cluster_created: bool,
) -> Vec<EksChange> {
    let names = Names::of(ctx);
    let mut out = Vec::new();
    let lt_want = launch_template_data(spec, lt_security_groups(node_sg.unwrap_or("(known after apply)"), cluster));
    let mut lt_updated = false;
    match &o.launch_template {
        None => out.push(EksChange::CreateLaunchTemplate {
            name: names.launch_template.clone(),
            disk_size_gib: spec.node_group.disk_size_gib,
        }),
        Some(lt) => {
            let mut have = lt.data.clone();
            have.security_group_ids.sort();
            // With the cluster made by this run, its security group (part of the data) is known
            // only after apply: the template is compared once it is.
            if have != lt_want && !cluster_created {
                lt_updated = true;
                out.push(EksChange::UpdateLaunchTemplate {
                    name: names.launch_template.clone(),
                    id: lt.id.clone(),
                    have: format!("{:?}", lt.data),
                    want: format!("{lt_want:?}"),
                });
            }
        }
    }
    let ng = &spec.node_group;
    let want_scaling = (ng.min, ng.max, ng.desired);
    match &o.nodegroup {
        None => out.push(EksChange::CreateNodegroup {
            name: names.nodegroup.clone(),
            ami_type: ng.ami_type.clone(),
            instance_types: list(&ng.instance_types),
            scaling: scaling(want_scaling),
            labels: format!("{:?}", ng.labels),
        }),
        Some(have) => {
            let replace = EksChange::ReplaceNodegroup {
                name: names.nodegroup.clone(),
                arn: have.arn.clone(),
                instance_types: (sorted(&have.instance_types) != sorted(&ng.instance_types))
                    .then(|| (list(&have.instance_types), list(&ng.instance_types))),
                ami_type: (have.ami_type != ng.ami_type).then(|| (have.ami_type.clone(), ng.ami_type.clone())),
            };
            push_if_changed(&mut out, replace);
            let have_scaling = (have.min, have.max, have.desired);
            let template = o.launch_template.as_ref().map(|lt| (lt.id.clone(), lt.latest_version.to_string()));
            let launch_template = match (&have.launch_template, &template) {
                (Some(h), _) if lt_updated => Some((format!("{h:?}"), "(known after apply)".to_owned())),
                (Some(h), Some(t)) if h != t => Some((format!("{h:?}"), format!("{t:?}"))),
                _ => None,
            };
            push_if_changed(
                &mut out,
                EksChange::UpdateNodegroup {
                    name: names.nodegroup.clone(),
                    arn: have.arn.clone(),
                    scaling: (have_scaling != want_scaling).then_some((have_scaling, want_scaling)),
                    labels: (have.labels != ng.labels)
                        .then(|| (format!("{:?}", have.labels), format!("{:?}", ng.labels))),
                    version: have
                        .version
                        .clone()
                        .filter(|v| *v != spec.kubernetes_version)
                        .map(|v| (v, spec.kubernetes_version.clone())),
                    launch_template,
                },
            );
        }
    }
    for addon in &spec.addons {
        let want = o.addon_versions.get(addon).cloned();
        let pod_identity = (addon == EBS_CSI_ADDON)
            .then(|| format!("kube-system/{EBS_CSI_SERVICE_ACCOUNT} -> {}", names.ebs_csi_role));
        match o.addons.get(addon) {
            None => out.push(EksChange::CreateAddon { name: addon.clone(), version: want, pod_identity }),
            Some(a) => push_if_changed(
                &mut out,
                EksChange::UpdateAddon {
                    name: addon.clone(),
                    version: want.filter(|v| *v != a.version).map(|v| (a.version.clone(), v)),
                    pod_identity: pod_identity.filter(|_| a.pod_identity_associations.is_empty()),
                },
            ),
        }
    }
    for (name, a) in o.addons.iter().filter(|(n, a)| !spec.addons.contains(n) && made_by_this_tier(ctx, &a.tags)) {
        out.push(EksChange::DeleteAddon { name: name.clone(), version: a.version.clone() });
    }
    out
}

pub(super) fn endpoint_drift(cluster: &ClusterInfo, spec: &EksSpec) -> bool {
    let want_public = !spec.endpoint.public_access_cidrs.is_empty();
    let want_subnets: Vec<String> = spec.private_subnet_ids.iter().map(|s| s.as_str().to_owned()).collect();
    !cluster.endpoint_private
        || cluster.endpoint_public != want_public
        || (want_public && sorted(&cluster.public_access_cidrs) != sorted(&spec.endpoint.public_access_cidrs))
        || sorted(&cluster.subnet_ids) != sorted(&want_subnets)
}
