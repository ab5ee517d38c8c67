//! BackendTrafficPolicy `bandwidthLimit` through the `gateway` binary: a 96 KiB upload on a
//! route limited to 32 KiB/s up takes the two seconds the bucket's one-second burst leaves,
//! a 96 KiB download limited to 32 KiB/s down likewise, the same transfers on a route
//! without the policy take a fraction of that; nothing is refused. With
//! `responseTrailers`, an HTTP/2 response ends with Envoy's four delay trailers (read with
//! hyper's HTTP/2 client). A limit without a direction, or a limit that is not a quantity, is reported.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

mod gateway_support;

use std::time::{Duration, Instant};

use gateway_support::*;

const BULK: usize = 96 * 1024;

/// A keep-alive HTTP/1.1 backend answering every GET with a 96 KiB body.
async fn bulk_backend() -> u16 {
    use tokio::io::AsyncWriteExt;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut pending = Vec::new();
                while next_request_head(&mut stream, &mut pending).await.is_some() {
                    let head = format!(
                        "HTTP/1.1 200 OK\r\ncontent-type: application/octet-stream\r\ncontent-length: {BULK}\r\n\r\n"
                    );
                    if stream.write_all(head.as_bytes()).await.is_err()
                        || stream.write_all(&vec![b'x'; BULK]).await.is_err()
                    {
                        return;
                    }
                }
            });
        }
    });
    port
}

fn policy(targets: &[&str], spec: &str) -> String {
    let refs: Vec<String> = targets
        .iter()
        .map(|name| format!("{{group: gateway.networking.k8s.io, kind: HTTPRoute, name: {name}}}"))
        .collect();
    format!(
        "apiVersion: gateway.envoyproxy.io/v1alpha1\nkind: BackendTrafficPolicy\nmetadata: {{name: {}}}\nspec:\n  \
         targetRefs: [{}]\n  {spec}\n---\n",
        targets[0],
        refs.join(", ")
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn bodies_are_paced_to_the_limit_each_way() {
    let port = free_port();
    let echo_port = echo("echo-0").await;
    let bulk = bulk_backend().await;
    let dir = scratch("bandwidth");
    let config = gateway_yaml(port)
        + &service("echo", echo_port)
        + &service("bulk", bulk)
        + &host_route("up", "echo")
        + &host_route("down", "bulk")
        + &host_route("free-up", "echo")
        + &host_route("free-down", "bulk")
        + &policy(
            &["up", "down"],
            "bandwidthLimit: {request: {limit: 32Ki}, response: {limit: 32Ki, responseTrailers: {prefix: x-eg}}}",
        );
    std::fs::write(dir.join("config.yaml"), config).unwrap();
    let upload = dir.join("upload.bin");
    std::fs::write(&upload, vec![b'u'; BULK]).unwrap();
    let gateway = start_gateway(&[&dir]).await;
    gateway.wait_ready().await;
    let url = format!("http://127.0.0.1:{port}/");
    let data = format!("@{}", upload.display());
    let timed = |args: Vec<String>| async move {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let started = Instant::now();
        let (status, response) = curl(&args).await;
        (status, response, started.elapsed())
    };
    let post = |host: &str| {
        vec![
            "-H".to_owned(),
            format!("host: {host}.example"),
            "--data-binary".to_owned(),
            data.clone(),
            url.clone(),
        ]
    };
    let get = |host: &str| {
        vec![
            "-H".to_owned(),
            format!("host: {host}.example"),
            url.clone(),
        ]
    };

    // Uploads: 32 KiB of burst, then 64 KiB at 32 KiB/s.
    let (status, response, paced) = timed(post("up")).await;
    assert_eq!(status, 200, "{response}");
    let (status, response, free) = timed(post("free-up")).await;
    assert_eq!(status, 200, "{response}");
    assert!(
        paced >= Duration::from_millis(1700) && paced < Duration::from_secs(6),
        "{paced:?}"
    );
    assert!(free < Duration::from_millis(900), "{free:?}");

    // Downloads likewise; the whole body arrives.
    let (status, response, paced) = timed(get("down")).await;
    assert_eq!(status, 200);
    assert!(response.ends_with(&"x".repeat(64)), "the body is whole");
    assert!(response.len() > BULK);
    let (status, _, free) = timed(get("free-down")).await;
    assert_eq!(status, 200);
    assert!(
        paced >= Duration::from_millis(1700) && paced < Duration::from_secs(6),
        "{paced:?}"
    );
    assert!(free < Duration::from_millis(900), "{free:?}");

    // HTTP/2: the response ends with the delay trailers, the filter's own share about 2 s.
    let trailers = h2_trailers(port, "down.example").await;
    let trailer = |name: &str| -> u64 {
        trailers
            .get(name)
            .unwrap_or_else(|| panic!("no {name} trailer in {trailers:?}"))
            .to_str()
            .unwrap()
            .parse()
            .unwrap()
    };
    let waited = trailer("x-eg-bandwidth-response-filter-delay-ms");
    assert!((1500..=4000).contains(&waited), "{waited}");
    assert!(trailer("x-eg-bandwidth-response-delay-ms") >= waited);
    assert!(trailer("x-eg-bandwidth-request-delay-ms") < 1000);
}

/// GET `/` from `host` over h2c (prior knowledge) on `port`: the response's trailers, once
/// its whole body (96 KiB) has arrived.
async fn h2_trailers(port: u16, host: &str) -> http::HeaderMap {
    use http_body_util::BodyExt;
    let stream = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .unwrap();
    let (mut sender, connection) = hyper::client::conn::http2::handshake(
        hyper_util::rt::TokioExecutor::new(),
        hyper_util::rt::TokioIo::new(stream),
    )
    .await
    .unwrap();
    tokio::spawn(connection);
    let request = http::Request::get(format!("http://{host}/"))
        .body(http_body_util::Empty::<bytes::Bytes>::new())
        .unwrap();
    let response = sender.send_request(request).await.unwrap();
    assert_eq!(response.status(), 200);
    let collected = response.into_body().collect().await.unwrap();
    let trailers = collected.trailers().cloned().unwrap_or_default();
    assert_eq!(collected.to_bytes().len(), BULK);
    trailers
}

#[tokio::test(flavor = "multi_thread")]
async fn invalid_limits_are_reported() {
    let port = free_port();
    let echo_port = echo("echo-0").await;
    let dir = scratch("bandwidth-invalid");
    let config = gateway_yaml(port)
        + &service("echo", echo_port)
        + &host_route("none", "echo")
        + &host_route("nonsense", "echo")
        + &policy(&["none"], "bandwidthLimit: {}")
        + &policy(&["nonsense"], "bandwidthLimit: {request: {limit: fast}}");
    std::fs::write(dir.join("config.yaml"), config).unwrap();
    let gateway = start_gateway(&[&dir]).await;
    gateway.wait_ready().await;
    let (_, text) = curl(&[&gateway.admin_url("/status")]).await;
    assert!(
        text.contains("at least one of request or response"),
        "{text}"
    );
    assert!(text.contains("spec.bandwidthLimit.request.limit"), "{text}");
}
