//! The bandwidth limit as a tower layer, and the per-route state the gateway keeps.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};

use http::{Request, Response};
use tokio::time::Instant;
use tower::{Layer, Service};

use super::BandwidthLimit;
use super::body::ThrottledBody;
use super::bucket::ByteBucket;
use super::trailers::DelayRecord;

/// The buckets of one route (or one layer): one per limited direction, shared by every
/// request through it.
#[derive(Debug, Clone, Default)]
pub struct RouteBandwidth {
    request: Option<Arc<ByteBucket>>,
    response: Option<Arc<ByteBucket>>,
    trailer_prefix: Option<Arc<str>>,
}

impl RouteBandwidth {
    /// Full buckets for `limit`.
    pub fn new(limit: &BandwidthLimit) -> Self {
        let now = Instant::now();
        RouteBandwidth {
            request: limit
                .request
                .map(|rate| Arc::new(ByteBucket::new(rate, now))),
            response: limit
                .response
                .map(|rate| Arc::new(ByteBucket::new(rate, now))),
            trailer_prefix: limit.trailer_prefix.as_deref().map(Arc::from),
        }
    }

    /// `request` with its body paced, and what paces its response's body.
    pub fn pace_request<B>(
        &self,
        request: Request<B>,
    ) -> (Request<ThrottledBody<B>>, ResponsePacer) {
        let record = Arc::new(DelayRecord::default());
        let bucket = self.request.clone();
        let request = match &self.trailer_prefix {
            Some(_) => {
                request.map(|body| ThrottledBody::request(body, bucket, Arc::clone(&record)))
            }
            None => request.map(|body| ThrottledBody::new(body, bucket)),
        };
        let pacer = ResponsePacer {
            bucket: self.response.clone(),
            trailers: self
                .trailer_prefix
                .as_ref()
                .map(|prefix| (record, Arc::clone(prefix))),
        };
        (request, pacer)
    }
}

/// Paces one response's body (and adds its delay trailers, if asked).
#[derive(Debug, Default)]
pub struct ResponsePacer {
    bucket: Option<Arc<ByteBucket>>,
    trailers: Option<(Arc<DelayRecord>, Arc<str>)>,
}

impl ResponsePacer {
    /// `response` with its body paced.
    pub fn pace<B>(self, response: Response<B>) -> Response<ThrottledBody<B>> {
        let ResponsePacer { bucket, trailers } = self;
        response.map(|body| match trailers {
            Some((record, prefix)) => ThrottledBody::response(body, bucket, record, prefix),
            None => ThrottledBody::new(body, bucket),
        })
    }
}

/// Paces the request and response bodies through the wrapped service to a
/// [`BandwidthLimit`], one bucket per direction shared by all its requests.
#[derive(Debug, Clone)]
pub struct BandwidthLimitLayer {
    buckets: RouteBandwidth,
}

impl BandwidthLimitLayer {
    /// A layer enforcing `limit`.
    pub fn new(limit: &BandwidthLimit) -> Self {
        BandwidthLimitLayer {
            buckets: RouteBandwidth::new(limit),
        }
    }
}

impl<S> Layer<S> for BandwidthLimitLayer {
    type Service = BandwidthLimitService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        BandwidthLimitService {
            inner,
            buckets: self.buckets.clone(),
        }
    }
}

/// The service of [`BandwidthLimitLayer`].
#[derive(Debug, Clone)]
pub struct BandwidthLimitService<S> {
    inner: S,
    buckets: RouteBandwidth,
}

impl<S, B, RB> Service<Request<B>> for BandwidthLimitService<S>
where
    S: Service<Request<ThrottledBody<B>>, Response = Response<RB>>,
{
    type Response = Response<ThrottledBody<RB>>;
    type Error = S::Error;
    type Future = PacedResponse<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        let (request, pacer) = self.buckets.pace_request(request);
        PacedResponse {
            inner: self.inner.call(request),
            pacer: Some(pacer),
        }
    }
}

/// The future of [`BandwidthLimitService`]: the inner service's response, its body paced.
#[pin_project::pin_project]
#[derive(Debug)]
pub struct PacedResponse<F> {
    #[pin]
    inner: F,
    pacer: Option<ResponsePacer>,
}

impl<F, RB, E> Future for PacedResponse<F>
where
    F: Future<Output = Result<Response<RB>, E>>,
{
    type Output = Result<Response<ThrottledBody<RB>>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let response = ready!(this.inner.poll(cx))?;
        let pacer = this.pacer.take().unwrap_or_default();
        Poll::Ready(Ok(pacer.pace(response)))
    }
}
