//! A SecurityPolicy compiled against the configuration it came with: Secrets read, rules
//! compiled. Whatever cannot be enforced — a missing Secret, an unsupported field
//! (geolocation, backendRefs of remote JWKS or of an OpenID provider) — makes the whole policy invalid, and an invalid policy
//! refuses every request it covers (500), as Envoy Gateway answers routes whose policy it
//! could not translate: never silently unprotected.

use std::sync::Arc;

use http::header::HeaderName;
use routing::filters::{CorsPolicy, EnvoyCorsParams};
use routing::model::{Config, ObjectKey, Secret, SecretObjectReference};
use routing::resolve::parse_duration;

use super::api_key::{ApiKeyAuth, KeySource};
use super::authorization::AuthorizationRules;
use super::basic_auth::BasicAuth;
use super::csrf::{CsrfPolicy, OriginPattern};
use super::ext_auth::{AuthorizerClient, ExtAuth};
use super::htpasswd::Htpasswd;
use super::jwt::remote::DEFAULT_CACHE_DURATION;
use super::jwt::{
    ClaimRequirements, Jwks, JwksRegistry, JwksSource, JwtAuthentication, JwtProvider, TokenSource,
};
use super::model::{
    ApiKeyAuthSpec, BasicAuthSpec, CorsSpec, CsrfSpec, JwtProviderSpec, JwtSpec, LocalJwksSpec,
    RemoteJwksSpec, SecurityPolicy,
};
use super::oidc::{Oidc, OidcRuntime};

/// One SecurityPolicy, ready for requests.
#[derive(Debug, Clone)]
pub struct CompiledSecurityPolicy {
    /// The policy's namespace and name (named in every denial).
    pub policy: ObjectKey,
    /// Its checks, or why it cannot be enforced.
    pub checks: Result<SecurityChecks, String>,
}

/// What the runtime lends the policies it compiles: the remote JWKS it refreshes and the
/// client it calls external authorizers with. A policy needing one that is absent fails
/// closed.
#[derive(Debug, Clone, Default)]
pub struct SecurityRuntime {
    /// Handles of `remoteJWKS` URLs, refreshed by the runtime.
    pub remote_jwks: Option<Arc<JwksRegistry>>,
    /// Performs `extAuth` exchanges.
    pub authorizer: Option<Arc<dyn AuthorizerClient>>,
    /// Talks to OpenID providers and keeps the process's session secret (`oidc`).
    pub oidc: Option<OidcRuntime>,
}

/// The enforceable sections of a policy, in Envoy Gateway's filter order: CORS, CSRF,
/// external authorization, API key, basic auth, OIDC, JWT, authorization.
#[derive(Debug, Clone, Default)]
pub struct SecurityChecks {
    /// `cors`.
    pub cors: Option<CorsPolicy>,
    /// `csrf`.
    pub csrf: Option<CsrfPolicy>,
    /// `extAuth`.
    pub ext_auth: Option<ExtAuth>,
    /// `apiKeyAuth`.
    pub api_key: Option<ApiKeyAuth>,
    /// `basicAuth`.
    pub basic_auth: Option<BasicAuth>,
    /// `oidc`.
    pub oidc: Option<Arc<Oidc>>,
    /// `jwt`.
    pub jwt: Option<JwtAuthentication>,
    /// `authorization`.
    pub authorization: Option<AuthorizationRules>,
}

impl CompiledSecurityPolicy {
    /// Compiles `policy`, reading its Secrets, ConfigMaps and Services from `config`; remote
    /// JWKS handles and the authorizer client come from `runtime`.
    pub fn compile(policy: &SecurityPolicy, config: &Config, runtime: &SecurityRuntime) -> Self {
        CompiledSecurityPolicy {
            policy: policy.metadata.key(),
            checks: compile_checks(policy, config, runtime),
        }
    }

    /// A policy that could not even be read: it refuses what it targets.
    pub fn invalid(policy: ObjectKey, reason: String) -> Self {
        CompiledSecurityPolicy {
            policy,
            checks: Err(reason),
        }
    }
}

fn compile_checks(
    policy: &SecurityPolicy,
    config: &Config,
    runtime: &SecurityRuntime,
) -> Result<SecurityChecks, String> {
    let spec = &policy.spec;
    let remote = runtime.remote_jwks.as_deref();
    let namespace = policy.metadata.namespace.as_str();
    let jwt = spec
        .jwt
        .as_ref()
        .map(|jwt| compile_jwt(jwt, namespace, config, remote))
        .transpose()?;
    let providers: Vec<String> = jwt
        .iter()
        .flat_map(|j| j.providers.iter().map(|p| p.name.to_string()))
        .collect();
    Ok(SecurityChecks {
        jwt,
        csrf: spec.csrf.as_ref().map(compile_csrf).transpose()?,
        ext_auth: spec
            .ext_auth
            .as_ref()
            .map(|e| ExtAuth::compile(e, namespace, config, runtime.authorizer.as_ref()))
            .transpose()?,
        cors: spec.cors.as_ref().map(compile_cors).transpose()?,
        api_key: spec
            .api_key_auth
            .as_ref()
            .map(|a| compile_api_key(a, namespace, config))
            .transpose()?,
        basic_auth: spec
            .basic_auth
            .as_ref()
            .map(|b| compile_basic(b, namespace, config))
            .transpose()?,
        oidc: spec
            .oidc
            .as_ref()
            .map(|oidc| {
                let read = |reference: &SecretObjectReference, key: &str| {
                    let found = secret(reference, namespace, config, "oidc")?;
                    found
                        .value(key)
                        .ok_or_else(|| format!("oidc: Secret {} has no {key} key", reference.name))
                };
                Oidc::compile(
                    oidc,
                    &policy.metadata.key(),
                    config,
                    runtime.oidc.as_ref(),
                    &read,
                )
                .map(Arc::new)
            })
            .transpose()?,
        authorization: spec
            .authorization
            .as_ref()
            .map(|a| {
                AuthorizationRules::compile(a, &providers)
                    .map_err(|e| format!("authorization: {e}"))
            })
            .transpose()?,
    })
}

fn compile_cors(spec: &CorsSpec) -> Result<CorsPolicy, String> {
    let max_age = spec
        .max_age
        .as_deref()
        .map(|text| {
            parse_duration(text)
                .map(|d| u32::try_from(d.as_secs()).unwrap_or(u32::MAX))
                .ok_or_else(|| format!("cors.maxAge {text:?} is not a duration"))
        })
        .transpose()?;
    Ok(CorsPolicy::envoy_gateway(&EnvoyCorsParams {
        allow_origins: spec.allow_origins.clone(),
        allow_methods: spec.allow_methods.clone(),
        allow_headers: spec.allow_headers.clone(),
        expose_headers: spec.expose_headers.clone(),
        max_age,
        allow_credentials: spec.allow_credentials,
    }))
}

fn compile_csrf(spec: &CsrfSpec) -> Result<CsrfPolicy, String> {
    let origins = spec
        .additional_origins
        .iter()
        .map(|o| OriginPattern::parse(o).map_err(|e| format!("csrf.additionalOrigins: {e}")))
        .collect::<Result<Vec<_>, _>>()?;
    let shadow = match spec.shadow_fraction {
        None => 0,
        Some(percent) if (0.0..=100.0).contains(&percent) => percent.round() as u8,
        Some(percent) => {
            return Err(format!("csrf.shadowFraction {percent} is not a percentage"));
        }
    };
    Ok(CsrfPolicy::new(origins, shadow))
}

fn header_name(field: &str, name: &Option<String>) -> Result<Option<HeaderName>, String> {
    name.as_deref()
        .map(|n| HeaderName::try_from(n).map_err(|_| format!("{field} {n:?} is not a header name")))
        .transpose()
}

/// The Secret a reference names: in the policy's namespace, or in another one whose
/// ReferenceGrant allows SecurityPolicies of the policy's namespace to refer to it.
fn secret<'a>(
    reference: &SecretObjectReference,
    namespace: &str,
    config: &'a Config,
    field: &str,
) -> Result<&'a Secret, String> {
    let target = reference.namespace.as_deref().unwrap_or(namespace);
    if !routing::resolve::reference_permitted(
        config,
        (
            super::attach::ENVOY_GATEWAY_GROUP,
            "SecurityPolicy",
            namespace,
        ),
        ("", "Secret", target, &reference.name),
    ) {
        return Err(format!(
            "{field}: Secret {target}/{} in another namespace needs a ReferenceGrant",
            reference.name
        ));
    }
    config
        .secrets
        .iter()
        .find(|s| s.metadata.namespace == target && s.metadata.name == reference.name)
        .ok_or_else(|| format!("{field}: Secret {target}/{} not found", reference.name))
}

fn compile_basic(
    spec: &BasicAuthSpec,
    namespace: &str,
    config: &Config,
) -> Result<BasicAuth, String> {
    let secret = secret(&spec.users, namespace, config, "basicAuth.users")?;
    let text = secret.value(".htpasswd").ok_or_else(|| {
        format!(
            "basicAuth.users: Secret {} has no .htpasswd key",
            spec.users.name
        )
    })?;
    let text =
        String::from_utf8(text).map_err(|_| "basicAuth: .htpasswd is not UTF-8".to_owned())?;
    let users = Htpasswd::parse(&text).map_err(|e| format!("basicAuth: .htpasswd {e}"))?;
    Ok(BasicAuth::new(
        users,
        header_name(
            "basicAuth.forwardUsernameHeader",
            &spec.forward_username_header,
        )?,
    ))
}

fn compile_api_key(
    spec: &ApiKeyAuthSpec,
    namespace: &str,
    config: &Config,
) -> Result<ApiKeyAuth, String> {
    let mut clients = Vec::new();
    for reference in &spec.credential_refs {
        let secret = secret(reference, namespace, config, "apiKeyAuth.credentialRefs")?;
        let ids = secret.data.keys().chain(secret.string_data.keys());
        for client in ids {
            if let Some(key) = secret.value(client).filter(|k| !k.is_empty()) {
                clients.push((client.clone(), key));
            }
        }
    }
    let mut sources = Vec::new();
    for (index, from) in spec.extract_from.iter().enumerate() {
        let kinds = [
            !from.headers.is_empty(),
            !from.params.is_empty(),
            !from.cookies.is_empty(),
        ];
        if kinds.iter().filter(|set| **set).count() != 1 {
            return Err(format!(
                "apiKeyAuth.extractFrom[{index}] must set exactly one of headers, params, cookies"
            ));
        }
        for header in &from.headers {
            let name = HeaderName::try_from(header.as_str())
                .map_err(|_| format!("apiKeyAuth: {header:?} is not a header name"))?;
            sources.push(KeySource::Header(name));
        }
        sources.extend(from.params.iter().cloned().map(KeySource::Param));
        sources.extend(from.cookies.iter().cloned().map(KeySource::Cookie));
    }
    Ok(ApiKeyAuth::new(
        clients,
        sources,
        header_name(
            "apiKeyAuth.forwardClientIDHeader",
            &spec.forward_client_id_header,
        )?,
        spec.sanitize,
    ))
}

fn compile_jwt(
    spec: &JwtSpec,
    namespace: &str,
    config: &Config,
    remote: Option<&JwksRegistry>,
) -> Result<JwtAuthentication, String> {
    if spec.providers.is_empty() || spec.providers.len() > 16 {
        return Err("jwt: 1 to 16 providers".into());
    }
    let optional = spec.optional.unwrap_or(false);
    let fail_open = spec.fail_open.unwrap_or(false);
    if optional && fail_open {
        return Err("jwt: optional and failOpen exclude each other".into());
    }
    let providers = spec
        .providers
        .iter()
        .enumerate()
        .map(|(index, provider)| compile_provider(index, provider, namespace, config, remote))
        .collect::<Result<_, _>>()?;
    Ok(JwtAuthentication::new(providers, optional, fail_open))
}

fn compile_provider(
    index: usize,
    spec: &JwtProviderSpec,
    namespace: &str,
    config: &Config,
    remote: Option<&JwksRegistry>,
) -> Result<JwtProvider, String> {
    let at = format!("jwt.providers[{index}] ({})", spec.name);
    let jwks = match (&spec.remote_jwks, &spec.local_jwks) {
        (Some(remote_spec), None) => remote_source(&at, remote_spec, remote)?,
        (None, Some(local)) => {
            JwksSource::Local(Arc::new(local_jwks(&at, local, namespace, config)?))
        }
        _ => {
            return Err(format!(
                "{at}: needs exactly one of remoteJWKS and localJWKS"
            ));
        }
    };
    let sources = match &spec.extract_from {
        None => TokenSource::defaults(),
        Some(from) => {
            let mut sources = Vec::new();
            for header in &from.headers {
                let name = HeaderName::try_from(header.name.as_str())
                    .map_err(|_| format!("{at}: {:?} is not a header name", header.name))?;
                sources.push(TokenSource::Header {
                    name,
                    prefix: header.value_prefix.clone().unwrap_or_default(),
                });
            }
            sources.extend(from.cookies.iter().cloned().map(TokenSource::Cookie));
            sources.extend(from.params.iter().cloned().map(TokenSource::Param));
            sources
        }
    };
    let claim_to_headers = spec
        .claim_to_headers
        .iter()
        .map(|c| {
            HeaderName::try_from(c.header.as_str())
                .map(|name| (name, c.claim.clone()))
                .map_err(|_| format!("{at}: claimToHeaders {:?} is not a header name", c.header))
        })
        .collect::<Result<_, _>>()?;
    Ok(JwtProvider {
        name: spec.name.as_str().into(),
        jwks,
        requirements: ClaimRequirements {
            issuer: spec.issuer.clone(),
            audiences: spec.audiences.clone(),
        },
        sources,
        claim_to_headers,
        recompute_route: spec.recompute_route.unwrap_or(false),
    })
}

fn local_jwks(
    at: &str,
    local: &LocalJwksSpec,
    namespace: &str,
    config: &Config,
) -> Result<Jwks, String> {
    let document = match (local.jwks_type.as_str(), &local.inline, &local.value_ref) {
        ("Inline", Some(inline), _) => inline.clone(),
        ("ValueRef", _, Some(reference)) if reference.kind == "ConfigMap" => {
            let map = config
                .config_maps
                .iter()
                .find(|m| m.metadata.namespace == namespace && m.metadata.name == reference.name)
                .ok_or_else(|| {
                    format!("{at}: ConfigMap {namespace}/{} not found", reference.name)
                })?;
            let only = (map.data.len() == 1)
                .then(|| map.data.values().next())
                .flatten();
            map.data
                .get("jwks")
                .or(only)
                .cloned()
                .ok_or_else(|| format!("{at}: ConfigMap {} has no jwks key", reference.name))?
        }
        _ => {
            return Err(format!(
                "{at}: localJWKS needs inline text or a ConfigMap valueRef"
            ));
        }
    };
    Jwks::parse(document.as_bytes()).map_err(|e| format!("{at}: {e}"))
}

fn remote_source(
    at: &str,
    spec: &RemoteJwksSpec,
    registry: Option<&JwksRegistry>,
) -> Result<JwksSource, String> {
    if spec.backend_refs.is_some() || spec.backend_settings.is_some() {
        return Err(format!(
            "{at}: remoteJWKS backendRefs/backendSettings are not supported yet"
        ));
    }
    if !(spec.uri.starts_with("http://") || spec.uri.starts_with("https://")) {
        return Err(format!(
            "{at}: remoteJWKS uri {:?} is not http(s)",
            spec.uri
        ));
    }
    let refresh = match &spec.cache_duration {
        None => DEFAULT_CACHE_DURATION,
        Some(text) => parse_duration(text)
            .filter(|d| !d.is_zero())
            .ok_or_else(|| format!("{at}: cacheDuration {text:?} is not a duration"))?,
    };
    let registry =
        registry.ok_or_else(|| format!("{at}: remoteJWKS needs a runtime that fetches it"))?;
    registry
        .handle(&spec.uri, refresh)
        .map(JwksSource::Remote)
        .ok_or_else(|| format!("{at}: remoteJWKS registry unavailable"))
}
