//! ClientTrafficPolicy `headers.xForwardedClientCert`: what a listener does with the
//! `X-Forwarded-Client-Cert` header (Envoy's `forward_client_cert_details`). A client without
//! a verified TLS certificate never passes the header on, except in `AlwaysForwardOnly`:
//!
//! | mode | mTLS client | other client |
//! | --- | --- | --- |
//! | `Sanitize` (default) | removed | removed |
//! | `ForwardOnly` | forwarded as received | removed |
//! | `AppendForward` | this client's element appended | removed |
//! | `SanitizeSet` | replaced by this client's element | removed |
//! | `AlwaysForwardOnly` | forwarded as received | forwarded as received |
//!
//! An element is `By=<the listener certificate's URI SAN>;Hash=<hex SHA-256 of the client's
//! certificate>` and, as `certDetailsToAdd` asks, `Cert="<URL-encoded PEM>"`,
//! `Chain="<URL-encoded PEM chain>"`, `Subject="<RFC 2253 DN>"`, `URI=<SAN>` and `DNS=<SAN>`
//! (one per name). The runtime describes the client's certificate once per connection as
//! [`ClientCertDetails`], a request extension.

use http::HeaderValue;
use http::header::{HeaderMap, HeaderName};
use serde::{Deserialize, Serialize};

/// The header.
pub const X_FORWARDED_CLIENT_CERT: HeaderName = HeaderName::from_static("x-forwarded-client-cert");

/// `headers.xForwardedClientCert`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct XfccSpec {
    /// `Sanitize` (default), `ForwardOnly`, `AppendForward`, `SanitizeSet` or
    /// `AlwaysForwardOnly`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<String>,
    /// `Subject`, `Cert`, `Chain`, `DNS`, `URI` (only with `AppendForward` or `SanitizeSet`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub cert_details_to_add: Vec<String>,
}

/// The mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum XfccMode {
    /// Always removed.
    #[default]
    Sanitize,
    /// Forwarded from mTLS clients.
    ForwardOnly,
    /// Extended by mTLS clients' elements.
    AppendForward,
    /// Replaced by mTLS clients' elements.
    SanitizeSet,
    /// Always forwarded.
    AlwaysForwardOnly,
}

/// What an element carries beyond `By` and `Hash`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct CertDetails {
    /// `Subject`.
    pub subject: bool,
    /// `Cert`.
    pub cert: bool,
    /// `Chain`.
    pub chain: bool,
    /// `DNS`.
    pub dns: bool,
    /// `URI`.
    pub uri: bool,
}

/// Compiled `headers.xForwardedClientCert`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Xfcc {
    /// The mode.
    pub mode: XfccMode,
    /// The details added.
    pub details: CertDetails,
}

impl XfccSpec {
    /// Compiles the spec (errors name the field under `spec.headers.xForwardedClientCert`).
    pub fn compile(&self) -> Result<Xfcc, String> {
        let mode = match self.mode.as_deref().unwrap_or("Sanitize") {
            "Sanitize" => XfccMode::Sanitize,
            "ForwardOnly" => XfccMode::ForwardOnly,
            "AppendForward" => XfccMode::AppendForward,
            "SanitizeSet" => XfccMode::SanitizeSet,
            "AlwaysForwardOnly" => XfccMode::AlwaysForwardOnly,
            other => return Err(format!("mode: unsupported value {other:?}")),
        };
        if !self.cert_details_to_add.is_empty()
            && !matches!(mode, XfccMode::AppendForward | XfccMode::SanitizeSet)
        {
            return Err("certDetailsToAdd: only with mode AppendForward or SanitizeSet".to_owned());
        }
        let mut details = CertDetails::default();
        for detail in &self.cert_details_to_add {
            match detail.as_str() {
                "Subject" => details.subject = true,
                "Cert" => details.cert = true,
                "Chain" => details.chain = true,
                "DNS" => details.dns = true,
                "URI" => details.uri = true,
                other => return Err(format!("certDetailsToAdd: unsupported value {other:?}")),
            }
        }
        Ok(Xfcc { mode, details })
    }
}

/// A verified client certificate, described once per connection by the runtime.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClientCertDetails {
    /// The URI SAN of the certificate the listener presented (`By`), if it has one.
    pub by: Option<String>,
    /// Hex SHA-256 of the client's certificate (DER).
    pub hash: String,
    /// The subject, RFC 2253.
    pub subject: String,
    /// The client's certificate, PEM.
    pub cert_pem: String,
    /// The client's chain (its certificate first), PEM.
    pub chain_pem: String,
    /// DNS SANs.
    pub dns: Vec<String>,
    /// URI SANs.
    pub uris: Vec<String>,
}

impl ClientCertDetails {
    /// The details of a client whose chain (its certificate first, DER) is `chain`, with the
    /// certificate's `subject` (RFC 2253) and SANs already read, for a listener whose
    /// certificate's URI SAN is `by`; `None` without a certificate.
    pub fn new(
        chain: &[&[u8]],
        subject: String,
        dns: Vec<String>,
        uris: Vec<String>,
        by: Option<String>,
    ) -> Option<Self> {
        let leaf = chain.first()?;
        let digest = ring::digest::digest(&ring::digest::SHA256, leaf);
        let hash = digest.as_ref().iter().map(|b| format!("{b:02x}")).collect();
        Some(ClientCertDetails {
            by,
            hash,
            subject,
            cert_pem: pem(leaf),
            chain_pem: chain.iter().map(|der| pem(der)).collect(),
            dns,
            uris,
        })
    }
}

/// `der` as a PEM certificate (64-column base64).
fn pem(der: &[u8]) -> String {
    use base64::Engine;
    let encoded = base64::engine::general_purpose::STANDARD.encode(der);
    let mut out = String::from("-----BEGIN CERTIFICATE-----\n");
    for line in encoded.as_bytes().chunks(64) {
        out.push_str(&String::from_utf8_lossy(line));
        out.push('\n');
    }
    out.push_str("-----END CERTIFICATE-----\n");
    out
}

impl Xfcc {
    /// Whether the runtime must tell this setting which clients presented a certificate.
    pub fn needs_client(&self) -> bool {
        matches!(
            self.mode,
            XfccMode::ForwardOnly | XfccMode::AppendForward | XfccMode::SanitizeSet
        )
    }

    /// Applies the setting to a request's `headers`; `client` describes the client's verified
    /// certificate (`None`: not an mTLS client). An element that is not a valid header value
    /// (it cannot be: every part is escaped) leaves the header removed.
    pub fn apply(&self, headers: &mut HeaderMap, client: Option<&ClientCertDetails>) {
        let keep = match (self.mode, client) {
            (XfccMode::AlwaysForwardOnly, _) | (XfccMode::ForwardOnly, Some(_)) => true,
            (XfccMode::AppendForward, Some(client)) => {
                let element = self.element(client);
                let joined = match headers.get(&X_FORWARDED_CLIENT_CERT) {
                    Some(existing) if !existing.is_empty() => {
                        let mut joined = existing.as_bytes().to_vec();
                        joined.push(b',');
                        joined.extend_from_slice(element.as_bytes());
                        HeaderValue::from_bytes(&joined).ok()
                    }
                    _ => HeaderValue::try_from(element).ok(),
                };
                headers.remove(&X_FORWARDED_CLIENT_CERT);
                if let Some(value) = joined {
                    headers.insert(X_FORWARDED_CLIENT_CERT, value);
                }
                return;
            }
            (XfccMode::SanitizeSet, Some(client)) => {
                headers.remove(&X_FORWARDED_CLIENT_CERT);
                if let Ok(value) = HeaderValue::try_from(self.element(client)) {
                    headers.insert(X_FORWARDED_CLIENT_CERT, value);
                }
                return;
            }
            _ => false,
        };
        if !keep {
            headers.remove(&X_FORWARDED_CLIENT_CERT);
        }
    }

    /// This client's element.
    pub fn element(&self, client: &ClientCertDetails) -> String {
        let mut parts = Vec::new();
        if let Some(by) = &client.by {
            parts.push(format!("By={}", escape_unquoted(by)));
        }
        parts.push(format!("Hash={}", client.hash));
        if self.details.cert {
            parts.push(format!("Cert=\"{}\"", url_encode(&client.cert_pem)));
        }
        if self.details.chain {
            parts.push(format!("Chain=\"{}\"", url_encode(&client.chain_pem)));
        }
        if self.details.subject {
            parts.push(format!("Subject=\"{}\"", escape_quoted(&client.subject)));
        }
        if self.details.uri {
            parts.extend(
                client
                    .uris
                    .iter()
                    .map(|u| format!("URI={}", escape_unquoted(u))),
            );
        }
        if self.details.dns {
            parts.extend(
                client
                    .dns
                    .iter()
                    .map(|d| format!("DNS={}", escape_unquoted(d))),
            );
        }
        parts.join(";")
    }
}

/// RFC 3986 percent-encoding of everything but unreserved characters (lower-case hex, as
/// Envoy writes PEM into the header).
fn url_encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len() * 5 / 4);
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02x}"));
        }
    }
    out
}

/// A quoted value: `"` and `\` escaped with `\`, other bytes outside printable ASCII
/// percent-encoded.
fn escape_quoted(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        match byte {
            b'"' | b'\\' => {
                out.push('\\');
                out.push(char::from(byte));
            }
            0x20..=0x7e => out.push(char::from(byte)),
            _ => out.push_str(&format!("%{byte:02x}")),
        }
    }
    out
}

/// An unquoted value: the separators `,` `;` `=` `"` and bytes outside printable ASCII
/// percent-encoded.
fn escape_unquoted(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        match byte {
            b',' | b';' | b'"' | b'%' | b' ' => out.push_str(&format!("%{byte:02x}")),
            0x21..=0x7e => out.push(char::from(byte)),
            _ => out.push_str(&format!("%{byte:02x}")),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn alice() -> ClientCertDetails {
        ClientCertDetails {
            by: Some("spiffe://cluster.local/ns/gw/sa/gateway".into()),
            hash: "ab".repeat(32),
            subject: "CN=alice,O=Shop, Inc.".into(),
            cert_pem: "-----BEGIN CERTIFICATE-----\nMII+/=\n-----END CERTIFICATE-----\n".into(),
            chain_pem: String::new(),
            dns: vec!["alice.example".into()],
            uris: vec!["spiffe://cluster.local/ns/shop/sa/alice".into()],
        }
    }

    fn compile(yaml: &str) -> Result<Xfcc, String> {
        serde_yaml_ng::from_str::<XfccSpec>(yaml)
            .map_err(|e| e.to_string())?
            .compile()
    }

    #[test]
    fn modes_keep_replace_or_extend_the_header_only_for_mtls_clients() {
        let forwarded = HeaderValue::from_static("Hash=00");
        let run = |mode: &str, client: Option<&ClientCertDetails>| {
            let xfcc = compile(&format!("mode: {mode}")).unwrap();
            let mut headers = HeaderMap::new();
            headers.insert(X_FORWARDED_CLIENT_CERT, forwarded.clone());
            xfcc.apply(&mut headers, client);
            headers
                .get(X_FORWARDED_CLIENT_CERT)
                .map(|v| v.to_str().unwrap().to_owned())
        };
        let alice = alice();
        let by = "By=spiffe://cluster.local/ns/gw/sa/gateway";
        let hash = "ab".repeat(32);
        assert_eq!(run("Sanitize", Some(&alice)), None);
        assert_eq!(run("ForwardOnly", Some(&alice)).as_deref(), Some("Hash=00"));
        assert_eq!(run("ForwardOnly", None), None);
        assert_eq!(
            run("AppendForward", Some(&alice)),
            Some(format!("Hash=00,{by};Hash={hash}"))
        );
        assert_eq!(run("AppendForward", None), None);
        assert_eq!(
            run("SanitizeSet", Some(&alice)),
            Some(format!("{by};Hash={hash}"))
        );
        assert_eq!(run("SanitizeSet", None), None);
        assert_eq!(run("AlwaysForwardOnly", None).as_deref(), Some("Hash=00"));
    }

    #[test]
    fn details_are_added_escaped() {
        let xfcc =
            compile("mode: SanitizeSet\ncertDetailsToAdd: [Subject, Cert, URI, DNS]").unwrap();
        let element = xfcc.element(&alice());
        assert!(
            element.contains(";Subject=\"CN=alice,O=Shop, Inc.\""),
            "{element}"
        );
        assert!(
            element.contains(";Cert=\"-----BEGIN%20CERTIFICATE-----%0aMII%2b%2f%3d%0a-----END%20CERTIFICATE-----%0a\""),
            "{element}"
        );
        assert!(
            element.ends_with(";URI=spiffe://cluster.local/ns/shop/sa/alice;DNS=alice.example"),
            "{element}"
        );
        assert!(HeaderValue::try_from(element).is_ok());
        for (yaml, expected) in [
            ("mode: Sometimes", "mode: unsupported"),
            (
                "mode: ForwardOnly\ncertDetailsToAdd: [Cert]",
                "only with mode",
            ),
            (
                "mode: SanitizeSet\ncertDetailsToAdd: [Serial]",
                "unsupported value",
            ),
        ] {
            let error = compile(yaml).unwrap_err();
            assert!(error.contains(expected), "{yaml}: {error}");
        }
    }
}
