//! EC2: tag conversion and security groups (the datastores tier's data-store group and the EKS
//! tier's node group are found, created, tagged and deleted the same way).

use aws_sdk_ec2::Client;
use aws_sdk_ec2::types::{
    Filter, IpPermission, IpRange, Ipv6Range, ResourceType, SecurityGroup, Tag, TagSpecification, UserIdGroupPair,
};
use dify_stack_core::{AwsError, AwsResultExt, Tags};

/// One ingress rule as observed: protocol, from port, to port, and the source (a security-group
/// id `sg-…`, an IPv4 CIDR block, or an IPv6 one, which has a `:`). `-1` stands for "all
/// ports", as EC2 reports it.
pub type IngressRule = (String, i32, i32, String);

/// EC2 tags as a map. A tag without a value is kept with an empty value (EC2 allows empty values,
/// e.g. `kubernetes.io/role/elb` is sometimes set to "").
pub fn tags_of(tags: &[Tag]) -> Tags {
    tags.iter().filter_map(|t| Some((t.key()?.to_owned(), t.value().unwrap_or_default().to_owned()))).collect()
}

/// A tag map as EC2 tags.
pub fn sdk_tags(tags: &Tags) -> Vec<Tag> {
    tags.iter().map(|(k, v)| Tag::builder().key(k).value(v).build()).collect()
}

/// Tags applied at creation, so the resource is never visible untagged (and ownership by tag
/// holds from the first moment: DESIGN.md, "Ownership").
pub fn tag_spec(kind: ResourceType, tags: &Tags) -> TagSpecification {
    TagSpecification::builder().resource_type(kind).set_tags(Some(sdk_tags(tags))).build()
}

/// The security group named `name` in `vpc_id`, if any. Group names are unique per VPC
/// (EC2 API reference, CreateSecurityGroup: "constraints: ... unique within the VPC").
pub async fn find_security_group(ec2: &Client, vpc_id: &str, name: &str) -> Result<Option<SecurityGroup>, AwsError> {
    let out = ec2
        .describe_security_groups()
        .filters(Filter::builder().name("vpc-id").values(vpc_id).build())
        .filters(Filter::builder().name("group-name").values(name).build())
        .send()
        .await
        .aws("DescribeSecurityGroups")?;
    Ok(out.security_groups().first().cloned())
}

/// The group's ingress rules, one per (protocol, ports, source), sorted.
pub fn ingress_rules(group: &SecurityGroup) -> Vec<IngressRule> {
    let mut rules = Vec::new();
    for p in group.ip_permissions() {
        let proto = p.ip_protocol().unwrap_or_default().to_owned();
        let (from, to) = (p.from_port().unwrap_or(-1), p.to_port().unwrap_or(-1));
        for pair in p.user_id_group_pairs() {
            rules.push((proto.clone(), from, to, pair.group_id().unwrap_or_default().to_owned()));
        }
        for r in p.ip_ranges() {
            rules.push((proto.clone(), from, to, r.cidr_ip().unwrap_or_default().to_owned()));
        }
        for r in p.ipv6_ranges() {
            rules.push((proto.clone(), from, to, r.cidr_ipv6().unwrap_or_default().to_owned()));
        }
    }
    rules.sort();
    rules
}

/// Creates a security group with its tags; returns its id.
pub async fn create_security_group(
    ec2: &Client,
    vpc_id: &str,
    name: &str,
    description: &str,
    tags: &Tags,
) -> Result<String, AwsError> {
    let out = ec2
        .create_security_group()
        .vpc_id(vpc_id)
        .group_name(name)
        .description(description)
        .tag_specifications(tag_spec(ResourceType::SecurityGroup, tags))
        .send()
        .await
        .aws("CreateSecurityGroup")?;
    Ok(out.group_id().unwrap_or_default().to_owned())
}

/// Allows TCP `port` into `group_id` from members of `source_group`.
pub async fn authorize_from_group(ec2: &Client, group_id: &str, port: i32, source_group: &str) -> Result<(), AwsError> {
    ec2.authorize_security_group_ingress()
        .group_id(group_id)
        .ip_permissions(
            IpPermission::builder()
                .ip_protocol("tcp")
                .from_port(port)
                .to_port(port)
                .user_id_group_pairs(UserIdGroupPair::builder().group_id(source_group).build())
                .build(),
        )
        .send()
        .await
        .aws("AuthorizeSecurityGroupIngress")?;
    Ok(())
}

/// Removes one ingress rule as [`ingress_rules`] reported it.
pub async fn revoke_ingress(ec2: &Client, group_id: &str, rule: IngressRule) -> Result<(), AwsError> {
    let (proto, from, to, source) = rule;
    let p = IpPermission::builder().ip_protocol(proto).from_port(from).to_port(to);
    let p = if source.starts_with("sg-") {
        p.user_id_group_pairs(UserIdGroupPair::builder().group_id(source).build())
    } else if source.contains(':') {
        p.ipv6_ranges(Ipv6Range::builder().cidr_ipv6(source).build())
    } else {
        p.ip_ranges(IpRange::builder().cidr_ip(source).build())
    };
    ec2.revoke_security_group_ingress()
        .group_id(group_id)
        .ip_permissions(p.build())
        .send()
        .await
        .aws("RevokeSecurityGroupIngress")?;
    Ok(())
}

/// Adds or overwrites tags on any EC2 resources.
pub async fn create_tags(ec2: &Client, resources: Vec<String>, tags: &Tags) -> Result<(), AwsError> {
    ec2.create_tags().set_resources(Some(resources)).set_tags(Some(sdk_tags(tags))).send().await.aws("CreateTags")?;
    Ok(())
}

/// Deletes a security group (absent is an error here: callers decide with `ignore_not_found`).
pub async fn delete_security_group(ec2: &Client, group_id: &str) -> Result<(), AwsError> {
    ec2.delete_security_group().group_id(group_id).send().await.aws("DeleteSecurityGroup")?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags_round_trip_and_keep_empty_values() {
        let tags: Tags =
            [("a".to_owned(), "1".to_owned()), ("kubernetes.io/role/elb".to_owned(), String::new())].into();
        assert_eq!(tags_of(&sdk_tags(&tags)), tags);
        let valueless = Tag::builder().key("k").build();
        assert_eq!(tags_of(&[valueless]).get("k").map(String::as_str), Some(""));
        let keyless = Tag::builder().value("v").build();
        assert!(tags_of(&[keyless]).is_empty(), "a tag without a key is dropped");
    }

    #[test]
    fn ingress_rules_flatten_group_pairs_and_ranges_sorted() {
        let group = SecurityGroup::builder()
            .ip_permissions(
                IpPermission::builder()
                    .ip_protocol("tcp")
                    .from_port(6379)
                    .to_port(6379)
                    .user_id_group_pairs(UserIdGroupPair::builder().group_id("sg-b").build())
                    .ip_ranges(IpRange::builder().cidr_ip("10.0.0.0/16").build())
                    .ipv6_ranges(Ipv6Range::builder().cidr_ipv6("::/0").build())
                    .build(),
            )
            .ip_permissions(IpPermission::builder().ip_protocol("-1").build())
            .build();
        assert_eq!(
            ingress_rules(&group),
            vec![
                ("tcp".to_owned(), 6379, 6379, "10.0.0.0/16".to_owned()),
                ("tcp".to_owned(), 6379, 6379, "::/0".to_owned()),
                ("tcp".to_owned(), 6379, 6379, "sg-b".to_owned()),
            ],
            "IPv6 ranges count; a permission with neither pairs nor ranges yields no rule"
        );
    }
}
