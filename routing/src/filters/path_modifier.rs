//! `HTTPPathModifier`: how URLRewrite and RequestRedirect change a path (gateway-api spec §1.4).

/// A path modification.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum PathModifier {
    /// Replace the whole path.
    ReplaceFullPath(String),
    /// Replace the part the rule's `PathPrefix` matched, segment-wise (the rule must have exactly
    /// one match, a `PathPrefix`).
    ReplacePrefixMatch(String),
}

impl PathModifier {
    /// The new path for `path`, which `matched_prefix` (the rule's `PathPrefix` value) matched.
    ///
    /// Prefix replacement follows the API's table: the prefix and the replacement are compared
    /// without trailing slashes, the rest of the path is kept, and the result never contains a
    /// doubled slash and is never empty.
    pub fn apply(&self, path: &str, matched_prefix: &str) -> String {
        match self {
            PathModifier::ReplaceFullPath(replacement) => replacement.clone(),
            PathModifier::ReplacePrefixMatch(replacement) => {
                let prefix = matched_prefix.trim_end_matches('/');
                // The prefix matched segment-wise, so the rest is empty or starts with '/'.
                let rest = path.strip_prefix(prefix).unwrap_or(path);
                let replacement = replacement.trim_end_matches('/');
                let joined = format!("{replacement}{rest}");
                if joined.is_empty() {
                    "/".to_owned()
                } else if !joined.starts_with('/') {
                    // A replacement without a leading slash still yields an absolute path.
                    format!("/{joined}")
                } else {
                    joined
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The `ReplacePrefixMatch` table of the API (`HTTPPathModifier` comment), one row each,
    /// plus the double-slash bug case.
    #[test]
    fn replace_prefix_match_table() {
        let rows: [(&str, &str, &str, &str); 15] = [
            ("/foo/bar", "/foo", "/xyz", "/xyz/bar"),
            ("/foo/bar", "/foo/", "/xyz", "/xyz/bar"),
            ("/foo/bar", "/foo", "/xyz/", "/xyz/bar"),
            ("/foo/bar", "/foo/", "/xyz/", "/xyz/bar"),
            ("/foo", "/foo", "/xyz", "/xyz"),
            ("/foo/", "/foo", "/xyz", "/xyz/"),
            ("/foo/bar", "/foo", "", "/bar"),
            ("/foo/", "/foo", "", "/"),
            ("/foo", "/foo", "", "/"),
            ("/foo/", "/foo", "/", "/"),
            ("/foo", "/foo", "/", "/"),
            ("/strip/three", "/strip", "/", "/three"),
            ("/a/bar", "/a/", "/", "/bar"),
            ("/anything", "/", "/prefix", "/prefix/anything"),
            // Found by fuzzing: a replacement without its leading slash stays absolute.
            ("//", "/", "p", "/p//"),
        ];
        for (path, prefix, replacement, expected) in rows {
            let modifier = PathModifier::ReplacePrefixMatch(replacement.to_owned());
            assert_eq!(
                modifier.apply(path, prefix),
                expected,
                "{path} with {prefix} -> {replacement:?}"
            );
        }
    }

    #[test]
    fn replace_full_path() {
        let modifier = PathModifier::ReplaceFullPath("/new".to_owned());
        assert_eq!(modifier.apply("/old/deep", "/old"), "/new");
    }
}
