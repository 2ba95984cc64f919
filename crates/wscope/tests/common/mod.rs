//! Helpers shared by the integration tests: start the real binary, find the
//! peers that `scripts/test.sh` installs, read addresses from stdout.
//!
//! A missing peer fails the test with instructions; it never skips it.

#![allow(dead_code)]

pub mod metrics;
pub mod peer_log;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdout, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

/// The workspace root.
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .expect("workspace root exists")
}

/// The wscope binary under test.
pub fn wscope() -> Command {
    Command::new(env!("CARGO_BIN_EXE_wscope"))
}

/// A program from the test virtualenv (`.venv`, or `$WSCOPE_VENV`).
pub fn venv_bin(name: &str) -> PathBuf {
    let venv = std::env::var_os("WSCOPE_VENV")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo_root().join(".venv"));
    let path = venv.join("bin").join(name);
    assert!(
        path.exists(),
        "{} is missing: run scripts/test.sh (it creates .venv with the test peers from tests/requirements.txt)",
        path.display()
    );
    path
}

/// A child process killed when dropped, so a failing test leaves nothing behind.
pub struct Running {
    pub child: Child,
    pub stdout: Option<BufReader<ChildStdout>>,
}

impl Drop for Running {
    fn drop(&mut self) {
        kill_and_reap(&mut self.child);
    }
}

/// Ends `child` for good: SIGKILL to it, and to its whole process group
/// when it leads one (what it started goes too: a peer's tcpdump or node
/// holding a pipe open), then reaps it. Says what it did, for the panic
/// message of a timeout. Its own group is killed only while it is still
/// unreaped: only then is its pid certainly not some other process's.
pub fn kill_and_reap(child: &mut Child) -> String {
    let pid = child.id();
    if let Ok(Some(status)) = child.try_wait() {
        return format!("pid {pid} had already ended ({status})");
    }
    let pid_t = libc::pid_t::try_from(pid).expect("a pid fits pid_t");
    // SAFETY: plain system calls on a pid this process has not reaped.
    let leads_group = unsafe { libc::getpgid(pid_t) } == pid_t;
    if leads_group {
        // SAFETY: as above; the group is the one the child leads.
        unsafe { libc::kill(-pid_t, libc::SIGKILL) };
    }
    let _ = child.kill();
    let status = child.wait();
    let group = if leads_group {
        " and its process group"
    } else {
        ""
    };
    match status {
        Ok(status) => format!("killed pid {pid}{group} with SIGKILL, reaped ({status})"),
        Err(e) => format!("killed pid {pid}{group} with SIGKILL; reaping it failed: {e}"),
    }
}

/// Starts `wscope serve` on a free loopback port; returns it and its ws:// URL.
/// Lifecycle logs are off unless `extra` asks for them: a conformance run
/// would otherwise print every message on the test's stderr.
pub fn start_server(extra: &[&str]) -> (Running, String) {
    let quiet: &[&str] = if extra.contains(&"--log-format") {
        &[]
    } else {
        &["--log-format", "off"]
    };
    let child = wscope()
        .args(["serve", "--listen", "127.0.0.1:0"])
        .args(quiet)
        .args(extra)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("wscope serve starts");
    let (running, line) = named_address(child, "wscope serve");
    (running, ws_url_in(&line))
}

/// How long a starting server may take to print its address.
pub const START_LIMIT: Duration = Duration::from_secs(60);

/// A started child whose first stdout line names its address: that line,
/// read within [`START_LIMIT`] (a child that hangs before printing it,
/// or exits, fails the test; either way the child is killed).
pub fn named_address(mut child: Child, what: &str) -> (Running, String) {
    let stdout = BufReader::new(child.stdout.take().expect("stdout is piped"));
    let mut running = Running {
        child,
        stdout: None,
    };
    let (stdout, line) = first_line(stdout, &mut running.child, what, START_LIMIT);
    running.stdout = Some(stdout);
    (running, line)
}

/// The next line of `child`'s output (`reader` is one of its pipes),
/// within `limit`, else `child` is killed (see [`within`]); the reader
/// comes back for the rest. End of output is a failure that says so.
pub fn first_line<R: std::io::Read + Send + 'static>(
    mut reader: BufReader<R>,
    child: &mut Child,
    what: &str,
    limit: Duration,
) -> (BufReader<R>, String) {
    let what_owned = what.to_owned();
    let (reader, line) = within(&format!("{what} prints a line"), limit, child, move || {
        let mut line = String::new();
        let n = reader
            .read_line(&mut line)
            .unwrap_or_else(|e| panic!("{what_owned}: reading its output: {e}"));
        (reader, (n > 0).then_some(line))
    });
    let line = line.unwrap_or_else(|| panic!("{what} ended its output before printing a line"));
    (reader, line)
}

/// The ws:// or wss:// URL in a line a server printed when it started.
pub fn ws_url_in(line: &str) -> String {
    line.split_whitespace()
        .find(|word| word.starts_with("ws://") || word.starts_with("wss://"))
        .unwrap_or_else(|| panic!("a ws:// URL in the first line: {line:?}"))
        .trim_end_matches('/')
        .to_owned()
}

/// The `host:port` part of a ws:// URL.
pub fn host_port(url: &str) -> &str {
    url.trim_start_matches("ws://").trim_end_matches('/')
}

/// A fresh, empty directory for one test.
pub fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("wscope-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("temp dir");
    dir
}

/// A script from tests/peers/.
pub fn peer_script(name: &str) -> PathBuf {
    repo_root().join("tests").join("peers").join(name)
}

/// Node.js, with the packages `scripts/test.sh` installs (npm ci) in
/// node_modules/.
pub fn node() -> Command {
    let modules = repo_root().join("node_modules").join("ws");
    assert!(
        modules.exists(),
        "{} is missing: run scripts/test.sh (it runs npm ci for the Node.js test peers)",
        modules.display()
    );
    Command::new("node")
}

/// Runs serve_client.py and returns what it printed.
pub fn python(args: &[&str]) -> serde_json::Value {
    let out = Command::new(venv_bin("python"))
        .arg(peer_script("serve_client.py"))
        .args(args)
        .timed_output()
        .expect("python client runs");
    parse_report("python", &out)
}

/// Runs ws_client.mjs (Node.js `ws`) and returns what it printed.
pub fn node_ws(args: &[&str]) -> serde_json::Value {
    let out = node()
        .arg(peer_script("ws_client.mjs"))
        .args(args)
        .timed_output()
        .expect("node client runs");
    parse_report("node", &out)
}

pub fn parse_report(who: &str, out: &std::process::Output) -> serde_json::Value {
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{who} client failed ({}):\n{stdout}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_str(stdout.trim())
        .unwrap_or_else(|err| panic!("{who} printed {stdout:?}: {err}"))
}

/// The texts of the messages a client received.
pub fn texts(report: &serde_json::Value) -> Vec<String> {
    report["received"]
        .as_array()
        .expect("received list")
        .iter()
        .map(|m| m["data"].as_str().unwrap_or_default().to_owned())
        .collect()
}

/// Runs a peer server that names its address on its first stdout line;
/// returns it and that line.
pub fn spawn_named(mut command: Command, what: &str) -> (Running, String) {
    let child = command
        .stdout(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("{what} starts: {e}"));
    named_address(child, what)
}

/// tests/peers/ws_server.py (Python `websockets`); returns it and its URL.
pub fn python_server(args: &[&str]) -> (Running, String) {
    let mut command = Command::new(venv_bin("python"));
    command.arg(peer_script("ws_server.py")).args(args);
    let (running, line) = spawn_named(command, "the python server");
    (running, ws_url_in(&line))
}

/// tests/peers/ws_server.mjs (Node.js `ws`, echo with permessage-deflate);
/// returns it and its URL.
pub fn node_server(args: &[&str]) -> (Running, String) {
    let mut command = node();
    command.arg(peer_script("ws_server.mjs")).args(args);
    let (running, line) = spawn_named(command, "the node server");
    (running, address_in(&line, "ws://"))
}

/// Starts `wscope proxy` with `args`; returns it and its first stdout line.
pub fn start_proxy(args: &[&str], env: &[(&str, &std::path::Path)]) -> (Running, String) {
    let mut command = wscope();
    command
        .args(["proxy", "--listen", "127.0.0.1:0", "--quiet"])
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit());
    for (name, value) in env {
        command.env(name, value);
    }
    let child = command.spawn().expect("wscope proxy starts");
    named_address(child, "wscope proxy")
}

/// The first `scheme://host:port` in a line.
pub fn address_in(line: &str, scheme: &str) -> String {
    line.split_whitespace()
        .find(|w| w.starts_with(scheme))
        .unwrap_or_else(|| panic!("a {scheme} address in {line:?}"))
        .trim_end_matches([')', '/'])
        .to_owned()
}

/// Reads a record file's events, waiting until `done` holds for them.
pub fn record_until(path: &std::path::Path, done: impl Fn(&[Value]) -> bool) -> Vec<Value> {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let text = std::fs::read_to_string(path).unwrap_or_default();
        let events: Vec<Value> = text
            .lines()
            .skip(1)
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect();
        if done(&events) || Instant::now() > deadline {
            return events;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A program the tests need from the system (Debian packages that
/// `scripts/test.sh` installs when it runs as root): its path on `PATH`.
/// A missing one fails the test with what to install; it never skips it.
pub fn system_tool(name: &str, package: &str) -> PathBuf {
    let found = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join(name))
            .find(|path| path.is_file())
    });
    found.unwrap_or_else(|| {
        panic!(
            "{name} is missing: run scripts/test.sh as root (it installs Debian's {package}), \
             or apt-get install {package}"
        )
    })
}

/// One scenario between real peers captured by tcpdump
/// (tests/peers/capture_peers.py): the pcap file, the peers' own log of
/// what they sent and received, and the server's port.
pub struct PeerCapture {
    pub pcap: PathBuf,
    pub log: Value,
    pub port: u16,
}

/// Runs `capture_peers.py SCENARIO` into `dir` (needs root for tcpdump on
/// `lo`; `extra` goes to the script, e.g. `--count 500`).
pub fn capture_peers(scenario: &str, dir: &Path, extra: &[&str]) -> PeerCapture {
    system_tool("tcpdump", "tcpdump");
    if scenario.starts_with("node-") {
        node();
    }
    let pcap = dir.join(format!("{scenario}.pcap"));
    let log_path = dir.join(format!("{scenario}.json"));
    let out = Command::new(venv_bin("python"))
        .arg(peer_script("capture_peers.py"))
        .arg(scenario)
        .arg("--out")
        .arg(&pcap)
        .arg("--log")
        .arg(&log_path)
        .args(extra)
        .timed_output()
        .expect("capture_peers.py runs");
    assert!(
        out.status.success(),
        "capture_peers.py {scenario} failed ({}):\n{}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let log: Value = serde_json::from_str(
        &std::fs::read_to_string(&log_path).expect("capture_peers.py wrote its log"),
    )
    .expect("the peer log is JSON");
    let port = log["port"].as_u64().expect("the log names the port") as u16;
    PeerCapture { pcap, log, port }
}

/// `wscope read ARGS... --json` (with `stdin` as its standard input when
/// given): the events it printed. Fails the test when it fails.
pub fn read_json(args: &[&std::ffi::OsStr], stdin: Option<&Path>) -> Vec<Value> {
    let mut command = wscope();
    command.arg("read").args(args).arg("--json");
    match stdin {
        Some(path) => command.stdin(std::fs::File::open(path).expect("stdin file opens")),
        None => command.stdin(Stdio::null()),
    };
    let out = run_within(&mut command, COMMAND_LIMIT).expect("wscope read runs");
    assert!(
        out.status.success(),
        "wscope read {args:?} failed ({}):\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|line| {
            serde_json::from_str(line)
                .unwrap_or_else(|e| panic!("wscope read printed {line:?}: {e}"))
        })
        .collect()
}

/// A plain HTTP/1.1 GET with the given Host header, read to the end of the
/// connection; the status and the body.
pub fn http_get(port: u16, target: &str, host: &str) -> (u16, String) {
    let response = http_request(
        port,
        &format!("GET {target} HTTP/1.1\r\nHost: {host}\r\n\r\n"),
    );
    (response.status, response.body)
}

/// Runs `command` to its end, or kills it and panics after `limit` (a
/// command expected to refuse and exit must not hang the test if it
/// starts instead). Its stdin is empty, as with `Command::output`.
pub fn output_within(command: &mut Command, limit: Duration) -> std::process::Output {
    command.stdin(Stdio::null());
    run_within(command, limit).expect("the command starts")
}

/// How long a one-shot command of a test may take before it is killed
/// and the test fails: generous, so that only a hung peer reaches it.
pub const COMMAND_LIMIT: Duration = Duration::from_secs(300);

/// `Command::output` with a time limit, for the one-shot commands of the
/// tests (peers, tshark, `wscope read`): a hung child fails the test
/// instead of hanging CI.
pub trait TimedOutput {
    /// Like `output()` within [`COMMAND_LIMIT`], stdin empty (a command
    /// that reads a file on stdin goes through [`run_within`]); an error
    /// only when the command does not start.
    fn timed_output(&mut self) -> std::io::Result<std::process::Output>;
}

impl TimedOutput for Command {
    fn timed_output(&mut self) -> std::io::Result<std::process::Output> {
        run_within(self.stdin(Stdio::null()), COMMAND_LIMIT)
    }
}

/// `Command::output` with a limit; stdin as the command has it (inherited
/// unless set: [`output_within`] and [`TimedOutput`] set it empty). The
/// command leads a process group of its own, so that a timeout kills
/// what it started as well (a peer script's tcpdump or node).
pub fn run_within(command: &mut Command, limit: Duration) -> std::io::Result<std::process::Output> {
    use std::os::unix::process::CommandExt;
    let child = command
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .spawn()?;
    Ok(output_until(child, &format!("{command:?}"), limit))
}

/// Waits for `child` to exit and collects its output, within `timeout`;
/// else kills it (and its process group if it leads one), reaps it and
/// fails the test.
pub fn wait_output(child: Child, timeout: Duration) -> std::process::Output {
    output_until(child, "the process", timeout)
}

/// [`wait_output`], naming the process `what` when it times out.
fn output_until(mut child: Child, what: &str, limit: Duration) -> std::process::Output {
    let deadline = Instant::now() + limit;
    let stdout = child.stdout.take().map(read_to_end_on_a_thread);
    let stderr = child.stderr.take().map(read_to_end_on_a_thread);
    let status = match wait_until(&mut child, deadline) {
        Some(status) => status,
        None => {
            let killed = kill_and_reap(&mut child);
            // Killed, so its pipes close (unless something outside its
            // group holds them): show what it had said.
            let said = |pipe: Option<std::sync::mpsc::Receiver<Vec<u8>>>| {
                pipe.and_then(|rx| rx.recv_timeout(Duration::from_secs(5)).ok())
                    .map(|bytes| String::from_utf8_lossy(&bytes).into_owned())
                    .unwrap_or_default()
            };
            panic!(
                "{what} still running after {limit:?}; {killed}\nstdout: {}\nstderr: {}",
                said(stdout),
                said(stderr)
            );
        }
    };
    // It ended; a process it started may still hold its pipes open.
    let collect = |pipe: Option<std::sync::mpsc::Receiver<Vec<u8>>>, name: &str| {
        let Some(rx) = pipe else {
            return Vec::new();
        };
        let left = deadline.saturating_duration_since(Instant::now());
        rx.recv_timeout(left).unwrap_or_else(|_| {
            panic!(
                "{what} ended ({status}) but its {name} was still open after {limit:?} \
                 (a process it started holds it)"
            )
        })
    };
    let stdout = collect(stdout, "stdout");
    let stderr = collect(stderr, "stderr");
    std::process::Output {
        status,
        stdout,
        stderr,
    }
}

/// Reads `pipe` to its end on a thread; the bytes come on the channel.
fn read_to_end_on_a_thread(
    mut pipe: impl std::io::Read + Send + 'static,
) -> std::sync::mpsc::Receiver<Vec<u8>> {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut bytes = Vec::new();
        let _ = pipe.read_to_end(&mut bytes);
        let _ = tx.send(bytes);
    });
    rx
}

/// How often [`wait_until`] looks whether the child has exited: waiting
/// on a thread instead would leave that thread to reap the child, and a
/// kill sent after it did could reach a process that took its pid.
const EXIT_POLL: Duration = Duration::from_millis(5);

/// The child's exit status once it has exited, or `None` at `deadline`
/// with the child still unreaped.
fn wait_until(child: &mut Child, deadline: Instant) -> Option<std::process::ExitStatus> {
    loop {
        if let Some(status) = child.try_wait().expect("waiting for the process") {
            return Some(status);
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return None;
        }
        std::thread::sleep(left.min(EXIT_POLL));
    }
}

/// Waits for `child` to exit, within `timeout`; else kills it (and its
/// process group if it leads one), reaps it and fails the test.
pub fn exit_within(child: &mut Child, what: &str, timeout: Duration) -> std::process::ExitStatus {
    wait_until(child, Instant::now() + timeout).unwrap_or_else(|| {
        let killed = kill_and_reap(child);
        panic!("{what}: still running after {timeout:?}; {killed}")
    })
}

/// An HTTP response as [`http_request`] read it.
pub struct HttpResponse {
    pub status: u16,
    /// The status line and headers, as received.
    pub head: String,
    pub body: String,
}

impl HttpResponse {
    /// The first value of a header (name case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.head.lines().skip(1).find_map(|line| {
            let (key, value) = line.split_once(':')?;
            key.trim().eq_ignore_ascii_case(name).then(|| value.trim())
        })
    }
}

/// Sends `request` (a whole HTTP/1.1 request) to 127.0.0.1:`port` and
/// reads the answer to the end (the servers here close after one).
pub fn http_request(port: u16, request: &str) -> HttpResponse {
    use std::io::{Read, Write};
    let mut tcp = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    tcp.set_read_timeout(Some(std::time::Duration::from_secs(20)))
        .unwrap();
    tcp.write_all(request.as_bytes()).unwrap();
    let mut response = Vec::new();
    tcp.read_to_end(&mut response)
        .expect("the server answers and closes within 20 s");
    let response = String::from_utf8_lossy(&response).into_owned();
    let status = response
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let (head, body) = response
        .split_once("\r\n\r\n")
        .map(|(h, b)| (h.to_owned(), b.to_owned()))
        .unwrap_or((response.clone(), String::new()));
    HttpResponse { status, head, body }
}

/// Starts proxy.py (an HTTP proxy from PyPI) on a free port.
pub fn start_http_proxy(extra: &[&str]) -> (Running, u16) {
    let dir = temp_dir(&format!("proxy-{}", extra.len()));
    let port_file = dir.join("port");
    let child = Command::new(venv_bin("proxy"))
        .args([
            "--hostname",
            "127.0.0.1",
            "--port",
            "0",
            "--num-workers",
            "1",
            "--num-acceptors",
            "1",
            "--port-file",
        ])
        .arg(&port_file)
        .args(extra)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("proxy.py starts");
    let running = Running {
        child,
        stdout: None,
    };
    for _ in 0..200 {
        if let Ok(text) = std::fs::read_to_string(&port_file)
            && let Ok(port) = text.trim().parse()
        {
            return (running, port);
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("proxy.py wrote no port file");
}

/// Runs `work` on a thread and returns its result; if it takes longer
/// than `timeout`, kills `child`, the process the work waits on (and its
/// process group if it leads one), reaps it and fails the test naming
/// `what` (a hung peer fails the test instead of hanging CI or outliving
/// it).
pub fn within<T: Send + 'static>(
    what: &str,
    timeout: Duration,
    child: &mut Child,
    work: impl FnOnce() -> T + Send + 'static,
) -> T {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(work());
    });
    match rx.recv_timeout(timeout) {
        Ok(result) => result,
        Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {
            let killed = kill_and_reap(child);
            panic!("{what}: nothing within {timeout:?}; {killed}")
        }
        Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => {
            let killed = kill_and_reap(child);
            panic!("{what}: the work failed (its panic is above); {killed}")
        }
    }
}
