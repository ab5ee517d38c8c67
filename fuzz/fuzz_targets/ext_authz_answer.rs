//! Fuzzes the reading of an external authorizer's answer: any gRPC body (framed or not, any
//! protobuf) or HTTP answer is a verdict — allowed with header edits that apply cleanly,
//! denied with a status that can be sent, or no decision — never a panic.
#![no_main]
// A fuzz target reports a violated property by panicking.
#![allow(clippy::panic, clippy::unwrap_used, clippy::expect_used)]

use std::sync::{Arc, OnceLock};

use bytes::Bytes;
use http::{HeaderMap, StatusCode};
use libfuzzer_sys::fuzz_target;
use mesh_policy::security::ext_auth::{
    AuthorizerClient, AuthorizerFuture, AuthorizerRequest, AuthorizerResponse, ExtAuth,
    ExtAuthVerdict,
};
use mesh_policy::security::model::ExtAuthSpec;

#[derive(Debug)]
struct Nobody;

impl AuthorizerClient for Nobody {
    fn exchange(&self, _: AuthorizerRequest) -> AuthorizerFuture {
        Box::pin(async { Err("nobody".to_owned()) })
    }
}

const SERVICE: &str = "apiVersion: v1\nkind: Service\nmetadata: {name: authz}\nspec: {ports: [{name: http, port: 80}]}\n";

fn compiled(protocol: &str) -> ExtAuth {
    let config = routing::loader::load_str("s.yaml", SERVICE).unwrap().config;
    let spec: ExtAuthSpec = serde_yaml_ng::from_str(&format!(
        "{protocol}: {{backendRefs: [{{name: authz, port: 80}}]}}"
    ))
    .unwrap();
    let client: Arc<dyn AuthorizerClient> = Arc::new(Nobody);
    ExtAuth::compile(&spec, "default", &config, Some(&client)).unwrap()
}

static GRPC: OnceLock<ExtAuth> = OnceLock::new();
static HTTP: OnceLock<ExtAuth> = OnceLock::new();

fuzz_target!(|data: &[u8]| {
    let Some((&selector, rest)) = data.split_first() else {
        return;
    };
    let mut headers = HeaderMap::new();
    let mut trailers = HeaderMap::new();
    trailers.insert("grpc-status", "0".parse().unwrap());
    let (ext, status) = if selector & 1 == 0 {
        (GRPC.get_or_init(|| compiled("grpc")), StatusCode::OK)
    } else {
        headers.insert("x-from-authorizer", "1".parse().unwrap());
        let status = StatusCode::from_u16(200 + u16::from(selector) % 400).unwrap();
        (HTTP.get_or_init(|| compiled("http")), status)
    };
    let answer = AuthorizerResponse {
        status,
        headers,
        body: Bytes::copy_from_slice(rest),
        trailers: Some(trailers),
    };
    match ext.interpret(Ok(answer)) {
        ExtAuthVerdict::Allowed(edits) => {
            let mut request = HeaderMap::new();
            request.insert("host", "shop.example".parse().unwrap());
            edits.apply(&mut request);
            assert!(request.contains_key("host"), "Host is never removed");
        }
        ExtAuthVerdict::Denied { status, .. } => assert!(status.as_u16() >= 200),
        ExtAuthVerdict::Failed(reason) => assert!(!reason.is_empty()),
    }
});
