//! BackendTrafficPolicy `useClientProtocol` through the `gateway` binary: the echo backend
//! (HTTP/1.1 and h2c) reports the protocol it was spoken to — the client's with the policy
//! (HTTP/2 for an h2c client, HTTP/1.1 for an HTTP/1.1 one, even to an `h2c` Service), the
//! Service's `appProtocol` without it — and ClientTrafficPolicy `scheme`: the `:scheme` an h2c
//! backend (the independent python `h2` server) receives is the client's by default
//! (`https` behind an HTTPS listener, over HTTP/2 and HTTP/1.1 alike), that of the
//! gateway's connection to the backend (`http`) under `MatchBackend`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

mod gateway_support;

use gateway_support::tls::{openssl_certificate, tls_secret};
use gateway_support::*;

fn client_protocol(route: &str) -> String {
    format!(
        "apiVersion: gateway.envoyproxy.io/v1alpha1\nkind: BackendTrafficPolicy\nmetadata: {{name: {route}}}\nspec:\n  \
         targetRefs: [{{group: gateway.networking.k8s.io, kind: HTTPRoute, name: {route}}}]\n  \
         useClientProtocol: true\n---\n"
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn use_client_protocol_speaks_the_clients_protocol_upstream() {
    let port = free_port();
    let backend = echo("echo-0").await;
    let dir = scratch("backend-protocol");
    let config = gateway_yaml(port)
        + &service("echo", backend)
        + &h2c_service("grpcish", backend)
        + &host_route("same", "echo")
        + &host_route("plain", "echo")
        + &host_route("h2same", "grpcish")
        + &host_route("h2plain", "grpcish")
        + &client_protocol("same")
        + &client_protocol("h2same");
    std::fs::write(dir.join("config.yaml"), config).unwrap();
    let gateway = start_gateway(&[&dir]).await;
    gateway.wait_ready().await;
    let url = format!("http://127.0.0.1:{port}/");
    let proto = |response: String| echoed(&response)["proto"].as_str().unwrap().to_owned();
    for (host, h2, expected) in [
        ("same", true, "HTTP/2.0"),
        ("same", false, "HTTP/1.1"),
        ("plain", true, "HTTP/1.1"),
        ("plain", false, "HTTP/1.1"),
        ("h2same", false, "HTTP/1.1"),
        ("h2same", true, "HTTP/2.0"),
        ("h2plain", false, "HTTP/2.0"),
    ] {
        let host_header = format!("host: {host}.example");
        let mut args = vec!["-H", host_header.as_str()];
        if h2 {
            args.push("--http2-prior-knowledge");
        }
        args.push(&url);
        let (status, response) = curl(&args).await;
        assert_eq!(status, 200, "{host} h2={h2}: {response}");
        assert_eq!(proto(response), expected, "{host} h2={h2}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn scheme_is_the_clients_unless_the_policy_matches_the_backend() {
    let (_server, backend) = h2_settings_server().await;
    let (plain, preserve, matched) = (free_port(), free_port(), free_port());
    let dir = scratch("client-scheme");
    let certificate = openssl_certificate(&dir, "gw", &["gw.example"], false);
    let config = format!(
        "apiVersion: gateway.networking.k8s.io/v1\nkind: Gateway\nmetadata: {{name: gw}}\nspec:\n  \
         gatewayClassName: test\n  addresses: [{{value: 127.0.0.1}}]\n  listeners:\n  \
         - {{name: plain, port: {plain}, protocol: HTTP}}\n  \
         - {{name: preserve, port: {preserve}, protocol: HTTPS, tls: {{certificateRefs: [{{name: gw-cert}}]}}}}\n  \
         - {{name: matched, port: {matched}, protocol: HTTPS, tls: {{certificateRefs: [{{name: gw-cert}}]}}}}\n---\n\
         apiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\nmetadata: {{name: r}}\n\
         spec:\n  parentRefs: [{{name: gw}}]\n  rules:\n  - backendRefs: [{{name: h2, port: 80}}]\n---\n\
         apiVersion: gateway.envoyproxy.io/v1alpha1\nkind: ClientTrafficPolicy\nmetadata: {{name: matched}}\nspec:\n  \
         targetRefs: [{{group: gateway.networking.k8s.io, kind: Gateway, name: gw, sectionName: matched}}]\n  \
         scheme: MatchBackend\n---\n{}{}",
        tls_secret("gw-cert", &certificate),
        h2c_service("h2", backend),
    );
    std::fs::write(dir.join("config.yaml"), config).unwrap();
    let gateway = start_gateway(&[&dir]).await;
    gateway.wait_ready().await;
    let ca = dir.join("gw-cert.pem").display().to_string();
    for (port, https, version, expected) in [
        (plain, false, "--http1.1", "http"),
        (plain, false, "--http2-prior-knowledge", "http"),
        (preserve, true, "--http1.1", "https"),
        (preserve, true, "--http2", "https"),
        (matched, true, "--http1.1", "http"),
        (matched, true, "--http2", "http"),
    ] {
        let url = match https {
            true => format!("https://gw.example:{port}/"),
            false => format!("http://gw.example:{port}/"),
        };
        let resolve = format!("gw.example:{port}:127.0.0.1");
        let (status, response) =
            curl(&[version, "--resolve", &resolve, "--cacert", &ca, &url]).await;
        assert_eq!(status, 200, "{port} {version}: {response}");
        let seen = echoed(&response);
        assert_eq!(seen["scheme"], expected, "{port} {version}: {seen}");
        assert_eq!(seen["authority"], format!("gw.example:{port}"), "{seen}");
    }
}
