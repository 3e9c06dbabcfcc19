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
    assert_eq!(file.path(), Some(path.as_path()));
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
    let again = cache.open(&path).unwrap();
    assert_eq!(again.version_tag(), first.version_tag(), "the cached file");
    // Replaced within the validity period: unlinking the old file changed its change time,
    // which the hit's fstat sees: the file is opened anew at once.
    std::fs::remove_file(&path).unwrap();
    std::fs::write(&path, b"replaced, and longer").unwrap();
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

/// A cached file truncated (or written) in place within the validity period is opened anew at
/// the next hit: a response never starts from a length the file no longer has.
#[test]
fn the_cache_reopens_a_file_changed_in_place() {
    let files = Files::new();
    let path = files.make("t.bin", 100_000, 4);
    let cache = FileCache::new(Duration::from_secs(60), 8);
    assert_eq!(cache.open(&path).unwrap().len(), 100_000);
    std::fs::OpenOptions::new()
        .write(true)
        .open(&path)
        .unwrap()
        .set_len(10)
        .unwrap();
    let now = cache.open(&path).unwrap();
    assert_eq!(now.len(), 10, "the truncated file, not the cached length");
    let (sender, receiver) = util::stream_pair(Kind::Unix);
    sendpackets::send(&sender, &[now.element(..)]).unwrap();
    drop(sender);
    assert_eq!(receiver.bytes(), &std::fs::read(&path).unwrap()[..]);
}

/// Opening beneath a directory: files inside, also through symlinks that stay inside; never a
/// path that leads outside, by `..`, an absolute path or a symlink.
#[test]
fn open_beneath_keeps_to_its_directory() {
    let root = Files::new();
    let outside = Files::new();
    let secret = outside.make("secret.txt", 10, 5);
    root.make("in.txt", 7, 6);
    std::fs::create_dir(root.path("sub")).unwrap();
    std::os::unix::fs::symlink("../in.txt", root.path("sub/up.txt")).unwrap();
    std::os::unix::fs::symlink(&secret, root.path("out.txt")).unwrap();
    let dir = std::fs::File::open(root.dir.path()).unwrap();
    assert_eq!(OpenFile::open_beneath(&dir, "in.txt").unwrap().len(), 7);
    assert_eq!(OpenFile::open_beneath(&dir, "sub/up.txt").unwrap().len(), 7);
    for bad in ["out.txt", "../x", "sub/../../x", secret.to_str().unwrap()] {
        let e = OpenFile::open_beneath(&dir, bad).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::PermissionDenied, "{bad}: {e}");
    }
    assert_eq!(
        OpenFile::open_beneath(&dir, "sub").unwrap_err().kind(),
        ErrorKind::IsADirectory
    );
    assert_eq!(
        OpenFile::open_beneath(&dir, "nope.txt").unwrap_err().kind(),
        ErrorKind::FileNotFound
    );
    let cache = FileCache::beneath(std::os::fd::OwnedFd::from(dir), Duration::from_millis(1), 4);
    let f = cache.open("sub/up.txt").unwrap();
    assert_eq!(f.path(), Some(std::path::Path::new("sub/up.txt")));
    std::thread::sleep(Duration::from_millis(5));
    assert_eq!(
        cache.open("sub/up.txt").unwrap().len(),
        7,
        "revalidated beneath"
    );
    assert_eq!(
        cache.open("out.txt").unwrap_err().kind(),
        ErrorKind::PermissionDenied
    );
}

/// An `OpenFile` from a descriptor is checked as one from a path.
#[test]
fn from_fd_checks_the_descriptor() {
    let files = Files::new();
    let path = files.make("d.bin", 1234, 7);
    let fd = std::os::fd::OwnedFd::from(std::fs::File::open(&path).unwrap());
    let f = OpenFile::from_fd(fd).unwrap();
    assert_eq!((f.len(), f.path()), (1234, None));
    let dir = std::os::fd::OwnedFd::from(std::fs::File::open(files.dir.path()).unwrap());
    assert_eq!(
        OpenFile::from_fd(dir).unwrap_err().kind(),
        ErrorKind::IsADirectory
    );
    let w = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
    assert_eq!(
        OpenFile::from_fd(w.into()).unwrap_err().kind(),
        ErrorKind::PermissionDenied
    );
    // The tag is stable: computed from the file's identity alone.
    assert_eq!(
        f.version_tag(),
        OpenFile::open(&path).unwrap().version_tag()
    );
}
