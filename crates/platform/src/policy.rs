//! The add-ons' IAM permission policies, built for the partition. Written here from each
//! project's published requirements (not copied): the AWS Load Balancer Controller's
//! `docs/install/iam_policy.json` for v2.x (kubernetes-sigs/aws-load-balancer-controller), and
//! the cluster autoscaler's AWS README, "IAM Policy" (kubernetes/autoscaler,
//! `cluster-autoscaler/cloudprovider/aws/README.md`).
//!
//! Both scope their writes by tag: the controller may modify or delete only what carries its
//! cluster tag `elbv2.k8s.aws/cluster` and tag only what it creates; the autoscaler may scale only
//! Auto Scaling groups tagged `k8s.io/cluster-autoscaler/<cluster> = owned`, which EKS puts on a
//! managed node group's group (EKS user guide, "Managed node groups": "Amazon EKS tags managed
//! node group resources so that they are configured to use the Kubernetes Cluster Autoscaler").

use dify_stack_core::Partition;
use serde_json::{Value, json};

/// The tag the controller puts on what it makes.
const LBC_TAG: &str = "elbv2.k8s.aws/cluster";

/// The AWS Load Balancer Controller's policy (v2.x), ARNs in `partition`.
pub fn load_balancer_controller_policy(partition: Partition) -> Value {
    let p = partition.id();
    let request_tag = format!("aws:RequestTag/{LBC_TAG}");
    let resource_tag = format!("aws:ResourceTag/{LBC_TAG}");
    // Tagged by the controller: may be modified or deleted.
    let ours = json!({"Null": {&resource_tag: "false"}});
    // Re-tagging only what is ours, never adding the cluster tag to what is not.
    let retag = json!({"Null": {&request_tag: "true", &resource_tag: "false"}});
    let elb = |resource: &str| format!("arn:{p}:elasticloadbalancing:*:*:{resource}");
    json!({
        "Version": "2012-10-17",
        "Statement": [
            {"Sid": "ElbServiceLinkedRole", "Effect": "Allow", "Action": "iam:CreateServiceLinkedRole", "Resource": "*",
             "Condition": {"StringEquals": {"iam:AWSServiceName": partition.service_principal("elasticloadbalancing")}}},
            {"Sid": "Describe", "Effect": "Allow", "Resource": "*", "Action": [
                "ec2:DescribeAccountAttributes", "ec2:DescribeAddresses", "ec2:DescribeAvailabilityZones",
                "ec2:DescribeInternetGateways", "ec2:DescribeVpcs", "ec2:DescribeVpcPeeringConnections",
                "ec2:DescribeSubnets", "ec2:DescribeSecurityGroups", "ec2:DescribeInstances",
                "ec2:DescribeNetworkInterfaces", "ec2:DescribeTags", "ec2:DescribeRouteTables",
                "ec2:GetCoipPoolUsage", "ec2:DescribeCoipPools", "ec2:GetSecurityGroupsForVpc",
                "ec2:DescribeIpamPools",
                "elasticloadbalancing:DescribeLoadBalancers", "elasticloadbalancing:DescribeLoadBalancerAttributes",
                "elasticloadbalancing:DescribeListeners", "elasticloadbalancing:DescribeListenerCertificates",
                "elasticloadbalancing:DescribeListenerAttributes", "elasticloadbalancing:DescribeSSLPolicies",
                "elasticloadbalancing:DescribeRules", "elasticloadbalancing:DescribeTargetGroups",
                "elasticloadbalancing:DescribeTargetGroupAttributes", "elasticloadbalancing:DescribeTargetHealth",
                "elasticloadbalancing:DescribeTags", "elasticloadbalancing:DescribeTrustStores",
                "elasticloadbalancing:DescribeCapacityReservation"]},
            {"Sid": "Frontends", "Effect": "Allow", "Resource": "*", "Action": [
                "cognito-idp:DescribeUserPoolClient", "acm:ListCertificates", "acm:DescribeCertificate",
                "iam:ListServerCertificates", "iam:GetServerCertificate",
                "waf-regional:GetWebACL", "waf-regional:GetWebACLForResource", "waf-regional:AssociateWebACL",
                "waf-regional:DisassociateWebACL", "wafv2:GetWebACL", "wafv2:GetWebACLForResource",
                "wafv2:AssociateWebACL", "wafv2:DisassociateWebACL",
                "shield:GetSubscriptionState", "shield:DescribeProtection", "shield:CreateProtection",
                "shield:DeleteProtection"]},
            {"Sid": "SecurityGroupRules", "Effect": "Allow", "Resource": "*",
             "Action": ["ec2:AuthorizeSecurityGroupIngress", "ec2:RevokeSecurityGroupIngress"]},
            {"Sid": "SecurityGroupCreate", "Effect": "Allow", "Action": "ec2:CreateSecurityGroup", "Resource": "*"},
            {"Sid": "SecurityGroupTagOnCreate", "Effect": "Allow", "Action": "ec2:CreateTags",
             "Resource": format!("arn:{p}:ec2:*:*:security-group/*"),
             "Condition": {"StringEquals": {"ec2:CreateAction": "CreateSecurityGroup"}, "Null": {&request_tag: "false"}}},
            {"Sid": "SecurityGroupRetag", "Effect": "Allow", "Action": ["ec2:CreateTags", "ec2:DeleteTags"],
             "Resource": format!("arn:{p}:ec2:*:*:security-group/*"), "Condition": retag},
            {"Sid": "SecurityGroupsOwned", "Effect": "Allow", "Resource": "*", "Condition": ours,
             "Action": ["ec2:AuthorizeSecurityGroupIngress", "ec2:RevokeSecurityGroupIngress", "ec2:DeleteSecurityGroup"]},
            {"Sid": "CreateTagged", "Effect": "Allow", "Resource": "*",
             "Action": ["elasticloadbalancing:CreateLoadBalancer", "elasticloadbalancing:CreateTargetGroup"],
             "Condition": {"Null": {&request_tag: "false"}}},
            {"Sid": "ListenersAndRules", "Effect": "Allow", "Resource": "*", "Action": [
                "elasticloadbalancing:CreateListener", "elasticloadbalancing:DeleteListener",
                "elasticloadbalancing:CreateRule", "elasticloadbalancing:DeleteRule"]},
            {"Sid": "Retag", "Effect": "Allow", "Action": ["elasticloadbalancing:AddTags", "elasticloadbalancing:RemoveTags"],
             "Resource": [elb("targetgroup/*/*"), elb("loadbalancer/net/*/*"), elb("loadbalancer/app/*/*")],
             "Condition": retag},
            {"Sid": "ListenerTags", "Effect": "Allow", "Action": ["elasticloadbalancing:AddTags", "elasticloadbalancing:RemoveTags"],
             "Resource": [elb("listener/net/*/*/*"), elb("listener/app/*/*/*"),
                          elb("listener-rule/net/*/*/*"), elb("listener-rule/app/*/*/*")]},
            {"Sid": "ModifyOwned", "Effect": "Allow", "Resource": "*", "Condition": ours, "Action": [
                "elasticloadbalancing:ModifyLoadBalancerAttributes", "elasticloadbalancing:SetIpAddressType",
                "elasticloadbalancing:SetSecurityGroups", "elasticloadbalancing:SetSubnets",
                "elasticloadbalancing:DeleteLoadBalancer", "elasticloadbalancing:ModifyTargetGroup",
                "elasticloadbalancing:ModifyTargetGroupAttributes", "elasticloadbalancing:DeleteTargetGroup",
                "elasticloadbalancing:ModifyListenerAttributes", "elasticloadbalancing:ModifyCapacityReservation",
                "elasticloadbalancing:ModifyIpPools"]},
            {"Sid": "TagOnCreate", "Effect": "Allow", "Action": "elasticloadbalancing:AddTags",
             "Resource": [elb("targetgroup/*/*"), elb("loadbalancer/net/*/*"), elb("loadbalancer/app/*/*")],
             "Condition": {"StringEquals": {"elasticloadbalancing:CreateAction": ["CreateTargetGroup", "CreateLoadBalancer"]},
                           "Null": {&request_tag: "false"}}},
            {"Sid": "Targets", "Effect": "Allow", "Resource": elb("targetgroup/*/*"),
             "Action": ["elasticloadbalancing:RegisterTargets", "elasticloadbalancing:DeregisterTargets"]},
            {"Sid": "ListenerSettings", "Effect": "Allow", "Resource": "*", "Action": [
                "elasticloadbalancing:SetWebAcl", "elasticloadbalancing:ModifyListener",
                "elasticloadbalancing:AddListenerCertificates", "elasticloadbalancing:RemoveListenerCertificates",
                "elasticloadbalancing:ModifyRule", "elasticloadbalancing:SetRulePriorities"]},
        ]
    })
}

/// The cluster autoscaler's policy: reads everywhere, scaling only the groups tagged as owned by
/// `cluster`.
pub fn cluster_autoscaler_policy(cluster: &str) -> Value {
    json!({
        "Version": "2012-10-17",
        "Statement": [
            {"Sid": "Discover", "Effect": "Allow", "Resource": "*", "Action": [
                "autoscaling:DescribeAutoScalingGroups", "autoscaling:DescribeAutoScalingInstances",
                "autoscaling:DescribeLaunchConfigurations", "autoscaling:DescribeScalingActivities",
                "autoscaling:DescribeTags", "ec2:DescribeImages", "ec2:DescribeInstanceTypes",
                "ec2:DescribeLaunchTemplateVersions", "ec2:GetInstanceTypesFromInstanceRequirements",
                "eks:DescribeNodegroup"]},
            {"Sid": "ScaleOwnedGroups", "Effect": "Allow", "Resource": "*",
             "Action": ["autoscaling:SetDesiredCapacity", "autoscaling:TerminateInstanceInAutoScalingGroup"],
             "Condition": {"StringEquals": {format!("aws:ResourceTag/k8s.io/cluster-autoscaler/{cluster}"): "owned"}}},
        ]
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn statements(policy: &Value) -> &Vec<Value> {
        policy["Statement"].as_array().unwrap()
    }

    #[test]
    fn the_controller_policy_names_the_partition_and_writes_only_what_carries_its_tag() {
        for partition in [Partition::Aws, Partition::AwsCn] {
            let policy = load_balancer_controller_policy(partition);
            let text = policy.to_string();
            assert!(text.contains(&format!("arn:{}:elasticloadbalancing:", partition.id())));
            if partition == Partition::AwsCn {
                assert!(!text.contains("arn:aws:"), "{text}");
            }
            // Every delete is conditioned on the controller's tag.
            for s in statements(&policy) {
                let actions = s["Action"].to_string();
                if actions.contains(":Delete") && !actions.contains("DeleteListener") && !actions.contains("DeleteRule")
                    || actions.contains("DeleteProtection")
                {
                    let conditioned =
                        s["Condition"].to_string().contains("elbv2.k8s.aws/cluster") || actions.contains("shield:");
                    assert!(conditioned, "unconditioned delete: {s}");
                }
            }
            // No action wildcard anywhere.
            assert!(!text.contains(":*\""), "{text}");
        }
    }

    #[test]
    fn the_autoscaler_scales_only_groups_tagged_for_its_cluster() {
        let policy = cluster_autoscaler_policy("dify-test");
        let scale = statements(&policy).iter().find(|s| s["Sid"] == "ScaleOwnedGroups").unwrap();
        assert_eq!(scale["Condition"]["StringEquals"]["aws:ResourceTag/k8s.io/cluster-autoscaler/dify-test"], "owned");
        // Writes appear only in the conditioned statement.
        for s in statements(&policy) {
            if s["Action"].to_string().contains("SetDesiredCapacity") {
                assert!(s.get("Condition").is_some(), "{s}");
            }
        }
    }
}
