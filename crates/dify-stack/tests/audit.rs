//! The security audit against the emulator: a fresh test-profile stack passes every applicable
//! control; for each control, a deliberately weakened resource (made through the SDK) makes
//! exactly that control fail (prod-only controls on a prod stack). Settings that AWS cannot
//! change after creation (encryption, AUTH, VPC placement, secrets encryption, the managed master
//! secret) are weakened by creating the stack's resource that way in an otherwise empty account,
//! where every control about an absent resource must fail too.

#![cfg(feature = "audit")]

use aws_types::SdkConfig;
use dify_stack::audit::{CONTROLS, Verdict};
use dify_stack::{Profile, Stack, StackConfig};
use dify_stack_emulator::{Emulator, TestAccount};
use futures::StreamExt as _;

const STACK: &str = "audit-test";

fn config_of(profile: Profile) -> StackConfig {
    let mut cfg = profile.config().with_name(STACK).expect("a valid stack name");
    cfg.iam.service_accounts = false;
    cfg.eks.checkip_url = dify_stack_emulator::Emulator::shared().expect("emulator").checkip_url();
    cfg.iam.discover_thumbprint = false;
    cfg
}

async fn stack(account: &TestAccount, profile: Profile) -> Stack {
    Stack::connect(config_of(profile), account.config.clone()).await.unwrap()
}

async fn applied() -> (TestAccount, Stack) {
    applied_as(Profile::Test).await
}

async fn applied_as(profile: Profile) -> (TestAccount, Stack) {
    let account = Emulator::shared().unwrap().account("us-west-2").await;
    let stack = stack(&account, profile).await;
    Box::pin(stack.apply()).await.unwrap();
    (account, stack)
}

/// In an account holding only the resource of the controls `present`: `want` fails, and so does
/// every control about a resource that does not exist.
fn alone(want: &[&'static str], present: &[&str]) -> Vec<&'static str> {
    CONTROLS.iter().map(|c| c.id).filter(|id| want.contains(id) || !present.contains(id)).collect()
}

const RDS: &[&str] = &["RDS.1", "RDS.2", "RDS.3", "RDS.4", "RDS.5"];
const EC: &[&str] = &["EC.1", "EC.2", "EC.3", "EC.4"];
const OS: &[&str] = &["OS.1", "OS.2", "OS.3", "OS.4", "OS.5", "OS.6"];
const EKS: &[&str] = &["EKS.1", "EKS.2", "EKS.3", "EKS.4"];

/// A subnet of a new VPC (outside the stack), for a weakened resource placed in a VPC.
async fn subnet_of_new_vpc(c: &SdkConfig) -> String {
    let ec2 = aws_sdk_ec2::Client::new(c);
    let vpc = ec2.create_vpc().cidr_block("10.1.0.0/16").send().await.unwrap();
    let vpc = vpc.vpc().and_then(|v| v.vpc_id()).unwrap();
    let subnet = ec2.create_subnet().vpc_id(vpc).cidr_block("10.1.1.0/24").send().await.unwrap();
    subnet.subnet().and_then(|s| s.subnet_id()).unwrap().to_owned()
}

fn s3(c: &SdkConfig) -> aws_sdk_s3::Client {
    aws_sdk_s3::Client::from_conf(aws_sdk_s3::config::Builder::from(c).force_path_style(true).build())
}

fn bucket(account: &TestAccount) -> String {
    format!("{STACK}-storage-{}", account.account_id)
}

#[tokio::test]
async fn a_fresh_stack_passes_every_applicable_control() {
    let (_account, stack) = applied().await;
    let report = stack.audit().await.unwrap();
    eprintln!("{report}");
    assert!(report.passed(), "{report}");
    let na: Vec<&str> = report
        .findings
        .iter()
        .filter(|f| matches!(f.verdict, Verdict::NotApplicable(_)))
        .map(|f| f.control.id)
        .collect();
    assert_eq!(na, ["RDS.4", "EC.4"], "only the prod-only controls are n/a on a test stack");
    assert_eq!(report.findings.len(), dify_stack::audit::CONTROLS.len());
}

/// Weakens one thing on a test stack; returns the account and the controls that must fail
/// (exactly).
async fn weaken(case: &str) -> (TestAccount, Vec<&'static str>) {
    use aws_sdk_ec2::types::{IpPermission, IpRange, UserIdGroupPair};
    match case {
        "S3.1" | "S3.2" | "S3.3" | "S3.4" => {
            let (a, _) = Box::pin(applied()).await;
            let s3 = s3(&a.config);
            let b = bucket(&a);
            match case {
                "S3.1" => drop(s3.delete_public_access_block().bucket(&b).send().await.unwrap()),
                "S3.2" => drop(s3.delete_bucket_encryption().bucket(&b).send().await.unwrap()),
                "S3.3" => drop(s3.delete_bucket_policy().bucket(&b).send().await.unwrap()),
                _ => drop(
                    s3.put_bucket_versioning()
                        .bucket(&b)
                        .versioning_configuration(
                            aws_sdk_s3::types::VersioningConfiguration::builder()
                                .status(aws_sdk_s3::types::BucketVersioningStatus::Suspended)
                                .build(),
                        )
                        .send()
                        .await
                        .unwrap(),
                ),
            }
            (
                a,
                vec![if case == "S3.1" {
                    "S3.1"
                } else if case == "S3.2" {
                    "S3.2"
                } else if case == "S3.3" {
                    "S3.3"
                } else {
                    "S3.4"
                }],
            )
        }
        "RDS.2" => {
            let (a, _) = Box::pin(applied()).await;
            let rds = aws_sdk_rds::Client::new(&a.config);
            rds.modify_db_instance()
                .db_instance_identifier(format!("{STACK}-aurora-1"))
                .publicly_accessible(true)
                .send()
                .await
                .unwrap();
            (a, vec!["RDS.2"])
        }
        "RDS.1" | "RDS.3" => {
            // Encryption and the managed secret are fixed at creation.
            let a = Emulator::shared().unwrap().account("us-west-2").await;
            let rds = aws_sdk_rds::Client::new(&a.config);
            let req = rds
                .create_db_cluster()
                .db_cluster_identifier(format!("{STACK}-aurora"))
                .engine("aurora-postgresql")
                .engine_version("17.5")
                .master_username("dify_admin")
                .backup_retention_period(1);
            let req = if case == "RDS.1" {
                req.storage_encrypted(false).manage_master_user_password(true)
            } else {
                req.storage_encrypted(true).master_user_password("hard-coded-Passw0rd")
            };
            req.send().await.unwrap();
            (a, alone(&[if case == "RDS.1" { "RDS.1" } else { "RDS.3" }], RDS))
        }
        "EC.1" | "EC.2" | "EC.3" => {
            let a = Emulator::shared().unwrap().account("us-west-2").await;
            let ec = aws_sdk_elasticache::Client::new(&a.config);
            let req = ec
                .create_replication_group()
                .replication_group_id(format!("{STACK}-redis"))
                .replication_group_description("weak")
                .engine("redis")
                .cache_node_type("cache.t4g.micro")
                .num_cache_clusters(1);
            let req = match case {
                "EC.1" => {
                    req.at_rest_encryption_enabled(false).transit_encryption_enabled(true).auth_token("a".repeat(32))
                }
                // TLS without an AUTH token: allowed; AUTH is the option that needs TLS, not the
                // reverse (ElastiCache user guide, "Authenticating with the Valkey and Redis OSS
                // AUTH command": AUTH only on clusters with in-transit encryption).
                "EC.3" => req.at_rest_encryption_enabled(true).transit_encryption_enabled(true),
                // AUTH needs TLS: without in-transit encryption there is no AUTH token either.
                _ => req.at_rest_encryption_enabled(true).transit_encryption_enabled(false),
            };
            req.send().await.unwrap();
            let want: &[&str] = match case {
                "EC.1" => &["EC.1"],
                "EC.3" => &["EC.3"],
                _ => &["EC.2", "EC.3"],
            };
            (a, alone(want, EC))
        }
        "OS.1" | "OS.2" | "OS.3" | "OS.5" => {
            let a = Emulator::shared().unwrap().account("us-west-2").await;
            let os = aws_sdk_opensearch::Client::new(&a.config);
            use aws_sdk_opensearch::types::*;
            let mut req = os
                .create_domain()
                .domain_name(format!("{STACK}-search"))
                .engine_version("OpenSearch_2.19")
                .encryption_at_rest_options(EncryptionAtRestOptions::builder().enabled(case != "OS.2").build())
                .node_to_node_encryption_options(NodeToNodeEncryptionOptions::builder().enabled(case != "OS.3").build())
                .domain_endpoint_options(
                    DomainEndpointOptions::builder()
                        .enforce_https(true)
                        .tls_security_policy(TlsSecurityPolicy::PolicyMinTls12201907)
                        .build(),
                )
                .advanced_security_options(
                    AdvancedSecurityOptionsInput::builder()
                        .enabled(case != "OS.5")
                        .internal_user_database_enabled(case != "OS.5")
                        .build(),
                );
            if case != "OS.1" {
                req = req.vpc_options(VpcOptions::builder().subnet_ids(subnet_of_new_vpc(&a.config).await).build());
            }
            // As on a real account, a VPC domain needs the OpenSearch service-linked role (the
            // stack made it in its own account; this weakened domain lives in another).
            let _ = aws_sdk_iam::Client::new(&a.config)
                .create_service_linked_role()
                .aws_service_name("opensearchservice.amazonaws.com")
                .send()
                .await;
            req.send().await.unwrap();
            let want = match case {
                "OS.1" => "OS.1",
                "OS.2" => "OS.2",
                "OS.3" => "OS.3",
                _ => "OS.5",
            };
            (a, alone(&[want], OS))
        }
        "OS.4" | "OS.6" => {
            let (a, _) = Box::pin(applied()).await;
            let os = aws_sdk_opensearch::Client::new(&a.config);
            let req = os.update_domain_config().domain_name(format!("{STACK}-search"));
            let req = if case == "OS.4" {
                req.domain_endpoint_options(
                    aws_sdk_opensearch::types::DomainEndpointOptions::builder().enforce_https(false).build(),
                )
            } else {
                req.access_policies(
                    r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"AWS":"*"},"Action":"es:*","Resource":"*"}]}"#,
                )
            };
            req.send().await.unwrap();
            (a, vec![if case == "OS.4" { "OS.4" } else { "OS.6" }])
        }
        "EKS.2" | "EKS.3" => {
            let (a, _) = Box::pin(applied()).await;
            let eks = aws_sdk_eks::Client::new(&a.config);
            // Endpoint access alone: EKS takes one type of update per call.
            use aws_sdk_eks::types::*;
            let req = eks.update_cluster_config().name(STACK);
            let req = if case == "EKS.2" {
                req.resources_vpc_config(
                    VpcConfigRequest::builder()
                        .endpoint_private_access(true)
                        .endpoint_public_access(true)
                        .public_access_cidrs("0.0.0.0/0")
                        .build(),
                )
            } else {
                req.logging(
                    Logging::builder()
                        .cluster_logging(
                            LogSetup::builder()
                                .types(LogType::Api)
                                .types(LogType::Audit)
                                .types(LogType::Authenticator)
                                .types(LogType::ControllerManager)
                                .enabled(true)
                                .build(),
                        )
                        .cluster_logging(LogSetup::builder().types(LogType::Scheduler).enabled(false).build())
                        .build(),
                )
            };
            req.send().await.unwrap();
            (a, vec![if case == "EKS.2" { "EKS.2" } else { "EKS.3" }])
        }
        "EKS.4" => {
            let a = Emulator::shared().unwrap().account("us-west-2").await;
            let iam = aws_sdk_iam::Client::new(&a.config);
            let role = iam.create_role().role_name("weak").assume_role_policy_document("{}").send().await.unwrap();
            let subnet_id = subnet_of_new_vpc(&a.config).await;
            use aws_sdk_eks::types::*;
            let eks = aws_sdk_eks::Client::new(&a.config);
            let role_arn = role.role().unwrap().arn().to_owned();
            let create = || {
                eks.create_cluster()
                    .name(STACK)
                    .role_arn(&role_arn)
                    .resources_vpc_config(
                        VpcConfigRequest::builder()
                            .subnet_ids(&subnet_id)
                            .endpoint_private_access(true)
                            .endpoint_public_access(false)
                            .build(),
                    )
                    .logging(
                        Logging::builder()
                            .cluster_logging(
                                LogSetup::builder()
                                    .types(LogType::Api)
                                    .types(LogType::Audit)
                                    .types(LogType::Authenticator)
                                    .types(LogType::ControllerManager)
                                    .types(LogType::Scheduler)
                                    .enabled(true)
                                    .build(),
                            )
                            .build(),
                    )
                    .send()
            };
            // The role is moments old: EKS refuses it until IAM has propagated it (modelled by the
            // strict emulator), so retry as every client must.
            dify_stack_emulator::retry_while_role_propagates(create).await.unwrap();
            (a, alone(&["EKS.4"], EKS))
        }
        "EKS.5" => {
            let (a, _) = Box::pin(applied()).await;
            let ec2 = aws_sdk_ec2::Client::new(&a.config);
            use aws_sdk_ec2::types::*;
            let v = ec2
                .create_launch_template_version()
                .launch_template_name(format!("{STACK}-eks-nodes"))
                .launch_template_data(
                    RequestLaunchTemplateData::builder()
                        .metadata_options(
                            LaunchTemplateInstanceMetadataOptionsRequest::builder()
                                .http_tokens(LaunchTemplateHttpTokensState::Optional)
                                .build(),
                        )
                        .build(),
                )
                .send()
                .await
                .unwrap();
            let n = v.launch_template_version().unwrap().version_number().unwrap();
            ec2.modify_launch_template()
                .launch_template_name(format!("{STACK}-eks-nodes"))
                .default_version(n.to_string())
                .send()
                .await
                .unwrap();
            (a, vec!["EKS.5"])
        }
        "ECR.1" => {
            let (a, _) = Box::pin(applied()).await;
            aws_sdk_ecr::Client::new(&a.config)
                .put_image_scanning_configuration()
                .repository_name(STACK)
                .image_scanning_configuration(
                    aws_sdk_ecr::types::ImageScanningConfiguration::builder().scan_on_push(false).build(),
                )
                .send()
                .await
                .unwrap();
            (a, vec!["ECR.1"])
        }
        "IAM.1" | "IAM.2" | "IAM.3" => {
            let (a, _) = Box::pin(applied()).await;
            let iam = aws_sdk_iam::Client::new(&a.config);
            let role = format!("DifyEE-Role-{STACK}-s3");
            match case {
                "IAM.1" => {
                    let r = iam.get_role().role_name(&role).send().await.unwrap();
                    let doc = dify_stack::iam::policy::parse_document(r.role().unwrap().assume_role_policy_document().unwrap()).unwrap();
                    let mut doc = doc;
                    // Trust every service account of the cluster (the original's defect).
                    let cond = doc["Statement"][0]["Condition"]["StringEquals"].as_object_mut().unwrap();
                    let sub = cond.keys().find(|k| k.ends_with(":sub")).unwrap().clone();
                    cond.remove(&sub);
                    iam.update_assume_role_policy().role_name(&role).policy_document(doc.to_string()).send().await.unwrap();
                }
                "IAM.2" => drop(
                    iam.put_role_policy()
                        .role_name(&role)
                        .policy_name("extra")
                        .policy_document(format!(r#"{{"Version":"2012-10-17","Statement":[{{"Effect":"Allow","Action":"s3:*","Resource":"arn:aws:s3:::{}"}}]}}"#, bucket(&a)))
                        .send()
                        .await
                        .unwrap(),
                ),
                _ => drop(
                    iam.put_role_policy()
                        .role_name(&role)
                        .policy_name("extra")
                        .policy_document(r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"s3:GetObject","Resource":"*"}]}"#)
                        .send()
                        .await
                        .unwrap(),
                ),
            }
            (
                a,
                vec![if case == "IAM.1" {
                    "IAM.1"
                } else if case == "IAM.2" {
                    "IAM.2"
                } else {
                    "IAM.3"
                }],
            )
        }
        "EC2.1" | "EC2.2" => {
            let (a, _) = Box::pin(applied()).await;
            let ec2 = aws_sdk_ec2::Client::new(&a.config);
            let find = |name: String| {
                let ec2 = ec2.clone();
                async move {
                    let out = ec2
                        .describe_security_groups()
                        .filters(aws_sdk_ec2::types::Filter::builder().name("group-name").values(name).build())
                        .send()
                        .await
                        .unwrap();
                    (
                        out.security_groups()[0].group_id().unwrap().to_owned(),
                        out.security_groups()[0].vpc_id().unwrap().to_owned(),
                    )
                }
            };
            if case == "EC2.1" {
                let (nodes, _) = find(format!("{STACK}-eks-nodes")).await;
                ec2.authorize_security_group_ingress()
                    .group_id(nodes)
                    .ip_permissions(
                        IpPermission::builder()
                            .ip_protocol("tcp")
                            .from_port(22)
                            .to_port(22)
                            .ip_ranges(IpRange::builder().cidr_ip("0.0.0.0/0").build())
                            .build(),
                    )
                    .send()
                    .await
                    .unwrap();
                (a, vec!["EC2.1"])
            } else {
                let (aurora, vpc) = find(format!("{STACK}-aurora")).await;
                let other = ec2
                    .create_security_group()
                    .vpc_id(vpc)
                    .group_name("bastion")
                    .description("someone's bastion")
                    .send()
                    .await
                    .unwrap();
                ec2.authorize_security_group_ingress()
                    .group_id(aurora)
                    .ip_permissions(
                        IpPermission::builder()
                            .ip_protocol("tcp")
                            .from_port(5432)
                            .to_port(5432)
                            .user_id_group_pairs(UserIdGroupPair::builder().group_id(other.group_id().unwrap()).build())
                            .build(),
                    )
                    .send()
                    .await
                    .unwrap();
                (a, vec!["EC2.2"])
            }
        }
        other => panic!("no weakening for {other}"),
    }
}

/// Weakenings added for EKS.1 and the prod-only controls (on a prod stack); returns the account,
/// the profile to audit it as, and the controls that must fail (exactly). (A separate function:
/// one async fn with every case makes a poll frame too large for a test thread's stack in debug
/// builds.)
async fn weaken_more(case: &str) -> (TestAccount, Profile, Vec<&'static str>) {
    match case {
        "EKS.1" => {
            // Private endpoint off, public endpoint limited to one range: EKS.2 still holds.
            let (a, _) = Box::pin(applied()).await;
            let eks = aws_sdk_eks::Client::new(&a.config);
            eks.update_cluster_config()
                .name(STACK)
                .resources_vpc_config(
                    aws_sdk_eks::types::VpcConfigRequest::builder()
                        .endpoint_private_access(false)
                        .endpoint_public_access(true)
                        .public_access_cidrs("203.0.113.0/24")
                        .build(),
                )
                .send()
                .await
                .unwrap();
            (a, Profile::Test, vec!["EKS.1"])
        }
        "RDS.4" | "RDS.5" => {
            // Prod: deletion protection lifted, or backups kept 3 days (prod needs 7; Aurora
            // accepts 1 to 35: RDS API reference, ModifyDBCluster BackupRetentionPeriod, and the
            // Aurora user guide, "Overview of backing up and restoring an Aurora DB cluster").
            let (a, _) = Box::pin(applied_as(Profile::Prod)).await;
            let rds = aws_sdk_rds::Client::new(&a.config);
            let req = rds.modify_db_cluster().db_cluster_identifier(format!("{STACK}-aurora")).apply_immediately(true);
            let req = if case == "RDS.4" { req.deletion_protection(false) } else { req.backup_retention_period(3) };
            req.send().await.unwrap();
            (a, Profile::Prod, vec![if case == "RDS.4" { "RDS.4" } else { "RDS.5" }])
        }
        "EC.4" => {
            // Prod: automatic failover and Multi-AZ turned off.
            let (a, _) = Box::pin(applied_as(Profile::Prod)).await;
            aws_sdk_elasticache::Client::new(&a.config)
                .modify_replication_group()
                .replication_group_id(format!("{STACK}-redis"))
                .automatic_failover_enabled(false)
                .multi_az_enabled(false)
                .apply_immediately(true)
                .send()
                .await
                .unwrap();
            (a, Profile::Prod, vec!["EC.4"])
        }
        other => panic!("no weakening for {other}"),
    }
}

/// PLT.1: the controller's role trusts any service account of kube-system; PLT.2: the
/// autoscaler's role gets a statement its published policy does not have.
async fn weaken_platform(case: &str) -> (TestAccount, Vec<&'static str>) {
    let (a, _) = Box::pin(applied()).await;
    let iam = aws_sdk_iam::Client::new(&a.config);
    if case == "PLT.1" {
        // Any service account of kube-system may assume the controller's role.
        let role = format!("{STACK}-aws-load-balancer-controller");
        let r = iam.get_role().role_name(&role).send().await.unwrap();
        let text = r.role().unwrap().assume_role_policy_document().unwrap();
        let mut doc = dify_stack::iam::policy::parse_document(text).unwrap();
        let cond = doc["Statement"][0]["Condition"].as_object_mut().unwrap();
        let mut equals = cond.remove("StringEquals").unwrap();
        let sub = equals.as_object().unwrap().keys().find(|k| k.ends_with(":sub")).unwrap().clone();
        let like = serde_json::json!({ sub.clone(): "system:serviceaccount:kube-system:*" });
        equals.as_object_mut().unwrap().remove(&sub);
        cond.insert("StringEquals".into(), equals);
        cond.insert("StringLike".into(), like);
        iam.update_assume_role_policy().role_name(&role).policy_document(doc.to_string()).send().await.unwrap();
    } else {
        // The autoscaler may scale any Auto Scaling group, not only the cluster's.
        iam.put_role_policy()
                    .role_name(format!("{STACK}-cluster-autoscaler"))
                    .policy_name("extra")
                    .policy_document(r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"autoscaling:SetDesiredCapacity","Resource":"*"}]}"#)
                    .send()
                    .await
                    .unwrap();
    }
    (a, vec![if case == "PLT.1" { "PLT.1" } else { "PLT.2" }])
}

#[tokio::test]
async fn each_weakened_resource_fails_exactly_its_control() {
    let cases = [
        "S3.1", "S3.2", "S3.3", "S3.4", "RDS.1", "RDS.2", "RDS.3", "RDS.4", "RDS.5", "EC.1", "EC.2", "EC.3", "EC.4",
        "OS.1", "OS.2", "OS.3", "OS.4", "OS.5", "OS.6", "EKS.1", "EKS.2", "EKS.3", "EKS.4", "EKS.5", "ECR.1", "IAM.1",
        "IAM.2", "IAM.3", "PLT.1", "PLT.2", "EC2.1", "EC2.2",
    ];
    let results: Vec<(String, Vec<&str>, Vec<&str>, String)> = futures::stream::iter(cases)
        .map(|case| async move {
            // The futures are large: keep them on the heap.
            let (account, profile, want) = match case {
                "EKS.1" | "RDS.4" | "RDS.5" | "EC.4" => Box::pin(weaken_more(case)).await,
                // Not through `weaken`: its poll frame is large in debug builds, and the stack of
                // a test thread is not.
                "PLT.1" | "PLT.2" => {
                    let (account, want) = Box::pin(weaken_platform(case)).await;
                    (account, Profile::Test, want)
                }
                _ => {
                    let (account, want) = Box::pin(weaken(case)).await;
                    (account, Profile::Test, want)
                }
            };
            let report = Box::pin(async { stack(&account, profile).await.audit().await.unwrap() }).await;
            (case.to_owned(), want, report.failed(), report.to_string())
        })
        .buffer_unordered(4)
        .collect()
        .await;
    let wrong: Vec<String> = results
        .iter()
        .filter(|(_, want, failed, _)| failed != want)
        .map(|(case, want, failed, report)| {
            format!("{case}: expected exactly {want:?} to fail, got {failed:?}\n{report}")
        })
        .collect();
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
    // Coverage from what the audit reported, not from the expectations: every control failed for
    // the case named after it.
    let uncovered: Vec<&str> = CONTROLS
        .iter()
        .map(|c| c.id)
        .filter(|id| !results.iter().any(|(case, _, failed, _)| case == id && failed.contains(id)))
        .collect();
    assert!(uncovered.is_empty(), "controls no weakening made fail: {uncovered:?}");
}
