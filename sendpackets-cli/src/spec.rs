//! The ELEMENT syntax of `sendpackets send`, and turning parsed elements into a send list.
//!
//! | argument              | element                                                   |
//! |-----------------------|-----------------------------------------------------------|
//! | `PATH`                | the whole file                                            |
//! | `PATH@OFFSET`         | the file from byte `OFFSET` to its end                    |
//! | `PATH@OFFSET+COUNT`   | `COUNT` bytes of the file from byte `OFFSET`              |
//! | `PATTERN[@RANGE]`     | a path with `*`, `?` or `[`: every matching file, sorted  |
//! | `file:PATH[@RANGE]`   | a path taken literally (never a glob, never a keyword)    |
//! | `text:TEXT`           | literal text; escapes `\r \n \t \0 \\ \xNN`               |
//! | `hex:HEX`             | bytes in hex; spaces, `_` and `:` between digits ignored  |
//! | `-`                   | standard input, read into memory (once per command)       |
//! | `eop`                 | end of packet: marks the element before it                |
//!
//! Numbers accept the binary suffixes `K`, `M`, `G` (`1M` is 1048576). A name whose last `@` is
//! followed by a digit is read as a range: to send a file literally named `a@1`, write `a@1@0`.
//!
//! Parsing is pure ([`parse`]); [`build`] touches the file system (globs) and standard input.

use std::ffi::{OsStr, OsString};
use std::io::Read;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use sendpackets::{Element, FileRange};

/// One ELEMENT argument, parsed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Spec {
    /// A file by path, with a range.
    File { path: PathBuf, range: FileRange },
    /// A glob pattern, expanded to the regular files it matches, in sorted order.
    Glob { pattern: String, range: FileRange },
    /// Literal bytes (`text:` or `hex:`).
    Bytes(Vec<u8>),
    /// Standard input, read into memory.
    Stdin,
    /// The end-of-packet marker.
    EndOfPacket,
}

/// Where an element of the send list came from: the ELEMENT argument (numbered from 1) and a
/// label for messages (the file's path, `text`, `hex`, `stdin`, `eop`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Origin {
    /// The ELEMENT argument's position on the command line, from 1.
    pub(crate) arg: usize,
    /// What to call the element in messages.
    pub(crate) label: String,
    /// The file's path, for file elements.
    pub(crate) path: Option<PathBuf>,
}

/// Parses one ELEMENT argument.
///
/// # Errors
///
/// A message saying what is wrong with the syntax.
pub(crate) fn parse(arg: &OsStr) -> Result<Spec, String> {
    let bytes = arg.as_bytes();
    match bytes {
        b"eop" => return Ok(Spec::EndOfPacket),
        b"-" => return Ok(Spec::Stdin),
        b"" => return Err("empty element; use text: for an empty buffer".into()),
        _ => {}
    }
    if let Some(rest) = bytes.strip_prefix(b"text:") {
        return unescape(rest).map(Spec::Bytes);
    }
    if let Some(rest) = bytes.strip_prefix(b"hex:") {
        return unhex(rest).map(Spec::Bytes);
    }
    if let Some(rest) = bytes.strip_prefix(b"file:") {
        let (path, range) = split_range(rest)?;
        return Ok(Spec::File {
            path: PathBuf::from(OsStr::from_bytes(path)),
            range,
        });
    }
    let (path, range) = split_range(bytes)?;
    if path.iter().any(|b| matches!(b, b'*' | b'?' | b'[')) {
        let pattern = std::str::from_utf8(path)
            .map_err(|_| "a glob pattern must be valid UTF-8".to_string())?;
        glob::Pattern::new(pattern).map_err(|e| format!("bad glob pattern: {e}"))?;
        return Ok(Spec::Glob {
            pattern: pattern.to_string(),
            range,
        });
    }
    Ok(Spec::File {
        path: PathBuf::from(OsStr::from_bytes(path)),
        range,
    })
}

/// Splits `PATH[@OFFSET[+COUNT]]`: the last `@` starts a range when a digit follows it.
fn split_range(arg: &[u8]) -> Result<(&[u8], FileRange), String> {
    let Some(at) = arg.iter().rposition(|&b| b == b'@') else {
        return non_empty(arg).map(|p| (p, FileRange::from(..)));
    };
    let suffix = &arg[at + 1..];
    if !suffix.first().is_some_and(u8::is_ascii_digit) {
        return non_empty(arg).map(|p| (p, FileRange::from(..)));
    }
    let suffix = std::str::from_utf8(suffix).map_err(|_| "bad range".to_string())?;
    let range = parse_range(suffix)
        .map_err(|e| format!("bad range '@{suffix}': {e} (ranges are @OFFSET or @OFFSET+COUNT)"))?;
    non_empty(&arg[..at]).map(|p| (p, range))
}

fn non_empty(path: &[u8]) -> Result<&[u8], String> {
    if path.is_empty() {
        Err("missing file path".into())
    } else {
        Ok(path)
    }
}

/// Parses `OFFSET` or `OFFSET+COUNT`.
fn parse_range(s: &str) -> Result<FileRange, String> {
    match s.split_once('+') {
        None => Ok(FileRange::new(parse_size(s)?, None)),
        Some((offset, count)) => {
            let offset = parse_size(offset)?;
            let count = parse_size(count)?;
            offset
                .checked_add(count)
                .ok_or_else(|| "offset + count overflows".to_string())?;
            Ok(FileRange::new(offset, Some(count)))
        }
    }
}

/// Parses a byte count: decimal digits with an optional `K`, `M` or `G` (powers of 1024).
pub(crate) fn parse_size(s: &str) -> Result<u64, String> {
    let (digits, unit) = match s.as_bytes().last() {
        Some(b'k' | b'K') => (&s[..s.len() - 1], 1u64 << 10),
        Some(b'm' | b'M') => (&s[..s.len() - 1], 1 << 20),
        Some(b'g' | b'G') => (&s[..s.len() - 1], 1 << 30),
        _ => (s, 1),
    };
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!(
            "'{s}' is not a number (digits, optionally followed by K, M or G)"
        ));
    }
    digits
        .parse::<u64>()
        .ok()
        .and_then(|n| n.checked_mul(unit))
        .ok_or_else(|| format!("'{s}' is too large"))
}

/// Decodes `text:` escapes: `\r \n \t \0 \\ \xNN`.
fn unescape(s: &[u8]) -> Result<Vec<u8>, String> {
    let mut out = Vec::with_capacity(s.len());
    let mut i = 0;
    while i < s.len() {
        let b = s[i];
        i += 1;
        if b != b'\\' {
            out.push(b);
            continue;
        }
        let Some(&e) = s.get(i) else {
            return Err("text ends with a lone \\ (write \\\\ for a backslash)".into());
        };
        i += 1;
        out.push(match e {
            b'r' => b'\r',
            b'n' => b'\n',
            b't' => b'\t',
            b'0' => 0,
            b'\\' => b'\\',
            b'x' => {
                let pair = s.get(i..i + 2).and_then(|p| hex_pair(p[0], p[1]));
                i += 2;
                pair.ok_or("\\x needs two hex digits, as in \\x0d")?
            }
            other => {
                return Err(format!(
                    "unknown escape \\{} (known: \\r \\n \\t \\0 \\\\ \\xNN)",
                    char::from(other).escape_default()
                ));
            }
        });
    }
    Ok(out)
}

/// Decodes `hex:` digits, ignoring spaces, `_` and `:` between byte pairs.
fn unhex(s: &[u8]) -> Result<Vec<u8>, String> {
    let digits: Vec<u8> = s
        .iter()
        .copied()
        .filter(|b| !matches!(b, b' ' | b'_' | b':'))
        .collect();
    if digits.len() % 2 != 0 {
        return Err("hex needs an even number of digits".into());
    }
    digits
        .chunks(2)
        .map(|p| hex_pair(p[0], p[1]))
        .collect::<Option<Vec<u8>>>()
        .ok_or_else(|| "hex may contain only 0-9, a-f, A-F (and spaces, _ or :)".into())
}

fn hex_pair(hi: u8, lo: u8) -> Option<u8> {
    let d = |c: u8| char::from(c).to_digit(16);
    Some((d(hi)? * 16 + d(lo)?) as u8)
}

/// Why [`build`] failed.
#[derive(Debug)]
pub(crate) enum BuildError {
    /// The command line cannot work (standard input named twice).
    Usage(String),
    /// An input is missing or unreadable (a glob with no match, standard input failed).
    Input { origin: Origin, message: String },
}

/// Turns parsed specs into the send list, with each element's origin.
///
/// Globs are expanded here (sorted, regular files only) and standard input is read.
///
/// # Errors
///
/// [`BuildError`] naming the argument.
pub(crate) fn build(
    specs: &[(OsString, Spec)],
    stdin: &mut dyn Read,
) -> Result<(Vec<Element>, Vec<Origin>), BuildError> {
    let mut elements: Vec<Element> = Vec::new();
    let mut origins: Vec<Origin> = Vec::new();
    let mut stdin_used = false;
    for (i, (raw, spec)) in specs.iter().enumerate() {
        let arg = i;
        let origin = |label: String, path: Option<PathBuf>| Origin { arg, label, path };
        match spec {
            Spec::File { path, range } => {
                elements.push(Element::file(path.clone(), *range));
                origins.push(origin(path.display().to_string(), Some(path.clone())));
            }
            Spec::Glob { pattern, range } => {
                let files = expand_glob(pattern).map_err(|message| BuildError::Input {
                    origin: origin(pattern.clone(), None),
                    message,
                })?;
                for path in files {
                    elements.push(Element::file(path.clone(), *range));
                    origins.push(origin(path.display().to_string(), Some(path)));
                }
            }
            Spec::Bytes(b) => {
                let kind = if raw.as_bytes().starts_with(b"hex:") {
                    "hex"
                } else {
                    "text"
                };
                elements.push(Element::memory(b.clone()));
                origins.push(origin(kind.into(), None));
            }
            Spec::Stdin => {
                if stdin_used {
                    return Err(BuildError::Usage(format!(
                        "element {arg} (-): standard input can be used only once"
                    )));
                }
                stdin_used = true;
                let mut buf = Vec::new();
                stdin.read_to_end(&mut buf).map_err(|e| BuildError::Input {
                    origin: origin("stdin".into(), None),
                    message: format!("reading standard input failed: {e}"),
                })?;
                elements.push(Element::memory(buf));
                origins.push(origin("stdin".into(), None));
            }
            Spec::EndOfPacket => match elements.last_mut() {
                Some(last) if !last.end_of_packet => last.end_of_packet = true,
                _ => {
                    // Nothing to mark: an empty element carries the marker (an empty datagram).
                    elements.push(Element::memory(Vec::new()).end_of_packet());
                    origins.push(origin("eop".into(), None));
                }
            },
        }
    }
    Ok((elements, origins))
}

/// The regular files matching `pattern`, sorted. No match is an error.
pub(crate) fn expand_glob(pattern: &str) -> Result<Vec<PathBuf>, String> {
    let options = glob::MatchOptions {
        case_sensitive: true,
        require_literal_separator: true,
        require_literal_leading_dot: true,
    };
    let paths = glob::glob_with(pattern, options).map_err(|e| format!("bad glob pattern: {e}"))?;
    let mut files: Vec<PathBuf> = paths
        .filter_map(Result::ok)
        .filter(|p| !Path::is_dir(p))
        .collect();
    files.sort();
    if files.is_empty() {
        return Err("no file matches this pattern".into());
    }
    Ok(files)
}

#[cfg(test)]
mod tests {
    use super::*;
    use sendpackets::Payload;

    fn os(s: &str) -> OsString {
        OsString::from(s)
    }

    fn file(path: &str, range: FileRange) -> Spec {
        Spec::File {
            path: path.into(),
            range,
        }
    }

    #[test]
    fn paths_and_ranges() {
        assert_eq!(
            parse(&os("a.bin")).unwrap(),
            file("a.bin", FileRange::from(..))
        );
        assert_eq!(
            parse(&os("a.bin@4096")).unwrap(),
            file("a.bin", FileRange::new(4096, None))
        );
        assert_eq!(
            parse(&os("a.bin@4096+65536")).unwrap(),
            file("a.bin", FileRange::new(4096, Some(65536)))
        );
        assert_eq!(
            parse(&os("big@1M+64k")).unwrap(),
            file("big", FileRange::new(1 << 20, Some(64 << 10)))
        );
        assert_eq!(
            parse(&os("mail@host")).unwrap(),
            file("mail@host", FileRange::from(..))
        );
        assert_eq!(
            parse(&os("a@1@0")).unwrap(),
            file("a@1", FileRange::new(0, None))
        );
        assert_eq!(
            parse(&os("./eop")).unwrap(),
            file("./eop", FileRange::from(..))
        );
        assert_eq!(
            parse(&os("file:eop")).unwrap(),
            file("eop", FileRange::from(..))
        );
        assert_eq!(
            parse(&os("file:x*y")).unwrap(),
            file("x*y", FileRange::from(..))
        );
        assert_eq!(
            parse(&os("file:text:a@2+3")).unwrap(),
            file("text:a", FileRange::new(2, Some(3)))
        );
    }

    #[test]
    fn bad_ranges() {
        for bad in [
            "a@12x",
            "a@1+",
            "a@1+x",
            "@5",
            "a@99999999999999999999",
            "a@1G+max",
        ] {
            assert!(parse(&os(bad)).is_err(), "{bad}");
        }
        let e = parse(&os("a@12x")).unwrap_err();
        assert!(e.contains("@OFFSET+COUNT"), "{e}");
        assert!(parse(&os("a@18446744073709551615+1")).is_err());
    }

    #[test]
    fn keywords() {
        assert_eq!(parse(&os("-")).unwrap(), Spec::Stdin);
        assert_eq!(parse(&os("eop")).unwrap(), Spec::EndOfPacket);
        assert!(parse(&os("")).is_err());
    }

    #[test]
    fn text_escapes() {
        assert_eq!(
            parse(&os(r"text:GET / HTTP/1.1\r\n\t\\\x41\0")).unwrap(),
            Spec::Bytes(b"GET / HTTP/1.1\r\n\t\\A\0".to_vec())
        );
        assert_eq!(parse(&os("text:")).unwrap(), Spec::Bytes(Vec::new()));
        assert_eq!(
            parse(&os("text:a@1")).unwrap(),
            Spec::Bytes(b"a@1".to_vec())
        );
        assert!(
            parse(&os(r"text:\q"))
                .unwrap_err()
                .contains("unknown escape")
        );
        assert!(parse(&os(r"text:a\")).is_err());
        assert!(parse(&os(r"text:\x4")).is_err());
        assert!(parse(&os(r"text:\xZZ")).is_err());
    }

    #[test]
    fn hex_bytes() {
        assert_eq!(
            parse(&os("hex:48656c6C6f")).unwrap(),
            Spec::Bytes(b"Hello".to_vec())
        );
        assert_eq!(
            parse(&os("hex:de:ad be_ef")).unwrap(),
            Spec::Bytes(vec![0xde, 0xad, 0xbe, 0xef])
        );
        assert!(parse(&os("hex:abc")).is_err());
        assert!(parse(&os("hex:zz")).is_err());
    }

    #[test]
    fn globs() {
        assert_eq!(
            parse(&os("logs/*.log")).unwrap(),
            Spec::Glob {
                pattern: "logs/*.log".into(),
                range: FileRange::from(..)
            }
        );
        assert_eq!(
            parse(&os("l?g[0-9]@10+5")).unwrap(),
            Spec::Glob {
                pattern: "l?g[0-9]".into(),
                range: FileRange::new(10, Some(5))
            }
        );
        assert!(parse(&os("logs/[.log")).is_err());
    }

    #[test]
    fn sizes() {
        assert_eq!(parse_size("0").unwrap(), 0);
        assert_eq!(parse_size("64K").unwrap(), 65536);
        assert_eq!(parse_size("2g").unwrap(), 2 << 30);
        assert!(parse_size("K").is_err());
        assert!(parse_size("-1").is_err());
        assert!(parse_size("99999999999G").is_err());
    }

    fn specs(args: &[&str]) -> Vec<(OsString, Spec)> {
        args.iter()
            .map(|a| (os(a), parse(&os(a)).unwrap()))
            .collect()
    }

    #[test]
    fn eop_marks_the_element_before() {
        let (els, origins) = build(
            &specs(&["eop", "text:a", "eop", "eop", "hex:00"]),
            &mut &b""[..],
        )
        .unwrap();
        let marks: Vec<bool> = els.iter().map(|e| e.end_of_packet).collect();
        assert_eq!(marks, [true, true, true, false]);
        let args: Vec<usize> = origins.iter().map(|o| o.arg).collect();
        assert_eq!(args, [0, 1, 3, 4]);
        assert_eq!(origins[3].label, "hex");
    }

    #[test]
    fn stdin_once() {
        let (els, _) = build(&specs(&["-", "text:x"]), &mut &b"piped"[..]).unwrap();
        match &els[0].payload {
            Payload::Memory(b) => assert_eq!(&b[..], b"piped"),
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            build(&specs(&["-", "-"]), &mut &b""[..]),
            Err(BuildError::Usage(_))
        ));
    }

    #[test]
    fn glob_expands_sorted_files_only() {
        let dir = tempfile::tempdir().unwrap();
        for name in ["b.log", "a.log", "c.txt", ".hidden.log"] {
            std::fs::write(dir.path().join(name), name).unwrap();
        }
        std::fs::create_dir(dir.path().join("d.log")).unwrap();
        let pattern = format!("{}/*.log", dir.path().display());
        let (els, origins) = build(&specs(&[&pattern, "eop"]), &mut &b""[..]).unwrap();
        let names: Vec<_> = els
            .iter()
            .map(|e| e.path().unwrap().file_name().unwrap().to_owned())
            .collect();
        assert_eq!(names, ["a.log", "b.log"]);
        assert!(!els[0].end_of_packet && els[1].end_of_packet);
        assert!(origins.iter().all(|o| o.arg == 0));

        let none = format!("{}/*.nothing", dir.path().display());
        match build(&specs(&[&none]), &mut &b""[..]) {
            Err(BuildError::Input { origin, message }) => {
                assert_eq!(origin.arg, 0);
                assert!(message.contains("no file matches"));
            }
            other => panic!("{other:?}"),
        }
    }
}
