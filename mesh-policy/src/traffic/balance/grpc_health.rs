//! The gRPC health checking protocol (`grpc.health.v1.Health/Check`) that active checks of
//! type `GRPC` speak, sans-IO: the framed request to send, and the judgement of an answer.
//! Only `SERVING` passes; an answer with another serving status, a gRPC error or an HTTP
//! status other than 200 says the endpoint is unhealthy (Envoy takes it out at once).

use bytes::{BufMut, Bytes, BytesMut};
use http::{HeaderMap, StatusCode};
use prost::Message;

use super::active::ProbeOutcome;

/// The method's path.
pub const CHECK_PATH: &str = "/grpc.health.v1.Health/Check";

/// The most of an answer's body a probe reads (the message is a few bytes).
pub const MAX_ANSWER_BYTES: usize = 1024;

/// `grpc.health.v1.HealthCheckRequest`.
#[derive(Clone, PartialEq, Message)]
struct HealthCheckRequest {
    #[prost(string, tag = "1")]
    service: String,
}

/// `grpc.health.v1.HealthCheckResponse`.
#[derive(Clone, PartialEq, Message)]
struct HealthCheckResponse {
    #[prost(int32, tag = "1")]
    status: i32,
}

/// `HealthCheckResponse.ServingStatus.SERVING`.
const SERVING: i32 = 1;

/// The request body: one uncompressed gRPC message asking about `service`.
pub fn check_request_body(service: &str) -> Bytes {
    let message = HealthCheckRequest {
        service: service.to_owned(),
    };
    let length = message.encoded_len();
    let mut framed = BytesMut::with_capacity(5 + length);
    framed.put_u8(0);
    // A service name comes from the configuration and is far below 4 GiB.
    framed.put_u32(u32::try_from(length).unwrap_or(u32::MAX));
    // Encoding into a buffer with room for the message cannot fail.
    let _ = message.encode(&mut framed);
    framed.freeze()
}

/// Judges a complete answer: its status and headers, its body (at most
/// [`MAX_ANSWER_BYTES`]) and its trailers (a trailers-only answer has `grpc-status` in the
/// headers).
pub fn judge(
    status: StatusCode,
    headers: &HeaderMap,
    body: &[u8],
    trailers: Option<&HeaderMap>,
) -> ProbeOutcome {
    if status != StatusCode::OK {
        return ProbeOutcome::Unhealthy;
    }
    let grpc_status = trailers
        .and_then(|t| t.get("grpc-status"))
        .or_else(|| headers.get("grpc-status"));
    match grpc_status.map(|v| v.as_bytes()) {
        Some(b"0") => {}
        // A stream that ended without a status was cut: no answer.
        None => return ProbeOutcome::Failed,
        Some(_) => return ProbeOutcome::Unhealthy,
    }
    match serving_status(body) {
        Some(SERVING) => ProbeOutcome::Passed,
        _ => ProbeOutcome::Unhealthy,
    }
}

/// The serving status in a body holding exactly one uncompressed message.
fn serving_status(body: &[u8]) -> Option<i32> {
    let (&compressed, rest) = body.split_first()?;
    if compressed != 0 {
        return None;
    }
    let (length, message) = rest.split_first_chunk::<4>()?;
    if usize::try_from(u32::from_be_bytes(*length)).ok()? != message.len() {
        return None;
    }
    HealthCheckResponse::decode(message)
        .ok()
        .map(|response| response.status)
}

#[cfg(test)]
mod tests {
    use http::HeaderValue;

    use super::*;

    fn ok_trailers() -> HeaderMap {
        let mut trailers = HeaderMap::new();
        trailers.insert("grpc-status", HeaderValue::from_static("0"));
        trailers
    }

    fn answer(status: i32) -> Vec<u8> {
        let message = HealthCheckResponse { status }.encode_to_vec();
        let mut body = vec![0];
        body.extend_from_slice(&(message.len() as u32).to_be_bytes());
        body.extend_from_slice(&message);
        body
    }

    #[test]
    fn the_request_is_one_framed_message_naming_the_service() {
        assert_eq!(&check_request_body("")[..], &[0, 0, 0, 0, 0]);
        assert_eq!(
            &check_request_body("shop")[..],
            &[0, 0, 0, 0, 6, 0x0a, 4, b's', b'h', b'o', b'p']
        );
    }

    #[test]
    fn only_serving_passes() {
        let headers = HeaderMap::new();
        let trailers = ok_trailers();
        let judge_body = |body: &[u8]| judge(StatusCode::OK, &headers, body, Some(&trailers));
        assert_eq!(judge_body(&answer(1)), ProbeOutcome::Passed);
        for status in [0, 2, 3] {
            assert_eq!(judge_body(&answer(status)), ProbeOutcome::Unhealthy);
        }
        assert_eq!(judge_body(b""), ProbeOutcome::Unhealthy);
        assert_eq!(judge_body(&[1, 0, 0, 0, 2, 8, 1]), ProbeOutcome::Unhealthy);
        assert_eq!(judge_body(&[0, 0, 0, 0, 9, 8, 1]), ProbeOutcome::Unhealthy);
        assert_eq!(
            judge_body(&[0, 0, 0, 0, 2, 0xff, 0xff]),
            ProbeOutcome::Unhealthy
        );
    }

    #[test]
    fn errors_and_cut_streams_are_judged() {
        let body = answer(1);
        let mut not_found = HeaderMap::new();
        not_found.insert("grpc-status", HeaderValue::from_static("5"));
        assert_eq!(
            judge(StatusCode::OK, &not_found, b"", None),
            ProbeOutcome::Unhealthy,
            "a trailers-only error"
        );
        assert_eq!(
            judge(StatusCode::OK, &HeaderMap::new(), &body, None),
            ProbeOutcome::Failed,
            "no grpc-status: the stream was cut"
        );
        assert_eq!(
            judge(
                StatusCode::SERVICE_UNAVAILABLE,
                &HeaderMap::new(),
                &body,
                Some(&ok_trailers())
            ),
            ProbeOutcome::Unhealthy
        );
    }
}
