//! Istio's `security.istio.io/v1` RequestAuthentication (policy.md §4): the JWTs a workload
//! accepts. As Istio's proxies judge them: a request without a token passes (with no request
//! principal — an AuthorizationPolicy asking for `requestPrincipals` then refuses it); a
//! token that no rule verifies is refused 401 with Envoy's text and a `Bearer` challenge; a
//! verified token makes `iss/sub` the request principal and its claims available to
//! `request.auth.*` conditions. By default the token is not forwarded
//! (`forwardOriginalToken: false` removes the header it came in); `outputClaimToHeaders` and
//! `outputPayloadToHeader` add headers. Several RequestAuthentications on one workload add
//! their rules together. Verification is the SecurityPolicy's JWT engine
//! ([`JwtAuthentication`]) with a missing token allowed.

use std::sync::Arc;

use base64::Engine as _;
use http::header::{HeaderName, HeaderValue};
use serde::{Deserialize, Serialize};

use routing::model::ObjectMeta;
use routing::resolve::parse_duration;

use super::model::PolicyTargetReference;
use crate::security::jwt::remote::DEFAULT_CACHE_DURATION;
use crate::security::jwt::{
    ClaimRequirements, Jwks, JwksRegistry, JwksSource, JwtAuthentication, JwtFailure, JwtProvider,
    TokenSource, VerifiedJwt,
};

/// A RequestAuthentication.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RequestAuthentication {
    /// Metadata.
    pub metadata: ObjectMeta,
    /// The spec.
    #[serde(default)]
    pub spec: RequestAuthenticationSpec,
}

/// `spec`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RequestAuthenticationSpec {
    /// Workloads by labels (ztunnel and sidecars; ignored by waypoints).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub selector: Option<serde_yaml_ng::Value>,
    /// A single target (deprecated form of `targetRefs`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_ref: Option<PolicyTargetReference>,
    /// Gateways (waypoints), GatewayClasses or Services.
    #[serde(default)]
    pub target_refs: Vec<PolicyTargetReference>,
    /// The accepted issuers.
    #[serde(default)]
    pub jwt_rules: Vec<JwtRule>,
}

/// `jwtRules[]`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct JwtRule {
    /// The `iss` the token must carry.
    pub issuer: String,
    /// Accepted `aud` values (empty: any).
    #[serde(default)]
    pub audiences: Vec<String>,
    /// Where the keys are fetched from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jwks_uri: Option<String>,
    /// The keys, inline (a JWKS document).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jwks: Option<String>,
    /// Headers the token may come in (default `Authorization: Bearer`).
    #[serde(default)]
    pub from_headers: Vec<JwtHeader>,
    /// Query parameters the token may come in (default `access_token`).
    #[serde(default)]
    pub from_params: Vec<String>,
    /// Cookies the token may come in.
    #[serde(default)]
    pub from_cookies: Vec<String>,
    /// A header that gets the verified payload (base64url JSON).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output_payload_to_header: Option<String>,
    /// Keep the token in the forwarded request (default false: its header is removed).
    #[serde(default)]
    pub forward_original_token: bool,
    /// Claims copied into headers.
    #[serde(default)]
    pub output_claim_to_headers: Vec<ClaimToHeader>,
    /// How long a `jwksUri` fetch may take (read; the runtime's fetch timeout applies).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<String>,
}

/// `fromHeaders[]`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct JwtHeader {
    /// The header.
    pub name: String,
    /// The text before the token (`Bearer `).
    #[serde(default)]
    pub prefix: String,
}

/// `outputClaimToHeaders[]`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ClaimToHeader {
    /// The header.
    pub header: String,
    /// The claim (dot path for nested claims).
    pub claim: String,
}

/// What a provider does after verification, beside the claim headers.
#[derive(Debug, Clone)]
struct ProviderOutput {
    provider: Arc<str>,
    /// Headers the token may have come in, removed unless it is forwarded.
    strip: Vec<HeaderName>,
    payload_header: Option<HeaderName>,
}

/// The RequestAuthentications that apply to one destination, compiled together.
#[derive(Debug, Clone)]
pub struct IstioJwt {
    authentication: JwtAuthentication,
    outputs: Vec<ProviderOutput>,
}

impl IstioJwt {
    /// Compiles the rules of `policies` (in order); `registry` gives `jwksUri` handles
    /// (without one, a rule with `jwksUri` is an error). An error names the policy and rule.
    pub fn compile(
        policies: &[&RequestAuthentication],
        registry: Option<&JwksRegistry>,
    ) -> Result<Self, String> {
        let mut providers = Vec::new();
        let mut outputs = Vec::new();
        for policy in policies {
            let key = format!("{}/{}", policy.metadata.namespace, policy.metadata.name);
            for (index, rule) in policy.spec.jwt_rules.iter().enumerate() {
                let at = format!("RequestAuthentication {key} jwtRules[{index}]");
                let (provider, output) = compile_rule(&at, rule, registry)?;
                providers.push(provider);
                outputs.push(output);
            }
        }
        Ok(IstioJwt {
            authentication: JwtAuthentication::new(providers, true, false),
            outputs,
        })
    }

    /// Whether no rule is configured (nothing to check).
    pub fn is_empty(&self) -> bool {
        self.outputs.is_empty()
    }

    /// Checks a request at `now` (Unix seconds), editing its headers as forwarding would:
    /// `Ok(Some)` a verified token, `Ok(None)` none presented, `Err` a token none verifies.
    pub fn authenticate(
        &self,
        uri: &http::Uri,
        headers: &mut http::HeaderMap,
        now: u64,
    ) -> Result<Option<VerifiedJwt>, JwtFailure> {
        let Some(verified) = self.authentication.check(uri, headers, now)? else {
            return Ok(None);
        };
        if let Some(output) = self
            .outputs
            .iter()
            .find(|o| o.provider == verified.provider)
        {
            for name in &output.strip {
                headers.remove(name);
            }
            if let Some(name) = &output.payload_header {
                let payload = serde_json::Value::Object((*verified.claims).clone()).to_string();
                let encoded = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(payload);
                if let Ok(value) = HeaderValue::try_from(encoded) {
                    headers.insert(name.clone(), value);
                }
            }
        }
        Ok(Some(verified))
    }
}

/// `iss/sub` of a verified token: Istio's request principal.
pub fn request_principal(jwt: &VerifiedJwt) -> Option<String> {
    let text = |name: &str| jwt.claims.get(name).and_then(|v| v.as_str());
    Some(format!("{}/{}", text("iss")?, text("sub")?))
}

fn compile_rule(
    at: &str,
    rule: &JwtRule,
    registry: Option<&JwksRegistry>,
) -> Result<(JwtProvider, ProviderOutput), String> {
    if rule.issuer.is_empty() {
        return Err(format!("{at}: issuer is required"));
    }
    let jwks = match (&rule.jwks, &rule.jwks_uri) {
        (Some(document), _) => JwksSource::Local(Arc::new(
            Jwks::parse(document.as_bytes()).map_err(|e| format!("{at}: jwks: {e}"))?,
        )),
        (None, Some(uri)) if uri.starts_with("http://") || uri.starts_with("https://") => {
            let registry =
                registry.ok_or_else(|| format!("{at}: jwksUri needs a runtime that fetches it"))?;
            JwksSource::Remote(
                registry
                    .handle(uri, DEFAULT_CACHE_DURATION)
                    .ok_or_else(|| format!("{at}: jwksUri registry unavailable"))?,
            )
        }
        (None, Some(uri)) => return Err(format!("{at}: jwksUri {uri:?} is not http(s)")),
        (None, None) => return Err(format!("{at}: needs jwks or jwksUri")),
    };
    if let Some(timeout) = &rule.timeout
        && parse_duration(timeout).is_none()
    {
        return Err(format!("{at}: timeout {timeout:?} is not a duration"));
    }
    let header = |name: &str| {
        HeaderName::try_from(name).map_err(|_| format!("{at}: {name:?} is not a header name"))
    };
    let mut sources = Vec::new();
    for from in &rule.from_headers {
        sources.push(TokenSource::Header {
            name: header(&from.name)?,
            prefix: from.prefix.clone(),
        });
    }
    sources.extend(rule.from_params.iter().cloned().map(TokenSource::Param));
    sources.extend(rule.from_cookies.iter().cloned().map(TokenSource::Cookie));
    if rule.from_headers.is_empty() && rule.from_params.is_empty() && rule.from_cookies.is_empty() {
        sources = TokenSource::defaults();
    }
    let strip = if rule.forward_original_token {
        Vec::new()
    } else {
        sources
            .iter()
            .filter_map(|source| match source {
                TokenSource::Header { name, .. } => Some(name.clone()),
                _ => None,
            })
            .collect()
    };
    let claim_to_headers = rule
        .output_claim_to_headers
        .iter()
        .map(|c| Ok((header(&c.header)?, c.claim.clone())))
        .collect::<Result<_, String>>()?;
    let name: Arc<str> = Arc::from(format!("{at} ({})", rule.issuer));
    let provider = JwtProvider {
        name: Arc::clone(&name),
        jwks,
        requirements: ClaimRequirements {
            issuer: Some(rule.issuer.clone()),
            audiences: rule.audiences.clone(),
        },
        sources,
        claim_to_headers,
        recompute_route: false,
    };
    let output = ProviderOutput {
        provider: name,
        strip,
        payload_header: rule
            .output_payload_to_header
            .as_deref()
            .map(header)
            .transpose()?,
    };
    Ok((provider, output))
}
