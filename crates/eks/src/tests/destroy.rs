//! Destroy, ownership and recovery against the fake.

use super::{AwsError, ctx, spec};
use crate::ClusterInfo;
use crate::EksError;
use crate::EksProvisioner;
use crate::tests::FakeEks;
use dify_stack_core::Provisioner;

#[tokio::test(start_paused = true)]
async fn destroy_goes_nodegroup_addons_cluster_template_roles_key() {
    let fake = FakeEks::default();
    let eks = EksProvisioner::new(fake.clone());
    let ctx = ctx();
    let s = spec();
    eks.apply(&ctx, &s).await.unwrap();
    let mark = fake.calls().len();
    let deleted = eks.destroy(&ctx, &s).await.unwrap();
    assert_eq!(deleted.len(), 5 + 1 + 1 + 1 + 1 + 1 + 3 + 1, "{deleted:?}");
    let order: Vec<String> = fake.calls()[mark..]
        .iter()
        .filter(|c| c.starts_with("Delete") && !c.starts_with("DeleteAddon") || c.starts_with("Schedule"))
        .cloned()
        .collect();
    assert_eq!(
        order,
        [
            "DeleteNodegroup",
            "DeleteCluster",
            "DeleteLogGroup(/aws/eks/eks-t/cluster)",
            "DeleteLaunchTemplate",
            "DeleteSecurityGroup",
            "DeleteRole(eks-t-eks-cluster)",
            "DeleteRole(eks-t-eks-node)",
            "DeleteRole(eks-t-ebs-csi)",
            "ScheduleKeyDeletion(7)"
        ]
    );
    let calls = fake.calls();
    let first_addon = calls[mark..].iter().position(|c| c.starts_with("DeleteAddon")).unwrap();
    let ng = calls[mark..].iter().position(|c| c == "DeleteNodegroup").unwrap();
    let cluster = calls[mark..].iter().position(|c| c == "DeleteCluster").unwrap();
    // Add-ons after the node group is gone (the CNI and CSI driver serve the draining nodes).
    assert!(ng < first_addon && first_addon < cluster, "{:?}", &calls[mark..]);
    // A second destroy finds nothing (the alias went with the key's deletion schedule, and a key
    // pending deletion is not ours to touch) and succeeds.
    assert!(eks.destroy(&ctx, &s).await.unwrap().is_empty());
    // Apply afterwards makes a new key; the old one keeps its schedule.
    eks.apply(&ctx, &s).await.unwrap();
    assert!(!fake.calls().iter().any(|c| c == "CancelKeyDeletion"));
    assert_eq!(fake.calls().iter().filter(|c| *c == "CreateKey").count(), 2);
    let states: Vec<String> = fake.state().keys.iter().map(|k| k.state.clone()).collect();
    assert_eq!(states, ["PendingDeletion", "Enabled"]);
}

/// Destroy by selector: without the VPC (gone already) what only it finds (the node security
/// group) is not looked up; the rest goes as from the spec.
#[tokio::test(start_paused = true)]
async fn a_selector_without_the_vpc_skips_only_what_the_vpc_finds() {
    let fake = FakeEks::default();
    let eks = EksProvisioner::new(fake.clone());
    let (ctx, s) = (ctx(), spec());
    assert_eq!(eks.selector(&ctx, &s), crate::EksSelector { vpc_id: Some(s.vpc_id.clone()) });
    eks.apply(&ctx, &s).await.unwrap();
    let deleted = eks.destroy_selected(&ctx, &crate::EksSelector { vpc_id: None }).await.unwrap();
    assert_eq!(deleted.len(), 5 + 1 + 1 + 1 + 1 + 3 + 1, "{deleted:?}");
    assert!(!deleted.iter().any(|r| r.kind == "ec2:security-group"), "{deleted:?}");
    assert!(fake.state().sg.is_some());
    // With the VPC, the group is found and deleted.
    let deleted = eks.destroy(&ctx, &s).await.unwrap();
    assert_eq!(deleted.iter().map(|r| r.kind.as_str()).collect::<Vec<_>>(), ["ec2:security-group"]);
}

/// A key scheduled for deletion outside dify-stack (its alias kept) is restored, not replaced.
#[tokio::test(start_paused = true)]
async fn a_key_scheduled_for_deletion_elsewhere_is_restored() {
    let fake = FakeEks::default();
    let eks = EksProvisioner::new(fake.clone());
    let (ctx, s) = (ctx(), spec());
    eks.apply(&ctx, &s).await.unwrap();
    fake.state().keys[0].state = "PendingDeletion".into();
    eks.apply(&ctx, &s).await.unwrap();
    assert!(fake.calls().iter().any(|c| c == "CancelKeyDeletion"));
    assert_eq!(fake.calls().iter().filter(|c| *c == "CreateKey").count(), 1);
    assert_eq!(fake.state().keys[0].state, "Enabled");
}

#[tokio::test(start_paused = true)]
async fn resources_without_our_tag_are_never_adopted() {
    let fake = FakeEks::with(|s| {
        s.cluster = Some(ClusterInfo {
            name: "eks-t".into(),
            status: "ACTIVE".into(),
            version: "1.33".into(),
            ..Default::default()
        });
    });
    let eks = EksProvisioner::new(fake.clone());
    let err = eks.apply(&ctx(), &spec()).await.unwrap_err();
    assert!(matches!(&err, EksError::NotOwned(e) if e.kind == "EKS cluster"), "{err:?}");
    assert!(fake.writes().is_empty());
    // Destroy leaves it alone.
    assert!(eks.destroy(&ctx(), &spec()).await.unwrap().is_empty());
    assert!(fake.state().cluster.is_some());
}

mod token_tests {
    use std::collections::BTreeMap;
    use std::time::{Duration, SystemTime};

    use aws_credential_types::Credentials;
    use base64::Engine as _;
    use secrecy::ExposeSecret as _;

    use crate::token::*;

    fn decode(region: &str) -> (String, BTreeMap<String, String>, EksToken) {
        let creds = Credentials::new("AKIDEXAMPLE", "secret", Some("session".into()), None, "test");
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000);
        let token = eks_token(&creds, "my-cluster", region, now).unwrap();
        let text = token.secret().expose_secret().to_owned();
        let body = text.strip_prefix("k8s-aws-v1.").expect("prefix");
        assert!(!body.contains('='), "no padding");
        assert!(!body.contains('+') && !body.contains('/'), "base64url alphabet");
        let url = String::from_utf8(base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(body).unwrap()).unwrap();
        let uri: http::Uri = url.parse().unwrap();
        let query = uri
            .query()
            .unwrap()
            .split('&')
            .map(|kv| {
                let (k, v) = kv.split_once('=').unwrap();
                (k.to_owned(), percent_encoding::percent_decode_str(v).decode_utf8().unwrap().into_owned())
            })
            .collect();
        (uri.host().unwrap().to_owned(), query, token)
    }

    #[test]
    fn token_is_a_presigned_get_caller_identity_bound_to_the_cluster() {
        let (host, q, token) = decode("us-west-2");
        assert_eq!(host, "sts.us-west-2.amazonaws.com");
        assert_eq!(q["Action"], "GetCallerIdentity");
        assert_eq!(q["Version"], "2011-06-15");
        assert_eq!(q["X-Amz-Expires"], "60");
        assert_eq!(q["X-Amz-Algorithm"], "AWS4-HMAC-SHA256");
        assert!(q["X-Amz-SignedHeaders"].split(';').any(|h| h == "x-k8s-aws-id"), "{q:?}");
        assert!(q["X-Amz-SignedHeaders"].split(';').any(|h| h == "host"), "{q:?}");
        assert!(q["X-Amz-Credential"].starts_with("AKIDEXAMPLE/20270115/us-west-2/sts/aws4_request"), "{q:?}");
        assert_eq!(q["X-Amz-Security-Token"], "session");
        assert_eq!(q["X-Amz-Signature"].len(), 64);
        assert!(!format!("{token:?}").contains("k8s-aws-v1"), "Debug hides the token");
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000);
        assert!(!token.needs_refresh(now + Duration::from_secs(13 * 60)));
        assert!(token.needs_refresh(now + Duration::from_secs(14 * 60 + 1)));
    }

    #[test]
    fn china_tokens_use_the_china_sts_endpoint() {
        let (host, q, _) = decode("cn-north-1");
        assert_eq!(host, "sts.cn-north-1.amazonaws.com.cn");
        assert!(q["X-Amz-Credential"].contains("/cn-north-1/sts/aws4_request"));
    }

    #[test]
    fn kubeconfig_runs_get_token_for_the_cluster() {
        let out = crate::EksOutput {
            cluster_name: dify_stack_core::ids::ClusterName::new("c"),
            cluster_arn: dify_stack_core::ids::Arn::new("arn:aws:eks:us-west-2:1:cluster/c"),
            kubernetes_version: "1.33".into(),
            endpoint: "https://x.eks.amazonaws.com".into(),
            ca_data: "Q0E=".into(),
            oidc_issuer_url: String::new(),
            cluster_security_group_id: None,
            node_security_group_id: dify_stack_core::ids::SecurityGroupId::new("sg-1"),
            cluster_role_arn: dify_stack_core::ids::RoleArn::new("r"),
            node_role_arn: dify_stack_core::ids::RoleArn::new("n"),
            kms_key_arn: dify_stack_core::ids::KmsKeyArn::new("k"),
            nodegroup_name: "ng".into(),
            region: "us-west-2".into(),
        };
        let k = kubeconfig(&out, Some("prod"));
        for needle in [
            "server: \"https://x.eks.amazonaws.com\"",
            "certificate-authority-data: \"Q0E=\"",
            "command: aws",
            "- get-token",
            "- \"c\"",
            "value: \"prod\"",
            "current-context: \"arn:aws:eks:us-west-2:1:cluster/c\"",
        ] {
            assert!(k.contains(needle), "{needle} missing in\n{k}");
        }
    }
}

mod kubernetes_load_balancers {
    use std::sync::{Arc, Mutex};

    use super::*;
    use crate::load_balancers::*;

    /// The API server's answer (`status`) or, without one, an unreachable server.
    fn kube_failure(message: &str, status: Option<u16>) -> dify_stack_core::KubeFailure {
        dify_stack_core::KubeFailure {
            operation: "list",
            object: "services".into(),
            message: message.into(),
            status,
            unreachable: status.is_none(),
        }
    }

    fn lb(id: &str) -> ClusterLoadBalancer {
        ClusterLoadBalancer { id: id.into(), kind: LoadBalancerKind::V2 }
    }

    /// Load balancers, target groups and security groups Kubernetes made, deleted as asked.
    fn world(log: Arc<Mutex<Vec<String>>>) -> MockLoadBalancerApi {
        let lbs = Arc::new(Mutex::new(vec![lb("arn:lb/k8s-dify-api"), lb("arn:lb/k8s-dify-ingress")]));
        let mut m = MockLoadBalancerApi::new();
        let l = lbs.clone();
        m.expect_cluster_load_balancers().returning(move |vpc, cluster, namespace| {
            assert_eq!((vpc.as_str(), cluster.as_str(), namespace), ("vpc-1", "eks-t", None));
            Ok(l.lock().unwrap().clone())
        });
        let (l, g) = (lbs.clone(), log.clone());
        m.expect_delete_load_balancer().returning(move |lb| {
            g.lock().unwrap().push(format!("DeleteLoadBalancer {}", lb.id));
            l.lock().unwrap().retain(|x| x != &lb);
            Ok(())
        });
        m.expect_cluster_target_groups().returning(|_, _| Ok(vec!["arn:tg/k8s".into()]));
        let g = log.clone();
        m.expect_delete_target_group().returning(move |tg| {
            g.lock().unwrap().push(format!("DeleteTargetGroup {tg}"));
            Ok(())
        });
        m.expect_cluster_security_groups().returning(|_, _, skip| {
            assert_eq!(skip, dify_stack_core::TAG_STACK, "groups carrying the stack's tag are left to their tier");
            Ok(vec!["sg-k8s-elb".into()])
        });
        // The load balancer's ENIs linger for a moment after it is gone.
        let tries = Arc::new(Mutex::new(0));
        let g = log.clone();
        m.expect_delete_security_group().returning(move |sg| {
            let mut n = tries.lock().unwrap();
            *n += 1;
            if *n == 1 {
                return Err(AwsError::new("DeleteSecurityGroup", "DependencyViolation", "has a dependent object"));
            }
            g.lock().unwrap().push(format!("DeleteSecurityGroup {sg}"));
            Ok(())
        });
        m
    }

    #[tokio::test(start_paused = true)]
    async fn an_unreachable_api_does_not_block_destroy_and_the_load_balancers_are_deleted_directly() {
        let log = Arc::new(Mutex::new(Vec::<String>::new()));
        let mut objects = MockLoadBalancerObjects::new();
        objects
            .expect_delete_load_balancer_objects()
            .times(1)
            .returning(|| Err(kube_failure("tcp connect error", None)));
        let fake = FakeEks::default();
        let eks =
            EksProvisioner::new(fake.clone()).with_load_balancers(world(log.clone())).with_kubernetes_objects(objects);
        let (ctx, s) = (ctx(), spec());
        eks.apply(&ctx, &s).await.unwrap();
        eks.destroy(&ctx, &s).await.unwrap();
        assert_eq!(
            *log.lock().unwrap(),
            [
                "DeleteLoadBalancer arn:lb/k8s-dify-api",
                "DeleteLoadBalancer arn:lb/k8s-dify-ingress",
                "DeleteTargetGroup arn:tg/k8s",
                "DeleteSecurityGroup sg-k8s-elb"
            ]
        );
        assert!(fake.calls().iter().any(|c| c == "DeleteNodegroup"));
    }

    #[tokio::test(start_paused = true)]
    async fn services_and_ingresses_go_first_and_a_refusal_stops_destroy_before_the_node_group() {
        // The API answers: the objects are deleted and their controller removes the load
        // balancers (here: nothing is left to delete directly).
        let log = Arc::new(Mutex::new(Vec::<String>::new()));
        let mut m = MockLoadBalancerApi::new();
        let listed = Arc::new(Mutex::new(0));
        m.expect_cluster_load_balancers().returning(move |_, _, _| {
            let mut n = listed.lock().unwrap();
            *n += 1;
            Ok(if *n < 3 { vec![lb("arn:lb/k8s-dify-api")] } else { vec![] })
        });
        m.expect_delete_load_balancer().never();
        m.expect_cluster_target_groups().returning(|_, _| Ok(vec![]));
        m.expect_cluster_security_groups().returning(|_, _, _| Ok(vec![]));
        let mut objects = MockLoadBalancerObjects::new();
        let g = log.clone();
        objects.expect_delete_load_balancer_objects().times(1).returning(move || {
            g.lock().unwrap().push("delete objects".into());
            Ok(vec!["service dify/dify-nginx".into(), "ingress dify/dify".into()])
        });
        let fake = FakeEks::default();
        let eks = EksProvisioner::new(fake.clone()).with_load_balancers(m).with_kubernetes_objects(objects);
        let (ctx, s) = (ctx(), spec());
        eks.apply(&ctx, &s).await.unwrap();
        eks.destroy(&ctx, &s).await.unwrap();
        assert_eq!(*log.lock().unwrap(), ["delete objects"]);

        // An API error (not reachability) ends destroy before anything is deleted.
        let mut objects = MockLoadBalancerObjects::new();
        objects
            .expect_delete_load_balancer_objects()
            .returning(|| Err(kube_failure("services is forbidden", Some(403))));
        let mut m = MockLoadBalancerApi::new();
        m.expect_cluster_load_balancers().never();
        let fake = FakeEks::default();
        let eks = EksProvisioner::new(fake.clone()).with_load_balancers(m).with_kubernetes_objects(objects);
        eks.apply(&ctx, &s).await.unwrap();
        let err = eks.destroy(&ctx, &s).await.unwrap_err();
        assert!(matches!(&err, EksError::Kubernetes(m) if m.message.contains("forbidden")), "{err:?}");
        assert!(!fake.calls().iter().any(|c| c.starts_with("Delete")), "{:?}", fake.calls());
    }

    #[test]
    fn a_namespace_picks_only_the_load_balancers_made_for_its_ingresses_and_services() {
        let tags = |pairs: &[(&str, &str)]| -> dify_stack_core::Tags {
            pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect()
        };
        let ingress = tags(&[("elbv2.k8s.aws/cluster", "eks-t"), ("ingress.k8s.aws/stack", "dify/dify")]);
        let service = tags(&[("elbv2.k8s.aws/cluster", "eks-t"), ("service.k8s.aws/stack", "dify/proxy")]);
        let in_tree = tags(&[("kubernetes.io/cluster/eks-t", "owned"), ("kubernetes.io/service-name", "dify/web")]);
        let other_ns = tags(&[("elbv2.k8s.aws/cluster", "eks-t"), ("ingress.k8s.aws/stack", "difyx/dify")]);
        let group = tags(&[("elbv2.k8s.aws/cluster", "eks-t"), ("ingress.k8s.aws/stack", "shared-group")]);
        let other_cluster = tags(&[("elbv2.k8s.aws/cluster", "eks-u"), ("ingress.k8s.aws/stack", "dify/dify")]);
        for t in [&ingress, &service, &in_tree] {
            assert!(made_for(t, "eks-t", Some("dify")), "{t:?}");
        }
        for t in [&other_ns, &group, &other_cluster] {
            assert!(!made_for(t, "eks-t", Some("dify")), "{t:?}");
        }
        // Without a namespace every load balancer of the cluster counts (destroy).
        assert!(made_for(&other_ns, "eks-t", None) && made_for(&group, "eks-t", None));
        assert!(!made_for(&other_cluster, "eks-t", None));
    }

    #[tokio::test(start_paused = true)]
    async fn uninstall_waits_for_the_namespaces_load_balancers_and_a_timeout_names_those_left() {
        let policy = dify_stack_core::WaitPolicy {
            initial_interval: std::time::Duration::from_secs(1),
            max_interval: std::time::Duration::from_secs(5),
            multiplier: 2.0,
            jitter: 0.0,
            max_wait: std::time::Duration::from_secs(60),
            ..Default::default()
        };
        let cancel = dify_stack_core::CancellationToken::new();
        // The controller deletes the ALB after two polls.
        let listed = Arc::new(Mutex::new(0));
        let mut m = MockLoadBalancerApi::new();
        let l = listed.clone();
        m.expect_cluster_load_balancers().returning(move |vpc, cluster, namespace| {
            assert_eq!((vpc.as_str(), cluster.as_str(), namespace.as_deref()), ("vpc-1", "eks-t", Some("dify")));
            let mut n = l.lock().unwrap();
            *n += 1;
            Ok(if *n <= 2 { vec![lb("arn:lb/k8s-dify-dify")] } else { vec![] })
        });
        m.expect_delete_load_balancer().never();
        wait_namespace_load_balancers_gone(&m, "vpc-1", "eks-t", "dify", &policy, &cancel).await.unwrap();
        assert_eq!(*listed.lock().unwrap(), 3);

        // It never goes: the timeout names it.
        let mut m = MockLoadBalancerApi::new();
        m.expect_cluster_load_balancers().returning(|_, _, _| Ok(vec![lb("arn:lb/k8s-dify-dify")]));
        let err = wait_namespace_load_balancers_gone(&m, "vpc-1", "eks-t", "dify", &policy, &cancel).await.unwrap_err();
        assert!(
            err.to_string().contains("arn:lb/k8s-dify-dify") && err.to_string().contains("namespace dify"),
            "{err}"
        );
    }
}
