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

mod connect;
mod dev_ca;
mod proxy_listen;
mod proxy_send;
mod serve;
mod tls_args;

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
    /// Pipe stdin/stdout through one HBONE tunnel. Exit 1 on a non-200 status, 2 on a TLS
    /// or identity failure.
    Connect(connect::Args),
    /// Run an HBONE server; print one JSON line per tunnel. Forwards to each tunnel's
    /// authority unless --forward or --echo.
    Serve(serve::Args),
    /// Write a development root and workload certificates for the given identities.
    DevCa(dev_ca::Args),
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
            Commands::Connect(args) => connect::run(args).await,
            Commands::Serve(args) => serve::run(args).await,
            Commands::DevCa(args) => dev_ca::run(args).await,
            Commands::ProxyListen(args) => proxy_listen::run(args).await,
            Commands::ProxySend(args) => proxy_send::run(args).await,
        }
    });
    // Blocking stdin reads must not keep the process alive after the work is done.
    runtime.shutdown_background();
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(failure) if failure.bare => {
            eprintln!("{}", failure.message);
            ExitCode::from(failure.exit_code)
        }
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
    /// Printed as is, without the `hbonecat: ` prefix (e.g. `status: 503`).
    bare: bool,
}

impl Failure {
    /// A failure reported with exit code 1.
    fn general(message: impl std::fmt::Display) -> Self {
        Failure {
            message: message.to_string(),
            exit_code: 1,
            bare: false,
        }
    }

    /// A TLS or identity failure: exit code 2.
    fn tls(message: impl std::fmt::Display) -> Self {
        Failure {
            message: message.to_string(),
            exit_code: 2,
            bare: false,
        }
    }

    /// A non-200 CONNECT response: `status: NNN` on stderr, exit code 1.
    fn status(status: u16) -> Self {
        Failure {
            message: format!("status: {status}"),
            exit_code: 1,
            bare: true,
        }
    }
}
