//! `Backend.spec.tls` → the TLS the gateway speaks to the Backend's endpoints, when no
//! BackendTLSPolicy targets the Backend (a policy takes precedence): trust anchors from
//! ConfigMaps' `ca.crt` or the well-known roots, or no verification at all
//! (`insecureSkipVerify`), and the SNI, which is also the name verified. The CRD's rules hold:
//! `caCertificateRefs` and `wellKnownCACertificates` exclude each other, and
//! `insecureSkipVerify` excludes both. Not supported (the reference is refused, naming the
//! field): the `BackendTLSConfig` settings — client certificate, versions, ciphers, curves,
//! signature algorithms, ALPN. Without `sni`, each request's host is sent and verified (an
//! empty [`BackendTls::server_name`]; connections are pooled per name).

use std::sync::Arc;

use super::backend_tls::ca_certificates_pem;
use crate::compiled::{BackendTls, TlsRoots};
use crate::model::Config;
use crate::model::ObjectKey;
use crate::model::envoy_backend::EnvoyBackendTls;

/// The `BackendTLSConfig` fields, which this data plane does not apply.
const PROTOCOL_SETTINGS: [&str; 7] = [
    "clientCertificateRef",
    "minVersion",
    "maxVersion",
    "ciphers",
    "ecdhCurves",
    "signatureAlgorithms",
    "alpnProtocols",
];

/// The TLS settings `settings` ask for, in the Backend `key`; the error names the field.
pub(crate) fn own_tls(
    config: &Config,
    key: &ObjectKey,
    settings: &EnvoyBackendTls,
) -> Result<BackendTls, String> {
    if let Some(field) = settings.config.keys().next() {
        return Err(match PROTOCOL_SETTINGS.contains(&field.as_str()) {
            true => format!("spec.tls.{field} is not supported"),
            false => format!("spec.tls: unknown field {field:?}"),
        });
    }
    let insecure = settings.insecure_skip_verify == Some(true);
    let has_refs = !settings.ca_certificate_refs.is_empty();
    let well_known = settings.well_known_ca_certificates.as_deref();
    if insecure && (has_refs || well_known.is_some()) {
        return Err(
            "spec.tls: insecureSkipVerify excludes caCertificateRefs and \
                    wellKnownCACertificates"
                .into(),
        );
    }
    if has_refs && well_known.is_some() {
        return Err(
            "spec.tls: caCertificateRefs and wellKnownCACertificates exclude each other".into(),
        );
    }
    let roots = match (insecure, well_known) {
        (true, _) => TlsRoots::SkipVerification,
        (false, Some("System")) => TlsRoots::System,
        (false, Some(other)) => {
            return Err(format!(
                "spec.tls.wellKnownCACertificates: {other:?} is not System"
            ));
        }
        (false, None) if has_refs => TlsRoots::Pem(trust_anchors(config, key, settings)?),
        (false, None) => {
            return Err(
                "spec.tls: one of caCertificateRefs, wellKnownCACertificates and \
                        insecureSkipVerify is required"
                    .into(),
            );
        }
    };
    let server_name = match settings.sni.as_deref() {
        Some(sni) if valid_sni(sni) => sni.to_ascii_lowercase(),
        Some(sni) => return Err(format!("spec.tls.sni: {sni:?} is not a host name")),
        // Each request's host, as Envoy Gateway does without `sni`.
        None => String::new(),
    };
    Ok(BackendTls {
        server_name,
        roots,
        subject_alt_names: Vec::new(),
    })
}

/// The PEM certificates of the referenced ConfigMaps, in the Backend's namespace.
fn trust_anchors(
    config: &Config,
    key: &ObjectKey,
    settings: &EnvoyBackendTls,
) -> Result<Arc<[u8]>, String> {
    let mut pem = Vec::new();
    for (index, reference) in settings.ca_certificate_refs.iter().enumerate() {
        let field = format!("spec.tls.caCertificateRefs[{index}]");
        if !reference.group.is_empty() || reference.kind != "ConfigMap" {
            return Err(format!(
                "{field}: kind {}/{} is not supported (ConfigMap)",
                reference.group, reference.kind
            ));
        }
        let map = ObjectKey::new(&key.namespace, reference.name.clone());
        let text = ca_certificates_pem(config, &map)
            .ok_or_else(|| format!("{field}: ConfigMap {map} has no PEM `ca.crt`"))?;
        pem.extend_from_slice(text.as_bytes());
    }
    Ok(Arc::from(pem))
}

/// A precise host name: labels of letters, digits and hyphens, no wildcard, no IP literal.
fn valid_sni(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 253
        && name.parse::<std::net::IpAddr>().is_err()
        && name.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-')
        })
}
