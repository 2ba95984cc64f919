//! Interactive `connect`: a line editor with history (rustyline) on a
//! terminal, and slash commands for what a plain line cannot say.
//!
//! The editor blocks, so it runs on its own thread and hands [`Command`]s to
//! the connection over a channel; what arrives meanwhile is printed above
//! the prompt through rustyline's external printer, so typing is never
//! garbled.

use std::path::PathBuf;

use rustyline::ExternalPrinter as _;
use rustyline::error::ReadlineError;
use tokio::sync::mpsc;
use wscope_proto::{CloseCode, OpCode};

/// Something to do on the connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// Send a data message.
    Send(OpCode, Vec<u8>),
    Ping(Vec<u8>),
    Pong(Vec<u8>),
    /// Send a close frame (the connection ends when the peer answers).
    Close(Option<CloseCode>, String),
    /// Print message and byte counts.
    Stats,
    /// Print the commands.
    Help,
    /// A line that could not be understood, and why.
    Problem(String),
}

/// The slash commands, for `/help`.
pub const HELP: &str = "commands:
  TEXT                 send TEXT as a text message
  /ping [data]         send a ping (the pong's round trip is printed)
  /pong [data]         send an unsolicited pong
  /close [code [why]]  close (default 1000) and wait for the server's answer
  /binary HEX          send bytes given in hex as a binary message
  /file PATH           send a file's contents (text if UTF-8, else binary)
  /stats               messages and bytes so far
  /help                this list
  /quit                close with 1000 and exit (Ctrl-D too)
  //text               send a text message that starts with '/'";

/// Reads one line the user typed.
pub fn parse(line: &str) -> Command {
    let Some(rest) = line.strip_prefix('/') else {
        return Command::Send(OpCode::Text, line.as_bytes().to_vec());
    };
    if rest.starts_with('/') {
        return Command::Send(OpCode::Text, rest.as_bytes().to_vec());
    }
    let (name, arg) = match rest.split_once(char::is_whitespace) {
        Some((name, arg)) => (name, arg.trim()),
        None => (rest, ""),
    };
    match name {
        "ping" => Command::Ping(arg.as_bytes().to_vec()),
        "pong" => Command::Pong(arg.as_bytes().to_vec()),
        "close" => {
            if arg.is_empty() {
                return Command::Close(Some(CloseCode::NORMAL), String::new());
            }
            let (code, reason) = arg.split_once(char::is_whitespace).unwrap_or((arg, ""));
            match code.parse::<u16>() {
                Ok(code) if CloseCode(code).is_valid_on_wire() => {
                    Command::Close(Some(CloseCode(code)), reason.trim().to_owned())
                }
                Ok(code) => Command::Problem(format!(
                    "{code} may not be sent in a close frame (try 1000, 1001, 3000-4999; `wscope explain {code}` says why)"
                )),
                Err(_) => Command::Problem(format!("/close takes a number, not {code:?}")),
            }
        }
        "binary" => match crate::values::decode_hex(arg) {
            Ok(bytes) => Command::Send(OpCode::Binary, bytes),
            Err(why) => Command::Problem(why),
        },
        "file" => match std::fs::read(arg) {
            Ok(bytes) => match String::from_utf8(bytes) {
                Ok(text) => Command::Send(OpCode::Text, text.into_bytes()),
                Err(e) => Command::Send(OpCode::Binary, e.into_bytes()),
            },
            Err(err) => Command::Problem(format!("cannot read {arg:?}: {err}")),
        },
        "stats" => Command::Stats,
        "help" | "?" => Command::Help,
        "quit" | "exit" | "q" => Command::Close(Some(CloseCode::NORMAL), String::new()),
        other => Command::Problem(format!("unknown command /{other}; /help lists them")),
    }
}

/// Prints above the prompt while the editor is active.
pub type Printer = Box<dyn FnMut(String) + Send>;

/// Starts the line editor on its own thread. Returns the commands typed and
/// a printer for output.
pub fn start() -> anyhow::Result<(mpsc::Receiver<Command>, Printer)> {
    save_terminal();
    let mut editor = rustyline::DefaultEditor::new()?;
    let history = history_path();
    if let Some(path) = &history {
        let _ = editor.load_history(path);
    }
    let mut external = editor.create_external_printer()?;
    let printer: Printer = Box::new(move |text: String| {
        let _ = external.print(text);
    });
    let (tx, rx) = mpsc::channel(64);
    std::thread::spawn(move || {
        loop {
            match editor.readline("> ") {
                Ok(line) => {
                    if !line.trim().is_empty() {
                        let _ = editor.add_history_entry(line.as_str());
                        // Saved at once: the session may end (and the
                        // process exit) while this thread waits for input.
                        if let Some(path) = &history {
                            if let Some(dir) = path.parent() {
                                let _ = std::fs::create_dir_all(dir);
                            }
                            let _ = editor.save_history(path);
                        }
                    }
                    if tx.blocking_send(parse(&line)).is_err() {
                        break;
                    }
                }
                // Ctrl-C and Ctrl-D both end the session politely.
                Err(ReadlineError::Interrupted | ReadlineError::Eof) => {
                    let _ =
                        tx.blocking_send(Command::Close(Some(CloseCode::NORMAL), String::new()));
                    break;
                }
                Err(_) => break,
            }
        }
    });
    Ok((rx, printer))
}

/// The terminal's settings before the editor switched it to raw mode.
static SAVED_TERMINAL: std::sync::OnceLock<libc::termios> = std::sync::OnceLock::new();

fn save_terminal() {
    // SAFETY: termios is plain old data; tcgetattr fills it or fails, and we
    // keep it only when it succeeded.
    unsafe {
        let mut termios: libc::termios = std::mem::zeroed();
        if libc::tcgetattr(libc::STDIN_FILENO, &mut termios) == 0 {
            let _ = SAVED_TERMINAL.set(termios);
        }
    }
}

/// Ends interactive mode when the connection ended first: the editor's
/// thread is still waiting for a line and cannot be interrupted, so give
/// its printer a moment to show the last lines, then put the terminal back
/// the way it was (the editor would have, had it returned).
pub fn finish() {
    std::thread::sleep(std::time::Duration::from_millis(100));
    // Bracketed paste off, and a fresh line after the prompt.
    print!("\x1b[?2004l\r\n");
    let _ = std::io::Write::flush(&mut std::io::stdout());
    if let Some(termios) = SAVED_TERMINAL.get() {
        // SAFETY: restores settings tcgetattr returned for the same fd.
        unsafe {
            libc::tcsetattr(libc::STDIN_FILENO, libc::TCSANOW, termios);
        }
    }
}

/// `$XDG_DATA_HOME/wscope/history`, or `~/.local/share/wscope/history`.
fn history_path() -> Option<PathBuf> {
    let base = std::env::var_os("XDG_DATA_HOME")
        .map(PathBuf::from)
        .or_else(|| {
            std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".local/share"))
        })?;
    Some(base.join("wscope").join("history"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_and_commands() {
        assert_eq!(
            parse("hello"),
            Command::Send(OpCode::Text, b"hello".to_vec())
        );
        assert_eq!(
            parse("//etc"),
            Command::Send(OpCode::Text, b"/etc".to_vec())
        );
        assert_eq!(parse("/ping abc"), Command::Ping(b"abc".to_vec()));
        assert_eq!(parse("/pong"), Command::Pong(Vec::new()));
        assert_eq!(
            parse("/close"),
            Command::Close(Some(CloseCode::NORMAL), String::new())
        );
        assert_eq!(
            parse("/close 4000 all done"),
            Command::Close(Some(CloseCode(4000)), "all done".into())
        );
        assert!(
            matches!(parse("/close 1006"), Command::Problem(p) if p.contains("may not be sent"))
        );
        assert!(matches!(parse("/close soon"), Command::Problem(_)));
        assert_eq!(
            parse("/binary 0x41 42"),
            Command::Send(OpCode::Binary, b"AB".to_vec())
        );
        assert!(matches!(parse("/binary 414"), Command::Problem(p) if p.contains("even")));
        assert!(matches!(parse("/binary zz"), Command::Problem(_)));
        assert!(matches!(parse("/file /nonexistent/x"), Command::Problem(_)));
        assert_eq!(parse("/stats"), Command::Stats);
        assert_eq!(parse("/help"), Command::Help);
        assert!(matches!(parse("/nope"), Command::Problem(p) if p.contains("unknown command")));
    }
}
