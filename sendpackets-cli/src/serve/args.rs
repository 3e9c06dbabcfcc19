//! `sendpackets serve`'s command line, and every bound the server keeps, in one place.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::Args;

// The longest request head and most header fields are `sendpackets_http::MAX_HEAD` and
// `MAX_HEADERS`.

/// Default idle timeout: a connection gets this long, from its start or the end of the previous
/// response, to deliver a complete request head (so one byte a second cannot keep it).
const IDLE_TIMEOUT_SECS: &str = "15";

/// Default stall timeout: a response that makes no progress for this long is dropped with its
/// connection (a client that stopped reading).
const STALL_TIMEOUT_SECS: &str = "30";

/// Default grace period after SIGINT/SIGTERM for responses in flight.
const GRACE_SECS: &str = "5";

/// Default `--zero-copy-from`: the library's express limit (64 KiB, `sendpackets` `tuning.rs`),
/// so the library decides wherever it would read the file into memory.
const ZERO_COPY_FROM: &str = "64K";

/// Default most connections served at once (unless the descriptor limit leaves room for
/// fewer, `limits::Budget`); when reached, the server stops accepting until one closes (the
/// others wait in the listen backlog). nginx's default `worker_connections` is 512 per worker.
pub(crate) const MAX_CONNECTIONS: usize = 1024;

/// Lingering close: after answering a request the server will not read on (a refusal, a
/// request with a body), it shuts its side down and discards what the client still sends, for
/// at most this long or [`LINGER_BYTES`], so that closing with unread bytes does not reset the
/// connection before the client has read the answer. nginx's `lingering_timeout` is 5 s,
/// `lingering_time` 30 s; the answer here is small, so less is enough.
pub(crate) const LINGER_TIME: Duration = Duration::from_secs(2);

/// Most bytes discarded by a lingering close.
pub(crate) const LINGER_BYTES: usize = 1 << 20;

/// Backlog of the listening socket (the kernel caps it at `net.core.somaxconn`).
pub(crate) const BACKLOG: i32 = 1024;

/// Pause after a failed `accept` (out of descriptors, ...) before the next try, so the loop
/// does not spin. Out of descriptors, the tables of open files are emptied first, so the next
/// try usually succeeds; the pause stays short so accepting never stops for long.
pub(crate) const ACCEPT_BACKOFF: Duration = Duration::from_millis(20);

const SERVE_HELP: &str = "\
Serves the files under DIR read-only over HTTP/1.1: GET and HEAD, keep-alive and pipelining.
Content-Type from the extension (charset=utf-8 on text, JavaScript, JSON and SVG);
Last-Modified and ETag, with the preconditions in the order of RFC 9110 section 13.2.2:
If-Match and If-Unmodified-Since (412), If-None-Match and If-Modified-Since (304; a date in
the future is ignored), then If-Range. Byte ranges: 206, 416 when none can be satisfied;
several are sorted, coalesced and sent as one multipart/byteranges response; more than 64
get the whole file (200), as nginx's max_ranges. index.html for directories (301 to add the
'/'); a directory without one is 403 (or its listing with --list), a missing path 404.
Nothing outside DIR is ever served: '..', encoded slashes, NUL and backslashes are refused,
and so are symlinks leading outside DIR (unless --follow-symlinks) and names starting with a
dot (unless --dotfiles). Opt-in: --cache-control, --cache-control-for, --cors,
--precompressed, --list.
Every response, header and file range, goes out with one sendpackets call.
The address listened on is printed on stderr as 'listening on http://ADDRESS/'.
SIGINT or SIGTERM stops accepting and lets responses in flight finish for --grace seconds.

Example:
  sendpackets serve . --listen 127.0.0.1:8080      then:  curl -O http://127.0.0.1:8080/FILE";

/// `sendpackets serve`.
#[derive(Debug, Args)]
#[command(after_help = SERVE_HELP)]
pub(crate) struct ServeArgs {
    /// The directory to serve.
    #[arg(value_name = "DIR", default_value = ".")]
    pub(crate) dir: PathBuf,
    /// Address to listen on (port 0 picks a free port).
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:8080")]
    pub(crate) listen: SocketAddr,
    /// Runtime worker threads (default: one per CPU). With 1, one thread accepts and serves
    /// every connection.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u16).range(1..=1024))]
    pub(crate) threads: Option<u16>,
    /// Most connections at once; beyond it the server stops accepting until one closes.
    /// Default: 1024, or half the descriptor limit (less a reserve) when that is lower, so
    /// that files can still be opened with every connection in use.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    pub(crate) max_connections: Option<u32>,
    /// Seconds a connection may take to deliver a complete request head, from its start or
    /// the end of the previous response; then 408 (or a silent close if nothing came).
    #[arg(long, value_name = "SECS", default_value = IDLE_TIMEOUT_SECS, value_parser = parse_secs)]
    pub(crate) idle_timeout: Duration,
    /// Seconds a response may make no progress (client not reading) before it is dropped.
    #[arg(long, value_name = "SECS", default_value = STALL_TIMEOUT_SECS, value_parser = parse_secs)]
    pub(crate) stall_timeout: Duration,
    /// Seconds responses in flight get to finish after SIGINT/SIGTERM.
    #[arg(long, value_name = "SECS", default_value = GRACE_SECS, value_parser = parse_secs)]
    pub(crate) grace: Duration,
    /// Follow symlinks that lead outside DIR (by default they are refused with 403).
    #[arg(long)]
    pub(crate) follow_symlinks: bool,
    /// Serve files and directories whose name starts with a dot (hidden by default: 404).
    #[arg(long)]
    pub(crate) dotfiles: bool,
    /// Trust a file's path this many seconds after it was opened or looked up (as nginx's
    /// open_file_cache_valid): meanwhile a request costs one fstat of the open file and no
    /// lookup. A file written, truncated, deleted or renamed over is still seen at once; only
    /// a file newly created where none was is seen up to SECS late. 0: every request looks its
    /// path up again (an openat2 and an fstat more per request, 5-10 µs here).
    #[arg(long, value_name = "SECS", default_value = "1", value_parser = parse_validity)]
    pub(crate) open_file_cache: Duration,
    /// Bodies of at least this many bytes (K, M suffixes) always go out with sendfile; smaller
    /// ones take the library's choice. Files below both this and 64 KiB are read once per
    /// version (as told by the ETag's validators) and sent from memory with the head in one
    /// call, at most 32 MiB of them at once.
    #[arg(long, value_name = "BYTES", default_value = ZERO_COPY_FROM,
          value_parser = crate::spec::parse_size)]
    pub(crate) zero_copy_from: u64,
    /// Cache-Control value of every file response (200, 206, 304) whose path matches no
    /// --cache-control-for pattern, for example 'no-cache' (browsers revalidate, 304 when
    /// unchanged). Default: no Cache-Control.
    #[arg(long, value_name = "VALUE")]
    pub(crate) cache_control: Option<String>,
    /// PATTERN=VALUE (split at the first '='): Cache-Control VALUE for files whose path under
    /// DIR matches PATTERN ('*' within one path segment, '**' any segments, '?' one
    /// character, '{a,b}' alternatives); the first matching pattern wins over
    /// --cache-control. Repeatable. For content-hashed assets:
    /// --cache-control-for 'assets/**=public, max-age=31536000, immutable'.
    #[arg(long, value_name = "PATTERN=VALUE", value_parser = parse_rule)]
    pub(crate) cache_control_for: Vec<(String, String)>,
    /// Let scripts from ORIGIN ('https://example.org') read the files, or from any origin
    /// with '*': Access-Control-Allow-Origin (with Vary: Origin unless '*') and
    /// Access-Control-Expose-Headers on responses; OPTIONS preflights answered 204.
    /// Repeatable. Default: no CORS headers, OPTIONS is 405.
    #[arg(long, value_name = "ORIGIN")]
    pub(crate) cors: Vec<String>,
    /// Serve precompressed sidecars: for FILE, FILE.br, FILE.zst or FILE.gz when present and
    /// accepted (Accept-Encoding q-values; identity otherwise), with Content-Encoding, an
    /// ETag of its own, Range over the compressed bytes, and Vary: Accept-Encoding on every
    /// response for a file that has one (as nginx's gzip_static).
    #[arg(long)]
    pub(crate) precompressed: bool,
    /// List directories without index.html: an HTML page with escaped names, sizes and
    /// dates, directories first, dotfiles hidden unless --dotfiles. Without it such a
    /// directory is 403 (a missing path is 404).
    #[arg(long)]
    pub(crate) list: bool,
    /// Print one line per response on stdout (the access log), in the Combined Log Format
    /// followed by the duration in seconds and the outcome (complete, cut, not-sent).
    /// The bytes are the body bytes that reached the kernel; a response none of whose bytes
    /// did is logged as 499.
    #[arg(long)]
    pub(crate) log: bool,
    /// The access log's format (implies --log): combined, or json (one object per line).
    #[arg(long, value_name = "FORMAT", value_enum)]
    pub(crate) log_format: Option<super::log::LogFormat>,
}

fn parse_rule(s: &str) -> Result<(String, String), String> {
    let (pattern, value) = s
        .split_once('=')
        .ok_or_else(|| format!("'{s}' is not PATTERN=VALUE"))?;
    Ok((pattern.to_string(), value.to_string()))
}

fn parse_secs(s: &str) -> Result<Duration, String> {
    let secs: f64 = s
        .parse()
        .map_err(|_| format!("'{s}' is not a number of seconds"))?;
    if !(secs > 0.0 && secs <= 86_400.0) {
        return Err(format!(
            "'{s}' must be a positive number of seconds, at most 86400"
        ));
    }
    Ok(Duration::from_secs_f64(secs))
}

/// Like [`parse_secs`], and 0 is allowed (no validity: every request looks its path up).
fn parse_validity(s: &str) -> Result<Duration, String> {
    if s.parse::<f64>() == Ok(0.0) {
        return Ok(Duration::ZERO);
    }
    parse_secs(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_match_the_constants() {
        for d in [IDLE_TIMEOUT_SECS, STALL_TIMEOUT_SECS, GRACE_SECS] {
            assert!(parse_secs(d).is_ok());
        }
        assert!(parse_secs("0").is_err());
        assert!(parse_secs("x").is_err());
    }
}
