//! The Linux-only calls of `sys`, on other Unix systems: each fails with `ENOSYS` or answers
//! "no", so that the caller takes its portable path (see the contract in `sys/mod.rs`).

use std::io;
use std::os::fd::{BorrowedFd, OwnedFd};

use super::Message;

fn enosys<T>() -> io::Result<T> {
    Err(io::Error::from_raw_os_error(libc::ENOSYS))
}

pub(crate) fn sendmmsg(_sock: BorrowedFd<'_>, _msgs: &[Message<'_>]) -> io::Result<usize> {
    enosys()
}

pub(crate) fn udp_gso_max_segment(_sock: BorrowedFd<'_>, _ipv6: bool) -> Option<u64> {
    None
}

pub(crate) fn sendfile(
    _sock: BorrowedFd<'_>,
    _file: BorrowedFd<'_>,
    _offset: u64,
    _len: usize,
) -> io::Result<usize> {
    enosys()
}

/// No `TCP_CORK`: the send goes on uncorked.
pub(crate) fn set_tcp_cork(_sock: BorrowedFd<'_>, _on: bool) -> io::Result<()> {
    Ok(())
}

pub(crate) fn replace_with_fresh_socket(_sock: &mut OwnedFd) -> io::Result<()> {
    enosys()
}

pub(crate) fn on_pseudo_fs(_file: BorrowedFd<'_>) -> io::Result<bool> {
    Ok(false)
}
