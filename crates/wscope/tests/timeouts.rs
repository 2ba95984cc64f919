//! The test helpers' time limits (tests/common): when one runs out, the
//! process the helper waited on is killed with SIGKILL — with its process
//! group when it leads one, so what it started goes too — and reaped
//! before the test fails, with a message naming what timed out. A hung
//! peer must not outlive its test.
//!
//! Each case starts a real process that never exits (`sleep 1000`, or a
//! shell that starts one and waits for it), lets the helper time out
//! with a short limit, catches the failure and looks in /proc.

mod common;

use std::io::{BufRead, BufReader};
use std::os::unix::process::CommandExt;
use std::panic::AssertUnwindSafe;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Short enough to keep the tests quick; the processes never end on their own.
const SHORT: Duration = Duration::from_millis(300);

/// A shell in a process group of its own that starts `sleep 1000`, prints
/// its own pid and the sleep's, and waits for the sleep.
fn shell_with_a_sleeping_child() -> Command {
    let mut command = Command::new("sh");
    command
        .args(["-c", "sleep 1000 & echo $$ $!; wait"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .process_group(0);
    command
}

fn sleeper() -> Child {
    Command::new("sleep")
        .arg("1000")
        .stdin(Stdio::null())
        .spawn()
        .expect("sleep starts")
}

/// Runs `f`, which must fail; returns its panic message.
fn panic_of(f: impl FnOnce()) -> String {
    let outcome = std::panic::catch_unwind(AssertUnwindSafe(f));
    let panic = outcome.expect_err("the helper gave up on the process");
    panic
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| panic.downcast_ref::<&str>().map(|s| (*s).to_owned()))
        .unwrap_or_default()
}

/// Our own child, after the helper gave up on it: killed and reaped, so
/// not even a zombie is left in /proc.
fn assert_reaped(pid: u32, what: &str) {
    let proc = format!("/proc/{pid}");
    assert!(
        !Path::new(&proc).exists(),
        "{what} (pid {pid}) is still there: {:?}",
        std::fs::read_to_string(format!("{proc}/stat"))
    );
}

/// A grandchild killed with its group: gone, or a zombie until whoever
/// adopted it reaps it (not ours to reap). SIGKILL is delivered when the
/// process next runs, so this waits for it, within a generous bound.
fn assert_killed(pid: u32, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let state = std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .ok()
            .and_then(|stat| {
                // After "pid (comm) ": comm may hold spaces, not ')'.
                let rest = &stat[stat.rfind(')')? + 2..];
                rest.chars().next()
            });
        match state {
            None | Some('Z') | Some('X') => return,
            Some(state) => assert!(
                Instant::now() < deadline,
                "{what} (pid {pid}) still runs (state {state}) after its group was killed"
            ),
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn two_pids(line: &str) -> (u32, u32) {
    let pids: Vec<u32> = line
        .split_whitespace()
        .map(|p| p.parse().expect("a pid"))
        .collect();
    assert_eq!(pids.len(), 2, "the shell's pid and the sleep's: {line:?}");
    (pids[0], pids[1])
}

#[test]
fn within_kills_the_process_group_it_waits_on_when_time_runs_out() {
    let mut shell = shell_with_a_sleeping_child().spawn().expect("sh starts");
    let stdout = BufReader::new(shell.stdout.take().expect("stdout is piped"));
    let (mut stdout, line) =
        common::first_line(stdout, &mut shell, "the shell", Duration::from_secs(60));
    let (shell_pid, sleep_pid) = two_pids(&line);
    assert_eq!(shell_pid, shell.id());

    let message = panic_of(|| {
        common::within("a second line", SHORT, &mut shell, move || {
            let mut line = String::new();
            let _ = stdout.read_line(&mut line);
        });
    });
    assert!(
        message.starts_with("a second line: nothing within"),
        "the failure names what timed out: {message}"
    );
    assert!(message.contains("SIGKILL"), "and what was done: {message}");
    assert_reaped(shell_pid, "the shell");
    assert_killed(sleep_pid, "the shell's sleep");
}

#[test]
fn first_line_kills_a_child_that_prints_nothing() {
    let mut child = Command::new("sleep")
        .arg("1000")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .spawn()
        .expect("sleep starts");
    let pid = child.id();
    let stdout = BufReader::new(child.stdout.take().expect("stdout is piped"));
    let message = panic_of(|| {
        common::first_line(stdout, &mut child, "the silent sleep", SHORT);
    });
    assert!(
        message.starts_with("the silent sleep prints a line: nothing within"),
        "{message}"
    );
    assert_reaped(pid, "sleep");
}

#[test]
fn wait_output_kills_a_process_that_does_not_exit() {
    let child = sleeper();
    let pid = child.id();
    let message = panic_of(|| {
        common::wait_output(child, SHORT);
    });
    assert!(
        message.starts_with("the process still running after"),
        "{message}"
    );
    assert_reaped(pid, "sleep");
}

#[test]
fn exit_within_kills_a_process_that_does_not_exit() {
    let mut child = sleeper();
    let pid = child.id();
    let message = panic_of(|| {
        common::exit_within(&mut child, "sleep 1000", SHORT);
    });
    assert!(
        message.starts_with("sleep 1000: still running after"),
        "{message}"
    );
    assert_reaped(pid, "sleep");
}

/// `run_within` (behind `output_within` and `timed_output`) starts the
/// command in a process group of its own and kills the whole group: the
/// shell's sleep, which holds the output pipe open, goes too, and what
/// the shell printed is in the failure.
#[test]
fn run_within_kills_the_command_and_what_it_started() {
    let mut command = Command::new("sh");
    command.args(["-c", "sleep 1000 & echo $$ $!; wait"]);
    let message = panic_of(|| {
        common::output_within(&mut command, SHORT);
    });
    assert!(
        message.contains("still running after") && message.contains("\"sh\""),
        "the failure names the command: {message}"
    );
    let line = message
        .lines()
        .find_map(|l| l.strip_prefix("stdout: "))
        .unwrap_or_else(|| panic!("the shell's output in the failure: {message}"));
    let (shell_pid, sleep_pid) = two_pids(line);
    assert_reaped(shell_pid, "the shell");
    assert_killed(sleep_pid, "the shell's sleep");
}
