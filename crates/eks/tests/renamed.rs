//! The node security group's `Name` edited in the console (issue 28, "Must show"), against the
//! strict emulator: the group is still found (by its group name, which EC2 never changes), the
//! plan shows one tag update for it and nothing else, apply writes the tag back on the same
//! group, the next plan is empty, and there is never a second group.

use aws_sdk_ec2::types::{Filter, Tag};
use dify_stack_core::ids::VpcId;
use dify_stack_core::{Action, Context, Environment, Provisioner};
use dify_stack_eks::{NodeSecurityGroupProvisioner, NodeSecurityGroupSpec};
use dify_stack_emulator::Emulator;

/// The groups named `name` in `vpc`: `(id, Name tag)`.
async fn groups(ec2: &aws_sdk_ec2::Client, vpc: &str, name: &str) -> Vec<(String, Option<String>)> {
    let out = ec2
        .describe_security_groups()
        .filters(Filter::builder().name("vpc-id").values(vpc).build())
        .filters(Filter::builder().name("group-name").values(name).build())
        .send()
        .await
        .unwrap();
    out.security_groups()
        .iter()
        .map(|g| {
            let tag = g.tags().iter().find(|t| t.key() == Some("Name")).and_then(|t| t.value()).map(str::to_owned);
            (g.group_id().unwrap().to_owned(), tag)
        })
        .collect()
}

#[tokio::test]
async fn the_node_security_group_renamed_in_the_console_is_one_tag_update_and_is_repaired() {
    let account = Emulator::shared().expect("emulator").account("us-west-2").await;
    let ec2 = aws_sdk_ec2::Client::new(&account.config);
    let vpc = ec2.create_vpc().cidr_block("10.0.0.0/16").send().await.unwrap();
    let vpc = vpc.vpc().unwrap().vpc_id().unwrap().to_owned();
    let ctx = Context::new("eks-renamed", Environment::Test, "us-west-2").unwrap();
    let spec = NodeSecurityGroupSpec { vpc_id: VpcId::new(&vpc) };
    let sg = NodeSecurityGroupProvisioner::from_conf(&account.config);
    let id = sg.apply(&ctx, &spec).await.unwrap().to_string();
    assert!(sg.plan(&ctx, &spec).await.unwrap().is_empty());
    let name = "eks-renamed-eks-nodes";
    let found = groups(&ec2, &vpc, name).await;
    let [(found, Some(original))] = <[_; 1]>::try_from(found.clone()).unwrap_or_else(|_| panic!("{found:?}")) else {
        panic!("{name} carries no Name tag")
    };
    assert_eq!(found, id);

    let edited = "renamed-in-the-console";
    ec2.create_tags().resources(&id).tags(Tag::builder().key("Name").value(edited).build()).send().await.unwrap();
    let plan = sg.plan(&ctx, &spec).await.unwrap();
    let shown: Vec<(String, Option<String>, Action, Vec<String>)> = plan
        .changes
        .iter()
        .map(|c| {
            let fields = c.fields.iter().map(|f| format!("{}: {:?} -> {:?}", f.path, f.before, f.after)).collect();
            (c.resource.kind.clone(), c.resource.id.clone(), c.action, fields)
        })
        .collect();
    let field = format!("tags.Name: {:?} -> {:?}", Some(edited), Some(&original));
    assert_eq!(
        shown,
        [("ec2:security-group".to_owned(), Some(id.clone()), Action::Update, vec![field])],
        "one tag update, nothing else:\n{plan}"
    );

    assert_eq!(sg.apply(&ctx, &spec).await.unwrap().to_string(), id, "the same group");
    assert!(sg.plan(&ctx, &spec).await.unwrap().is_empty(), "{}", sg.plan(&ctx, &spec).await.unwrap());
    assert_eq!(groups(&ec2, &vpc, name).await, [(id.clone(), Some(original))], "repaired, never duplicated");

    sg.destroy(&ctx, &spec).await.unwrap();
    assert_eq!(groups(&ec2, &vpc, name).await, []);
}
