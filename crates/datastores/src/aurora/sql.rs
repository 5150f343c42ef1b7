//! The SQL the tier runs through the RDS Data API: databases and the application role.

use super::{AuroraProvisioner, ObservedAurora, Result, StoredSecret};
use dify_stack_core::AwsAt;
use dify_stack_core::ids::{Arn, SecretArn};

// The application role. Identifiers are validated to [a-z][a-z0-9_]* and the password is
// alphanumeric, so quoting is for keywords, not for safety. The master user of Aurora
// PostgreSQL is a member of rds_superuser, not a superuser: it may create roles (CREATEROLE),
// and may hand a database it owns to a role it is a member of (PostgreSQL "ALTER DATABASE":
// "you must be able to SET ROLE to the new owning role"), hence the GRANT first. Owning the
// database makes the role the owner of its `public` schema's rights (pg_database_owner, PG 15+).

impl AuroraProvisioner {
    /// The application role through the Data API, as the master user: created with the
    /// secret's password (or given it when the secret is new), then made owner of every database.
    /// Reads only when it is already so.
    pub(super) async fn ensure_app_role(
        &self,
        cluster_arn: &Arn,
        master_secret: &SecretArn,
        a: &crate::spec::AuroraSpec,
        app_secret: &StoredSecret,
        secret_fresh: bool,
        o: &ObservedAurora,
    ) -> Result<()> {
        use secrecy::ExposeSecret as _;
        let user = &a.app_username;
        let run =
            |sql: String| self.rds.execute(cluster_arn.clone(), master_secret.clone(), "postgres".to_owned(), sql);
        let password = app_secret.field("password").map(|p| p.expose_secret().to_owned()).unwrap_or_default();
        let exists = match o.app_role {
            Some(e) => e,
            None => !run(sql_role_exists(user)).await.at("ExecuteStatement", user)?.is_empty(),
        };
        if !exists {
            match run(sql_create_role(user, &password)).await {
                Ok(_) => tracing::info!(role = %user, "created the application database role"),
                // A lost response of our own create: the role is there; set the password below.
                Err(e) if e.message.as_deref().is_some_and(|m| m.contains("already exists")) => {
                    run(sql_set_password(user, &password)).await.at("ExecuteStatement", user)?;
                }
                Err(e) => return Err(e.at("ExecuteStatement", user).into()),
            }
        } else if secret_fresh {
            // The role outlived its secret (deleted by hand): the new password must be the role's.
            run(sql_set_password(user, &password)).await.at("ExecuteStatement", user)?;
        }
        let owned = match (&o.app_owned, exists) {
            (Some(owned), true) => owned.clone(),
            _ => run(sql_owned_by(user)).await.at("ExecuteStatement", user)?,
        };
        let missing: Vec<&String> = a.databases.iter().filter(|d| !owned.contains(d)).collect();
        if !missing.is_empty() {
            run(sql_grant_to_master(user)).await.at("ExecuteStatement", user)?;
            for db in missing {
                run(sql_owner(db, user)).await.at("ExecuteStatement", db)?;
                tracing::info!(database = %db, owner = %user, "database handed to the application role");
            }
        }
        Ok(())
    }
}

pub(super) fn sql_create(db: &str) -> String {
    // Names are validated to [a-z][a-z0-9_]*: quoting is for keywords, not for safety.
    format!("CREATE DATABASE \"{db}\"")
}

pub(super) const LIST_DATABASES: &str = "SELECT datname FROM pg_database";

pub(super) fn sql_role_exists(user: &str) -> String {
    format!("SELECT rolname FROM pg_roles WHERE rolname = '{user}'")
}

pub(super) fn sql_owned_by(user: &str) -> String {
    format!("SELECT datname FROM pg_database WHERE pg_get_userbyid(datdba) = '{user}'")
}

pub(super) fn sql_create_role(user: &str, password: &str) -> String {
    format!("CREATE ROLE \"{user}\" WITH LOGIN PASSWORD '{password}'")
}

pub(super) fn sql_set_password(user: &str, password: &str) -> String {
    format!("ALTER ROLE \"{user}\" WITH LOGIN PASSWORD '{password}'")
}

pub(super) fn sql_grant_to_master(user: &str) -> String {
    format!("GRANT \"{user}\" TO CURRENT_USER")
}

pub(super) fn sql_owner(db: &str, user: &str) -> String {
    format!("ALTER DATABASE \"{db}\" OWNER TO \"{user}\"")
}

/// What the application role needs, as statements for a person to run where the Data API is
/// unavailable (the password is not printed: it is read from the secret).
pub(super) fn pending_role_statements(a: &crate::spec::AuroraSpec, secret_name: &str) -> Vec<String> {
    let user = &a.app_username;
    let mut v =
        vec![sql_create_role(user, &format!("<password from the secret {secret_name}>")), sql_grant_to_master(user)];
    v.extend(a.databases.iter().map(|db| sql_owner(db, user)));
    v
}
