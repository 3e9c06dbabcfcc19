//! How much a send of a file that is not in the page cache stalls a tokio runtime, for each
//! `FileIo` choice, measured side by side in one run.
//!
//! A 256 MiB file is written and evicted from the page cache (`POSIX_FADV_DONTNEED`) before each
//! run. On a current-thread runtime, one task sends the file over a Unix stream while another
//! ticks every millisecond; the worst tick lateness is how long the send held the thread.
//!
//! `cargo run --release -p sendpackets --example cold_files`

use std::io::Read;
use std::time::{Duration, Instant};

use sendpackets::{Element, FileIo, SendOptions};

const SIZE: usize = 256 << 20;

fn evict(path: &std::path::Path) -> std::io::Result<()> {
    let f = std::fs::File::open(path)?;
    f.sync_all()?;
    rustix::fs::fadvise(&f, 0, None, rustix::fs::Advice::DontNeed)?;
    Ok(())
}

fn run(path: &std::path::Path, file_io: FileIo) -> std::io::Result<(Duration, Duration, u64)> {
    evict(path)?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let (a, b) = std::os::unix::net::UnixStream::pair()?;
    let reader = std::thread::spawn(move || {
        let mut b = b;
        let mut buf = vec![0u8; 1 << 20];
        let mut n = 0u64;
        loop {
            match b.read(&mut buf)? {
                0 => return Ok::<_, std::io::Error>(n),
                k => n += k as u64,
            }
        }
    });
    let (elapsed, worst) = rt
        .block_on(async {
            a.set_nonblocking(true)?;
            let a = tokio::net::UnixStream::from_std(a)?;
            let done = std::sync::atomic::AtomicBool::new(false);
            let ticker = async {
                let mut worst = Duration::ZERO;
                while !done.load(std::sync::atomic::Ordering::Relaxed) {
                    let t = Instant::now();
                    tokio::time::sleep(Duration::from_millis(1)).await;
                    worst = worst.max(t.elapsed().saturating_sub(Duration::from_millis(1)));
                }
                worst
            };
            let list = [Element::memory("header"), Element::file(path, ..)];
            let opts = SendOptions::new().file_io(file_io);
            let send = async {
                let t = Instant::now();
                let r = sendpackets::tokio::send_with(&a, &list, &opts).await;
                done.store(true, std::sync::atomic::Ordering::Relaxed);
                r.map(|_| t.elapsed())
            };
            let (elapsed, worst) = tokio::join!(send, ticker);
            Ok::<_, Box<dyn std::error::Error + Send + Sync>>((elapsed?, worst))
        })
        .map_err(std::io::Error::other)?;
    let received = reader.join().expect("reader")?;
    Ok((elapsed, worst, received))
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = tempfile_dir()?;
    let path = dir.join("cold.bin");
    let chunk: Vec<u8> = (0..1 << 20).map(|i| (i * 31 % 251) as u8).collect();
    {
        use std::io::Write;
        let mut f = std::fs::File::create(&path)?;
        for _ in 0..SIZE / chunk.len() {
            f.write_all(&chunk)?;
        }
    }
    println!("| file_io | send time | worst runtime stall |");
    println!("|---|---|---|");
    for round in 0..3 {
        for file_io in [FileIo::Inline, FileIo::Readahead, FileIo::Offload] {
            let (elapsed, worst, received) = run(&path, file_io)?;
            assert_eq!(received, SIZE as u64 + 6);
            println!(
                "| {file_io:?} (round {}) | {:.1} ms | {:.2} ms |",
                round + 1,
                elapsed.as_secs_f64() * 1e3,
                worst.as_secs_f64() * 1e3
            );
        }
    }
    std::fs::remove_dir_all(&dir)?;
    Ok(())
}

fn tempfile_dir() -> std::io::Result<std::path::PathBuf> {
    // Next to the build, not in /tmp (often tmpfs, where nothing is ever cold).
    let dir = std::env::current_dir()?.join(format!("target/cold-files-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}
