//! An in-memory development CA that mints SPIFFE workload certificates (feature `dev-ca`).
//!
//! For tests, demos and examples only. Certificates look like Istio's: the identity in a URI
//! SAN, both the serverAuth and clientAuth extended key usages (ztunnel's verifiers require
//! each on one side), key usage digitalSignature + keyEncipherment, ECDSA P-256 keys.

use std::time::{Duration, SystemTime};

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, SanType,
};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

use crate::identity::SpiffeId;
use crate::tls::WorkloadCertificate;

/// Why the development CA could not issue a certificate.
#[derive(Debug, thiserror::Error)]
#[error("development CA: {0}")]
pub struct DevCaError(#[from] rcgen::Error);

/// A self-signed root that issues workload certificates.
#[derive(Debug)]
pub struct DevCa {
    issuer: Issuer<'static, KeyPair>,
    root: CertificateDer<'static>,
    root_pem: String,
}

/// A freshly issued workload certificate, as PEM and as rustls material.
#[derive(Debug, Clone)]
pub struct IssuedCertificate {
    /// The leaf certificate, PEM.
    pub certificate_pem: String,
    /// The leaf's PKCS#8 private key, PEM.
    pub key_pem: String,
    /// Chain, key and roots for [`HboneTls`](crate::tls::HboneTls).
    pub workload: WorkloadCertificate,
}

impl DevCa {
    /// A new root with a fresh P-256 key, valid for ten years.
    pub fn new(name: &str) -> Result<Self, DevCaError> {
        let key = KeyPair::generate()?;
        let mut params = CertificateParams::new(Vec::<String>::new())?;
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(DnType::OrganizationName, name);
        params
            .distinguished_name
            .push(DnType::CommonName, format!("{name} development root"));
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let (not_before, not_after) = validity(
            Duration::from_secs(3600),
            Duration::from_secs(10 * 365 * 86_400),
        );
        params.not_before = not_before;
        params.not_after = not_after;
        let root = params.self_signed(&key)?;
        Ok(DevCa {
            root_pem: root.pem(),
            root: root.der().clone(),
            issuer: Issuer::new(params, key),
        })
    }

    /// The root certificate, PEM.
    pub fn root_pem(&self) -> &str {
        &self.root_pem
    }

    /// The root certificate, DER.
    pub fn root(&self) -> &CertificateDer<'static> {
        &self.root
    }

    /// A workload certificate for `identity`, valid from an hour ago for 30 days.
    pub fn issue(&self, identity: &SpiffeId) -> Result<IssuedCertificate, DevCaError> {
        let now = SystemTime::now();
        self.issue_valid_between(
            identity,
            now - Duration::from_secs(3600),
            now + Duration::from_secs(30 * 86_400),
        )
    }

    /// A workload certificate for `identity` with an explicit validity window (e.g. an expired
    /// one, for tests).
    pub fn issue_valid_between(
        &self,
        identity: &SpiffeId,
        not_before: SystemTime,
        not_after: SystemTime,
    ) -> Result<IssuedCertificate, DevCaError> {
        let key = KeyPair::generate()?;
        let mut params = CertificateParams::new(Vec::<String>::new())?;
        params.subject_alt_names = vec![SanType::URI(identity.as_str().try_into()?)];
        params
            .distinguished_name
            .push(DnType::OrganizationName, identity.trust_domain());
        params.extended_key_usages = vec![
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ];
        params.key_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyEncipherment,
        ];
        params.not_before = offset_date_time(not_before);
        params.not_after = offset_date_time(not_after);
        let certificate = params.signed_by(&key, &self.issuer)?;
        let key_der = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der()));
        Ok(IssuedCertificate {
            certificate_pem: certificate.pem(),
            key_pem: key.serialize_pem(),
            workload: WorkloadCertificate {
                chain: vec![certificate.der().clone()],
                key: key_der,
                roots: vec![self.root.clone()],
            },
        })
    }
}

fn validity(back: Duration, forward: Duration) -> (time::OffsetDateTime, time::OffsetDateTime) {
    let now = SystemTime::now();
    (
        offset_date_time(now - back),
        offset_date_time(now + forward),
    )
}

fn offset_date_time(at: SystemTime) -> time::OffsetDateTime {
    time::OffsetDateTime::from(at)
}
