//! Certificates made by the openssl CLI, TLS backends (openssl s_server, a rustls echo).

use std::path::{Path, PathBuf};
use std::process::Stdio;

use examples_support::echo::EchoIdentity;
use tokio::net::TcpListener;
use tokio::process::{Child, Command};

use super::wait_until;

/// A self-signed certificate for `names` made by the openssl CLI; returns (cert PEM, key PEM).
/// `rsa_pkcs1` makes an RSA key in PKCS#1 form, otherwise a P-256 key in PKCS#8.
pub fn openssl_certificate(
    dir: &Path,
    stem: &str,
    names: &[&str],
    rsa_pkcs1: bool,
) -> (String, String) {
    let (cert, key) = (
        dir.join(format!("{stem}-cert.pem")),
        dir.join(format!("{stem}-key.pem")),
    );
    let san = names
        .iter()
        .map(|n| format!("DNS:{n}"))
        .collect::<Vec<_>>()
        .join(",");
    let mut command = std::process::Command::new("openssl");
    command.args([
        "req",
        "-x509",
        "-nodes",
        "-days",
        "2",
        "-subj",
        &format!("/CN={}", names[0]),
    ]);
    command.args(["-addext", &format!("subjectAltName={san}")]);
    if rsa_pkcs1 {
        command.args(["-newkey", "rsa:2048"]);
    } else {
        command.args(["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256"]);
    }
    let status = command
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .output()
        .expect("openssl (scripts/install-test-deps)");
    assert!(
        status.status.success(),
        "{}",
        String::from_utf8_lossy(&status.stderr)
    );
    if rsa_pkcs1 {
        let converted = std::process::Command::new("openssl")
            .args(["rsa", "-traditional", "-in"])
            .arg(&key)
            .arg("-out")
            .arg(&key)
            .output()
            .unwrap();
        assert!(converted.status.success());
    }
    let key_pem = std::fs::read_to_string(&key).unwrap();
    assert_eq!(
        key_pem.starts_with("-----BEGIN RSA PRIVATE KEY-----"),
        rsa_pkcs1
    );
    (std::fs::read_to_string(&cert).unwrap(), key_pem)
}

pub fn tls_secret(name: &str, (cert, key): &(String, String)) -> String {
    use base64::Engine as _;
    let encode = |text: &str| base64::engine::general_purpose::STANDARD.encode(text);
    format!(
        "apiVersion: v1\nkind: Secret\nmetadata: {{name: {name}}}\ntype: kubernetes.io/tls\n\
         data:\n  tls.crt: {}\n  tls.key: {}\n---\n",
        encode(cert),
        encode(key)
    )
}

/// A ConfigMap `name` whose `ca.crt` is the PEM file `ca`.
pub fn ca_config_map(name: &str, ca: &Path) -> String {
    let indented: String = std::fs::read_to_string(ca)
        .unwrap()
        .lines()
        .map(|l| format!("    {l}\n"))
        .collect();
    format!(
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: {name}}}\ndata:\n  ca.crt: |\n{indented}---\n"
    )
}

/// An `openssl s_server -www` on 127.0.0.1:`port` with the certificate `stem` in `dir`.
pub async fn openssl_server(dir: &Path, stem: &str, port: u16) -> Child {
    let child = Command::new("openssl")
        .args(["s_server", "-www", "-accept", &format!("127.0.0.1:{port}")])
        .arg("-cert")
        .arg(dir.join(format!("{stem}-cert.pem")))
        .arg("-key")
        .arg(dir.join(format!("{stem}-key.pem")))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    wait_until("openssl s_server", || async {
        tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_ok()
    })
    .await;
    child
}

/// The URI SAN [`openssl_ca_and_leaf`] puts into the leaf besides its DNS name.
pub const LEAF_URI_SAN: &str = "spiffe://cluster.local/ns/default/sa/backend";

/// A CA and a server certificate it signed for `name` (and [`LEAF_URI_SAN`]), made by the
/// openssl CLI: returns the paths (ca cert, leaf cert, leaf key).
pub fn openssl_ca_and_leaf(dir: &Path, name: &str) -> (PathBuf, PathBuf, PathBuf) {
    ca_and_leaf(dir, name, "serverAuth")
}

/// [`openssl_ca_and_leaf`] for a client certificate (extended key usage `clientAuth`).
pub fn openssl_client_ca_and_leaf(dir: &Path, name: &str) -> (PathBuf, PathBuf, PathBuf) {
    ca_and_leaf(dir, name, "clientAuth")
}

fn ca_and_leaf(dir: &Path, name: &str, usage: &str) -> (PathBuf, PathBuf, PathBuf) {
    openssl_in(
        dir,
        &[
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-days",
            "2",
            "-subj",
            "/CN=test backend CA",
            "-keyout",
            "ca-key.pem",
            "-out",
            "ca-cert.pem",
        ],
    );
    let (cert, key) = openssl_leaf(
        dir,
        "leaf",
        name,
        &format!(
            "subjectAltName=DNS:{name},URI:{LEAF_URI_SAN}\nbasicConstraints=CA:FALSE\nkeyUsage=digitalSignature\nextendedKeyUsage={usage}\n"
        ),
    );
    (dir.join("ca-cert.pem"), cert, key)
}

/// Runs openssl in `dir` with `args`; panics with its error output when it fails.
pub fn openssl_in(dir: &Path, args: &[&str]) {
    let output = std::process::Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}

/// A new P-256 key `key` and a request `csr` for the subject `CN=cn`, in `dir`.
pub fn openssl_ec_request(dir: &Path, cn: &str, key: &str, csr: &str) {
    openssl_in(
        dir,
        &[
            "req",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-subj",
            &format!("/CN={cn}"),
            "-keyout",
            key,
            "-out",
            csr,
        ],
    );
}

/// A certificate `{stem}-cert.pem` for `CN=cn` with the extensions `extensions`, and its key
/// `{stem}-key.pem`, signed by the CA in `dir` (`ca-cert.pem`, `ca-key.pem`).
pub fn openssl_leaf(dir: &Path, stem: &str, cn: &str, extensions: &str) -> (PathBuf, PathBuf) {
    let (cert, key, csr, ext) = (
        format!("{stem}-cert.pem"),
        format!("{stem}-key.pem"),
        format!("{stem}.csr"),
        format!("{stem}.ext"),
    );
    openssl_ec_request(dir, cn, &key, &csr);
    std::fs::write(dir.join(&ext), extensions).unwrap();
    openssl_in(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            &csr,
            "-CA",
            "ca-cert.pem",
            "-CAkey",
            "ca-key.pem",
            "-CAcreateserial",
            "-days",
            "2",
            "-extfile",
            &ext,
            "-out",
            &cert,
        ],
    );
    (dir.join(cert), dir.join(key))
}

/// The certificate chain and key in PEM files `cert` and `key`.
fn chain_and_key(
    cert: &Path,
    key: &Path,
) -> (
    Vec<rustls::pki_types::CertificateDer<'static>>,
    rustls::pki_types::PrivateKeyDer<'static>,
) {
    use rustls::pki_types::pem::PemObject;
    let chain = rustls::pki_types::CertificateDer::pem_file_iter(cert)
        .unwrap()
        .map(Result::unwrap)
        .collect();
    (
        chain,
        rustls::pki_types::PrivateKeyDer::from_pem_file(key).unwrap(),
    )
}

/// A rustls server configuration (ring, TLS 1.2 and 1.3, no client authentication) with the
/// PEM `cert` and `key`, offering `alpn`.
pub fn server_config(cert: &Path, key: &Path, alpn: &[&[u8]]) -> rustls::ServerConfig {
    let (chain, key) = chain_and_key(cert, key);
    let mut config = rustls::ServerConfig::builder_with_provider(std::sync::Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(chain, key)
    .unwrap();
    config.alpn_protocols = alpn.iter().map(|protocol| protocol.to_vec()).collect();
    config
}

/// Serves echo connections behind TLS with `config`; `pod` names each connection's pod.
async fn serve_tls_echo(
    config: rustls::ServerConfig,
    pod: fn(&rustls::ServerConnection) -> String,
) -> u16 {
    let acceptor = tokio_rustls::TlsAcceptor::from(std::sync::Arc::new(config));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let Ok(tls) = acceptor.accept(stream).await else {
                    return;
                };
                let identity = EchoIdentity {
                    namespace: "default".into(),
                    pod: pod(tls.get_ref().1),
                };
                examples_support::echo::serve_echo_connection(tls, std::sync::Arc::new(identity))
                    .await;
            });
        }
    });
    port
}

/// An echo backend behind TLS (rustls, ALPN `h2` and `http/1.1`) that reports the SNI it
/// received as its pod name.
pub async fn tls_echo(cert: &Path, key: &Path) -> u16 {
    let config = server_config(cert, key, &[b"h2", b"http/1.1"]);
    serve_tls_echo(config, |tls| {
        format!("sni={}", tls.server_name().unwrap_or("none"))
    })
    .await
}

/// An echo backend behind TLS (rustls, TLS 1.2 and 1.3) that reports the version it
/// negotiated as its pod name (`version=TLSv1_3`).
pub async fn tls_version_echo(cert: &Path, key: &Path) -> u16 {
    let config = server_config(cert, key, &[]);
    serve_tls_echo(config, |tls| {
        format!("version={:?}", tls.protocol_version().unwrap())
    })
    .await
}

/// An echo backend behind TLS (rustls: TLS 1.2 and 1.3, ALPN `h2` and `http/1.1`) that
/// reports what its handshake negotiated as its pod name:
/// `cipher=TLS13_AES_256_GCM_SHA384 group=X25519 alpn=http/1.1`.
pub async fn tls_handshake_echo(cert: &Path, key: &Path) -> u16 {
    let config = server_config(cert, key, &[b"h2", b"http/1.1"]);
    serve_tls_echo(config, |tls| {
        let alpn = tls
            .alpn_protocol()
            .map_or("none".into(), |p| String::from_utf8_lossy(p).into_owned());
        format!(
            "cipher={:?} group={:?} alpn={alpn}",
            tls.negotiated_cipher_suite().unwrap().suite(),
            tls.negotiated_key_exchange_group().unwrap().name(),
        )
    })
    .await
}

/// An echo backend behind TLS that requires a client certificate chaining to `client_ca`; it
/// reports how many certificates the client presented as its pod name (`client-certs=N`).
pub async fn mtls_echo(cert: &Path, key: &Path, client_ca: &Path) -> u16 {
    use rustls::pki_types::pem::PemObject;
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    let (chain, key) = chain_and_key(cert, key);
    let mut roots = rustls::RootCertStore::empty();
    for ca in rustls::pki_types::CertificateDer::pem_file_iter(client_ca).unwrap() {
        roots.add(ca.unwrap()).unwrap();
    }
    let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
        std::sync::Arc::new(roots),
        std::sync::Arc::clone(&provider),
    )
    .build()
    .unwrap();
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_client_cert_verifier(verifier)
        .with_single_cert(chain, key)
        .unwrap();
    serve_tls_echo(config, |tls| {
        format!(
            "client-certs={}",
            tls.peer_certificates().map_or(0, <[_]>::len)
        )
    })
    .await
}

/// What `openssl s_client` prints for `request` sent to `127.0.0.1:port` with SNI
/// `server_name`, its ClientHello spread over 512-byte records by a long ALPN list (30
/// made-up protocols, then `extra_alpn`) and `args` added; `-ign_eof`, stderr dropped.
pub fn fragmented_s_client(
    port: u16,
    server_name: &str,
    extra_alpn: &[&str],
    args: &[&str],
    request: &[u8],
) -> String {
    let mut alpn: Vec<String> = (0..30)
        .map(|n| format!("proto-{n:03}-{}", "x".repeat(40)))
        .collect();
    alpn.extend(extra_alpn.iter().map(|p| (*p).to_owned()));
    let mut child = std::process::Command::new("timeout")
        .args(["10", "openssl", "s_client", "-connect"])
        .arg(format!("127.0.0.1:{port}"))
        .args([
            "-servername",
            server_name,
            "-max_send_frag",
            "512",
            "-ign_eof",
        ])
        .args(["-alpn", &alpn.join(",")])
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("openssl is installed");
    if let Some(mut stdin) = child.stdin.take() {
        std::io::Write::write_all(&mut stdin, request).unwrap();
    }
    let output = child.wait_with_output().unwrap();
    String::from_utf8_lossy(&output.stdout).into_owned()
}
