//! The stores' security groups with their `Name` edited in the console (issue 28, "Must show"),
//! against the strict emulator: each group is still found (by its group name, which EC2 never
//! changes: "They can't be edited after the security group is created", Amazon EC2 User Guide,
//! "Work with security groups"), the plan shows one tag update per group and nothing else, apply
//! writes the tags back on the same groups, the next plan is empty, and no group is ever made
//! twice.

use aws_sdk_ec2::types::{Filter, Tag};
use dify_stack_core::{Action, Environment, Provisioner, TAG_STACK};
use dify_stack_datastores::{DataPolicy, DatastoresProvisioner};

mod common;

use common::setup;

const STACK: &str = "ds-renamed";

/// The security groups of `vpc` carrying the stack's tag: `(group name, id, Name tag)`, sorted.
async fn stack_groups(ec2: &aws_sdk_ec2::Client, vpc: &str) -> Vec<(String, String, Option<String>)> {
    let out = ec2
        .describe_security_groups()
        .filters(Filter::builder().name("vpc-id").values(vpc).build())
        .filters(Filter::builder().name(format!("tag:{TAG_STACK}")).values(STACK).build())
        .send()
        .await
        .unwrap();
    let mut groups: Vec<_> = out
        .security_groups()
        .iter()
        .map(|g| {
            let tag = g.tags().iter().find(|t| t.key() == Some("Name")).and_then(|t| t.value()).map(str::to_owned);
            (g.group_name().unwrap().to_owned(), g.group_id().unwrap().to_owned(), tag)
        })
        .collect();
    groups.sort();
    groups
}

/// How many groups of `vpc` are named `name`, tagged or not.
async fn named(ec2: &aws_sdk_ec2::Client, vpc: &str, name: &str) -> usize {
    let out = ec2
        .describe_security_groups()
        .filters(Filter::builder().name("vpc-id").values(vpc).build())
        .filters(Filter::builder().name("group-name").values(name).build())
        .send()
        .await
        .unwrap();
    out.security_groups().len()
}

#[tokio::test]
async fn store_security_groups_renamed_in_the_console_are_one_tag_update_each_and_are_repaired() {
    let env = setup().await;
    let (account, ec2, vpc) = (&env.account, &env.ec2, env.vpc.as_str());
    let ctx = env.ctx(STACK, Environment::Test);
    let spec = env.spec(Environment::Test);
    let ds = DatastoresProvisioner::from_conf(&account.config);
    ds.apply(&ctx, &spec).await.unwrap();
    assert!(ds.plan(&ctx, &spec).await.unwrap().is_empty());
    let before = stack_groups(ec2, vpc).await;
    let names: Vec<&str> = before.iter().map(|(name, _, _)| name.as_str()).collect();
    assert_eq!(names, ["ds-renamed-aurora", "ds-renamed-opensearch", "ds-renamed-redis"]);
    assert!(before.iter().all(|(_, _, tag)| tag.is_some()), "{before:?}");

    for (_, id, _) in &before {
        let edited = Tag::builder().key("Name").value(format!("edited-{id}")).build();
        ec2.create_tags().resources(id).tags(edited).send().await.unwrap();
    }
    let plan = ds.plan(&ctx, &spec).await.unwrap();
    let mut shown: Vec<(String, Option<String>, String, Vec<String>)> = plan
        .changes
        .iter()
        .map(|c| {
            let fields = c.fields.iter().map(|f| format!("{}: {:?} -> {:?}", f.path, f.before, f.after)).collect();
            (c.resource.kind.clone(), c.resource.id.clone(), format!("{:?}", c.action), fields)
        })
        .collect();
    shown.sort();
    let mut want: Vec<(String, Option<String>, String, Vec<String>)> = before
        .iter()
        .map(|(_, id, name)| {
            let field = format!("tags.Name: {:?} -> {:?}", Some(format!("edited-{id}")), name);
            ("ec2:security-group".to_owned(), Some(id.clone()), format!("{:?}", Action::Update), vec![field])
        })
        .collect();
    want.sort();
    assert_eq!(shown, want, "one tag update per group, nothing else:\n{plan}");

    ds.apply(&ctx, &spec).await.unwrap();
    assert!(ds.plan(&ctx, &spec).await.unwrap().is_empty(), "{}", ds.plan(&ctx, &spec).await.unwrap());
    assert_eq!(stack_groups(ec2, vpc).await, before, "the same groups, their Name tags written back");
    for name in names {
        assert_eq!(named(ec2, vpc, name).await, 1, "{name} made twice");
    }

    ds.destroy(&ctx.clone().with_permissions(DataPolicy::delete_everything().permissions(false)), &spec).await.unwrap();
    assert_eq!(stack_groups(ec2, vpc).await, []);
}
