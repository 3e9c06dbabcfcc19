//! What is received and reported, checked against the shared model (`util::model::Model`).

use sendpackets::Element;

use crate::fronts::{Attempt, Outcome};
pub(crate) use crate::util::model::Model;

/// The shared model of `list` (every file of a soak case is readable).
pub(crate) fn model_of(list: &[Element]) -> Model {
    Model::of(list).expect("the model reads every file")
}

/// Asserts `got == want`, naming the first difference and the element it falls in.
pub(crate) fn expect_exact(got: &[u8], want: &[u8], m: &Model, what: &str) {
    if got != want {
        let at = got.iter().zip(want).position(|(a, b)| a != b);
        let at = at.unwrap_or(got.len().min(want.len()));
        panic!(
            "{what}: received {} bytes, expected {}; first difference at byte {at} (element {})",
            got.len(),
            want.len(),
            m.element_at(at as u64)
        );
    }
}

/// Asserts that `got` is a prefix of the model's bytes.
pub(crate) fn expect_prefix(got: &[u8], m: &Model, what: &str) {
    assert!(
        got.len() <= m.bytes.len(),
        "{what}: received {} bytes, more than the model's {}",
        got.len(),
        m.bytes.len()
    );
    expect_exact(got, &m.bytes[..got.len()], m, what);
}

/// After a send with a progress handle: the handle agrees with the result.
pub(crate) fn check_observed(a: &Attempt, list_len: usize, what: &str) {
    let Some(o) = a.observed else { return };
    match &a.outcome {
        Outcome::Sent(r) => {
            assert_eq!(
                o.bytes_sent, r.bytes_sent,
                "{what}: handle {o:?} after {r:?}"
            );
            assert_eq!(
                o.elements_completed, list_len,
                "{what}: handle {o:?} after a complete send of {list_len} elements"
            );
        }
        Outcome::Failed(f) => assert_eq!(o, f.progress, "{what}: handle after {}", f.text),
        Outcome::Cancelled(p, _) => assert_eq!(o, *p),
    }
}
