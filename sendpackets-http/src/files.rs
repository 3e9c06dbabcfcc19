//! The one place the crate meets the file system: opening files beneath the served
//! directory, and choosing the response to a request.
//!
//! Every file (a precompressed sidecar too) is opened through the library's
//! [`FileCache`]: [`FileCache::beneath`] the served directory (`openat2` with
//! `RESOLVE_BENEATH`), or, with [`Files::follow_symlinks`], [`FileCache::new`] over the
//! directory's absolute path joined with the request's checked relative path. The cache
//! `fstat`s the open descriptor on every hit and opens anew a file changed in place (written,
//! truncated), deleted or renamed over, so a response never starts from a length or
//! validators the file no longer has; after the validity period (0 by default: every request)
//! it also looks the path up again. Directories are not cached: the library refuses them, and
//! they are opened here (to find `index.html`, to list them, or to redirect).
//!
//! What depends only on a file's version (its `ETag`, `Last-Modified`, `Content-Type`, and
//! the bytes of a short file, see [`Files::keep_in_memory_below`]) is made once per version
//! ([`OpenFile::version_tag`]) and shared by the responses to it.

use std::borrow::Cow;
use std::collections::HashMap;
use std::io;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use bytes::Bytes;
use rustix::fs::{Mode, OFlags, ResolveFlags};
use rustix::io::Errno;
use sendpackets::{ErrorKind, FileCache, OpenFile, SendError};

use crate::headers::{self, CacheControl, Cors, Encoding};
use crate::path::{self, Refused};
use crate::range::{self, Precondition, RangeAnswer, Validators};
use crate::request::{Method, RequestHead};
use crate::response::{Head, Response, Status};

/// Most files the open-file cache keeps open, whatever the descriptor share (a bound on the
/// least-recently-used search when it is full; nginx's `open_file_cache max` has no default
/// and is typically set to 1,000–10,000).
const CACHE_MAX: usize = 4096;

/// A file of the open-file cache not asked for this long is let go by [`Files::sweep`] (so a
/// deleted file's descriptor, and its space on disk, is let go within two of these after its
/// last request).
const UNUSED: Duration = Duration::from_secs(10);

/// Most sidecar names remembered as missing (as [`CACHE_MAX`]: a bound, not a policy).
const MISSING_MAX: usize = CACHE_MAX;

/// Most file metas kept (as [`CACHE_MAX`]); when full, they are all dropped and made again.
const METAS_MAX: usize = CACHE_MAX;

/// Default of [`Files::keep_in_memory_below`]: the library's express limit (64 KiB,
/// `sendpackets` `tuning.rs`), below which it would read the file into memory for every send
/// anyway (one `pread` then one `send`); sending the bytes read once saves that `pread`.
const MEMORY_BELOW: u64 = 64 << 10;

/// Most bytes of short files kept in memory at once (512 files of 64 KiB, or 32,768 of
/// 1 KiB); beyond it, further files are sent from their descriptors.
const MEMORY_MAX: usize = 32 << 20;

/// A directory served read-only over HTTP: opened once, then [`respond`](Files::respond)
/// answers one request at a time with a [`Response`] (an element list to send).
///
/// Nothing outside the directory is ever served: `..`, encoded slashes, NUL and backslashes
/// in the target are refused (400), and the kernel resolves every path strictly beneath the
/// directory (`openat2` with `RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS`), so a symlink leading
/// outside it is refused (403) whatever races happen meanwhile, unless
/// [`follow_symlinks`](Files::follow_symlinks). Names starting with a dot are answered 404
/// unless [`dotfiles`](Files::dotfiles).
///
/// Files are opened through the library's [`FileCache`], which keeps them open: a file asked
/// for again is sent through the descriptor opened first when it is still the same, unchanged
/// file. Every hit `fstat`s that descriptor, so a file changed in place, deleted or renamed
/// over is opened anew at once; by default every request also looks its path up again (one
/// `openat2` with `O_PATH` and an `fstat`), so a file created or replaced by any means is seen
/// at once too ([`open_file_cache`](Files::open_file_cache) trusts the path for longer). Call
/// [`sweep`](Files::sweep) every [`sweep_interval`](Files::sweep_interval) to let go of
/// descriptors of files no longer asked for. The cache holds at most
/// [`max_open_files`](Files::max_open_files) descriptors; out of descriptors, an open lets go
/// of the cache's files ([`shed`](Files::shed)) and tries once more, then the answer is 503
/// with `Retry-After`.
///
/// # Examples
///
/// ```
/// use sendpackets_http::{Files, Parsed, RequestHead, Status};
///
/// let dir = tempfile::tempdir()?;
/// std::fs::write(dir.path().join("a.txt"), "hello\n")?;
/// let files = Files::open(dir.path())?;
///
/// let Parsed::Complete(req) = RequestHead::parse(b"GET /a.txt HTTP/1.1\r\nHost: h\r\n\r\n")
/// else { panic!() };
/// let response = files.respond(&req);
/// assert_eq!(response.status(), Status::Ok);
/// assert_eq!(response.body_len(), 6);
/// let head = std::str::from_utf8(response.head())?;
/// assert!(head.contains("Content-Type: text/plain; charset=utf-8\r\n"));
///
/// // One send of the head and the file range, on any connected socket:
/// let (a, mut b) = std::os::unix::net::UnixStream::pair()?;
/// sendpackets::send(&a, &response.into_elements())?;
/// drop(a);
/// let mut got = Vec::new();
/// std::io::Read::read_to_end(&mut b, &mut got)?;
/// assert!(got.ends_with(b"\r\n\r\nhello\n"));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug)]
pub struct Files {
    /// The served directory (`O_PATH`): files are opened beneath it, directories through it.
    dir: OwnedFd,
    /// Its absolute path, for [`follow_symlinks`](Files::follow_symlinks).
    root: PathBuf,
    follow_symlinks: bool,
    dotfiles: bool,
    /// The path the directory is mounted at, without a trailing `/` (empty: `/`).
    prefix: String,
    /// Most descriptors the open-file cache may hold.
    max_files: usize,
    /// How long the cache trusts a path without looking it up again.
    valid: Duration,
    /// Made at the first request, from the settings above.
    cache: OnceLock<FileCache>,
    cache_control: CacheControl,
    cors: Cors,
    precompressed: bool,
    /// Sidecar paths found missing, and when: trusted for [`valid`](Self::valid) as the cache
    /// trusts a path, so that a file without sidecars costs no failed lookups per request.
    missing_sidecars: Mutex<HashMap<PathBuf, Instant>>,
    list: bool,
    /// Files shorter than this are sent from memory (see `keep_in_memory_below`).
    memory_below: u64,
    /// Metas of the versions served lately, with the bodies of short files.
    metas: Mutex<Metas>,
}

/// A file to answer one request with: opened and checked by the library, and what depends
/// only on its version (validators, header values, and a short file's bytes), shared by every
/// response to that version.
#[derive(Debug)]
pub(crate) struct ServedFile {
    file: OpenFile,
    meta: Arc<FileMeta>,
}

/// What depends only on one version of a file served under one name: formatted once per
/// version, not per response.
#[derive(Debug)]
pub(crate) struct FileMeta {
    /// [`OpenFile::version_tag`] of the version this was made from.
    tag: u64,
    /// Length and modification time (those of the open descriptor, so they match the bytes
    /// sent).
    pub(crate) validators: Validators,
    /// `ETag` value.
    pub(crate) etag: String,
    /// `Last-Modified` value.
    pub(crate) last_modified: String,
    /// `Content-Type` value, from the file name's extension.
    pub(crate) content_type: Cow<'static, str>,
    /// A precompressed sidecar: the `Content-Encoding`.
    pub(crate) encoding: Option<Encoding>,
    /// The whole file, for a short one (see [`Files::keep_in_memory_below`]).
    body: Option<Bytes>,
}

impl std::ops::Deref for ServedFile {
    type Target = FileMeta;
    fn deref(&self) -> &FileMeta {
        &self.meta
    }
}

impl FileMeta {
    /// The meta of `file`, served as `name` (its `Content-Type` comes from `name`'s
    /// extension), with `encoding` when it is a precompressed sidecar of `name`, and `body`.
    fn new(file: &OpenFile, name: &Path, encoding: Option<Encoding>, body: Option<Bytes>) -> Self {
        let validators = Validators::new(file.len(), file.modified());
        FileMeta {
            tag: file.version_tag(),
            validators,
            etag: validators.etag_for(encoding.map(Encoding::token)),
            last_modified: validators.last_modified(),
            content_type: headers::content_type(name),
            encoding,
            body,
        }
    }
}

impl ServedFile {
    /// An element sending bytes `range` of the file: from memory for a short file kept
    /// there, else through the shared descriptor.
    pub(crate) fn element(&self, range: std::ops::Range<u64>) -> sendpackets::Element {
        match &self.meta.body {
            // The range lies within the length, which is the body's (see `Files::served`).
            Some(body) => sendpackets::Element::memory(body.slice(
                usize::try_from(range.start).unwrap_or(usize::MAX)
                    ..usize::try_from(range.end).unwrap_or(usize::MAX),
            )),
            None => self.file.element(range),
        }
    }
}

/// The metas of the files served lately, by the path each was opened by.
#[derive(Debug, Default)]
struct Metas {
    map: HashMap<PathBuf, MetaSlot>,
    /// Bytes of the bodies held, at most [`MEMORY_MAX`].
    body_bytes: usize,
}

#[derive(Debug)]
struct MetaSlot {
    meta: Arc<FileMeta>,
    /// Asked for since the last [`Files::sweep`].
    used: bool,
}

impl Metas {
    fn clear(&mut self) {
        self.map.clear();
        self.body_bytes = 0;
    }
}

/// Reads the whole of `file` (`len` bytes) at explicit offsets; `None` if it turns out
/// shorter (truncated since it was opened) or cannot be read.
fn read_whole(file: &OpenFile, len: usize) -> Option<Bytes> {
    let mut buf = vec![0u8; len];
    let mut done = 0;
    while done < len {
        match rustix::io::pread(file, &mut buf[done..], done as u64) {
            Ok(0) => return None,
            Ok(n) => done += n,
            Err(Errno::INTR) => {}
            Err(_) => return None,
        }
    }
    Some(Bytes::from(buf))
}

/// What a relative path names.
#[derive(Debug)]
enum Opened {
    /// A regular file, open for reading.
    File(OpenFile),
    /// A directory.
    Directory,
}

/// Why a path cannot be served.
#[derive(Debug)]
enum OpenFailure {
    /// Missing (or a component is not a directory, or the name is too long): 404.
    NotFound,
    /// Leads outside the root through a symlink, not readable, or not a regular file: 403.
    Forbidden,
    /// Out of descriptors even after letting go of the open-file cache's files: 503.
    Unavailable(io::Error),
    /// Anything else (I/O error): 500.
    Other(io::Error),
}

impl Files {
    /// Opens `dir` to serve it: symlinks leading outside refused, dotfiles hidden, every
    /// request looks its file's path up again.
    ///
    /// # Errors
    ///
    /// The `open` error: `NotFound`, `PermissionDenied`, or `NotADirectory` when `dir` is
    /// something else.
    pub fn open(dir: impl AsRef<Path>) -> io::Result<Files> {
        let path = dir.as_ref();
        let dir = rustix::fs::open(
            path,
            OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )?;
        Ok(Files {
            dir,
            root: std::path::absolute(path)?,
            follow_symlinks: false,
            dotfiles: false,
            prefix: String::new(),
            max_files: usize::MAX,
            valid: Duration::ZERO,
            cache: OnceLock::new(),
            cache_control: CacheControl::default(),
            cors: Cors::default(),
            precompressed: false,
            missing_sidecars: Mutex::default(),
            list: false,
            memory_below: MEMORY_BELOW,
            metas: Mutex::default(),
        })
    }

    /// Follow symlinks wherever they lead (default: a symlink leading outside the directory
    /// is answered 403). Files are then opened by path: the directory's absolute path, as
    /// given to [`open`](Self::open), joined with the request's relative path (which never
    /// holds `..`), through the library's [`FileCache::new`], with the same checks on every
    /// hit as in the default mode.
    pub fn follow_symlinks(mut self, yes: bool) -> Files {
        self.follow_symlinks = yes;
        self.cache = OnceLock::new();
        self
    }

    /// Serve names starting with a dot (default: 404 as if they did not exist).
    pub fn dotfiles(mut self, yes: bool) -> Files {
        self.dotfiles = yes;
        self
    }

    /// The `Cache-Control` value of every file response (200, 206, 304) whose path matches no
    /// [`cache_control_for`](Self::cache_control_for) pattern. Default: none, no header.
    ///
    /// # Errors
    ///
    /// `InvalidInput` for an empty value or one with control characters.
    ///
    /// # Examples
    ///
    /// ```
    /// use sendpackets_http::Files;
    ///
    /// let dir = tempfile::tempdir()?;
    /// std::fs::create_dir(dir.path().join("assets"))?;
    /// std::fs::write(dir.path().join("assets/app.js"), "")?;
    /// let files = Files::open(dir.path())?
    ///     .cache_control("no-cache")?
    ///     .cache_control_for("assets/**", "public, max-age=31536000, immutable")?;
    /// let req = sendpackets_http::RequestHead::new("GET", "/assets/app.js", 1);
    /// let response = files.respond(&req);
    /// let head = std::str::from_utf8(response.head()).unwrap();
    /// assert!(head.contains("Cache-Control: public, max-age=31536000, immutable\r\n"));
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn cache_control(mut self, value: &str) -> io::Result<Files> {
        self.cache_control.set_default(Some(value))?;
        Ok(self)
    }

    /// A `Cache-Control` value for the files whose path, relative to the directory and
    /// without a leading `/`, matches `pattern`: `*` matches within one path segment, `**` (a
    /// whole segment) any number of segments, `?` one character other than `/`, `{a,b}`
    /// either alternative. The first matching pattern, in the order given, wins over
    /// [`cache_control`](Self::cache_control). Typical: content-hashed assets
    /// (`assets/**`, `**/*.????????.{js,css}`) get `public, max-age=31536000, immutable`.
    ///
    /// # Errors
    ///
    /// `InvalidInput` for a bad pattern (empty, unbalanced or nested `{}`) or value.
    pub fn cache_control_for(mut self, pattern: &str, value: &str) -> io::Result<Files> {
        self.cache_control.add_rule(pattern, value)?;
        Ok(self)
    }

    /// Lets `origin` (`https://example.org`, exactly as browsers send it in `Origin`) read the
    /// files from scripts; `*` lets any origin. Call once per origin. Responses then carry
    /// `Access-Control-Allow-Origin` (`*`, or the request's `Origin` when it is allowed, with
    /// `Vary: Origin`) and `Access-Control-Expose-Headers`; `OPTIONS` (a preflight) is
    /// answered 204 with `Access-Control-Allow-Methods: GET, HEAD`, the requested headers
    /// allowed and `Access-Control-Max-Age: 86400`. Default: no CORS headers, `OPTIONS` is 405.
    ///
    /// # Errors
    ///
    /// `InvalidInput` for an empty value, control characters, or a list.
    pub fn cors_origin(mut self, origin: &str) -> io::Result<Files> {
        self.cors.allow(origin)?;
        Ok(self)
    }

    /// Serve precompressed sidecars: for a file `x`, `x.br`, `x.zst` or `x.gz` when present
    /// (a regular file beside it) and accepted by the request's `Accept-Encoding` (q-values
    /// honoured; the highest wins, a tie goes to the compressed one, then `br`, `zstd`,
    /// `gzip` in that order; identity otherwise, even when the request refuses it with
    /// `identity;q=0`, as nginx's `gzip_static` does). The sidecar is sent as it is on disk,
    /// zero-copy like any file, with `Content-Encoding`, `x`'s `Content-Type`, an `ETag` of
    /// its own (ending in `-br`, `-zstd` or `-gzip`), and `Range` applied to its bytes. Every
    /// response for a file that has a sidecar says `Vary: Accept-Encoding`. Sidecars are
    /// looked for as the file is: through the open-file cache, and a sidecar found missing is
    /// not looked for again during the cache's validity
    /// ([`open_file_cache`](Self::open_file_cache); with none, up to three more lookups per
    /// request). Default: off.
    pub fn precompressed(mut self, yes: bool) -> Files {
        self.precompressed = yes;
        self
    }

    /// List directories that have no `index.html`: an HTML page of their entries (names
    /// escaped, links percent-encoded, sizes, modification dates; directories first, then
    /// by name; names starting with a dot left out unless [`dotfiles`](Self::dotfiles); at
    /// most 10,000 entries). Default: off, such a directory is 403 (as nginx without
    /// `autoindex`), which tells it apart from a missing path (404).
    pub fn list(mut self, yes: bool) -> Files {
        self.list = yes;
        self
    }

    /// Send files shorter than `bytes` from memory (default 64 KiB; 0: never): each version
    /// of such a file is read once, and its responses send those bytes with the head in one
    /// `send`, with no `pread` (a server answering from memory is what the kernel does
    /// fastest at these sizes, see the request/response figures in BENCHMARKS.md). At most
    /// 32 MiB of files are held at once; beyond it, files are sent from their descriptors.
    ///
    /// A version is told apart as an `ETag` is: by device, inode, length, modification and
    /// change times, looked at with the `fstat` every request makes. So a file changed in
    /// place is read anew at its next request, except on a file system whose timestamps are
    /// coarse (before Linux 6.13, or without fine-grained timestamps) when it is rewritten
    /// to the same length within one timestamp tick of the version read: its `ETag` does not
    /// change either, and its first bytes read stay served until it changes again.
    pub fn keep_in_memory_below(mut self, bytes: u64) -> Files {
        self.memory_below = bytes;
        self.metas().clear();
        self
    }

    /// Trust a file's path for `valid` after it was opened or last looked up: meanwhile a
    /// request for it costs one `fstat` of the open descriptor and no lookup (as nginx's
    /// `open_file_cache_valid`). That `fstat` still sees a file changed in place (written,
    /// truncated), deleted or renamed over, which is then opened anew at once; only a file
    /// newly created where none was (and a directory of its path renamed) is seen after at
    /// most `valid`. `None` (the default) is 0: every request looks its path up again.
    pub fn open_file_cache(mut self, valid: Option<Duration>) -> Files {
        self.valid = valid.unwrap_or(Duration::ZERO);
        self.cache = OnceLock::new();
        self
    }

    /// Most descriptors the open-file cache may hold (at most 4,096 anyway; the least
    /// recently used is closed first). A server gives it a share of its descriptor limit,
    /// so that it cannot take the descriptors its connections and requests need. At least 1.
    pub fn max_open_files(mut self, n: usize) -> Files {
        self.max_files = n.max(1);
        self.cache = OnceLock::new();
        self
    }

    /// Lets go of every file the open-file cache holds (those not being sent are closed at
    /// once). Out of descriptors, [`respond`](Self::respond) calls it itself before trying
    /// once more; a server calls it when `accept` fails with `EMFILE` or `ENFILE`.
    pub fn shed(&self) {
        if let Some(cache) = self.cache.get() {
            cache.clear();
        }
        self.metas().clear();
    }

    /// Serves the directory under `prefix` (default `/`): `GET /static/a.txt` with
    /// `at("/static")` is the file `a.txt`; targets outside the prefix are answered 404 by
    /// [`respond`](Self::respond) (see [`matches`](Self::matches) to route them elsewhere).
    /// A trailing `/` is ignored; a prefix not starting with `/` gets one.
    ///
    /// # Examples
    ///
    /// ```
    /// use sendpackets_http::Files;
    ///
    /// let files = Files::open(".")?.at("/static/");
    /// assert!(files.matches("/static/app.js?v=2"));
    /// assert!(files.matches("/static"));
    /// assert!(!files.matches("/staticky"));
    /// assert!(!files.matches("/api/hello"));
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn at(mut self, prefix: &str) -> Files {
        let trimmed = prefix.trim_end_matches('/');
        self.prefix = if trimmed.is_empty() || trimmed.starts_with('/') {
            trimmed.to_string()
        } else {
            format!("/{trimmed}")
        };
        self
    }

    /// The prefix given to [`at`](Self::at), without its trailing `/` (empty for `/`).
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// Whether a request target lies under the prefix (an origin-form target whose path is the
    /// prefix or starts with the prefix and `/`).
    pub fn matches(&self, target: &str) -> bool {
        self.strip(target).is_some()
    }

    /// The target without the prefix: `Some("")` or `Some("?q")` for the prefix itself,
    /// `Some("/...")` beneath it.
    fn strip<'t>(&self, target: &'t str) -> Option<&'t str> {
        if !target.starts_with('/') {
            return None;
        }
        let rest = target.strip_prefix(self.prefix.as_str())?;
        matches!(rest.as_bytes().first(), None | Some(b'/' | b'?' | b'#')).then_some(rest)
    }

    /// How often [`sweep`](Self::sweep) should run.
    pub fn sweep_interval(&self) -> Duration {
        UNUSED
    }

    /// Lets go of the open-file cache's files not asked for during the last
    /// [`sweep_interval`](Self::sweep_interval), so that the descriptor of a file deleted or
    /// no longer asked for (and a deleted file's space) is not kept.
    pub fn sweep(&self) {
        if let Some(cache) = self.cache.get() {
            cache.forget_unused(UNUSED);
        }
        let now = Instant::now();
        self.missing_sidecars
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .retain(|_, &mut at| now.duration_since(at) < self.valid);
        let mut metas = self.metas();
        let mut body_bytes = 0;
        metas.map.retain(|_, slot| {
            let keep = std::mem::take(&mut slot.used);
            if keep {
                body_bytes += slot.meta.body.as_ref().map_or(0, Bytes::len);
            }
            keep
        });
        metas.body_bytes = body_bytes;
    }

    /// The response to one request: `GET` and `HEAD` of files beneath the directory,
    /// `index.html` for a directory asked for with a trailing `/` (else its listing with
    /// [`list`](Self::list), else 403), 301 to add that `/`,
    /// `If-Match` / `If-Unmodified-Since` (412) and `If-None-Match` / `If-Modified-Since` (304)
    /// in the order of RFC 9110 section 13.2.2, byte ranges with `If-Range` (206; several
    /// ranges sorted and coalesced, then one `multipart/byteranges` response; more than
    /// [`MAX_RANGES`](crate::MAX_RANGES) get the whole file; 416 when none can be satisfied),
    /// `Content-Type` from the
    /// extension, `ETag` and `Last-Modified`. Errors are short text responses: 400 (a target
    /// that could lead outside), 403, 404, 405 (other methods), 503 with `Retry-After` (out of
    /// descriptors even after [`shed`](Self::shed)), 500 (any other unexpected open failure;
    /// see [`Response::open_error`] for both).
    ///
    /// The response keeps the connection open when the request allows it
    /// ([`RequestHead::keep_alive`]), except after 400, 500 and 503 (closing gives a
    /// descriptor back).
    pub fn respond(&self, req: &RequestHead<'_>) -> Response {
        let mut response = self.respond_plain(req);
        if self.cors.enabled() {
            let mut lines = String::new();
            self.cors.headers(req.origin(), &mut lines);
            response.add_headers(&lines);
        }
        response
    }

    /// [`respond`](Self::respond) without the CORS headers.
    fn respond_plain(&self, req: &RequestHead<'_>) -> Response {
        let keep = req.keep_alive();
        let minor = req.minor_version();
        let with_body = req.method() != Method::Head;
        let text = |status| Response::text(status, with_body, keep, minor);
        if req.method() == Method::Options && self.cors.enabled() {
            return preflight(req, keep, minor);
        }
        if !matches!(req.method(), Method::Get | Method::Head) {
            let mut r = text(Status::MethodNotAllowed);
            if self.cors.enabled() {
                r.add_headers("Allow: OPTIONS\r\n");
            }
            return r;
        }
        if !req.target().starts_with('/') {
            // Absolute-form and asterisk targets: never a file.
            return Response::text(Status::BadRequest, with_body, false, minor);
        }
        let Some(rest) = self.strip(req.target()) else {
            return text(Status::NotFound);
        };
        let prefix_len = req.target().len() - rest.len();
        if !rest.starts_with('/') {
            // The prefix itself: its directory, with the slash.
            return redirect(req, prefix_len, keep, minor);
        }
        let mapped = match path::map(rest, self.dotfiles) {
            Ok(m) => m,
            Err(Refused::BadTarget) => {
                return Response::text(Status::BadRequest, with_body, false, minor);
            }
            Err(Refused::Hidden) => return text(Status::NotFound),
        };
        let mut relative = mapped.relative;
        let failed = |relative: PathBuf, e: OpenFailure| match e {
            OpenFailure::NotFound => text(Status::NotFound),
            OpenFailure::Forbidden => text(Status::Forbidden),
            OpenFailure::Unavailable(e) => {
                Response::text(Status::ServiceUnavailable, with_body, false, minor)
                    .with_open_error(relative, e)
            }
            OpenFailure::Other(e) => Response::text(Status::InternalError, with_body, false, minor)
                .with_open_error(relative, e),
        };
        let file = match self.open_cached(&relative) {
            Ok(Opened::File(f)) if !mapped.trailing_slash => f,
            Ok(Opened::File(_)) => return text(Status::NotFound), // "/file.txt/"
            Ok(Opened::Directory) if !mapped.trailing_slash => {
                return redirect(req, prefix_len + mapped.raw_path_len, keep, minor);
            }
            Ok(Opened::Directory) => {
                let dir = relative.clone();
                relative.push("index.html");
                match self.open_cached(&relative) {
                    Ok(Opened::File(f)) => f,
                    Ok(Opened::Directory) | Err(OpenFailure::NotFound) if self.list => {
                        let path = &req.target()[..prefix_len + mapped.raw_path_len];
                        return self.listing(&dir, path, with_body, keep, minor);
                    }
                    Ok(Opened::Directory) | Err(OpenFailure::NotFound) => {
                        return text(Status::Forbidden);
                    }
                    Err(e) => return failed(relative, e),
                }
            }
            Err(e) => return failed(relative, e),
        };
        let cache_control = self.cache_control.value_for(&relative);
        if !self.precompressed {
            return self.respond_with(req, self.served(file, &relative, None), cache_control);
        }
        let mut available = Vec::new();
        for e in Encoding::ALL {
            let mut name = relative.as_os_str().to_owned();
            name.push(e.suffix());
            if let Some(f) = self.open_sidecar(PathBuf::from(name)) {
                available.push((e, f));
            }
        }
        if available.is_empty() {
            return self.respond_with(req, self.served(file, &relative, None), cache_control);
        }
        let encodings: Vec<Encoding> = available.iter().map(|(e, _)| *e).collect();
        let chosen = headers::choose_encoding(req.accept_encoding(), &encodings);
        let file = match chosen.and_then(|c| available.into_iter().find(|(e, _)| *e == c)) {
            Some((e, sidecar)) => self.served(sidecar, &relative, Some(e)),
            None => self.served(file, &relative, None),
        };
        let mut r = self.respond_with(req, file, cache_control);
        r.add_headers("Vary: Accept-Encoding\r\n");
        r
    }

    /// 200 with the listing of the directory `relative` (asked for as `path`).
    fn listing(
        &self,
        relative: &Path,
        path: &str,
        with_body: bool,
        keep: bool,
        minor: u8,
    ) -> Response {
        let dir_path = if relative.as_os_str().is_empty() {
            Path::new(".")
        } else {
            relative
        };
        let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC;
        let opened = if self.follow_symlinks {
            rustix::fs::openat(&self.dir, dir_path, flags, Mode::empty())
        } else {
            open_beneath(&self.dir, dir_path, flags)
        };
        let page = opened
            .map_err(io::Error::from)
            .and_then(|fd| crate::listing::page(&fd, path, self.dotfiles));
        match page {
            Ok(html) => Response::inline(
                Status::Ok,
                "text/html; charset=utf-8",
                html.into_bytes(),
                with_body,
                keep,
                minor,
            ),
            Err(e) => Response::text(Status::InternalError, with_body, false, minor)
                .with_open_error(relative.to_path_buf(), e),
        }
    }

    /// The response for a file opened and checked: conditionals, range, head.
    fn respond_with(
        &self,
        req: &RequestHead<'_>,
        file: Arc<ServedFile>,
        cache_control: Option<&str>,
    ) -> Response {
        let keep = req.keep_alive();
        let minor = req.minor_version();
        let v = file.validators;
        match range::evaluate(&file.etag, v.mtime, &req.conditions(), range::now_secs()) {
            Precondition::Proceed => {}
            Precondition::NotModified => {
                let mut h = Head::new(Status::NotModified);
                h.header("ETag", &file.etag)
                    .header("Last-Modified", &file.last_modified);
                if let Some(cc) = cache_control {
                    h.header("Cache-Control", cc);
                }
                return Response::head_only(Status::NotModified, h.finish(keep, minor), keep);
            }
            Precondition::Failed => {
                let with_body = req.method() != Method::Head;
                return Response::text(Status::PreconditionFailed, with_body, keep, minor);
            }
        }
        let answer = if range::if_range_holds(&file.etag, v.mtime, req.if_range()) {
            range::range(req.range(), v.len)
        } else {
            RangeAnswer::Whole
        };
        let (status, start, end) = match answer {
            RangeAnswer::Whole => (Status::Ok, 0, v.len),
            RangeAnswer::Part { start, end } => (Status::PartialContent, start, end),
            RangeAnswer::Parts(parts) => {
                return multipart(req, file, &parts, cache_control);
            }
            RangeAnswer::Unsatisfiable => {
                let mut h = Head::new(Status::RangeNotSatisfiable);
                h.content_length(0).content_range_unsatisfied(v.len);
                return Response::head_only(
                    Status::RangeNotSatisfiable,
                    h.finish(keep, minor),
                    keep,
                );
            }
        };
        let mut h = Head::new(status);
        h.header("Content-Type", &file.content_type)
            .content_length(end - start)
            .header("Last-Modified", &file.last_modified)
            .header("ETag", &file.etag)
            .header("Accept-Ranges", "bytes");
        if let Some(e) = file.encoding {
            h.header("Content-Encoding", e.token());
        }
        if let Some(cc) = cache_control {
            h.header("Cache-Control", cc);
        }
        if status == Status::PartialContent {
            h.content_range(start, end, v.len);
        }
        let end = if req.method() == Method::Head {
            start
        } else {
            end
        };
        Response::file(status, h.finish(keep, minor), file, start, end, keep)
    }

    fn metas(&self) -> std::sync::MutexGuard<'_, Metas> {
        self.metas.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// `file` (opened as `name`, or as its sidecar with `encoding`) with the meta of its
    /// version: the one made for an earlier response when the version is the same (same
    /// [`OpenFile::version_tag`]: device, inode, length, modification and change times),
    /// else made now, reading a short file's bytes once.
    fn served(&self, file: OpenFile, name: &Path, encoding: Option<Encoding>) -> Arc<ServedFile> {
        let tag = file.version_tag();
        let key = file.path().unwrap_or(name);
        if let Some(slot) = self.metas().map.get_mut(key) {
            if slot.meta.tag == tag && slot.meta.encoding == encoding {
                slot.used = true;
                let meta = Arc::clone(&slot.meta);
                return Arc::new(ServedFile { file, meta });
            }
        }
        let len = usize::try_from(file.len()).unwrap_or(usize::MAX);
        let short = file.len() < self.memory_below
            && self.metas().body_bytes.saturating_add(len) <= MEMORY_MAX;
        let body = if short { read_whole(&file, len) } else { None };
        let meta = Arc::new(FileMeta::new(&file, name, encoding, body));
        let key = key.to_path_buf();
        let mut metas = self.metas();
        let held = meta.body.as_ref().map_or(0, Bytes::len);
        if metas.map.len() >= METAS_MAX || metas.body_bytes.saturating_add(held) > MEMORY_MAX {
            metas.clear();
        }
        let slot = MetaSlot {
            meta: Arc::clone(&meta),
            used: true,
        };
        if let Some(old) = metas.map.insert(key, slot) {
            metas.body_bytes -= old.meta.body.as_ref().map_or(0, Bytes::len);
        }
        metas.body_bytes += held;
        Arc::new(ServedFile { file, meta })
    }

    /// The open-file cache, made at the first request.
    fn cache(&self) -> Result<&FileCache, OpenFailure> {
        if let Some(cache) = self.cache.get() {
            return Ok(cache);
        }
        let capacity = self.max_files.min(CACHE_MAX);
        let cache = if self.follow_symlinks {
            FileCache::new(self.valid, capacity)
        } else {
            let dir = self
                .dir
                .try_clone()
                .map_err(|e| match errno(e.raw_os_error()) {
                    Some(Errno::MFILE | Errno::NFILE) => OpenFailure::Unavailable(e),
                    _ => OpenFailure::Other(e),
                })?;
            FileCache::beneath(dir, self.valid, capacity)
        };
        Ok(self.cache.get_or_init(|| cache))
    }

    /// Opens `relative` (empty: the root itself) for reading through the open-file cache.
    /// Without `--follow-symlinks` the kernel resolves it strictly beneath the root (`openat2`
    /// with `RESOLVE_BENEATH`): a symlink whose target lies outside fails, whatever races
    /// happen meanwhile. With it, the root's absolute path joined with `relative` is opened
    /// (`relative` has no `..`, see [`path::map`]). Out of descriptors, the cache's files are
    /// let go and the open is tried once more. Failures are not cached.
    /// The sidecar `name` when it is a regular file; a missing one is remembered for the
    /// cache's validity (with none, every request looks again), at most [`MISSING_MAX`] names.
    fn open_sidecar(&self, name: PathBuf) -> Option<OpenFile> {
        let now = Instant::now();
        let mut missing = self
            .missing_sidecars
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        if missing
            .get(&name)
            .is_some_and(|&at| now.duration_since(at) < self.valid)
        {
            return None;
        }
        drop(missing);
        match self.open_cached(&name) {
            Ok(Opened::File(f)) => Some(f),
            Ok(Opened::Directory) | Err(_) => {
                if !self.valid.is_zero() {
                    missing = self
                        .missing_sidecars
                        .lock()
                        .unwrap_or_else(|e| e.into_inner());
                    if missing.len() >= MISSING_MAX {
                        missing.retain(|_, &mut at| now.duration_since(at) < self.valid);
                        if missing.len() >= MISSING_MAX {
                            missing.clear();
                        }
                    }
                    missing.insert(name, now);
                }
                None
            }
        }
    }

    fn open_cached(&self, relative: &Path) -> Result<Opened, OpenFailure> {
        let cache = self.cache()?;
        let joined;
        let path = if self.follow_symlinks {
            joined = self.root.join(relative);
            joined.as_path()
        } else {
            relative
        };
        let opened = match cache.open(path) {
            Err(e) if out_of_descriptors(&e) => {
                self.shed();
                cache.open(path)
            }
            r => r,
        };
        match opened {
            Ok(file) => Ok(Opened::File(file)),
            Err(e) => classify(e),
        }
    }
}

/// Whether an open failed for want of descriptors.
fn out_of_descriptors(e: &SendError) -> bool {
    matches!(errno(e.raw_os_error()), Some(Errno::MFILE | Errno::NFILE))
}

/// A raw OS error as rustix's `Errno`, to match on.
fn errno(raw: Option<i32>) -> Option<Errno> {
    raw.map(Errno::from_raw_os_error)
}

/// What an open's failure means for the response. A directory is not a failure: the library
/// refuses it, and [`Files`] opens it itself.
fn classify(e: SendError) -> Result<Opened, OpenFailure> {
    Err(match (e.kind(), errno(e.raw_os_error())) {
        (ErrorKind::IsADirectory, _) => return Ok(Opened::Directory),
        (ErrorKind::FileNotFound | ErrorKind::DirectoryNotFound | ErrorKind::EmptyPath, _)
        | (_, Some(Errno::NOENT | Errno::NOTDIR | Errno::NAMETOOLONG)) => OpenFailure::NotFound,
        (ErrorKind::PermissionDenied | ErrorKind::NotARegularFile, _)
        | (_, Some(Errno::ACCESS | Errno::PERM | Errno::XDEV | Errno::LOOP)) => {
            OpenFailure::Forbidden
        }
        (_, Some(n @ (Errno::MFILE | Errno::NFILE))) => OpenFailure::Unavailable(n.into()),
        (_, Some(n)) => OpenFailure::Other(n.into()),
        (_, None) => OpenFailure::Other(io::Error::other(e)),
    })
}

/// 206 `multipart/byteranges` (RFC 9110 section 14.6): one part per range, each a small
/// header then the bytes of the file, and a closing delimiter. The response is one element
/// list: every delimiter and part header is a slice of one buffer (memory elements), every
/// part a range of the open file (sent like any file range, `sendfile` included), so
/// `Content-Length` is exact before anything is sent.
fn multipart(
    req: &RequestHead<'_>,
    file: Arc<ServedFile>,
    ranges: &[(u64, u64)],
    cache_control: Option<&str>,
) -> Response {
    use std::fmt::Write as _;
    let keep = req.keep_alive();
    let minor = req.minor_version();
    let b = boundary();
    let len = file.validators.len;
    let mut seps = String::with_capacity(ranges.len() * (b.len() + file.content_type.len() + 80));
    let mut parts = Vec::with_capacity(ranges.len());
    let mut body_len = 0u64;
    for (i, &(start, end)) in ranges.iter().enumerate() {
        let from = seps.len();
        let crlf = if i == 0 { "" } else { "\r\n" };
        let _ = write!(
            seps,
            "{crlf}--{b}\r\nContent-Type: {}\r\nContent-Range: bytes {start}-{}/{len}\r\n\r\n",
            file.content_type,
            end - 1
        );
        body_len += (seps.len() - from) as u64 + (end - start);
        parts.push((from..seps.len(), start, end));
    }
    let from = seps.len();
    let _ = write!(seps, "\r\n--{b}--\r\n");
    body_len += (seps.len() - from) as u64;
    let tail = from..seps.len();

    let mut h = Head::new(Status::PartialContent);
    h.header(
        "Content-Type",
        &format!("multipart/byteranges; boundary={b}"),
    )
    .content_length(body_len)
    .header("Last-Modified", &file.last_modified)
    .header("ETag", &file.etag)
    .header("Accept-Ranges", "bytes");
    if let Some(e) = file.encoding {
        h.header("Content-Encoding", e.token());
    }
    if let Some(cc) = cache_control {
        h.header("Cache-Control", cc);
    }
    let head = h.finish(keep, minor);
    if req.method() == Method::Head {
        return Response::head_only(Status::PartialContent, head, keep);
    }
    Response::multipart(head, file, seps.into_bytes(), parts, tail, keep)
}

/// The multipart boundary: 32 hex digits, random once per process (std's hasher keys come
/// from the operating system's random source), so no file's bytes can be expected to hold it.
fn boundary() -> &'static str {
    use std::hash::{BuildHasher, Hasher};
    static BOUNDARY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    BOUNDARY.get_or_init(|| {
        let word = || {
            let mut h = std::collections::hash_map::RandomState::new().build_hasher();
            h.write_u64(0x5e4d_7061_636b_6574);
            h.finish()
        };
        format!("{:016x}{:016x}", word(), word())
    })
}

/// 204 to `OPTIONS` (CORS on): a preflight gets the methods, the headers it asks for and a
/// max age; the origin's headers are added by the caller.
fn preflight(req: &RequestHead<'_>, keep: bool, minor: u8) -> Response {
    let mut h = Head::new(Status::NoContent);
    h.header("Allow", "GET, HEAD, OPTIONS");
    let (method, fields) = req.preflight();
    if method.is_some() {
        h.header("Access-Control-Allow-Methods", "GET, HEAD");
        if let Some(f) = fields.and_then(headers::field_names) {
            h.header("Access-Control-Allow-Headers", f);
        }
        h.header("Access-Control-Max-Age", "86400");
    }
    Response::head_only(Status::NoContent, h.finish(keep, minor), keep)
}

/// 301 to the target's path up to `path_len`, a `/`, then the rest (the query).
fn redirect(req: &RequestHead<'_>, path_len: usize, keep: bool, minor: u8) -> Response {
    let (path, query) = req.target().split_at(path_len);
    let mut h = Head::new(Status::MovedPermanently);
    h.header("Location", &format!("{path}/{query}"))
        .content_length(0);
    Response::head_only(Status::MovedPermanently, h.finish(keep, minor), keep)
}

/// `openat2(RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS)` of a directory to list (files go through
/// the library's [`FileCache`]), retried a few times on `EAGAIN` (the kernel's answer when a
/// rename raced the lookup).
fn open_beneath(dir: &OwnedFd, path: &Path, flags: OFlags) -> rustix::io::Result<OwnedFd> {
    const TRIES: usize = 4;
    let resolve = ResolveFlags::BENEATH | ResolveFlags::NO_MAGICLINKS;
    let mut last = rustix::io::Errno::AGAIN;
    for _ in 0..TRIES {
        match rustix::fs::openat2(dir, path, flags, Mode::empty(), resolve) {
            Err(rustix::io::Errno::AGAIN) => last = rustix::io::Errno::AGAIN,
            r => return r,
        }
    }
    Err(last)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::request::Parsed;

    fn get(files: &Files, target: &str) -> Response {
        let head = format!("GET {target} HTTP/1.1\r\nHost: h\r\n\r\n");
        let Parsed::Complete(req) = RequestHead::parse(head.as_bytes()) else {
            panic!("{head:?}")
        };
        files.respond(&req)
    }

    /// The open-file cache holds at most `max_open_files` descriptors, and `shed` empties it.
    #[test]
    fn cache_is_bounded_and_shed() {
        let dir = tempfile::tempdir().unwrap();
        for i in 0..6 {
            std::fs::write(dir.path().join(format!("f{i}")), format!("{i}")).unwrap();
        }
        for valid in [None, Some(Duration::from_secs(60))] {
            let files = Files::open(dir.path())
                .unwrap()
                .open_file_cache(valid)
                .max_open_files(2);
            let held = |files: &Files| files.cache.get().map_or(0, FileCache::len);
            for i in 0..6 {
                assert_eq!(get(&files, &format!("/f{i}")).status(), Status::Ok);
                assert!(held(&files) <= 2, "after f{i}: {}", held(&files));
            }
            assert_eq!(held(&files), 2);
            files.shed();
            assert_eq!(held(&files), 0);
            assert_eq!(get(&files, "/f5").body_len(), 1);
            assert_eq!(get(&files, "/f4").body_len(), 1);
            files.sweep(); // f4 and f5 were asked for just now
            assert_eq!(held(&files), 2);
        }
    }

    /// S2 at the `Files` level: within the open-file cache's validity, a file truncated in
    /// place, renamed over or deleted is answered as it is now, confined or following
    /// symlinks.
    #[test]
    fn cache_sees_changes_within_its_validity() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.txt");
        for follow in [false, true] {
            std::fs::write(&path, "hello, world\n").unwrap();
            let files = Files::open(dir.path())
                .unwrap()
                .follow_symlinks(follow)
                .open_file_cache(Some(Duration::from_secs(600)));
            assert_eq!(get(&files, "/a.txt").body_len(), 13);
            std::fs::write(&path, "short\n").unwrap();
            let r = get(&files, "/a.txt");
            assert_eq!(
                (r.status(), r.body_len()),
                (Status::Ok, 6),
                "follow {follow}"
            );
            let head = std::str::from_utf8(r.head()).unwrap();
            assert!(head.contains("Content-Length: 6\r\n"), "{head}");
            std::fs::write(dir.path().join("new"), "renamed over\n").unwrap();
            std::fs::rename(dir.path().join("new"), &path).unwrap();
            assert_eq!(get(&files, "/a.txt").body_len(), 13, "follow {follow}");
            std::fs::remove_file(&path).unwrap();
            assert_eq!(get(&files, "/a.txt").status(), Status::NotFound);
        }
    }

    /// A sidecar found missing is not looked for again during the cache's validity (no failed
    /// lookups per request for a file without sidecars), then is: one created meanwhile is
    /// served after at most the validity; with no validity, at once.
    #[test]
    fn a_missing_sidecar_is_remembered_for_the_validity() {
        let gzip = |files: &Files| {
            let head = "GET /a.txt HTTP/1.1\r\nHost: h\r\nAccept-Encoding: gzip\r\n\r\n";
            let Parsed::Complete(req) = RequestHead::parse(head.as_bytes()) else {
                panic!()
            };
            let r = files.respond(&req);
            std::str::from_utf8(r.head())
                .unwrap()
                .contains("Content-Encoding: gzip\r\n")
        };
        for valid in [Duration::ZERO, Duration::from_millis(300)] {
            let dir = tempfile::tempdir().unwrap();
            std::fs::write(dir.path().join("a.txt"), "hello, world\n").unwrap();
            let files = Files::open(dir.path())
                .unwrap()
                .precompressed(true)
                .open_file_cache(Some(valid));
            assert!(!gzip(&files));
            std::fs::write(dir.path().join("a.txt.gz"), "not really gzip").unwrap();
            assert_eq!(gzip(&files), valid.is_zero(), "validity {valid:?}");
            std::thread::sleep(valid + Duration::from_millis(50));
            assert!(gzip(&files), "validity {valid:?}, after it");
        }
    }

    /// The 503 for want of descriptors tells the client when to come back, and closes.
    #[test]
    fn unavailable_says_retry_after_and_closes() {
        let r = Response::text(Status::ServiceUnavailable, true, false, 1);
        let head = std::str::from_utf8(r.head()).unwrap();
        assert!(
            head.starts_with("HTTP/1.1 503 Service Unavailable\r\n"),
            "{head}"
        );
        assert!(head.contains("Retry-After: 1\r\n"), "{head}");
        assert!(head.contains("Connection: close\r\n"), "{head}");
    }
}
