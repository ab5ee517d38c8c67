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

/// The router's own answer, as a gRPC status when the request is gRPC ([`for_grpc`]).
pub(crate) fn own_answer<B: Default>(response: Response<B>, grpc: bool) -> Response<B> {
    if grpc { for_grpc(response) } else { response }
}

/// Whether `headers` belong to a gRPC request (`content-type: application/grpc[+proto…]`).
pub(crate) fn is_grpc(headers: &http::HeaderMap) -> bool {
    headers
        .get(http::header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/grpc"))
}

/// The router's own answer to a gRPC request: HTTP 200, trailers-only, with the gRPC status
/// the Gateway API names — no route: UNIMPLEMENTED (12); invalid backend or no endpoints:
/// UNAVAILABLE (14); timeout: DEADLINE_EXCEEDED (4); others UNKNOWN (2).
pub(crate) fn for_grpc<B: Default>(response: Response<B>) -> Response<B> {
    let code = match response.status().as_u16() {
        404 => "12",
        500 | 502 | 503 => "14",
        504 => "4",
        _ => "2",
    };
    let mut answer = status(StatusCode::OK);
    let headers = answer.headers_mut();
    headers.insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static("application/grpc"),
    );
    headers.insert("grpc-status", HeaderValue::from_static(code));
    answer
}
