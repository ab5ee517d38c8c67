//! Where the node proxy's configuration comes from (a watched file or a fixed text), which
//! workload it proxies for, and the immutable snapshot each successful load produces.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::SystemTime;

use super::local_config::{LocalConfig, LocalConfigError, Workload, parse_local_config};
use super::state::NodeState;

/// The workload the proxy serves (ztunnel's `PROXY_WORKLOAD_INFO`): namespace and name, and
/// the service account when given.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkloadSelector {
    /// The namespace.
    pub namespace: String,
    /// The name.
    pub name: String,
    /// The service account, when it must match too.
    pub service_account: Option<String>,
}

/// Why a workload selector does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0:?} is not namespace/name or namespace/name/serviceAccount")]
pub struct SelectorError(String);

impl std::str::FromStr for WorkloadSelector {
    type Err = SelectorError;

    /// `ns/name` or `ns/name/sa` (split at the first two `/`).
    fn from_str(text: &str) -> Result<Self, SelectorError> {
        let invalid = || SelectorError(text.to_owned());
        let (namespace, rest) = text.split_once('/').ok_or_else(invalid)?;
        let (name, service_account) = match rest.split_once('/') {
            Some((name, account)) => (name, Some(account.to_owned())),
            None => (rest, None),
        };
        if namespace.is_empty() || name.is_empty() {
            return Err(invalid());
        }
        Ok(WorkloadSelector {
            namespace: namespace.to_owned(),
            name: name.to_owned(),
            service_account,
        })
    }
}

impl WorkloadSelector {
    /// Whether `workload` is the one selected.
    pub fn selects(&self, workload: &Workload) -> bool {
        workload.namespace == self.namespace
            && workload.name == self.name
            && self
                .service_account
                .as_ref()
                .is_none_or(|account| workload.service_account == *account)
    }
}

/// Where the local configuration comes from.
#[derive(Debug, Clone)]
pub enum LocalConfigSource {
    /// A file, watched for changes.
    File(PathBuf),
    /// A fixed text (ztunnel's `LOCAL_XDS`).
    Text(String),
}

/// A file's size and modification time, to notice changes.
pub type FileStamp = Option<(u64, SystemTime)>;

/// Why the configuration could not be loaded.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LoadError {
    /// The file could not be read.
    #[error("cannot read {path}: {error}")]
    Read {
        /// The file.
        path: String,
        /// The error.
        #[source]
        error: std::io::Error,
    },
    /// The file is not a valid local configuration.
    #[error(transparent)]
    Invalid(#[from] LocalConfigError),
}

impl LocalConfigSource {
    /// Reads and parses the source.
    pub fn load(&self) -> Result<LocalConfig, LoadError> {
        match self {
            LocalConfigSource::Text(text) => Ok(parse_local_config("LOCAL_XDS", text)?),
            LocalConfigSource::File(path) => {
                let text = std::fs::read_to_string(path).map_err(|error| LoadError::Read {
                    path: path.display().to_string(),
                    error,
                })?;
                Ok(parse_local_config(&path.display().to_string(), &text)?)
            }
        }
    }

    /// The file's stamp now (`None` for a text, or a file that cannot be read).
    pub fn stamp(&self) -> FileStamp {
        match self {
            LocalConfigSource::Text(_) => None,
            LocalConfigSource::File(path) => std::fs::metadata(path)
                .ok()
                .and_then(|m| Some((m.len(), m.modified().ok()?))),
        }
    }
}

/// One loaded configuration: immutable, replaced as a whole on reload.
#[derive(Debug)]
pub struct NodeSnapshot {
    /// Counts successful loads from 1.
    pub generation: u64,
    /// The file as parsed.
    pub config: LocalConfig,
    /// The indexed state.
    pub state: NodeState,
    /// The proxied workload, when the configuration has it.
    pub local: Option<Arc<Workload>>,
}

impl NodeSnapshot {
    /// Indexes `config` and finds the selected workload in it.
    pub fn new(config: LocalConfig, selector: &WorkloadSelector, generation: u64) -> Self {
        let state = NodeState::build(&config);
        let local = state.workloads().find(|w| selector.selects(w)).cloned();
        NodeSnapshot {
            generation,
            config,
            state,
            local,
        }
    }
}
