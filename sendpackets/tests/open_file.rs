//! Files a server sends again and again: `OpenFile` (opened and checked once) and `FileCache`
//! (an open-file cache with a validity period).

mod util;

use std::time::Duration;

use sendpackets::{Element, ErrorKind, FileCache, OpenFile, SendOptions};
use util::{Files, Kind};

#[test]
fn an_open_file_sends_ranges_many_times_on_every_front() {
    let files = Files::new();
    let path = files.make("page.bin", 200_000, 9);
    let content = std::fs::read(&path).unwrap();
    let file = OpenFile::open(&path).unwrap();
    assert_eq!(file.len(), 200_000);
    assert_eq!(file.path(), path.as_path());
    for front in util::FRONTS {
        for engine in util::ENGINES {
            let (sender, receiver) = util::stream_pair(Kind::Tcp4);
            let list = [
                Element::memory("h"),
                file.element(..),
                file.element(100..1100),
                file.element(199_990..),
                Element::memory("t"),
            ];
            let opts = SendOptions::new().engine(engine);
            let report = util::send_via(front, &sender, &list, &opts).unwrap();
            drop(sender);
            let mut want = b"h".to_vec();
            want.extend_from_slice(&content);
            want.extend_from_slice(&content[100..1100]);
            want.extend_from_slice(&content[199_990..]);
            want.extend_from_slice(b"t");
            let got = receiver.bytes();
            assert!(got == want, "{front:?} {engine:?}");
            assert_eq!(report.bytes_sent, want.len() as u64);
        }
    }
    // A range past the length known at open is the usual error, naming the element.
    let (sender, _receiver) = util::stream_pair(Kind::Unix);
    let err = sendpackets::send(&sender, &[file.element(199_999..200_001)]).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::RangeOutOfBounds);
}

#[test]
fn open_refuses_what_the_checks_refuse() {
    let files = Files::new();
    assert_eq!(
        OpenFile::open(files.path("none")).unwrap_err().kind(),
        ErrorKind::FileNotFound
    );
    assert_eq!(
        OpenFile::open(files.path("")).unwrap_err().kind(),
        ErrorKind::IsADirectory
    );
    assert_eq!(OpenFile::open("").unwrap_err().kind(), ErrorKind::EmptyPath);
    let err = OpenFile::open("/proc/self/status").unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotARegularFile);
    assert_eq!(err.path(), Some(std::path::Path::new("/proc/self/status")));
}

#[test]
fn a_file_truncated_after_open_is_an_error_never_a_short_message() {
    let files = Files::new();
    let path = files.make("shrinks.bin", 300_000, 4);
    let file = OpenFile::open(&path).unwrap();
    std::fs::OpenOptions::new()
        .write(true)
        .open(&path)
        .unwrap()
        .set_len(1000)
        .unwrap();
    for engine in util::ENGINES {
        let (sender, receiver) = util::stream_pair(Kind::Unix);
        let opts = SendOptions::new().engine(engine);
        let err = sendpackets::send_with(&sender, &[file.element(..)], &opts).unwrap_err();
        drop(sender);
        assert_eq!(err.kind(), ErrorKind::FileTruncated, "{engine:?}");
        assert_eq!(receiver.bytes().len() as u64, err.progress().bytes_sent);
    }
}

#[test]
fn the_cache_serves_from_memory_then_revalidates() {
    let files = Files::new();
    let path = files.make("a.txt", 10, 1);
    let cache = FileCache::new(Duration::from_millis(200), 2);
    let first = cache.open(&path).unwrap();
    // Replaced within the validity period: still the old file, whole.
    std::fs::remove_file(&path).unwrap();
    std::fs::write(&path, b"replaced, and longer").unwrap();
    let again = cache.open(&path).unwrap();
    assert_eq!(again.len(), 10);
    assert_eq!(again.version_tag(), first.version_tag());
    // After it, one stat sees the change and the file is opened anew.
    std::thread::sleep(Duration::from_millis(250));
    let fresh = cache.open(&path).unwrap();
    assert_eq!(fresh.len(), 20);
    assert_ne!(fresh.version_tag(), first.version_tag());
    let (sender, receiver) = util::stream_pair(Kind::Unix);
    sendpackets::send(&sender, &[fresh.element(..)]).unwrap();
    drop(sender);
    assert_eq!(receiver.bytes(), b"replaced, and longer");
    // Capacity: the least recently used file goes.
    let b = files.make("b.txt", 5, 2);
    let c = files.make("c.txt", 5, 3);
    cache.open(&b).unwrap();
    cache.open(&path).unwrap();
    cache.open(&c).unwrap();
    assert_eq!(cache.len(), 2);
    // Errors are not cached.
    std::fs::remove_file(&c).unwrap();
    std::thread::sleep(Duration::from_millis(250));
    assert_eq!(cache.open(&c).unwrap_err().kind(), ErrorKind::FileNotFound);
    assert_eq!(cache.len(), 1);
}
