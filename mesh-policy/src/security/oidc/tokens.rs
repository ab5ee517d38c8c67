//! The provider's documents: the discovery document (`/.well-known/openid-configuration`)
//! and the token endpoint's answer, with the ID token's claims checked against the login.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::Deserialize;

use super::OidcFailure;
use super::params::Endpoints;

/// The fields of a discovery document OIDC uses.
#[derive(Debug, Clone, Deserialize)]
pub struct Discovery {
    /// Must be the configured issuer.
    pub issuer: String,
    /// Where browsers log in.
    pub authorization_endpoint: String,
    /// Where codes are exchanged.
    pub token_endpoint: String,
    /// RP-initiated logout, when offered.
    #[serde(default)]
    pub end_session_endpoint: Option<String>,
}

impl Discovery {
    /// Reads `body` as the discovery document of `issuer` (trailing slashes aside); endpoints
    /// given in the policy win over discovered ones.
    pub fn parse(
        body: &[u8],
        issuer: &str,
        configured: &(Option<String>, Option<String>, Option<String>),
    ) -> Result<Endpoints, String> {
        let document: Discovery =
            serde_json::from_slice(body).map_err(|e| format!("discovery document: {e}"))?;
        if document.issuer.trim_end_matches('/') != issuer.trim_end_matches('/') {
            return Err(format!(
                "discovery document names issuer {:?}, not {issuer:?}",
                document.issuer
            ));
        }
        let http_url = |url: &str| url.starts_with("https://") || url.starts_with("http://");
        if !http_url(&document.authorization_endpoint) || !http_url(&document.token_endpoint) {
            return Err("discovery document: endpoints are not http(s) URLs".to_owned());
        }
        Ok(Endpoints {
            authorization: configured
                .0
                .clone()
                .unwrap_or(document.authorization_endpoint),
            token: configured.1.clone().unwrap_or(document.token_endpoint),
            end_session: configured
                .2
                .clone()
                .or(document.end_session_endpoint.filter(|u| http_url(u))),
        })
    }
}

/// A token endpoint's answer (RFC 6749 §5.1).
#[derive(Debug, Clone, Deserialize)]
pub struct TokenAnswer {
    /// The access token.
    pub access_token: String,
    /// The ID token (OpenID Connect).
    #[serde(default)]
    pub id_token: Option<String>,
    /// The refresh token.
    #[serde(default)]
    pub refresh_token: Option<String>,
    /// The access token's lifetime in seconds.
    #[serde(default)]
    pub expires_in: Option<u64>,
}

impl TokenAnswer {
    /// Reads `body`; an empty access token is no answer.
    pub fn parse(body: &[u8]) -> Result<TokenAnswer, OidcFailure> {
        let answer: TokenAnswer =
            serde_json::from_slice(body).map_err(|_| OidcFailure::BadTokenAnswer)?;
        if answer.access_token.is_empty() {
            return Err(OidcFailure::BadTokenAnswer);
        }
        Ok(answer)
    }
}

/// Checks the ID token's `nonce`, `aud` and `iss` against the login. The token came straight
/// from the token endpoint (OpenID Connect Core §3.1.3.7 lets TLS stand in for its
/// signature), so its claims are read, not verified: this binds it to this login and client.
pub(super) fn check_id_token(
    id_token: &str,
    nonce: &str,
    client_id: &str,
    issuer: &str,
) -> Result<(), OidcFailure> {
    let payload = id_token
        .split('.')
        .nth(1)
        .ok_or(OidcFailure::IdTokenMismatch)?;
    let bytes = URL_SAFE_NO_PAD
        .decode(payload.trim_end_matches('='))
        .map_err(|_| OidcFailure::IdTokenMismatch)?;
    let claims: serde_json::Map<String, serde_json::Value> =
        serde_json::from_slice(&bytes).map_err(|_| OidcFailure::IdTokenMismatch)?;
    let nonce_matches = claims.get("nonce").and_then(|n| n.as_str()) == Some(nonce);
    let audience_matches = match claims.get("aud") {
        Some(serde_json::Value::String(aud)) => aud == client_id,
        Some(serde_json::Value::Array(auds)) => auds.iter().any(|a| a.as_str() == Some(client_id)),
        _ => false,
    };
    let issuer_matches = claims
        .get("iss")
        .and_then(|i| i.as_str())
        .is_some_and(|i| i.trim_end_matches('/') == issuer.trim_end_matches('/'));
    if nonce_matches && audience_matches && issuer_matches {
        Ok(())
    } else {
        Err(OidcFailure::IdTokenMismatch)
    }
}
