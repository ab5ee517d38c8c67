//! ClientTrafficPolicy and BackendTrafficPolicy specs compiled into what the layers apply,
//! with the CRDs' validation rules; an invalid policy compiles to its reason, reported in
//! its status, and is attached nowhere.

use std::sync::Arc;
use std::time::Duration;

use http::header::HeaderName;
use http::{Method, StatusCode};
use routing::compiled::Backend;
use routing::model::{Config, ObjectKey};
use routing::resolve::parse_duration;
use routing::router::PolicyBalancer;

use super::balance::{Balancer, LoadBalancing, ProbeEndpoints};
use super::client_ip::{ClientIpDetection, XffTrust};
use super::fault::{Abort, FaultInjection};
use super::header_format::HeaderValueTemplate;
use super::headers::{HeaderEdits, RequestIdPolicy};
use super::model::{
    BackendTrafficPolicySpec, ClientSelectorSpec, ClientTrafficPolicySpec, RateLimitRuleSpec,
    UnsupportedFields, ValueMatchSpec,
};
use super::normalize::{Normalization, Underscores};
use super::path::{EscapedSlashes, PathNormalization};
use super::rate_limit::clock::Epoch;
use super::rate_limit::global::{GlobalRateLimit, GlobalRule, SharedCounters};
use super::rate_limit::local::{LocalRateLimit, RateLimitRule, RuleBuckets};
use super::rate_limit::rules::{
    ClientSelector, FieldName, PathCondition, SourceCondition, ValueCondition, ValueMatch,
    whole_match,
};
use crate::l4::Cidr;

/// A compiled ClientTrafficPolicy.
#[derive(Debug, Clone, PartialEq)]
pub struct CompiledClientTraffic {
    /// The policy.
    pub policy: ObjectKey,
    /// How the client's address is found.
    pub detection: ClientIpDetection,
    /// Path and header normalisation.
    pub normalization: Normalization,
    /// The path the listener answers 200 itself.
    pub health_check_path: Option<String>,
    /// Whether connections start with a PROXY header.
    pub proxy_protocol: Option<ProxyProtocolMode>,
    /// `x-request-id` handling.
    pub request_id: RequestIdPolicy,
    /// `earlyRequestHeaders`.
    pub early_request_headers: HeaderEdits,
    /// `disableRateLimitHeaders`.
    pub rate_limit_headers: bool,
    /// `tcpKeepalive` on accepted connections.
    pub tcp_keepalive: Option<TcpKeepalive>,
    /// `connection.connectionLimit`.
    pub connection_limit: Option<ConnectionLimit>,
    /// `headers.maxRequestHeaderLimit`, in bytes.
    pub max_request_header_bytes: Option<usize>,
    /// `timeout.http.requestHeadersReceivedTimeout`.
    pub request_headers_timeout: Option<Duration>,
    /// `timeout.http.requestReceivedTimeout` (`0s`: none).
    pub request_received_timeout: Option<Duration>,
    /// `timeout.http.idleTimeout` (`None`: unset; `Some(None)`: `0s`, no limit).
    pub idle_timeout: Option<Option<Duration>>,
    /// `timeout.http.streamIdleTimeout` (`0s`: none).
    pub stream_idle_timeout: Option<Duration>,
    /// `timeout.tcp.idleTimeout` (`None`: unset; `Some(None)`: `0s`, no limit).
    pub tcp_idle_timeout: Option<Option<Duration>>,
    /// `connection.connectionLimit.maxConnectionDuration`.
    pub max_connection_duration: Option<Duration>,
    /// `connection.connectionLimit.maxRequestsPerConnection`.
    pub max_requests_per_connection: Option<u64>,
    /// `connection.connectionLimit.maxStreamDuration`.
    pub max_stream_duration: Option<Duration>,
    /// `tls`.
    pub tls: Option<Arc<super::client_tls::ClientTls>>,
    /// `headers.xForwardedClientCert`.
    pub xfcc: super::xfcc::Xfcc,
    /// `http2`.
    pub http2: super::http2_settings::Http2Settings,
    /// `headers.lateResponseHeaders`.
    pub late_response_headers: HeaderEdits,
    /// `http1.http10` (`None`: HTTP/1.0 refused, as in Envoy).
    pub http10: Option<Http10>,
    /// `http1.preserveHeaderCase`.
    pub preserve_header_case: bool,
    /// `http1.enableTrailers`.
    pub enable_trailers: bool,
    /// `connection.socketBufferLimit`, in bytes.
    pub socket_buffer: Option<u32>,
    /// `headers.enableEnvoyHeaders`.
    pub envoy_headers: bool,
    /// `scheme: MatchBackend`: HTTP/2 backends get the `:scheme` of their own connection.
    pub match_backend_scheme: bool,
    /// `connection.bufferLimit`: the most request body bytes kept for retries.
    pub buffer_limit: u32,
    /// `connection.maxAcceptPerSocketEvent` (0: no limit; unset: 1).
    pub max_accept_per_socket_event: Option<u32>,
    /// `http3`: HTTPS listeners also serve HTTP/3 over QUIC on their port, and advertise it
    /// with `alt-svc`.
    pub http3: bool,
}

/// Envoy Gateway's `connection.bufferLimit` when a listener's policy sets none (32 KiB).
pub const DEFAULT_BUFFER_LIMIT: u32 = 32 * 1024;

/// `http1.http10`: HTTP/1.0 accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Http10 {
    /// A request without `Host` gets the listener's hostname.
    pub use_default_host: bool,
}

/// TCP keepalive settings (`SO_KEEPALIVE` with Linux's idle, interval and probe count).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TcpKeepalive {
    /// Unanswered probes before the connection is dropped.
    pub probes: u32,
    /// Idle time before the first probe.
    pub idle: Duration,
    /// Time between probes.
    pub interval: Duration,
}

/// How many connections a listener holds open at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnectionLimit {
    /// The most open connections.
    pub max: u64,
    /// How long a connection over the limit is held before it is closed.
    pub close_delay: Duration,
}

/// How a listener reads PROXY headers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProxyProtocolMode {
    /// Every connection must start with one; others are closed.
    Required,
    /// A connection may start with one.
    Optional,
}

/// A compiled BackendTrafficPolicy (shared by every route it covers; each route's state is a
/// [`RouteTraffic`]).
#[derive(Debug)]
pub struct CompiledBackendTraffic {
    /// The policy.
    pub policy: ObjectKey,
    /// `telemetry.metrics.routeStatName`.
    pub route_stat_name: Option<super::route_stats::RouteStatName>,
    /// Local rate-limit rules.
    pub rate_limit: Option<Vec<RateLimitRule>>,
    /// Buckets of `shared` rules, by rule index.
    shared_buckets: Vec<(usize, Arc<RuleBuckets>)>,
    /// Fault injection.
    pub fault: Option<FaultInjection>,
    /// `circuitBreaker`.
    pub circuit_breaker: Option<super::circuit_breaker::Limits>,
    /// `timeout.http.requestTimeout` (`Some(None)`: `0s`, no limit).
    pub request_timeout: Option<Option<Duration>>,
    /// `retry`, for the route's one retry loop.
    pub retry: Option<routing::router::PolicyRetry>,
    /// `loadBalancer`.
    pub load_balancing: Option<super::balance::LoadBalancing>,
    /// `healthCheck`.
    pub health: Option<super::balance::HealthPolicy>,
    /// `rateLimit.global` rules.
    pub global: Option<Vec<GlobalRule>>,
    /// `useClientProtocol`.
    pub use_client_protocol: bool,
    /// `routingType: Service`: requests go to each Service's cluster IP.
    pub service_routing: bool,
    /// `dns`: how the host names of the route's `Backend`s are resolved.
    pub dns: Option<super::dns::DnsSettings>,
    /// `httpUpgrade` (`None`: `websocket` only).
    pub upgrades: Option<HttpUpgrades>,
    /// `compressor` (or the deprecated `compression`).
    pub compression: Option<Compression>,
    /// `requestBuffer.limit`, in bytes.
    pub request_buffer: Option<usize>,
    /// `responseOverride` (empty: none).
    pub response_override: Vec<super::response_override::OverrideRule>,
    /// How requests use connections to the backends: `timeout.tcp.connectTimeout`,
    /// `tcpKeepalive`, `proxyProtocol`, `timeout.http.connectionIdleTimeout`,
    /// `maxConnectionDuration`, `streamIdleTimeout`, `circuitBreaker.maxRequestsPerConnection`.
    pub upstream: routing::router::UpstreamConnection,
    /// `bandwidthLimit`.
    pub bandwidth: Option<super::bandwidth::BandwidthLimit>,
    /// `loadBalancer.endpointOverride` headers.
    pub endpoint_override: Vec<http::HeaderName>,
    /// `loadBalancer.slowStart.window`.
    pub slow_start: Option<Duration>,
    /// `loadBalancer.zoneAware`.
    pub zones: Option<super::balance::ZoneRouting>,
    /// `admissionControl`.
    pub admission: Option<super::admission::AdmissionParams>,
    /// `connection.preconnect.predictivePercent`.
    pub predictive_percent: Option<u32>,
}

/// Response compression: the encodings offered and the smallest body compressed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Compression {
    /// gzip offered.
    pub gzip: bool,
    /// Brotli offered.
    pub brotli: bool,
    /// zstd offered.
    pub zstd: bool,
    /// Bodies shorter than this (by `content-length`) are sent as they are.
    pub min_length: u64,
}

impl ClientTrafficPolicySpec {
    /// Compiles the spec of policy `key` (its Secret and ConfigMap references resolved in
    /// `config`).
    pub fn compile(
        &self,
        key: &ObjectKey,
        config: &Config,
    ) -> Result<CompiledClientTraffic, String> {
        not_yet(self.unsupported())?;
        let tls = self
            .tls
            .as_ref()
            .map(|spec| {
                spec.compile(&key.namespace, config)
                    .map(Arc::new)
                    .map_err(|e| format!("spec.tls.{e}"))
            })
            .transpose()?;
        let detection = match &self.client_ip_detection {
            None => ClientIpDetection::Peer,
            Some(spec) => {
                let chosen = usize::from(spec.x_forwarded_for.is_some())
                    + usize::from(spec.custom_header.is_some())
                    + usize::from(spec.direct_source_ip.is_some());
                if chosen > 1 {
                    return Err("spec.clientIPDetection: set at most one of xForwardedFor, customHeader and directSourceIP".into());
                }
                if let Some(xff) = &spec.x_forwarded_for {
                    let trust = match (xff.num_trusted_hops, xff.trusted_cidrs.is_empty()) {
                        (Some(_), false) => {
                            return Err("spec.clientIPDetection.xForwardedFor: numTrustedHops and trustedCIDRs are mutually exclusive".into());
                        }
                        (hops, true) => XffTrust::Hops(hops.unwrap_or(0)),
                        (None, false) => XffTrust::Cidrs(
                            xff.trusted_cidrs
                                .iter()
                                .map(|c| c.parse::<Cidr>())
                                .collect::<Result<_, _>>()
                                .map_err(|e| {
                                    format!(
                                        "spec.clientIPDetection.xForwardedFor.trustedCIDRs: {e}"
                                    )
                                })?,
                        ),
                    };
                    ClientIpDetection::XForwardedFor {
                        trust,
                        append: !xff.disable_x_forwarded_for_append,
                    }
                } else if let Some(custom) = &spec.custom_header {
                    let valid = (1..=255).contains(&custom.name.len())
                        && custom
                            .name
                            .bytes()
                            .all(|b| b.is_ascii_alphanumeric() || b == b'-');
                    let name = HeaderName::try_from(custom.name.to_ascii_lowercase())
                        .ok()
                        .filter(|_| valid)
                        .ok_or_else(|| {
                            format!(
                                "spec.clientIPDetection.customHeader.name: {:?} must match ^[A-Za-z0-9-]+$ (1–255 characters)",
                                custom.name
                            )
                        })?;
                    ClientIpDetection::CustomHeader {
                        name,
                        fail_closed: custom.fail_closed,
                    }
                } else if spec.direct_source_ip.is_some() {
                    ClientIpDetection::DirectSource
                } else {
                    ClientIpDetection::Peer
                }
            }
        };
        let mut normalization = Normalization::default();
        if let Some(path) = &self.path {
            normalization.path = PathNormalization {
                escaped_slashes: match path.escaped_slashes_action.as_deref() {
                    None | Some("UnescapeAndRedirect") => EscapedSlashes::UnescapeAndRedirect,
                    Some("KeepUnchanged") => EscapedSlashes::Keep,
                    Some("RejectRequest") => EscapedSlashes::Reject,
                    Some("UnescapeAndForward") => EscapedSlashes::UnescapeAndForward,
                    Some(other) => {
                        return Err(format!(
                            "spec.path.escapedSlashesAction: unsupported value {other:?}"
                        ));
                    }
                },
                merge_slashes: !path.disable_merge_slashes,
            };
        }
        if let Some(action) = self
            .headers
            .as_ref()
            .and_then(|h| h.with_underscores_action.as_deref())
        {
            normalization.underscores = match action {
                "Allow" => Underscores::Allow,
                "RejectRequest" => Underscores::Reject,
                "DropHeader" => Underscores::Drop,
                other => {
                    return Err(format!(
                        "spec.headers.withUnderscoresAction: unsupported value {other:?}"
                    ));
                }
            };
        }
        let health_check_path = match &self.health_check {
            None => None,
            Some(check)
                if (1..=1024).contains(&check.path.len()) && check.path.starts_with('/') =>
            {
                Some(check.path.clone())
            }
            Some(_) => {
                return Err(
                    "spec.healthCheck.path: must start with / and have 1–1024 characters".into(),
                );
            }
        };
        let headers = self.headers.clone().unwrap_or_default();
        let request_id = match (headers.request_id.as_deref(), headers.preserve_x_request_id) {
            (None | Some("Generate"), None | Some(false)) => RequestIdPolicy::Generate,
            (None, Some(true)) | (Some("PreserveOrGenerate"), _) => {
                RequestIdPolicy::PreserveOrGenerate
            }
            (Some("Preserve"), _) => RequestIdPolicy::Preserve,
            (Some("Disable"), _) => RequestIdPolicy::Disable,
            (Some("Generate"), Some(true)) => {
                return Err(
                    "spec.headers: requestID Generate contradicts preserveXRequestID".into(),
                );
            }
            (Some(other), _) => {
                return Err(format!(
                    "spec.headers.requestID: unsupported value {other:?}"
                ));
            }
        };
        let xfcc = headers
            .x_forwarded_client_cert
            .as_ref()
            .map(|spec| {
                spec.compile()
                    .map_err(|e| format!("spec.headers.xForwardedClientCert.{e}"))
            })
            .transpose()?
            .unwrap_or_default();
        let late_response_headers = match &headers.late_response_headers {
            None => HeaderEdits::default(),
            Some(spec) => {
                header_edits(spec).map_err(|e| format!("spec.headers.lateResponseHeaders.{e}"))?
            }
        };
        let early_request_headers = match &headers.early_request_headers {
            None => HeaderEdits::default(),
            Some(spec) => {
                header_edits(spec).map_err(|e| format!("spec.headers.earlyRequestHeaders.{e}"))?
            }
        };
        let tcp_keepalive = self
            .tcp_keepalive
            .as_ref()
            .map(compile_keepalive)
            .transpose()?;
        let limits = self
            .connection
            .as_ref()
            .and_then(|c| c.connection_limit.as_ref());
        let max_connection_duration = match limits.and_then(|l| l.max_connection_duration.as_ref())
        {
            None => None,
            Some(text) => Some(parse_duration(text).filter(|d| !d.is_zero()).ok_or_else(
                || {
                    format!(
                        "spec.connection.connectionLimit.maxConnectionDuration: {text:?} is not a positive duration"
                    )
                },
            )?),
        };
        let max_stream_duration = match limits.and_then(|l| l.max_stream_duration.as_ref()) {
            None => None,
            Some(text) => Some(parse_duration(text).filter(|d| !d.is_zero()).ok_or_else(
                || {
                    format!(
                        "spec.connection.connectionLimit.maxStreamDuration: {text:?} is not a positive duration"
                    )
                },
            )?),
        };
        let max_requests_per_connection = match limits.and_then(|l| l.max_requests_per_connection) {
            Some(0) => {
                return Err(
                    "spec.connection.connectionLimit.maxRequestsPerConnection: at least 1".into(),
                );
            }
            other => other,
        };
        let connection_limit = match limits.and_then(|l| l.value.map(|value| (value, l))) {
            None => None,
            Some((value, limit)) => {
                if value < 1 {
                    return Err("spec.connection.connectionLimit.value: at least 1".into());
                }
                let close_delay = match &limit.close_delay {
                    None => Duration::ZERO,
                    Some(text) => parse_duration(text).ok_or_else(|| {
                        format!(
                            "spec.connection.connectionLimit.closeDelay: {text:?} is not a duration"
                        )
                    })?,
                };
                Some(ConnectionLimit {
                    max: value,
                    close_delay,
                })
            }
        };
        let max_request_header_bytes = match headers.max_request_header_limit {
            None => None,
            Some(kib) if (1..=8192).contains(&kib) => Some(kib as usize * 1024),
            Some(_) => {
                return Err("spec.headers.maxRequestHeaderLimit: within 1–8192 (KiB)".into());
            }
        };
        let request_headers_timeout = match self
            .timeout
            .as_ref()
            .and_then(|t| t.http.as_ref())
            .and_then(|h| h.request_headers_received_timeout.as_deref())
        {
            None => None,
            Some(text) => Some(parse_duration(text).filter(|d| !d.is_zero()).ok_or_else(
                || {
                    format!(
                        "spec.timeout.http.requestHeadersReceivedTimeout: {text:?} is not a positive duration"
                    )
                },
            )?),
        };
        let http_timeouts = self.timeout.as_ref().and_then(|t| t.http.as_ref());
        let duration_or_off = |text: Option<&String>,
                               field: &str|
         -> Result<Option<Option<Duration>>, String> {
            text.map(|text| {
                parse_duration(text)
                    .map(|d| (!d.is_zero()).then_some(d))
                    .ok_or_else(|| format!("spec.timeout.http.{field}: {text:?} is not a duration"))
            })
            .transpose()
        };
        let request_received_timeout = duration_or_off(
            http_timeouts.and_then(|h| h.request_received_timeout.as_ref()),
            "requestReceivedTimeout",
        )?
        .flatten();
        let idle_timeout = duration_or_off(
            http_timeouts.and_then(|h| h.idle_timeout.as_ref()),
            "idleTimeout",
        )?;
        let tcp_idle_timeout = self
            .timeout
            .as_ref()
            .and_then(|t| t.tcp.as_ref())
            .and_then(|t| t.idle_timeout.as_ref())
            .map(|text| {
                parse_duration(text)
                    .map(|d| (!d.is_zero()).then_some(d))
                    .ok_or_else(|| {
                        format!("spec.timeout.tcp.idleTimeout: {text:?} is not a duration")
                    })
            })
            .transpose()?;
        // QUIC carries TLS 1.3 only (RFC 9001 §4.2).
        if self.http3.is_some()
            && tls
                .as_ref()
                .is_some_and(|tls| tls.max_version < super::client_tls::TlsVersion::Tls13)
        {
            return Err("spec.http3: QUIC needs TLS 1.3, but spec.tls.maxVersion is 1.2".into());
        }
        let stream_idle_timeout = duration_or_off(
            http_timeouts.and_then(|h| h.stream_idle_timeout.as_ref()),
            "streamIdleTimeout",
        )?
        .flatten();
        let http10 = self
            .http1
            .as_ref()
            .and_then(|h| h.http10.as_ref())
            .map(|h| Http10 {
                use_default_host: h.use_default_host == Some(true),
            });
        let http2 = self
            .http2
            .as_ref()
            .map(|spec| spec.compile().map_err(|e| format!("spec.http2.{e}")))
            .transpose()?
            .unwrap_or_default();
        let proxy_protocol = match (&self.proxy_protocol, self.enable_proxy_protocol) {
            (Some(settings), _) if settings.optional == Some(true) => {
                Some(ProxyProtocolMode::Optional)
            }
            (Some(_), _) | (None, Some(true)) => Some(ProxyProtocolMode::Required),
            (None, _) => None,
        };
        let match_backend_scheme = match self.scheme.as_deref() {
            None | Some("Preserve") => false,
            Some("MatchBackend") => true,
            Some(other) => return Err(format!("spec.scheme: unsupported value {other:?}")),
        };
        let buffer_limit = match self
            .connection
            .as_ref()
            .and_then(|c| c.buffer_limit.as_ref())
        {
            None => DEFAULT_BUFFER_LIMIT,
            Some(value) => quantity(value)
                .filter(|bytes| *bytes > 0)
                .and_then(|bytes| u32::try_from(bytes).ok())
                .ok_or_else(|| {
                    "spec.connection.bufferLimit: a quantity from 1 byte to 4Gi".to_owned()
                })?,
        };
        Ok(CompiledClientTraffic {
            policy: key.clone(),
            detection,
            normalization,
            health_check_path,
            proxy_protocol,
            request_id,
            early_request_headers,
            rate_limit_headers: headers.disable_rate_limit_headers != Some(true),
            tcp_keepalive,
            connection_limit,
            max_request_header_bytes,
            request_headers_timeout,
            request_received_timeout,
            idle_timeout,
            stream_idle_timeout,
            tcp_idle_timeout,
            max_connection_duration,
            max_requests_per_connection,
            max_stream_duration,
            tls,
            xfcc,
            http2,
            late_response_headers,
            http10,
            preserve_header_case: self.http1.as_ref().and_then(|h| h.preserve_header_case)
                == Some(true),
            enable_trailers: self.http1.as_ref().and_then(|h| h.enable_trailers) == Some(true),
            envoy_headers: self.headers.as_ref().and_then(|h| h.enable_envoy_headers) == Some(true),
            match_backend_scheme,
            buffer_limit,
            max_accept_per_socket_event: self
                .connection
                .as_ref()
                .and_then(|c| c.max_accept_per_socket_event),
            socket_buffer: self
                .connection
                .as_ref()
                .and_then(|c| c.socket_buffer_limit.as_ref())
                .map(|value| socket_buffer(value, "spec.connection.socketBufferLimit"))
                .transpose()?,
            http3: self.http3.is_some(),
        })
    }
}

/// `tcpKeepalive` (either policy kind) with Linux's defaults: 9 probes, 7200 s idle, 75 s
/// between probes.
pub(super) fn compile_keepalive(
    spec: &super::model::TcpKeepaliveSpec,
) -> Result<TcpKeepalive, String> {
    let seconds = |text: &Option<String>, field: &str, default: u64| match text {
        None => Ok(Duration::from_secs(default)),
        Some(text) => parse_duration(text)
            .filter(|d| !d.is_zero())
            .ok_or_else(|| format!("{field}: {text:?} is not a positive duration")),
    };
    Ok(TcpKeepalive {
        probes: spec.probes.unwrap_or(9).max(1),
        idle: seconds(&spec.idle_time, "spec.tcpKeepalive.idleTime", 7200)?,
        interval: seconds(&spec.interval, "spec.tcpKeepalive.interval", 75)?,
    })
}

/// Envoy Gateway's header filter, validated (at most 64 entries per list).
pub(crate) fn header_edits(spec: &super::model::HeaderFilterSpec) -> Result<HeaderEdits, String> {
    let pairs = |list: &[routing::model::HttpHeader], field: &str| {
        if list.len() > 64 {
            return Err(format!("{field}: at most 64 entries"));
        }
        list.iter()
            .map(|header| {
                let name = HeaderName::try_from(header.name.to_ascii_lowercase())
                    .map_err(|_| format!("{field}: {:?} is not a header name", header.name))?;
                let value = HeaderValueTemplate::parse(&header.value)
                    .map_err(|e| format!("{field}: the value of {:?}: {e}", header.name))?;
                Ok((name, value))
            })
            .collect::<Result<Vec<_>, String>>()
    };
    if spec.remove.len() > 64 {
        return Err("remove: at most 64 entries".into());
    }
    if spec.remove_on_match.len() > 64 {
        return Err("removeOnMatch: at most 64 entries".into());
    }
    let remove_matching = spec
        .remove_on_match
        .iter()
        .map(|pattern| {
            let mut pattern = pattern.clone();
            if pattern.kind.as_deref() != Some("RegularExpression") {
                // Header names are matched as Envoy holds them: in lower case.
                pattern.value = pattern.value.to_ascii_lowercase();
            }
            super::client_tls::name_match(&pattern).map_err(|e| format!("removeOnMatch: {e}"))
        })
        .collect::<Result<Vec<_>, String>>()?;
    Ok(HeaderEdits {
        set: pairs(&spec.set, "set")?,
        add: pairs(&spec.add, "add")?,
        add_if_absent: pairs(&spec.add_if_absent, "addIfAbsent")?,
        remove: spec
            .remove
            .iter()
            .map(|name| {
                HeaderName::try_from(name.to_ascii_lowercase())
                    .map_err(|_| format!("remove: {name:?} is not a header name"))
            })
            .collect::<Result<_, _>>()?,
        remove_matching,
    })
}

/// `httpUpgrade`: upgrade tokens (RFC 9110 §7.8), lower case, and CONNECT; at most 16.
fn http_upgrades(specs: &[super::model::ProtocolUpgradeSpec]) -> Result<HttpUpgrades, String> {
    if specs.len() > 16 {
        return Err("spec.httpUpgrade: at most 16 entries".into());
    }
    let mut allowed = Vec::new();
    let mut connect = None;
    for (index, spec) in specs.iter().enumerate() {
        let at = |e: &str| format!("spec.httpUpgrade[{index}].{e}");
        if spec.kind.eq_ignore_ascii_case("CONNECT") {
            connect = Some(routing::router::ConnectTunnels {
                terminate: spec.connect.as_ref().and_then(|c| c.terminate) == Some(true),
            });
            continue;
        }
        if spec.connect.is_some() {
            return Err(at("connect: only with type CONNECT"));
        }
        let token = |c: u8| c.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~/".contains(&c);
        if spec.kind.is_empty() || spec.kind.len() > 64 || !spec.kind.bytes().all(token) {
            return Err(at(&format!(
                "type: {:?} is not an upgrade token",
                spec.kind
            )));
        }
        allowed.push(spec.kind.to_ascii_lowercase());
    }
    Ok(HttpUpgrades {
        allowed: routing::router::AllowedUpgrades(allowed.into()),
        connect,
    })
}

/// Compiled `httpUpgrade`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpUpgrades {
    /// The HTTP/1.1 upgrades allowed.
    pub allowed: routing::router::AllowedUpgrades,
    /// How CONNECT is handled, when it is allowed.
    pub connect: Option<routing::router::ConnectTunnels>,
}

fn not_yet(fields: Vec<&'static str>) -> Result<(), String> {
    if fields.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "not enforced by this data plane yet: {}",
            fields.join(", ")
        ))
    }
}

impl BackendTrafficPolicySpec {
    /// Compiles the spec of policy `key` (its ConfigMap references resolved in `config`).
    pub fn compile(
        &self,
        key: &ObjectKey,
        config: &Config,
    ) -> Result<CompiledBackendTraffic, String> {
        not_yet(self.unsupported())?;
        if let Some(merge) = self.merge_type.as_deref()
            && !matches!(merge, "StrategicMerge" | "JSONMerge")
        {
            return Err(format!("spec.mergeType: unsupported value {merge:?}"));
        }
        let rate_limit = match self.rate_limit.as_ref().and_then(|r| r.local.as_ref()) {
            None => None,
            Some(local) => {
                if local.rules.len() > 16 {
                    return Err("spec.rateLimit.local.rules: at most 16 rules".into());
                }
                let rules = local
                    .rules
                    .iter()
                    .enumerate()
                    .map(|(index, rule)| {
                        compile_rule(rule, false)
                            .map(|(rule, _)| rule)
                            .map_err(|e| format!("spec.rateLimit.local.rules[{index}].{e}"))
                    })
                    .collect::<Result<Vec<_>, _>>()?;
                LocalRateLimit::check(&rules)
                    .map_err(|e| format!("spec.rateLimit.local.rules: {e}"))?;
                Some(rules)
            }
        };
        if let Some(kind) = self.rate_limit.as_ref().and_then(|r| r.kind.as_deref())
            && !matches!(kind, "Local" | "Global")
        {
            return Err(format!("spec.rateLimit.type: unsupported value {kind:?}"));
        }
        let global = match self.rate_limit.as_ref().and_then(|r| r.global.as_ref()) {
            None => None,
            Some(global) => {
                if global.rules.len() > 256 {
                    return Err("spec.rateLimit.global.rules: at most 256 rules".into());
                }
                let rules = global
                    .rules
                    .iter()
                    .enumerate()
                    .map(|(index, rule)| {
                        compile_rule(rule, true)
                            .map(|(rule, response_cost)| GlobalRule {
                                rule,
                                response_cost,
                            })
                            .map_err(|e| format!("spec.rateLimit.global.rules[{index}].{e}"))
                    })
                    .collect::<Result<Vec<_>, _>>()?;
                Some(rules)
            }
        };
        let shared_buckets = rate_limit
            .iter()
            .flatten()
            .enumerate()
            .filter(|(_, rule)| rule.shared)
            .map(|(index, rule)| (index, Arc::new(RuleBuckets::new(rule.clone()))))
            .collect();
        let fault = match &self.fault_injection {
            None => None,
            Some(spec) => {
                if spec.delay.is_none() && spec.abort.is_none() {
                    return Err("spec.faultInjection: set delay, abort or both".into());
                }
                let delay = match &spec.delay {
                    None => None,
                    Some(delay) => Some((
                        parse_duration(&delay.fixed_delay).ok_or_else(|| {
                            format!(
                                "spec.faultInjection.delay.fixedDelay: {:?} is not a duration",
                                delay.fixed_delay
                            )
                        })?,
                        percentage(delay.percentage, "delay")?,
                    )),
                };
                let abort = match &spec.abort {
                    None => None,
                    Some(abort) => {
                        let how = match (abort.http_status, abort.grpc_status) {
                            (Some(status), None) if (200..=600).contains(&status) => Abort::Http(
                                StatusCode::from_u16(status).map_err(|e| e.to_string())?,
                            ),
                            (None, Some(code)) if code <= 16 => Abort::Grpc(code),
                            _ => {
                                return Err("spec.faultInjection.abort: set exactly one of httpStatus (200–600) and grpcStatus (0–16)".into());
                            }
                        };
                        Some((how, percentage(abort.percentage, "abort")?))
                    }
                };
                Some(FaultInjection { delay, abort })
            }
        };
        let request_timeout = match self
            .timeout
            .as_ref()
            .and_then(|t| t.http.as_ref())
            .and_then(|h| h.request_timeout.as_deref())
        {
            None => None,
            Some(text) => {
                let timeout = parse_duration(text).ok_or_else(|| {
                    format!("spec.timeout.http.requestTimeout: {text:?} is not a duration")
                })?;
                Some((!timeout.is_zero()).then_some(timeout))
            }
        };
        let retry = self.retry.as_ref().map(compile_retry).transpose()?;
        let load_balancing = self
            .load_balancer
            .as_ref()
            .map(|spec| spec.compile())
            .transpose()?;
        let health = self
            .health_check
            .as_ref()
            .map(|spec| spec.compile())
            .transpose()?;
        let compressors = self.compressor.as_ref().or(self.compression.as_ref());
        let compression = compressors
            .map(|list| compile_compression(list))
            .transpose()?;
        let request_buffer = match &self.request_buffer {
            None => None,
            Some(spec) => Some(
                quantity(&spec.limit)
                    .and_then(|bytes| usize::try_from(bytes).ok())
                    .ok_or_else(|| {
                        format!(
                            "spec.requestBuffer.limit: {:?} is not a quantity",
                            spec.limit
                        )
                    })?,
            ),
        };
        let response_override = match &self.response_override {
            None => Vec::new(),
            Some(specs) => {
                super::response_override::spec::compile_overrides(specs, &key.namespace, config)?
            }
        };
        let upstream = super::upstream::compile_upstream(self)?;
        let bandwidth = self
            .bandwidth_limit
            .as_ref()
            .map(super::bandwidth::spec::compile_bandwidth)
            .transpose()?;
        let endpoint_override = match &self.load_balancer {
            Some(spec) => spec.endpoint_override()?,
            None => Vec::new(),
        };
        let slow_start = match &self.load_balancer {
            Some(spec) => spec.slow_start()?,
            None => None,
        };
        let zones = match &self.load_balancer {
            Some(spec) => spec.zones()?,
            None => None,
        };
        let predictive_percent = self
            .connection
            .as_ref()
            .and_then(|c| c.preconnect.as_ref())
            .and_then(|p| p.predictive_percent);
        if let Some(percent) = predictive_percent {
            if percent < 100 {
                return Err("spec.connection.preconnect.predictivePercent: at least 100".into());
            }
            let kind = self.load_balancer.as_ref().map(|lb| lb.kind.as_str());
            if !matches!(kind, Some("RoundRobin" | "Random")) {
                return Err(
                    "spec.connection.preconnect.predictivePercent: only with loadBalancer type RoundRobin or Random"
                        .into(),
                );
            }
        }
        let admission = self
            .admission_control
            .as_ref()
            .map(super::admission::spec::AdmissionControlSpec::compile)
            .transpose()?;
        let upgrades = self
            .http_upgrade
            .as_deref()
            .map(http_upgrades)
            .transpose()?;
        let service_routing = match self.routing_type.as_deref() {
            None | Some("Endpoint") => false,
            Some("Service") => true,
            Some(other) => return Err(format!("spec.routingType: unsupported value {other:?}")),
        };
        let dns = self
            .dns
            .as_ref()
            .map(super::dns::DnsSpec::compile)
            .transpose()?;
        let route_stat_name = self
            .telemetry
            .as_ref()
            .and_then(|t| t.metrics.as_ref())
            .and_then(|m| m.route_stat_name.as_deref())
            .map(|pattern| {
                super::route_stats::RouteStatName::parse(pattern)
                    .map_err(|e| format!("spec.telemetry.metrics.routeStatName: {e}"))
            })
            .transpose()?;
        Ok(CompiledBackendTraffic {
            route_stat_name,
            service_routing,
            dns,
            upgrades,
            slow_start,
            zones,
            admission,
            predictive_percent,
            endpoint_override,
            upstream,
            bandwidth,
            response_override,
            request_buffer,
            compression,
            use_client_protocol: self.use_client_protocol == Some(true),
            global,
            retry,
            load_balancing,
            health,
            policy: key.clone(),
            rate_limit,
            shared_buckets,
            fault,
            circuit_breaker: self.circuit_breaker.as_ref().map(|c| {
                let defaults = super::circuit_breaker::Limits {
                    // Envoy Gateway's default (Envoy's own is 3).
                    max_parallel_retries: super::circuit_breaker::DEFAULT_LIMIT,
                    ..Default::default()
                };
                super::circuit_breaker::Limits {
                    max_parallel_requests: c
                        .max_parallel_requests
                        .unwrap_or(defaults.max_parallel_requests),
                    max_connections: c.max_connections.unwrap_or(defaults.max_connections),
                    max_pending_requests: c
                        .max_pending_requests
                        .unwrap_or(defaults.max_pending_requests),
                    max_parallel_retries: c
                        .max_parallel_retries
                        .unwrap_or(defaults.max_parallel_retries),
                }
            }),
            request_timeout,
        })
    }
}

/// `compressor[]`: the encodings, and the largest `minContentLength` (at least 30 bytes).
fn compile_compression(list: &[super::model::CompressorSpec]) -> Result<Compression, String> {
    let mut compression = Compression {
        gzip: false,
        brotli: false,
        zstd: false,
        min_length: 30,
    };
    for (index, spec) in list.iter().enumerate() {
        let at = |e: String| format!("spec.compressor[{index}].{e}");
        match spec.kind.as_str() {
            "Gzip" => compression.gzip = true,
            "Brotli" => compression.brotli = true,
            "Zstd" => compression.zstd = true,
            other => return Err(at(format!("type: unsupported value {other:?}"))),
        }
        if let Some(value) = &spec.min_content_length {
            let bytes = quantity(value)
                .ok_or_else(|| at(format!("minContentLength: {value:?} is not a quantity")))?;
            if bytes < 30 {
                return Err(at("minContentLength: at least 30 bytes".into()));
            }
            compression.min_length = compression.min_length.max(bytes);
        }
    }
    Ok(compression)
}

/// A `socketBufferLimit`: a quantity from 1 KiB to 1 GiB, in bytes.
pub(crate) fn socket_buffer(value: &serde_yaml_ng::Value, field: &str) -> Result<u32, String> {
    quantity(value)
        .filter(|bytes| (1 << 10..=1 << 30).contains(bytes))
        .and_then(|bytes| u32::try_from(bytes).ok())
        .ok_or_else(|| format!("{field}: a quantity from 1Ki to 1Gi"))
}

/// A Kubernetes quantity in bytes (`30`, `1Ki`, `2Mi`, `1k`, `1M`).
pub fn quantity(value: &serde_yaml_ng::Value) -> Option<u64> {
    if let Some(number) = value.as_u64() {
        return Some(number);
    }
    let text = value.as_str()?.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (digits, suffix) = text.split_at(split);
    let number: u64 = digits.parse().ok()?;
    let factor: u64 = match suffix {
        "" => 1,
        "k" => 1_000,
        "M" => 1_000_000,
        "G" => 1_000_000_000,
        "Ki" => 1 << 10,
        "Mi" => 1 << 20,
        "Gi" => 1 << 30,
        _ => return None,
    };
    number.checked_mul(factor)
}

/// Envoy Gateway's `retry` as the route's retry loop runs it: triggers become the statuses
/// retried (`5xx`, `gateway-error` 502–504, `retriable-4xx` 409, `retriable-status-codes`),
/// and the gRPC triggers the `grpc-status` values retried in trailers-only answers
/// (`cancelled` 1, `deadline-exceeded` 4, `resource-exhausted` 8, `internal` 13,
/// `unavailable` 14); connection failures, resets and refused streams are always retried by the loop. Without
/// `retryOn`: Envoy Gateway's default, 503 and the connection failures. The wait between tries
/// is `backOff.baseInterval` (25 ms by default).
fn compile_retry(spec: &super::model::RetrySpec) -> Result<routing::router::PolicyRetry, String> {
    /// Envoy's gRPC triggers and the statuses they name.
    const GRPC: [(&str, u8); 5] = [
        ("cancelled", 1),
        ("deadline-exceeded", 4),
        ("internal", 13),
        ("resource-exhausted", 8),
        ("unavailable", 14),
    ];
    let mut codes: Vec<u16> = Vec::new();
    let mut grpc_statuses: Vec<u8> = Vec::new();
    let on = spec.retry_on.clone().unwrap_or_default();
    let triggers: Vec<&str> = if on.triggers.is_empty() {
        vec![
            "connect-failure",
            "refused-stream",
            "retriable-status-codes",
        ]
    } else {
        on.triggers.iter().map(String::as_str).collect()
    };
    for trigger in triggers {
        match trigger {
            "5xx" => codes.extend(500..=599),
            "gateway-error" => codes.extend([502, 503, 504]),
            "retriable-4xx" => codes.push(409),
            "retriable-status-codes" if on.http_status_codes.is_empty() => codes.push(503),
            "retriable-status-codes" => codes.extend(on.http_status_codes.iter().copied()),
            "reset" | "reset-before-request" | "connect-failure" | "refused-stream" => {}
            grpc if GRPC.iter().any(|(name, _)| *name == grpc) => {
                grpc_statuses.extend(
                    GRPC.iter()
                        .filter(|(name, _)| *name == grpc)
                        .map(|(_, status)| *status),
                );
            }
            other => {
                return Err(format!(
                    "spec.retry.retryOn.triggers: unsupported value {other:?}"
                ));
            }
        }
    }
    if on
        .http_status_codes
        .iter()
        .any(|c| !(100..=599).contains(c))
    {
        return Err("spec.retry.retryOn.httpStatusCodes: within 100–599".into());
    }
    codes.sort_unstable();
    codes.dedup();
    let duration = |text: &Option<String>, field: &str| -> Result<Option<Duration>, String> {
        text.as_deref()
            .map(|t| {
                parse_duration(t)
                    .ok_or_else(|| format!("spec.retry.perRetry.{field}: {t:?} is not a duration"))
            })
            .transpose()
    };
    let per_retry = spec.per_retry.clone().unwrap_or_default();
    let per_try_timeout = duration(&per_retry.timeout, "timeout")?;
    let backoff = duration(
        &per_retry
            .back_off
            .as_ref()
            .and_then(|b| b.base_interval.clone()),
        "backOff.baseInterval",
    )?
    .unwrap_or(Duration::from_millis(25));
    Ok(routing::router::PolicyRetry {
        retry: routing::compiled::RetryPolicy {
            codes,
            grpc_statuses,
            attempts: spec.num_retries.unwrap_or(2),
            backoff,
            attempts_per_priority: spec.num_attempts_per_priority.filter(|&n| n > 0),
        },
        per_try_timeout,
    })
}

fn percentage(value: Option<f64>, what: &str) -> Result<f64, String> {
    let value = value.unwrap_or(100.0);
    if (0.0..=100.0).contains(&value) {
        Ok(value)
    } else {
        Err(format!(
            "spec.faultInjection.{what}.percentage: must be within 0–100"
        ))
    }
}

fn unit(name: &str) -> Option<Duration> {
    const DAY: u64 = 86_400;
    let seconds = match name {
        "Second" => 1,
        "Minute" => 60,
        "Hour" => 3_600,
        "Day" => DAY,
        "Week" => 7 * DAY,
        "Month" => 30 * DAY,
        "Year" => 365 * DAY,
        _ => return None,
    };
    Some(Duration::from_secs(seconds))
}

/// A rule, and (for a global rule) its response cost.
fn compile_rule(rule: &RateLimitRuleSpec, global: bool) -> Result<(RateLimitRule, u32), String> {
    if rule.client_selectors.len() > 8 {
        return Err("clientSelectors: at most 8".into());
    }
    let selectors = rule
        .client_selectors
        .iter()
        .enumerate()
        .map(|(index, s)| compile_selector(s).map_err(|e| format!("clientSelectors[{index}].{e}")))
        .collect::<Result<Vec<_>, _>>()?;
    let unit = unit(&rule.limit.unit)
        .ok_or_else(|| format!("limit.unit: unsupported value {:?}", rule.limit.unit))?;
    let number = |spec: &super::model::CostSpecifier, field: &str| -> Result<u32, String> {
        if spec.from == "Number" && spec.metadata.is_none() {
            spec.number
                .ok_or_else(|| format!("cost.{field}.number: required with from: Number"))
        } else {
            Err(format!("cost.{field}: only from: Number is enforced"))
        }
    };
    let (cost, response_cost) = match rule.cost.as_ref() {
        None => (1, 0),
        Some(cost) => {
            if cost.response.is_some() && !global {
                return Err("cost.response: only global rate limits have response costs".into());
            }
            let request = cost
                .request
                .as_ref()
                .map(|r| number(r, "request"))
                .transpose()?;
            let response = cost
                .response
                .as_ref()
                .map(|r| number(r, "response"))
                .transpose()?;
            (request.unwrap_or(1), response.unwrap_or(0))
        }
    };
    let headers = match rule.x_rate_limit_headers.as_deref() {
        None | Some("DraftVersion03") => true,
        Some("Off") => false,
        Some(other) => return Err(format!("xRateLimitHeaders: unsupported value {other:?}")),
    };
    Ok((
        RateLimitRule {
            selectors,
            requests: rule.limit.requests,
            unit,
            cost,
            shadow: rule.shadow_mode,
            shared: rule.shared,
            headers,
        },
        response_cost,
    ))
}

fn compile_selector(spec: &ClientSelectorSpec) -> Result<ClientSelector, String> {
    if spec.headers.is_empty()
        && spec.methods.is_empty()
        && spec.path.is_none()
        && spec.source_cidr.is_none()
        && spec.query_params.is_empty()
        && spec.source_principal.is_none()
    {
        return Err("a selector needs at least one condition".into());
    }
    if spec.headers.len() > 128 || spec.query_params.len() > 16 {
        return Err("headers: at most 128; queryParams: at most 16".into());
    }
    let values = |list: &[ValueMatchSpec], field: &str, lower: bool| {
        list.iter()
            .enumerate()
            .map(|(index, c)| compile_value(c, lower).map_err(|e| format!("{field}[{index}].{e}")))
            .collect::<Result<Vec<_>, _>>()
    };
    let headers = values(&spec.headers, "headers", true)?;
    let query_params = values(&spec.query_params, "queryParams", false)?;
    let methods = if spec.methods.is_empty() {
        None
    } else {
        let inverted = spec.methods.iter().filter(|m| m.invert).count();
        if inverted != 0 && inverted != spec.methods.len() {
            return Err("methods: invert must be the same for every method".into());
        }
        let list = spec
            .methods
            .iter()
            .map(|m| {
                Method::from_bytes(m.value.as_bytes())
                    .map_err(|_| format!("methods: {:?} is not a method", m.value))
            })
            .collect::<Result<Vec<_>, _>>()?;
        Some((list, inverted != 0))
    };
    let path = match &spec.path {
        None => None,
        Some(path) => {
            let value = path.value.clone().unwrap_or_else(|| "/".to_owned());
            let condition = match path.kind.as_deref() {
                None | Some("PathPrefix") => PathCondition::Prefix(value),
                Some("Exact") => PathCondition::Exact(value),
                Some("RegularExpression") => PathCondition::Regex(
                    whole_match(&value).map_err(|e| format!("path.value: {e}"))?,
                ),
                Some(other) => return Err(format!("path.type: unsupported value {other:?}")),
            };
            Some((condition, path.invert))
        }
    };
    let source = match &spec.source_cidr {
        None => None,
        Some(source) => Some(SourceCondition {
            block: source
                .value
                .parse()
                .map_err(|e| format!("sourceCIDR.value: {e}"))?,
            distinct: match source.kind.as_deref() {
                None | Some("Exact") => false,
                Some("Distinct") => true,
                Some(other) => return Err(format!("sourceCIDR.type: unsupported value {other:?}")),
            },
            invert: source.invert,
        }),
    };
    if source.is_some_and(|s| s.distinct && s.invert) {
        return Err("sourceCIDR: Distinct cannot be inverted".into());
    }
    let principal = match &spec.source_principal {
        None => None,
        Some(principal) => {
            let as_value = ValueMatchSpec {
                name: "sourcePrincipal".into(),
                kind: principal.kind.clone(),
                value: principal.value.clone(),
                invert: principal.invert,
            };
            let condition =
                compile_value(&as_value, false).map_err(|e| format!("sourcePrincipal.{e}"))?;
            Some((condition.matcher, condition.invert))
        }
    };
    Ok(ClientSelector {
        headers,
        query_params,
        methods,
        path,
        source,
        principal,
    })
}

fn compile_value(spec: &ValueMatchSpec, lower: bool) -> Result<ValueCondition, String> {
    let matcher = match (spec.kind.as_deref(), &spec.value) {
        (None | Some("Exact"), Some(value)) => ValueMatch::Exact(value.clone()),
        (Some("RegularExpression"), Some(value)) => {
            ValueMatch::Regex(whole_match(value).map_err(|e| format!("value: {e}"))?)
        }
        (Some("Distinct"), None) if !spec.invert => ValueMatch::Distinct,
        (Some("Distinct"), _) => {
            return Err("Distinct takes no value and cannot be inverted".into());
        }
        (None | Some("Exact" | "RegularExpression"), None) => return Err("value: required".into()),
        (Some(other), _) => return Err(format!("type: unsupported value {other:?}")),
    };
    if spec.name.is_empty() {
        return Err("name: required".into());
    }
    Ok(ValueCondition {
        name: FieldName::new(if lower {
            spec.name.to_ascii_lowercase()
        } else {
            spec.name.clone()
        }),
        matcher,
        invert: spec.invert,
    })
}

impl CompiledBackendTraffic {
    /// How the upstream service connects for this policy's requests, when it asks for
    /// anything (a connect timeout, keepalive, a PROXY header, connection reuse limits).
    pub fn upstream_connection(&self) -> Option<routing::router::UpstreamConnection> {
        (self.upstream != routing::router::UpstreamConnection::default()).then_some(self.upstream)
    }

    /// The state of one route rule covered by this policy: its own buckets (the `shared`
    /// rules' are the policy's), circuit breaker and load balancer over its `backends`.
    /// With health checks but no `loadBalancer`, endpoints are balanced by Envoy Gateway's
    /// default, least request; the runtime's prober runs the active checks, and its shared
    /// counters count the global limit (counted per `route`, a stable name of the rule).
    pub fn for_route<'a>(
        self: &Arc<Self>,
        epoch: &Epoch,
        runtime: &TrafficRuntime,
        route: &str,
        backends: impl IntoIterator<Item = &'a Backend>,
    ) -> RouteTraffic {
        let prober = runtime.prober.as_ref();
        let rate_limit = self.rate_limit.as_ref().and_then(|rules| {
            LocalRateLimit::new(rules, epoch, &mut |index, rule| {
                self.shared_buckets
                    .iter()
                    .find(|(i, _)| *i == index)
                    .map(|(_, buckets)| Arc::clone(buckets))
                    .unwrap_or_else(|| Arc::new(RuleBuckets::new(rule.clone())))
            })
            .ok()
        });
        let breaker = self
            .circuit_breaker
            .map(|limits| Arc::new(super::circuit_breaker::CircuitBreaker::with_limits(limits)));
        RouteTraffic {
            policy: Arc::clone(self),
            name: format!("BackendTrafficPolicy {}", self.policy).into(),
            stat_name: None,
            rate_limit,
            retry_gate: breaker.as_ref().map(|breaker| {
                routing::router::RetryGate(Arc::new(super::circuit_breaker::BreakerRetries(
                    Arc::clone(breaker),
                )))
            }),
            breaker,
            bandwidth: self
                .bandwidth
                .as_ref()
                .map(super::bandwidth::RouteBandwidth::new),
            dice: Arc::new(super::fault::Dice::from_clock()),
            admission: self
                .admission
                .clone()
                .map(|params| Arc::new(super::admission::AdmissionController::new(params))),
            global: match (&self.global, &runtime.counters) {
                (Some(rules), Some(counters)) => Some(GlobalLimit {
                    limit: Arc::new(GlobalRateLimit::new(
                        rules.clone(),
                        &self.policy.to_string(),
                        route,
                    )),
                    counters: Arc::clone(counters),
                }),
                _ => None,
            },
            balancer: (self.load_balancing.is_some() || self.health.is_some()).then(|| {
                let policy = self
                    .load_balancing
                    .clone()
                    .unwrap_or(LoadBalancing::LeastRequest);
                let memory = super::balance::RememberedHealth {
                    verdicts: &runtime.verdicts,
                    ejections: &runtime.ejections,
                    scope: route,
                };
                let mut balancer = Balancer::with_remembered_health(
                    policy,
                    self.health.as_ref(),
                    prober,
                    memory,
                    backends,
                )
                .with_endpoint_override(self.endpoint_override.clone());
                if let Some(zones) = &self.zones {
                    balancer = balancer.with_zones(zones.clone(), runtime.local_zone.clone());
                }
                if let Some(percent) = self.predictive_percent {
                    balancer = balancer.with_prediction(percent);
                }
                PolicyBalancer(Arc::new(match self.slow_start {
                    Some(window) => balancer.with_slow_start(window, &runtime.endpoint_ages),
                    None => balancer,
                }))
            }),
        }
    }
}

/// A BackendTrafficPolicy's state for one route rule.
#[derive(Debug, Clone)]
pub struct RouteTraffic {
    /// The policy.
    pub policy: Arc<CompiledBackendTraffic>,
    /// `BackendTrafficPolicy namespace/name`, for refusals.
    pub name: Arc<str>,
    /// The route's local rate limit.
    pub rate_limit: Option<LocalRateLimit>,
    /// The route's circuit breaker.
    pub breaker: Option<Arc<super::circuit_breaker::CircuitBreaker>>,
    /// The breaker's retry limit, handed to the route's retry loop.
    pub retry_gate: Option<routing::router::RetryGate>,
    /// Draws for fault percentages.
    pub dice: Arc<super::fault::Dice>,
    /// The rule's admission control and its history.
    pub admission: Option<Arc<super::admission::AdmissionController>>,
    /// The rule's load balancer.
    pub balancer: Option<PolicyBalancer>,
    /// The rule's global rate limit and the counters it is counted in.
    pub global: Option<GlobalLimit>,
    /// The rule's bandwidth buckets.
    pub bandwidth: Option<super::bandwidth::RouteBandwidth>,
    /// The name the rule's answers are counted under (`telemetry.metrics.routeStatName`,
    /// filled for its route).
    pub stat_name: Option<Arc<str>>,
}

/// A global rate limit with its shared counters.
#[derive(Debug, Clone)]
pub struct GlobalLimit {
    /// The limit.
    pub limit: Arc<GlobalRateLimit>,
    /// Where it is counted.
    pub counters: Arc<dyn SharedCounters>,
}

/// What the traffic policies need of the process running them.
#[derive(Debug, Clone, Default)]
pub struct TrafficRuntime {
    /// Probes endpoints for active health checks (none: active checks are not run).
    pub prober: Option<Arc<dyn ProbeEndpoints>>,
    /// The shared counters of global rate limits (none: a policy with a global limit is
    /// invalid, as in Envoy Gateway without a rate-limit backend).
    pub counters: Option<Arc<dyn SharedCounters>>,
    /// When each endpoint was first seen (slow start), kept across configurations.
    pub endpoint_ages: Arc<super::balance::EndpointAges>,
    /// The last verdicts of active checks, kept across configurations.
    pub verdicts: Arc<super::balance::VerdictMemory>,
    /// Outlier detection's ejections, kept across configurations.
    pub ejections: Arc<super::balance::EjectionMemory>,
    /// The zone this process runs in (`topology.kubernetes.io/zone` of its node), for
    /// `zoneAware.preferLocal`; without it, no request is routed by its local zone.
    pub local_zone: Option<Arc<str>>,
}
