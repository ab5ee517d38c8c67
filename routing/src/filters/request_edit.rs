//! The shared shape of request-side filters: edit the request, then call the inner service.

use std::sync::Arc;
use std::task::{Context, Poll};

use http::Request;
use tower::{Layer, Service};

/// An edit applied to every request before the inner service sees it.
pub trait RequestEdit {
    /// Edits `request` in place.
    fn edit<B>(&self, request: &mut Request<B>);
}

/// A layer applying a [`RequestEdit`].
#[derive(Debug)]
pub struct RequestEditLayer<E> {
    edit: Arc<E>,
}

/// The service of [`RequestEditLayer`].
#[derive(Debug)]
pub struct RequestEditService<S, E> {
    inner: S,
    edit: Arc<E>,
}

impl<E> RequestEditLayer<E> {
    /// A layer applying `edit`.
    pub fn new(edit: E) -> Self {
        RequestEditLayer {
            edit: Arc::new(edit),
        }
    }
}

impl<E> Clone for RequestEditLayer<E> {
    fn clone(&self) -> Self {
        RequestEditLayer {
            edit: self.edit.clone(),
        }
    }
}

impl<S: Clone, E> Clone for RequestEditService<S, E> {
    fn clone(&self) -> Self {
        RequestEditService {
            inner: self.inner.clone(),
            edit: self.edit.clone(),
        }
    }
}

impl<S, E> Layer<S> for RequestEditLayer<E> {
    type Service = RequestEditService<S, E>;

    fn layer(&self, inner: S) -> Self::Service {
        RequestEditService {
            inner,
            edit: self.edit.clone(),
        }
    }
}

impl<S, E, B> Service<Request<B>> for RequestEditService<S, E>
where
    S: Service<Request<B>>,
    E: RequestEdit,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: Request<B>) -> Self::Future {
        self.edit.edit(&mut request);
        self.inner.call(request)
    }
}
