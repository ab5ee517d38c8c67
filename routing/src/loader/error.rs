//! What the loader reports: errors that reject the input, warnings that do not.

use std::fmt;
use std::path::PathBuf;

/// Why a configuration could not be loaded. Every variant names where: the source (a file
/// path or a caller-given name) and the 1-based document number; object errors also name the
/// kind, the object and the field.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LoadError {
    /// A file or directory could not be read.
    #[error("{}: cannot read: {error}", path.display())]
    Read {
        /// The path.
        path: PathBuf,
        /// The I/O error.
        #[source]
        error: std::io::Error,
    },
    /// A file is larger than [`MAX_SOURCE_BYTES`](super::MAX_SOURCE_BYTES).
    #[error("{source_name}: larger than {limit} bytes")]
    TooLarge {
        /// The source.
        source_name: String,
        /// The limit.
        limit: usize,
    },
    /// A document is not well-formed YAML.
    #[error("{source_name}: document {document}: malformed YAML: {message}")]
    Syntax {
        /// The source.
        source_name: String,
        /// The 1-based document number.
        document: usize,
        /// The parser's message (with line and column).
        message: String,
    },
    /// A document is not a Kubernetes object (no `kind`, no `metadata.name`, not a mapping).
    #[error("{source_name}: document {document}: {message}")]
    NotAnObject {
        /// The source.
        source_name: String,
        /// The 1-based document number.
        document: usize,
        /// What is missing.
        message: String,
    },
    /// An object's field has the wrong type or a missing required value.
    #[error("{0}")]
    InvalidField(Box<InvalidField>),
}

/// Where and why an object's field is invalid.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{source_name}: document {document}: {kind} {object}: field `{field}`: {message}")]
pub struct InvalidField {
    /// The source.
    pub source_name: String,
    /// The 1-based document number.
    pub document: usize,
    /// The object's kind.
    pub kind: String,
    /// `namespace/name` of the object.
    pub object: String,
    /// The field path (`spec.rules[0].matches[0].path.type`).
    pub field: String,
    /// What is wrong.
    pub message: String,
}

/// Something the loader ignored or overrode, without rejecting the input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoadWarning {
    /// The source.
    pub source_name: String,
    /// The 1-based document number.
    pub document: usize,
    /// What happened.
    pub message: String,
}

impl fmt::Display for LoadWarning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}: document {}: {}",
            self.source_name, self.document, self.message
        )
    }
}
