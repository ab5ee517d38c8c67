//! HTTP/2 settings for HBONE, with ztunnel's defaults (hbone spec §1.4). All configurable.

use std::time::Duration;

/// HTTP/2 and keepalive settings of one side of HBONE.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct H2Settings {
    /// SETTINGS_INITIAL_WINDOW_SIZE (per stream).
    pub stream_window: u32,
    /// The connection-level window (WINDOW_UPDATE on stream 0).
    pub connection_window: u32,
    /// SETTINGS_MAX_FRAME_SIZE.
    pub max_frame_size: u32,
    /// SETTINGS_MAX_HEADER_LIST_SIZE.
    pub max_header_list_size: u32,
    /// SETTINGS_MAX_CONCURRENT_STREAMS advertised by a server; for a client, the most streams
    /// it opens on one connection.
    pub max_concurrent_streams: u32,
    /// Bytes buffered for sending per stream.
    pub max_send_buffer_size: usize,
    /// Interval between keepalive PINGs (the first after one interval).
    pub ping_interval: Duration,
    /// A connection whose PING is not answered within this time is torn down.
    pub ping_timeout: Duration,
}

const MIB: u32 = 1024 * 1024;

impl H2Settings {
    /// ztunnel's outbound (client) settings: 4 MiB stream and 16 MiB connection windows,
    /// 1 MiB frames, 16 KiB header lists, 100 streams per connection, PING every 10 s with a
    /// 20 s timeout.
    pub const fn client() -> Self {
        H2Settings {
            stream_window: 4 * MIB,
            connection_window: 16 * MIB,
            max_frame_size: MIB,
            max_header_list_size: 16 * 1024,
            max_concurrent_streams: 100,
            max_send_buffer_size: 4 * MIB as usize,
            ping_interval: Duration::from_secs(10),
            ping_timeout: Duration::from_secs(20),
        }
    }

    /// ztunnel's inbound (server) settings: as the client's, but 64 KiB header lists, 200
    /// concurrent streams and a 400 KiB send buffer.
    pub const fn server() -> Self {
        H2Settings {
            max_header_list_size: 64 * 1024,
            max_concurrent_streams: 200,
            max_send_buffer_size: 400 * 1024,
            ..Self::client()
        }
    }

    /// Applies these settings to an h2 client builder (push disabled).
    pub fn client_builder(&self) -> h2::client::Builder {
        let mut builder = h2::client::Builder::new();
        builder
            .initial_window_size(self.stream_window)
            .initial_connection_window_size(self.connection_window)
            .max_frame_size(self.max_frame_size)
            .max_header_list_size(self.max_header_list_size)
            .initial_max_send_streams(self.max_concurrent_streams as usize)
            .max_send_buffer_size(self.max_send_buffer_size)
            .enable_push(false);
        builder
    }

    /// Applies these settings to an h2 server builder.
    pub fn server_builder(&self) -> h2::server::Builder {
        let mut builder = h2::server::Builder::new();
        builder
            .initial_window_size(self.stream_window)
            .initial_connection_window_size(self.connection_window)
            .max_frame_size(self.max_frame_size)
            .max_header_list_size(self.max_header_list_size)
            .max_concurrent_streams(self.max_concurrent_streams)
            .max_send_buffer_size(self.max_send_buffer_size);
        builder
    }
}
