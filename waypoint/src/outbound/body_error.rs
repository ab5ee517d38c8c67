//! [`BodyError`]: the one error type of the bodies the forwarder carries (a named type rather
//! than a bare `Box<dyn Error>`, which trips the compiler's higher-ranked `Send` checks).

use routing::router::BoxError;

/// Why a request or response body failed: the peer's I/O error, or an idle timeout.
#[derive(Debug, thiserror::Error)]
#[error(transparent)]
pub struct BodyError(pub BoxError);

impl BodyError {
    /// Wraps any error.
    pub fn new(error: impl Into<BoxError>) -> Self {
        BodyError(error.into())
    }
}
