//! `extAuth` compiled against its configuration: the authorizer's Service resolved to ready
//! endpoints (as cluster DNS and kube-proxy would reach it), header lists parsed, defaults
//! applied (timeout 10 s, 403 on error).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use http::StatusCode;
use http::header::HeaderName;
use routing::model::{BackendObjectReference, Config};
use routing::resolve::{parse_duration, service_port_endpoints};

use super::{
    AuthorizerClient, AuthorizerRequest, AuthorizerResponse, CheckContext, ExtAuthVerdict,
};
use crate::security::model::{ContextExtensionSpec, ExtAuthSpec};

/// Envoy Gateway's default `extAuth` timeout.
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

/// How the authorizer is spoken to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthorizerProtocol {
    /// Plain HTTP/1.1: the authorizer's status decides.
    Http,
    /// gRPC over HTTP/2 (prior knowledge): `Authorization/Check`.
    Grpc,
}

/// The authorizer's Service, resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthorizerTarget {
    /// `name.namespace:port`, sent as `Host`/`:authority`.
    pub authority: String,
    /// Its ready endpoints when the configuration was compiled (empty: none ready).
    pub endpoints: Vec<SocketAddr>,
}

/// A compiled `extAuth`.
#[derive(Debug, Clone)]
pub struct ExtAuth {
    /// Where and how to ask.
    pub target: Arc<AuthorizerTarget>,
    /// HTTP or gRPC.
    pub protocol: AuthorizerProtocol,
    /// HTTP: the prefix put before the request's path.
    pub path_prefix: String,
    /// HTTP: headers of the authorizer's 2xx answer copied onto the request.
    pub headers_to_backend: Vec<HeaderName>,
    /// Request headers sent (empty: the protocol's default).
    pub headers_to_ext_auth: Vec<HeaderName>,
    /// `bodyToExtAuth.maxRequestBytes`.
    pub max_body_bytes: Option<usize>,
    /// `failOpen`.
    pub fail_open: bool,
    /// `statusOnError`.
    pub status_on_error: StatusCode,
    /// `timeout`.
    pub timeout: Duration,
    /// gRPC `context_extensions`.
    pub context_extensions: Vec<(String, String)>,
    /// Select the route again once the authorizer's headers are added (`recomputeRoute`).
    pub recompute_route: bool,
    /// Who performs the exchanges.
    pub client: Arc<dyn AuthorizerClient>,
}

impl ExtAuth {
    /// Compiles `spec`, written in `namespace`, against `config`.
    pub fn compile(
        spec: &ExtAuthSpec,
        namespace: &str,
        config: &Config,
        client: Option<&Arc<dyn AuthorizerClient>>,
    ) -> Result<Self, String> {
        let (protocol, backend, backend_refs, path, headers_to_backend) =
            match (&spec.grpc, &spec.http) {
                (Some(grpc), None) => (
                    AuthorizerProtocol::Grpc,
                    &grpc.backend_ref,
                    &grpc.backend_refs,
                    None,
                    &[][..],
                ),
                (None, Some(http)) => (
                    AuthorizerProtocol::Http,
                    &http.backend_ref,
                    &http.backend_refs,
                    http.path.as_deref(),
                    &http.headers_to_backend[..],
                ),
                _ => return Err("extAuth needs exactly one of grpc and http".to_owned()),
            };
        let reference = single_backend(backend, backend_refs)?;
        let target = resolve_target(reference, namespace, config)?;
        let status_on_error = status_on_error("extAuth.statusOnError", spec.status_on_error)?;
        let timeout = timeout("extAuth.timeout", spec.timeout.as_deref(), DEFAULT_TIMEOUT)?;
        let client = client
            .cloned()
            .ok_or_else(|| "extAuth needs a runtime that calls authorizers".to_owned())?;
        Ok(ExtAuth {
            target: Arc::new(target),
            protocol,
            path_prefix: path_prefix(path),
            headers_to_backend: header_names("extAuth.http.headersToBackend", headers_to_backend)?,
            headers_to_ext_auth: header_names(
                "extAuth.headersToExtAuth",
                &spec.headers_to_ext_auth,
            )?,
            max_body_bytes: spec
                .body_to_ext_auth
                .as_ref()
                .map(|b| usize::try_from(b.max_request_bytes).unwrap_or(usize::MAX)),
            fail_open: spec.fail_open,
            status_on_error,
            timeout,
            context_extensions: context_extensions(&spec.context_extensions, namespace, config)?,
            recompute_route: spec.recompute_route.unwrap_or(false),
            client,
        })
    }

    /// The exchange that asks about a request with head `parts`.
    pub fn prepare(
        &self,
        parts: &http::request::Parts,
        context: &CheckContext<'_>,
    ) -> Result<AuthorizerRequest, String> {
        let request = match self.protocol {
            AuthorizerProtocol::Http => super::http_check::check_request(self, parts, context)?,
            AuthorizerProtocol::Grpc => super::grpc::check_request(self, parts, context)?,
        };
        Ok(AuthorizerRequest {
            target: Arc::clone(&self.target),
            protocol: self.protocol,
            request,
            timeout: self.timeout,
        })
    }

    /// What the authorizer's `answer` decides.
    pub fn interpret(&self, answer: Result<AuthorizerResponse, String>) -> ExtAuthVerdict {
        let answer = match answer {
            Ok(answer) => answer,
            Err(reason) => return ExtAuthVerdict::Failed(reason),
        };
        match self.protocol {
            AuthorizerProtocol::Http => super::http_check::verdict(self, answer),
            AuthorizerProtocol::Grpc => super::grpc::verdict(answer),
        }
    }
}

fn single_backend<'a>(
    backend: &'a Option<BackendObjectReference>,
    backend_refs: &'a [routing::model::BackendRef],
) -> Result<&'a BackendObjectReference, String> {
    match (backend, backend_refs) {
        (Some(one), []) => Ok(one),
        (None, [one]) => Ok(&one.backend),
        (None, []) => Err("extAuth names no backend".to_owned()),
        _ => Err("extAuth: one backend is supported".to_owned()),
    }
}

fn resolve_target(
    reference: &BackendObjectReference,
    namespace: &str,
    config: &Config,
) -> Result<AuthorizerTarget, String> {
    if !reference.group.is_empty() || reference.kind != "Service" {
        return Err(format!(
            "extAuth backend {}: kind {}/{} is not supported",
            reference.name, reference.group, reference.kind
        ));
    }
    if reference
        .namespace
        .as_deref()
        .is_some_and(|ns| ns != namespace)
    {
        return Err(format!(
            "extAuth backend {}: a Service in another namespace is not allowed",
            reference.name
        ));
    }
    let port = reference
        .port
        .ok_or_else(|| format!("extAuth backend {} needs a port", reference.name))?;
    if !config
        .services
        .iter()
        .any(|s| s.metadata.namespace == namespace && s.metadata.name == reference.name)
    {
        return Err(format!(
            "extAuth backend Service {namespace}/{} not found",
            reference.name
        ));
    }
    Ok(AuthorizerTarget {
        authority: format!("{}.{namespace}:{port}", reference.name),
        endpoints: service_port_endpoints(config, namespace, &reference.name, port),
    })
}

/// `statusOnError`: a 4xx or 5xx, 403 when absent.
pub(crate) fn status_on_error(field: &str, code: Option<u16>) -> Result<StatusCode, String> {
    match code {
        None => Ok(StatusCode::FORBIDDEN),
        Some(code) => StatusCode::from_u16(code)
            .ok()
            .filter(|s| s.is_client_error() || s.is_server_error())
            .ok_or_else(|| format!("{field} {code} is not a 4xx or 5xx")),
    }
}

/// A non-zero Gateway API duration, `default` when absent.
pub(crate) fn timeout(
    field: &str,
    text: Option<&str>,
    default: Duration,
) -> Result<Duration, String> {
    match text {
        None => Ok(default),
        Some(text) => parse_duration(text)
            .filter(|d| !d.is_zero())
            .ok_or_else(|| format!("{field} {text:?} is not a duration")),
    }
}

/// The path prefix of HTTP check requests (no trailing `/`).
pub(crate) fn path_prefix(path: Option<&str>) -> String {
    path.unwrap_or_default().trim_end_matches('/').to_owned()
}

/// Header names, each checked.
pub(crate) fn header_names(field: &str, names: &[String]) -> Result<Vec<HeaderName>, String> {
    names
        .iter()
        .map(|n| {
            HeaderName::try_from(n.as_str())
                .map_err(|_| format!("{field}: {n:?} is not a header name"))
        })
        .collect()
}

fn context_extensions(
    specs: &[ContextExtensionSpec],
    namespace: &str,
    config: &Config,
) -> Result<Vec<(String, String)>, String> {
    specs
        .iter()
        .map(|spec| {
            let at = format!("extAuth.contextExtensions {:?}", spec.name);
            let value = match (
                spec.kind.as_deref().unwrap_or("Value"),
                &spec.value,
                &spec.value_ref,
            ) {
                ("Value", Some(value), None) => value.clone(),
                ("ValueRef", None, Some(reference)) => {
                    let found = match reference.kind.as_str() {
                        "ConfigMap" => config
                            .config_maps
                            .iter()
                            .find(|m| {
                                m.metadata.namespace == namespace
                                    && m.metadata.name == reference.name
                            })
                            .and_then(|m| m.data.get(&reference.key).cloned()),
                        "Secret" => config
                            .secrets
                            .iter()
                            .find(|s| {
                                s.metadata.namespace == namespace
                                    && s.metadata.name == reference.name
                            })
                            .and_then(|s| s.value(&reference.key))
                            .and_then(|v| String::from_utf8(v).ok()),
                        other => {
                            return Err(format!("{at}: valueRef kind {other} is not supported"));
                        }
                    };
                    found.ok_or_else(|| {
                        format!(
                            "{at}: {} {namespace}/{} has no key {:?}",
                            reference.kind, reference.name, reference.key
                        )
                    })?
                }
                _ => {
                    return Err(format!(
                        "{at}: needs a value (type Value) or a valueRef (type ValueRef)"
                    ));
                }
            };
            Ok((spec.name.clone(), value))
        })
        .collect()
}
