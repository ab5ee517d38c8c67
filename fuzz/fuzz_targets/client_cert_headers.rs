//! Fuzzes what a client's certificate puts into request headers and what a response override
//! puts into a response: `X-Forwarded-Client-Cert` elements built from arbitrary subjects and
//! SANs (a client chooses them; a CA may not check them), appended to an arbitrary forwarded
//! header, and response-override bodies with `%RESPONSE_CODE%`. Properties: no panic; every
//! element is a valid header value that cannot start another element or field (no raw `,`
//! `;` `"` outside the quoted parts' escapes); an appended header keeps the forwarded part
//! first; the override's `content-length` is the body's length.
#![no_main]
// A fuzz target reports a violated property by panicking.
#![allow(clippy::panic, clippy::unwrap_used, clippy::expect_used)]

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, StatusCode};
use libfuzzer_sys::fuzz_target;
use mesh_policy::traffic::headers::HeaderEdits;
use mesh_policy::traffic::response_override::ResponseEdits;
use mesh_policy::traffic::xfcc::{
    CertDetails, ClientCertDetails, X_FORWARDED_CLIENT_CERT, Xfcc, XfccMode,
};

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let mut parts = text.split('\u{1}');
    let mut next = || parts.next().unwrap_or_default().to_owned();
    let (subject, uri, dns, by, forwarded, body) = (next(), next(), next(), next(), next(), next());
    let Some(details) = ClientCertDetails::new(
        &[data],
        subject,
        vec![dns],
        vec![uri.clone()],
        Some(by).filter(|b| !b.is_empty()),
    ) else {
        return;
    };
    let every = CertDetails {
        subject: true,
        cert: true,
        chain: true,
        dns: true,
        uri: true,
    };
    let set = Xfcc {
        mode: XfccMode::SanitizeSet,
        details: every,
    };
    let element = set.element(&details);
    assert!(
        HeaderValue::try_from(element.as_str()).is_ok(),
        "{element:?}"
    );
    // Outside quoted values (whose `"` and `\` are escaped), no separator comes from the
    // certificate: the element splits into exactly the fields written.
    let unquoted: String = {
        let mut out = String::new();
        let mut quoted = false;
        let mut escaped = false;
        for c in element.chars() {
            match (quoted, escaped, c) {
                (true, true, _) => escaped = false,
                (true, false, '\\') => escaped = true,
                (_, false, '"') => quoted = !quoted,
                (false, _, c) => out.push(c),
                _ => {}
            }
        }
        assert!(!quoted, "every quote is closed: {element:?}");
        out
    };
    assert!(!unquoted.contains(','), "{element:?}");
    let fields = unquoted.split(';').count();
    let expected = usize::from(details.by.is_some()) + 6;
    assert_eq!(fields, expected, "{element:?}");

    let append = Xfcc {
        mode: XfccMode::AppendForward,
        details: every,
    };
    let mut headers = HeaderMap::new();
    if let Ok(value) = HeaderValue::from_str(&forwarded) {
        headers.insert(X_FORWARDED_CLIENT_CERT, value);
    }
    append.apply(&mut headers, Some(&details));
    let joined = headers.get(X_FORWARDED_CLIENT_CERT).unwrap();
    assert!(joined.as_bytes().ends_with(element.as_bytes()));

    let edits = ResponseEdits {
        content_type: None,
        body: Some(Bytes::from(body)),
        status: None,
        headers: HeaderEdits::default(),
    };
    let mut status = StatusCode::BAD_GATEWAY;
    let mut response_headers = HeaderMap::new();
    let replaced = edits
        .apply(&mut status, &mut response_headers, &Default::default())
        .unwrap();
    assert_eq!(
        response_headers["content-length"],
        replaced.len().to_string().as_str()
    );
    assert!(!replaced.windows(15).any(|w| w == b"%RESPONSE_CODE%"));
});
