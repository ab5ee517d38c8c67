//! Certificates loaded from PEM files and reloaded when the files change.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use tokio::sync::watch;

use super::config::WorkloadCertificate;
use super::errors::TlsConfigError;

/// The chain, key and roots files of a workload certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PemFiles {
    /// Certificate chain, leaf first.
    pub chain: PathBuf,
    /// Private key.
    pub key: PathBuf,
    /// Roots.
    pub roots: PathBuf,
}

/// What identifies a version of the files: modification times and sizes.
type Stamp = [Option<(SystemTime, u64)>; 3];

impl PemFiles {
    /// Loads the certificate now.
    pub fn load(&self) -> Result<WorkloadCertificate, TlsConfigError> {
        WorkloadCertificate::from_pem_files(&self.chain, &self.key, &self.roots)
    }

    /// Loads the certificate, then polls the files every `interval` and publishes each new
    /// version that loads; a version that fails to load (e.g. a half-written file) is skipped
    /// and the previous one stays current. The task stops when every receiver is dropped.
    pub fn watch(
        self,
        interval: Duration,
    ) -> Result<watch::Receiver<Arc<WorkloadCertificate>>, TlsConfigError> {
        let mut stamp = self.stamp();
        let (sender, receiver) = watch::channel(Arc::new(self.load()?));
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(interval).await;
                if sender.is_closed() {
                    return;
                }
                let current = self.stamp();
                if current == stamp {
                    continue;
                }
                if let Ok(certificate) = self.load() {
                    stamp = current;
                    let _ = sender.send(Arc::new(certificate));
                }
            }
        });
        Ok(receiver)
    }

    fn stamp(&self) -> Stamp {
        [&self.chain, &self.key, &self.roots].map(|path| file_stamp(path))
    }
}

fn file_stamp(path: &Path) -> Option<(SystemTime, u64)> {
    let metadata = std::fs::metadata(path).ok()?;
    Some((metadata.modified().ok()?, metadata.len()))
}
