//! HTTP/1.1 static file responses as [`sendpackets`] element lists, and zero-copy static files
//! for hyper/axum applications.
//!
//! [`Files`] is a directory served read-only. Given one parsed request ([`RequestHead`]:
//! method, target, header fields) it produces one [`Response`]: the head as memory and the
//! body as a range of an open file, to be sent with one sendpackets call (`sendfile` for the
//! file part; a file below 64 KiB is read once per version and sent from memory, see
//! [`Files::keep_in_memory_below`]). It opens files strictly beneath the directory (`openat2` with
//! `RESOLVE_BENEATH`), answers conditionals (`If-None-Match`, `If-Modified-Since`,
//! `If-Range`, `If-Match`, `If-Unmodified-Since`) and byte ranges (several as one
//! `multipart/byteranges` element list), and sets `Content-Type`, `ETag` and `Last-Modified`.
//! Opt-in: `Cache-Control` by path pattern ([`Files::cache_control_for`]), CORS
//! ([`Files::cors_origin`]), precompressed sidecars ([`Files::precompressed`]) and directory
//! listings ([`Files::list`]).
//!
//! It reads nothing from the socket and sends nothing itself: any loop, blocking or async,
//! can use it. `sendpackets serve` is such a loop.
//!
//! [`serve`] (feature `server`, on by default) is such a loop in front of a hyper/tower
//! application, an axum `Router` for example: one line,
//! `sendpackets_http::serve(listener, router, StaticFiles::new("assets").at("/static"))`.
//! Requests under the prefix are answered zero-copy by the crate; every other request goes to
//! the application through hyper, one at a time, and the connection comes back afterwards.
//!
//! What stays with hyper: parsing and answering the application's requests (its bodies,
//! `Expect: 100-continue`, streaming responses, HTTP/1.0 rules) and upgrades such as WebSocket
//! (after `101 Switching Protocols` the connection is the application's for good). What this
//! crate does not offer at all: HTTP/2 and TLS. `serve` speaks HTTP/1.x over plain TCP; put a
//! TLS-terminating proxy in front, or keep hyper's own server (`hyper-util`, `axum::serve`) for
//! those, where static files go through the application as before.
//!
//! Linux only, as the sendpackets library.
//!
//! # Features
//!
//! - `server` (default): [`serve`], [`StaticFiles`], [`Stats`] (tokio, hyper). Without it,
//!   only the response builder ([`Files`] and its types).
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
mod headers;
mod listing;
mod path;
mod range;
mod request;
mod response;
#[cfg(feature = "server")]
mod server;

pub use files::Files;
pub use range::MAX_RANGES;
pub use request::{BodyFraming, MAX_HEAD, MAX_HEADERS, Method, Parsed, Refusal, RequestHead};
pub use response::{Response, Status};
#[cfg(feature = "server")]
pub use server::{AppService, Serve, StaticFiles, Stats, serve};
