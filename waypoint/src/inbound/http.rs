//! Serving HTTP/1.1 and HTTP/2 (prior knowledge or ALPN) on any byte stream — a TCP or TLS
//! connection, an HBONE tunnel, a PROXY-terminated stream — with the limits every inbound
//! connection gets: request headers at most 64 KiB (larger HTTP/1.1 requests get 431, larger
//! HTTP/2 header lists are refused), 10 s to send HTTP/1.1 headers, upgrades passed through,
//! half-closed HTTP/1.1 clients still answered.

use std::convert::Infallible;
use std::future::Future;
use std::time::Duration;

use http::{Request, Response};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use tokio::io::{AsyncRead, AsyncWrite};

use crate::outbound::{BodyError, ResponseBody};

/// Limits on one inbound HTTP connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HttpLimits {
    /// The most bytes of request headers (default 64 KiB).
    pub max_header_bytes: usize,
    /// How long an HTTP/1.1 client may take to send a request's headers (default 10 s).
    pub header_read_timeout: Duration,
}

impl Default for HttpLimits {
    fn default() -> Self {
        HttpLimits {
            max_header_bytes: 64 * 1024,
            header_read_timeout: Duration::from_secs(10),
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
    let service = hyper::service::service_fn(move |request: Request<Incoming>| {
        let mut service = service.clone();
        let too_large = checked_limit.is_some_and(|limit| head_bytes(&request) > limit);
        let call =
            (!too_large).then(|| tower::Service::call(&mut service, request.map(boxed_body)));
        async move {
            match call {
                Some(call) => call.await,
                None => {
                    let mut answer = Response::new(ResponseBody::default());
                    *answer.status_mut() = http::StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE;
                    Ok(answer)
                }
            }
        }
    });
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout)
        .max_buf_size(limits.max_header_bytes.max(H1_MINIMUM_BUFFER))
        // A client may shut its sending side after the request (common through tunnels)
        // and still expect the answer.
        .half_close(true);
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_header_list_size(u32::try_from(limits.max_header_bytes).unwrap_or(u32::MAX));
    let connection = builder.serve_connection_with_upgrades(TokioIo::new(io), service);
    tokio::pin!(connection);
    tokio::pin!(drain);
    tokio::select! {
        _ = connection.as_mut() => {}
        () = &mut drain => {
            connection.as_mut().graceful_shutdown();
            let _ = connection.await;
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

/// A request body boxed with the forwarder's error type.
fn boxed_body(body: Incoming) -> ResponseBody {
    body.map_err(BodyError::new).boxed()
}
