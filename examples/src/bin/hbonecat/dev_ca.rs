//! `hbonecat dev-ca`: writes a development root and workload certificates.

use std::path::{Path, PathBuf};

use hbone::dev_ca::DevCa;
use hbone::identity::SpiffeId;

use super::Failure;

/// Arguments of `dev-ca`.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// Directory to write into (created if missing).
    #[arg(long)]
    out: PathBuf,
    /// A SPIFFE identity to issue a certificate for (repeatable).
    #[arg(long = "identity", required = true)]
    identities: Vec<SpiffeId>,
}

/// Writes `ca-cert.pem` and, per identity, `<ns>-<sa>-cert.pem` and `<ns>-<sa>-key.pem`;
/// prints each file written.
pub(crate) async fn run(args: Args) -> Result<(), Failure> {
    let mut stems = std::collections::HashMap::new();
    for identity in &args.identities {
        if let Some(other) = stems.insert(file_stem(identity), identity) {
            return Err(Failure::general(format!(
                "{other} and {identity} would share file names: use distinct namespace/service-account pairs"
            )));
        }
    }
    std::fs::create_dir_all(&args.out).map_err(Failure::general)?;
    let ca = DevCa::new("cluster.local").map_err(Failure::general)?;
    write(&args.out.join("ca-cert.pem"), ca.root_pem())?;
    for identity in &args.identities {
        let issued = ca.issue(identity).map_err(Failure::general)?;
        let stem = file_stem(identity);
        write(
            &args.out.join(format!("{stem}-cert.pem")),
            &issued.certificate_pem,
        )?;
        write(&args.out.join(format!("{stem}-key.pem")), &issued.key_pem)?;
    }
    Ok(())
}

fn file_stem(identity: &SpiffeId) -> String {
    format!("{}-{}", identity.namespace(), identity.service_account())
}

fn write(path: &Path, contents: &str) -> Result<(), Failure> {
    std::fs::write(path, contents).map_err(Failure::general)?;
    println!("{}", path.display());
    Ok(())
}
