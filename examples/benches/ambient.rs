//! A1 (issue 9; B1–B10 are the performance spec's): the ambient mesh on loopback, against
//! baselines measured in the same run.
//!
//! - ztunnel → ztunnel (SOCKS5 in, HBONE between, an app behind) against a plain two-hop TCP
//!   relay (two HAProxy processes in TCP mode, one thread each): bulk throughput and proxy
//!   CPU per GB (one connection, 256 MiB one way), added latency per hop (64-byte ping-pong),
//!   connections per second (open, one echoed byte, close), memory per idle tunnel (RSS
//!   growth of both proxies over 500 open connections).
//! - The waypoint's HTTP path against the gateway's on the same route: requests per
//!   proxy CPU-second, 16 keep-alive connections of one in-process load generator (HTTP/1.1
//!   inside HBONE tunnels for the waypoint, which forwards over HBONE through a ztunnel; plain
//!   TCP for the gateway, which forwards over TCP); the goal: HBONE legs ≤ 1.3× the plain path.
//!
//! Needs haproxy and nginx (`scripts/install-bench-deps`). Run
//! `cargo bench -p examples --bench ambient` (or `scripts/bench examples`).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

mod bench_support;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bench_support::{
    Row, Running, cpu_seconds, emit, median, require, rss_kib, spawn_quiet, wait_for,
};

const ZTUNNEL: &str = env!("CARGO_BIN_EXE_ztunnel");
const WAYPOINT: &str = env!("CARGO_BIN_EXE_waypoint");
const GATEWAY: &str = env!("CARGO_BIN_EXE_gateway");
const HBONECAT: &str = env!("CARGO_BIN_EXE_hbonecat");
const ROUNDS: usize = 3;
const BULK_BYTES: usize = 256 * 1024 * 1024;

const CLIENT_IP: &str = "127.0.0.80";
const SERVER_IP: &str = "127.0.0.81";
const WAYPOINT_IP: &str = "127.0.0.82";

fn spawn(program: &str, args: &[&str]) -> (Running, u32) {
    let mut command = Command::new(program);
    command.args(args);
    spawn_quiet(command)
}

/// The app: `sink` discards and answers the byte count at EOF; `echo` echoes.
fn app(address: &str, echo: bool) {
    let listener = TcpListener::bind(address).unwrap();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            std::thread::spawn(move || serve_app(stream, echo));
        }
    });
}

fn serve_app(mut stream: TcpStream, echo: bool) {
    let _ = stream.set_nodelay(true);
    let mut buffer = vec![0u8; 256 * 1024];
    let mut total: u64 = 0;
    loop {
        match stream.read(&mut buffer) {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                total += n as u64;
                if echo && stream.write_all(&buffer[..n]).is_err() {
                    return;
                }
            }
        }
    }
    if !echo {
        let _ = stream.write_all(&total.to_be_bytes());
    }
}

/// A SOCKS5 CONNECT through `proxy` to `address` (IPv4 form).
fn socks5(proxy: &str, address: SocketAddr) -> TcpStream {
    let mut stream = TcpStream::connect(proxy).unwrap();
    stream.set_nodelay(true).unwrap();
    let std::net::IpAddr::V4(ip) = address.ip() else {
        panic!("IPv4 only")
    };
    let mut request = vec![5, 1, 0, 5, 1, 0, 1];
    request.extend_from_slice(&ip.octets());
    request.extend_from_slice(&address.port().to_be_bytes());
    stream.write_all(&request).unwrap();
    let mut answers = [0u8; 12];
    stream.read_exact(&mut answers).unwrap();
    assert_eq!(answers[3], 0, "SOCKS5 success");
    stream
}

fn bulk(mut stream: TcpStream) {
    let chunk = vec![7u8; 256 * 1024];
    let mut left = BULK_BYTES;
    while left > 0 {
        let n = left.min(chunk.len());
        stream.write_all(&chunk[..n]).unwrap();
        left -= n;
    }
    stream.shutdown(std::net::Shutdown::Write).unwrap();
    let mut count = [0u8; 8];
    stream.read_exact(&mut count).unwrap();
    assert_eq!(u64::from_be_bytes(count), BULK_BYTES as u64);
}

fn ping_pong(mut stream: TcpStream, rounds: usize) -> f64 {
    let message = [1u8; 64];
    let mut answer = [0u8; 64];
    let mut samples = Vec::with_capacity(rounds);
    for _ in 0..rounds {
        let started = Instant::now();
        stream.write_all(&message).unwrap();
        stream.read_exact(&mut answer).unwrap();
        samples.push(started.elapsed().as_secs_f64() * 1e6);
    }
    median(samples)
}

fn one_byte(stream: &mut TcpStream) {
    stream.write_all(b"x").unwrap();
    let mut answer = [0u8; 1];
    stream.read_exact(&mut answer).unwrap();
}

fn connections_per_second(open: &dyn Fn() -> TcpStream) -> f64 {
    let started = Instant::now();
    let mut count = 0u32;
    while started.elapsed() < Duration::from_secs(2) {
        one_byte(&mut open());
        count += 1;
    }
    f64::from(count) / started.elapsed().as_secs_f64()
}

fn haproxy(dir: &Path, name: &str, listen: &str, to: &str) -> (Running, u32) {
    let config = dir.join(format!("{name}.cfg"));
    std::fs::write(
        &config,
        format!(
            "global\n  nbthread 1\n  maxconn 4096\ndefaults\n  mode tcp\n  timeout connect 5s\n  timeout client 60s\n  timeout server 60s\n\
             listen relay\n  bind {listen}\n  server app {to}\n"
        ),
    )
    .unwrap();
    spawn("haproxy", &["-db", "-f", config.to_str().unwrap()])
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    for tool in ["haproxy", "nginx"] {
        require(tool);
    }
    let dir = std::env::temp_dir().join(format!("ambient-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let identities = ["client", "server", "waypoint"]
        .map(|sa| format!("spiffe://cluster.local/ns/default/sa/{sa}"));
    let mut ca = Command::new(HBONECAT);
    ca.args(["dev-ca", "--out", dir.to_str().unwrap()]);
    for identity in &identities {
        ca.args(["--identity", identity]);
    }
    assert!(ca.output().unwrap().status.success());
    std::fs::write(dir.join("local.yaml"), local_config()).unwrap();
    app(&format!("{SERVER_IP}:7000"), false);
    app(&format!("{SERVER_IP}:7001"), true);
    let pem = |who: &str, suffix: &str| {
        dir.join(format!("default-{who}-{suffix}.pem"))
            .display()
            .to_string()
    };
    let ca_pem = dir.join("ca-cert.pem").display().to_string();
    let ztunnel = |who: &str, ip: &str| {
        let config = dir.join("local.yaml").display().to_string();
        let (admin, socks) = (format!("{ip}:15000"), format!("{ip}:15080"));
        let (cert, key) = (pem(who, "cert"), pem(who, "key"));
        let workload = format!("default/{who}");
        let args = [
            "--config",
            &config,
            "--cert",
            &cert,
            "--key",
            &key,
            "--ca",
            &ca_pem,
            "--workload",
            &workload,
            "--bind",
            ip,
            "--admin",
            &admin,
            "--socks5",
            &socks,
            "--mark",
            "0",
        ];
        spawn(ZTUNNEL, &args)
    };
    let (_client, client_pid) = ztunnel("client", CLIENT_IP);
    let (_server, server_pid) = ztunnel("server", SERVER_IP);
    let (_relay_a, relay_a_pid) = haproxy(
        &dir,
        "a",
        &format!("{CLIENT_IP}:20001"),
        &format!("{SERVER_IP}:20002"),
    );
    let (_relay_b, relay_b_pid) = haproxy(
        &dir,
        "b",
        &format!("{SERVER_IP}:20002"),
        &format!("{SERVER_IP}:7000"),
    );
    let (_relay_c, relay_c_pid) = haproxy(
        &dir,
        "c",
        &format!("{CLIENT_IP}:20011"),
        &format!("{SERVER_IP}:20012"),
    );
    let (_relay_d, relay_d_pid) = haproxy(
        &dir,
        "d",
        &format!("{SERVER_IP}:20012"),
        &format!("{SERVER_IP}:7001"),
    );
    for address in [
        format!("{CLIENT_IP}:15080"),
        format!("{SERVER_IP}:15008"),
        format!("{CLIENT_IP}:20001"),
        format!("{CLIENT_IP}:20011"),
    ] {
        wait_for(&address);
    }
    let socks = format!("{CLIENT_IP}:15080");
    let sink: SocketAddr = "10.96.0.20:80".parse().unwrap();
    let echo: SocketAddr = "10.96.0.20:81".parse().unwrap();
    let ours_cpu = || cpu_seconds(client_pid) + cpu_seconds(server_pid);
    let relay_cpu = || cpu_seconds(relay_a_pid) + cpu_seconds(relay_b_pid);

    let mut rows = Vec::new();
    let (mut ours_mbps, mut relay_mbps, mut ours_cpu_gb, mut relay_cpu_gb) =
        (vec![], vec![], vec![], vec![]);
    let gb = BULK_BYTES as f64 / 1e9;
    for _ in 0..ROUNDS {
        let (cpu, started) = (ours_cpu(), Instant::now());
        bulk(socks5(&socks, sink));
        ours_mbps.push(BULK_BYTES as f64 / 1e6 / started.elapsed().as_secs_f64());
        ours_cpu_gb.push((ours_cpu() - cpu) / gb);
        let (cpu, started) = (relay_cpu(), Instant::now());
        let stream = TcpStream::connect(format!("{CLIENT_IP}:20001")).unwrap();
        bulk(stream);
        relay_mbps.push(BULK_BYTES as f64 / 1e6 / started.elapsed().as_secs_f64());
        relay_cpu_gb.push((relay_cpu() - cpu) / gb);
    }
    let relay_name = "HAProxy two-hop TCP relay";
    rows.push(Row {
        bench: "A1 ztunnel→ztunnel bulk".into(),
        metric: "throughput, 1 connection",
        ours: median(ours_mbps),
        baseline: median(relay_mbps),
        baseline_name: relay_name,
        unit: "MB/s",
        goal: "(report)",
    });
    rows.push(Row {
        bench: "A1 ztunnel→ztunnel bulk".into(),
        metric: "proxy CPU-seconds per GB (both hops)",
        ours: median(ours_cpu_gb),
        baseline: median(relay_cpu_gb),
        baseline_name: relay_name,
        unit: "s",
        goal: "(report)",
    });

    let direct = ping_pong(
        {
            let s = TcpStream::connect(format!("{SERVER_IP}:7001")).unwrap();
            s.set_nodelay(true).unwrap();
            s
        },
        2000,
    );
    let (mut ours_rtt, mut relay_rtt) = (vec![], vec![]);
    for _ in 0..ROUNDS {
        ours_rtt.push(ping_pong(socks5(&socks, echo), 2000));
        let relay = TcpStream::connect(format!("{CLIENT_IP}:20011")).unwrap();
        relay.set_nodelay(true).unwrap();
        relay_rtt.push(ping_pong(relay, 2000));
    }
    rows.push(Row {
        bench: "A1 ztunnel→ztunnel latency".into(),
        metric: "added round-trip latency per hop (p50, 64 B)",
        ours: (median(ours_rtt) - direct) / 2.0,
        baseline: (median(relay_rtt) - direct) / 2.0,
        baseline_name: relay_name,
        unit: "us",
        goal: "(report)",
    });

    let (mut ours_cps, mut relay_cps) = (vec![], vec![]);
    for _ in 0..ROUNDS {
        ours_cps.push(connections_per_second(&|| socks5(&socks, echo)));
        relay_cps.push(connections_per_second(&|| {
            let s = TcpStream::connect(format!("{CLIENT_IP}:20011")).unwrap();
            s.set_nodelay(true).unwrap();
            s
        }));
    }
    rows.push(Row {
        bench: "A1 ztunnel→ztunnel connections".into(),
        metric: "connections per second (sequential, 1 echoed byte)",
        ours: median(ours_cps),
        baseline: median(relay_cps),
        baseline_name: relay_name,
        unit: "conn/s",
        goal: "(report)",
    });

    let idle = 500;
    let rss_ours = || rss_kib(client_pid) + rss_kib(server_pid);
    let rss_relay = || rss_kib(relay_c_pid) + rss_kib(relay_d_pid);
    let before = rss_ours();
    let held: Vec<TcpStream> = (0..idle)
        .map(|_| {
            let mut stream = socks5(&socks, echo);
            one_byte(&mut stream);
            stream
        })
        .collect();
    std::thread::sleep(Duration::from_millis(300));
    let ours_per_tunnel = (rss_ours() - before) / f64::from(idle);
    drop(held);
    let before = rss_relay();
    let held: Vec<TcpStream> = (0..idle)
        .map(|_| {
            let mut stream = TcpStream::connect(format!("{CLIENT_IP}:20011")).unwrap();
            one_byte(&mut stream);
            stream
        })
        .collect();
    std::thread::sleep(Duration::from_millis(300));
    let relay_per_connection = (rss_relay() - before) / f64::from(idle);
    drop(held);
    rows.push(Row {
        bench: "A1 ztunnel idle tunnels".into(),
        metric: "memory per idle tunnel (RSS growth, both proxies, 500 open)",
        ours: ours_per_tunnel,
        baseline: relay_per_connection.max(0.1),
        baseline_name: relay_name,
        unit: "KiB",
        goal: "(report)",
    });

    rows.extend(waypoint_against_gateway(&dir, &pem, &ca_pem));
    emit("examples (ambient)", rows);
    let _ = std::fs::remove_dir_all(&dir);
}

fn local_config() -> String {
    format!(
        r#"
workloads:
- {{uid: Kubernetes//Pod/default/client, name: client, namespace: default, serviceAccount: client,
   trustDomain: cluster.local, workloadIps: ["{CLIENT_IP}"], protocol: HBONE, services: {{}}}}
- {{uid: Kubernetes//Pod/default/server, name: server, namespace: default, serviceAccount: server,
   trustDomain: cluster.local, workloadIps: ["{SERVER_IP}"], protocol: HBONE,
   services: {{default/app.default.svc.cluster.local: {{80: 7000, 81: 7001, 8080: 18080}}}}}}
services:
- {{name: app, namespace: default, hostname: app.default.svc.cluster.local,
   vips: ["/10.96.0.20"], ports: {{80: 7000, 81: 7001, 8080: 18080}}}}
"#
    )
}

/// Requests per proxy CPU-second: the waypoint (HBONE in, HBONE out through the server's
/// ztunnel to nginx) against the gateway (TCP in, TCP out to the same nginx), same route.
fn waypoint_against_gateway(dir: &Path, pem: &dyn Fn(&str, &str) -> String, ca: &str) -> Vec<Row> {
    let nginx_dir = dir.join("nginx");
    std::fs::create_dir_all(&nginx_dir).unwrap();
    let nginx_config = nginx_dir.join("nginx.conf");
    std::fs::write(
        &nginx_config,
        format!(
            "daemon off; master_process off; worker_processes 1; pid {0}/nginx.pid; error_log {0}/error.log;\n\
             events {{ worker_connections 1024; }}\n\
             http {{ access_log off; client_body_temp_path {0}; proxy_temp_path {0}; fastcgi_temp_path {0}; uwsgi_temp_path {0}; scgi_temp_path {0};\n\
             server {{ listen {SERVER_IP}:18080; keepalive_requests 1000000; location / {{ return 200 \"ok\\n\"; }} }} }}\n",
            nginx_dir.display()
        ),
    )
    .unwrap();
    let (_nginx, _) = spawn(
        "nginx",
        &[
            "-c",
            nginx_config.to_str().unwrap(),
            "-p",
            nginx_dir.to_str().unwrap(),
        ],
    );
    let mesh = dir.join("mesh.yaml");
    std::fs::write(
        &mesh,
        format!(
            "apiVersion: v1\nkind: Service\nmetadata: {{name: app, namespace: default}}\n\
             spec: {{clusterIP: 10.96.0.20, ports: [{{name: http, port: 8080, targetPort: 18080}}]}}\n---\n\
             apiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\n\
             metadata: {{name: app-1, namespace: default, labels: {{kubernetes.io/service-name: app}}}}\n\
             addressType: IPv4\nendpoints: [{{addresses: [\"{SERVER_IP}\"], targetRef: {{kind: Pod, name: server}}}}]\n\
             ports: [{{name: http, port: 18080}}]\n---\n\
             apiVersion: v1\nkind: Pod\nmetadata: {{name: server, namespace: default}}\n\
             spec: {{serviceAccountName: server}}\nstatus: {{podIP: \"{SERVER_IP}\"}}\n---\n\
             apiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\nmetadata: {{name: app, namespace: default}}\n\
             spec: {{parentRefs: [{{group: \"\", kind: Service, name: app, port: 8080}}], rules: [{{backendRefs: [{{name: app, port: 8080}}]}}]}}\n"
        ),
    )
    .unwrap();
    let hbone = format!("{WAYPOINT_IP}:15008");
    let admin = format!("{WAYPOINT_IP}:15000");
    let (cert, key) = (pem("waypoint", "cert"), pem("waypoint", "key"));
    let (_waypoint, waypoint_pid) = spawn(
        WAYPOINT,
        &[
            "--config",
            mesh.to_str().unwrap(),
            "--cert",
            &cert,
            "--key",
            &key,
            "--ca",
            ca,
            "--hbone-listen",
            &hbone,
            "--admin",
            &admin,
        ],
    );
    let gateway_yaml = dir.join("gateway.yaml");
    std::fs::write(
        &gateway_yaml,
        format!(
            "apiVersion: gateway.networking.k8s.io/v1\nkind: Gateway\nmetadata: {{name: gw, namespace: default}}\n\
             spec: {{gatewayClassName: bench, addresses: [{{value: {WAYPOINT_IP}}}], listeners: [{{name: http, port: 18081, protocol: HTTP}}]}}\n---\n\
             apiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\nmetadata: {{name: app, namespace: default}}\n\
             spec: {{parentRefs: [{{name: gw}}], rules: [{{backendRefs: [{{name: app, port: 8080}}]}}]}}\n---\n\
             apiVersion: v1\nkind: Service\nmetadata: {{name: app, namespace: default}}\n\
             spec: {{ports: [{{name: http, port: 8080, targetPort: 18080}}]}}\n---\n\
             apiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\n\
             metadata: {{name: app-1, namespace: default, labels: {{kubernetes.io/service-name: app}}}}\n\
             addressType: IPv4\nendpoints: [{{addresses: [\"{SERVER_IP}\"]}}]\nports: [{{name: http, port: 18080}}]\n"
        ),
    )
    .unwrap();
    let gateway_admin = format!("{WAYPOINT_IP}:15001");
    let (_gateway, gateway_pid) = spawn(
        GATEWAY,
        &[
            "--config",
            gateway_yaml.to_str().unwrap(),
            "--admin",
            &gateway_admin,
            "--worker-threads",
            "1",
        ],
    );
    for address in [
        hbone.clone(),
        format!("{WAYPOINT_IP}:18081"),
        format!("{SERVER_IP}:18080"),
    ] {
        wait_for(&address);
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let client_cert = Arc::new(
        hbone::tls::WorkloadCertificate::from_pem_files(
            Path::new(&pem("client", "cert")),
            Path::new(&pem("client", "key")),
            Path::new(ca),
        )
        .unwrap(),
    );
    let (mut ours, mut theirs) = (vec![], vec![]);
    for _ in 0..ROUNDS {
        let cpu = cpu_seconds(waypoint_pid);
        let served = runtime.block_on(load_over_hbone(&hbone, Arc::clone(&client_cert)));
        ours.push(served as f64 / (cpu_seconds(waypoint_pid) - cpu));
        let cpu = cpu_seconds(gateway_pid);
        let served = runtime.block_on(load_over_tcp(&format!("{WAYPOINT_IP}:18081")));
        theirs.push(served as f64 / (cpu_seconds(gateway_pid) - cpu));
    }
    vec![Row {
        bench: "A1 waypoint HTTP/1.1 16 conns".into(),
        metric: "requests per proxy CPU-second (HBONE in and out)",
        ours: median(ours),
        baseline: median(theirs),
        baseline_name: "gateway, same route (TCP in and out)",
        unit: "req/CPU-s",
        goal: "≥ 0.77× (HBONE legs ≤ 1.3×)",
    }]
}

const LOAD_SECONDS: u64 = 3;
const CONNECTIONS: usize = 16;

async fn drive<IO>(io: IO, stop: Arc<AtomicBool>, served: Arc<AtomicU64>, host: &'static str)
where
    IO: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    use http_body_util::BodyExt;
    let (mut sender, connection) = hyper::client::conn::http1::handshake::<
        _,
        http_body_util::Empty<bytes::Bytes>,
    >(hyper_util::rt::TokioIo::new(io))
    .await
    .unwrap();
    tokio::spawn(connection);
    while !stop.load(Ordering::Relaxed) {
        let request = http::Request::get("/")
            .header("host", host)
            .body(http_body_util::Empty::new())
            .unwrap();
        let response = sender.send_request(request).await.unwrap();
        assert_eq!(response.status(), 200);
        response.into_body().collect().await.unwrap();
        served.fetch_add(1, Ordering::Relaxed);
    }
}

async fn run_load(connect: impl Fn() -> tokio::task::JoinHandle<()>, stop: Arc<AtomicBool>) {
    let tasks: Vec<_> = (0..CONNECTIONS).map(|_| connect()).collect();
    tokio::time::sleep(Duration::from_secs(LOAD_SECONDS)).await;
    stop.store(true, Ordering::Relaxed);
    for task in tasks {
        task.await.unwrap();
    }
}

async fn load_over_hbone(waypoint: &str, certificate: Arc<hbone::tls::WorkloadCertificate>) -> u64 {
    let tls = hbone::tls::HboneTls::new(Arc::new(rustls::crypto::ring::default_provider()));
    let connector = hbone::client::HboneConnector::new(tls);
    let (stop, served) = (
        Arc::new(AtomicBool::new(false)),
        Arc::new(AtomicU64::new(0)),
    );
    let next_hop: SocketAddr = waypoint.parse().unwrap();
    let expected: hbone::identity::SpiffeId = "spiffe://cluster.local/ns/default/sa/waypoint"
        .parse()
        .unwrap();
    run_load(
        || {
            let target = hbone::client::HboneTarget::new(
                next_hop,
                "10.96.0.20:8080".parse().unwrap(),
                vec![expected.clone()],
                Arc::clone(&certificate),
            )
            .unwrap();
            let (connector, stop, served) =
                (connector.clone(), Arc::clone(&stop), Arc::clone(&served));
            tokio::spawn(async move {
                let tunnel = connector.open(&target).await.unwrap();
                drive(tunnel, stop, served, "app.default.svc.cluster.local").await;
            })
        },
        Arc::clone(&stop),
    )
    .await;
    served.load(Ordering::Relaxed)
}

async fn load_over_tcp(gateway: &str) -> u64 {
    let (stop, served) = (
        Arc::new(AtomicBool::new(false)),
        Arc::new(AtomicU64::new(0)),
    );
    let address: SocketAddr = gateway.parse().unwrap();
    run_load(
        || {
            let (stop, served) = (Arc::clone(&stop), Arc::clone(&served));
            tokio::spawn(async move {
                let stream = tokio::net::TcpStream::connect(address).await.unwrap();
                stream.set_nodelay(true).unwrap();
                drive(stream, stop, served, "app.example").await;
            })
        },
        Arc::clone(&stop),
    )
    .await;
    served.load(Ordering::Relaxed)
}
