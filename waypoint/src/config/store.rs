//! The configuration store: load and resolve a configuration into an immutable [`Snapshot`],
//! and notice when its files change (polling their sizes and modification times, which works
//! on every file system and for editors that replace files).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::SystemTime;

use routing::loader::{LoadError, Loaded, load_paths, load_str};
use routing::model::Config;
use routing::resolve::{Resolution, ResolveOptions, resolve};

/// Where the configuration comes from.
#[derive(Debug, Clone)]
pub enum ConfigSource {
    /// Files and directories of Kubernetes YAML, watched for changes.
    Paths(Vec<PathBuf>),
    /// A YAML text held in memory (never changes).
    Text {
        /// The name errors use.
        name: String,
        /// The YAML.
        text: String,
    },
}

/// One loaded, resolved configuration. Immutable: a reload builds a new one.
#[derive(Debug)]
pub struct Snapshot {
    /// Counts successful loads from 1.
    pub generation: u64,
    /// The objects as loaded (with defaults).
    pub config: Config,
    /// What is served and every object's status.
    pub resolution: Resolution,
    /// Loader warnings (ignored kinds, duplicates).
    pub warnings: Vec<String>,
    /// When each host name of the configuration's `Backend`s is resolved again.
    pub names: Arc<super::names::NameSchedule>,
}

impl Snapshot {
    /// What it serves of host names: their addresses and schedule.
    pub fn served_names(&self) -> super::names::ServedNames {
        super::names::ServedNames {
            table: self.config.resolved_names.clone(),
            schedule: Arc::clone(&self.names),
        }
    }
}

/// The sizes and modification times of a source's files, to detect changes.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Fingerprint(Vec<(PathBuf, Option<(u64, SystemTime)>)>);

impl ConfigSource {
    /// Loads and resolves the source (Envoy Gateway `Backend` host names stay unresolved:
    /// their endpoints are empty; see [`Self::load_resolving_names`]).
    pub fn load(&self, options: &ResolveOptions, generation: u64) -> Result<Snapshot, LoadError> {
        let Loaded { config, warnings } = self.read()?;
        Ok(Self::finish(config, warnings, options, generation))
    }

    /// [`Self::load`], with the host names of Envoy Gateway `Backend`s resolved first by
    /// `resolver` ([`super::names`]).
    pub async fn load_resolving_names(
        &self,
        options: &ResolveOptions,
        generation: u64,
        resolver: &super::names::NameResolver,
    ) -> Result<Snapshot, LoadError> {
        let Loaded {
            mut config,
            warnings,
        } = self.read()?;
        config.resolved_names = resolver.resolve(&config.backend_hostnames()).await;
        Ok(Self::finish(config, warnings, options, generation))
    }

    fn read(&self) -> Result<Loaded, LoadError> {
        match self {
            ConfigSource::Paths(paths) => load_paths(paths),
            ConfigSource::Text { name, text } => load_str(name, text),
        }
    }

    fn finish(
        config: Config,
        warnings: Vec<routing::loader::LoadWarning>,
        options: &ResolveOptions,
        generation: u64,
    ) -> Snapshot {
        let resolution = resolve(&config, options);
        let mut warnings: Vec<String> = warnings.iter().map(ToString::to_string).collect();
        warnings.extend(resolution.policy_problems.iter().cloned());
        let names = Arc::new(super::names::NameSchedule::of(&resolution));
        Snapshot {
            generation,
            config,
            resolution,
            warnings,
            names,
        }
    }

    /// The current fingerprint of the source's files (empty for text).
    pub fn fingerprint(&self) -> Fingerprint {
        let ConfigSource::Paths(paths) = self else {
            return Fingerprint::default();
        };
        let mut entries = Vec::new();
        for path in paths {
            // A directory's own time changes with any file in it: its files are compared
            // instead (one appearing or going changes the list).
            if !path.is_dir() {
                entries.push(stat(path));
            }
            if let Ok(dir) = std::fs::read_dir(path) {
                // Only the files the loader reads: others in the directory never reload.
                let mut files: Vec<PathBuf> = dir
                    .filter_map(|e| e.ok().map(|e| e.path()))
                    .filter(|file| routing::loader::is_config_file_name(file))
                    .collect();
                files.sort();
                entries.extend(files.iter().map(|file| stat(file)));
            }
        }
        Fingerprint(entries)
    }
}

fn stat(path: &Path) -> (PathBuf, Option<(u64, SystemTime)>) {
    let meta = std::fs::metadata(path)
        .ok()
        .and_then(|m| Some((m.len(), m.modified().ok()?)));
    (path.to_path_buf(), meta)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_configuration_files_change_a_directorys_fingerprint() {
        let dir = std::env::temp_dir().join(format!("store-fingerprint-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("a.yaml"), "kind: List\nitems: []\n").unwrap();
        let source = ConfigSource::Paths(vec![dir.clone()]);
        let before = source.fingerprint();
        std::fs::write(dir.join("notes.txt"), "not configuration").unwrap();
        std::fs::write(dir.join(".a.yaml.swp"), "editor state").unwrap();
        assert_eq!(source.fingerprint(), before);
        std::fs::write(dir.join("b.yml"), "kind: List\nitems: []\n").unwrap();
        assert_ne!(source.fingerprint(), before);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
