//! Client certificate verifiers for HTTPS listeners, one per ClientTrafficPolicy
//! `tls.clientValidation` mode (or the Gateway's `tls.frontend` validation):
//!
//! - chained to the CAs (`RequireAndVerify`; `VerifyIfGiven` also serves clients without a
//!   certificate), with the CRLs, then the policy's pins — certificate or public-key digests,
//!   subject alternative names, `otherName` strings included — checked on the client's
//!   certificate ([`Pinned`]); with `allowExpiredCertificate`, expired certificates pass
//!   (`expired_certificates`);
//! - any certificate, trusted or not, required (`RequireAny`) or not (`Request`)
//!   ([`AnyCertificate`]): the client must still prove it holds the key;
//! - the Gateway API's `AllowInsecureFallback` ([`InsecureFallback`]).
//!
//! It also describes a client's certificate for `X-Forwarded-Client-Cert`
//! ([`client_cert_details`]).

use std::sync::Arc;

use mesh_policy::traffic::client_tls::{
    CertificateFacts, CertificateNames, CertificatePins, ClientCertMode, ClientCertValidation,
};
use mesh_policy::traffic::xfcc::ClientCertDetails;
use rustls::client::danger::HandshakeSignatureValid;
use rustls::crypto::{CryptoProvider, verify_tls12_signature, verify_tls13_signature};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, CertificateRevocationListDer, UnixTime};
use rustls::server::WebPkiClientVerifier;
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::{
    CertificateError, DigitallySignedStruct, DistinguishedName, Error, RootCertStore,
    SignatureScheme,
};
use x509_parser::extensions::GeneralName;
use x509_parser::prelude::{FromDer, X509Certificate};

use super::tls::TlsSetupError;
use super::verifier_wrapper::{WrapClientVerifier, Wrapped};

/// The verifier of a ClientTrafficPolicy's `clientValidation`.
pub(super) fn policy_verifier(
    validation: &ClientCertValidation,
    provider: &Arc<CryptoProvider>,
) -> Result<Arc<dyn ClientCertVerifier>, TlsSetupError> {
    if !validation.mode.verifies() {
        return Ok(Arc::new(AnyCertificate {
            mandatory: validation.mode.requires(),
            provider: Arc::clone(provider),
        }));
    }
    let invalid = |e: &dyn std::fmt::Display| TlsSetupError::ClientValidation(e.to_string());
    let roots = root_store(&validation.roots_pem)?;
    let crls = CertificateRevocationListDer::pem_slice_iter(&validation.crls_pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| invalid(&e))?;
    let mut builder =
        WebPkiClientVerifier::builder_with_provider(Arc::new(roots), Arc::clone(provider))
            .with_crls(crls);
    if validation.crl_leaf_only {
        builder = builder.only_check_end_entity_revocation();
    }
    if validation.mode == ClientCertMode::VerifyIfGiven {
        builder = builder.allow_unauthenticated();
    }
    let mut chained = builder.build().map_err(|e| invalid(&e))?;
    if validation.allow_expired {
        chained = Arc::new(Wrapped(super::expired_certificates::ExpiredAccepted(
            chained,
        )));
    }
    if validation.pins.is_empty() {
        return Ok(chained);
    }
    Ok(Arc::new(Wrapped(Pinned {
        chained,
        pins: validation.pins.clone(),
    })))
}

/// The CA certificates of `pem`.
pub(super) fn root_store(pem: &[u8]) -> Result<RootCertStore, TlsSetupError> {
    let invalid = |e: &dyn std::fmt::Display| TlsSetupError::ClientValidation(e.to_string());
    let mut roots = RootCertStore::empty();
    for certificate in CertificateDer::pem_slice_iter(pem) {
        let certificate = certificate.map_err(|e| invalid(&e))?;
        roots.add(certificate).map_err(|e| invalid(&e))?;
    }
    Ok(roots)
}

/// The facts the pins look at in a DER certificate (`None` when it cannot be read).
pub(super) fn certificate_facts(der: &[u8]) -> Option<CertificateFacts> {
    let (_, parsed) = X509Certificate::from_der(der).ok()?;
    let mut names = CertificateNames::default();
    if let Ok(Some(sans)) = parsed.subject_alternative_name() {
        for name in &sans.value.general_names {
            match name {
                GeneralName::DNSName(dns) => names.dns_names.push((*dns).to_owned()),
                GeneralName::RFC822Name(email) => names.emails.push((*email).to_owned()),
                GeneralName::URI(uri) => names.uris.push((*uri).to_owned()),
                GeneralName::IPAddress(bytes) => {
                    if let Some(ip) = ip_text(bytes) {
                        names.ip_addresses.push(ip);
                    }
                }
                GeneralName::OtherName(oid, value) => {
                    if let Some(text) = other_name_text(value) {
                        names.other_names.push((oid.to_id_string(), text));
                    }
                }
                _ => {}
            }
        }
    }
    let spki = parsed.tbs_certificate.subject_pki.raw;
    Some(CertificateFacts::new(der, spki, names))
}

/// The text of an `otherName` value — `[0] EXPLICIT` around a UTF8String, IA5String,
/// PrintableString or VisibleString — or `None` for any other type.
fn other_name_text(explicit: &[u8]) -> Option<String> {
    let (tag, inner, _) = der_element(explicit)?;
    if tag != 0xA0 {
        return None;
    }
    let (tag, content, _) = der_element(inner)?;
    match tag {
        0x0C | 0x16 | 0x13 | 0x1A => std::str::from_utf8(content).ok().map(str::to_owned),
        _ => None,
    }
}

/// One DER element of `bytes`: its tag, its content and what follows it.
fn der_element(bytes: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let (&tag, rest) = bytes.split_first()?;
    let (&first, rest) = rest.split_first()?;
    let (length, rest) = if first < 0x80 {
        (usize::from(first), rest)
    } else {
        let count = usize::from(first & 0x7F);
        if count == 0 || count > 4 || rest.len() < count {
            return None;
        }
        let (digits, rest) = rest.split_at(count);
        let length = digits
            .iter()
            .fold(0usize, |length, &digit| (length << 8) | usize::from(digit));
        (length, rest)
    };
    (rest.len() >= length).then(|| {
        let (content, after) = rest.split_at(length);
        (tag, content, after)
    })
}

/// The X-Forwarded-Client-Cert details of a client whose chain is `chain` (its certificate
/// first), for a listener whose certificate's URI SAN is `by`.
pub(super) fn client_cert_details(
    chain: &[CertificateDer<'_>],
    by: Option<String>,
) -> Option<ClientCertDetails> {
    let leaf = chain.first()?;
    let (_, parsed) = X509Certificate::from_der(leaf).ok()?;
    let (mut dns, mut uris) = (Vec::new(), Vec::new());
    if let Ok(Some(sans)) = parsed.subject_alternative_name() {
        for name in &sans.value.general_names {
            match name {
                GeneralName::DNSName(name) => dns.push((*name).to_owned()),
                GeneralName::URI(uri) => uris.push((*uri).to_owned()),
                _ => {}
            }
        }
    }
    let ders: Vec<&[u8]> = chain.iter().map(|der| der.as_ref()).collect();
    ClientCertDetails::new(&ders, rfc2253(parsed.subject()), dns, uris, by)
}

/// The first URI SAN of a DER certificate.
pub(super) fn first_uri_san(der: &[u8]) -> Option<String> {
    certificate_facts(der)?.uris.into_iter().next()
}

/// A distinguished name as RFC 2253 writes it: the last RDN first, `,` between RDNs, `+`
/// within one, special characters escaped.
fn rfc2253(name: &x509_parser::x509::X509Name<'_>) -> String {
    let registry = x509_parser::objects::oid_registry();
    let rdns: Vec<String> = name
        .iter_rdn()
        .map(|rdn| {
            rdn.iter()
                .map(|attribute| {
                    let key = x509_parser::objects::oid2abbrev(attribute.attr_type(), registry)
                        .map(str::to_owned)
                        .unwrap_or_else(|_| attribute.attr_type().to_id_string());
                    let value = attribute.as_str().unwrap_or_default();
                    format!("{key}={}", escape_dn_value(value))
                })
                .collect::<Vec<_>>()
                .join("+")
        })
        .collect();
    rdns.into_iter().rev().collect::<Vec<_>>().join(",")
}

/// RFC 2253 §2.4 escaping of an attribute value.
fn escape_dn_value(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    let last = value.chars().count().saturating_sub(1);
    for (index, c) in value.chars().enumerate() {
        let special = matches!(c, ',' | '+' | '"' | '\\' | '<' | '>' | ';')
            || (index == 0 && (c == '#' || c == ' '))
            || (index == last && c == ' ');
        if special {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

fn ip_text(bytes: &[u8]) -> Option<String> {
    if let Ok(v4) = <[u8; 4]>::try_from(bytes) {
        return Some(std::net::Ipv4Addr::from(v4).to_string());
    }
    <[u8; 16]>::try_from(bytes)
        .ok()
        .map(|v6| std::net::Ipv6Addr::from(v6).to_string())
}

/// A chain verifier whose accepted certificates must also pass the policy's pins.
#[derive(Debug)]
struct Pinned {
    chained: Arc<dyn ClientCertVerifier>,
    pins: CertificatePins,
}

impl WrapClientVerifier for Pinned {
    fn inner(&self) -> &Arc<dyn ClientCertVerifier> {
        &self.chained
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, Error> {
        let verified = self
            .chained
            .verify_client_cert(end_entity, intermediates, now)?;
        match certificate_facts(end_entity) {
            Some(facts) if self.pins.admit(&facts) => Ok(verified),
            Some(_) => Err(Error::InvalidCertificate(
                CertificateError::ApplicationVerificationFailure,
            )),
            None => Err(Error::InvalidCertificate(CertificateError::BadEncoding)),
        }
    }
}

/// Asks for a certificate and accepts any (required or not); the handshake signature is
/// still checked, so the client holds the certificate's key.
#[derive(Debug)]
struct AnyCertificate {
    mandatory: bool,
    provider: Arc<CryptoProvider>,
}

impl ClientCertVerifier for AnyCertificate {
    fn offer_client_auth(&self) -> bool {
        true
    }

    fn client_auth_mandatory(&self) -> bool {
        self.mandatory
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &[]
    }

    fn verify_client_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _now: UnixTime,
    ) -> Result<ClientCertVerified, Error> {
        Ok(ClientCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// `AllowInsecureFallback`: asks for a client certificate and serves the client whatever it
/// presents (a valid one, an invalid one, none).
#[derive(Debug)]
pub(super) struct InsecureFallback(pub(super) Arc<dyn ClientCertVerifier>);

impl WrapClientVerifier for InsecureFallback {
    fn inner(&self) -> &Arc<dyn ClientCertVerifier> {
        &self.0
    }

    fn offer_client_auth(&self) -> bool {
        true
    }

    fn client_auth_mandatory(&self) -> bool {
        false
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, Error> {
        // The result is not enforced: that is what the fallback mode means.
        let _ = self.0.verify_client_cert(end_entity, intermediates, now);
        Ok(ClientCertVerified::assertion())
    }
}
