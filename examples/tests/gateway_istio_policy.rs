//! Istio AuthorizationPolicy and RequestAuthentication targeting a Gateway, enforced by the
//! `gateway` binary with the waypoint's engine: a DENY on a path, ALLOW rules on a path or a
//! request principal, tokens minted by PyJWT (inline JWKS), curl as the client; policies that
//! target another Gateway or a Service do not apply at the gateway.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

mod gateway_support;

use gateway_support::*;

fn policies(jwks: &str) -> String {
    format!(
        r#"apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {{name: shop}}
spec:
  parentRefs: [{{name: gw, sectionName: http}}]
  hostnames: [shop.example]
  rules: [{{backendRefs: [{{name: echo, port: 80}}]}}]
---
apiVersion: security.istio.io/v1
kind: RequestAuthentication
metadata: {{name: idp}}
spec:
  targetRefs: [{{kind: Gateway, group: gateway.networking.k8s.io, name: gw}}]
  jwtRules:
  - issuer: https://idp.example
    audiences: [api]
    jwks: '{jwks}'
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {{name: no-admin}}
spec:
  targetRefs: [{{kind: Gateway, group: gateway.networking.k8s.io, name: gw}}]
  action: DENY
  rules: [{{to: [{{operation: {{paths: ["/admin*"]}}}}]}}]
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {{name: public-or-signed-in}}
spec:
  targetRefs: [{{kind: Gateway, group: gateway.networking.k8s.io, name: gw}}]
  action: ALLOW
  rules:
  - to: [{{operation: {{paths: ["/public/*"], methods: [GET]}}}}]
  - from: [{{source: {{requestPrincipals: ["https://idp.example/*"]}}}}]
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {{name: elsewhere}}
spec:
  targetRefs:
  - {{kind: Gateway, group: gateway.networking.k8s.io, name: other-gw}}
  - {{kind: Service, group: "", name: echo}}
  action: DENY
  rules: [{{}}]
---
"#
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn istio_policies_targeting_the_gateway_decide_its_requests() {
    let port = free_port();
    let backend = echo("echo-0").await;
    let minted = {
        let path = format!("{}/tests/interop/jwt_mint.py", env!("CARGO_MANIFEST_DIR"));
        let output = std::process::Command::new("python3")
            .arg(path)
            .output()
            .expect("python3 with PyJWT (scripts/install-test-deps)");
        assert!(output.status.success());
        serde_json::from_slice::<serde_json::Value>(&output.stdout).unwrap()
    };
    let token = |name: &str| {
        format!(
            "authorization: Bearer {}",
            minted["tokens"][name].as_str().unwrap()
        )
    };
    let dir = scratch("istio-gateway");
    let yaml = [
        gateway_yaml(port),
        service("echo", backend),
        policies(&minted["jwks"].to_string()),
    ]
    .concat();
    std::fs::write(dir.join("config.yaml"), yaml).unwrap();
    let gateway = start_gateway(&[&dir]).await;
    gateway.wait_ready().await;
    let url = |path: &str| format!("http://127.0.0.1:{port}{path}");
    let get = |path: &'static str, extra: Option<String>| {
        let url = url(path);
        async move {
            let mut args = vec!["-H".to_owned(), "host: shop.example".to_owned()];
            if let Some(extra) = extra {
                args.extend(["-H".to_owned(), extra]);
            }
            args.push(url);
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            curl(&args).await
        }
    };

    // ALLOW by path; the Service-targeted and other-Gateway DENY-all do not apply here.
    let (status, response) = get("/public/items", None).await;
    assert_eq!(status, 200, "{response}");
    // No ALLOW rule matches: 403 as Envoy's RBAC answers.
    let (status, response) = get("/private", None).await;
    assert_eq!(status, 403, "{response}");
    assert!(response.ends_with("RBAC: access denied"), "{response}");
    // A valid token makes a request principal the second ALLOW rule accepts.
    let (status, response) = get("/private", Some(token("es256"))).await;
    assert_eq!(status, 200, "{response}");
    // DENY comes before ALLOW, token or not.
    let (status, _) = get("/admin/users", Some(token("es256"))).await;
    assert_eq!(status, 403);
    // An invalid token is refused by RequestAuthentication (401), even on a public path.
    let (status, response) = get("/public/items", Some(token("expired"))).await;
    assert_eq!(status, 401, "{response}");
    let (status, _) = get("/private", Some(token("wrong_audience"))).await;
    assert_eq!(status, 403);

    // The admin's dry run judges the Gateway's Istio policies first.
    let explain = |query: &'static str| {
        let url = format!("http://{}/debug/authorize?{query}", gateway.admin);
        async move {
            let (status, response) = curl(&[&url]).await;
            assert_eq!(status, 200, "{response}");
            let body = response.split("\r\n\r\n").nth(1).unwrap_or_default();
            serde_json::from_str::<serde_json::Value>(body).unwrap()["ports"][0].clone()
        }
    };
    let denied = explain("host=shop.example&path=/admin/users").await;
    assert_eq!(denied["status"], 403, "{denied}");
    assert_eq!(denied["istioPolicies"], 2, "{denied}");
    assert!(
        denied["reason"]
            .as_str()
            .unwrap()
            .contains("default/no-admin"),
        "{denied}"
    );
    let public = explain("host=shop.example&path=/public/a").await;
    assert_eq!(public["istioPolicies"], 2, "{public}");
    assert!(
        public["decision"]
            .as_str()
            .unwrap()
            .starts_with("forwarded"),
        "{public}"
    );
    let private = explain("host=shop.example&path=/private").await;
    assert_eq!(private["status"], 403, "{private}");
}
