//! End-to-end tests of the `gateway` binary with TLS: HTTPS listeners (SNI, 421), TLS passthrough
//! with TCP and UDP listeners, BackendTLSPolicy (and a BackendTrafficPolicy's keepalive and socket
//! buffers on the TLS connections to a backend).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

mod gateway_support;

use std::time::Duration;

use gateway_support::tls::*;
use gateway_support::*;

#[tokio::test(flavor = "multi_thread")]
async fn https_listeners_choose_certificates_by_sni_and_refuse_misdirected_requests() {
    let port = free_port();
    let v1 = echo("v1-0").await;
    let dir = scratch("https");
    let wildcard = openssl_certificate(&dir, "wild", &["*.example.com"], true);
    let other = openssl_certificate(&dir, "other", &["other.test"], false);
    let yaml = format!(
        "apiVersion: gateway.networking.k8s.io/v1\nkind: Gateway\nmetadata: {{name: gw}}\nspec:\n  \
         gatewayClassName: test\n  addresses: [{{value: 127.0.0.1}}]\n  listeners:\n  \
         - {{name: wild, port: {port}, protocol: HTTPS, hostname: '*.example.com', tls: {{certificateRefs: [{{name: wild}}]}}}}\n  \
         - {{name: other, port: {port}, protocol: HTTPS, hostname: other.test, tls: {{certificateRefs: [{{name: other}}]}}}}\n---\n\
         apiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\nmetadata: {{name: r}}\n\
         spec:\n  parentRefs: [{{name: gw}}]\n  rules:\n  \
         - matches: [{{path: {{value: /go}}}}]\n    filters: [{{type: RequestRedirect, requestRedirect: {{path: {{type: ReplaceFullPath, replaceFullPath: /gone}}}}}}]\n  \
         - backendRefs: [{{name: v1, port: 80}}]\n---\n{}{}{}",
        tls_secret("wild", &wildcard),
        tls_secret("other", &other),
        service("v1", v1)
    );
    std::fs::write(dir.join("config.yaml"), yaml).unwrap();
    let gateway = start_gateway(&[&dir.join("config.yaml")]).await;
    gateway.wait_ready().await;
    let resolve = |host: &str| format!("{host}:{port}:127.0.0.1");
    let wild_ca = dir.join("wild-cert.pem").display().to_string();
    let other_ca = dir.join("other-cert.pem").display().to_string();

    let (status, response) = curl(&[
        "--http2",
        "--resolve",
        &resolve("www.example.com"),
        "--cacert",
        &wild_ca,
        &format!("https://www.example.com:{port}/path?q=1"),
    ])
    .await;
    assert_eq!(status, 200, "{response}");
    assert!(response.starts_with("HTTP/2 200"), "ALPN h2: {response}");
    let seen = echoed(&response);
    assert_eq!(
        (seen["path"].as_str(), seen["pod"].as_str()),
        (Some("/path?q=1"), Some("v1-0"))
    );
    assert_eq!(seen["host"], format!("www.example.com:{port}"));

    let (status, response) = curl(&[
        "--http1.1",
        "--resolve",
        &resolve("other.test"),
        "--cacert",
        &other_ca,
        &format!("https://other.test:{port}/"),
    ])
    .await;
    assert_eq!(
        status, 200,
        "the other listener's certificate verifies: {response}"
    );

    let (status, response) = curl(&[
        "--http1.1",
        "--resolve",
        &resolve("www.example.com"),
        "--cacert",
        &wild_ca,
        "-H",
        "Host: other.test",
        &format!("https://www.example.com:{port}/"),
    ])
    .await;
    assert_eq!(
        status, 421,
        "SNI and Host belong to different listeners: {response}"
    );

    let (status, response) = curl(&[
        "--resolve",
        &resolve("a.example.com"),
        "--cacert",
        &wild_ca,
        &format!("https://a.example.com:{port}/go?x=1"),
    ])
    .await;
    assert_eq!(status, 302);
    assert!(
        response.to_ascii_lowercase().contains(&format!(
            "location: https://a.example.com:{port}/gone?x=1\r\n"
        )),
        "an HTTPS listener redirects to https and its own port: {response}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn tls_passthrough_tcp_and_udp_listeners_forward_to_their_routes() {
    let (tls_port, tcp_port, udp_port) = (free_port(), free_port(), free_port());
    let (backend_a, backend_b) = (free_port(), free_port());
    let dir = scratch("l4");
    openssl_certificate(&dir, "a", &["a.example.com"], false);
    openssl_certificate(&dir, "b", &["b.example.com"], true);
    let _servers = (
        openssl_server(&dir, "a", backend_a).await,
        openssl_server(&dir, "b", backend_b).await,
    );
    let http_echo = echo("tcp-0").await;
    let udp_echo = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let udp_echo_port = udp_echo.local_addr().unwrap().port();
    tokio::spawn(async move {
        let mut buffer = [0u8; 1500];
        while let Ok((len, from)) = udp_echo.recv_from(&mut buffer).await {
            let mut reply = b"echo:".to_vec();
            reply.extend_from_slice(&buffer[..len]);
            let _ = udp_echo.send_to(&reply, from).await;
        }
    });
    let plain_service = |name: &str, port: u16| service(name, port);
    let udp_service = format!(
        "apiVersion: v1\nkind: Service\nmetadata: {{name: udp}}\nspec:\n  ports: [{{name: dns, port: 53, protocol: UDP}}]\n---\n\
         apiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\nmetadata: {{name: udp-1, labels: {{kubernetes.io/service-name: udp}}}}\n\
         endpoints: [{{addresses: [127.0.0.1]}}]\nports: [{{name: dns, port: {udp_echo_port}, protocol: UDP}}]\n---\n"
    );
    let yaml = format!(
        "apiVersion: gateway.networking.k8s.io/v1\nkind: Gateway\nmetadata: {{name: gw}}\nspec:\n  \
         gatewayClassName: test\n  addresses: [{{value: 127.0.0.1}}]\n  listeners:\n  \
         - {{name: tls, port: {tls_port}, protocol: TLS, tls: {{mode: Passthrough}}}}\n  \
         - {{name: tcp, port: {tcp_port}, protocol: TCP}}\n  \
         - {{name: udp, port: {udp_port}, protocol: UDP}}\n---\n\
         apiVersion: gateway.networking.k8s.io/v1\nkind: TLSRoute\nmetadata: {{name: a}}\n\
         spec: {{parentRefs: [{{name: gw}}], hostnames: [a.example.com], rules: [{{backendRefs: [{{name: tls-a, port: 80}}]}}]}}\n---\n\
         apiVersion: gateway.networking.k8s.io/v1\nkind: TLSRoute\nmetadata: {{name: b}}\n\
         spec: {{parentRefs: [{{name: gw}}], hostnames: ['*.example.com'], rules: [{{backendRefs: [{{name: tls-b, port: 80}}]}}]}}\n---\n\
         apiVersion: gateway.networking.k8s.io/v1alpha2\nkind: TCPRoute\nmetadata: {{name: t}}\n\
         spec: {{parentRefs: [{{name: gw, sectionName: tcp}}], rules: [{{backendRefs: [{{name: http, port: 80}}]}}]}}\n---\n\
         apiVersion: gateway.networking.k8s.io/v1alpha2\nkind: UDPRoute\nmetadata: {{name: u}}\n\
         spec: {{parentRefs: [{{name: gw, sectionName: udp}}], rules: [{{backendRefs: [{{name: udp, port: 53}}]}}]}}\n---\n\
         {}{}{}{udp_service}",
        plain_service("tls-a", backend_a),
        plain_service("tls-b", backend_b),
        plain_service("http", http_echo),
    );
    std::fs::write(dir.join("config.yaml"), yaml).unwrap();
    let gateway = start_gateway(&[&dir.join("config.yaml")]).await;
    gateway.wait_ready().await;

    // The backend's own certificate reaches the client: the gateway did not terminate TLS.
    for (name, stem) in [("a.example.com", "a"), ("b.example.com", "b")] {
        let ca = dir.join(format!("{stem}-cert.pem")).display().to_string();
        let (status, response) = curl(&[
            "--resolve",
            &format!("{name}:{tls_port}:127.0.0.1"),
            "--cacert",
            &ca,
            &format!("https://{name}:{tls_port}/"),
        ])
        .await;
        assert_eq!(status, 200, "{name}: {response}");
        assert!(response.contains("s_server"), "{response}");
    }
    // A ClientHello spread over four records (OpenSSL's 512-byte fragments and a long ALPN
    // list) is routed by its SNI as well.
    let ca = dir.join("a-cert.pem").display().to_string();
    let text = fragmented_s_client(
        tls_port,
        "a.example.com",
        &[],
        &["-CAfile", &ca, "-verify_return_error"],
        b"GET / HTTP/1.0\r\n\r\n",
    );
    assert!(text.contains("Verify return code: 0 (ok)"), "{text}");
    assert!(text.contains("s_server"), "{text}");

    let (status, _) = curl(&[
        "-k",
        "--resolve",
        &format!("c.other.org:{tls_port}:127.0.0.1"),
        &format!("https://c.other.org:{tls_port}/"),
    ])
    .await;
    assert_eq!(status, 0, "an SNI without a route is refused");

    let (status, response) = curl(&[&format!("http://127.0.0.1:{tcp_port}/over/tcp")]).await;
    assert_eq!(status, 200);
    assert_eq!(echoed(&response)["path"], "/over/tcp");

    let client = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    client.connect(("127.0.0.1", udp_port)).await.unwrap();
    client.send(b"ping").await.unwrap();
    let mut reply = [0u8; 64];
    let len = tokio::time::timeout(Duration::from_secs(5), client.recv(&mut reply))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(&reply[..len], b"echo:ping");
}

#[tokio::test(flavor = "multi_thread")]
async fn backend_tls_policies_make_the_gateway_speak_verified_tls_to_the_backend() {
    let port = free_port();
    let dir = scratch("backend-tls");
    let (ca, leaf, key) = openssl_ca_and_leaf(&dir, "backend.internal");
    let backend = tls_echo(&leaf, &key).await;
    let ca_pem = std::fs::read_to_string(&ca).unwrap();
    let indented: String = ca_pem.lines().map(|l| format!("    {l}\n")).collect();
    let policy = |name: &str, service: &str, hostname: &str, config_map: &str| {
        format!(
            "apiVersion: gateway.networking.k8s.io/v1\nkind: BackendTLSPolicy\nmetadata: {{name: {name}}}\n\
             spec:\n  targetRefs: [{{group: '', kind: Service, name: {service}}}]\n  \
             validation: {{hostname: {hostname}, caCertificateRefs: [{{group: '', kind: ConfigMap, name: {config_map}}}]}}\n---\n"
        )
    };
    let san_policy = |name: &str, sans: &str| {
        format!(
            "apiVersion: gateway.networking.k8s.io/v1\nkind: BackendTLSPolicy\nmetadata: {{name: {name}}}\n\
             spec:\n  targetRefs: [{{group: '', kind: Service, name: {name}}}]\n  \
             validation: {{hostname: sni.example, subjectAltNames: [{sans}], caCertificateRefs: [{{group: '', kind: ConfigMap, name: backend-ca}}]}}\n---\n"
        )
    };
    let san_cases = [
        (
            "san-dns",
            "{type: Hostname, hostname: backend.internal}".to_owned(),
            200,
        ),
        (
            "san-dns-wrong",
            "{type: Hostname, hostname: nope.internal}".to_owned(),
            503,
        ),
        (
            "san-uri",
            format!(
                "{{type: Hostname, hostname: nope.internal}}, {{type: URI, uri: '{LEAF_URI_SAN}'}}"
            ),
            200,
        ),
        (
            "san-uri-wrong",
            "{type: URI, uri: 'spiffe://cluster.local/ns/default/sa/other'}".to_owned(),
            503,
        ),
    ];
    let san_yaml: String = san_cases
        .iter()
        .map(|(name, sans, _)| format!("{}{}", service(name, backend), san_policy(name, sans)))
        .collect();
    let san_routes: String = san_cases
        .iter()
        .map(|(name, ..)| {
            format!("  - matches: [{{path: {{value: /{name}}}}}]\n    backendRefs: [{{name: {name}, port: 80}}]\n")
        })
        .collect();
    let route = "apiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\nmetadata: {name: r}\n\
        spec:\n  parentRefs: [{name: gw}]\n  rules:\n  \
        - matches: [{path: {value: /good}}]\n    backendRefs: [{name: good, port: 80}]\n  \
        - matches: [{path: {value: /wrong-name}}]\n    backendRefs: [{name: wrong-name, port: 80}]\n  \
        - matches: [{path: {value: /no-ca}}]\n    backendRefs: [{name: no-ca, port: 80}]\n";
    let route = format!("{route}{san_routes}---\n{san_yaml}");
    let yaml = format!(
        "{}{}{}{}{}{}{}{route}apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: backend-ca}}\ndata:\n  ca.crt: |\n{indented}",
        gateway_yaml(port),
        service("good", backend),
        service("wrong-name", backend),
        service("no-ca", backend),
        policy("good", "good", "backend.internal", "backend-ca"),
        policy("wrong-name", "wrong-name", "other.internal", "backend-ca"),
        policy("no-ca", "no-ca", "backend.internal", "missing"),
    );
    std::fs::write(dir.join("config.yaml"), yaml).unwrap();
    let gateway = start_gateway(&[&dir.join("config.yaml")]).await;
    gateway.wait_ready().await;
    let url = |path: &str| format!("http://127.0.0.1:{port}{path}");

    let (status, response) = curl(&[&url("/good")]).await;
    assert_eq!(status, 200, "{response}");
    assert_eq!(
        echoed(&response)["pod"],
        "sni=backend.internal",
        "the policy's hostname is the SNI"
    );
    assert_eq!(
        curl(&[&url("/wrong-name")]).await.0,
        503,
        "the certificate does not match the policy's hostname"
    );
    assert_eq!(
        curl(&[&url("/no-ca")]).await.0,
        500,
        "an invalid CA reference makes the backend invalid"
    );
    assert_eq!(
        echoed(&response)["proto"],
        "HTTP/1.1",
        "HTTP backends are offered http/1.1"
    );
    for (name, _, expected) in &san_cases {
        let (status, response) = curl(&[&url(&format!("/{name}"))]).await;
        assert_eq!(status, *expected, "{name}: {response}");
        if status == 200 {
            assert_eq!(
                echoed(&response)["pod"],
                "sni=sni.example",
                "{name}: the hostname is still the SNI"
            );
        }
    }
    let (_, status_json) = curl(&[&gateway.admin_url("/status")]).await;
    let status_json = echoed(&status_json);
    let no_ca = status_json["resources"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["kind"] == "BackendTLSPolicy" && r["object"]["name"] == "no-ca")
        .unwrap();
    assert_eq!(no_ca["conditions"][1]["reason"], "InvalidCACertificateRef");
}

#[tokio::test(flavor = "multi_thread")]
async fn grpc_backends_under_tls_are_offered_h2_and_spoken_to_in_http2() {
    let port = free_port();
    let dir = scratch("backend-tls-grpc");
    let (ca, leaf, key) = openssl_ca_and_leaf(&dir, "backend.internal");
    let backend = tls_echo(&leaf, &key).await;
    let indented: String = std::fs::read_to_string(&ca)
        .unwrap()
        .lines()
        .map(|l| format!("    {l}\n"))
        .collect();
    let yaml = format!(
        "{}{}apiVersion: gateway.networking.k8s.io/v1\nkind: BackendTLSPolicy\nmetadata: {{name: p}}\n\
         spec:\n  targetRefs: [{{group: '', kind: Service, name: grpc}}]\n  \
         validation: {{hostname: backend.internal, caCertificateRefs: [{{group: '', kind: ConfigMap, name: backend-ca}}]}}\n---\n\
         apiVersion: gateway.networking.k8s.io/v1\nkind: GRPCRoute\nmetadata: {{name: g}}\n\
         spec:\n  parentRefs: [{{name: gw}}]\n  rules: [{{backendRefs: [{{name: grpc, port: 80}}]}}]\n---\n\
         apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: backend-ca}}\ndata:\n  ca.crt: |\n{indented}",
        gateway_yaml(port),
        service("grpc", backend),
    );
    std::fs::write(dir.join("config.yaml"), yaml).unwrap();
    let gateway = start_gateway(&[&dir.join("config.yaml")]).await;
    gateway.wait_ready().await;
    let url = |path: &str| format!("http://127.0.0.1:{port}{path}");
    let grpc = [
        "--http2-prior-knowledge",
        "-X",
        "POST",
        "-H",
        "content-type: application/grpc",
        "-H",
        "host: grpc.test",
    ];
    let (status, grpc_response) =
        curl(&[&grpc[..], &[url("/echo.Echo/Say").as_str()]].concat()).await;
    assert_eq!(status, 200, "{grpc_response}");
    assert_eq!(
        echoed(&grpc_response)["proto"],
        "HTTP/2.0",
        "a gRPC backend under TLS is offered h2 in ALPN and spoken to in HTTP/2"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn frontend_client_certificates_are_validated_by_default_and_per_port() {
    let (strict, fallback) = (free_port(), free_port());
    let dir = scratch("frontend-validation");
    let clients = dir.join("clients");
    std::fs::create_dir_all(&clients).unwrap();
    let (client_ca, client_cert, client_key) = openssl_client_ca_and_leaf(&clients, "alice");
    // Written to stranger-cert.pem and stranger-key.pem.
    openssl_certificate(&dir, "stranger", &["stranger"], false);
    let server = openssl_certificate(&dir, "gw", &["gw.example"], false);
    let backend = echo("echo-0").await;
    let yaml = format!(
        "apiVersion: gateway.networking.k8s.io/v1\nkind: Gateway\nmetadata: {{name: gw}}\nspec:\n  \
         gatewayClassName: test\n  addresses: [{{value: 127.0.0.1}}]\n  \
         tls:\n    frontend:\n      default: {{validation: {{caCertificateRefs: [{{group: '', kind: ConfigMap, name: client-ca}}]}}}}\n      \
         perPort: [{{port: {fallback}, tls: {{validation: {{mode: AllowInsecureFallback, caCertificateRefs: [{{group: '', kind: ConfigMap, name: client-ca}}]}}}}}}]\n  \
         listeners:\n  - {{name: strict, port: {strict}, protocol: HTTPS, tls: {{certificateRefs: [{{name: gw-cert}}]}}}}\n  \
         - {{name: fallback, port: {fallback}, protocol: HTTPS, tls: {{certificateRefs: [{{name: gw-cert}}]}}}}\n---\n\
         {}{}{}apiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\nmetadata: {{name: r}}\n\
         spec: {{parentRefs: [{{name: gw}}], rules: [{{backendRefs: [{{name: echo, port: 80}}]}}]}}\n",
        tls_secret("gw-cert", &server),
        ca_config_map("client-ca", &client_ca),
        service("echo", backend),
    );
    std::fs::write(dir.join("config.yaml"), yaml).unwrap();
    let gateway = start_gateway(&[&dir.join("config.yaml")]).await;
    gateway.wait_ready().await;
    let (cert, key) = (
        client_cert.to_str().unwrap().to_owned(),
        client_key.to_str().unwrap().to_owned(),
    );
    let (stranger_cert, stranger_key) = (
        dir.join("stranger-cert.pem").to_str().unwrap().to_owned(),
        dir.join("stranger-key.pem").to_str().unwrap().to_owned(),
    );
    let url = |port: u16| format!("https://127.0.0.1:{port}/");
    let with_alice = ["-k", "--cert", &cert, "--key", &key];
    let with_stranger = ["-k", "--cert", &stranger_cert, "--key", &stranger_key];

    let (status, response) = curl(&[&with_alice[..], &[url(strict).as_str()]].concat()).await;
    assert_eq!(status, 200, "a certificate from the CA: {response}");
    assert_eq!(
        curl(&["-k", &url(strict)]).await.0,
        0,
        "no certificate: the handshake fails"
    );
    assert_eq!(
        curl(&[&with_stranger[..], &[url(strict).as_str()]].concat())
            .await
            .0,
        0,
        "a certificate from another CA: the handshake fails"
    );
    assert_eq!(
        curl(&["-k", &url(fallback)]).await.0,
        200,
        "AllowInsecureFallback: no certificate"
    );
    assert_eq!(
        curl(&[&with_stranger[..], &[url(fallback).as_str()]].concat())
            .await
            .0,
        200,
        "AllowInsecureFallback: an invalid certificate"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn the_gateway_presents_its_backend_client_certificate() {
    let (with_cert, without_cert) = (free_port(), free_port());
    let dir = scratch("backend-client-cert");
    let clients = dir.join("clients");
    std::fs::create_dir_all(&clients).unwrap();
    let (server_ca, server_cert, server_key) = openssl_ca_and_leaf(&dir, "backend.internal");
    let (client_ca, client_cert, client_key) = openssl_client_ca_and_leaf(&clients, "gateway");
    let backend = mtls_echo(&server_cert, &server_key, &client_ca).await;
    let client_pair = (
        std::fs::read_to_string(&client_cert).unwrap(),
        std::fs::read_to_string(&client_key).unwrap(),
    );
    let gateway = |name: &str, port: u16, backend_tls: &str| {
        format!(
            "apiVersion: gateway.networking.k8s.io/v1\nkind: Gateway\nmetadata: {{name: {name}}}\nspec:\n  \
             gatewayClassName: test\n  addresses: [{{value: 127.0.0.1}}]\n{backend_tls}  \
             listeners: [{{name: http, port: {port}, protocol: HTTP}}]\n---\n\
             apiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\nmetadata: {{name: {name}}}\n\
             spec: {{parentRefs: [{{name: {name}}}], rules: [{{backendRefs: [{{name: mtls, port: 80}}]}}]}}\n---\n"
        )
    };
    let yaml = format!(
        "{}{}{}{}{}apiVersion: gateway.networking.k8s.io/v1\nkind: BackendTLSPolicy\nmetadata: {{name: p}}\n\
         spec:\n  targetRefs: [{{group: '', kind: Service, name: mtls}}]\n  \
         validation: {{hostname: backend.internal, caCertificateRefs: [{{group: '', kind: ConfigMap, name: server-ca}}]}}\n",
        gateway(
            "with",
            with_cert,
            "  tls: {backend: {clientCertificateRef: {name: gateway-client}}}\n"
        ),
        gateway("without", without_cert, ""),
        tls_secret("gateway-client", &client_pair),
        ca_config_map("server-ca", &server_ca),
        service("mtls", backend),
    );
    std::fs::write(dir.join("config.yaml"), yaml).unwrap();
    let gateway = start_gateway(&[&dir.join("config.yaml")]).await;
    gateway.wait_ready().await;
    let (status, response) = curl(&[&format!("http://127.0.0.1:{with_cert}/")]).await;
    assert_eq!(status, 200, "{response}");
    assert_eq!(
        echoed(&response)["pod"],
        "client-certs=1",
        "the Gateway's certificate was presented"
    );
    assert_eq!(
        curl(&[&format!("http://127.0.0.1:{without_cert}/")])
            .await
            .0,
        503,
        "a Gateway without tls.backend cannot pass the backend's client check"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn tls_listeners_terminate_or_pass_through_on_one_port() {
    let port = free_port();
    let passthrough_backend = free_port();
    let dir = scratch("tls-terminate");
    openssl_certificate(&dir, "pass", &["pass.example.com"], false);
    let terminate_certificate = openssl_certificate(&dir, "term", &["term.example.com"], false);
    let _server = openssl_server(&dir, "pass", passthrough_backend).await;
    let plain = echo("plain-0").await;
    let yaml = format!(
        "apiVersion: gateway.networking.k8s.io/v1\nkind: Gateway\nmetadata: {{name: gw}}\nspec:\n  \
         gatewayClassName: test\n  addresses: [{{value: 127.0.0.1}}]\n  listeners:\n  \
         - {{name: pass, port: {port}, protocol: TLS, hostname: pass.example.com, tls: {{mode: Passthrough}}}}\n  \
         - {{name: term, port: {port}, protocol: TLS, hostname: term.example.com, tls: {{mode: Terminate, certificateRefs: [{{name: term-cert}}]}}}}\n---\n\
         apiVersion: gateway.networking.k8s.io/v1\nkind: TLSRoute\nmetadata: {{name: pass}}\n\
         spec: {{parentRefs: [{{name: gw, sectionName: pass}}], hostnames: [pass.example.com], rules: [{{backendRefs: [{{name: tls-pass, port: 80}}]}}]}}\n---\n\
         apiVersion: gateway.networking.k8s.io/v1\nkind: TLSRoute\nmetadata: {{name: term}}\n\
         spec: {{parentRefs: [{{name: gw, sectionName: term}}], hostnames: [term.example.com], rules: [{{backendRefs: [{{name: plain, port: 80}}]}}]}}\n---\n\
         {}{}{}",
        tls_secret("term-cert", &terminate_certificate),
        service("tls-pass", passthrough_backend),
        service("plain", plain),
    );
    std::fs::write(dir.join("config.yaml"), yaml).unwrap();
    let gateway = start_gateway(&[&dir.join("config.yaml")]).await;
    gateway.wait_ready().await;
    let https = |name: &str, stem: &str| {
        let ca = dir.join(format!("{stem}-cert.pem")).display().to_string();
        let resolve = format!("{name}:{port}:127.0.0.1");
        let url = format!("https://{name}:{port}/x");
        async move { curl(&["--resolve", &resolve, "--cacert", &ca, &url]).await }
    };
    let (status, response) = https("term.example.com", "term").await;
    assert_eq!(status, 200, "{response}");
    assert_eq!(
        echoed(&response)["pod"],
        "plain-0",
        "the gateway terminated TLS with the listener's certificate and forwarded plaintext"
    );
    let (status, response) = https("pass.example.com", "pass").await;
    assert_eq!(status, 200, "{response}");
    assert!(
        response.contains("s_server"),
        "the other listener on the port passes TLS through to the backend: {response}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn tls_backends_take_the_route_policy_connection_settings() {
    let port = free_port();
    let dir = scratch("backend-tls-keepalive");
    let (ca, leaf, key) = openssl_ca_and_leaf(&dir, "backend.internal");
    let kept = tls_echo(&leaf, &key).await;
    let plain = tls_echo(&leaf, &key).await;
    let indented: String = std::fs::read_to_string(&ca)
        .unwrap()
        .lines()
        .map(|l| format!("    {l}\n"))
        .collect();
    let tls_policy = |service: &str| {
        format!(
            "apiVersion: gateway.networking.k8s.io/v1\nkind: BackendTLSPolicy\nmetadata: {{name: {service}}}\n\
             spec:\n  targetRefs: [{{group: '', kind: Service, name: {service}}}]\n  \
             validation: {{hostname: backend.internal, caCertificateRefs: [{{group: '', kind: ConfigMap, name: backend-ca}}]}}\n---\n"
        )
    };
    let yaml = gateway_yaml(port)
        + &service("kept", kept)
        + &service("plain", plain)
        + &tls_policy("kept")
        + &tls_policy("plain")
        + &host_route("kept", "kept")
        + &host_route("plain", "plain")
        + "apiVersion: gateway.envoyproxy.io/v1alpha1\nkind: BackendTrafficPolicy\nmetadata: {name: kept}\nspec:\n  \
           targetRefs: [{group: gateway.networking.k8s.io, kind: HTTPRoute, name: kept}]\n  \
           tcpKeepalive: {idleTime: 600s, interval: 10s, probes: 3}\n  connection: {socketBufferLimit: 48Ki}\n---\n"
        + &format!(
            "apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: backend-ca}}\ndata:\n  ca.crt: |\n{indented}"
        );
    std::fs::write(dir.join("config.yaml"), yaml).unwrap();
    let gateway = start_gateway(&[&dir.join("config.yaml")]).await;
    gateway.wait_ready().await;
    let url = format!("http://127.0.0.1:{port}/");
    for host in ["host: kept.example", "host: plain.example"] {
        let (status, response) = curl(&["-H", host, &url]).await;
        assert_eq!(status, 200, "{response}");
    }
    // The gateway's pooled TLS connections to each backend, as `ss` sees them.
    let sockets_to = |backend: u16| async move {
        let output = tokio::process::Command::new("ss")
            .args([
                "-tmno",
                "state",
                "established",
                "dport",
                "=",
                &format!(":{backend}"),
            ])
            .output()
            .await
            .expect("ss is installed (iproute2)");
        String::from_utf8_lossy(&output.stdout).into_owned()
    };
    let sockets = sockets_to(kept).await;
    assert!(sockets.contains("timer:(keepalive"), "{sockets}");
    assert!(sockets.contains("rb98304"), "{sockets}");
    let sockets = sockets_to(plain).await;
    assert!(
        sockets.lines().count() >= 2,
        "the pooled connection is open: {sockets}"
    );
    assert!(!sockets.contains("keepalive"), "{sockets}");
    assert!(!sockets.contains("rb98304"), "{sockets}");
}

#[tokio::test(flavor = "multi_thread")]
async fn http2_backends_under_tls_get_the_clients_authority_and_the_policy_windows() {
    let port = free_port();
    let dir = scratch("backend-tls-h2");
    let (ca, leaf, key) = openssl_ca_and_leaf(&dir, "backend.internal");
    // The independent python h2 server, which refuses a Host that disagrees with :authority.
    let (_server, backend) = h2_settings_server_tls(&leaf, &key).await;
    let yaml = format!(
        "{}apiVersion: v1\nkind: Service\nmetadata: {{name: h2}}\nspec:\n  \
         ports: [{{name: https, port: 443, appProtocol: kubernetes.io/h2c}}]\n---\n\
         apiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\n\
         metadata: {{name: h2-1, labels: {{kubernetes.io/service-name: h2}}}}\n\
         addressType: IPv4\nendpoints: [{{addresses: [127.0.0.1]}}]\n\
         ports: [{{name: https, port: {backend}}}]\n---\n\
         apiVersion: gateway.networking.k8s.io/v1\nkind: BackendTLSPolicy\nmetadata: {{name: p}}\n\
         spec:\n  targetRefs: [{{group: '', kind: Service, name: h2}}]\n  \
         validation: {{hostname: backend.internal, caCertificateRefs: [{{group: '', kind: ConfigMap, name: backend-ca}}]}}\n---\n\
         {}{}\
         apiVersion: gateway.envoyproxy.io/v1alpha1\nkind: BackendTrafficPolicy\nmetadata: {{name: tuned}}\nspec:\n  \
         targetRefs: [{{group: gateway.networking.k8s.io, kind: HTTPRoute, name: tuned}}]\n  \
         http2: {{initialStreamWindowSize: 256Ki, initialConnectionWindowSize: 512Ki}}\n---\n{}",
        gateway_yaml(port),
        host_route("tuned", "h2").replace("port: 80", "port: 443"),
        host_route("plain", "h2").replace("port: 80", "port: 443"),
        ca_config_map("backend-ca", &ca),
    );
    std::fs::write(dir.join("config.yaml"), yaml).unwrap();
    let gateway = start_gateway(&[&dir.join("config.yaml")]).await;
    gateway.wait_ready().await;
    let (_, status) = curl(&[&gateway.admin_url("/status")]).await;
    assert!(!status.contains("\"status\": \"False\""), "{status}");
    let url = format!("http://127.0.0.1:{port}/");
    let seen = |host: &'static str| {
        let url = url.clone();
        async move {
            let (code, response) = curl(&["-H", host, &url]).await;
            assert_eq!(code, 200, "{response}");
            echoed(&response)
        }
    };
    // The client's authority as `:authority` over TLS too (Envoy's behaviour); the client's
    // scheme (ClientTrafficPolicy `scheme: Preserve`, the default).
    let tuned = seen("host: tuned.example").await;
    assert_eq!(tuned["authority"], "tuned.example", "{tuned}");
    assert_eq!(tuned["scheme"], "http", "{tuned}");
    // The route policy's windows, on a connection of its own.
    assert_eq!(tuned["initial_window_size"], 256 * 1024, "{tuned}");
    assert_eq!(tuned["connection_window"], 512 * 1024, "{tuned}");
    let plain = seen("host: plain.example").await;
    assert_eq!(plain["authority"], "plain.example", "{plain}");
    assert_ne!(plain["initial_window_size"], 256 * 1024, "{plain}");
}
