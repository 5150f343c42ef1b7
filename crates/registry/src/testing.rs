//! The registry tier's in-memory fake of its ECR calls, timed by core's simulation
//! ([`dify_stack_core::sim`]): the tier's own tests and the simulated-time benchmark (the
//! whole stack) run the real provisioner over it. It models every call of the client trait
//! (its repositories hold no images).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use dify_stack_core::ids::{Arn, RepositoryName};
use dify_stack_core::sim::Sim;
use dify_stack_core::{AwsError, Tags};

use crate::client::*;
use crate::spec::{Encryption, TagMutability};

/// A repository, its tags and its lifecycle policy.
type Repo = (RepoInfo, Tags, Option<String>);

/// The fake: clones share one registry, so a test keeps one to read what the provisioner made.
#[derive(Debug, Clone)]
pub struct FakeEcr {
    sim: Arc<Sim>,
    repos: Arc<Mutex<BTreeMap<String, Repo>>>,
}

impl FakeEcr {
    /// An empty registry.
    pub fn new(sim: Arc<Sim>) -> FakeEcr {
        FakeEcr { sim, repos: Arc::new(Mutex::new(BTreeMap::new())) }
    }

    /// The repositories' names, with their lifecycle policies.
    pub fn repositories(&self) -> BTreeMap<String, Option<String>> {
        self.repos.lock().unwrap().iter().map(|(n, (_, _, p))| (n.clone(), p.clone())).collect()
    }

    async fn change(&self, name: &str, f: impl FnOnce(&mut Repo)) -> Result<(), AwsError> {
        self.sim.write().await;
        let mut repos = self.repos.lock().unwrap();
        let r = repos
            .get_mut(name)
            .ok_or_else(|| AwsError::new("PutRepository*", "RepositoryNotFoundException", name.to_owned()))?;
        f(r);
        Ok(())
    }
}

#[async_trait]
impl EcrApi for FakeEcr {
    async fn list_repositories(&self) -> Result<Vec<RepoInfo>, AwsError> {
        self.sim.read().await;
        Ok(self.repos.lock().unwrap().values().map(|(r, _, _)| r.clone()).collect())
    }
    async fn list_tags(&self, arn: Arn) -> Result<Tags, AwsError> {
        self.sim.read().await;
        let repos = self.repos.lock().unwrap();
        Ok(repos.values().find(|(r, _, _)| r.arn == arn).map(|(_, t, _)| t.clone()).unwrap_or_default())
    }
    async fn get_lifecycle_policy(&self, name: RepositoryName) -> Result<Option<String>, AwsError> {
        self.sim.read().await;
        Ok(self.repos.lock().unwrap().get(name.as_str()).and_then(|(_, _, p)| p.clone()))
    }
    async fn image_count(&self, _name: RepositoryName) -> Result<usize, AwsError> {
        self.sim.read().await;
        Ok(0)
    }
    async fn create_repository(
        &self,
        name: RepositoryName,
        scan_on_push: bool,
        mutability: TagMutability,
        encryption: Encryption,
        tags: Tags,
    ) -> Result<RepoInfo, AwsError> {
        self.sim.write().await;
        let r = RepoInfo {
            arn: Arn::new(format!("arn:aws:ecr:us-west-2:123456789012:repository/{name}")),
            uri: format!("123456789012.dkr.ecr.us-west-2.amazonaws.com/{name}"),
            name: name.clone(),
            scan_on_push,
            mutability,
            encryption,
        };
        self.repos.lock().unwrap().insert(name.into_inner(), (r.clone(), tags, None));
        Ok(r)
    }
    async fn set_scan_on_push(&self, name: RepositoryName, scan_on_push: bool) -> Result<(), AwsError> {
        self.change(name.as_str(), |r| r.0.scan_on_push = scan_on_push).await
    }
    async fn set_mutability(&self, name: RepositoryName, mutability: TagMutability) -> Result<(), AwsError> {
        self.change(name.as_str(), |r| r.0.mutability = mutability).await
    }
    async fn put_lifecycle_policy(&self, name: RepositoryName, policy: String) -> Result<(), AwsError> {
        self.change(name.as_str(), |r| r.2 = Some(policy)).await
    }
    async fn tag(&self, arn: Arn, tags: Tags) -> Result<(), AwsError> {
        self.sim.write().await;
        if let Some((_, t, _)) = self.repos.lock().unwrap().values_mut().find(|(r, _, _)| r.arn == arn) {
            t.extend(tags);
        }
        Ok(())
    }
    /// The fake's repositories hold no images, so `force` changes nothing.
    async fn delete_repository(&self, name: RepositoryName, _force: bool) -> Result<(), AwsError> {
        self.sim.write().await;
        match self.repos.lock().unwrap().remove(name.as_str()) {
            Some(_) => Ok(()),
            None => Err(AwsError::new("DeleteRepository", "RepositoryNotFoundException", name.into_inner())),
        }
    }
}
