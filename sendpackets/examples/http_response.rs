//! Sends HTTP-like responses (header + file + trailer) over loopback TCP and checks every byte
//! the peer received against the file read directly.
//!
//! ```text
//! cargo run --release -p sendpackets --example http_response
//! ```

use std::io::Read;
use std::net::{TcpListener, TcpStream};
use std::time::Instant;

use sendpackets::{Element, SendOptions, TransmitFlags};

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

    let header = format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n", body.len());
    let list = [
        Element::memory(header.clone()),
        Element::file(&body_path, ..),
        Element::memory("\r\n").end_of_packet(),
        Element::memory("HTTP/1.1 206 Partial Content\r\n\r\n"),
        Element::file(&body_path, 1000..2024),
        Element::memory("\r\n").end_of_packet(),
    ];
    let start = Instant::now();
    let report = sendpackets::send_with(
        &client,
        &list,
        &SendOptions::new().flags(TransmitFlags::DISCONNECT),
    )?;
    let elapsed = start.elapsed();
    let got = receiver.join().expect("receiver")?;

    let mut expected = header.into_bytes();
    expected.extend_from_slice(&body);
    expected.extend_from_slice(b"\r\nHTTP/1.1 206 Partial Content\r\n\r\n");
    expected.extend_from_slice(&body[1000..2024]);
    expected.extend_from_slice(b"\r\n");
    if got != expected {
        return Err("the receiver's bytes differ from the files".into());
    }
    println!(
        "sent {} bytes in {:.2?} ({:.2} GB/s), verified byte for byte",
        report.bytes_sent,
        elapsed,
        report.bytes_sent as f64 / elapsed.as_secs_f64() / 1e9
    );
    println!("kernel calls: {:?}", report.calls);
    Ok(())
}
