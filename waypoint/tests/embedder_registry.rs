//! The gateway registers its metrics in the embedder's registry, and the admin endpoint's
//! `/metrics` serves the embedder's own metrics beside them.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use std::sync::{Arc, Mutex};
use std::time::Duration;

use prometheus_client::metrics::counter::Counter;
use prometheus_client::registry::Registry;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use waypoint::gateway::{ConfigSource, GatewayOptions, run_gateway};

const CONFIG: &str = "apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: gw}
spec:
  gatewayClassName: test
  addresses: [{value: 127.0.0.1}]
  listeners: [{name: http, port: 0, protocol: HTTP}]
";

async fn get(address: &str, path: &str) -> String {
    let mut stream = tokio::net::TcpStream::connect(address).await.unwrap();
    let request = format!("GET {path} HTTP/1.1\r\nhost: admin\r\nconnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).await.unwrap();
    answer
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_are_registered_in_the_embedders_registry() {
    let mut registry = Registry::default();
    let own = Counter::<u64>::default();
    registry.register("embedder_things", "The embedder's own counter", own.clone());
    own.inc_by(7);
    let lines = Arc::new(Mutex::new(Vec::<String>::new()));
    let log = {
        let lines = Arc::clone(&lines);
        move |line: &str| lines.lock().unwrap().push(line.to_owned())
    };
    let options = GatewayOptions {
        source: ConfigSource::Text {
            name: "inline.yaml".into(),
            text: CONFIG.into(),
        },
        gateway_class: None,
        controller_name: routing::resolve::DEFAULT_CONTROLLER_NAME.into(),
        admin: "127.0.0.1:0".parse().unwrap(),
        reload_interval: Duration::from_millis(50),
        drain_timeout: Duration::from_secs(1),
        crypto: Arc::new(rustls::crypto::ring::default_provider()),
        registry,
        denial_log: None,
        rate_limit: None,
        zone: None,
        dns_server: None,
        min_drain_duration: Duration::ZERO,
    };
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let gateway = tokio::spawn(async move {
        run_gateway(options, &log, async {
            let _ = stopped.await;
        })
        .await
    });
    let admin = loop {
        let found = lines
            .lock()
            .unwrap()
            .iter()
            .find_map(|line| line.strip_prefix("admin on ").map(str::to_owned));
        if let Some(address) = found {
            break address;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    let page = get(&admin, "/metrics").await;
    assert!(page.contains("embedder_things_total 7"), "{page}");
    assert!(page.contains("gateway_config_generation 1"), "{page}");
    let _ = stop.send(());
    gateway.await.unwrap().unwrap();
}
