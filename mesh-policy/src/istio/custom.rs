//! CUSTOM AuthorizationPolicies (policy.md §4.1): a matching CUSTOM policy hands the request
//! to the external authorizer its `provider.name` names among MeshConfig's
//! `extensionProviders` — read, as istiod reads them, from the `mesh` key of the `istio`
//! ConfigMap in the root namespace. `envoyExtAuthzHttp` and `envoyExtAuthzGrpc` providers
//! become the same [`ExtAuth`] the SecurityPolicy uses (the `service` host resolved through
//! the configuration's Services and EndpointSlices); a CUSTOM policy whose provider is
//! missing or unusable refuses what it matches (fail closed).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;

use routing::model::Config;
use routing::resolve::service_host_endpoints;

use super::model::{AuthorizationPolicy, PolicyAction};
use super::waypoint::ROOT_NAMESPACE;
use crate::security::ext_auth::params::{header_names, path_prefix, status_on_error, timeout};
use crate::security::ext_auth::{AuthorizerClient, AuthorizerProtocol, AuthorizerTarget, ExtAuth};

/// Istio's default provider timeout.
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(600);

/// The external authorizer of each CUSTOM policy (`namespace/name`), or why it has none.
#[derive(Debug, Clone, Default)]
pub struct CustomAuthorizers(pub HashMap<String, Result<Arc<ExtAuth>, String>>);

/// The part of MeshConfig read here (its other fields are ignored).
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct MeshConfig {
    #[serde(default)]
    extension_providers: Vec<ExtensionProvider>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct ExtensionProvider {
    name: String,
    #[serde(default)]
    envoy_ext_authz_http: Option<ProviderSpec>,
    #[serde(default)]
    envoy_ext_authz_grpc: Option<ProviderSpec>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct ProviderSpec {
    service: String,
    port: u16,
    #[serde(default)]
    path_prefix: Option<String>,
    #[serde(default)]
    timeout: Option<String>,
    #[serde(default)]
    fail_open: bool,
    #[serde(default)]
    status_on_error: Option<String>,
    #[serde(default)]
    include_request_headers_in_check: Vec<String>,
    #[serde(default)]
    headers_to_upstream_on_allow: Vec<String>,
}

impl CustomAuthorizers {
    /// The authorizers of the CUSTOM policies among `policies`, from `config`'s MeshConfig;
    /// exchanges are made by `client` (without one, every CUSTOM policy fails closed).
    pub fn build<'p>(
        config: &Config,
        policies: impl IntoIterator<Item = &'p Arc<AuthorizationPolicy>>,
        client: Option<&Arc<dyn AuthorizerClient>>,
    ) -> Self {
        let mesh = mesh_config(config);
        let mut authorizers = HashMap::new();
        for policy in policies {
            if policy.spec.action != PolicyAction::Custom {
                continue;
            }
            let compiled = mesh.as_ref().map_err(Clone::clone).and_then(|mesh| {
                let name = policy
                    .spec
                    .provider
                    .as_ref()
                    .and_then(|p| p.get("name"))
                    .and_then(|n| n.as_str())
                    .ok_or("CUSTOM needs provider.name")?;
                let provider = mesh
                    .extension_providers
                    .iter()
                    .find(|p| p.name == name)
                    .ok_or_else(|| format!("extension provider {name:?} is not in MeshConfig"))?;
                let client = client.ok_or("no runtime calls external authorizers here")?;
                compile(provider, config, client).map(Arc::new)
            });
            authorizers.insert(policy.key(), compiled);
        }
        CustomAuthorizers(authorizers)
    }
}

/// MeshConfig from `istio-system/istio`'s `mesh` key (none: no providers).
fn mesh_config(config: &Config) -> Result<MeshConfig, String> {
    let Some(map) = config
        .config_maps
        .iter()
        .find(|m| m.metadata.namespace == ROOT_NAMESPACE && m.metadata.name == "istio")
    else {
        return Ok(MeshConfig::default());
    };
    match map.data.get("mesh") {
        None => Ok(MeshConfig::default()),
        Some(text) => serde_yaml_ng::from_str(text)
            .map_err(|e| format!("ConfigMap {ROOT_NAMESPACE}/istio mesh: {e}")),
    }
}

fn compile(
    provider: &ExtensionProvider,
    config: &Config,
    client: &Arc<dyn AuthorizerClient>,
) -> Result<ExtAuth, String> {
    let at = format!("extension provider {:?}", provider.name);
    let (protocol, spec) = match (
        &provider.envoy_ext_authz_http,
        &provider.envoy_ext_authz_grpc,
    ) {
        (Some(http), None) => (AuthorizerProtocol::Http, http),
        (None, Some(grpc)) => (AuthorizerProtocol::Grpc, grpc),
        _ => {
            return Err(format!(
                "{at}: needs envoyExtAuthzHttp or envoyExtAuthzGrpc"
            ));
        }
    };
    let status_code = match &spec.status_on_error {
        None => None,
        Some(text) => Some(
            text.parse::<u16>()
                .map_err(|_| format!("{at}: statusOnError {text:?} is not a status"))?,
        ),
    };
    Ok(ExtAuth {
        target: Arc::new(AuthorizerTarget {
            authority: format!("{}:{}", spec.service, spec.port),
            endpoints: service_host_endpoints(config, &spec.service, spec.port),
        }),
        protocol,
        path_prefix: path_prefix(spec.path_prefix.as_deref()),
        headers_to_backend: header_names(
            &format!("{at}: headersToUpstreamOnAllow"),
            &spec.headers_to_upstream_on_allow,
        )?,
        headers_to_ext_auth: header_names(
            &format!("{at}: includeRequestHeadersInCheck"),
            &spec.include_request_headers_in_check,
        )?,
        max_body_bytes: None,
        recompute_route: false,
        fail_open: spec.fail_open,
        status_on_error: status_on_error(&format!("{at}: statusOnError"), status_code)?,
        timeout: timeout(
            &format!("{at}: timeout"),
            spec.timeout.as_deref(),
            DEFAULT_TIMEOUT,
        )?,
        context_extensions: Vec::new(),
        client: Arc::clone(client),
    })
}
