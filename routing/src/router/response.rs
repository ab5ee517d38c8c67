//! Responses the router answers itself: errors, redirects.

use http::{HeaderValue, Response, StatusCode};

/// An empty-bodied response with `status`.
pub(crate) fn status<B: Default>(status: StatusCode) -> Response<B> {
    let mut response = Response::new(B::default());
    *response.status_mut() = status;
    response
}

/// A redirect with `location`.
pub(crate) fn redirect<B: Default>(code: u16, location: &str) -> Response<B> {
    let mut response = status(StatusCode::from_u16(code).unwrap_or(StatusCode::FOUND));
    if let Ok(value) = HeaderValue::try_from(location) {
        response.headers_mut().insert(http::header::LOCATION, value);
    }
    response
}
