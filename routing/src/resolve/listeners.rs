//! Listener validation: protocol, TLS settings and certificates, allowed route kinds, and
//! conflicts between listeners of one Gateway (spec §2.4).

use super::references::{self, To};
use super::status::Condition;
use crate::compiled::{Certificate, ListenerProtocol};
use crate::model::{
    Config, GATEWAY_GROUP, Gateway, Listener, ListenerSet, ObjectKey, SecretObjectReference,
    TlsMode,
};

/// A listener after validation.
pub(crate) struct ListenerState {
    pub(crate) protocol: Option<ListenerProtocol>,
    pub(crate) certificates: Vec<Certificate>,
    /// A TLS listener in Terminate mode.
    pub(crate) tls_terminate: bool,
    /// Route kinds that may attach.
    pub(crate) kinds: Vec<String>,
    pub(crate) conditions: Vec<Condition>,
}

impl ListenerState {
    /// Whether routes may attach and the listener is served.
    pub(crate) fn usable(&self) -> bool {
        self.protocol.is_some()
    }
}

/// Who declared a listener: the Gateway itself, or a ListenerSet attached to it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ListenerOwner<'a> {
    /// `Gateway` or `ListenerSet`.
    pub(crate) kind: &'static str,
    pub(crate) namespace: &'a str,
    pub(crate) name: &'a str,
}

impl<'a> ListenerOwner<'a> {
    pub(crate) fn gateway(gateway: &'a Gateway) -> Self {
        ListenerOwner {
            kind: "Gateway",
            namespace: &gateway.metadata.namespace,
            name: &gateway.metadata.name,
        }
    }

    pub(crate) fn listener_set(set: &'a ListenerSet) -> Self {
        ListenerOwner {
            kind: "ListenerSet",
            namespace: &set.metadata.namespace,
            name: &set.metadata.name,
        }
    }

    /// The ListenerSet's key, for listeners a ListenerSet declared.
    pub(crate) fn listener_set_key(&self) -> Option<ObjectKey> {
        (self.kind == "ListenerSet").then(|| ObjectKey::new(self.namespace, self.name))
    }
}

/// One listener a Gateway serves, validated.
pub(crate) struct ServedListener<'a> {
    pub(crate) listener: &'a Listener,
    pub(crate) owner: ListenerOwner<'a>,
    pub(crate) state: ListenerState,
}

/// Validates the listeners of `gateway` followed by those of `sets` (in precedence order).
/// Conflicting listeners of one owner are all rejected; a ListenerSet's listener that
/// conflicts with one of the Gateway or of an earlier ListenerSet is rejected and the earlier
/// one kept (GEP-1713).
pub(crate) fn validate_listeners<'a>(
    config: &Config,
    gateway: &'a Gateway,
    sets: &[&'a ListenerSet],
) -> Vec<ServedListener<'a>> {
    let owners = std::iter::once((ListenerOwner::gateway(gateway), &gateway.spec.listeners)).chain(
        sets.iter()
            .map(|set| (ListenerOwner::listener_set(set), &set.spec.listeners)),
    );
    let mut ranked: Vec<(usize, ServedListener<'a>)> = Vec::new();
    for (rank, (owner, listeners)) in owners.enumerate() {
        for listener in listeners {
            let state = validate(config, owner, listener);
            ranked.push((
                rank,
                ServedListener {
                    listener,
                    owner,
                    state,
                },
            ));
        }
    }
    let conflicts: Vec<Option<&'static str>> = ranked
        .iter()
        .enumerate()
        .map(|(index, (rank, served))| {
            ranked
                .iter()
                .enumerate()
                .find_map(|(other_index, (other_rank, other))| {
                    (other_index != index
                        && other_rank <= rank
                        && other.listener.port == served.listener.port)
                        .then(|| conflict_between(served.listener, other.listener))
                        .flatten()
                })
        })
        .collect();
    ranked
        .into_iter()
        .zip(conflicts)
        .map(|((_, mut served), conflict)| {
            if let Some(reason) = conflict {
                let state = &mut served.state;
                state.conditions.push(Condition::failed(
                    "Conflicted",
                    reason,
                    format!(
                        "another listener on port {} conflicts",
                        served.listener.port
                    ),
                ));
                state.protocol = None;
                for condition in &mut state.conditions {
                    if condition.condition_type == "Programmed" {
                        *condition = Condition::failed("Programmed", "Invalid", "conflicted");
                    }
                }
            }
            served
        })
        .collect()
}

fn family(protocol: &str) -> &str {
    match protocol {
        "HTTPS" | "TLS" => "TLS",
        other => other,
    }
}

/// Two listeners on one port conflict when their protocols cannot share a socket, or when they
/// share one and cannot be told apart by hostname.
fn conflict_between(a: &Listener, b: &Listener) -> Option<&'static str> {
    let udp = |l: &Listener| l.protocol == "UDP";
    if udp(a) != udp(b) {
        return None; // different transports
    }
    if family(&a.protocol) != family(&b.protocol) {
        return Some("ProtocolConflict");
    }
    let hostname = |l: &Listener| match l.protocol.as_str() {
        "TCP" | "UDP" => String::new(),
        _ => l.hostname.clone().unwrap_or_default().to_ascii_lowercase(),
    };
    (hostname(a) == hostname(b)).then_some("HostnameConflict")
}

fn validate(config: &Config, owner: ListenerOwner<'_>, listener: &Listener) -> ListenerState {
    let mut state = ListenerState {
        protocol: None,
        certificates: Vec::new(),
        tls_terminate: false,
        kinds: Vec::new(),
        conditions: Vec::new(),
    };
    let (protocol, default_kinds): (ListenerProtocol, &[&str]) = match listener.protocol.as_str() {
        "HTTP" => (ListenerProtocol::Http, &["HTTPRoute", "GRPCRoute"]),
        "HTTPS" => (ListenerProtocol::Https, &["HTTPRoute", "GRPCRoute"]),
        "TLS" => (ListenerProtocol::Tls, &["TLSRoute"]),
        "TCP" => (ListenerProtocol::Tcp, &["TCPRoute"]),
        "UDP" => (ListenerProtocol::Udp, &["UDPRoute"]),
        other => {
            state.conditions.push(Condition::failed(
                "Accepted",
                "UnsupportedProtocol",
                format!("protocol {other:?} is not supported"),
            ));
            state
                .conditions
                .push(Condition::failed("Programmed", "Invalid", "not accepted"));
            return state;
        }
    };
    let mut resolved_refs = Condition::ok("ResolvedRefs", "ResolvedRefs");
    if listener.allowed_routes.kinds.is_empty() {
        state.kinds = default_kinds.iter().map(|k| k.to_string()).collect();
    } else {
        for kind in &listener.allowed_routes.kinds {
            if kind.group == GATEWAY_GROUP && default_kinds.contains(&kind.kind.as_str()) {
                state.kinds.push(kind.kind.clone());
            } else {
                resolved_refs = Condition::failed(
                    "ResolvedRefs",
                    "InvalidRouteKinds",
                    format!(
                        "route kind {}/{} is not supported on {:?}",
                        kind.group, kind.kind, listener.protocol
                    ),
                );
            }
        }
    }
    let accepted = match (protocol, &listener.tls) {
        (ListenerProtocol::Https, Some(tls)) if tls.mode == TlsMode::Terminate => {
            match certificates(config, owner, listener) {
                Ok(certificates) => state.certificates = certificates,
                Err(problem) => resolved_refs = problem,
            }
            Ok(())
        }
        (ListenerProtocol::Https, _) => Err("HTTPS needs tls.mode Terminate with certificateRefs"),
        (ListenerProtocol::Tls, Some(tls)) if tls.mode == TlsMode::Passthrough => Ok(()),
        (ListenerProtocol::Tls, Some(tls)) if tls.mode == TlsMode::Terminate => {
            state.tls_terminate = true;
            match certificates(config, owner, listener) {
                Ok(certificates) => state.certificates = certificates,
                Err(problem) => resolved_refs = problem,
            }
            Ok(())
        }
        (ListenerProtocol::Tls, _) => Err("TLS listeners need tls.mode Passthrough or Terminate"),
        (_, Some(_)) => Err("tls is only allowed on HTTPS and TLS listeners"),
        (_, None) => Ok(()),
    };
    if let Err(message) = accepted {
        state
            .conditions
            .push(Condition::failed("Accepted", "UnsupportedValue", message));
        state
            .conditions
            .push(Condition::failed("Programmed", "Invalid", "not accepted"));
        return state;
    }
    state.conditions.push(Condition::ok("Accepted", "Accepted"));
    let programmed = if resolved_refs.is_true() {
        Condition::ok("Programmed", "Programmed")
    } else {
        Condition::failed("Programmed", "Invalid", "references did not resolve")
    };
    let usable = resolved_refs.reason != "InvalidCertificateRef"
        && resolved_refs.reason != "RefNotPermitted";
    state.conditions.push(resolved_refs);
    state.conditions.push(programmed);
    if usable {
        state.protocol = Some(protocol);
    }
    state
}

fn certificates(
    config: &Config,
    owner: ListenerOwner<'_>,
    listener: &Listener,
) -> Result<Vec<Certificate>, Condition> {
    let refs = listener.tls.iter().flat_map(|tls| &tls.certificate_refs);
    let mut certificates = Vec::new();
    for reference in refs {
        certificates.push(tls_secret(config, owner, reference, "certificateRef")?);
    }
    if certificates.is_empty() {
        return Err(Condition::failed(
            "ResolvedRefs",
            "InvalidCertificateRef",
            "no certificateRefs",
        ));
    }
    Ok(certificates)
}

/// The `kubernetes.io/tls` Secret `reference` (written in `owner`, as its `field`) names,
/// through ReferenceGrants; else the `ResolvedRefs=False` condition saying why.
pub(crate) fn tls_secret(
    config: &Config,
    owner: ListenerOwner<'_>,
    reference: &SecretObjectReference,
    field: &str,
) -> Result<Certificate, Condition> {
    let namespace = reference.namespace.as_deref().unwrap_or(owner.namespace);
    let key = ObjectKey::new(namespace, reference.name.clone());
    let invalid =
        |message: String| Condition::failed("ResolvedRefs", "InvalidCertificateRef", message);
    if !reference.group.is_empty() || reference.kind != "Secret" {
        return Err(invalid(format!(
            "{field} {key}: only core Secrets are supported"
        )));
    }
    let from = references::From {
        group: GATEWAY_GROUP,
        kind: owner.kind,
        namespace: owner.namespace,
        mesh: false,
    };
    let to = To {
        group: "",
        kind: "Secret",
        namespace,
        name: &reference.name,
    };
    if !references::permitted(config, from, to) {
        return Err(Condition::failed(
            "ResolvedRefs",
            "RefNotPermitted",
            format!("{field} {key}: no ReferenceGrant in {namespace} permits it"),
        ));
    }
    let Some(secret) = config.secrets.iter().find(|s| s.metadata.key() == key) else {
        return Err(invalid(format!("Secret {key} not found")));
    };
    match (secret.value("tls.crt"), secret.value("tls.key")) {
        (Some(chain_pem), Some(key_pem))
            if secret.secret_type == "kubernetes.io/tls" && valid_pem(&chain_pem, &key_pem) =>
        {
            Ok(Certificate {
                secret: key,
                chain_pem,
                key_pem,
            })
        }
        _ => Err(invalid(format!(
            "Secret {key} is not a kubernetes.io/tls Secret with PEM tls.crt and tls.key"
        ))),
    }
}

/// Whether `chain_pem` holds at least one certificate and `key_pem` a private key (PKCS#1,
/// PKCS#8 or SEC1), as PEM.
fn valid_pem(chain_pem: &[u8], key_pem: &[u8]) -> bool {
    use rustls_pki_types::pem::PemObject;
    use rustls_pki_types::{CertificateDer, PrivateKeyDer};
    let certificates: Result<Vec<_>, _> = CertificateDer::pem_slice_iter(chain_pem).collect();
    matches!(certificates, Ok(list) if !list.is_empty())
        && PrivateKeyDer::from_pem_slice(key_pem).is_ok()
}
