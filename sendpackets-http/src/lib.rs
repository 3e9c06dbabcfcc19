//! HTTP/1.1 static file responses as [`sendpackets`] element lists.
//!
//! [`Files`] is a directory served read-only. Given one parsed request ([`RequestHead`]:
//! method, target, header fields) it produces one [`Response`]: the head as memory and the
//! body as a range of an open file, to be sent with one sendpackets call (`sendfile` for the
//! file part). It opens files strictly beneath the directory (`openat2` with
//! `RESOLVE_BENEATH`), answers conditionals (`If-None-Match`, `If-Modified-Since`,
//! `If-Range`) and single byte ranges, and sets `Content-Type`, `ETag` and `Last-Modified`.
//! It reads nothing from the socket and sends nothing itself: any loop, blocking or async,
//! can use it. `sendpackets serve` is such a loop.
//!
//! Linux only, as the sendpackets library.
//!
//! # Examples
//!
//! A loop of one's own: parse the head the connection read, respond, send.
//!
//! ```
//! use sendpackets_http::{Files, Parsed, RequestHead, Response};
//!
//! let dir = tempfile::tempdir()?;
//! std::fs::write(dir.path().join("index.html"), "<h1>hi</h1>\n")?;
//! let files = Files::open(dir.path())?;
//!
//! let read: &[u8] = b"GET / HTTP/1.1\r\nHost: example\r\n\r\n";
//! let response = match RequestHead::parse(read) {
//!     Parsed::Complete(req) => files.respond(&req),
//!     Parsed::Refused(why) => Response::refusal(why),
//!     Parsed::Partial => unreachable!("read more"),
//!     _ => unreachable!(),
//! };
//! assert_eq!(response.status().code(), 200);
//! assert_eq!(response.body_len(), 12);
//! let (a, _b) = std::os::unix::net::UnixStream::pair()?;
//! sendpackets::send(&a, &response.into_elements())?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

#![deny(missing_docs, missing_debug_implementations, rust_2018_idioms)]
#![doc(test(attr(deny(warnings))))]
#![warn(clippy::exhaustive_enums, clippy::exhaustive_structs)]

mod files;
#[cfg(test)]
mod fuzz;
mod path;
mod range;
mod request;
mod response;
#[cfg(feature = "server")]
mod server;

pub use files::Files;
pub use request::{BodyFraming, MAX_HEAD, MAX_HEADERS, Method, Parsed, Refusal, RequestHead};
pub use response::{Response, Status};
#[cfg(feature = "server")]
pub use server::{AppService, Serve, StaticFiles, Stats, serve};
