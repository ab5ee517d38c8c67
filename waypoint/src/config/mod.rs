//! Configuration: sources (files, directories, embedded text), immutable snapshots, and the
//! change detection that drives reloads.

pub mod names;
mod settle;
mod store;
mod watch;

pub use names::{NameChanges, NameResolver, NameSchedule, ServedNames};
pub use settle::SettledChange;
pub use store::{ConfigSource, Fingerprint, Snapshot};
pub use watch::{LastReloadError, ReloadTicker};
