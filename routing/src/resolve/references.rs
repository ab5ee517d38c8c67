//! Cross-namespace references and the ReferenceGrants that permit them (spec §2.8).

use crate::model::{Config, ReferenceGrant};

/// The referring side of a reference.
#[derive(Debug, Clone, Copy)]
pub(crate) struct From<'a> {
    pub(crate) group: &'a str,
    pub(crate) kind: &'a str,
    pub(crate) namespace: &'a str,
    /// A route attached to a Service (GAMMA): its backendRefs may cross namespaces without a
    /// ReferenceGrant.
    pub(crate) mesh: bool,
}

/// The referenced side.
#[derive(Debug, Clone, Copy)]
pub(crate) struct To<'a> {
    pub(crate) group: &'a str,
    pub(crate) kind: &'a str,
    pub(crate) namespace: &'a str,
    pub(crate) name: &'a str,
}

/// Whether `from` may refer to `to`: same namespace, or a ReferenceGrant in `to`'s namespace
/// whose from and to entries both match (group, kind, namespace; name when the grant sets one).
pub(crate) fn permitted(config: &Config, from: From<'_>, to: To<'_>) -> bool {
    from.namespace == to.namespace
        || from.mesh
        || config
            .reference_grants
            .iter()
            .filter(|grant| grant.metadata.namespace == to.namespace)
            .any(|grant| grants(grant, from, to))
}

fn grants(grant: &ReferenceGrant, from: From<'_>, to: To<'_>) -> bool {
    grant.spec.from.iter().any(|entry| {
        entry.group == from.group && entry.kind == from.kind && entry.namespace == from.namespace
    }) && grant.spec.to.iter().any(|entry| {
        entry.group == to.group
            && entry.kind == to.kind
            && entry.name.as_deref().is_none_or(|name| name == to.name)
    })
}

/// Whether an object of `from_group`/`from_kind` in `from_namespace` (a policy, say) may refer
/// to `to_kind` `to_namespace/to_name` of `to_group`: same namespace, or a ReferenceGrant in
/// the referenced namespace that allows it.
pub fn reference_permitted(
    config: &Config,
    (from_group, from_kind, from_namespace): (&str, &str, &str),
    (to_group, to_kind, to_namespace, to_name): (&str, &str, &str, &str),
) -> bool {
    permitted(
        config,
        From {
            group: from_group,
            kind: from_kind,
            namespace: from_namespace,
            mesh: false,
        },
        To {
            group: to_group,
            kind: to_kind,
            namespace: to_namespace,
            name: to_name,
        },
    )
}
