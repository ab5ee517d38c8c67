//! HBONE TLS and SPIFFE identity checks over real loopback handshakes (hbone spec §1.2–1.3,
//! checklist items 1–4).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use hbone::dev_ca::DevCa;
use hbone::identity::{SpiffeId, identities_from_certificate, peer_identity};
use hbone::tls::{HboneTls, TlsVersions, WorkloadCertificate};
use rustls::pki_types::ServerName;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::{TlsAcceptor, TlsConnector};

fn id(text: &str) -> SpiffeId {
    text.parse().unwrap()
}

fn ring() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

struct Outcome {
    client: Result<String, std::io::Error>,
    server: Result<(), std::io::Error>,
}

/// Handshakes a client and a server over loopback; the client writes "ping" and reads the
/// server's reply (so a TLS 1.3 rejection after the handshake shows up on that read).
async fn exchange(client: rustls::ClientConfig, server: rustls::ServerConfig) -> Outcome {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let acceptor = TlsAcceptor::from(Arc::new(server));
    let server = tokio::spawn(async move {
        let (tcp, _) = listener.accept().await.unwrap();
        let mut tls = acceptor.accept(tcp).await?;
        let mut ping = [0u8; 4];
        tls.read_exact(&mut ping).await?;
        tls.write_all(b"pong").await?;
        tls.shutdown().await
    });
    let connector = TlsConnector::from(Arc::new(client));
    let client = async {
        let tcp = TcpStream::connect(address).await?;
        let mut tls = connector
            .connect(
                ServerName::IpAddress(std::net::IpAddr::from([0u8, 0, 0, 0]).into()),
                tcp,
            )
            .await?;
        tls.write_all(b"ping").await?;
        let mut reply = Vec::new();
        tls.read_to_end(&mut reply).await?;
        let (_, connection) = tls.get_ref();
        Ok(format!(
            "{} {:?} {:?}",
            String::from_utf8_lossy(&reply),
            connection.protocol_version().unwrap(),
            connection.negotiated_cipher_suite().unwrap().suite()
        ))
    }
    .await;
    let server = tokio::time::timeout(Duration::from_secs(5), server)
        .await
        .unwrap()
        .unwrap();
    Outcome { client, server }
}

struct Mesh {
    ca: DevCa,
    tls: HboneTls,
}

impl Mesh {
    fn new() -> Self {
        Self::with_ca_name("cluster.local")
    }

    fn with_ca_name(name: &str) -> Self {
        Mesh {
            ca: DevCa::new(name).unwrap(),
            tls: HboneTls::new(ring()),
        }
    }

    fn workload(&self, identity: &str) -> WorkloadCertificate {
        self.ca.issue(&id(identity)).unwrap().workload
    }
}

const CLIENT: &str = "spiffe://cluster.local/ns/default/sa/client";
const SERVER: &str = "spiffe://cluster.local/ns/default/sa/server";

/// Checklist 1 and 2: a matching identity gives a TLS 1.3 AES-GCM session.
#[tokio::test]
async fn matching_identity_handshakes_with_tls13_aes_gcm() {
    let mesh = Mesh::new();
    let client = mesh
        .tls
        .client_config(&mesh.workload(CLIENT), vec![id(SERVER)])
        .unwrap();
    let server = mesh.tls.server_config(&mesh.workload(SERVER)).unwrap();
    let outcome = exchange(client, server).await;
    outcome.server.unwrap();
    assert_eq!(
        outcome.client.unwrap(),
        "pong TLSv1_3 TLS13_AES_256_GCM_SHA384"
    );
}

/// Checklist 2: list semantics — one match among several expected identities is enough; none
/// is a handshake failure even though the chain is valid.
#[tokio::test]
async fn client_requires_one_of_the_expected_identities() {
    let mesh = Mesh::new();
    let server = || mesh.tls.server_config(&mesh.workload(SERVER)).unwrap();
    let expected_many = vec![id("spiffe://cluster.local/ns/other/sa/x"), id(SERVER)];
    let client = mesh
        .tls
        .client_config(&mesh.workload(CLIENT), expected_many)
        .unwrap();
    assert!(exchange(client, server()).await.client.is_ok());

    let wrong = vec![id("spiffe://cluster.local/ns/default/sa/someone-else")];
    let client = mesh
        .tls
        .client_config(&mesh.workload(CLIENT), wrong)
        .unwrap();
    let error = exchange(client, server()).await.client.unwrap_err();
    assert!(error.to_string().contains("IdentityMismatch"), "{error}");

    // No expectation: any certificate that chains to the roots.
    let client = mesh
        .tls
        .client_config(&mesh.workload(CLIENT), vec![])
        .unwrap();
    assert!(exchange(client, server()).await.client.is_ok());
}

/// Checklist 3: a client of another trust domain completes the TLS 1.3 handshake but gets a
/// `certificate_unknown` alert on its first read; any identity of the trust domain is accepted.
#[tokio::test]
async fn server_requires_its_own_trust_domain() {
    let mesh = Mesh::new();
    let server = || mesh.tls.server_config(&mesh.workload(SERVER)).unwrap();
    let foreign = mesh.workload("spiffe://clusterset.local/ns/default/sa/client");
    let client = mesh.tls.client_config(&foreign, vec![id(SERVER)]).unwrap();
    let outcome = exchange(client, server()).await;
    let error = outcome.client.unwrap_err();
    assert!(error.to_string().contains("CertificateUnknown"), "{error}");
    let server_error = outcome.server.unwrap_err().to_string();
    assert!(
        server_error.contains("ForeignTrustDomain"),
        "{server_error}"
    );

    let any_in_domain = mesh.workload("spiffe://cluster.local/ns/elsewhere/sa/anyone");
    let client = mesh
        .tls
        .client_config(&any_in_domain, vec![id(SERVER)])
        .unwrap();
    assert!(exchange(client, server()).await.client.is_ok());
}

/// Checklist 1: the server requires a client certificate.
#[tokio::test]
async fn server_requires_a_client_certificate() {
    let mesh = Mesh::new();
    let server = mesh.tls.server_config(&mesh.workload(SERVER)).unwrap();
    let mut roots = rustls::RootCertStore::empty();
    roots.add(mesh.ca.root().clone()).unwrap();
    let anonymous = rustls::ClientConfig::builder_with_provider(ring())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    // The server's certificate has no DNS name, so use a verifier-free path: the failure we want
    // is the server's, which arrives as an alert.
    let outcome = exchange(anonymous, server).await;
    assert!(outcome.server.is_err());
    assert!(outcome.client.is_err());
}

/// Checklist 1: TLS 1.2 is refused by default and works when enabled.
#[tokio::test]
async fn tls12_is_opt_in() {
    let mesh = Mesh::new();
    let tls12_only = |tls: &HboneTls| {
        let verifier = hbone::tls::ServerIdentityVerifier::new(
            Arc::new(mesh.workload(CLIENT).root_store().unwrap()),
            vec![id(SERVER)],
            tls.provider().clone(),
        );
        let workload = mesh.workload(CLIENT);
        rustls::ClientConfig::builder_with_provider(tls.provider().clone())
            .with_protocol_versions(&[&rustls::version::TLS12])
            .unwrap()
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(verifier))
            .with_client_auth_cert(workload.chain, workload.key)
            .unwrap()
    };
    let default_tls = mesh.tls.clone();
    let server = default_tls.server_config(&mesh.workload(SERVER)).unwrap();
    let with_12 = HboneTls::with_versions(ring(), TlsVersions::Tls13And12);
    assert!(exchange(tls12_only(&with_12), server).await.client.is_err());

    let server = with_12.server_config(&mesh.workload(SERVER)).unwrap();
    let outcome = exchange(tls12_only(&with_12), server).await;
    let description = outcome.client.unwrap();
    assert!(
        description.starts_with("pong TLSv1_2 TLS_ECDHE_ECDSA_WITH_AES_256_GCM"),
        "{description}"
    );
}

/// Expired certificates are rejected on both sides.
#[tokio::test]
async fn expired_certificates_are_rejected() {
    let mesh = Mesh::new();
    let long_ago = SystemTime::now() - Duration::from_secs(10 * 86_400);
    let expired_server = mesh
        .ca
        .issue_valid_between(&id(SERVER), long_ago, long_ago + Duration::from_secs(3600))
        .unwrap()
        .workload;
    let client = mesh
        .tls
        .client_config(&mesh.workload(CLIENT), vec![id(SERVER)])
        .unwrap();
    let server = mesh.tls.server_config(&expired_server).unwrap();
    let error = exchange(client, server).await.client.unwrap_err();
    assert!(error.to_string().contains("Expired"), "{error}");

    let expired_client = mesh
        .ca
        .issue_valid_between(&id(CLIENT), long_ago, long_ago + Duration::from_secs(3600))
        .unwrap()
        .workload;
    let client = mesh
        .tls
        .client_config(&expired_client, vec![id(SERVER)])
        .unwrap();
    let server = mesh.tls.server_config(&mesh.workload(SERVER)).unwrap();
    assert!(exchange(client, server).await.server.is_err());
}

/// A certificate from another CA is rejected even with the expected identity.
#[tokio::test]
async fn unknown_issuer_is_rejected() {
    let mesh = Mesh::new();
    let rogue = Mesh::with_ca_name("rogue");
    let client = mesh
        .tls
        .client_config(&mesh.workload(CLIENT), vec![id(SERVER)])
        .unwrap();
    let server = mesh.tls.server_config(&rogue.workload(SERVER)).unwrap();
    let error = exchange(client, server).await.client.unwrap_err();
    assert!(error.to_string().contains("UnknownIssuer"), "{error}");
}

/// Checklist 4: identities come from URI SANs only, the first parseable one is the peer's.
#[test]
fn identities_come_from_uri_sans_only() {
    let ca = DevCa::new("cluster.local").unwrap();
    let workload = ca.issue(&id(CLIENT)).unwrap().workload;
    assert_eq!(
        identities_from_certificate(&workload.chain[0]).unwrap(),
        vec![id(CLIENT)]
    );
    assert_eq!(peer_identity(&workload.chain[0]), Some(id(CLIENT)));

    // A certificate whose subject names a SPIFFE ID but has no URI SAN has no identity; a
    // non-SPIFFE URI SAN is skipped.
    let key = rcgen::KeyPair::generate().unwrap();
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, CLIENT);
    params.subject_alt_names = vec![
        rcgen::SanType::DnsName("spiffe.example".try_into().unwrap()),
        rcgen::SanType::URI("https://example.com/x".try_into().unwrap()),
        rcgen::SanType::URI("spiffe://td/ns/a/sa/b/extra".try_into().unwrap()),
    ];
    let no_identity = params.self_signed(&key).unwrap();
    assert_eq!(
        identities_from_certificate(no_identity.der()).unwrap(),
        vec![]
    );
    params
        .subject_alt_names
        .push(rcgen::SanType::URI(SERVER.try_into().unwrap()));
    let later = params.self_signed(&key).unwrap();
    assert_eq!(peer_identity(later.der()), Some(id(SERVER)));
    assert!(
        identities_from_certificate(&rustls::pki_types::CertificateDer::from(vec![1, 2, 3]))
            .is_err()
    );
}

/// The extensions (type, body) and cipher suites of a raw TLS ClientHello record.
fn parse_client_hello(record: &[u8]) -> (Vec<u16>, Vec<(u16, Vec<u8>)>) {
    let u16_at = |at: usize| u16::from_be_bytes([record[at], record[at + 1]]);
    assert_eq!(record[0], 22, "handshake record");
    assert_eq!(record[5], 1, "ClientHello");
    let mut at = 5 + 4 + 2 + 32; // record header, handshake header, version, random
    at += 1 + usize::from(record[at]); // session id
    let suites_len = usize::from(u16_at(at));
    let suites = (0..suites_len / 2)
        .map(|i| u16_at(at + 2 + 2 * i))
        .collect();
    at += 2 + suites_len;
    at += 1 + usize::from(record[at]); // compression methods
    let end = at + 2 + usize::from(u16_at(at));
    at += 2;
    let mut extensions = Vec::new();
    while at < end {
        let (kind, len) = (u16_at(at), usize::from(u16_at(at + 2)));
        extensions.push((kind, record[at + 4..at + 4 + len].to_vec()));
        at += 4 + len;
    }
    (suites, extensions)
}

/// Checklist 1: the client sends no SNI, offers ALPN exactly `h2` and only the AES-GCM TLS 1.3
/// suites, and never tries to resume (no pre_shared_key, no session ticket) — also on a second
/// connection with the same configuration.
#[tokio::test]
async fn client_hello_has_no_sni_no_resumption_and_only_h2_and_aes_gcm() {
    let mesh = Mesh::new();
    let config = Arc::new(
        mesh.tls
            .client_config(&mesh.workload(CLIENT), vec![id(SERVER)])
            .unwrap(),
    );
    for _ in 0..2 {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let connector = TlsConnector::from(config.clone());
        let client = tokio::spawn(async move {
            let tcp = TcpStream::connect(address).await.unwrap();
            let name = ServerName::IpAddress(std::net::IpAddr::from([0u8, 0, 0, 0]).into());
            let _ = connector.connect(name, tcp).await;
        });
        let (mut raw, _) = listener.accept().await.unwrap();
        let mut header = [0u8; 5];
        raw.read_exact(&mut header).await.unwrap();
        let mut record = header.to_vec();
        record.resize(
            5 + usize::from(u16::from_be_bytes([header[3], header[4]])),
            0,
        );
        raw.read_exact(&mut record[5..]).await.unwrap();
        drop(raw);
        client.await.unwrap();

        let (suites, extensions) = parse_client_hello(&record);
        assert_eq!(
            suites,
            [0x1302, 0x1301],
            "TLS13_AES_256_GCM_SHA384, TLS13_AES_128_GCM_SHA256"
        );
        let kinds: Vec<u16> = extensions.iter().map(|(kind, _)| *kind).collect();
        assert!(!kinds.contains(&0x0000), "no server_name: {kinds:?}");
        assert!(!kinds.contains(&0x0029), "no pre_shared_key: {kinds:?}");
        assert!(!kinds.contains(&0x0023), "no session_ticket: {kinds:?}");
        let alpn = &extensions
            .iter()
            .find(|(kind, _)| *kind == 0x0010)
            .unwrap()
            .1;
        assert_eq!(
            alpn,
            &[0, 3, 2, b'h', b'2'],
            "ALPN protocol list is exactly [h2]"
        );
        let versions = &extensions
            .iter()
            .find(|(kind, _)| *kind == 0x002b)
            .unwrap()
            .1;
        assert_eq!(
            versions,
            &[2, 0x03, 0x04],
            "supported_versions is exactly [TLS 1.3]"
        );
    }
}
