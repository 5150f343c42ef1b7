//! The IAM tier against the local AWS emulator (role-only mode: no Kubernetes here).

use aws_sdk_iam::Client;
use dify_stack_core::{Context, Environment, Provisioner};
use dify_stack_emulator::Emulator;
use dify_stack_iam::policy::{self, RoleKind};
use dify_stack_iam::{IamProvisioner, IamSpec};

const ISSUER: &str = "https://oidc.eks.us-west-2.amazonaws.com/id/0123456789ABCDEF0123456789ABCDEF";

async fn setup() -> (Client, IamProvisioner, String) {
    let account = Emulator::shared().expect("emulator").account("us-west-2").await;
    (Client::new(&account.config), IamProvisioner::from_conf(&account.config), account.account_id)
}

fn spec(cluster: &str) -> IamSpec {
    IamSpec {
        cluster_name: cluster.into(),
        oidc_issuer_url: ISSUER.into(),
        bucket: format!("{cluster}-storage-123456789012").as_str().into(),
        bucket_kms_key_arn: None,
        plugin_repository_arn_pattern: format!(
            "arn:aws:ecr:us-west-2:123456789012:repository/{cluster}-ee-plugin-repo*"
        )
        .as_str()
        .into(),
        settings: dify_stack_iam::IamSettings {
            namespace: "dify".into(),
            thumbprints: vec![],
            discover_thumbprint: false,
            service_accounts: false,
            helm_release: "dify".into(),
        },
        addon_roles: vec![],
    }
}

fn ctx(stack: &str) -> Context {
    Context::new(stack, Environment::Test, "us-west-2").unwrap()
}

async fn decoded_trust(iam: &Client, role: &str) -> serde_json::Value {
    let r = iam.get_role().role_name(role).send().await.unwrap();
    policy::parse_document(r.role().unwrap().assume_role_policy_document().unwrap()).unwrap()
}

#[tokio::test]
async fn provider_and_roles_are_scoped_exactly_and_reapply_is_a_no_op() {
    let (iam, provisioner, account) = setup().await;
    let (ctx, spec) = (ctx("iam-a"), spec("iam-a"));
    assert_eq!(provisioner.plan(&ctx, &spec).await.unwrap().summary().create, 4);
    let out = provisioner.apply(&ctx, &spec).await.unwrap();
    assert_eq!(
        out.oidc_provider_arn,
        format!(
            "arn:aws:iam::{account}:oidc-provider/oidc.eks.us-west-2.amazonaws.com/id/0123456789ABCDEF0123456789ABCDEF"
        )
    );
    let provider =
        iam.get_open_id_connect_provider().open_id_connect_provider_arn(&out.oidc_provider_arn).send().await.unwrap();
    assert_eq!(provider.client_id_list(), ["sts.amazonaws.com"]);

    let issuer = policy::issuer_host_path(ISSUER);
    for kind in RoleKind::ALL {
        let name = kind.role_name("iam-a");
        assert_eq!(out.roles[&kind].as_str(), format!("arn:aws:iam::{account}:role/{name}"));
        let trust = decoded_trust(&iam, &name).await;
        let st = &trust["Statement"][0];
        assert_eq!(st["Action"], serde_json::json!(["sts:AssumeRoleWithWebIdentity"]));
        assert_eq!(st["Principal"]["Federated"], out.oidc_provider_arn.as_str());
        let subs: Vec<String> =
            kind.service_accounts().iter().map(|sa| format!("system:serviceaccount:dify:{sa}")).collect();
        let mut subs_sorted = subs.clone();
        subs_sorted.sort();
        assert_eq!(st["Condition"]["StringEquals"][format!("{issuer}:sub")], serde_json::json!(subs_sorted), "{name}");
        assert_eq!(st["Condition"]["StringEquals"][format!("{issuer}:aud")], "sts.amazonaws.com");

        let doc = iam.get_role_policy().role_name(&name).policy_name("dify-stack").send().await.unwrap();
        let permissions = policy::parse_document(doc.policy_document()).unwrap();
        assert!(policy::wildcard_grants(&permissions).is_empty(), "{name}: {permissions}");
        let text = permissions.to_string();
        match kind {
            RoleKind::S3 => assert!(!text.contains("ecr:"), "{text}"),
            RoleKind::S3Ecr => assert!(text.contains("ecr:PutImage") && text.contains("s3:PutObject"), "{text}"),
            RoleKind::EcrImagePull => assert!(!text.contains("ecr:PutImage") && !text.contains("s3:"), "{text}"),
        }
    }

    assert!(
        provisioner.plan(&ctx, &spec).await.unwrap().is_empty(),
        "{}",
        provisioner.plan(&ctx, &spec).await.unwrap()
    );
    assert_eq!(provisioner.apply(&ctx, &spec).await.unwrap(), out);

    let deleted = provisioner.destroy(&ctx, &spec).await.unwrap();
    assert_eq!(deleted.len(), 4);
    assert!(
        iam.list_roles().send().await.unwrap().roles().iter().all(|r| !r.role_name().starts_with("DifyEE-Role-iam-a"))
    );
    assert!(iam.list_open_id_connect_providers().send().await.unwrap().open_id_connect_provider_list().is_empty());
    assert!(provisioner.destroy(&ctx, &spec).await.unwrap().is_empty());
}

#[tokio::test]
async fn a_hand_edited_trust_policy_is_planned_as_update_and_repaired() {
    let (iam, provisioner, _) = setup().await;
    let (ctx, spec) = (ctx("iam-b"), spec("iam-b"));
    provisioner.apply(&ctx, &spec).await.unwrap();
    let role = RoleKind::S3.role_name("iam-b");
    // The original Terraform's defect: trust every service account of the cluster.
    let loose = serde_json::json!({"Version": "2012-10-17", "Statement": [{"Effect": "Allow",
        "Principal": {"Federated": "arn:aws:iam::1:oidc-provider/x"}, "Action": "sts:AssumeRoleWithWebIdentity",
        "Condition": {"StringLike": {"x:sub": "system:serviceaccount:*"}}}]});
    iam.update_assume_role_policy().role_name(&role).policy_document(loose.to_string()).send().await.unwrap();
    let plan = provisioner.plan(&ctx, &spec).await.unwrap();
    assert_eq!(plan.summary().update, 1, "{plan}");
    assert_eq!(plan.changes[0].resource.name, role);
    assert!(plan.changes[0].fields.iter().any(|f| f.path == "trust"));
    provisioner.apply(&ctx, &spec).await.unwrap();
    assert!(provisioner.plan(&ctx, &spec).await.unwrap().is_empty());
    assert!(!decoded_trust(&iam, &role).await.to_string().contains("StringLike"));
    provisioner.destroy(&ctx, &spec).await.unwrap();
}

#[tokio::test]
async fn a_same_named_role_of_someone_else_is_not_owned_and_never_deleted() {
    let (iam, provisioner, _) = setup().await;
    let role = RoleKind::S3.role_name("iam-c");
    iam.create_role().role_name(&role).assume_role_policy_document("{}").send().await.unwrap();
    let (ctx, spec) = (ctx("iam-c"), spec("iam-c"));
    assert!(matches!(provisioner.apply(&ctx, &spec).await.unwrap_err(), dify_stack_iam::IamError::NotOwned { .. }));
    provisioner.destroy(&ctx, &spec).await.unwrap();
    assert!(iam.get_role().role_name(&role).send().await.is_ok(), "still there");
}

#[tokio::test]
async fn an_addon_role_trusts_exactly_its_service_account_converges_and_goes_with_destroy() {
    let (iam, provisioner, _) = setup().await;
    let ctx = ctx("iam-addon");
    let mut spec = spec("iam-addon");
    let policy = serde_json::json!({"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Action": ["elasticloadbalancing:DescribeLoadBalancers"], "Resource": "*"}]});
    spec.addon_roles = vec![dify_stack_iam::AddonRole {
        addon: "aws-load-balancer-controller".into(),
        namespace: "kube-system".into(),
        service_account: "aws-load-balancer-controller".into(),
        policy: policy.clone(),
    }];
    let out = provisioner.apply(&ctx, &spec).await.unwrap();
    let role = "iam-addon-aws-load-balancer-controller";
    assert!(out.addon_roles["aws-load-balancer-controller"].as_str().ends_with(&format!(":role/{role}")));
    let trust = decoded_trust(&iam, role).await;
    let condition = &trust["Statement"][0]["Condition"]["StringEquals"];
    let issuer = ISSUER.trim_start_matches("https://");
    assert_eq!(
        condition[format!("{issuer}:sub")],
        serde_json::json!(["system:serviceaccount:kube-system:aws-load-balancer-controller"])
    );
    assert_eq!(condition[format!("{issuer}:aud")], serde_json::json!("sts.amazonaws.com"));
    let inline = iam.get_role_policy().role_name(role).policy_name("dify-stack").send().await.unwrap();
    assert_eq!(policy::parse_document(inline.policy_document()).unwrap(), policy::normalize(policy));
    assert!(provisioner.plan(&ctx, &spec).await.unwrap().is_empty(), "a second plan is empty");

    // A changed policy is planned as an update of this role only, and applied.
    spec.addon_roles[0].policy["Statement"][0]["Action"] = serde_json::json!(["elasticloadbalancing:DescribeTags"]);
    let plan = provisioner.plan(&ctx, &spec).await.unwrap();
    assert_eq!(plan.changes.len(), 1, "{plan}");
    assert!(plan.to_string().contains(role), "{plan}");
    provisioner.apply(&ctx, &spec).await.unwrap();
    assert!(provisioner.plan(&ctx, &spec).await.unwrap().is_empty());

    let deleted = provisioner.destroy(&ctx, &spec).await.unwrap();
    assert!(deleted.iter().any(|r| r.to_string().contains(role)), "{deleted:?}");
    assert!(iam.get_role().role_name(role).send().await.is_err(), "role left");
}
