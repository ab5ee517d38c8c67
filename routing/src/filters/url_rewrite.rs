//! `HTTPURLRewriteFilter`: rewriting a request's host and path before it is forwarded
//! (gateway-api spec §1.4), and its tower layer.

use http::uri::{Authority, PathAndQuery};
use http::{HeaderValue, Request, Uri};

use super::path_modifier::PathModifier;
use super::request_edit::{RequestEdit, RequestEditLayer, RequestEditService};

/// A URLRewrite filter. The query string is carried through unchanged.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct UrlRewrite {
    /// Replaces the `Host` header (and the URI's authority, if it has one).
    pub hostname: Option<String>,
    /// Replaces the path.
    pub path: Option<PathModifier>,
}

/// Why a rewrite could not be applied (a value that is not a valid host or path).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("URL rewrite produced an invalid URI: {0}")]
pub struct UrlRewriteError(String);

impl UrlRewrite {
    /// Rewrites `request` in place; `matched_prefix` is the rule's `PathPrefix` value (used by
    /// `ReplacePrefixMatch`).
    pub fn apply<B>(
        &self,
        request: &mut Request<B>,
        matched_prefix: &str,
    ) -> Result<(), UrlRewriteError> {
        let invalid = |error: &dyn std::fmt::Display| UrlRewriteError(error.to_string());
        let mut parts = request.uri().clone().into_parts();
        if let Some(modifier) = &self.path {
            let path = modifier.apply(request.uri().path(), matched_prefix);
            let path_and_query = match request.uri().query() {
                Some(query) => format!("{path}?{query}"),
                None => path,
            };
            parts.path_and_query =
                Some(PathAndQuery::try_from(path_and_query).map_err(|e| invalid(&e))?);
        }
        if let Some(hostname) = &self.hostname {
            if parts.authority.is_some() {
                parts.authority =
                    Some(Authority::try_from(hostname.as_str()).map_err(|e| invalid(&e))?);
            }
            let host = HeaderValue::try_from(hostname.as_str()).map_err(|e| invalid(&e))?;
            request.headers_mut().insert(http::header::HOST, host);
        }
        *request.uri_mut() = Uri::from_parts(parts).map_err(|e| invalid(&e))?;
        Ok(())
    }
}

/// A [`UrlRewrite`] bound to the `PathPrefix` value of its rule, which `ReplacePrefixMatch`
/// replaces.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuleUrlRewrite {
    rewrite: UrlRewrite,
    matched_prefix: String,
}

impl RuleUrlRewrite {
    /// The rewrite of a rule whose path match is `PathPrefix matched_prefix` (or `/`).
    pub fn new(rewrite: UrlRewrite, matched_prefix: &str) -> Self {
        RuleUrlRewrite {
            rewrite,
            matched_prefix: matched_prefix.to_owned(),
        }
    }
}

/// Applies the URL rewrite to every request. A rewrite that yields an invalid URI leaves the
/// request unchanged (values are validated when the configuration is compiled).
impl RequestEdit for RuleUrlRewrite {
    fn edit<B>(&self, request: &mut Request<B>) {
        let _ = self.rewrite.apply(request, &self.matched_prefix);
    }
}

/// Applies a rule's [`UrlRewrite`] to every request (`UrlRewriteLayer::new(RuleUrlRewrite::new(…))`).
pub type UrlRewriteLayer = RequestEditLayer<RuleUrlRewrite>;

/// The service of [`UrlRewriteLayer`].
pub type UrlRewriteService<S> = RequestEditService<S, RuleUrlRewrite>;

#[cfg(test)]
mod tests {
    use super::*;
    use tower::{Layer, ServiceExt, service_fn};

    #[tokio::test]
    async fn host_and_prefix_are_rewritten_and_the_query_is_kept() {
        let rewrite = UrlRewrite {
            hostname: Some("backend.internal".to_owned()),
            path: Some(PathModifier::ReplacePrefixMatch("/v2".to_owned())),
        };
        let seen = service_fn(|request: Request<()>| async move {
            let host = request.headers()[http::header::HOST]
                .to_str()
                .unwrap()
                .to_owned();
            Ok::<_, std::convert::Infallible>((request.uri().to_string(), host))
        });
        let service = UrlRewriteLayer::new(RuleUrlRewrite::new(rewrite, "/v1/")).layer(seen);
        let request = Request::builder()
            .uri("/v1/items/7?color=blue")
            .header("host", "example.com:8080")
            .body(())
            .unwrap();
        let (uri, host) = service.oneshot(request).await.unwrap();
        assert_eq!(uri, "/v2/items/7?color=blue");
        assert_eq!(host, "backend.internal");
    }

    #[test]
    fn full_path_replacement_and_absolute_uris() {
        let rewrite = UrlRewrite {
            hostname: Some("other.example".to_owned()),
            path: Some(PathModifier::ReplaceFullPath("/fixed".to_owned())),
        };
        let mut request = Request::builder()
            .uri("http://example.com/any/where?q=1")
            .body(())
            .unwrap();
        rewrite.apply(&mut request, "/").unwrap();
        assert_eq!(request.uri().to_string(), "http://other.example/fixed?q=1");
        let invalid = UrlRewrite {
            hostname: Some("bad host".to_owned()),
            path: None,
        };
        assert!(invalid.apply(&mut request, "/").is_err());
    }
}
