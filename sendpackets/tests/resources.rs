//! Bounded resources. One test function on purpose: it counts this process's descriptors and
//! lowers its descriptor limit, which no other test may do at the same time.

mod util;

use sendpackets::{Element, Engine, ErrorKind, SendOptions};
use util::{Files, Kind};

#[test]
fn no_descriptor_leaks_and_many_files_under_a_low_limit() {
    no_descriptor_leaks();
    many_distinct_files_under_rlimit_nofile_256();
}

fn no_descriptor_leaks() {
    let files = Files::new();
    let ok = files.make("ok.bin", 300_000, 1);
    let shrinking = files.make("s.bin", 8 << 20, 2);
    let cases: Vec<Vec<Element>> = vec![
        vec![
            Element::file(&ok, ..),
            Element::file(files.path("missing"), ..),
        ],
        vec![
            Element::file(&ok, ..),
            Element::file(files.path("no/dir"), ..),
        ],
        vec![Element::file(&ok, ..), Element::file(&ok, 0..400_000)],
        vec![Element::file(&ok, ..), Element::file("", ..)],
        vec![Element::file(&ok, ..), Element::file(files.dir.path(), ..)],
        vec![Element::file(&ok, ..), Element::memory("x")],
    ];
    // Warm up (lazy statics, thread-locals) before counting.
    let _ = util::roundtrip(Kind::Unix, Engine::Auto, &cases[5]);
    for &front in util::front::RUNTIMES {
        let _ = util::roundtrip_via(front, Kind::Unix, &cases[5], &SendOptions::new());
    }
    let before = util::open_fds();
    for (front, engine) in util::FRONTS
        .into_iter()
        .flat_map(|f| util::ENGINES.map(|e| (f, e)))
    {
        for list in &cases {
            let opts = SendOptions::new().engine(engine);
            let _ = util::roundtrip_via(front, Kind::Unix, list, &opts);
        }
        // A failure mid-send (the file shrinks) closes the file too.
        let (a, b) = std::os::unix::net::UnixStream::pair().unwrap();
        let path = shrinking.clone();
        let t = std::thread::spawn(move || {
            use std::io::Read;
            let mut b = b;
            let mut buf = vec![0u8; 1 << 20];
            b.read_exact(&mut buf).unwrap();
            std::fs::OpenOptions::new()
                .write(true)
                .open(&path)
                .unwrap()
                .set_len(1)
                .unwrap();
            let _ = std::io::copy(&mut b, &mut std::io::sink());
        });
        let err = util::send_via(
            front,
            &a,
            &[Element::file(&shrinking, ..)],
            &SendOptions::new().engine(engine),
        )
        .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::FileTruncated, "{front:?} {engine:?}");
        drop(a);
        t.join().unwrap();
        std::fs::write(&shrinking, util::pattern(8 << 20, 2)).unwrap();
    }
    assert_eq!(
        util::open_fds(),
        before,
        "every descriptor the sends opened was closed"
    );
}

fn many_distinct_files_under_rlimit_nofile_256() {
    let files = Files::new();
    let paths: Vec<_> = (0..5000)
        .map(|i| files.make(&format!("f{i:04}.txt"), 10 + i % 50, (i % 251) as u8))
        .collect();
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: `lim` is valid for writes.
    assert_eq!(unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) }, 0);
    let low = libc::rlimit {
        rlim_cur: 256,
        rlim_max: lim.rlim_max,
    };
    // SAFETY: `low` is a valid rlimit.
    assert_eq!(unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &low) }, 0);
    let list: Vec<Element> = paths
        .iter()
        .enumerate()
        .flat_map(|(i, p)| [Element::memory(format!("#{i}:")), Element::file(p, ..)])
        .collect();
    let expected = util::model(&list).unwrap();
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        // Every engine on the blocking front, the default one on both runtimes.
        let runs = util::ENGINES
            .map(|e| (util::Front::Blocking, e))
            .into_iter()
            .chain(util::front::RUNTIMES.iter().map(|&f| (f, Engine::Auto)));
        for (front, engine) in runs {
            let opts = SendOptions::new().engine(engine);
            let (r, got) = util::roundtrip_via(front, Kind::Unix, &list, &opts);
            let report = r.unwrap_or_else(|e| panic!("{front:?} {engine:?}: {e}"));
            assert_eq!(report.bytes_sent, expected.len() as u64);
            assert!(got == expected, "{engine:?}");
        }
        // A file removed between the checks and its use: a clean error naming it. The receiver
        // waits before reading, so the send is blocked on the first 4 MiB while the file goes.
        let (sender, handle, started, release) = gated_pair();
        let victim = paths[4000].clone();
        let mut list = list.clone();
        // 4 MiB of memory (blocks until the receiver reads), then a range sent with sendfile:
        // the small elements after it are read only once the socket took both.
        let spacer = files.make("spacer.bin", 128 << 10, 7);
        list.insert(0, Element::file(&spacer, ..));
        list.insert(0, Element::memory(vec![0u8; 4 << 20]));
        let remover = std::thread::spawn(move || {
            started.recv_timeout(util::PATIENCE).unwrap();
            std::fs::remove_file(victim).unwrap();
            release.send(()).unwrap();
        });
        let err = sendpackets::send(&sender, &list).unwrap_err();
        drop(sender);
        remover.join().unwrap();
        let got = handle.join().unwrap().unwrap();
        assert_eq!(err.kind(), ErrorKind::FileChanged, "{err}");
        assert_eq!(err.element(), Some(2 + 2 * 4000 + 1));
        assert_eq!(err.path(), Some(paths[4000].as_path()));
        assert_eq!(err.progress().bytes_sent, got.len() as u64);
        // Whole elements before the victim went out (the ones sharing its gather wait).
        let done = err.progress().elements_completed;
        assert!((2..=8003).contains(&done), "{done}");
        assert_eq!(err.progress().offset_in_element, 0);
        assert!(got[..] == util::model(&list[..done]).unwrap()[..]);
        // Issue 11, item 1: a file deleted and re-created with new bytes of the same length
        // (ext4 hands the freed inode number straight back) is not the file the checks saw:
        // `FileChanged` with exact progress, never the new bytes on the wire.
        files.make("f4000.txt", 10, (4000 % 251) as u8); // back from above (10 + 4000 % 50 bytes)
        let (sender, handle, started, replaced_tx) = gated_pair();
        let victim = paths[4100].clone();
        let old_len = std::fs::metadata(&victim).unwrap().len() as usize;
        let recreate = std::thread::spawn({
            let victim = victim.clone();
            move || {
                started.recv_timeout(util::PATIENCE).unwrap();
                std::fs::remove_file(&victim).unwrap();
                std::fs::write(&victim, vec![b'N'; old_len]).unwrap();
                replaced_tx.send(()).unwrap();
            }
        });
        let err = sendpackets::send(&sender, &list).unwrap_err();
        drop(sender);
        recreate.join().unwrap();
        let got = handle.join().unwrap().unwrap();
        assert_eq!(err.kind(), ErrorKind::FileChanged, "{err}");
        assert_eq!(err.path(), Some(victim.as_path()));
        assert_eq!(err.progress().bytes_sent, got.len() as u64);
        let done = err.progress().elements_completed;
        assert!(got[..] == util::model(&list[..done]).unwrap()[..]);
        assert!(
            !got.windows(old_len.max(8))
                .any(|w| w.iter().all(|&b| b == b'N'))
        );

        // Issue 11, item 2: descriptors run short mid-send (another part of the process took
        // all but two): the send gives back its own files and retries, and completes.
        let list: Vec<Element> = list[..2 + 2 * 3000].to_vec();
        let expected = util::model(&list).unwrap();
        let (sender, handle, started, release) = gated_pair();
        let hoarder = std::thread::spawn(move || {
            started.recv_timeout(util::PATIENCE).unwrap();
            let mut hoard = Vec::new();
            while let Ok(f) = std::fs::File::open("/dev/null") {
                hoard.push(f);
                assert!(hoard.len() < 100_000);
            }
            hoard.truncate(hoard.len().saturating_sub(2));
            release.send(()).unwrap();
            hoard
        });
        let r = sendpackets::send(&sender, &list);
        drop(sender);
        let hoard = hoarder.join().unwrap();
        let got = handle.join().unwrap().unwrap();
        drop(hoard);
        let report = r.unwrap_or_else(|e| panic!("with 2 free descriptors: {e}"));
        assert_eq!(report.bytes_sent, expected.len() as u64);
        assert!(got == expected);
    }));
    // SAFETY: `lim` is the limit read above.
    assert_eq!(unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &lim) }, 0);
    if let Err(p) = result {
        std::panic::resume_unwind(p);
    }
}

/// A Unix stream pair whose receiver, in order: waits for the send's first bytes, says so on
/// `started`, waits for `release`, then reads to the end. Between the two, the send has passed
/// its checks and is blocked on a full socket: the moment to change files under it.
#[allow(clippy::type_complexity)]
fn gated_pair() -> (
    util::Sender,
    std::thread::JoinHandle<std::io::Result<Vec<u8>>>,
    std::sync::mpsc::Receiver<()>,
    std::sync::mpsc::Sender<()>,
) {
    let (started_tx, started) = std::sync::mpsc::channel::<()>();
    let (release, gate) = std::sync::mpsc::channel::<()>();
    let (sender, handle) = util::stream_pair_with(Kind::Unix, move |end| {
        let util::ReceiverEnd::Unix(mut end) = end else {
            unreachable!()
        };
        let mut one = [0u8; 1];
        rustix::net::recv(&end, &mut one, rustix::net::RecvFlags::PEEK)?;
        let _ = started_tx.send(());
        let _ = gate.recv_timeout(util::PATIENCE);
        let mut got = Vec::new();
        std::io::Read::read_to_end(&mut end, &mut got)?;
        Ok(got)
    });
    (sender, handle, started, release)
}
