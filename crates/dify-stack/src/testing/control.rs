//! What `Stack` calls around the graph, answered in memory at the SDK's HTTP layer: the
//! caller's identity (STS `GetCallerIdentity`) and the control bucket (S3: the bucket made on
//! first use, the stack lock written with `If-None-Match: *` and renewed with `If-Match`, the
//! recorded outputs). Each answer comes after one API round trip on the simulated clock
//! ([`dify_stack_core::sim::API_ROUND_TRIP`], an estimate), so the benchmark times what the CLI's `apply`
//! runs, lock and outputs included. Only these calls are modelled: any other is answered
//! `501 NotModelled`, naming it, so the run fails instead of being answered something made up.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use aws_smithy_runtime_api::client::http::{
    HttpClient, HttpConnector, HttpConnectorFuture, HttpConnectorSettings, SharedHttpConnector,
};
use aws_smithy_runtime_api::client::orchestrator::{HttpRequest, HttpResponse};
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_runtime_api::http::StatusCode;
use aws_smithy_types::body::SdkBody;

use dify_stack_core::sim::Sim;

/// The account the simulation runs in.
pub const ACCOUNT: &str = "123456789012";

#[derive(Default)]
struct Bucket {
    exists: bool,
    /// key -> (body, ETag)
    objects: BTreeMap<String, (Vec<u8>, String)>,
}

/// STS and the control bucket over the SDK's HTTP layer (see the module's docs).
#[derive(Clone)]
pub struct ControlPlane {
    sim: Arc<Sim>,
    bucket: Arc<Mutex<Bucket>>,
    etags: Arc<AtomicU64>,
}

impl std::fmt::Debug for ControlPlane {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ControlPlane").finish_non_exhaustive()
    }
}

impl ControlPlane {
    /// An account with no control bucket yet, answering after one round trip of `sim`.
    pub fn new(sim: Arc<Sim>) -> ControlPlane {
        ControlPlane { sim, bucket: Arc::default(), etags: Arc::default() }
    }

    /// An SDK config whose every call this answers (static credentials: nothing leaves the
    /// process).
    pub fn sdk_config(&self, region: &str) -> aws_types::SdkConfig {
        aws_types::SdkConfig::builder()
            .behavior_version(aws_config::BehaviorVersion::latest())
            .region(aws_types::region::Region::new(region.to_owned()))
            .endpoint_url("http://control.sim.invalid")
            .credentials_provider(aws_credential_types::provider::SharedCredentialsProvider::new(
                aws_credential_types::Credentials::new("AKIASIMULATED", "simulated", None, None, "bench"),
            ))
            .http_client(self.clone())
            .build()
    }

    /// The answer to one request: status, body and extra headers.
    fn answer(&self, method: &str, path: &str, query: &str, headers: &[(String, String)], body: &[u8]) -> Answer {
        let header = |name: &str| headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str());
        let form = String::from_utf8_lossy(body);
        if method == "POST" && path == "/" && form.contains("Action=GetCallerIdentity") {
            return Answer::xml(
                200,
                format!(
                    "<GetCallerIdentityResponse xmlns=\"https://sts.amazonaws.com/doc/2011-06-15/\"><GetCallerIdentityResult><Arn>arn:aws:iam::{ACCOUNT}:user/bench</Arn><UserId>AIDASIMULATED</UserId><Account>{ACCOUNT}</Account></GetCallerIdentityResult><ResponseMetadata><RequestId>sim</RequestId></ResponseMetadata></GetCallerIdentityResponse>"
                ),
            );
        }
        // Path-style S3: /<bucket>[/<key>].
        let mut parts = path.trim_start_matches('/').splitn(2, '/');
        let (_bucket, key) = (parts.next().unwrap_or_default(), parts.next().unwrap_or_default());
        let mut b = self.bucket.lock().unwrap();
        match (method, key.is_empty()) {
            ("HEAD", true) => Answer::empty(if b.exists { 200 } else { 404 }),
            // CreateBucket, then its encryption, versioning, public access block and tags.
            ("PUT", true) => {
                if query.is_empty() {
                    b.exists = true;
                }
                Answer::empty(200)
            }
            ("PUT", false) => {
                let existing = b.objects.get(key).map(|(_, etag)| etag.clone());
                let refused = match (header("if-none-match"), header("if-match")) {
                    (Some("*"), _) => existing.is_some(),
                    (_, Some(want)) => existing.as_deref() != Some(want),
                    _ => false,
                };
                // A failed precondition is 412 PreconditionFailed (S3 user guide, "Add preconditions to
                // S3 operations with conditional requests"), as `lock.rs` expects.
                if refused {
                    return Answer::s3_error(
                        412,
                        "PreconditionFailed",
                        "At least one of the pre-conditions you specified did not hold",
                    );
                }
                let etag = format!("\"{:032x}\"", self.etags.fetch_add(1, Ordering::Relaxed));
                b.objects.insert(key.to_owned(), (body.to_vec(), etag.clone()));
                Answer { status: 200, body: Vec::new(), headers: vec![("etag".to_owned(), etag)] }
            }
            ("GET", false) => match b.objects.get(key) {
                Some((body, etag)) => Answer {
                    status: 200,
                    body: body.clone(),
                    headers: vec![
                        ("etag".to_owned(), etag.clone()),
                        ("content-type".to_owned(), "application/json".to_owned()),
                    ],
                },
                None => Answer::s3_error(404, "NoSuchKey", "The specified key does not exist."),
            },
            ("DELETE", false) => {
                b.objects.remove(key);
                Answer::empty(204)
            }
            _ => {
                Answer::s3_error(501, "NotModelled", &format!("the simulation does not model {method} {path}?{query}"))
            }
        }
    }
}

struct Answer {
    status: u16,
    body: Vec<u8>,
    headers: Vec<(String, String)>,
}

impl Answer {
    fn empty(status: u16) -> Answer {
        Answer { status, body: Vec::new(), headers: Vec::new() }
    }

    fn xml(status: u16, body: String) -> Answer {
        Answer { status, body: body.into_bytes(), headers: vec![("content-type".to_owned(), "text/xml".to_owned())] }
    }

    fn s3_error(status: u16, code: &str, message: &str) -> Answer {
        Answer::xml(
            status,
            format!("<Error><Code>{code}</Code><Message>{message}</Message><RequestId>sim</RequestId></Error>"),
        )
    }
}

impl HttpClient for ControlPlane {
    fn http_connector(&self, _: &HttpConnectorSettings, _: &RuntimeComponents) -> SharedHttpConnector {
        SharedHttpConnector::new(self.clone())
    }
}

impl HttpConnector for ControlPlane {
    fn call(&self, request: HttpRequest) -> HttpConnectorFuture {
        let uri = request.uri().to_owned();
        let (path, query) = match uri.split_once("://").map(|(_, rest)| rest).unwrap_or(&uri).split_once('/') {
            Some((_, rest)) => match ("/".to_owned() + rest).split_once('?') {
                Some((p, q)) => (p.to_owned(), q.to_owned()),
                None => ("/".to_owned() + rest, String::new()),
            },
            None => ("/".to_owned(), String::new()),
        };
        let headers: Vec<(String, String)> =
            request.headers().iter().map(|(k, v)| (k.to_owned(), v.to_owned())).collect();
        let body = request.body().bytes().map(<[u8]>::to_vec).unwrap_or_default();
        let answer = self.answer(request.method(), &path, &query, &headers, &body);
        let sim = self.sim.clone();
        HttpConnectorFuture::new(async move {
            sim.read().await;
            let mut response = HttpResponse::new(
                StatusCode::try_from(answer.status).expect("valid status"),
                SdkBody::from(answer.body),
            );
            for (k, v) in answer.headers {
                response.headers_mut().insert(k, v);
            }
            response.headers_mut().insert("x-amzn-requestid", "sim");
            Ok(response)
        })
    }
}
