//! What one direction has to write, ordered by when it is due.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// Small items due together are written as one piece up to this size;
/// a paced item goes in pieces of at most this size.
pub const BATCH: usize = 64 * 1024;

/// One frame or message waiting to be written.
struct Item {
    due: Instant,
    bytes: Vec<u8>,
    /// How much of a paced item has been written.
    written: usize,
    /// Paced at this many bytes per second.
    rate: Option<u64>,
}

/// The bytes waiting for one receiver.
#[derive(Default)]
pub struct Queue {
    items: VecDeque<Item>,
    queued: usize,
    last_due: Option<Instant>,
    paused_until: Option<Instant>,
    /// When paced bytes may next be written.
    pace: Option<Instant>,
}

impl Queue {
    /// Bytes waiting.
    pub fn queued(&self) -> usize {
        self.queued
    }

    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// Queues `bytes` to go at `due`, never before what is queued already
    /// unless `reorder`.
    pub fn push(&mut self, due: Instant, bytes: Vec<u8>, rate: Option<u64>, reorder: bool) {
        if bytes.is_empty() {
            return;
        }
        let due = match self.last_due {
            Some(last) if !reorder => due.max(last),
            _ => due,
        };
        self.last_due = Some(self.last_due.map_or(due, |last| last.max(due)));
        self.queued += bytes.len();
        let at = self
            .items
            .iter()
            .rposition(|item| item.due <= due)
            .map_or(0, |i| i + 1);
        // A paced item already under way keeps its place at the front.
        let at = if at == 0 && self.items.front().is_some_and(|i| i.written > 0) {
            1
        } else {
            at
        };
        self.items.insert(
            at,
            Item {
                due,
                bytes,
                written: 0,
                rate,
            },
        );
    }

    /// Nothing is written before `until`.
    pub fn pause(&mut self, until: Instant) {
        self.paused_until = Some(self.paused_until.map_or(until, |u| u.max(until)));
    }

    /// When the next piece may be written.
    pub fn next_due(&self) -> Option<Instant> {
        let head = self.items.front()?;
        let mut due = head.due;
        if let Some(until) = self.paused_until {
            due = due.max(until);
        }
        if head.rate.is_some()
            && let Some(pace) = self.pace
        {
            due = due.max(pace);
        }
        Some(due)
    }

    /// The length of the item [`Queue::poll`] would start its next piece
    /// with, when one is due at `now` and not paced (small items due with
    /// it may join it, up to BATCH).
    pub fn next_unpaced_len(&self, now: Instant) -> Option<usize> {
        if self.next_due()? > now {
            return None;
        }
        let head = self.items.front()?;
        if head.rate.is_some() {
            return None;
        }
        Some(head.bytes.len())
    }

    /// The next piece to write, if one is due at `now`: small unpaced items
    /// due together come as one piece, a paced item a slice at a time.
    pub fn poll(&mut self, now: Instant) -> Option<Vec<u8>> {
        if self.next_due()? > now {
            return None;
        }
        let head = self.items.front_mut()?;
        if let Some(rate) = head.rate {
            // Small pieces, so the rate holds over fractions of a second too.
            let piece = ((rate / 20).clamp(256, BATCH as u64) as usize)
                .min(head.bytes.len() - head.written);
            let out = head.bytes[head.written..head.written + piece].to_vec();
            head.written += piece;
            if head.written == head.bytes.len() {
                self.items.pop_front();
            }
            self.queued -= piece;
            let took = Duration::from_secs_f64(piece as f64 / rate as f64);
            self.pace = Some(self.pace.map_or(now, |p| p.max(now)) + took);
            return Some(out);
        }
        let first = self.items.pop_front()?;
        self.queued -= first.bytes.len();
        let mut out = first.bytes;
        while out.len() < BATCH
            && let Some(next) = self.items.front()
            && next.rate.is_none()
            && next.due <= now
            && next.bytes.len() < BATCH
        {
            let next = self.items.pop_front().expect("checked");
            self.queued -= next.bytes.len();
            out.extend_from_slice(&next.bytes);
        }
        Some(out)
    }

    /// The first byte of each waiting item, in order.
    #[cfg(test)]
    pub fn order(&self) -> Vec<u8> {
        self.items.iter().map(|i| i.bytes[0]).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_due_unpaced_item_has_a_next_unpaced_len() {
        let t0 = Instant::now();
        let mut queue = Queue::default();
        assert_eq!(queue.next_unpaced_len(t0), None);
        queue.push(t0 + Duration::from_millis(5), vec![1; 10], None, false);
        assert_eq!(queue.next_unpaced_len(t0), None, "not due yet");
        let later = t0 + Duration::from_millis(5);
        assert_eq!(queue.next_unpaced_len(later), Some(10));
        queue.pause(later + Duration::from_millis(1));
        assert_eq!(queue.next_unpaced_len(later), None, "paused");
        let mut paced = Queue::default();
        paced.push(t0, vec![2; 10], Some(1000), false);
        assert_eq!(paced.next_unpaced_len(t0), None, "paced");
    }
}
