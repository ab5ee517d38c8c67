//! JA3 and JA4 fingerprints of a TLS client (ClientTrafficPolicy `tls.fingerprints`,
//! policy.md §1.5), computed from its ClientHello as Envoy's TLS inspector does: JA3 is the
//! MD5 of `version,ciphers,extensions,groups,point formats` (decimal, in the client's order,
//! GREASE left out); JA4 (FoxIO, TLS over TCP) is `t` + version + SNI flag + counts + ALPN,
//! then the truncated SHA-256 of the sorted cipher suites, then that of the sorted extensions
//! (without SNI and ALPN) and the signature algorithms in order.
//!
//! ```
//! use mesh_policy::traffic::client_hello::ClientHello;
//! use mesh_policy::traffic::tls_fingerprint::{ja3, ja3_string, ja4};
//!
//! // A bare TLS 1.2 ClientHello: one suite (ECDHE-RSA-AES128-GCM-SHA256), no extensions.
//! let mut record = vec![22, 3, 1, 0, 45, 1, 0, 0, 41, 3, 3];
//! record.extend([0u8; 32]); // random
//! record.extend([0, 0, 2, 0xc0, 0x2f, 1, 0]); // no session id, the suite, null compression
//! let hello = ClientHello::parse(&record).unwrap();
//! assert_eq!(ja3_string(&hello), "771,49199,,,");
//! assert_eq!(ja3(&hello), "5a6f5ba859dd395751805f3064d612b9");
//! // TLS 1.2, no SNI, 1 suite, 0 extensions, no ALPN; then sha256("c02f") cut to 12 digits.
//! assert_eq!(ja4(&hello), "t12i010000_f06271c2b022_000000000000");
//! ```

use std::fmt::Write as _;

use md5::{Digest as _, Md5};

use super::client_hello::{ClientHello, is_grease};

/// Which fingerprints a listener computes (`tls.fingerprints`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct FingerprintKinds {
    /// `JA3`.
    pub ja3: bool,
    /// `JA4`.
    pub ja4: bool,
}

impl FingerprintKinds {
    /// Whether any fingerprint is computed.
    pub fn any(self) -> bool {
        self.ja3 || self.ja4
    }

    /// Both kinds wanted by `self` or `other`.
    pub fn union(self, other: Self) -> Self {
        Self {
            ja3: self.ja3 || other.ja3,
            ja4: self.ja4 || other.ja4,
        }
    }
}

/// The fingerprints of one TLS connection's client, as the runtime attaches them to each of
/// its requests; read by the `%TLS_JA3_FINGERPRINT%` and `%TLS_JA4_FINGERPRINT%` operators.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct TlsFingerprints {
    /// The JA3 hash (32 lower-case hex digits), when asked for.
    pub ja3: Option<String>,
    /// The JA4 fingerprint, when asked for.
    pub ja4: Option<String>,
}

impl TlsFingerprints {
    /// The fingerprints of `kinds` for `hello`.
    pub fn of(hello: &ClientHello, kinds: FingerprintKinds) -> Self {
        Self {
            ja3: kinds.ja3.then(|| ja3(hello)),
            ja4: kinds.ja4.then(|| ja4(hello)),
        }
    }
}

/// The JA3 string before hashing: `version,ciphers,extensions,groups,point formats`.
pub fn ja3_string(hello: &ClientHello) -> String {
    fn decimal<T: Copy + Into<u32>>(values: &[T], grease: bool) -> String {
        let mut out = String::new();
        for value in values {
            let wide: u32 = (*value).into();
            if grease && u16::try_from(wide).is_ok_and(is_grease) {
                continue;
            }
            if !out.is_empty() {
                out.push('-');
            }
            let _ = write!(out, "{wide}");
        }
        out
    }
    format!(
        "{},{},{},{},{}",
        hello.legacy_version,
        decimal(&hello.cipher_suites, true),
        decimal(&hello.extensions, true),
        decimal(&hello.supported_groups, true),
        decimal(&hello.point_formats, false),
    )
}

/// The JA3 fingerprint: the MD5 of [`ja3_string`] in lower-case hex.
pub fn ja3(hello: &ClientHello) -> String {
    hex(&Md5::digest(ja3_string(hello).as_bytes()))
}

/// The JA4 fingerprint of a client over TCP, e.g. `t13d1516h2_8daaf6152771_e5627efa2ab1`.
pub fn ja4(hello: &ClientHello) -> String {
    let ciphers: Vec<u16> = without_grease(&hello.cipher_suites);
    let extensions: Vec<u16> = without_grease(&hello.extensions);
    let version = hello
        .supported_versions
        .iter()
        .copied()
        .filter(|v| !is_grease(*v))
        .max()
        .unwrap_or(hello.legacy_version);
    let sni = if hello.extensions.contains(&0x0000) {
        'd'
    } else {
        'i'
    };
    let head = format!(
        "t{}{sni}{:02}{:02}{}",
        version_code(version),
        ciphers.len().min(99),
        extensions.len().min(99),
        alpn_code(hello.first_alpn.as_deref()),
    );
    let mut sorted_ciphers = ciphers;
    sorted_ciphers.sort_unstable();
    let mut sorted_extensions: Vec<u16> = extensions
        .into_iter()
        .filter(|kind| *kind != 0x0000 && *kind != 0x0010)
        .collect();
    sorted_extensions.sort_unstable();
    let cipher_hash = truncated_sha256(&hex_list(&sorted_ciphers), sorted_ciphers.is_empty());
    let mut extension_text = hex_list(&sorted_extensions);
    let algorithms = without_grease(&hello.signature_algorithms);
    if !algorithms.is_empty() {
        extension_text.push('_');
        extension_text.push_str(&hex_list(&algorithms));
    }
    let extension_hash = truncated_sha256(&extension_text, sorted_extensions.is_empty());
    format!("{head}_{cipher_hash}_{extension_hash}")
}

fn without_grease(values: &[u16]) -> Vec<u16> {
    values.iter().copied().filter(|v| !is_grease(*v)).collect()
}

/// JA4's two characters for a protocol version.
fn version_code(version: u16) -> &'static str {
    match version {
        0x0304 => "13",
        0x0303 => "12",
        0x0302 => "11",
        0x0301 => "10",
        0x0300 => "s3",
        0x0002 => "s2",
        0xfeff => "d1",
        0xfefd => "d2",
        0xfefc => "d3",
        _ => "00",
    }
}

/// JA4's two characters for the first ALPN protocol: its first and last characters when both
/// are ASCII alphanumerics, else the first and last digits of its hex form; `00` without one.
fn alpn_code(alpn: Option<&[u8]>) -> String {
    let Some((first, last)) = alpn.and_then(|value| Some((*value.first()?, *value.last()?))) else {
        return "00".into();
    };
    if first.is_ascii_alphanumeric() && last.is_ascii_alphanumeric() {
        return format!("{}{}", char::from(first), char::from(last));
    }
    let first_hex = hex(&[first]);
    let last_hex = hex(&[last]);
    format!("{}{}", &first_hex[..1], &last_hex[1..])
}

/// Values as 4-digit lower-case hex, comma-separated.
fn hex_list(values: &[u16]) -> String {
    let mut out = String::with_capacity(values.len() * 5);
    for value in values {
        if !out.is_empty() {
            out.push(',');
        }
        let _ = write!(out, "{value:04x}");
    }
    out
}

/// The first 12 hex digits of the SHA-256 of `text`; twelve zeros when the list was empty.
fn truncated_sha256(text: &str, empty: bool) -> String {
    if empty {
        return "000000000000".into();
    }
    let digest = ring::digest::digest(&ring::digest::SHA256, text.as_bytes());
    let mut out = hex(digest.as_ref());
    out.truncate(12);
    out
}

fn hex(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len() * 2);
    for byte in bytes {
        let _ = write!(out, "{byte:02x}");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The ClientHello of JA3's published example (salesforce/ja3 README): TLS 1.0 with
    /// its 12 suites, extensions 0, 10, 11, groups 23–25 and uncompressed points.
    fn ja3_example() -> ClientHello {
        ClientHello {
            legacy_version: 769,
            cipher_suites: vec![47, 53, 5, 10, 49161, 49162, 49171, 49172, 50, 56, 19, 4],
            extensions: vec![0, 10, 11],
            server_name: Some("example.com".into()),
            supported_groups: vec![23, 24, 25],
            point_formats: vec![0],
            ..ClientHello::default()
        }
    }

    #[test]
    fn ja3_of_the_published_example() {
        let hello = ja3_example();
        assert_eq!(
            ja3_string(&hello),
            "769,47-53-5-10-49161-49162-49171-49172-50-56-19-4,0-10-11,23-24-25,0"
        );
        assert_eq!(ja3(&hello), "ada70206e40642a3e4461f35503241d5");
    }

    #[test]
    fn ja3_leaves_grease_out() {
        let mut hello = ja3_example();
        hello.cipher_suites.insert(0, 0x2a2a);
        hello.extensions.insert(1, 0xbaba);
        hello.supported_groups.insert(0, 0x3a3a);
        assert_eq!(ja3(&hello), "ada70206e40642a3e4461f35503241d5");
    }

    /// A TLS 1.3 client whose JA4_r is published with its JA4 (`t13d1011h2_…`): 10 suites
    /// (one of them the renegotiation SCSV), 11 extensions with SNI and ALPN `h2`.
    fn ja4_example() -> ClientHello {
        ClientHello {
            legacy_version: 0x0303,
            cipher_suites: vec![
                0x1302, 0x1303, 0x1301, 0xc02c, 0xc030, 0xcca9, 0xcca8, 0xc02b, 0xc02f, 0x00ff,
            ],
            extensions: vec![
                0x0000, 0x000b, 0x000a, 0x0023, 0x0010, 0x0005, 0x0017, 0x000d, 0x002b, 0x002d,
                0x0033,
            ],
            server_name: Some("example.com".into()),
            supported_versions: vec![0x0304, 0x0303],
            signature_algorithms: vec![
                0x0503, 0x0403, 0x0807, 0x0806, 0x0805, 0x0804, 0x0601, 0x0501, 0x0401,
            ],
            first_alpn: Some(b"h2".to_vec()),
            ..ClientHello::default()
        }
    }

    #[test]
    fn ja4_of_a_published_example() {
        assert_eq!(ja4(&ja4_example()), "t13d1011h2_61a7ad8aa9b6_3fcd1a44f3e3");
    }

    #[test]
    fn ja4_leaves_grease_out_and_ignores_the_order_of_suites_and_extensions() {
        let mut hello = ja4_example();
        hello.cipher_suites.insert(0, 0x0a0a);
        hello.cipher_suites.reverse();
        hello.extensions.insert(3, 0x1a1a);
        hello.extensions.reverse();
        hello.supported_versions.insert(0, 0x7a7a);
        assert_eq!(ja4(&hello), "t13d1011h2_61a7ad8aa9b6_3fcd1a44f3e3");
    }

    #[test]
    fn ja4_prefix_fields() {
        let mut hello = ja4_example();
        hello.extensions.retain(|kind| *kind != 0x0000);
        hello.supported_versions.clear();
        hello.first_alpn = Some(b"http/1.1".to_vec());
        assert!(ja4(&hello).starts_with("t12i1010h1_"), "{}", ja4(&hello));
        hello.first_alpn = None;
        assert!(ja4(&hello).starts_with("t12i101000_"));
        // Not alphanumeric at either end: first and last hex digits (0x2a = '*', 0x21 = '!').
        hello.first_alpn = Some(b"*x!".to_vec());
        assert!(ja4(&hello).starts_with("t12i101021_"));
        hello.cipher_suites = (1..=120).collect();
        assert!(ja4(&hello).starts_with("t12i9910"));
    }

    #[test]
    fn ja4_empty_lists_hash_to_zeros_and_no_algorithms_means_no_underscore() {
        let hello = ClientHello {
            legacy_version: 0x0303,
            ..ClientHello::default()
        };
        assert_eq!(ja4(&hello), "t12i000000_000000000000_000000000000");
        let mut hello = ja4_example();
        hello.signature_algorithms.clear();
        // The first 12 hex digits of sha256("0005,000a,000b,000d,0017,0023,002b,002d,0033"),
        // with no "_" after the extensions (`sha256sum`).
        assert!(ja4(&hello).ends_with("_d0f89c11dd05"), "{}", ja4(&hello));
    }

    #[test]
    fn fingerprints_of_only_the_kinds_asked_for() {
        let hello = ja4_example();
        let only_ja4 = FingerprintKinds {
            ja3: false,
            ja4: true,
        };
        let prints = TlsFingerprints::of(&hello, only_ja4);
        assert_eq!(prints.ja3, None);
        assert_eq!(prints.ja4.as_deref(), Some(ja4(&hello).as_str()));
        assert!(!FingerprintKinds::default().any());
        assert!(only_ja4.union(FingerprintKinds::default()).ja4);
    }
}
