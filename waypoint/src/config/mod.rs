//! Configuration: sources (files, directories, embedded text), immutable snapshots, and the
//! change detection that drives reloads.

mod store;

pub use store::{ConfigSource, Fingerprint, Snapshot};
