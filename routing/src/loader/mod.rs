//! Loading the [model](crate::model) from Kubernetes YAML: files, directories (their `.yaml`,
//! `.yml` and `.json` files, sorted, not recursive — as `kubectl apply -f DIR`),
//! multi-document streams and `List` objects.
//!
//! The loader applies the API server's defaults (the CRD defaults through the model's serde
//! attributes; namespace `default` for namespaced objects without one). It rejects what the
//! API server would reject at admission — malformed YAML, wrong field types, missing required
//! fields — with the source, document, object and field. Unknown kinds are ignored with a
//! warning; an object defined twice keeps its last definition, with a warning. Semantic
//! problems (a reference to a missing object, an unsupported match type) are not load errors:
//! resolution reports them as status conditions and the rest of the configuration keeps
//! working.

mod error;

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;
use serde_yaml_ng::Value;

pub use error::{InvalidField, LoadError, LoadWarning};

use crate::model::{
    Config, DEFAULT_NAMESPACE, ForeignObject, GATEWAY_GROUP, L4Route, Object, ObjectKey, ObjectMeta,
};

/// API groups whose objects are kept as [`ForeignObject`]s for the policy crate that reads
/// them (Istio security, Envoy Gateway) instead of being ignored with a warning.
pub const FOREIGN_GROUPS: [&str; 2] = ["security.istio.io", "gateway.envoyproxy.io"];

/// The largest source (file or string) the loader accepts.
pub const MAX_SOURCE_BYTES: usize = 32 * 1024 * 1024;

/// A loaded configuration and what the loader ignored.
#[derive(Debug, Clone, Default)]
pub struct Loaded {
    /// The objects.
    pub config: Config,
    /// Ignored kinds, overridden duplicates.
    pub warnings: Vec<LoadWarning>,
}

/// Loads every file named, and every YAML or JSON file of every directory named, in order.
pub fn load_paths<P: AsRef<Path>>(paths: &[P]) -> Result<Loaded, LoadError> {
    let mut loader = Loader::default();
    for path in paths {
        let path = path.as_ref();
        let read_error = |error| LoadError::Read {
            path: path.to_path_buf(),
            error,
        };
        if path.is_dir() {
            let mut files: Vec<PathBuf> = std::fs::read_dir(path)
                .map_err(read_error)?
                .filter_map(|entry| entry.ok().map(|entry| entry.path()))
                .filter(|file| file.is_file() && is_config_file_name(file))
                .collect();
            files.sort();
            for file in files {
                loader.load_file(&file)?;
            }
        } else {
            loader.load_file(path)?;
        }
    }
    Ok(loader.finish())
}

/// Loads one YAML (or JSON) text; `source_name` names it in errors.
pub fn load_str(source_name: &str, text: &str) -> Result<Loaded, LoadError> {
    let mut loader = Loader::default();
    loader.load_text(source_name, text)?;
    Ok(loader.finish())
}

/// Whether a file in a configuration directory is read (`.yaml`, `.yml` or `.json`); other
/// files there (editor swap files, staged copies) are not configuration.
pub fn is_config_file_name(path: &Path) -> bool {
    matches!(
        path.extension().and_then(|e| e.to_str()),
        Some("yaml" | "yml" | "json")
    )
}

/// Accumulates objects from several sources.
#[derive(Default)]
struct Loader {
    loaded: Loaded,
    seen: HashSet<(String, ObjectKey)>,
}

/// Where a document came from.
#[derive(Clone, Copy)]
struct Origin<'a> {
    source_name: &'a str,
    document: usize,
}

impl Loader {
    fn finish(self) -> Loaded {
        self.loaded
    }

    fn load_file(&mut self, path: &Path) -> Result<(), LoadError> {
        let read_error = |error| LoadError::Read {
            path: path.to_path_buf(),
            error,
        };
        let size = std::fs::metadata(path).map_err(read_error)?.len();
        let source_name = path.display().to_string();
        if size > MAX_SOURCE_BYTES as u64 {
            return Err(LoadError::TooLarge {
                source_name,
                limit: MAX_SOURCE_BYTES,
            });
        }
        let text = std::fs::read_to_string(path).map_err(read_error)?;
        self.load_text(&source_name, &text)
    }

    fn load_text(&mut self, source_name: &str, text: &str) -> Result<(), LoadError> {
        if text.len() > MAX_SOURCE_BYTES {
            return Err(LoadError::TooLarge {
                source_name: source_name.to_owned(),
                limit: MAX_SOURCE_BYTES,
            });
        }
        for (index, document) in serde_yaml_ng::Deserializer::from_str(text).enumerate() {
            let origin = Origin {
                source_name,
                document: index + 1,
            };
            let value = <Value as serde::Deserialize>::deserialize(document).map_err(|error| {
                LoadError::Syntax {
                    source_name: source_name.to_owned(),
                    document: origin.document,
                    message: error.to_string(),
                }
            })?;
            self.load_value(origin, value)?;
        }
        Ok(())
    }

    fn load_value(&mut self, origin: Origin<'_>, value: Value) -> Result<(), LoadError> {
        if value.is_null() {
            return Ok(()); // an empty document (`---` at the end, comments only)
        }
        let not_an_object = |message: &str| LoadError::NotAnObject {
            source_name: origin.source_name.to_owned(),
            document: origin.document,
            message: message.to_owned(),
        };
        if !value.is_mapping() {
            return Err(not_an_object("not a mapping"));
        }
        let text_field = |name: &str| value.get(name).and_then(Value::as_str).unwrap_or("");
        let kind = text_field("kind").to_owned();
        let api_version = text_field("apiVersion").to_owned();
        if kind.is_empty() {
            return Err(not_an_object("no `kind`"));
        }
        let group = api_version.rsplit_once('/').map_or("", |(group, _)| group);
        match (group, kind.as_str()) {
            ("", "List") => {
                let items = match value.get("items") {
                    Some(Value::Sequence(items)) => items.clone(),
                    _ => return Err(not_an_object("List without `items`")),
                };
                for item in items {
                    self.load_value(origin, item)?;
                }
                Ok(())
            }
            (GATEWAY_GROUP, "GatewayClass") => {
                self.object(origin, value, |c| &mut c.gateway_classes)
            }
            (GATEWAY_GROUP, "Gateway") => self.object(origin, value, |c| &mut c.gateways),
            (GATEWAY_GROUP, "ListenerSet") => self.object(origin, value, |c| &mut c.listener_sets),
            (GATEWAY_GROUP, "HTTPRoute") => self.object(origin, value, |c| &mut c.http_routes),
            (GATEWAY_GROUP, "GRPCRoute") => self.object(origin, value, |c| &mut c.grpc_routes),
            (GATEWAY_GROUP, "TLSRoute") => {
                self.l4_route(origin, value, "TLSRoute", |c| &mut c.tls_routes)
            }
            (GATEWAY_GROUP, "TCPRoute") => {
                self.l4_route(origin, value, "TCPRoute", |c| &mut c.tcp_routes)
            }
            (GATEWAY_GROUP, "UDPRoute") => {
                self.l4_route(origin, value, "UDPRoute", |c| &mut c.udp_routes)
            }
            (GATEWAY_GROUP, "ReferenceGrant") => {
                self.object(origin, value, |c| &mut c.reference_grants)
            }
            (GATEWAY_GROUP, "BackendTLSPolicy") => {
                self.object(origin, value, |c| &mut c.backend_tls_policies)
            }
            ("", "Service") => self.object(origin, value, |c| &mut c.services),
            ("", "Secret") => self.object(origin, value, |c| &mut c.secrets),
            ("", "ConfigMap") => self.object(origin, value, |c| &mut c.config_maps),
            ("", "Namespace") => self.object(origin, value, |c| &mut c.namespaces),
            ("", "Pod") => self.object(origin, value, |c| &mut c.pods),
            ("discovery.k8s.io", "EndpointSlice") => {
                self.object(origin, value, |c| &mut c.endpoint_slices)
            }
            (group, _) if FOREIGN_GROUPS.contains(&group) => {
                self.foreign(origin, value, api_version, kind)
            }
            _ => {
                self.warn(
                    origin,
                    format!("ignored unknown kind {kind} (apiVersion {api_version:?})"),
                );
                Ok(())
            }
        }
    }

    /// Keeps an object of a policy group for the crate that reads it.
    fn foreign(
        &mut self,
        origin: Origin<'_>,
        body: Value,
        api_version: String,
        kind: String,
    ) -> Result<(), LoadError> {
        #[derive(serde::Deserialize)]
        struct MetadataOnly {
            metadata: ObjectMeta,
        }
        // Kubernetes objects are JSON: a mapping key that is not a string cannot be one.
        if !string_keys_only(&body) {
            return Err(LoadError::NotAnObject {
                source_name: origin.source_name.to_owned(),
                document: origin.document,
                message: format!("{kind}: a mapping key that is not a string"),
            });
        }
        let MetadataOnly { mut metadata } = parse(origin, &kind, body.clone())?;
        default_namespace(&mut metadata, true);
        let key = metadata.key();
        let duplicate = self.note(origin, &kind, &key);
        let list = &mut self.loaded.config.foreign;
        if duplicate {
            list.retain(|existing| existing.kind != kind || existing.metadata.key() != key);
        }
        list.push(ForeignObject {
            source_name: origin.source_name.to_owned(),
            document: origin.document,
            api_version,
            kind,
            metadata,
            body,
        });
        Ok(())
    }

    fn object<T: Object + DeserializeOwned>(
        &mut self,
        origin: Origin<'_>,
        value: Value,
        list: impl FnOnce(&mut Config) -> &mut Vec<T>,
    ) -> Result<(), LoadError> {
        let mut object: T = parse(origin, T::KIND, value)?;
        default_namespace(object.metadata_mut(), T::NAMESPACED);
        let key = object.metadata().key();
        let duplicate = self.note(origin, T::KIND, &key);
        let list = list(&mut self.loaded.config);
        if duplicate {
            list.retain(|existing| existing.metadata().key() != key);
        }
        list.push(object);
        Ok(())
    }

    fn l4_route(
        &mut self,
        origin: Origin<'_>,
        value: Value,
        kind: &'static str,
        list: impl FnOnce(&mut Config) -> &mut Vec<L4Route>,
    ) -> Result<(), LoadError> {
        let mut route: L4Route = parse(origin, kind, value)?;
        default_namespace(&mut route.metadata, true);
        let key = route.metadata.key();
        let duplicate = self.note(origin, kind, &key);
        let list = list(&mut self.loaded.config);
        if duplicate {
            list.retain(|existing| existing.metadata.key() != key);
        }
        list.push(route);
        Ok(())
    }

    /// Records an object; true (with a warning) when it was seen before.
    fn note(&mut self, origin: Origin<'_>, kind: &str, key: &ObjectKey) -> bool {
        let duplicate = !self.seen.insert((kind.to_owned(), key.clone()));
        if duplicate {
            self.warn(
                origin,
                format!("{kind} {key} defined again; the last definition wins"),
            );
        }
        duplicate
    }

    fn warn(&mut self, origin: Origin<'_>, message: String) {
        self.loaded.warnings.push(LoadWarning {
            source_name: origin.source_name.to_owned(),
            document: origin.document,
            message,
        });
    }
}

fn default_namespace(metadata: &mut ObjectMeta, namespaced: bool) {
    if namespaced && metadata.namespace.is_empty() {
        metadata.namespace = DEFAULT_NAMESPACE.to_owned();
    } else if !namespaced {
        metadata.namespace.clear();
    }
}

/// Deserializes one object, naming the failing field; requires `metadata.name`.
/// Reads a kept policy object as `T`, with errors naming its file, document, kind, object and
/// field like every other object's.
pub fn parse_foreign<T: DeserializeOwned>(object: &ForeignObject) -> Result<T, LoadError> {
    let origin = Origin {
        source_name: &object.source_name,
        document: object.document,
    };
    parse(origin, &object.kind, object.body.clone())
}

fn parse<T: DeserializeOwned>(
    origin: Origin<'_>,
    kind: &str,
    value: Value,
) -> Result<T, LoadError> {
    let metadata = value.get("metadata");
    let name = metadata
        .and_then(|m| m.get("name"))
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_owned();
    let namespace = metadata
        .and_then(|m| m.get("namespace"))
        .and_then(Value::as_str)
        .unwrap_or(DEFAULT_NAMESPACE)
        .to_owned();
    let invalid = |field: String, message: String| {
        LoadError::InvalidField(Box::new(InvalidField {
            source_name: origin.source_name.to_owned(),
            document: origin.document,
            kind: kind.to_owned(),
            object: format!("{namespace}/{name}"),
            field,
            message,
        }))
    };
    if name.is_empty() {
        return Err(invalid("metadata.name".to_owned(), "required".to_owned()));
    }
    serde_path_to_error::deserialize(value).map_err(|error| {
        let field = error.path().to_string();
        invalid(field, error.into_inner().to_string())
    })
}

/// Whether every mapping key in `value` is a string (as in JSON; the parser bounds the depth).
fn string_keys_only(value: &Value) -> bool {
    match value {
        Value::Mapping(map) => map
            .iter()
            // Exactly a string: a tagged one (`!tag key`) is not JSON either.
            .all(|(key, item)| matches!(key, Value::String(_)) && string_keys_only(item)),
        Value::Sequence(items) => items.iter().all(string_keys_only),
        Value::Tagged(tagged) => string_keys_only(&tagged.value),
        _ => true,
    }
}
