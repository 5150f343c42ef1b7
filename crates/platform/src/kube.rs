//! [`IngressClassApi`] over a `kube::Client`: server-side apply with the field manager
//! `dify-stack`, so a second apply changes nothing and another manager's fields are kept; the
//! load balancer controller chart's CRDs too, forced (Helm owns their fields).

use async_trait::async_trait;
use k8s_openapi::api::networking::v1::IngressClass;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, DeleteParams, Patch, PatchParams};

use dify_stack_core::KubeFailure;

use crate::client::{IngressClassApi, IngressClassState};

/// Field manager of every server-side apply (the IAM tier's too).
pub const FIELD_MANAGER: &str = "dify-stack";
/// Label put on every object we create.
pub const MANAGED_BY: (&str, &str) = ("app.kubernetes.io/managed-by", "dify-stack");

/// The IngressClass object.
pub fn ingress_class_manifest(name: &str, controller: &str) -> serde_json::Value {
    serde_json::json!({
        "apiVersion": "networking.k8s.io/v1",
        "kind": "IngressClass",
        "metadata": {"name": name, "labels": {MANAGED_BY.0: MANAGED_BY.1}},
        "spec": {"controller": controller},
    })
}

/// [`IngressClassApi`] over a `kube::Client`.
#[derive(Clone)]
pub struct KubeIngressClasses {
    client: kube::Client,
}

impl std::fmt::Debug for KubeIngressClasses {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("KubeIngressClasses")
    }
}

impl KubeIngressClasses {
    /// Uses `client`.
    pub fn new(client: kube::Client) -> Self {
        KubeIngressClasses { client }
    }

    fn api(&self) -> Api<IngressClass> {
        Api::all(self.client.clone())
    }
}

fn fail(operation: &'static str, name: &str, e: kube::Error) -> KubeFailure {
    failure(operation, format!("ingressclass {name}"), e)
}

fn failure(operation: &'static str, object: String, e: kube::Error) -> KubeFailure {
    KubeFailure::from_kube(operation, object, &e)
}

#[async_trait]
impl IngressClassApi for KubeIngressClasses {
    async fn ingress_class(&self, name: String) -> Result<Option<IngressClassState>, KubeFailure> {
        let found = self.api().get_opt(&name).await.map_err(|e| fail("get", &name, e))?;
        Ok(found.map(|c| IngressClassState {
            controller: c.spec.and_then(|s| s.controller).unwrap_or_default(),
            ours: c.metadata.labels.is_some_and(|l| l.get(MANAGED_BY.0).is_some_and(|v| v == MANAGED_BY.1)),
        }))
    }

    async fn apply_ingress_class(&self, name: String, controller: String) -> Result<(), KubeFailure> {
        let body = ingress_class_manifest(&name, &controller);
        self.api()
            .patch(&name, &PatchParams::apply(FIELD_MANAGER), &Patch::Apply(&body))
            .await
            .map_err(|e| fail("apply", &name, e))?;
        Ok(())
    }

    /// `PATCH .../customresourcedefinitions/<name>?fieldManager=dify-stack&force=true` with the
    /// chart's document as the apply configuration (what `kubectl apply --server-side
    /// --force-conflicts` sends).
    async fn apply_crd(&self, name: String, crd: serde_json::Value) -> Result<(), KubeFailure> {
        let api: Api<CustomResourceDefinition> = Api::all(self.client.clone());
        api.patch(&name, &PatchParams::apply(FIELD_MANAGER).force(), &Patch::Apply(&crd))
            .await
            .map_err(|e| failure("apply", format!("customresourcedefinition {name}"), e))?;
        Ok(())
    }

    async fn delete_ingress_class(&self, name: String) -> Result<(), KubeFailure> {
        match self.api().delete(&name, &DeleteParams::default()).await {
            Ok(_) => Ok(()),
            Err(kube::Error::Api(e)) if e.code == 404 => Ok(()),
            Err(e) => Err(fail("delete", &name, e)),
        }
    }
}
