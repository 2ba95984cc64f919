//! The UI's exports: the events on show as a record file, or as HAR
//! (written by `wscope_events::har`, which also reads it back).

use std::sync::Arc;

use wscope_events::RecordWriter;
use wscope_events::redact::Rules;

use super::hub::Stamped;

/// A record file (docs/FORMAT.md) of `events`, as the UI holds them
/// (`redaction`: the rules they were redacted with on the way in).
pub fn record<'a>(
    events: impl Iterator<Item = &'a Arc<Stamped>>,
    redaction: Option<&Rules>,
) -> Vec<u8> {
    let mut out = Vec::new();
    // Writing to memory cannot fail.
    if let Ok(mut writer) = RecordWriter::new(&mut out, "wscope ui export", redaction) {
        for stamped in events {
            let _ = writer.write(&stamped.event);
        }
        let _ = writer.flush();
    }
    out
}

/// HAR 1.2 (wscope_events::har): one entry per connection that opened,
/// with its handshake and, in Chrome's `_webSocketMessages`, its messages.
pub fn har<'a>(events: impl Iterator<Item = &'a Arc<Stamped>>) -> Vec<u8> {
    wscope_events::har::write_har(events.map(|stamped| &stamped.event))
}
