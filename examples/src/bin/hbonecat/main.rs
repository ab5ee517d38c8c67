//! `hbonecat`: "socat for HBONE", a debugging tool for mesh operators.
//!
//! What it shows: the `hbone` crate's PROXY protocol codec, acceptor and writer used from a
//! real command-line tool.
//!
//! Run:
//! ```text
//! cargo run -p examples --bin hbonecat -- proxy-listen --listen 127.0.0.1:15088 --echo
//! echo hello | cargo run -p examples --bin hbonecat -- proxy-send --to 127.0.0.1:15088 \
//!     --src 10.0.0.1:40000 --dst 10.10.0.1:80 \
//!     --tlv 208=spiffe://cluster.local/ns/default/sa/client --tlv 3=
//! ```
//! What you should see: `proxy-listen` prints one JSON line per connection describing the header
//! (`{"event":"proxy_header","version":2,...,"tlvs":[{"type":208,...},{"type":3,...}]}`) and
//! echoes the payload, so `proxy-send` prints `hello`.

mod proxy_listen;
mod proxy_send;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// socat for HBONE: tunnels and PROXY protocol headers for debugging a mesh.
#[derive(Debug, Parser)]
#[command(name = "hbonecat", version)]
struct Cli {
    #[command(subcommand)]
    command: Commands,
}

#[derive(Debug, Subcommand)]
enum Commands {
    /// Accept PROXY v1 or v2 on each connection, print the header as JSON, then echo or forward.
    ProxyListen(proxy_listen::Args),
    /// Send a PROXY header (v2 unless --v1), then stdin; print what comes back.
    ProxySend(proxy_send::Args),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("hbonecat: cannot start the runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async {
        match cli.command {
            Commands::ProxyListen(args) => proxy_listen::run(args).await,
            Commands::ProxySend(args) => proxy_send::run(args).await,
        }
    });
    // Blocking stdin reads must not keep the process alive after the work is done.
    runtime.shutdown_background();
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(failure) => {
            eprintln!("hbonecat: {}", failure.message);
            ExitCode::from(failure.exit_code)
        }
    }
}

/// Why a subcommand failed, and the exit code that reports it.
#[derive(Debug)]
struct Failure {
    message: String,
    exit_code: u8,
}

impl Failure {
    /// A failure reported with exit code 1.
    fn general(message: impl std::fmt::Display) -> Self {
        Failure {
            message: message.to_string(),
            exit_code: 1,
        }
    }
}
