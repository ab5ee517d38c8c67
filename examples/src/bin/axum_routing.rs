//! `axum_routing`: Gateway API route selection, two filters and CORS as plain tower layers in
//! an axum app — no gateway runtime, no forwarding. The HTTPRoute below decides which rule a
//! request matches; the axum handler answers with what was matched.
//!
//! ```text
//! cargo run -p examples --bin axum_routing            # listens on 127.0.0.1:8081
//! curl -s -H 'host: shop.example' http://127.0.0.1:8081/cart
//!   {"route":"default/shop","rule":0,"name":"cart","listener":"default/demo/http","x-routed-by":"tower-mesh"}
//! curl -si -H 'host: other.example' http://127.0.0.1:8081/    # 404: no route for that host
//! curl -si -X OPTIONS -H 'host: shop.example' -H 'origin: https://app.example' \
//!      -H 'access-control-request-method: POST' http://127.0.0.1:8081/cart   # CORS preflight
//! ```
//!
//! The layers, outermost first: `RespondLayer` (route errors become 404/421/… answers),
//! `SelectRouteLayer` (puts the `MatchedRoute` into the request), `CorsLayer`,
//! `RequestHeaderModifierLayer` (sets `x-routed-by`), `ResponseHeaderModifierLayer` (adds
//! `x-served-by`).

use std::net::SocketAddr;
use std::process::ExitCode;

use axum::extract::Request;
use axum::response::{IntoResponse, Response};
use clap::Parser;
use http::{HeaderName, HeaderValue};
use routing::filters::{
    CorsLayer, CorsPolicy, HeaderModifier, RequestHeaderModifierLayer, ResponseHeaderModifierLayer,
};
use routing::model::Cors;
use routing::router::{MatchedRoute, SelectRouteLayer};
use serde_json::json;
use tower::ServiceBuilder;
use waypoint::respond::RespondLayer;

/// The routes this app selects among (what you would `kubectl apply`).
const ROUTES: &str = r#"
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: demo}
spec:
  gatewayClassName: demo
  listeners: [{name: http, port: 8081, protocol: HTTP}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: shop}
spec:
  parentRefs: [{name: demo}]
  hostnames: [shop.example]
  rules:
  - name: cart
    matches: [{path: {type: PathPrefix, value: /cart}}]
  - name: home
    matches: [{path: {type: PathPrefix, value: /}}]
"#;

/// Gateway API route selection, two filters and CORS in an axum app.
#[derive(Debug, Parser)]
#[command(name = "axum_routing")]
struct Args {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:8081")]
    listen: SocketAddr,
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    match run(args).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("axum_routing: {message}");
            ExitCode::FAILURE
        }
    }
}

async fn run(args: Args) -> Result<(), String> {
    let listeners = examples_support::routes::first_gateway_listeners("routes.yaml", ROUTES)?;
    let cors = CorsPolicy::new(&Cors {
        allow_origins: vec!["https://*.example".into()],
        allow_methods: vec!["GET".into(), "POST".into()],
        allow_headers: vec!["content-type".into()],
        expose_headers: vec!["x-served-by".into()],
        allow_credentials: false,
        max_age: 60,
    })
    .map_err(|e| e.to_string())?;
    let header = |name: &'static str, value: &'static str| {
        (
            HeaderName::from_static(name),
            HeaderValue::from_static(value),
        )
    };
    let routed_by = HeaderModifier::new(vec![header("x-routed-by", "tower-mesh")], vec![], vec![])
        .map_err(|e| e.to_string())?;
    let served_by = HeaderModifier::new(vec![], vec![header("x-served-by", "axum")], vec![])
        .map_err(|e| e.to_string())?;
    let app = axum::Router::new().fallback(matched).layer(
        ServiceBuilder::new()
            .layer(RespondLayer)
            .layer(SelectRouteLayer::new(listeners))
            .layer(CorsLayer::new(cors))
            .layer(RequestHeaderModifierLayer::new(routed_by))
            .layer(ResponseHeaderModifierLayer::new(served_by)),
    );
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .map_err(|e| format!("cannot listen on {}: {e}", args.listen))?;
    let address = listener.local_addr().map_err(|e| e.to_string())?;
    eprintln!("axum_routing: listening on {address}");
    axum::serve(listener, app)
        .with_graceful_shutdown(async {
            if let Ok(signal) = examples_support::shutdown::terminate_signal() {
                signal.await;
            }
        })
        .await
        .map_err(|e| e.to_string())
}

/// The handler: what the selection layer matched, and what the request filter set.
async fn matched(request: Request) -> Response {
    let Some(matched) = request.extensions().get::<MatchedRoute>() else {
        return http::StatusCode::INTERNAL_SERVER_ERROR.into_response();
    };
    let identity = matched.identity();
    let listener = match (identity.gateway, identity.listener) {
        (Some(gateway), Some(listener)) => format!("{gateway}/{listener}"),
        _ => String::new(),
    };
    let routed_by = request
        .headers()
        .get("x-routed-by")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    let body = json!({
        "route": identity.route.to_string(),
        "rule": identity.rule_index,
        "name": identity.rule_name,
        "listener": listener,
        "x-routed-by": routed_by,
    });
    (
        [(http::header::CONTENT_TYPE, "application/json")],
        body.to_string(),
    )
        .into_response()
}
