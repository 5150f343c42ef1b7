//! The RDS Data API rules of the strict emulator (issue 28 item 5; each rule and its source in
//! `crates/emulator/python/moto_day2.py`): ExecuteStatement is refused for a cluster that does
//! not exist, for a cluster whose HTTP endpoint is not enabled, and for a secret that cannot be
//! read or does not hold a login of the cluster. Each refusal is shown with its code and message,
//! next to the same call made right, which succeeds. (The tier's own use of the Data API, after
//! the cluster and its secret exist and the endpoint is enabled, is `tests/emulator.rs`.)

use aws_sdk_rdsdata::error::ProvideErrorMetadata as _;
use dify_stack_emulator::{Emulator, TestAccount};

const NOT_LOADED: &str = "the strict emulator must load crates/emulator/python/moto_day2.py (the Data API rules)";

struct Env {
    account: TestAccount,
    rds: aws_sdk_rds::Client,
    data: aws_sdk_rdsdata::Client,
    secrets: aws_sdk_secretsmanager::Client,
}

async fn setup() -> Env {
    let account = Emulator::shared().expect("emulator").account("us-west-2").await;
    Env {
        rds: aws_sdk_rds::Client::new(&account.config),
        data: aws_sdk_rdsdata::Client::new(&account.config),
        secrets: aws_sdk_secretsmanager::Client::new(&account.config),
        account,
    }
}

/// A cluster as the tier makes it (RDS-managed master secret); `(arn, master secret arn)`.
async fn cluster(env: &Env, id: &str, http_endpoint: bool) -> (String, String) {
    let out = env
        .rds
        .create_db_cluster()
        .db_cluster_identifier(id)
        .engine("aurora-postgresql")
        .engine_version("17.5")
        .master_username("difyadmin")
        .manage_master_user_password(true)
        .storage_encrypted(true)
        .enable_http_endpoint(http_endpoint)
        .send()
        .await
        .unwrap();
    let c = out.db_cluster().unwrap();
    assert_eq!(c.http_endpoint_enabled(), Some(http_endpoint), "{c:?}");
    let secret = c.master_user_secret().and_then(|s| s.secret_arn()).unwrap().to_owned();
    (c.db_cluster_arn().unwrap().to_owned(), secret)
}

/// ExecuteStatement as the tier runs it (`crates/datastores/src/sdk/rds.rs`): the databases.
async fn list_databases(env: &Env, cluster_arn: &str, secret_arn: &str) -> Result<Vec<String>, (String, String)> {
    env.data
        .execute_statement()
        .resource_arn(cluster_arn)
        .secret_arn(secret_arn)
        .database("postgres")
        .sql("SELECT datname FROM pg_database")
        .send()
        .await
        .map(|out| out.records().iter().filter_map(|row| row.first()?.as_string_value().ok().cloned()).collect())
        .map_err(|e| {
            let e = e.into_service_error();
            (e.code().unwrap_or_default().to_owned(), e.message().unwrap_or_default().to_owned())
        })
}

#[track_caller]
fn assert_refused(result: Result<Vec<String>, (String, String)>, code: &str, fragment: &str) {
    let (got, message) = result.expect_err(NOT_LOADED);
    assert_eq!(got, code, "{message}");
    assert!(message.contains(fragment), "{code}: {message:?} lacks {fragment:?}");
}

#[tokio::test]
async fn execute_statement_is_refused_for_an_unknown_cluster_and_a_disabled_http_endpoint() {
    let env = setup().await;
    let (arn, secret) = cluster(&env, "data-api-on", true).await;
    assert!(list_databases(&env, &arn, &secret).await.unwrap().contains(&"postgres".to_owned()));

    // A cluster ARN of the account that names no cluster (a typo, a deleted cluster).
    let unknown = arn.replace(":cluster:data-api-on", ":cluster:data-api-gone");
    assert_refused(
        list_databases(&env, &unknown, &secret).await,
        "HttpEndpointNotEnabledException",
        &format!("HttpEndpoint is not enabled for resource {unknown}"),
    );

    // A cluster made without the HTTP endpoint: refused until EnableHttpEndpoint, then served.
    let (off, off_secret) = cluster(&env, "data-api-off", false).await;
    assert_refused(
        list_databases(&env, &off, &off_secret).await,
        "HttpEndpointNotEnabledException",
        &format!("HttpEndpoint is not enabled for resource {off}"),
    );
    env.rds.enable_http_endpoint().resource_arn(&off).send().await.unwrap();
    let dbs = list_databases(&env, &off, &off_secret).await.unwrap();
    assert!(dbs.contains(&"postgres".to_owned()), "{dbs:?}");
}

#[tokio::test]
async fn execute_statement_is_refused_for_a_secret_that_is_missing_invalid_or_not_a_login_of_the_cluster() {
    let env = setup().await;
    let (arn, master) = cluster(&env, "data-api-secrets", true).await;
    let (_, other_master) = cluster(&env, "data-api-other", true).await;

    // The cluster's own master secret, as RDS manages it: the master user and its password.
    let value = env.secrets.get_secret_value().secret_id(&master).send().await.unwrap();
    let creds: serde_json::Value = serde_json::from_str(value.secret_string().unwrap()).unwrap();
    assert_eq!(creds["username"], "difyadmin", "the managed secret holds the master username");
    assert!(list_databases(&env, &arn, &master).await.is_ok());

    // No such secret (not yet created, or a wrong ARN).
    let missing = format!("arn:aws:secretsmanager:us-west-2:{}:secret:dify-master-AbCdEf", env.account.account_id);
    assert_refused(
        list_databases(&env, &arn, &missing).await,
        "SecretsErrorException",
        "Secrets Manager can't find the specified secret",
    );

    // A secret scheduled for deletion cannot be read either.
    let doomed = env
        .secrets
        .create_secret()
        .name("data-api-doomed")
        .secret_string(value.secret_string().unwrap())
        .send()
        .await
        .unwrap()
        .arn()
        .unwrap()
        .to_owned();
    assert!(list_databases(&env, &arn, &doomed).await.is_ok(), "a copy of the credentials logs in");
    env.secrets.delete_secret().secret_id(&doomed).recovery_window_in_days(7).send().await.unwrap();
    assert_refused(list_databases(&env, &arn, &doomed).await, "SecretsErrorException", &doomed);

    // Not the JSON credentials the Data API reads.
    let plain = env
        .secrets
        .create_secret()
        .name("data-api-plain")
        .secret_string("just-a-password")
        .send()
        .await
        .unwrap()
        .arn()
        .unwrap()
        .to_owned();
    assert_refused(list_databases(&env, &arn, &plain).await, "InvalidSecretException", "isn't valid");

    // The master username with a wrong password; another cluster's master secret.
    let wrong = serde_json::json!({ "username": "difyadmin", "password": "not-the-password" }).to_string();
    let wrong =
        env.secrets.create_secret().name("data-api-wrong").secret_string(wrong).send().await.unwrap().arn.unwrap();
    let refused = r#"password authentication failed for user "difyadmin""#;
    assert_refused(list_databases(&env, &arn, &wrong).await, "DatabaseErrorException", refused);
    assert_refused(list_databases(&env, &arn, &other_master).await, "DatabaseErrorException", refused);

    // A role the Data API created WITH LOGIN logs in with its own password.
    env.data
        .execute_statement()
        .resource_arn(&arn)
        .secret_arn(&master)
        .database("postgres")
        .sql("CREATE ROLE \"dify\" WITH LOGIN PASSWORD 'app-password'")
        .send()
        .await
        .unwrap();
    let app = serde_json::json!({ "username": "dify", "password": "app-password" }).to_string();
    let app = env.secrets.create_secret().name("data-api-app").secret_string(app).send().await.unwrap().arn.unwrap();
    assert!(list_databases(&env, &arn, &app).await.is_ok());

    // The master secret's value edited by hand: the cluster's password did not change with it.
    let edited = serde_json::json!({ "username": "difyadmin", "password": "edited-by-hand" }).to_string();
    env.secrets.put_secret_value().secret_id(&master).secret_string(edited).send().await.unwrap();
    assert_refused(list_databases(&env, &arn, &master).await, "DatabaseErrorException", refused);
}
