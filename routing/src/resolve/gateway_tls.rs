//! A Gateway's `spec.tls`: client-certificate validation of its TLS listeners (`frontend`:
//! a default and per-port overrides; CA certificates from ConfigMaps, key `ca.crt`) and the
//! client certificate it presents to TLS backends (`backend.clientCertificateRef`).

use std::sync::Arc;

use super::backend_tls::ca_certificates_pem;
use super::listeners::{ListenerOwner, tls_secret};
use super::references::{self, To};
use super::status::Condition;
use crate::compiled::{Certificate, ClientValidation};
use crate::model::{
    Config, FrontendTlsValidation, FrontendValidationMode, GATEWAY_GROUP, Gateway, ObjectKey,
};

/// The client-certificate validation for the Gateway's TLS listeners on `port` (the per-port
/// override, else the default); `Err`: the listener's `ResolvedRefs=False` condition.
pub(crate) fn frontend_validation(
    config: &Config,
    gateway: &Gateway,
    port: u16,
) -> Result<Option<Arc<ClientValidation>>, Condition> {
    let Some(frontend) = gateway
        .spec
        .tls
        .as_ref()
        .and_then(|tls| tls.frontend.as_ref())
    else {
        return Ok(None);
    };
    let settings = frontend
        .per_port
        .iter()
        .find(|entry| entry.port == port)
        .map_or(&frontend.default, |entry| &entry.tls);
    match &settings.validation {
        None => Ok(None),
        Some(validation) => validate(config, gateway, validation).map(|v| Some(Arc::new(v))),
    }
}

fn validate(
    config: &Config,
    gateway: &Gateway,
    validation: &FrontendTlsValidation,
) -> Result<ClientValidation, Condition> {
    let invalid =
        |message: String| Condition::failed("ResolvedRefs", "InvalidCACertificateRef", message);
    let allow_insecure_fallback = match validation.mode {
        FrontendValidationMode::AllowValidOnly => false,
        FrontendValidationMode::AllowInsecureFallback => true,
        FrontendValidationMode::Unsupported => {
            return Err(invalid(
                "tls.frontend validation mode is not supported".into(),
            ));
        }
    };
    if validation.ca_certificate_refs.is_empty() {
        return Err(invalid(
            "tls.frontend validation has no caCertificateRefs".into(),
        ));
    }
    let mut roots = Vec::new();
    for reference in &validation.ca_certificate_refs {
        let namespace = reference
            .namespace
            .as_deref()
            .unwrap_or(&gateway.metadata.namespace);
        let key = ObjectKey::new(namespace, reference.name.clone());
        if !reference.group.is_empty() || reference.kind != "ConfigMap" {
            return Err(Condition::failed(
                "ResolvedRefs",
                "InvalidKind",
                format!("caCertificateRef {key}: only ConfigMaps are supported"),
            ));
        }
        let from = references::From {
            group: GATEWAY_GROUP,
            kind: "Gateway",
            namespace: &gateway.metadata.namespace,
            mesh: false,
        };
        let to = To {
            group: "",
            kind: "ConfigMap",
            namespace,
            name: &reference.name,
        };
        if !references::permitted(config, from, to) {
            return Err(Condition::failed(
                "ResolvedRefs",
                "RefNotPermitted",
                format!("caCertificateRef {key}: no ReferenceGrant in {namespace} permits it"),
            ));
        }
        match ca_certificates_pem(config, &key) {
            Some(text) => roots.extend_from_slice(text.as_bytes()),
            None => return Err(invalid(format!("ConfigMap {key} has no PEM `ca.crt`"))),
        }
    }
    Ok(ClientValidation {
        roots_pem: Arc::from(roots),
        allow_insecure_fallback,
    })
}

/// The certificate the Gateway presents to TLS backends; `Err`: the Gateway's condition.
pub(crate) fn backend_client_certificate(
    config: &Config,
    gateway: &Gateway,
) -> Result<Option<Arc<Certificate>>, Condition> {
    let reference = gateway
        .spec
        .tls
        .as_ref()
        .and_then(|tls| tls.backend.as_ref())
        .and_then(|backend| backend.client_certificate_ref.as_ref());
    match reference {
        None => Ok(None),
        Some(reference) => tls_secret(
            config,
            ListenerOwner::gateway(gateway),
            reference,
            "tls.backend.clientCertificateRef",
        )
        .map(|certificate| Some(Arc::new(certificate))),
    }
}
