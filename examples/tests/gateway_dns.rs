//! BackendTrafficPolicy `dns` through the `gateway` binary, its Backend host names answered
//! by a DNS server the test runs (`--dns-server`), whose records change under it: a name is
//! asked again after its TTL (1 s) by default, every `dnsRefreshRate` (1 s) when
//! `respectDnsTtl` is false whatever its TTL, and not before its TTL (an hour) otherwise,
//! reloads included; `lookupFamily` picks the IPv4 address, the IPv6 one, or both, of one
//! dual-stack name for three routes to one Backend.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

mod gateway_support;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use examples_support::echo::{EchoIdentity, serve_echo};
use gateway_support::*;
use tokio::net::{TcpListener, UdpSocket};

/// A name's records: its addresses and their TTL in seconds.
type Records = HashMap<String, (Vec<IpAddr>, u32)>;

/// A DNS server on 127.0.0.1 answering A and AAAA questions from `records` (NXDOMAIN for
/// other names) and counting the questions asked per name; returns its address.
async fn dns_server(
    records: Arc<Mutex<Records>>,
    asked: Arc<Mutex<HashMap<String, usize>>>,
) -> SocketAddr {
    let socket = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let address = socket.local_addr().unwrap();
    tokio::spawn(async move {
        let mut buffer = [0u8; 1500];
        while let Ok((len, from)) = socket.recv_from(&mut buffer).await {
            let Some((name, qtype, question_end)) = question(&buffer[..len]) else {
                continue;
            };
            *asked.lock().unwrap().entry(name.clone()).or_default() += 1;
            let found = records.lock().unwrap().get(&name).cloned();
            let answer = answer(&buffer[..question_end], qtype, found);
            let _ = socket.send_to(&answer, from).await;
        }
    });
    address
}

/// The name (lower case, no trailing dot), type and end of a query's one question.
fn question(query: &[u8]) -> Option<(String, u16, usize)> {
    let mut position = 12;
    let mut labels = Vec::new();
    loop {
        let len = usize::from(*query.get(position)?);
        position += 1;
        if len == 0 {
            break;
        }
        labels.push(String::from_utf8_lossy(query.get(position..position + len)?).to_lowercase());
        position += len;
    }
    let qtype = u16::from_be_bytes([*query.get(position)?, *query.get(position + 1)?]);
    Some((labels.join("."), qtype, position + 4))
}

/// The answer to `query` (header and question) for records of type `qtype`.
fn answer(query: &[u8], qtype: u16, found: Option<(Vec<IpAddr>, u32)>) -> Vec<u8> {
    let mut records = Vec::new();
    let mut count = 0u16;
    if let Some((addresses, ttl)) = &found {
        for address in addresses {
            let (kind, data) = match address {
                IpAddr::V4(v4) if qtype == 1 => (1u16, v4.octets().to_vec()),
                IpAddr::V6(v6) if qtype == 28 => (28u16, v6.octets().to_vec()),
                _ => continue,
            };
            count += 1;
            records.extend_from_slice(&[0xc0, 12]); // the question's name
            records.extend_from_slice(&kind.to_be_bytes());
            records.extend_from_slice(&1u16.to_be_bytes()); // IN
            records.extend_from_slice(&ttl.to_be_bytes());
            records.extend_from_slice(&(data.len() as u16).to_be_bytes());
            records.extend_from_slice(&data);
        }
    }
    let mut message = query[..2].to_vec();
    // A response, recursion desired and available; NXDOMAIN for an unknown name.
    let rcode = if found.is_some() { 0 } else { 3 };
    message.extend_from_slice(&[0x81, 0x80 | rcode]);
    message.extend_from_slice(&1u16.to_be_bytes());
    message.extend_from_slice(&count.to_be_bytes());
    message.extend_from_slice(&[0, 0, 0, 0]);
    message.extend_from_slice(&query[12..]);
    message.extend_from_slice(&records);
    message
}

/// Echo pods `pod-a` (127.0.0.31), `pod-b` (127.0.0.32) and `pod-v6` (::1) on one port.
async fn pods() -> u16 {
    'port: loop {
        let first = TcpListener::bind("127.0.0.31:0").await.unwrap();
        let port = first.local_addr().unwrap().port();
        let mut listeners = vec![(first, "pod-a")];
        for (address, pod) in [("127.0.0.32", "pod-b"), ("[::1]", "pod-v6")] {
            match TcpListener::bind(format!("{address}:{port}")).await {
                Ok(listener) => listeners.push((listener, pod)),
                Err(_) => continue 'port,
            }
        }
        for (listener, pod) in listeners {
            let identity = EchoIdentity {
                namespace: "default".into(),
                pod: pod.into(),
            };
            tokio::spawn(serve_echo(listener, identity));
        }
        return port;
    }
}

/// A Backend `name` at `hostname:port`.
fn backend(name: &str, hostname: &str, port: u16) -> String {
    format!(
        "apiVersion: gateway.envoyproxy.io/v1alpha1\nkind: Backend\nmetadata: {{name: {name}}}\n\
         spec: {{endpoints: [{{fqdn: {{hostname: {hostname}, port: {port}}}}}]}}\n---\n"
    )
}

/// A route `route.example` to the Backend `backend`, and a BackendTrafficPolicy with `policy`
/// (YAML flow style) on the route when given.
fn route(route: &str, backend: &str, policy: &str) -> String {
    let mut yaml = format!(
        "apiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\nmetadata: {{name: {route}}}\nspec:\n  \
         parentRefs: [{{name: gw, sectionName: http}}]\n  hostnames: [{route}.example]\n  \
         rules: [{{backendRefs: [{{group: gateway.envoyproxy.io, kind: Backend, name: {backend}}}]}}]\n---\n"
    );
    if !policy.is_empty() {
        yaml.push_str(&format!(
            "apiVersion: gateway.envoyproxy.io/v1alpha1\nkind: BackendTrafficPolicy\nmetadata: {{name: {route}}}\nspec:\n  \
             targetRefs: [{{group: gateway.networking.k8s.io, kind: HTTPRoute, name: {route}}}]\n  \
             {policy}\n---\n"
        ));
    }
    yaml
}

/// The pods answering `count` requests for `route.example`.
async fn pods_of(url: &str, route: &str, count: usize) -> BTreeSet<String> {
    let mut seen = BTreeSet::new();
    for _ in 0..count {
        let (status, response) = curl(&["-H", &format!("host: {route}.example"), url]).await;
        assert_eq!(status, 200, "{route}: {response}");
        seen.insert(echoed(&response)["pod"].as_str().unwrap().to_owned());
    }
    seen
}

#[tokio::test(flavor = "multi_thread")]
async fn names_are_asked_again_on_their_schedule_and_families_chosen_per_route() {
    let a: IpAddr = "127.0.0.31".parse().unwrap();
    let b: IpAddr = "127.0.0.32".parse().unwrap();
    let v6: IpAddr = "::1".parse().unwrap();
    let records = Arc::new(Mutex::new(Records::from([
        ("ttl.test".to_owned(), (vec![a], 1)),
        ("rate.test".to_owned(), (vec![a], 3600)),
        ("slow.test".to_owned(), (vec![a], 3600)),
        ("dual.test".to_owned(), (vec![a, v6], 3600)),
    ])));
    let asked = Arc::new(Mutex::new(HashMap::new()));
    let dns = dns_server(Arc::clone(&records), Arc::clone(&asked)).await;
    let port = free_port();
    let pods = pods().await;
    let dir = scratch("dns");
    let mut config = gateway_yaml(port);
    for name in ["ttl", "rate", "slow", "dual"] {
        config += &backend(name, &format!("{name}.test"), pods);
    }
    config += &route("ttl", "ttl", "");
    config += &route(
        "rate",
        "rate",
        "dns: {dnsRefreshRate: 1s, respectDnsTtl: false}",
    );
    config += &route("slow", "slow", "dns: {dnsRefreshRate: 1s}");
    // Three routes to one dual-stack Backend.
    config += &route("v4", "dual", "");
    config += &route("v6", "dual", "dns: {lookupFamily: IPv6}");
    config += &route(
        "both",
        "dual",
        "dns: {lookupFamily: IPv4AndIPv6}\n  loadBalancer: {type: RoundRobin}",
    );
    std::fs::write(dir.join("config.yaml"), config).unwrap();
    let dns_flag = dns.to_string();
    let gateway = start_gateway_with(&[&dir], &["--dns-server", &dns_flag]).await;
    gateway.wait_ready().await;
    let url = format!("http://127.0.0.1:{port}/");

    for route in ["ttl", "rate", "slow", "v4"] {
        assert_eq!(
            pods_of(&url, route, 2).await,
            BTreeSet::from(["pod-a".into()]),
            "{route}"
        );
    }
    assert_eq!(
        pods_of(&url, "v6", 2).await,
        BTreeSet::from(["pod-v6".into()])
    );
    assert_eq!(
        pods_of(&url, "both", 4).await,
        BTreeSet::from(["pod-a".into(), "pod-v6".into()])
    );

    // The records move to 127.0.0.32.
    for name in ["ttl.test", "rate.test", "slow.test"] {
        records
            .lock()
            .unwrap()
            .insert(name.to_owned(), (vec![b], 3600));
    }
    let slow_asked = asked.lock().unwrap().get("slow.test").copied().unwrap_or(0);
    let rate_asked = asked.lock().unwrap().get("rate.test").copied().unwrap_or(0);
    for route in ["ttl", "rate"] {
        let url_ = url.clone();
        wait_until(&format!("{route} follows its name"), || {
            let url = url_.clone();
            async move { pods_of(&url, route, 1).await.contains("pod-b") }
        })
        .await;
    }
    tokio::time::sleep(Duration::from_secs(3)).await;
    // The hour-long TTL holds slow.test's answer (its refresh rate of 1 s does not count while
    // TTLs are respected), through the reloads the other names caused.
    assert_eq!(
        pods_of(&url, "slow", 2).await,
        BTreeSet::from(["pod-a".into()])
    );
    let counts: BTreeMap<String, usize> = asked.lock().unwrap().clone().into_iter().collect();
    assert_eq!(counts["slow.test"], slow_asked, "{counts:?}");
    // rate.test is asked about every second whatever its TTL.
    assert!(counts["rate.test"] >= rate_asked + 3, "{counts:?}");
}
