//! A drifted tier: the plan shows each typed change once, and apply makes exactly the writes
//! those changes name, in the plan's order, and nothing else.

use super::{ctx, spec};
use crate::tests::FakeEks;
use crate::{EksProvisioner, NODE_ADDONS};
use dify_stack_core::Provisioner;

#[tokio::test(start_paused = true)]
async fn a_drifted_tier_gets_exactly_the_writes_its_plan_shows() {
    let fake = FakeEks::default();
    let eks = EksProvisioner::new(fake.clone());
    let ctx = ctx();
    let s = spec();
    eks.apply(&ctx, &s).await.unwrap();
    assert!(eks.plan(&ctx, &s).await.unwrap().is_empty());
    let tier = dify_stack_core::TAG_TIER;
    let addon = s.addons[0].clone();
    {
        let mut st = fake.state();
        st.roles.values_mut().next().unwrap().tags.remove(tier);
        st.keys[0].tags.remove(tier);
        st.log_group.as_mut().unwrap().retention_days = Some(1);
        let c = st.cluster.as_mut().unwrap();
        c.enabled_logs.remove("scheduler");
        c.tags.remove(tier);
        let ng = st.nodegroup.as_mut().unwrap();
        ng.max += 1;
        let (id, _) = ng.launch_template.clone().unwrap();
        ng.launch_template = Some((id, "0".into()));
        // A version EKS no longer lists as compatible with the cluster's Kubernetes version.
        st.addons.get_mut(&addon).unwrap().version = "v-old".into();
    }
    let mark = fake.calls().len();

    let plan = eks.plan(&ctx, &s).await.unwrap();
    let shown: Vec<String> = plan
        .changes
        .iter()
        .map(|c| {
            let fields: Vec<&str> = c.fields.iter().map(|f| f.path.as_str()).collect();
            format!("{:?} {} {}", c.action, c.resource.kind, fields.join(","))
        })
        .collect();
    let tag = format!("tags.{tier}");
    assert_eq!(
        shown,
        [
            format!("Update iam:role {tag}"),
            "Update logs:log-group retention_days".to_owned(),
            format!("Update kms:key {tag}"),
            "Update eks:cluster logging".to_owned(),
            format!("Update eks:cluster {tag}"),
            "Update eks:nodegroup scaling,launch_template".to_owned(),
            "Update eks:addon version".to_owned(),
        ],
        "{plan}"
    );

    eks.apply(&ctx, &s).await.unwrap();
    let writes: Vec<String> = fake.calls()[mark..]
        .iter()
        .filter(|c| !["Describe", "List", "Get", "Find"].iter().any(|p| c.starts_with(p)))
        .cloned()
        .collect();
    // The drifted role is the EBS CSI driver's: it converges beside the cluster, which needs
    // only its own role, the key and the log group.
    let role = fake.state().roles.keys().next().unwrap().clone();
    assert_eq!(role, "eks-t-ebs-csi");
    assert_eq!(writes.len(), 8, "{writes:?}");
    let tag_role = format!("TagRole({role})");
    assert_eq!(writes.iter().filter(|w| **w == tag_role).count(), 1, "{writes:?}");
    let writes: Vec<String> = writes.into_iter().filter(|w| *w != tag_role).collect();
    // The key and the log group converge together (in any order), before the cluster; the rest
    // in order.
    let mut together = writes[..2].to_vec();
    together.sort();
    let mut want = vec![format!("PutRetentionPolicy({})", s.log_retention_days), "TagKey".to_owned()];
    want.sort();
    assert_eq!(together, want, "one write per field the plan shows, nothing else");
    assert_eq!(
        writes[2..],
        [
            "UpdateClusterConfig(logging)".to_owned(),
            "TagResource".to_owned(),
            // An add-on every node runs, before the node group (`NODE_ADDONS`).
            format!("UpdateAddon({addon})"),
            "UpdateNodegroupConfig".to_owned(),
            "UpdateNodegroupVersion(template)".to_owned(),
        ],
        "one write per field the plan shows, nothing else"
    );
    assert!(NODE_ADDONS.contains(&addon.as_str()), "{addon}");
    assert!(eks.plan(&ctx, &s).await.unwrap().is_empty(), "converged");
}

/// A run stopped between CreateKey and CreateAlias: the next plan shows the alias, apply creates
/// it for the key that exists (no second key), and the plan after is empty.
#[tokio::test(start_paused = true)]
async fn a_key_left_without_its_alias_gets_it_and_no_twin() {
    let fake = FakeEks::default();
    let eks = EksProvisioner::new(fake.clone());
    let ctx = ctx();
    let s = spec();
    eks.apply(&ctx, &s).await.unwrap();
    fake.state().key_alias = None;
    let mark = fake.calls().len();
    let plan = eks.plan(&ctx, &s).await.unwrap();
    let shown: Vec<String> = plan.changes.iter().map(|c| format!("{} {}", c.resource.kind, c.fields[0].path)).collect();
    assert_eq!(shown, ["kms:key alias"], "{plan}");
    eks.apply(&ctx, &s).await.unwrap();
    let keys: Vec<String> =
        fake.calls()[mark..].iter().filter(|c| c.contains("Key") || c.contains("Alias")).cloned().collect();
    assert_eq!(keys, ["CreateAlias"], "the existing key is aliased, none created or tagged");
    assert!(eks.plan(&ctx, &s).await.unwrap().is_empty());
}
