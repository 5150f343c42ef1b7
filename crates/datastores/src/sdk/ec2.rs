//! Security groups (EC2).

#[allow(unused_imports)]
use super::*;

#[async_trait]
impl SgApi for SdkDatastores {
    async fn find(&self, vpc_id: String, name: String) -> Result<Option<SgInfo>, AwsError> {
        let out = self
            .ec2
            .describe_security_groups()
            .filters(Filter::builder().name("vpc-id").values(vpc_id).build())
            .filters(Filter::builder().name("group-name").values(name).build())
            .send()
            .await
            .aws("DescribeSecurityGroups")?;
        Ok(out.security_groups().first().map(|g| {
            let mut ingress = Vec::new();
            for p in g.ip_permissions() {
                let proto = p.ip_protocol().unwrap_or_default().to_owned();
                let (from, to) = (p.from_port().unwrap_or(-1), p.to_port().unwrap_or(-1));
                for pair in p.user_id_group_pairs() {
                    ingress.push((proto.clone(), from, to, pair.group_id().unwrap_or_default().to_owned()));
                }
                for r in p.ip_ranges() {
                    ingress.push((proto.clone(), from, to, r.cidr_ip().unwrap_or_default().to_owned()));
                }
            }
            ingress.sort();
            SgInfo {
                id: g.group_id().unwrap_or_default().to_owned(),
                tags: g.tags().iter().filter_map(|t| Some((t.key()?.to_owned(), t.value()?.to_owned()))).collect(),
                ingress,
            }
        }))
    }

    async fn create(&self, vpc_id: String, name: String, description: String, tags: Tags) -> Result<String, AwsError> {
        let out = self
            .ec2
            .create_security_group()
            .vpc_id(vpc_id)
            .group_name(name)
            .description(description)
            .tag_specifications(
                TagSpecification::builder()
                    .resource_type(ResourceType::SecurityGroup)
                    .set_tags(Some(
                        tags.iter().map(|(k, v)| aws_sdk_ec2::types::Tag::builder().key(k).value(v).build()).collect(),
                    ))
                    .build(),
            )
            .send()
            .await
            .aws("CreateSecurityGroup")?;
        Ok(out.group_id().unwrap_or_default().to_owned())
    }

    async fn authorize(&self, id: String, port: i32, source: String) -> Result<(), AwsError> {
        self.ec2
            .authorize_security_group_ingress()
            .group_id(id)
            .ip_permissions(
                IpPermission::builder()
                    .ip_protocol("tcp")
                    .from_port(port)
                    .to_port(port)
                    .user_id_group_pairs(UserIdGroupPair::builder().group_id(source).build())
                    .build(),
            )
            .send()
            .await
            .aws("AuthorizeSecurityGroupIngress")?;
        Ok(())
    }

    async fn revoke(&self, id: String, rule: (String, i32, i32, String)) -> Result<(), AwsError> {
        let (proto, from, to, source) = rule;
        let mut p = IpPermission::builder().ip_protocol(proto).from_port(from).to_port(to);
        p = if source.starts_with("sg-") {
            p.user_id_group_pairs(UserIdGroupPair::builder().group_id(source).build())
        } else {
            p.ip_ranges(IpRange::builder().cidr_ip(source).build())
        };
        self.ec2
            .revoke_security_group_ingress()
            .group_id(id)
            .ip_permissions(p.build())
            .send()
            .await
            .aws("RevokeSecurityGroupIngress")?;
        Ok(())
    }

    async fn tag(&self, id: String, tags: Tags) -> Result<(), AwsError> {
        self.ec2
            .create_tags()
            .resources(id)
            .set_tags(Some(
                tags.iter().map(|(k, v)| aws_sdk_ec2::types::Tag::builder().key(k).value(v).build()).collect(),
            ))
            .send()
            .await
            .aws("CreateTags")?;
        Ok(())
    }

    async fn delete(&self, id: String) -> Result<(), AwsError> {
        self.ec2.delete_security_group().group_id(id).send().await.aws("DeleteSecurityGroup")?;
        Ok(())
    }
}

// ---------------------------------------------------------------- Secrets Manager
