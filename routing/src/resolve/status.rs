//! Status conditions, as the Gateway API names them, for `/status` and for tests.

use serde::Serialize;

use crate::model::ObjectKey;

/// One condition (`type`, `status`, `reason`, `message`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Condition {
    /// `Accepted`, `ResolvedRefs`, `Programmed`, `Conflicted`.
    #[serde(rename = "type")]
    pub condition_type: &'static str,
    /// Whether it holds (`"True"`, `"False"` or `"Unknown"`, as Kubernetes writes it).
    pub status: ConditionStatus,
    /// The reason the spec names (`Accepted`, `NotAllowedByListeners`, `RefNotPermitted`, ...).
    pub reason: &'static str,
    /// Details for humans.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub message: String,
}

/// The status of a condition, as Kubernetes' `metav1.ConditionStatus`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
pub enum ConditionStatus {
    /// The condition holds.
    True,
    /// It does not.
    False,
    /// It cannot be determined.
    Unknown,
}

impl Condition {
    /// Whether the condition holds.
    pub fn is_true(&self) -> bool {
        self.status == ConditionStatus::True
    }

    /// A condition that holds.
    pub fn ok(condition_type: &'static str, reason: &'static str) -> Self {
        Condition {
            condition_type,
            status: ConditionStatus::True,
            reason,
            message: String::new(),
        }
    }

    /// A condition that does not hold, with a message.
    pub fn failed(
        condition_type: &'static str,
        reason: &'static str,
        message: impl Into<String>,
    ) -> Self {
        Condition {
            condition_type,
            status: ConditionStatus::False,
            reason,
            message: message.into(),
        }
    }
}

/// The status of one object: its own conditions, its listeners' (Gateways) or its parents'
/// (routes).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ObjectStatus {
    /// The kind.
    pub kind: &'static str,
    /// `namespace/name`.
    pub object: ObjectKey,
    /// The object's own conditions.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
    /// Per listener (Gateways).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub listeners: Vec<ListenerStatus>,
    /// Per parentRef (routes).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub parents: Vec<ParentStatus>,
    /// Per ancestor (policies: each Gateway, or Gateway listener, they take effect on).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub ancestors: Vec<ParentStatus>,
    /// How many ListenerSets attached (Gateways).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub attached_listener_sets: Option<usize>,
}

/// The status of one listener.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ListenerStatus {
    /// The listener's name.
    pub name: String,
    /// How many routes attached.
    pub attached_routes: usize,
    /// Its conditions.
    pub conditions: Vec<Condition>,
}

/// A route's status for one parentRef.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ParentStatus {
    /// The parent (`namespace/name`, with `sectionName` / `port` when given).
    pub parent_ref: String,
    /// Its conditions.
    pub conditions: Vec<Condition>,
}

impl ObjectStatus {
    /// A status without conditions yet.
    pub fn new(kind: &'static str, object: ObjectKey) -> Self {
        ObjectStatus {
            kind,
            object,
            conditions: Vec::new(),
            listeners: Vec::new(),
            parents: Vec::new(),
            ancestors: Vec::new(),
            attached_listener_sets: None,
        }
    }

    /// The condition of `condition_type` among the object's own, parents' and listeners'
    /// conditions (the first found).
    pub fn condition(&self, condition_type: &str) -> Option<&Condition> {
        self.conditions
            .iter()
            .chain(self.parents.iter().flat_map(|p| &p.conditions))
            .chain(self.listeners.iter().flat_map(|l| &l.conditions))
            .find(|c| c.condition_type == condition_type)
    }
}
