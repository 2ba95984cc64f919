//! How much a connection reads at a time, and how much buffer it keeps for
//! that: sized to what arrives, so thousands of idle connections hold a
//! small buffer each and a busy one still reads in large pieces.
//!
//! The size starts small and doubles each time a read fills all the room it
//! was given (more was probably waiting), up to a ceiling. When a read does
//! not fill it, the socket was drained and the next read is likely a wait:
//! if everything read has been consumed by then, a large buffer is given
//! back and the wait happens on the smallest one. The size reached is
//! remembered (halved at each such drain), so a stream that pauses between
//! bursts climbs back in a few reads rather than from the bottom.

use bytes::BytesMut;

/// The buffer an idle connection waits on.
pub const SMALLEST: usize = 2 * 1024;
/// The most asked of the socket at once.
pub const LARGEST: usize = 64 * 1024;

/// A connection's read buffer and its sizing.
#[derive(Debug)]
pub struct ReadBuffer {
    buf: BytesMut,
    /// What the next read is given room for.
    size: usize,
    /// The last read left room unused: the socket had nothing more.
    drained: bool,
}

impl ReadBuffer {
    /// A buffer that starts with `leftover` (bytes read past a handshake).
    pub fn new(leftover: &[u8]) -> Self {
        let mut buf = BytesMut::with_capacity(SMALLEST.max(leftover.len()));
        buf.extend_from_slice(leftover);
        ReadBuffer {
            buf,
            size: SMALLEST,
            drained: true,
        }
    }

    /// The bytes read and not yet consumed.
    pub fn bytes(&mut self) -> &mut BytesMut {
        &mut self.buf
    }

    /// Room for the next read. Call right before reading into
    /// [`Self::bytes`]; returns how much room was made, for
    /// [`Self::filled`].
    pub fn prepare(&mut self) -> usize {
        if self.drained {
            // Waiting, most likely: on the smallest buffer, keeping what is
            // left of a frame.
            if self.buf.capacity() > SMALLEST && self.buf.len() <= SMALLEST / 2 {
                let mut small = BytesMut::with_capacity(SMALLEST);
                small.extend_from_slice(&self.buf);
                self.buf = small;
            }
            let room = self.buf.capacity() - self.buf.len();
            if room > 0 {
                return room;
            }
        }
        if self.buf.capacity() - self.buf.len() < self.size {
            self.buf.reserve(self.size);
        }
        self.buf.capacity() - self.buf.len()
    }

    /// Records that a read given `room` bytes of room brought `read`.
    pub fn filled(&mut self, room: usize, read: usize) {
        if read >= room {
            self.drained = false;
            self.size = (self.size * 2).min(LARGEST);
        } else {
            self.drained = true;
            self.size = (self.size / 2).max(SMALLEST);
        }
    }

    /// The allocation held, for tests and reports.
    pub fn capacity(&self) -> usize {
        self.buf.capacity()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Buf;

    /// Reads `available` bytes as a socket would: at most the room given.
    fn read(buffer: &mut ReadBuffer, available: &mut usize) -> usize {
        let room = buffer.prepare();
        let n = room.min(*available);
        buffer.bytes().extend_from_slice(&vec![0u8; n]);
        *available -= n;
        buffer.filled(room, n);
        n
    }

    #[test]
    fn grows_while_reads_come_back_full() {
        let mut buffer = ReadBuffer::new(b"");
        let mut available = 1 << 20;
        let mut sizes = Vec::new();
        for _ in 0..8 {
            sizes.push(read(&mut buffer, &mut available));
            let len = buffer.bytes().len();
            buffer.bytes().advance(len);
        }
        assert_eq!(sizes[0], SMALLEST);
        assert!(sizes.windows(2).all(|w| w[1] >= w[0]), "{sizes:?}");
        assert!(sizes[7] >= LARGEST, "{sizes:?}");
        assert!(sizes.iter().all(|&n| n <= LARGEST * 2), "{sizes:?}");
    }

    #[test]
    fn an_idle_connection_waits_on_the_smallest_buffer() {
        let mut buffer = ReadBuffer::new(b"");
        let mut available = 1 << 20;
        let mut last = 0;
        for _ in 0..8 {
            last = read(&mut buffer, &mut available);
            let len = buffer.bytes().len();
            buffer.bytes().advance(len);
        }
        assert!(last >= LARGEST);
        // The burst ends: a short read, everything consumed.
        available = 100;
        read(&mut buffer, &mut available);
        buffer.bytes().advance(100);
        buffer.prepare();
        assert_eq!(buffer.capacity(), SMALLEST);
    }

    #[test]
    fn an_unfinished_frame_is_kept_when_shrinking() {
        let mut buffer = ReadBuffer::new(b"");
        let mut available = 1 << 18;
        for _ in 0..6 {
            read(&mut buffer, &mut available);
            let len = buffer.bytes().len();
            buffer.bytes().advance(len);
        }
        available = 10;
        read(&mut buffer, &mut available);
        buffer.bytes().advance(7);
        buffer.prepare();
        assert_eq!(buffer.bytes().len(), 3);
        assert_eq!(buffer.capacity(), SMALLEST);
    }

    #[test]
    fn leftover_from_the_handshake_is_kept() {
        let mut buffer = ReadBuffer::new(&[1; 5000]);
        assert_eq!(buffer.bytes().len(), 5000);
        assert!(buffer.prepare() > 0);
    }
}
