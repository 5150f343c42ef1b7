//! Kubernetes version upgrades against the strict emulator (moto with `moto_ext.py`,
//! `moto_day2.py` and `moto_upgrade.py`): EKS moves a control plane one minor at a time and
//! never back, only while it is ACTIVE and idle, lets node groups trail it by three minors at
//! most and never lead it, and reports upgrade insights about the next minor. Each rule is shown
//! twice, at the SDK level: the call a broken caller would make is refused with EKS's code, and
//! the call a correct caller makes goes through to the settled state.

use std::io::{Read as _, Write as _};
use std::time::Duration;

use aws_sdk_eks::error::ProvideErrorMetadata;
use aws_sdk_eks::types::{
    Category, ClusterStatus, InsightStatusValue, InsightsFilter, LogSetup, LogType, Logging, NodegroupStatus,
    UpdateStatus, UpdateType, VpcConfigRequest,
};
use dify_stack_emulator::{Emulator, TestAccount};

const NOT_LOADED: &str = "the strict emulator must load crates/emulator/python/moto_upgrade.py (the harness passes its source to launch.py as the fifth argument)";

struct Env {
    account: TestAccount,
    eks: aws_sdk_eks::Client,
    subnets: Vec<String>,
    role: String,
}

async fn setup() -> Env {
    let account = Emulator::shared().expect("emulator").account("us-west-2").await;
    let ec2 = aws_sdk_ec2::Client::new(&account.config);
    let vpc = ec2.create_vpc().cidr_block("10.0.0.0/16").send().await.unwrap();
    let vpc = vpc.vpc().unwrap().vpc_id().unwrap().to_owned();
    let mut subnets = Vec::new();
    for (cidr, az) in [("10.0.10.0/24", "us-west-2a"), ("10.0.11.0/24", "us-west-2b")] {
        let s = ec2.create_subnet().vpc_id(&vpc).cidr_block(cidr).availability_zone(az).send().await.unwrap();
        subnets.push(s.subnet().unwrap().subnet_id().unwrap().to_owned());
    }
    let iam = aws_sdk_iam::Client::new(&account.config);
    let role = iam.create_role().role_name("upgrade-rules").assume_role_policy_document("{}").send().await;
    let role = role.unwrap().role().unwrap().arn().to_owned();
    Env { eks: aws_sdk_eks::Client::new(&account.config), subnets, role, account }
}

impl Env {
    /// A cluster on `version`, ACTIVE.
    async fn cluster(&self, name: &str, version: &str) {
        dify_stack_emulator::retry_while_role_propagates(|| {
            self.eks
                .create_cluster()
                .name(name)
                .version(version)
                .role_arn(&self.role)
                .resources_vpc_config(VpcConfigRequest::builder().set_subnet_ids(Some(self.subnets.clone())).build())
                .send()
        })
        .await
        .unwrap();
        self.until(|| async {
            let c = self.eks.describe_cluster().name(name).send().await.unwrap();
            c.cluster().unwrap().status() == Some(&ClusterStatus::Active)
        })
        .await;
    }

    /// A managed node group created without a version (EKS uses the cluster's), ACTIVE.
    async fn nodegroup(&self, cluster: &str, name: &str) {
        self.eks
            .create_nodegroup()
            .cluster_name(cluster)
            .nodegroup_name(name)
            .node_role(&self.role)
            .set_subnets(Some(self.subnets.clone()))
            .send()
            .await
            .unwrap();
        self.until(|| async { self.nodegroup_state(cluster, name).await.0 == NodegroupStatus::Active }).await;
    }

    async fn nodegroup_state(&self, cluster: &str, name: &str) -> (NodegroupStatus, String, String) {
        let n = self.eks.describe_nodegroup().cluster_name(cluster).nodegroup_name(name).send().await.unwrap();
        let n = n.nodegroup().unwrap();
        (
            n.status().unwrap().clone(),
            n.version().unwrap_or_default().to_owned(),
            n.release_version().unwrap_or_default().to_owned(),
        )
    }

    async fn cluster_state(&self, name: &str) -> (ClusterStatus, String) {
        let c = self.eks.describe_cluster().name(name).send().await.unwrap();
        let c = c.cluster().unwrap();
        (c.status().unwrap().clone(), c.version().unwrap_or_default().to_owned())
    }

    /// Polls `done` until it holds (bounded; the emulator's pending states last a fraction of a
    /// second).
    async fn until<F, Fut>(&self, mut done: F)
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = bool>,
    {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        while !done().await {
            assert!(tokio::time::Instant::now() < deadline, "not settled within 30 s");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Polls DescribeUpdate (of a node group when `nodegroup` is given) until the update is no
    /// longer InProgress.
    async fn finished(&self, cluster: &str, nodegroup: Option<&str>, id: &str) -> UpdateStatus {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        loop {
            let u = self
                .eks
                .describe_update()
                .name(cluster)
                .update_id(id)
                .set_nodegroup_name(nodegroup.map(str::to_owned))
                .send()
                .await
                .unwrap();
            let status = u.update().unwrap().status().unwrap().clone();
            if status != UpdateStatus::InProgress || tokio::time::Instant::now() > deadline {
                return status;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// UpdateClusterVersion to `version`, waited until it succeeded.
    async fn upgrade(&self, cluster: &str, version: &str) {
        let out = self.eks.update_cluster_version().name(cluster).version(version).send().await;
        let out = out.unwrap_or_else(|e| panic!("{cluster} to {version}: {e:?}"));
        let id = out.update().unwrap().id().unwrap().to_owned();
        assert_eq!(self.finished(cluster, None, &id).await, UpdateStatus::Successful);
    }

    /// The emulator's insight fixture: the cluster's `insight` has `status` (standing for what EKS
    /// would find on a real cluster, e.g. a deprecated API in use).
    fn set_insight(&self, cluster: &str, insight: &str, status: &str, reason: &str) {
        let endpoint = Emulator::shared().unwrap().endpoint().trim_start_matches("http://").trim_end_matches('/');
        let body = serde_json::json!({
            "account": self.account.account_id, "region": "us-west-2", "cluster": cluster,
            "insight": insight, "status": status, "reason": reason,
        })
        .to_string();
        let mut stream = std::net::TcpStream::connect(endpoint).expect("the emulator is running");
        let request = format!(
            "POST /moto-api/dify-stack/insight HTTP/1.0\r\nHost: {endpoint}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        );
        stream.write_all(request.as_bytes()).unwrap();
        let mut reply = String::new();
        stream.read_to_string(&mut reply).unwrap();
        assert!(reply.starts_with("HTTP/1.") && reply.contains(" 200 "), "{NOT_LOADED}: {reply}");
    }
}

fn code<E: ProvideErrorMetadata, R>(e: &aws_sdk_eks::error::SdkError<E, R>) -> Option<String> {
    e.as_service_error().and_then(|s| s.code()).map(str::to_owned)
}

fn message<E: ProvideErrorMetadata, R>(e: &aws_sdk_eks::error::SdkError<E, R>) -> String {
    e.as_service_error().and_then(|s| s.message()).unwrap_or_default().to_owned()
}

#[tokio::test]
async fn update_cluster_version_moves_one_minor_at_a_time_and_never_back() {
    let env = setup().await;
    env.cluster("up-minor", "1.33").await;
    let update = || env.eks.update_cluster_version().name("up-minor");

    // A broken caller jumps to the target.
    let err = update().version("1.35").send().await.unwrap_err();
    assert_eq!(code(&err).as_deref(), Some("InvalidParameterException"), "{NOT_LOADED}: {err:?}");
    assert!(message(&err).contains("Unsupported Kubernetes minor version update from 1.33 to 1.35"), "{err:?}");
    let err = update().version("1.32").send().await.unwrap_err();
    assert_eq!(code(&err).as_deref(), Some("InvalidParameterException"), "{err:?}");
    assert!(message(&err).contains("from 1.33 to 1.32"), "{err:?}");
    assert_eq!(env.cluster_state("up-minor").await, (ClusterStatus::Active, "1.33".to_owned()));

    // The next minor goes through: UPDATING on the old version, then ACTIVE on the new one.
    let out = update().version("1.34").send().await.unwrap();
    let u = out.update().expect("UpdateClusterVersion answers with the update");
    assert_eq!(u.r#type(), Some(&UpdateType::VersionUpdate));
    assert_eq!(u.status(), Some(&UpdateStatus::InProgress));
    let version = u.params().iter().find(|p| p.r#type().map(|t| t.as_str()) == Some("Version"));
    assert_eq!(version.and_then(|p| p.value()), Some("1.34"));
    let id = u.id().unwrap().to_owned();
    let (status, during) = env.cluster_state("up-minor").await;
    assert_eq!(during, "1.33", "the version changes when the update is complete");
    assert!(matches!(status, ClusterStatus::Updating | ClusterStatus::Active), "{status:?}");
    assert_eq!(env.finished("up-minor", None, &id).await, UpdateStatus::Successful);
    assert_eq!(env.cluster_state("up-minor").await, (ClusterStatus::Active, "1.34".to_owned()));

    // And the next one after it.
    env.upgrade("up-minor", "1.35").await;
    assert_eq!(env.cluster_state("up-minor").await, (ClusterStatus::Active, "1.35".to_owned()));
}

#[tokio::test]
async fn update_cluster_version_is_refused_while_the_cluster_is_not_active_or_has_an_update_running() {
    let env = setup().await;
    // Straight after CreateCluster the cluster is CREATING.
    dify_stack_emulator::retry_while_role_propagates(|| {
        env.eks
            .create_cluster()
            .name("up-busy")
            .version("1.33")
            .role_arn(&env.role)
            .resources_vpc_config(VpcConfigRequest::builder().set_subnet_ids(Some(env.subnets.clone())).build())
            .send()
    })
    .await
    .unwrap();
    let err = env.eks.update_cluster_version().name("up-busy").version("1.34").send().await.unwrap_err();
    assert_eq!(code(&err).as_deref(), Some("ResourceInUseException"), "{NOT_LOADED}: {err:?}");
    env.until(|| async { env.cluster_state("up-busy").await.0 == ClusterStatus::Active }).await;

    let out = env.eks.update_cluster_version().name("up-busy").version("1.34").send().await.unwrap();
    let id = out.update().unwrap().id().unwrap().to_owned();
    // While it runs, neither another version update nor a config update is taken.
    let err = env.eks.update_cluster_version().name("up-busy").version("1.35").send().await.unwrap_err();
    assert_eq!(code(&err).as_deref(), Some("ResourceInUseException"), "{err:?}");
    assert!(message(&err).contains(&format!("currently has update {id} in progress")), "{err:?}");
    let logging =
        Logging::builder().cluster_logging(LogSetup::builder().types(LogType::Api).enabled(true).build()).build();
    let err = env.eks.update_cluster_config().name("up-busy").logging(logging.clone()).send().await.unwrap_err();
    assert_eq!(code(&err).as_deref(), Some("ResourceInUseException"), "{err:?}");
    assert!(message(&err).contains(&id), "{err:?}");

    // Waited for, the update is done and the next update is taken.
    assert_eq!(env.finished("up-busy", None, &id).await, UpdateStatus::Successful);
    env.eks.update_cluster_config().name("up-busy").logging(logging).send().await.unwrap();
}

#[tokio::test]
async fn node_groups_follow_the_control_plane_and_never_lead_it() {
    let env = setup().await;
    env.cluster("up-ng", "1.33").await;
    env.nodegroup("up-ng", "main").await;
    let (_, version, release_before) = env.nodegroup_state("up-ng", "main").await;
    assert_eq!(version, "1.33", "a node group created without a version runs the cluster's");
    assert!(release_before.starts_with("1.33."), "{release_before}");
    let update = || env.eks.update_nodegroup_version().cluster_name("up-ng").nodegroup_name("main");

    // A broken caller moves the nodes first.
    let err = update().version("1.34").send().await.unwrap_err();
    assert_eq!(code(&err).as_deref(), Some("InvalidParameterException"), "{NOT_LOADED}: {err:?}");
    assert!(message(&err).contains("1.34"), "{err:?}");

    env.upgrade("up-ng", "1.34").await;
    // An AMI release of another Kubernetes version is refused.
    let err = update().version("1.34").release_version("1.33.5-20250923").send().await.unwrap_err();
    assert_eq!(code(&err).as_deref(), Some("InvalidParameterException"), "{err:?}");
    assert!(message(&err).starts_with("Requested Nodegroup release version 1.33.5-20250923 is invalid"), "{err:?}");

    // After the control plane, the node group follows: UPDATING, then ACTIVE on the new version
    // with a new AMI release.
    let out = update().version("1.34").send().await.unwrap();
    let u = out.update().expect("UpdateNodegroupVersion answers with the update");
    assert_eq!(u.r#type(), Some(&UpdateType::VersionUpdate));
    let id = u.id().unwrap().to_owned();
    let err = update().version("1.34").send().await.unwrap_err();
    assert_eq!(code(&err).as_deref(), Some("ResourceInUseException"), "one update of a node group at a time: {err:?}");
    assert_eq!(env.finished("up-ng", Some("main"), &id).await, UpdateStatus::Successful);
    let (status, version, release) = env.nodegroup_state("up-ng", "main").await;
    assert_eq!((status, version.as_str()), (NodegroupStatus::Active, "1.34"));
    assert!(release.starts_with("1.34.") && release != release_before, "{release}");

    // Without a version, a node group update follows the cluster's version.
    env.upgrade("up-ng", "1.35").await;
    let out = update().send().await.unwrap();
    let id = out.update().unwrap().id().unwrap().to_owned();
    assert_eq!(env.finished("up-ng", Some("main"), &id).await, UpdateStatus::Successful);
    assert_eq!(env.nodegroup_state("up-ng", "main").await.1, "1.35");
}

#[tokio::test]
async fn the_control_plane_may_lead_node_groups_by_three_minors_only() {
    let env = setup().await;
    env.cluster("up-skew", "1.32").await;
    env.nodegroup("up-skew", "main").await;
    // The kubelet (1.32) may be three minors older than the API server.
    for version in ["1.33", "1.34", "1.35"] {
        env.upgrade("up-skew", version).await;
    }
    let skew = env.eks.list_insights().cluster_name("up-skew").send().await.unwrap();
    let skew = skew.insights().iter().find(|i| i.name() == Some("Kubelet version skew")).expect("a kubelet insight");
    assert_eq!(skew.kubernetes_version(), Some("1.36"));
    assert_eq!(skew.insight_status().and_then(|s| s.status()), Some(&InsightStatusValue::Error), "{skew:?}");

    // A fourth minor is refused until the node group follows.
    let err = env.eks.update_cluster_version().name("up-skew").version("1.36").send().await.unwrap_err();
    assert_eq!(code(&err).as_deref(), Some("InvalidParameterException"), "{NOT_LOADED}: {err:?}");
    assert!(
        message(&err)
            .contains("Nodegroups main must be updated to match cluster version 1.35 before updating cluster version"),
        "{err:?}"
    );
    let out = env.eks.update_nodegroup_version().cluster_name("up-skew").nodegroup_name("main").send().await.unwrap();
    let id = out.update().unwrap().id().unwrap().to_owned();
    assert_eq!(env.finished("up-skew", Some("main"), &id).await, UpdateStatus::Successful);
    assert_eq!(env.nodegroup_state("up-skew", "main").await.1, "1.35");
    env.upgrade("up-skew", "1.36").await;
}

#[tokio::test]
async fn upgrade_insights_are_about_the_next_minor_and_can_report_a_deprecated_api() {
    let env = setup().await;
    env.cluster("up-insights", "1.33").await;
    let readiness = || InsightsFilter::builder().categories(Category::UpgradeReadiness).build();
    let out = env.eks.list_insights().cluster_name("up-insights").filter(readiness()).send().await;
    let out = out.unwrap_or_else(|e| panic!("{NOT_LOADED}: {e:?}"));
    let insights = out.insights();
    assert!(insights.len() >= 5, "{insights:?}");
    for i in insights {
        assert_eq!(i.category(), Some(&Category::UpgradeReadiness));
        assert_eq!(i.kubernetes_version(), Some("1.34"));
        assert_eq!(i.insight_status().and_then(|s| s.status()), Some(&InsightStatusValue::Passing), "{i:?}");
        assert!(i.id().is_some() && i.last_refresh_time().is_some() && i.last_transition_time().is_some());
    }
    assert!(insights.iter().any(|i| i.name() == Some("Deprecated APIs removed in Kubernetes v1.34")));

    // The fixture stands for a workload that still calls an API removed in 1.34.
    let reason = "Deprecated API usage detected: /apis/flowcontrol.apiserver.k8s.io/v1beta3/flowschemas";
    env.set_insight("up-insights", "deprecated-apis", "ERROR", reason);
    let errors = InsightsFilter::builder().statuses(InsightStatusValue::Error).build();
    let out = env.eks.list_insights().cluster_name("up-insights").filter(errors).send().await.unwrap();
    let [found] = out.insights() else { panic!("one ERROR insight: {:?}", out.insights()) };
    assert_eq!(found.name(), Some("Deprecated APIs removed in Kubernetes v1.34"));
    assert_eq!(found.insight_status().and_then(|s| s.reason()), Some(reason));
    let detail = env.eks.describe_insight().cluster_name("up-insights").id(found.id().unwrap()).send().await.unwrap();
    let detail = detail.insight().unwrap();
    assert_eq!(detail.insight_status().and_then(|s| s.status()), Some(&InsightStatusValue::Error));
    assert!(detail.recommendation().is_some_and(|r| !r.is_empty()), "{detail:?}");

    // EKS does not refuse the upgrade over a finding (its enforcement is rolled back): it is the
    // caller's to stop. Once upgraded, the insights are about the next minor again.
    env.upgrade("up-insights", "1.34").await;
    let out = env.eks.list_insights().cluster_name("up-insights").filter(readiness()).send().await.unwrap();
    assert!(out.insights().iter().all(|i| i.kubernetes_version() == Some("1.35")), "{:?}", out.insights());
    assert!(
        out.insights()
            .iter()
            .all(|i| i.insight_status().and_then(|s| s.status()) == Some(&InsightStatusValue::Passing)),
        "{:?}",
        out.insights()
    );
}

#[tokio::test]
async fn every_addon_has_a_default_version_for_1_35() {
    let env = setup().await;
    for name in ["vpc-cni", "coredns", "kube-proxy", "eks-pod-identity-agent", "aws-ebs-csi-driver", "metrics-server"] {
        let out = env.eks.describe_addon_versions().addon_name(name).kubernetes_version("1.35").send().await.unwrap();
        let defaults: Vec<&str> = out
            .addons()
            .iter()
            .flat_map(|a| a.addon_versions())
            .filter(|v| v.compatibilities().iter().any(|c| c.cluster_version() == Some("1.35") && c.default_version()))
            .filter_map(|v| v.addon_version())
            .collect();
        assert_eq!(defaults.len(), 1, "{name}: {defaults:?}");
        match name {
            "coredns" => assert_eq!(defaults, ["v1.14.2-eksbuild.4"]),
            "kube-proxy" => assert_eq!(defaults, ["v1.35.3-eksbuild.2"]),
            _ => {}
        }
    }
}
