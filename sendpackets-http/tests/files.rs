//! `Files::respond` on a real directory: every status it chooses, and the bytes a send of its
//! element list puts on a socket.

use std::io::Read;
use std::os::unix::net::UnixStream;

use sendpackets_http::{Files, Parsed, RequestHead, Response, Status};

fn site() -> (tempfile::TempDir, Files) {
    let outer = tempfile::tempdir().unwrap();
    let root = outer.path().join("www");
    std::fs::create_dir_all(root.join("sub")).unwrap();
    std::fs::write(root.join("a.txt"), "0123456789").unwrap();
    std::fs::write(root.join("sub/index.html"), "<p>x</p>").unwrap();
    std::fs::write(root.join(".env"), "secret").unwrap();
    std::fs::write(outer.path().join("outside.txt"), "outside").unwrap();
    std::os::unix::fs::symlink(outer.path().join("outside.txt"), root.join("out")).unwrap();
    let files = Files::open(&root).unwrap();
    (outer, files)
}

fn respond(files: &Files, head: &str) -> Response {
    match RequestHead::parse(head.as_bytes()) {
        Parsed::Complete(req) => files.respond(&req),
        other => panic!("{head:?}: {other:?}"),
    }
}

/// The bytes one send of the response's element list writes.
fn wire(r: Response) -> String {
    let (a, mut b) = UnixStream::pair().unwrap();
    sendpackets::send(&a, &r.into_elements()).unwrap();
    drop(a);
    let mut got = String::new();
    b.read_to_string(&mut got).unwrap();
    got
}

fn get(path: &str, extra: &str) -> String {
    format!("GET {path} HTTP/1.1\r\nHost: t\r\n{extra}\r\n")
}

#[test]
fn statuses() {
    let (_d, files) = site();
    let cases = [
        (get("/a.txt", ""), Status::Ok, 10),
        (
            get("/a.txt", "Range: bytes=2-4\r\n"),
            Status::PartialContent,
            3,
        ),
        (
            get("/a.txt", "Range: bytes=20-\r\n"),
            Status::RangeNotSatisfiable,
            0,
        ),
        (get("/sub", ""), Status::MovedPermanently, 0),
        (get("/sub/", ""), Status::Ok, 8),
        (get("/missing", ""), Status::NotFound, 14),
        (get("/.env", ""), Status::NotFound, 14),
        (get("/out", ""), Status::Forbidden, 14),
        (get("/../a.txt", ""), Status::BadRequest, 16),
        (get("http://t/a.txt", ""), Status::BadRequest, 16),
        (get("*", ""), Status::BadRequest, 16),
        (
            "POST /a.txt HTTP/1.1\r\nHost: t\r\n\r\n".to_string(),
            Status::MethodNotAllowed,
            23,
        ),
        (
            "HEAD /a.txt HTTP/1.1\r\nHost: t\r\n\r\n".to_string(),
            Status::Ok,
            0,
        ),
    ];
    for (head, status, body_len) in cases {
        let r = respond(&files, &head);
        assert_eq!((r.status(), r.body_len()), (status, body_len), "{head:?}");
        assert_eq!(r.keep_alive(), status != Status::BadRequest, "{head:?}");
        let text = wire(r);
        assert_eq!(
            text.split("\r\n\r\n").nth(1).unwrap().len() as u64,
            body_len,
            "{head:?}"
        );
    }
}

#[test]
fn bytes_and_conditionals() {
    let (_d, files) = site();
    let r = respond(&files, &get("/a.txt", "Range: bytes=-3\r\n"));
    let text = wire(r);
    assert!(
        text.starts_with("HTTP/1.1 206 Partial Content\r\n"),
        "{text}"
    );
    assert!(
        text.contains("\r\nContent-Range: bytes 7-9/10\r\n"),
        "{text}"
    );
    assert!(text.ends_with("\r\n\r\n789"), "{text}");

    let r = respond(&files, &get("/a.txt", ""));
    let etag = String::from_utf8(r.head().to_vec())
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("ETag: ").map(str::to_string))
        .unwrap();
    let r = respond(
        &files,
        &get("/a.txt", &format!("If-None-Match: {etag}\r\n")),
    );
    assert_eq!(r.status(), Status::NotModified);
    let r = respond(
        &files,
        &get("/a.txt", "If-Range: \"other\"\r\nRange: bytes=0-0\r\n"),
    );
    assert_eq!((r.status(), r.body_len()), (Status::Ok, 10));

    let ten = RequestHead::new("GET", "/a.txt", 0);
    let text = wire(files.respond(&ten));
    assert!(text.contains("\r\nConnection: close\r\n"), "{text}");
    let text = wire(files.respond(&ten.header("Connection", b"keep-alive")));
    assert!(text.contains("\r\nConnection: keep-alive\r\n"), "{text}");
    assert!(
        text.contains("\r\nContent-Type: text/plain; charset=utf-8\r\n"),
        "{text}"
    );
}

#[test]
fn options() {
    let (d, files) = site();
    let files = files.dotfiles(true).follow_symlinks(true);
    assert_eq!(respond(&files, &get("/.env", "")).status(), Status::Ok);
    assert_eq!(respond(&files, &get("/out", "")).status(), Status::Ok);
    assert!(Files::open(d.path().join("www/a.txt")).is_err());
    assert!(Files::open(d.path().join("nothing")).is_err());
}

#[test]
fn mounted_under_a_prefix() {
    let (_d, files) = site();
    let files = files.at("/static/");
    assert_eq!(files.prefix(), "/static");
    let r = respond(&files, &get("/static/a.txt", "Range: bytes=0-1\r\n"));
    assert_eq!((r.status(), r.body_len()), (Status::PartialContent, 2));
    assert_eq!(
        respond(&files, &get("/a.txt", "")).status(),
        Status::NotFound
    );
    for (target, location) in [
        ("/static", "/static/"),
        ("/static?x=1", "/static/?x=1"),
        ("/static/sub?x", "/static/sub/?x"),
    ] {
        let r = respond(&files, &get(target, ""));
        assert_eq!(r.status(), Status::MovedPermanently, "{target}");
        let head = String::from_utf8(r.head().to_vec()).unwrap();
        assert!(
            head.contains(&format!("\r\nLocation: {location}\r\n")),
            "{head}"
        );
    }
    // The root has no index.html: 403, as nginx without autoindex.
    assert_eq!(
        respond(&files, &get("/static/", "")).status(),
        Status::Forbidden
    );
    assert_eq!(
        respond(&files, &get("/static/sub/", "")).status(),
        Status::Ok
    );
    assert_eq!(
        respond(&files, &get("/static/../a.txt", "")).status(),
        Status::BadRequest
    );
}

/// Whether the response's body goes from memory (else from the file's descriptor).
fn body_from_memory(r: Response) -> bool {
    let list = r.into_elements();
    assert_eq!(list.len(), 2, "head and body");
    matches!(list[1].payload, sendpackets::Payload::Memory(_))
}

/// A short file is read once per version and sent from memory; a version is told by the
/// validators, so a rewrite in place to the same length (its modification time even set
/// back) is read anew at the next request, and a range comes from the memory too.
#[test]
fn short_files_go_from_memory_and_each_version_is_read_anew() {
    let (d, files) = site();
    let path = d.path().join("www/a.txt");
    assert!(body_from_memory(respond(&files, &get("/a.txt", ""))));
    assert!(wire(respond(&files, &get("/a.txt", ""))).ends_with("\r\n\r\n0123456789"));
    let before = std::fs::metadata(&path).unwrap().modified().unwrap();
    // Past a coarse timestamp tick, so that the change time moves on any file system.
    std::thread::sleep(std::time::Duration::from_millis(30));
    let f = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
    std::os::unix::fs::FileExt::write_all_at(&f, b"abcdefghij", 0).unwrap();
    f.set_modified(before).unwrap();
    drop(f);
    let r = respond(&files, &get("/a.txt", ""));
    assert!(body_from_memory(respond(&files, &get("/a.txt", ""))));
    assert!(wire(r).ends_with("\r\n\r\nabcdefghij"));
    let part = wire(respond(&files, &get("/a.txt", "Range: bytes=2-4\r\n")));
    assert!(part.ends_with("\r\n\r\ncde"), "{part}");
}

/// With `keep_in_memory_below(0)`, and for files at or above the limit, the body goes from
/// the descriptor.
#[test]
fn keep_in_memory_below_sets_the_limit() {
    let (d, files) = site();
    let none = files.keep_in_memory_below(0);
    assert!(!body_from_memory(respond(&none, &get("/a.txt", ""))));
    assert!(wire(respond(&none, &get("/a.txt", ""))).ends_with("\r\n\r\n0123456789"));
    let ten = Files::open(d.path().join("www"))
        .unwrap()
        .keep_in_memory_below(10);
    assert!(!body_from_memory(respond(&ten, &get("/a.txt", ""))));
    let eleven = Files::open(d.path().join("www"))
        .unwrap()
        .keep_in_memory_below(11);
    assert!(body_from_memory(respond(&eleven, &get("/a.txt", ""))));
}

/// Short files are held up to 32 MiB in all: beyond it, further files go from their
/// descriptors (and every body is still the file's bytes).
#[test]
fn memory_held_is_bounded() {
    let dir = tempfile::tempdir().unwrap();
    let len = (64 << 10) - 1;
    let count = 520; // 520 × (64 KiB − 1) is more than 32 MiB
    for i in 0..count {
        std::fs::write(dir.path().join(format!("{i}.bin")), vec![i as u8; len]).unwrap();
    }
    let files = Files::open(dir.path()).unwrap();
    let mut from_memory = 0;
    for i in 0..count {
        let r = respond(&files, &get(&format!("/{i}.bin"), ""));
        assert_eq!(r.body_len(), len as u64);
        let list = r.into_elements();
        if matches!(list[1].payload, sendpackets::Payload::Memory(_)) {
            from_memory += 1;
        }
    }
    assert_eq!(
        from_memory,
        (32 << 20) / len,
        "files held until 32 MiB, then none"
    );
    let last = wire(respond(&files, &get(&format!("/{}.bin", count - 1), "")));
    assert!(last.ends_with(&String::from_utf8(vec![(count - 1) as u8; 16]).unwrap()));
}
