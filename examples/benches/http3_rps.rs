//! H3 (issue: traffic policy, ClientTrafficPolicy `http3`): the `gateway` binary's requests
//! per CPU-second over HTTP/3 (QUIC), against the same gateway and listener over HTTP/2 with
//! TLS — in the same run, interleaved. No HTTP/3 baseline proxy is available here (nginx 1.22
//! lacks QUIC, h2load lacks ngtcp2), so the ratio says what QUIC costs the gateway per
//! request next to TCP + TLS.
//!
//! Layout as B7: the gateway pinned to CPU 1 (one worker), the nginx backend and the load on
//! CPU 0 — h2load (16 connections × 10 streams) for HTTP/2, and for HTTP/3 this process
//! itself (quinn + h3, 16 connections × 10 streams). Needs nginx, h2load, openssl and taskset.
//! Run: `cargo bench -p examples --bench http3_rps`; rows are appended to `$BENCH_RESULTS`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

mod bench_support;

use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bench_support::http_load::{
    DURATION_SECS, h2load, h2load_rps, ok_backend, pinned_gateway, wait_for_port,
};
use bench_support::{Row, cpu_seconds, emit, free_port, median, require};
use bytes::Buf;

const ROUNDS: usize = 3;
const CONNECTIONS: usize = 16;
const STREAMS: usize = 10;
const HOST: &str = "bench.example";

/// A self-signed certificate for `HOST` (PEM certificate and key), by the openssl CLI.
fn certificate(dir: &Path) -> (String, String) {
    std::fs::create_dir_all(dir).unwrap();
    let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
    let status = Command::new("openssl")
        .args(["req", "-x509", "-nodes", "-days", "2", "-subj"])
        .arg(format!("/CN={HOST}"))
        .args(["-addext", &format!("subjectAltName=DNS:{HOST}")])
        .args([
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-keyout",
        ])
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .output()
        .unwrap();
    assert!(status.status.success());
    (
        std::fs::read_to_string(cert).unwrap(),
        std::fs::read_to_string(key).unwrap(),
    )
}

fn config(port: u16, backend: u16, (cert, key): &(String, String)) -> String {
    use base64::Engine as _;
    let b64 = |pem: &str| base64::engine::general_purpose::STANDARD.encode(pem);
    format!(
        "apiVersion: gateway.networking.k8s.io/v1\nkind: Gateway\nmetadata: {{name: gw}}\nspec:\n  \
         gatewayClassName: bench\n  addresses: [{{value: 127.0.0.1}}]\n  \
         listeners: [{{name: https, port: {port}, protocol: HTTPS, tls: {{certificateRefs: [{{name: cert}}]}}}}]\n---\n\
         apiVersion: v1\nkind: Secret\nmetadata: {{name: cert}}\ntype: kubernetes.io/tls\n\
         data: {{tls.crt: {}, tls.key: {}}}\n---\n\
         apiVersion: v1\nkind: Service\nmetadata: {{name: backend}}\nspec: {{ports: [{{name: http, port: 80}}]}}\n---\n\
         apiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\n\
         metadata: {{name: backend-1, labels: {{kubernetes.io/service-name: backend}}}}\n\
         endpoints: [{{addresses: [127.0.0.1]}}]\nports: [{{name: http, port: {backend}}}]\n---\n\
         apiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\nmetadata: {{name: main}}\n\
         spec: {{parentRefs: [{{name: gw}}], rules: [{{backendRefs: [{{name: backend, port: 80}}]}}]}}\n---\n\
         apiVersion: gateway.envoyproxy.io/v1alpha1\nkind: ClientTrafficPolicy\nmetadata: {{name: h3}}\n\
         spec: {{targetRefs: [{{group: gateway.networking.k8s.io, kind: Gateway, name: gw}}], http3: {{}}}}\n",
        b64(cert),
        b64(key),
    )
}

/// Requests answered per second over HTTP/2 + TLS by h2load on CPU 0.
fn h2_rps(port: u16) -> f64 {
    let out = h2load(
        &format!("https://{HOST}:{port}/"),
        &["--connect-to", &format!("127.0.0.1:{port}")],
    );
    assert!(out.contains(" 0 failed"), "{out}");
    h2load_rps(&out)
}

/// Accepts any server certificate: the bench trusts its own gateway.
#[derive(Debug)]
struct TrustAny(Arc<rustls::crypto::CryptoProvider>);

impl rustls::client::danger::ServerCertVerifier for TrustAny {
    fn verify_server_cert(
        &self,
        _: &rustls::pki_types::CertificateDer<'_>,
        _: &[rustls::pki_types::CertificateDer<'_>],
        _: &rustls::pki_types::ServerName<'_>,
        _: &[u8],
        _: rustls::pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// A QUIC client endpoint speaking h3.
fn client_endpoint() -> quinn::Endpoint {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut tls = rustls::ClientConfig::builder_with_provider(Arc::clone(&provider))
        .with_protocol_versions(&[&rustls::version::TLS13])
        .unwrap()
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(TrustAny(provider)))
        .with_no_client_auth();
    tls.alpn_protocols = vec![b"h3".to_vec()];
    let quic = quinn::crypto::rustls::QuicClientConfig::try_from(tls).unwrap();
    let mut endpoint = quinn::Endpoint::client("127.0.0.1:0".parse().unwrap()).unwrap();
    endpoint.set_default_client_config(quinn::ClientConfig::new(Arc::new(quic)));
    endpoint
}

/// Requests answered over HTTP/3 by this process: `CONNECTIONS` connections with `STREAMS`
/// requests in flight on each, for `DURATION_SECS`.
async fn h3_requests(endpoint: &quinn::Endpoint, port: u16) -> f64 {
    let address = format!("127.0.0.1:{port}").parse().unwrap();
    let done = Arc::new(AtomicU64::new(0));
    let failed = Arc::new(AtomicU64::new(0));
    let deadline = tokio::time::Instant::now() + Duration::from_secs(DURATION_SECS);
    let mut tasks = Vec::new();
    for _ in 0..CONNECTIONS {
        let connection = endpoint.connect(address, HOST).unwrap().await.unwrap();
        let (mut driver, sender) = h3::client::new(h3_quinn::Connection::new(connection))
            .await
            .unwrap();
        tokio::spawn(async move {
            let _ = std::future::poll_fn(|cx| driver.poll_close(cx)).await;
        });
        for _ in 0..STREAMS {
            let mut sender = sender.clone();
            let (done, failed) = (Arc::clone(&done), Arc::clone(&failed));
            tasks.push(tokio::spawn(async move {
                while tokio::time::Instant::now() < deadline {
                    let request = http::Request::get(format!("https://{HOST}:{port}/"))
                        .body(())
                        .unwrap();
                    let answered = async {
                        let mut stream = sender.send_request(request).await.ok()?;
                        stream.finish().await.ok()?;
                        let response = stream.recv_response().await.ok()?;
                        while let Some(mut chunk) = stream.recv_data().await.ok()? {
                            chunk.advance(chunk.remaining());
                        }
                        Some(response.status())
                    };
                    match answered.await {
                        Some(status) if status == http::StatusCode::OK => {
                            done.fetch_add(1, Ordering::Relaxed);
                        }
                        _ => {
                            failed.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                }
            }));
        }
    }
    for task in tasks {
        task.await.unwrap();
    }
    assert_eq!(failed.load(Ordering::Relaxed), 0, "failed HTTP/3 requests");
    done.load(Ordering::Relaxed) as f64
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    for tool in ["nginx", "h2load", "openssl", "taskset"] {
        require(tool);
    }
    // The HTTP/3 load runs here: on CPU 0, beside nginx and h2load.
    let pinned = Command::new("taskset")
        .args(["-a", "-p", "-c", "0", &std::process::id().to_string()])
        .output()
        .unwrap();
    assert!(pinned.status.success());
    let scratch = std::env::temp_dir().join(format!("http3-rps-{}", std::process::id()));
    let (_backend, backend) = ok_backend(&scratch.join("backend"));
    let port = free_port();
    let certificate = certificate(&scratch.join("tls"));
    let (_gateway, pid) = pinned_gateway(
        &scratch.join("gateway"),
        &config(port, backend, &certificate),
    );
    wait_for_port(backend);
    wait_for_port(port);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let endpoint = runtime.block_on(async { client_endpoint() });
    let (mut h2, mut h3) = (vec![], vec![]);
    // Both protocols really answer before anything is measured.
    assert!(h2_rps(port) > 0.0);
    assert!(runtime.block_on(h3_requests(&endpoint, port)) > 0.0);
    let seconds = DURATION_SECS as f64;
    for _ in 0..ROUNDS {
        let cpu = cpu_seconds(pid);
        let requests = h2_rps(port) * seconds;
        let h2_cpu = cpu_seconds(pid) - cpu;
        h2.push(requests / h2_cpu);
        let cpu = cpu_seconds(pid);
        let h3_requests = runtime.block_on(h3_requests(&endpoint, port));
        let h3_cpu = cpu_seconds(pid) - cpu;
        h3.push(h3_requests / h3_cpu);
        // How busy the gateway was: a load that does not saturate it says so here.
        eprintln!(
            "round: HTTP/2 {:.0} req/s, gateway CPU {:.0} %; HTTP/3 {:.0} req/s, gateway CPU {:.0} %",
            requests / seconds,
            100.0 * h2_cpu / seconds,
            h3_requests / seconds,
            100.0 * h3_cpu / seconds,
        );
    }
    emit(
        "examples",
        vec![Row {
            bench: "H3 16 conns × 10 streams".into(),
            metric: "requests per CPU-second over HTTP/3 (QUIC)",
            ours: median(h3),
            baseline: median(h2),
            baseline_name: "the same gateway over HTTP/2 + TLS (h2load)",
            unit: "req/CPU-s",
            goal: "—",
        }],
    );
}
