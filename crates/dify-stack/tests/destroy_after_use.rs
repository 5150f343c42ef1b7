//! Destroy after months of use, against the strict emulator: what a used cluster leaves that
//! no plan lists (a claim's EBS volume and its snapshot, tagged by the CSI driver with the
//! stack's tags through the default StorageClass; a network interface the VPC CNI left in a
//! private subnet; the control-plane log group EKS re-created without tags) is data the default
//! policy refuses to delete, is deleted with `--delete-data`, and afterwards the account is what
//! it was before the first apply. What is tagged for the cluster but not the stack's to delete is
//! named by destroy's last step instead of passing silently.

mod inventory;

use aws_sdk_ec2::types::{ResourceType, Tag, TagSpecification, VolumeType};
use dify_stack::{DataPolicy, Profile, Stack, StackConfig, StackError};
use dify_stack_emulator::Emulator;

/// The test profile as the emulator can run it (as in `tests/emulator.rs`): no Kubernetes API,
/// no internet.
fn config(name: &str) -> StackConfig {
    let mut cfg = Profile::Test.config().with_name(name).expect("a valid stack name");
    cfg.iam.service_accounts = false;
    cfg.eks.checkip_url = Emulator::shared().expect("emulator").checkip_url();
    cfg.iam.discover_thumbprint = false;
    cfg
}

fn tag_spec(kind: ResourceType, tags: &[(String, String)]) -> TagSpecification {
    let mut spec = TagSpecification::builder().resource_type(kind);
    for (k, v) in tags {
        spec = spec.tags(Tag::builder().key(k).value(v).build());
    }
    spec.build()
}

/// The id a line of the emulator's whole-account dump names (`service.collection id (name)`).
fn id_of(line: &str) -> &str {
    line.split(' ').nth(1).unwrap_or_default()
}

/// Lines of the dump that stay after a delete although AWS forgets the resource, none a
/// resource of its own (for an emulator whose dump does not leave them out itself): moto's EC2
/// tag store keeps the entry of every deleted resource (`moto/ec2/models/tags.py`,
/// `TagBackend.tags` is never pruned), so `ec2.tags <id>` is left out when no other line names
/// `<id>`; the emptied per-VPC security group map (`ec2.groups <vpc>`) of a VPC no longer
/// listed; the insertion-order list of launch templates.
fn emulator_bookkeeping(line: &str, after: &[String]) -> bool {
    let live = |id: &str| after.iter().any(|l| l != line && id_of(l) == id);
    match line.split_once(' ').map(|(collection, _)| collection) {
        Some("ec2.tags") => !live(id_of(line)),
        Some("ec2.groups") => !after.iter().any(|l| l.starts_with(&format!("ec2.vpcs {} ", id_of(line)))),
        Some("ec2.launch_template_insert_order") => true,
        _ => false,
    }
}

/// What the account holds that is the account's, not the stack's, by id: AWS managed keys
/// (alias `alias/aws/...`: made by a service on first use, such as `aws/ebs` for an encrypted
/// volume without a key; never deletable) and service-linked roles (path `/aws-service-role/`:
/// the OpenSearch one is made once for every domain of the account and kept).
async fn account_level(config: &aws_types::SdkConfig) -> Vec<String> {
    let kms = aws_sdk_kms::Client::new(config);
    let aliases = kms.list_aliases().send().await.unwrap();
    let mut ids: Vec<String> = aliases
        .aliases()
        .iter()
        .filter(|a| a.alias_name().is_some_and(|n| n.starts_with("alias/aws/")))
        .filter_map(|a| a.target_key_id().map(str::to_owned))
        .collect();
    let iam = aws_sdk_iam::Client::new(config);
    let roles = iam.list_roles().path_prefix("/aws-service-role/").send().await.unwrap();
    ids.extend(roles.roles().iter().map(|r| r.role_id().to_owned()));
    ids
}

/// Runs `body` on a thread with a stack large enough for the whole stack's futures in a debug
/// build (the default test thread's 2 MiB is not).
fn run(body: impl Future<Output = ()> + Send + 'static) {
    std::thread::Builder::new()
        .stack_size(64 << 20)
        .spawn(move || tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(body))
        .unwrap()
        .join()
        .unwrap_or_else(|e| std::panic::resume_unwind(e));
}

#[test]
fn destroy_after_use_removes_what_use_left_and_leaves_the_account_as_it_was() {
    run(async {
        let emulator = Emulator::shared().expect("emulator");
        let account = emulator.account("us-west-2").await;
        let name = "used-test";
        let before = emulator.state(&account.account_id, "us-west-2").await;
        let stack = Stack::connect(config(name), account.config.clone()).await.unwrap();
        let out = Box::pin(stack.apply()).await.unwrap();
        assert!(out.is_complete(), "{out:?}");
        let net = out.network.as_ref().unwrap();
        let private = &net.private_subnets[0];
        let ec2 = aws_sdk_ec2::Client::new(&account.config);
        let logs = aws_sdk_cloudwatchlogs::Client::new(&account.config);

        // Months of use. A claim's volume, made by the EBS CSI driver through the stack's default
        // StorageClass: its `tagSpecification_<n>` parameters (the stack's volume tags) and the
        // driver's own tags (aws-ebs-csi-driver docs/tagging.md).
        let mut tags: Vec<(String, String)> =
            dify_stack_eks::workloads::volume_tags(stack.context()).into_iter().collect();
        let driver = [
            ("CSIVolumeName", "pvc-0d9c4f1e"),
            ("ebs.csi.aws.com/cluster", "true"),
            ("kubernetes.io/created-for/pvc/namespace", "dify"),
            ("kubernetes.io/created-for/pvc/name", "data-dify-plugin-daemon-0"),
        ];
        tags.extend(driver.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())));
        let volume = ec2
            .create_volume()
            .availability_zone(private.az.as_str())
            .size(8)
            .volume_type(VolumeType::Gp3)
            .encrypted(true)
            .tag_specifications(tag_spec(ResourceType::Volume, &tags))
            .send()
            .await
            .unwrap()
            .volume_id()
            .unwrap()
            .to_owned();
        // A snapshot of it, tagged alike (a VolumeSnapshotClass with the same tag parameters).
        let snapshot = ec2
            .create_snapshot()
            .volume_id(&volume)
            .tag_specifications(tag_spec(ResourceType::Snapshot, &tags))
            .send()
            .await
            .unwrap()
            .snapshot_id()
            .unwrap()
            .to_owned();
        // A secondary interface the VPC CNI made for a node and never cleaned up: the CNI's tags
        // and description (amazon-vpc-cni-k8s pkg/awsutils), none of the stack's.
        let cni_tags = [
            ("cluster.k8s.amazonaws.com/name".to_owned(), name.to_owned()),
            ("node.k8s.amazonaws.com/instance_id".to_owned(), "i-0f1e2d3c4b5a69788".to_owned()),
        ];
        let eni = ec2
            .create_network_interface()
            .subnet_id(private.id.as_str())
            .description("aws-K8S-i-0f1e2d3c4b5a69788")
            .tag_specifications(tag_spec(ResourceType::NetworkInterface, &cni_tags))
            .send()
            .await
            .unwrap()
            .network_interface()
            .and_then(|e| e.network_interface_id())
            .unwrap()
            .to_owned();
        // The control-plane log group as EKS re-creates it: without tags or retention. (A flush
        // after the cluster's delete cannot be timed here; one that exists before destroy must
        // go all the same.)
        let log_group = format!("/aws/eks/{name}/cluster");
        logs.delete_log_group().log_group_name(&log_group).send().await.unwrap();
        logs.create_log_group().log_group_name(&log_group).send().await.unwrap();

        // The default data policy: refused before any delete, the volume and snapshot named.
        let used = inventory::inventory(&account.config, name).await;
        let err = Box::pin(stack.destroy()).await.unwrap_err();
        let StackError::DataLossRefused { holders } = &err else { panic!("{err}") };
        for id in [&volume, &snapshot] {
            assert!(holders.iter().any(|h| h.contains(id.as_str())), "{id} not named: {holders:?}");
        }
        assert!(holders.iter().any(|h| h.contains("PVC dify/data-dify-plugin-daemon-0")), "{holders:?}");
        assert_eq!(inventory::inventory(&account.config, name).await, used, "a refused destroy deleted something");
        let enis = ec2.describe_network_interfaces().network_interface_ids(&eni).send().await.unwrap();
        assert_eq!(enis.network_interfaces().len(), 1);

        // A claim of another StorageClass (the user's): tagged for the cluster by the driver's
        // `--k8s-tag-cluster-id`, not for the stack. Not the stack's to delete: the last step of
        // destroy names it instead of passing silently.
        let theirs = ec2
            .create_volume()
            .availability_zone(private.az.as_str())
            .size(1)
            .tag_specifications(tag_spec(
                ResourceType::Volume,
                &[(format!("kubernetes.io/cluster/{name}"), "owned".to_owned())],
            ))
            .send()
            .await
            .unwrap()
            .volume_id()
            .unwrap()
            .to_owned();
        let stack = stack.with_data_policy(DataPolicy::delete_everything());
        let err = Box::pin(stack.destroy()).await.unwrap_err();
        let text = err.to_string();
        assert!(
            text.contains(&format!("ec2:volume {theirs}")) && text.contains("destroy left 1 resource(s)"),
            "{text}"
        );
        let volumes = ec2.describe_volumes().volume_ids(&theirs).send().await.unwrap();
        assert_eq!(volumes.volumes().len(), 1, "never deleted");
        ec2.delete_volume().volume_id(&theirs).send().await.unwrap();

        // Once it is gone, destroy (again) ends clean: the stack's volume, snapshot, the CNI's
        // interface and the untagged log group are gone with the rest ...
        Box::pin(stack.destroy()).await.unwrap();
        assert!(ec2.describe_volumes().volume_ids(&volume).send().await.is_err(), "volume left");
        assert!(ec2.describe_snapshots().snapshot_ids(&snapshot).send().await.is_err(), "snapshot left");
        assert!(ec2.describe_network_interfaces().network_interface_ids(&eni).send().await.is_err(), "ENI left");
        let groups = logs.describe_log_groups().log_group_name_prefix(&log_group).send().await.unwrap();
        assert!(groups.log_groups().is_empty(), "log group left");
        assert_eq!(inventory::inventory(&account.config, name).await, Vec::<String>::new());
        // ... and the whole account is what it was before the first apply, the control bucket
        // (the lock and recorded outputs live there), what is the account's (AWS managed keys,
        // service-linked roles) and the emulator's own bookkeeping aside.
        let after = emulator.state(&account.account_id, "us-west-2").await;
        let control = stack.control().name().to_owned();
        let account_level = account_level(&account.config).await;
        let leaked: Vec<&String> = after
            .iter()
            .filter(|l| !before.contains(l) && id_of(l) != control)
            .filter(|l| !emulator_bookkeeping(l, &after) && !account_level.iter().any(|id| id == id_of(l)))
            .collect();
        assert!(leaked.is_empty(), "left in the account after destroy: {leaked:#?}");
    });
}
