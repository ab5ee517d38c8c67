//! ListenerSet (standard since Gateway API v1.5): listeners declared outside a Gateway and
//! merged into it, and the Gateway's `allowedListeners` that admits them.

use serde::{Deserialize, Serialize};

use super::gateway::{LabelSelector, Listener};
use super::meta::ObjectMeta;
use super::refs::GATEWAY_GROUP;

/// A ListenerSet.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ListenerSet {
    /// Metadata.
    pub metadata: ObjectMeta,
    /// The spec.
    pub spec: ListenerSetSpec,
}

/// `ListenerSet.spec`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ListenerSetSpec {
    /// The Gateway the listeners join.
    pub parent_ref: ParentGatewayReference,
    /// The listeners (names unique within the set), with a Gateway listener's fields.
    pub listeners: Vec<Listener>,
}

/// `ListenerSet.spec.parentRef`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ParentGatewayReference {
    /// Default `gateway.networking.k8s.io`.
    #[serde(default = "gateway_group")]
    pub group: String,
    /// Default `Gateway`.
    #[serde(default = "gateway_kind")]
    pub kind: String,
    /// The Gateway's name.
    pub name: String,
    /// Default: the ListenerSet's namespace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
}

fn gateway_group() -> String {
    GATEWAY_GROUP.to_owned()
}

fn gateway_kind() -> String {
    "Gateway".to_owned()
}

/// `Gateway.spec.allowedListeners`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct AllowedListeners {
    /// The namespaces whose ListenerSets may attach.
    pub namespaces: ListenerNamespaces,
}

/// `allowedListeners.namespaces`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct ListenerNamespaces {
    /// Default `None`: no ListenerSet may attach.
    pub from: FromListenerNamespaces,
    /// Namespace label selector, for `Selector`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub selector: Option<LabelSelector>,
}

/// `allowedListeners.namespaces.from`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum FromListenerNamespaces {
    /// No ListenerSet may attach.
    #[default]
    None,
    /// ListenerSets in the Gateway's namespace.
    Same,
    /// ListenerSets in every namespace.
    All,
    /// ListenerSets in namespaces whose labels match the selector.
    Selector,
    /// A value this implementation does not know (nothing attaches).
    #[serde(other)]
    Unsupported,
}
