//! A lean HTTP/1.1 connection pool to plain-text backends, on hyper's `client::conn`: idle
//! senders per endpoint, checked out last-in first-out, returned when the response body ends.
//! A pooled connection the backend closed in the meantime hands the request back (it was
//! never written), and the next connection is tried.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response};
use http_body::{Body, Frame, SizeHint};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper::client::conn::http1::{self, SendRequest};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

use super::forward::ResponseBody;

/// Idle connections kept per endpoint.
const MAX_IDLE_PER_ENDPOINT: usize = 128;

/// How long a TCP connect to a backend may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Why a request could not be sent.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub(crate) enum Http1PoolError {
    /// The TCP connection failed or timed out.
    #[error("connect: {0}")]
    Connect(#[source] std::io::Error),
    /// HTTP/1.1 failed on the connection.
    #[error("http: {0}")]
    Http(#[from] hyper::Error),
}

/// Idle senders by endpoint.
#[derive(Default)]
pub(crate) struct Http1Pool {
    idle: Mutex<HashMap<SocketAddr, Vec<SendRequest<ResponseBody>>>>,
}

impl Http1Pool {
    /// Sends `request` to `endpoint` on a pooled or new connection.
    pub(crate) async fn send(
        self: &Arc<Self>,
        endpoint: SocketAddr,
        mut request: Request<ResponseBody>,
    ) -> Result<Response<ResponseBody>, Http1PoolError> {
        while let Some(mut sender) = self.checkout(endpoint) {
            match sender.try_send_request(request).await {
                Ok(response) => return Ok(self.track(endpoint, sender, response)),
                Err(mut error) => match error.take_message() {
                    Some(unsent) => request = unsent,
                    None => return Err(error.into_error().into()),
                },
            }
        }
        let mut sender = connect(endpoint).await?;
        let response = sender.send_request(request).await?;
        Ok(self.track(endpoint, sender, response))
    }

    fn checkout(&self, endpoint: SocketAddr) -> Option<SendRequest<ResponseBody>> {
        let mut idle = self.idle.lock().ok()?;
        let senders = idle.get_mut(&endpoint)?;
        while let Some(sender) = senders.pop() {
            if sender.is_ready() {
                return Some(sender);
            }
        }
        None
    }

    fn checkin(&self, endpoint: SocketAddr, sender: SendRequest<ResponseBody>) {
        if !sender.is_ready() {
            return;
        }
        if let Ok(mut idle) = self.idle.lock() {
            let senders = idle.entry(endpoint).or_default();
            if senders.len() < MAX_IDLE_PER_ENDPOINT {
                senders.push(sender);
            }
        }
    }

    /// The response, whose body returns the connection to the pool when it ends.
    fn track(
        self: &Arc<Self>,
        endpoint: SocketAddr,
        sender: SendRequest<ResponseBody>,
        response: Response<Incoming>,
    ) -> Response<ResponseBody> {
        response.map(|body| {
            ReturningBody {
                body,
                sender: Some(sender),
                pool: Arc::clone(self),
                endpoint,
            }
            .boxed()
        })
    }
}

async fn connect(endpoint: SocketAddr) -> Result<SendRequest<ResponseBody>, Http1PoolError> {
    let stream = tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(endpoint))
        .await
        .map_err(|_| Http1PoolError::Connect(std::io::ErrorKind::TimedOut.into()))?
        .map_err(Http1PoolError::Connect)?;
    let _ = stream.set_nodelay(true);
    let (sender, connection) = http1::handshake(TokioIo::new(stream)).await?;
    tokio::spawn(async move {
        let _ = connection.await;
    });
    Ok(sender)
}

/// A response body that gives its connection back to the pool once fully read.
struct ReturningBody {
    body: Incoming,
    sender: Option<SendRequest<ResponseBody>>,
    pool: Arc<Http1Pool>,
    endpoint: SocketAddr,
}

impl ReturningBody {
    fn give_back(&mut self) {
        if let Some(sender) = self.sender.take() {
            self.pool.checkin(self.endpoint, sender);
        }
    }
}

impl Body for ReturningBody {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.body).poll_frame(cx);
        match &polled {
            Poll::Ready(None) => this.give_back(),
            Poll::Ready(Some(Ok(_))) if this.body.is_end_stream() => this.give_back(),
            Poll::Ready(Some(Err(_))) => this.sender = None,
            _ => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// A backend that answers one request per connection, then closes it without saying so.
    async fn one_shot_backend() -> SocketAddr {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        tokio::spawn(async move {
            let mut served = 0u32;
            while let Ok((mut stream, _)) = listener.accept().await {
                served += 1;
                let mut buffer = [0u8; 1024];
                let _ = stream.read(&mut buffer).await;
                let body = format!("connection {served}");
                let response = format!(
                    "HTTP/1.1 200 OK\r\ncontent-length: {}\r\n\r\n{body}",
                    body.len()
                );
                let _ = stream.write_all(response.as_bytes()).await;
                // Dropped: the pooled sender now points at a closed connection.
            }
        });
        address
    }

    async fn get(pool: &Arc<Http1Pool>, address: SocketAddr) -> String {
        let request = Request::get("/")
            .header("host", "backend")
            .body(ResponseBody::default())
            .unwrap();
        let response = pool.send(address, request).await.unwrap();
        let body = response.into_body().collect().await.unwrap().to_bytes();
        String::from_utf8(body.to_vec()).unwrap()
    }

    #[tokio::test]
    async fn a_connection_the_backend_closed_is_replaced_transparently() {
        let address = one_shot_backend().await;
        let pool = Arc::new(Http1Pool::default());
        assert_eq!(get(&pool, address).await, "connection 1");
        // Let the close reach the pooled connection's task.
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert_eq!(get(&pool, address).await, "connection 2");
        assert_eq!(get(&pool, address).await, "connection 3");
    }

    #[tokio::test]
    async fn a_refused_connection_is_an_error() {
        let unused = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = unused.local_addr().unwrap();
        drop(unused);
        let pool = Arc::new(Http1Pool::default());
        let request = Request::get("/").body(ResponseBody::default()).unwrap();
        assert!(matches!(
            pool.send(address, request).await,
            Err(Http1PoolError::Connect(_))
        ));
    }
}
