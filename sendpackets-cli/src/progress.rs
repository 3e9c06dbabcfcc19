//! The progress display of long sends: an indicatif spinner on stderr.
//!
//! It appears only when stderr is a terminal, `--quiet` is not given, and the send is still
//! running after [`DELAY`]; it is cleared when the send ends, so short sends print nothing.
//!
//! The send publishes its progress to a [`sendpackets::ProgressHandle`], which feeds the bar
//! (position, rate, ETA) through [`BytesSoFar`]; without a feed it is a spinner with the
//! elapsed time.

use std::sync::mpsc::{self, RecvTimeoutError};
use std::thread::JoinHandle;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// How long a send runs before the spinner appears.
pub(crate) const DELAY: Duration = Duration::from_secs(1);

/// A live count of bytes sent, read by the display thread.
pub(crate) trait BytesSoFar: Send + 'static {
    /// Bytes accepted by the kernel so far.
    fn bytes_so_far(&self) -> u64;
}

impl BytesSoFar for sendpackets::ProgressHandle {
    fn bytes_so_far(&self) -> u64 {
        self.get().bytes_sent
    }
}

/// A running progress display; [`Spinner::finish`] (or drop) removes it.
#[derive(Debug)]
pub(crate) struct Spinner {
    stop: Option<mpsc::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl Spinner {
    /// Starts the display thread when `enabled`; `planned` is the total the send will move, if
    /// known, and `feed` a live byte count, if there is one.
    pub(crate) fn start(
        enabled: bool,
        what: String,
        planned: Option<u64>,
        feed: Option<Box<dyn BytesSoFar>>,
    ) -> Spinner {
        if !enabled {
            return Spinner {
                stop: None,
                thread: None,
            };
        }
        let (tx, rx) = mpsc::channel::<()>();
        let thread = std::thread::spawn(move || {
            if rx.recv_timeout(DELAY) != Err(RecvTimeoutError::Timeout) {
                return;
            }
            let bar = make_bar(&what, planned, feed.is_some());
            bar.enable_steady_tick(Duration::from_millis(120));
            loop {
                if let Some(feed) = &feed {
                    bar.set_position(feed.bytes_so_far());
                }
                match rx.recv_timeout(Duration::from_millis(100)) {
                    Err(RecvTimeoutError::Timeout) => {}
                    _ => break,
                }
            }
            bar.finish_and_clear();
        });
        Spinner {
            stop: Some(tx),
            thread: Some(thread),
        }
    }

    /// Stops and clears the display.
    pub(crate) fn finish(mut self) {
        self.stop_now();
    }

    fn stop_now(&mut self) {
        drop(self.stop.take());
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for Spinner {
    fn drop(&mut self) {
        self.stop_now();
    }
}

fn make_bar(what: &str, planned: Option<u64>, has_feed: bool) -> ProgressBar {
    let planned_text = planned
        .map(|n| format!(" {}", crate::output::bytes(n)))
        .unwrap_or_default();
    let bar = match (planned, has_feed) {
        (Some(total), true) => {
            ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::stderr()).with_style(
                ProgressStyle::with_template(
                    "{spinner} {msg} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} eta {eta}",
                )
                .unwrap_or_else(|_| ProgressStyle::default_bar()),
            )
        }
        _ => ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr()).with_style(
            ProgressStyle::with_template("{spinner} {msg} [{elapsed_precise}]")
                .unwrap_or_else(|_| ProgressStyle::default_spinner()),
        ),
    };
    bar.set_message(format!("sending{planned_text} to {what}"));
    // The send started DELAY before the display did.
    bar.with_elapsed(DELAY)
}
