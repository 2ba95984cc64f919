//! `wscope capture -i IFACE [FILTER...]`: packets off a live interface,
//! decoded as they arrive into the same events `read` makes of a capture
//! file, to the same outputs (the terminal view, `--json`, `--record`,
//! `--ui`, ...), and with `--write` kept as a pcapng file.
//!
//! The interface is looked up ([`interface`]), the filter compiled by
//! libpcap loaded at run time ([`bpf`]), and a Linux packet socket opened
//! on it ([`socket`]); then one blocking loop reads packets, hands them to
//! a `wscope_capture::Capture` (the decoder `read` uses) and every event
//! to the sinks, flushed per event. It waits at most 20 ms at a time, so
//! Ctrl-C and SIGTERM (which set a flag) end it promptly and key log files
//! (`--keylog`, [`crate::sources::keylog_follow`]) are read as they grow;
//! everything is then written out and the capture summed up on stderr,
//! as `read` does.

mod bpf;
mod interface;
mod socket;

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::anyhow;
use tokio::signal::unix::{SignalKind, signal};
use wscope_capture::{Capture, Packet};

use crate::cli::CaptureArgs;
use crate::sinks::emit::Events;
use crate::sinks::outputs::{self, Extras};
use crate::sources::captures;
use crate::sources::keylog_follow::KeylogFollower;
use socket::{Next, PacketSocket};

/// How long the loop waits for a packet before looking at the stop flag.
const WAIT: Duration = Duration::from_millis(20);
/// How often key log files are looked at for new lines.
const KEYLOG_POLL: Duration = Duration::from_millis(20);

pub async fn run(args: CaptureArgs) -> anyhow::Result<i32> {
    // Mistakes first, before anything is opened or created: flags, the
    // filter expression, the interface, the capture filter, permission.
    outputs::check(&args.output, &outputs::CAPTURE)?;
    captures::refuse_same_output(args.packets.write.as_deref(), args.output.record.as_deref())?;
    let interface = interface::find(&args.interface)?;
    let filter = args.capture_filter.join(" ");
    let filter = filter.trim();
    let program = if filter.is_empty() {
        None
    } else {
        Some(bpf::compile(interface.link.dlt(), args.snaplen, filter)?)
    };
    let socket = PacketSocket::open(&interface, args.snaplen, program.as_deref())?;

    let outputs = outputs::build(&args.output, &outputs::CAPTURE, Extras::default())?;
    let mut keylogs = KeylogFollower::new(&args.keylog);
    let mut options = captures::decoder_options(&args.output, true);
    // Secrets may be written after the packets they open: records wait.
    options.keys_may_arrive = !keylogs.is_empty();
    let mut capture = Capture::new(options);
    if let Some(path) = &args.packets.write {
        let mut writer = captures::create_pcapng(path)?;
        writer.name_interface(0, 0, &interface.name);
        capture.write_packets(writer);
    }

    // Ctrl-C and SIGTERM stop the loop; registered before the readiness
    // line, so that a signal sent as soon as it is read is not fatal.
    let stop = Arc::new(AtomicBool::new(false));
    let mut interrupt = signal(SignalKind::interrupt())?;
    let mut terminate = signal(SignalKind::terminate())?;
    let flag = Arc::clone(&stop);
    tokio::spawn(async move {
        tokio::select! {
            _ = interrupt.recv() => {}
            _ = terminate.recv() => {}
        }
        flag.store(true, Ordering::Relaxed);
    });

    let (shutdown_tx, shutdown_rx) = tokio::sync::watch::channel(false);
    let payload_limit = outputs.payload_limit();
    let mut ready = format!(
        "capturing on {} ({}), Ctrl-C to stop",
        interface.name,
        if filter.is_empty() {
            "every packet"
        } else {
            filter
        }
    );
    if let Some((_, url)) = &outputs.metrics {
        ready.push_str(&format!(" (metrics: {url})"));
    }
    if let Some(ui) = outputs.ui {
        let live = crate::sinks::ui::Mode::Live {
            source: format!("wscope capture on {}", interface.name),
            controls: None,
            events: Events::nowhere(),
        };
        let url = ui.start(live, shutdown_rx).await?;
        ready.push_str(&format!(" (ui: {url})"));
    }
    poll_keylogs(&mut keylogs, &mut capture);
    eprintln!("{ready}");

    let events = Events::direct(outputs.sinks, payload_limit);
    let live = Live {
        socket: &socket,
        name: &interface.name,
        linktype: interface.link.linktype(),
        snaplen: args.snaplen,
        count: args.count,
        write: args.packets.write.as_deref(),
        stop: &stop,
    };
    let outcome = tokio::task::block_in_place(|| {
        let outcome = live.pump(&mut capture, &events, &mut keylogs);
        capture.finish();
        deliver(&mut capture, &events);
        outcome
    });
    let write_error = capture.take_write_error();
    let _ = shutdown_tx.send(true);
    report_problems(&mut capture, &interface.name);
    let mut summary = captures::summary_line(capture.summary(), "the packets");
    let dropped = socket.dropped();
    if dropped > 0 {
        summary.push_str(&format!(
            ", {dropped} packets dropped by the kernel (wscope fell behind: the capture has holes)"
        ));
    }
    eprintln!("{summary}");
    if let Some(line) = captures::keylog_line(capture.keys_mut(), !keylogs.is_empty()) {
        eprintln!("wscope: {line}");
    }
    outcome?;
    if let Some(err) = write_error {
        return Err(write_failed(args.packets.write.as_deref(), err));
    }
    Ok(0)
}

/// The loop's view of the capture.
struct Live<'a> {
    socket: &'a PacketSocket,
    name: &'a str,
    linktype: i32,
    snaplen: u32,
    count: Option<u64>,
    write: Option<&'a Path>,
    stop: &'a AtomicBool,
}

impl Live<'_> {
    /// Reads packets until stopped (a signal, `--count`, every output
    /// gone) or until reading fails.
    fn pump(
        &self,
        capture: &mut Capture,
        events: &Events,
        keylogs: &mut KeylogFollower,
    ) -> anyhow::Result<()> {
        let mut buf = vec![0u8; self.snaplen as usize + socket::VLAN_TAG];
        let had_outputs = !events.is_nowhere();
        let mut number = 0u64;
        let mut polled = Instant::now();
        while !self.stop.load(Ordering::Relaxed) {
            if !keylogs.is_empty() && polled.elapsed() >= KEYLOG_POLL {
                polled = Instant::now();
                poll_keylogs(keylogs, capture);
                deliver(capture, events);
            }
            let received = match self.socket.next(&mut buf) {
                Ok(Next::Packet(received)) => received,
                Ok(Next::Skipped) => continue,
                Ok(Next::Empty) => {
                    // Nothing waiting: what was written so far goes to
                    // the file, as `tcpdump -U` does.
                    capture.flush_packets();
                    if !keylogs.is_empty() {
                        // Packets are stamped by the kernel's clock.
                        let now = std::time::SystemTime::now()
                            .duration_since(std::time::UNIX_EPOCH)
                            .map_or(0, |d| d.as_micros() as u64);
                        capture.tick(now);
                        deliver(capture, events);
                    }
                    if let Some(err) = capture.take_write_error() {
                        return Err(write_failed(self.write, err));
                    }
                    self.socket
                        .wait(WAIT)
                        .map_err(|err| anyhow!("capturing on {} failed: {err}", self.name))?;
                    continue;
                }
                Err(err) => return Err(anyhow!("capturing on {} failed: {err}", self.name)),
            };
            number += 1;
            let packet = Packet {
                number,
                ts_ns: received.ts_ns,
                linktype: self.linktype,
                data: &buf[..received.captured],
                orig_len: received.orig_len,
                interface: 0,
                snaplen: self.snaplen,
            };
            capture.packet(0, &packet);
            deliver(capture, events);
            report_problems(capture, self.name);
            if let Some(err) = capture.take_write_error() {
                return Err(write_failed(self.write, err));
            }
            if had_outputs && events.all_stopped() {
                // Every output failed (a closed pipe, a full disk).
                return Ok(());
            }
            if self.count.is_some_and(|count| number >= count) {
                return Ok(());
            }
        }
        Ok(())
    }
}

/// Reads what the key logs gained; records waiting for it are opened.
fn poll_keylogs(keylogs: &mut KeylogFollower, capture: &mut Capture) {
    let mut warnings = Vec::new();
    if keylogs.poll(capture.keys_mut(), &mut warnings) {
        capture.keys_added();
    }
    for warning in warnings {
        eprintln!("wscope: {warning}");
    }
}

/// Every event that is ready, handed over as it comes (each flushed: a
/// live view shows an event when it happens). Called from the blocking
/// loop (`block_in_place`), which may wait on the runtime.
fn deliver(capture: &mut Capture, events: &Events) {
    let runtime = tokio::runtime::Handle::current();
    while let Some(event) = capture.next_event() {
        runtime.block_on(events.emit_event(event));
    }
}

/// Problems with the packets (a link header cut short...), as they come.
fn report_problems(capture: &mut Capture, name: &str) {
    for problem in capture.take_problems() {
        eprintln!(
            "wscope: {name}: packet {}: {}",
            problem.packet, problem.text
        );
    }
}

fn write_failed(path: Option<&Path>, err: std::io::Error) -> anyhow::Error {
    let path = path.unwrap_or(Path::new("-"));
    anyhow!(
        "cannot write --write {}: {err}; capturing stopped",
        path.display()
    )
}
