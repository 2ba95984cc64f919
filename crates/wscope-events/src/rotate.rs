//! A record file cut into a set of files of bounded size
//! (`--record-max-size`, `--record-keep`; docs/FORMAT.md, "Rotation").
//!
//! Each file of the set stands alone: it starts with its own header, and
//! repeats the `open` event of every connection still running when the
//! previous file ended, so a reader given only that file still knows what
//! each connection was. The header says how many events are repeats, so a
//! reader going through the whole set skips them and sees every event once.
//!
//! Memory stays bounded by what is running: only the `open` events of open
//! connections are kept (serialised), and dropped at their `closed`.
//! Where the files live is the caller's business ([`Files`]): the binary
//! names them on disk, the tests keep them in memory.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::io::{self, Write};

use crate::record::{Header, Part, RecordWriter};
use crate::{Event, EventKind};

/// Where the files of a set are created and deleted. `part` counts from 0
/// in the order the files are written.
pub trait Files {
    type File: Write;
    fn create(&mut self, part: u32) -> io::Result<Self::File>;
    fn remove(&mut self, part: u32) -> io::Result<()>;
}

/// Writes events to a set of record files, starting a new one when the
/// next event would take the current one past `max_size` bytes, and
/// deleting the oldest beyond `keep`.
pub struct RotatingWriter<F: Files> {
    files: F,
    header: Header,
    max_size: u64,
    keep: Option<usize>,
    writer: RecordWriter<Counting<F::File>>,
    /// The parts on disk, oldest first.
    parts: VecDeque<u32>,
    /// Whether the current file holds an event of its own (not a repeat):
    /// a file is never left with only its header and repeats, however
    /// large one event is.
    fresh: bool,
    /// Each running connection's `open` event, as written, and when it
    /// came (a count of opens).
    open: HashMap<String, (u64, Vec<u8>)>,
    /// The running connections in the order they opened, so repeats keep
    /// the recorded order.
    order: BTreeMap<u64, String>,
    opened: u64,
    line: Vec<u8>,
}

impl<F: Files> RotatingWriter<F> {
    /// Creates part 0. `header`: the one every file gets (its rotation
    /// part filled in here); `set`: an id shared by the files of this set
    /// (random, so sets of two runs are told apart).
    pub fn new(
        mut files: F,
        mut header: Header,
        set: String,
        max_size: u64,
        keep: Option<usize>,
    ) -> io::Result<Self> {
        header.rotation = Some(Part {
            set,
            part: 0,
            repeated: 0,
        });
        let writer = RecordWriter::with_header(Counting::new(files.create(0)?), &header)?;
        Ok(RotatingWriter {
            files,
            header,
            max_size,
            keep: keep.map(|k| k.max(1)),
            writer,
            parts: VecDeque::from([0]),
            fresh: true,
            open: HashMap::new(),
            order: BTreeMap::new(),
            opened: 0,
            line: Vec::with_capacity(512),
        })
    }

    /// Appends one event, in a new file first when it would not fit.
    pub fn write(&mut self, event: &Event) -> io::Result<()> {
        self.line.clear();
        crate::line::write_line(event, &mut self.line)?;
        self.line.push(b'\n');
        let size = self.writer.written();
        if !self.fresh && size + self.line.len() as u64 > self.max_size {
            self.rotate()?;
        }
        self.writer.write_line(&self.line)?;
        self.fresh = false;
        match &event.kind {
            EventKind::Open(_) => {
                self.opened += 1;
                let line = (self.opened, self.line.clone());
                if let Some((seq, _)) = self.open.insert(event.conn.clone(), line) {
                    self.order.remove(&seq);
                }
                self.order.insert(self.opened, event.conn.clone());
            }
            EventKind::Closed(_) => {
                if let Some((seq, _)) = self.open.remove(&event.conn) {
                    self.order.remove(&seq);
                }
            }
            _ => {}
        }
        Ok(())
    }

    /// Ends a batch: everything written so far reaches the file.
    pub fn flush(&mut self) -> io::Result<()> {
        self.writer.flush()
    }

    /// How many connections are running (their `open` kept for repeats).
    pub fn running(&self) -> usize {
        self.open.len()
    }

    fn rotate(&mut self) -> io::Result<()> {
        self.writer.flush()?;
        let part = self.parts.back().copied().unwrap_or(0) + 1;
        let rotation = self.header.rotation.as_mut().expect("set in new");
        rotation.part = part;
        rotation.repeated = self.order.len() as u32;
        let file = Counting::new(self.files.create(part)?);
        self.writer = RecordWriter::with_header(file, &self.header)?;
        for conn in self.order.values() {
            self.writer.write_line(&self.open[conn].1)?;
        }
        self.fresh = true;
        self.parts.push_back(part);
        while self.keep.is_some_and(|keep| self.parts.len() > keep) {
            let oldest = self.parts.pop_front().expect("more than keep");
            self.files.remove(oldest)?;
        }
        Ok(())
    }
}

/// A writer that counts the bytes through it: the size of the current file
/// without asking the file system.
pub struct Counting<W> {
    inner: W,
    written: u64,
}

impl<W> Counting<W> {
    fn new(inner: W) -> Self {
        Counting { inner, written: 0 }
    }
}

impl<W: Write> RecordWriter<Counting<W>> {
    fn written(&self) -> u64 {
        self.get_ref().written
    }
}

impl<W: Write> Write for Counting<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.written += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

#[cfg(test)]
mod tests {
    use std::cell::RefCell;
    use std::collections::BTreeMap;
    use std::rc::Rc;

    use super::*;
    use crate::RecordReader;
    use crate::event::{Closed, ClosedBy, Head, Open, Timings};

    /// Files in memory, by part.
    #[derive(Clone, Default)]
    struct Memory(Rc<RefCell<BTreeMap<u32, Vec<u8>>>>);

    struct MemoryFile(Memory, u32);

    impl Write for MemoryFile {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            let mut files = self.0.0.borrow_mut();
            files
                .get_mut(&self.1)
                .expect("created")
                .extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    impl Files for Memory {
        type File = MemoryFile;
        fn create(&mut self, part: u32) -> io::Result<MemoryFile> {
            self.0.borrow_mut().insert(part, Vec::new());
            Ok(MemoryFile(self.clone(), part))
        }
        fn remove(&mut self, part: u32) -> io::Result<()> {
            self.0.borrow_mut().remove(&part);
            Ok(())
        }
    }

    fn open(conn: &str) -> Event {
        Event {
            ts: 1,
            conn: conn.into(),
            dir: None,
            kind: EventKind::Open(Open {
                url: "ws://127.0.0.1:9001/".into(),
                client: "127.0.0.1:50000".into(),
                server: "127.0.0.1:9001".into(),
                request: Head::default(),
                response: Head::default(),
                subprotocol: None,
                extensions: vec![],
                timings: Timings::default(),
                handshake: None,
                attempt: None,
            }),
        }
    }

    fn note(conn: &str, n: u64) -> Event {
        Event {
            ts: n,
            conn: conn.into(),
            dir: None,
            kind: EventKind::Note {
                text: format!("note {n:04} {}", "x".repeat(40)),
            },
        }
    }

    fn closed(conn: &str) -> Event {
        Event {
            ts: 2,
            conn: conn.into(),
            dir: None,
            kind: EventKind::Closed(Closed {
                by: ClosedBy::Client,
                clean: true,
                code: 1000,
                reason: String::new(),
                meaning: String::new(),
                duration_us: 0,
                messages_c2s: 0,
                messages_s2c: 0,
                bytes_c2s: 0,
                bytes_s2c: 0,
                ended: None,
            }),
        }
    }

    fn read(file: &[u8]) -> (Header, Vec<Event>) {
        let mut reader = RecordReader::new(file).unwrap();
        let mut events = Vec::new();
        while let Some(event) = reader.next_event().unwrap() {
            events.push(event);
        }
        (reader.header().clone(), events)
    }

    fn writer(memory: &Memory, max: u64, keep: Option<usize>) -> RotatingWriter<Memory> {
        let header = Header::new("wscope test", None);
        RotatingWriter::new(memory.clone(), header, "s1".into(), max, keep).unwrap()
    }

    #[test]
    fn files_stay_under_the_limit_and_repeat_running_opens() {
        let memory = Memory::default();
        let mut w = writer(&memory, 1024, None);
        w.write(&open("c1")).unwrap();
        w.write(&open("c2")).unwrap();
        for n in 0..40 {
            w.write(&note("c1", n)).unwrap();
            if n == 0 {
                w.write(&closed("c2")).unwrap();
            }
        }
        w.flush().unwrap();
        let files = memory.0.borrow();
        assert!(files.len() >= 3, "{} files", files.len());
        let mut notes = Vec::new();
        for (part, bytes) in files.iter() {
            assert!(bytes.len() <= 1024, "part {part}: {} bytes", bytes.len());
            let (header, events) = read(bytes);
            let rotation = header.rotation.unwrap();
            assert_eq!((rotation.part, rotation.set.as_str()), (*part, "s1"));
            if *part > 0 {
                // c2 closed in part 0: only c1 is still running.
                assert_eq!(rotation.repeated, 1);
                assert_eq!(events[0], open("c1"));
            }
            let skip = rotation.repeated as usize;
            notes.extend(events.into_iter().skip(skip).filter_map(|e| match e.kind {
                EventKind::Note { .. } => Some(e.ts),
                _ => None,
            }));
        }
        assert_eq!(notes, (0..40).collect::<Vec<_>>());
        assert_eq!(w.running(), 1);
    }

    #[test]
    fn keeps_only_the_newest_files() {
        let memory = Memory::default();
        let mut w = writer(&memory, 512, Some(2));
        w.write(&open("c1")).unwrap();
        for n in 0..60 {
            w.write(&note("c1", n)).unwrap();
        }
        w.flush().unwrap();
        let files = memory.0.borrow();
        let parts: Vec<u32> = files.keys().copied().collect();
        assert_eq!(parts.len(), 2, "{parts:?}");
        assert_eq!(parts[0] + 1, parts[1]);
        assert!(parts[0] > 0);
    }

    #[test]
    fn an_event_larger_than_the_limit_gets_a_file_of_its_own() {
        let memory = Memory::default();
        let mut w = writer(&memory, 10, None);
        w.write(&note("c1", 1)).unwrap();
        w.write(&note("c1", 2)).unwrap();
        w.flush().unwrap();
        let files = memory.0.borrow();
        assert_eq!(files.len(), 2);
        for bytes in files.values() {
            assert_eq!(read(bytes).1.len(), 1);
        }
    }
}
