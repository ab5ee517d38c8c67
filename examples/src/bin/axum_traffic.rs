//! `axum_traffic`: Envoy Gateway's traffic-policy features as plain tower layers in an axum
//! app — no gateway runtime, no YAML. The handler answers with the client address the
//! detection found and the path it was given.
//!
//! ```text
//! cargo run -p examples --bin axum_traffic            # listens on 127.0.0.1:8082
//! curl -s -H 'x-forwarded-for: 203.0.113.9, 10.0.0.1' http://127.0.0.1:8082/a/../b//c
//!   {"client":"203.0.113.9","path":"/b/c"}
//! curl -si http://127.0.0.1:8082/a%2Fb                  # 307 to /a/b
//! for i in 1 2 3 4 5 6; do curl -s -o /dev/null -w '%{http_code} ' -H 'x-user: ann' http://127.0.0.1:8082/; done
//!   200 200 200 200 200 429                           # 5 a minute per x-user
//! curl -s http://127.0.0.1:8082/teapot                # 418 for 10 % of requests (--abort-percent)
//! curl -s -o /dev/null -w '%{time_total}\n' http://127.0.0.1:8082/download
//!   1.00…                                             # 64 KiB at 32 KiB/s (--download-limit)
//! ```
//!
//! The layers, outermost first: `RespondLayer` (errors become answers), the peer as a
//! `hbone::peer::Peer`, `ClientAddressLayer` (two trusted hops), `PathNormalizationLayer`
//! (Envoy Gateway's defaults), `LocalRateLimitLayer` (5 a minute per `x-user`),
//! `CircuitBreakerLayer` (64 requests in flight), `FaultInjectionLayer` (aborts a share),
//! and on `/download` `BandwidthLimitLayer` (its 64 KiB answer paced to a rate).

use std::convert::Infallible;
use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::Request;
use axum::response::{IntoResponse, Response};
use clap::Parser;
use mesh_policy::traffic::bandwidth::{BandwidthLimit, BandwidthLimitLayer, ThrottledBody};
use mesh_policy::traffic::client_ip::{ClientAddress, ClientIpDetection, XffTrust};
use mesh_policy::traffic::fault::Abort;
use mesh_policy::traffic::rate_limit::RateLimitRule;
use mesh_policy::traffic::rate_limit::clock::Epoch;
use mesh_policy::traffic::rate_limit::local::RuleBuckets;
use mesh_policy::traffic::rate_limit::rules::{ClientSelector, ValueCondition, ValueMatch};
use mesh_policy::traffic::{
    CircuitBreaker, CircuitBreakerLayer, ClientAddressLayer, FaultInjection, FaultInjectionLayer,
    LocalRateLimit, LocalRateLimitLayer, Normalization, PathNormalizationLayer,
};
use routing::router::RouteError;
use serde_json::json;
use tower::ServiceBuilder;
use waypoint::respond::RespondLayer;

/// Traffic-policy layers in an axum app.
#[derive(Debug, Parser)]
#[command(name = "axum_traffic")]
struct Args {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:8082")]
    listen: SocketAddr,
    /// Percentage of requests to `/teapot` aborted with 418.
    #[arg(long, default_value_t = 10.0)]
    abort_percent: f64,
    /// Bytes per second at which `/download` sends its 64 KiB.
    #[arg(long, default_value_t = 32 * 1024)]
    download_limit: u64,
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    match run(args).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("axum_traffic: {message}");
            ExitCode::FAILURE
        }
    }
}

/// 5 requests a minute per distinct `x-user`; requests without one are not limited.
fn per_user_limit() -> Result<LocalRateLimit, String> {
    let rule = RateLimitRule {
        selectors: vec![ClientSelector {
            headers: vec![ValueCondition {
                name: "x-user".into(),
                matcher: ValueMatch::Distinct,
                invert: false,
            }],
            ..ClientSelector::default()
        }],
        requests: 5,
        unit: Duration::from_secs(60),
        cost: 1,
        shadow: false,
        shared: false,
        headers: true,
    };
    LocalRateLimit::new(&[rule], &Epoch::now(), &mut |_, rule| {
        Arc::new(RuleBuckets::new(rule.clone()))
    })
    .map_err(|e| e.to_string())
}

async fn run(args: Args) -> Result<(), String> {
    if !(0.0..=100.0).contains(&args.abort_percent) {
        return Err("--abort-percent must be within 0–100".into());
    }
    let teapot = FaultInjection {
        delay: None,
        abort: Some((
            Abort::Http(http::StatusCode::IM_A_TEAPOT),
            args.abort_percent,
        )),
    };
    let teapot_route = axum::routing::get(answer).layer(
        ServiceBuilder::new()
            .layer(axum::error_handling::HandleErrorLayer::new(
                |error: RouteError| async move {
                    waypoint::respond::answer::<axum::body::Body>(&error, false)
                },
            ))
            .layer(FaultInjectionLayer::new("teapot", teapot))
            .map_err(|never: Infallible| -> RouteError { match never {} }),
    );
    if args.download_limit == 0 {
        return Err("--download-limit must be at least 1 byte per second".into());
    }
    let paced = BandwidthLimit {
        request: None,
        response: Some(args.download_limit),
        trailer_prefix: None,
    };
    let download_route = axum::routing::get(download).layer(
        ServiceBuilder::new()
            .layer(BandwidthLimitLayer::new(&paced))
            // The handler takes axum's own body type again.
            .map_request(|request: http::Request<ThrottledBody<axum::body::Body>>| {
                request.map(axum::body::Body::new)
            }),
    );
    let app = axum::Router::new()
        .route("/teapot", teapot_route)
        .route("/download", download_route)
        .fallback(answer)
        .layer(
            ServiceBuilder::new()
                .layer(RespondLayer)
                .map_request(|mut request: Request| {
                    let peer = request
                        .extensions()
                        .get::<axum::extract::ConnectInfo<SocketAddr>>()
                        .map(|info| info.0);
                    if let Some(peer) = peer {
                        request
                            .extensions_mut()
                            .insert(hbone::peer::Peer::tcp(peer, None));
                    }
                    request
                })
                .layer(ClientAddressLayer::new(ClientIpDetection::XForwardedFor {
                    trust: XffTrust::Hops(2),
                    append: true,
                }))
                .layer(PathNormalizationLayer::new(Normalization::default()))
                .layer(LocalRateLimitLayer::new("per user", per_user_limit()?))
                .layer(CircuitBreakerLayer::new("app", CircuitBreaker::new(64)))
                .map_err(|never: Infallible| -> RouteError { match never {} }),
        );
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .map_err(|e| format!("cannot listen on {}: {e}", args.listen))?;
    let address = listener.local_addr().map_err(|e| e.to_string())?;
    eprintln!("axum_traffic: listening on {address}");
    axum::serve(
        listener,
        app.into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(async {
        if let Ok(signal) = examples_support::shutdown::terminate_signal() {
            signal.await;
        }
    })
    .await
    .map_err(|e| e.to_string())
}

/// 64 KiB of `x`.
async fn download() -> Response {
    vec![b'x'; 64 * 1024].into_response()
}

/// The detected client address and the (normalised) path.
async fn answer(request: Request) -> Response {
    let client = request
        .extensions()
        .get::<ClientAddress>()
        .map(|c| c.0.to_string());
    let body = json!({"client": client, "path": request.uri().path()}).to_string();
    ([(http::header::CONTENT_TYPE, "application/json")], body).into_response()
}
