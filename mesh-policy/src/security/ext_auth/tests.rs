#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::{Arc, Mutex};

use bytes::{BufMut, Bytes, BytesMut};
use http::{HeaderMap, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use prost::Message;
use routing::loader::load_str;
use routing::router::RouteError;

use super::grpc::{
    CheckRequest, CheckResponse, DeniedHttpResponse, HeaderValueMessage, HeaderValueOption,
    HttpStatus, OkHttpResponse, RpcStatus,
};
use super::*;
use crate::security::model::ExtAuthSpec;

const SERVICES: &str = r#"
apiVersion: v1
kind: Service
metadata: {name: authz, namespace: shop}
spec: {ports: [{name: http, port: 80}]}
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {name: authz-1, namespace: shop, labels: {kubernetes.io/service-name: authz}}
addressType: IPv4
endpoints: [{addresses: [10.0.0.9]}]
ports: [{name: http, port: 9000}]
---
apiVersion: v1
kind: ConfigMap
metadata: {name: tenants, namespace: shop}
data: {color: green}
"#;

/// Answers every exchange with the next canned answer; remembers what it was asked.
#[derive(Debug, Default)]
struct Canned {
    answers: Mutex<Vec<Result<AuthorizerResponse, String>>>,
    asked: Mutex<Vec<AuthorizerRequest>>,
}

impl AuthorizerClient for Canned {
    fn exchange(&self, request: AuthorizerRequest) -> AuthorizerFuture {
        self.asked.lock().unwrap().push(request);
        let answer = self
            .answers
            .lock()
            .unwrap()
            .pop()
            .unwrap_or(Err("nothing canned".into()));
        Box::pin(async move { answer })
    }
}

fn compile_with(yaml: &str, client: &Arc<Canned>) -> Result<ExtAuth, String> {
    let spec: ExtAuthSpec = serde_yaml_ng::from_str(yaml).unwrap();
    let config = load_str("services.yaml", SERVICES).unwrap().config;
    let client: Arc<dyn AuthorizerClient> = client.clone();
    ExtAuth::compile(&spec, "shop", &config, Some(&client))
}

fn compile(yaml: &str) -> (ExtAuth, Arc<Canned>) {
    let client = Arc::new(Canned::default());
    (compile_with(yaml, &client).unwrap(), client)
}

fn head(method: &str, target: &str, headers: &[(&str, &str)]) -> http::request::Parts {
    let mut builder = Request::builder().method(method).uri(target);
    for (name, value) in headers {
        builder = builder.header(*name, *value);
    }
    builder.body(()).unwrap().into_parts().0
}

fn answer(status: u16, headers: &[(&str, &str)], body: &'static [u8]) -> AuthorizerResponse {
    let mut map = HeaderMap::new();
    for (name, value) in headers {
        map.append(
            http::header::HeaderName::from_bytes(name.as_bytes()).unwrap(),
            value.parse().unwrap(),
        );
    }
    AuthorizerResponse {
        status: StatusCode::from_u16(status).unwrap(),
        headers: map,
        body: Bytes::from_static(body),
        trailers: None,
    }
}

fn grpc_answer(message: &CheckResponse) -> AuthorizerResponse {
    let mut framed = BytesMut::new();
    framed.put_u8(0);
    framed.put_u32(u32::try_from(message.encoded_len()).unwrap());
    message.encode(&mut framed).unwrap();
    let mut trailers = HeaderMap::new();
    trailers.insert("grpc-status", "0".parse().unwrap());
    AuthorizerResponse {
        status: StatusCode::OK,
        headers: HeaderMap::new(),
        body: framed.freeze(),
        trailers: Some(trailers),
    }
}

const HTTP: &str = "http: {backendRefs: [{name: authz, port: 80}], path: /check/, headersToBackend: [x-user]}\nheadersToExtAuth: [x-extra]";
const GRPC: &str = "grpc: {backendRefs: [{name: authz, port: 80}]}\ncontextExtensions: [{name: tenant, value: blue}, {name: color, type: ValueRef, valueRef: {kind: ConfigMap, name: tenants, key: color}}]";

#[test]
fn compiling_resolves_the_service_and_applies_defaults() {
    let (ext, _) = compile(HTTP);
    assert_eq!(ext.target.authority, "authz.shop:80");
    assert_eq!(ext.target.endpoints, ["10.0.0.9:9000".parse().unwrap()]);
    assert_eq!(ext.status_on_error, StatusCode::FORBIDDEN);
    assert_eq!(ext.timeout, std::time::Duration::from_secs(10));
    assert!(!ext.fail_open);
    let (ext, _) = compile(GRPC);
    assert_eq!(
        ext.context_extensions,
        [
            ("tenant".into(), "blue".into()),
            ("color".into(), "green".into())
        ]
    );
}

#[test]
fn compiling_refuses_what_cannot_be_enforced() {
    let client = Arc::new(Canned::default());
    for (yaml, expected) in [
        ("{}", "exactly one of grpc and http"),
        (
            "grpc: {backendRefs: [{name: authz, port: 80}]}\nhttp: {backendRefs: [{name: authz, port: 80}]}",
            "exactly one",
        ),
        (
            "http: {backendRefs: [{name: missing, port: 80}]}",
            "not found",
        ),
        (
            "http: {backendRefs: [{name: authz, namespace: other, port: 80}]}",
            "another namespace",
        ),
        ("http: {backendRefs: [{name: authz}]}", "needs a port"),
        (
            "http: {backendRefs: [{name: authz, port: 80}]}\nstatusOnError: 200",
            "not a 4xx or 5xx",
        ),
        (
            "http: {backendRefs: [{name: authz, port: 80}]}\ntimeout: soon",
            "not a duration",
        ),
        (
            "grpc: {backendRefs: [{name: authz, port: 80}]}\ncontextExtensions: [{name: x, type: ValueRef, valueRef: {kind: ConfigMap, name: tenants, key: nope}}]",
            "has no key",
        ),
    ] {
        let error = compile_with(yaml, &client).unwrap_err();
        assert!(error.contains(expected), "{yaml}: {error}");
    }
    let recompute = compile_with(
        "http: {backendRefs: [{name: authz, port: 80}]}\nrecomputeRoute: true",
        &client,
    )
    .unwrap();
    assert!(recompute.recompute_route);
    let spec: ExtAuthSpec = serde_yaml_ng::from_str(HTTP).unwrap();
    let config = load_str("services.yaml", SERVICES).unwrap().config;
    let error = ExtAuth::compile(&spec, "shop", &config, None).unwrap_err();
    assert!(error.contains("needs a runtime"), "{error}");
}

#[test]
fn the_http_check_keeps_method_and_path_and_sends_few_headers() {
    let (ext, _) = compile(HTTP);
    let parts = head(
        "DELETE",
        "/items/7?force=1",
        &[
            ("host", "shop.example"),
            ("authorization", "Bearer t"),
            ("x-extra", "a"),
            ("x-extra", "b"),
            ("cookie", "secret"),
            ("content-length", "99"),
        ],
    );
    let body = Bytes::from_static(b"abc");
    let context = CheckContext {
        body: Some(&body),
        ..CheckContext::default()
    };
    let call = ext.prepare(&parts, &context).unwrap();
    assert_eq!(call.protocol, AuthorizerProtocol::Http);
    let request = call.request;
    assert_eq!(request.method(), "DELETE");
    assert_eq!(request.uri(), "/check/items/7?force=1");
    let headers = request.headers();
    assert_eq!(headers["host"], "shop.example");
    assert_eq!(headers["authorization"], "Bearer t");
    assert_eq!(headers.get_all("x-extra").iter().count(), 2);
    assert_eq!(headers["content-length"], "3");
    assert!(headers.get("cookie").is_none());
    assert_eq!(request.body(), "abc");
}

#[test]
fn http_answers_allow_on_2xx_and_are_relayed_otherwise() {
    let (ext, _) = compile(HTTP);
    let allowed = ext.interpret(Ok(answer(
        204,
        &[("x-user", "alice"), ("x-user", "bob"), ("x-other", "no")],
        b"",
    )));
    let ExtAuthVerdict::Allowed(edits) = allowed else {
        panic!("{allowed:?}")
    };
    let mut headers = HeaderMap::new();
    headers.insert("x-user", "forged".parse().unwrap());
    edits.apply(&mut headers);
    let users: Vec<_> = headers.get_all("x-user").iter().collect();
    assert_eq!(users, ["alice", "bob"]);
    assert!(headers.get("x-other").is_none());

    let denied = ext.interpret(Ok(answer(
        302,
        &[("location", "/login"), ("transfer-encoding", "chunked")],
        b"go",
    )));
    let ExtAuthVerdict::Denied {
        status,
        headers,
        body,
    } = denied
    else {
        panic!("{denied:?}")
    };
    assert_eq!(status, 302);
    assert_eq!(headers["location"], "/login");
    assert!(headers.get("transfer-encoding").is_none());
    assert_eq!(body, "go");
    assert!(matches!(
        ext.interpret(Err("refused".into())),
        ExtAuthVerdict::Failed(_)
    ));
}

#[test]
fn the_grpc_check_describes_the_request() {
    let (ext, _) = compile(GRPC);
    let parts = head(
        "POST",
        "/pay?x=1",
        &[
            ("host", "shop.example"),
            ("x-a", "1"),
            ("x-a", "2"),
            ("x-request-id", "r-1"),
        ],
    );
    let principal = "spiffe://cluster.local/ns/shop/sa/web";
    let context = CheckContext {
        source: Some("10.1.1.1:5555".parse().unwrap()),
        destination: Some("10.2.2.2:80".parse().unwrap()),
        principal: Some(principal),
        scheme: "https",
        body: None,
    };
    let call = ext.prepare(&parts, &context).unwrap();
    assert_eq!(call.request.uri(), super::grpc::CHECK_PATH);
    assert_eq!(call.request.headers()["content-type"], "application/grpc");
    assert_eq!(call.request.headers()["grpc-timeout"], "10000m");
    let body = call.request.body();
    assert_eq!(body[0], 0);
    let length = u32::from_be_bytes(body[1..5].try_into().unwrap()) as usize;
    assert_eq!(length, body.len() - 5);
    let sent = CheckRequest::decode(&body[5..]).unwrap();
    let attributes = sent.attributes.unwrap();
    let source = attributes.source.unwrap();
    assert_eq!(source.principal, principal);
    let address = source.address.unwrap().socket_address.unwrap();
    assert_eq!(
        (address.address.as_str(), address.port_value),
        ("10.1.1.1", 5555)
    );
    let http = attributes.request.unwrap().http.unwrap();
    assert_eq!(http.method, "POST");
    assert_eq!(http.path, "/pay?x=1");
    assert_eq!(http.host, "shop.example");
    assert_eq!(http.scheme, "https");
    assert_eq!(http.id, "r-1");
    assert_eq!(http.size, -1);
    assert_eq!(http.headers["x-a"], "1,2");
    assert_eq!(http.headers[":method"], "POST");
    assert_eq!(attributes.context_extensions["color"], "green");
}

fn option(key: &str, value: &str, append: Option<bool>, action: i32) -> HeaderValueOption {
    HeaderValueOption {
        header: Some(HeaderValueMessage {
            key: key.into(),
            value: value.into(),
            raw_value: Vec::new(),
        }),
        append: append.map(|value| super::grpc::BoolValue { value }),
        append_action: action,
    }
}

#[test]
fn grpc_answers_edit_allowed_requests_and_relay_denials() {
    let (ext, _) = compile(GRPC);
    let ok = CheckResponse {
        status: Some(RpcStatus::default()),
        ok_response: Some(OkHttpResponse {
            headers: vec![
                option("x-set", "new", None, 0),
                option("x-add", "more", Some(true), 0),
                option("x-absent", "only-if", None, 1),
                option("x-present", "only-if", None, 3),
                option("x-missing", "never", None, 3),
            ],
            headers_to_remove: vec!["x-drop".into(), "host".into()],
        }),
        denied_response: None,
    };
    let ExtAuthVerdict::Allowed(edits) = ext.interpret(Ok(grpc_answer(&ok))) else {
        panic!("allowed")
    };
    let mut headers = HeaderMap::new();
    for (name, value) in [
        ("x-set", "old"),
        ("x-add", "first"),
        ("x-absent", "kept"),
        ("x-present", "old"),
        ("x-drop", "x"),
        ("host", "h"),
    ] {
        headers.insert(name, value.parse().unwrap());
    }
    edits.apply(&mut headers);
    assert_eq!(headers["x-set"], "new");
    assert_eq!(headers.get_all("x-add").iter().count(), 2);
    assert_eq!(headers["x-absent"], "kept");
    assert_eq!(headers["x-present"], "only-if");
    assert!(headers.get("x-missing").is_none());
    assert!(headers.get("x-drop").is_none());
    assert_eq!(headers["host"], "h", "Host is never removed");

    let denied = CheckResponse {
        status: Some(RpcStatus {
            code: 7,
            message: String::new(),
        }),
        denied_response: Some(DeniedHttpResponse {
            status: Some(HttpStatus { code: 429 }),
            headers: vec![option("retry-after", "5", None, 0)],
            body: "slow down".into(),
        }),
        ok_response: None,
    };
    let ExtAuthVerdict::Denied {
        status,
        headers,
        body,
    } = ext.interpret(Ok(grpc_answer(&denied)))
    else {
        panic!("denied")
    };
    assert_eq!(
        (status.as_u16(), &headers["retry-after"], &body[..]),
        (429, &"5".parse().unwrap(), &b"slow down"[..])
    );
    // A denial without a status is 403.
    let bare = CheckResponse {
        status: Some(RpcStatus {
            code: 16,
            message: String::new(),
        }),
        ..CheckResponse::default()
    };
    let ExtAuthVerdict::Denied { status, .. } = ext.interpret(Ok(grpc_answer(&bare))) else {
        panic!("denied")
    };
    assert_eq!(status, StatusCode::FORBIDDEN);
}

#[test]
fn broken_grpc_answers_decide_nothing() {
    let (ext, _) = compile(GRPC);
    let good = grpc_answer(&CheckResponse::default());
    let mut cases = Vec::new();
    let mut failed = good.clone();
    failed.trailers = Some(HeaderMap::from_iter([(
        http::header::HeaderName::from_static("grpc-status"),
        "14".parse().unwrap(),
    )]));
    cases.push(("grpc-status 14", failed));
    let mut none = good.clone();
    none.trailers = None;
    cases.push(("no grpc-status", none));
    let mut http_error = good.clone();
    http_error.status = StatusCode::BAD_GATEWAY;
    cases.push(("HTTP 502", http_error));
    for body in [
        &b""[..],
        &b"\x00\x00\x00"[..],
        &b"\x01\x00\x00\x00\x00"[..],
        &b"\x00\x00\x00\x00\x09\x08"[..],
        &b"\x00\x00\x00\x00\x02\xff\xff"[..],
    ] {
        let mut garbage = good.clone();
        garbage.body = Bytes::copy_from_slice(body);
        cases.push(("garbage body", garbage));
    }
    for (what, case) in cases {
        assert!(
            matches!(ext.interpret(Ok(case)), ExtAuthVerdict::Failed(_)),
            "{what}"
        );
    }
    assert!(matches!(
        ext.interpret(Ok(good)),
        ExtAuthVerdict::Allowed(_)
    ));
}

fn run<F: std::future::Future>(future: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap()
        .block_on(future)
}

fn post(body: &'static str) -> Request<Full<Bytes>> {
    Request::post("/upload")
        .body(Full::new(Bytes::from_static(body.as_bytes())))
        .unwrap()
}

#[test]
fn authorize_buffers_the_body_caps_it_and_fails_closed_or_open() {
    let yaml = format!("{HTTP}\nbodyToExtAuth: {{maxRequestBytes: 8}}");
    let (ext, client) = compile(&yaml);
    client
        .answers
        .lock()
        .unwrap()
        .push(Ok(answer(200, &[("x-user", "alice")], b"")));
    let allowed = run(authorize(
        &ext,
        "p",
        post("12345678"),
        CheckContext::default(),
    ))
    .unwrap();
    assert_eq!(allowed.headers()["x-user"], "alice");
    let forwarded = run(allowed.into_body().collect()).unwrap().to_bytes();
    assert_eq!(forwarded, "12345678", "the buffered body is forwarded");
    assert_eq!(client.asked.lock().unwrap()[0].request.body(), "12345678");

    let too_large = run(authorize(
        &ext,
        "p",
        post("123456789"),
        CheckContext::default(),
    ));
    assert!(matches!(too_large, Err(RouteError::BodyTooLarge { .. })));
    assert_eq!(client.asked.lock().unwrap().len(), 1, "not asked");

    let failed = run(authorize(&ext, "p", post(""), CheckContext::default()));
    match failed {
        Err(RouteError::AuthorizerFailed { status, .. }) => assert_eq!(status, 403),
        other => panic!("{other:?}"),
    }
    let open = format!("{HTTP}\nfailOpen: true\nbodyToExtAuth: {{maxRequestBytes: 8}}");
    let (ext, _) = compile(&open);
    assert!(run(authorize(&ext, "p", post(""), CheckContext::default())).is_ok());
    let too_large = run(authorize(
        &ext,
        "p",
        post("123456789"),
        CheckContext::default(),
    ));
    assert!(
        matches!(too_large, Err(RouteError::BodyTooLarge { .. })),
        "413 whatever failOpen says"
    );
}
