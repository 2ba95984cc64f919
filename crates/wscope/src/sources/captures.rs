//! What `read` (capture files) and `capture` (a live interface) share when
//! packets become events: how the decoder is set up from the output
//! flags, the `--write` pcapng file, and the line that sums a capture up.
//! The packets themselves go through one `wscope_capture::Capture` in
//! both; only where they come from differs.

use std::fs::File;
use std::io::BufWriter;
use std::path::Path;

use anyhow::{Context, bail};
use wscope_capture::keylog::KeyLog;
use wscope_capture::{PacketWriter, PcapngWriter, Summary};

use crate::sinks::output_args::OutputArgs;

/// What is kept of each payload read from a capture, unless
/// `--max-payload` says otherwise (connect's and serve's default).
pub const CAPTURE_MAX_PAYLOAD: usize = 64 * 1024;

/// How packets become events, from the output flags. `wants_output`:
/// something shows or keeps frames and binary payloads (not `read --stats`
/// alone, which only counts them).
pub fn decoder_options(output: &OutputArgs, wants_output: bool) -> wscope_capture::Options {
    wscope_capture::Options {
        // A record file was cut when it was recorded; a capture is cut
        // here, as connect and serve cut what they record.
        max_payload: output.max_payload.unwrap_or(CAPTURE_MAX_PAYLOAD),
        // Secrets in a capture are as raw as on the wire; the sinks the
        // events go to redact them (with the run's own rules and key).
        redact: false,
        frames: wants_output,
        binary: wants_output,
        // A live capture following a key log says so itself.
        keys_may_arrive: false,
    }
}

/// Fails when `--write` and `--record` name the same file: one would
/// overwrite the other.
pub fn refuse_same_output(write: Option<&Path>, record: Option<&Path>) -> anyhow::Result<()> {
    use std::os::unix::fs::MetadataExt;
    let (Some(write), Some(record)) = (write, record) else {
        return Ok(());
    };
    let same = write == record
        || match (std::fs::metadata(write), std::fs::metadata(record)) {
            (Ok(a), Ok(b)) => (a.dev(), a.ino()) == (b.dev(), b.ino()),
            _ => false,
        };
    if same {
        bail!(
            "--write and --record both name {}: packets and events go to different files",
            write.display()
        );
    }
    Ok(())
}

/// Creates the `--write` file (readable by its owner only: it holds every
/// payload and every secret header) and writes its section header.
pub fn create_pcapng(path: &Path) -> anyhow::Result<PacketWriter> {
    let file: File = crate::files::create_private(path)
        .with_context(|| format!("cannot create --write {}", path.display()))?;
    let out: Box<dyn std::io::Write + Send> = Box::new(BufWriter::with_capacity(256 * 1024, file));
    PcapngWriter::new(out, concat!("wscope ", env!("CARGO_PKG_VERSION")))
        .with_context(|| format!("cannot write --write {}", path.display()))
}

/// The line that sums up a capture; `source` is what problems were found
/// in ("the file", "the packets").
pub fn summary_line(s: &Summary, source: &str) -> String {
    let mut line = format!(
        "capture: {} packets, {} TCP connections, {} WebSocket ({} frames, {} messages)",
        s.packets, s.tcp_connections, s.websocket, s.frames, s.messages
    );
    let mut add = |count: u64, text: String| {
        if count > 0 {
            line.push_str(", ");
            line.push_str(&text);
        }
    };
    add(
        s.handshake_missing,
        format!("{} joined without their handshake", s.handshake_missing),
    );
    add(
        s.handshake_failed,
        format!("{} upgrades refused", s.handshake_failed),
    );
    let names = if s.tls_names.is_empty() {
        String::new()
    } else {
        format!(" ({})", s.tls_names.join(", "))
    };
    let tls = if s.tls_decrypted > 0 {
        format!(
            "{} TLS{names}, {} of them decrypted",
            s.tls, s.tls_decrypted
        )
    } else {
        format!("{} TLS not decrypted{names}", s.tls)
    };
    add(s.tls, tls);
    let h2 = if s.websocket_over_http2 > 0 {
        format!(
            " ({} opening WebSocket over HTTP/2, not decoded)",
            s.websocket_over_http2
        )
    } else {
        String::new()
    };
    add(s.http2, format!("{} HTTP/2{h2}", s.http2));
    add(s.gaps, format!("{} gaps in TCP streams", s.gaps));
    add(s.problems, format!("{} problems with {source}", s.problems));
    line
}

/// The line about the key logs, when some were given (`given`) or the
/// capture carried secrets: how many sessions they had secrets for, and
/// how many of those matched no connection.
pub fn keylog_line(keys: &KeyLog, given: bool) -> Option<String> {
    if !given && keys.is_empty() {
        return None;
    }
    let mut line = format!("key log: secrets for {} TLS sessions", keys.sessions());
    let unused = keys.unused();
    if unused > 0 {
        line.push_str(&format!(
            ", {unused} of them for no connection in this capture"
        ));
    }
    Some(line)
}
