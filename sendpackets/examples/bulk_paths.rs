//! `sendfile` against read/write for file ranges of growing size over loopback TCP, measured
//! side by side (interleaved rounds, median of the last four of five): the measurement behind
//! `LOOPBACK_COPY_MIN`.
//!
//! `cargo run --release -p sendpackets --example bulk_paths`

use std::io::Read;

use sendpackets::{Element, Engine, FileHandle, SendOptions};

const FILE: u64 = 256 << 20;

/// CPU seconds of this process so far (user + system, every thread).
fn cpu_seconds() -> f64 {
    // SAFETY: an all-zero `rusage` is a valid value for getrusage to overwrite.
    let mut u: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: `u` is a valid, writable rusage.
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut u) };
    let tv = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    tv(u.ru_utime) + tv(u.ru_stime)
}

/// Sends `count` ranges of `size` bytes over a fresh loopback connection; (GB/s, CPU s/GB).
fn run(file: &FileHandle, size: u64, count: u64, engine: Engine) -> std::io::Result<(f64, f64)> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    let a = std::net::TcpStream::connect(listener.local_addr()?)?;
    let (b, _) = listener.accept()?;
    let reader = std::thread::spawn(move || {
        let mut b = b;
        let mut buf = vec![0u8; 1 << 20];
        let mut total = 0u64;
        loop {
            match b.read(&mut buf)? {
                0 => return Ok::<_, std::io::Error>(total),
                n => total += n as u64,
            }
        }
    });
    let opts = SendOptions::new().engine(engine);
    let (t, cpu) = (std::time::Instant::now(), cpu_seconds());
    for j in 0..count {
        let off = (j * size) % (FILE - size + 1);
        let list = [Element::shared_handle(file.clone(), off..off + size)];
        sendpackets::send_with(&a, &list, &opts).map_err(std::io::Error::from)?;
    }
    drop(a);
    let got = reader.join().expect("reader")?;
    assert_eq!(got, count * size);
    let gb = got as f64 / 1e9;
    Ok((gb / t.elapsed().as_secs_f64(), (cpu_seconds() - cpu) / gb))
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let path = std::env::temp_dir().join(format!("sendpackets-bulk-{}.bin", std::process::id()));
    let data: Vec<u8> = (0..FILE as u32).map(|i| (i % 251) as u8).collect();
    std::fs::write(&path, &data)?;
    let file = FileHandle::new(std::fs::File::open(&path)?);
    let engines = [
        ("sendfile (ZeroCopy)", Engine::ZeroCopy),
        ("copy, 1 MiB (Portable)", Engine::Portable),
        ("Auto", Engine::Auto),
    ];
    println!("| range | path | GB/s | CPU s/GB |");
    println!("|---|---|---|---|");
    for size in [256u64 << 10, 1 << 20, 4 << 20, 16 << 20, 256 << 20] {
        let count = ((512u64 << 20) / size).min(400);
        let mut results = vec![Vec::new(); engines.len()];
        for round in 0..5 {
            for (i, &(_, engine)) in engines.iter().enumerate() {
                let r = run(&file, size, count, engine)?;
                if round > 0 {
                    results[i].push(r);
                }
            }
        }
        for (i, (name, _)) in engines.iter().enumerate() {
            let v = &mut results[i];
            v.sort_by(|a, b| a.0.total_cmp(&b.0));
            let (gbps, cpu) = v[v.len() / 2];
            println!("| {} KiB | {name} | {gbps:.2} | {cpu:.3} |", size >> 10);
        }
    }
    std::fs::remove_file(&path)?;
    Ok(())
}
