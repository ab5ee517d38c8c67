//! Bandwidth limits (BackendTrafficPolicy `bandwidthLimit`, Envoy's bandwidth limit filter):
//! request bodies on their way to the backend and response bodies on their way to the
//! client are paced to a number of bytes per second. Nothing is refused: when a direction's
//! [`ByteBucket`] is empty its bytes wait for tokens, so transfers slow down. One bucket per
//! direction is shared by every request of a route (Envoy's per-route limit); it holds one
//! second's worth of bytes and refills continuously. With `responseTrailers`, responses end
//! with Envoy's four delay trailers under the configured prefix.
//!
//! ```
//! use mesh_policy::traffic::bandwidth::{BandwidthLimit, BandwidthLimitLayer};
//! // At most 64 KiB/s up, 1 MiB/s down, with the delay trailers as `x-eg-…`.
//! let limit = BandwidthLimit {
//!     request: Some(64 << 10),
//!     response: Some(1 << 20),
//!     trailer_prefix: Some("x-eg".into()),
//! };
//! let layer = BandwidthLimitLayer::new(&limit);
//! # let _ = layer;
//! ```

mod body;
mod bucket;
mod layer;
pub(crate) mod spec;
mod trailers;

pub use body::ThrottledBody;
pub use bucket::{ByteBucket, Grant};
pub use layer::{
    BandwidthLimitLayer, BandwidthLimitService, PacedResponse, ResponsePacer, RouteBandwidth,
};
pub use trailers::DelayRecord;

/// What a `bandwidthLimit` asks: bytes per second each way (`None`: that way is not
/// limited), and the prefix of the delay trailers (`None`: no trailers).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct BandwidthLimit {
    /// Request bodies, client → backend, in bytes per second.
    pub request: Option<u64>,
    /// Response bodies, backend → client, in bytes per second.
    pub response: Option<u64>,
    /// `responseTrailers.prefix`: the responses' delay trailers are named `<prefix>-…`.
    pub trailer_prefix: Option<String>,
}
