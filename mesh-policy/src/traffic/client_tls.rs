//! ClientTrafficPolicy `tls` (policy.md §1.5), read from YAML and compiled with the CRD's
//! rules into plain data a TLS stack applies: the versions (this data plane speaks TLS 1.2
//! and 1.3; a `minVersion` below 1.2 serves from 1.2, a `maxVersion` below 1.2 is refused),
//! the TLS 1.2 cipher suites by OpenSSL or IANA name (Envoy's `[a|b]` groups flattened in
//! order), the key-exchange groups, ALPN, session resumption (stateful session ids or
//! stateless tickets; off unless asked for, as in Envoy Gateway), and client certificate
//! validation: the mode, the CA bundles (`ca.crt` of Secrets or ConfigMaps), CRLs (`ca.crl`),
//! and the pins — SHA-256 of the certificate or of its public key, subject alternative names —
//! that [`CertificatePins::admit`] checks against a presented certificate's facts.

use regex::Regex;
use routing::model::{Config, SecretObjectReference};
pub use routing::tls_names::{KxGroup, SignatureAlgorithm, Tls12Cipher};
use routing::tls_names::{
    parse_alpn_protocols, parse_ciphers, parse_kx_groups, parse_signature_algorithms,
};
use serde::{Deserialize, Serialize};

use super::tls_fingerprint::FingerprintKinds;

/// `tls`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ClientTlsSpec {
    /// `Auto`, `1.0`–`1.3` (default 1.2).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_version: Option<String>,
    /// `Auto`, `1.0`–`1.3` (default 1.3).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_version: Option<String>,
    /// TLS 1.2 cipher suites, in preference order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ciphers: Vec<String>,
    /// Key-exchange groups.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ecdh_curves: Vec<String>,
    /// Signature schemes signed with and accepted, in preference order (IANA names).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signature_algorithms: Option<Vec<String>>,
    /// ALPN protocols offered (empty list: no ALPN).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alpn_protocols: Option<Vec<String>>,
    /// Fingerprints computed for each connection (`JA3`, `JA4`), read by the
    /// `%TLS_JA3_FINGERPRINT%` and `%TLS_JA4_FINGERPRINT%` header operators.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub fingerprints: Vec<String>,
    /// Client certificates.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_validation: Option<ClientValidationSpec>,
    /// Session resumption.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session: Option<SessionSpec>,
}

/// `tls.clientValidation`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ClientValidationSpec {
    /// Deprecated: `true` is `VerifyIfGiven`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub optional: Option<bool>,
    /// `Request`, `RequireAny`, `VerifyIfGiven` or `RequireAndVerify` (default).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<String>,
    /// CA bundles (key `ca.crt`), at most 8.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ca_certificate_refs: Vec<SecretObjectReference>,
    /// Base64 SHA-256 digests of accepted public keys (SPKI).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub spki_hashes: Vec<String>,
    /// Hex SHA-256 digests of accepted certificates (DER), colons allowed.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub certificate_hashes: Vec<String>,
    /// Accepted subject alternative names.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject_alt_names: Option<SubjectAltNamesSpec>,
    /// Certificate revocation lists.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub crl: Option<CrlSpec>,
    /// Accept a client certificate (or issuer) past its validity, otherwise verified (only
    /// with `VerifyIfGiven` and `RequireAndVerify`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allow_expired_certificate: Option<bool>,
}

/// `clientValidation.subjectAltNames`: a certificate is accepted if one of its names matches
/// one of these.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SubjectAltNamesSpec {
    /// DNS names.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub dns_names: Vec<StringMatchSpec>,
    /// Email addresses.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub email_addresses: Vec<StringMatchSpec>,
    /// IP addresses (as text).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ip_addresses: Vec<StringMatchSpec>,
    /// URIs (a SPIFFE ID, for instance).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub uris: Vec<StringMatchSpec>,
    /// `otherName` entries, by their type's OID (a UPN, for instance).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub other_names: Vec<OtherNameMatchSpec>,
}

/// `subjectAltNames.otherNames[]`: a `StringMatch` on the `otherName` entries of one type.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct OtherNameMatchSpec {
    /// The dotted OID of the entry's type (`1.3.6.1.4.1.311.20.2.3` for a UPN).
    pub oid: String,
    /// `Exact` (default), `Prefix`, `Suffix` or `RegularExpression`.
    #[serde(default, rename = "type", skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    /// The value.
    pub value: String,
}

/// Envoy Gateway's `StringMatch`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct StringMatchSpec {
    /// `Exact` (default), `Prefix`, `Suffix` or `RegularExpression`.
    #[serde(default, rename = "type", skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    /// The value.
    pub value: String,
}

/// `clientValidation.crl`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CrlSpec {
    /// Secrets or ConfigMaps with a PEM `ca.crl`.
    #[serde(default)]
    pub refs: Vec<SecretObjectReference>,
    /// Check only the client's own certificate, not its issuers.
    #[serde(default)]
    pub only_verify_leaf_certificate: bool,
}

/// `tls.session`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SessionSpec {
    /// How sessions resume.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resumption: Option<ResumptionSpec>,
}

/// `tls.session.resumption`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ResumptionSpec {
    /// Tickets.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stateless: Option<serde_yaml_ng::Mapping>,
    /// Session ids kept by the server.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stateful: Option<serde_yaml_ng::Mapping>,
}

/// A TLS version this data plane speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum TlsVersion {
    /// TLS 1.2.
    Tls12,
    /// TLS 1.3.
    Tls13,
}

/// How client certificates are asked for and checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientCertMode {
    /// Asked for; anything (or nothing) is accepted.
    Request,
    /// Required; any certificate is accepted, trusted or not.
    RequireAny,
    /// Optional; one given must chain to the CAs and pass the pins.
    VerifyIfGiven,
    /// Required; it must chain to the CAs and pass the pins.
    RequireAndVerify,
}

impl ClientCertMode {
    /// Whether a certificate is checked against the CAs and pins.
    pub fn verifies(self) -> bool {
        matches!(
            self,
            ClientCertMode::VerifyIfGiven | ClientCertMode::RequireAndVerify
        )
    }

    /// Whether a client without a certificate is refused.
    pub fn requires(self) -> bool {
        matches!(
            self,
            ClientCertMode::RequireAny | ClientCertMode::RequireAndVerify
        )
    }
}

/// A compiled `StringMatch`.
#[derive(Debug, Clone)]
pub enum NameMatch {
    /// Equal.
    Exact(String),
    /// Starts with.
    Prefix(String),
    /// Ends with.
    Suffix(String),
    /// Wholly matched.
    Regex(Regex),
}

impl PartialEq for NameMatch {
    fn eq(&self, other: &Self) -> bool {
        match (self, other) {
            (NameMatch::Exact(a), NameMatch::Exact(b))
            | (NameMatch::Prefix(a), NameMatch::Prefix(b))
            | (NameMatch::Suffix(a), NameMatch::Suffix(b)) => a == b,
            (NameMatch::Regex(a), NameMatch::Regex(b)) => a.as_str() == b.as_str(),
            _ => false,
        }
    }
}

impl NameMatch {
    /// Whether `name` matches.
    pub fn matches(&self, name: &str) -> bool {
        match self {
            NameMatch::Exact(value) => name == value,
            NameMatch::Prefix(value) => name.starts_with(value.as_str()),
            NameMatch::Suffix(value) => name.ends_with(value.as_str()),
            NameMatch::Regex(regex) => regex.is_match(name),
        }
    }
}

/// What a presented certificate is checked for, beyond its chain.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CertificatePins {
    /// SHA-256 digests of accepted certificates.
    pub certificate_sha256: Vec<[u8; 32]>,
    /// SHA-256 digests of accepted public keys.
    pub spki_sha256: Vec<[u8; 32]>,
    /// Accepted DNS names.
    pub dns_names: Vec<NameMatch>,
    /// Accepted email addresses.
    pub emails: Vec<NameMatch>,
    /// Accepted IP addresses.
    pub ip_addresses: Vec<NameMatch>,
    /// Accepted URIs.
    pub uris: Vec<NameMatch>,
    /// Accepted `otherName` values, by the dotted OID of their type.
    pub other_names: Vec<(String, NameMatch)>,
}

/// What the pins look at in a certificate.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CertificateFacts {
    /// SHA-256 of the certificate's DER.
    pub certificate_sha256: [u8; 32],
    /// SHA-256 of its SubjectPublicKeyInfo's DER.
    pub spki_sha256: [u8; 32],
    /// Its DNS names.
    pub dns_names: Vec<String>,
    /// Its email addresses.
    pub emails: Vec<String>,
    /// Its IP addresses, as text.
    pub ip_addresses: Vec<String>,
    /// Its URIs.
    pub uris: Vec<String>,
    /// Its `otherName` values that are strings, with the dotted OID of their type.
    pub other_names: Vec<(String, String)>,
}

/// A certificate's names, as its subject alternative name extension lists them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CertificateNames {
    /// DNS names.
    pub dns_names: Vec<String>,
    /// Email addresses.
    pub emails: Vec<String>,
    /// IP addresses, as text.
    pub ip_addresses: Vec<String>,
    /// URIs.
    pub uris: Vec<String>,
    /// `otherName` values that are strings, with the dotted OID of their type.
    pub other_names: Vec<(String, String)>,
}

impl CertificateFacts {
    /// The facts of a certificate (`der`) whose SubjectPublicKeyInfo is `spki_der`.
    pub fn new(der: &[u8], spki_der: &[u8], names: CertificateNames) -> Self {
        let sha256 = |bytes: &[u8]| {
            let mut digest = [0u8; 32];
            digest.copy_from_slice(ring::digest::digest(&ring::digest::SHA256, bytes).as_ref());
            digest
        };
        CertificateFacts {
            certificate_sha256: sha256(der),
            spki_sha256: sha256(spki_der),
            dns_names: names.dns_names,
            emails: names.emails,
            ip_addresses: names.ip_addresses,
            uris: names.uris,
            other_names: names.other_names,
        }
    }
}

impl CertificatePins {
    /// Whether there is nothing to check.
    pub fn is_empty(&self) -> bool {
        self.certificate_sha256.is_empty() && self.spki_sha256.is_empty() && self.san_count() == 0
    }

    fn san_count(&self) -> usize {
        self.dns_names.len()
            + self.emails.len()
            + self.ip_addresses.len()
            + self.uris.len()
            + self.other_names.len()
    }

    /// Whether a certificate with `facts` passes, as Envoy checks: with hash pins, its
    /// digest or its key's digest is one of them; with name pins, one of its names of a
    /// pinned kind matches one of that kind's pins.
    pub fn admit(&self, facts: &CertificateFacts) -> bool {
        let hashes = self.certificate_sha256.is_empty() && self.spki_sha256.is_empty()
            || self.certificate_sha256.contains(&facts.certificate_sha256)
            || self.spki_sha256.contains(&facts.spki_sha256);
        let any = |pins: &[NameMatch], names: &[String]| {
            pins.iter()
                .any(|pin| names.iter().any(|name| pin.matches(name)))
        };
        let names = self.san_count() == 0
            || any(&self.dns_names, &facts.dns_names)
            || any(&self.emails, &facts.emails)
            || any(&self.ip_addresses, &facts.ip_addresses)
            || any(&self.uris, &facts.uris)
            || self.other_names.iter().any(|(oid, pin)| {
                facts
                    .other_names
                    .iter()
                    .any(|(kind, value)| kind == oid && pin.matches(value))
            });
        hashes && names
    }
}

/// Compiled `tls.clientValidation`.
#[derive(Debug, Clone, PartialEq)]
pub struct ClientCertValidation {
    /// The mode.
    pub mode: ClientCertMode,
    /// PEM CA certificates a verified certificate must chain to.
    pub roots_pem: Vec<u8>,
    /// PEM CRLs.
    pub crls_pem: Vec<u8>,
    /// Revocation checked for the client's certificate only.
    pub crl_leaf_only: bool,
    /// The pins.
    pub pins: CertificatePins,
    /// Certificates past their validity accepted (`allowExpiredCertificate`).
    pub allow_expired: bool,
}

/// Compiled `tls`.
#[derive(Debug, Clone, PartialEq)]
pub struct ClientTls {
    /// The lowest version served.
    pub min_version: TlsVersion,
    /// The highest version served.
    pub max_version: TlsVersion,
    /// TLS 1.2 suites in preference order (`None`: the defaults).
    pub ciphers: Option<Vec<Tls12Cipher>>,
    /// Key-exchange groups in preference order (`None`: the defaults).
    pub kx_groups: Option<Vec<KxGroup>>,
    /// Signature schemes signed with and accepted, in preference order (`None`: the
    /// defaults).
    pub signature_algorithms: Option<Vec<SignatureAlgorithm>>,
    /// ALPN protocols (`None`: `h2`, `http/1.1`; empty: no ALPN).
    pub alpn: Option<Vec<String>>,
    /// Session ids remembered.
    pub stateful_resumption: bool,
    /// Session tickets issued (the session's state encrypted into the ticket).
    pub stateless_resumption: bool,
    /// Client certificates.
    pub client_validation: Option<ClientCertValidation>,
    /// The fingerprints computed from each ClientHello.
    pub fingerprints: FingerprintKinds,
}

/// `fingerprints`: `JA3` and `JA4`, each at most once.
fn fingerprint_kinds(names: &[String]) -> Result<FingerprintKinds, String> {
    let mut kinds = FingerprintKinds::default();
    for (index, name) in names.iter().enumerate() {
        let seen = match name.as_str() {
            "JA3" => std::mem::replace(&mut kinds.ja3, true),
            "JA4" => std::mem::replace(&mut kinds.ja4, true),
            other => {
                return Err(format!(
                    "fingerprints[{index}]: unsupported value {other:?} (JA3, JA4)"
                ));
            }
        };
        if seen {
            return Err(format!("fingerprints[{index}]: {name} is listed twice"));
        }
    }
    Ok(kinds)
}

impl ClientTlsSpec {
    /// Compiles `tls` of a policy in `namespace` (errors name the field under `spec.tls`).
    pub fn compile(&self, namespace: &str, config: &Config) -> Result<ClientTls, String> {
        let fingerprints = fingerprint_kinds(&self.fingerprints)?;
        let signature_algorithms = self
            .signature_algorithms
            .as_deref()
            .map(parse_signature_algorithms)
            .transpose()?;
        let min = version(self.min_version.as_deref(), "minVersion")?;
        let max = version(self.max_version.as_deref(), "maxVersion")?;
        let min_version = match min {
            Some(v) if v >= 12 => to_version(v),
            _ => TlsVersion::Tls12,
        };
        let max_version = match max {
            None => TlsVersion::Tls13,
            Some(v) if v >= 12 => to_version(v),
            Some(_) => {
                return Err("maxVersion: this data plane speaks TLS 1.2 and 1.3 only".into());
            }
        };
        if let (Some(min), Some(max)) = (min, max)
            && min > max
        {
            return Err("minVersion must not be higher than maxVersion".into());
        }
        let ciphers = if self.ciphers.is_empty() {
            None
        } else {
            if min_version == TlsVersion::Tls13 {
                return Err(
                    "ciphers: only TLS 1.2 suites are chosen, and minVersion is 1.3".into(),
                );
            }
            Some(parse_ciphers(&self.ciphers)?)
        };
        let kx_groups = if self.ecdh_curves.is_empty() {
            None
        } else {
            Some(parse_kx_groups(&self.ecdh_curves)?)
        };
        let alpn = self
            .alpn_protocols
            .as_deref()
            .map(parse_alpn_protocols)
            .transpose()?;
        let resumption = self.session.as_ref().and_then(|s| s.resumption.as_ref());
        Ok(ClientTls {
            min_version,
            max_version,
            ciphers,
            kx_groups,
            signature_algorithms,
            alpn,
            stateful_resumption: resumption.is_some_and(|r| r.stateful.is_some()),
            stateless_resumption: resumption.is_some_and(|r| r.stateless.is_some()),
            fingerprints,
            client_validation: self
                .client_validation
                .as_ref()
                .map(|v| {
                    compile_validation(v, namespace, config)
                        .map_err(|e| format!("clientValidation.{e}"))
                })
                .transpose()?,
        })
    }
}

/// `1.0` → 10 … `1.3` → 13; `Auto` and absent → `None`.
fn version(text: Option<&str>, field: &str) -> Result<Option<u8>, String> {
    match text {
        None | Some("Auto") => Ok(None),
        Some("1.0") => Ok(Some(10)),
        Some("1.1") => Ok(Some(11)),
        Some("1.2") => Ok(Some(12)),
        Some("1.3") => Ok(Some(13)),
        Some(other) => Err(format!("{field}: unsupported value {other:?}")),
    }
}

fn to_version(v: u8) -> TlsVersion {
    if v >= 13 {
        TlsVersion::Tls13
    } else {
        TlsVersion::Tls12
    }
}

fn compile_validation(
    spec: &ClientValidationSpec,
    namespace: &str,
    config: &Config,
) -> Result<ClientCertValidation, String> {
    let mode = match (spec.mode.as_deref(), spec.optional) {
        (None, Some(true)) => ClientCertMode::VerifyIfGiven,
        (None, _) | (Some("RequireAndVerify"), _) => ClientCertMode::RequireAndVerify,
        (Some("VerifyIfGiven"), _) => ClientCertMode::VerifyIfGiven,
        (Some("RequireAny"), _) => ClientCertMode::RequireAny,
        (Some("Request"), _) => ClientCertMode::Request,
        (Some(other), _) => return Err(format!("mode: unsupported value {other:?}")),
    };
    let allow_expired = spec.allow_expired_certificate == Some(true);
    if allow_expired && !mode.verifies() {
        return Err("allowExpiredCertificate: only with VerifyIfGiven or RequireAndVerify".into());
    }
    if spec.ca_certificate_refs.len() > 8 {
        return Err("caCertificateRefs: at most 8".into());
    }
    let mut roots_pem = Vec::new();
    for (index, reference) in spec.ca_certificate_refs.iter().enumerate() {
        let pem = referenced_value(reference, "ca.crt", namespace, config)
            .map_err(|e| format!("caCertificateRefs[{index}]: {e}"))?;
        if !pem.windows(27).any(|w| w == b"-----BEGIN CERTIFICATE-----") {
            return Err(format!(
                "caCertificateRefs[{index}]: ca.crt holds no PEM certificate"
            ));
        }
        roots_pem.extend_from_slice(&pem);
        roots_pem.push(b'\n');
    }
    if mode.verifies() && roots_pem.is_empty() {
        return Err("caCertificateRefs: a verifying mode needs at least one CA".into());
    }
    let mut crls_pem = Vec::new();
    if let Some(crl) = &spec.crl {
        for (index, reference) in crl.refs.iter().enumerate() {
            let pem = referenced_value(reference, "ca.crl", namespace, config)
                .map_err(|e| format!("crl.refs[{index}]: {e}"))?;
            crls_pem.extend_from_slice(&pem);
            crls_pem.push(b'\n');
        }
    }
    let names = spec.subject_alt_names.clone().unwrap_or_default();
    let matches = |list: &[StringMatchSpec], field: &str| {
        list.iter()
            .map(|m| name_match(m).map_err(|e| format!("subjectAltNames.{field}: {e}")))
            .collect::<Result<Vec<_>, _>>()
    };
    let pins = CertificatePins {
        certificate_sha256: spec
            .certificate_hashes
            .iter()
            .map(|h| {
                hex_digest(h)
                    .ok_or_else(|| format!("certificateHashes: {h:?} is not a hex SHA-256 digest"))
            })
            .collect::<Result<_, _>>()?,
        spki_sha256: spec
            .spki_hashes
            .iter()
            .map(|h| {
                base64_digest(h)
                    .ok_or_else(|| format!("spkiHashes: {h:?} is not a base64 SHA-256 digest"))
            })
            .collect::<Result<_, _>>()?,
        dns_names: matches(&names.dns_names, "dnsNames")?,
        emails: matches(&names.email_addresses, "emailAddresses")?,
        ip_addresses: matches(&names.ip_addresses, "ipAddresses")?,
        uris: matches(&names.uris, "uris")?,
        other_names: names
            .other_names
            .iter()
            .enumerate()
            .map(|(i, m)| {
                let field = format!("subjectAltNames.otherNames[{i}]");
                if !is_dotted_oid(&m.oid) {
                    return Err(format!("{field}.oid: {:?} is not a dotted OID", m.oid));
                }
                let matcher = StringMatchSpec {
                    kind: m.kind.clone(),
                    value: m.value.clone(),
                };
                let pin = name_match(&matcher).map_err(|e| format!("{field}: {e}"))?;
                Ok((m.oid.clone(), pin))
            })
            .collect::<Result<_, String>>()?,
    };
    Ok(ClientCertValidation {
        mode,
        roots_pem,
        crls_pem,
        crl_leaf_only: spec
            .crl
            .as_ref()
            .is_some_and(|c| c.only_verify_leaf_certificate),
        pins,
        allow_expired,
    })
}

/// Whether `oid` is a dotted object identifier (`1.3.6.1…`: at least two numeric arcs).
fn is_dotted_oid(oid: &str) -> bool {
    let arcs: Vec<&str> = oid.split('.').collect();
    arcs.len() >= 2
        && arcs
            .iter()
            .all(|arc| !arc.is_empty() && arc.bytes().all(|b| b.is_ascii_digit()))
}

/// The value under `key` of the Secret or ConfigMap `reference` names, in the policy's
/// namespace or — with a ReferenceGrant for ClientTrafficPolicies — another.
fn referenced_value(
    reference: &SecretObjectReference,
    key: &str,
    namespace: &str,
    config: &Config,
) -> Result<Vec<u8>, String> {
    let target = reference.namespace.as_deref().unwrap_or(namespace);
    let name = &reference.name;
    if !reference.group.is_empty() || !matches!(reference.kind.as_str(), "Secret" | "ConfigMap") {
        return Err(format!(
            "kind {} is neither a Secret nor a ConfigMap",
            reference.kind
        ));
    }
    if !routing::resolve::reference_permitted(
        config,
        (
            crate::security::attach::ENVOY_GATEWAY_GROUP,
            "ClientTrafficPolicy",
            namespace,
        ),
        ("", reference.kind.as_str(), target, name),
    ) {
        return Err(format!(
            "{} {target}/{name} in another namespace needs a ReferenceGrant",
            reference.kind
        ));
    }
    let value = if reference.kind == "Secret" {
        config
            .secrets
            .iter()
            .find(|s| s.metadata.namespace == target && s.metadata.name == *name)
            .ok_or_else(|| format!("Secret {target}/{name} not found"))?
            .value(key)
    } else {
        config
            .config_maps
            .iter()
            .find(|m| m.metadata.namespace == target && m.metadata.name == *name)
            .ok_or_else(|| format!("ConfigMap {target}/{name} not found"))?
            .data
            .get(key)
            .map(|text| text.as_bytes().to_vec())
    };
    value.ok_or_else(|| format!("{} {target}/{name} has no {key} key", reference.kind))
}

/// Compiles a `StringMatch` (a regular expression must match the whole text).
pub(crate) fn name_match(spec: &StringMatchSpec) -> Result<NameMatch, String> {
    let value = spec.value.clone();
    match spec.kind.as_deref().unwrap_or("Exact") {
        "Exact" => Ok(NameMatch::Exact(value)),
        "Prefix" => Ok(NameMatch::Prefix(value)),
        "Suffix" => Ok(NameMatch::Suffix(value)),
        "RegularExpression" => Regex::new(&format!("^(?:{value})$"))
            .map(NameMatch::Regex)
            .map_err(|e| e.to_string()),
        other => Err(format!("type: unsupported value {other:?}")),
    }
}

/// A SHA-256 digest written in hex, with or without colons.
fn hex_digest(text: &str) -> Option<[u8; 32]> {
    let digits: Vec<u8> = text.bytes().filter(|b| *b != b':').collect();
    if digits.len() != 64 {
        return None;
    }
    let mut digest = [0u8; 32];
    for (byte, pair) in digest.iter_mut().zip(digits.chunks(2)) {
        let pair = std::str::from_utf8(pair).ok()?;
        *byte = u8::from_str_radix(pair, 16).ok()?;
    }
    Some(digest)
}

/// A SHA-256 digest written in base64.
fn base64_digest(text: &str) -> Option<[u8; 32]> {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD
        .decode(text.trim())
        .ok()?
        .try_into()
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn compile(yaml: &str) -> Result<ClientTls, String> {
        serde_yaml_ng::from_str::<ClientTlsSpec>(yaml)
            .map_err(|e| e.to_string())?
            .compile("default", &Config::default())
    }

    #[test]
    fn versions_ciphers_and_curves_follow_the_crd() {
        let tls = compile("{}").unwrap();
        assert_eq!(
            (tls.min_version, tls.max_version),
            (TlsVersion::Tls12, TlsVersion::Tls13)
        );
        assert_eq!(tls.ciphers, None);
        let tls = compile("minVersion: '1.0'\nmaxVersion: '1.2'\nciphers: ['[ECDHE-ECDSA-AES128-GCM-SHA256|ECDHE-ECDSA-CHACHA20-POLY1305]', TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384]\necdhCurves: [P-256]").unwrap();
        assert_eq!(
            (tls.min_version, tls.max_version),
            (TlsVersion::Tls12, TlsVersion::Tls12)
        );
        assert_eq!(
            tls.ciphers,
            Some(vec![
                Tls12Cipher::EcdheEcdsaAes128GcmSha256,
                Tls12Cipher::EcdheEcdsaChacha20Poly1305,
                Tls12Cipher::EcdheRsaAes256GcmSha384
            ])
        );
        assert_eq!(tls.kx_groups, Some(vec![KxGroup::P256]));
        for (yaml, expected) in [
            ("maxVersion: '1.1'", "TLS 1.2 and 1.3 only"),
            ("minVersion: '1.3'\nmaxVersion: '1.2'", "must not be higher"),
            (
                "minVersion: '1.3'\nciphers: [ECDHE-RSA-AES128-GCM-SHA256]",
                "minVersion is 1.3",
            ),
            (
                "ciphers: [AES128-SHA]",
                "\"AES128-SHA\" is not a TLS 1.2 suite",
            ),
            ("ecdhCurves: [P-521]", "not offered"),
            ("alpnProtocols: [spdy/3]", "unsupported value"),
            ("minVersion: '2.0'", "minVersion: unsupported"),
            (
                "signatureAlgorithms: [ecdsa_sha1]",
                "signatureAlgorithms[0]: \"ecdsa_sha1\" is not offered",
            ),
            ("signatureAlgorithms: []", "an empty list"),
            (
                "fingerprints: [JA5]",
                "fingerprints[0]: unsupported value \"JA5\"",
            ),
            (
                "fingerprints: [JA4, JA4]",
                "fingerprints[1]: JA4 is listed twice",
            ),
            (
                "clientValidation: {caCertificateRefs: [{name: missing}]}",
                "Secret default/missing not found",
            ),
            (
                "clientValidation: {mode: RequireAndVerify}",
                "needs at least one CA",
            ),
            ("clientValidation: {mode: Sometimes}", "mode: unsupported"),
            (
                "clientValidation: {mode: RequireAny, allowExpiredCertificate: true}",
                "allowExpiredCertificate: only with",
            ),
            (
                "clientValidation: {mode: RequireAny, subjectAltNames: {otherNames: [{oid: upn, value: a}]}}",
                "otherNames[0].oid: \"upn\" is not a dotted OID",
            ),
        ] {
            let error = compile(yaml).unwrap_err();
            assert!(error.contains(expected), "{yaml}: {error}");
        }
        assert_eq!(compile("alpnProtocols: []").unwrap().alpn, Some(vec![]));
        let any = compile("clientValidation: {mode: RequireAny}").unwrap();
        assert_eq!(
            any.client_validation.unwrap().mode,
            ClientCertMode::RequireAny
        );
    }

    #[test]
    fn pins_admit_by_either_hash_and_by_any_name() {
        let facts = CertificateFacts {
            certificate_sha256: [1; 32],
            spki_sha256: [2; 32],
            dns_names: vec!["client.shop.example".into()],
            uris: vec!["spiffe://cluster.local/ns/shop/sa/web".into()],
            ..CertificateFacts::default()
        };
        assert!(CertificatePins::default().admit(&facts));
        let by_key = CertificatePins {
            certificate_sha256: vec![[9; 32]],
            spki_sha256: vec![[2; 32]],
            ..CertificatePins::default()
        };
        assert!(by_key.admit(&facts));
        let neither = CertificatePins {
            certificate_sha256: vec![[9; 32]],
            ..CertificatePins::default()
        };
        assert!(!neither.admit(&facts));
        let by_uri = CertificatePins {
            dns_names: vec![NameMatch::Exact("other.example".into())],
            uris: vec![NameMatch::Prefix("spiffe://cluster.local/ns/shop/".into())],
            ..CertificatePins::default()
        };
        assert!(by_uri.admit(&facts));
        let wrong_names = CertificatePins {
            dns_names: vec![NameMatch::Suffix(".bank.example".into())],
            ..CertificatePins::default()
        };
        assert!(!wrong_names.admit(&facts));
        // An otherName pin matches only values of its own type.
        const UPN: &str = "1.3.6.1.4.1.311.20.2.3";
        let with_upn = CertificateFacts {
            other_names: vec![(UPN.into(), "alice@corp.example".into())],
            ..facts.clone()
        };
        let by_upn = CertificatePins {
            other_names: vec![(UPN.into(), NameMatch::Suffix("@corp.example".into()))],
            ..CertificatePins::default()
        };
        assert!(by_upn.admit(&with_upn));
        assert!(!by_upn.admit(&facts));
        let other_type = CertificatePins {
            other_names: vec![("1.2.3.4".into(), NameMatch::Suffix("@corp.example".into()))],
            ..CertificatePins::default()
        };
        assert!(!other_type.admit(&with_upn));
        assert_eq!(hex_digest(&"ab:".repeat(32)[..95]), Some([0xab; 32]));
        assert_eq!(hex_digest("abc"), None);
    }
}
