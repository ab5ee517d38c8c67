//! ClientTrafficPolicy `proxyProtocol` through the `gateway` binary: HAProxy in front sends
//! PROXY v2 and the gateway takes its source as the client (appended to X-Forwarded-For, seen
//! by an authorization rule); a required header that is missing or malformed closes the
//! connection unanswered; an optional one serves connections with and without it.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

mod gateway_support;

use std::time::Duration;

use gateway_support::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

fn config(required: u16, optional: u16, echo_port: u16) -> String {
    format!(
        "apiVersion: gateway.networking.k8s.io/v1\nkind: Gateway\nmetadata: {{name: behind-lb}}\nspec:\n  \
         gatewayClassName: test\n  listeners: [{{name: http, port: {required}, protocol: HTTP}}]\n---\n\
         apiVersion: gateway.networking.k8s.io/v1\nkind: Gateway\nmetadata: {{name: mixed}}\nspec:\n  \
         gatewayClassName: test\n  listeners: [{{name: http, port: {optional}, protocol: HTTP}}]\n---\n\
         {}\
         apiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\nmetadata: {{name: echo}}\nspec:\n  \
         parentRefs: [{{name: behind-lb}}, {{name: mixed}}]\n  rules: [{{backendRefs: [{{name: echo, port: 80}}]}}]\n---\n\
         apiVersion: gateway.envoyproxy.io/v1alpha1\nkind: ClientTrafficPolicy\nmetadata: {{name: behind-lb}}\nspec:\n  \
         targetRefs: [{{group: gateway.networking.k8s.io, kind: Gateway, name: behind-lb}}]\n  proxyProtocol: {{}}\n---\n\
         apiVersion: gateway.envoyproxy.io/v1alpha1\nkind: ClientTrafficPolicy\nmetadata: {{name: mixed}}\nspec:\n  \
         targetRefs: [{{group: gateway.networking.k8s.io, kind: Gateway, name: mixed}}]\n  proxyProtocol: {{optional: true}}\n---\n\
         apiVersion: gateway.envoyproxy.io/v1alpha1\nkind: SecurityPolicy\nmetadata: {{name: office}}\nspec:\n  \
         targetRefs: [{{group: gateway.networking.k8s.io, kind: HTTPRoute, name: echo}}]\n  \
         authorization:\n    defaultAction: Deny\n    rules:\n    - action: Allow\n      principal: {{clientCIDRs: [127.0.0.0/24, 203.0.113.0/24]}}\n---\n",
        service("echo", echo_port)
    )
}

/// Sends `bytes` on a new connection to `port` and reads the answer until the gateway closes
/// it (`Connection: close` in the request) or 5 s pass.
async fn raw(port: u16, bytes: &[u8]) -> String {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    stream.write_all(bytes).await.unwrap();
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut answer)).await;
    String::from_utf8_lossy(&answer).into_owned()
}

const REQUEST: &str = "GET /who HTTP/1.1\r\nhost: any\r\nconnection: close\r\n\r\n";

#[tokio::test(flavor = "multi_thread")]
async fn proxy_headers_name_the_client_behind_a_load_balancer() {
    let (required, optional, front) = (free_port(), free_port(), free_port());
    let echo_port = echo("echo-0").await;
    let dir = scratch("proxy-protocol");
    std::fs::write(
        dir.join("config.yaml"),
        config(required, optional, echo_port),
    )
    .unwrap();
    let gateway = start_gateway(&[&dir]).await;
    gateway.wait_ready().await;

    // HAProxy in front sends PROXY v2 with the client's address (curl binds 127.0.0.77).
    let _haproxy = spawn_haproxy(
        &dir,
        "haproxy.cfg",
        &format!(
            "defaults\n  mode tcp\n  timeout connect 5s\n  timeout client 30s\n  timeout server 30s\n\
             listen front\n  bind 127.0.0.1:{front}\n  server gateway 127.0.0.1:{required} send-proxy-v2\n"
        ),
    );
    let through = format!("http://127.0.0.1:{front}/through/haproxy");
    let url = through.clone();
    wait_until("HAProxy forwards", || {
        let url = url.clone();
        async move { curl(&["--interface", "127.0.0.77", &url]).await.0 == 200 }
    })
    .await;
    let (status, response) = curl(&["--interface", "127.0.0.77", &through]).await;
    assert_eq!(status, 200, "{response}");
    let headers = &echoed(&response)["headers"];
    assert_eq!(headers["x-forwarded-for"][0], "127.0.0.77", "{response}");

    // A header written by hand: its source is the client the authorization rule judges.
    let allowed = raw(
        required,
        format!("PROXY TCP4 203.0.113.9 127.0.0.1 40000 80\r\n{REQUEST}").as_bytes(),
    )
    .await;
    assert!(allowed.starts_with("HTTP/1.1 200"), "{allowed}");
    assert!(allowed.contains("203.0.113.9"), "{allowed}");
    let denied = raw(
        required,
        format!("PROXY TCP4 198.51.100.9 127.0.0.1 40000 80\r\n{REQUEST}").as_bytes(),
    )
    .await;
    assert!(denied.starts_with("HTTP/1.1 403"), "{denied}");

    // Required: no header, or a malformed one, and the connection closes unanswered.
    assert_eq!(raw(required, REQUEST.as_bytes()).await, "");
    assert_eq!(
        raw(
            required,
            format!("PROXY TCP4 203.0.113.9\r\n{REQUEST}").as_bytes()
        )
        .await,
        ""
    );
    assert_eq!(
        raw(
            required,
            format!("PROXY TCP4 999.0.113.9 127.0.0.1 40000 80\r\n{REQUEST}").as_bytes()
        )
        .await,
        ""
    );

    // Optional: both are served; with the header, its source is the client.
    let plain = raw(optional, REQUEST.as_bytes()).await;
    assert!(plain.starts_with("HTTP/1.1 200"), "{plain}");
    assert!(
        plain.contains("\"x-forwarded-for\":[\"127.0.0.1\"]"),
        "{plain}"
    );
    let proxied = raw(
        optional,
        format!("PROXY TCP4 203.0.113.10 127.0.0.1 40000 80\r\n{REQUEST}").as_bytes(),
    )
    .await;
    assert!(
        proxied.contains("\"x-forwarded-for\":[\"203.0.113.10\"]"),
        "{proxied}"
    );
    let spoofed = raw(
        optional,
        format!("PROXY TCP4 198.51.100.10 127.0.0.1 40000 80\r\n{REQUEST}").as_bytes(),
    )
    .await;
    assert!(spoofed.starts_with("HTTP/1.1 403"), "{spoofed}");
}

/// HAProxy as a backend accepting PROXY headers (`accept-proxy`, v1 and v2) and answering
/// with the source and destination they named; returns its port.
async fn haproxy_reporting_backend(dir: &std::path::Path) -> (u16, tokio::process::Child) {
    let port = free_port();
    let child = spawn_haproxy(
        dir,
        "haproxy-backend.cfg",
        &format!(
            "defaults\n  mode http\n  timeout connect 5s\n  timeout client 30s\n  timeout server 30s\n\
             frontend reporter\n  bind 127.0.0.1:{port} accept-proxy\n  \
             http-request return status 200 content-type text/plain lf-string \"src=%[src] dst=%[dst]:%[dst_port]\"\n"
        ),
    );
    (port, child)
}

#[tokio::test(flavor = "multi_thread")]
async fn proxy_headers_name_the_client_to_backends() {
    let port = free_port();
    let dir = scratch("upstream-proxy-protocol");
    let (backend, _haproxy) = haproxy_reporting_backend(&dir).await;
    let policy = |name: &str, version: &str| {
        format!(
            "apiVersion: gateway.envoyproxy.io/v1alpha1\nkind: BackendTrafficPolicy\nmetadata: {{name: {name}}}\nspec:\n  \
             targetRefs: [{{group: gateway.networking.k8s.io, kind: HTTPRoute, name: {name}}}]\n  \
             proxyProtocol: {{version: {version}}}\n---\n"
        )
    };
    let config = gateway_yaml(port)
        + &service("reporter", backend)
        + &host_route("v1", "reporter")
        + &host_route("v2", "reporter")
        + &policy("v1", "V1")
        + &policy("v2", "V2");
    std::fs::write(dir.join("config.yaml"), config).unwrap();
    let gateway = start_gateway(&[&dir]).await;
    gateway.wait_ready().await;
    let url = format!("http://127.0.0.1:{port}/");
    wait_until("HAProxy answers", || {
        let url = url.clone();
        async move { curl(&["-H", "host: v2.example", &url]).await.0 == 200 }
    })
    .await;

    // curl binds 127.0.0.66: the backend sees that client and the gateway's listener, not the
    // gateway's own connection; each connection is the request's own.
    for version in ["v1", "v2"] {
        for _ in 0..2 {
            let host = format!("host: {version}.example");
            let (status, response) = curl(&["--interface", "127.0.0.66", "-H", &host, &url]).await;
            assert_eq!(status, 200, "{response}");
            assert!(
                response.ends_with(&format!("src=127.0.0.66 dst=127.0.0.1:{port}")),
                "{version}: {response}"
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn proxy_headers_precede_tls_to_tls_backends() {
    use gateway_support::tls::{ca_config_map, openssl_ca_and_leaf};
    let (port, backend) = (free_port(), free_port());
    let dir = scratch("upstream-proxy-protocol-tls");
    let (ca, leaf, key) = openssl_ca_and_leaf(&dir, "backend.internal");
    // HAProxy reads the PROXY header, then terminates TLS (ALPN h2 or http/1.1), and answers
    // with the source and destination the header named and the protocol spoken.
    let pem = dir.join("haproxy.pem");
    std::fs::write(
        &pem,
        std::fs::read_to_string(&leaf).unwrap() + &std::fs::read_to_string(&key).unwrap(),
    )
    .unwrap();
    let _haproxy = spawn_haproxy(
        &dir,
        "haproxy-tls.cfg",
        &format!(
            "defaults\n  mode http\n  timeout connect 5s\n  timeout client 30s\n  timeout server 30s\n\
             frontend reporter\n  bind 127.0.0.1:{backend} accept-proxy ssl crt {} alpn h2,http/1.1\n  \
             http-request return status 200 content-type text/plain lf-string \"src=%[src] dst=%[dst]:%[dst_port] alpn=%[ssl_fc_alpn]\"\n",
            pem.display()
        ),
    );
    let h2_service = format!(
        "apiVersion: v1\nkind: Service\nmetadata: {{name: reporter-h2}}\nspec:\n  \
         ports: [{{name: https, port: 443, appProtocol: kubernetes.io/h2c}}]\n---\n\
         apiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\n\
         metadata: {{name: reporter-h2-1, labels: {{kubernetes.io/service-name: reporter-h2}}}}\n\
         addressType: IPv4\nendpoints: [{{addresses: [127.0.0.1]}}]\n\
         ports: [{{name: https, port: {backend}, appProtocol: kubernetes.io/h2c}}]\n---\n"
    );
    let backend_tls = |service: &str| {
        format!(
            "apiVersion: gateway.networking.k8s.io/v1\nkind: BackendTLSPolicy\nmetadata: {{name: {service}}}\n\
             spec:\n  targetRefs: [{{group: '', kind: Service, name: {service}}}]\n  \
             validation: {{hostname: backend.internal, caCertificateRefs: [{{group: '', kind: ConfigMap, name: backend-ca}}]}}\n---\n"
        )
    };
    let route = |name: &str, service: &str, service_port: u16| {
        format!(
            "apiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\nmetadata: {{name: {name}}}\nspec:\n  \
             parentRefs: [{{name: gw, sectionName: http}}]\n  hostnames: [{name}.example]\n  \
             rules: [{{backendRefs: [{{name: {service}, port: {service_port}}}]}}]\n---\n\
             apiVersion: gateway.envoyproxy.io/v1alpha1\nkind: BackendTrafficPolicy\nmetadata: {{name: {name}}}\nspec:\n  \
             targetRefs: [{{group: gateway.networking.k8s.io, kind: HTTPRoute, name: {name}}}]\n  \
             proxyProtocol: {{version: V2}}\n---\n"
        )
    };
    let config = gateway_yaml(port)
        + &service("reporter", backend)
        + &h2_service
        + &ca_config_map("backend-ca", &ca)
        + &backend_tls("reporter")
        + &backend_tls("reporter-h2")
        + &route("tls1", "reporter", 80)
        + &route("tls2", "reporter-h2", 443);
    std::fs::write(dir.join("config.yaml"), config).unwrap();
    let gateway = start_gateway(&[&dir]).await;
    gateway.wait_ready().await;
    let url = format!("http://127.0.0.1:{port}/");
    wait_until("HAProxy answers", || {
        let url = url.clone();
        async move { curl(&["-H", "host: tls1.example", &url]).await.0 == 200 }
    })
    .await;

    // The PROXY header names curl's address (127.0.0.66) and the gateway's listener; TLS
    // follows it, HTTP/1.1 or HTTP/2 as the Service's appProtocol asks.
    for (host, alpn) in [("tls1", "http/1.1"), ("tls2", "h2")] {
        for _ in 0..2 {
            let header = format!("host: {host}.example");
            let (status, response) =
                curl(&["--interface", "127.0.0.66", "-H", &header, &url]).await;
            assert_eq!(status, 200, "{response}");
            assert!(
                response.ends_with(&format!("src=127.0.0.66 dst=127.0.0.1:{port} alpn={alpn}")),
                "{host}: {response}"
            );
        }
    }
}
