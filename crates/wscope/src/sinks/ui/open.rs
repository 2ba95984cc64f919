//! `--open`: the browser gets the UI without the token on any command
//! line. A process's arguments are readable by every user of the machine
//! (`ps`), so `xdg-open` is given the path of a file only the user can
//! read, in a directory only the user can enter; the file sends the
//! browser to the UI with a single-use code that the UI exchanges for its
//! cookie (docs/UI.md).

use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use super::access::Access;

/// Writes the hand-off file for `base` (`http://127.0.0.1:PORT`) and opens
/// it; failing is not fatal (the printed URL still works).
pub fn open_in_browser(base: &str, access: &Access) {
    let mut written = None;
    access.once_code(
        |code| match write_hand_off(&format!("{base}/?once={code}")) {
            Ok(path) => {
                written = Some(path.clone());
                Some(path)
            }
            Err(err) => {
                eprintln!(
                    "wscope: cannot write the file that opens the UI ({err}); open the URL yourself"
                );
                None
            }
        },
    );
    let Some(path) = written else { return };
    let opener = if cfg!(target_os = "macos") {
        "open"
    } else {
        "xdg-open"
    };
    if let Err(err) = std::process::Command::new(opener)
        .arg(&path)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
    {
        eprintln!("wscope: cannot open a browser ({opener}: {err}); open the URL yourself");
    }
}

/// A fresh 0700 directory (in `$XDG_RUNTIME_DIR` when there is one: it is
/// the user's alone) holding a 0600 page that redirects to `url`.
fn write_hand_off(url: &str) -> std::io::Result<PathBuf> {
    let parent = std::env::var_os("XDG_RUNTIME_DIR")
        .map(PathBuf::from)
        .filter(|dir| dir.is_dir())
        .unwrap_or_else(std::env::temp_dir);
    let dir = parent.join(format!("wscope-open-{:032x}", rand::random::<u128>()));
    std::fs::DirBuilder::new().mode(0o700).create(&dir)?;
    let path = dir.join("ui.html");
    let written = write_page(&path, url);
    if written.is_err() {
        let _ = std::fs::remove_dir(&dir);
    }
    written.map(|()| path)
}

fn write_page(path: &Path, url: &str) -> std::io::Result<()> {
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?;
    write!(
        file,
        "<!doctype html>\n<meta charset=\"utf-8\">\n<meta name=\"referrer\" content=\"no-referrer\">\n<link rel=\"icon\" href=\"data:,\">\n\
         <meta http-equiv=\"refresh\" content=\"0;url={url}\">\n<title>wscope</title>\n\
         <p>Opening <a href=\"{url}\">the wscope UI</a>…</p>\n"
    )?;
    file.sync_all()
}
