//! Serving HTTP/1.1 and HTTP/2 (prior knowledge or ALPN) on any byte stream — a TCP or TLS
//! connection, an HBONE tunnel, a PROXY-terminated stream — with the limits every inbound
//! connection gets: request headers at most 64 KiB (larger HTTP/1.1 requests get 431, larger
//! HTTP/2 header lists are refused), 10 s to send HTTP/1.1 headers, upgrades passed through,
//! half-closed HTTP/1.1 clients still answered; a connection without requests in flight for
//! the idle timeout (1 h by default, as in Envoy) is closed gracefully; with a request timeout
//! or a maximum stream duration, a request not answered in time is answered as Envoy does —
//! 408 while its body is still arriving, 504 once it has arrived whole; with a stream idle
//! timeout, a request or response body that goes that long without a frame is cut.

use std::convert::Infallible;
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use http::{Request, Response};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use tokio::io::{AsyncRead, AsyncWrite};

use super::h2_invalid::TerminateOnInvalid;
use super::trailers::{TrailerlessBody, offers_trailers};
use crate::outbound::{BodyError, DeadlineBody, IdleTimeoutBody, ResponseBody};

/// Limits on one inbound HTTP connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HttpLimits {
    /// The most bytes of request headers (default 64 KiB).
    pub max_header_bytes: usize,
    /// How long an HTTP/1.1 client may take to send a request's headers (default 10 s).
    pub header_read_timeout: Duration,
    /// How long a connection with no request in flight stays open (default 1 h; `None`: no
    /// limit).
    pub idle_timeout: Option<Duration>,
    /// How long a request may go without its response starting (default: no limit): then
    /// it is answered 408 if its body has not arrived whole, else 504 (Envoy's
    /// `request_timeout`, which only a response disarms once the router has the request).
    pub request_timeout: Option<Duration>,
    /// How long a connection may live before it is closed gracefully (default: no limit).
    pub max_connection_duration: Option<Duration>,
    /// How many requests a connection may carry before it is closed gracefully (default: no
    /// limit).
    pub max_requests_per_connection: Option<u64>,
    /// How long one request and its response may take in all (default: no limit): past it, a
    /// request not yet answered gets 408 (504 once received whole), a response body is cut.
    pub max_stream_duration: Option<Duration>,
    /// How long a request's or response's body may go without a frame (default: none here;
    /// the forwarder cuts a backend's silent response body after 5 min).
    pub stream_idle_timeout: Option<Duration>,
    /// HTTP/2: each stream's initial flow-control window (default: hyper's).
    pub h2_stream_window: Option<u32>,
    /// HTTP/2: the connection's initial flow-control window (default: hyper's).
    pub h2_connection_window: Option<u32>,
    /// HTTP/2: the most streams a client may open at once (default: hyper's, 200).
    pub h2_max_concurrent_streams: Option<u32>,
    /// HTTP/2: a malformed request ends its whole connection, not only its stream (default
    /// true, as in Envoy).
    pub h2_terminate_connection_on_invalid: bool,
    /// HTTP/1.1: header names keep the case they arrived in, to the backend and back
    /// (default false: lower case, as HTTP/2 has them).
    pub preserve_header_case: bool,
    /// HTTP/1: trailers are proxied (default false: dropped both ways, as Envoy does).
    pub http1_trailers: bool,
    /// Envoy's router headers are added ([`routing::router::EnvoyHeaders`]; default false,
    /// as in Envoy Gateway).
    pub envoy_headers: bool,
}

/// Envoy's default idle timeout of downstream connections.
pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(3600);

impl Default for HttpLimits {
    fn default() -> Self {
        HttpLimits {
            max_header_bytes: 64 * 1024,
            header_read_timeout: Duration::from_secs(10),
            idle_timeout: Some(DEFAULT_IDLE_TIMEOUT),
            request_timeout: None,
            stream_idle_timeout: None,
            max_stream_duration: None,
            max_connection_duration: None,
            max_requests_per_connection: None,
            h2_stream_window: None,
            h2_connection_window: None,
            h2_max_concurrent_streams: None,
            h2_terminate_connection_on_invalid: true,
            preserve_header_case: false,
            http1_trailers: false,
            envoy_headers: false,
        }
    }
}

/// Serves `io` until the client closes it, or — once `drain` resolves — until the requests
/// in flight are answered. Each request's body is boxed as a [`ResponseBody`] for `service`.
pub async fn serve_http<IO, S>(
    io: IO,
    service: S,
    limits: HttpLimits,
    drain: impl Future<Output = ()>,
) where
    IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    S: tower::Service<Request<ResponseBody>, Response = Response<ResponseBody>, Error = Infallible>
        + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
{
    // hyper's HTTP/1 buffer cannot be smaller than 8 KiB: smaller limits are checked here.
    let checked_limit =
        (limits.max_header_bytes < H1_MINIMUM_BUFFER).then_some(limits.max_header_bytes);
    let activity = Activity::default();
    let in_flight = activity.clone();
    let request_budget = limits.max_requests_per_connection;
    let preserve_header_case = limits.preserve_header_case;
    let http1_trailers = limits.http1_trailers;
    let guards = RequestGuards::of(&limits);
    let service = hyper::service::service_fn(move |request: Request<Incoming>| {
        let mut service = service.clone();
        let busy = in_flight.start(request_budget);
        let too_large = checked_limit.is_some_and(|limit| head_bytes(&request) > limit);
        let mut request = request;
        if preserve_header_case {
            request
                .extensions_mut()
                .insert(crate::outbound::PreserveHeaderCase);
        }
        strip_h2c_upgrade(&mut request);
        // HTTP/1 trailers go only where a policy enables them (Envoy's HTTP/1 codec drops
        // them); the answer may carry some only if the client offered `TE: trailers`.
        let drop_trailers = !http1_trailers && request.version() < http::Version::HTTP_2;
        let trailerless_answer = drop_trailers && offers_trailers(request.headers());
        let request = request.map(|body| boxed_body(body, drop_trailers));
        // Too large: answered 431 without calling the service.
        let refusal = too_large.then_some(http::StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE);
        guards.call(&mut service, request, trailerless_answer, refusal, busy)
    });
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout)
        .preserve_header_case(limits.preserve_header_case)
        .max_buf_size(limits.max_header_bytes.max(H1_MINIMUM_BUFFER))
        // A client may shut its sending side after the request (common through tunnels)
        // and still expect the answer.
        .half_close(true);
    let mut http2 = builder.http2();
    http2
        .timer(TokioTimer::new())
        .max_header_list_size(u32::try_from(limits.max_header_bytes).unwrap_or(u32::MAX));
    if let Some(window) = limits.h2_stream_window {
        http2.initial_stream_window_size(window);
    }
    if let Some(window) = limits.h2_connection_window {
        http2.initial_connection_window_size(window);
    }
    if let Some(streams) = limits.h2_max_concurrent_streams {
        http2.max_concurrent_streams(streams);
    }
    let io = TerminateOnInvalid::new(io, limits.h2_terminate_connection_on_invalid);
    let connection = builder.serve_connection_with_upgrades(TokioIo::new(io), service);
    tokio::pin!(connection);
    // The gateway drains, the connection idles, or its time or requests are used up: the
    // requests in flight are answered, then it closes.
    let closing = activity.closing(drain, &limits);
    tokio::select! {
        _ = connection.as_mut() => {}
        () = closing => {
            connection.as_mut().graceful_shutdown();
            let _ = connection.await;
        }
    }
}

/// The limits each request gets from its connection's [`HttpLimits`], whatever its HTTP
/// version: the request timeout, the stream's maximum duration and the stream idle timeout;
/// and Envoy's router headers when the policy asks for them.
#[derive(Debug, Clone, Copy)]
pub(super) struct RequestGuards {
    request_timeout: Option<Duration>,
    max_stream_duration: Option<Duration>,
    stream_idle_timeout: Option<Duration>,
    envoy_headers: bool,
}

impl RequestGuards {
    /// The per-request part of `limits`.
    pub(super) fn of(limits: &HttpLimits) -> Self {
        RequestGuards {
            request_timeout: limits.request_timeout,
            max_stream_duration: limits.max_stream_duration,
            stream_idle_timeout: limits.stream_idle_timeout,
            envoy_headers: limits.envoy_headers,
        }
    }

    /// Calls `service` with `request` now — unless `refusal` answers it instead — and answers
    /// as Envoy does when the guards run out: a request not answered in time gets 408 (504
    /// once its body arrived whole), a body silent for the stream idle timeout or past the
    /// stream's deadline is cut. The answer's trailers are dropped if `trailerless_answer`.
    /// `hold` is kept until the answer's head (a request counted in flight). One future, not
    /// one inside another: the service's future is large, and every nesting copies it.
    pub(super) fn call<S, H>(
        self,
        service: &mut S,
        request: Request<ResponseBody>,
        trailerless_answer: bool,
        refusal: Option<http::StatusCode>,
        hold: H,
    ) -> impl Future<Output = Result<Response<ResponseBody>, Infallible>> + Send + use<S, H>
    where
        H: Send + 'static,
        S: tower::Service<
                Request<ResponseBody>,
                Response = Response<ResponseBody>,
                Error = Infallible,
            >,
        S::Future: Send + 'static,
    {
        let RequestGuards {
            request_timeout,
            max_stream_duration,
            stream_idle_timeout,
            envoy_headers,
        } = self;
        let mut request = request;
        if envoy_headers {
            request
                .extensions_mut()
                .insert(routing::router::EnvoyHeaders::default());
        }
        let stream_deadline = max_stream_duration.map(|limit| tokio::time::Instant::now() + limit);
        let request = match stream_idle_timeout {
            None => request,
            Some(idle) => request.map(|body| IdleTimeoutBody::new(body, idle).boxed()),
        };
        let (request, received) = if request_timeout.is_some() || stream_deadline.is_some() {
            let received = Arc::new(AtomicBool::new(false));
            let watched = Arc::clone(&received);
            let request = request.map(|body| ReceivedBody::new(body, watched).boxed());
            (request, Some(received))
        } else {
            (request, None)
        };
        let call = refusal.is_none().then(|| service.call(request));
        async move {
            let _hold = hold;
            let Some(call) = call else {
                return Ok(status_answer(
                    refusal.unwrap_or(http::StatusCode::INTERNAL_SERVER_ERROR),
                ));
            };
            let received_whole = || {
                received
                    .as_ref()
                    .is_some_and(|received| received.load(Ordering::Acquire))
            };
            let answered = async {
                match request_timeout {
                    Some(timeout) => match tokio::time::timeout(timeout, call).await {
                        Ok(response) => response,
                        Err(_) => Ok(request_timeout_answer(received_whole())),
                    },
                    None => call.await,
                }
            };
            let response = match stream_deadline {
                None => answered.await,
                Some(deadline) => match tokio::time::timeout_at(deadline, answered).await {
                    Ok(response) => response.map(|response| {
                        response.map(|body| DeadlineBody::new(body, deadline).boxed())
                    }),
                    Err(_) => Ok(request_timeout_answer(received_whole())),
                },
            };
            let response = match trailerless_answer {
                false => response,
                true => response
                    .map(|response| response.map(|body| TrailerlessBody::new(body, true).boxed())),
            };
            // The response's body, too, must keep moving.
            match stream_idle_timeout {
                None => response,
                Some(idle) => response
                    .map(|response| response.map(|body| IdleTimeoutBody::new(body, idle).boxed())),
            }
        }
    }
}

/// The answer `status` with an empty body.
fn status_answer(status: http::StatusCode) -> Response<ResponseBody> {
    let mut answer = Response::new(ResponseBody::default());
    *answer.status_mut() = status;
    answer
}

/// Envoy's answer to a request that ran out of time before its response started: 408
/// `request timeout` while its body was still arriving, 504 once it had arrived whole (the
/// gateway, not the client, was then too slow).
fn request_timeout_answer(received_whole: bool) -> Response<ResponseBody> {
    let status = if received_whole {
        http::StatusCode::GATEWAY_TIMEOUT
    } else {
        http::StatusCode::REQUEST_TIMEOUT
    };
    let mut answer = status_answer(status);
    *answer.body_mut() = crate::outbound::full_body(bytes::Bytes::from_static(b"request timeout"));
    answer.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("text/plain"),
    );
    answer
}

/// A request body that records when it has been read to its end.
#[pin_project::pin_project]
struct ReceivedBody {
    #[pin]
    inner: ResponseBody,
    received: Arc<AtomicBool>,
}

impl ReceivedBody {
    fn new(inner: ResponseBody, received: Arc<AtomicBool>) -> Self {
        if http_body::Body::is_end_stream(&inner) {
            received.store(true, Ordering::Release);
        }
        ReceivedBody { inner, received }
    }
}

impl http_body::Body for ReceivedBody {
    type Data = bytes::Bytes;
    type Error = BodyError;

    fn poll_frame(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<bytes::Bytes>, BodyError>>> {
        let mut this = self.project();
        let polled = this.inner.as_mut().poll_frame(cx);
        let ended = match &polled {
            std::task::Poll::Ready(None) => true,
            std::task::Poll::Ready(Some(Ok(_))) => this.inner.is_end_stream(),
            _ => false,
        };
        if ended {
            this.received.store(true, Ordering::Release);
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

/// The requests in flight on one connection, and when that count last changed.
#[derive(Clone)]
pub(super) struct Activity(Arc<ActivityState>);

struct ActivityState {
    /// When the connection was opened: `last_change` counts from here.
    opened: tokio::time::Instant,
    in_flight: AtomicUsize,
    /// Nanoseconds from `opened` to the last end of a request.
    last_change: AtomicU64,
    /// Requests started.
    started: AtomicU64,
    /// Told when the requests a connection may carry have all started.
    budget_spent: tokio::sync::Notify,
    /// Told when the last request in flight ends, once someone waits for that.
    settled: tokio::sync::Notify,
    /// Whether [`Activity::settled`] has been called (only then is `settled` told).
    awaited: AtomicBool,
}

impl Default for Activity {
    fn default() -> Self {
        Activity(Arc::new(ActivityState {
            opened: tokio::time::Instant::now(),
            in_flight: AtomicUsize::new(0),
            last_change: AtomicU64::new(0),
            started: AtomicU64::new(0),
            budget_spent: tokio::sync::Notify::new(),
            settled: tokio::sync::Notify::new(),
            awaited: AtomicBool::new(false),
        }))
    }
}

/// One request in flight, until dropped.
pub(super) struct Busy(Activity);

impl Drop for Busy {
    fn drop(&mut self) {
        // SeqCst here and in `settled`: each side's write comes before its read of the
        // other's, so at least one of them sees the other's (no lost wake-up).
        let last = self.0.0.in_flight.fetch_sub(1, Ordering::SeqCst) == 1;
        if last && self.0.0.awaited.load(Ordering::SeqCst) {
            self.0.0.settled.notify_waiters();
        }
        self.0.touch();
    }
}

impl Activity {
    /// One more request; the `budget`-th one announces the budget spent. (Only the end of a
    /// request is timed: while one is in flight the connection is not idle anyway.)
    pub(super) fn start(&self, budget: Option<u64>) -> Busy {
        self.0.in_flight.fetch_add(1, Ordering::AcqRel);
        let started = self.0.started.fetch_add(1, Ordering::AcqRel) + 1;
        if budget.is_some_and(|budget| started >= budget) {
            self.0.budget_spent.notify_one();
        }
        Busy(self.clone())
    }

    /// Resolves once the connection has lived `lifetime`, or its request budget is spent
    /// (never without either).
    async fn spent(&self, lifetime: Option<Duration>) {
        let aged = async {
            match lifetime {
                Some(lifetime) => tokio::time::sleep_until(self.0.opened + lifetime).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            () = aged => {}
            () = self.0.budget_spent.notified() => {}
        }
    }

    /// Resolves when the connection should close gracefully: `drain` resolves, or the
    /// connection idles, lives or serves past `limits`.
    pub(super) async fn closing(&self, drain: impl Future<Output = ()>, limits: &HttpLimits) {
        tokio::select! {
            () = drain => {}
            () = self.idle_for(limits.idle_timeout) => {}
            () = self.spent(limits.max_connection_duration) => {}
        }
    }

    /// Resolves once no request is in flight.
    pub(super) async fn settled(&self) {
        self.0.awaited.store(true, Ordering::SeqCst);
        loop {
            let notified = self.0.settled.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if self.0.in_flight.load(Ordering::SeqCst) == 0 {
                return;
            }
            notified.await;
        }
    }

    fn touch(&self) {
        let since = u64::try_from(self.0.opened.elapsed().as_nanos()).unwrap_or(u64::MAX);
        self.0.last_change.store(since, Ordering::Release);
    }

    /// Resolves once no request has been in flight, nor started or finished, for `timeout`
    /// (never without a timeout).
    async fn idle_for(&self, timeout: Option<Duration>) {
        let Some(timeout) = timeout else {
            return std::future::pending().await;
        };
        loop {
            let last =
                self.0.opened + Duration::from_nanos(self.0.last_change.load(Ordering::Acquire));
            let due = last + timeout;
            if self.0.in_flight.load(Ordering::Acquire) > 0 {
                tokio::time::sleep(timeout).await;
            } else if tokio::time::Instant::now() >= due {
                return;
            } else {
                tokio::time::sleep_until(due).await;
            }
        }
    }
}

/// The smallest read buffer hyper's HTTP/1 server accepts.
const H1_MINIMUM_BUFFER: usize = 8192;

/// The size of a request's head as sent: the request line and every header line.
fn head_bytes<B>(request: &Request<B>) -> usize {
    let line = request.method().as_str().len() + request.uri().to_string().len() + 12;
    request.headers().iter().fold(line, |total, (name, value)| {
        total + name.as_str().len() + value.len() + 4
    })
}

/// A request body boxed with the forwarder's error type, its trailers dropped if
/// `drop_trailers`.
fn boxed_body(body: Incoming, drop_trailers: bool) -> ResponseBody {
    TrailerlessBody::new(body, drop_trailers)
        .map_err(BodyError::new)
        .boxed()
}

/// An HTTP/1.1 request offering to upgrade to h2c is served as it is, without the offer
/// (`Upgrade`, `HTTP2-Settings` and the `Connection` naming them go), as Envoy's HTTP/1 codec
/// does: the proxy never switches the client's connection to HTTP/2.
fn strip_h2c_upgrade<B>(request: &mut Request<B>) {
    let h2c = request.version() <= http::Version::HTTP_11
        && request
            .headers()
            .get(http::header::UPGRADE)
            .is_some_and(|value| value.as_bytes().eq_ignore_ascii_case(b"h2c"));
    if h2c {
        let headers = request.headers_mut();
        headers.remove(http::header::UPGRADE);
        headers.remove("http2-settings");
        headers.remove(http::header::CONNECTION);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_connection_is_idle_only_without_requests_for_the_timeout() {
        let activity = Activity::default();
        let timeout = Some(Duration::from_secs(60));
        let started = tokio::time::Instant::now();
        let busy = activity.start(None);
        let watcher = activity.clone();
        let idle = tokio::spawn(async move { watcher.idle_for(timeout).await });
        tokio::time::sleep(Duration::from_secs(90)).await;
        assert!(!idle.is_finished(), "a request in flight keeps it open");
        drop(busy);
        let after_last = tokio::time::Instant::now();
        idle.await.unwrap();
        let closed = tokio::time::Instant::now();
        assert!(closed - after_last >= Duration::from_secs(60));
        assert!(
            closed - after_last < Duration::from_secs(61),
            "{:?}",
            closed - started
        );
    }

    #[tokio::test(start_paused = true)]
    async fn settled_waits_for_the_last_request_in_flight() {
        let activity = Activity::default();
        activity.settled().await; // nothing in flight: at once
        let (first, second) = (activity.start(None), activity.start(None));
        let watcher = activity.clone();
        let settled = tokio::spawn(async move { watcher.settled().await });
        tokio::time::sleep(Duration::from_secs(1)).await;
        drop(first);
        tokio::time::sleep(Duration::from_secs(1)).await;
        assert!(!settled.is_finished(), "one request is still in flight");
        drop(second);
        tokio::time::timeout(Duration::from_secs(1), settled)
            .await
            .expect("the last request's end wakes the waiter")
            .unwrap();
    }
}
