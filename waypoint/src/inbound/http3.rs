//! Serving HTTP/3 (RFC 9114) on one QUIC connection with the limits every inbound connection
//! gets ([`HttpLimits`]): request header sections at most `max_header_bytes`, the request
//! timeout, stream duration and stream idle timeout per request, and the connection closed
//! gracefully (GOAWAY, then the requests in flight answered) when it idles, lives or serves
//! past its limits or the gateway drains. Each request goes to the same service as HTTP/1.1
//! and HTTP/2 requests, its body boxed as a [`ResponseBody`].

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use bytes::{Buf, Bytes};
use h3::error::Code;
use h3::server::{RequestResolver, RequestStream};
use http::{Request, Response};
use http_body::{Body, Frame, SizeHint};
use http_body_util::BodyExt;

use super::http::{Activity, HttpLimits, RequestGuards};
use crate::outbound::{BodyError, ResponseBody, remove_hop_by_hop};

/// An HTTP/3 connection as h3 serves it over quinn.
type H3Connection = h3::server::Connection<h3_quinn::Connection, Bytes>;

/// Serves `connection` until the client closes it, or — once `drain` resolves, or the
/// connection idles, lives or serves past `limits` — until the requests in flight are
/// answered after a GOAWAY.
pub(super) async fn serve_http3<S>(
    connection: quinn::Connection,
    service: S,
    limits: HttpLimits,
    drain: impl Future<Output = ()>,
) where
    S: tower::Service<Request<ResponseBody>, Response = Response<ResponseBody>, Error = Infallible>
        + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
{
    let max_field_section = u64::try_from(limits.max_header_bytes).unwrap_or(u64::MAX);
    let quic = connection.clone();
    let Ok(mut h3): Result<H3Connection, _> = h3::server::builder()
        .max_field_section_size(max_field_section)
        .build(h3_quinn::Connection::new(connection))
        .await
    else {
        return;
    };
    let activity = Activity::default();
    let guards = RequestGuards::of(&limits);
    let closing = activity.closing(drain, &limits);
    tokio::pin!(closing);
    let mut shut = false;
    loop {
        tokio::select! {
            accepted = h3.accept() => match accepted {
                Ok(Some(resolver)) => {
                    let busy = activity.start(limits.max_requests_per_connection);
                    let service = service.clone();
                    tokio::spawn(async move {
                        let _busy = busy;
                        answer(resolver, service, guards).await;
                    });
                }
                _ => break,
            },
            () = &mut closing, if !shut => {
                shut = true;
                // GOAWAY naming the stream after the last one accepted: those accepted are
                // answered, the client opens no more (h3 counts from the last accepted stream:
                // 0 would tell the client its last request was not processed).
                if h3.shutdown(1).await.is_err() {
                    break;
                }
            }
            () = activity.settled(), if shut => break,
        }
    }
    // Dropping the connection closes it; the requests in flight are answered first.
    activity.settled().await;
    // A QUIC close discards what the peer has not acknowledged yet: the last answers get a
    // few round trips to arrive, unless the client closes first.
    let grace = (quic.rtt() * 4).clamp(CLOSE_GRACE_MIN, CLOSE_GRACE_MAX);
    let _ = tokio::time::timeout(grace, quic.closed()).await;
}

/// The least and the most time the last answers get to arrive before the connection closes.
const CLOSE_GRACE_MIN: std::time::Duration = std::time::Duration::from_millis(50);
const CLOSE_GRACE_MAX: std::time::Duration = std::time::Duration::from_secs(1);

/// Reads one request, has `service` answer it, and sends the answer.
async fn answer<S>(
    resolver: RequestResolver<h3_quinn::Connection, Bytes>,
    mut service: S,
    guards: RequestGuards,
) where
    S: tower::Service<Request<ResponseBody>, Response = Response<ResponseBody>, Error = Infallible>,
    S::Future: Send + 'static,
{
    let Ok((head, stream)) = resolver.resolve_request().await else {
        return;
    };
    let (mut send, recv) = stream.split();
    let body = RequestBody::start(recv, &head).await;
    let request = head.map(|()| body);
    let Ok(response) = guards.call(&mut service, request, false, None, ()).await;
    let (mut parts, body) = response.into_parts();
    // HTTP/3 forbids connection-specific fields (RFC 9114 §4.2).
    remove_hop_by_hop(&mut parts.headers);
    if send
        .send_response(Response::from_parts(parts, ()))
        .await
        .is_err()
    {
        return;
    }
    let mut body = std::pin::pin!(body);
    while let Some(frame) = body.frame().await {
        let sent = match frame {
            Ok(frame) => match frame.into_data() {
                Ok(data) => send.send_data(data).await,
                Err(frame) => match frame.into_trailers() {
                    Ok(trailers) => send.send_trailers(trailers).await,
                    Err(_) => Ok(()),
                },
            },
            Err(_) => {
                // The answer broke off: the client must not take it for whole.
                send.stop_stream(Code::H3_INTERNAL_ERROR);
                return;
            }
        };
        if sent.is_err() {
            return;
        }
    }
    let _ = send.finish().await;
}

/// A request's body, read from its HTTP/3 stream: DATA frames, then the trailers.
struct RequestBody {
    stream: RequestStream<h3_quinn::RecvStream, Bytes>,
    /// A first chunk read before the request was handed on.
    first: Option<Bytes>,
    data_done: bool,
    done: bool,
    /// `content-length`, if the client sent one.
    length: Option<u64>,
}

impl RequestBody {
    /// The body of the request `head` on `stream`, boxed. A client that sent its request's
    /// end with its headers (a GET, usually) gets an empty body that says so at once, so that
    /// an HTTP/1.1 backend is not sent a chunked body.
    async fn start(
        mut stream: RequestStream<h3_quinn::RecvStream, Bytes>,
        head: &Request<()>,
    ) -> ResponseBody {
        let length = head
            .headers()
            .get(http::header::CONTENT_LENGTH)
            .and_then(|value| value.to_str().ok())
            .and_then(|value| value.parse::<u64>().ok());
        // One poll, without waiting: whatever has arrived with the headers.
        let polled = std::future::poll_fn(|cx| {
            Poll::Ready(stream.poll_recv_data(cx).map(|result| {
                result.map(|chunk| chunk.map(|mut chunk| chunk.copy_to_bytes(chunk.remaining())))
            }))
        })
        .await;
        RequestBody::after_first_poll(stream, polled, length)
    }

    /// The body once the stream was polled for data once: `polled` is what that poll gave.
    fn after_first_poll(
        stream: RequestStream<h3_quinn::RecvStream, Bytes>,
        polled: Poll<Result<Option<Bytes>, h3::error::StreamError>>,
        length: Option<u64>,
    ) -> ResponseBody {
        let first = match polled {
            // Nothing yet, or broken (the body's next read says so again).
            Poll::Pending | Poll::Ready(Err(_)) => None,
            Poll::Ready(Ok(Some(chunk))) => Some(chunk),
            // Ended with the headers: no body.
            Poll::Ready(Ok(None)) => return ResponseBody::default(),
        };
        RequestBody {
            stream,
            first,
            data_done: false,
            done: false,
            length,
        }
        .boxed()
    }
}

impl Body for RequestBody {
    type Data = Bytes;
    type Error = BodyError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BodyError>>> {
        let this = self.get_mut();
        if let Some(first) = this.first.take() {
            return Poll::Ready(Some(Ok(Frame::data(first))));
        }
        if !this.data_done {
            match ready!(this.stream.poll_recv_data(cx)) {
                Ok(Some(mut chunk)) => {
                    let data = chunk.copy_to_bytes(chunk.remaining());
                    return Poll::Ready(Some(Ok(Frame::data(data))));
                }
                Ok(None) => this.data_done = true,
                Err(error) => {
                    this.done = true;
                    return Poll::Ready(Some(Err(BodyError::new(error))));
                }
            }
        }
        if this.done {
            return Poll::Ready(None);
        }
        let trailers = ready!(this.stream.poll_recv_trailers(cx));
        this.done = true;
        match trailers {
            Ok(Some(trailers)) => Poll::Ready(Some(Ok(Frame::trailers(trailers)))),
            Ok(None) => Poll::Ready(None),
            Err(error) => Poll::Ready(Some(Err(BodyError::new(error)))),
        }
    }

    fn is_end_stream(&self) -> bool {
        self.done
    }

    fn size_hint(&self) -> SizeHint {
        match self.length {
            Some(length) => SizeHint::with_exact(length),
            None => SizeHint::default(),
        }
    }
}
