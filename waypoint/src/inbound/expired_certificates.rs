//! ClientTrafficPolicy `clientValidation.allowExpiredCertificate`: a client certificate chain
//! that fails verification only because a certificate in it has expired is verified again as
//! of a moment when all of them were valid — the earliest `notAfter` in the chain — so every
//! other check (signatures, CAs, CRLs, name constraints) still applies, as Envoy accepts
//! expired certificates and nothing else.

use std::sync::Arc;
use std::time::Duration;

use rustls::pki_types::{CertificateDer, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::{CertificateError, Error};
use x509_parser::prelude::{FromDer, X509Certificate};

use super::verifier_wrapper::WrapClientVerifier;

/// A chain verifier that also accepts expired certificates (as a rustls verifier through
/// [`Wrapped`](super::verifier_wrapper::Wrapped)).
#[derive(Debug)]
pub(super) struct ExpiredAccepted(pub(super) Arc<dyn ClientCertVerifier>);

/// The last second at which every certificate of the chain was within its validity, if
/// they all can be read.
fn last_valid_moment(
    end_entity: &CertificateDer<'_>,
    intermediates: &[CertificateDer<'_>],
) -> Option<UnixTime> {
    let mut earliest: Option<i64> = None;
    for der in std::iter::once(end_entity).chain(intermediates) {
        let (_, parsed) = X509Certificate::from_der(der).ok()?;
        let not_after = parsed.validity().not_after.timestamp();
        earliest = Some(earliest.map_or(not_after, |e| e.min(not_after)));
    }
    let seconds = u64::try_from(earliest?.checked_sub(1)?).ok()?;
    Some(UnixTime::since_unix_epoch(Duration::from_secs(seconds)))
}

impl WrapClientVerifier for ExpiredAccepted {
    fn inner(&self) -> &Arc<dyn ClientCertVerifier> {
        &self.0
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, Error> {
        match self.0.verify_client_cert(end_entity, intermediates, now) {
            Err(Error::InvalidCertificate(
                CertificateError::Expired | CertificateError::ExpiredContext { .. },
            )) => {
                let then = last_valid_moment(end_entity, intermediates)
                    .ok_or(Error::InvalidCertificate(CertificateError::BadEncoding))?;
                self.0.verify_client_cert(end_entity, intermediates, then)
            }
            other => other,
        }
    }
}
