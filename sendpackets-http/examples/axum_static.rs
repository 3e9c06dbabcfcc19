//! An axum application whose static files go out zero-copy.
//!
//! ```text
//! cargo run -p sendpackets-http --example axum_static -- --dir ./assets --listen 127.0.0.1:8080
//! curl http://127.0.0.1:8080/api/hello          # hello, from the axum handler
//! curl -O http://127.0.0.1:8080/static/FILE     # FILE under ./assets, sent with sendfile
//! ```
//!
//! Prints the address it listens on as its first line of standard output. Stops on Ctrl-C
//! once the requests in flight are answered.

use std::net::SocketAddr;
use std::path::PathBuf;

use axum::Router;
use axum::routing::get;
use sendpackets_http::StaticFiles;

fn usage() -> ! {
    eprintln!("usage: axum_static --dir DIR --listen ADDR");
    std::process::exit(2);
}

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let mut dir: Option<PathBuf> = None;
    let mut listen: Option<SocketAddr> = None;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--dir" => dir = args.next().map(PathBuf::from),
            "--listen" => listen = args.next().and_then(|s| s.parse().ok()),
            _ => usage(),
        }
    }
    let (Some(dir), Some(listen)) = (dir, listen) else {
        usage()
    };

    let router = Router::new().route("/api/hello", get(|| async { "hello" }));
    let listener = tokio::net::TcpListener::bind(listen).await?;
    println!("{}", listener.local_addr()?);

    sendpackets_http::serve(listener, router, StaticFiles::new(dir).at("/static"))
        .with_graceful_shutdown(async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await
}
