//! Envoy Gateway SecurityPolicies through the `gateway` binary, with curl as the client: CSRF
//! origin checks, SecurityPolicy status with ancestors, targetSelectors,
//! basic auth (htpasswd `{SHA}`), API keys (header or query, sanitized, client id forwarded),
//! CORS preflights and actual requests, authorization rules on a Gateway and on one route
//! rule (the most specific policy wins), and a policy using what is not supported yet, which
//! fails closed.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

mod gateway_support;

use gateway_support::*;

const POLICIES: &str = r#"
apiVersion: v1
kind: Secret
metadata: {name: users}
stringData:
  .htpasswd: |
    # password is "password"
    alice:{SHA}W6ph5Mm5Pz8GgiULbPgzG37mj9g=
---
apiVersion: v1
kind: Secret
metadata: {name: api-keys}
stringData: {client-1: key-one, client-2: key-two}
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: basic}
spec:
  parentRefs: [{name: gw, sectionName: http}]
  hostnames: [basic.example]
  rules: [{backendRefs: [{name: echo, port: 80}]}]
---
apiVersion: gateway.envoyproxy.io/v1alpha1
kind: SecurityPolicy
metadata: {name: basic}
spec:
  targetRefs: [{group: gateway.networking.k8s.io, kind: HTTPRoute, name: basic}]
  basicAuth: {users: {name: users}, forwardUsernameHeader: x-user}
  cors:
    allowOrigins: ["https://*.app.example"]
    allowMethods: [GET, POST]
    allowHeaders: [authorization]
    exposeHeaders: [x-total]
    maxAge: 1h
  csrf:
    additionalOrigins: ["*.partner.example"]
---
apiVersion: gateway.envoyproxy.io/v1alpha1
kind: SecurityPolicy
metadata: {name: basic-too}
spec:
  targetRefs: [{group: gateway.networking.k8s.io, kind: HTTPRoute, name: basic}]
  cors: {allowOrigins: ["*"]}
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: keys}
spec:
  parentRefs: [{name: gw, sectionName: http}]
  hostnames: [keys.example]
  rules:
  - name: admin
    matches: [{path: {type: PathPrefix, value: /admin}}]
    backendRefs: [{name: echo, port: 80}]
  - backendRefs: [{name: echo, port: 80}]
---
apiVersion: gateway.envoyproxy.io/v1alpha1
kind: SecurityPolicy
metadata: {name: keys}
spec:
  targetRefs: [{group: gateway.networking.k8s.io, kind: HTTPRoute, name: keys}]
  apiKeyAuth:
    credentialRefs: [{name: api-keys}]
    extractFrom: [{headers: [x-api-key]}, {params: [api_key]}]
    forwardClientIDHeader: x-client-id
    sanitize: true
---
apiVersion: gateway.envoyproxy.io/v1alpha1
kind: SecurityPolicy
metadata: {name: admin-rule}
spec:
  targetRefs: [{group: gateway.networking.k8s.io, kind: HTTPRoute, name: keys, sectionName: admin}]
  authorization:
    defaultAction: Deny
    rules:
    - name: admins-from-loopback
      action: Allow
      principal:
        clientCIDRs: [127.0.0.0/8]
        headers: [{name: x-role, values: [admin]}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: open}
spec:
  parentRefs: [{name: gw, sectionName: http}]
  hostnames: [open.example]
  rules: [{backendRefs: [{name: echo, port: 80}]}]
---
apiVersion: gateway.envoyproxy.io/v1alpha1
kind: SecurityPolicy
metadata: {name: gateway-wide}
spec:
  targetRefs: [{group: gateway.networking.k8s.io, kind: Gateway, name: gw}]
  authorization:
    defaultAction: Allow
    rules:
    - name: no-blocked
      action: Deny
      operation: {path: {type: PathPrefix, value: /blocked}}
      principal: {clientCIDRs: [127.0.0.1/32]}
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: payments, labels: {team: payments, tier: prod}}
spec:
  parentRefs: [{name: gw, sectionName: http}]
  hostnames: [payments.example]
  rules: [{backendRefs: [{name: echo, port: 80}]}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: payments-staging, labels: {team: payments, tier: staging}}
spec:
  parentRefs: [{name: gw, sectionName: http}]
  hostnames: [staging.example]
  rules: [{backendRefs: [{name: echo, port: 80}]}]
---
apiVersion: gateway.envoyproxy.io/v1alpha1
kind: SecurityPolicy
metadata: {name: by-label}
spec:
  targetSelectors:
  - kind: HTTPRoute
    matchLabels: {team: payments}
    matchExpressions: [{key: tier, operator: In, values: [prod]}]
  authorization: {defaultAction: Deny}
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: tokens}
spec:
  parentRefs: [{name: gw, sectionName: http}]
  hostnames: [tokens.example]
  rules: [{backendRefs: [{name: echo, port: 80}]}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: remote}
spec:
  parentRefs: [{name: gw, sectionName: http}]
  hostnames: [remote.example]
  rules: [{backendRefs: [{name: echo, port: 80}]}]
---
apiVersion: gateway.envoyproxy.io/v1alpha1
kind: SecurityPolicy
metadata: {name: remote}
spec:
  targetRefs: [{group: gateway.networking.k8s.io, kind: HTTPRoute, name: remote}]
  oidc:
    provider: {issuer: "https://idp.example", backendRefs: [{name: idp, port: 443}]}
    clientID: web
    clientSecret: {name: oidc-secret}
"#;

/// Runs `interop/<script>` with `program`: its JSON (a JWKS and tokens by name).
fn mint(program: &str, script: &str) -> serde_json::Value {
    let path = format!("{}/tests/interop/{script}", env!("CARGO_MANIFEST_DIR"));
    let minted = std::process::Command::new(program)
        .arg(path)
        .output()
        .unwrap_or_else(|e| panic!("{program} {script} (scripts/install-test-deps): {e}"));
    assert!(
        minted.status.success(),
        "{script}: {}",
        String::from_utf8_lossy(&minted.stderr)
    );
    serde_json::from_slice(&minted.stdout).unwrap()
}

/// Keys and tokens from two independent implementations, PyJWT and `jose` (npm), merged
/// into one JWKS and one token table.
fn mint_with_pyjwt_and_jose() -> serde_json::Value {
    let mut minted = mint("python3", "jwt_mint.py");
    let jose = mint("node", "jose_mint.mjs");
    for key in jose["jwks"]["keys"].as_array().unwrap() {
        minted["jwks"]["keys"]
            .as_array_mut()
            .unwrap()
            .push(key.clone());
    }
    for (name, token) in jose["tokens"].as_object().unwrap() {
        minted["tokens"][name] = token.clone();
    }
    minted
}

/// The JWT policy: PyJWT's and jose's keys as a local JWKS in a ConfigMap, issuer and audience
/// required, `sub` copied into a header, GET allowed only with the `read` scope.
fn jwt_policy(jwks: &str) -> String {
    format!(
        r#"
apiVersion: v1
kind: ConfigMap
metadata: {{name: idp-keys}}
data:
  jwks: '{jwks}'
---
apiVersion: gateway.envoyproxy.io/v1alpha1
kind: SecurityPolicy
metadata: {{name: tokens}}
spec:
  targetRefs: [{{group: gateway.networking.k8s.io, kind: HTTPRoute, name: tokens}}]
  jwt:
    providers:
    - name: idp
      issuer: https://idp.example
      audiences: [api]
      localJWKS: {{type: ValueRef, valueRef: {{group: "", kind: ConfigMap, name: idp-keys}}}}
      claimToHeaders: [{{header: x-sub, claim: sub}}]
  authorization:
    defaultAction: Deny
    rules:
    - name: readers
      action: Allow
      operation: {{methods: [GET]}}
      principal: {{jwt: {{provider: idp, scopes: [read]}}}}
"#
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn security_policies_guard_routes_through_the_gateway() {
    let port = free_port();
    let backend = echo("echo-0").await;
    let dir = scratch("security");
    let minted = mint_with_pyjwt_and_jose();
    let token = |name: &str| minted["tokens"][name].as_str().unwrap().to_owned();
    let yaml = format!(
        "{}{}{POLICIES}---\n{}",
        gateway_yaml(port),
        service("echo", backend),
        jwt_policy(&minted["jwks"].to_string())
    );
    std::fs::write(dir.join("config.yaml"), yaml).unwrap();
    let gateway = start_gateway(&[&dir]).await;
    gateway.wait_ready().await;
    let url = |path: &str| format!("http://127.0.0.1:{port}{path}");
    let host = |name: &str| format!("host: {name}");

    // Basic auth: Envoy's 401s with the realm, then the user forwarded.
    let (status, response) = curl(&["-H", &host("basic.example"), &url("/a?q=1")]).await;
    assert_eq!(status, 401, "{response}");
    assert_eq!(
        header(&response, "www-authenticate"),
        Some("Basic realm=\"http://basic.example/a\"")
    );
    assert!(response.ends_with("User authentication failed. Missing username and password."));
    let (status, _) = curl(&["-u", "alice:wrong", "-H", &host("basic.example"), &url("/")]).await;
    assert_eq!(status, 401);
    let (status, response) = curl(&[
        "-u",
        "alice:password",
        "-H",
        &host("basic.example"),
        &url("/"),
    ])
    .await;
    assert_eq!(status, 200, "{response}");
    let seen = echoed(&response);
    assert_eq!(seen["headers"]["x-user"][0], "alice", "{seen}");

    // CSRF on the same policy, before credentials: a POST from another origin is refused with
    // Envoy's text; the host's own origin and the additional origins pass on to basic auth.
    let post = |origin: &'static str| {
        let host = host("basic.example");
        let url = url("/form");
        async move {
            curl(&[
                "-u",
                "alice:password",
                "-X",
                "POST",
                "-H",
                origin,
                "-H",
                &host,
                &url,
            ])
            .await
        }
    };
    let (status, response) = post("origin: https://evil.example").await;
    assert_eq!(status, 403, "{response}");
    assert!(response.ends_with("Invalid origin"), "{response}");
    let (status, _) = post("x-no-origin: 1").await;
    assert_eq!(status, 403, "no origin at all");
    let (status, response) = post("origin: http://basic.example").await;
    assert_eq!(status, 200, "{response}");
    let (status, _) = post("origin: https://shop.partner.example").await;
    assert_eq!(status, 200);
    let (status, _) = curl(&[
        "-X",
        "POST",
        "-H",
        "origin: https://evil.example",
        "-H",
        &host("basic.example"),
        &url("/form"),
    ])
    .await;
    assert_eq!(
        status, 403,
        "CSRF is judged before credentials are asked for"
    );

    // CORS on the same policy: preflights answered before credentials are asked for.
    let preflight = [
        "-X",
        "OPTIONS",
        "-H",
        "origin: https://web.app.example",
        "-H",
        "access-control-request-method: POST",
    ];
    let (status, response) =
        curl(&[&preflight[..], &["-H", &host("basic.example"), &url("/")]].concat()).await;
    assert_eq!(status, 200, "{response}");
    assert_eq!(
        header(&response, "access-control-allow-origin"),
        Some("https://web.app.example")
    );
    assert_eq!(
        header(&response, "access-control-allow-methods"),
        Some("GET, POST")
    );
    assert_eq!(header(&response, "access-control-max-age"), Some("3600"));
    let (status, response) = curl(&[
        "-X",
        "OPTIONS",
        "-H",
        "origin: https://evil.example",
        "-H",
        "access-control-request-method: POST",
        "-H",
        &host("basic.example"),
        &url("/"),
    ])
    .await;
    assert_eq!(status, 200, "Envoy answers a refused preflight 200");
    assert_eq!(
        header(&response, "access-control-allow-origin"),
        None,
        "{response}"
    );
    let (_, response) = curl(&[
        "-u",
        "alice:password",
        "-H",
        "origin: https://web.app.example",
        "-H",
        &host("basic.example"),
        &url("/"),
    ])
    .await;
    assert_eq!(
        header(&response, "access-control-allow-origin"),
        Some("https://web.app.example")
    );
    assert_eq!(
        header(&response, "access-control-expose-headers"),
        Some("x-total")
    );

    // API keys: from a header or the query, stripped, the client id forwarded.
    let (status, response) = curl(&["-H", &host("keys.example"), &url("/x")]).await;
    assert_eq!(status, 401, "{response}");
    let (status, _) = curl(&[
        "-H",
        "x-api-key: wrong",
        "-H",
        &host("keys.example"),
        &url("/x"),
    ])
    .await;
    assert_eq!(status, 401);
    let (status, response) = curl(&[
        "-H",
        "x-api-key: key-two",
        "-H",
        &host("keys.example"),
        &url("/x"),
    ])
    .await;
    assert_eq!(status, 200, "{response}");
    let echoed_headers = echoed(&response)["headers"].clone();
    assert_eq!(echoed_headers["x-client-id"][0], "client-2");
    assert!(
        echoed_headers.get("x-api-key").is_none(),
        "sanitized: {echoed_headers}"
    );
    let (status, response) =
        curl(&["-H", &host("keys.example"), &url("/x?a=1&api_key=key-one")]).await;
    assert_eq!(status, 200, "{response}");
    let seen = echoed(&response);
    assert_eq!(seen["headers"]["x-client-id"][0], "client-1");
    assert_eq!(seen["path"], "/x?a=1", "{seen}");

    // The rule's own policy replaces the route's: no key needed, but the role is.
    let (status, response) = curl(&["-H", &host("keys.example"), &url("/admin")]).await;
    assert_eq!(status, 403, "{response}");
    assert!(response.ends_with("RBAC: access denied"), "{response}");
    let (status, _) = curl(&[
        "-H",
        "x-role: admin",
        "-H",
        &host("keys.example"),
        &url("/admin/panel"),
    ])
    .await;
    assert_eq!(status, 200);

    // The Gateway's policy covers routes without their own.
    let (status, _) = curl(&["-H", &host("open.example"), &url("/fine")]).await;
    assert_eq!(status, 200);
    let (status, _) = curl(&["-H", &host("open.example"), &url("/blocked/x")]).await;
    assert_eq!(status, 403);
    let (status, _) = curl(&["-H", &host("basic.example"), &url("/blocked")]).await;
    assert_eq!(status, 401, "the route's own policy replaces the Gateway's");

    // JWT (tokens minted by PyJWT and by jose): RS256, ES256, EdDSA and a token without kid or
    // exp pass, with the claim header; Envoy's 401s and 403s otherwise.
    let (status, response) = curl(&["-H", &host("tokens.example"), &url("/p?x=1")]).await;
    assert_eq!(status, 401, "{response}");
    assert!(response.ends_with("Jwt is missing"), "{response}");
    assert_eq!(
        header(&response, "www-authenticate"),
        Some("Bearer realm=\"http://tokens.example/p\"")
    );
    for name in [
        "rs256",
        "es256",
        "eddsa",
        "no_kid_no_exp",
        "jose_rs256",
        "jose_es256",
        "jose_eddsa",
    ] {
        let bearer = format!("authorization: Bearer {}", token(name));
        let (status, response) =
            curl(&["-H", &bearer, "-H", &host("tokens.example"), &url("/")]).await;
        assert_eq!(status, 200, "{name}: {response}");
        assert_eq!(echoed(&response)["headers"]["x-sub"][0], "alice", "{name}");
    }
    let query = url(&format!("/?access_token={}", token("es256")));
    let (status, _) = curl(&["-H", &host("tokens.example"), &query]).await;
    assert_eq!(status, 200, "the default extraction reads access_token too");
    let expect = |name: &'static str, status: u16, text: &'static str| {
        let bearer = format!("authorization: Bearer {}", token(name));
        let host = host("tokens.example");
        let url = url("/");
        async move {
            let (got, response) = curl(&["-H", &bearer, "-H", &host, &url]).await;
            assert_eq!(got, status, "{name}: {response}");
            assert!(response.ends_with(text), "{name}: {response}");
        }
    };
    expect("expired", 401, "Jwt is expired").await;
    expect("wrong_audience", 403, "Audiences in Jwt are not allowed").await;
    expect("jose_expired", 401, "Jwt is expired").await;
    expect(
        "jose_wrong_audience",
        403,
        "Audiences in Jwt are not allowed",
    )
    .await;
    expect("no_scope", 403, "RBAC: access denied").await;
    let mut tampered = token("rs256");
    tampered.insert_str(tampered.rfind('.').unwrap() + 1, "AAAA");
    let bearer = format!("authorization: Bearer {tampered}");
    let (status, response) = curl(&["-H", &bearer, "-H", &host("tokens.example"), &url("/")]).await;
    assert_eq!(status, 401, "{response}");
    assert!(response.ends_with("Jwt verification fails"), "{response}");
    let (status, _) = curl(&[
        "-X",
        "POST",
        "-H",
        &format!("authorization: Bearer {}", token("eddsa")),
        "-H",
        &host("tokens.example"),
        &url("/"),
    ])
    .await;
    assert_eq!(status, 403, "only GET is allowed");

    // Every refusal is counted by the policy and rule that decided.
    let (_, metrics) = curl(&[&format!("http://{}/metrics", gateway.admin)]).await;
    for series in [
        r#"gateway_policy_denials_total{flag="denied",decided_by="SecurityPolicy default/admin-rule defaultAction"} 1"#,
        r#"gateway_policy_denials_total{flag="denied",decided_by="SecurityPolicy default/gateway-wide rule no-blocked"} 1"#,
        r#"gateway_policy_denials_total{flag="unauthenticated",decided_by="SecurityPolicy default/basic: User authentication failed. Missing username and password."}"#,
        r#"gateway_policy_denials_total{flag="unauthenticated",decided_by="SecurityPolicy default/tokens: Jwt is expired"} 2"#,
    ] {
        assert!(metrics.contains(series), "{series} in\n{metrics}");
    }

    // "Why was this denied?": the admin's dry run names the route, the policy and the rule.
    let explain = |query: &str| {
        let url = format!("http://{}/debug/authorize?{query}", gateway.admin);
        async move {
            let (status, response) = curl(&[&url]).await;
            assert_eq!(status, 200, "{response}");
            let body = response.split("\r\n\r\n").nth(1).unwrap_or_default();
            let answer: serde_json::Value = serde_json::from_str(body).unwrap();
            answer["ports"][0].clone()
        }
    };
    let denied = explain("host=keys.example&path=/admin&source=127.0.0.1").await;
    assert_eq!(denied["status"], 403, "{denied}");
    assert_eq!(denied["securityPolicy"], "default/admin-rule", "{denied}");
    assert!(
        denied["route"]
            .as_str()
            .unwrap()
            .contains("HTTPRoute default/keys rule 0 (admin)"),
        "{denied}"
    );
    assert!(
        denied["reason"].as_str().unwrap().contains("defaultAction"),
        "{denied}"
    );
    let allowed =
        explain("host=keys.example&path=/admin/x&header=x-role:admin&source=127.0.0.1").await;
    assert_eq!(allowed["decision"], "forwarded", "{allowed}");
    let blocked = explain("host=open.example&path=/blocked&source=127.0.0.1").await;
    assert_eq!(
        blocked["securityPolicy"], "default/gateway-wide",
        "{blocked}"
    );
    assert!(
        blocked["reason"]
            .as_str()
            .unwrap()
            .contains("rule no-blocked"),
        "{blocked}"
    );
    let basic = explain("host=basic.example&path=/").await;
    assert_eq!(basic["status"], 401, "{basic}");
    assert_eq!(
        basic["sections"],
        serde_json::json!(["cors", "csrf", "basicAuth"]),
        "{basic}"
    );
    let unsupported = explain("host=remote.example").await;
    assert_eq!(unsupported["status"], 500, "{unsupported}");
    assert!(
        unsupported["reason"]
            .as_str()
            .unwrap()
            .contains("oidc.provider.backendRefs"),
        "{unsupported}"
    );

    // targetSelectors: the prod payments route is selected by its labels, staging is not.
    let (status, response) = curl(&["-H", &host("payments.example"), &url("/")]).await;
    assert_eq!(status, 403, "{response}");
    let (status, _) = curl(&["-H", &host("staging.example"), &url("/")]).await;
    assert_eq!(
        status, 200,
        "not selected: the Gateway's policy (allow) applies"
    );

    // SecurityPolicy status with ancestors on /status, as Envoy Gateway writes it.
    let (_, status) = curl(&[&gateway.admin_url("/status")]).await;
    let status = echoed(&status);
    let policy = |name: &str| {
        status["resources"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["kind"] == "SecurityPolicy" && r["object"]["name"] == name)
            .unwrap_or_else(|| panic!("SecurityPolicy {name} in {status}"))
            .clone()
    };
    let ancestor = |name: &str| {
        let policy = policy(name);
        let first = &policy["ancestors"][0];
        (
            first["parentRef"].as_str().unwrap().to_owned(),
            first["conditions"][0]["status"]
                .as_str()
                .unwrap()
                .to_owned(),
            first["conditions"][0]["reason"]
                .as_str()
                .unwrap()
                .to_owned(),
        )
    };
    let accepted = |gateway: &str| (gateway.to_owned(), "True".to_owned(), "Accepted".to_owned());
    assert_eq!(
        ancestor("basic"),
        accepted("default/gw/http"),
        "route → its parent listener"
    );
    assert_eq!(ancestor("gateway-wide"), accepted("default/gw"));
    assert_eq!(ancestor("by-label"), accepted("default/gw/http"));
    assert_eq!(ancestor("admin-rule"), accepted("default/gw/http"));
    let (at, holds, reason) = ancestor("basic-too");
    assert_eq!(
        (at.as_str(), holds.as_str(), reason.as_str()),
        ("default/gw/http", "False", "Conflicted"),
        "the same target, and `basic` sorts first"
    );
    let (at, holds, reason) = ancestor("remote");
    assert_eq!(
        (at.as_str(), holds.as_str(), reason.as_str()),
        ("default/gw/http", "False", "Invalid")
    );

    // Not supported yet: refused, never let through unprotected.
    let (status, _) = curl(&["-H", &host("remote.example"), &url("/")]).await;
    assert_eq!(status, 500);
}

#[tokio::test(flavor = "multi_thread")]
async fn remote_jwks_is_fetched_through_a_service_and_follows_rotation() {
    let port = free_port();
    let backend = echo("echo-0").await;
    let dir = scratch("remote-jwks");
    let keys_dir = dir.join("idp");
    std::fs::create_dir_all(&keys_dir).unwrap();
    let (first, second) = (
        mint("python3", "jwt_mint.py"),
        mint("python3", "jwt_mint.py"),
    );
    let publish = |set: &serde_json::Value| {
        let staged = keys_dir.join(".jwks.json");
        std::fs::write(&staged, set["jwks"].to_string()).unwrap();
        std::fs::rename(&staged, keys_dir.join("jwks.json")).unwrap();
    };
    publish(&first);
    // The identity provider: Python's http.server, reached through a Service.
    let idp_port = free_port();
    let _idp = tokio::process::Command::new("python3")
        .args([
            "-m",
            "http.server",
            &idp_port.to_string(),
            "--bind",
            "127.0.0.1",
        ])
        .arg("--directory")
        .arg(&keys_dir)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let policy = r#"
apiVersion: v1
kind: Service
metadata: {name: idp}
spec: {ports: [{name: http, port: 80}]}
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {name: idp-1, labels: {kubernetes.io/service-name: idp}}
endpoints: [{addresses: [127.0.0.1]}]
ports: [{name: http, port: IDP_PORT}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: tokens}
spec:
  parentRefs: [{name: gw, sectionName: http}]
  hostnames: [tokens.example]
  rules: [{backendRefs: [{name: echo, port: 80}]}]
---
apiVersion: gateway.envoyproxy.io/v1alpha1
kind: SecurityPolicy
metadata: {name: tokens}
spec:
  targetRefs: [{group: gateway.networking.k8s.io, kind: HTTPRoute, name: tokens}]
  jwt:
    providers:
    - name: idp
      issuer: https://idp.example
      audiences: [api]
      remoteJWKS: {uri: "http://idp.default.svc.cluster.local/jwks.json", cacheDuration: 1s}
"#
    .replace("IDP_PORT", &idp_port.to_string());
    let yaml = format!("{}{}{policy}", gateway_yaml(port), service("echo", backend));
    std::fs::write(dir.join("config.yaml"), yaml).unwrap();
    let gateway = start_gateway(&[&dir]).await;
    gateway.wait_ready().await;
    let url = format!("http://127.0.0.1:{port}/");
    let call = |set: &serde_json::Value, name: &str| {
        let bearer = format!(
            "authorization: Bearer {}",
            set["tokens"][name].as_str().unwrap()
        );
        let url = url.clone();
        async move {
            curl(&["-H", &bearer, "-H", "host: tokens.example", &url])
                .await
                .0
        }
    };
    wait_until("the first key set is fetched", || async {
        call(&first, "rs256").await == 200
    })
    .await;
    assert_eq!(call(&first, "eddsa").await, 200);
    assert_eq!(call(&second, "rs256").await, 401, "not yet published");

    publish(&second);
    wait_until("the rotated key set is fetched", || async {
        call(&second, "es256").await == 200
    })
    .await;
    assert_eq!(
        call(&first, "rs256").await,
        401,
        "a token of the retired keys is refused, cached or not"
    );
}

/// `recomputeRoute`: a JWT claim becomes a header and the route is selected again on it (the
/// `x-tier` rule's backend, not the catch-all's); the authorization that follows is the
/// re-selected rule's policy, which here needs the `read` scope.
#[tokio::test(flavor = "multi_thread")]
async fn recompute_route_selects_the_rule_a_claim_header_matches() {
    let port = free_port();
    let (general, readers) = (echo("general-0").await, echo("readers-0").await);
    let dir = scratch("recompute-route");
    let minted = mint("python3", "jwt_mint.py");
    let jwks = minted["jwks"].to_string();
    let yaml = format!(
        r#"{gateway}{general}{readers}apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {{name: tiers}}
spec:
  parentRefs: [{{name: gw, sectionName: http}}]
  hostnames: [tiers.example]
  rules:
  - name: readers
    matches: [{{headers: [{{name: x-scope, value: read}}]}}]
    backendRefs: [{{name: readers, port: 80}}]
  - name: everyone
    backendRefs: [{{name: general, port: 80}}]
---
apiVersion: gateway.envoyproxy.io/v1alpha1
kind: SecurityPolicy
metadata: {{name: tiers}}
spec:
  targetRefs: [{{group: gateway.networking.k8s.io, kind: HTTPRoute, name: tiers}}]
  jwt:
    providers:
    - name: idp
      issuer: https://idp.example
      localJWKS: {{type: Inline, inline: '{jwks}'}}
      claimToHeaders: [{{header: x-scope, claim: scope}}]
      recomputeRoute: true
---
apiVersion: gateway.envoyproxy.io/v1alpha1
kind: SecurityPolicy
metadata: {{name: readers-only}}
spec:
  targetRefs: [{{group: gateway.networking.k8s.io, kind: HTTPRoute, name: tiers, sectionName: readers}}]
  jwt:
    providers:
    - name: idp
      issuer: https://idp.example
      localJWKS: {{type: Inline, inline: '{jwks}'}}
  authorization:
    defaultAction: Deny
    rules: [{{name: readers, action: Allow, principal: {{jwt: {{provider: idp, scopes: [read]}}}}}}]
---
"#,
        gateway = gateway_yaml(port),
        general = service("general", general),
        readers = service("readers", readers),
    );
    std::fs::write(dir.join("config.yaml"), yaml).unwrap();
    let gateway = start_gateway(&[&dir]).await;
    gateway.wait_ready().await;
    let url = format!("http://127.0.0.1:{port}/data");
    let bearer = |name: &str| {
        format!(
            "authorization: Bearer {}",
            minted["tokens"][name].as_str().unwrap()
        )
    };
    let get = |auth: String| {
        let url = url.clone();
        async move { curl(&["-H", "host: tiers.example", "-H", &auth, &url]).await }
    };
    // The `read` scope becomes `x-scope: read`: the readers rule, whose policy allows it.
    let (status, response) = get(bearer("es256")).await;
    assert_eq!(status, 200, "{response}");
    assert_eq!(echoed(&response)["pod"], "readers-0", "{response}");
    // Another scope: still the catch-all rule after recomputation.
    let (status, response) = get(bearer("no_scope")).await;
    assert_eq!(status, 200, "{response}");
    assert_eq!(echoed(&response)["pod"], "general-0", "{response}");
    // A client cannot pick the readers rule by sending the header itself: the first
    // selection lands there, the readers-only policy wants a token with the `read` scope.
    let (status, response) = get("x-scope: read".to_owned()).await;
    assert_eq!(status, 401, "{response}");
}

/// `authorization.rules[].cel`: a CEL expression over Envoy's request attributes decides.
#[tokio::test(flavor = "multi_thread")]
async fn cel_rules_decide_through_the_gateway() {
    let port = free_port();
    let backend = echo("echo-0").await;
    let dir = scratch("cel");
    let yaml = format!(
        r#"{gateway}{echo}apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {{name: cel}}
spec:
  parentRefs: [{{name: gw, sectionName: http}}]
  hostnames: [cel.example]
  rules: [{{backendRefs: [{{name: echo, port: 80}}]}}]
---
apiVersion: gateway.envoyproxy.io/v1alpha1
kind: SecurityPolicy
metadata: {{name: cel}}
spec:
  targetRefs: [{{group: gateway.networking.k8s.io, kind: HTTPRoute, name: cel}}]
  authorization:
    defaultAction: Deny
    rules:
    - name: blue-readers
      action: Allow
      cel: 'request.method == "GET" && request.headers["x-team"] == "blue" && request.url_path.startsWith("/docs/")'
---
"#,
        gateway = gateway_yaml(port),
        echo = service("echo", backend),
    );
    std::fs::write(dir.join("config.yaml"), yaml).unwrap();
    let gateway = start_gateway(&[&dir]).await;
    gateway.wait_ready().await;
    let url = |path: &str| format!("http://127.0.0.1:{port}{path}");
    let ask = |team: &'static str, path: &str, method: &'static str| {
        let url = url(path);
        async move {
            curl(&[
                "-X",
                method,
                "-H",
                "host: cel.example",
                "-H",
                &format!("x-team: {team}"),
                &url,
            ])
            .await
            .0
        }
    };
    assert_eq!(ask("blue", "/docs/a?x=1", "GET").await, 200);
    assert_eq!(ask("red", "/docs/a", "GET").await, 403);
    assert_eq!(ask("blue", "/admin", "GET").await, 403);
    assert_eq!(ask("blue", "/docs/a", "DELETE").await, 403);
}
