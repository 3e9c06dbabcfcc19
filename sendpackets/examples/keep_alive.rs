//! A keep-alive HTTP/1.1 request/response loop on tokio: one task per connection reads
//! requests (parsed by hand here, for brevity: a real server uses `httparse`) and answers each
//! with header + file in one send, through a `sendpackets::tokio::Connection` (the socket
//! checked once) and a `FileCache` (each file opened and checked once). A client on the same
//! runtime sends several requests on one connection, including a 404, and checks every byte.
//!
//! ```text
//! cargo run --release -p sendpackets --example keep_alive
//! ```

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use sendpackets::{Element, FileCache, SendOptions};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

type Error = Box<dyn std::error::Error + Send + Sync>;

/// Serves one connection until the client closes it.
async fn serve(stream: TcpStream, root: Arc<PathBuf>, cache: Arc<FileCache>) -> Result<(), Error> {
    // Each response is one send (header + body): Nagle has nothing to wait for.
    stream.set_nodelay(true)?;
    let mut conn = sendpackets::tokio::Connection::new(stream)?;
    // A client that stops reading for 10 s is given up on.
    // A client that stops reading for 10 s is dropped, with the exact progress in the error.
    conn.set_options(SendOptions::new().stall_timeout(Duration::from_secs(10)));
    let mut buf = vec![0u8; 8192];
    let mut have = 0;
    loop {
        let Some(end) = buf[..have].windows(4).position(|w| w == b"\r\n\r\n") else {
            if have == buf.len() {
                return Err("request head too large".into());
            }
            let n = conn.get_mut().read(&mut buf[have..]).await?;
            if n == 0 {
                return Ok(()); // the client closed the connection
            }
            have += n;
            continue;
        };
        let head = String::from_utf8_lossy(&buf[..end]).into_owned();
        buf.copy_within(end + 4..have, 0);
        have -= end + 4;
        let target = head.split(' ').nth(1).unwrap_or("/");
        let name = target.trim_start_matches('/');
        // Only plain names inside the root (a real server maps paths with care).
        let file = if name.is_empty() || name.contains(['/', '\\']) || name.starts_with('.') {
            None
        } else {
            cache.open(root.join(name)).ok()
        };
        match file {
            Some(file) => {
                let header = format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n", file.len());
                let list = [Element::memory(header), file.element(..)];
                conn.send(&list).await?;
            }
            None => {
                let body = "not found\n";
                let header = format!(
                    "HTTP/1.1 404 Not Found\r\nContent-Length: {}\r\n\r\n",
                    body.len()
                );
                conn.send(&[Element::memory(header), Element::memory(body)])
                    .await?;
            }
        }
    }
}

/// Reads one response with a `Content-Length` body; returns (status line, body).
async fn read_response(client: &mut TcpStream) -> Result<(String, Vec<u8>), Error> {
    let mut head = Vec::new();
    while !head.ends_with(b"\r\n\r\n") {
        head.push(client.read_u8().await?);
    }
    let head = String::from_utf8(head)?;
    let len: usize = head
        .lines()
        .find_map(|l| l.strip_prefix("Content-Length: "))
        .ok_or("no Content-Length")?
        .trim()
        .parse()?;
    let mut body = vec![0u8; len];
    client.read_exact(&mut body).await?;
    Ok((head.lines().next().unwrap_or_default().to_string(), body))
}

fn write_file(dir: &Path, name: &str, len: usize) -> std::io::Result<Vec<u8>> {
    let data: Vec<u8> = (0..len).map(|i| (i * 31 % 251) as u8).collect();
    std::fs::write(dir.join(name), &data)?;
    Ok(data)
}

#[tokio::main]
async fn main() -> Result<(), Error> {
    let dir = tempfile::tempdir()?;
    let small = write_file(dir.path(), "small.txt", 1000)?;
    let large = write_file(dir.path(), "large.bin", 3 << 20)?;
    let root = Arc::new(dir.path().to_path_buf());
    let cache = Arc::new(FileCache::new(Duration::from_secs(1), 1000));

    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let server = tokio::spawn(async move {
        let (stream, _) = listener.accept().await?;
        serve(stream, root, cache).await
    });

    let mut client = TcpStream::connect(addr).await?;
    let requests = [
        ("/small.txt", "HTTP/1.1 200 OK", &small[..]),
        ("/large.bin", "HTTP/1.1 200 OK", &large[..]),
        ("/missing", "HTTP/1.1 404 Not Found", &b"not found\n"[..]),
        ("/small.txt", "HTTP/1.1 200 OK", &small[..]),
    ];
    for (path, status, want) in requests {
        let request = format!("GET {path} HTTP/1.1\r\nHost: localhost\r\n\r\n");
        client.write_all(request.as_bytes()).await?;
        let (line, body) = read_response(&mut client).await?;
        if line != status || body != want {
            return Err(format!("{path}: got {line:?} and {} body bytes", body.len()).into());
        }
        println!("{path}: {line}, {} bytes, verified", body.len());
    }
    drop(client);
    server.await??;
    Ok(())
}
