//! An existing VPC: checked, never changed or deleted.

use super::{
    BTreeSet, ExistingVpcSpec, Filter, NetChange, NetworkError, NetworkOutput, NetworkProvisioner, NetworkSpec,
    ObservedExisting, Result, SpecErrors, SubnetId, SubnetOutput, SubnetRole, Tags, k8s_subnet_tags,
};
use dify_stack_core::AwsAt;

impl NetworkProvisioner {
    pub(super) async fn observe_existing(&self, spec: &ExistingVpcSpec) -> Result<ObservedExisting> {
        let ids: Vec<String> =
            spec.private_subnet_ids.iter().chain(&spec.public_subnet_ids).map(|s| s.to_string()).collect();
        let (vpcs, subnets) = tokio::try_join!(
            async {
                self.client
                    .describe_vpcs(vec![Filter::new("vpc-id", [spec.vpc_id.as_str()])])
                    .await
                    .at("Describe", spec.vpc_id.as_str())
            },
            async { self.client.describe_subnets(vec![Filter::new("subnet-id", ids)]).await.at("Describe", "subnets") },
        )?;
        Ok(ObservedExisting { vpc: vpcs.into_iter().next(), subnets })
    }

    /// Checks an existing VPC against the spec: everything exists, belongs to the VPC, and the
    /// private subnets span at least 2 AZs.
    pub(super) fn check_existing(spec: &ExistingVpcSpec, observed: &ObservedExisting) -> Result<()> {
        let mut errors = SpecErrors::new();
        if observed.vpc.is_none() {
            errors.push(
                "existing.vpc_id",
                format!("VPC {} does not exist in this account and region", spec.vpc_id),
                "check the id and region",
            );
        }
        let mut private_azs = BTreeSet::new();
        for (field, ids) in
            [("private_subnet_ids", &spec.private_subnet_ids), ("public_subnet_ids", &spec.public_subnet_ids)]
        {
            for (i, id) in ids.iter().enumerate() {
                let path = format!("existing.{field}[{i}]");
                match observed.subnets.iter().find(|s| &s.id == id) {
                    None => errors.push(path, format!("subnet {id} does not exist"), "check the id and region"),
                    Some(s) if s.vpc_id != spec.vpc_id => errors.push(
                        path,
                        format!("subnet {id} belongs to {}, not {}", s.vpc_id, spec.vpc_id),
                        "list only subnets of existing.vpc_id",
                    ),
                    Some(s) => {
                        if field == "private_subnet_ids" {
                            private_azs.insert(s.az.clone());
                        }
                    }
                }
            }
        }
        if errors.is_empty() && private_azs.len() < 2 {
            errors.push(
                "existing.private_subnet_ids",
                format!("the private subnets span {} availability zone(s)", private_azs.len()),
                "add a private subnet in a second AZ (EKS requires 2)",
            );
        }
        if errors.is_empty() { Ok(()) } else { Err(NetworkError::ExistingVpc(errors)) }
    }

    /// The Kubernetes load balancer tags the listed subnets lack, when `tag_subnets` is set.
    pub(super) fn changes_existing(
        spec: &NetworkSpec,
        existing: &ExistingVpcSpec,
        obs: &ObservedExisting,
    ) -> Vec<NetChange> {
        let mut changes = Vec::new();
        if !existing.tag_subnets {
            return changes;
        }
        for (role, ids) in
            [(SubnetRole::Private, &existing.private_subnet_ids), (SubnetRole::Public, &existing.public_subnet_ids)]
        {
            for id in ids {
                if let Some(s) = obs.subnets.iter().find(|s| &s.id == id) {
                    let want = k8s_subnet_tags(role, &spec.cluster_name);
                    let tags = dify_stack_core::tag_drift(&want, &s.tags);
                    if !tags.is_empty() {
                        changes.push(NetChange::TagExistingSubnet { id: id.to_string(), tags });
                    }
                }
            }
        }
        changes
    }

    pub(super) fn existing_output(existing: &ExistingVpcSpec, obs: &ObservedExisting) -> Option<NetworkOutput> {
        let vpc = obs.vpc.clone()?;
        let out = |ids: &[SubnetId]| -> Vec<SubnetOutput> {
            ids.iter()
                .filter_map(|id| obs.subnets.iter().find(|s| &s.id == id))
                .map(|s| SubnetOutput { id: s.id.clone(), az: s.az.clone(), cidr: s.cidr.clone() })
                .collect()
        };
        Some(NetworkOutput {
            vpc_id: vpc.id,
            vpc_cidr: vpc.cidr,
            public_subnets: out(&existing.public_subnet_ids),
            private_subnets: out(&existing.private_subnet_ids),
            nat_gateways: Vec::new(),
            public_route_table: None,
            private_route_tables: Vec::new(),
            owned: false,
        })
    }

    pub(super) async fn apply_existing(&self, spec: &NetworkSpec, existing: &ExistingVpcSpec) -> Result<NetworkOutput> {
        let obs = self.observe_existing(existing).await?;
        Self::check_existing(existing, &obs)?;
        let changes = Self::changes_existing(spec, existing, &obs);
        self.execute_existing(existing, &obs, changes).await
    }

    /// Writes the subnet tags of `changes` (an existing VPC's only change) and returns the
    /// output of the checked observation.
    pub(super) async fn execute_existing(
        &self,
        existing: &ExistingVpcSpec,
        obs: &ObservedExisting,
        changes: Vec<NetChange>,
    ) -> Result<NetworkOutput> {
        for change in changes {
            let NetChange::TagExistingSubnet { id, tags } = change else { continue };
            let tags: Tags = dify_stack_core::drift_tags(&tags);
            self.client.create_tags(vec![id.clone()], tags).await.at("Tag", id)?;
        }
        Ok(Self::existing_output(existing, obs).expect("the VPC was checked to exist"))
    }
}
