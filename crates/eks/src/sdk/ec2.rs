//! EC2: the node security group and launch template; volumes, snapshots, network interfaces and
//! tagged leftovers at destroy.

use super::{
    AwsError, Ec2Api, LaunchTemplateData, LaunchTemplateInfo, NetworkInterfaceInfo, ResourceType, SdkEks,
    SecurityGroupInfo, SnapshotInfo, TaggedResource, Tags, VolumeInfo, async_trait, found, lt_data, lt_request, shared,
};
use dify_stack_core::AwsResultExt;
use dify_stack_core::ids::{SecurityGroupId, VpcId};

#[async_trait]
impl Ec2Api for SdkEks {
    async fn find_security_group(&self, vpc_id: VpcId, name: String) -> Result<Option<SecurityGroupInfo>, AwsError> {
        Ok(shared::ec2::find_security_group(&self.ec2, vpc_id.as_str(), &name).await?.map(|g| SecurityGroupInfo {
            id: SecurityGroupId::new(g.group_id().unwrap_or_default()),
            name: g.group_name().unwrap_or_default().to_owned(),
            tags: shared::ec2::tags_of(g.tags()),
        }))
    }

    async fn create_security_group(
        &self,
        vpc_id: VpcId,
        name: String,
        description: String,
        tags: Tags,
    ) -> Result<SecurityGroupId, AwsError> {
        shared::ec2::create_security_group(&self.ec2, vpc_id.as_str(), &name, &description, &tags).await.map(Into::into)
    }

    async fn delete_security_group(&self, id: SecurityGroupId) -> Result<(), AwsError> {
        shared::ec2::delete_security_group(&self.ec2, id.as_str()).await
    }

    async fn tag_security_group(&self, id: SecurityGroupId, tags: Tags) -> Result<(), AwsError> {
        shared::ec2::create_tags(&self.ec2, vec![id.into_inner()], &tags).await
    }

    async fn find_launch_template(&self, name: String) -> Result<Option<LaunchTemplateInfo>, AwsError> {
        let out = found(
            self.ec2
                .describe_launch_templates()
                .launch_template_names(&name)
                .send()
                .await
                .aws("DescribeLaunchTemplates"),
        )?;
        let Some(lt) = out.as_ref().and_then(|o| o.launch_templates().first()) else { return Ok(None) };
        let id = lt.launch_template_id().unwrap_or_default().to_owned();
        let versions = self
            .ec2
            .describe_launch_template_versions()
            .launch_template_id(&id)
            .versions("$Latest")
            .send()
            .await
            .aws("DescribeLaunchTemplateVersions")?;
        let data = versions
            .launch_template_versions()
            .first()
            .and_then(|v| v.launch_template_data())
            .map(lt_data)
            .unwrap_or_default();
        Ok(Some(LaunchTemplateInfo {
            id,
            name: lt.launch_template_name().unwrap_or_default().to_owned(),
            latest_version: lt.latest_version_number().unwrap_or(1),
            data,
            tags: shared::ec2::tags_of(lt.tags()),
        }))
    }

    async fn create_launch_template(
        &self,
        name: String,
        data: LaunchTemplateData,
        tags: Tags,
    ) -> Result<LaunchTemplateInfo, AwsError> {
        let out = self
            .ec2
            .create_launch_template()
            .launch_template_name(&name)
            .launch_template_data(lt_request(&data))
            .tag_specifications(shared::ec2::tag_spec(ResourceType::LaunchTemplate, &tags))
            .send()
            .await
            .aws("CreateLaunchTemplate")?;
        let lt = out.launch_template();
        Ok(LaunchTemplateInfo {
            id: lt.and_then(|l| l.launch_template_id()).unwrap_or_default().to_owned(),
            name,
            latest_version: lt.and_then(|l| l.latest_version_number()).unwrap_or(1),
            data,
            tags,
        })
    }

    async fn update_launch_template(&self, id: String, data: LaunchTemplateData) -> Result<i64, AwsError> {
        let out = self
            .ec2
            .create_launch_template_version()
            .launch_template_id(&id)
            .launch_template_data(lt_request(&data))
            .send()
            .await
            .aws("CreateLaunchTemplateVersion")?;
        let version = out.launch_template_version().and_then(|v| v.version_number()).unwrap_or(1);
        self.ec2
            .modify_launch_template()
            .launch_template_id(id)
            .default_version(version.to_string())
            .send()
            .await
            .aws("ModifyLaunchTemplate")?;
        Ok(version)
    }

    async fn delete_launch_template(&self, id: String) -> Result<(), AwsError> {
        self.ec2.delete_launch_template().launch_template_id(id).send().await.aws("DeleteLaunchTemplate")?;
        Ok(())
    }

    async fn tagged_volumes(&self, key: String, value: String) -> Result<Vec<VolumeInfo>, AwsError> {
        let volumes: Vec<_> = self
            .ec2
            .describe_volumes()
            .filters(filter(&format!("tag:{key}"), [value]))
            .into_paginator()
            .items()
            .send()
            .collect::<Result<Vec<_>, _>>()
            .await
            .aws("DescribeVolumes")?;
        Ok(volumes
            .iter()
            .map(|v| VolumeInfo {
                id: v.volume_id().unwrap_or_default().to_owned(),
                state: v.state().map(|s| s.as_str().to_owned()).unwrap_or_default(),
                size_gib: v.size().unwrap_or_default(),
                attached_to: v.attachments().iter().filter_map(|a| a.instance_id().map(str::to_owned)).collect(),
                tags: shared::ec2::tags_of(v.tags()),
            })
            .collect())
    }

    async fn delete_volume(&self, id: String) -> Result<(), AwsError> {
        self.ec2.delete_volume().volume_id(id).send().await.aws("DeleteVolume")?;
        Ok(())
    }

    async fn tagged_snapshots(&self, key: String, value: String) -> Result<Vec<SnapshotInfo>, AwsError> {
        let snapshots: Vec<_> = self
            .ec2
            .describe_snapshots()
            .owner_ids("self")
            .filters(filter(&format!("tag:{key}"), [value]))
            .into_paginator()
            .items()
            .send()
            .collect::<Result<Vec<_>, _>>()
            .await
            .aws("DescribeSnapshots")?;
        Ok(snapshots
            .iter()
            .map(|s| SnapshotInfo {
                id: s.snapshot_id().unwrap_or_default().to_owned(),
                state: s.state().map(|s| s.as_str().to_owned()).unwrap_or_default(),
                volume_id: s.volume_id().unwrap_or_default().to_owned(),
                size_gib: s.volume_size().unwrap_or_default(),
                tags: shared::ec2::tags_of(s.tags()),
            })
            .collect())
    }

    async fn delete_snapshot(&self, id: String) -> Result<(), AwsError> {
        self.ec2.delete_snapshot().snapshot_id(id).send().await.aws("DeleteSnapshot")?;
        Ok(())
    }

    async fn vpc_network_interfaces(&self, vpc_id: VpcId) -> Result<Vec<NetworkInterfaceInfo>, AwsError> {
        let enis: Vec<_> = self
            .ec2
            .describe_network_interfaces()
            .filters(filter("vpc-id", [vpc_id.into_inner()]))
            .into_paginator()
            .items()
            .send()
            .collect::<Result<Vec<_>, _>>()
            .await
            .aws("DescribeNetworkInterfaces")?;
        Ok(enis
            .iter()
            .map(|e| NetworkInterfaceInfo {
                id: e.network_interface_id().unwrap_or_default().to_owned(),
                status: e.status().map(|s| s.as_str().to_owned()).unwrap_or_default(),
                description: e.description().unwrap_or_default().to_owned(),
                subnet_id: e.subnet_id().unwrap_or_default().to_owned(),
                group_ids: e.groups().iter().filter_map(|g| g.group_id().map(str::to_owned)).collect(),
                tags: shared::ec2::tags_of(e.tag_set()),
            })
            .collect())
    }

    async fn delete_network_interface(&self, id: String) -> Result<(), AwsError> {
        self.ec2.delete_network_interface().network_interface_id(id).send().await.aws("DeleteNetworkInterface")?;
        Ok(())
    }

    async fn tagged_resources(&self, keys: Vec<String>) -> Result<Vec<TaggedResource>, AwsError> {
        let by_key = || filter("tag-key", keys.clone());
        let mut out = Vec::new();
        let mut push = |kind: &str, id: Option<&str>, tags: &[aws_sdk_ec2::types::Tag]| {
            out.push(TaggedResource {
                kind: kind.to_owned(),
                id: id.unwrap_or_default().to_owned(),
                tags: shared::ec2::tags_of(tags),
            })
        };
        macro_rules! pages {
            ($call:ident, $op:literal) => {
                pages!($call, filters, $op)
            };
            ($call:ident, $filters:ident, $op:literal) => {
                self.ec2
                    .$call()
                    .$filters(by_key())
                    .into_paginator()
                    .items()
                    .send()
                    .collect::<Result<Vec<_>, _>>()
                    .await
                    .aws($op)?
            };
        }
        for v in pages!(describe_volumes, "DescribeVolumes") {
            // `deleting` is on its way out (EC2 API reference, Volume.State).
            if !matches!(v.state().map(|s| s.as_str()), Some("deleting" | "deleted")) {
                push("ec2:volume", v.volume_id(), v.tags());
            }
        }
        let snapshots: Vec<_> = self
            .ec2
            .describe_snapshots()
            .owner_ids("self")
            .filters(by_key())
            .into_paginator()
            .items()
            .send()
            .collect::<Result<Vec<_>, _>>()
            .await
            .aws("DescribeSnapshots")?;
        for s in &snapshots {
            push("ec2:snapshot", s.snapshot_id(), s.tags());
        }
        for e in pages!(describe_network_interfaces, "DescribeNetworkInterfaces") {
            push("ec2:network-interface", e.network_interface_id(), e.tag_set());
        }
        for g in pages!(describe_security_groups, "DescribeSecurityGroups") {
            push("ec2:security-group", g.group_id(), g.tags());
        }
        for r in pages!(describe_instances, "DescribeInstances") {
            for i in r.instances() {
                // Terminated instances stay listed for about an hour (EC2 user guide, "Terminate
                // Amazon EC2 instances": "the instance remains visible ... for a short while").
                let state = i.state().and_then(|s| s.name()).map(|n| n.as_str());
                if !matches!(state, Some("shutting-down" | "terminated")) {
                    push("ec2:instance", i.instance_id(), i.tags());
                }
            }
        }
        for t in pages!(describe_launch_templates, "DescribeLaunchTemplates") {
            push("ec2:launch-template", t.launch_template_id(), t.tags());
        }
        for v in pages!(describe_vpcs, "DescribeVpcs") {
            push("ec2:vpc", v.vpc_id(), v.tags());
        }
        for s in pages!(describe_subnets, "DescribeSubnets") {
            push("ec2:subnet", s.subnet_id(), s.tags());
        }
        for t in pages!(describe_route_tables, "DescribeRouteTables") {
            push("ec2:route-table", t.route_table_id(), t.tags());
        }
        for g in pages!(describe_internet_gateways, "DescribeInternetGateways") {
            push("ec2:internet-gateway", g.internet_gateway_id(), g.tags());
        }
        for n in pages!(describe_nat_gateways, filter, "DescribeNatGateways") {
            // A deleted NAT gateway stays listed for about an hour (VPC user guide, "Delete a
            // NAT gateway").
            if !matches!(n.state().map(|s| s.as_str()), Some("deleting" | "deleted")) {
                push("ec2:nat-gateway", n.nat_gateway_id(), n.tags());
            }
        }
        let addresses = self.ec2.describe_addresses().filters(by_key()).send().await.aws("DescribeAddresses")?;
        for a in addresses.addresses() {
            push("ec2:elastic-ip", a.allocation_id().or(a.public_ip()), a.tags());
        }
        Ok(out)
    }
}

fn filter<I: IntoIterator<Item = String>>(name: &str, values: I) -> aws_sdk_ec2::types::Filter {
    aws_sdk_ec2::types::Filter::builder().name(name).set_values(Some(values.into_iter().collect())).build()
}
