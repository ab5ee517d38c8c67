//! The certificate arguments shared by `connect` and `serve`.

use std::path::PathBuf;
use std::sync::Arc;

use hbone::tls::{HboneTls, WorkloadCertificate};

use super::Failure;

/// `--cert`, `--key`, `--ca`.
#[derive(Debug, clap::Args)]
pub(crate) struct TlsArgs {
    /// This workload's certificate chain (PEM, leaf first).
    #[arg(long)]
    cert: PathBuf,
    /// Its private key (PEM: PKCS#8, PKCS#1 or SEC1).
    #[arg(long)]
    key: PathBuf,
    /// The root certificate(s) peers must chain to (PEM).
    #[arg(long)]
    ca: PathBuf,
}

impl TlsArgs {
    /// Loads the certificate; a failure is a TLS failure (exit 2).
    pub(crate) fn load(&self) -> Result<WorkloadCertificate, Failure> {
        WorkloadCertificate::from_pem_files(&self.cert, &self.key, &self.ca).map_err(Failure::tls)
    }
}

/// HBONE TLS with the ring provider: TLS 1.3, AES-GCM.
pub(crate) fn hbone_tls() -> HboneTls {
    HboneTls::new(Arc::new(rustls::crypto::ring::default_provider()))
}
