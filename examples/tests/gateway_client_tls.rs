//! ClientTrafficPolicy `tls` through the `gateway` binary, driven by curl (OpenSSL): one HTTPS
//! listener per setting — a TLS 1.3 floor; a TLS 1.2 ceiling with one cipher suite and ALPN
//! `http/1.1` only; client certificates required and chained to a CA from a ConfigMap, with a
//! URI SAN pin; verified if given, from a Secret, with a public-key pin; a certificate-hash pin
//! no certificate matches; and `RequireAny` without CAs. And `session.resumption`: none by
//! default under a policy, stateful (a ticket naming the session the listener keeps) or
//! stateless (a ticket carrying the sealed session), as `openssl s_client` resumes them.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

mod gateway_support;

use gateway_support::tls::*;
use gateway_support::*;

/// base64 SHA-256 of the certificate `cert`'s public key, by the openssl CLI.
fn spki_sha256(cert: &std::path::Path) -> String {
    let output = std::process::Command::new("sh")
        .arg("-c")
        .arg(format!(
            "openssl x509 -in '{}' -pubkey -noout | openssl pkey -pubin -outform der | openssl dgst -sha256 -binary | base64",
            cert.display()
        ))
        .output()
        .unwrap();
    assert!(output.status.success());
    String::from_utf8(output.stdout).unwrap().trim().to_owned()
}

fn listener(name: &str, port: u16) -> String {
    format!(
        "  - {{name: {name}, port: {port}, protocol: HTTPS, tls: {{certificateRefs: [{{name: gw-cert}}]}}}}\n"
    )
}

fn policy(name: &str, tls: &str) -> String {
    format!(
        "apiVersion: gateway.envoyproxy.io/v1alpha1\nkind: ClientTrafficPolicy\nmetadata: {{name: {name}}}\nspec:\n  \
         targetRefs: [{{group: gateway.networking.k8s.io, kind: Gateway, name: gw, sectionName: {name}}}]\n  \
         tls: {tls}\n---\n"
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn tls_settings_and_client_certificates_follow_the_policy() {
    let names = ["modern", "legacy", "mtls", "optional", "hashed", "anycert"];
    let ports: Vec<u16> = names.iter().map(|_| free_port()).collect();
    let port = |name: &str| ports[names.iter().position(|n| *n == name).unwrap()];
    let dir = scratch("client-tls");
    let clients = dir.join("clients");
    std::fs::create_dir_all(&clients).unwrap();
    let (client_ca, client_cert, client_key) = openssl_client_ca_and_leaf(&clients, "alice");
    openssl_certificate(&dir, "stranger", &["stranger"], false);
    let server = openssl_certificate(&dir, "gw", &["gw.example"], false);
    let backend = echo("echo-0").await;
    let ca_secret = {
        use base64::Engine as _;
        let pem = std::fs::read_to_string(&client_ca).unwrap();
        format!(
            "apiVersion: v1\nkind: Secret\nmetadata: {{name: client-ca-secret}}\ndata:\n  ca.crt: {}\n---\n",
            base64::engine::general_purpose::STANDARD.encode(pem)
        )
    };
    let listeners: String = names.iter().map(|n| listener(n, port(n))).collect();
    let ca_ref = "caCertificateRefs: [{group: '', kind: ConfigMap, name: client-ca}]";
    let yaml = format!(
        "apiVersion: gateway.networking.k8s.io/v1\nkind: Gateway\nmetadata: {{name: gw}}\nspec:\n  \
         gatewayClassName: test\n  addresses: [{{value: 127.0.0.1}}]\n  listeners:\n{listeners}---\n\
         {}{}{ca_secret}{}apiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\nmetadata: {{name: r}}\n\
         spec: {{parentRefs: [{{name: gw}}], rules: [{{backendRefs: [{{name: echo, port: 80}}]}}]}}\n---\n{}",
        tls_secret("gw-cert", &server),
        ca_config_map("client-ca", &client_ca),
        service("echo", backend),
        [
            policy("modern", "{minVersion: '1.3'}"),
            policy(
                "legacy",
                "{maxVersion: '1.2', ciphers: [ECDHE-ECDSA-AES256-GCM-SHA384], alpnProtocols: [http/1.1]}",
            ),
            policy(
                "mtls",
                &format!("{{clientValidation: {{{ca_ref}, subjectAltNames: {{uris: [{{type: Prefix, value: 'spiffe://cluster.local/ns/default/'}}]}}}}}}"),
            ),
            policy(
                "optional",
                &format!(
                    "{{clientValidation: {{mode: VerifyIfGiven, caCertificateRefs: [{{name: client-ca-secret}}], spkiHashes: ['{}']}}}}",
                    spki_sha256(&client_cert)
                ),
            ),
            policy(
                "hashed",
                &format!("{{clientValidation: {{{ca_ref}, certificateHashes: ['{}']}}}}", "ab".repeat(32)),
            ),
            policy("anycert", "{clientValidation: {mode: RequireAny}}"),
        ]
        .concat(),
    );
    std::fs::write(dir.join("config.yaml"), yaml).unwrap();
    let gateway = start_gateway(&[&dir.join("config.yaml")]).await;
    gateway.wait_ready().await;
    let (_, status) = curl(&[&gateway.admin_url("/status")]).await;
    for name in names {
        assert!(
            status.contains(&format!("\"name\": \"{name}\"")),
            "policy {name} on /status: {status}"
        );
    }
    assert!(!status.contains("\"status\": \"False\""), "{status}");

    let url = |name: &str| format!("https://127.0.0.1:{}/", port(name));
    let get = |extra: &[&str], name: &str| {
        let mut args: Vec<String> = vec!["-k".into()];
        args.extend(extra.iter().map(|a| (*a).to_owned()));
        args.push(url(name));
        async move {
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            curl(&args).await
        }
    };
    let (cert, key) = (client_cert.to_str().unwrap(), client_key.to_str().unwrap());
    let alice = ["--cert", cert, "--key", key];
    let stranger_cert = dir.join("stranger-cert.pem");
    let stranger_key = dir.join("stranger-key.pem");
    let stranger = [
        "--cert",
        stranger_cert.to_str().unwrap(),
        "--key",
        stranger_key.to_str().unwrap(),
    ];

    // minVersion 1.3.
    assert_eq!(
        get(&["--tls-max", "1.2"], "modern").await.0,
        0,
        "TLS 1.2 refused"
    );
    assert_eq!(get(&["--tlsv1.3"], "modern").await.0, 200);

    // maxVersion 1.2, one TLS 1.2 suite, ALPN http/1.1 only.
    assert_eq!(get(&["--tlsv1.3"], "legacy").await.0, 0, "TLS 1.3 refused");
    let weak = [
        "--tls-max",
        "1.2",
        "--ciphers",
        "ECDHE-ECDSA-AES128-GCM-SHA256",
    ];
    assert_eq!(get(&weak, "legacy").await.0, 0, "a suite not listed");
    let (status, response) = get(
        &[
            "--http2",
            "--tls-max",
            "1.2",
            "--ciphers",
            "ECDHE-ECDSA-AES256-GCM-SHA384",
        ],
        "legacy",
    )
    .await;
    assert_eq!(status, 200, "{response}");
    assert!(
        response.starts_with("HTTP/1.1 200"),
        "ALPN chose http/1.1: {response}"
    );
    let (_, response) = get(&["--http2"], "modern").await;
    assert!(
        response.starts_with("HTTP/2 200"),
        "default ALPN offers h2: {response}"
    );

    // Required, chained to the ConfigMap's CA, URI SAN pinned.
    assert_eq!(get(&alice, "mtls").await.0, 200);
    assert_eq!(get(&[], "mtls").await.0, 0, "no certificate");
    assert_eq!(get(&stranger, "mtls").await.0, 0, "another CA");

    // Verified if given (the Secret's CA), public key pinned.
    assert_eq!(get(&alice, "optional").await.0, 200);
    assert_eq!(get(&[], "optional").await.0, 200, "no certificate is fine");
    assert_eq!(
        get(&stranger, "optional").await.0,
        0,
        "an untrusted one is not"
    );

    // A certificate hash nobody has: a trusted certificate is still refused.
    assert_eq!(get(&alice, "hashed").await.0, 0);

    // RequireAny: any certificate, but one.
    assert_eq!(get(&stranger, "anycert").await.0, 200);
    assert_eq!(get(&[], "anycert").await.0, 0);
}

/// Hex SHA-256 of the certificate `cert` (DER), by the openssl CLI.
fn certificate_sha256(cert: &std::path::Path) -> String {
    let output = std::process::Command::new("sh")
        .arg("-c")
        .arg(format!(
            "openssl x509 -in '{}' -outform der | openssl dgst -sha256 -r",
            cert.display()
        ))
        .output()
        .unwrap();
    assert!(output.status.success());
    String::from_utf8(output.stdout).unwrap()[..64].to_owned()
}

#[tokio::test(flavor = "multi_thread")]
async fn x_forwarded_client_cert_is_sanitized_set_or_forwarded() {
    let names = ["set", "forward"];
    let ports: Vec<u16> = names.iter().map(|_| free_port()).collect();
    let plain = free_port();
    let dir = scratch("xfcc");
    let clients = dir.join("clients");
    std::fs::create_dir_all(&clients).unwrap();
    let (client_ca, client_cert, client_key) = openssl_client_ca_and_leaf(&clients, "alice");
    let server = openssl_certificate(&dir, "gw", &["gw.example"], false);
    let backend = echo("echo-0").await;
    let listeners: String = names
        .iter()
        .zip(&ports)
        .map(|(n, p)| listener(n, *p))
        .collect();
    let ca_ref = "caCertificateRefs: [{group: '', kind: ConfigMap, name: client-ca}]";
    let xfcc_policy = |name: &str, tls: &str, xfcc: &str| {
        policy(name, tls).replace(
            "\n---\n",
            &format!("\n  headers: {{xForwardedClientCert: {xfcc}}}\n---\n"),
        )
    };
    let yaml = format!(
        "apiVersion: gateway.networking.k8s.io/v1\nkind: Gateway\nmetadata: {{name: gw}}\nspec:\n  \
         gatewayClassName: test\n  addresses: [{{value: 127.0.0.1}}]\n  listeners:\n{listeners}  \
         - {{name: plain, port: {plain}, protocol: HTTP}}\n---\n\
         {}{}{}apiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\nmetadata: {{name: r}}\n\
         spec: {{parentRefs: [{{name: gw}}], rules: [{{backendRefs: [{{name: echo, port: 80}}]}}]}}\n---\n{}{}",
        tls_secret("gw-cert", &server),
        ca_config_map("client-ca", &client_ca),
        service("echo", backend),
        xfcc_policy(
            "set",
            &format!("{{clientValidation: {{{ca_ref}}}}}"),
            "{mode: SanitizeSet, certDetailsToAdd: [Subject, URI, Cert]}",
        ),
        xfcc_policy(
            "forward",
            &format!("{{clientValidation: {{mode: VerifyIfGiven, {ca_ref}}}}}"),
            "{mode: ForwardOnly}",
        ),
    );
    std::fs::write(dir.join("config.yaml"), yaml).unwrap();
    let gateway = start_gateway(&[&dir.join("config.yaml")]).await;
    gateway.wait_ready().await;
    let (_, status) = curl(&[&gateway.admin_url("/status")]).await;
    assert!(!status.contains("\"status\": \"False\""), "{status}");

    let spoofed = "x-forwarded-client-cert: Hash=0000;URI=spiffe://cluster.local/ns/admin/sa/root";
    let (cert, key) = (client_cert.to_str().unwrap(), client_key.to_str().unwrap());
    let seen = |args: Vec<String>| async move {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let (status, response) = curl(&args).await;
        assert_eq!(status, 200, "{response}");
        echoed(&response)["headers"]["x-forwarded-client-cert"]
            .as_array()
            .map(|values| values[0].as_str().unwrap().to_owned())
    };
    let https = |port: u16, with_cert: bool| {
        let mut args: Vec<String> = vec!["-k".into(), "-H".into(), spoofed.into()];
        if with_cert {
            args.extend(["--cert".into(), cert.into(), "--key".into(), key.into()]);
        }
        args.push(format!("https://127.0.0.1:{port}/"));
        args
    };

    // SanitizeSet: the client's own element replaces the spoofed one.
    let element = seen(https(ports[0], true)).await.expect("set");
    let hash = certificate_sha256(&client_cert);
    assert!(element.starts_with(&format!("Hash={hash};")), "{element}");
    assert!(element.contains(";Subject=\"CN=alice\";"), "{element}");
    assert!(
        element.contains(";URI=spiffe://cluster.local/ns/default/sa/backend"),
        "{element}"
    );
    let pem = std::fs::read_to_string(&client_cert).unwrap();
    let cert_value = element
        .split(";Cert=\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .unwrap();
    let decoded = percent_decode(cert_value);
    assert_eq!(
        decoded.trim(),
        pem.trim(),
        "the URL-encoded PEM of the client's certificate"
    );
    assert!(!element.contains("admin"), "{element}");

    // ForwardOnly: kept for an mTLS client, removed for another.
    assert_eq!(
        seen(https(ports[1], true)).await.as_deref(),
        Some(&spoofed["x-forwarded-client-cert: ".len()..])
    );
    assert_eq!(seen(https(ports[1], false)).await, None);

    // No policy (Envoy Gateway's Sanitize): removed.
    let url = format!("http://127.0.0.1:{plain}/");
    assert_eq!(seen(vec!["-H".into(), spoofed.into(), url]).await, None);
}

fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() + 1 {
            out.push(u8::from_str_radix(&text[i + 1..i + 3], 16).unwrap());
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).unwrap()
}

/// Connects to `port` with `openssl s_client` over TLS 1.3, offering the session saved in
/// `session` when it exists and saving the new one there: whether the handshake resumed.
fn openssl_resumes(port: u16, session: &std::path::Path) -> bool {
    let offer = if session.exists() {
        format!("-sess_in '{}'", session.display())
    } else {
        String::new()
    };
    // A whole HTTP exchange, read to the close, so the server's tickets arrive before the
    // session is saved.
    let output = std::process::Command::new("sh")
        .arg("-c")
        .arg(format!(
            "printf 'GET / HTTP/1.1\\r\\nHost: gw.example\\r\\nConnection: close\\r\\n\\r\\n' | \
             timeout 10 openssl s_client -connect 127.0.0.1:{port} -servername gw.example -tls1_3 \
             -ign_eof {offer} -sess_out '{}' 2>&1",
            session.display()
        ))
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(text.contains("TLSv1.3"), "{text}");
    text.contains("Reused, TLSv1.3")
}

/// The length of the session ticket saved in `session`, by `openssl sess_id` (0: none).
fn ticket_length(session: &std::path::Path) -> usize {
    let output = std::process::Command::new("openssl")
        .args(["sess_id", "-noout", "-text", "-in"])
        .arg(session)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&output.stdout);
    let Some((_, dump)) = text.split_once("TLS session ticket:") else {
        return 0;
    };
    dump.lines()
        .skip(1)
        .take_while(|line| line.contains(" - "))
        .filter_map(|line| line.split_once(" - ").map(|(_, bytes)| bytes))
        .map(|bytes| {
            let hex = bytes
                .split("   ")
                .next()
                .unwrap_or_default()
                .replace('-', " ");
            hex.split_whitespace()
                .filter(|t| t.len() == 2 && t.chars().all(|c| c.is_ascii_hexdigit()))
                .count()
        })
        .sum()
}

#[tokio::test(flavor = "multi_thread")]
async fn sessions_resume_only_as_the_policy_says() {
    let names = ["none", "stateful", "stateless"];
    let ports: Vec<u16> = names.iter().map(|_| free_port()).collect();
    let dir = scratch("client-tls-sessions");
    let server = openssl_certificate(&dir, "gw", &["gw.example"], false);
    let backend = echo("echo-0").await;
    let listeners: String = names
        .iter()
        .zip(&ports)
        .map(|(name, port)| listener(name, *port))
        .collect();
    let yaml = format!(
        "apiVersion: gateway.networking.k8s.io/v1\nkind: Gateway\nmetadata: {{name: gw}}\nspec:\n  \
         gatewayClassName: test\n  addresses: [{{value: 127.0.0.1}}]\n  listeners:\n{listeners}---\n\
         {}{}apiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\nmetadata: {{name: r}}\n\
         spec: {{parentRefs: [{{name: gw}}], rules: [{{backendRefs: [{{name: echo, port: 80}}]}}]}}\n---\n{}",
        tls_secret("gw-cert", &server),
        service("echo", backend),
        [
            policy("none", "{minVersion: '1.2'}"),
            policy("stateful", "{session: {resumption: {stateful: {}}}}"),
            policy("stateless", "{session: {resumption: {stateless: {}}}}"),
        ]
        .concat(),
    );
    std::fs::write(dir.join("config.yaml"), yaml).unwrap();
    let gateway = start_gateway(&[&dir.join("config.yaml")]).await;
    gateway.wait_ready().await;
    let (_, status) = curl(&[&gateway.admin_url("/status")]).await;
    assert!(!status.contains("\"status\": \"False\""), "{status}");

    let session = |name: &str| dir.join(format!("{name}.session"));
    for (name, port) in names.iter().zip(&ports) {
        assert!(
            !openssl_resumes(*port, &session(name)),
            "{name}: a first handshake"
        );
    }
    // Envoy Gateway's default under a policy: no resumption at all.
    assert!(!openssl_resumes(ports[0], &session("none")));
    assert_eq!(ticket_length(&session("none")), 0);
    // Stateful: the ticket is only an id for the session the listener remembers.
    assert!(openssl_resumes(ports[1], &session("stateful")));
    let id = ticket_length(&session("stateful"));
    assert!((1..=32).contains(&id), "{id}");
    // Stateless: the ticket carries the sealed session itself.
    assert!(openssl_resumes(ports[2], &session("stateless")));
    let sealed = ticket_length(&session("stateless"));
    assert!(sealed > 64, "{sealed}");
}
