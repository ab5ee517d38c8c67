//! ClientTrafficPolicy `http2`: the HTTP/2 settings a listener's connections announce — the
//! initial stream and connection flow-control windows and the most concurrent streams —
//! checked against RFC 9113's bounds (windows 65 535 to 2³¹−1 bytes, at least one stream).
//! `onInvalidMessage` says what a malformed request ends: its stream (`TerminateStream`, the
//! connection goes on) or, as by default in Envoy Gateway, the whole connection
//! (`TerminateConnection`: a `GOAWAY` with `PROTOCOL_ERROR`, then the connection closes).

use serde::{Deserialize, Serialize};

use super::compile::quantity;

/// `http2`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Http2Spec {
    /// Each stream's initial window (a quantity: `64Ki`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub initial_stream_window_size: Option<serde_yaml_ng::Value>,
    /// The connection's initial window.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub initial_connection_window_size: Option<serde_yaml_ng::Value>,
    /// Streams a client may open at once.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_concurrent_streams: Option<u32>,
    /// `TerminateConnection` (the default) or `TerminateStream`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on_invalid_message: Option<String>,
}

/// Compiled `http2` (`None`: the server's default).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Http2Settings {
    /// `SETTINGS_INITIAL_WINDOW_SIZE`.
    pub initial_stream_window: Option<u32>,
    /// The connection window, opened by a `WINDOW_UPDATE` on stream 0.
    pub initial_connection_window: Option<u32>,
    /// `SETTINGS_MAX_CONCURRENT_STREAMS`.
    pub max_concurrent_streams: Option<u32>,
    /// What a malformed request ends (`None`: the default, its connection).
    pub on_invalid_message: Option<InvalidMessageAction>,
}

/// What a malformed HTTP/2 request ends (`onInvalidMessage`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum InvalidMessageAction {
    /// The whole connection: `GOAWAY` with `PROTOCOL_ERROR` (Envoy's default).
    #[default]
    TerminateConnection,
    /// Only the request's stream: `RST_STREAM` with `PROTOCOL_ERROR`.
    TerminateStream,
}

/// The largest flow-control window (RFC 9113 §6.9.1).
const MAX_WINDOW: u64 = (1 << 31) - 1;

/// The initial window every HTTP/2 peer starts with (RFC 9113 §6.9.2).
const MIN_WINDOW: u64 = 65_535;

impl Http2Spec {
    /// Compiles the spec (errors name the field under `spec.http2`).
    pub fn compile(&self) -> Result<Http2Settings, String> {
        let on_invalid_message = match self.on_invalid_message.as_deref() {
            None => None,
            Some("TerminateStream") => Some(InvalidMessageAction::TerminateStream),
            Some("TerminateConnection") => Some(InvalidMessageAction::TerminateConnection),
            Some(other) => return Err(format!("onInvalidMessage: unsupported value {other:?}")),
        };
        let window = |value: &Option<serde_yaml_ng::Value>, field: &str| {
            value
                .as_ref()
                .map(|value| {
                    quantity(value)
                        .filter(|bytes| (MIN_WINDOW..=MAX_WINDOW).contains(bytes))
                        .and_then(|bytes| u32::try_from(bytes).ok())
                        .ok_or_else(|| {
                            format!(
                                "{field}: {value:?} is not a window of 65535 to 2147483647 bytes"
                            )
                        })
                })
                .transpose()
        };
        if self.max_concurrent_streams == Some(0) {
            return Err("maxConcurrentStreams: at least 1".into());
        }
        Ok(Http2Settings {
            initial_stream_window: window(
                &self.initial_stream_window_size,
                "initialStreamWindowSize",
            )?,
            initial_connection_window: window(
                &self.initial_connection_window_size,
                "initialConnectionWindowSize",
            )?,
            max_concurrent_streams: self.max_concurrent_streams,
            on_invalid_message,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn compile(yaml: &str) -> Result<Http2Settings, String> {
        serde_yaml_ng::from_str::<Http2Spec>(yaml)
            .map_err(|e| e.to_string())?
            .compile()
    }

    #[test]
    fn windows_and_streams_follow_rfc_9113_bounds() {
        assert_eq!(
            compile("{initialStreamWindowSize: 128Ki, initialConnectionWindowSize: 1Mi, maxConcurrentStreams: 10}").unwrap(),
            Http2Settings {
                initial_stream_window: Some(131_072),
                initial_connection_window: Some(1_048_576),
                max_concurrent_streams: Some(10),
                on_invalid_message: None,
            }
        );
        assert_eq!(compile("{}").unwrap(), Http2Settings::default());
        assert_eq!(
            compile("{onInvalidMessage: TerminateStream}")
                .unwrap()
                .on_invalid_message,
            Some(InvalidMessageAction::TerminateStream)
        );
        assert_eq!(
            compile("{onInvalidMessage: TerminateConnection}")
                .unwrap()
                .on_invalid_message,
            Some(InvalidMessageAction::TerminateConnection)
        );
        for (yaml, expected) in [
            ("{initialStreamWindowSize: 1Ki}", "initialStreamWindowSize"),
            (
                "{initialConnectionWindowSize: 4Gi}",
                "initialConnectionWindowSize",
            ),
            ("{maxConcurrentStreams: 0}", "at least 1"),
            ("{onInvalidMessage: Ignore}", "unsupported value"),
        ] {
            let error = compile(yaml).unwrap_err();
            assert!(error.contains(expected), "{yaml}: {error}");
        }
    }
}
