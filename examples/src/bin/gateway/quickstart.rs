//! The quick start: two echo backends on loopback and an embedded configuration that routes
//! to them from 127.0.0.1:8080.

use examples_support::echo::{EchoIdentity, serve_echo};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use waypoint::gateway::ConfigSource;

/// The embedded configuration; `ECHO_V1_PORT` and `ECHO_V2_PORT` are filled in at start.
const CONFIG: &str = include_str!("quickstart.yaml");

/// What to try, printed at start.
pub(crate) const TRY_IT: &str = "\
Quick-start gateway on http://127.0.0.1:8080 (admin: http://127.0.0.1:15000). Try:
  curl -s http://127.0.0.1:8080/                                 # echo-v1 answers with what it saw
  curl -s -H 'x-canary: true' http://127.0.0.1:8080/             # header match: echo-v2
  curl -s http://127.0.0.1:8080/v2/anything?q=1                  # prefix rewritten to /anything
  curl -s http://127.0.0.1:8080/split                            # 50/50 between v1 and v2
  curl -si http://127.0.0.1:8080/old/page                        # 301 to /new/page
  curl -s --http2-prior-knowledge http://127.0.0.1:8080/         # h2c
  curl -s http://127.0.0.1:15000/status                          # every resource's conditions
Stop with Ctrl-C.";

/// The running quick start.
pub(crate) struct QuickStart {
    pub(crate) source: ConfigSource,
    pub(crate) echo_tasks: Vec<JoinHandle<()>>,
}

/// Starts the echo backends and renders the configuration.
pub(crate) async fn start() -> std::io::Result<QuickStart> {
    let mut ports = Vec::new();
    let mut echo_tasks = Vec::new();
    for pod in ["echo-v1-0", "echo-v2-0"] {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        ports.push(listener.local_addr()?.port());
        let identity = EchoIdentity {
            namespace: "default".into(),
            pod: pod.into(),
        };
        echo_tasks.push(tokio::spawn(serve_echo(listener, identity)));
    }
    let text = CONFIG
        .replace("ECHO_V1_PORT", &ports[0].to_string())
        .replace("ECHO_V2_PORT", &ports[1].to_string());
    Ok(QuickStart {
        source: ConfigSource::Text {
            name: "quick-start configuration".into(),
            text,
        },
        echo_tasks,
    })
}
