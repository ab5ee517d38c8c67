//! Our waypoint between our ztunnels, in both seats: HBONE (client ztunnel → waypoint →
//! server ztunnel → app), and sandwiched behind the waypoint's own ztunnel, which hands it
//! PROXY v2 with the client identity in TLV 0xD0. curl is the application client; GAMMA
//! routes apply on the way. The waypoint's `--zone` steers a `zoneAware` BackendTrafficPolicy
//! to the pods of its zone, and a GAMMA route reaches an Envoy Gateway `Backend` by host name.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

mod ztunnel_support;

use std::path::Path;

use ztunnel_support::{Waypoint, Ztunnel, dev_ca, scratch};

const CLIENT: &str = "spiffe://cluster.local/ns/default/sa/client";
const SERVER: &str = "spiffe://cluster.local/ns/default/sa/server";
const WAYPOINT_ID: &str = "spiffe://cluster.local/ns/default/sa/waypoint";

/// ztunnel's view: client, server (member of `echo`), and the waypoint workload (member of
/// the `waypoint` service; with `tunnel`, reached through its application tunnel).
fn local_config(client: &str, server: &str, waypoint: &str, tunnel: &str) -> String {
    format!(
        r#"
workloads:
- {{uid: Kubernetes//Pod/default/client, name: client, namespace: default, serviceAccount: client,
   trustDomain: cluster.local, workloadIps: ["{client}"], protocol: HBONE, services: {{}}}}
- uid: Kubernetes//Pod/default/server
  name: server
  namespace: default
  serviceAccount: server
  trustDomain: cluster.local
  workloadIps: ["{server}"]
  protocol: HBONE
  services:
    default/echo.default.svc.cluster.local: {{80: 8080}}
- uid: Kubernetes//Pod/default/waypoint
  name: waypoint
  namespace: default
  serviceAccount: waypoint
  trustDomain: cluster.local
  workloadIps: ["{waypoint}"]
  protocol: HBONE
  {tunnel}
  services:
    default/waypoint.default.svc.cluster.local: {{15008: 15008}}
services:
- name: echo
  namespace: default
  hostname: echo.default.svc.cluster.local
  vips: ["/10.96.0.20"]
  ports: {{80: 8080}}
  waypoint: {{destination: default/waypoint.default.svc.cluster.local, hboneMtlsPort: 15008}}
- {{name: waypoint, namespace: default, hostname: waypoint.default.svc.cluster.local,
   vips: ["/10.96.0.30"], ports: {{15008: 15008}}}}
"#
    )
}

/// The waypoint's view: the Service, its endpoint and Pod, and a GAMMA route.
fn mesh_config(server: &str) -> String {
    format!(
        r#"
apiVersion: v1
kind: Service
metadata: {{name: echo, namespace: default}}
spec:
  clusterIP: 10.96.0.20
  ports: [{{name: http, port: 80, targetPort: 8080}}]
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {{name: echo-1, namespace: default, labels: {{kubernetes.io/service-name: echo}}}}
addressType: IPv4
endpoints: [{{addresses: ["{server}"], targetRef: {{kind: Pod, name: server}}}}]
ports: [{{name: http, port: 8080}}]
---
apiVersion: v1
kind: Pod
metadata: {{name: server, namespace: default}}
spec: {{serviceAccountName: server}}
status: {{podIP: "{server}"}}
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {{name: echo, namespace: default}}
spec:
  parentRefs: [{{group: "", kind: Service, name: echo, port: 80}}]
  rules:
  - matches: [{{path: {{type: PathPrefix, value: /api}}}}]
    filters:
    - type: RequestHeaderModifier
      requestHeaderModifier: {{set: [{{name: x-routed-by, value: waypoint}}]}}
    backendRefs: [{{name: echo, port: 80}}]
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {{name: no-secrets, namespace: default}}
spec:
  targetRefs: [{{kind: Service, group: "", name: echo}}]
  action: DENY
  rules: [{{to: [{{operation: {{paths: ["/api/secret*"]}}}}]}}]
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {{name: only-client, namespace: default}}
spec:
  targetRefs: [{{kind: Gateway, group: gateway.networking.k8s.io, name: waypoint}}]
  action: ALLOW
  rules:
  - from: [{{source: {{principals: ["cluster.local/ns/default/sa/client"]}}}}]
    to: [{{operation: {{methods: ["GET", "HEAD"]}}}}]
"#
    )
}

async fn serve_app(address: &str) {
    let listener = tokio::net::TcpListener::bind(address).await.unwrap();
    let identity = examples_support::echo::EchoIdentity {
        namespace: "default".into(),
        pod: "server".into(),
    };
    tokio::spawn(examples_support::echo::serve_echo(listener, identity));
}

async fn curl_via(socks5: &str, url: &str) -> (bool, String) {
    let output = tokio::process::Command::new("curl")
        .args(["-sS", "--max-time", "10", "--socks5-hostname", socks5, url])
        .output()
        .await
        .unwrap();
    let text = String::from_utf8_lossy(&output.stdout).into_owned()
        + &String::from_utf8_lossy(&output.stderr);
    (output.status.success(), text)
}

async fn curl_status(socks5: &str, url: &str) -> (bool, String) {
    curl_method_status("GET", socks5, url).await
}

/// curl's status code for `method url` through `socks5`, and whether curl succeeded.
async fn curl_method_status(method: &str, socks5: &str, url: &str) -> (bool, String) {
    let output = tokio::process::Command::new("curl")
        .args(["-s", "-o", "/dev/null", "-w", "%{http_code}"])
        .args(["--max-time", "10", "-X", method])
        .args(["--socks5-hostname", socks5, url])
        .output()
        .await
        .unwrap();
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
    )
}

fn write(path: &Path, text: &str) {
    std::fs::write(path, text).unwrap();
}

/// Two ztunnels (`client`, `server`, the echo app behind the server) and an HBONE waypoint
/// between them, on `client_ip`, `server_ip` and `waypoint_ip`; the waypoint serves `mesh_yaml`
/// with `waypoint_flags` beside `--hbone-listen`.
struct HboneMesh {
    client: Ztunnel,
    _server: Ztunnel,
    waypoint: Waypoint,
}

async fn hbone_mesh(
    dir: &Path,
    (client_ip, server_ip, waypoint_ip): (&str, &str, &str),
    mesh_yaml: &str,
    waypoint_flags: &[&str],
) -> HboneMesh {
    let local = dir.join("local.yaml");
    write(&local, &local_config(client_ip, server_ip, waypoint_ip, ""));
    let mesh = dir.join("mesh.yaml");
    write(&mesh, mesh_yaml);
    serve_app(&format!("{server_ip}:8080")).await;
    let no_mark = ["--mark", "0"];
    let client = Ztunnel::start(dir, &local, "client", client_ip, &no_mark).await;
    let server = Ztunnel::start(dir, &local, "server", server_ip, &no_mark).await;
    let hbone = format!("{waypoint_ip}:15008");
    let flags: Vec<&str> = ["--hbone-listen", hbone.as_str()]
        .into_iter()
        .chain(waypoint_flags.iter().copied())
        .collect();
    let waypoint = Waypoint::start(dir, &mesh, &format!("{waypoint_ip}:15000"), &flags).await;
    HboneMesh {
        client,
        _server: server,
        waypoint,
    }
}

#[tokio::test]
async fn hbone_waypoint_routes_between_ztunnels() {
    let dir = scratch("waypoint-hbone");
    dev_ca(&dir, &[CLIENT, SERVER, WAYPOINT_ID]).await;
    let (server_ip, waypoint_ip) = ("127.0.0.41", "127.0.0.42");
    // Bound whole: the ztunnels and the waypoint live as long as the test.
    let mesh = hbone_mesh(
        &dir,
        ("127.0.0.40", server_ip, waypoint_ip),
        &mesh_config(server_ip),
        &[],
    )
    .await;
    let client = &mesh.client;

    let (ok, body) = curl_via(
        &client.socks5(),
        "http://echo.default.svc.cluster.local/api/items",
    )
    .await;
    assert!(ok, "{body}");
    assert!(
        body.contains("\"x-routed-by\":[\"waypoint\"]"),
        "the GAMMA route ran in the waypoint: {body}"
    );
    assert!(body.contains("/api/items"), "{body}");
    let (ok, status) = curl_status(
        &client.socks5(),
        "http://echo.default.svc.cluster.local/other",
    )
    .await;
    assert!(ok);
    assert_eq!(status, "404", "routes apply to the port and none matches");

    // L7 authorization: a DENY on the Service, an ALLOW on the waypoint's Gateway.
    let secret = "http://echo.default.svc.cluster.local/api/secret/key";
    let (ok, body) = curl_via(&client.socks5(), secret).await;
    assert!(ok);
    assert_eq!(body, "RBAC: access denied", "DENY by path");
    let (_, post) = curl_method_status(
        "POST",
        &client.socks5(),
        "http://echo.default.svc.cluster.local/api/items",
    )
    .await;
    assert_eq!(post, "403", "the ALLOW lists only GET and HEAD");

    // Istio's L7 metrics, reporter="waypoint".
    let metrics = ztunnel_support::http_get(&format!("{waypoint_ip}:15000"), "/metrics")
        .await
        .unwrap();
    let series = |code: &str| {
        metrics.lines().any(|line| {
            line.starts_with("istio_requests_total{")
                && line.contains("reporter=\"waypoint\"")
                && line.contains(&format!("response_code=\"{code}\""))
                && line.contains(&format!("source_principal=\"{CLIENT}\""))
                && line.contains("destination_service=\"echo.default.svc.cluster.local\"")
        })
    };
    assert!(series("200") && series("403") && series("404"), "{metrics}");
    assert!(
        metrics.contains("istio_request_duration_milliseconds_bucket{")
            && metrics.contains("istio_response_bytes_sum{"),
        "{metrics}"
    );
}

#[tokio::test]
async fn sandwiched_waypoint_gets_proxy_v2_from_its_ztunnel() {
    let dir = scratch("waypoint-sandwich");
    dev_ca(&dir, &[CLIENT, SERVER, WAYPOINT_ID]).await;
    let (client_ip, server_ip, waypoint_ip) = ("127.0.0.50", "127.0.0.51", "127.0.0.52");
    let local = dir.join("local.yaml");
    let tunnel = "applicationTunnel: {protocol: PROXY, port: 15088}";
    write(
        &local,
        &local_config(client_ip, server_ip, waypoint_ip, tunnel),
    );
    let mesh = dir.join("mesh.yaml");
    write(&mesh, &mesh_config(server_ip));
    serve_app(&format!("{server_ip}:8080")).await;
    let no_mark = ["--mark", "0"];
    let client = Ztunnel::start(&dir, &local, "client", client_ip, &no_mark).await;
    // The waypoint's own ztunnel terminates HBONE and hands streams to 127.0.0.1:15088.
    let _waypoint_ztunnel = Ztunnel::start(&dir, &local, "waypoint", waypoint_ip, &no_mark).await;
    let _waypoint = Waypoint::start(
        &dir,
        &mesh,
        "127.0.0.53:15000",
        &["--proxy-listen", "127.0.0.1:15088"],
    )
    .await;

    let (ok, body) = curl_via(
        &client.socks5(),
        "http://echo.default.svc.cluster.local/api/sandwich",
    )
    .await;
    assert!(ok, "{body}");
    assert!(body.contains("\"x-routed-by\":[\"waypoint\"]"), "{body}");
    assert!(body.contains("/api/sandwich"), "{body}");
}

#[tokio::test]
async fn grpc_over_h2c_is_routed_by_a_grpcroute_in_the_waypoint() {
    let dir = scratch("waypoint-grpc");
    dev_ca(&dir, &[CLIENT, SERVER, WAYPOINT_ID]).await;
    let (client_ip, server_ip, waypoint_ip) = ("127.0.0.44", "127.0.0.45", "127.0.0.46");
    let local = dir.join("local.yaml");
    let config = local_config(client_ip, server_ip, waypoint_ip, "")
        .replace(
            "default/echo.default.svc.cluster.local: {80: 8080}",
            "default/echo.default.svc.cluster.local: {80: 8080}\n    default/grpc.default.svc.cluster.local: {80: 9090}",
        )
        .replace(
            "- {name: waypoint, namespace: default",
            "- name: grpc\n  namespace: default\n  hostname: grpc.default.svc.cluster.local\n  vips: [\"/10.96.0.21\"]\n  ports: {80: 9090}\n  waypoint: {destination: default/waypoint.default.svc.cluster.local, hboneMtlsPort: 15008}\n- {name: waypoint, namespace: default",
        );
    write(&local, &config);
    let mesh = dir.join("mesh.yaml");
    write(
        &mesh,
        &format!(
            r#"
apiVersion: v1
kind: Service
metadata: {{name: grpc, namespace: default}}
spec:
  clusterIP: 10.96.0.21
  ports: [{{name: grpc, port: 80, targetPort: 9090, appProtocol: kubernetes.io/h2c}}]
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {{name: grpc-1, namespace: default, labels: {{kubernetes.io/service-name: grpc}}}}
addressType: IPv4
endpoints: [{{addresses: ["{server_ip}"], targetRef: {{kind: Pod, name: server}}}}]
ports: [{{name: grpc, port: 9090, appProtocol: kubernetes.io/h2c}}]
---
apiVersion: v1
kind: Pod
metadata: {{name: server, namespace: default}}
spec: {{serviceAccountName: server}}
status: {{podIP: "{server_ip}"}}
---
apiVersion: gateway.networking.k8s.io/v1
kind: GRPCRoute
metadata: {{name: grpc, namespace: default}}
spec:
  parentRefs: [{{group: "", kind: Service, name: grpc, port: 80}}]
  rules:
  - matches: [{{method: {{service: echo.Echo, method: Say}}}}]
    backendRefs: [{{name: grpc, port: 80}}]
"#
        ),
    );
    serve_app(&format!("{server_ip}:9090")).await;
    let no_mark = ["--mark", "0"];
    let client = Ztunnel::start(&dir, &local, "client", client_ip, &no_mark).await;
    let _server = Ztunnel::start(&dir, &local, "server", server_ip, &no_mark).await;
    let hbone = format!("{waypoint_ip}:15008");
    let admin = format!("{waypoint_ip}:15000");
    let _waypoint = Waypoint::start(&dir, &mesh, &admin, &["--hbone-listen", &hbone]).await;

    let grpc = |method: &str| {
        let url = format!("http://grpc.default.svc.cluster.local/echo.Echo/{method}");
        let socks5 = client.socks5();
        async move {
            let output = tokio::process::Command::new("curl")
                .args([
                    "-sS",
                    "-i",
                    "--max-time",
                    "10",
                    "--http2-prior-knowledge",
                    "-X",
                    "POST",
                ])
                .args(["-H", "content-type: application/grpc", "-H", "te: trailers"])
                .args(["--socks5-hostname", &socks5, &url])
                .output()
                .await
                .unwrap();
            assert!(
                output.status.success(),
                "{}",
                String::from_utf8_lossy(&output.stderr)
            );
            String::from_utf8_lossy(&output.stdout).into_owned()
        }
    };
    let said = grpc("Say").await;
    assert!(said.starts_with("HTTP/2 200"), "{said}");
    assert!(
        said.contains("\"proto\":\"HTTP/2.0\"") && said.contains("/echo.Echo/Say"),
        "h2 sniffed, routed, and h2c to the backend over HBONE: {said}"
    );
    let other = grpc("Other").await;
    assert!(
        other.contains("grpc-status: 12"),
        "UNIMPLEMENTED for no route: {other}"
    );
}

#[tokio::test]
async fn trust_domain_and_gateway_flags_set_identities_and_policy_targets() {
    const TD_CLIENT: &str = "spiffe://example.org/ns/default/sa/client";
    const TD_SERVER: &str = "spiffe://example.org/ns/default/sa/server";
    const TD_WAYPOINT: &str = "spiffe://example.org/ns/default/sa/waypoint";
    let dir = scratch("waypoint-flags");
    dev_ca(&dir, &[TD_CLIENT, TD_SERVER, TD_WAYPOINT]).await;
    let (client_ip, server_ip, waypoint_ip) = ("127.0.0.60", "127.0.0.61", "127.0.0.62");
    let local = dir.join("local.yaml");
    write(
        &local,
        &local_config(client_ip, server_ip, waypoint_ip, "")
            .replace("trustDomain: cluster.local", "trustDomain: example.org"),
    );
    // The ALLOW targets a Gateway named unlike the certificate's service account, so only
    // `--gateway` binds it; its principal is in the other trust domain.
    let mesh = dir.join("mesh.yaml");
    let config = mesh_config(server_ip)
        .replace(
            "group: gateway.networking.k8s.io, name: waypoint}",
            "group: gateway.networking.k8s.io, name: mesh-gw}",
        )
        .replace(
            "\"cluster.local/ns/default/sa/client\"",
            "\"example.org/ns/default/sa/client\"",
        );
    assert!(config.contains("name: mesh-gw}") && config.contains("example.org/ns"));
    write(&mesh, &config);
    serve_app(&format!("{server_ip}:8080")).await;
    let no_mark = ["--mark", "0"];
    let client = Ztunnel::start(&dir, &local, "client", client_ip, &no_mark).await;
    let _server = Ztunnel::start(&dir, &local, "server", server_ip, &no_mark).await;
    let hbone = format!("{waypoint_ip}:15008");
    let flags = [
        "--hbone-listen",
        &hbone,
        "--trust-domain",
        "example.org",
        "--gateway",
        "default/mesh-gw",
    ];
    let _waypoint = Waypoint::start(&dir, &mesh, &format!("{waypoint_ip}:15000"), &flags).await;

    // The endpoint is dialled expecting spiffe://example.org/ns/default/sa/server (with the
    // default trust domain the server's certificate would be refused: 503).
    let items = "http://echo.default.svc.cluster.local/api/items";
    let (ok, status) = curl_status(&client.socks5(), items).await;
    assert!(ok);
    assert_eq!(
        status, "200",
        "endpoint identity in the flag's trust domain"
    );
    // The ALLOW bound through --gateway admits only GET and HEAD.
    let (_, post) = curl_method_status("POST", &client.socks5(), items).await;
    assert_eq!(
        post, "403",
        "the policy targeting --gateway's Gateway applies"
    );
}

/// `curl -H header url` through `socks5`: the status code and the body.
async fn curl_with_header(socks5: &str, header: &str, url: &str) -> (String, String) {
    curl_with_args(socks5, &["-H", header], url).await
}

/// `curl ARGS url` through `socks5`: the status code and the body.
async fn curl_with_args(socks5: &str, args: &[&str], url: &str) -> (String, String) {
    let output = tokio::process::Command::new("curl")
        .args(["-sS", "--max-time", "10", "-w", "\n%{http_code}"])
        .args(args)
        .args(["--socks5-hostname", socks5, url])
        .output()
        .await
        .unwrap();
    let text = String::from_utf8_lossy(&output.stdout).into_owned();
    let (body, status) = text.rsplit_once('\n').unwrap_or(("", &text));
    (status.to_owned(), body.to_owned())
}

/// RequestAuthentication with PyJWT's keys inline, on the echo Service: tokens optional, but
/// `/api/jwt` needs a request principal and `/api/jwt/admin` a scope claim.
fn jwt_policies(jwks: &str) -> String {
    format!(
        r#"
---
apiVersion: security.istio.io/v1
kind: RequestAuthentication
metadata: {{name: idp, namespace: default}}
spec:
  targetRefs: [{{kind: Service, group: "", name: echo}}]
  jwtRules:
  - issuer: https://idp.example
    audiences: [api]
    jwks: '{jwks}'
    outputClaimToHeaders: [{{header: x-jwt-sub, claim: sub}}]
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {{name: require-jwt, namespace: default}}
spec:
  targetRefs: [{{kind: Service, group: "", name: echo}}]
  action: DENY
  rules:
  - from: [{{source: {{notRequestPrincipals: ["*"]}}}}]
    to: [{{operation: {{paths: ["/api/jwt*"]}}}}]
  - to: [{{operation: {{paths: ["/api/jwt/admin*"]}}}}]
    when: [{{key: "request.auth.claims[scope]", notValues: [admin]}}]
"#
    )
}

#[tokio::test]
async fn request_authentication_gives_request_principals_to_authorization() {
    let dir = scratch("waypoint-jwt");
    dev_ca(&dir, &[CLIENT, SERVER, WAYPOINT_ID]).await;
    let (client_ip, server_ip, waypoint_ip) = ("127.0.0.80", "127.0.0.81", "127.0.0.82");
    let minted = std::process::Command::new("python3")
        .arg(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/interop/jwt_mint.py"
        ))
        .output()
        .expect("python3 with PyJWT (scripts/install-test-deps)");
    assert!(minted.status.success());
    let minted: serde_json::Value = serde_json::from_slice(&minted.stdout).unwrap();
    let bearer = |name: &str| {
        format!(
            "authorization: Bearer {}",
            minted["tokens"][name].as_str().unwrap()
        )
    };
    let jwks = minted["jwks"].to_string();
    let mut mesh = hbone_mesh(
        &dir,
        (client_ip, server_ip, waypoint_ip),
        &(mesh_config(server_ip) + &jwt_policies(&jwks)),
        &["--log-denials"],
    )
    .await;
    let client = &mesh.client;
    let socks5 = client.socks5();
    let url = |path: &str| format!("http://echo.default.svc.cluster.local{path}");

    // No token: let through, but without a request principal.
    let (status, _) = curl_with_header(&socks5, "x-none: 1", &url("/api/items")).await;
    assert_eq!(status, "200");
    let (status, body) = curl_with_header(&socks5, "x-none: 1", &url("/api/jwt/a")).await;
    assert_eq!(
        (status.as_str(), body.as_str()),
        ("403", "RBAC: access denied")
    );
    // A verified token (each of PyJWT's algorithms): the principal, the claim header, and
    // the token not forwarded.
    for token in ["rs256", "es256", "eddsa"] {
        let (status, body) = curl_with_header(&socks5, &bearer(token), &url("/api/jwt/a")).await;
        assert_eq!(status, "200", "{token}: {body}");
        assert!(body.contains("\"x-jwt-sub\":[\"alice\"]"), "{body}");
        assert!(!body.contains("authorization"), "token stripped: {body}");
    }
    // Tokens that do not verify: 401 with Envoy's texts (403 for audiences), whatever the path.
    for (token, expected, text) in [
        ("expired", "401", "Jwt is expired"),
        ("wrong_audience", "403", "Audiences in Jwt are not allowed"),
    ] {
        let (status, body) = curl_with_header(&socks5, &bearer(token), &url("/api/items")).await;
        assert_eq!(
            (status.as_str(), body.as_str()),
            (expected, text),
            "{token}"
        );
    }
    let (status, _) =
        curl_with_header(&socks5, "authorization: Bearer x.y.z", &url("/api/items")).await;
    assert_eq!(status, "401");
    // A claim condition: the token's scope is `read`, not `admin`.
    let (status, _) = curl_with_header(&socks5, &bearer("es256"), &url("/api/jwt/admin")).await;
    assert_eq!(status, "403");

    // --log-denials: a line per refusal, naming the client, the request and what decided.
    let mut lines = Vec::new();
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(5);
    let wanted = [
        format!(
            "waypoint: denied: {CLIENT} GET echo.default.svc.cluster.local/api/jwt/a → 403 denied: denied by default/require-jwt"
        ),
        format!(
            "waypoint: denied: {CLIENT} GET echo.default.svc.cluster.local/api/items → 401 unauthenticated: RequestAuthentication: Jwt is expired"
        ),
    ];
    while !wanted.iter().all(|w| lines.contains(w)) {
        match tokio::time::timeout_at(deadline, mesh.waypoint.log.recv()).await {
            Ok(Some(line)) => lines.push(line),
            _ => panic!("{wanted:#?} in {lines:#?}"),
        }
    }
}

/// A CUSTOM policy on the echo Service sending `/api/guarded` to the HTTP authorizer MeshConfig
/// names (`istio-system/istio`'s `mesh`), whose Service's endpoint is `authz_port`.
fn custom_policy(authz_port: u16) -> String {
    format!(
        r#"
---
apiVersion: v1
kind: ConfigMap
metadata: {{name: istio, namespace: istio-system}}
data:
  mesh: |
    extensionProviders:
    - name: python-authz
      envoyExtAuthzHttp:
        service: authz.default.svc.cluster.local
        port: 80
        pathPrefix: /check
        timeout: 2s
        includeRequestHeadersInCheck: [x-extra]
        headersToUpstreamOnAllow: [x-current-user]
---
apiVersion: v1
kind: Service
metadata: {{name: authz, namespace: default}}
spec:
  ports: [{{name: http, port: 80}}]
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {{name: authz-1, namespace: default, labels: {{kubernetes.io/service-name: authz}}}}
addressType: IPv4
endpoints: [{{addresses: ["127.0.0.1"]}}]
ports: [{{name: http, port: {authz_port}}}]
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {{name: external, namespace: default}}
spec:
  targetRefs: [{{kind: Service, group: "", name: echo}}]
  action: CUSTOM
  provider: {{name: python-authz}}
  rules: [{{to: [{{operation: {{paths: ["/api/guarded*"]}}}}]}}]
"#
    )
}

#[tokio::test]
async fn custom_policies_ask_the_meshconfig_authorizer() {
    let dir = scratch("waypoint-custom");
    dev_ca(&dir, &[CLIENT, SERVER, WAYPOINT_ID]).await;
    let (client_ip, server_ip, waypoint_ip) = ("127.0.0.84", "127.0.0.85", "127.0.0.86");
    let log = dir.join("authz.log");
    let mut authorizer = tokio::process::Command::new("python3")
        .arg(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/interop/ext_authz.py"
        ))
        .args(["http", log.to_str().unwrap()])
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = tokio::io::AsyncBufReadExt::lines(tokio::io::BufReader::new(
        authorizer.stdout.take().unwrap(),
    ));
    let line = lines.next_line().await.unwrap().unwrap();
    let authz_port: u16 = line.strip_prefix("listening on ").unwrap().parse().unwrap();
    // Bound whole: the ztunnels and the waypoint live as long as the test.
    let mesh = hbone_mesh(
        &dir,
        (client_ip, server_ip, waypoint_ip),
        &(mesh_config(server_ip) + &custom_policy(authz_port)),
        &[],
    )
    .await;
    let client = &mesh.client;
    let socks5 = client.socks5();
    let url = |path: &str| format!("http://echo.default.svc.cluster.local{path}");
    let asked = || {
        std::fs::read_to_string(&log)
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
            .collect::<Vec<_>>()
    };

    // Not matched by the CUSTOM rules: the authorizer is not asked.
    let (status, _) = curl_with_header(&socks5, "x-none: 1", &url("/api/items")).await;
    assert_eq!(status, "200");
    assert!(asked().is_empty());
    // Matched: the authorizer's denial is relayed whole...
    let (status, body) = curl_with_header(&socks5, "x-extra: e", &url("/api/guarded/x")).await;
    assert_eq!(
        (status.as_str(), body.as_str()),
        ("403", "denied by python")
    );
    let sent = asked().pop().unwrap();
    assert_eq!(sent["path"], "/check/api/guarded/x", "{sent}");
    assert_eq!(sent["headers"]["x-extra"], "e", "{sent}");
    // ...and its allowance lets the request on with the headers it names.
    let (status, body) = curl_with_header(
        &socks5,
        "authorization: Bearer allow",
        &url("/api/guarded/y"),
    )
    .await;
    assert_eq!(status, "200", "{body}");
    assert!(body.contains("\"x-current-user\":[\"alice\"]"), "{body}");
    assert!(!body.contains("x-other"), "{body}");
    // The authorizer too slow (over the provider's 2 s): 403, as statusOnError's default.
    let (status, _) = curl_with_header(
        &socks5,
        "authorization: Bearer allow",
        &url("/api/guarded/slow"),
    )
    .await;
    assert_eq!(status, "403");
    // DENY and ALLOW still decide after an allowing authorizer: the waypoint's ALLOW lists
    // only GET and HEAD.
    let (status, body) = curl_with_args(
        &socks5,
        &["-X", "POST", "-H", "authorization: Bearer allow"],
        &url("/api/guarded/z"),
    )
    .await;
    assert_eq!(
        (status.as_str(), body.as_str()),
        ("403", "RBAC: access denied")
    );
}

#[tokio::test]
async fn backend_traffic_policy_limits_and_overrides_answers_on_gamma_routes_in_the_waypoint() {
    let dir = scratch("waypoint-btp");
    dev_ca(&dir, &[CLIENT, SERVER, WAYPOINT_ID]).await;
    let (server_ip, waypoint_ip) = ("127.0.0.91", "127.0.0.92");
    let policy = r#"
---
apiVersion: gateway.envoyproxy.io/v1alpha1
kind: BackendTrafficPolicy
metadata: {name: echo-limit, namespace: default}
spec:
  targetRefs: [{group: gateway.networking.k8s.io, kind: HTTPRoute, name: echo}]
  rateLimit:
    local:
      rules:
      # Beyond Envoy Gateway: one bucket per calling workload, by its mTLS identity.
      - clientSelectors: [{sourcePrincipal: {type: Distinct}}]
        limit: {requests: 2, unit: Minute}
  # The waypoint's own 429 gets the policy's page; the backend's answers are untouched.
  responseOverride:
  - match: {statusCodes: [{value: 429}]}
    source: Local
    response: {contentType: text/plain, body: {inline: 'slow down (%RESPONSE_CODE%)'}}
"#;
    let mesh = hbone_mesh(
        &dir,
        ("127.0.0.90", server_ip, waypoint_ip),
        &format!("{}{policy}", mesh_config(server_ip)),
        &[],
    )
    .await;
    let url = "http://echo.default.svc.cluster.local/api/items";
    let mut statuses = Vec::new();
    for _ in 0..3 {
        let (ok, status) = curl_status(&mesh.client.socks5(), url).await;
        assert!(ok);
        statuses.push(status);
    }
    assert_eq!(
        statuses,
        ["200", "200", "429"],
        "2 a minute on the GAMMA route"
    );
    let output = tokio::process::Command::new("curl")
        .args(["-s", "-i", "--max-time", "10", "--socks5-hostname"])
        .arg(mesh.client.socks5())
        .arg(url)
        .output()
        .await
        .unwrap();
    let answer = String::from_utf8_lossy(&output.stdout).to_lowercase();
    assert!(answer.contains("x-ratelimit-limit: 2"), "{answer}");
    assert!(answer.contains("content-type: text/plain"), "{answer}");
    assert!(answer.ends_with("slow down (429)"), "{answer}");
}

/// The Service `zoned` (10.96.0.30:80) over four pods on `:8080`: two in zone `a`, two in `b`,
/// and a BackendTrafficPolicy preferring the waypoint's zone on its GAMMA route.
fn zoned_mesh_config(pods: &[(&str, &str, &str)]) -> String {
    let endpoints: Vec<String> = pods
        .iter()
        .map(|(pod, ip, zone)| {
            format!(
                "{{addresses: [\"{ip}\"], zone: {zone}, targetRef: {{kind: Pod, name: {pod}}}}}"
            )
        })
        .collect();
    let pod_objects: String = pods
        .iter()
        .map(|(pod, ip, _)| {
            format!(
                "---\napiVersion: v1\nkind: Pod\nmetadata: {{name: {pod}, namespace: default}}\n\
                 spec: {{serviceAccountName: server}}\nstatus: {{podIP: \"{ip}\"}}\n"
            )
        })
        .collect();
    format!(
        r#"
apiVersion: v1
kind: Service
metadata: {{name: zoned, namespace: default}}
spec:
  clusterIP: 10.96.0.30
  ports: [{{name: http, port: 80, targetPort: 8080}}]
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {{name: zoned-1, namespace: default, labels: {{kubernetes.io/service-name: zoned}}}}
addressType: IPv4
endpoints: [{}]
ports: [{{name: http, port: 8080}}]
{pod_objects}---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {{name: zoned, namespace: default}}
spec:
  parentRefs: [{{group: "", kind: Service, name: zoned, port: 80}}]
  rules:
  - backendRefs: [{{name: zoned, port: 80}}]
---
apiVersion: gateway.envoyproxy.io/v1alpha1
kind: BackendTrafficPolicy
metadata: {{name: local-first, namespace: default}}
spec:
  targetRefs: [{{group: gateway.networking.k8s.io, kind: HTTPRoute, name: zoned}}]
  loadBalancer: {{type: RoundRobin, zoneAware: {{preferLocal: {{minEndpointsThreshold: 1}}}}}}
"#,
        endpoints.join(", ")
    )
}

/// One request to the Service VIP 10.96.0.30:80 through a sandwiched waypoint's PROXY
/// listener (as its ztunnel would hand it over); returns the pod that answered.
async fn pod_behind_proxy_listener(listener: &str) -> String {
    pod_behind_vip(listener, [10, 96, 0, 30], "zoned").await
}

/// One request to the Service VIP `vip`:80 (named `service` in the Host header) through a
/// sandwiched waypoint's PROXY listener; returns the pod that answered.
async fn pod_behind_vip(listener: &str, vip: [u8; 4], service: &str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(listener).await.unwrap();
    // PROXY v2, PROXY command, TCP over IPv4: 127.0.0.110:40000 → vip:80.
    let mut header = b"\r\n\r\n\0\r\nQUIT\n\x21\x11\x00\x0c".to_vec();
    header.extend_from_slice(&[127, 0, 0, 110]);
    header.extend_from_slice(&vip);
    header.extend_from_slice(&40000u16.to_be_bytes());
    header.extend_from_slice(&80u16.to_be_bytes());
    stream.write_all(&header).await.unwrap();
    let request = format!(
        "GET /where HTTP/1.1\r\nHost: {service}.default.svc.cluster.local\r\nConnection: close\r\n\r\n"
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).await.unwrap();
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    let body = &answer[answer.find("\r\n\r\n").unwrap() + 4..];
    let json: serde_json::Value = serde_json::from_str(body).unwrap();
    json["pod"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn zone_aware_balancing_prefers_the_waypoints_zone() {
    let dir = scratch("waypoint-zones");
    dev_ca(&dir, &[CLIENT, SERVER, WAYPOINT_ID]).await;
    let pods = [
        ("a-1", "127.0.0.111", "a"),
        ("a-2", "127.0.0.112", "a"),
        ("b-1", "127.0.0.113", "b"),
        ("b-2", "127.0.0.114", "b"),
    ];
    for (pod, ip, _) in pods {
        let listener = tokio::net::TcpListener::bind(format!("{ip}:8080"))
            .await
            .unwrap();
        let identity = examples_support::echo::EchoIdentity {
            namespace: "default".into(),
            pod: pod.into(),
        };
        tokio::spawn(examples_support::echo::serve_echo(listener, identity));
    }
    let mesh = dir.join("mesh.yaml");
    write(&mesh, &zoned_mesh_config(&pods));
    // Sandwich mode: no HBONE, so endpoints are reached over plain TCP.
    let (zoned, unzoned) = ("127.0.0.115:15088", "127.0.0.116:15088");
    let _in_a = Waypoint::start(
        &dir,
        &mesh,
        "127.0.0.115:15000",
        &["--proxy-listen", zoned, "--zone", "a"],
    )
    .await;
    let _nowhere = Waypoint::start(
        &dir,
        &mesh,
        "127.0.0.116:15000",
        &["--proxy-listen", unzoned],
    )
    .await;

    let mut seen = std::collections::BTreeMap::<String, usize>::new();
    for _ in 0..20 {
        *seen
            .entry(pod_behind_proxy_listener(zoned).await)
            .or_default() += 1;
    }
    // Zone a holds its share of the endpoints (half, the fleet taken as spread evenly), so
    // every request stays in it, round robin over its two pods.
    assert_eq!(
        seen.keys().map(String::as_str).collect::<Vec<_>>(),
        ["a-1", "a-2"],
        "{seen:?}"
    );
    assert_eq!(
        seen.values().copied().collect::<Vec<_>>(),
        [10, 10],
        "{seen:?}"
    );

    // Without --zone nothing is local: round robin over all four.
    let mut seen = std::collections::BTreeMap::<String, usize>::new();
    for _ in 0..20 {
        *seen
            .entry(pod_behind_proxy_listener(unzoned).await)
            .or_default() += 1;
    }
    assert_eq!(seen.len(), 4, "{seen:?}");
}

#[tokio::test]
async fn a_gamma_route_reaches_an_envoy_gateway_backend_by_host_name() {
    let dir = scratch("waypoint-backend");
    dev_ca(&dir, &[CLIENT, SERVER, WAYPOINT_ID]).await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let identity = examples_support::echo::EchoIdentity {
        namespace: "default".into(),
        pod: "external".into(),
    };
    tokio::spawn(examples_support::echo::serve_echo(listener, identity));
    let mesh = dir.join("mesh.yaml");
    write(
        &mesh,
        &format!(
            r#"
apiVersion: v1
kind: Service
metadata: {{name: ext, namespace: default}}
spec:
  clusterIP: 10.96.0.40
  ports: [{{name: http, port: 80}}]
---
apiVersion: gateway.envoyproxy.io/v1alpha1
kind: Backend
metadata: {{name: outside, namespace: default}}
spec:
  endpoints: [{{fqdn: {{hostname: localhost, port: {port}}}}}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {{name: ext, namespace: default}}
spec:
  parentRefs: [{{group: "", kind: Service, name: ext, port: 80}}]
  rules:
  - backendRefs: [{{group: gateway.envoyproxy.io, kind: Backend, name: outside}}]
"#
        ),
    );
    let proxy = "127.0.0.117:15088";
    let _waypoint =
        Waypoint::start(&dir, &mesh, "127.0.0.117:15000", &["--proxy-listen", proxy]).await;
    // The Service's GAMMA route sends its requests to the Backend's host name, resolved by
    // the waypoint (localhost → 127.0.0.1).
    assert_eq!(
        pod_behind_vip(proxy, [10, 96, 0, 40], "ext").await,
        "external"
    );
}
