//! The HTTP authorizer: the check request keeps the request's method, puts `path` before its
//! path (query included), and carries `Host`, `Authorization`, `Content-Length` and the
//! `headersToExtAuth` headers (and the body when `bodyToExtAuth` buffers it). A 2xx answer
//! allows, copying `headersToBackend` onto the forwarded request; any other answer is relayed
//! to the client.

use bytes::Bytes;
use http::header::{self, HeaderValue};
use http::{HeaderMap, Request};

use super::{
    AllowedEdits, AuthorizerResponse, CheckContext, ExtAuth, ExtAuthVerdict, is_hop_by_hop,
};

/// The check request for the request with head `parts`.
pub(super) fn check_request(
    ext: &ExtAuth,
    parts: &http::request::Parts,
    context: &CheckContext<'_>,
) -> Result<Request<Bytes>, String> {
    let path = parts.uri.path_and_query().map_or("/", |p| p.as_str());
    let target = format!("{}{path}", ext.path_prefix);
    let body = context.body.cloned().unwrap_or_default();
    let mut request = Request::builder()
        .method(parts.method.clone())
        .uri(target)
        .body(body)
        .map_err(|e| format!("check request: {e}"))?;
    let headers = request.headers_mut();
    let host = parts.headers.get(header::HOST).cloned().or_else(|| {
        parts
            .uri
            .authority()
            .and_then(|a| HeaderValue::from_str(a.as_str()).ok())
    });
    if let Some(host) = host {
        headers.insert(header::HOST, host);
    }
    copy_all(&parts.headers, headers, &header::AUTHORIZATION);
    for name in &ext.headers_to_ext_auth {
        if !is_hop_by_hop(name) && name != header::HOST {
            copy_all(&parts.headers, headers, name);
        }
    }
    let length = context.body.map_or(0, Bytes::len);
    headers.insert(header::CONTENT_LENGTH, HeaderValue::from(length));
    Ok(request)
}

fn copy_all(from: &HeaderMap, to: &mut HeaderMap, name: &header::HeaderName) {
    to.remove(name);
    for value in from.get_all(name) {
        to.append(name.clone(), value.clone());
    }
}

/// What the HTTP authorizer's answer decides.
pub(super) fn verdict(ext: &ExtAuth, answer: AuthorizerResponse) -> ExtAuthVerdict {
    if answer.status.is_success() {
        let mut edits = AllowedEdits::default();
        for name in &ext.headers_to_backend {
            let mut values = answer.headers.get_all(name).iter();
            if let Some(first) = values.next() {
                edits.set.push((name.clone(), first.clone()));
                edits
                    .append
                    .extend(values.map(|v| (name.clone(), v.clone())));
            }
        }
        return ExtAuthVerdict::Allowed(edits);
    }
    let mut headers = answer.headers;
    let framing: Vec<_> = headers
        .keys()
        .filter(|n| is_hop_by_hop(n))
        .cloned()
        .collect();
    for name in framing {
        headers.remove(name);
    }
    ExtAuthVerdict::Denied {
        status: answer.status,
        headers,
        body: answer.body,
    }
}
