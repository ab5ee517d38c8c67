//! BackendTLSPolicy (spec §2.7): which policy applies to a Service port (or an Envoy Gateway
//! `Backend`), and its trust anchors. The oldest policy (then `namespace/name`) wins when several target one port.

use std::sync::Arc;

use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject;

use super::created_order;
use super::status::{Condition, ObjectStatus};
use crate::compiled::{
    BackendSubjectAltName, BackendTls, BackendTlsProtocol, BackendTlsVersions, TlsRoots,
};
use crate::model::{BackendTlsPolicy, Config, ObjectKey, Service, ServicePort};

/// The TLS settings of `service`'s `port`: `Ok(None)` without a policy; `Err` with the
/// `ResolvedRefs=False` condition when the applicable policy is unusable (its backend then
/// answers 500).
pub(crate) fn backend_tls(
    config: &Config,
    service: &Service,
    port: &ServicePort,
) -> Result<Option<BackendTls>, Condition> {
    let target = Target {
        group: "",
        kind: "Service",
        key: &service.metadata.key(),
        section: Some(&port.name),
    };
    tls_for(config, &target)
}

/// The TLS settings of the Envoy Gateway `Backend` `key` (a policy's `sectionName` never
/// names part of one), as [`backend_tls`].
pub(crate) fn envoy_backend_tls(
    config: &Config,
    key: &ObjectKey,
) -> Result<Option<BackendTls>, Condition> {
    let target = Target {
        group: crate::model::envoy_backend::ENVOY_GATEWAY_GROUP,
        kind: "Backend",
        key,
        section: None,
    };
    tls_for(config, &target)
}

/// What a BackendTLSPolicy may target.
struct Target<'a> {
    group: &'a str,
    kind: &'a str,
    key: &'a ObjectKey,
    section: Option<&'a str>,
}

fn tls_for(config: &Config, target: &Target<'_>) -> Result<Option<BackendTls>, Condition> {
    let mut policies: Vec<&BackendTlsPolicy> = config
        .backend_tls_policies
        .iter()
        .filter(|policy| policy.metadata.namespace == target.key.namespace)
        .filter(|policy| {
            policy.spec.target_refs.iter().any(|reference| {
                reference.group == target.group
                    && reference.kind == target.kind
                    && reference.name == target.key.name
                    && reference
                        .section_name
                        .as_ref()
                        .is_none_or(|s| target.section == Some(s.as_str()))
            })
        })
        .collect();
    policies.sort_by_key(|p| (created_order(&p.metadata), p.metadata.key()));
    match policies.first() {
        None => Ok(None),
        Some(policy) => validate(config, policy).map(Some),
    }
}

/// The status of every BackendTLSPolicy.
pub(crate) fn policy_statuses(config: &Config) -> Vec<ObjectStatus> {
    config
        .backend_tls_policies
        .iter()
        .map(|policy| {
            let mut status = ObjectStatus::new("BackendTLSPolicy", policy.metadata.key());
            match validate(config, policy) {
                Ok(_) => {
                    status
                        .conditions
                        .push(Condition::ok("Accepted", "Accepted"));
                    status
                        .conditions
                        .push(Condition::ok("ResolvedRefs", "ResolvedRefs"));
                }
                Err(problem) => {
                    let reason = match problem.reason {
                        "Invalid" => "Invalid",
                        _ => "NoValidCACertificate",
                    };
                    status.conditions.push(Condition::failed(
                        "Accepted",
                        reason,
                        problem.message.clone(),
                    ));
                    status.conditions.push(problem);
                }
            }
            status
        })
        .collect()
}

fn validate(config: &Config, policy: &BackendTlsPolicy) -> Result<BackendTls, Condition> {
    let validation = &policy.spec.validation;
    let key = policy.metadata.key();
    let failed = |reason: &'static str, message: String| {
        Condition::failed(
            "ResolvedRefs",
            reason,
            format!("BackendTLSPolicy {key}: {message}"),
        )
    };
    if validation.hostname.is_empty() {
        return Err(failed(
            "NoValidCACertificate",
            "validation.hostname is required".into(),
        ));
    }
    let roots = if !validation.ca_certificate_refs.is_empty() {
        let mut pem = Vec::new();
        for reference in &validation.ca_certificate_refs {
            if !reference.group.is_empty() || reference.kind != "ConfigMap" {
                return Err(failed(
                    "InvalidKind",
                    format!(
                        "caCertificateRef kind {}/{} is not supported",
                        reference.group, reference.kind
                    ),
                ));
            }
            let key = ObjectKey::new(&policy.metadata.namespace, reference.name.clone());
            match ca_certificates_pem(config, &key) {
                Some(text) => pem.extend_from_slice(text.as_bytes()),
                None => {
                    return Err(failed(
                        "InvalidCACertificateRef",
                        format!("ConfigMap {} has no PEM `ca.crt`", reference.name),
                    ));
                }
            }
        }
        TlsRoots::Pem(Arc::from(pem))
    } else if validation.well_known_ca_certificates.as_deref() == Some("System") {
        TlsRoots::System
    } else {
        return Err(failed(
            "NoValidCACertificate",
            "no caCertificateRefs and no wellKnownCACertificates".into(),
        ));
    };
    let mut subject_alt_names = Vec::with_capacity(validation.subject_alt_names.len());
    for (index, san) in validation.subject_alt_names.iter().enumerate() {
        subject_alt_names.push(match (san.san_type.as_str(), &san.hostname, &san.uri) {
            ("Hostname", hostname, uri) if !hostname.is_empty() && uri.is_empty() => {
                BackendSubjectAltName::Hostname(hostname.to_ascii_lowercase())
            }
            ("URI", hostname, uri) if !uri.is_empty() && hostname.is_empty() => {
                BackendSubjectAltName::Uri(uri.clone())
            }
            _ => {
                return Err(failed(
                    "Invalid",
                    format!(
                        "subjectAltNames[{index}] must be type Hostname with a hostname or \
                         type URI with a uri"
                    ),
                ));
            }
        });
    }
    Ok(BackendTls {
        server_name: validation.hostname.clone(),
        roots,
        subject_alt_names,
        versions: BackendTlsVersions::default(),
        client_certificate: None,
        protocol: BackendTlsProtocol::default(),
    })
}

/// The `ca.crt` of ConfigMap `key`, when it holds at least one PEM certificate.
pub(crate) fn ca_certificates_pem<'a>(config: &'a Config, key: &ObjectKey) -> Option<&'a str> {
    let text = config
        .config_maps
        .iter()
        .find(|map| map.metadata.key() == *key)?
        .data
        .get("ca.crt")?;
    let parsed: Result<Vec<_>, _> = CertificateDer::pem_slice_iter(text.as_bytes()).collect();
    matches!(parsed, Ok(list) if !list.is_empty()).then_some(text.as_str())
}
