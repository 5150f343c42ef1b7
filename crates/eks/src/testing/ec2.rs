//! The fake's EC2 API: the node security group, the launch template, and what destroy finds
//! after use (volumes, snapshots, network interfaces, tagged resources).

use async_trait::async_trait;
use dify_stack_core::ids::{SecurityGroupId, VpcId};
use dify_stack_core::{AwsError, Tags};

use super::{FakeEks, not_found};
use crate::client::*;

#[async_trait]
impl Ec2Api for FakeEks {
    async fn find_security_group(&self, vpc: VpcId, name: String) -> Result<Option<SecurityGroupInfo>, AwsError> {
        self.read().await;
        let s = self.state();
        Ok(s.sg.as_ref().filter(|(v, g)| v == vpc.as_str() && g.name == name).map(|(_, g)| g.clone()))
    }

    async fn create_security_group(
        &self,
        vpc: VpcId,
        name: String,
        _d: String,
        tags: Tags,
    ) -> Result<SecurityGroupId, AwsError> {
        self.write().await;
        let id = SecurityGroupId::new(self.id("sg", || "sg-nodes".into()));
        let mut s = self.state();
        s.calls.push("CreateSecurityGroup".into());
        if s.sg.as_ref().is_some_and(|(v, g)| v == vpc.as_str() && g.name == name) {
            return Err(AwsError::new("CreateSecurityGroup", "InvalidGroup.Duplicate", "exists"));
        }
        s.sg = Some((vpc.into_inner(), SecurityGroupInfo { id: id.clone(), name, tags }));
        Ok(id)
    }

    async fn delete_security_group(&self, id: SecurityGroupId) -> Result<(), AwsError> {
        self.write().await;
        let mut s = self.state();
        s.calls.push("DeleteSecurityGroup".into());
        s.sg.take_if(|(_, g)| g.id == id).map(|_| ()).ok_or_else(|| not_found("DeleteSecurityGroup"))
    }

    async fn find_launch_template(&self, name: String) -> Result<Option<LaunchTemplateInfo>, AwsError> {
        self.read().await;
        Ok(self.state().lt.clone().filter(|t| t.name == name))
    }

    async fn create_launch_template(
        &self,
        name: String,
        data: LaunchTemplateData,
        tags: Tags,
    ) -> Result<LaunchTemplateInfo, AwsError> {
        self.write().await;
        let id = self.id("lt", || "lt-1".into());
        let mut s = self.state();
        s.calls.push("CreateLaunchTemplate".into());
        if s.lt.as_ref().is_some_and(|t| t.name == name) {
            return Err(AwsError::new(
                "CreateLaunchTemplate",
                "InvalidLaunchTemplateName.AlreadyExistsException",
                "exists",
            ));
        }
        let lt = LaunchTemplateInfo { id, name, latest_version: 1, data, tags };
        s.lt = Some(lt.clone());
        Ok(lt)
    }

    async fn update_launch_template(&self, id: String, data: LaunchTemplateData) -> Result<i64, AwsError> {
        self.write().await;
        let mut s = self.state();
        s.calls.push("CreateLaunchTemplateVersion".into());
        let lt = s.lt.as_mut().filter(|t| t.id == id).ok_or_else(|| not_found("CreateLaunchTemplateVersion"))?;
        lt.latest_version += 1;
        lt.data = data;
        Ok(lt.latest_version)
    }

    async fn delete_launch_template(&self, id: String) -> Result<(), AwsError> {
        self.write().await;
        let mut s = self.state();
        s.calls.push("DeleteLaunchTemplate".into());
        s.lt.take_if(|t| t.id == id).map(|_| ()).ok_or_else(|| not_found("DeleteLaunchTemplate"))
    }

    /// An attached volume stays `in-use` while any node group exists, then detaches after its
    /// count of describes (EC2: a terminated instance's volumes detach on their own).
    async fn tagged_volumes(&self, key: String, value: String) -> Result<Vec<VolumeInfo>, AwsError> {
        self.read().await;
        let mut s = self.state();
        s.calls.push("DescribeVolumes".into());
        let nodes = s.nodegroup.is_some();
        for (v, polls) in &mut s.volumes {
            if v.state == "in-use" && !nodes {
                if *polls == 0 {
                    v.state = "available".into();
                    v.attached_to.clear();
                } else {
                    *polls -= 1;
                }
            }
        }
        Ok(s.volumes.iter().map(|(v, _)| v).filter(|v| v.tags.get(&key) == Some(&value)).cloned().collect())
    }

    /// DeleteVolume of an attached volume fails with VolumeInUse (EC2 API reference).
    async fn delete_volume(&self, id: String) -> Result<(), AwsError> {
        self.write().await;
        let mut s = self.state();
        s.calls.push(format!("DeleteVolume({id})"));
        let at = s.volumes.iter().position(|(v, _)| v.id == id).ok_or_else(|| not_found("DeleteVolume"))?;
        if s.volumes[at].0.state != "available" {
            return Err(AwsError::new("DeleteVolume", "VolumeInUse", format!("Volume {id} is currently attached")));
        }
        s.volumes.remove(at);
        Ok(())
    }

    async fn tagged_snapshots(&self, key: String, value: String) -> Result<Vec<SnapshotInfo>, AwsError> {
        self.read().await;
        let s = self.state();
        Ok(s.snapshots.iter().filter(|v| v.tags.get(&key) == Some(&value)).cloned().collect())
    }

    async fn delete_snapshot(&self, id: String) -> Result<(), AwsError> {
        self.write().await;
        let mut s = self.state();
        s.calls.push(format!("DeleteSnapshot({id})"));
        let at = s.snapshots.iter().position(|v| v.id == id).ok_or_else(|| not_found("DeleteSnapshot"))?;
        s.snapshots.remove(at);
        Ok(())
    }

    async fn vpc_network_interfaces(&self, vpc: VpcId) -> Result<Vec<NetworkInterfaceInfo>, AwsError> {
        self.read().await;
        let s = self.state();
        Ok(s.enis.iter().filter(|(v, _)| v == vpc.as_str()).map(|(_, e)| e.clone()).collect())
    }

    async fn delete_network_interface(&self, id: String) -> Result<(), AwsError> {
        self.write().await;
        let mut s = self.state();
        s.calls.push(format!("DeleteNetworkInterface({id})"));
        let at = s.enis.iter().position(|(_, e)| e.id == id).ok_or_else(|| not_found("DeleteNetworkInterface"))?;
        if s.enis[at].1.status != "available" {
            return Err(AwsError::new("DeleteNetworkInterface", "InvalidNetworkInterface.InUse", "in use"));
        }
        s.enis.remove(at);
        Ok(())
    }

    /// What the fake holds that carries one of `keys`, plus `tagged`.
    async fn tagged_resources(&self, keys: Vec<String>) -> Result<Vec<TaggedResource>, AwsError> {
        self.read().await;
        let s = self.state();
        let has = |t: &Tags| keys.iter().any(|k| t.contains_key(k));
        let r =
            |kind: &str, id: &str, tags: &Tags| TaggedResource { kind: kind.into(), id: id.into(), tags: tags.clone() };
        let mut out: Vec<TaggedResource> = s.tagged.iter().filter(|t| has(&t.tags)).cloned().collect();
        out.extend(s.volumes.iter().filter(|(v, _)| has(&v.tags)).map(|(v, _)| r("ec2:volume", &v.id, &v.tags)));
        out.extend(s.snapshots.iter().filter(|v| has(&v.tags)).map(|v| r("ec2:snapshot", &v.id, &v.tags)));
        out.extend(
            s.enis.iter().filter(|(_, e)| has(&e.tags)).map(|(_, e)| r("ec2:network-interface", &e.id, &e.tags)),
        );
        out.extend(
            s.sg.iter().filter(|(_, g)| has(&g.tags)).map(|(_, g)| r("ec2:security-group", g.id.as_str(), &g.tags)),
        );
        out.extend(s.lt.iter().filter(|t| has(&t.tags)).map(|t| r("ec2:launch-template", &t.id, &t.tags)));
        Ok(out)
    }
}
