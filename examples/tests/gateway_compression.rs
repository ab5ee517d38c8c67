//! BackendTrafficPolicy `compressor` through the `gateway` binary: the echo backend's JSON is
//! compressed with the encoding the client accepts (gzip, Brotli), decoded by curl itself;
//! the backend never sees `Accept-Encoding`; answers under `minContentLength` and routes
//! without the policy pass as they are.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

mod gateway_support;

use gateway_support::*;

fn compressed(name: &str, compressor: &str) -> String {
    format!(
        "{}apiVersion: gateway.envoyproxy.io/v1alpha1\nkind: BackendTrafficPolicy\nmetadata: {{name: {name}}}\nspec:\n  \
         targetRefs: [{{group: gateway.networking.k8s.io, kind: HTTPRoute, name: {name}}}]\n  \
         compressor: {compressor}\n---\n",
        host_route(name, "echo")
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn answers_are_compressed_as_the_client_accepts() {
    let port = free_port();
    let backend = echo("echo-0").await;
    let dir = scratch("compression");
    let config = gateway_yaml(port)
        + &service("echo", backend)
        + &compressed("zipped", "[{type: Brotli}, {type: Gzip}]")
        + &compressed("large-only", "[{type: Gzip, minContentLength: 10Ki}]")
        + &host_route("plain", "echo");
    std::fs::write(dir.join("config.yaml"), config).unwrap();
    let gateway = start_gateway(&[&dir]).await;
    gateway.wait_ready().await;
    let url = format!("http://127.0.0.1:{port}/");

    for (accepted, expected) in [("gzip", "gzip"), ("br", "br"), ("gzip, br", "br")] {
        let accept = format!("accept-encoding: {accepted}");
        // curl decodes what it asked for with --compressed; the raw head tells the encoding.
        let (status, response) = curl(&[
            "--compressed",
            "-H",
            "host: zipped.example",
            "-H",
            &accept,
            &url,
        ])
        .await;
        assert_eq!(status, 200, "{response}");
        assert_eq!(
            header(&response, "content-encoding"),
            Some(expected),
            "{response}"
        );
        let body = echoed(&response);
        assert_eq!(body["pod"], "echo-0");
        assert!(
            body["headers"].get("accept-encoding").is_none(),
            "{response}"
        );
    }
    let (_, response) = curl(&["-H", "host: zipped.example", &url]).await;
    assert_eq!(header(&response, "content-encoding"), None, "{response}");
    let (_, response) = curl(&[
        "-H",
        "host: zipped.example",
        "-H",
        "accept-encoding: identity",
        &url,
    ])
    .await;
    assert_eq!(header(&response, "content-encoding"), None, "{response}");

    // Under minContentLength: not compressed (and still no Accept-Encoding upstream).
    let (_, response) = curl(&[
        "--compressed",
        "-H",
        "host: large-only.example",
        "-H",
        "accept-encoding: gzip",
        &url,
    ])
    .await;
    assert_eq!(header(&response, "content-encoding"), None, "{response}");
    assert!(
        echoed(&response)["headers"]
            .get("accept-encoding")
            .is_none()
    );

    // Without the policy, the backend gets the header and its answer passes untouched.
    let (_, response) = curl(&[
        "-H",
        "host: plain.example",
        "-H",
        "accept-encoding: gzip",
        &url,
    ])
    .await;
    assert_eq!(header(&response, "content-encoding"), None, "{response}");
    assert_eq!(echoed(&response)["headers"]["accept-encoding"][0], "gzip");
}
