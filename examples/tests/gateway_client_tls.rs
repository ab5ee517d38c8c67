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

/// HTTPS listeners of the Gateway `gw`, each on a port of its own, with the certificate
/// Secret `gw-cert`, the client CA ConfigMap `client-ca` and a route to an echo backend.
struct TlsListeners {
    names: Vec<&'static str>,
    ports: Vec<u16>,
}

impl TlsListeners {
    fn new(names: &[&'static str]) -> Self {
        TlsListeners {
            names: names.to_vec(),
            ports: names.iter().map(|_| free_port()).collect(),
        }
    }

    fn port(&self, name: &str) -> u16 {
        self.ports[self.names.iter().position(|n| *n == name).unwrap()]
    }

    /// Writes the configuration — the listeners, `extra` objects and `policies` — into
    /// `dir`, starts the gateway and waits until it is ready with every policy accepted.
    async fn start(
        &self,
        dir: &std::path::Path,
        server: &(String, String),
        client_ca: &std::path::Path,
        extra: &str,
        policies: &[String],
    ) -> Gateway {
        let backend = echo("echo-0").await;
        let listeners: String = self
            .names
            .iter()
            .map(|n| listener(n, self.port(n)))
            .collect();
        let yaml = format!(
            "apiVersion: gateway.networking.k8s.io/v1\nkind: Gateway\nmetadata: {{name: gw}}\nspec:\n  \
             gatewayClassName: test\n  addresses: [{{value: 127.0.0.1}}]\n  listeners:\n{listeners}---\n\
             {}{}{extra}{}apiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\nmetadata: {{name: r}}\n\
             spec: {{parentRefs: [{{name: gw}}], rules: [{{backendRefs: [{{name: echo, port: 80}}]}}]}}\n---\n{}",
            tls_secret("gw-cert", server),
            ca_config_map("client-ca", client_ca),
            service("echo", backend),
            policies.concat(),
        );
        std::fs::write(dir.join("config.yaml"), yaml).unwrap();
        let gateway = start_gateway(&[&dir.join("config.yaml")]).await;
        gateway.wait_ready().await;
        let (_, status) = curl(&[&gateway.admin_url("/status")]).await;
        assert!(!status.contains("\"status\": \"False\""), "{status}");
        gateway
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn tls_settings_and_client_certificates_follow_the_policy() {
    let listeners =
        TlsListeners::new(&["modern", "legacy", "mtls", "optional", "hashed", "anycert"]);
    let port = |name: &str| listeners.port(name);
    let dir = scratch("client-tls");
    let clients = dir.join("clients");
    std::fs::create_dir_all(&clients).unwrap();
    let (client_ca, client_cert, client_key) = openssl_client_ca_and_leaf(&clients, "alice");
    openssl_certificate(&dir, "stranger", &["stranger"], false);
    let server = openssl_certificate(&dir, "gw", &["gw.example"], false);
    let ca_secret = {
        use base64::Engine as _;
        let pem = std::fs::read_to_string(&client_ca).unwrap();
        format!(
            "apiVersion: v1\nkind: Secret\nmetadata: {{name: client-ca-secret}}\ndata:\n  ca.crt: {}\n---\n",
            base64::engine::general_purpose::STANDARD.encode(pem)
        )
    };
    let ca_ref = "caCertificateRefs: [{group: '', kind: ConfigMap, name: client-ca}]";
    let policies = [
        policy("modern", "{minVersion: '1.3'}"),
        policy(
            "legacy",
            "{maxVersion: '1.2', ciphers: [ECDHE-ECDSA-AES256-GCM-SHA384], alpnProtocols: [http/1.1]}",
        ),
        policy(
            "mtls",
            &format!(
                "{{clientValidation: {{{ca_ref}, subjectAltNames: {{uris: [{{type: Prefix, value: 'spiffe://cluster.local/ns/default/'}}]}}}}}}"
            ),
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
            &format!(
                "{{clientValidation: {{{ca_ref}, certificateHashes: ['{}']}}}}",
                "ab".repeat(32)
            ),
        ),
        policy("anycert", "{clientValidation: {mode: RequireAny}}"),
    ];
    let gateway = listeners
        .start(&dir, &server, &client_ca, &ca_secret, &policies)
        .await;
    let (_, status) = curl(&[&gateway.admin_url("/status")]).await;
    for name in &listeners.names {
        assert!(
            status.contains(&format!("\"name\": \"{name}\"")),
            "policy {name} on /status: {status}"
        );
    }

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

/// A client certificate `stem` signed by the CA in `dir` (`ca-cert.pem`, `ca-key.pem`), with
/// `san`; returns its certificate and key paths.
fn client_leaf(dir: &std::path::Path, stem: &str, san: &str) -> (String, String) {
    let (cert, key) = openssl_leaf(
        dir,
        stem,
        stem,
        &format!(
            "subjectAltName={san}\nbasicConstraints=CA:FALSE\nkeyUsage=digitalSignature\nextendedKeyUsage=clientAuth\n"
        ),
    );
    (cert.display().to_string(), key.display().to_string())
}

/// A client certificate signed by the CA in `dir` that expired in 2020 (`openssl ca`, which
/// takes explicit dates).
fn expired_client_leaf(dir: &std::path::Path) -> (String, String) {
    openssl_ec_request(dir, "old", "old-key.pem", "old.csr");
    std::fs::write(dir.join("index.txt"), "").unwrap();
    std::fs::write(dir.join("serial"), "1000\n").unwrap();
    std::fs::write(
        dir.join("ca.cnf"),
        "[ca]\ndefault_ca = test\n[test]\ndatabase = index.txt\nnew_certs_dir = .\nserial = serial\n\
         default_md = sha256\npolicy = any\nunique_subject = no\n[any]\ncommonName = supplied\n\
         [leaf]\nbasicConstraints=CA:FALSE\nkeyUsage=digitalSignature\nextendedKeyUsage=clientAuth\n\
         subjectAltName=DNS:old\n",
    )
    .unwrap();
    openssl_in(
        dir,
        &[
            "ca",
            "-batch",
            "-config",
            "ca.cnf",
            "-cert",
            "ca-cert.pem",
            "-keyfile",
            "ca-key.pem",
            "-in",
            "old.csr",
            "-out",
            "old-cert.pem",
            "-notext",
            "-extensions",
            "leaf",
            "-startdate",
            "20200101000000Z",
            "-enddate",
            "20200201000000Z",
        ],
    );
    let path = |file: &str| dir.join(file).display().to_string();
    (path("old-cert.pem"), path("old-key.pem"))
}

#[tokio::test(flavor = "multi_thread")]
async fn expired_certificates_and_other_names_follow_the_policy() {
    let listeners = TlsListeners::new(&["strict", "lenient", "upn"]);
    let port = |name: &str| listeners.port(name);
    let dir = scratch("client-tls-expired");
    let clients = dir.join("clients");
    std::fs::create_dir_all(&clients).unwrap();
    let (client_ca, alice_cert, alice_key) = openssl_client_ca_and_leaf(&clients, "alice");
    let (old_cert, old_key) = expired_client_leaf(&clients);
    const UPN: &str = "1.3.6.1.4.1.311.20.2.3";
    let (carol_cert, carol_key) = client_leaf(
        &clients,
        "carol",
        &format!("otherName:{UPN};UTF8:carol@corp.example"),
    );
    let (dave_cert, dave_key) = client_leaf(
        &clients,
        "dave",
        &format!("otherName:{UPN};UTF8:dave@elsewhere.example"),
    );
    let server = openssl_certificate(&dir, "gw", &["gw.example"], false);
    let ca_ref = "caCertificateRefs: [{group: '', kind: ConfigMap, name: client-ca}]";
    let policies = [
        policy("strict", &format!("{{clientValidation: {{{ca_ref}}}}}")),
        policy(
            "lenient",
            &format!("{{clientValidation: {{{ca_ref}, allowExpiredCertificate: true}}}}"),
        ),
        policy(
            "upn",
            &format!(
                "{{clientValidation: {{{ca_ref}, subjectAltNames: {{otherNames: [{{oid: '{UPN}', type: Suffix, value: '@corp.example'}}]}}}}}}"
            ),
        ),
    ];
    let _gateway = listeners
        .start(&dir, &server, &client_ca, "", &policies)
        .await;
    let get = |cert: &str, key: &str, name: &str| {
        let args: Vec<String> = vec![
            "-k".into(),
            "--cert".into(),
            cert.into(),
            "--key".into(),
            key.into(),
            format!("https://127.0.0.1:{}/", port(name)),
        ];
        async move {
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            curl(&args).await.0
        }
    };
    let (alice_cert, alice_key) = (alice_cert.to_str().unwrap(), alice_key.to_str().unwrap());

    // An expired certificate from the trusted CA: refused, unless the policy allows expiry.
    assert_eq!(get(alice_cert, alice_key, "strict").await, 200);
    assert_eq!(get(&old_cert, &old_key, "strict").await, 0, "expired");
    assert_eq!(get(&old_cert, &old_key, "lenient").await, 200);
    assert_eq!(get(alice_cert, alice_key, "lenient").await, 200);
    // Expiry is all that is forgiven: an untrusted certificate still fails.
    let (stranger_cert, stranger_key) = {
        openssl_certificate(&dir, "stranger", &["stranger"], false);
        (
            dir.join("stranger-cert.pem").display().to_string(),
            dir.join("stranger-key.pem").display().to_string(),
        )
    };
    assert_eq!(get(&stranger_cert, &stranger_key, "lenient").await, 0);

    // otherNames: a UPN ending in @corp.example passes; another UPN, or none, does not.
    assert_eq!(get(&carol_cert, &carol_key, "upn").await, 200);
    assert_eq!(get(&dave_cert, &dave_key, "upn").await, 0);
    assert_eq!(get(alice_cert, alice_key, "upn").await, 0);
}

/// Whether an `openssl s_client` handshake with `args` on `port` completes; and the
/// signature type the server used, as openssl reports it.
fn openssl_handshake(port: u16, args: &[&str]) -> (bool, String) {
    let output = std::process::Command::new("sh")
        .arg("-c")
        .arg(format!(
            "printf 'GET / HTTP/1.1\\r\\nHost: gw.example\\r\\nConnection: close\\r\\n\\r\\n' | \
             timeout 10 openssl s_client -connect 127.0.0.1:{port} -servername gw.example \
             -ign_eof {} 2>&1",
            args.join(" ")
        ))
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&output.stdout).into_owned();
    let answered = text.contains("HTTP/1.1 200");
    let signature = text
        .lines()
        .find_map(|line| line.strip_prefix("Peer signature type: "))
        .unwrap_or_default()
        .to_owned();
    (answered, signature)
}

#[tokio::test(flavor = "multi_thread")]
async fn signature_algorithms_limit_what_the_listener_signs_and_accepts() {
    let listeners = TlsListeners::new(&["default", "pss256", "mtls-rsa", "mtls-both"]);
    let port = |name: &str| listeners.port(name);
    let dir = scratch("client-tls-sigalgs");
    let clients = dir.join("clients");
    std::fs::create_dir_all(&clients).unwrap();
    let (client_ca, alice_cert, alice_key) = openssl_client_ca_and_leaf(&clients, "alice");
    // An RSA listener key: it can sign with PKCS#1 and PSS schemes.
    let server = openssl_certificate(&dir, "gw", &["gw.example"], true);
    let ca_ref = "caCertificateRefs: [{group: '', kind: ConfigMap, name: client-ca}]";
    let policies = [
        policy("pss256", "{signatureAlgorithms: [rsa_pss_rsae_sha256]}"),
        policy(
            "mtls-rsa",
            &format!(
                "{{signatureAlgorithms: [rsa_pss_rsae_sha256], clientValidation: {{{ca_ref}}}}}"
            ),
        ),
        policy(
            "mtls-both",
            &format!(
                "{{signatureAlgorithms: [rsa_pss_rsae_sha256, ecdsa_secp256r1_sha256], clientValidation: {{{ca_ref}}}}}"
            ),
        ),
    ];
    let _gateway = listeners
        .start(&dir, &server, &client_ca, "", &policies)
        .await;

    // Without a policy the key signs with what the client offers; with one, only the listed
    // schemes: a client offering none of them gets no handshake.
    let sha384 = ["-tls1_3", "-sigalgs", "rsa_pss_rsae_sha384"];
    let (answered, signature) = openssl_handshake(port("default"), &sha384);
    assert!(answered, "the default signs with rsa_pss_rsae_sha384");
    assert!(signature.contains("RSA-PSS"), "{signature}");
    assert!(!openssl_handshake(port("pss256"), &sha384).0);
    let both = [
        "-tls1_3",
        "-sigalgs",
        "rsa_pss_rsae_sha384:rsa_pss_rsae_sha256",
    ];
    assert!(openssl_handshake(port("pss256"), &both).0);
    let pkcs1 = ["-tls1_2", "-sigalgs", "RSA+SHA256"];
    assert!(openssl_handshake(port("default"), &pkcs1).0);
    assert!(
        !openssl_handshake(port("pss256"), &pkcs1).0,
        "PKCS#1 is not listed"
    );

    // Client certificates: alice's key is ECDSA P-256, so it signs only where that scheme is
    // listed.
    let (cert, key) = (alice_cert.to_str().unwrap(), alice_key.to_str().unwrap());
    let alice = ["-tls1_3", "-cert", cert, "-key", key];
    assert!(openssl_handshake(port("mtls-both"), &alice).0);
    assert!(
        !openssl_handshake(port("mtls-rsa"), &alice).0,
        "ecdsa_secp256r1_sha256 is not accepted"
    );
}
