//! HTTP/1 trailers dropped, as Envoy's HTTP/1 codec does unless a ClientTrafficPolicy sets
//! `http1.enableTrailers`: a chunked request's trailers never reach the backend, and a
//! client that offered `TE: trailers` gets none.

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};

/// `B` without its trailers (when `drop` is set; else `B` as it is).
#[pin_project::pin_project]
pub(crate) struct TrailerlessBody<B> {
    #[pin]
    inner: B,
    drop: bool,
}

impl<B> TrailerlessBody<B> {
    /// `inner`, its trailers dropped if `drop`.
    pub(crate) fn new(inner: B, drop: bool) -> Self {
        TrailerlessBody { inner, drop }
    }
}

impl<B: Body<Data = Bytes>> Body for TrailerlessBody<B> {
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, B::Error>>> {
        let mut this = self.project();
        loop {
            match this.inner.as_mut().poll_frame(cx) {
                Poll::Ready(Some(Ok(frame))) if *this.drop && frame.is_trailers() => continue,
                other => return other,
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// Whether a request's `TE` offers trailers (hyper answers HTTP/1 with trailers only then).
pub(crate) fn offers_trailers(headers: &http::HeaderMap) -> bool {
    headers
        .get_all(http::header::TE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .any(|token| {
            token
                .split(';')
                .next()
                .is_some_and(|t| t.trim().eq_ignore_ascii_case("trailers"))
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::{BodyExt, Full};

    fn with_trailers() -> impl Body<Data = Bytes, Error = std::convert::Infallible> {
        let mut trailers = http::HeaderMap::new();
        trailers.insert("x-checksum", http::HeaderValue::from_static("abc"));
        Full::new(Bytes::from_static(b"hello")).with_trailers(async { Some(Ok(trailers)) })
    }

    #[tokio::test]
    async fn trailers_are_dropped_only_when_asked() {
        let kept = TrailerlessBody::new(with_trailers(), false)
            .collect()
            .await
            .unwrap();
        assert_eq!(kept.trailers().unwrap()["x-checksum"], "abc");
        let dropped = TrailerlessBody::new(with_trailers(), true)
            .collect()
            .await
            .unwrap();
        assert!(dropped.trailers().is_none());
        assert_eq!(dropped.to_bytes(), "hello");
    }

    #[test]
    fn te_offers_trailers_among_other_codings() {
        let mut headers = http::HeaderMap::new();
        assert!(!offers_trailers(&headers));
        headers.insert(
            http::header::TE,
            http::HeaderValue::from_static("gzip;q=0.5, Trailers"),
        );
        assert!(offers_trailers(&headers));
    }
}
