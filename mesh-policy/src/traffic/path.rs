//! Path normalisation (policy.md §1.6, ClientTrafficPolicy `path`), run before route selection
//! and every path-based policy, so that what is matched is what is forwarded and `/a/../b`,
//! `/a/%2e%2e/b` or `//admin` cannot slip past a rule written for `/b` or `/admin`:
//!
//! 1. escaped slashes (`%2F`, `%5C`, either case) per [`EscapedSlashes`];
//! 2. RFC 3986 normalisation, always on as in Envoy Gateway: percent-escapes of unreserved
//!    characters decoded (`%7E` → `~`), other escapes upper-cased, bytes a path may not
//!    carry escaped, `\` read as `/`, dot segments removed (§5.2.4); `%00` refused;
//! 3. runs of `/` merged into one, unless `disableMergeSlashes`.
//!
//! The query is never touched.
//!
//! ```
//! use mesh_policy::traffic::path::{EscapedSlashes, PathNormalization, Normalized};
//! let settings = PathNormalization::default();
//! assert_eq!(settings.normalize("/a/./b/../%7Ec//d?x=/../"), Ok(Normalized::Forward("/a/~c/d?x=/../".into())));
//! assert_eq!(settings.normalize("/a%2Fb"), Ok(Normalized::Redirect("/a/b".into())));
//! ```

/// What to do with `%2F` and `%5C` in a path (`escapedSlashesAction`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum EscapedSlashes {
    /// Leave them escaped (`KeepUnchanged`).
    Keep,
    /// 400 (`RejectRequest`).
    Reject,
    /// Decode them and forward (`UnescapeAndForward`).
    UnescapeAndForward,
    /// Decode them and redirect the client to the result (`UnescapeAndRedirect`, Envoy
    /// Gateway's default).
    #[default]
    UnescapeAndRedirect,
}

/// How paths are normalised.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PathNormalization {
    /// Escaped slashes.
    pub escaped_slashes: EscapedSlashes,
    /// Merge runs of `/` (not `disableMergeSlashes`).
    pub merge_slashes: bool,
}

impl Default for PathNormalization {
    fn default() -> Self {
        PathNormalization {
            escaped_slashes: EscapedSlashes::default(),
            merge_slashes: true,
        }
    }
}

/// The outcome for a path that may go on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Normalized {
    /// Already normal: forward as it is.
    Unchanged,
    /// Forward with this path and query.
    Forward(String),
    /// Answer with a redirect (307) to this path and query.
    Redirect(String),
}

/// Why a path is refused (400).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PathError {
    /// `%2F` or `%5C` with `RejectRequest`.
    #[error("the path has an escaped slash")]
    EscapedSlash,
    /// `%00` or a raw NUL byte.
    #[error("the path has a NUL")]
    EscapedNul,
    /// The path does not start with `/`.
    #[error("the path is not absolute")]
    NotAbsolute,
}

impl PathNormalization {
    /// Normalises `path_and_query` (origin form: `/path[?query]`).
    pub fn normalize(&self, path_and_query: &str) -> Result<Normalized, PathError> {
        let (path, query) = match path_and_query.find('?') {
            Some(at) => path_and_query.split_at(at),
            None => (path_and_query, ""),
        };
        if !path.starts_with('/') {
            return Err(PathError::NotAbsolute);
        }
        if self.already_normal(path.as_bytes()) {
            return Ok(Normalized::Unchanged);
        }
        let has_escaped_slash = contains_escaped_slash(path.as_bytes());
        let unescape = match (self.escaped_slashes, has_escaped_slash) {
            (_, false) | (EscapedSlashes::Keep, true) => false,
            (EscapedSlashes::Reject, true) => return Err(PathError::EscapedSlash),
            (EscapedSlashes::UnescapeAndForward | EscapedSlashes::UnescapeAndRedirect, true) => {
                true
            }
        };
        let canonical = canonical_segments(path.as_bytes(), unescape)?;
        let mut normal = remove_dot_segments(&canonical);
        if self.merge_slashes {
            normal = merge_slashes(&normal);
        }
        if normal.as_bytes() == path.as_bytes() {
            return Ok(Normalized::Unchanged);
        }
        let full = format!("{normal}{query}");
        if unescape && self.escaped_slashes == EscapedSlashes::UnescapeAndRedirect {
            Ok(Normalized::Redirect(full))
        } else {
            Ok(Normalized::Forward(full))
        }
    }
}

impl PathNormalization {
    /// Whether `path` is normal as it is (the common case, decided in one pass without
    /// allocating): only safe bytes, no escapes, no dot segment, no `//` when merging.
    fn already_normal(&self, path: &[u8]) -> bool {
        let mut previous = b'/';
        let mut segment_start = 0;
        for (index, byte) in path.iter().copied().enumerate() {
            if byte == b'/' {
                let segment = &path[segment_start..index];
                if (self.merge_slashes && index > 0 && previous == b'/')
                    || segment == b"."
                    || segment == b".."
                {
                    return false;
                }
                segment_start = index + 1;
            } else if byte == b'%' || !path_safe(byte) {
                return false;
            }
            previous = byte;
        }
        let last = &path[segment_start..];
        last != b"." && last != b".."
    }
}

fn contains_escaped_slash(path: &[u8]) -> bool {
    path.windows(3).any(|w| {
        w[0] == b'%'
            && ((w[1] == b'2' && w[2].eq_ignore_ascii_case(&b'f'))
                || (w[1] == b'5' && w[2].eq_ignore_ascii_case(&b'c')))
    })
}

fn hex(byte: u8) -> Option<u8> {
    match byte {
        b'0'..=b'9' => Some(byte - b'0'),
        b'a'..=b'f' => Some(byte - b'a' + 10),
        b'A'..=b'F' => Some(byte - b'A' + 10),
        _ => None,
    }
}

fn unreserved(byte: u8) -> bool {
    byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~')
}

/// Characters a path carries as they are (RFC 3986 `pchar` and `/`), besides `%`.
fn path_safe(byte: u8) -> bool {
    unreserved(byte)
        || matches!(
            byte,
            b'/' | b'!'
                | b'$'
                | b'&'
                | b'\''
                | b'('
                | b')'
                | b'*'
                | b'+'
                | b','
                | b';'
                | b'='
                | b':'
                | b'@'
        )
}

/// The path with unreserved escapes decoded, other escapes upper-cased, unsafe bytes
/// escaped and `\` as `/` (and, with `unescape_slashes`, `%2F`/`%5C` decoded too).
fn canonical_segments(path: &[u8], unescape_slashes: bool) -> Result<String, PathError> {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    let mut out = String::with_capacity(path.len());
    let push_escaped = |out: &mut String, byte: u8| {
        out.push('%');
        out.push(char::from(HEX[usize::from(byte >> 4)]));
        out.push(char::from(HEX[usize::from(byte & 15)]));
    };
    let mut index = 0;
    while index < path.len() {
        let byte = path[index];
        if byte == b'%' {
            let decoded = path
                .get(index + 1..index + 3)
                .and_then(|pair| Some(hex(pair[0])? << 4 | hex(pair[1])?));
            match decoded {
                Some(0) => return Err(PathError::EscapedNul),
                Some(b'/' | b'\\') if unescape_slashes => out.push('/'),
                Some(decoded) if unreserved(decoded) => out.push(char::from(decoded)),
                Some(decoded) => push_escaped(&mut out, decoded),
                None => {
                    // A lone `%` is itself escaped, so that it cannot pair with later bytes.
                    push_escaped(&mut out, b'%');
                    index += 1;
                    continue;
                }
            }
            index += 3;
            continue;
        }
        match byte {
            0 => return Err(PathError::EscapedNul),
            b'\\' => out.push('/'),
            safe if path_safe(safe) => out.push(char::from(safe)),
            other => push_escaped(&mut out, other),
        }
        index += 1;
    }
    Ok(out)
}

/// RFC 3986 §5.2.4 on an absolute path: `.` and `..` segments resolved, never above `/`.
fn remove_dot_segments(path: &str) -> String {
    let mut segments: Vec<&str> = Vec::new();
    let mut parts = path.split('/').skip(1).peekable();
    let mut trailing_slash = false;
    while let Some(segment) = parts.next() {
        let last = parts.peek().is_none();
        match segment {
            "." => trailing_slash = last,
            ".." => {
                segments.pop();
                trailing_slash = last;
            }
            other => {
                segments.push(other);
                trailing_slash = false;
            }
        }
    }
    let mut out = String::with_capacity(path.len());
    for segment in &segments {
        out.push('/');
        out.push_str(segment);
    }
    if trailing_slash || out.is_empty() {
        out.push('/');
    }
    out
}

fn merge_slashes(path: &str) -> String {
    let mut out = String::with_capacity(path.len());
    for c in path.chars() {
        if !(c == '/' && out.ends_with('/')) {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn normal(path: &str) -> String {
        match PathNormalization::default().normalize(path).unwrap() {
            Normalized::Unchanged => path.to_owned(),
            Normalized::Forward(p) | Normalized::Redirect(p) => p,
        }
    }

    #[test]
    fn dot_segments_resolve_and_never_climb_above_the_root() {
        assert_eq!(normal("/a/../b"), "/b");
        assert_eq!(normal("/a/./b/."), "/a/b/");
        assert_eq!(normal("/../../etc/passwd"), "/etc/passwd");
        assert_eq!(normal("/a/b/.."), "/a/");
        assert_eq!(normal("/a/%2e%2E/admin"), "/admin");
        assert_eq!(normal("/a/.%2e/admin"), "/admin");
        assert_eq!(normal("/"), "/");
        assert_eq!(normal("/.."), "/");
        assert_eq!(normal("/a..b/..c"), "/a..b/..c", "dots inside names stay");
    }

    #[test]
    fn unreserved_escapes_decode_and_others_are_upper_cased() {
        assert_eq!(normal("/%7euser/%41%2d%5F"), "/~user/A-_");
        assert_eq!(normal("/a%3fb%20c"), "/a%3Fb%20c");
        assert_eq!(normal("/50%"), "/50%25", "a lone % is escaped");
        assert_eq!(normal("/%2"), "/%252");
        assert_eq!(normal("/a\\b"), "/a/b", "backslash is a slash");
        assert_eq!(normal("/a\"<b>"), "/a%22%3Cb%3E");
    }

    #[test]
    fn slashes_merge_unless_disabled() {
        assert_eq!(normal("//admin///x"), "/admin/x");
        let keep = PathNormalization {
            merge_slashes: false,
            ..PathNormalization::default()
        };
        assert_eq!(keep.normalize("//admin"), Ok(Normalized::Unchanged));
    }

    #[test]
    fn escaped_slashes_follow_the_action() {
        let with = |action| PathNormalization {
            escaped_slashes: action,
            merge_slashes: true,
        };
        let path = "/a%2fb%5Cc?q=%2F";
        assert_eq!(
            with(EscapedSlashes::Keep).normalize(path),
            Ok(Normalized::Forward("/a%2Fb%5Cc?q=%2F".into()))
        );
        assert_eq!(
            with(EscapedSlashes::Reject).normalize(path),
            Err(PathError::EscapedSlash)
        );
        assert_eq!(
            with(EscapedSlashes::UnescapeAndForward).normalize(path),
            Ok(Normalized::Forward("/a/b/c?q=%2F".into()))
        );
        assert_eq!(
            with(EscapedSlashes::UnescapeAndRedirect).normalize(path),
            Ok(Normalized::Redirect("/a/b/c?q=%2F".into()))
        );
        // Decoded slashes take part in dot-segment removal: no way around a path rule.
        assert_eq!(
            with(EscapedSlashes::UnescapeAndForward).normalize("/public%2F..%2Fadmin"),
            Ok(Normalized::Forward("/admin".into()))
        );
    }

    #[test]
    fn nul_and_relative_paths_are_refused() {
        let settings = PathNormalization::default();
        assert_eq!(settings.normalize("/a%00b"), Err(PathError::EscapedNul));
        assert_eq!(
            settings.normalize("/a\0b"),
            Err(PathError::EscapedNul),
            "raw, as escaped"
        );
        assert_eq!(settings.normalize("a/b"), Err(PathError::NotAbsolute));
        assert_eq!(
            settings.normalize("/plain/path?x"),
            Ok(Normalized::Unchanged)
        );
    }

    #[test]
    fn normalising_twice_changes_nothing() {
        for path in [
            "/a/../b",
            "//x/./y/",
            "/%7e%2e%2e/z",
            "/a%2F..%2Fb",
            "/%%41",
        ] {
            let once = normal(path);
            assert_eq!(normal(&once), once, "{path}");
        }
    }
}
