//! The EC2 client over the AWS SDK: the only code of the tier that builds SDK requests.

use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_ec2::Client;
use aws_sdk_ec2::types::{
    AttributeBooleanValue, DomainType, Filter as SdkFilter, NatGatewayState, ResourceType, Tag, VpcAttributeName,
};
use dify_stack_core::ids::{
    AllocationId, InternetGatewayId, NatGatewayId, RouteTableId, SecurityGroupId, SubnetId, VpcId,
};
use dify_stack_core::{AwsError, AwsResultExt, Tags};

use crate::client::*;

mod convert;
use convert::*;

/// The real EC2 client.
#[derive(Debug, Clone)]
pub struct SdkEc2 {
    client: Client,
}

impl SdkEc2 {
    /// Wraps an SDK client.
    pub fn new(client: Client) -> SdkEc2 {
        SdkEc2 { client }
    }

    /// Builds a client from shared SDK configuration.
    pub fn from_conf(config: &aws_types::SdkConfig) -> SdkEc2 {
        SdkEc2 { client: Client::new(config) }
    }
}

/// The pauses between the NAT gateway waits' polls: the first [`NAT_POLL_FIRST`], each next one
/// [`next_nat_poll`] of the last. Public so that a fake of the client (the benchmark's) waits
/// on the same schedule.
pub const NAT_POLL_FIRST: Duration = Duration::from_millis(100);
/// The longest pause between two polls of a NAT gateway wait.
pub const NAT_POLL_MAX: Duration = Duration::from_secs(15);

/// The pause after `delay`: doubled, at most [`NAT_POLL_MAX`].
pub fn next_nat_poll(delay: Duration) -> Duration {
    (delay * 2).min(NAT_POLL_MAX)
}

impl SdkEc2 {
    /// Polls DescribeNatGateways until `done` holds, for at most `max_wait`: first after 0.1 s,
    /// then doubling to 15 s ([`next_nat_poll`]). (The SDK waiters wait at least 15 s between
    /// polls; a NAT gateway takes one to three minutes on AWS, so early polls end the wait
    /// sooner at a cost of a few reads.) `Ok(false)` when `max_wait` passed first.
    async fn poll_nats(
        &self,
        ids: Vec<NatGatewayId>,
        max_wait: Duration,
        done: impl Fn(&[NatInfo], &[NatGatewayId]) -> Result<bool, AwsError>,
    ) -> Result<bool, AwsError> {
        let deadline = tokio::time::Instant::now() + max_wait;
        let mut delay = NAT_POLL_FIRST;
        loop {
            let filter = Filter::new("nat-gateway-id", ids.iter().map(NatGatewayId::as_str));
            let found = self.describe_nat_gateways(vec![filter]).await?;
            if done(&found, &ids)? {
                return Ok(true);
            }
            let now = tokio::time::Instant::now();
            if now >= deadline {
                return Ok(false);
            }
            tokio::time::sleep(delay.min(deadline - now)).await;
            delay = next_nat_poll(delay);
        }
    }
}

#[async_trait]
impl Ec2Api for SdkEc2 {
    async fn describe_zones(&self) -> Result<Vec<ZoneInfo>, AwsError> {
        let out = self.client.describe_availability_zones().send().await.aws("DescribeAvailabilityZones")?;
        Ok(out
            .availability_zones()
            .iter()
            .map(|z| ZoneInfo {
                name: z.zone_name().unwrap_or_default().to_owned(),
                id: z.zone_id().unwrap_or_default().to_owned(),
                available: z.state().map(|s| s.as_str() == "available").unwrap_or(false),
                zone_type: z.zone_type().unwrap_or("availability-zone").to_owned(),
            })
            .collect())
    }

    async fn instance_type_zone_ids(&self, instance_type: String) -> Result<Vec<String>, AwsError> {
        let offerings: Vec<_> = self
            .client
            .describe_instance_type_offerings()
            .location_type(aws_sdk_ec2::types::LocationType::AvailabilityZoneId)
            .filters(aws_sdk_ec2::types::Filter::builder().name("instance-type").values(instance_type).build())
            .into_paginator()
            .items()
            .send()
            .collect::<Result<Vec<_>, _>>()
            .await
            .aws("DescribeInstanceTypeOfferings")?;
        Ok(offerings.iter().filter_map(|o| o.location().map(str::to_owned)).collect())
    }

    async fn describe_vpcs(&self, filters: Vec<Filter>) -> Result<Vec<VpcInfo>, AwsError> {
        let out = self.client.describe_vpcs().set_filters(sdk_filters(filters)).send().await.aws("DescribeVpcs")?;
        Ok(out.vpcs().iter().map(vpc_info).collect())
    }

    async fn describe_vpc_dns(&self, vpc: VpcId) -> Result<DnsAttributes, AwsError> {
        let ask = |attr| self.client.describe_vpc_attribute().vpc_id(vpc.as_str()).attribute(attr).send();
        let (support, hostnames) =
            tokio::try_join!(ask(VpcAttributeName::EnableDnsSupport), ask(VpcAttributeName::EnableDnsHostnames))
                .aws("DescribeVpcAttribute")?;
        Ok(DnsAttributes {
            support: support.enable_dns_support().and_then(|v| v.value()).unwrap_or(false),
            hostnames: hostnames.enable_dns_hostnames().and_then(|v| v.value()).unwrap_or(false),
        })
    }

    async fn describe_subnets(&self, filters: Vec<Filter>) -> Result<Vec<SubnetInfo>, AwsError> {
        let out =
            self.client.describe_subnets().set_filters(sdk_filters(filters)).send().await.aws("DescribeSubnets")?;
        Ok(out.subnets().iter().map(subnet_info).collect())
    }

    async fn describe_internet_gateways(&self, filters: Vec<Filter>) -> Result<Vec<IgwInfo>, AwsError> {
        let out = self
            .client
            .describe_internet_gateways()
            .set_filters(sdk_filters(filters))
            .send()
            .await
            .aws("DescribeInternetGateways")?;
        Ok(out.internet_gateways().iter().map(igw_info).collect())
    }

    async fn describe_addresses(&self, filters: Vec<Filter>) -> Result<Vec<AddressInfo>, AwsError> {
        let out =
            self.client.describe_addresses().set_filters(sdk_filters(filters)).send().await.aws("DescribeAddresses")?;
        Ok(out
            .addresses()
            .iter()
            .map(|a| AddressInfo {
                allocation_id: AllocationId::new(a.allocation_id().unwrap_or_default()),
                public_ip: a.public_ip().map(str::to_owned),
                association_id: a.association_id().map(str::to_owned),
                tags: tags_of(a.tags()),
            })
            .collect())
    }

    async fn describe_nat_gateways(&self, filters: Vec<Filter>) -> Result<Vec<NatInfo>, AwsError> {
        let out = self
            .client
            .describe_nat_gateways()
            .set_filter(sdk_filters(filters))
            .send()
            .await
            .aws("DescribeNatGateways")?;
        Ok(out.nat_gateways().iter().map(nat_info).collect())
    }

    async fn describe_route_tables(&self, filters: Vec<Filter>) -> Result<Vec<RouteTableInfo>, AwsError> {
        let out = self
            .client
            .describe_route_tables()
            .set_filters(sdk_filters(filters))
            .send()
            .await
            .aws("DescribeRouteTables")?;
        Ok(out.route_tables().iter().map(route_table_info).collect())
    }

    async fn describe_network_interfaces(&self, filters: Vec<Filter>) -> Result<Vec<EniInfo>, AwsError> {
        let out = self
            .client
            .describe_network_interfaces()
            .set_filters(sdk_filters(filters))
            .send()
            .await
            .aws("DescribeNetworkInterfaces")?;
        Ok(out
            .network_interfaces()
            .iter()
            .map(|n| EniInfo {
                id: n.network_interface_id().unwrap_or_default().to_owned(),
                attached: n.attachment().is_some_and(|a| a.attachment_id().is_some()),
                group_ids: n.groups().iter().filter_map(|g| g.group_id()).map(SecurityGroupId::new).collect(),
                tags: tags_of(n.tag_set()),
                subnet_id: n.subnet_id().map(SubnetId::new),
                status: n.status().map(|s| s.as_str().to_owned()).unwrap_or_default(),
                attachment_status: n.attachment().and_then(|a| a.status()).map(|s| s.as_str().to_owned()),
                requester_managed: n.requester_managed().unwrap_or(false),
                interface_type: n.interface_type().map(|t| t.as_str().to_owned()).unwrap_or_default(),
                description: n.description().unwrap_or_default().to_owned(),
                public_ip: n.association().and_then(|a| a.public_ip()).map(str::to_owned),
            })
            .collect())
    }

    async fn describe_security_groups(&self, filters: Vec<Filter>) -> Result<Vec<SecurityGroupInfo>, AwsError> {
        let out = self
            .client
            .describe_security_groups()
            .set_filters(sdk_filters(filters))
            .send()
            .await
            .aws("DescribeSecurityGroups")?;
        Ok(out
            .security_groups()
            .iter()
            .map(|g| SecurityGroupInfo {
                id: SecurityGroupId::new(g.group_id().unwrap_or_default()),
                name: g.group_name().unwrap_or_default().to_owned(),
                tags: tags_of(g.tags()),
                ingress: dify_stack_aws::ec2::ingress_rules(g),
            })
            .collect())
    }

    async fn elastic_ip_quota(&self) -> Result<Option<u32>, AwsError> {
        // Asked without `AttributeName`: the API reference lists only `supported-platforms` and
        // `default-vpc` as valid names to ask for, while every attribute, `vpc-max-elastic-ips`
        // ("the maximum number of Elastic IP addresses that you can allocate") among them, comes
        // back when none is named (EC2 API reference, DescribeAccountAttributes).
        let out = self.client.describe_account_attributes().send().await.aws("DescribeAccountAttributes")?;
        Ok(out
            .account_attributes()
            .iter()
            .find(|a| a.attribute_name() == Some(crate::preflight::EIP_QUOTA_ATTRIBUTE))
            .and_then(|a| a.attribute_values().first())
            .and_then(|v| v.attribute_value())
            .and_then(|v| v.trim().parse().ok()))
    }

    async fn subnet_capacity(&self, ids: Vec<SubnetId>) -> Result<Vec<SubnetCapacity>, AwsError> {
        let out = self
            .client
            .describe_subnets()
            .set_subnet_ids(Some(ids.iter().map(|i| i.as_str().to_owned()).collect()))
            .send()
            .await
            .aws("DescribeSubnets")?;
        Ok(out
            .subnets()
            .iter()
            .map(|s| SubnetCapacity {
                id: SubnetId::new(s.subnet_id().unwrap_or_default()),
                az: s.availability_zone().unwrap_or_default().to_owned(),
                cidr: s.cidr_block().unwrap_or_default().to_owned(),
                available: u32::try_from(s.available_ip_address_count().unwrap_or(0)).unwrap_or(0),
            })
            .collect())
    }

    async fn create_vpc(&self, cidr: String, tags: Tags) -> Result<VpcInfo, AwsError> {
        let out = self
            .client
            .create_vpc()
            .cidr_block(cidr)
            .tag_specifications(tag_spec(ResourceType::Vpc, &tags))
            .send()
            .await
            .aws("CreateVpc")?;
        out.vpc().map(vpc_info).ok_or_else(|| AwsError::new("CreateVpc", "EmptyResponse", "no VPC in the response"))
    }

    async fn set_vpc_dns(&self, vpc: VpcId, support: Option<bool>, hostnames: Option<bool>) -> Result<(), AwsError> {
        // EC2 takes one attribute per ModifyVpcAttribute call; DNS support must be on before
        // hostnames can be turned on.
        if let Some(v) = support {
            self.client
                .modify_vpc_attribute()
                .vpc_id(vpc.as_str())
                .enable_dns_support(AttributeBooleanValue::builder().value(v).build())
                .send()
                .await
                .aws("ModifyVpcAttribute")?;
        }
        if let Some(v) = hostnames {
            self.client
                .modify_vpc_attribute()
                .vpc_id(vpc.as_str())
                .enable_dns_hostnames(AttributeBooleanValue::builder().value(v).build())
                .send()
                .await
                .aws("ModifyVpcAttribute")?;
        }
        Ok(())
    }

    async fn create_subnet(&self, vpc: VpcId, cidr: String, az: String, tags: Tags) -> Result<SubnetInfo, AwsError> {
        let out = self
            .client
            .create_subnet()
            .vpc_id(vpc.as_str())
            .cidr_block(cidr)
            .availability_zone(az)
            .tag_specifications(tag_spec(ResourceType::Subnet, &tags))
            .send()
            .await
            .aws("CreateSubnet")?;
        out.subnet()
            .map(subnet_info)
            .ok_or_else(|| AwsError::new("CreateSubnet", "EmptyResponse", "no subnet in the response"))
    }

    async fn create_tags(&self, resources: Vec<String>, tags: Tags) -> Result<(), AwsError> {
        dify_stack_aws::ec2::create_tags(&self.client, resources, &tags).await
    }

    async fn delete_tags(&self, resources: Vec<String>, keys: Vec<String>) -> Result<(), AwsError> {
        self.client
            .delete_tags()
            .set_resources(Some(resources))
            .set_tags(Some(keys.into_iter().map(|k| Tag::builder().key(k).build()).collect()))
            .send()
            .await
            .aws("DeleteTags")?;
        Ok(())
    }

    async fn create_internet_gateway(&self, tags: Tags) -> Result<IgwInfo, AwsError> {
        let out = self
            .client
            .create_internet_gateway()
            .tag_specifications(tag_spec(ResourceType::InternetGateway, &tags))
            .send()
            .await
            .aws("CreateInternetGateway")?;
        out.internet_gateway()
            .map(igw_info)
            .ok_or_else(|| AwsError::new("CreateInternetGateway", "EmptyResponse", "no gateway in the response"))
    }

    async fn attach_internet_gateway(&self, igw: InternetGatewayId, vpc: VpcId) -> Result<(), AwsError> {
        self.client
            .attach_internet_gateway()
            .internet_gateway_id(igw.as_str())
            .vpc_id(vpc.as_str())
            .send()
            .await
            .aws("AttachInternetGateway")?;
        Ok(())
    }

    async fn detach_internet_gateway(&self, igw: InternetGatewayId, vpc: VpcId) -> Result<(), AwsError> {
        self.client
            .detach_internet_gateway()
            .internet_gateway_id(igw.as_str())
            .vpc_id(vpc.as_str())
            .send()
            .await
            .aws("DetachInternetGateway")?;
        Ok(())
    }

    async fn delete_internet_gateway(&self, igw: InternetGatewayId) -> Result<(), AwsError> {
        self.client
            .delete_internet_gateway()
            .internet_gateway_id(igw.as_str())
            .send()
            .await
            .aws("DeleteInternetGateway")?;
        Ok(())
    }

    async fn allocate_address(&self, tags: Tags) -> Result<AddressInfo, AwsError> {
        let out = self
            .client
            .allocate_address()
            .domain(DomainType::Vpc)
            .tag_specifications(tag_spec(ResourceType::ElasticIp, &tags))
            .send()
            .await
            .aws("AllocateAddress")?;
        Ok(AddressInfo {
            allocation_id: AllocationId::new(out.allocation_id().unwrap_or_default()),
            public_ip: out.public_ip().map(str::to_owned),
            association_id: None,
            tags,
        })
    }

    async fn release_address(&self, allocation: AllocationId) -> Result<(), AwsError> {
        self.client.release_address().allocation_id(allocation.as_str()).send().await.aws("ReleaseAddress")?;
        Ok(())
    }

    async fn create_nat_gateway(
        &self,
        subnet: SubnetId,
        allocation: AllocationId,
        client_token: String,
        tags: Tags,
    ) -> Result<NatInfo, AwsError> {
        let out = self
            .client
            .create_nat_gateway()
            .subnet_id(subnet.as_str())
            .allocation_id(allocation.as_str())
            .client_token(client_token)
            .tag_specifications(tag_spec(ResourceType::Natgateway, &tags))
            .send()
            .await
            .aws("CreateNatGateway")?;
        out.nat_gateway()
            .map(nat_info)
            .ok_or_else(|| AwsError::new("CreateNatGateway", "EmptyResponse", "no NAT gateway in the response"))
    }

    async fn delete_nat_gateway(&self, nat: NatGatewayId) -> Result<(), AwsError> {
        self.client.delete_nat_gateway().nat_gateway_id(nat.as_str()).send().await.aws("DeleteNatGateway")?;
        Ok(())
    }

    async fn wait_nat_gateways_available(&self, ids: Vec<NatGatewayId>, max_wait: Duration) -> Result<bool, AwsError> {
        self.poll_nats(ids, max_wait, |found, ids| {
            if let Some(failed) = found.iter().find(|n| n.state == NatState::Failed) {
                return Err(AwsError::new(
                    "DescribeNatGateways",
                    "NatGatewayFailed",
                    format!("NAT gateway {} failed", failed.id),
                ));
            }
            Ok(ids.iter().all(|id| found.iter().any(|n| &n.id == id && n.state == NatState::Available)))
        })
        .await
    }

    async fn wait_nat_gateways_deleted(&self, ids: Vec<NatGatewayId>, max_wait: Duration) -> Result<bool, AwsError> {
        self.poll_nats(ids, max_wait, |found, ids| {
            Ok(ids.iter().all(|id| found.iter().all(|n| &n.id != id || n.state == NatState::Deleted)))
        })
        .await
    }

    async fn create_route_table(&self, vpc: VpcId, tags: Tags) -> Result<RouteTableInfo, AwsError> {
        let out = self
            .client
            .create_route_table()
            .vpc_id(vpc.as_str())
            .tag_specifications(tag_spec(ResourceType::RouteTable, &tags))
            .send()
            .await
            .aws("CreateRouteTable")?;
        out.route_table()
            .map(route_table_info)
            .ok_or_else(|| AwsError::new("CreateRouteTable", "EmptyResponse", "no route table in the response"))
    }

    async fn create_route(
        &self,
        table: RouteTableId,
        destination: String,
        target: RouteTarget,
    ) -> Result<(), AwsError> {
        let req = self.client.create_route().route_table_id(table.as_str()).destination_cidr_block(destination);
        let req = match target {
            RouteTarget::Gateway(id) => req.gateway_id(id.into_inner()),
            RouteTarget::NatGateway(id) => req.nat_gateway_id(id.into_inner()),
            RouteTarget::Local | RouteTarget::Other(_) => {
                return Err(AwsError::new("CreateRoute", "UnsupportedTarget", "only IGW and NAT targets are created"));
            }
        };
        req.send().await.aws("CreateRoute")?;
        Ok(())
    }

    async fn replace_route(
        &self,
        table: RouteTableId,
        destination: String,
        target: RouteTarget,
    ) -> Result<(), AwsError> {
        let req = self.client.replace_route().route_table_id(table.as_str()).destination_cidr_block(destination);
        let req = match target {
            RouteTarget::Gateway(id) => req.gateway_id(id.into_inner()),
            RouteTarget::NatGateway(id) => req.nat_gateway_id(id.into_inner()),
            RouteTarget::Local | RouteTarget::Other(_) => {
                return Err(AwsError::new("ReplaceRoute", "UnsupportedTarget", "only IGW and NAT targets are set"));
            }
        };
        req.send().await.aws("ReplaceRoute")?;
        Ok(())
    }

    async fn associate_route_table(&self, table: RouteTableId, subnet: SubnetId) -> Result<String, AwsError> {
        let out = self
            .client
            .associate_route_table()
            .route_table_id(table.as_str())
            .subnet_id(subnet.as_str())
            .send()
            .await
            .aws("AssociateRouteTable")?;
        Ok(out.association_id().unwrap_or_default().to_owned())
    }

    async fn replace_route_table_association(
        &self,
        association: String,
        table: RouteTableId,
    ) -> Result<String, AwsError> {
        let out = self
            .client
            .replace_route_table_association()
            .association_id(association)
            .route_table_id(table.as_str())
            .send()
            .await
            .aws("ReplaceRouteTableAssociation")?;
        Ok(out.new_association_id().unwrap_or_default().to_owned())
    }

    async fn disassociate_route_table(&self, association: String) -> Result<(), AwsError> {
        self.client
            .disassociate_route_table()
            .association_id(association)
            .send()
            .await
            .aws("DisassociateRouteTable")?;
        Ok(())
    }

    async fn delete_route_table(&self, table: RouteTableId) -> Result<(), AwsError> {
        self.client.delete_route_table().route_table_id(table.as_str()).send().await.aws("DeleteRouteTable")?;
        Ok(())
    }

    async fn delete_subnet(&self, subnet: SubnetId) -> Result<(), AwsError> {
        self.client.delete_subnet().subnet_id(subnet.as_str()).send().await.aws("DeleteSubnet")?;
        Ok(())
    }

    async fn delete_vpc(&self, vpc: VpcId) -> Result<(), AwsError> {
        self.client.delete_vpc().vpc_id(vpc.as_str()).send().await.aws("DeleteVpc")?;
        Ok(())
    }

    async fn delete_network_interface(&self, eni: String) -> Result<(), AwsError> {
        self.client.delete_network_interface().network_interface_id(eni).send().await.aws("DeleteNetworkInterface")?;
        Ok(())
    }

    async fn delete_security_group(&self, group: SecurityGroupId) -> Result<(), AwsError> {
        self.client.delete_security_group().group_id(group.as_str()).send().await.aws("DeleteSecurityGroup")?;
        Ok(())
    }
}
