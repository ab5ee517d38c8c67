//! The sans-IO decisions of OIDC: what a request gets (forwarded with a session, a redirect
//! to the provider, the callback's code exchange, a refresh, a logout), and what the
//! provider's token answers turn into (cookies, a redirect back, forwarding edits).

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use bytes::Bytes;
use http::header::{self, HeaderName, HeaderValue};
use http::{HeaderMap, Method, StatusCode, Uri};
use serde::{Deserialize, Serialize};

use super::params::{Endpoints, Oidc};
use super::tokens::{TokenAnswer, check_id_token};
use super::{OidcFailure, PROVIDER_TIMEOUT, ProviderRequest, ProviderResponse};
use crate::security::cookies::{cookie, cookie_pairs};
use crate::security::percent::{form_encode, percent_encode, query_param};

const CLEARED: &str = "deleted; Path=/; Expires=Thu, 01 Jan 1970 00:00:00 GMT; Max-Age=0";

/// What OIDC sees of a request.
#[derive(Debug, Clone, Copy)]
pub struct OidcRequest<'a> {
    /// Its URI (path and query).
    pub uri: &'a Uri,
    /// Its headers (`Host`, `Cookie`).
    pub headers: &'a HeaderMap,
    /// `http` or `https`: the scheme the listener serves.
    pub scheme: &'a str,
    /// Unix seconds.
    pub now: u64,
    /// It carries a token the policy's `jwt` section would judge (`passThroughAuthHeader`).
    pub has_bearer: bool,
}

impl OidcRequest<'_> {
    fn host(&self) -> &str {
        self.headers
            .get(header::HOST)
            .and_then(|h| h.to_str().ok())
            .or_else(|| self.uri.authority().map(|a| a.as_str()))
            .unwrap_or_default()
    }

    fn secure(&self) -> bool {
        self.scheme == "https"
    }
}

/// A local answer: a redirect with its cookies.
#[derive(Debug, Clone)]
pub struct OidcAnswer {
    /// 302.
    pub status: StatusCode,
    /// `Location`, `Set-Cookie`s, `Cache-Control`.
    pub headers: HeaderMap,
}

/// How a request with a session is forwarded.
#[derive(Debug, Clone, Default)]
pub struct ForwardEdits {
    /// Headers set on the forwarded request (the access and ID tokens).
    pub set: Vec<(HeaderName, HeaderValue)>,
    /// `Set-Cookie`s added to the response (a refreshed session).
    pub set_cookies: Vec<HeaderValue>,
}

/// The callback's code exchange, and what its answer needs.
#[derive(Debug, Clone)]
pub struct CodeExchange {
    /// The token request.
    pub request: ProviderRequest,
    original_url: String,
    nonce: String,
    binding: String,
    secure: bool,
}

/// A refresh-token exchange, and what its answer needs.
#[derive(Debug, Clone)]
pub struct RefreshExchange {
    /// The token request.
    pub request: ProviderRequest,
    refresh_token: String,
    binding: String,
    secure: bool,
}

/// What OIDC decided about a request.
#[derive(Debug, Clone)]
pub enum OidcStep {
    /// Forward (a valid session, or a bearer token passed through), with these edits.
    Forward(ForwardEdits),
    /// Answer now: a redirect to the provider, or a logout.
    Answer(OidcAnswer),
    /// Refused (401).
    Refuse(OidcFailure),
    /// The callback: exchange the code, then [`Oidc::finish_login`].
    ExchangeCode(Box<CodeExchange>),
    /// The session's access token expired: refresh it, then [`Oidc::finish_refresh`].
    Refresh(Box<RefreshExchange>),
    /// The provider's endpoints are needed and not known yet: discover them first.
    Discover,
}

/// The login's state: where to return, and the nonce it must come back with.
#[derive(Debug, Serialize, Deserialize)]
struct LoginState {
    url: String,
    nonce: String,
}

enum Session {
    Valid { access: String, id: Option<String> },
    Refreshable(String),
    Absent,
}

impl Oidc {
    /// Decides what `request` gets; `endpoints` are the provider's, when known.
    pub fn judge(&self, request: &OidcRequest<'_>, endpoints: Option<&Endpoints>) -> OidcStep {
        let path = request.uri.path();
        if path == self.logout_path {
            return match endpoints {
                Some(endpoints) => OidcStep::Answer(self.logout(request, endpoints)),
                None => OidcStep::Discover,
            };
        }
        if path == self.callback_path {
            return match endpoints {
                Some(endpoints) => self.callback(request, endpoints),
                None => OidcStep::Discover,
            };
        }
        if self.pass_through_auth_header && request.has_bearer {
            return OidcStep::Forward(ForwardEdits::default());
        }
        let binding = self.binding(request);
        match self.session(request, &binding) {
            Session::Valid { access, id } => {
                OidcStep::Forward(self.forward(&access, id.as_deref()))
            }
            Session::Refreshable(refresh_token) => match endpoints {
                Some(endpoints) => OidcStep::Refresh(Box::new(RefreshExchange {
                    request: self.token_request(
                        endpoints,
                        &[
                            ("grant_type", "refresh_token"),
                            ("refresh_token", &refresh_token),
                        ],
                    ),
                    refresh_token,
                    binding,
                    secure: request.secure(),
                })),
                None => OidcStep::Discover,
            },
            Session::Absent => self.login(request, endpoints),
        }
    }

    /// A browser without a session: sent to the provider (or refused, for `denyRedirect`).
    pub fn login(&self, request: &OidcRequest<'_>, endpoints: Option<&Endpoints>) -> OidcStep {
        if self.deny_redirect(request.headers) {
            return OidcStep::Refuse(OidcFailure::DenyRedirect);
        }
        let Some(endpoints) = endpoints else {
            return OidcStep::Discover;
        };
        match self.login_redirect(request, endpoints) {
            Ok(answer) => OidcStep::Answer(answer),
            Err(failure) => OidcStep::Refuse(failure),
        }
    }

    fn login_redirect(
        &self,
        request: &OidcRequest<'_>,
        endpoints: &Endpoints,
    ) -> Result<OidcAnswer, OidcFailure> {
        let nonce = self.keys.random_token(16)?;
        let verifier = self.keys.random_token(32)?;
        let challenge = URL_SAFE_NO_PAD
            .encode(ring::digest::digest(&ring::digest::SHA256, verifier.as_bytes()).as_ref());
        let host = request.host();
        let original = format!(
            "{}://{host}{}",
            request.scheme,
            request.uri.path_and_query().map_or("/", |p| p.as_str())
        );
        let state_json = serde_json::to_string(&LoginState {
            url: original,
            nonce: nonce.clone(),
        })
        .map_err(|_| OidcFailure::Sealing)?;
        let state = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(&state_json),
            self.keys.sign(&[b"state", state_json.as_bytes()])
        );
        let redirect_uri = self.redirect_uri(request);
        let mut params = vec![
            ("response_type", "code"),
            ("client_id", self.client_id.as_str()),
            ("redirect_uri", redirect_uri.as_str()),
            ("scope", self.scope.as_str()),
            ("state", state.as_str()),
            ("nonce", nonce.as_str()),
            ("code_challenge", challenge.as_str()),
            ("code_challenge_method", "S256"),
        ];
        params.extend(self.resources.iter().map(|r| ("resource", r.as_str())));
        let separator = if endpoints.authorization.contains('?') {
            '&'
        } else {
            '?'
        };
        let location = format!(
            "{}{separator}{}",
            endpoints.authorization,
            form_encode(params)
        );
        let sealed_verifier = self
            .keys
            .seal(&self.cookies.verifier, verifier.as_bytes())?;
        let secure = request.secure();
        let cookies = [
            self.set_cookie(&self.cookies.nonce, &nonce, self.csrf_ttl, secure),
            self.set_cookie(
                &self.cookies.verifier,
                &sealed_verifier,
                self.csrf_ttl,
                secure,
            ),
        ];
        redirect(&location, cookies.into_iter().flatten())
    }

    fn callback(&self, request: &OidcRequest<'_>, endpoints: &Endpoints) -> OidcStep {
        let query = request.uri.query().unwrap_or_default();
        if query_param(query, "error").is_some() {
            return OidcStep::Refuse(OidcFailure::ProviderRefused);
        }
        let (Some(code), Some(state)) = (query_param(query, "code"), query_param(query, "state"))
        else {
            return OidcStep::Refuse(OidcFailure::BadState);
        };
        let Some(login) = self.read_state(&state) else {
            return OidcStep::Refuse(OidcFailure::BadState);
        };
        let nonce_cookie = cookie(request.headers, &self.cookies.nonce);
        if nonce_cookie != Some(login.nonce.as_bytes()) {
            return OidcStep::Refuse(OidcFailure::BadState);
        }
        let Some(verifier) = cookie(request.headers, &self.cookies.verifier)
            .and_then(|sealed| self.keys.open(&self.cookies.verifier, sealed).ok())
            .and_then(|v| String::from_utf8(v).ok())
        else {
            return OidcStep::Refuse(OidcFailure::MissingVerifier);
        };
        let redirect_uri = self.redirect_uri(request);
        OidcStep::ExchangeCode(Box::new(CodeExchange {
            request: self.token_request(
                endpoints,
                &[
                    ("grant_type", "authorization_code"),
                    ("code", &code),
                    ("redirect_uri", &redirect_uri),
                    ("code_verifier", &verifier),
                ],
            ),
            original_url: login.url,
            nonce: login.nonce,
            binding: self.binding(request),
            secure: request.secure(),
        }))
    }

    fn read_state(&self, state: &str) -> Option<LoginState> {
        let (encoded, signature) = state.split_once('.')?;
        let json = URL_SAFE_NO_PAD.decode(encoded).ok()?;
        if !self.keys.verify(&[b"state", &json], signature.as_bytes()) {
            return None;
        }
        serde_json::from_slice(&json).ok()
    }

    /// The code exchange's answer: the session's cookies and a redirect back to where the
    /// login started.
    pub fn finish_login(
        &self,
        exchange: &CodeExchange,
        answer: Result<ProviderResponse, String>,
        now: u64,
    ) -> Result<OidcAnswer, OidcFailure> {
        let tokens = token_answer(answer)?;
        if let Some(id_token) = &tokens.id_token {
            check_id_token(id_token, &exchange.nonce, &self.client_id, &self.issuer)?;
        }
        let mut cookies =
            self.session_cookies(&tokens, None, &exchange.binding, exchange.secure, now)?;
        cookies.extend(self.clear_cookie(&self.cookies.nonce, exchange.secure));
        cookies.extend(self.clear_cookie(&self.cookies.verifier, exchange.secure));
        redirect(&exchange.original_url, cookies)
    }

    /// The refresh exchange's answer: the forwarding edits with the new access token, and the
    /// renewed session's cookies for the response.
    pub fn finish_refresh(
        &self,
        exchange: &RefreshExchange,
        answer: Result<ProviderResponse, String>,
        now: u64,
    ) -> Result<ForwardEdits, OidcFailure> {
        let tokens = token_answer(answer)?;
        let cookies = self.session_cookies(
            &tokens,
            Some(&exchange.refresh_token),
            &exchange.binding,
            exchange.secure,
            now,
        )?;
        let mut edits = self.forward(&tokens.access_token, tokens.id_token.as_deref());
        edits.set_cookies = cookies;
        Ok(edits)
    }

    fn logout(&self, request: &OidcRequest<'_>, endpoints: &Endpoints) -> OidcAnswer {
        let secure = request.secure();
        let id_token = cookie(request.headers, &self.cookies.id)
            .and_then(|raw| self.reveal(&self.cookies.id, raw));
        let location = match &endpoints.end_session {
            Some(end_session) => {
                let mut params = vec![("client_id", self.client_id.as_str())];
                if let Some(id_token) = &id_token {
                    params.push(("id_token_hint", id_token.as_str()));
                }
                let separator = if end_session.contains('?') { '&' } else { '?' };
                format!("{end_session}{separator}{}", form_encode(params))
            }
            None => format!("{}://{}/", request.scheme, request.host()),
        };
        let cookies = [
            &self.cookies.access,
            &self.cookies.id,
            &self.cookies.refresh,
            &self.cookies.hmac,
            &self.cookies.expires,
            &self.cookies.nonce,
            &self.cookies.verifier,
        ]
        .into_iter()
        .filter_map(|name| self.clear_cookie(name, secure));
        redirect(&location, cookies).unwrap_or_else(|_| OidcAnswer {
            status: StatusCode::FOUND,
            headers: HeaderMap::new(),
        })
    }

    /// Strips the session's cookies from the forwarded request and sets the token headers.
    pub fn apply_forward(&self, edits: &ForwardEdits, headers: &mut HeaderMap) {
        let kept: Vec<HeaderValue> = headers
            .get_all(header::COOKIE)
            .iter()
            .filter_map(|value| {
                let pairs: Vec<String> = cookie_pairs(value.as_bytes())
                    .filter(|(name, _)| !self.cookies.contains(name))
                    .map(|(name, value)| {
                        format!(
                            "{}={}",
                            String::from_utf8_lossy(name),
                            String::from_utf8_lossy(value)
                        )
                    })
                    .collect();
                (!pairs.is_empty())
                    .then(|| HeaderValue::try_from(pairs.join("; ")).ok())
                    .flatten()
            })
            .collect();
        headers.remove(header::COOKIE);
        for value in kept {
            headers.append(header::COOKIE, value);
        }
        for (name, value) in &edits.set {
            headers.insert(name.clone(), value.clone());
        }
    }

    fn forward(&self, access: &str, id: Option<&str>) -> ForwardEdits {
        let mut set = Vec::new();
        if self.forward_access_token
            && let Ok(value) = HeaderValue::try_from(format!("Bearer {access}"))
        {
            set.push((header::AUTHORIZATION, value));
        }
        if let (Some(name), Some(id)) = (&self.forward_id_token, id) {
            let value = if *name == header::AUTHORIZATION {
                format!("Bearer {id}")
            } else {
                id.to_owned()
            };
            if let Ok(value) = HeaderValue::try_from(value) {
                set.push((name.clone(), value));
            }
        }
        ForwardEdits {
            set,
            set_cookies: Vec::new(),
        }
    }

    /// What the session's HMAC is bound to: the cookie domain, else the request's host.
    fn binding(&self, request: &OidcRequest<'_>) -> String {
        self.cookie_domain
            .clone()
            .unwrap_or_else(|| request.host().to_ascii_lowercase())
    }

    fn session(&self, request: &OidcRequest<'_>, binding: &str) -> Session {
        let headers = request.headers;
        let raw = |name: &str| cookie(headers, name).unwrap_or_default();
        let (access, id, refresh) = (
            raw(&self.cookies.access),
            raw(&self.cookies.id),
            raw(&self.cookies.refresh),
        );
        let expires = raw(&self.cookies.expires);
        let unexpired = std::str::from_utf8(expires)
            .ok()
            .and_then(|e| e.parse::<u64>().ok())
            .is_some_and(|e| e > request.now);
        let signed = cookie(headers, &self.cookies.hmac).is_some_and(|mac| {
            self.keys
                .verify(&[binding.as_bytes(), expires, access, id, refresh], mac)
        });
        if unexpired
            && signed
            && let Some(access) = self.reveal(&self.cookies.access, access)
        {
            let id = (!id.is_empty())
                .then(|| self.reveal(&self.cookies.id, id))
                .flatten();
            return Session::Valid { access, id };
        }
        if self.refresh
            && !refresh.is_empty()
            && let Some(token) = self.reveal(&self.cookies.refresh, refresh)
        {
            return Session::Refreshable(token);
        }
        Session::Absent
    }

    /// A cookie's token: opened when sealed, else the text itself.
    fn reveal(&self, name: &str, raw: &[u8]) -> Option<String> {
        if raw.is_empty() {
            return None;
        }
        let bytes = if self.encrypt {
            self.keys.open(name, raw).ok()?
        } else {
            raw.to_vec()
        };
        String::from_utf8(bytes).ok()
    }

    fn conceal(&self, name: &str, token: &str) -> Result<String, OidcFailure> {
        if self.encrypt {
            Ok(self.keys.seal(name, token.as_bytes())?)
        } else {
            Ok(token.to_owned())
        }
    }

    fn session_cookies(
        &self,
        tokens: &TokenAnswer,
        previous_refresh: Option<&str>,
        binding: &str,
        secure: bool,
        now: u64,
    ) -> Result<Vec<HeaderValue>, OidcFailure> {
        let ttl = tokens
            .expires_in
            .or(self.default_token_ttl)
            .ok_or(OidcFailure::NoLifetime)?;
        let expires = now.saturating_add(ttl).to_string();
        let access = self.conceal(&self.cookies.access, &tokens.access_token)?;
        let id = match &tokens.id_token {
            Some(id) => self.conceal(&self.cookies.id, id)?,
            None => String::new(),
        };
        let refresh = match tokens.refresh_token.as_deref().or(previous_refresh) {
            Some(refresh) => self.conceal(&self.cookies.refresh, refresh)?,
            None => String::new(),
        };
        let mac = self.keys.sign(&[
            binding.as_bytes(),
            expires.as_bytes(),
            access.as_bytes(),
            id.as_bytes(),
            refresh.as_bytes(),
        ]);
        let mut cookies = vec![
            self.set_cookie(&self.cookies.access, &access, ttl, secure),
            self.set_cookie(&self.cookies.expires, &expires, ttl, secure),
            self.set_cookie(&self.cookies.hmac, &mac, ttl, secure),
        ];
        // An absent token clears its cookie: a stale one would break the HMAC.
        cookies.push(if id.is_empty() {
            self.clear_cookie(&self.cookies.id, secure)
        } else {
            self.set_cookie(&self.cookies.id, &id, ttl, secure)
        });
        cookies.push(if refresh.is_empty() {
            self.clear_cookie(&self.cookies.refresh, secure)
        } else {
            self.set_cookie(&self.cookies.refresh, &refresh, self.refresh_ttl, secure)
        });
        cookies
            .into_iter()
            .map(|c| c.ok_or(OidcFailure::BadTokenAnswer))
            .collect()
    }

    fn attributes(&self, secure: bool) -> String {
        let mut attributes = String::from("; HttpOnly");
        if secure {
            attributes.push_str("; Secure");
        }
        if let Some(same_site) = self.same_site {
            attributes.push_str("; SameSite=");
            attributes.push_str(same_site);
        }
        if let Some(domain) = &self.cookie_domain {
            attributes.push_str("; Domain=");
            attributes.push_str(domain);
        }
        attributes
    }

    fn set_cookie(
        &self,
        name: &str,
        value: &str,
        max_age: u64,
        secure: bool,
    ) -> Option<HeaderValue> {
        let attributes = self.attributes(secure);
        HeaderValue::try_from(format!(
            "{name}={value}; Path=/; Max-Age={max_age}{attributes}"
        ))
        .ok()
    }

    fn clear_cookie(&self, name: &str, secure: bool) -> Option<HeaderValue> {
        let attributes = self.attributes(secure);
        HeaderValue::try_from(format!("{name}={CLEARED}{attributes}")).ok()
    }

    fn redirect_uri(&self, request: &OidcRequest<'_>) -> String {
        self.redirect_url
            .replace("%REQ(x-forwarded-proto)%", request.scheme)
            .replace("%REQ(:authority)%", request.host())
    }

    fn token_request(&self, endpoints: &Endpoints, form: &[(&str, &str)]) -> ProviderRequest {
        let mut headers = HeaderMap::new();
        // RFC 6749 §2.3.1: the client's ID and secret, form-encoded, as HTTP Basic.
        let credentials = format!(
            "{}:{}",
            percent_encode(&self.client_id),
            percent_encode(&self.client_secret)
        );
        if let Ok(value) = HeaderValue::try_from(format!("Basic {}", STANDARD.encode(credentials)))
        {
            headers.insert(header::AUTHORIZATION, value);
        }
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/x-www-form-urlencoded"),
        );
        headers.insert(header::ACCEPT, HeaderValue::from_static("application/json"));
        ProviderRequest {
            method: Method::POST,
            url: endpoints.token.clone(),
            headers,
            body: Bytes::from(form_encode(form.iter().copied())),
            timeout: PROVIDER_TIMEOUT,
        }
    }
}

fn token_answer(answer: Result<ProviderResponse, String>) -> Result<TokenAnswer, OidcFailure> {
    let response = answer.map_err(|_| OidcFailure::TokenExchange)?;
    if response.status != StatusCode::OK {
        return Err(OidcFailure::TokenExchange);
    }
    TokenAnswer::parse(&response.body)
}

fn redirect(
    location: &str,
    cookies: impl IntoIterator<Item = HeaderValue>,
) -> Result<OidcAnswer, OidcFailure> {
    let mut headers = HeaderMap::new();
    headers.insert(
        header::LOCATION,
        HeaderValue::try_from(location).map_err(|_| OidcFailure::BadState)?,
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    for cookie in cookies {
        headers.append(header::SET_COOKIE, cookie);
    }
    Ok(OidcAnswer {
        status: StatusCode::FOUND,
        headers,
    })
}
