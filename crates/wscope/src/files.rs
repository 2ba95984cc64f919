//! Files wscope creates that hold traffic or keys (records, reports,
//! pcapng, private keys): readable by their owner only, from the moment
//! they exist.

use std::fs::File;
use std::io;
use std::path::Path;

/// Creates (or truncates) `path` with mode 0600.
pub fn create_private(path: &Path) -> io::Result<File> {
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
}
