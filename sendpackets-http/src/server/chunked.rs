//! Where a chunked message body ends (RFC 9112 section 7.1), found without decoding it: the
//! connection hands hyper exactly one request, and learns when hyper's chunked response is
//! complete. Strict: CRLF line ends only; anything else is [`Scan::Invalid`], after which the
//! connection is not reused.

/// What the bytes fed so far hold.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Scan {
    /// The body goes on after all the bytes fed.
    More,
    /// The body ends after this many bytes of the last slice fed.
    Done(usize),
    /// Not chunked framing.
    Invalid,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    /// In the hex size; `digits` so far.
    Size { digits: u8 },
    /// After the size: extensions or whitespace, up to CR.
    Extension,
    /// CR of a size line seen.
    SizeLf,
    /// In chunk data.
    Data,
    /// After data: CR expected.
    DataCr,
    /// After data and CR: LF expected.
    DataLf,
    /// At the start of a trailer line (or of the final empty line).
    TrailerStart,
    /// Inside a trailer field line.
    TrailerLine,
    /// CR of a trailer line seen.
    TrailerLf,
    /// CR of the final empty line seen.
    EndLf,
    /// Complete.
    Done,
    /// Broken.
    Invalid,
}

/// Most hex digits of a chunk size (64 bits).
const MAX_DIGITS: u8 = 16;

/// Most bytes of a size line's extensions or of one trailer line.
const MAX_LINE: u32 = 4096;

/// A scanner over a chunked body, fed in order.
#[derive(Clone, Debug)]
pub(crate) struct Chunked {
    state: State,
    /// Bytes left in the current chunk (in [`State::Data`]), or the size being read.
    size: u64,
    /// Bytes in the current extension or trailer line.
    line: u32,
}

impl Chunked {
    pub(crate) fn new() -> Chunked {
        Chunked {
            state: State::Size { digits: 0 },
            size: 0,
            line: 0,
        }
    }

    /// Feeds the next bytes of the body.
    pub(crate) fn feed(&mut self, bytes: &[u8]) -> Scan {
        let mut i = 0;
        while i < bytes.len() {
            let b = bytes[i];
            self.state = match self.state {
                State::Size { digits } => match hex(b) {
                    Some(v) if digits < MAX_DIGITS => {
                        self.size = self.size << 4 | u64::from(v);
                        State::Size { digits: digits + 1 }
                    }
                    Some(_) => State::Invalid,
                    None if digits == 0 => State::Invalid,
                    None if b == b'\r' => State::SizeLf,
                    None if b == b';' || b == b' ' || b == b'\t' => {
                        self.line = 0;
                        State::Extension
                    }
                    None => State::Invalid,
                },
                State::Extension => match b {
                    b'\r' => State::SizeLf,
                    b'\n' => State::Invalid,
                    _ if self.line >= MAX_LINE => State::Invalid,
                    _ => {
                        self.line += 1;
                        State::Extension
                    }
                },
                State::SizeLf if b == b'\n' => {
                    if self.size == 0 {
                        State::TrailerStart
                    } else {
                        State::Data
                    }
                }
                State::Data => {
                    let n = (bytes.len() - i).min(usize::try_from(self.size).unwrap_or(usize::MAX));
                    self.size -= n as u64;
                    i += n;
                    if self.size == 0 {
                        self.state = State::DataCr;
                    }
                    continue;
                }
                State::DataCr if b == b'\r' => State::DataLf,
                State::DataLf if b == b'\n' => State::Size { digits: 0 },
                State::TrailerStart => match b {
                    b'\r' => State::EndLf,
                    b'\n' => State::Invalid,
                    _ => {
                        self.line = 1;
                        State::TrailerLine
                    }
                },
                State::TrailerLine => match b {
                    b'\r' => State::TrailerLf,
                    b'\n' => State::Invalid,
                    _ if self.line >= MAX_LINE => State::Invalid,
                    _ => {
                        self.line += 1;
                        State::TrailerLine
                    }
                },
                State::TrailerLf if b == b'\n' => State::TrailerStart,
                State::EndLf if b == b'\n' => {
                    self.state = State::Done;
                    return Scan::Done(i + 1);
                }
                State::Done => return Scan::Done(i),
                State::Invalid => return Scan::Invalid,
                _ => State::Invalid,
            };
            if self.state == State::Invalid {
                return Scan::Invalid;
            }
            i += 1;
        }
        match self.state {
            State::Done => Scan::Done(0),
            State::Invalid => Scan::Invalid,
            _ => Scan::More,
        }
    }
}

fn hex(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Feeds `body` in pieces of `step` bytes; the total bytes up to the end, if found.
    fn end(body: &[u8], step: usize) -> Result<Option<usize>, ()> {
        let mut c = Chunked::new();
        let mut at = 0;
        for piece in body.chunks(step) {
            match c.feed(piece) {
                Scan::More => at += piece.len(),
                Scan::Done(n) => return Ok(Some(at + n)),
                Scan::Invalid => return Err(()),
            }
        }
        Ok(None)
    }

    #[test]
    fn ends_are_found_at_every_split() {
        let cases: [(&[u8], usize); 4] = [
            (b"5\r\nhello\r\n0\r\n\r\nGET /next", 15),
            (b"3;ext=1\r\nabc\r\nA\r\n0123456789\r\n0\r\n\r\n", 34),
            (b"0\r\nX-Sum: 1\r\nY: 2\r\n\r\nrest", 21),
            (b"1\r\n\r\r\n0 ;x\r\n\r\n", 14),
        ];
        for (body, want) in cases {
            for step in 1..=body.len() {
                assert_eq!(end(body, step), Ok(Some(want)), "{body:?} by {step}");
            }
        }
    }

    #[test]
    fn unfinished_bodies_want_more() {
        for body in [
            &b"5\r\nhel"[..],
            b"0\r\n",
            b"0\r\nX: 1\r\n",
            b"5\r\nhello\r\n",
        ] {
            assert_eq!(end(body, 1), Ok(None), "{body:?}");
        }
    }

    #[test]
    fn broken_framing_is_invalid() {
        for body in [
            &b"x\r\n"[..],
            b"\r\n",
            b"5\nhello",
            b"5\r\nhelloX",
            b"0\r\nX: 1\n\r\n",
            b"0\n\n",
            b"11111111111111111\r\n",
        ] {
            assert_eq!(end(body, 1), Err(()), "{body:?}");
            assert_eq!(end(body, body.len()), Err(()), "{body:?}");
        }
    }
}
