//! Allocations per proxied request: the gateway's whole request path in-process —
//! `Respond` → `Router` (select, rule filters, dispatch) → `Forwarder` (lean HTTP/1.1 pool) →
//! a hyper echo backend, body read to the end — against the floor of the same exchange: a bare
//! hyper `client::conn` HTTP/1.1 request on a kept-alive connection to the same backend. Both
//! run in one current-thread runtime, so the backend's own allocations count in both.
//!
//! Run: `cargo bench -p waypoint --bench request_allocations` (or `scripts/bench waypoint`);
//! rows are appended to `$BENCH_RESULTS` when set.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use std::convert::Infallible;
use std::io::Write;
use std::sync::Arc;

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use routing::router::{ListenerSet, Router};
use tokio::net::TcpListener;
use tower::ServiceExt;
use waypoint::outbound::{Forwarder, ResponseBody};
use waypoint::respond::Respond;

#[global_allocator]
static ALLOCATOR: &stats_alloc::StatsAlloc<std::alloc::System> = &stats_alloc::INSTRUMENTED_SYSTEM;

const REQUESTS: usize = 20_000;

/// A keep-alive HTTP/1.1 backend answering `ok`.
async fn backend() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let service = hyper::service::service_fn(|_request| async {
                    Ok::<_, Infallible>(Response::new(Full::new(Bytes::from_static(b"ok"))))
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    port
}

fn listeners(port: u16) -> Arc<ListenerSet> {
    let yaml = format!(
        "apiVersion: gateway.networking.k8s.io/v1\nkind: Gateway\nmetadata: {{name: gw}}\n\
         spec: {{gatewayClassName: b, listeners: [{{name: http, port: 80, protocol: HTTP}}]}}\n---\n\
         apiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\nmetadata: {{name: r}}\n\
         spec: {{parentRefs: [{{name: gw}}], rules: [{{backendRefs: [{{name: b, port: 80}}]}}]}}\n---\n\
         apiVersion: v1\nkind: Service\nmetadata: {{name: b}}\nspec: {{ports: [{{name: http, port: 80}}]}}\n---\n\
         apiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\n\
         metadata: {{name: b-1, labels: {{kubernetes.io/service-name: b}}}}\n\
         endpoints: [{{addresses: [127.0.0.1]}}]\nports: [{{name: http, port: {port}}}]\n"
    );
    let loaded = routing::loader::load_str("bench.yaml", &yaml).unwrap();
    let resolution = routing::resolve::resolve(&loaded.config, &Default::default());
    Arc::new(ListenerSet::new(
        resolution.gateways.into_iter().next().unwrap().listeners,
    ))
}

fn request(uri: &str) -> Request<ResponseBody> {
    Request::get(uri)
        .header("host", "shop.example")
        .body(ResponseBody::default())
        .unwrap()
}

/// Allocations per request of `REQUESTS` runs of `one`, after a warm-up.
async fn allocations_per_request<F, Fut>(mut one: F) -> f64
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    for _ in 0..1_000 {
        one().await;
    }
    let before = ALLOCATOR.stats().allocations;
    for _ in 0..REQUESTS {
        one().await;
    }
    (ALLOCATOR.stats().allocations - before) as f64 / REQUESTS as f64
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let (ours, floor) = runtime.block_on(async {
        let port = backend().await;
        let listeners = listeners(port);
        let forwarder = Forwarder::new(Arc::new(rustls::crypto::ring::default_provider()));
        // Built once per configuration, cloned per request, as the gateway's sockets do.
        let built = Respond::new(Router::new(Arc::clone(&listeners), forwarder.clone()));
        let ours = allocations_per_request(|| {
            let stack = built.clone();
            async move {
                let response = stack.oneshot(request("/items/42")).await.unwrap();
                assert_eq!(response.status(), 200);
                response.into_body().collect().await.unwrap();
            }
        })
        .await;
        let stream = tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .unwrap();
        let (mut sender, connection) =
            hyper::client::conn::http1::handshake::<_, ResponseBody>(TokioIo::new(stream))
                .await
                .unwrap();
        tokio::spawn(connection);
        let mut floor_once = async || {
            sender.ready().await.unwrap();
            let response = sender.send_request(request("/items/42")).await.unwrap();
            response.into_body().collect().await.unwrap();
        };
        for _ in 0..1_000 {
            floor_once().await;
        }
        let before = ALLOCATOR.stats().allocations;
        for _ in 0..REQUESTS {
            floor_once().await;
        }
        let floor = (ALLOCATOR.stats().allocations - before) as f64 / REQUESTS as f64;
        (ours, floor)
    });
    eprintln!(
        "allocations per proxied request: ours {ours:.1}, bare hyper client request {floor:.1} ({:.2}x)",
        ours / floor
    );
    if let Some(path) = std::env::var_os("BENCH_RESULTS") {
        let mut file = std::fs::OpenOptions::new()
            .append(true)
            .create(true)
            .open(path)
            .unwrap();
        let row = serde_json::json!({
            "crate": "waypoint", "bench": "request path (Respond → Router → Forwarder → backend)",
            "metric": "allocations per proxied request", "ours": ours, "baseline": floor,
            "baseline_name": "bare hyper client request", "unit": "allocs", "goal": "(report)",
        });
        writeln!(file, "{row}").unwrap();
    }
}
