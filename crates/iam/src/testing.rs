//! The IAM tier's in-memory fake of its IAM calls and its Kubernetes service accounts, timed by
//! core's simulation ([`dify_stack_core::sim`]; Kubernetes API calls count as reads: they take
//! milliseconds, not the seconds of a control-plane object). The tier's own tests and the
//! simulated-time benchmark (the whole stack) run the real provisioner over it. It models apply
//! and plan; the calls of a repair or a destroy fail naming themselves (`NotModelled`).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use dify_stack_core::ids::{Arn, OidcProviderArn, RoleArn};
use dify_stack_core::sim::{Sim, unmodelled};
use dify_stack_core::{AwsError, KubeFailure, Tags};

use crate::client::*;
use crate::k8s::{IrsaServiceAccount, ManagedServiceAccount, ServiceAccountApi};

#[derive(Debug, Default)]
struct State {
    providers: Vec<OidcInfo>,
    roles: BTreeMap<String, (RoleInfo, BTreeMap<String, String>)>,
    accounts: BTreeMap<(String, String), ManagedServiceAccount>,
    storage_class: bool,
}

/// The fake; clones share one account and cluster (the provisioner takes the IAM client and
/// the service accounts separately).
#[derive(Debug, Clone)]
pub struct FakeIam {
    sim: Arc<Sim>,
    state: Arc<Mutex<State>>,
}

impl FakeIam {
    /// An empty account and cluster.
    pub fn new(sim: Arc<Sim>) -> FakeIam {
        FakeIam { sim, state: Arc::new(Mutex::new(State::default())) }
    }
}

#[async_trait]
impl IamApi for FakeIam {
    async fn list_oidc_providers(&self) -> Result<Vec<OidcInfo>, AwsError> {
        self.sim.read().await;
        Ok(self.state.lock().unwrap().providers.clone())
    }
    async fn create_oidc_provider(&self, c: OidcCreate) -> Result<OidcProviderArn, AwsError> {
        let OidcCreate { url, client_ids, tags, .. } = c;
        self.sim.write().await;
        let arn = OidcProviderArn::new(format!(
            "arn:aws:iam::123456789012:oidc-provider/{}",
            url.trim_start_matches("https://")
        ));
        self.state.lock().unwrap().providers.push(OidcInfo { arn: arn.clone(), url, client_ids, tags });
        Ok(arn)
    }
    async fn add_client_id(&self, _: OidcProviderArn, _: String) -> Result<(), AwsError> {
        unmodelled("AddClientIDToOpenIDConnectProvider")
    }
    async fn delete_oidc_provider(&self, _: OidcProviderArn) -> Result<(), AwsError> {
        unmodelled("DeleteOpenIDConnectProvider")
    }
    async fn get_role(&self, name: String) -> Result<Option<RoleInfo>, AwsError> {
        self.sim.read().await;
        Ok(self.state.lock().unwrap().roles.get(&name).map(|(r, _)| r.clone()))
    }
    async fn create_role(&self, name: String, trust: String, tags: Tags) -> Result<RoleInfo, AwsError> {
        self.sim.write().await;
        let r = RoleInfo {
            arn: RoleArn::new(format!("arn:aws:iam::123456789012:role/{name}")),
            name: name.clone(),
            trust,
            tags,
        };
        self.state.lock().unwrap().roles.insert(name, (r.clone(), BTreeMap::new()));
        Ok(r)
    }
    async fn update_trust(&self, _: String, _: String) -> Result<(), AwsError> {
        unmodelled("UpdateAssumeRolePolicy")
    }
    async fn tag_role(&self, name: String, tags: Tags) -> Result<(), AwsError> {
        self.sim.write().await;
        if let Some((r, _)) = self.state.lock().unwrap().roles.get_mut(&name) {
            r.tags.extend(tags);
        }
        Ok(())
    }
    async fn get_role_policy(&self, role: String, policy: String) -> Result<Option<String>, AwsError> {
        self.sim.read().await;
        Ok(self.state.lock().unwrap().roles.get(&role).and_then(|(_, p)| p.get(&policy).cloned()))
    }
    async fn put_role_policy(&self, role: String, policy: String, document: String) -> Result<(), AwsError> {
        self.sim.write().await;
        if let Some((_, p)) = self.state.lock().unwrap().roles.get_mut(&role) {
            p.insert(policy, document);
        }
        Ok(())
    }
    async fn list_role_policies(&self, role: String) -> Result<Vec<String>, AwsError> {
        self.sim.read().await;
        Ok(self.state.lock().unwrap().roles.get(&role).map(|(_, p)| p.keys().cloned().collect()).unwrap_or_default())
    }
    async fn delete_role_policy(&self, _: String, _: String) -> Result<(), AwsError> {
        unmodelled("DeleteRolePolicy")
    }
    async fn list_attached_policies(&self, _role: String) -> Result<Vec<Arn>, AwsError> {
        self.sim.read().await;
        Ok(Vec::new())
    }
    async fn detach_role_policy(&self, _: String, _: Arn) -> Result<(), AwsError> {
        unmodelled("DetachRolePolicy")
    }
    async fn delete_role(&self, _: String) -> Result<(), AwsError> {
        unmodelled("DeleteRole")
    }
}

/// The cluster's service accounts, through the same fake (shared state, no AWS time).
#[async_trait]
impl ServiceAccountApi for FakeIam {
    async fn apply_namespace(&self, _namespace: String) -> Result<(), KubeFailure> {
        self.sim.read().await;
        Ok(())
    }
    async fn apply_service_account(&self, a: IrsaServiceAccount) -> Result<(), KubeFailure> {
        self.sim.read().await;
        let sa = ManagedServiceAccount {
            name: a.name.clone(),
            role_arn: Some(a.role_arn),
            helm_release: Some(a.helm_release),
        };
        self.state.lock().unwrap().accounts.insert((a.namespace, a.name), sa);
        Ok(())
    }
    async fn list_managed(&self, namespace: String) -> Result<Vec<ManagedServiceAccount>, KubeFailure> {
        self.sim.read().await;
        let s = self.state.lock().unwrap();
        Ok(s.accounts.iter().filter(|((ns, _), _)| *ns == namespace).map(|(_, a)| a.clone()).collect())
    }
    async fn delete_service_account(&self, namespace: String, name: String) -> Result<(), KubeFailure> {
        self.sim.read().await;
        self.state.lock().unwrap().accounts.remove(&(namespace, name));
        Ok(())
    }
    async fn delete_namespace_if_ours_and_empty(&self, _namespace: String) -> Result<bool, KubeFailure> {
        self.sim.read().await;
        Ok(false)
    }
    async fn default_storage_class_present(&self) -> Result<bool, KubeFailure> {
        self.sim.read().await;
        Ok(self.state.lock().unwrap().storage_class)
    }
    async fn apply_default_storage_class(&self) -> Result<(), KubeFailure> {
        self.sim.read().await;
        self.state.lock().unwrap().storage_class = true;
        Ok(())
    }
}
