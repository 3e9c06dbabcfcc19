//! Bounded property tests: random and mutated requests through the parser, random targets
//! through the path mapper, random `Range` headers. Never a panic, never a path outside.

use std::path::Component;

use proptest::prelude::*;

use crate::path::{self, Refused};
use crate::range::{self, RangeAnswer};
use crate::request::{Parsed, RequestHead};

/// Cases per property: a few seconds in a debug build.
const CASES: u32 = 2_000;

const VALID: &str = "GET /dir/file.txt?q=1 HTTP/1.1\r\nHost: example\r\nRange: bytes=1-5\r\n\
                     If-None-Match: \"a-b\"\r\nConnection: keep-alive\r\n\r\n";

/// One edit of a byte string.
#[derive(Clone, Debug)]
enum Edit {
    Flip { at: usize, bit: u8 },
    Insert { at: usize, byte: u8 },
    Delete { at: usize },
    Truncate { at: usize },
}

fn edit() -> impl Strategy<Value = Edit> {
    prop_oneof![
        (any::<usize>(), 0u8..8).prop_map(|(at, bit)| Edit::Flip { at, bit }),
        (any::<usize>(), any::<u8>()).prop_map(|(at, byte)| Edit::Insert { at, byte }),
        any::<usize>().prop_map(|at| Edit::Delete { at }),
        any::<usize>().prop_map(|at| Edit::Truncate { at }),
    ]
}

fn apply(mut v: Vec<u8>, edits: &[Edit]) -> Vec<u8> {
    for e in edits {
        let n = v.len().max(1);
        match *e {
            Edit::Flip { at, bit } if !v.is_empty() => v[at % n] ^= 1 << bit,
            Edit::Insert { at, byte } => v.insert(at % (v.len() + 1), byte),
            Edit::Delete { at } if !v.is_empty() => {
                v.remove(at % n);
            }
            Edit::Truncate { at } => v.truncate(at % (v.len() + 1)),
            _ => {}
        }
    }
    v
}

fn check_parse(bytes: &[u8]) {
    if let Parsed::Complete(r) = RequestHead::parse(bytes) {
        assert!(r.head_len() <= bytes.len());
        assert!(!r.has_body() || !r.keep_alive());
        check_map(r.target());
    }
}

fn check_map(target: &str) {
    for dotfiles in [false, true] {
        match path::map(target, dotfiles) {
            Ok(m) => {
                for c in m.relative.components() {
                    let Component::Normal(name) = c else {
                        panic!("{target:?} mapped to {:?}", m.relative);
                    };
                    let name = name.as_encoded_bytes();
                    assert!(!name.contains(&0) && !name.contains(&b'\\'), "{target:?}");
                    assert!(dotfiles || name[0] != b'.', "{target:?}");
                }
                assert!(m.raw_path_len <= target.len());
            }
            Err(Refused::BadTarget | Refused::Hidden) => {}
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: CASES, ..ProptestConfig::default() })]

    #[test]
    fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
        check_parse(&bytes);
    }

    #[test]
    fn mutated_requests_never_panic(edits in proptest::collection::vec(edit(), 1..8)) {
        check_parse(&apply(VALID.as_bytes().to_vec(), &edits));
    }

    #[test]
    fn targets_never_leave(target in "/[a-z./%2eEfF5cC0\\\\]{0,40}") {
        check_map(&target);
    }

    #[test]
    fn any_target_never_panics(target in any::<String>()) {
        check_map(&target);
    }

    #[test]
    fn ranges_stay_inside(header in "(bytes|BYTES|x)=[0-9,\\- ]{0,20}", len in 0u64..50) {
        match range::range(Some(header.as_bytes()), len) {
            RangeAnswer::Part { start, end } => prop_assert!(start < end && end <= len),
            RangeAnswer::Parts(parts) => {
                prop_assert!(parts.len() >= 2);
                for (i, &(start, end)) in parts.iter().enumerate() {
                    prop_assert!(start < end && end <= len);
                    // Ascending, disjoint, not adjacent.
                    prop_assert!(i == 0 || parts[i - 1].1 < start);
                }
            }
            RangeAnswer::Whole | RangeAnswer::Unsatisfiable => {}
        }
    }
}
