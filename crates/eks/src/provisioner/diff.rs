//! The changes: the observed state against the spec, as typed changes. The plan shows each as
//! one entry; apply executes exactly the list. The node side (launch template, node group,
//! add-ons) depends on what the control plane makes (the node security group's id, the cluster's
//! security group): the plan shows those values as known after apply, and apply computes the
//! node side's changes with the same function once the control plane is converged.

use std::collections::BTreeSet;

use super::change::scaling;
use super::{
    AddonVersions, CLUSTER_ADMIN_POLICY, ClusterInfo, Context, EBS_CSI_ADDON, EBS_CSI_SERVICE_ACCOUNT, EksSpec, Names,
    NodegroupInfo, ObservedEks, RoleInfo, RoleWant, Tier, Value, launch_template_data, list, lt_security_groups,
    made_by_this_tier, role_wants, sorted, upgrade,
};
use crate::provisioner::Scaling;
use crate::provisioner::Step;
use dify_stack_core::Planned;
use dify_stack_core::ids::SecurityGroupId;
use dify_stack_core::tag_drift as drift;

/// Pushes `change` when its plan entry has a field (each difference is one field).
fn push_if_changed(out: &mut Vec<Step>, change: Step) {
    if !change.change().fields.is_empty() {
        out.push(change);
    }
}

/// The tier's changes, in the order apply makes them: the control plane's, the upgrade's steps,
/// then the node side as it will be once they are made (its values known only after the control
/// plane shown as such). Apply executes the control plane's and the upgrade's from this list;
/// the node side's it computes again once those are made (`apply.rs`).
pub(super) fn tier_changes(ctx: &Context, spec: &EksSpec, o: &ObservedEks) -> Vec<Step> {
    let mut changes = control_plane_changes(ctx, spec, o);
    // The upgrade's steps, then the rest as it will be once they are made.
    let upgrade = upgrade::upgrade_changes(ctx, spec, o);
    // A refused downgrade: the node side is not planned against a version it never reaches.
    if upgrade.iter().any(|c| matches!(c, Step::UpgradeCluster { refused: true, .. })) {
        changes.extend(upgrade);
        return changes;
    }
    let o = &upgrade::after_upgrade(o, &upgrade);
    changes.extend(upgrade);
    let node_sg = o.node_security_group.as_ref().map(|s| &s.id);
    changes.extend(node_changes(ctx, spec, o, node_sg, o.cluster.as_ref(), o.cluster.is_none()));
    changes
}

/// An existing role's change (trust, missing managed policies, our tags); `None` when converged.
pub(super) fn role_change(ctx: &Context, index: usize, want: &RoleWant, have: &RoleInfo) -> Option<Step> {
    let missing = want.policies.iter().any(|p| !have.attached.contains(p));
    let change = Step::UpdateRole {
        index,
        name: want.name.clone(),
        arn: have.arn.to_string(),
        trust: (serde_json::from_str::<Value>(&have.trust).ok().as_ref() != Some(&want.trust))
            .then(|| (have.trust.clone(), want.trust.to_string())),
        policies: missing.then(|| (have.attached.clone(), want.policies.clone())),
        tags: drift(&ctx.tags_for(Tier::Eks, want.component, &want.name), &have.tags),
    };
    (!change.change().fields.is_empty()).then_some(change)
}

/// The control plane's changes: roles, log group, key, node security group, cluster, access.
pub(super) fn control_plane_changes(ctx: &Context, spec: &EksSpec, o: &ObservedEks) -> Vec<Step> {
    let names = Names::of(ctx);
    let mut out = Vec::new();
    for (index, (want, have)) in role_wants(ctx, &names, spec).iter().zip(o.roles()).enumerate() {
        match have {
            None => out.push(Step::CreateRole { index, name: want.name.clone(), policies: want.policies.clone() }),
            Some(have) => out.extend(role_change(ctx, index, want, have)),
        }
    }
    match &o.log_group {
        None => {
            out.push(Step::CreateLogGroup { name: names.log_group.clone(), retention_days: spec.log_retention_days })
        }
        // One without any stack's tag: EKS made it (a log flush after the cluster was deleted
        // re-creates it untagged; terraform-aws-eks #2486, #920), for a cluster of this name.
        // Adopted: our tags and the retention. One with another stack's tag is left as is.
        Some(g) if !g.tags.contains_key(dify_stack_core::TAG_STACK) => out.push(Step::AdoptLogGroup {
            name: names.log_group.clone(),
            have: g.retention_days,
            want: spec.log_retention_days,
            tags: drift(&ctx.tags_for(Tier::Eks, "log-group", &names.log_group), &g.tags),
        }),
        Some(g) if ctx.owns_tags(&g.tags) && g.retention_days != Some(spec.log_retention_days) => {
            out.push(Step::LogRetention {
                name: names.log_group.clone(),
                have: g.retention_days,
                want: spec.log_retention_days,
            })
        }
        _ => {}
    }
    if let Some(k) = o.key.as_ref().filter(|_| o.key_alias_missing) {
        out.push(Step::AliasKey { alias: names.key_alias.clone(), key_id: k.key_id.clone() });
    }
    match &o.key {
        None => out.push(Step::CreateKey { alias: names.key_alias.clone() }),
        Some(k) => push_if_changed(
            &mut out,
            Step::UpdateKey {
                alias: names.key_alias.clone(),
                arn: k.arn.to_string(),
                key_id: k.key_id.clone(),
                restore: (k.state == "PendingDeletion" || k.state == "Disabled").then(|| k.state.clone()),
                tags: drift(&ctx.tags_for(Tier::Eks, "secrets-key", &names.key_alias), &k.tags),
            },
        ),
    }
    if o.node_security_group.is_none() {
        out.push(Step::CreateNodeSecurityGroup { name: names.node_security_group.clone() });
    }
    let want_logs: BTreeSet<String> = spec.log_types.iter().cloned().collect();
    let want_cidrs = spec.public_access_cidrs();
    match &o.cluster {
        None => out.push(Step::CreateCluster {
            name: names.cluster.clone(),
            version: spec.kubernetes_version.to_string(),
            subnets: list(&spec.private_subnet_ids),
            cidrs: list(&want_cidrs),
            logs: list(&want_logs),
        }),
        Some(have) => {
            if let (Some(have_key), Some(k)) = (&have.secrets_key_arn, &o.key)
                && *have_key != k.arn
            {
                out.push(Step::ReplaceClusterKey {
                    name: names.cluster.clone(),
                    arn: have.arn.clone(),
                    have: have_key.to_string(),
                    want: k.arn.to_string(),
                });
            }
            // One change per type of cluster update, in the order apply makes them, one at a
            // time: EKS takes one type per UpdateClusterConfig call ("Only one type of update -
            // VpcConfigUpdate, LoggingUpdate or EndpointAccessUpdate can be allowed", aws-cdk PR
            // #30114; cluster-api-provider-aws #3553) and refuses a call while another update is
            // in progress (ResourceInUseException "Cannot EndpointAccessUpdate because cluster
            // ... currently has update ... in progress", aws-controllers-k8s community #1192).
            let want_subnets = &spec.private_subnet_ids;
            if sorted(&have.subnet_ids) != sorted(want_subnets) {
                out.push(Step::UpdateClusterSubnets {
                    name: names.cluster.clone(),
                    arn: have.arn.clone(),
                    have: list(sorted(&have.subnet_ids)),
                    want: list(sorted(want_subnets)),
                });
            }
            if access_drift(have, &want_cidrs) {
                let shown =
                    |public: bool, cidrs: &[String]| if public { list(sorted(cidrs)) } else { "(off)".to_owned() };
                let have_cidrs = shown(have.endpoint_public, &have.public_access_cidrs);
                let want_shown = shown(!want_cidrs.is_empty(), &want_cidrs);
                out.push(Step::UpdateClusterAccess {
                    name: names.cluster.clone(),
                    arn: have.arn.clone(),
                    cidrs: (have_cidrs != want_shown).then_some((have_cidrs, want_shown)),
                    private_off: !have.endpoint_private,
                });
            }
            if have.enabled_logs != want_logs {
                out.push(Step::UpdateClusterLogging {
                    name: names.cluster.clone(),
                    arn: have.arn.clone(),
                    have: list(&have.enabled_logs),
                    want: list(&want_logs),
                });
            }
            // EKS answers no upgrade policy for some clusters (older API versions): only a
            // known and different one is changed.
            if let Some(have_support) = have.support_type.as_ref().filter(|t| *t != spec.support_type.as_str()) {
                out.push(Step::UpdateClusterSupport {
                    name: names.cluster.clone(),
                    arn: have.arn.clone(),
                    have: have_support.clone(),
                    want: spec.support_type.as_str().to_owned(),
                });
            }
            push_if_changed(
                &mut out,
                Step::TagCluster {
                    name: names.cluster.clone(),
                    arn: have.arn.clone(),
                    tags: drift(&ctx.tags_for(Tier::Eks, "cluster", &names.cluster), &have.tags),
                },
            );
        }
    }
    for principal in &spec.admin_principals {
        match o.access.get(principal) {
            None => out.push(Step::CreateAccessEntry { principal: principal.clone() }),
            Some(p) if !p.iter().any(|a| a.ends_with(CLUSTER_ADMIN_POLICY)) => {
                out.push(Step::AssociateAccessPolicy { principal: principal.clone() })
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
    node_sg: Option<&SecurityGroupId>,
    cluster: Option<&ClusterInfo>,
    cluster_created: bool,
) -> Vec<Step> {
    let names = Names::of(ctx);
    let mut out = Vec::new();
    let unknown = SecurityGroupId::new("(known after apply)");
    let lt_want = launch_template_data(spec, lt_security_groups(node_sg.unwrap_or(&unknown), cluster));
    let mut lt_updated = false;
    match &o.launch_template {
        None => out.push(Step::CreateLaunchTemplate {
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
                out.push(Step::UpdateLaunchTemplate {
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
        None => out.push(Step::CreateNodegroup {
            name: names.nodegroup.clone(),
            ami_type: ng.ami_type.clone(),
            instance_types: list(&ng.instance_types),
            scaling: scaling(want_scaling),
            labels: format!("{:?}", ng.labels),
        }),
        Some(have) => {
            let replace = Step::ReplaceNodegroup {
                name: names.nodegroup.clone(),
                arn: have.arn.clone(),
                instance_types: (sorted(&have.instance_types) != sorted(&ng.instance_types))
                    .then(|| (list(&have.instance_types), list(&ng.instance_types))),
                ami_type: (have.ami_type != ng.ami_type).then(|| (have.ami_type.clone(), ng.ami_type.clone())),
            };
            push_if_changed(&mut out, replace);
            let template = o.launch_template.as_ref().map(|lt| (lt.id.clone(), lt.latest_version.to_string()));
            let launch_template = match (&have.launch_template, &template) {
                (Some(h), _) if lt_updated => Some((format!("{h:?}"), "(known after apply)".to_owned())),
                (Some(h), Some(t)) if h != t => Some((format!("{h:?}"), format!("{t:?}"))),
                _ => None,
            };
            push_if_changed(
                &mut out,
                Step::UpdateNodegroup {
                    name: names.nodegroup.clone(),
                    arn: have.arn.clone(),
                    scaling: scaling_update(have, ng),
                    labels: (have.labels != ng.labels)
                        .then(|| (format!("{:?}", have.labels), format!("{:?}", ng.labels))),
                    launch_template,
                },
            );
        }
    }
    for addon in &spec.addons {
        let offered = o.addon_versions.get(addon);
        let pod_identity = (addon == EBS_CSI_ADDON)
            .then(|| format!("kube-system/{EBS_CSI_SERVICE_ACCOUNT} -> {}", names.ebs_csi_role));
        match o.addons.get(addon) {
            None => out.push(Step::CreateAddon {
                name: addon.clone(),
                version: spec.addon_versions.get(addon).cloned().or_else(|| offered.and_then(|v| v.default.clone())),
                pod_identity,
            }),
            Some(a) => push_if_changed(
                &mut out,
                Step::UpdateAddon {
                    name: addon.clone(),
                    version: addon_version_move(spec, addon, &a.version, offered),
                    pod_identity: pod_identity.filter(|_| a.pod_identity_associations.is_empty()),
                },
            ),
        }
    }
    for (name, a) in o.addons.iter().filter(|(n, a)| !spec.addons.contains(n) && made_by_this_tier(ctx, &a.tags)) {
        out.push(Step::DeleteAddon { name: name.clone(), version: a.version.clone() });
    }
    out
}

/// The endpoint access differs from what is wanted: the private endpoint off, the public one
/// on or off wrongly, or its CIDRs another set than `want_cidrs`.
pub(super) fn access_drift(cluster: &ClusterInfo, want_cidrs: &[String]) -> bool {
    let want_public = !want_cidrs.is_empty();
    !cluster.endpoint_private
        || cluster.endpoint_public != want_public
        || (want_public && sorted(&cluster.public_access_cidrs) != sorted(want_cidrs))
}

/// The scaling an existing node group is given: the spec's min and max; its desired size only
/// when it falls outside them (clamped into the range), else `None` (left as it is). The desired
/// size is the spec's at create only: "If you use the Kubernetes Cluster Autoscaler, you
/// shouldn't change the desiredSize value directly, as this can cause the Cluster Autoscaler to
/// suddenly scale up or scale down" (EKS API reference, NodegroupScalingConfig; UpdateNodegroupConfig
/// takes any or none of its properties).
pub(crate) fn scaling_update(have: &NodegroupInfo, ng: &crate::spec::NodeGroupSpec) -> Option<(Scaling, Scaling)> {
    if (have.min, have.max) == (ng.min, ng.max) {
        return None;
    }
    let desired = have.desired.clamp(ng.min, ng.max.max(ng.min));
    Some(((have.min, have.max, have.desired), (ng.min, ng.max, desired)))
}

/// The version an installed add-on moves to, if any. Its version is kept (UpdateAddon would
/// otherwise follow every new default EKS publishes, and a version move can reset custom
/// configuration), except: a version given in the spec; an installed version EKS no longer
/// lists as compatible with the Kubernetes version. A Kubernetes upgrade moves the add-ons in
/// its own steps (`upgrade.rs`).
pub(super) fn addon_version_move(
    spec: &EksSpec,
    name: &str,
    installed: &str,
    offered: Option<&AddonVersions>,
) -> Option<(String, String)> {
    let want = match spec.addon_versions.get(name) {
        Some(pinned) => Some(pinned.clone()),
        None => offered.and_then(|v| {
            let incompatible = !v.compatible.is_empty() && !v.compatible.iter().any(|c| c == installed);
            incompatible.then(|| v.default.clone()).flatten()
        }),
    };
    want.filter(|w| w != installed).map(|w| (installed.to_owned(), w))
}
