//! Send an ordered list of file ranges and memory buffers over a connected socket, as fast as
//! the kernel allows.
//!
//! This is the Rust home of .NET's `Socket.SendPacketsAsync` and Win32 `TransmitPackets`: a
//! server describes a response as a list of [`Element`]s — header bytes, a range of a file, more
//! bytes — and one call sends it, choosing per element between `sendfile`, coalesced vectored
//! writes and TCP corking, with a portable read/write path that always works.
//!
//! ```
//! use sendpackets::Element;
//! use std::io::Read;
//! use std::net::{TcpListener, TcpStream};
//!
//! # let dir = std::env::temp_dir().join(format!("sendpackets-crate-doc-{}", std::process::id()));
//! # std::fs::create_dir_all(&dir)?;
//! let page = dir.join("page.html");
//! std::fs::write(&page, "<h1>hi</h1>")?;
//!
//! let listener = TcpListener::bind("127.0.0.1:0")?;
//! let client = TcpStream::connect(listener.local_addr()?)?;
//! let (mut server, _) = listener.accept()?;
//!
//! let response = [
//!     Element::memory("HTTP/1.1 200 OK\r\nContent-Length: 11\r\n\r\n"),
//!     Element::file(&page, ..),
//! ];
//! let report = sendpackets::send(&client, &response)?;
//! drop(client);
//!
//! let mut got = String::new();
//! server.read_to_string(&mut got)?;
//! assert!(got.ends_with("\r\n\r\n<h1>hi</h1>"));
//! assert_eq!(report.bytes_sent as usize, got.len());
//! # std::fs::remove_dir_all(&dir)?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # What a send does
//!
//! 1. **Checks, before the first byte.** The socket must be connected ([`ErrorKind::NotConnected`],
//!    even for an empty list). Every path is opened (each failure its own [`ErrorKind`], naming
//!    the element and path), every file is checked to be a regular file, and every range is
//!    checked against the file's length. On datagram sockets every datagram's size is checked.
//!    Any failure here means 0 bytes were sent, and every file the send opened is closed again.
//! 2. **Sending.** Neighbouring memory elements and small file ranges (read with `pread` into a
//!    bounded scratch buffer) go out together in one vectored `sendmsg`; large file ranges go out
//!    with `sendfile` at explicit offsets (a handle's cursor is never used or moved), each call
//!    capped at the send size. On TCP, bytes before such a range go out with `MSG_MORE`; where
//!    bytes follow a range (a trailer) the socket is corked instead, and always uncorked at the
//!    end, errors included.
//! 3. **Errors carry progress.** A failure after bytes went out says exactly how many bytes the
//!    kernel accepted, how many elements completed and how far into the current one, so the
//!    caller can resume ([`Progress::remaining`] of [`SendError::progress`]).
//!
//! **Short lists** (at most 64 KiB and 64 elements, every length known, no `DISCONNECT`, not
//! [`Engine::ZeroCopy`]) take an express path that keeps the same guarantees with fewer system
//! calls: every file range is read into one buffer first, then the buffer goes out with one
//! call. Nothing is sent unless every read succeeded, so the checks of step 1 run only when
//! something fails before the first byte, and then report exactly what they would have.
//!
//! A file that shrinks during the send is an [`ErrorKind::FileTruncated`] error, never a hang or
//! a short message; a file that grows sends only the range decided at the start; a file named by
//! path that is replaced or changed between the checks and its use (it may be reopened when the
//! list names more files than may stay open) is an [`ErrorKind::FileChanged`] error. Files on
//! pseudo file systems (procfs, sysfs), whose sizes are made up, are read once into memory at the
//! start. Where the kernel refuses `sendfile` for a file (`EINVAL`, `ENOSYS`, `EOPNOTSUPP`), the
//! send falls back to reading and writing it, transparently.
//!
//! # A server's sends
//!
//! - **One check per connection**: [`Connection`] (blocking) and
//!   [`tokio::Connection`] (async) ask the socket what it is once,
//!   when made, and every send on them skips those system calls. Their sends take
//!   `&mut self`: one send at a time, so two can never interleave on the socket. The free
//!   functions cannot see other sends: two running at once on one socket (from two threads)
//!   interleave their bytes; don't.
//! - **Options**: a one-off send takes them as an argument ([`send_with`],
//!   [`tokio::send_with`]); a connection carries them ([`Connection::set_options`]): the limits
//!   a server sets once per client, and [`TransmitFlags::DISCONNECT`] before a last response.
//! - **Files sent again and again**: [`OpenFile`] opens and checks a file once (regular,
//!   readable, its length known for a `Content-Length`), then sends any range of it without
//!   asking the file again; [`FileCache`] keeps them open with a validity period, as nginx's
//!   `open_file_cache` does.
//! - **Time limits**: [`SendOptions::timeout`] and [`SendOptions::stall_timeout`] end a send with
//!   [`ErrorKind::TimedOut`] and its exact progress, on every front end; a client that stops
//!   reading is given up on.
//! - **`TCP_NODELAY` and corking.** A response that is one send needs no help from Nagle's
//!   algorithm: set `TCP_NODELAY` on the connection (`stream.set_nodelay(true)`), or a small
//!   response can wait up to 40 ms for the peer's delayed ACK before it leaves. A header before
//!   a file range that goes out with `sendfile` is sent with `MSG_MORE`, so header and file
//!   share segments without a cork (under `bbr` a corked response costs a pacing timer, and up
//!   to 3× the CPU). Where bytes follow such a range (a trailer, the next message of a list),
//!   the send corks the TCP socket (`TCP_CORK`, as nginx's `tcp_nopush`) so that the range's tail and the
//!   trailer fill whole segments, pushes at each end-of-packet mark, and always uncorks before
//!   it returns (errors and a dropped async send included): the next response never waits
//!   behind a cork. The rule is the same over loopback and over a real link.
//!
//! # Memory per send
//!
//! A send holds at most 256 KiB of copy buffers (page-aligned), but for a burst of datagrams
//! (up to 1 MiB, or one datagram if larger): large file ranges go out with `sendfile` (no
//! copy), and the portable engine and [`FileIo::Offload`] copy in 128 KiB chunks. 1,000
//! concurrent async sends of 8 MiB files peak near 80 MiB RSS with `sendfile` and near
//! 200 MiB copying (`sendpackets-bench inflight`). After a send returns, a
//! thread keeps at most two 64 KiB buffers for its next send.
//!
//! # Hazards
//!
//! - **Zero-copy reads late.** With `sendfile` the kernel reads file pages after the call
//!   returns; bytes changed in the file in that window can reach the wire.
//! - **Sent is not delivered.** A successful send means the local kernel accepted every byte.
//! - **SIGPIPE.** Vectored writes use `MSG_NOSIGNAL`, but `sendfile` has no such flag: sending a
//!   file to a peer that closed raises `SIGPIPE` unless the process ignores it. Rust programs
//!   ignore it by default; programs that restore it should expect it.
//!
//! # Engines
//!
//! [`Engine::Auto`] (the default) picks per element; [`Engine::ZeroCopy`] sends every file range
//! with `sendfile`; [`Engine::Portable`] uses only POSIX calls (`pread`, `sendmsg`, `poll`).
//!
//! # Datagram sockets
//!
//! On a connected UDP or Unix datagram socket, the elements up to and including one marked
//! [`end_of_packet`](Element::end_of_packet) form one datagram; the elements after the last
//! marker form a final datagram. A datagram over the socket's limit (65,507 bytes for UDP over
//! IPv4, 65,527 over IPv6) is an [`ErrorKind::MessageTooLarge`] error naming the element, and
//! nothing is sent (the limit of a Unix datagram socket is its send buffer). An end-of-packet
//! marker with no bytes since the previous one sends an empty (zero-length) datagram; elements
//! after the last marker that hold no bytes send nothing.
//!
//! Datagrams are read into memory (never `sendfile`, which would split or refuse them) in
//! bursts of up to 1,024 datagrams or 1 MiB, and a burst goes out with one `sendmmsg`. On UDP,
//! each run of equal-size datagrams (the last of a run may be shorter) is one message with
//! generic segmentation offload (`UDP_SEGMENT`, up to 64 datagrams): the kernel cuts it into
//! datagrams, so a run costs one trip through the stack. GSO is probed once per send and used
//! only for datagrams that fit the path MTU whole; if the route refuses it (`EIO`, `EINVAL`,
//! `EMSGSIZE`), the send goes on one datagram per message. [`Engine::Portable`] sends one
//! datagram per `sendmsg`. A failure reports whole datagrams sent
//! ([`Progress::datagrams_sent`]) and their bytes.

#![deny(missing_docs, missing_debug_implementations, rust_2018_idioms)]
#![deny(unsafe_op_in_unsafe_fn)]
// Unsafe code lives only where the system calls do (`sys`); each block says why it is sound.
#![deny(unsafe_code)]
#![doc(test(attr(deny(warnings))))]

#[cfg(not(target_os = "linux"))]
compile_error!(
    "sendpackets supports Linux only: its paths are sendfile, MSG_MORE, TCP_CORK, sendmmsg with \
     UDP GSO and openat2, and no other system is built or tested"
);

mod blocking;
mod connection;
mod datagram;
mod element;
mod error;
mod express;
mod open_file;
mod operation;
mod options;
mod plan;
mod report;
mod resolve;
mod sys;
use sys::buffer;
#[cfg(feature = "tokio")]
pub mod tokio;
mod transfer;
mod tuning;

#[cfg(test)]
mod tests;
// The unit tests share the integration tests' model, which names the crate `sendpackets`.
#[cfg(test)]
extern crate self as sendpackets;

pub use blocking::{send, send_reusing, send_with};
pub use connection::Connection;
pub use element::{Element, FileHandle, FileRange, Payload};
pub use error::{Cause, ErrorKind, SendError};
pub use open_file::{FileCache, OpenFile};
pub use options::{Engine, FileIo, SendOptions, TransmitFlags};
pub use report::{KernelCalls, Progress, ProgressHandle, SendReport};
