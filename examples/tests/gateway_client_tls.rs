//! ClientTrafficPolicy `tls` through the `gateway` binary, driven by curl (OpenSSL): one HTTPS
//! listener per setting — a TLS 1.3 floor; a TLS 1.2 ceiling with one cipher suite and ALPN
//! `http/1.1` only; client certificates required and chained to a CA from a ConfigMap, with a
//! URI SAN pin; verified if given, from a Secret, with a public-key pin; a certificate-hash pin
//! no certificate matches; and `RequireAny` without CAs.
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
