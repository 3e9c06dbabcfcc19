//! From a request target to a path relative to the served directory, refusing everything that
//! could lead outside it. Pure: the file system is asked later (see `Files::open_cached`), where
//! `openat2(RESOLVE_BENEATH)` also keeps symlinks inside the directory.

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;

/// A target mapped to a relative path.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Mapped {
    /// Relative to the served directory, never absolute, no `.`, `..` or empty components; empty
    /// for the directory itself.
    pub(crate) relative: PathBuf,
    /// The path of the target ends with `/`, or with `/.` (`/` followed by segments that are
    /// all `.` or empty): a directory was asked for, so a file there is not found, as nginx
    /// answers `GET /file.txt/.`.
    pub(crate) trailing_slash: bool,
    /// The path part of the target as sent (before `?`), for a redirect to `path/`.
    pub(crate) raw_path_len: usize,
}

/// Why a target is refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Refused {
    /// Not an origin-form path, a bad `%` escape, an encoded `/`, NUL, a backslash or `..`: 400.
    BadTarget,
    /// A name starting with a dot while dotfiles are hidden: 404, as if it did not exist.
    Hidden,
}

/// Maps `target` (as in the request line) to a path relative to the served directory.
pub(crate) fn map(target: &str, dotfiles: bool) -> Result<Mapped, Refused> {
    let raw = target.as_bytes();
    // Only origin-form ("/path?query"); absolute-form ("http://host/...") and "*" are refused.
    if raw.first() != Some(&b'/') {
        return Err(Refused::BadTarget);
    }
    let path_end = raw
        .iter()
        .position(|&b| b == b'?' || b == b'#')
        .unwrap_or(raw.len());
    let path = &raw[..path_end];
    let mut relative = PathBuf::new();
    // Whether the last segment seen names a directory: empty ("//", a trailing "/") or ".".
    let mut directory = true;
    for segment in path.split(|&b| b == b'/') {
        if segment.is_empty() {
            directory = true;
            continue; // "//" and the leading or trailing "/"
        }
        let name = decode_segment(segment)?;
        match name.as_slice() {
            b"." => directory = true,
            b".." => return Err(Refused::BadTarget),
            n if n[0] == b'.' && !dotfiles => return Err(Refused::Hidden),
            n => {
                relative.push(OsStr::from_bytes(n));
                directory = false;
            }
        }
    }
    Ok(Mapped {
        relative,
        trailing_slash: directory,
        raw_path_len: path_end,
    })
}

/// Percent-decodes one path segment; refuses bad escapes and any decoded `/`, `\` or NUL.
fn decode_segment(segment: &[u8]) -> Result<Vec<u8>, Refused> {
    let mut out = Vec::with_capacity(segment.len());
    let mut i = 0;
    while i < segment.len() {
        let b = match segment[i] {
            b'%' => {
                let hi = segment.get(i + 1).and_then(|&c| hex(c));
                let lo = segment.get(i + 2).and_then(|&c| hex(c));
                let (Some(hi), Some(lo)) = (hi, lo) else {
                    return Err(Refused::BadTarget);
                };
                i += 3;
                hi << 4 | lo
            }
            b => {
                i += 1;
                b
            }
        };
        if matches!(b, b'/' | b'\\' | 0) {
            return Err(Refused::BadTarget);
        }
        out.push(b);
    }
    Ok(out)
}

fn hex(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(t: &str) -> String {
        map(t, false)
            .unwrap_or_else(|e| panic!("{t}: {e:?}"))
            .relative
            .to_str()
            .unwrap()
            .to_string()
    }

    #[test]
    fn plain_paths() {
        assert_eq!(ok("/"), "");
        assert_eq!(ok("/a/b.txt"), "a/b.txt");
        assert_eq!(ok("//a///b/"), "a/b");
        assert_eq!(ok("/./a/./b"), "a/b");
        assert_eq!(ok("/a%20b?x=/../..#f"), "a b");
        assert_eq!(ok("/%41%62"), "Ab");
        assert!(map("/dir/", false).unwrap().trailing_slash);
        assert!(!map("/dir?x/", false).unwrap().trailing_slash);
        assert!(!map("/./dir", false).unwrap().trailing_slash);
        for dir in ["/f/.", "/f/./", "/f//.", "/f/%2e", "/f/./.", "/", "/."] {
            assert!(map(dir, false).unwrap().trailing_slash, "{dir}");
        }
        assert_eq!(map("/dir?x", false).unwrap().raw_path_len, 4);
    }

    #[test]
    fn escapes_are_refused() {
        for t in [
            "/..",
            "/../etc/passwd",
            "/a/../../b",
            "/%2e%2e/x",
            "/%2E%2E/x",
            "/.%2e/x",
            "/a%2fb",
            "/a%2F..%2Fb",
            "/a%5cb",
            "/a\\b",
            "/a%00b",
            "/a%",
            "/a%4",
            "/a%zz",
            "http://host/etc/passwd",
            "*",
            "",
            "etc/passwd",
        ] {
            assert_eq!(map(t, false), Err(Refused::BadTarget), "{t}");
            assert_eq!(map(t, true), Err(Refused::BadTarget), "{t}");
        }
    }

    #[test]
    fn dotfiles_hidden_unless_allowed() {
        assert_eq!(map("/.env", false), Err(Refused::Hidden));
        assert_eq!(map("/a/.git/config", false), Err(Refused::Hidden));
        assert_eq!(map("/%2egit", false), Err(Refused::Hidden));
        assert_eq!(map("/.env", true).unwrap().relative, PathBuf::from(".env"));
    }
}
