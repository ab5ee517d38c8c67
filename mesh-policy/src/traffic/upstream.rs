//! How a BackendTrafficPolicy's requests use connections to the backends, compiled into
//! one [`UpstreamConnection`]: `timeout.tcp.connectTimeout`, `tcpKeepalive`,
//! `proxyProtocol`, `timeout.http.connectionIdleTimeout`, `timeout.http.maxConnectionDuration`,
//! `timeout.http.streamIdleTimeout`, `timeout.http.maxStreamDuration`,
//! `circuitBreaker.maxRequestsPerConnection`, `connection.socketBufferLimit`,
//! `connection.preconnect.perEndpointPercent`, `circuitBreaker.perEndpoint.maxConnections`
//! and `http2` (the
//! windows announced to HTTP/2
//! backends, and `maxConcurrentStreams`: the streams one connection to a backend carries at
//! once before another is opened, as Envoy's upstream connection pool does).

use std::time::Duration;

use routing::resolve::parse_duration;
use routing::router::{
    UpstreamConnection, UpstreamHttp2, UpstreamProxyProtocol, UpstreamTcpKeepalive,
};

use super::http2_settings::InvalidMessageAction;
use super::model::BackendTrafficPolicySpec;

/// The connection settings of `spec`, checked as the CRD does (durations positive, a
/// known PROXY version, at least one request per connection).
pub(crate) fn compile_upstream(
    spec: &BackendTrafficPolicySpec,
) -> Result<UpstreamConnection, String> {
    let http = spec.timeout.as_ref().and_then(|t| t.http.as_ref());
    let connect_timeout = positive(
        spec.timeout
            .as_ref()
            .and_then(|t| t.tcp.as_ref())
            .and_then(|t| t.connect_timeout.as_deref()),
        "spec.timeout.tcp.connectTimeout",
    )?;
    let proxy_protocol = match spec.proxy_protocol.as_ref().map(|p| p.version.as_str()) {
        None => None,
        Some("V1") => Some(UpstreamProxyProtocol::V1),
        Some("V2") => Some(UpstreamProxyProtocol::V2),
        Some(other) => {
            return Err(format!(
                "spec.proxyProtocol.version: unsupported value {other:?}"
            ));
        }
    };
    let keepalive = spec
        .tcp_keepalive
        .as_ref()
        .map(super::compile::compile_keepalive)
        .transpose()?
        .map(|k| UpstreamTcpKeepalive {
            probes: k.probes,
            idle: k.idle,
            interval: k.interval,
        });
    let max_requests = match spec
        .circuit_breaker
        .as_ref()
        .and_then(|c| c.max_requests_per_connection)
    {
        Some(0) => {
            return Err(
                "spec.circuitBreaker.maxRequestsPerConnection: must be at least 1".to_owned(),
            );
        }
        other => other,
    };
    let http2 = match &spec.http2 {
        None => None,
        Some(http2) => {
            let settings = http2.compile().map_err(|e| format!("spec.http2.{e}"))?;
            Some(UpstreamHttp2 {
                initial_stream_window: settings.initial_stream_window,
                initial_connection_window: settings.initial_connection_window,
                max_concurrent_streams: settings.max_concurrent_streams,
                stream_error_on_invalid_message: settings.on_invalid_message
                    == Some(InvalidMessageAction::TerminateStream),
            })
        }
    };
    Ok(UpstreamConnection {
        http2,
        connect_timeout,
        keepalive,
        proxy_protocol,
        idle_timeout: positive(
            http.and_then(|h| h.connection_idle_timeout.as_deref()),
            "spec.timeout.http.connectionIdleTimeout",
        )?,
        max_lifetime: positive(
            http.and_then(|h| h.max_connection_duration.as_deref()),
            "spec.timeout.http.maxConnectionDuration",
        )?,
        max_requests,
        stream_idle_timeout: positive(
            http.and_then(|h| h.stream_idle_timeout.as_deref()),
            "spec.timeout.http.streamIdleTimeout",
        )?,
        max_stream_duration: positive(
            http.and_then(|h| h.max_stream_duration.as_deref()),
            "spec.timeout.http.maxStreamDuration",
        )?,
        socket_buffer: spec
            .connection
            .as_ref()
            .and_then(|c| c.socket_buffer_limit.as_ref())
            .map(|value| super::compile::socket_buffer(value, "spec.connection.socketBufferLimit"))
            .transpose()?,
        preconnect_percent: match spec
            .connection
            .as_ref()
            .and_then(|c| c.preconnect.as_ref())
            .and_then(|p| p.per_endpoint_percent)
        {
            Some(percent) if !(100..=300).contains(&percent) => {
                return Err(
                    "spec.connection.preconnect.perEndpointPercent: within 100–300".to_owned(),
                );
            }
            percent => percent,
        },
        max_connections_per_endpoint: match spec
            .circuit_breaker
            .as_ref()
            .and_then(|c| c.per_endpoint.as_ref())
            .and_then(|p| p.max_connections)
        {
            Some(0) => {
                return Err("spec.circuitBreaker.perEndpoint.maxConnections: at least 1".to_owned());
            }
            max => max,
        },
    })
}

/// `text` as a positive duration (`None` when absent), else an error naming `field`.
fn positive(text: Option<&str>, field: &str) -> Result<Option<Duration>, String> {
    text.map(|text| {
        parse_duration(text)
            .filter(|d| !d.is_zero())
            .ok_or_else(|| format!("{field}: {text:?} is not a positive duration"))
    })
    .transpose()
}
