//! The platform tier's EKS add-on, ACM and Route 53 calls, Helm and the IngressClass, in memory.
//!
//! `helm upgrade --install` (without `--wait`: the tier does not wait for the rollout) takes one
//! `helm_release` duration; a certificate is PENDING_VALIDATION until its sampled
//! `acm_validation` duration after the request has passed. Neither figure is in
//! `aws-durations.toml`: both are assumptions, listed as such in the benchmark's table.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use dify_stack::core::ids::{Arn, ClusterName};
use dify_stack::core::{AwsError, KubeFailure, Tags};
use dify_stack::platform::client::*;
use dify_stack::platform::helm::{HelmApi, HelmError, ReleaseInfo, ReleaseInstall};
use tokio::time::Instant;

use super::{Sim, ready, unmodelled};

#[derive(Default)]
struct State {
    addons: BTreeMap<String, (AddonState, Instant)>,
    certificates: Vec<(Certificate, Instant)>,
    records: BTreeMap<(String, String), Record>,
    releases: BTreeMap<String, ReleaseInfo>,
    ingress_class: Option<IngressClassState>,
}

/// The fake; clones share one account and cluster.
#[derive(Clone)]
pub(crate) struct FakePlatform {
    sim: Arc<Sim>,
    zone: Option<String>,
    state: Arc<Mutex<State>>,
}

impl FakePlatform {
    /// An empty account and cluster; `zone` is the public hosted zone of the domain, if any.
    pub(crate) fn new(sim: Arc<Sim>, zone: Option<String>) -> FakePlatform {
        FakePlatform { sim, zone, state: Arc::new(Mutex::new(State::default())) }
    }
}

#[async_trait]
impl AddonApi for FakePlatform {
    async fn offered_version(&self, addon: String, k8s: String) -> Result<Option<String>, AwsError> {
        self.sim.read().await;
        Ok(Some(format!("v-{addon}-{k8s}-eksbuild.1")))
    }
    async fn addon(&self, _cluster: ClusterName, addon: String) -> Result<Option<AddonState>, AwsError> {
        self.sim.read().await;
        Ok(self.state.lock().unwrap().addons.get(&addon).map(|(a, at)| AddonState {
            status: if ready(*at) { "ACTIVE" } else { "CREATING" }.to_owned(),
            ..a.clone()
        }))
    }
    async fn create_addon(
        &self,
        _cluster: ClusterName,
        addon: String,
        version: String,
        tags: Tags,
    ) -> Result<(), AwsError> {
        self.sim.write().await;
        // A Deployment add-on: ACTIVE once its sampled duration has passed (the tier waits for
        // it before the load balancer controller's release).
        let at = self.sim.ready_at_for("eks_addon", &addon);
        let state = AddonState { version, status: "CREATING".to_owned(), tags };
        self.state.lock().unwrap().addons.insert(addon, (state, at));
        Ok(())
    }
    async fn delete_addon(&self, _: ClusterName, _: String) -> Result<(), AwsError> {
        unmodelled("DeleteAddon")
    }
}

#[async_trait]
impl DnsApi for FakePlatform {
    async fn certificates_for(&self, domain: String) -> Result<Vec<Arn>, AwsError> {
        self.sim.read().await;
        let s = self.state.lock().unwrap();
        Ok(s.certificates.iter().filter(|(c, _)| c.domain == domain).map(|(c, _)| c.arn.clone()).collect())
    }
    async fn describe_certificate(&self, arn: Arn) -> Result<Option<Certificate>, AwsError> {
        self.sim.read().await;
        let s = self.state.lock().unwrap();
        Ok(s.certificates.iter().find(|(c, _)| c.arn == arn).map(|(c, at)| {
            let mut c = c.clone();
            // Issued once the validation record is in place and ACM's validation time passed.
            let validated = c.validation.iter().all(|r| s.records.contains_key(&(r.name.clone(), r.kind.clone())));
            if validated && ready(*at) {
                c.status = "ISSUED".to_owned();
            }
            c
        }))
    }
    async fn request_certificate(&self, r: CertificateRequest) -> Result<Arn, AwsError> {
        let CertificateRequest { domain, tags, .. } = r;
        self.sim.write().await;
        let arn = Arn::new(format!("arn:aws:acm:us-west-2:123456789012:certificate/{}", self.sim.id("cert")));
        let c = Certificate {
            arn: arn.clone(),
            validation: vec![Record::simple(&format!("_x1.{domain}"), "CNAME", "_x2.acm-validations.aws.")],
            domain,
            status: "PENDING_VALIDATION".to_owned(),
            tags,
            ..Default::default()
        };
        let at = self.sim.ready_at("acm_validation");
        self.state.lock().unwrap().certificates.push((c, at));
        Ok(arn)
    }
    async fn delete_certificate(&self, _: Arn) -> Result<(), AwsError> {
        unmodelled("DeleteCertificate")
    }
    async fn find_public_zone(&self, _domain: String) -> Result<Option<String>, AwsError> {
        self.sim.read().await;
        Ok(self.zone.clone())
    }
    async fn get_record(&self, _zone: String, name: String, kind: String) -> Result<Option<Record>, AwsError> {
        self.sim.read().await;
        Ok(self.state.lock().unwrap().records.get(&(name, kind)).cloned())
    }
    async fn change_records(&self, _zone: String, changes: Vec<(RecordAction, Record)>) -> Result<(), AwsError> {
        self.sim.write().await;
        let mut s = self.state.lock().unwrap();
        for (action, r) in changes {
            let key = (r.name.clone(), r.kind.clone());
            match action {
                RecordAction::Upsert => {
                    s.records.insert(key, r);
                }
                RecordAction::Delete => {
                    s.records.remove(&key);
                }
            }
        }
        Ok(())
    }
}

#[async_trait]
impl HelmApi for FakePlatform {
    async fn status(&self, release: String, _namespace: String) -> Result<Option<ReleaseInfo>, HelmError> {
        self.sim.read().await;
        Ok(self.state.lock().unwrap().releases.get(&release).cloned())
    }
    async fn upgrade_install(&self, r: ReleaseInstall) -> Result<(), HelmError> {
        let ReleaseInstall { name: release, chart, .. } = r;
        self.sim.read().await;
        tokio::time::sleep(self.sim.duration("helm_release")).await;
        let info = ReleaseInfo { chart: format!("{}-{}", chart.chart, chart.version), status: "deployed".to_owned() };
        self.state.lock().unwrap().releases.insert(release, info);
        Ok(())
    }
    async fn uninstall(&self, _: String, _: String) -> Result<(), HelmError> {
        Err(HelmError::Failed {
            verb: "uninstall",
            code: None,
            stderr: "the simulation models apply from empty only".into(),
        })
    }
}

#[async_trait]
impl IngressClassApi for FakePlatform {
    async fn ingress_class(&self, _name: String) -> Result<Option<IngressClassState>, KubeFailure> {
        self.sim.read().await;
        Ok(self.state.lock().unwrap().ingress_class.clone())
    }
    async fn apply_ingress_class(&self, _name: String, controller: String) -> Result<(), KubeFailure> {
        self.sim.read().await;
        self.state.lock().unwrap().ingress_class = Some(IngressClassState { controller, ours: true });
        Ok(())
    }
    async fn delete_ingress_class(&self, _: String) -> Result<(), KubeFailure> {
        self.sim.read().await;
        Ok(())
    }
}
