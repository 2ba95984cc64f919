//! Key log files followed as they grow, for a live capture: a browser
//! started with SSLKEYLOGFILE appends a session's secrets as it connects,
//! so what a connection needs may arrive after its first packets (the
//! decoder holds its records meanwhile, `Options::keys_may_arrive`).
//!
//! Each poll reads what was appended since the last one; a file that does
//! not exist yet is waited for, and one that shrank or was replaced (a
//! new browser run truncates it) is read again from its start.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;

use wscope_capture::keylog::{KeyLog, LineReader};

struct Followed {
    path: PathBuf,
    /// (device, inode) of the file read so far.
    id: Option<(u64, u64)>,
    offset: u64,
    lines: LineReader,
    said_missing: bool,
}

/// The key log files of a run.
pub struct KeylogFollower {
    files: Vec<Followed>,
}

impl KeylogFollower {
    pub fn new(paths: &[PathBuf]) -> KeylogFollower {
        KeylogFollower {
            files: paths
                .iter()
                .map(|path| Followed {
                    path: path.clone(),
                    id: None,
                    offset: 0,
                    lines: LineReader::default(),
                    said_missing: false,
                })
                .collect(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.files.is_empty()
    }

    /// Reads what the files gained into `keys`. Returns whether any line
    /// was read, and appends what is worth telling the user to `warnings`.
    pub fn poll(&mut self, keys: &mut KeyLog, warnings: &mut Vec<String>) -> bool {
        let mut read_any = false;
        for file in &mut self.files {
            read_any |= file.poll(keys, warnings);
        }
        read_any
    }
}

impl Followed {
    fn poll(&mut self, keys: &mut KeyLog, warnings: &mut Vec<String>) -> bool {
        let name = self.path.display().to_string();
        let mut handle = match File::open(&self.path) {
            Ok(handle) => handle,
            Err(err) => {
                if !self.said_missing {
                    self.said_missing = true;
                    warnings.push(format!(
                        "key log {name}: {err}; waiting for it to be written"
                    ));
                }
                return false;
            }
        };
        let Ok(meta) = handle.metadata() else {
            return false;
        };
        let id = Some((meta.dev(), meta.ino()));
        if id != self.id || meta.len() < self.offset {
            // New, replaced or truncated: from the start.
            self.id = id;
            self.offset = 0;
            self.lines = LineReader::default();
        }
        if meta.len() == self.offset {
            return false;
        }
        if handle.seek(SeekFrom::Start(self.offset)).is_err() {
            return false;
        }
        let mut bytes = Vec::new();
        if let Err(err) = handle.read_to_end(&mut bytes) {
            warnings.push(format!("key log {name}: {err}"));
            return false;
        }
        self.offset += bytes.len() as u64;
        let mut errors = Vec::new();
        self.lines.feed(&bytes, keys, &mut errors);
        for error in errors {
            warnings.push(format!(
                "key log {name}, line {}: {}; the other lines are used",
                error.line, error.message
            ));
        }
        bytes.contains(&b'\n')
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn follows_appends_truncation_and_a_file_written_later() {
        let dir = std::env::temp_dir().join(format!("wscope-keylog-follow-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("keys.log");
        let mut follower = KeylogFollower::new(std::slice::from_ref(&path));
        let mut keys = KeyLog::default();
        let mut warnings = Vec::new();
        assert!(!follower.poll(&mut keys, &mut warnings));
        assert_eq!(warnings.len(), 1, "{warnings:?}");
        assert!(!follower.poll(&mut keys, &mut warnings));
        assert_eq!(warnings.len(), 1, "the missing file is said once");

        let line = |n: u8| {
            format!(
                "CLIENT_RANDOM {} {}\n",
                format!("{n:02x}").repeat(32),
                "ab".repeat(48)
            )
        };
        let first = line(1);
        // Half a line, then the rest: counted once it is whole.
        std::fs::write(&path, &first[..20]).unwrap();
        assert!(!follower.poll(&mut keys, &mut warnings));
        assert_eq!(keys.sessions(), 0);
        std::fs::write(&path, format!("{first}bad\n")).unwrap();
        assert!(follower.poll(&mut keys, &mut warnings));
        assert_eq!(keys.sessions(), 1);
        assert!(warnings.last().unwrap().contains("line 2"), "{warnings:?}");
        // Truncated and written again: read from the start.
        std::fs::write(&path, line(2)).unwrap();
        assert!(follower.poll(&mut keys, &mut warnings));
        assert_eq!(keys.sessions(), 2);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
