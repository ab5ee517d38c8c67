//! Objects of API groups `routing` does not interpret (Istio security policies, Envoy
//! Gateway policies), kept as loaded for the crate that does.

use serde::Serialize;

use super::meta::ObjectMeta;

/// One such object, with where it came from.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ForeignObject {
    /// The file (or source name) it was read from.
    pub source_name: String,
    /// Its document's index in that file.
    pub document: usize,
    /// `group/version`.
    pub api_version: String,
    /// The kind.
    pub kind: String,
    /// Its metadata (namespace defaulted).
    pub metadata: ObjectMeta,
    /// The whole object as read.
    pub body: serde_yaml_ng::Value,
}

impl ForeignObject {
    /// The API group (`security.istio.io`).
    pub fn group(&self) -> &str {
        self.api_version
            .rsplit_once('/')
            .map_or("", |(group, _)| group)
    }
}
