//! `istio_tcp_*` metrics from a real HBONE server (hbone spec §7, checklist item 23).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

mod support;

use std::sync::Arc;

use hbone::client::HboneClientError;
use hbone::metrics::TcpMetrics;
use hbone::server::{ConnectDecision, ConnectRequest, HboneServer};
use http::StatusCode;
use prometheus_client::registry::Registry;
use support::mesh::{Mesh, SERVER, echo_upstream, id, read_all};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpListener;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_reports_istio_tcp_metrics() {
    let mesh = Mesh::new();
    let upstream = echo_upstream().await;
    let refused = TcpListener::bind("127.0.0.1:0")
        .await
        .unwrap()
        .local_addr()
        .unwrap();
    let mut registry = Registry::default();
    let metrics = TcpMetrics::register(&mut registry);
    let tls = Arc::new(mesh.tls.server_config(&mesh.workload(SERVER)).unwrap());
    let service = tower::service_fn(move |request: ConnectRequest| async move {
        Ok::<_, std::convert::Infallible>(match request.authority.port() {
            401 => ConnectDecision::Reject(StatusCode::UNAUTHORIZED),
            503 => ConnectDecision::forward(refused),
            _ => ConnectDecision::forward(upstream),
        })
    });
    let server = HboneServer::new(tls, service).with_metrics(metrics, Some(id(SERVER)));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(server.serve(listener, std::future::pending()));

    let connector = mesh.connector();
    let mut target = mesh.target(address, "10.0.0.1:80", &[SERVER]);
    target.baggage = "k8s.cluster.name=east,k8s.namespace.name=default,k8s.deployment.name=sleep,service.name=sleep,service.version=v1".into();
    let mut stream = connector.open(&target).await.unwrap();
    stream.write_all(b"twelve bytes").await.unwrap();
    stream.shutdown().await.unwrap();
    assert_eq!(read_all(&mut stream).await, b"twelve bytes");
    drop(stream);
    for port in [401, 503] {
        let target = mesh.target(address, &format!("10.0.0.1:{port}"), &[SERVER]);
        assert!(matches!(
            connector.open(&target).await,
            Err(HboneClientError::Status(_))
        ));
    }
    // The server records the close after its bridge ends; give it a moment.
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;

    let mut text = String::new();
    prometheus_client::encoding::text::encode(&mut text, &registry).unwrap();
    let sample = |name: &str, must_contain: &[&str]| -> f64 {
        let line = text
            .lines()
            .find(|line| {
                line.starts_with(name) && must_contain.iter().all(|part| line.contains(part))
            })
            .unwrap_or_else(|| panic!("no {name} with {must_contain:?} in:\n{text}"));
        line.rsplit(' ').next().unwrap().parse().unwrap()
    };
    let ok = [
        "reporter=\"destination\"",
        "source_principal=\"spiffe://cluster.local/ns/default/sa/client\"",
        "destination_principal=\"spiffe://cluster.local/ns/default/sa/server\"",
        "source_cluster=\"east\"",
        "source_workload=\"sleep\"",
        "source_canonical_revision=\"v1\"",
        "request_protocol=\"tcp\"",
        "response_flags=\"-\"",
        "connection_security_policy=\"mutual_tls\"",
        "destination_service=\"unknown\"",
    ];
    assert_eq!(sample("istio_tcp_connections_opened_total{", &ok), 1.0);
    assert_eq!(sample("istio_tcp_connections_closed_total{", &ok), 1.0);
    assert_eq!(sample("istio_tcp_received_bytes_total{", &ok), 12.0);
    assert_eq!(sample("istio_tcp_sent_bytes_total{", &ok), 12.0);
    assert_eq!(
        sample(
            "istio_tcp_connections_failed_total{",
            &["response_flags=\"DENY\""]
        ),
        1.0
    );
    assert_eq!(
        sample(
            "istio_tcp_connections_failed_total{",
            &["response_flags=\"CONNECT\""]
        ),
        1.0
    );
    assert!(text.contains("# TYPE istio_tcp_connections_opened counter"));
}

/// Regression: label values came from the peer's `baggage` and every new value was a new
/// series forever. Values are now checked and the number of label sets capped.
#[test]
fn peer_supplied_label_values_are_checked_and_label_sets_capped() {
    use hbone::metrics::{Reporter, TrafficLabels};
    let mut registry = Registry::default();
    let metrics = TcpMetrics::register_with_cap(&mut registry, 3);
    for index in 0..50 {
        let labels = TrafficLabels::new(Reporter::destination, None, None)
            .with_source_baggage(&format!("k8s.deployment.name=attacker-{index}"));
        metrics.opened(&labels);
    }
    assert_eq!(
        metrics.label_sets(),
        4,
        "three label sets, then everything new in one overflow set"
    );
    let hostile = TrafficLabels::new(Reporter::destination, None, None).with_source_baggage(
        &format!("k8s.namespace.name={},service.name=a\"b", "x".repeat(300)),
    );
    metrics.opened(&hostile);
    let mut text = String::new();
    prometheus_client::encoding::text::encode(&mut text, &registry).unwrap();
    assert!(text.contains("attacker-0"), "{text}");
    assert!(!text.contains("attacker-10"), "{text}");
    assert!(!text.contains("xxxxxxxx"), "over-long values are dropped");
    assert!(
        !text.contains("a\\\"b"),
        "values outside [A-Za-z0-9._-] are dropped"
    );
    let opened: u64 = text
        .lines()
        .filter(|line| line.starts_with("istio_tcp_connections_opened_total{"))
        .filter_map(|line| line.rsplit(' ').next()?.parse::<u64>().ok())
        .sum();
    assert_eq!(opened, 51, "nothing is lost, only folded");
}
