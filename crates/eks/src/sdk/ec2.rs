//! EC2: the node security group and launch template.

#[allow(unused_imports)]
use super::*;

#[async_trait]
impl Ec2Api for SdkEks {
    async fn find_security_group(&self, vpc_id: String, name: String) -> Result<Option<SecurityGroupInfo>, AwsError> {
        Ok(shared::ec2::find_security_group(&self.ec2, &vpc_id, &name).await?.map(|g| SecurityGroupInfo {
            id: g.group_id().unwrap_or_default().to_owned(),
            name: g.group_name().unwrap_or_default().to_owned(),
            tags: shared::ec2::tags_of(g.tags()),
        }))
    }

    async fn create_security_group(
        &self,
        vpc_id: String,
        name: String,
        description: String,
        tags: Tags,
    ) -> Result<String, AwsError> {
        shared::ec2::create_security_group(&self.ec2, &vpc_id, &name, &description, &tags).await
    }

    async fn delete_security_group(&self, id: String) -> Result<(), AwsError> {
        shared::ec2::delete_security_group(&self.ec2, &id).await
    }

    async fn find_launch_template(&self, name: String) -> Result<Option<LaunchTemplateInfo>, AwsError> {
        let out = found(
            self.ec2
                .describe_launch_templates()
                .launch_template_names(&name)
                .send()
                .await
                .aws("DescribeLaunchTemplates"),
        )?;
        let Some(lt) = out.as_ref().and_then(|o| o.launch_templates().first()) else { return Ok(None) };
        let id = lt.launch_template_id().unwrap_or_default().to_owned();
        let versions = self
            .ec2
            .describe_launch_template_versions()
            .launch_template_id(&id)
            .versions("$Latest")
            .send()
            .await
            .aws("DescribeLaunchTemplateVersions")?;
        let data = versions
            .launch_template_versions()
            .first()
            .and_then(|v| v.launch_template_data())
            .map(lt_data)
            .unwrap_or_default();
        Ok(Some(LaunchTemplateInfo {
            id,
            name: lt.launch_template_name().unwrap_or_default().to_owned(),
            latest_version: lt.latest_version_number().unwrap_or(1),
            data,
            tags: shared::ec2::tags_of(lt.tags()),
        }))
    }

    async fn create_launch_template(
        &self,
        name: String,
        data: LaunchTemplateData,
        tags: Tags,
    ) -> Result<LaunchTemplateInfo, AwsError> {
        let out = self
            .ec2
            .create_launch_template()
            .launch_template_name(&name)
            .launch_template_data(lt_request(&data))
            .tag_specifications(shared::ec2::tag_spec(ResourceType::LaunchTemplate, &tags))
            .send()
            .await
            .aws("CreateLaunchTemplate")?;
        let lt = out.launch_template();
        Ok(LaunchTemplateInfo {
            id: lt.and_then(|l| l.launch_template_id()).unwrap_or_default().to_owned(),
            name,
            latest_version: lt.and_then(|l| l.latest_version_number()).unwrap_or(1),
            data,
            tags,
        })
    }

    async fn update_launch_template(&self, id: String, data: LaunchTemplateData) -> Result<i64, AwsError> {
        let out = self
            .ec2
            .create_launch_template_version()
            .launch_template_id(&id)
            .launch_template_data(lt_request(&data))
            .send()
            .await
            .aws("CreateLaunchTemplateVersion")?;
        let version = out.launch_template_version().and_then(|v| v.version_number()).unwrap_or(1);
        self.ec2
            .modify_launch_template()
            .launch_template_id(id)
            .default_version(version.to_string())
            .send()
            .await
            .aws("ModifyLaunchTemplate")?;
        Ok(version)
    }

    async fn delete_launch_template(&self, id: String) -> Result<(), AwsError> {
        self.ec2.delete_launch_template().launch_template_id(id).send().await.aws("DeleteLaunchTemplate")?;
        Ok(())
    }
}
