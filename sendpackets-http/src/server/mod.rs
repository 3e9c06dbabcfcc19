//! Zero-copy static files in front of a hyper/tower application (axum, for example).
//!
//! [`serve`] owns every accepted connection. It reads each request head itself; a request
//! under the [`StaticFiles`] prefix is answered by [`Files::respond`] and one sendpackets send
//! (`sendfile` for the file range). Any other request, exactly one at a time, goes to hyper's
//! HTTP/1.1 server and the application's service; when the response has gone out, the
//! connection comes back for the next request. Bytes the client sent ahead (pipelining) stay
//! in the crate's buffer: hyper is given exactly one request's bytes, cut by its framing
//! (`Content-Length` or chunked), and sees end of file once its response is complete (found
//! in the bytes it writes). A `101 Switching Protocols` answer (a WebSocket handshake) hands
//! the connection to the application for good.

mod chunked;
mod conn;
mod exchange;

use std::error::Error as StdError;
use std::future::{Future, IntoFuture};
use std::io;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use hyper::body::Incoming;
use sendpackets::{Engine, SendOptions};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinSet;

use crate::Files;

type BoxError = Box<dyn StdError + Send + Sync>;

/// Pause after a failed `accept` (out of descriptors, ...) before the next try. Out of
/// descriptors, the open-file cache is emptied first, so the next try usually succeeds;
/// the pause stays short so accepting never stops for long.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(20);

/// Default time a connection gets to deliver a complete request head, from its start or the
/// end of the previous response (hyper's default `header_read_timeout` is 30 s).
const IDLE_TIMEOUT: Duration = Duration::from_secs(30);

/// Default time a static response may go without progress (a client not reading).
const STALL_TIMEOUT: Duration = Duration::from_secs(30);

/// Default smallest file body always sent with `sendfile`: the library's express limit, so
/// the library decides below it (a small file goes out read into memory, with one call).
const ZERO_COPY_FROM: u64 = 64 << 10;

/// A tower `Service` that [`serve`] can hand requests to: an axum `Router`, a
/// `tower::ServiceBuilder` stack, or any service of `http::Request<hyper::body::Incoming>`
/// whose response body is an `http_body::Body`. Implemented for every such service; it only
/// names their bounds.
pub trait AppService:
    tower_service::Service<
        http::Request<Incoming>,
        Response = http::Response<<Self as AppService>::Body>,
        Error: Into<BoxError>,
        Future: Send + 'static,
    > + Clone
    + Send
    + Sync
    + 'static
{
    /// The response body.
    type Body: http_body::Body<Data: Send, Error: Into<BoxError>> + Send + 'static;
}

impl<S, B> AppService for S
where
    S: tower_service::Service<http::Request<Incoming>, Response = http::Response<B>>
        + Clone
        + Send
        + Sync
        + 'static,
    S::Error: Into<BoxError>,
    S::Future: Send + 'static,
    B: http_body::Body<Data: Send, Error: Into<BoxError>> + Send + 'static,
{
    type Body = B;
}

/// A directory served under a path prefix by [`serve`], with [`Files`]' rules (confined
/// opening, conditionals, ranges, MIME types) and options. Opened when the server starts.
///
/// [`Files`]' options are given with [`files`](StaticFiles::files) and applied when the
/// server starts.
///
/// # Examples
///
/// ```
/// use sendpackets_http::StaticFiles;
///
/// let files = StaticFiles::new("assets")
///     .at("/static")
///     .files(|f| Ok(f.cors_origin("https://example.org")?.list(true)));
/// # let _ = files;
/// ```
#[derive(Clone)]
pub struct StaticFiles {
    dir: PathBuf,
    prefix: String,
    zero_copy_from: u64,
    /// The options given to [`files`](StaticFiles::files), applied in order at start.
    options: Vec<Arc<FilesOption>>,
}

/// One option of [`StaticFiles`]: a call of a [`Files`] method.
type FilesOption = dyn Fn(Files) -> io::Result<Files> + Send + Sync;

impl std::fmt::Debug for StaticFiles {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StaticFiles")
            .field("dir", &self.dir)
            .field("prefix", &self.prefix)
            .field("zero_copy_from", &self.zero_copy_from)
            .field("options", &self.options.len())
            .finish()
    }
}

impl StaticFiles {
    /// The files under `dir`, at `/` until [`at`](Self::at) says otherwise.
    pub fn new(dir: impl Into<PathBuf>) -> StaticFiles {
        StaticFiles {
            dir: dir.into(),
            prefix: String::new(),
            zero_copy_from: ZERO_COPY_FROM,
            options: Vec::new(),
        }
    }

    /// The path prefix the files are served under, `"/static"` for example (see
    /// [`Files::at`]). Every request under it is answered from the directory (404 when
    /// missing), never by the application.
    pub fn at(mut self, prefix: &str) -> StaticFiles {
        self.prefix = prefix.to_string();
        self
    }

    /// Any [`Files`] option, applied to the directory's [`Files`] when the server starts, in
    /// the order given: every option `Files` has (and gains) is reachable here, written once.
    /// A value the option refuses (a bad `Cache-Control` value or pattern, a bad origin) makes
    /// the server fail at start with its `InvalidInput` error.
    ///
    /// # Examples
    ///
    /// ```
    /// use sendpackets_http::StaticFiles;
    /// use std::time::Duration;
    ///
    /// let files = StaticFiles::new("assets").at("/static").files(|f| {
    ///     Ok(f.cache_control("no-cache")?
    ///         .cache_control_for("**/*.????????.{js,css}", "public, max-age=31536000, immutable")?
    ///         .precompressed(true)
    ///         .open_file_cache(Some(Duration::from_secs(10))))
    /// });
    /// # let _ = files;
    /// ```
    pub fn files(
        mut self,
        option: impl Fn(Files) -> io::Result<Files> + Send + Sync + 'static,
    ) -> StaticFiles {
        self.options.push(Arc::new(option));
        self
    }

    /// File bodies of at least this many bytes always go out with `sendfile`
    /// ([`Engine::ZeroCopy`]); smaller ones take the library's choice. Default 64 KiB.
    pub fn zero_copy_from(mut self, bytes: u64) -> StaticFiles {
        self.zero_copy_from = bytes;
        self
    }

    fn open(&self) -> io::Result<Files> {
        let files = Files::open(&self.dir)?.at(&self.prefix);
        self.options
            .iter()
            .try_fold(files, |files, option| option(files))
    }
}

/// Counters of a running [`serve`], shared by its clones: what went out as files, through
/// which kernel paths, and what the application was given.
///
/// # Examples
///
/// ```no_run
/// use std::future::IntoFuture;
///
/// #[tokio::main]
/// async fn main() -> std::io::Result<()> {
///     let router = axum::Router::new();
///     let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
///     let server = sendpackets_http::serve(listener, router, sendpackets_http::StaticFiles::new("."));
///     let stats = server.stats();
///     tokio::spawn(server.into_future());
///     println!("{} sendfile calls", stats.sendfile_calls());
///     Ok(())
/// }
/// ```
#[derive(Clone, Debug, Default)]
pub struct Stats {
    inner: Arc<Counters>,
}

#[derive(Debug, Default)]
struct Counters {
    connections: AtomicU64,
    file_responses: AtomicU64,
    file_bytes: AtomicU64,
    sendfile_calls: AtomicU64,
    app_requests: AtomicU64,
    upgrades: AtomicU64,
}

impl Stats {
    /// Connections accepted.
    pub fn connections(&self) -> u64 {
        self.inner.connections.load(Ordering::Relaxed)
    }

    /// Responses sent whole by the static side (files and its error responses).
    pub fn file_responses(&self) -> u64 {
        self.inner.file_responses.load(Ordering::Relaxed)
    }

    /// Bytes of those responses, heads included.
    pub fn file_bytes(&self) -> u64 {
        self.inner.file_bytes.load(Ordering::Relaxed)
    }

    /// `sendfile` calls that sent bytes of those responses (the library's
    /// `SendReport::calls.sendfile`, added up).
    pub fn sendfile_calls(&self) -> u64 {
        self.inner.sendfile_calls.load(Ordering::Relaxed)
    }

    /// Requests handed to the application.
    pub fn app_requests(&self) -> u64 {
        self.inner.app_requests.load(Ordering::Relaxed)
    }

    /// Connections handed to the application for good (`101 Switching Protocols`).
    pub fn upgrades(&self) -> u64 {
        self.inner.upgrades.load(Ordering::Relaxed)
    }

    fn file_sent(&self, bytes: u64, sendfile_calls: u64) {
        self.inner.file_responses.fetch_add(1, Ordering::Relaxed);
        self.inner.file_bytes.fetch_add(bytes, Ordering::Relaxed);
        self.inner
            .sendfile_calls
            .fetch_add(sendfile_calls, Ordering::Relaxed);
    }

    fn app_request(&self) {
        self.inner.app_requests.fetch_add(1, Ordering::Relaxed);
    }

    fn upgrade(&self) {
        self.inner.upgrades.fetch_add(1, Ordering::Relaxed);
    }
}

/// What every connection shares.
struct Shared<S> {
    files: Files,
    service: S,
    http: hyper::server::conn::http1::Builder,
    idle_timeout: Duration,
    opts: SendOptions,
    zero_copy: SendOptions,
    zero_copy_from: u64,
    stats: Stats,
}

/// Serves `service` (an axum `Router`, any tower service) on `listener`, with the files of
/// `files` answered zero-copy before the application sees them. Await the result to run it.
///
/// HTTP/1.1 and HTTP/1.0 only, over plain TCP: hyper's HTTP/1 server (keep-alive, bodies,
/// `Expect: 100-continue`, upgrades, streaming responses) handles the application's requests;
/// HTTP/2 and TLS are not offered (put a TLS-terminating proxy in front, or keep hyper's own
/// server for those). Request heads are read by this crate first: at most
/// [`MAX_HEAD`](crate::MAX_HEAD) bytes and [`MAX_HEADERS`](crate::MAX_HEADERS) fields, for
/// the application's requests too (431 beyond).
///
/// # Examples
///
/// ```no_run
/// use axum::{Router, routing::get};
/// use sendpackets_http::StaticFiles;
///
/// #[tokio::main]
/// async fn main() -> std::io::Result<()> {
///     let router = Router::new().route("/api/hello", get(|| async { "hello" }));
///     let listener = tokio::net::TcpListener::bind("127.0.0.1:8080").await?;
///     sendpackets_http::serve(listener, router, StaticFiles::new("assets").at("/static")).await
/// }
/// ```
///
/// # Errors
///
/// Awaiting it fails when the directory cannot be opened; accept errors (out of descriptors)
/// are waited out, not returned.
pub fn serve<S: AppService>(listener: TcpListener, service: S, files: StaticFiles) -> Serve<S> {
    Serve {
        listener,
        service,
        files,
        shutdown: None,
        idle_timeout: IDLE_TIMEOUT,
        stall_timeout: STALL_TIMEOUT,
        stats: Stats::default(),
    }
}

/// A server made by [`serve`]; `.await` it (it is [`IntoFuture`]) to run it.
#[must_use = "a server does nothing until awaited"]
pub struct Serve<S> {
    listener: TcpListener,
    service: S,
    files: StaticFiles,
    shutdown: Option<Pin<Box<dyn Future<Output = ()> + Send>>>,
    idle_timeout: Duration,
    stall_timeout: Duration,
    stats: Stats,
}

impl<S> std::fmt::Debug for Serve<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Serve")
            .field("listener", &self.listener)
            .field("files", &self.files)
            .finish_non_exhaustive()
    }
}

impl<S: AppService> Serve<S> {
    /// Stops when `signal` completes: no more connections are accepted, idle connections
    /// close, and the server's future completes once every request in flight (static or the
    /// application's) has been answered. Upgraded connections are the application's and are
    /// not waited for.
    pub fn with_graceful_shutdown(
        mut self,
        signal: impl Future<Output = ()> + Send + 'static,
    ) -> Serve<S> {
        self.shutdown = Some(Box::pin(signal));
        self
    }

    /// Time a connection gets to deliver a complete request head, from its start or the end
    /// of the previous response; then 408 (or a silent close if nothing came). Default 30 s.
    pub fn idle_timeout(mut self, d: Duration) -> Serve<S> {
        self.idle_timeout = d;
        self
    }

    /// Time a static response may go without progress (a client not reading) before its
    /// connection is dropped. Default 30 s.
    pub fn stall_timeout(mut self, d: Duration) -> Serve<S> {
        self.stall_timeout = d;
        self
    }

    /// The server's counters (shared: read them while it runs).
    pub fn stats(&self) -> Stats {
        self.stats.clone()
    }

    async fn run(self) -> io::Result<()> {
        let files = self.files.open()?;
        let opts = SendOptions::new().stall_timeout(self.stall_timeout);
        let shared = Arc::new(Shared {
            files,
            service: self.service,
            http: hyper::server::conn::http1::Builder::new(),
            idle_timeout: self.idle_timeout,
            zero_copy: opts.clone().engine(Engine::ZeroCopy),
            opts,
            zero_copy_from: self.files.zero_copy_from,
            stats: self.stats,
        });
        let sweeper = {
            let shared = shared.clone();
            tokio::spawn(async move {
                let mut every = tokio::time::interval(shared.files.sweep_interval());
                loop {
                    every.tick().await;
                    shared.files.sweep();
                }
            })
        };
        let mut shutdown = self
            .shutdown
            .unwrap_or_else(|| Box::pin(std::future::pending()));
        let (stop_tx, stop_rx) = watch::channel(false);
        let mut tasks = JoinSet::new();
        let listener = self.listener;
        loop {
            // Reap finished connections so the set stays as large as the live ones.
            while tasks.try_join_next().is_some() {}
            tokio::select! {
                accepted = listener.accept() => match accepted {
                    Ok((stream, _)) => {
                        // Heads and bodies leave whole; nothing waits for more to coalesce.
                        let _ = stream.set_nodelay(true);
                        shared.stats.inner.connections.fetch_add(1, Ordering::Relaxed);
                        tasks.spawn(conn::serve(stream, shared.clone(), stop_rx.clone()));
                    }
                    Err(e) => {
                        if matches!(
                            rustix::io::Errno::from_io_error(&e),
                            Some(rustix::io::Errno::MFILE | rustix::io::Errno::NFILE)
                        ) {
                            shared.files.shed();
                        }
                        tokio::time::sleep(ACCEPT_BACKOFF).await;
                    }
                },
                () = &mut shutdown => break,
            }
        }
        drop(listener);
        let _ = stop_tx.send(true);
        while tasks.join_next().await.is_some() {}
        sweeper.abort();
        Ok(())
    }
}

impl<S: AppService> IntoFuture for Serve<S> {
    type Output = io::Result<()>;
    type IntoFuture = Pin<Box<dyn Future<Output = io::Result<()>> + Send>>;

    fn into_future(self) -> Self::IntoFuture {
        Box::pin(self.run())
    }
}
