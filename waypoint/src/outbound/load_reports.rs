//! The out-of-band ORCA load report stream of one endpoint (BackendTrafficPolicy
//! `backendUtilization.outOfBand`): one `xds.service.orca.v3.OpenRcaService/StreamCoreMetrics`
//! call over HTTP/2 with prior knowledge, opened through the forwarder's [`Connect`] as the
//! gRPC health probes are, whose streamed reports are handed to the balancer's sink. An answer
//! of gRPC `UNIMPLEMENTED` ends the endpoint's reporting for good, as in Envoy; any other end
//! is a break, after which the balancer opens the stream again.

use std::net::SocketAddr;
use std::time::Duration;

use http::header::{CONTENT_TYPE, HeaderValue, TE, USER_AGENT};
use http::{HeaderMap, Method, Request, Uri};
use http_body_util::{BodyExt, Full};
use hyper_util::rt::{TokioExecutor, TokioIo};
use mesh_policy::traffic::balance::orca_oob::{
    LoadSink, ReportFrames, ReportStreamEnd, STREAM_PATH, stream_request_body,
};

use super::connect::Connect;

/// gRPC's `UNIMPLEMENTED` status code.
const GRPC_UNIMPLEMENTED: &str = "12";

/// Streams `address`'s reports every `period` into `sink` until the stream ends.
pub(super) async fn stream_reports<C: Connect>(
    connector: C,
    address: SocketAddr,
    period: Duration,
    mut sink: LoadSink,
) -> ReportStreamEnd {
    let broken = ReportStreamEnd::Broken { reports: 0 };
    let Ok(io) = connector.connect(address).await else {
        return broken;
    };
    let Ok((mut sender, connection)) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(io)).await
    else {
        return broken;
    };
    tokio::spawn(async move {
        let _ = connection.await;
    });
    let Ok(uri) = Uri::builder()
        .scheme("http")
        .authority(address.to_string())
        .path_and_query(STREAM_PATH)
        .build()
    else {
        return broken;
    };
    let mut request = Request::new(Full::new(stream_request_body(period)));
    *request.method_mut() = Method::POST;
    *request.uri_mut() = uri;
    *request.version_mut() = http::Version::HTTP_2;
    let headers = request.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/grpc"));
    headers.insert(TE, HeaderValue::from_static("trailers"));
    headers.insert(USER_AGENT, HeaderValue::from_static("Envoy/ORCA"));
    let Ok(response) = sender.send_request(request).await else {
        return broken;
    };
    let (parts, mut body) = response.into_parts();
    if unimplemented(&parts.headers) {
        return ReportStreamEnd::Unimplemented;
    }
    if parts.status != http::StatusCode::OK {
        return broken;
    }
    let mut frames = ReportFrames::default();
    let mut reports = 0;
    while let Some(frame) = body.frame().await {
        let Ok(frame) = frame else {
            break;
        };
        let frame = match frame.into_data() {
            Ok(data) => data,
            Err(frame) => {
                if frame.trailers_ref().is_some_and(unimplemented) {
                    return ReportStreamEnd::Unimplemented;
                }
                continue;
            }
        };
        let Ok(loads) = frames.push(&frame) else {
            break;
        };
        for load in loads {
            reports += 1;
            if !sink(load) {
                return ReportStreamEnd::Unwanted;
            }
        }
    }
    ReportStreamEnd::Broken { reports }
}

/// Whether a gRPC status in `headers` (trailers-only answer, or trailers) is UNIMPLEMENTED.
fn unimplemented(headers: &HeaderMap) -> bool {
    headers
        .get("grpc-status")
        .is_some_and(|status| status.as_bytes() == GRPC_UNIMPLEMENTED.as_bytes())
}
