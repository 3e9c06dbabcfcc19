//! `sendpackets send`: parse the elements, connect, send, report.

use std::time::Instant;

use sendpackets::{Element, Engine, ErrorKind, Payload, SendError, SendOptions, TransmitFlags};
use serde_json::{Value, json};

use crate::cli::{EngineArg, SendArgs};
use crate::exit::{Code, Failure, snake};
use crate::output;
use crate::progress::Spinner;
use crate::spec::{self, BuildError, Origin};

/// Runs the command and returns its exit code.
pub(crate) fn run(args: &SendArgs) -> Code {
    match send(args) {
        Ok(result) => {
            if args.output.json {
                output::print_json(&result.json);
            } else if !args.output.quiet && output::stderr_is_terminal() {
                eprintln!("{}", result.human);
            }
            Code::Ok
        }
        Err(f) => {
            output::report_failure(&f, args.output.json);
            f.code
        }
    }
}

/// What a successful send prints.
struct Sent {
    json: Value,
    human: String,
}

fn send(args: &SendArgs) -> Result<Sent, Failure> {
    let mut specs = Vec::with_capacity(args.elements.len());
    for (i, raw) in args.elements.iter().enumerate() {
        let spec = spec::parse(raw).map_err(|m| {
            let mut f = Failure::new(
                Code::Usage,
                "bad_element",
                format!("element {i} ('{}'): {m}", raw.to_string_lossy()),
            );
            f.element = Some(i);
            f.note("see 'sendpackets send --help' for the ELEMENT syntax")
        })?;
        specs.push((raw.clone(), spec));
    }
    let (elements, origins) =
        spec::build(&specs, &mut std::io::stdin().lock()).map_err(|e| match e {
            BuildError::Usage(m) => Failure::new(Code::Usage, "bad_element", m),
            BuildError::Input { origin, message } => {
                let mut f = Failure::new(
                    Code::Input,
                    "bad_input",
                    format!("element {} ({}): {message}", origin.arg, origin.label),
                );
                f.element = Some(origin.arg);
                f
            }
        })?;

    let target = &args.target;
    let sock = target.connect(args.connect_timeout).map_err(|e| {
        Failure::new(
            Code::Connect,
            "connect",
            format!("cannot connect to {target}: {}", output::io_message(&e)),
        )
        .note(format!(
            "is something listening there? to check, run 'sendpackets recv {target}' in another \
             terminal"
        ))
    })?;
    if let Some(t) = args.send_timeout {
        sock.set_write_timeout(Some(t))
            .map_err(|e| Failure::new(Code::Connect, "socket_option", output::io_message(&e)))?;
    }

    let mut options = SendOptions::new().engine(match args.engine {
        EngineArg::Auto => Engine::Auto,
        EngineArg::ZeroCopy => Engine::ZeroCopy,
        EngineArg::Portable => Engine::Portable,
    });
    if let Some(n) = args.send_size {
        options = options.send_size(usize::try_from(n).unwrap_or(usize::MAX));
    }
    if args.disconnect {
        options = options.flags(TransmitFlags::DISCONNECT);
    }

    let planned = planned_bytes(&elements);
    let show = !args.output.quiet && output::stderr_is_terminal();
    let progress = sendpackets::ProgressHandle::new();
    let spinner = Spinner::start(
        show,
        target.to_string(),
        planned,
        Some(Box::new(progress.clone())),
    );
    let start = Instant::now();
    let result = sendpackets::send_with(&sock, &elements, &options.clone().observe(&progress));
    let elapsed = start.elapsed();
    spinner.finish();
    drop(sock);

    let report = result.map_err(|e| failure(&e, &origins, planned))?;
    let c = report.calls;
    let json = json!({
        "ok": true,
        "target": target.to_string(),
        "bytes_sent": report.bytes_sent,
        "elements": report.elements,
        "datagrams": report.datagrams,
        "seconds": elapsed.as_secs_f64(),
        "bytes_per_sec": output::bytes_per_sec(report.bytes_sent, elapsed),
        "calls": output::calls_json(&c),
    });
    let datagrams = if target.kind.is_datagram() {
        format!(" in {} datagrams", report.datagrams)
    } else {
        String::new()
    };
    let human = format!(
        "sent {} ({} bytes){datagrams} to {target} in {}, {} ({} sendfile, {} vectored writes, \
         {} file reads)",
        output::bytes(report.bytes_sent),
        report.bytes_sent,
        output::duration(elapsed),
        output::rate(report.bytes_sent, elapsed),
        c.sendfile,
        c.gather_writes,
        c.file_reads,
    );
    Ok(Sent { json, human })
}

/// The bytes the list will send, when every file can be looked at now.
fn planned_bytes(elements: &[Element]) -> Option<u64> {
    elements.iter().try_fold(0u64, |sum, e| {
        let n = match &e.payload {
            Payload::Memory(b) => b.len() as u64,
            Payload::Path { path, range } => {
                let len = std::fs::metadata(path).ok()?.len();
                let available = len.checked_sub(range.offset)?;
                range.len.unwrap_or(available).min(available)
            }
            _ => return None,
        };
        sum.checked_add(n)
    })
}

/// Turns a library error into a failure that names the ELEMENT argument and the cause.
fn failure(e: &SendError, origins: &[Origin], planned: Option<u64>) -> Failure {
    let p = e.progress();
    let code = Code::of_send_error(e.kind(), p.bytes_sent);
    let origin = e.element().and_then(|i| origins.get(i));
    let cause = cause(e);
    let message = match origin {
        Some(o) => format!("element {} ({}): {cause}", o.arg, o.label),
        None => cause,
    };
    let mut f = Failure::new(code, &snake(&format!("{:?}", e.kind())), message);
    f.element = origin.map(|o| o.arg);
    f.path = e.path().map(|p| p.display().to_string().into());
    f.bytes_sent = Some(p.bytes_sent);
    if p.bytes_sent > 0 {
        let of = planned.map(|t| format!(" of {t}")).unwrap_or_default();
        let at = origins
            .get(p.elements_completed)
            .map(|o| format!(", stopped in element {} ({})", o.arg, o.label))
            .unwrap_or_default();
        f = f.note(format!(
            "{}{of} bytes were sent before the error{at}",
            p.bytes_sent
        ));
    } else {
        f = f.note("nothing was sent");
    }
    match e.kind() {
        ErrorKind::RangeOutOfBounds => f.note("ranges are PATH@OFFSET or PATH@OFFSET+COUNT"),
        ErrorKind::MessageTooLarge => {
            f.note("split the datagram with 'eop' markers, or send over a stream (tcp://)")
        }
        ErrorKind::NotConnected => f.note("the peer is not connected"),
        _ => f,
    }
}

/// The cause part of the library's message, with OS errors worded the command's way.
fn cause(e: &SendError) -> String {
    let mut s = e.cause().to_string();
    if let Some(io) = e.io_error() {
        if let Some(rest) = s.strip_suffix(&format!(": {io}")) {
            s = format!("{rest}: {}", output::io_message(io));
        }
    }
    s
}
