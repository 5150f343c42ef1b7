//! The names of the registry tier's repositories: the only place they are derived (the
//! provisioner, the facade's audit and the tests' inventories take them from here).

use dify_stack_core::{Context, NameError, NameKind};

use crate::spec::PLUGIN_SUFFIX;

/// The application image repository, `<stack>`.
pub fn app_repository(ctx: &Context) -> String {
    ctx.stack().as_str().to_owned()
}

/// The EE plugin image repository, `<stack>-ee-plugin-repo`.
pub fn plugin_repository(ctx: &Context) -> String {
    format!("{}-{PLUGIN_SUFFIX}", ctx.stack())
}

/// The prefix of the repositories the plugin connector creates at run time,
/// `<stack>-ee-plugin-repo/`.
pub fn runtime_prefix(ctx: &Context) -> String {
    format!("{}/", plugin_repository(ctx))
}

/// The derived repository names, checked against ECR's rules: `[app, plugin]`.
pub fn repository_names(ctx: &Context) -> Result<[String; 2], NameError> {
    Ok([ctx.name(NameKind::EcrRepository, "")?, ctx.name(NameKind::EcrRepository, PLUGIN_SUFFIX)?])
}

#[cfg(test)]
mod tests {
    use dify_stack_core::Environment;

    use super::*;

    #[test]
    fn names_are_those_of_stack_md() {
        let ctx = Context::new("dify-test", Environment::Test, "us-east-1").unwrap();
        assert_eq!(app_repository(&ctx), "dify-test");
        assert_eq!(plugin_repository(&ctx), "dify-test-ee-plugin-repo");
        assert_eq!(runtime_prefix(&ctx), "dify-test-ee-plugin-repo/");
    }
}
