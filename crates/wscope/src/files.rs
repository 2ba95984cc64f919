//! Files wscope creates that hold traffic or keys (records, reports,
//! pcapng, private keys): readable by their owner only, from the moment
//! they exist.

use std::fs::File;
use std::io;
use std::path::Path;

/// Creates (or truncates) `path` with mode 0600. A file that was already
/// there is narrowed to 0600 too: the mode given at open applies only to a
/// new file, and an old record's 0644 must not leak the new traffic.
pub fn create_private(path: &Path) -> io::Result<File> {
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    let file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)?;
    // Not for a FIFO or a device (`--record /dev/stdout`): their modes
    // are not ours to change.
    if file.metadata()?.is_file() {
        file.set_permissions(std::fs::Permissions::from_mode(0o600))?;
    }
    Ok(file)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn an_existing_file_is_narrowed_to_its_owner() {
        let dir = std::env::temp_dir().join(format!("wscope-files-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("old.jsonl");
        std::fs::write(&path, b"old").unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        drop(create_private(&path).unwrap());
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        assert_eq!(std::fs::read(&path).unwrap(), b"");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
