//! Shared helpers of the integration tests: loopback socket pairs with a receiver thread, test
//! files with known contents, and a model of what a list must put on the wire.
#![allow(dead_code, unreachable_pub)]

pub mod cases;
pub mod front;
pub mod model;

#[allow(unused_imports)]
pub use model::{Model, cork_on, model, model_datagrams};

#[allow(unused_imports)]
pub use front::{FRONTS, Front, send_observed_via, send_via};

use std::fs;
use std::io::{self, Read};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::os::fd::{AsFd, BorrowedFd};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::thread::{self, JoinHandle};
use std::time::Duration;

use sendpackets::{Element, Engine, FileIo, SendError, SendOptions, SendReport};

/// No test waits longer than this for a peer.
pub const PATIENCE: Duration = Duration::from_secs(60);

/// Every engine, so one case runs through each.
pub const ENGINES: [Engine; 3] = [Engine::Auto, Engine::ZeroCopy, Engine::Portable];

/// The socket kinds a stream case runs over.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Tcp4,
    Tcp6,
    Unix,
}

pub const STREAM_KINDS: [Kind; 3] = [Kind::Tcp4, Kind::Tcp6, Kind::Unix];

/// The sending end of a connected stream.
#[derive(Debug)]
pub enum Sender {
    Tcp(TcpStream),
    Unix(UnixStream),
}

impl AsFd for Sender {
    fn as_fd(&self) -> BorrowedFd<'_> {
        match self {
            Sender::Tcp(s) => s.as_fd(),
            Sender::Unix(s) => s.as_fd(),
        }
    }
}

impl Sender {
    pub fn shutdown_write(&self) {
        let _ = match self {
            Sender::Tcp(s) => s.shutdown(Shutdown::Write),
            Sender::Unix(s) => s.shutdown(Shutdown::Write),
        };
    }
}

/// The receiving end: a thread reading everything until end of stream.
pub struct Receiver(JoinHandle<io::Result<Vec<u8>>>);

impl Receiver {
    /// Waits for end of stream and returns every byte received.
    pub fn bytes(self) -> Vec<u8> {
        self.0
            .join()
            .expect("receiver thread")
            .expect("receiver read")
    }
}

pub fn read_all(mut r: impl Read) -> io::Result<Vec<u8>> {
    let mut out = Vec::new();
    r.read_to_end(&mut out)?;
    Ok(out)
}

/// The two ends of a connected stream socket of `kind`, the receiver's end read by a thread
/// until end of stream with `read` (which returns what it received).
pub fn stream_pair_with<F>(kind: Kind, read: F) -> (Sender, JoinHandle<io::Result<Vec<u8>>>)
where
    F: FnOnce(ReceiverEnd) -> io::Result<Vec<u8>> + Send + 'static,
{
    match kind {
        Kind::Tcp4 | Kind::Tcp6 => {
            let addr = if kind == Kind::Tcp4 {
                "127.0.0.1:0"
            } else {
                "[::1]:0"
            };
            let listener = TcpListener::bind(addr).expect("bind loopback");
            let client = TcpStream::connect(listener.local_addr().unwrap()).expect("connect");
            let (server, _) = listener.accept().expect("accept");
            server.set_read_timeout(Some(PATIENCE)).unwrap();
            (
                Sender::Tcp(client),
                thread::spawn(move || read(ReceiverEnd::Tcp(server))),
            )
        }
        Kind::Unix => {
            let (a, b) = UnixStream::pair().expect("socketpair");
            b.set_read_timeout(Some(PATIENCE)).unwrap();
            (
                Sender::Unix(a),
                thread::spawn(move || read(ReceiverEnd::Unix(b))),
            )
        }
    }
}

/// A connected stream pair whose receiver reads everything until end of stream.
pub fn stream_pair(kind: Kind) -> (Sender, Receiver) {
    let (s, h) = stream_pair_with(kind, |end| match end {
        ReceiverEnd::Tcp(s) => read_all(s),
        ReceiverEnd::Unix(s) => read_all(s),
    });
    (s, Receiver(h))
}

/// The receiving end handed to a custom reader.
#[derive(Debug)]
pub enum ReceiverEnd {
    Tcp(TcpStream),
    Unix(UnixStream),
}

impl Read for ReceiverEnd {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            ReceiverEnd::Tcp(s) => s.read(buf),
            ReceiverEnd::Unix(s) => s.read(buf),
        }
    }
}

/// Sends `list` over a fresh pair of `kind` with `engine`, closes the sender, and returns the
/// result and every byte the receiver got.
pub fn roundtrip(
    kind: Kind,
    engine: Engine,
    list: &[Element],
) -> (Result<SendReport, SendError>, Vec<u8>) {
    roundtrip_with(kind, list, &SendOptions::new().engine(engine))
}

pub fn roundtrip_with(
    kind: Kind,
    list: &[Element],
    options: &SendOptions,
) -> (Result<SendReport, SendError>, Vec<u8>) {
    roundtrip_via(Front::Blocking, kind, list, options)
}

/// [`roundtrip_with`] through `front`.
pub fn roundtrip_via(
    front: Front,
    kind: Kind,
    list: &[Element],
    options: &SendOptions,
) -> (Result<SendReport, SendError>, Vec<u8>) {
    let (sender, receiver) = stream_pair(kind);
    let result = send_via(front, &sender, list, options);
    drop(sender);
    (result, receiver.bytes())
}

/// Asserts that `list` sends exactly `model(list)` over every stream kind and engine, through
/// every front end.
pub fn assert_sends_exactly(list: &[Element]) {
    let expected = model(list).expect("the model reads every file");
    for front in FRONTS {
        for kind in STREAM_KINDS {
            for engine in ENGINES {
                let opts = SendOptions::new().engine(engine);
                let (result, got) = roundtrip_via(front, kind, list, &opts);
                let report =
                    result.unwrap_or_else(|e| panic!("{front:?} {kind:?} {engine:?}: {e}"));
                assert_eq!(
                    report.bytes_sent,
                    expected.len() as u64,
                    "{front:?} {kind:?} {engine:?}"
                );
                assert_eq!(report.elements, list.len());
                assert!(
                    got == expected,
                    "{front:?} {kind:?} {engine:?}: received bytes differ from the model"
                );
            }
            // Where file reads happen matters to the async fronts: each choice, same bytes.
            for file_io in [FileIo::Readahead, FileIo::Offload] {
                let opts = SendOptions::new().file_io(file_io);
                let (result, got) = roundtrip_via(front, kind, list, &opts);
                let report =
                    result.unwrap_or_else(|e| panic!("{front:?} {kind:?} {file_io:?}: {e}"));
                assert_eq!(report.bytes_sent, expected.len() as u64);
                assert!(
                    got == expected,
                    "{front:?} {kind:?} {file_io:?}: bytes differ"
                );
            }
        }
    }
}

/// A temporary directory of test files.
pub struct Files {
    pub dir: tempfile::TempDir,
}

impl Files {
    pub fn new() -> Self {
        Files {
            dir: tempfile::Builder::new()
                .prefix(TEST_FILES_PREFIX)
                .tempdir()
                .expect("tempdir"),
        }
    }

    /// A file of `len` bytes whose contents depend on `seed` and the position.
    pub fn make(&self, name: &str, len: usize, seed: u8) -> PathBuf {
        let path = self.dir.path().join(name);
        fs::write(&path, pattern(len, seed)).expect("write test file");
        path
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }
}

/// `len` bytes that differ with position and seed (no two nearby windows alike).
pub fn pattern(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| {
            (i as u32)
                .wrapping_mul(2_654_435_761)
                .rotate_left(seed as u32 % 31) as u8
                ^ seed
        })
        .collect()
}

/// Every directory of test files starts with this name.
pub const TEST_FILES_PREFIX: &str = "sendpackets-test-";

/// The descriptors of this process that name a test file (`Files`), as `fd -> path`.
pub fn test_files_open() -> Vec<String> {
    fs::read_dir("/proc/self/fd")
        .map(|dir| {
            dir.filter_map(|e| {
                let e = e.ok()?;
                let to = fs::read_link(e.path()).ok()?;
                let to = to.to_string_lossy();
                to.contains(TEST_FILES_PREFIX)
                    .then(|| format!("{} -> {to}", e.file_name().to_string_lossy()))
            })
            .collect()
        })
        .unwrap_or_default()
}

/// Number of open descriptors of this process.
///
/// The first call makes (and drops) one tokio runtime first: the first runtime with signal
/// handling enabled leaves a socket pair open for the rest of the process (tokio's signal
/// globals; `cargo test --workspace` enables tokio's `signal` feature, which the command line
/// uses). Made before any count, it is never taken for a descriptor a send left open.
pub fn open_fds() -> usize {
    #[cfg(feature = "tokio")]
    {
        static GLOBALS: std::sync::Once = std::sync::Once::new();
        GLOBALS.call_once(|| {
            drop(
                tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .expect("tokio runtime"),
            );
        });
    }
    fs::read_dir("/proc/self/fd")
        .expect("/proc/self/fd")
        .count()
}

/// Runs `f` on a thread and fails the test if it takes longer than `PATIENCE`.
pub fn within_patience<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    let (tx, rx) = std::sync::mpsc::channel();
    thread::spawn(move || {
        let _ = tx.send(f());
    });
    rx.recv_timeout(PATIENCE)
        .expect("the operation finished within the time limit (no hang)")
}

pub fn is_under(path: &Path, dir: &Path) -> bool {
    path.starts_with(dir)
}
