//! Directory listings (opt-in, [`Files::list`](crate::Files::list)): one HTML page per
//! directory, names escaped, links percent-encoded byte by byte (so names that are not UTF-8
//! still lead to their file), sizes and modification dates, directories first, then by name.

use std::fmt::Write as _;
use std::os::fd::OwnedFd;
use std::time::{Duration, UNIX_EPOCH};

use rustix::fs::{AtFlags, FileType};

/// Most entries a listing shows; the page says when there are more. A bound on the page's
/// size (about 200 bytes an entry) and on the `stat` calls one request makes.
pub(crate) const MAX_ENTRIES: usize = 10_000;

struct Entry {
    name: Vec<u8>,
    dir: bool,
    /// `None` for a symlink (not followed: where it leads is checked when it is asked for).
    size: Option<u64>,
    mtime: u64,
}

/// The HTML page for the directory open as `dir`, asked for with `path` (the request's path,
/// as sent, ending in `/`). Names starting with a dot are left out unless `dotfiles`.
pub(crate) fn page(dir: &OwnedFd, path: &str, dotfiles: bool) -> std::io::Result<String> {
    let mut entries = Vec::new();
    let mut more = false;
    for e in rustix::fs::Dir::read_from(dir)? {
        let e = e?;
        let name = e.file_name().to_bytes();
        if name == b"." || name == b".." || (name.first() == Some(&b'.') && !dotfiles) {
            continue;
        }
        if entries.len() == MAX_ENTRIES {
            more = true;
            break;
        }
        // The entry may be gone meanwhile: then it is left out.
        let Ok(st) = rustix::fs::statat(dir, e.file_name(), AtFlags::SYMLINK_NOFOLLOW) else {
            continue;
        };
        let kind = FileType::from_raw_mode(st.st_mode);
        entries.push(Entry {
            name: name.to_vec(),
            dir: kind == FileType::Directory,
            size: (kind != FileType::Symlink).then(|| u64::try_from(st.st_size).unwrap_or(0)),
            mtime: u64::try_from(st.st_mtime).unwrap_or(0),
        });
    }
    entries.sort_unstable_by(|a, b| b.dir.cmp(&a.dir).then_with(|| a.name.cmp(&b.name)));

    let title = escape(path.as_bytes());
    let mut out = String::with_capacity(512 + entries.len() * 200);
    let _ = write!(
        out,
        "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width\">\
         <title>Index of {title}</title></head>\n<body>\n<h1>Index of {title}</h1>\n\
         <table>\n<tr><th>Name</th><th>Size</th><th>Modified</th></tr>\n"
    );
    if path != "/" {
        out.push_str("<tr><td><a href=\"../\">../</a></td><td></td><td></td></tr>\n");
    }
    for e in &entries {
        let slash = if e.dir { "/" } else { "" };
        let size = match (e.dir, e.size) {
            (false, Some(n)) => n.to_string(),
            _ => String::new(),
        };
        let date = httpdate::fmt_http_date(UNIX_EPOCH + Duration::from_secs(e.mtime));
        let _ = writeln!(
            out,
            "<tr><td><a href=\"./{}{slash}\">{}{slash}</a></td><td>{size}</td><td>{date}</td></tr>",
            percent_encode(&e.name),
            escape(&e.name)
        );
    }
    out.push_str("</table>\n");
    if more {
        let _ = writeln!(
            out,
            "<p>Only the first {MAX_ENTRIES} entries are listed.</p>"
        );
    }
    out.push_str("</body></html>\n");
    Ok(out)
}

/// Text for HTML: invalid UTF-8 shown as U+FFFD, `& < > " '` as character references.
fn escape(name: &[u8]) -> String {
    let text = String::from_utf8_lossy(name);
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c if c.is_control() => out.push('\u{fffd}'),
            c => out.push(c),
        }
    }
    out
}

/// Every byte but the unreserved ones (`A-Z a-z 0-9 - . _ ~`) as `%XX`: safe in an attribute,
/// never read as a scheme (`javascript:`), decoded back to the same bytes by the server.
fn percent_encode(name: &[u8]) -> String {
    let mut out = String::with_capacity(name.len() * 3);
    for &b in name {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(char::from(b));
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_escaped_and_encoded() {
        assert_eq!(escape(b"<script>\"'&"), "&lt;script&gt;&quot;&#39;&amp;");
        assert_eq!(escape(b"caf\xe9"), "caf\u{fffd}");
        assert_eq!(escape(b"a\nb"), "a\u{fffd}b");
        assert_eq!(percent_encode(b"a b/%:\xe9"), "a%20b%2F%25%3A%E9");
        assert_eq!(percent_encode(b"A-z_0.~"), "A-z_0.~");
    }
}
