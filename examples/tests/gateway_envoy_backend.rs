//! Envoy Gateway's `Backend` as an HTTPRoute backendRef through the `gateway` binary: an IP
//! endpoint as written, a host name (`fqdn: localhost`) resolved through the hosts file, a
//! Unix socket, and an invalid socket path refused with the reason in the route's status and
//! answered 500, as an invalid backendRef is; a BackendTLSPolicy targeting a Backend, the
//! Backend's own `tls` (trusted roots, skipped verification, overridden by a policy), and
//! WebSockets to a `wss` Backend.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

mod gateway_support;

use gateway_support::tls::*;
use gateway_support::upgrade::*;
use gateway_support::*;

fn backend(name: &str, endpoints: &str) -> String {
    format!(
        "apiVersion: gateway.envoyproxy.io/v1alpha1\nkind: Backend\nmetadata: {{name: {name}}}\n\
         spec: {{endpoints: [{endpoints}]}}\n---\n"
    )
}

fn route_to_backend(name: &str, backend: &str) -> String {
    format!(
        "apiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\nmetadata: {{name: {name}}}\nspec:\n  \
         parentRefs: [{{name: gw, sectionName: http}}]\n  hostnames: [{name}.example]\n  \
         rules: [{{backendRefs: [{{group: gateway.envoyproxy.io, kind: Backend, name: {backend}}}]}}]\n---\n"
    )
}

/// An echo backend on a Unix socket at `path`, reporting `pod`.
fn unix_echo(path: &std::path::Path, pod: &str) {
    let listener = tokio::net::UnixListener::bind(path).unwrap();
    let identity = std::sync::Arc::new(examples_support::echo::EchoIdentity {
        namespace: "default".into(),
        pod: pod.into(),
    });
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            tokio::spawn(examples_support::echo::serve_echo_connection(
                stream,
                std::sync::Arc::clone(&identity),
            ));
        }
    });
}

#[tokio::test(flavor = "multi_thread")]
async fn backends_route_to_their_addresses_host_names_and_unix_sockets() {
    let port = free_port();
    let (by_ip, by_name) = (echo("by-ip").await, echo("by-name").await);
    let dir = scratch("envoy-backend");
    // A socket path holds at most 107 bytes: a short directory, not the target's.
    let sockets = std::env::temp_dir().join(format!("gw-uds-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&sockets);
    std::fs::create_dir_all(&sockets).unwrap();
    let socket = sockets.join("app.sock");
    unix_echo(&socket, "by-socket");
    let config = gateway_yaml(port)
        + &backend(
            "by-ip",
            &format!("{{ip: {{address: 127.0.0.1, port: {by_ip}}}}}"),
        )
        + &backend(
            "by-name",
            &format!("{{fqdn: {{hostname: localhost, port: {by_name}}}}}"),
        )
        + &backend(
            "socket",
            &format!("{{unix: {{path: {}}}}}", socket.display()),
        )
        + &backend(
            "no-socket",
            &format!(
                "{{unix: {{path: {}}}}}",
                sockets.join("absent.sock").display()
            ),
        )
        + &backend("relative", "{unix: {path: run/app.sock}}")
        + &route_to_backend("ip", "by-ip")
        + &route_to_backend("name", "by-name")
        + &route_to_backend("unix", "socket")
        + &route_to_backend("gone", "no-socket")
        + &route_to_backend("relative", "relative");
    std::fs::write(dir.join("config.yaml"), config).unwrap();
    let gateway = start_gateway(&[&dir]).await;
    gateway.wait_ready().await;
    let url = format!("http://127.0.0.1:{port}/");
    for (host, pod) in [
        ("ip.example", "by-ip"),
        ("name.example", "by-name"),
        ("unix.example", "by-socket"),
    ] {
        for _ in 0..3 {
            let (status, response) = curl(&["-H", &format!("host: {host}"), &url]).await;
            assert_eq!(status, 200, "{host}: {response}");
            assert_eq!(echoed(&response)["pod"], pod, "{host}");
        }
    }
    // No one listening on the path: the connection is refused, as for a TCP endpoint.
    let (status, _) = curl(&["-H", "host: gone.example", &url]).await;
    assert_eq!(status, 503);
    let (status, _) = curl(&["-H", "host: relative.example", &url]).await;
    assert_eq!(status, 500, "an invalid backendRef");
    let (_, status) = curl(&[&gateway.admin_url("/status")]).await;
    assert!(
        status.contains(
            "Backend default/relative: spec.endpoints[0].unix.path: \\\"run/app.sock\\\" is not an absolute path"
        ),
        "{status}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_backend_tls_policy_on_a_backend_makes_the_gateway_speak_verified_tls() {
    let port = free_port();
    let dir = scratch("envoy-backend-tls");
    let (ca, leaf, key) = openssl_ca_and_leaf(&dir, "api.internal");
    let secure = tls_echo(&leaf, &key).await;
    let config = gateway_yaml(port)
        + &backend(
            "api",
            &format!("{{fqdn: {{hostname: localhost, port: {secure}}}}}"),
        )
        + &route_to_backend("api", "api")
        + "apiVersion: gateway.networking.k8s.io/v1\nkind: BackendTLSPolicy\nmetadata: {name: api}\n\
           spec:\n  targetRefs: [{group: gateway.envoyproxy.io, kind: Backend, name: api}]\n  \
           validation: {hostname: api.internal, caCertificateRefs: [{group: '', kind: ConfigMap, name: api-ca}]}\n---\n"
        + &ca_config_map("api-ca", &ca);
    std::fs::write(dir.join("config.yaml"), config).unwrap();
    let gateway = start_gateway(&[&dir]).await;
    gateway.wait_ready().await;
    let (status, response) = curl(&[
        "-H",
        "host: api.example",
        &format!("http://127.0.0.1:{port}/"),
    ])
    .await;
    assert_eq!(status, 200, "{response}");
    // The TLS echo names the SNI it was sent: the policy's hostname.
    assert_eq!(echoed(&response)["pod"], "sni=api.internal", "{response}");

    // A policy whose CA did not sign the backend's certificate: the handshake fails (503).
    std::fs::create_dir_all(dir.join("other")).unwrap();
    let (other_ca, _, _) = openssl_ca_and_leaf(&dir.join("other"), "api.internal");
    let swapped = std::fs::read_to_string(dir.join("config.yaml"))
        .unwrap()
        .replace(
            &ca_config_map("api-ca", &ca),
            &ca_config_map("api-ca", &other_ca),
        );
    std::fs::write(dir.join("config.yaml"), swapped).unwrap();
    let url = format!("http://127.0.0.1:{port}/");
    let mut last = 0;
    for _ in 0..100 {
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        last = curl(&["-H", "host: api.example", &url]).await.0;
        if last == 503 {
            break;
        }
    }
    assert_eq!(
        last, 503,
        "an unverifiable backend is refused once the reload lands"
    );
    let (status, _) = curl(&["-H", "host: api.example", &url]).await;
    assert_eq!(status, 503, "and stays refused");
}

/// A Backend `name` at `localhost:port` with `tls` (YAML flow style).
fn tls_backend(name: &str, port: u16, tls: &str) -> String {
    format!(
        "apiVersion: gateway.envoyproxy.io/v1alpha1\nkind: Backend\nmetadata: {{name: {name}}}\n\
         spec: {{endpoints: [{{fqdn: {{hostname: localhost, port: {port}}}}}], tls: {tls}}}\n---\n"
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn a_backends_own_tls_settings_verify_its_endpoints_or_skip_verification() {
    let port = free_port();
    let dir = scratch("envoy-backend-own-tls");
    let (ca, leaf, key) = openssl_ca_and_leaf(&dir, "api.internal");
    let secure = tls_echo(&leaf, &key).await;
    let mut config = gateway_yaml(port) + &ca_config_map("api-ca", &ca);
    for (name, tls) in [
        (
            "trusted",
            "{caCertificateRefs: [{kind: ConfigMap, name: api-ca}], sni: api.internal}",
        ),
        ("insecure", "{insecureSkipVerify: true, sni: any.name}"),
        (
            "public",
            "{wellKnownCACertificates: System, sni: api.internal}",
        ),
        (
            "wrong-name",
            "{caCertificateRefs: [{kind: ConfigMap, name: api-ca}], sni: other.internal}",
        ),
        ("overridden", "{insecureSkipVerify: true, sni: own.name}"),
        // Without `sni`, each request's host is sent (and verified).
        ("host-sni", "{insecureSkipVerify: true}"),
        (
            "host-verified",
            "{caCertificateRefs: [{kind: ConfigMap, name: api-ca}]}",
        ),
    ] {
        config += &tls_backend(name, secure, tls);
        config += &route_to_backend(name, name);
    }
    // The certificate's name as a route's host: verified against the request's host.
    config += &route_to_backend("api-internal", "host-verified").replace(
        "hostnames: [api-internal.example]",
        "hostnames: [api.internal]",
    );
    // A BackendTLSPolicy on a Backend takes precedence over the Backend's own settings.
    config += "apiVersion: gateway.networking.k8s.io/v1\nkind: BackendTLSPolicy\nmetadata: {name: over}\n\
               spec:\n  targetRefs: [{group: gateway.envoyproxy.io, kind: Backend, name: overridden}]\n  \
               validation: {hostname: api.internal, caCertificateRefs: [{group: '', kind: ConfigMap, name: api-ca}]}\n---\n";
    std::fs::write(dir.join("config.yaml"), config).unwrap();
    let gateway = start_gateway(&[&dir]).await;
    gateway.wait_ready().await;
    let url = format!("http://127.0.0.1:{port}/");
    for (host, sni) in [
        ("trusted.example", "api.internal"),
        ("insecure.example", "any.name"),
        ("overridden.example", "api.internal"),
        ("host-sni.example", "host-sni.example"),
        ("api.internal", "api.internal"),
    ] {
        let (status, response) = curl(&["-H", &format!("host: {host}"), &url]).await;
        assert_eq!(status, 200, "{host}: {response}");
        assert_eq!(echoed(&response)["pod"], format!("sni={sni}"), "{host}");
    }
    // The test CA is not a public root, and the certificate is not for other.internal nor
    // for host-verified.example.
    for host in [
        "public.example",
        "wrong-name.example",
        "host-verified.example",
    ] {
        let (status, response) = curl(&["-H", &format!("host: {host}"), &url]).await;
        assert_eq!(status, 503, "{host}: {response}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_wss_backend_carries_websockets_over_tls() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let port = free_port();
    let dir = scratch("envoy-backend-wss");
    let (_, leaf, key) = openssl_ca_and_leaf(&dir, "chat.internal");
    let secure = upgrade_echo_tls(&leaf, &key).await;
    let config = gateway_yaml(port)
        + &format!(
            "apiVersion: gateway.envoyproxy.io/v1alpha1\nkind: Backend\nmetadata: {{name: chat}}\n\
             spec:\n  endpoints: [{{fqdn: {{hostname: localhost, port: {secure}}}}}]\n  \
             appProtocols: [gateway.envoyproxy.io/wss]\n  \
             tls: {{insecureSkipVerify: true, sni: chat.internal}}\n---\n"
        )
        + &route_to_backend("chat", "chat");
    std::fs::write(dir.join("config.yaml"), config).unwrap();
    let gateway = start_gateway(&[&dir]).await;
    gateway.wait_ready().await;
    let (head, mut client) = ask_upgrade(port, "chat.example", "websocket").await;
    assert!(head.starts_with("http/1.1 101"), "{head}");
    client.write_all(b"over tls").await.unwrap();
    let mut echoed_back = [0u8; 8];
    tokio::time::timeout(
        std::time::Duration::from_secs(5),
        client.read_exact(&mut echoed_back),
    )
    .await
    .unwrap()
    .unwrap();
    assert_eq!(&echoed_back, b"over tls");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_backends_tls_versions_bound_what_the_gateway_offers() {
    let port = free_port();
    let dir = scratch("envoy-backend-tls-versions");
    let (_, leaf, key) = openssl_ca_and_leaf(&dir, "api.internal");
    let secure = tls_version_echo(&leaf, &key).await;
    let mut config = gateway_yaml(port);
    for (name, versions) in [
        ("default", ""),
        ("up-to-12", ", maxVersion: '1.2'"),
        ("from-13", ", minVersion: '1.3'"),
        ("auto", ", minVersion: Auto, maxVersion: Auto"),
    ] {
        config += &tls_backend(
            name,
            secure,
            &format!("{{insecureSkipVerify: true, sni: api.internal{versions}}}"),
        );
        config += &route_to_backend(name, name);
    }
    std::fs::write(dir.join("config.yaml"), config).unwrap();
    let gateway = start_gateway(&[&dir]).await;
    gateway.wait_ready().await;
    let url = format!("http://127.0.0.1:{port}/");
    for (host, version) in [
        ("default.example", "TLSv1_3"),
        ("up-to-12.example", "TLSv1_2"),
        ("from-13.example", "TLSv1_3"),
        ("auto.example", "TLSv1_3"),
    ] {
        let (status, response) = curl(&["-H", &format!("host: {host}"), &url]).await;
        assert_eq!(status, 200, "{host}: {response}");
        assert_eq!(
            echoed(&response)["pod"],
            format!("version={version}"),
            "{host}"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_backends_suites_groups_signature_schemes_and_alpn_are_what_the_gateway_offers() {
    let port = free_port();
    let dir = scratch("envoy-backend-tls-protocol");
    // A P-256 (ECDSA) certificate.
    let (_, leaf, key) = openssl_ca_and_leaf(&dir, "api.internal");
    let secure = tls_handshake_echo(&leaf, &key).await;
    let mut config = gateway_yaml(port);
    let backends = [
        ("default", ""),
        (
            "chacha",
            ", maxVersion: '1.2', ciphers: [ECDHE-ECDSA-CHACHA20-POLY1305]",
        ),
        ("p384", ", ecdhCurves: [P-384]"),
        ("offers-h2", ", alpnProtocols: [h2, http/1.1]"),
        ("no-alpn", ", alpnProtocols: []"),
        ("ecdsa", ", signatureAlgorithms: [ecdsa_secp256r1_sha256]"),
        ("rsa-only", ", signatureAlgorithms: [rsa_pss_rsae_sha256]"),
    ];
    for (name, settings) in backends {
        config += &tls_backend(
            name,
            secure,
            &format!("{{insecureSkipVerify: true, sni: api.internal{settings}}}"),
        );
        config += &route_to_backend(name, name);
    }
    // Names the data plane cannot offer are refused, naming the field.
    config += &tls_backend(
        "weak",
        secure,
        "{insecureSkipVerify: true, ciphers: [AES128-SHA]}",
    );
    config += &route_to_backend("weak", "weak");
    std::fs::write(dir.join("config.yaml"), config).unwrap();
    let gateway = start_gateway(&[&dir]).await;
    gateway.wait_ready().await;
    let url = format!("http://127.0.0.1:{port}/");
    for (host, negotiated) in [
        (
            "default.example",
            "cipher=TLS13_AES_256_GCM_SHA384 group=X25519 alpn=http/1.1",
        ),
        (
            "chacha.example",
            "cipher=TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256 group=X25519 alpn=http/1.1",
        ),
        (
            "p384.example",
            "cipher=TLS13_AES_256_GCM_SHA384 group=secp384r1 alpn=http/1.1",
        ),
        // The backend chooses h2 from the list, and the gateway speaks HTTP/2 to it.
        (
            "offers-h2.example",
            "cipher=TLS13_AES_256_GCM_SHA384 group=X25519 alpn=h2",
        ),
        (
            "no-alpn.example",
            "cipher=TLS13_AES_256_GCM_SHA384 group=X25519 alpn=none",
        ),
        (
            "ecdsa.example",
            "cipher=TLS13_AES_256_GCM_SHA384 group=X25519 alpn=http/1.1",
        ),
    ] {
        let (status, response) = curl(&["-H", &format!("host: {host}"), &url]).await;
        assert_eq!(status, 200, "{host}: {response}");
        assert_eq!(echoed(&response)["pod"], negotiated, "{host}");
    }
    let (_, response) = curl(&["-H", "host: offers-h2.example", &url]).await;
    assert_eq!(echoed(&response)["proto"], "HTTP/2.0", "{response}");
    // An ECDSA key cannot sign with the only scheme allowed: no handshake.
    let (status, response) = curl(&["-H", "host: rsa-only.example", &url]).await;
    assert_eq!(status, 503, "{response}");
    let (status, _) = curl(&["-H", "host: weak.example", &url]).await;
    assert_eq!(status, 500);
    let (_, status_doc) = curl(&[&gateway.admin_url("/status")]).await;
    assert!(
        status_doc.contains("spec.tls.ciphers: \\\"AES128-SHA\\\" is not a TLS 1.2 suite"),
        "{status_doc}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_backend_presents_its_own_client_certificate() {
    let port = free_port();
    let dir = scratch("envoy-backend-client-cert");
    let clients = dir.join("clients");
    std::fs::create_dir_all(&clients).unwrap();
    let (_, server_cert, server_key) = openssl_ca_and_leaf(&dir, "mtls.internal");
    let (client_ca, client_cert, client_key) = openssl_client_ca_and_leaf(&clients, "gateway");
    let backend = mtls_echo(&server_cert, &server_key, &client_ca).await;
    let pair = (
        std::fs::read_to_string(&client_cert).unwrap(),
        std::fs::read_to_string(&client_key).unwrap(),
    );
    let config = gateway_yaml(port)
        + &tls_secret("backend-client", &pair)
        + &tls_backend(
            "with",
            backend,
            "{insecureSkipVerify: true, sni: mtls.internal, clientCertificateRef: {name: backend-client}}",
        )
        + &tls_backend(
            "without",
            backend,
            "{insecureSkipVerify: true, sni: mtls.internal}",
        )
        + &tls_backend(
            "elsewhere",
            backend,
            "{insecureSkipVerify: true, sni: mtls.internal, clientCertificateRef: {name: backend-client, namespace: other}}",
        )
        + &route_to_backend("with", "with")
        + &route_to_backend("without", "without")
        + &route_to_backend("elsewhere", "elsewhere");
    std::fs::write(dir.join("config.yaml"), config).unwrap();
    let gateway = start_gateway(&[&dir]).await;
    gateway.wait_ready().await;
    let url = format!("http://127.0.0.1:{port}/");
    let (status, response) = curl(&["-H", "host: with.example", &url]).await;
    assert_eq!(status, 200, "{response}");
    assert_eq!(echoed(&response)["pod"], "client-certs=1", "{response}");
    // Without a certificate the backend refuses the handshake.
    let (status, _) = curl(&["-H", "host: without.example", &url]).await;
    assert_eq!(status, 503);
    // A Secret of another namespace is refused: the reference is invalid (500).
    let (status, _) = curl(&["-H", "host: elsewhere.example", &url]).await;
    assert_eq!(status, 500);
    let (_, status) = curl(&[&gateway.admin_url("/status")]).await;
    assert!(
        status.contains("spec.tls.clientCertificateRef: only a Secret of the Backend's namespace"),
        "{status}"
    );
}
