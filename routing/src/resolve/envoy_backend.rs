//! backendRef → Envoy Gateway `Backend` → its endpoints: IP addresses as written, host names
//! (`fqdn`) as the runtime resolved them into [`Config::resolved_names`], with TLS when a
//! BackendTLSPolicy targets the Backend, Unix sockets (`unix.path`, absolute) as their
//! stand-in addresses ([`crate::compiled::unix_socket`]). Not supported (the reference is
//! `ResolvedRefs=False`, naming the field): `wss` without TLS to speak. A `fallback`
//! Backend is a fallback entry of the rule's backends; the Backend's own `tls` is read by
//! [`super::envoy_backend_tls`].

use std::net::SocketAddr;
use std::sync::Arc;

use super::backends::ResolvedBackend;
use super::envoy_backend_tls::own_tls;
use super::references::{self, To};
use crate::backends::BackendState;
use crate::compiled::unix_socket::{MAX_PATH_BYTES, unix_socket_address};
use crate::compiled::{
    Backend, BackendNames, BackendProtocol, Endpoint, LookupFamily, NamedEndpoint, WrittenEndpoint,
};
use crate::model::envoy_backend::{ENVOY_GATEWAY_GROUP, EnvoyBackendSpec, is_envoy_backend};
use crate::model::{BackendObjectReference, Config, ObjectKey};

/// Whether `reference` names an Envoy Gateway `Backend`.
pub(crate) fn names_envoy_backend(reference: &BackendObjectReference) -> bool {
    reference.group == ENVOY_GATEWAY_GROUP && reference.kind == "Backend"
}

/// Resolves `reference` (a `Backend`), written in an object of `from`.
pub(crate) fn resolve_envoy_backend(
    config: &Config,
    from: references::From<'_>,
    reference: &BackendObjectReference,
) -> ResolvedBackend {
    let invalid = ResolvedBackend::invalid;
    let namespace = reference.namespace.as_deref().unwrap_or(from.namespace);
    let key = ObjectKey::new(namespace, reference.name.clone());
    let to = To {
        group: ENVOY_GATEWAY_GROUP,
        kind: "Backend",
        namespace,
        name: &reference.name,
    };
    if !references::permitted(config, from, to) {
        return invalid(
            "RefNotPermitted",
            format!("backend {key}: no ReferenceGrant in {namespace} permits it"),
        );
    }
    let Some(object) = config
        .foreign
        .iter()
        .find(|object| is_envoy_backend(object) && object.metadata.key() == key)
    else {
        return invalid("BackendNotFound", format!("Backend {key} not found"));
    };
    let spec = match EnvoyBackendSpec::of(object) {
        Ok(spec) => spec,
        Err(error) => return invalid("UnsupportedValue", format!("Backend {key}: {error}")),
    };
    let protocol = match app_protocol(&spec.app_protocols) {
        Ok(protocol) => protocol,
        Err(message) => return invalid("UnsupportedProtocol", format!("Backend {key}: {message}")),
    };
    let names = match written_endpoints(config, &spec) {
        Ok(names) => names,
        Err(message) => return invalid("UnsupportedValue", format!("Backend {key}: {message}")),
    };
    let endpoints = names.endpoints(LookupFamily::default());
    // A BackendTLSPolicy targeting the Backend takes precedence over its own `tls`.
    let tls = match super::backend_tls::envoy_backend_tls(config, &key) {
        Ok(Some(tls)) => Some(Arc::new(tls)),
        Ok(None) => match &spec.tls {
            None => None,
            Some(settings) => match own_tls(config, &key, settings) {
                Ok(tls) => Some(Arc::new(tls)),
                Err(message) => {
                    return invalid("UnsupportedValue", format!("Backend {key}: {message}"));
                }
            },
        },
        Err(problem) => return ResolvedBackend::failed(problem),
    };
    if tls.is_none()
        && spec
            .app_protocols
            .iter()
            .any(|p| p == "gateway.envoyproxy.io/wss")
    {
        return invalid(
            "UnsupportedProtocol",
            format!(
                "Backend {key}: spec.appProtocols: gateway.envoyproxy.io/wss needs spec.tls or a \
                 BackendTLSPolicy"
            ),
        );
    }
    let port = reference
        .port
        .or_else(|| endpoints.first().map(|e| e.address.port()))
        .unwrap_or_default();
    let state = if endpoints.is_empty() {
        BackendState::NoEndpoints
    } else {
        BackendState::Ready(Arc::new(Backend {
            service: key,
            port,
            endpoints: Arc::from(endpoints),
            protocol,
            filters: Vec::new(),
            policy: crate::slot::PolicySlot::default(),
            tls,
            cluster_address: None,
            names: Some(Arc::new(names)),
        }))
    };
    ResolvedBackend {
        state,
        problem: None,
        fallback: spec.fallback == Some(true),
    }
}

/// The protocol `appProtocols` asks for (HTTP/1.1 without one).
fn app_protocol(protocols: &[String]) -> Result<BackendProtocol, String> {
    let mut chosen = BackendProtocol::Http1;
    for (index, protocol) in protocols.iter().enumerate() {
        chosen = match protocol.as_str() {
            "gateway.envoyproxy.io/h2c" => BackendProtocol::H2c,
            // WebSocket over TLS: the TLS comes from `tls` or a BackendTLSPolicy.
            "gateway.envoyproxy.io/ws" | "gateway.envoyproxy.io/wss" => BackendProtocol::WebSocket,
            other => {
                return Err(format!(
                    "spec.appProtocols[{index}]: {other:?} is not supported"
                ));
            }
        };
    }
    Ok(chosen)
}

/// The endpoints as written, host names with what they resolved to (both families).
fn written_endpoints(config: &Config, spec: &EnvoyBackendSpec) -> Result<BackendNames, String> {
    let mut written = Vec::new();
    for (index, endpoint) in spec.endpoints.iter().enumerate() {
        let zone = endpoint.zone.as_deref().map(Arc::from);
        let field = format!("spec.endpoints[{index}]");
        match (&endpoint.ip, &endpoint.fqdn, &endpoint.unix) {
            (Some(ip), None, None) => written.push(WrittenEndpoint::Address(Endpoint {
                address: SocketAddr::new(ip.address, ip.port),
                pod: None,
                zone,
            })),
            (None, Some(fqdn), None) => written.push(WrittenEndpoint::Name(NamedEndpoint {
                hostname: fqdn.hostname.clone(),
                port: fqdn.port,
                zone,
                addresses: config
                    .resolved_names
                    .get(&fqdn.hostname)
                    .cloned()
                    .unwrap_or_default(),
            })),
            (None, None, Some(unix)) => {
                let path = &unix.path;
                if !path.starts_with('/') || path.len() > MAX_PATH_BYTES || path.contains('\0') {
                    return Err(format!(
                        "{field}.unix.path: {path:?} is not an absolute path of at most {MAX_PATH_BYTES} bytes"
                    ));
                }
                written.push(WrittenEndpoint::Address(Endpoint {
                    address: unix_socket_address(path),
                    pod: None,
                    zone,
                }));
            }
            _ => return Err(format!("{field}: exactly one of ip, fqdn and unix")),
        }
    }
    Ok(BackendNames(written))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::compiled::{BackendTlsProtocol, BackendTlsVersions, TlsRoots};
    use crate::tls_names::{KxGroup, SignatureAlgorithm, Tls12Cipher};

    const ROUTE: references::From<'static> = references::From {
        group: "gateway.networking.k8s.io",
        kind: "HTTPRoute",
        namespace: "default",
        mesh: false,
    };

    fn config(backend_spec: &str) -> Config {
        let yaml = format!(
            "apiVersion: gateway.envoyproxy.io/v1alpha1\nkind: Backend\nmetadata: {{name: ext}}\n\
             spec: {backend_spec}\n"
        );
        crate::loader::load_str("test.yaml", &yaml).unwrap().config
    }

    fn reference(name: &str) -> BackendObjectReference {
        serde_yaml_ng::from_str(&format!(
            "{{group: gateway.envoyproxy.io, kind: Backend, name: {name}}}"
        ))
        .unwrap()
    }

    #[test]
    fn ip_endpoints_as_written_and_host_names_as_resolved() {
        let mut config = config(
            "{endpoints: [{ip: {address: 10.1.2.3, port: 8080}, zone: a}, \
             {fqdn: {hostname: api.example.com, port: 443}}], \
             appProtocols: [gateway.envoyproxy.io/h2c]}",
        );
        config.resolved_names.insert(
            "api.example.com".into(),
            vec!["192.0.2.7".parse().unwrap(), "2001:db8::7".parse().unwrap()],
        );
        assert_eq!(
            config.backend_hostnames().into_iter().collect::<Vec<_>>(),
            ["api.example.com"]
        );
        let resolved = resolve_envoy_backend(&config, ROUTE, &reference("ext"));
        assert!(resolved.problem.is_none());
        let BackendState::Ready(backend) = resolved.state else {
            panic!("ready");
        };
        let addresses: Vec<String> = backend
            .endpoints
            .iter()
            .map(|e| e.address.to_string())
            .collect();
        // IPv4 preferred unless a policy asks for another family; the names keep both.
        assert_eq!(addresses, ["10.1.2.3:8080", "192.0.2.7:443"]);
        let names = backend.names.as_deref().unwrap();
        assert_eq!(names.endpoints(LookupFamily::Ipv6).len(), 2);
        assert_eq!(backend.endpoints[0].zone.as_deref(), Some("a"));
        assert_eq!(backend.protocol, BackendProtocol::H2c);
        assert_eq!(backend.service, ObjectKey::new("default", "ext"));
    }

    #[test]
    fn an_unresolved_name_leaves_no_endpoints() {
        let config = config("{endpoints: [{fqdn: {hostname: nowhere.example, port: 80}}]}");
        let resolved = resolve_envoy_backend(&config, ROUTE, &reference("ext"));
        assert!(matches!(resolved.state, BackendState::NoEndpoints));
    }

    #[test]
    fn a_backend_with_tls_settings_gets_them() {
        let spec = "{endpoints: [{ip: {address: 10.0.0.1, port: 443}}], \
                    tls: {insecureSkipVerify: true, sni: API.example}}";
        let resolved = resolve_envoy_backend(&config(spec), ROUTE, &reference("ext"));
        assert!(resolved.problem.is_none(), "{:?}", resolved.problem);
        let BackendState::Ready(backend) = resolved.state else {
            panic!("ready");
        };
        let tls = backend.tls.as_deref().unwrap();
        assert_eq!(tls.server_name, "api.example");
        assert_eq!(tls.roots, TlsRoots::SkipVerification);
        let spec = "{endpoints: [{ip: {address: 10.0.0.1, port: 443}}], \
                    tls: {wellKnownCACertificates: System, sni: api.example}}";
        let resolved = resolve_envoy_backend(&config(spec), ROUTE, &reference("ext"));
        let BackendState::Ready(backend) = resolved.state else {
            panic!("ready");
        };
        assert_eq!(backend.tls.as_deref().unwrap().roots, TlsRoots::System);
        // Without `sni`, each request's host.
        let spec = "{endpoints: [{ip: {address: 10.0.0.1, port: 443}}], \
                    tls: {insecureSkipVerify: true}}";
        let resolved = resolve_envoy_backend(&config(spec), ROUTE, &reference("ext"));
        let BackendState::Ready(backend) = resolved.state else {
            panic!("ready");
        };
        assert_eq!(backend.tls.as_deref().unwrap().server_name, "");
        // Versions: a bound of 1.2 or 1.3 (unquoted YAML numbers too), a minimum below 1.2
        // allowing 1.2.
        for (versions, expected) in [
            ("maxVersion: '1.2'", BackendTlsVersions::Tls12),
            ("maxVersion: 1.2", BackendTlsVersions::Tls12),
            ("minVersion: '1.3'", BackendTlsVersions::Tls13),
            (
                "minVersion: '1.0', maxVersion: '1.3'",
                BackendTlsVersions::Both,
            ),
            ("minVersion: Auto", BackendTlsVersions::Both),
        ] {
            let spec = format!(
                "{{endpoints: [{{ip: {{address: 10.0.0.1, port: 443}}}}], \
                 tls: {{insecureSkipVerify: true, {versions}}}}}"
            );
            let resolved = resolve_envoy_backend(&config(&spec), ROUTE, &reference("ext"));
            let BackendState::Ready(backend) = resolved.state else {
                panic!("{versions}: {:?}", resolved.problem);
            };
            assert_eq!(
                backend.tls.as_deref().unwrap().versions,
                expected,
                "{versions}"
            );
        }
        // Suites, groups, signature schemes and ALPN as listed.
        let spec = "{endpoints: [{ip: {address: 10.0.0.1, port: 443}}], \
                    tls: {insecureSkipVerify: true, ciphers: [TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256], \
                    ecdhCurves: [P-384, X25519], signatureAlgorithms: [ed25519], alpnProtocols: []}}";
        let resolved = resolve_envoy_backend(&config(spec), ROUTE, &reference("ext"));
        let BackendState::Ready(backend) = resolved.state else {
            panic!("{:?}", resolved.problem);
        };
        assert_eq!(
            backend.tls.as_deref().unwrap().protocol,
            BackendTlsProtocol {
                ciphers: Some(vec![Tls12Cipher::EcdheRsaAes128GcmSha256]),
                kx_groups: Some(vec![KxGroup::P384, KxGroup::X25519]),
                signature_algorithms: Some(vec![SignatureAlgorithm::Ed25519]),
                alpn: Some(vec![]),
            }
        );
    }

    #[test]
    fn a_fallback_backend_is_marked_so() {
        let spec = "{endpoints: [{ip: {address: 10.0.0.1, port: 80}}], fallback: true}";
        let resolved = resolve_envoy_backend(&config(spec), ROUTE, &reference("ext"));
        assert!(resolved.problem.is_none());
        assert!(resolved.fallback);
        let spec = "{endpoints: [{ip: {address: 10.0.0.1, port: 80}}], fallback: false}";
        assert!(!resolve_envoy_backend(&config(spec), ROUTE, &reference("ext")).fallback);
    }

    #[test]
    fn what_is_not_supported_or_missing_is_named() {
        for (spec, expected) in [
            (
                "{endpoints: [{unix: {path: run/app.sock}}]}",
                "spec.endpoints[0].unix.path",
            ),
            (
                "{endpoints: [{ip: {address: 10.0.0.1, port: 80}}], tls: {sni: a.example}}",
                "spec.tls: one of caCertificateRefs",
            ),
            (
                "{endpoints: [{ip: {address: 10.0.0.1, port: 80}}], tls: {insecureSkipVerify: true, sni: '*.a.example'}}",
                "spec.tls.sni: \\\"*.a.example\\\" is not a host name",
            ),
            (
                "{endpoints: [{ip: {address: 10.0.0.1, port: 80}}], tls: {insecureSkipVerify: true, wellKnownCACertificates: System, sni: a.example}}",
                "insecureSkipVerify excludes",
            ),
            (
                "{endpoints: [{ip: {address: 10.0.0.1, port: 80}}], tls: {caCertificateRefs: [{kind: ConfigMap, name: ca}], wellKnownCACertificates: System, sni: a.example}}",
                "exclude each other",
            ),
            (
                "{endpoints: [{ip: {address: 10.0.0.1, port: 80}}], tls: {caCertificateRefs: [{kind: Secret, name: ca}], sni: a.example}}",
                "spec.tls.caCertificateRefs[0]: kind /Secret",
            ),
            (
                "{endpoints: [{ip: {address: 10.0.0.1, port: 80}}], tls: {caCertificateRefs: [{kind: ConfigMap, name: ca}], sni: a.example}}",
                "ConfigMap default/ca has no PEM",
            ),
            (
                "{endpoints: [{ip: {address: 10.0.0.1, port: 80}}], tls: {wellKnownCACertificates: System, minVersion: '1.3', ciphers: [ECDHE-RSA-AES128-GCM-SHA256]}}",
                "spec.tls.ciphers: only TLS 1.2 suites",
            ),
            (
                "{endpoints: [{ip: {address: 10.0.0.1, port: 80}}], tls: {wellKnownCACertificates: System, ciphers: [RC4-MD5]}}",
                "spec.tls.ciphers: \\\"RC4-MD5\\\"",
            ),
            (
                "{endpoints: [{ip: {address: 10.0.0.1, port: 80}}], tls: {wellKnownCACertificates: System, ecdhCurves: X25519}}",
                "spec.tls.ecdhCurves: a list of names",
            ),
            (
                "{endpoints: [{ip: {address: 10.0.0.1, port: 80}}], tls: {wellKnownCACertificates: System, signatureAlgorithms: [rsa_pkcs1_sha1]}}",
                "spec.tls.signatureAlgorithms[0]",
            ),
            (
                "{endpoints: [{ip: {address: 10.0.0.1, port: 80}}], tls: {wellKnownCACertificates: System, alpnProtocols: [h3]}}",
                "spec.tls.alpnProtocols: unsupported value",
            ),
            (
                "{endpoints: [{ip: {address: 10.0.0.1, port: 80}}], tls: {wellKnownCACertificates: System, minVersion: '1.3', maxVersion: '1.2'}}",
                "minVersion is above maxVersion",
            ),
            (
                "{endpoints: [{ip: {address: 10.0.0.1, port: 80}}], tls: {wellKnownCACertificates: System, maxVersion: '1.1'}}",
                "TLS below 1.2",
            ),
            (
                "{endpoints: [{ip: {address: 10.0.0.1, port: 80}}], tls: {wellKnownCACertificates: System, minVersion: '2.0'}}",
                "spec.tls.minVersion: one of Auto",
            ),
            (
                "{endpoints: [{ip: {address: 10.0.0.1, port: 80}}], tls: {wellKnownCACertificates: System, clientCertificateRef: {name: nope}}}",
                "Secret default/nope not found",
            ),
            (
                "{endpoints: [{ip: {address: 10.0.0.1, port: 80}}], tls: {wellKnownCACertificates: System, clientCertificateRef: {kind: ConfigMap, name: c}}}",
                "spec.tls.clientCertificateRef default/c: only core Secrets",
            ),
            (
                "{endpoints: [{ip: {address: 10.0.0.1, port: 80}}], tls: {wellKnownCACertificates: System, sni: a.example, colour: red}}",
                "spec.tls: unknown field \\\"colour\\\"",
            ),
            (
                "{endpoints: [{ip: {address: 10.0.0.1, port: 80}}], appProtocols: [gateway.envoyproxy.io/wss]}",
                "spec.appProtocols: gateway.envoyproxy.io/wss needs spec.tls or a BackendTLSPolicy",
            ),
            (
                "{endpoints: [{ip: {address: 10.0.0.1, port: 80}}], appProtocols: [gateway.envoyproxy.io/grpc]}",
                "spec.appProtocols[0]",
            ),
            ("{endpoints: []}", "spec.endpoints: between 1 and 64"),
            ("{endpoints: [{}]}", "spec.endpoints[0]: exactly one of"),
            ("{endpoints: [{ip: {address: nope, port: 80}}]}", "spec: "),
        ] {
            let resolved = resolve_envoy_backend(&config(spec), ROUTE, &reference("ext"));
            assert!(matches!(resolved.state, BackendState::Invalid), "{spec}");
            let message = format!("{:?}", resolved.problem);
            assert!(message.contains(expected), "{spec}: {message}");
        }
        let missing = resolve_envoy_backend(&config("{endpoints: []}"), ROUTE, &reference("other"));
        assert!(format!("{:?}", missing.problem).contains("BackendNotFound"));
    }
}
