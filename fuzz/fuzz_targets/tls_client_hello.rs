//! Fuzzes the ClientHello reader of TLS listeners (the SNI of passthrough listeners, the lists
//! JA3/JA4 fingerprints hash): never a panic, a prefix of an input that yields a name never
//! yields a different name, and fingerprints keep their shapes; and the bare-message reader of
//! HTTP/3 listeners (QUIC's CRYPTO bytes) reads a record's message as the record reader does.
#![no_main]
// A fuzz target reports a violated property by panicking.
#![allow(clippy::panic, clippy::unwrap_used, clippy::expect_used)]

use libfuzzer_sys::fuzz_target;
use mesh_policy::traffic::client_hello::ClientHello;
use mesh_policy::traffic::tls_fingerprint::{ja3, ja4};
use waypoint::inbound::client_hello::{ClientHelloError, server_name};

fuzz_target!(|data: &[u8]| {
    let full: Result<_, ClientHelloError> = server_name(data);
    if let Ok(Some(name)) = &full {
        assert!(name.is_ascii() && !name.is_empty());
        for cut in 0..data.len() {
            if let Ok(Some(other)) = server_name(&data[..cut]) {
                assert_eq!(&other, name);
            }
        }
    }
    // QUIC carries the message without records: the same bytes read bare agree.
    let bare = ClientHello::parse_message(data);
    if let Ok(hello) = &bare {
        assert!(hello.server_name.as_ref().is_none_or(|n| !n.is_empty()));
    }
    if data.len() <= 16 * 1024 {
        let mut record = vec![22, 3, 1];
        record.extend_from_slice(&(data.len() as u16).to_be_bytes());
        record.extend_from_slice(data);
        if let (Ok(bare), Ok(recorded)) = (&bare, ClientHello::parse(&record)) {
            assert_eq!(bare, &recorded);
        }
    }
    if let Ok(hello) = ClientHello::parse(data) {
        let ja3 = ja3(&hello);
        assert!(ja3.len() == 32 && ja3.bytes().all(|b| b.is_ascii_hexdigit()));
        let ja4 = ja4(&hello);
        let parts: Vec<&str> = ja4.split('_').collect();
        assert_eq!(parts.len(), 3, "{ja4}");
        assert_eq!(
            (parts[0].len(), parts[1].len(), parts[2].len()),
            (10, 12, 12),
            "{ja4}"
        );
    }
});
