//! The descriptor counts the tests rely on see only what sends open: the first tokio runtime of a
//! process with signal handling (`cargo test --workspace` enables tokio's `signal` feature, which
//! the command line uses) leaves a socket pair open for good, and must not be counted as a leak.

mod util;

#[cfg(feature = "tokio")]
#[test]
fn the_first_runtime_of_the_process_changes_no_count() {
    let before = util::open_fds();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("tokio runtime");
    rt.block_on(async { tokio::task::yield_now().await });
    drop(rt);
    assert_eq!(util::open_fds(), before);
}
