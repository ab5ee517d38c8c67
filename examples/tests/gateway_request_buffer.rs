//! BackendTrafficPolicy `requestBuffer` through the `gateway` binary: a chunked upload under
//! the limit reaches the echo backend whole, with its `content-length`; one over the limit is
//! answered 413 without reaching it; a route without the policy streams the upload chunked.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

mod gateway_support;

use gateway_support::*;

#[tokio::test(flavor = "multi_thread")]
async fn uploads_are_buffered_up_to_the_limit() {
    let port = free_port();
    let backend = echo("echo-0").await;
    let dir = scratch("request-buffer");
    let config = gateway_yaml(port)
        + &service("echo", backend)
        + &host_route("buffered", "echo")
        + &host_route("streamed", "echo")
        + "apiVersion: gateway.envoyproxy.io/v1alpha1\nkind: BackendTrafficPolicy\nmetadata: {name: buffered}\nspec:\n  \
           targetRefs: [{group: gateway.networking.k8s.io, kind: HTTPRoute, name: buffered}]\n  \
           requestBuffer: {limit: 1Ki}\n---\n";
    std::fs::write(dir.join("config.yaml"), config).unwrap();
    std::fs::write(dir.join("small.bin"), vec![b'a'; 512]).unwrap();
    std::fs::write(dir.join("large.bin"), vec![b'b'; 2048]).unwrap();
    let gateway = start_gateway(&[&dir]).await;
    gateway.wait_ready().await;
    let url = format!("http://127.0.0.1:{port}/upload");
    let upload = |host: &str, file: &str| {
        let host = format!("host: {host}.example");
        let data = format!("@{}", dir.join(file).display());
        let url = url.clone();
        async move {
            curl(&[
                "-H",
                &host,
                "-H",
                "transfer-encoding: chunked",
                "--data-binary",
                &data,
                &url,
            ])
            .await
        }
    };

    let (status, response) = upload("buffered", "small.bin").await;
    assert_eq!(status, 200, "{response}");
    let headers = &echoed(&response)["headers"];
    assert_eq!(headers["content-length"][0], "512", "{response}");
    assert!(headers.get("transfer-encoding").is_none(), "{response}");

    let (status, response) = upload("buffered", "large.bin").await;
    assert_eq!(status, 413, "{response}");

    let (status, response) = upload("streamed", "large.bin").await;
    assert_eq!(status, 200, "{response}");
    let headers = &echoed(&response)["headers"];
    assert_eq!(headers["transfer-encoding"][0], "chunked", "{response}");
}
