//! `Backend.spec.tls` → the TLS the gateway speaks to the Backend's endpoints, when no
//! BackendTLSPolicy targets the Backend (a policy takes precedence): trust anchors from
//! ConfigMaps' `ca.crt` or the well-known roots, or no verification at all
//! (`insecureSkipVerify`), and the SNI, which is also the name verified. The CRD's rules hold:
//! `caCertificateRefs` and `wellKnownCACertificates` exclude each other, and
//! `insecureSkipVerify` excludes both. The `BackendTLSConfig` settings apply as on a listener:
//! `minVersion`/`maxVersion`, `ciphers` (TLS 1.2 suites), `ecdhCurves`, `signatureAlgorithms`
//! (the schemes the endpoint may sign its handshake with) and `alpnProtocols` (offered as
//! listed), and `clientCertificateRef` (a Secret of the Backend's namespace). Without `sni`,
//! each request's host is sent and verified (an empty [`BackendTls::server_name`];
//! connections are pooled per name).

use std::sync::Arc;

use super::backend_tls::ca_certificates_pem;
use super::hostnames::is_precise_hostname;
use super::listeners::{ListenerOwner, tls_secret};
use crate::compiled::{BackendTls, BackendTlsProtocol, BackendTlsVersions, Certificate, TlsRoots};
use crate::model::Config;
use crate::model::envoy_backend::EnvoyBackendTls;
use crate::model::{ObjectKey, SecretObjectReference};
use crate::tls_names::{
    parse_alpn_protocols, parse_ciphers, parse_kx_groups, parse_signature_algorithms,
};

/// The `BackendTLSConfig` fields this data plane applies.
const CONFIG_FIELDS: [&str; 7] = [
    "minVersion",
    "maxVersion",
    "clientCertificateRef",
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
    let versions = versions(settings)?;
    if let Some(field) = settings
        .config
        .keys()
        .find(|field| !CONFIG_FIELDS.contains(&field.as_str()))
    {
        return Err(format!("spec.tls: unknown field {field:?}"));
    }
    let protocol = protocol(settings, versions)?;
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
        Some(sni) if is_precise_hostname(&sni.to_ascii_lowercase()) => sni.to_ascii_lowercase(),
        Some(sni) => return Err(format!("spec.tls.sni: {sni:?} is not a host name")),
        // Each request's host, as Envoy Gateway does without `sni`.
        None => String::new(),
    };
    Ok(BackendTls {
        server_name,
        roots,
        subject_alt_names: Vec::new(),
        versions,
        client_certificate: client_certificate(config, key, settings)?,
        protocol,
    })
}

/// `ciphers`, `ecdhCurves`, `signatureAlgorithms` and `alpnProtocols`, offered with
/// `versions`.
fn protocol(
    settings: &EnvoyBackendTls,
    versions: BackendTlsVersions,
) -> Result<BackendTlsProtocol, String> {
    let names = |field: &str| -> Result<Option<Vec<String>>, String> {
        settings
            .config
            .get(field)
            .map(|value| {
                serde_yaml_ng::from_value::<Vec<String>>(value.clone())
                    .map_err(|_| format!("spec.tls.{field}: a list of names"))
            })
            .transpose()
    };
    let within = |error: String| format!("spec.tls.{error}");
    let ciphers = match names("ciphers")?.filter(|list| !list.is_empty()) {
        None => None,
        Some(_) if versions == BackendTlsVersions::Tls13 => {
            return Err(
                "spec.tls.ciphers: only TLS 1.2 suites are chosen, and minVersion is 1.3".into(),
            );
        }
        Some(list) => Some(parse_ciphers(&list).map_err(within)?),
    };
    Ok(BackendTlsProtocol {
        ciphers,
        kx_groups: names("ecdhCurves")?
            .filter(|list| !list.is_empty())
            .map(|list| parse_kx_groups(&list).map_err(within))
            .transpose()?,
        signature_algorithms: names("signatureAlgorithms")?
            .map(|list| parse_signature_algorithms(&list).map_err(within))
            .transpose()?,
        alpn: names("alpnProtocols")?
            .map(|list| parse_alpn_protocols(&list).map_err(within))
            .transpose()?,
    })
}

/// The certificate of `clientCertificateRef` (a `kubernetes.io/tls` Secret in the Backend's
/// namespace), presented to the endpoints.
fn client_certificate(
    config: &Config,
    key: &ObjectKey,
    settings: &EnvoyBackendTls,
) -> Result<Option<Arc<Certificate>>, String> {
    let field = "spec.tls.clientCertificateRef";
    let Some(value) = settings.config.get("clientCertificateRef") else {
        return Ok(None);
    };
    let reference: SecretObjectReference =
        serde_yaml_ng::from_value(value.clone()).map_err(|e| format!("{field}: {e}"))?;
    if reference
        .namespace
        .as_deref()
        .is_some_and(|namespace| namespace != key.namespace)
    {
        return Err(format!("{field}: only a Secret of the Backend's namespace"));
    }
    let owner = ListenerOwner {
        kind: "Backend",
        namespace: &key.namespace,
        name: &key.name,
    };
    tls_secret(config, owner, &reference, field)
        .map(|certificate| Some(Arc::new(certificate)))
        .map_err(|condition| condition.message)
}

/// `minVersion` and `maxVersion` (`Auto`, `1.0`–`1.3`): the versions offered, of the two this
/// data plane speaks (TLS 1.2 and 1.3; a minimum below 1.2 allows 1.2).
fn versions(settings: &EnvoyBackendTls) -> Result<BackendTlsVersions, String> {
    let version = |field: &str| -> Result<Option<u8>, String> {
        // `1.2` unquoted is a YAML number: read as written.
        let text = match settings.config.get(field) {
            None => return Ok(None),
            Some(serde_yaml_ng::Value::String(text)) => text.clone(),
            Some(serde_yaml_ng::Value::Number(number)) => number.to_string(),
            Some(_) => String::new(),
        };
        match text.as_str() {
            "Auto" => Ok(None),
            "1.0" => Ok(Some(0)),
            "1.1" => Ok(Some(1)),
            "1.2" => Ok(Some(2)),
            "1.3" => Ok(Some(3)),
            _ => Err(format!(
                "spec.tls.{field}: one of Auto, 1.0, 1.1, 1.2 and 1.3"
            )),
        }
    };
    let (min, max) = (version("minVersion")?, version("maxVersion")?);
    if let (Some(min), Some(max)) = (min, max)
        && min > max
    {
        return Err("spec.tls: minVersion is above maxVersion".into());
    }
    match (min.unwrap_or(2), max.unwrap_or(3)) {
        (_, 0 | 1) => Err("spec.tls.maxVersion: TLS below 1.2 is not spoken here".into()),
        (3, _) => Ok(BackendTlsVersions::Tls13),
        (_, 2) => Ok(BackendTlsVersions::Tls12),
        _ => Ok(BackendTlsVersions::Both),
    }
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
