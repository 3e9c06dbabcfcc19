//! Sends two HTTP/1.1 responses on one keep-alive connection over loopback TCP — a whole file
//! (200) and a byte range of it (206) — each as header + file range in one call, and checks
//! every byte the peer received against the file read directly.
//!
//! Correct protocol: `Content-Length` is exactly the body that follows (nothing after it, or
//! the next response on the connection would start with stray bytes), and the range response
//! says which bytes it carries.
//!
//! ```text
//! cargo run --release -p sendpackets --example http_response
//! ```

use std::io::Read;
use std::net::{TcpListener, TcpStream};
use std::time::Instant;

use sendpackets::{Connection, Element, OpenFile, SendOptions, TransmitFlags};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = tempfile::tempdir()?;
    let body_path = dir.path().join("body.bin");
    let body: Vec<u8> = (0..4u32 << 20)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    std::fs::write(&body_path, &body)?;

    let listener = TcpListener::bind("127.0.0.1:0")?;
    let client = TcpStream::connect(listener.local_addr()?)?;
    let (server, _) = listener.accept()?;
    let receiver = std::thread::spawn(move || {
        let mut server = server;
        let mut got = Vec::new();
        server.read_to_end(&mut got).map(|_| got)
    });

    // Open and check the file once; its length goes in the headers.
    let file = OpenFile::open(&body_path)?;
    client.set_nodelay(true)?; // every response is one send: nothing to wait for
    let mut conn = Connection::new(&client)?;
    let whole = format!(
        "HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\nContent-Length: {}\r\n\r\n",
        file.len()
    );
    let (first, last) = (1000u64, 2023u64);
    let partial = format!(
        "HTTP/1.1 206 Partial Content\r\nContent-Range: bytes {first}-{last}/{}\r\n\
         Content-Length: {}\r\n\r\n",
        file.len(),
        last - first + 1
    );
    let start = Instant::now();
    let mut sent = 0;
    sent += conn
        .send(&[Element::memory(whole.clone()), file.element(..)])?
        .bytes_sent;
    let last_response = [Element::memory(partial.clone()), file.element(first..=last)];
    conn.set_options(SendOptions::new().flags(TransmitFlags::DISCONNECT));
    let report = conn.send(&last_response)?;
    sent += report.bytes_sent;
    let elapsed = start.elapsed();
    let got = receiver.join().expect("receiver")?;

    let mut expected = whole.into_bytes();
    expected.extend_from_slice(&body);
    expected.extend_from_slice(partial.as_bytes());
    expected.extend_from_slice(&body[first as usize..=last as usize]);
    if got != expected {
        return Err("the receiver's bytes differ from the files".into());
    }
    println!(
        "sent {sent} bytes in {elapsed:.2?}, two responses, verified byte for byte \
         (a single timing: see sendpackets-bench for speed)",
    );
    println!("kernel calls of the last response: {:?}", report.calls);
    Ok(())
}
