//! Generated secrets: made once with a CSPRNG, kept in Secrets Manager under `<stack>/...` with
//! the ownership tags, read back (never regenerated) on every later apply. A secret scheduled
//! for deletion is restored rather than colliding. Values are [`SecretString`]s: never in
//! `Debug`, logs, plans or errors.

use base64::Engine as _;
use dify_stack_core::ids::SecretArn;
use dify_stack_core::{Context, Tier};
use secrecy::{ExposeSecret as _, SecretString};
use serde::Serialize;

use crate::client::SecretsApi;
use crate::common::{DataPolicy, Result};
use dify_stack_core::{AwsAt, NotOwned};

/// Recovery window of secrets deleted without `delete_data`.
pub const RECOVERY_WINDOW_DAYS: i64 = 7;

/// Which secret.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SecretKind {
    /// `<stack>/redis-auth`: the Redis AUTH token.
    RedisAuth,
    /// `<stack>/opensearch-master`: `{"username", "password"}` of the OpenSearch master user.
    OpenSearchMaster,
    /// `<stack>/dify-app`: Dify's app secret key, inner API keys and the 32-byte
    /// `passwordEncryptionKey`.
    DifyApp,
    /// `<stack>/aurora-app`: `{"username", "password"}` of the database role Dify logs in as
    /// (owner of its databases). Never rotated by surprise, unlike the RDS-managed master
    /// secret (rotated every 7 days).
    AuroraApp,
}

impl SecretKind {
    /// Every secret the tier may generate.
    pub const ALL: [SecretKind; 4] =
        [SecretKind::RedisAuth, SecretKind::OpenSearchMaster, SecretKind::DifyApp, SecretKind::AuroraApp];

    /// The name suffix after `<stack>/`.
    pub fn suffix(self) -> &'static str {
        match self {
            SecretKind::RedisAuth => "redis-auth",
            SecretKind::OpenSearchMaster => "opensearch-master",
            SecretKind::DifyApp => "dify-app",
            SecretKind::AuroraApp => "aurora-app",
        }
    }

    /// The secret's name for a stack.
    pub fn name(self, ctx: &Context) -> String {
        crate::names::secret(ctx, self)
    }

    /// A fresh value from the system CSPRNG; `user` is the user name of the JSON secrets.
    pub fn generate(self, user: &str) -> SecretString {
        match self {
            SecretKind::RedisAuth => SecretString::from(random_alnum(64)),
            SecretKind::OpenSearchMaster => {
                let value = serde_json::json!({ "username": user, "password": opensearch_password() });
                SecretString::from(value.to_string())
            }
            // Alphanumeric only: safe inside a SQL string literal and a postgresql:// URI.
            SecretKind::AuroraApp => {
                SecretString::from(serde_json::json!({ "username": user, "password": random_alnum(40) }).to_string())
            }
            SecretKind::DifyApp => {
                let b64 = |n| base64::engine::general_purpose::STANDARD.encode(random_bytes(n));
                let value = serde_json::json!({
                    "app_secret_key": b64(42),
                    "inner_api_key": b64(32),
                    "plugin_daemon_key": b64(32),
                    "plugin_inner_api_key": b64(32),
                    "password_encryption_key": b64(32),
                    "sandbox_api_key": b64(32),
                    "plugin_connector_api_key": b64(32),
                    "enterprise_admin_apis_salt": b64(32),
                    "enterprise_inner_api_key": b64(32),
                });
                SecretString::from(value.to_string())
            }
        }
    }
}

/// A secret by reference. `Debug` shows the name and ARN only.
#[derive(Clone, Serialize, serde::Deserialize)]
pub struct StoredSecret {
    /// Name.
    pub name: String,
    /// ARN.
    pub arn: SecretArn,
    #[serde(skip)]
    value: SecretString,
}

impl std::fmt::Debug for StoredSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoredSecret")
            .field("name", &self.name)
            .field("arn", &self.arn)
            .field("value", &"<redacted>")
            .finish()
    }
}

impl PartialEq for StoredSecret {
    fn eq(&self, other: &Self) -> bool {
        self.name == other.name && self.arn == other.arn && self.value.expose_secret() == other.value.expose_secret()
    }
}

impl StoredSecret {
    /// A secret as read from Secrets Manager (for embedders' own fixtures and renderers).
    pub fn new(name: impl Into<String>, arn: SecretArn, value: SecretString) -> Self {
        StoredSecret { name: name.into(), arn, value }
    }

    /// The value. Callers decide where it may go (a Helm values file, a Kubernetes secret).
    pub fn value(&self) -> &SecretString {
        &self.value
    }

    /// A JSON field of the value (for the JSON secrets).
    pub fn field(&self, key: &str) -> Option<SecretString> {
        let v: serde_json::Value = serde_json::from_str(self.value.expose_secret()).ok()?;
        v.get(key)?.as_str().map(|s| SecretString::from(s.to_owned()))
    }
}

/// Reads the stack's secret, creating it with a generated value on first use and restoring it
/// when it is scheduled for deletion.
pub async fn ensure_secret(
    ctx: &Context,
    api: &dyn SecretsApi,
    kind: SecretKind,
    opensearch_user: &str,
) -> Result<StoredSecret> {
    let name = kind.name(ctx);
    let tags = ctx.tags_for(Tier::Datastores, &format!("secret-{}", kind.suffix()), &name);
    let meta = match api.describe(name.clone()).await.at("DescribeSecret", &name)? {
        Some(meta) => meta,
        None => match api.create(name.clone(), kind.generate(opensearch_user), tags.clone()).await {
            Ok(arn) => {
                tracing::info!(secret = %name, "created secret");
                crate::client::SecretMeta { arn, name: name.clone(), pending_deletion: false, tags: tags.clone() }
            }
            // Our own earlier create whose response was lost: use what is stored.
            Err(e) if e.is_already_exists() => {
                api.describe(name.clone()).await.at("DescribeSecret", &name)?.ok_or(e).at("CreateSecret", &name)?
            }
            Err(e) => return Err(e.at("CreateSecret", &name).into()),
        },
    };
    NotOwned::check(ctx, "secret", &name, &meta.tags)?;
    if meta.pending_deletion {
        api.restore(meta.arn.clone()).await.at("RestoreSecret", &name)?;
        tracing::info!(secret = %name, "restored secret scheduled for deletion");
    }
    let drift = dify_stack_core::drift_tags(&dify_stack_core::tag_drift(&tags, &meta.tags));
    if !drift.is_empty() {
        api.tag(meta.arn.clone(), drift).await.at("TagResource", &name)?;
    }
    let value = api.get_value(meta.arn.clone()).await.at("GetSecretValue", &name)?;
    let value = match completed(kind, &value, opensearch_user) {
        // A secret made by an earlier version lacks keys added since: they are generated and
        // added; every existing key keeps its value for the life of the stack.
        Some(complete) => {
            api.put_value(meta.arn.clone(), complete.clone()).await.at("PutSecretValue", &name)?;
            tracing::info!(secret = %name, "added the keys this version needs to the secret");
            complete
        }
        None => value,
    };
    Ok(StoredSecret { name, arn: meta.arn, value })
}

/// The JSON value with the keys a fresh one would have added where missing; `None` when nothing
/// is missing (or the value is not a JSON object: those secrets have no keys to add).
fn completed(kind: SecretKind, value: &SecretString, user: &str) -> Option<SecretString> {
    let serde_json::Value::Object(mut have) = serde_json::from_str(value.expose_secret()).ok()? else { return None };
    let serde_json::Value::Object(fresh) = serde_json::from_str(kind.generate(user).expose_secret()).ok()? else {
        return None;
    };
    let missing: Vec<(String, serde_json::Value)> = fresh.into_iter().filter(|(k, _)| !have.contains_key(k)).collect();
    if missing.is_empty() {
        return None;
    }
    have.extend(missing);
    Some(SecretString::from(serde_json::Value::Object(have).to_string()))
}

/// Whether the secret exists (and is ours), for plans.
pub async fn secret_exists(ctx: &Context, api: &dyn SecretsApi, kind: SecretKind) -> Result<bool> {
    let name = kind.name(ctx);
    Ok(api
        .describe(name.clone())
        .await
        .at("DescribeSecret", &name)?
        .is_some_and(|m| ctx.owns_tags(&m.tags) && !m.pending_deletion))
}

/// Deletes the secret if it is ours: with the recovery window, or at once when the policy
/// deletes data. Returns the ARN when something was deleted.
pub async fn delete_secret(
    ctx: &Context,
    api: &dyn SecretsApi,
    kind: SecretKind,
    policy: DataPolicy,
) -> Result<Option<String>> {
    let name = kind.name(ctx);
    let Some(meta) = api.describe(name.clone()).await.at("DescribeSecret", &name)? else { return Ok(None) };
    if !ctx.owns_tags(&meta.tags) || (meta.pending_deletion && !policy.delete_data) {
        return Ok(None);
    }
    dify_stack_core::ignore_not_found(api.delete(meta.arn.clone(), policy.delete_data, RECOVERY_WINDOW_DAYS).await)
        .at("DeleteSecret", &name)?;
    Ok(Some(meta.arn.into_inner()))
}

fn random_bytes(n: usize) -> Vec<u8> {
    let mut buf = vec![0u8; n];
    // The system CSPRNG; failing to read it is not recoverable.
    aws_lc_rs::rand::fill(&mut buf).expect("the system random number generator is unavailable");
    buf
}

const ALNUM: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";

/// `n` characters of `[A-Za-z0-9]`, unbiased (rejection sampling).
fn random_alnum(n: usize) -> String {
    let mut out = String::with_capacity(n);
    while out.len() < n {
        for b in random_bytes(n) {
            // 248 = 4 * 62: bytes above it would bias the first characters.
            if b < 248 && out.len() < n {
                out.push(ALNUM[(b % 62) as usize] as char);
            }
        }
    }
    out
}

/// An OpenSearch master password: 32 characters with upper, lower, digit and special.
fn opensearch_password() -> String {
    loop {
        let mut p = random_alnum(31);
        let specials = b"!#%^*-_+=";
        p.push(specials[(random_bytes(1)[0] as usize) % specials.len()] as char);
        let has = |f: fn(&char) -> bool| p.chars().any(|c| f(&c));
        if has(char::is_ascii_uppercase) && has(char::is_ascii_lowercase) && has(char::is_ascii_digit) {
            return p;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_values_have_the_right_shape_and_differ() {
        let a = SecretKind::RedisAuth.generate("u");
        let b = SecretKind::RedisAuth.generate("u");
        assert_eq!(a.expose_secret().len(), 64);
        assert!(a.expose_secret().chars().all(|c| c.is_ascii_alphanumeric()));
        assert_ne!(a.expose_secret(), b.expose_secret());
        let os: serde_json::Value =
            serde_json::from_str(SecretKind::OpenSearchMaster.generate("dify-admin").expose_secret()).unwrap();
        assert_eq!(os["username"], "dify-admin");
        let pw = os["password"].as_str().unwrap();
        assert_eq!(pw.len(), 32);
        assert!(pw.chars().any(|c| "!#%^*-_+=".contains(c)));
        let app: serde_json::Value = serde_json::from_str(SecretKind::DifyApp.generate("").expose_secret()).unwrap();
        let key =
            base64::engine::general_purpose::STANDARD.decode(app["password_encryption_key"].as_str().unwrap()).unwrap();
        assert_eq!(key.len(), 32);
        for k in ["app_secret_key", "inner_api_key", "plugin_daemon_key", "plugin_inner_api_key"] {
            assert!(app[k].as_str().unwrap().len() >= 40, "{k}");
        }
    }

    #[test]
    fn alnum_sampling_covers_the_alphabet_evenly() {
        let s = random_alnum(62_000);
        let mut counts = [0usize; 62];
        for c in s.bytes() {
            counts[ALNUM.iter().position(|a| *a == c).unwrap()] += 1;
        }
        // Expected 1000 each; 5 sigma is about 160.
        assert!(counts.iter().all(|n| (800..1200).contains(n)), "{counts:?}");
    }
}

#[cfg(test)]
mod completion {
    use super::*;

    #[test]
    fn a_secret_from_an_earlier_version_gains_the_new_keys_and_keeps_every_old_value() {
        let old = SecretString::from(r#"{"app_secret_key":"keep-me","password_encryption_key":"and-me"}"#.to_owned());
        let new = completed(SecretKind::DifyApp, &old, "").unwrap();
        let v: serde_json::Value = serde_json::from_str(new.expose_secret()).unwrap();
        assert_eq!(v["app_secret_key"], "keep-me");
        assert_eq!(v["password_encryption_key"], "and-me");
        for k in
            ["sandbox_api_key", "plugin_connector_api_key", "enterprise_admin_apis_salt", "enterprise_inner_api_key"]
        {
            assert!(v[k].as_str().is_some_and(|s| s.len() >= 40), "{k}");
        }
        assert!(completed(SecretKind::DifyApp, &new, "").is_none(), "complete: nothing to add");
        assert!(completed(SecretKind::RedisAuth, &SecretString::from("token".to_owned()), "").is_none());
    }
}
