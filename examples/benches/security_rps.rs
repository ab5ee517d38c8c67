//! S1 (issue: security policy): the `gateway` binary's requests per CPU-second with a
//! SecurityPolicy doing JWT authentication (ES256, local JWKS; the same token on every request,
//! so after the first it is a verified-token cache hit) and an authorization rule on the JWT's
//! scope, against the same gateway and route without a policy — in the same run, interleaved.
//! Goal: ≥ 0.8×.
//!
//! Layout as B7: each gateway pinned to CPU 1 (one worker), wrk (16 connections) and the nginx
//! backend on CPU 0. Needs nginx, wrk and taskset. Run:
//! `cargo bench -p examples --bench security_rps`; rows are appended to `$BENCH_RESULTS`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

mod bench_support;

use base64::Engine as _;
use bench_support::http_load::{
    DURATION_SECS, ok_backend, one_route_gateway_yaml, pinned_gateway, saturate_with, wait_for_port,
};
use bench_support::{Row, emit, free_port, median, require};
use ring::rand::SystemRandom;
use ring::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair};

const ROUNDS: usize = 3;

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// An ES256 token with scope `read`, and the JWKS that verifies it.
fn token_and_jwks() -> (String, String) {
    let rng = SystemRandom::new();
    let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng).unwrap();
    let pair =
        EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref(), &rng).unwrap();
    let header = b64(br#"{"alg":"ES256","typ":"JWT","kid":"k"}"#);
    let claims = b64(br#"{"iss":"https://idp.bench","aud":"api","sub":"bench","scope":"read"}"#);
    let input = format!("{header}.{claims}");
    let signature = pair.sign(&rng, input.as_bytes()).unwrap();
    let point = pair.public_key().as_ref();
    let jwks = format!(
        r#"{{"keys":[{{"kty":"EC","crv":"P-256","kid":"k","x":"{}","y":"{}"}}]}}"#,
        b64(&point[1..33]),
        b64(&point[33..65])
    );
    (format!("{input}.{}", b64(signature.as_ref())), jwks)
}

fn config(port: u16, backend: u16, policy: Option<&str>) -> String {
    let mut yaml = one_route_gateway_yaml(port, backend);
    if let Some(jwks) = policy {
        yaml.push_str(&format!(
            "---\napiVersion: gateway.envoyproxy.io/v1alpha1\nkind: SecurityPolicy\nmetadata: {{name: jwt}}\n\
             spec:\n  targetRefs: [{{group: gateway.networking.k8s.io, kind: HTTPRoute, name: main}}]\n  \
             jwt:\n    providers:\n    - name: idp\n      issuer: https://idp.bench\n      audiences: [api]\n      \
             localJWKS: {{type: Inline, inline: '{jwks}'}}\n      claimToHeaders: [{{header: x-sub, claim: sub}}]\n  \
             authorization:\n    defaultAction: Deny\n    rules:\n    - name: readers\n      action: Allow\n      \
             principal: {{jwt: {{provider: idp, scopes: [read]}}}}\n"
        ));
    }
    yaml
}

/// The status of `GET /` through `port` with `header`.
fn status(port: u16, header: &str) -> String {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    let request = format!("GET / HTTP/1.1\r\nhost: bench\r\n{header}\r\nconnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).unwrap();
    answer.lines().next().unwrap_or_default().to_owned()
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    for tool in ["nginx", "wrk", "taskset"] {
        require(tool);
    }
    let scratch = std::env::temp_dir().join(format!("security-rps-{}", std::process::id()));
    let (_backend, backend) = ok_backend(&scratch.join("backend"));
    let (token, jwks) = token_and_jwks();
    let (plain_port, guarded_port) = (free_port(), free_port());
    let (_plain, plain_pid) =
        pinned_gateway(&scratch.join("plain"), &config(plain_port, backend, None));
    let (_guarded, guarded_pid) = pinned_gateway(
        &scratch.join("guarded"),
        &config(guarded_port, backend, Some(&jwks)),
    );
    for port in [backend, plain_port, guarded_port] {
        wait_for_port(port);
    }
    let bearer = format!("authorization: Bearer {token}");
    // The policy is really in the path: no token is refused, the token is let through.
    assert!(status(guarded_port, "x-none: 1").contains(" 401 "));
    assert!(status(guarded_port, &bearer).contains(" 200 "));

    let (mut plain, mut guarded) = (vec![], vec![]);
    for _ in 0..ROUNDS {
        let (rps, cpu) = saturate_with(false, plain_port, Some(plain_pid), None, &[&bearer]);
        plain.push(rps * DURATION_SECS as f64 / cpu);
        let (rps, cpu) = saturate_with(false, guarded_port, Some(guarded_pid), None, &[&bearer]);
        guarded.push(rps * DURATION_SECS as f64 / cpu);
    }
    emit(
        "examples",
        vec![Row {
            bench: "S1 wrk HTTP/1.1 16 conns".into(),
            metric: "requests per CPU-second with a JWT + authorization SecurityPolicy",
            ours: median(guarded),
            baseline: median(plain),
            baseline_name: "the gateway without a policy",
            unit: "req/CPU-s",
            goal: "≥ 0.8×",
        }],
    );
}
