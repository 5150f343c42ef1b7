//! The security-group controls (EC2.1 and EC2.2 of the facade's report). They span the tiers (the
//! node group's, the cluster's and the three stores' groups), so the facade says which groups
//! play which part ([`GroupRoles`]); the read goes through this tier's EC2 client, which lists
//! groups by the ownership tag, and the verdicts are pure functions of what it read.

use std::collections::BTreeSet;

use dify_stack_core::audit::{Verdict, Verdicts};
use dify_stack_core::{AwsError, Context};

use crate::client::{Ec2Api, Filter, SecurityGroupInfo};

/// Which of the stack's security groups play which part, from the other tiers.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GroupRoles {
    /// Ids of the groups the stores admit: the cluster's own security group (EKS made it).
    pub cluster_group_ids: BTreeSet<String>,
    /// Name of the node security group (its id is looked up among the stack's groups).
    pub node_group_name: String,
    /// The stores' security groups by name, each with the one port it should admit.
    pub stores: Vec<(String, i32)>,
}

/// Lists the stack's security groups (ownership tag, re-checked: not every API honours tag
/// filters) and checks them.
pub async fn audit<C: Ec2Api + ?Sized>(ctx: &Context, client: &C, roles: &GroupRoles) -> Result<Verdicts, AwsError> {
    let (key, value) = ctx.ownership_filter();
    let groups = client.describe_security_groups(vec![Filter::new(key, [value])]).await?;
    let ours: Vec<SecurityGroupInfo> = groups.into_iter().filter(|g| ctx.owns_tags(&g.tags)).collect();
    Ok(security_groups(&ours, roles))
}

/// EC2.1 (no group of the stack admits the internet) and EC2.2 (the stores admit only the
/// cluster's and the nodes' groups, on their own port).
pub fn security_groups(ours: &[SecurityGroupInfo], roles: &GroupRoles) -> Verdicts {
    let open: Vec<&str> = ours
        .iter()
        .filter(|g| g.ingress.iter().any(|(_, _, _, source)| source == "0.0.0.0/0" || source == "::/0"))
        .map(|g| g.name.as_str())
        .collect();
    let ec2_1 = if ours.is_empty() {
        Verdict::missing("the stack's security groups")
    } else {
        Verdict::check(open.is_empty(), || format!("open to the internet: {open:?}"))
    };
    let mut admitted = roles.cluster_group_ids.clone();
    admitted.extend(ours.iter().filter(|g| g.name == roles.node_group_name).map(|g| g.id.to_string()));
    let (mut strays, mut absent) = (Vec::new(), Vec::new());
    for (name, port) in &roles.stores {
        let Some(g) = ours.iter().find(|g| &g.name == name) else {
            absent.push(name.clone());
            continue;
        };
        for (_, from, to, source) in &g.ingress {
            let from_a_cluster_group = source.starts_with("sg-") && admitted.contains(source);
            if !(from_a_cluster_group && from == port && to == port) {
                strays.push(format!("{name}: {source} on {from}-{to}"));
            }
        }
    }
    let ec2_2 = if absent.is_empty() {
        Verdict::check(strays.is_empty(), || strays.join("; "))
    } else {
        Verdict::missing(&format!("the datastore security groups {absent:?}"))
    };
    vec![("EC2.1", ec2_1), ("EC2.2", ec2_2)]
}

#[cfg(test)]
mod tests {
    use dify_stack_core::ids::SecurityGroupId;

    use super::*;

    fn group(id: &str, name: &str, ingress: &[(i32, &str)]) -> SecurityGroupInfo {
        SecurityGroupInfo {
            id: SecurityGroupId::new(id),
            name: name.into(),
            tags: Default::default(),
            ingress: ingress.iter().map(|(port, src)| ("tcp".to_owned(), *port, *port, (*src).to_owned())).collect(),
        }
    }

    fn failed(v: &Verdicts) -> Vec<&'static str> {
        v.iter().filter(|(_, v)| matches!(v, Verdict::Fail(_))).map(|(id, _)| *id).collect()
    }

    #[test]
    fn stores_admit_only_the_cluster_groups_on_their_port_and_nothing_admits_the_internet() {
        let roles = GroupRoles {
            cluster_group_ids: ["sg-cluster".to_owned()].into(),
            node_group_name: "s-eks-nodes".into(),
            stores: vec![("s-redis".into(), 6379), ("s-aurora".into(), 5432)],
        };
        let nodes = group("sg-nodes", "s-eks-nodes", &[]);
        let good = vec![
            nodes.clone(),
            group("sg-r", "s-redis", &[(6379, "sg-nodes"), (6379, "sg-cluster")]),
            group("sg-a", "s-aurora", &[(5432, "sg-nodes")]),
        ];
        assert!(failed(&security_groups(&good, &roles)).is_empty());
        let wrong_port = vec![nodes.clone(), group("sg-r", "s-redis", &[(5432, "sg-nodes")]), good[2].clone()];
        assert_eq!(failed(&security_groups(&wrong_port, &roles)), ["EC2.2"]);
        let stranger = vec![nodes.clone(), group("sg-r", "s-redis", &[(6379, "sg-other")]), good[2].clone()];
        assert_eq!(failed(&security_groups(&stranger, &roles)), ["EC2.2"]);
        let cidr = vec![nodes.clone(), group("sg-r", "s-redis", &[(6379, "10.0.0.0/16")]), good[2].clone()];
        assert_eq!(failed(&security_groups(&cidr, &roles)), ["EC2.2"]);
        let open6 = vec![group("sg-nodes", "s-eks-nodes", &[(443, "::/0")]), good[1].clone(), good[2].clone()];
        assert_eq!(failed(&security_groups(&open6, &roles)), ["EC2.1"]);
        let one_store = vec![nodes, good[1].clone()];
        assert_eq!(failed(&security_groups(&one_store, &roles)), ["EC2.2"], "the Aurora group is missing");
        assert_eq!(failed(&security_groups(&[], &roles)), ["EC2.1", "EC2.2"]);
    }
}
