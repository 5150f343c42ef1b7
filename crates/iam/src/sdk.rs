//! The IAM client over the AWS SDK: the only code of the tier that builds SDK requests (role
//! calls through the shared adapters of `dify-stack-aws`). Documents come back decoded (IAM
//! percent-encodes them).

use async_trait::async_trait;
use aws_sdk_iam::Client;
use dify_stack_aws::iam::{self, decode_policy as decode, sdk_tags, tags_of};
use dify_stack_core::ids::{Arn, OidcProviderArn, RoleArn};
use dify_stack_core::{AwsError, AwsResultExt, Tags};

use crate::client::{IamApi, OidcCreate, OidcInfo, RoleInfo};

/// The real IAM client.
#[derive(Debug, Clone)]
pub struct SdkIam {
    client: Client,
}

impl SdkIam {
    /// Builds a client from shared SDK configuration.
    pub fn from_conf(config: &aws_types::SdkConfig) -> SdkIam {
        SdkIam { client: Client::new(config) }
    }
}

#[async_trait]
impl IamApi for SdkIam {
    async fn list_oidc_providers(&self) -> Result<Vec<OidcInfo>, AwsError> {
        let list = self.client.list_open_id_connect_providers().send().await.aws("ListOpenIDConnectProviders")?;
        let mut out = Vec::new();
        for arn in list.open_id_connect_provider_list().iter().filter_map(|p| p.arn()) {
            let p = match self
                .client
                .get_open_id_connect_provider()
                .open_id_connect_provider_arn(arn)
                .send()
                .await
                .aws("GetOpenIDConnectProvider")
            {
                Ok(p) => p,
                Err(e) if e.is_not_found() => continue,
                Err(e) => return Err(e),
            };
            out.push(OidcInfo {
                arn: OidcProviderArn::new(arn),
                url: p.url().unwrap_or_default().trim_start_matches("https://").to_owned(),
                client_ids: p.client_id_list().to_vec(),
                tags: tags_of(p.tags()),
            });
        }
        Ok(out)
    }

    async fn create_oidc_provider(&self, c: OidcCreate) -> Result<OidcProviderArn, AwsError> {
        let OidcCreate { url, client_ids, thumbprints, tags } = c;
        let out = self
            .client
            .create_open_id_connect_provider()
            .url(url)
            .set_client_id_list(Some(client_ids))
            .set_thumbprint_list((!thumbprints.is_empty()).then_some(thumbprints))
            .set_tags(Some(sdk_tags(&tags)))
            .send()
            .await
            .aws("CreateOpenIDConnectProvider")?;
        Ok(OidcProviderArn::new(out.open_id_connect_provider_arn().unwrap_or_default()))
    }

    async fn add_client_id(&self, arn: OidcProviderArn, client_id: String) -> Result<(), AwsError> {
        self.client
            .add_client_id_to_open_id_connect_provider()
            .open_id_connect_provider_arn(arn.into_inner())
            .client_id(client_id)
            .send()
            .await
            .aws("AddClientIDToOpenIDConnectProvider")?;
        Ok(())
    }

    async fn delete_oidc_provider(&self, arn: OidcProviderArn) -> Result<(), AwsError> {
        self.client
            .delete_open_id_connect_provider()
            .open_id_connect_provider_arn(arn.into_inner())
            .send()
            .await
            .aws("DeleteOpenIDConnectProvider")?;
        Ok(())
    }

    async fn get_role(&self, name: String) -> Result<Option<RoleInfo>, AwsError> {
        let role = iam::get_role(&self.client, &name).await?;
        Ok(role.map(|r| RoleInfo { name: r.name, arn: RoleArn::new(r.arn), trust: r.trust, tags: r.tags }))
    }

    async fn create_role(&self, name: String, trust: String, tags: Tags) -> Result<RoleInfo, AwsError> {
        let description = Some("Dify EE IRSA role managed by dify-stack");
        let arn = iam::create_role(&self.client, &name, &trust, description, &tags).await?;
        Ok(RoleInfo { name, arn: RoleArn::new(arn), trust, tags })
    }

    async fn update_trust(&self, name: String, trust: String) -> Result<(), AwsError> {
        iam::update_trust(&self.client, &name, &trust).await
    }

    async fn tag_role(&self, name: String, tags: Tags) -> Result<(), AwsError> {
        iam::tag_role(&self.client, &name, &tags).await
    }

    async fn get_role_policy(&self, role: String, policy: String) -> Result<Option<String>, AwsError> {
        match self.client.get_role_policy().role_name(role).policy_name(policy).send().await.aws("GetRolePolicy") {
            Ok(out) => Ok(Some(decode(out.policy_document()))),
            Err(e) if e.is_not_found() => Ok(None),
            Err(e) => Err(e),
        }
    }

    async fn put_role_policy(&self, role: String, policy: String, document: String) -> Result<(), AwsError> {
        self.client
            .put_role_policy()
            .role_name(role)
            .policy_name(policy)
            .policy_document(document)
            .send()
            .await
            .aws("PutRolePolicy")?;
        Ok(())
    }

    async fn list_role_policies(&self, role: String) -> Result<Vec<String>, AwsError> {
        let out = self.client.list_role_policies().role_name(role).send().await.aws("ListRolePolicies")?;
        Ok(out.policy_names().to_vec())
    }

    async fn delete_role_policy(&self, role: String, policy: String) -> Result<(), AwsError> {
        self.client.delete_role_policy().role_name(role).policy_name(policy).send().await.aws("DeleteRolePolicy")?;
        Ok(())
    }

    async fn list_attached_policies(&self, role: String) -> Result<Vec<Arn>, AwsError> {
        Ok(iam::attached_policies(&self.client, &role).await?.into_iter().map(Arn::new).collect())
    }

    async fn detach_role_policy(&self, role: String, policy_arn: Arn) -> Result<(), AwsError> {
        iam::detach_policy(&self.client, &role, policy_arn.as_str()).await
    }

    async fn delete_role(&self, name: String) -> Result<(), AwsError> {
        iam::delete_role(&self.client, &name).await
    }
}
