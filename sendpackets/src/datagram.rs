//! Datagram boundaries: which segments form each datagram, and whether each fits the socket's
//! limit (asked by `sys::datagram_limits`). Pure: no system call.

use std::io;

use crate::error::{ErrorKind, SendError};
use crate::resolve::{Resolved, Source};

/// Checks that every datagram of the list fits `max`; nothing is sent otherwise.
///
/// A datagram is the segments up to and including one marked end of packet; the segments after
/// the last marker form a final datagram.
pub(crate) fn check_sizes(res: &Resolved, max: u64) -> Result<(), SendError> {
    let mut size = 0u64;
    let mut first = None;
    for seg in &res.segments {
        first.get_or_insert(seg.element);
        size += seg.len;
        if size > max {
            let path = match seg.source {
                Source::File { slot, .. } => res.files[slot].path(),
                Source::Memory(_) => None,
            };
            return Err(SendError::new(ErrorKind::MessageTooLarge)
                .element_index(seg.element)
                .with_path(path)
                .with_detail(too_large(
                    first.unwrap_or(seg.element),
                    seg.element,
                    size,
                    max,
                ))
                .with_source(io::Error::from_raw_os_error(libc::EMSGSIZE)));
        }
        if seg.end_of_packet {
            size = 0;
            first = None;
        }
    }
    Ok(())
}

fn too_large(first: usize, last: usize, size: u64, max: u64) -> String {
    if first == last {
        format!("datagram of element {first} reaches {size} bytes, the socket sends at most {max}")
    } else {
        format!(
            "datagram of elements {first}..={last} reaches {size} bytes, the socket sends at most {max}"
        )
    }
}
