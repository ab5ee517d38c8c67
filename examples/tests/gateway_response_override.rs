//! BackendTrafficPolicy `responseOverride` through the `gateway` binary: a backend's 404
//! replaced by an inline text body (with a header set); a backend's 502 by a JSON body read
//! from a ConfigMap; the gateway's own 503 for an unreachable backend by a rule for local
//! answers only (which also changes the status); other responses, and routes without the
//! policy, untouched.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

mod gateway_support;

use gateway_support::*;

const POLICY: &str = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: error-pages}\n\
data:\n  response.body: '{\"error\": \"the backend failed\"}'\n---\n\
apiVersion: gateway.envoyproxy.io/v1alpha1\nkind: BackendTrafficPolicy\nmetadata: {name: pages}\nspec:\n  \
targetRefs:\n  - {group: gateway.networking.k8s.io, kind: HTTPRoute, name: pages}\n  \
- {group: gateway.networking.k8s.io, kind: HTTPRoute, name: down}\n  \
responseOverride:\n  \
- match: {statusCodes: [{type: Value, value: 404}]}\n    \
response:\n      contentType: text/plain\n      body: {type: Inline, inline: 'Oops! Your request is not found.'}\n      \
header: {set: [{name: x-overridden, value: 'yes'}]}\n  \
- match: {statusCodes: [{type: Range, range: {start: 500, end: 511}}]}\n    source: Backend\n    \
response:\n      contentType: application/json\n      \
body: {type: ValueRef, valueRef: {group: '', kind: ConfigMap, name: error-pages}}\n  \
- match: {statusCodes: [{value: 503}]}\n    source: Local\n    \
response: {statusCode: 502, body: {inline: 'no backend (%RESPONSE_CODE%)'}}\n---\n";

#[tokio::test(flavor = "multi_thread")]
async fn responses_are_overridden_by_status_and_source() {
    let port = free_port();
    let backend = echo("echo-0").await;
    let dir = scratch("response-override");
    let config = gateway_yaml(port)
        + &service("echo", backend)
        + &service("dead", free_port())
        + &host_route("pages", "echo")
        + &host_route("down", "dead")
        + &host_route("plain", "echo")
        + POLICY;
    std::fs::write(dir.join("config.yaml"), config).unwrap();
    let gateway = start_gateway(&[&dir]).await;
    gateway.wait_ready().await;
    let url = format!("http://127.0.0.1:{port}/page");
    let get = |host: &str, status: Option<u16>| {
        let host = format!("host: {host}.example");
        let status = status.map(|s| format!("x-echo-status: {s}"));
        let url = url.clone();
        async move {
            let mut args = vec!["-H", host.as_str()];
            if let Some(status) = &status {
                args.extend(["-H", status.as_str()]);
            }
            args.push(&url);
            curl(&args).await
        }
    };

    let (status, response) = get("pages", Some(404)).await;
    assert_eq!(status, 404, "{response}");
    assert!(
        response.ends_with("\r\n\r\nOops! Your request is not found."),
        "{response}"
    );
    assert_eq!(header(&response, "content-type"), Some("text/plain"));
    assert_eq!(header(&response, "x-overridden"), Some("yes"));

    let (status, response) = get("pages", Some(502)).await;
    assert_eq!(status, 502, "{response}");
    assert!(
        response.ends_with("{\"error\": \"the backend failed\"}"),
        "{response}"
    );
    assert_eq!(header(&response, "content-type"), Some("application/json"));

    // The gateway's own 503: the Backend-only rule passes it over, the Local one applies.
    let (status, response) = get("down", None).await;
    assert_eq!(status, 502, "{response}");
    assert!(response.ends_with("no backend (503)"), "{response}");

    // A backend's 503 is not a local answer: the Backend rule applies.
    let (status, response) = get("pages", Some(503)).await;
    assert_eq!(status, 503, "{response}");
    assert!(
        response.ends_with("{\"error\": \"the backend failed\"}"),
        "{response}"
    );

    let (status, response) = get("pages", None).await;
    assert_eq!(status, 200, "{response}");
    assert_eq!(echoed(&response)["pod"], "echo-0");

    let (status, response) = get("plain", Some(404)).await;
    assert_eq!(status, 404, "{response}");
    assert_eq!(echoed(&response)["pod"], "echo-0");
    assert_eq!(header(&response, "x-overridden"), None);
}
