//! TCP reassembly, one direction at a time, sans I/O.
//!
//! A [`HalfStream`] takes the segments one side sent, in capture order, and
//! hands out the byte stream in order: [`Chunk::Data`] as soon as it is
//! contiguous (straight from the segment when it arrives in order, which is
//! nearly always, so nothing is copied), out-of-order segments held until
//! the hole before them fills. Retransmissions and overlaps keep the first
//! copy; a later copy with different bytes is reported
//! ([`Chunk::Conflict`]). When the hole never fills — the held bytes pass
//! [`MAX_HELD`], or the stream ends — it is given up as a [`Chunk::Gap`]
//! with its exact sequence range, and the stream goes on after it. Bytes
//! the capture did not keep (snap length) are gaps too, never garbage.

use std::collections::BTreeMap;

/// Out-of-order bytes held per direction before a hole is given up.
pub const MAX_HELD: usize = 4 << 20;
/// Delivered bytes remembered to compare retransmissions against.
const RECENT: usize = 64 * 1024;

/// Why bytes are missing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GapCause {
    /// Never captured (dropped by the capture, or before it started).
    Lost,
    /// On the wire, but cut off by the capture's snap length.
    NotCaptured,
}

/// What comes out of a [`HalfStream`], in stream order.
#[derive(Debug, PartialEq, Eq)]
pub enum Chunk<'a> {
    /// Bytes, the first at sequence number `seq`, captured at `ts` (a held
    /// segment keeps the time it arrived, not the time its hole filled).
    Data { seq: u32, bytes: &'a [u8], ts: u64 },
    /// `len` bytes from sequence number `from` to `to` (half-open) are
    /// missing; the next `Data` follows them. `ts` is when what follows
    /// the gap arrived.
    Gap {
        from: u32,
        to: u32,
        len: u64,
        cause: GapCause,
        ts: u64,
    },
    /// A retransmission of `len` bytes at `seq` differed from the first
    /// copy, which was kept.
    Conflict { seq: u32, len: u64 },
    /// The sender's FIN, after its last byte.
    Fin,
    /// The sender reset the connection.
    Rst,
}

#[derive(Debug)]
enum Piece {
    /// Bytes, and when they were captured.
    Data(Vec<u8>, u64),
    /// Bytes known to exist but not captured.
    Hole(u64, u64),
}

impl Piece {
    fn len(&self) -> u64 {
        match self {
            Piece::Data(data, _) => data.len() as u64,
            Piece::Hole(len, _) => *len,
        }
    }

    fn ts(&self) -> u64 {
        match self {
            Piece::Data(_, ts) | Piece::Hole(_, ts) => *ts,
        }
    }
}

/// One direction of one TCP connection.
#[derive(Debug, Default)]
pub struct HalfStream {
    /// Sequence number of stream offset 0 (the byte after the SYN, or the
    /// first byte seen when the capture started mid-connection).
    base: Option<u32>,
    /// Stream offset of the next byte to hand out.
    delivered: u64,
    held: BTreeMap<u64, Piece>,
    held_bytes: usize,
    fin_at: Option<u64>,
    fin_done: bool,
    reset: bool,
    /// The last delivered bytes, by offset modulo `RECENT`.
    recent: Vec<u8>,
    /// `recent` holds nothing before this offset (a gap was handed out).
    remembered_from: u64,
    /// The capture time of the segment being taken.
    now: u64,
    /// When `held` last went from empty to not.
    holding_since: Option<u64>,
    /// The time of the last chunk handed out: a stream is read in order,
    /// so bytes held behind a hole are stamped no earlier than the bytes
    /// that filled it (the receiving application got them then).
    last_ts: u64,
}

impl HalfStream {
    /// Whether the first byte of this direction was seen (or its SYN).
    pub fn started(&self) -> bool {
        self.base.is_some()
    }

    /// Since when bytes have been held back waiting for a hole to fill
    /// (no held byte arrived earlier).
    pub fn holding_since(&self) -> Option<u64> {
        self.holding_since
    }

    /// Whether the FIN or a reset has been handed out.
    pub fn ended(&self) -> bool {
        self.fin_done || self.reset
    }

    /// The sequence number of stream offset `offset`.
    fn seq_at(&self, offset: u64) -> u32 {
        self.base.unwrap_or(0).wrapping_add(offset as u32)
    }

    /// Takes one segment and hands out whatever became contiguous.
    #[allow(clippy::too_many_arguments)]
    pub fn segment(
        &mut self,
        ts: u64,
        seq: u32,
        syn: bool,
        fin: bool,
        rst: bool,
        payload: &[u8],
        missing: u32,
        out: &mut dyn FnMut(Chunk<'_>),
    ) {
        if self.reset {
            return;
        }
        self.now = ts;
        let data_seq = if syn { seq.wrapping_add(1) } else { seq };
        let base = *self.base.get_or_insert(data_seq);
        if rst {
            self.give_up_holes(out);
            self.reset = true;
            out(Chunk::Rst);
            return;
        }
        // Where this segment sits, relative to what was handed out.
        let rel = i64::from(data_seq.wrapping_sub(base.wrapping_add(self.delivered as u32)) as i32);
        let offset = self.delivered as i64 + rel;
        let total = payload.len() as u64 + u64::from(missing);
        if fin && offset >= 0 && self.fin_at.is_none() {
            self.fin_at = Some(offset as u64 + total);
        }
        if total > 0 && offset + (total as i64) > self.delivered as i64 {
            // Part of it is new. What lies before `delivered` was seen.
            let skip = (self.delivered as i64 - offset).max(0) as u64;
            if skip > 0 {
                // Bytes before the stream's start (before the capture
                // began) cannot be compared with anything.
                let seen_end = (skip as usize).min(payload.len());
                let before_start = (-offset).max(0) as usize;
                if before_start < seen_end {
                    let at = (offset + before_start as i64) as u64;
                    self.compare(at, &payload[before_start..seen_end], out);
                }
            }
            let start = (offset + skip as i64) as u64;
            let (data, hole) = if (skip as usize) < payload.len() {
                (&payload[skip as usize..], u64::from(missing))
            } else {
                (&[][..], total - skip)
            };
            if start == self.delivered && self.held.is_empty() {
                // In order: straight through, no copy.
                self.deliver(data, ts, out);
                if hole > 0 {
                    self.deliver_hole(hole, GapCause::NotCaptured, out);
                }
            } else {
                self.hold(start, data, hole, out);
                self.drain(out);
                if self.held_bytes > MAX_HELD {
                    self.give_up_holes(out);
                }
            }
        } else if total > 0 && offset >= 0 {
            // Entirely a retransmission of what was handed out.
            self.compare(offset as u64, payload, out);
        }
        self.check_fin(out);
    }

    /// The receiver acknowledged everything before `ack`: a hole below it
    /// will never be filled (the receiver had those bytes; the capture did
    /// not), so it is given up now rather than at the end of the capture,
    /// and what was held behind it goes out with the right timing.
    pub fn acked(&mut self, ack: u32, out: &mut dyn FnMut(Chunk<'_>)) {
        if self.reset || self.held.is_empty() || self.base.is_none() {
            return;
        }
        let rel = i64::from(ack.wrapping_sub(self.seq_at(self.delivered)) as i32);
        if rel <= 0 {
            return;
        }
        let acked = self.delivered + rel as u64;
        while let Some((&start, _)) = self.held.first_key_value() {
            if start >= acked {
                break;
            }
            if start > self.delivered {
                self.deliver_hole(start - self.delivered, GapCause::Lost, out);
            }
            self.drain(out);
        }
        self.check_fin(out);
    }

    /// The stream ended (the capture did): whatever is held goes out, holes
    /// as gaps, and bytes missing before a FIN that was seen too.
    pub fn finish(&mut self, out: &mut dyn FnMut(Chunk<'_>)) {
        if !self.reset {
            self.give_up_holes(out);
            if let Some(at) = self.fin_at
                && at > self.delivered
            {
                self.deliver_hole(at - self.delivered, GapCause::Lost, out);
            }
            self.check_fin(out);
        }
    }

    fn check_fin(&mut self, out: &mut dyn FnMut(Chunk<'_>)) {
        if !self.fin_done && self.fin_at.is_some_and(|at| self.delivered >= at) {
            self.fin_done = true;
            out(Chunk::Fin);
        }
    }

    fn deliver(&mut self, data: &[u8], ts: u64, out: &mut dyn FnMut(Chunk<'_>)) {
        if data.is_empty() {
            return;
        }
        let ts = ts.max(self.last_ts);
        self.last_ts = ts;
        self.remember(self.delivered, data);
        let seq = self.seq_at(self.delivered);
        self.delivered += data.len() as u64;
        out(Chunk::Data {
            seq,
            bytes: data,
            ts,
        });
    }

    fn deliver_hole(&mut self, len: u64, cause: GapCause, out: &mut dyn FnMut(Chunk<'_>)) {
        let from = self.seq_at(self.delivered);
        self.delivered += len;
        self.remembered_from = self.delivered;
        // Stamped like what follows the hole, so events stay in time order.
        let ts = self
            .held
            .first_key_value()
            .map_or(self.now, |(_, piece)| piece.ts())
            .max(self.last_ts);
        self.last_ts = ts;
        out(Chunk::Gap {
            from,
            to: self.seq_at(self.delivered),
            len,
            cause,
            ts,
        });
    }

    /// Keeps the parts of `data` (and the uncaptured `hole` after it) at
    /// `start` that nothing held already covers: the first copy wins.
    fn hold(&mut self, start: u64, data: &[u8], hole: u64, out: &mut dyn FnMut(Chunk<'_>)) {
        let end = start + data.len() as u64 + hole;
        let mut at = start;
        // Pieces that overlap [start, end), in order.
        let overlapping: Vec<(u64, u64)> = self
            .held
            .range(..end)
            .filter(|(s, p)| **s + p.len() > start)
            .map(|(s, p)| (*s, *s + p.len()))
            .collect();
        let mut cuts = Vec::new();
        for (s, e) in overlapping {
            if s > at {
                cuts.push((at, s));
            }
            // Compare what both copies have.
            let (lo, hi) = (s.max(start), e.min(start + data.len() as u64));
            if lo < hi
                && let Some(Piece::Data(old, _)) = self.held.get(&s)
            {
                let old = &old[(lo - s) as usize..(hi - s) as usize];
                let new = &data[(lo - start) as usize..(hi - start) as usize];
                if old != new {
                    out(Chunk::Conflict {
                        seq: self.seq_at(lo),
                        len: hi - lo,
                    });
                }
            }
            at = at.max(e);
        }
        if at < end {
            cuts.push((at, end));
        }
        let data_end = start + data.len() as u64;
        for (s, e) in cuts {
            if s < data_end {
                let piece = data[(s - start) as usize..(e.min(data_end) - start) as usize].to_vec();
                self.held_bytes += piece.len();
                self.holding_since.get_or_insert(self.now);
                self.held.insert(s, Piece::Data(piece, self.now));
            }
            if e > data_end {
                let hs = s.max(data_end);
                self.holding_since.get_or_insert(self.now);
                self.held.insert(hs, Piece::Hole(e - hs, self.now));
            }
        }
    }

    /// Hands out held pieces that became contiguous.
    fn drain(&mut self, out: &mut dyn FnMut(Chunk<'_>)) {
        self.drain_pieces(out);
        if self.held.is_empty() {
            self.holding_since = None;
        }
    }

    fn drain_pieces(&mut self, out: &mut dyn FnMut(Chunk<'_>)) {
        while let Some(entry) = self.held.first_entry() {
            let start = *entry.key();
            if start > self.delivered {
                break;
            }
            let piece = entry.remove();
            let len = piece.len();
            if start + len <= self.delivered {
                if let Piece::Data(data, _) = &piece {
                    self.held_bytes -= data.len();
                }
                continue;
            }
            let skip = self.delivered - start;
            match piece {
                Piece::Data(data, ts) => {
                    self.held_bytes -= data.len();
                    self.deliver(&data[skip as usize..], ts, out);
                }
                Piece::Hole(len, _) => self.deliver_hole(len - skip, GapCause::NotCaptured, out),
            }
        }
    }

    /// Gives up every hole: each becomes a gap, and what follows it goes out.
    fn give_up_holes(&mut self, out: &mut dyn FnMut(Chunk<'_>)) {
        while let Some((&start, _)) = self.held.first_key_value() {
            if start > self.delivered {
                self.deliver_hole(start - self.delivered, GapCause::Lost, out);
            }
            self.drain(out);
        }
    }

    fn remember(&mut self, offset: u64, data: &[u8]) {
        let (offset, data) = if data.len() > RECENT {
            (
                offset + (data.len() - RECENT) as u64,
                &data[data.len() - RECENT..],
            )
        } else {
            (offset, data)
        };
        if self.recent.is_empty() {
            self.recent = vec![0; RECENT];
        }
        let at = (offset % RECENT as u64) as usize;
        let first = data.len().min(RECENT - at);
        self.recent[at..at + first].copy_from_slice(&data[..first]);
        self.recent[..data.len() - first].copy_from_slice(&data[first..]);
    }

    /// Compares a retransmitted copy starting at `offset` with what was
    /// handed out, as far as it is remembered.
    fn compare(&mut self, offset: u64, data: &[u8], out: &mut dyn FnMut(Chunk<'_>)) {
        let lo = offset
            .max(self.delivered.saturating_sub(RECENT as u64))
            .max(self.remembered_from);
        let hi = (offset + data.len() as u64).min(self.delivered);
        if lo >= hi || self.recent.is_empty() {
            return;
        }
        let differs = (lo..hi)
            .any(|p| self.recent[(p % RECENT as u64) as usize] != data[(p - offset) as usize]);
        if differs {
            out(Chunk::Conflict {
                seq: self.seq_at(lo),
                len: hi - lo,
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What a stream hands out, as owned values.
    #[derive(Debug, PartialEq, Eq)]
    enum Out {
        Data(Vec<u8>),
        Gap(u32, u32),
        Conflict(u32, u64),
        Fin,
        Rst,
    }

    fn run(segments: &[(u32, &[u8], bool)], finish: bool) -> Vec<Out> {
        let mut stream = HalfStream::default();
        let mut seen = Vec::new();
        let mut push = |chunk: Chunk<'_>| {
            seen.push(match chunk {
                Chunk::Data { bytes, .. } => Out::Data(bytes.to_vec()),
                Chunk::Gap { from, to, .. } => Out::Gap(from, to),
                Chunk::Conflict { seq, len } => Out::Conflict(seq, len),
                Chunk::Fin => Out::Fin,
                Chunk::Rst => Out::Rst,
            })
        };
        stream.segment(0, 99, true, false, false, b"", 0, &mut push);
        for (seq, data, fin) in segments {
            stream.segment(0, *seq, false, *fin, false, data, 0, &mut push);
        }
        if finish {
            stream.finish(&mut push);
        }
        seen
    }

    /// The bytes handed out, joined, with gaps as `?`.
    fn joined(out: &[Out]) -> Vec<u8> {
        let mut all = Vec::new();
        for o in out {
            match o {
                Out::Data(d) => all.extend_from_slice(d),
                Out::Gap(from, to) => {
                    all.extend(std::iter::repeat_n(b'?', to.wrapping_sub(*from) as usize))
                }
                _ => {}
            }
        }
        all
    }

    #[test]
    fn reordered_duplicated_and_overlapping_segments_give_the_stream() {
        let out = run(
            &[
                (104, b"efgh", false),
                (100, b"abcd", false),
                (100, b"abcd", false),
                (102, b"cdefghij", false),
                (110, b"kl", true),
            ],
            false,
        );
        assert_eq!(joined(&out), b"abcdefghijkl");
        assert_eq!(out.last(), Some(&Out::Fin));
        assert!(!out.iter().any(|o| matches!(o, Out::Conflict(..))));
    }

    #[test]
    fn a_different_retransmission_is_reported_and_the_first_copy_wins() {
        let out = run(
            &[
                (100, b"abcd", false),
                (102, b"XY", false),
                (104, b"ef", false),
            ],
            false,
        );
        assert_eq!(joined(&out), b"abcdef");
        assert!(out.contains(&Out::Conflict(102, 2)), "{out:?}");
        // Also between two held copies.
        let out = run(
            &[
                (104, b"efgh", false),
                (106, b"XXij", false),
                (100, b"abcd", false),
            ],
            false,
        );
        assert_eq!(joined(&out), b"abcdefghij");
        assert!(out.contains(&Out::Conflict(106, 2)), "{out:?}");
    }

    #[test]
    fn a_lost_segment_is_a_gap_with_its_exact_range() {
        let out = run(&[(100, b"abcd", false), (108, b"ijkl", true)], true);
        assert_eq!(joined(&out), b"abcd????ijkl");
        assert!(out.contains(&Out::Gap(104, 108)), "{out:?}");
        assert_eq!(out.last(), Some(&Out::Fin));
    }

    #[test]
    fn an_acknowledged_hole_is_given_up_at_once() {
        let mut stream = HalfStream::default();
        let seen = std::cell::RefCell::new(Vec::new());
        let mut push = |c: Chunk<'_>| {
            seen.borrow_mut().push(match c {
                Chunk::Data { bytes, .. } => Out::Data(bytes.to_vec()),
                Chunk::Gap { from, to, .. } => Out::Gap(from, to),
                _ => Out::Fin,
            })
        };
        stream.segment(0, 100, false, false, false, b"abcd", 0, &mut push);
        stream.segment(0, 108, false, false, false, b"ijkl", 0, &mut push);
        stream.acked(106, &mut push);
        assert_eq!(
            seen.borrow().len(),
            1,
            "an ACK inside the hole proves nothing after it"
        );
        stream.acked(112, &mut push);
        let seen = seen.into_inner();
        assert_eq!(
            seen,
            vec![
                Out::Data(b"abcd".to_vec()),
                Out::Gap(104, 108),
                Out::Data(b"ijkl".to_vec())
            ]
        );
    }

    #[test]
    fn bytes_from_before_the_stream_started_are_passed_over() {
        // Joined mid-stream at 1000; a retransmission reaching back to 990.
        let mut stream = HalfStream::default();
        let mut all = Vec::new();
        let mut push = |c: Chunk<'_>| {
            if let Chunk::Data { bytes, .. } = c {
                all.extend_from_slice(bytes)
            }
        };
        stream.segment(0, 1000, false, false, false, b"abcd", 0, &mut push);
        stream.segment(0, 990, false, false, false, &[b'x'; 20], 0, &mut push);
        assert_eq!(all, b"abcdxxxxxx");
    }

    #[test]
    fn sequence_numbers_wrap() {
        let mut stream = HalfStream::default();
        let mut all = Vec::new();
        let mut push = |c: Chunk<'_>| {
            if let Chunk::Data { bytes, .. } = c {
                all.extend_from_slice(bytes)
            }
        };
        stream.segment(0, u32::MAX - 2, false, false, false, b"ab", 0, &mut push);
        stream.segment(0, 0, false, false, false, b"de", 0, &mut push);
        stream.segment(0, u32::MAX, false, false, false, b"c", 0, &mut push);
        assert_eq!(all, b"abcde");
    }

    #[test]
    fn held_bytes_are_bounded() {
        let mut stream = HalfStream::default();
        let mut gaps = 0;
        let mut push = |c: Chunk<'_>| {
            if let Chunk::Gap { .. } = c {
                gaps += 1
            }
        };
        stream.segment(0, 0, false, false, false, b"a", 0, &mut push);
        let big = vec![7u8; 64 * 1024];
        for i in 0..100u32 {
            stream.segment(
                0,
                10 + i * big.len() as u32,
                false,
                false,
                false,
                &big,
                0,
                &mut push,
            );
        }
        assert!(stream.held_bytes <= MAX_HELD);
        assert_eq!(gaps, 1);
    }
}
