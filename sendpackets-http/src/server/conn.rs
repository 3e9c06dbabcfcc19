//! One accepted connection: read request heads into one bounded buffer; answer those under the
//! static prefix with one sendpackets send each; give every other request, one at a time, to
//! hyper and the application through an [`Exchange`], then take the stream back.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use bytes::{Buf, BytesMut};
use hyper::body::Incoming;
use sendpackets::tokio::Connection;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::{oneshot, watch};
use tokio::time::Instant;

use super::exchange::{Exchange, Returned};
use super::{AppService, Shared};
use crate::request::{Method, Parsed, RequestHead};
use crate::response::Response;

/// Bytes read from the socket at a time while waiting for a head.
const READ_CHUNK: usize = 4 << 10;

/// Lingering close: at most this long and [`LINGER_BYTES`] of what the client still sends
/// are discarded after an answer the server does not read on from (as `sendpackets serve`).
const LINGER_TIME: std::time::Duration = std::time::Duration::from_secs(2);

/// Most bytes discarded by a lingering close.
const LINGER_BYTES: usize = 1 << 20;

/// The socket, plain or checked once by the library for sends.
#[derive(Debug)]
enum Sock {
    Plain(TcpStream),
    Checked(Connection<TcpStream>),
}

impl Sock {
    fn stream(&mut self) -> &mut TcpStream {
        match self {
            Sock::Plain(s) => s,
            Sock::Checked(c) => c.get_mut(),
        }
    }

    fn into_stream(self) -> TcpStream {
        match self {
            Sock::Plain(s) => s,
            Sock::Checked(c) => c.into_inner(),
        }
    }
}

/// How a static response went.
enum Sent {
    /// Whole; the connection goes on.
    KeepOpen(Sock),
    /// Whole; the connection closes.
    Close(Sock),
    /// Not whole (the client left, stopped reading, or the file shrank): close at once.
    Failed,
}

/// Serves one connection until it closes, is upgraded, or the server stops.
pub(crate) async fn serve<S>(
    stream: TcpStream,
    shared: Arc<Shared<S>>,
    mut stop: watch::Receiver<bool>,
) where
    S: AppService,
{
    let mut sock = Sock::Plain(stream);
    let mut buf = BytesMut::with_capacity(READ_CHUNK);
    let mut deadline = Instant::now() + shared.idle_timeout;
    loop {
        match RequestHead::parse(&buf) {
            Parsed::Complete(req) if shared.files.matches(req.target()) && !req.wants_upgrade() => {
                let used = req.head_len();
                let unread = req.has_body() || buf.len() > used;
                let response = shared.files.respond(&req);
                match send_file(sock, &shared, response).await {
                    Sent::KeepOpen(s) => sock = s,
                    Sent::Close(s) => {
                        if unread {
                            linger(s.into_stream()).await;
                        }
                        return;
                    }
                    Sent::Failed => return,
                }
                buf.advance(used);
                deadline = Instant::now() + shared.idle_timeout;
                if *stop.borrow() {
                    return;
                }
                continue;
            }
            Parsed::Complete(req) => {
                let head_len = req.head_len();
                let body = req.body();
                let head_request = req.method() == Method::Head;
                let keep = req.client_keep_alive();
                let (tx, rx) = oneshot::channel();
                let io = Exchange::new(
                    sock.into_stream(),
                    buf.split(),
                    head_len,
                    body,
                    head_request,
                    keep,
                    tx,
                );
                shared.stats.app_request();
                {
                    let conn = shared
                        .http
                        .serve_connection(io, HyperService(shared.clone()))
                        .with_upgrades();
                    let mut conn = std::pin::pin!(conn);
                    // Errors are the application's or the client's; the stream that comes
                    // back says what is left. Hyper lets go of it when `conn` is dropped, at
                    // the end of this block.
                    tokio::select! {
                        _ = conn.as_mut() => {}
                        _ = stop.changed() => {
                            // The response in flight says `Connection: close`; then the loop
                            // stops.
                            conn.as_mut().graceful_shutdown();
                            let _ = conn.await;
                        }
                    }
                }
                match rx.await {
                    Ok(Returned {
                        stream,
                        unread,
                        reusable: true,
                        ..
                    }) => {
                        sock = Sock::Plain(stream);
                        buf = unread;
                        deadline = Instant::now() + shared.idle_timeout;
                        if *stop.borrow() {
                            return;
                        }
                        continue;
                    }
                    Ok(Returned {
                        mut stream,
                        unread_input,
                        ..
                    }) => {
                        if unread_input {
                            linger(stream).await;
                        } else {
                            let _ = stream.shutdown().await;
                        }
                        return;
                    }
                    Err(_) => {
                        // Upgraded: the connection belongs to the application now.
                        shared.stats.upgrade();
                        return;
                    }
                }
            }
            Parsed::Refused(why) => {
                if let Sent::Close(s) = send_file(sock, &shared, Response::refusal(why)).await {
                    linger(s.into_stream()).await;
                }
                return;
            }
            _ => {} // Partial: read more
        }
        if buf.capacity() - buf.len() < READ_CHUNK / 2 {
            buf.reserve(READ_CHUNK);
        }
        tokio::select! {
            r = sock.stream().read_buf(&mut buf) => match r {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            },
            () = tokio::time::sleep_until(deadline) => {
                if !buf.is_empty() {
                    if let Sent::Close(s) = send_file(sock, &shared, Response::request_timeout()).await {
                        linger(s.into_stream()).await;
                    }
                }
                return;
            }
            _ = stop.changed(), if buf.is_empty() => return,
        }
    }
}

/// Sends one response with one library call; the socket is checked by the library the first
/// time (and again after hyper had it).
async fn send_file<S>(sock: Sock, shared: &Shared<S>, response: Response) -> Sent {
    let mut conn = match sock {
        Sock::Checked(c) => c,
        Sock::Plain(s) => match Connection::new(s) {
            Ok(c) => c,
            Err(_) => return Sent::Failed, // not connected: the client left
        },
    };
    let keep = response.keep_alive();
    let body_len = response.body_len();
    let list = response.into_elements();
    // A second element is the file range.
    let opts = if list.len() > 1 && body_len >= shared.zero_copy_from {
        &shared.zero_copy
    } else {
        &shared.opts
    };
    conn.set_options(opts.clone());
    match conn.send(&list).await {
        Ok(report) => {
            shared
                .stats
                .file_sent(report.bytes_sent, report.calls.sendfile);
            if keep {
                Sent::KeepOpen(Sock::Checked(conn))
            } else {
                Sent::Close(Sock::Checked(conn))
            }
        }
        Err(_) => Sent::Failed,
    }
}

/// Closes after an answer the client may still be sending behind: shut our side down, then
/// discard its bytes until it closes, at most [`LINGER_TIME`] and [`LINGER_BYTES`].
async fn linger(mut stream: TcpStream) {
    if stream.shutdown().await.is_err() {
        return;
    }
    let mut sink = [0u8; 4096];
    let mut discarded = 0usize;
    let _ = tokio::time::timeout(LINGER_TIME, async {
        while discarded < LINGER_BYTES {
            match stream.read(&mut sink).await {
                Ok(0) | Err(_) => break,
                Ok(n) => discarded += n,
            }
        }
    })
    .await;
}

/// The application as hyper's service for one request.
struct HyperService<S>(Arc<Shared<S>>);

type AppFuture<S> = Pin<
    Box<
        dyn Future<
                Output = Result<
                    http::Response<<S as AppService>::Body>,
                    <S as tower_service::Service<http::Request<Incoming>>>::Error,
                >,
            > + Send,
    >,
>;

impl<S: AppService> hyper::service::Service<http::Request<Incoming>> for HyperService<S> {
    type Response = http::Response<S::Body>;
    type Error = S::Error;
    type Future = AppFuture<S>;

    fn call(&self, req: http::Request<Incoming>) -> Self::Future {
        let mut svc = self.0.service.clone();
        Box::pin(async move {
            std::future::poll_fn(|cx| svc.poll_ready(cx)).await?;
            svc.call(req).await
        })
    }
}
