//! `metadata`: names, namespaces, labels, creation time.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

/// The namespace of namespaced objects that do not name one.
pub const DEFAULT_NAMESPACE: &str = "default";

/// The `metadata` of an object.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct ObjectMeta {
    /// The object's name.
    pub name: String,
    /// The namespace; the loader fills in [`DEFAULT_NAMESPACE`] for namespaced kinds.
    pub namespace: String,
    /// Labels (Namespace selectors and `kubernetes.io/service-name` read them).
    pub labels: BTreeMap<String, String>,
    /// Annotations (e.g. Istio's `istio.io/dry-run`).
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
    /// RFC 3339 creation time, when known; the oldest route wins precedence ties.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub creation_timestamp: Option<String>,
}

/// `namespace/name` of an object.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct ObjectKey {
    /// The namespace (empty for cluster-scoped objects).
    pub namespace: String,
    /// The name.
    pub name: String,
}

impl ObjectKey {
    /// A key.
    pub fn new(namespace: impl Into<String>, name: impl Into<String>) -> Self {
        ObjectKey {
            namespace: namespace.into(),
            name: name.into(),
        }
    }
}

impl ObjectMeta {
    /// The object's `namespace/name`.
    pub fn key(&self) -> ObjectKey {
        ObjectKey::new(self.namespace.clone(), self.name.clone())
    }
}

impl fmt::Display for ObjectKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.namespace.is_empty() {
            f.write_str(&self.name)
        } else {
            write!(f, "{}/{}", self.namespace, self.name)
        }
    }
}

/// A Kubernetes object of the model: something with [`ObjectMeta`].
pub trait Object {
    /// The object's kind as written in YAML (`HTTPRoute`, `Service`, ...).
    const KIND: &'static str;
    /// Whether the kind lives in a namespace.
    const NAMESPACED: bool = true;
    /// The metadata.
    fn metadata(&self) -> &ObjectMeta;
    /// The metadata, mutably.
    fn metadata_mut(&mut self) -> &mut ObjectMeta;
}

/// Implements [`Object`] for model types with a `metadata` field.
macro_rules! impl_object {
    ($($type:ty => $kind:literal $(, cluster_scoped = $cluster:literal)?;)*) => {$(
        impl $crate::model::Object for $type {
            const KIND: &'static str = $kind;
            $(const NAMESPACED: bool = !$cluster;)?
            fn metadata(&self) -> &$crate::model::ObjectMeta {
                &self.metadata
            }
            fn metadata_mut(&mut self) -> &mut $crate::model::ObjectMeta {
                &mut self.metadata
            }
        }
    )*};
}
pub(super) use impl_object;
