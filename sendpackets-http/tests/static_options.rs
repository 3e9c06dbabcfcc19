//! `Files` options given through `StaticFiles::files`, applied when `serve` starts: one request each over
//! a raw socket, checked by status, headers and body.

mod util;

use std::time::Duration;

use util::{Raw, Running, Site, body_of, header_value, status_of};

/// One request on a fresh connection; the response as sent.
fn get(srv: &Running, request: &str) -> Vec<u8> {
    let mut c = Raw::connect(srv.addr);
    c.send(request.as_bytes());
    c.response(request.starts_with("HEAD "))
}

fn plain(path: &str) -> String {
    format!("GET {path} HTTP/1.1\r\nHost: t\r\n\r\n")
}

#[test]
fn cache_control_and_per_pattern() {
    let site = Site::new();
    let srv = Running::start_files(&site, None, |f| {
        f.files(|f| {
            f.cache_control("no-cache")?
                .cache_control_for("*.bin", "public, max-age=31536000, immutable")
        })
    });
    let small = get(&srv, &plain("/static/small.txt"));
    assert_eq!(
        header_value(&small, "cache-control").as_deref(),
        Some("no-cache")
    );
    let big = get(&srv, &plain("/static/big.bin"));
    assert_eq!(
        header_value(&big, "cache-control").as_deref(),
        Some("public, max-age=31536000, immutable")
    );
    assert_eq!(body_of(&big), site.big);
}

#[test]
fn cors_origin_and_preflight() {
    let site = Site::new();
    let srv = Running::start_files(&site, None, |f| {
        f.files(|f| f.cors_origin("https://example.org"))
    });
    let r = get(
        &srv,
        "GET /static/small.txt HTTP/1.1\r\nHost: t\r\nOrigin: https://example.org\r\n\r\n",
    );
    assert_eq!(status_of(&r), 200);
    assert_eq!(
        header_value(&r, "access-control-allow-origin").as_deref(),
        Some("https://example.org")
    );
    let r = get(
        &srv,
        "OPTIONS /static/small.txt HTTP/1.1\r\nHost: t\r\nOrigin: https://example.org\r\n\
         Access-Control-Request-Method: GET\r\n\r\n",
    );
    assert_eq!(status_of(&r), 204);
    assert_eq!(
        header_value(&r, "access-control-allow-methods").as_deref(),
        Some("GET, HEAD")
    );
    // Nothing under the prefix reached the application.
    assert!(srv.seen().is_empty(), "{:?}", srv.seen());
}

#[test]
fn precompressed_sidecar() {
    let site = Site::new();
    std::fs::write(site.root().join("small.txt.gz"), b"gzip bytes").unwrap();
    let srv = Running::start_files(&site, None, |f| f.files(|f| Ok(f.precompressed(true))));
    let r = get(
        &srv,
        "GET /static/small.txt HTTP/1.1\r\nHost: t\r\nAccept-Encoding: gzip\r\n\r\n",
    );
    assert_eq!(
        header_value(&r, "content-encoding").as_deref(),
        Some("gzip")
    );
    assert_eq!(header_value(&r, "vary").as_deref(), Some("Accept-Encoding"));
    assert_eq!(body_of(&r), b"gzip bytes");
    let r = get(&srv, &plain("/static/small.txt"));
    assert_eq!(header_value(&r, "content-encoding"), None);
    assert_eq!(body_of(&r), b"hello, world\n");
}

#[test]
fn directory_listing() {
    let site = Site::new();
    std::fs::create_dir(site.root().join("d")).unwrap();
    std::fs::write(site.root().join("d/<b>.txt"), "x").unwrap();
    let srv = Running::start_files(&site, None, |f| f.files(|f| Ok(f.list(true))));
    let r = get(&srv, &plain("/static/d/"));
    assert_eq!(status_of(&r), 200);
    let page = String::from_utf8(body_of(&r)).unwrap();
    assert!(page.contains("&lt;b&gt;.txt"), "{page}");
    // Without the option the same directory is 403.
    drop(srv);
    let srv = Running::start(&site);
    assert_eq!(status_of(&get(&srv, &plain("/static/d/"))), 403);
}

/// S2 through the bridge: with the open-file cache, a file truncated in place is answered
/// with its new length and bytes.
#[test]
fn open_file_cache_sees_a_file_truncated_in_place() {
    let site = Site::new();
    let srv = Running::start_files(&site, None, |f| {
        f.files(|f| Ok(f.open_file_cache(Some(Duration::from_secs(600)))))
    });
    assert_eq!(
        body_of(&get(&srv, &plain("/static/small.txt"))),
        b"hello, world\n"
    );
    std::fs::write(site.root().join("small.txt"), "short\n").unwrap();
    let r = get(&srv, &plain("/static/small.txt"));
    assert_eq!(status_of(&r), 200);
    assert_eq!(body_of(&r), b"short\n");
}

/// A value `Files` refuses makes the server fail at start.
#[test]
fn a_refused_option_fails_the_start() {
    let site = Site::new();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let err = rt
        .block_on(async {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
            let files = sendpackets_http::StaticFiles::new(site.root())
                .at("/static")
                .files(|f| f.cache_control("bad\r\nvalue"));
            sendpackets_http::serve(listener, axum::Router::new(), files).await
        })
        .unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::InvalidInput);
}
