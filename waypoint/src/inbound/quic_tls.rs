//! TLS for HTTP/3 listeners: QUIC's handshake with the configuration of the listener the
//! ClientHello's SNI names, as TCP connections get through `LazyConfigAcceptor`.
//!
//! quinn takes one crypto configuration per endpoint and starts its TLS session before the
//! ClientHello arrives. [`SniQuicConfig`] starts a [`SniSession`] instead, which holds the
//! CRYPTO bytes until the ClientHello handshake message is whole (at most 64 KiB), reads its
//! server name, then starts the chosen listener's rustls session and hands it those bytes;
//! from then on it only forwards. Every listener's own settings — versions, suites, groups,
//! client certificate validation — thus hold over QUIC too, with ALPN `h3`.

use std::any::Any;
use std::sync::Arc;

use super::tls::{SniConfigs, choose_by_sni};
use mesh_policy::traffic::client_hello::ClientHello;
use quinn::crypto::rustls::QuicServerConfig;
use quinn::crypto::{
    ExportKeyingMaterialError, KeyPair, Keys, PacketKey, ServerConfig, Session, UnsupportedVersion,
};
use quinn::{ConnectionId, Side, TransportErrorCode};
use quinn_proto::TransportError;
use quinn_proto::transport_parameters::TransportParameters;

/// The most CRYPTO bytes held while waiting for the ClientHello (as the TCP listeners'
/// ClientHello reader allows).
const MAX_CLIENT_HELLO: usize = 64 * 1024;

/// TLS alert `decode_error` (RFC 8446 §6.2), sent as QUIC's `CRYPTO_ERROR` 0x0132.
const DECODE_ERROR: u8 = 50;
/// TLS alert `no_application_protocol` (RFC 7301 §3.2): the listener the SNI names does not
/// serve HTTP/3.
const NO_APPLICATION_PROTOCOL: u8 = 120;

/// Why a socket's HTTP/3 listeners could not get a QUIC configuration.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub(crate) enum QuicSetupError {
    /// The listener's TLS settings leave out what QUIC needs (TLS 1.3 and its
    /// `TLS_AES_128_GCM_SHA256` suite for Initial packets).
    #[error("listener {listener}: HTTP/3 needs TLS 1.3 with TLS_AES_128_GCM_SHA256")]
    NoTls13 {
        /// `gateway/listener`.
        listener: String,
    },
    /// None of the socket's listeners that enable HTTP/3 has a certificate.
    #[error("no HTTPS listener with HTTP/3 has a certificate")]
    NoHttp3,
}

/// The QUIC server configurations of a socket's HTTPS listeners, most specific hostname
/// first; `None` for the listeners that do not serve HTTP/3 (at least one does).
pub(crate) struct SniQuicConfig {
    first: Arc<QuicServerConfig>,
    entries: Vec<(Option<String>, Option<Arc<QuicServerConfig>>)>,
}

impl SniQuicConfig {
    /// The QUIC configurations of the listeners in `tls` whose policy enables HTTP/3 (their
    /// TCP configurations with ALPN `h3`, early data off); `None` when none does.
    pub(crate) fn of(tls: &SniConfigs) -> Result<Option<Self>, QuicSetupError> {
        let mut entries = Vec::new();
        let mut first = None;
        for (hostname, listener) in tls.entries() {
            if !listener.http3 {
                entries.push((hostname.clone(), None));
                continue;
            }
            let mut config = (*listener.config).clone();
            config.alpn_protocols = vec![b"h3".to_vec()];
            config.max_early_data_size = 0;
            // quinn's session start requires TLS 1.3 among the versions (it panics without);
            // `try_from` checks for the Initial packets' suite.
            let quic = listener
                .tls13
                .then(|| QuicServerConfig::try_from(config).ok())
                .flatten()
                .ok_or_else(|| QuicSetupError::NoTls13 {
                    listener: listener.listener.clone(),
                })?;
            let quic = Arc::new(quic);
            first.get_or_insert_with(|| Arc::clone(&quic));
            entries.push((hostname.clone(), Some(quic)));
        }
        Ok(first.map(|first| SniQuicConfig { first, entries }))
    }

    /// The configuration for a ClientHello naming `server_name`: that of the listener the
    /// name belongs to (exact hostname, then the longest wildcard, then the listener without
    /// a hostname), else the first listener's — as for TCP; `None` when that listener does
    /// not serve HTTP/3 (another listener's settings must not stand in for its own).
    fn choose(&self, server_name: Option<&str>) -> Option<&Arc<QuicServerConfig>> {
        choose_by_sni(&self.entries, server_name).and_then(Option::as_ref)
    }
}

impl ServerConfig for SniQuicConfig {
    fn initial_keys(
        &self,
        version: u32,
        dst_cid: &ConnectionId,
    ) -> Result<Keys, UnsupportedVersion> {
        // Initial keys come from the version and the connection id alone (RFC 9001 §5.2).
        self.first.initial_keys(version, dst_cid)
    }

    fn retry_tag(&self, version: u32, orig_dst_cid: &ConnectionId, packet: &[u8]) -> [u8; 16] {
        self.first.retry_tag(version, orig_dst_cid, packet)
    }

    fn start_session(
        self: Arc<Self>,
        version: u32,
        params: &TransportParameters,
    ) -> Box<dyn Session> {
        let waiting = Arc::clone(&self.first).start_session(version, params);
        Box::new(SniSession {
            configs: self,
            version,
            params: *params,
            state: SessionState::Waiting {
                hello: Vec::new(),
                stand_in: waiting,
            },
        })
    }
}

/// A server session that picks its listener's configuration once the ClientHello is whole.
struct SniSession {
    configs: Arc<SniQuicConfig>,
    version: u32,
    params: TransportParameters,
    state: SessionState,
}

enum SessionState {
    /// Holding CRYPTO bytes; `stand_in` (the first listener's session, never fed) answers
    /// what does not depend on the listener: Initial keys.
    Waiting {
        hello: Vec<u8>,
        stand_in: Box<dyn Session>,
    },
    /// The chosen listener's session.
    Chosen(Box<dyn Session>),
}

impl SniSession {
    fn session(&self) -> &dyn Session {
        match &self.state {
            SessionState::Waiting { stand_in, .. } => stand_in.as_ref(),
            SessionState::Chosen(session) => session.as_ref(),
        }
    }

    /// The length of the ClientHello message at the start of `bytes`, once its header is in.
    fn message_len(bytes: &[u8]) -> Result<Option<usize>, TransportError> {
        let Some(header) = bytes.get(..4) else {
            return Ok(None);
        };
        if header[0] != 1 {
            return Err(crypto_error(
                DECODE_ERROR,
                "the first message is no ClientHello",
            ));
        }
        let len = 4
            + (usize::from(header[1]) << 16 | usize::from(header[2]) << 8)
            + usize::from(header[3]);
        if len > MAX_CLIENT_HELLO {
            return Err(crypto_error(DECODE_ERROR, "ClientHello over 64 KiB"));
        }
        Ok(Some(len))
    }
}

fn crypto_error(alert: u8, reason: &str) -> TransportError {
    TransportError {
        code: TransportErrorCode::crypto(alert),
        frame: None,
        reason: reason.to_owned(),
    }
}

impl Session for SniSession {
    fn initial_keys(&self, dst_cid: &ConnectionId, side: Side) -> Keys {
        self.session().initial_keys(dst_cid, side)
    }

    fn handshake_data(&self) -> Option<Box<dyn Any>> {
        match &self.state {
            SessionState::Waiting { .. } => None,
            SessionState::Chosen(session) => session.handshake_data(),
        }
    }

    fn peer_identity(&self) -> Option<Box<dyn Any>> {
        match &self.state {
            SessionState::Waiting { .. } => None,
            SessionState::Chosen(session) => session.peer_identity(),
        }
    }

    fn early_crypto(&self) -> Option<(Box<dyn quinn::crypto::HeaderKey>, Box<dyn PacketKey>)> {
        match &self.state {
            SessionState::Waiting { .. } => None,
            SessionState::Chosen(session) => session.early_crypto(),
        }
    }

    fn early_data_accepted(&self) -> Option<bool> {
        match &self.state {
            SessionState::Waiting { .. } => None,
            SessionState::Chosen(session) => session.early_data_accepted(),
        }
    }

    fn is_handshaking(&self) -> bool {
        match &self.state {
            SessionState::Waiting { .. } => true,
            SessionState::Chosen(session) => session.is_handshaking(),
        }
    }

    fn read_handshake(&mut self, buf: &[u8]) -> Result<bool, TransportError> {
        let hello = match &mut self.state {
            SessionState::Chosen(session) => return session.read_handshake(buf),
            SessionState::Waiting { hello, .. } => hello,
        };
        // The first flight carries the ClientHello alone, whose length counts its header.
        if hello.len() + buf.len() > MAX_CLIENT_HELLO {
            return Err(crypto_error(DECODE_ERROR, "ClientHello over 64 KiB"));
        }
        hello.extend_from_slice(buf);
        let Some(len) = Self::message_len(hello)? else {
            return Ok(false);
        };
        if hello.len() < len {
            return Ok(false);
        }
        let parsed = ClientHello::parse_message(&hello[..len])
            .map_err(|_| crypto_error(DECODE_ERROR, "malformed ClientHello"))?;
        let chosen = self
            .configs
            .choose(parsed.server_name.as_deref())
            .ok_or_else(|| crypto_error(NO_APPLICATION_PROTOCOL, "no HTTP/3 on this listener"))?;
        let mut session = Arc::clone(chosen).start_session(self.version, &self.params);
        let read = session.read_handshake(hello);
        self.state = SessionState::Chosen(session);
        read
    }

    fn transport_parameters(&self) -> Result<Option<TransportParameters>, TransportError> {
        match &self.state {
            SessionState::Waiting { .. } => Ok(None),
            SessionState::Chosen(session) => session.transport_parameters(),
        }
    }

    fn write_handshake(&mut self, buf: &mut Vec<u8>) -> Option<Keys> {
        match &mut self.state {
            SessionState::Waiting { .. } => None,
            SessionState::Chosen(session) => session.write_handshake(buf),
        }
    }

    fn next_1rtt_keys(&mut self) -> Option<KeyPair<Box<dyn PacketKey>>> {
        match &mut self.state {
            SessionState::Waiting { .. } => None,
            SessionState::Chosen(session) => session.next_1rtt_keys(),
        }
    }

    fn is_valid_retry(&self, orig_dst_cid: &ConnectionId, header: &[u8], payload: &[u8]) -> bool {
        self.session().is_valid_retry(orig_dst_cid, header, payload)
    }

    fn export_keying_material(
        &self,
        output: &mut [u8],
        label: &[u8],
        context: &[u8],
    ) -> Result<(), ExportKeyingMaterialError> {
        match &self.state {
            SessionState::Waiting { .. } => Err(ExportKeyingMaterialError),
            SessionState::Chosen(session) => session.export_keying_material(output, label, context),
        }
    }
}
