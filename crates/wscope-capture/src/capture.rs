//! One capture, whatever its packets come from (files, read by
//! [`crate::CaptureReader`], or a live interface, read by the binary):
//! packets in, in capture order; events out, in time order.
//!
//! An event made late (bytes held behind a hole, a stream joined mid-way
//! and proven later) carries the time its bytes were captured and waits in
//! a small reorder queue until the decoder's watermark says nothing older
//! can still come. Memory does not grow with the capture. With a
//! [`PcapngWriter`], every packet is also written out as it came in
//! (`--write`).

use std::collections::VecDeque;
use std::io::{self, Write};

use wscope_events::Event;

use crate::decoder::{Decoder, Options, Summary};
use crate::keylog::{self, KeyLog, LineError};
use crate::packets::{Packet, Problem};
use crate::pcapng::PcapngWriter;

/// Where `--write` puts the packets.
pub type PacketWriter = PcapngWriter<Box<dyn Write + Send>>;

/// Packets in, events out in time order.
pub struct Capture {
    decoder: Decoder,
    /// Events ready to hand out.
    events: VecDeque<Event>,
    /// Events waiting for the decoder's watermark, in time order.
    waiting: VecDeque<Event>,
    batch: Vec<Event>,
    writer: Option<PacketWriter>,
    write_error: Option<io::Error>,
    /// Packets kept from the writer while a connection waits for secrets
    /// a followed key log may still bring: the secrets must be written
    /// before them. (input, packet, bytes of it).
    held: VecDeque<(u32, HeldPacket)>,
    held_bytes: usize,
    finished: bool,
}

/// A packet copied out of the reader's buffer.
struct HeldPacket {
    number: u64,
    ts_ns: u64,
    linktype: i32,
    data: Vec<u8>,
    orig_len: u32,
    interface: u32,
    snaplen: u32,
}

impl HeldPacket {
    fn of(packet: &Packet<'_>) -> HeldPacket {
        HeldPacket {
            number: packet.number,
            ts_ns: packet.ts_ns,
            linktype: packet.linktype,
            data: packet.data.to_vec(),
            orig_len: packet.orig_len,
            interface: packet.interface,
            snaplen: packet.snaplen,
        }
    }

    fn packet(&self) -> Packet<'_> {
        Packet {
            number: self.number,
            ts_ns: self.ts_ns,
            linktype: self.linktype,
            data: &self.data,
            orig_len: self.orig_len,
            interface: self.interface,
            snaplen: self.snaplen,
        }
    }
}

/// The most packet bytes held back from the writer for secrets to come;
/// past it they are written without (Wireshark then cannot decrypt the
/// connections whose secrets came too late).
const MAX_HELD: usize = 64 << 20;

impl Capture {
    pub fn new(options: Options) -> Capture {
        Capture {
            decoder: Decoder::new(options),
            events: VecDeque::new(),
            waiting: VecDeque::new(),
            batch: Vec::new(),
            writer: None,
            write_error: None,
            held: VecDeque::new(),
            held_bytes: 0,
            finished: false,
        }
    }

    /// Writes every packet from now on to `writer` as well.
    pub fn write_packets(&mut self, writer: PacketWriter) {
        self.writer = Some(writer);
    }

    /// Takes one packet from `input` (a file's place among the inputs, 0
    /// for a live interface): written out, decoded, its events queued.
    pub fn packet(&mut self, input: u32, packet: &Packet<'_>) {
        // Decoded first: a ClientHello asks for its session's secrets,
        // which then go into the file before it.
        self.decoder.packet(packet, &mut self.batch);
        if self.writer.is_some() {
            if self.hold_for_keys() {
                self.held_bytes += packet.data.len();
                self.held.push_back((input, HeldPacket::of(packet)));
            } else {
                self.write_held();
                self.write_one(input, packet);
            }
        }
        let watermark = self.decoder.watermark();
        self.order_batch(watermark);
    }

    /// Whether packets wait for secrets before they are written: only
    /// while a key log is followed and some connection still waits.
    fn hold_for_keys(&self) -> bool {
        self.decoder.keys_may_arrive()
            && self.decoder.keys().awaiting_any()
            && self.held_bytes < MAX_HELD
    }

    /// The secrets in use, then the packets held for them.
    fn write_held(&mut self) {
        self.write_secrets_in_use();
        while let Some((input, held)) = self.held.pop_front() {
            self.write_one(input, &held.packet());
        }
        self.held_bytes = 0;
    }

    fn write_one(&mut self, input: u32, packet: &Packet<'_>) {
        if let Some(writer) = &mut self.writer
            && let Err(err) = writer.packet(input, packet)
        {
            self.write_error = Some(err);
            self.writer = None;
        }
    }

    /// Time passes with no packet (a live capture waiting): connections
    /// whose TLS records have waited too long for keys are given up, so
    /// the events of others held behind them go out. `now_us` is the
    /// clock of the packets' stamps.
    pub fn tick(&mut self, now_us: u64) {
        self.decoder.expire_key_waits(now_us, &mut self.batch);
        if !self.hold_for_keys() {
            self.write_held();
        }
        let watermark = self.decoder.watermark();
        self.order_batch(watermark);
    }

    /// The TLS secrets known so far. After adding to them (a key log file
    /// followed as it grows), call [`Capture::keys_added`].
    pub fn keys_mut(&mut self) -> &mut KeyLog {
        self.decoder.keys_mut()
    }

    /// Adds key log text (a file, a Decryption Secrets Block read from
    /// the input): records waiting for it are opened. Lines that do not
    /// parse are returned.
    pub fn add_keylog(&mut self, text: &[u8]) -> Vec<LineError> {
        let errors = keylog::parse(text, self.decoder.keys_mut());
        self.keys_added();
        errors
    }

    /// Secrets were added: records held for them are opened, and the
    /// packets written get the ones their connections use.
    pub fn keys_added(&mut self) {
        self.decoder.retry_tls(&mut self.batch);
        if !self.hold_for_keys() {
            self.write_held();
        }
        let watermark = self.decoder.watermark();
        self.order_batch(watermark);
    }

    /// With `--write`: the key log lines of the sessions that connections
    /// in the capture use, in a Decryption Secrets Block before the next
    /// packet, so the file opens decrypted in Wireshark. A connection asks
    /// for its secrets when its ClientHello is read, before any record
    /// they open; secrets of sessions not in the capture are not written.
    fn write_secrets_in_use(&mut self) {
        if self.writer.is_none() {
            return;
        }
        let lines = self.decoder.keys_mut().take_lines_in_use();
        if !lines.is_empty() {
            self.write_secrets(&lines);
        }
    }

    /// Writes a TLS key log into the packets written (a Decryption Secrets
    /// Block, [`PcapngWriter::write_secrets`]), before the packets that
    /// follow: for secrets learnt while a live capture runs. Nothing
    /// happens without a writer.
    pub fn write_secrets(&mut self, keylog_text: &[u8]) {
        if let Some(writer) = &mut self.writer
            && let Err(err) = writer.write_secrets(keylog_text)
        {
            self.write_error = Some(err);
            self.writer = None;
        }
    }

    /// The capture is over: the connections still open are reported, every
    /// event waiting is released, the packets written are flushed.
    pub fn finish(&mut self) {
        if self.finished {
            return;
        }
        self.finished = true;
        self.decoder.finish(&mut self.batch);
        self.write_held();
        self.order_batch(u64::MAX);
        self.flush_packets();
    }

    /// Flushes the packets written so far (a live capture does when it
    /// waits for more, as `tcpdump -U` does).
    pub fn flush_packets(&mut self) {
        if let Some(writer) = &mut self.writer
            && let Err(err) = writer.flush()
        {
            self.write_error = Some(err);
            self.writer = None;
        }
    }

    /// The next event that is ready, if any.
    pub fn next_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    /// Whether [`Capture::finish`] was called.
    pub fn is_finished(&self) -> bool {
        self.finished
    }

    /// Why writing the packets failed, once (writing stops at the first
    /// error).
    pub fn take_write_error(&mut self) -> Option<io::Error> {
        self.write_error.take()
    }

    /// Problems with the packets (not with a connection), taken.
    pub fn take_problems(&mut self) -> Vec<Problem> {
        self.decoder.take_problems()
    }

    pub fn summary(&self) -> &Summary {
        self.decoder.summary()
    }

    /// Puts the batch in time order behind what waits, and hands out what
    /// is not newer than `watermark`.
    fn order_batch(&mut self, watermark: u64) {
        let in_order = self.waiting.is_empty()
            && self.batch.windows(2).all(|w| w[0].ts <= w[1].ts)
            && self.batch.last().is_none_or(|e| e.ts <= watermark);
        if in_order {
            // Nearly always: nothing waits, and the batch can go as it is.
            self.events.extend(self.batch.drain(..));
            return;
        }
        for event in self.batch.drain(..) {
            // Nearly always in order already: look from the back.
            let at = self
                .waiting
                .iter()
                .rposition(|e| e.ts <= event.ts)
                .map_or(0, |i| i + 1);
            self.waiting.insert(at, event);
        }
        while self.waiting.front().is_some_and(|e| e.ts <= watermark) {
            let event = self.waiting.pop_front().expect("checked");
            self.events.push_back(event);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use super::*;

    /// A `Write` whose bytes can still be looked at once it is given away.
    #[derive(Clone, Default)]
    struct Shared(Arc<Mutex<Vec<u8>>>);

    impl Write for Shared {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn packets_and_secrets_are_written_in_the_order_they_come() {
        let out = Shared::default();
        let mut capture = Capture::new(Options::default());
        let sink: Box<dyn Write + Send> = Box::new(out.clone());
        capture.write_packets(PcapngWriter::new(sink, "test").unwrap());
        let packet = |data| Packet {
            number: 1,
            ts_ns: 1_000,
            linktype: 1,
            data,
            orig_len: 14,
            interface: 0,
            snaplen: 0,
        };
        capture.packet(0, &packet(&[0u8; 14][..]));
        capture.write_secrets(b"CLIENT_RANDOM 00 11\n");
        capture.packet(0, &packet(&[1u8; 14][..]));
        capture.finish();
        assert!(capture.take_write_error().is_none());
        let bytes = out.0.lock().unwrap().clone();
        let at = |needle: &[u8]| bytes.windows(needle.len()).position(|w| w == needle);
        let secrets = at(b"CLIENT_RANDOM").expect("the key log is in the file");
        assert!(at(&[0u8; 14]).unwrap() < secrets);
        assert!(secrets < at(&[1u8; 14]).unwrap());
    }
}
