//! Configuration: sources (files, directories, embedded text), immutable snapshots, and the
//! change detection that drives reloads.

mod settle;
mod store;

pub use settle::SettledChange;
pub use store::{ConfigSource, Fingerprint, Snapshot};
