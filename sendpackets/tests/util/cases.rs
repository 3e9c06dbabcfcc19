//! The cases every front end (blocking, async) must send exactly: one shared list.

use std::fs::File;
use std::sync::Arc;

use sendpackets::{Element, FileHandle, FileRange};

use super::Files;

/// A named list of elements.
pub struct Case {
    pub name: &'static str,
    pub list: Vec<Element>,
}

fn case(name: &'static str, list: Vec<Element>) -> Case {
    Case { name, list }
}

/// Every success case of the spec, over files made in `files`.
pub fn success_cases(files: &Files) -> Vec<Case> {
    let small = files.make("small.bin", 1024, 1);
    let medium = files.make("medium.bin", 200 * 1024, 2);
    let large = files.make("large.bin", 3 << 20, 3);
    let empty = files.make("empty.bin", 0, 4);
    let handle = FileHandle::new(File::open(&small).unwrap());
    let large_handle = Arc::new(File::open(&large).unwrap());
    let many: Vec<Element> = (0..1500)
        .map(|i| Element::memory(format!("<{i}>")))
        .collect();
    vec![
        case("empty list", vec![]),
        case(
            "memory only",
            vec![Element::memory("hello"), Element::memory(" world")],
        ),
        case("whole file", vec![Element::file(&small, ..)]),
        case(
            "count-0 file means to the end",
            vec![Element::file(
                &medium,
                FileRange::from_dotnet_count_or_to_end(0, 0),
            )],
        ),
        case("file part 10..30", vec![Element::file(&small, 10..30)]),
        case(
            "multi-part from one file",
            vec![
                Element::file(&medium, 0..100),
                Element::memory("|"),
                Element::file(&medium, 5000..70_000),
                Element::file(&medium, 100..200),
                Element::file(&medium, 150_000..),
            ],
        ),
        case(
            "one open handle used twice",
            vec![
                Element::shared_handle(handle.clone(), 0..512),
                Element::shared_handle(handle.clone(), 100..1024),
            ],
        ),
        case(
            "path and handle mixed",
            vec![
                Element::memory("HDR"),
                Element::handle(Arc::clone(&large_handle), 1000..(2 << 20)),
                Element::file(&small, ..),
                Element::handle(Arc::clone(&large_handle), 7..),
                Element::memory("TRL").end_of_packet(),
            ],
        ),
        case(
            "zero-count buffers skipped",
            vec![
                Element::memory(""),
                Element::memory_range(vec![1u8, 2, 3], 1, 0).unwrap(),
                Element::memory("x"),
                Element::file(&empty, ..),
                Element::file(&small, 1024..),
                Element::memory(""),
            ],
        ),
        case("more than 1024 memory elements", many),
        case(
            "header, large file, trailer",
            vec![
                Element::memory("HTTP/1.1 200 OK\r\n\r\n"),
                Element::file(&large, ..),
                Element::memory("\r\n0\r\n\r\n").end_of_packet(),
            ],
        ),
        case(
            "responses with end-of-packet pushes",
            (0..20)
                .flat_map(|i| {
                    [
                        Element::memory(format!("H{i}")),
                        Element::file(&medium, i * 100..i * 100 + 70_000),
                        Element::memory("T").end_of_packet(),
                    ]
                })
                .collect(),
        ),
    ]
}
