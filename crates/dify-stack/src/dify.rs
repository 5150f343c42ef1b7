//! Dify EE on the stack: its Helm values, install and uninstall.

use crate::Incomplete;
use crate::Stack;
use crate::StackError;
use crate::StackOutput;
use crate::ValuesSecrets;
use crate::chart;
use crate::helm_values;
use crate::install;
use crate::output;
use crate::preflight;
use crate::wiring;
use secrecy::{ExposeSecret as _, SecretString};

impl Stack {
    /// The Dify EE Helm values for `out`, with the secret values read from Secrets Manager.
    pub async fn helm_values(&self, out: &StackOutput) -> Result<String, StackError> {
        let runner = self.runner();
        let secrets = runner.secrets();
        let read = |arn: Option<dify_stack_core::ids::SecretArn>, what: &'static str| async move {
            let arn = arn.ok_or(Incomplete::NoSecret { secret: what })?;
            secrets.get_value(arn).await.map_err(StackError::from)
        };
        // The application role's secret, never the RDS-managed master secret (rotated every 7
        // days: Dify would lose its database a week after install).
        let db = read(out.aurora.as_ref().map(|a| a.app_secret.arn.clone()), "Aurora application role").await?;
        // A secret without the key the values need is an error, never an empty string.
        let key = |value: &SecretString, secret: &'static str, key: &'static str| -> Result<String, StackError> {
            let json: serde_json::Value = serde_json::from_str(value.expose_secret()).unwrap_or_default();
            let found = json[key].as_str().filter(|v| !v.is_empty()).map(str::to_owned);
            Ok(found.ok_or(Incomplete::SecretKey { secret, key })?)
        };
        let redis = read(out.redis.as_ref().map(|r| r.auth_secret_arn.clone()), "Redis AUTH").await?;
        if redis.expose_secret().is_empty() {
            return Err(Incomplete::EmptySecret { secret: "Redis AUTH" }.into());
        }
        let os = read(out.opensearch.as_ref().map(|o| o.master_secret_arn.clone()), "OpenSearch master").await?;
        let values = ValuesSecrets {
            database_password: SecretString::from(key(&db, "Aurora application role", "password")?),
            redis_password: redis,
            opensearch_user: key(&os, "OpenSearch master", "username")?,
            opensearch_password: SecretString::from(key(&os, "OpenSearch master", "password")?),
        };
        Ok(helm_values(out, &values, &self.site(out), wiring::node_arch(&self.cfg))?)
    }

    /// Where Dify is served: the configured domain, with your certificate or the one the
    /// platform node made for it.
    pub(crate) fn site(&self, out: &StackOutput) -> chart::DifySettings {
        let mut site = self.cfg.dify.clone();
        if site.certificate_arn.is_none() {
            site.certificate_arn = out.certificate.as_ref().and_then(|c| c.certificate_arn.clone());
        }
        site
    }

    /// What `install` needs of the configuration, checked before any change: a domain (Dify EE
    /// serves its console, API and apps on DNS host names; `ingress.useIpAsHost` is for the
    /// community edition only).
    pub fn check_install(&self) -> Result<(), StackError> {
        if self.cfg.dify.domain.is_none() {
            return Err(StackError::Install(install::InstallError::NoDomain));
        }
        Ok(())
    }

    /// The images the Dify EE release will run on this stack's nodes: the chart's, with the
    /// `-arm64` tags on Graviton, the China mirror and the configured overrides.
    pub fn release_images(&self) -> Vec<chart::ResolvedImage> {
        self.cfg.dify.images(wiring::node_arch(&self.cfg), self.ctx.partition())
    }

    /// The image preflight ([`preflight`]): every image the release will run must have a
    /// manifest for the nodes' platform. `Ok` carries the warnings (a registry that could not be
    /// asked); an image known not to run is an error naming each one and the fix. ECR
    /// registries are asked with a token from this stack's credentials, others anonymously
    /// (unless `options` say otherwise).
    pub async fn check_images(&self, options: Option<preflight::ImageCheckOptions>) -> Result<Vec<String>, StackError> {
        let options = options.unwrap_or_else(|| preflight::ImageCheckOptions {
            credentials: std::sync::Arc::new(EcrCredentials { ecr: aws_sdk_ecr::Client::new(&self.sdk) }),
            ..preflight::ImageCheckOptions::new(wiring::node_arch(&self.cfg))
        });
        preflight::check_images(&self.release_images(), &options)
            .await
            .into_result()
            .map_err(|e| StackError::Install(install::InstallError::Images(e)))
    }

    /// Installs (or upgrades) Dify EE: `helm upgrade --install` with the values rendered from
    /// `out`, then waits until every Deployment and StatefulSet of the release is rolled out,
    /// telling `progress` what is pending; with a domain, meanwhile waits for the Ingress's load
    /// balancer and points the domain's aliases at it. With a domain, then probes the console's
    /// login page until it answers; returns where Dify answers (the console URL, or the address
    /// of the release's load balancer when its Ingress has one).
    pub async fn install_dify(
        &self,
        release: &install::DifyRelease,
        out: &StackOutput,
        progress: &(dyn Fn(&str) + Send + Sync),
    ) -> Result<Option<String>, StackError> {
        self.check_install()?;
        if !release.skip_image_check {
            for warning in self.check_images(None).await? {
                progress(&format!("image check: {warning}"));
            }
        }
        let values = self.helm_values(out).await?;
        let eks = out.eks.as_ref().ok_or(Incomplete::NoOutput { node: "cluster" })?;
        let (token, client) = self.cluster_access(eks).await?;
        if let Some(controller) = install::load_balancer_controller(out) {
            // Its webhooks (Service mutator, Ingress validator; failurePolicy Fail) refuse the
            // chart's Services and Ingress until its pods serve (aws-load-balancer-controller
            // #4140, eks-charts #1058); apply installs it without waiting for its rollout.
            progress("waiting for the AWS Load Balancer Controller to serve its webhooks");
            install::wait_rollout(&client, &controller, &self.ctx.wait, self.ctx.cancellation(), progress).await?;
        }
        install::helm_install(release, &values, &eks.endpoint, &eks.ca_data, &token).await?;
        // The rollout (image pulls, migrations) and the Ingress's load balancer (made by the
        // controller from the moment the Ingress exists, 1-3 min) with its DNS aliases run side
        // by side: the aliases need the load balancer, not the pods, and Route 53 propagates
        // them while the pods start (the benchmark's login-page row measures the difference).
        let rollout = async {
            install::wait_rollout(&client, release, &self.ctx.wait, self.ctx.cancellation(), progress)
                .await
                .map_err(StackError::from)
        };
        let aliases = async {
            let (Some(domain), Some(zone)) =
                (&self.cfg.dify.domain, out.certificate.as_ref().and_then(|c| c.hosted_zone_id.as_ref()))
            else {
                return Ok(());
            };
            progress(&format!("waiting for the load balancer of the release's Ingress, for the {domain} aliases"));
            let target = self.release_load_balancer(release, out).await?;
            let dns = dify_stack_platform::SdkDns::from_conf(&self.sdk);
            let names = dify_stack_platform::aliases::publish(&self.ctx, &dns, zone, domain, &target).await.map_err(
                |source| StackError::Aliases { action: "publish", domain: domain.clone(), source: Box::new(source) },
            )?;
            progress(&format!("{} now point at {}", names.join(", "), target.dns_name));
            Ok::<(), StackError>(())
        };
        tokio::try_join!(rollout, aliases)?;
        if let Some(domain) = &self.cfg.dify.domain {
            let scheme = if self.site(out).certificate_arn.is_some() { "https" } else { "http" };
            let url = format!("{scheme}://console.{domain}/");
            progress(&format!("waiting for {url} to answer"));
            let status = install::probe_console(&url, &self.ctx.wait, self.ctx.cancellation()).await?;
            return Ok(Some(format!("{url} (HTTP {status})")));
        }
        Ok(ingress_address(&client, release).await)
    }

    /// Uninstalls the Dify EE release, then waits (up to 10 min) until the load balancers that
    /// its Ingress and Services made are deleted by their controller, so a destroy that follows
    /// finds the subnets free. The namespace and the six service accounts with their IRSA
    /// annotations stay: the ones Helm deleted with the release (it deletes what it adopted)
    /// are re-applied.
    pub async fn uninstall_dify(&self, release: &install::DifyRelease, out: &StackOutput) -> Result<(), StackError> {
        let eks = out.eks.as_ref().ok_or(Incomplete::NoOutput { node: "cluster" })?;
        let vpc = out.network.as_ref().ok_or(Incomplete::NoOutput { node: "network" })?;
        // The accounts Helm deletes with the release come back (apply made them; role-only
        // access leaves them to you).
        let accounts = match (self.cfg.creates_service_accounts(), out.iam.as_ref()) {
            (true, Some(iam)) => output::service_accounts(iam, &release.name),
            _ => Vec::new(),
        };
        self.uninstall_from(release, eks, vpc.vpc_id.as_str(), &accounts).await
    }

    /// The load balancer the controller made for the release's Ingress, waited for (up to 10
    /// min: the controller makes it within a minute or two of the Ingress).
    pub(crate) async fn release_load_balancer(
        &self,
        release: &install::DifyRelease,
        out: &StackOutput,
    ) -> Result<dify_stack_platform::aliases::AliasTarget, StackError> {
        use dify_stack_core::wait::{self, Probe};
        use dify_stack_eks::load_balancers::{LoadBalancerApi as _, LoadBalancerKind, SdkLoadBalancers};
        let eks = out.eks.as_ref().ok_or(Incomplete::NoOutput { node: "cluster" })?;
        let vpc = out.network.as_ref().ok_or(Incomplete::NoOutput { node: "network" })?;
        let lbs = SdkLoadBalancers::from_conf(&self.sdk);
        let (vpc, cluster, ns) = (vpc.vpc_id.clone(), eks.cluster_name.clone(), release.namespace.clone());
        let what = format!("the load balancer of namespace {ns}'s Ingress");
        wait::until(&what, &self.ctx.wait.capped(install::LOAD_BALANCERS_GONE_CAP), self.ctx.cancellation(), || async {
            let found = lbs.cluster_load_balancers(vpc.clone(), cluster.clone(), Some(ns.clone())).await?;
            for lb in found.iter().filter(|l| l.kind == LoadBalancerKind::V2) {
                if let Some((dns_name, hosted_zone_id)) = lbs.alias_target(&lb.id).await? {
                    return Ok(Probe::Done(dify_stack_platform::aliases::AliasTarget { dns_name, hosted_zone_id }));
                }
            }
            Ok::<_, dify_stack_core::AwsError>(Probe::Pending("none yet".into()))
        })
        .await
        .map_err(|e| StackError::ReleaseLoadBalancer(Box::new(e)))
    }

    pub(crate) async fn uninstall_from(
        &self,
        release: &install::DifyRelease,
        eks: &dify_stack_eks::EksOutput,
        vpc: &str,
        keep: &[dify_stack_iam::IrsaServiceAccount],
    ) -> Result<(), StackError> {
        // The aliases first: the names must not point at a load balancer about to go.
        // Aliases exist only where the certificate node manages the domain.
        if let Some(spec) = wiring::certificate_spec(&self.cfg) {
            let domain = &spec.domain.name;
            let no_aliases =
                |source| StackError::Aliases { action: "remove", domain: domain.clone(), source: Box::new(source) };
            let certificates = dify_stack_platform::CertificateProvisioner::from_conf(&self.sdk);
            if let Some(zone) = certificates.hosted_zone(&spec).await.map_err(no_aliases)? {
                let dns = dify_stack_platform::SdkDns::from_conf(&self.sdk);
                dify_stack_platform::aliases::remove(&self.ctx, &dns, &zone, domain).await.map_err(no_aliases)?;
            }
        }
        let (token, client) = self.cluster_access(eks).await?;
        install::uninstall_keeping_accounts(release, &eks.endpoint, &eks.ca_data, &token, &client, keep).await?;
        let lbs = dify_stack_eks::load_balancers::SdkLoadBalancers::from_conf(&self.sdk);
        dify_stack_eks::load_balancers::wait_namespace_load_balancers_gone(
            &lbs,
            vpc,
            eks.cluster_name.as_str(),
            &release.namespace,
            &self.ctx.wait.capped(install::LOAD_BALANCERS_GONE_CAP),
            self.ctx.cancellation(),
        )
        .await
        .map_err(|e| install::InstallError::LoadBalancersLeft(Box::new(e)))?;
        Ok(())
    }

    /// A fresh EKS token for `eks` and a client, for Helm and kube-rs.
    pub(crate) async fn cluster_access(
        &self,
        eks: &dify_stack_eks::EksOutput,
    ) -> Result<(SecretString, kube::Client), StackError> {
        let credentials = self.sdk.credentials_provider().ok_or(Incomplete::NoCredentials)?;
        let tokens = dify_stack_eks::TokenSource::new(credentials, eks.cluster_name.as_str(), &eks.region);
        let token = tokens.token().await?;
        let client = dify_stack_eks::kube_client(eks, &tokens).await?;
        Ok((SecretString::from(token.secret().expose_secret().to_owned()), client))
    }
}

/// The hostname of the load balancer of the release's Ingress, when it has one.
pub(crate) async fn ingress_address(client: &kube::Client, release: &install::DifyRelease) -> Option<String> {
    let api: kube::Api<k8s_openapi::api::networking::v1::Ingress> =
        kube::Api::namespaced(client.clone(), &release.namespace);
    let list = api.list(&kube::api::ListParams::default()).await.ok()?;
    list.items.iter().find_map(|i| {
        let lb = i.status.as_ref()?.load_balancer.as_ref()?.ingress.as_ref()?.first()?;
        lb.hostname.clone().or_else(|| lb.ip.clone())
    })
}

/// Registry credentials for ECR registries (`<account>.dkr.ecr.<region>.amazonaws.com[.cn]`):
/// `ecr:GetAuthorizationToken` gives a base64 `AWS:<password>` valid 12 h (ECR user guide,
/// "Private registry authentication"); anonymous elsewhere (public ECR, Docker Hub and the
/// mirrors hand out anonymous pull tokens).
struct EcrCredentials {
    ecr: aws_sdk_ecr::Client,
}

#[async_trait::async_trait]
impl preflight::RegistryCredentials for EcrCredentials {
    async fn auth(&self, registry: &str) -> oci_client::secrets::RegistryAuth {
        use base64::Engine as _;
        use oci_client::secrets::RegistryAuth;
        let host = registry.split(':').next().unwrap_or(registry);
        if !(host.contains(".dkr.ecr.") && (host.ends_with(".amazonaws.com") || host.ends_with(".amazonaws.com.cn"))) {
            return RegistryAuth::Anonymous;
        }
        let Ok(answer) = self.ecr.get_authorization_token().send().await else { return RegistryAuth::Anonymous };
        let token = answer.authorization_data().first().and_then(|d| d.authorization_token()).unwrap_or_default();
        let decoded = base64::engine::general_purpose::STANDARD.decode(token).unwrap_or_default();
        match String::from_utf8(decoded).ok().and_then(|t| t.split_once(':').map(|(u, p)| (u.to_owned(), p.to_owned())))
        {
            Some((user, password)) => RegistryAuth::Basic(user, password),
            None => RegistryAuth::Anonymous,
        }
    }
}
