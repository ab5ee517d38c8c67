//! A body whose data frames are paced by a [`ByteBucket`].

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use tokio::time::{Instant, Sleep};

use super::bucket::{ByteBucket, Grant};
use super::trailers::DelayRecord;

/// Where a paced body reports its delays.
#[derive(Debug, Clone)]
enum Report {
    /// A request body: into the exchange's record.
    Request(Arc<DelayRecord>),
    /// A response body: as trailers named after the prefix, with the request's record.
    Response(Arc<DelayRecord>, Arc<str>),
}

/// `B` with its data frames released only as fast as a shared [`ByteBucket`] allows: a frame
/// larger than the tokens at hand is split, the rest waits. Other frames (trailers) pass
/// once the data before them has gone. Without a bucket, frames pass as they come.
#[pin_project::pin_project]
pub struct ThrottledBody<B> {
    #[pin]
    inner: B,
    bucket: Option<Arc<ByteBucket>>,
    /// Data taken from `inner` and not yet released.
    pending: Bytes,
    /// A frame that came after `pending` and waits for it.
    held: Option<Frame<Bytes>>,
    wait: Option<Pin<Box<Sleep>>>,
    /// When the first frame was asked for.
    started: Option<Instant>,
    /// Time spent waiting for tokens.
    paced: Duration,
    report: Option<Report>,
    done: bool,
}

impl<B> ThrottledBody<B> {
    /// `inner` paced by `bucket` (`None`: not paced).
    pub fn new(inner: B, bucket: Option<Arc<ByteBucket>>) -> Self {
        ThrottledBody {
            inner,
            bucket,
            pending: Bytes::new(),
            held: None,
            wait: None,
            started: None,
            paced: Duration::ZERO,
            report: None,
            done: false,
        }
    }

    /// A request body that records its delays in `record` when it ends.
    pub fn request(inner: B, bucket: Option<Arc<ByteBucket>>, record: Arc<DelayRecord>) -> Self {
        ThrottledBody {
            report: Some(Report::Request(record)),
            ..ThrottledBody::new(inner, bucket)
        }
    }

    /// A response body that ends with the delay trailers named `<prefix>-…` (merged into
    /// the backend's own trailers, if it sends some).
    pub fn response(
        inner: B,
        bucket: Option<Arc<ByteBucket>>,
        record: Arc<DelayRecord>,
        prefix: Arc<str>,
    ) -> Self {
        ThrottledBody {
            report: Some(Report::Response(record, prefix)),
            ..ThrottledBody::new(inner, bucket)
        }
    }
}

impl<B> Body for ThrottledBody<B>
where
    B: Body<Data = Bytes>,
{
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, B::Error>>> {
        let mut this = self.project();
        let started = *this.started.get_or_insert_with(Instant::now);
        loop {
            if !this.pending.is_empty() {
                if let Some(wait) = this.wait.as_mut() {
                    ready!(wait.as_mut().poll(cx));
                    *this.wait = None;
                }
                let grant = match this.bucket {
                    Some(bucket) => bucket.take(this.pending.len(), Instant::now()),
                    None => Grant::Bytes(this.pending.len()),
                };
                match grant {
                    Grant::Bytes(n) => {
                        return Poll::Ready(Some(Ok(Frame::data(this.pending.split_to(n)))));
                    }
                    Grant::Wait(wait) => {
                        *this.paced += wait;
                        *this.wait = Some(Box::pin(tokio::time::sleep(wait)));
                        continue;
                    }
                }
            }
            if let Some(frame) = this.held.take() {
                let frame = match (frame.into_trailers(), this.report.as_ref()) {
                    (Ok(mut trailers), Some(Report::Response(record, prefix))) => {
                        *this.done = true;
                        trailers.extend(record.trailers(prefix, started.elapsed(), *this.paced));
                        Frame::trailers(trailers)
                    }
                    (Ok(trailers), _) => Frame::trailers(trailers),
                    (Err(frame), _) => frame,
                };
                return Poll::Ready(Some(Ok(frame)));
            }
            if *this.done {
                return Poll::Ready(None);
            }
            match ready!(this.inner.as_mut().poll_frame(cx)) {
                Some(Ok(frame)) => match frame.into_data() {
                    Ok(data) => *this.pending = data,
                    Err(frame) => *this.held = Some(frame),
                },
                Some(Err(error)) => return Poll::Ready(Some(Err(error))),
                None => {
                    *this.done = true;
                    match this.report.as_ref() {
                        Some(Report::Request(record)) => {
                            record.record_request(started.elapsed(), *this.paced);
                        }
                        Some(Report::Response(record, prefix)) => {
                            let trailers = record.trailers(prefix, started.elapsed(), *this.paced);
                            return Poll::Ready(Some(Ok(Frame::trailers(trailers))));
                        }
                        None => {}
                    }
                    return Poll::Ready(None);
                }
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        // Trailers still to come keep a response open.
        self.done
            || (self.pending.is_empty()
                && self.held.is_none()
                && !matches!(self.report, Some(Report::Response(..)))
                && self.inner.is_end_stream())
    }

    fn size_hint(&self) -> SizeHint {
        let mut hint = self.inner.size_hint();
        let pending = self.pending.len() as u64;
        hint.set_lower(hint.lower().saturating_add(pending));
        if let Some(upper) = hint.upper() {
            hint.set_upper(upper.saturating_add(pending));
        }
        hint
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::{BodyExt, Full};

    #[tokio::test(start_paused = true)]
    async fn a_body_larger_than_the_bucket_takes_the_rate_to_pass() {
        let bucket = Arc::new(ByteBucket::new(1024, Instant::now()));
        let body = ThrottledBody::new(Full::new(Bytes::from(vec![7u8; 5 * 1024])), Some(bucket));
        let started = Instant::now();
        let collected = body.collect().await.unwrap().to_bytes();
        assert_eq!(collected.len(), 5 * 1024);
        // One second's burst, then four more seconds at 1 KiB/s.
        let took = started.elapsed();
        assert!(
            took >= Duration::from_millis(3900) && took <= Duration::from_millis(4200),
            "{took:?}"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn responses_end_with_the_delay_trailers() {
        let bucket = Arc::new(ByteBucket::new(1000, Instant::now()));
        let record = Arc::new(DelayRecord::default());
        record.record_request(Duration::from_millis(7), Duration::ZERO);
        let body = ThrottledBody::response(
            Full::new(Bytes::from(vec![1u8; 1500])),
            Some(bucket),
            record,
            Arc::from("x-eg"),
        );
        let collected = body.collect().await.unwrap();
        let trailers = collected.trailers().cloned().unwrap();
        assert_eq!(collected.to_bytes().len(), 1500);
        assert_eq!(trailers["x-eg-bandwidth-request-delay-ms"], "7");
        let paced: u64 = trailers["x-eg-bandwidth-response-filter-delay-ms"]
            .to_str()
            .unwrap()
            .parse()
            .unwrap();
        assert!((450..=600).contains(&paced), "{paced}");
    }
}
