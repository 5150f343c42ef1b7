//! The real [`Stack`] over the in-memory account ([`crate::testing::FakeAccount`]): every
//! tier's own fake, the identity and the control bucket at the SDK's HTTP layer. The same
//! fakes the tiers' own tests and the simulated-time benchmark run over.

use std::sync::Arc;

use crate::testing::{FakeAccount, HOSTED_ZONE_ID, Sim};
use crate::{KubernetesAccess, Profile, Stack, StackConfig};

fn config(profile: Profile, domain: bool) -> StackConfig {
    let mut cfg = profile.config().with_name("fake-account").expect("a valid name");
    // No network in a unit test: no TLS read of the issuer, no checkip service.
    cfg.iam.discover_thumbprint = false;
    cfg.eks.kubernetes_access = KubernetesAccess::PublicCidrs;
    cfg.eks.endpoint.public_access_cidrs = vec!["203.0.113.7/32".to_owned()];
    if domain {
        cfg.dify.domain = Some("dify.example.com".to_owned());
        cfg.dify.hosted_zone_id = Some(HOSTED_ZONE_ID.to_owned());
    }
    cfg
}

/// From an empty account: apply converges the whole stack (its outputs name what the fakes
/// hold), the plan is then empty, a second apply writes nothing, and another operator's machine
/// (a new `Stack` over the same account) finds nothing to do.
#[tokio::test(start_paused = true)]
async fn over_the_tiers_fakes_a_stack_applies_from_empty_then_has_nothing_to_do() {
    for (profile, domain, azs) in [(Profile::Test, false, 2), (Profile::Test, true, 2), (Profile::Prod, true, 3)] {
        let what = format!("{profile:?}, domain {domain}");
        let cfg = config(profile, domain);
        let account = FakeAccount::new(Arc::new(Sim::instant()), cfg.environment(), &cfg.region);
        let stack = Stack::connect(cfg.clone(), account.sdk_config())
            .await
            .unwrap_or_else(|e| panic!("{what}: {e}"))
            .with_provisioners(account.provisioners());
        let out = stack.apply().await.unwrap_or_else(|e| panic!("{what}: {e}"));

        let net = out.network.as_ref().expect("network output");
        assert_eq!((net.public_subnets.len(), net.private_subnets.len()), (azs, azs), "{what}");
        let eks = out.eks.as_ref().expect("EKS output");
        assert_eq!(eks.cluster_name.as_str(), "fake-account", "{what}");
        assert_eq!(account.eks().state().cluster.as_ref().map(|c| c.name.as_str()), Some("fake-account"), "{what}");
        for (part, present) in [
            ("aurora", out.aurora.is_some()),
            ("redis", out.redis.is_some()),
            ("opensearch", out.opensearch.is_some()),
            ("bucket", out.bucket.is_some()),
            ("registry", out.registry.is_some()),
            ("iam", out.iam.is_some()),
            ("platform", out.platform.is_some()),
        ] {
            assert!(present, "{what}: no {part} output");
        }
        let certificate = out.certificate.as_ref().and_then(|c| c.certificate_arn.as_ref());
        assert_eq!(certificate.is_some(), domain, "{what}: {:?}", out.certificate);
        let releases = account.platform().world().releases.len();
        assert!(releases >= 2, "{what}: the controller and the autoscaler are Helm releases: {releases}");

        let plan = stack.plan().await.unwrap();
        assert!(plan.is_empty(), "{what}: after apply\n{plan}");
        let (writes, log) = (account.sim().writes(), account.platform().world().log.len());
        let eks_writes = account.eks().writes().len();
        let again = stack.apply().await.unwrap_or_else(|e| panic!("{what}: second apply: {e}"));
        assert_eq!(
            account.sim().writes(),
            writes,
            "{what}: a converged apply writes (EKS: {:?}, platform: {:?})",
            &account.eks().writes()[eks_writes..],
            &account.platform().world().log[log..]
        );
        let later: Vec<String> = account.platform().world().log[log..].to_vec();
        assert!(!later.iter().any(|l| l.starts_with("helm upgrade")), "{what}: {later:?}");
        assert_eq!(again.eks.as_ref().map(|e| &e.cluster_arn), Some(&eks.cluster_arn), "{what}");

        let other = Stack::connect(cfg, account.sdk_config()).await.unwrap().with_provisioners(account.provisioners());
        let plan = other.plan().await.unwrap();
        assert!(plan.is_empty(), "{what}: another machine\n{plan}");
    }
}
