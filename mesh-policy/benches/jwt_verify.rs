//! JWT verification per algorithm (RS256, ES256, EdDSA) against the `jsonwebtoken` crate in
//! the same run, and the cached check of a token already verified (goal ≤ 200 ns): medians of
//! interleaved batches, ratios printed as table rows.
//!
//! Run: `cargo bench -p mesh-policy --bench jwt_verify`. Needs the openssl CLI (the RSA key).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

mod support;

use std::hint::black_box;
use std::sync::Arc;

use base64::Engine as _;

use http::header::{AUTHORIZATION, HeaderMap, HeaderValue};
use mesh_policy::security::jwt::token::{ClaimRequirements, verify};
use mesh_policy::security::jwt::{Jwks, JwksSource, JwtAuthentication, JwtProvider, TokenSource};
use ring::rand::SystemRandom;
use ring::signature::{self, EcdsaKeyPair, Ed25519KeyPair, KeyPair, RsaKeyPair};
use support::median_ns;

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

const CLAIMS: &str = r#"{"iss":"https://idp.example","aud":"api","sub":"alice","scope":"read write","exp":4102444800}"#;

/// One algorithm's token, its JWKS, and the `jsonwebtoken` key and validation for it.
struct Case {
    name: &'static str,
    token: String,
    jwks: Jwks,
    theirs: (jsonwebtoken::DecodingKey, jsonwebtoken::Validation),
}

fn signed_input(alg: &str) -> String {
    format!(
        "{}.{}",
        b64(format!(r#"{{"alg":"{alg}","typ":"JWT"}}"#).as_bytes()),
        b64(CLAIMS.as_bytes())
    )
}

fn validation(alg: jsonwebtoken::Algorithm) -> jsonwebtoken::Validation {
    let mut validation = jsonwebtoken::Validation::new(alg);
    validation.set_audience(&["api"]);
    validation.set_issuer(&["https://idp.example"]);
    validation
}

fn rsa_case() -> Case {
    let dir = std::env::temp_dir().join(format!("jwt-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("rsa.der");
    let status = std::process::Command::new("openssl")
        .args([
            "genpkey",
            "-algorithm",
            "RSA",
            "-pkeyopt",
            "rsa_keygen_bits:2048",
            "-outform",
            "DER",
            "-out",
        ])
        .arg(&path)
        .stderr(std::process::Stdio::null())
        .status()
        .expect("openssl");
    assert!(status.success());
    let der = std::fs::read(&path).unwrap();
    let pair = RsaKeyPair::from_pkcs8(&der)
        .or_else(|_| RsaKeyPair::from_der(&der))
        .unwrap();
    let input = signed_input("RS256");
    let mut signature = vec![0; pair.public().modulus_len()];
    pair.sign(
        &signature::RSA_PKCS1_SHA256,
        &SystemRandom::new(),
        input.as_bytes(),
        &mut signature,
    )
    .unwrap();
    let components = ring::rsa::PublicKeyComponents::<Vec<u8>>::from(pair.public());
    let (n, e) = (components.n, components.e);
    let jwks = format!(
        r#"{{"keys":[{{"kty":"RSA","n":"{}","e":"{}"}}]}}"#,
        b64(&n),
        b64(&e)
    );
    Case {
        name: "RS256",
        token: format!("{input}.{}", b64(&signature)),
        jwks: Jwks::parse(jwks.as_bytes()).unwrap(),
        theirs: (
            jsonwebtoken::DecodingKey::from_rsa_raw_components(&n, &e),
            validation(jsonwebtoken::Algorithm::RS256),
        ),
    }
}

fn ec_case() -> Case {
    let rng = SystemRandom::new();
    let alg = &signature::ECDSA_P256_SHA256_FIXED_SIGNING;
    let pkcs8 = EcdsaKeyPair::generate_pkcs8(alg, &rng).unwrap();
    let pair = EcdsaKeyPair::from_pkcs8(alg, pkcs8.as_ref(), &rng).unwrap();
    let input = signed_input("ES256");
    let signature = pair.sign(&rng, input.as_bytes()).unwrap();
    let point = pair.public_key().as_ref();
    let (x, y) = (b64(&point[1..33]), b64(&point[33..65]));
    let jwks = format!(r#"{{"keys":[{{"kty":"EC","crv":"P-256","x":"{x}","y":"{y}"}}]}}"#);
    Case {
        name: "ES256",
        token: format!("{input}.{}", b64(signature.as_ref())),
        jwks: Jwks::parse(jwks.as_bytes()).unwrap(),
        theirs: (
            jsonwebtoken::DecodingKey::from_ec_components(&x, &y).unwrap(),
            validation(jsonwebtoken::Algorithm::ES256),
        ),
    }
}

fn ed_case() -> Case {
    let pkcs8 = Ed25519KeyPair::generate_pkcs8(&SystemRandom::new()).unwrap();
    let pair = Ed25519KeyPair::from_pkcs8(pkcs8.as_ref()).unwrap();
    let input = signed_input("EdDSA");
    let signature = pair.sign(input.as_bytes());
    let x = b64(pair.public_key().as_ref());
    let jwks = format!(r#"{{"keys":[{{"kty":"OKP","crv":"Ed25519","x":"{x}"}}]}}"#);
    Case {
        name: "EdDSA",
        token: format!("{input}.{}", b64(signature.as_ref())),
        jwks: Jwks::parse(jwks.as_bytes()).unwrap(),
        theirs: (
            jsonwebtoken::DecodingKey::from_ed_components(&x).unwrap(),
            validation(jsonwebtoken::Algorithm::EdDSA),
        ),
    }
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return; // `cargo bench -- --list`, `cargo test --benches`
    }
    let quick = std::env::var_os("BENCH_QUICK").is_some();
    let (batches, per_batch) = if quick { (5, 200) } else { (11, 1000) };
    let requirements = ClaimRequirements {
        issuer: Some("https://idp.example".into()),
        audiences: vec!["api".into()],
    };
    let now = 1_800_000_000;
    println!("| benchmark | ours | jsonwebtoken | ratio (ours / theirs) |");
    println!("|---|---|---|---|");
    for case in [rsa_case(), ec_case(), ed_case()] {
        assert!(verify(&case.token, &case.jwks, &requirements, now).is_ok());
        let (key, validation) = &case.theirs;
        jsonwebtoken::decode::<serde_json::Value>(&case.token, key, validation).unwrap();
        // Interleaved: ours, theirs, ours, theirs… each a median of batches.
        let mut ours = Vec::new();
        let mut theirs = Vec::new();
        for _ in 0..3 {
            ours.push(median_ns(batches, per_batch, || {
                black_box(verify(black_box(&case.token), &case.jwks, &requirements, now).is_ok());
            }));
            theirs.push(median_ns(batches, per_batch, || {
                black_box(
                    jsonwebtoken::decode::<serde_json::Value>(
                        black_box(&case.token),
                        key,
                        validation,
                    )
                    .is_ok(),
                );
            }));
        }
        ours.sort_by(f64::total_cmp);
        theirs.sort_by(f64::total_cmp);
        let (ours, theirs) = (ours[1], theirs[1]);
        println!(
            "| verify {} | {:.1} µs | {:.1} µs | {:.2}× |",
            case.name,
            ours / 1000.0,
            theirs / 1000.0,
            ours / theirs
        );
        if case.name == "ES256" {
            let auth = JwtAuthentication::new(
                vec![JwtProvider {
                    recompute_route: false,
                    name: "idp".into(),
                    jwks: JwksSource::Local(Arc::new(case.jwks.clone())),
                    requirements: requirements.clone(),
                    sources: TokenSource::defaults(),
                    claim_to_headers: Vec::new(),
                }],
                false,
                false,
            );
            let uri: http::Uri = "/api".parse().unwrap();
            let mut headers = HeaderMap::new();
            let bearer = HeaderValue::try_from(format!("Bearer {}", case.token)).unwrap();
            headers.insert(AUTHORIZATION, bearer);
            assert!(auth.check(&uri, &mut headers, now).unwrap().is_some());
            let cached = median_ns(batches, per_batch * 20, || {
                black_box(auth.check(black_box(&uri), &mut headers, now).is_ok());
            });
            println!(
                "| cached check (extract + cache hit), {} token | {cached:.0} ns | {:.1} µs (uncached verify) | {:.4}× (goal ≤ 200 ns) |",
                case.name,
                theirs / 1000.0,
                cached / theirs
            );
        }
    }
}
