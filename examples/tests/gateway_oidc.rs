//! SecurityPolicy `oidc` through the `gateway` binary against a real OpenID provider
//! (`oidc-provider` from npm, its development login and consent pages) with a scripted browser
//! (`interop/oidc_browser.py`): the redirect with PKCE, state and nonce; the login; the code
//! exchanged with HTTP Basic client credentials; the session kept in cookies and forwarded as
//! a bearer token the provider's userinfo endpoint accepts; a silent refresh once the access
//! token expired; logout through the provider's end-session endpoint; and requests that must
//! not get a session: script requests (`denyRedirect`), forged cookies, callbacks of no login.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

mod gateway_support;

use std::process::Stdio;

use gateway_support::*;
use tokio::process::{Child, Command};

const INTEROP: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/interop");

/// Starts the provider on `port`, access tokens living `ttl` seconds.
async fn provider(port: u16, redirect_uri: &str, ttl: u32) -> Child {
    let mut command = Command::new("node");
    command
        .arg(format!("{INTEROP}/oidc_provider.mjs"))
        .args([&port.to_string(), redirect_uri, &ttl.to_string()])
        .stderr(Stdio::null());
    let (child, line) = spawn_peer(command, "node with oidc-provider").await;
    assert_eq!(line, format!("listening on {port}"));
    child
}

fn policy(provider_port: u16) -> String {
    format!(
        r#"apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {{name: app}}
spec:
  parentRefs: [{{name: gw, sectionName: http}}]
  hostnames: [app.example]
  rules: [{{backendRefs: [{{name: echo, port: 80}}]}}]
---
apiVersion: v1
kind: Secret
metadata: {{name: web-client}}
stringData: {{client-secret: "web secret:&"}}
---
apiVersion: gateway.envoyproxy.io/v1alpha1
kind: SecurityPolicy
metadata: {{name: login}}
spec:
  targetRefs: [{{group: gateway.networking.k8s.io, kind: HTTPRoute, name: app}}]
  oidc:
    provider: {{issuer: "http://127.0.0.1:{provider_port}"}}
    clientID: web
    clientSecret: {{name: web-client}}
    scopes: [email]
    forwardAccessToken: true
    forwardIDToken: {{header: x-id-token}}
    denyRedirect:
      headers: [{{name: x-requested-with, value: XMLHttpRequest}}]
---
"#
    )
}

async fn browse(gateway_port: u16, provider_port: u16, scenario: &str) -> serde_json::Value {
    let output = Command::new("python3")
        .arg(format!("{INTEROP}/oidc_browser.py"))
        .args([
            &gateway_port.to_string(),
            &provider_port.to_string(),
            scenario,
        ])
        .output()
        .await
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_browser_logs_in_at_a_real_provider_refreshes_and_logs_out() {
    let port = free_port();
    let provider_port = free_port();
    let backend = echo("echo-0").await;
    let _provider = provider(provider_port, "http://app.example/oauth2/callback", 2).await;
    let dir = scratch("oidc");
    let yaml = [
        gateway_yaml(port),
        service("echo", backend),
        policy(provider_port),
    ]
    .concat();
    std::fs::write(dir.join("config.yaml"), yaml).unwrap();
    let gateway = start_gateway(&[&dir]).await;
    gateway.wait_ready().await;
    let issuer = format!("http://127.0.0.1:{provider_port}");

    let report = browse(port, provider_port, "login-refresh-logout").await;
    // No session: to the provider, with PKCE, a state and a nonce.
    let first = &report["first_redirect"];
    assert_eq!(first["status"], 302, "{report}");
    let location = first["location"].as_str().unwrap();
    assert!(
        location.starts_with(&format!("{issuer}/auth?")),
        "{location}"
    );
    for part in [
        "client_id=web",
        "response_type=code",
        "code_challenge_method=S256",
        "scope=openid%20email",
        "redirect_uri=http%3A%2F%2Fapp.example%2Foauth2%2Fcallback",
        "&state=",
        "&nonce=",
    ] {
        assert!(location.contains(part), "{part} missing from {location}");
    }
    // Logged in: back where the login started, forwarded with the tokens, not the cookies.
    let login = &report["login"];
    assert_eq!(login["status"], 200, "{report}");
    assert_eq!(login["at"], "http://app.example/private?x=1", "{report}");
    let seen = &login["seen"];
    assert_eq!(seen["path"], "/private?x=1", "{seen}");
    let bearer = seen["headers"]["authorization"][0].as_str().unwrap();
    assert!(bearer.starts_with("Bearer "), "{seen}");
    assert_eq!(
        seen["headers"]["x-id-token"][0]
            .as_str()
            .unwrap()
            .split('.')
            .count(),
        3
    );
    assert!(seen["headers"].get("cookie").is_none(), "{seen}");
    // The forwarded token is one the provider itself accepts.
    assert_eq!(report["userinfo"][0], 200, "{report}");
    assert_eq!(report["userinfo"][1]["sub"], "alice", "{report}");
    let cookies = report["app_cookies"].as_array().unwrap();
    assert_eq!(cookies.len(), 5, "{report}");
    // The session alone carries the next request.
    assert_eq!(report["again"]["status"], 200, "{report}");
    assert_eq!(report["again"]["steps"], 1, "{report}");
    // An expired access token is refreshed without a trip through the browser.
    let refreshed = &report["refreshed"];
    assert_eq!(refreshed["status"], 200, "{report}");
    assert_eq!(refreshed["steps"], 1, "{report}");
    assert!(
        !refreshed["set_cookies"].as_array().unwrap().is_empty(),
        "{report}"
    );
    assert_ne!(refreshed["authorization"].as_str().unwrap(), bearer);
    assert_eq!(refreshed["userinfo"][0], 200, "{report}");
    // Logout: every cookie cleared, the provider's session ended with the ID token as hint.
    let logout = &report["logout"];
    assert_eq!(logout["status"], 302, "{report}");
    let location = logout["location"].as_str().unwrap();
    assert!(location.starts_with(&format!(
        "{issuer}/session/end?client_id=web&id_token_hint="
    )));
    assert_eq!(logout["app_cookies"], serde_json::json!([]), "{report}");
    assert_eq!(report["after_logout"]["status"], 302, "{report}");

    // Requests that get no session.
    let url = |path: &str| format!("http://127.0.0.1:{port}{path}");
    let (status, response) = curl(&[
        "-H",
        "host: app.example",
        "-H",
        "x-requested-with: XMLHttpRequest",
        &url("/api"),
    ])
    .await;
    assert_eq!(status, 401, "{response}");
    let forged = "cookie: AccessToken-x=a; OauthHMAC-x=b; OauthExpires-x=99999999999";
    let (status, _) = curl(&["-H", "host: app.example", "-H", forged, &url("/")]).await;
    assert_eq!(status, 302);
    let (status, response) = curl(&[
        "-H",
        "host: app.example",
        &url("/oauth2/callback?code=stolen&state=eyJ1cmwiOiIvIn0.AAAA"),
    ])
    .await;
    assert_eq!(status, 401, "{response}");
    assert!(response.ends_with("OAuth flow failed."), "{response}");
}
