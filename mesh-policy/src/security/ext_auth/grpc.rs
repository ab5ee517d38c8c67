//! The gRPC authorizer: Envoy's `envoy.service.auth.v3.Authorization/Check`, unary, over
//! HTTP/2. The messages below are the fields of `external_auth.proto` and
//! `attribute_context.proto` this side writes or reads (field numbers as published; unknown
//! fields of an answer are skipped by the decoder).

use std::collections::BTreeMap;

use bytes::{BufMut, Bytes, BytesMut};
use http::header::{self, HeaderName, HeaderValue};
use http::{HeaderMap, Request, StatusCode};
use prost::Message;

use super::{AllowedEdits, AuthorizerResponse, CheckContext, ExtAuth, ExtAuthVerdict};

/// The method's path.
pub(super) const CHECK_PATH: &str = "/envoy.service.auth.v3.Authorization/Check";

#[derive(Clone, PartialEq, Message)]
pub(crate) struct CheckRequest {
    #[prost(message, optional, tag = "1")]
    pub(crate) attributes: Option<AttributeContext>,
}

#[derive(Clone, PartialEq, Message)]
pub(crate) struct AttributeContext {
    #[prost(message, optional, tag = "1")]
    pub(crate) source: Option<Peer>,
    #[prost(message, optional, tag = "2")]
    pub(crate) destination: Option<Peer>,
    #[prost(message, optional, tag = "4")]
    pub(crate) request: Option<AttributeRequest>,
    #[prost(btree_map = "string, string", tag = "10")]
    pub(crate) context_extensions: BTreeMap<String, String>,
}

#[derive(Clone, PartialEq, Message)]
pub(crate) struct Peer {
    #[prost(message, optional, tag = "1")]
    pub(crate) address: Option<Address>,
    #[prost(string, tag = "4")]
    pub(crate) principal: String,
}

#[derive(Clone, PartialEq, Message)]
pub(crate) struct Address {
    #[prost(message, optional, tag = "1")]
    pub(crate) socket_address: Option<SocketAddress>,
}

#[derive(Clone, PartialEq, Message)]
pub(crate) struct SocketAddress {
    #[prost(string, tag = "2")]
    pub(crate) address: String,
    #[prost(uint32, tag = "3")]
    pub(crate) port_value: u32,
}

#[derive(Clone, PartialEq, Message)]
pub(crate) struct AttributeRequest {
    #[prost(message, optional, tag = "2")]
    pub(crate) http: Option<HttpRequest>,
}

#[derive(Clone, PartialEq, Message)]
pub(crate) struct HttpRequest {
    #[prost(string, tag = "1")]
    pub(crate) id: String,
    #[prost(string, tag = "2")]
    pub(crate) method: String,
    #[prost(btree_map = "string, string", tag = "3")]
    pub(crate) headers: BTreeMap<String, String>,
    #[prost(string, tag = "4")]
    pub(crate) path: String,
    #[prost(string, tag = "5")]
    pub(crate) host: String,
    #[prost(string, tag = "6")]
    pub(crate) scheme: String,
    #[prost(int64, tag = "9")]
    pub(crate) size: i64,
    #[prost(string, tag = "10")]
    pub(crate) protocol: String,
    #[prost(string, tag = "11")]
    pub(crate) body: String,
}

#[derive(Clone, PartialEq, Message)]
pub(crate) struct CheckResponse {
    #[prost(message, optional, tag = "1")]
    pub(crate) status: Option<RpcStatus>,
    #[prost(message, optional, tag = "2")]
    pub(crate) denied_response: Option<DeniedHttpResponse>,
    #[prost(message, optional, tag = "3")]
    pub(crate) ok_response: Option<OkHttpResponse>,
}

#[derive(Clone, PartialEq, Message)]
pub(crate) struct RpcStatus {
    #[prost(int32, tag = "1")]
    pub(crate) code: i32,
    #[prost(string, tag = "2")]
    pub(crate) message: String,
}

#[derive(Clone, PartialEq, Message)]
pub(crate) struct DeniedHttpResponse {
    #[prost(message, optional, tag = "1")]
    pub(crate) status: Option<HttpStatus>,
    #[prost(message, repeated, tag = "2")]
    pub(crate) headers: Vec<HeaderValueOption>,
    #[prost(string, tag = "3")]
    pub(crate) body: String,
}

#[derive(Clone, PartialEq, Message)]
pub(crate) struct HttpStatus {
    #[prost(int32, tag = "1")]
    pub(crate) code: i32,
}

#[derive(Clone, PartialEq, Message)]
pub(crate) struct OkHttpResponse {
    #[prost(message, repeated, tag = "2")]
    pub(crate) headers: Vec<HeaderValueOption>,
    #[prost(string, repeated, tag = "5")]
    pub(crate) headers_to_remove: Vec<String>,
}

#[derive(Clone, PartialEq, Message)]
pub(crate) struct HeaderValueOption {
    #[prost(message, optional, tag = "1")]
    pub(crate) header: Option<HeaderValueMessage>,
    #[prost(message, optional, tag = "2")]
    pub(crate) append: Option<BoolValue>,
    #[prost(int32, tag = "3")]
    pub(crate) append_action: i32,
}

#[derive(Clone, PartialEq, Message)]
pub(crate) struct HeaderValueMessage {
    #[prost(string, tag = "1")]
    pub(crate) key: String,
    #[prost(string, tag = "2")]
    pub(crate) value: String,
    #[prost(bytes = "vec", tag = "3")]
    pub(crate) raw_value: Vec<u8>,
}

#[derive(Clone, PartialEq, Message)]
pub(crate) struct BoolValue {
    #[prost(bool, tag = "1")]
    pub(crate) value: bool,
}

/// `HeaderValueOption.append_action` ADD_IF_ABSENT.
const ADD_IF_ABSENT: i32 = 1;
/// `HeaderValueOption.append_action` OVERWRITE_IF_EXISTS (only replaces).
const OVERWRITE_IF_EXISTS: i32 = 3;

/// The `Check` call for the request with head `parts`.
pub(super) fn check_request(
    ext: &ExtAuth,
    parts: &http::request::Parts,
    context: &CheckContext<'_>,
) -> Result<Request<Bytes>, String> {
    let message = CheckRequest {
        attributes: Some(attributes(ext, parts, context)),
    };
    let mut framed = BytesMut::with_capacity(5 + message.encoded_len());
    framed.put_u8(0);
    framed.put_u32(u32::try_from(message.encoded_len()).map_err(|_| "check request too large")?);
    message
        .encode(&mut framed)
        .map_err(|e| format!("check request: {e}"))?;
    let mut request = Request::builder()
        .method(http::Method::POST)
        .uri(CHECK_PATH)
        .header(header::CONTENT_TYPE, "application/grpc")
        .header(header::TE, "trailers")
        .body(framed.freeze())
        .map_err(|e| format!("check request: {e}"))?;
    let millis = ext.timeout.as_millis().min(99_999_999);
    if let Ok(timeout) = HeaderValue::try_from(format!("{millis}m")) {
        request.headers_mut().insert("grpc-timeout", timeout);
    }
    if let Ok(authority) = HeaderValue::try_from(ext.target.authority.as_str()) {
        request.headers_mut().insert(header::HOST, authority);
    }
    Ok(request)
}

fn attributes(
    ext: &ExtAuth,
    parts: &http::request::Parts,
    context: &CheckContext<'_>,
) -> AttributeContext {
    let peer = |address: Option<std::net::SocketAddr>, principal: Option<&str>| Peer {
        address: address.map(|a| Address {
            socket_address: Some(SocketAddress {
                address: a.ip().to_string(),
                port_value: u32::from(a.port()),
            }),
        }),
        principal: principal.unwrap_or_default().to_owned(),
    };
    let host = parts
        .headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .or_else(|| parts.uri.authority().map(|a| a.as_str()))
        .unwrap_or_default()
        .to_owned();
    let path = parts
        .uri
        .path_and_query()
        .map_or("/", |p| p.as_str())
        .to_owned();
    let mut headers = BTreeMap::new();
    headers.insert(":authority".to_owned(), host.clone());
    headers.insert(":method".to_owned(), parts.method.as_str().to_owned());
    headers.insert(":path".to_owned(), path.clone());
    headers.insert(":scheme".to_owned(), context.scheme.to_owned());
    let wanted = |name: &HeaderName| {
        ext.headers_to_ext_auth.is_empty() || ext.headers_to_ext_auth.contains(name)
    };
    for name in parts.headers.keys().filter(|n| wanted(n)) {
        let joined = parts
            .headers
            .get_all(name)
            .iter()
            .map(|v| String::from_utf8_lossy(v.as_bytes()))
            .collect::<Vec<_>>()
            .join(",");
        headers.insert(name.as_str().to_owned(), joined);
    }
    let size = match context.body {
        Some(body) => i64::try_from(body.len()).unwrap_or(i64::MAX),
        None => parts
            .headers
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok()?.parse().ok())
            .unwrap_or(-1),
    };
    let protocol = match parts.version {
        http::Version::HTTP_2 => "HTTP/2",
        http::Version::HTTP_3 => "HTTP/3",
        http::Version::HTTP_10 => "HTTP/1.0",
        _ => "HTTP/1.1",
    };
    AttributeContext {
        source: Some(peer(context.source, context.principal)),
        destination: Some(peer(context.destination, None)),
        request: Some(AttributeRequest {
            http: Some(HttpRequest {
                id: parts
                    .headers
                    .get("x-request-id")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or_default()
                    .to_owned(),
                method: parts.method.as_str().to_owned(),
                headers,
                path,
                host,
                scheme: context.scheme.to_owned(),
                size,
                protocol: protocol.to_owned(),
                body: context
                    .body
                    .map(|b| String::from_utf8_lossy(b).into_owned())
                    .unwrap_or_default(),
            }),
        }),
        context_extensions: ext.context_extensions.iter().cloned().collect(),
    }
}

/// What a `Check` answer decides: a gRPC failure, or an answer that is not a
/// `CheckResponse`, is no decision.
pub(super) fn verdict(answer: AuthorizerResponse) -> ExtAuthVerdict {
    match decode(answer) {
        Ok(response) => decide(response),
        Err(reason) => ExtAuthVerdict::Failed(reason),
    }
}

fn decode(answer: AuthorizerResponse) -> Result<CheckResponse, String> {
    if answer.status != StatusCode::OK {
        return Err(format!("authorizer answered HTTP {}", answer.status));
    }
    // Trailers-only answers carry grpc-status in the headers.
    let status = answer
        .trailers
        .as_ref()
        .and_then(|t| t.get("grpc-status"))
        .or_else(|| answer.headers.get("grpc-status"))
        .and_then(|v| v.to_str().ok())
        .ok_or("authorizer answer without grpc-status")?;
    if status != "0" {
        let message = answer
            .trailers
            .as_ref()
            .and_then(|t| t.get("grpc-message"))
            .or_else(|| answer.headers.get("grpc-message"))
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default();
        return Err(format!("authorizer failed: grpc-status {status} {message}"));
    }
    let body = answer.body;
    let (&compressed, rest) = body.split_first().ok_or("authorizer answer is empty")?;
    if compressed != 0 {
        return Err("authorizer answer is compressed".to_owned());
    }
    let (length, message) = rest
        .split_first_chunk::<4>()
        .ok_or("authorizer answer frame is cut")?;
    let length = usize::try_from(u32::from_be_bytes(*length)).unwrap_or(usize::MAX);
    if message.len() != length {
        return Err(format!(
            "authorizer answer frame says {length} bytes, carries {}",
            message.len()
        ));
    }
    CheckResponse::decode(message).map_err(|e| format!("authorizer answer: {e}"))
}

fn decide(response: CheckResponse) -> ExtAuthVerdict {
    let code = response.status.as_ref().map_or(0, |s| s.code);
    if code == 0 {
        let mut edits = AllowedEdits::default();
        if let Some(ok) = response.ok_response {
            for option in ok.headers {
                let Some((name, value)) = option.header.as_ref().and_then(header_pair) else {
                    continue;
                };
                match (option.append.map(|a| a.value), option.append_action) {
                    (Some(true), _) => edits.append.push((name, value)),
                    (None, ADD_IF_ABSENT) => edits.add_if_absent.push((name, value)),
                    (None, OVERWRITE_IF_EXISTS) => edits.replace.push((name, value)),
                    _ => edits.set.push((name, value)),
                }
            }
            edits.remove = ok
                .headers_to_remove
                .iter()
                .filter_map(|n| HeaderName::try_from(n.as_str()).ok())
                .filter(|n| !super::is_hop_by_hop(n) && n != header::HOST)
                .collect();
        }
        return ExtAuthVerdict::Allowed(edits);
    }
    let denied = response.denied_response.unwrap_or_default();
    let status = denied
        .status
        .and_then(|s| u16::try_from(s.code).ok())
        .and_then(|c| StatusCode::from_u16(c).ok())
        .filter(|s| s.as_u16() >= 200)
        .unwrap_or(StatusCode::FORBIDDEN);
    let mut headers = HeaderMap::new();
    for option in &denied.headers {
        if let Some((name, value)) = option.header.as_ref().and_then(header_pair)
            && !super::is_hop_by_hop(&name)
        {
            headers.append(name, value);
        }
    }
    ExtAuthVerdict::Denied {
        status,
        headers,
        body: Bytes::from(denied.body),
    }
}

fn header_pair(header: &HeaderValueMessage) -> Option<(HeaderName, HeaderValue)> {
    let name = HeaderName::try_from(header.key.as_str()).ok()?;
    let value = if header.raw_value.is_empty() {
        HeaderValue::try_from(header.value.as_str()).ok()?
    } else {
        HeaderValue::from_bytes(&header.raw_value).ok()?
    };
    Some((name, value))
}
