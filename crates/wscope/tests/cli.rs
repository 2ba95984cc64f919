//! The binary's plain commands, run as a user would.

mod common;

use common::TimedOutput;

use common::wscope;

fn run(args: &[&str]) -> (i32, String, String) {
    let out = wscope().args(args).timed_output().expect("wscope runs");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn explain_close_codes_and_statuses() {
    let (code, out, _) = run(&["explain", "1006"]);
    assert_eq!(code, 0);
    assert!(
        out.contains("Abnormal Closure") && out.contains("never sent"),
        "{out}"
    );
    let (code, out, _) = run(&["explain", "403"]);
    assert_eq!(code, 0);
    assert!(out.contains("Forbidden") && out.contains("Origin"), "{out}");
    let (code, out, _) = run(&["explain", "1004"]);
    assert_eq!(code, 0);
    assert!(out.contains("not allowed in a close frame"), "{out}");
    let (_, out, _) = run(&["explain", "4001", "--json"]);
    let json: serde_json::Value = serde_json::from_str(out.trim()).expect("one JSON object");
    assert_eq!(json["code"], 4001);
    assert_eq!(json["on_the_wire"], "may be sent in a close frame");
    let (code, _, err) = run(&["explain", "nope"]);
    assert_eq!(code, 2);
    assert!(err.contains("not a number"), "{err}");
    let (code, _, err) = run(&["explain", "42"]);
    assert_eq!(code, 2);
    assert!(err.contains("neither"), "{err}");
}

/// The web UI's URL on the demo's `web UI` line.
fn demo_ui_url(line: &str) -> Option<String> {
    line.trim()
        .strip_prefix("web UI")
        .map(|url| url.trim().to_owned())
}

/// `http://127.0.0.1:PORT/?token=T` into its port and path.
fn port_and_target(url: &str) -> (u16, String) {
    let rest = url
        .strip_prefix("http://127.0.0.1:")
        .unwrap_or_else(|| panic!("a loopback URL: {url}"));
    let (port, target) = rest.split_once('/').expect("a path");
    (port.parse().expect("a port"), format!("/{target}"))
}

#[test]
fn demo_shows_the_proxy_at_work_with_its_fault_and_ui() {
    let mut command = wscope();
    command.args(["demo", "--once"]);
    let out = common::output_within(&mut command, std::time::Duration::from_secs(60));
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert_eq!(out.status.code(), Some(0), "{stdout}\n{stderr}");
    // The proxy's view of both directions, through the proxy's rule.
    assert!(stdout.contains("c1 > hello, wscope\n"), "{stdout}");
    assert!(stdout.contains("c1 < hello, wscope\n"), "{stdout}");
    assert!(
        stderr.contains(
            r#"rewrote this text message: "{\"type\":\"greeting\",\"from\":\"the proxy\""#
        ),
        "{stderr}"
    );
    // Both ends of the connection closed it cleanly.
    assert!(
        stderr.contains("c1 closed by the client: 1000 (Normal Closure), clean"),
        "{stderr}"
    );
    let url = stdout.lines().find_map(demo_ui_url).expect("the UI's URL");
    assert!(url.contains("/?token="), "{url}");
}

#[test]
fn the_demo_keeps_its_ui_up_until_stopped() {
    use std::io::BufRead;
    let mut child = wscope()
        .arg("demo")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("wscope demo starts");
    let stdout = std::io::BufReader::new(child.stdout.take().expect("stdout is piped"));
    // Stopped when the test ends, passed or failed.
    let mut demo = common::Running {
        child,
        stdout: None,
    };
    // The URL, then the whole exchange, then the demo waits.
    let (url, lines) = common::within(
        "the demo's exchange",
        std::time::Duration::from_secs(60),
        &mut demo.child,
        move || {
            let mut url = None;
            let mut lines = Vec::new();
            for line in stdout.lines().map_while(Result::ok) {
                url = url.or_else(|| demo_ui_url(&line));
                let waiting = line.starts_with("Ctrl-C to stop");
                lines.push(line);
                if waiting {
                    break;
                }
            }
            (url, lines)
        },
    );
    let url = url.unwrap_or_else(|| panic!("no UI URL in {lines:#?}"));
    assert!(
        lines
            .iter()
            .any(|l| l == "c1 < κόσμε — UTF-8 survives the round trip 🎉"),
        "{lines:#?}"
    );
    let (port, with_token) = port_and_target(&url);
    let host = format!("127.0.0.1:{port}");
    let (status, body) = common::http_get(port, &with_token, &host);
    assert_eq!(status, 200, "{body}");
    let (status, _) = common::http_get(port, "/", &host);
    assert_eq!(status, 401, "the UI without its token");
}

#[test]
fn read_filters_a_record_and_sums_it_up() {
    let (_server, url) = common::start_server(&[]);
    let dir = common::temp_dir("read");
    let record = dir.join("session.jsonl");
    let record = record.to_str().unwrap();
    let (code, _, err) = run(&[
        "connect",
        "--quiet",
        "--record",
        record,
        "--send",
        r#"{"type":"subscribe","channel":"a"}"#,
        "--send",
        r#"{"type":"ping"}"#,
        "--send",
        r#"{"type":"subscribe","channel":"b"}"#,
        "--expect",
        "3",
        &format!("{url}/echo"),
    ]);
    assert_eq!(code, 0, "{err}");

    let (code, out, _) = run(&["read", record]);
    assert_eq!(code, 0);
    assert_eq!(
        out.lines().filter(|l| l.contains(" > ")).count(),
        3,
        "{out}"
    );
    assert_eq!(
        out.lines().filter(|l| l.contains(" < {")).count(),
        3,
        "{out}"
    );

    let (code, out, _) = run(&[
        "read",
        record,
        "--filter",
        r#"dir == s2c && json.type == "subscribe""#,
    ]);
    assert_eq!(code, 0);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 2, "{out}");
    assert!(
        lines[0].ends_with(r#"< {"type":"subscribe","channel":"a"}"#),
        "{out}"
    );
    assert!(
        lines[1].ends_with(r#"< {"type":"subscribe","channel":"b"}"#),
        "{out}"
    );

    let (code, out, _) = run(&["read", record, "--json", "--filter", "event == closed"]);
    assert_eq!(code, 0);
    let closed: serde_json::Value = serde_json::from_str(out.trim()).expect("one event");
    assert_eq!(closed["code"], 1000);

    let (code, out, _) = run(&["read", record, "--stats"]);
    assert_eq!(code, 0);
    assert!(out.contains("subscribe×4, ping×2"), "{out}");
    let bytes = r#"{"type":"subscribe","channel":"a"}"#.len() * 2 + r#"{"type":"ping"}"#.len();
    assert!(out.contains(&format!("3 / {bytes}")), "{out}");

    let (code, _, err) = run(&["read", record, "--filter", "opcode == txt"]);
    assert_eq!(code, 1);
    assert!(
        err.contains("opcode == txt\n          ^ txt is not an opcode"),
        "{err}"
    );
    let (code, _, err) = run(&["read", record, "--filter", "colour == red"]);
    assert_eq!(code, 1);
    assert!(err.contains("unknown field \"colour\""), "{err}");
}

/// The events a JSON Lines text holds (a record file's header line has no
/// `event` and is left out).
fn events(text: &str) -> Vec<serde_json::Value> {
    text.lines()
        .map(|line| serde_json::from_str::<serde_json::Value>(line).expect("a JSON line"))
        .filter(|event| event.get("event").is_some())
        .collect()
}

#[test]
fn connect_filter_narrows_what_is_printed_not_what_is_recorded() {
    let (_server, url) = common::start_server(&[]);
    let dir = common::temp_dir("connect-filter");
    let record = dir.join("session.jsonl");
    let (code, out, err) = run(&[
        "connect",
        "--json",
        "--filter",
        r#"dir == s2c && text contains "x""#,
        "--record",
        record.to_str().unwrap(),
        "--send",
        "xa",
        "--send",
        "b",
        "--send",
        "cx",
        "--expect",
        "3",
        &format!("{url}/echo"),
    ]);
    assert_eq!(code, 0, "{err}");
    // Only the echoes with an x: no sent messages, no "b", and no open or
    // closed (they have no direction, so `dir == s2c` is false for them).
    let printed = events(&out);
    let summary: Vec<(&str, &str, &str)> = printed
        .iter()
        .map(|e| {
            (
                e["event"].as_str().unwrap_or_default(),
                e["dir"].as_str().unwrap_or_default(),
                e["payload"]["text"].as_str().unwrap_or_default(),
            )
        })
        .collect();
    assert_eq!(
        summary,
        [("message", "s2c", "xa"), ("message", "s2c", "cx")],
        "{out}"
    );

    // The record has every event.
    let recorded = events(&std::fs::read_to_string(&record).expect("the record file"));
    let kinds: Vec<&str> = recorded
        .iter()
        .filter_map(|e| e["event"].as_str())
        .collect();
    assert_eq!(kinds.first(), Some(&"open"), "{kinds:?}");
    assert_eq!(kinds.last(), Some(&"closed"), "{kinds:?}");
    let messages: Vec<(&str, &str)> = recorded
        .iter()
        .filter(|e| e["event"] == "message")
        .map(|e| {
            (
                e["dir"].as_str().unwrap_or_default(),
                e["payload"]["text"].as_str().unwrap_or_default(),
            )
        })
        .collect();
    for expected in [
        ("c2s", "xa"),
        ("c2s", "b"),
        ("c2s", "cx"),
        ("s2c", "xa"),
        ("s2c", "b"),
        ("s2c", "cx"),
    ] {
        assert!(messages.contains(&expected), "{expected:?} in {messages:?}");
    }

    // Events without a message are decided by the expression too.
    let (code, out, err) = run(&[
        "connect",
        "--json",
        "--filter",
        "event in {open, closed}",
        "--send",
        "hello",
        "--expect",
        "1",
        &format!("{url}/echo"),
    ]);
    assert_eq!(code, 0, "{err}");
    let kinds: Vec<String> = events(&out)
        .iter()
        .map(|e| e["event"].as_str().unwrap_or_default().to_owned())
        .collect();
    assert_eq!(kinds, ["open", "closed"], "{out}");
}

#[test]
fn serve_filter_narrows_the_log_not_the_record() {
    let dir = common::temp_dir("serve-filter");
    let record = dir.join("serve.jsonl");
    let mut server = wscope()
        .args(["serve", "--listen", "127.0.0.1:0", "--log-format", "json"])
        .args(["--filter", r#"dir == c2s && text contains "x""#])
        .args(["--record", record.to_str().unwrap()])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("wscope serve starts");
    let stderr = server.stderr.take().expect("stderr is piped");
    let logs = std::thread::spawn(move || std::io::read_to_string(stderr).unwrap_or_default());
    let stdout = std::io::BufReader::new(server.stdout.take().expect("stdout is piped"));
    let (stdout, line) =
        common::first_line(stdout, &mut server, "wscope serve", common::START_LIMIT);
    let server = common::Running {
        child: server,
        stdout: Some(stdout),
    };
    let url = common::ws_url_in(&line);

    let (code, _, err) = run(&[
        "connect",
        "--quiet",
        "--send",
        "xa",
        "--send",
        "b",
        "--send",
        "cx",
        "--expect",
        "3",
        &format!("{url}/echo"),
    ]);
    assert_eq!(code, 0, "{err}");
    // The log is flushed before the record in each batch: once the record
    // has the end of the connection, so has the log.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let recorded = loop {
        let recorded = events(&std::fs::read_to_string(&record).unwrap_or_default());
        if recorded.iter().any(|e| e["event"] == "closed") || std::time::Instant::now() > deadline {
            break recorded;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    };
    drop(server);
    let logs = logs.join().expect("stderr reader");

    let lines: Vec<serde_json::Value> = logs
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{l}: {e}\n{logs}")))
        .collect();
    // Payloads are not logged, only sizes: the server had to keep them for
    // the filter to see the x.
    let logged: Vec<(&str, &str, u64)> = lines
        .iter()
        .map(|l| {
            (
                l["event"].as_str().unwrap_or_default(),
                l["dir"].as_str().unwrap_or_default(),
                l["size"].as_u64().unwrap_or_default(),
            )
        })
        .collect();
    assert_eq!(
        logged,
        [("message", "c2s", 2), ("message", "c2s", 2)],
        "{logs}"
    );
    // The open was filtered out of the log but the client is still known.
    for line in &lines {
        assert!(
            line["client"]
                .as_str()
                .is_some_and(|c| c.starts_with("127.0.0.1:")),
            "{line}"
        );
    }
    let kinds: Vec<&str> = recorded
        .iter()
        .filter_map(|e| e["event"].as_str())
        .collect();
    assert_eq!(
        kinds.iter().filter(|k| **k == "message").count(),
        6,
        "{kinds:?}"
    );
    for kind in ["open", "close", "closed"] {
        assert!(kinds.contains(&kind), "{kind} in {kinds:?}");
    }
}

/// Runs wscope, which must exit within 20 s: a command that started
/// serving would not.
fn run_briefly(args: &[&str]) -> (i32, String, String) {
    let mut child = wscope()
        .args(args)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("wscope runs");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while child.try_wait().expect("wait").is_none() {
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            let out = common::wait_output(child, common::COMMAND_LIMIT);
            panic!(
                "wscope {args:?} was still running:\n{}\n{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let out = common::wait_output(child, common::COMMAND_LIMIT);
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn a_bad_filter_is_shown_with_a_caret_and_starts_nothing() {
    // A listener that no one should connect to.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let url = format!("ws://{}/", listener.local_addr().unwrap());
    let caret = "opcode == txt\n          ^ txt is not an opcode";

    let (code, out, err) =
        run_briefly(&["connect", "--filter", "opcode == txt", "--send", "hi", &url]);
    assert_eq!(code, 1, "{out}\n{err}");
    assert!(err.contains("wscope: --filter:\n"), "{err}");
    assert!(err.contains(caret), "{err}");
    assert!(out.is_empty(), "{out}");
    assert_eq!(
        listener.accept().map(|_| ()).map_err(|e| e.kind()),
        Err(std::io::ErrorKind::WouldBlock),
        "connect dialed despite the bad filter"
    );

    let (code, out, err) = run_briefly(&[
        "proxy",
        "--listen",
        "127.0.0.1:0",
        "--upstream",
        &url,
        "--json",
        "--filter",
        "opcode == txt",
    ]);
    assert_eq!(code, 1, "{out}\n{err}");
    assert!(err.contains(caret), "{err}");
    assert!(!out.contains("listening"), "{out}");

    let (code, out, err) = run_briefly(&[
        "serve",
        "--listen",
        "127.0.0.1:0",
        "--filter",
        "colour == red",
    ]);
    assert_eq!(code, 1, "{out}\n{err}");
    assert!(
        err.contains("colour == red\n^ unknown field \"colour\""),
        "{err}"
    );
    assert!(!out.contains("listening"), "{out}");
    assert!(listener.accept().is_err());
}

/// A pseudo-terminal: the parent's end, and the end a child writes to.
fn pseudo_terminal() -> (std::fs::File, std::os::fd::OwnedFd) {
    pseudo_terminal_of(100)
}

/// A pseudo-terminal `columns` wide.
fn pseudo_terminal_of(columns: u16) -> (std::fs::File, std::os::fd::OwnedFd) {
    use std::os::fd::FromRawFd;
    let (mut parent, mut child) = (-1, -1);
    let size = libc::winsize {
        ws_row: 24,
        ws_col: columns,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: openpty writes two descriptors into the integers given, which
    // are then owned here and nowhere else.
    let status = unsafe {
        libc::openpty(
            &mut parent,
            &mut child,
            std::ptr::null_mut(),
            std::ptr::null(),
            &size,
        )
    };
    assert_eq!(status, 0, "openpty: {}", std::io::Error::last_os_error());
    // SAFETY: as above.
    unsafe {
        (
            std::fs::File::from_raw_fd(parent),
            std::os::fd::OwnedFd::from_raw_fd(child),
        )
    }
}

/// Runs `wscope args` with stderr on a pseudo-terminal and stdout to
/// `stdout`; returns the exit status and what reached the terminal.
fn run_on_terminal(args: &[&str], stdout: std::process::Stdio) -> (i32, String) {
    let (mut terminal, stderr) = pseudo_terminal();
    let mut child = {
        // The command holds the child's end until dropped: the terminal
        // reads to its end only once every copy is closed.
        let mut command = wscope();
        command.args(args).stdout(stdout).stderr(stderr);
        command.spawn().expect("wscope runs")
    };
    if let Some(mut piped) = child.stdout.take() {
        std::thread::spawn(move || std::io::copy(&mut piped, &mut std::io::sink()));
    }
    let reader = std::thread::spawn(move || {
        let mut seen = Vec::new();
        // Ends with EIO once the child has exited.
        let _ = std::io::Read::read_to_end(&mut terminal, &mut seen);
        String::from_utf8_lossy(&seen).into_owned()
    });
    let status = child.wait().expect("wscope exits");
    (
        status.code().unwrap_or(-1),
        reader.join().expect("terminal reader"),
    )
}

#[test]
fn read_shows_progress_on_a_terminal_and_clears_it() {
    // A record over 8 MiB: one short session's events, again and again.
    let (_server, url) = common::start_server(&[]);
    let dir = common::temp_dir("read-progress");
    let small = dir.join("small.jsonl");
    let (code, _, err) = run(&[
        "connect",
        "--quiet",
        "--record",
        small.to_str().unwrap(),
        "--send",
        "hello",
        "--expect",
        "1",
        &format!("{url}/echo"),
    ]);
    assert_eq!(code, 0, "{err}");
    let small = std::fs::read_to_string(&small).unwrap();
    let (header, session) = small.split_once('\n').expect("a header line");
    let mut text = format!("{header}\n");
    while text.len() <= 9 << 20 {
        text.push_str(session);
    }
    let big = dir.join("big.jsonl");
    std::fs::write(&big, text).unwrap();
    let big = big.to_str().unwrap();

    // Without a terminal: the output alone.
    let (code, expected, _) = run(&["read", big]);
    assert_eq!(code, 0);

    // stdout to a file, stderr a terminal: a bar, cleared at the end, and
    // the lines written to stderr (opens, closes) not torn by it.
    let out = dir.join("out.txt");
    let file = std::fs::File::create(&out).unwrap();
    let (code, terminal) = run_on_terminal(&["read", big], file.into());
    assert_eq!(code, 0, "{terminal}");
    assert_eq!(std::fs::read_to_string(&out).unwrap(), expected);
    assert!(
        terminal.contains("big.jsonl") && terminal.contains(" MiB/"),
        "no bar: {terminal:?}"
    );
    assert!(terminal.ends_with("\r\x1b[2K"), "not cleared: {terminal:?}");
    // What a terminal shows of each line: what follows the last erase.
    let opens = terminal
        .split('\n')
        .filter_map(|line| line.rsplit("\x1b[2K").next())
        .filter(|line| line.contains("wscope: c1 open"))
        .inspect(|line| assert!(!line.contains("MiB"), "torn: {line:?}"))
        .count();
    assert!(opens > 1000, "{opens} opens shown");

    // stdout to a pipe: whoever reads it may write to the terminal, so no
    // bar; nor with the events scrolling on the terminal itself.
    let (code, terminal) = run_on_terminal(&["read", big, "--json"], std::process::Stdio::piped());
    assert_eq!(code, 0);
    assert!(!terminal.contains("MiB"), "{terminal:?}");
    let (other_terminal, stdout) = pseudo_terminal();
    let (code, terminal) = run_on_terminal(&["read", big, "--filter", "len > 1000"], stdout.into());
    drop(other_terminal);
    assert_eq!(code, 0);
    assert!(!terminal.contains("MiB"), "{terminal:?}");

    // With --stats, nothing is printed until the end: a bar even on a
    // terminal, gone before the table.
    let (terminal, stdout) = pseudo_terminal();
    let (code, on_stderr) = run_on_terminal(&["read", big, "--stats"], stdout.into());
    drop(terminal);
    assert_eq!(code, 0);
    assert!(on_stderr.contains(" MiB/"), "no bar: {on_stderr:?}");
    assert!(
        on_stderr.ends_with("\r\x1b[2K"),
        "not cleared: {on_stderr:?}"
    );
}

/// Runs `wscope args` with stdout on a pseudo-terminal `columns` wide
/// (stderr discarded), with `env` set; returns the status and the lines
/// the terminal got.
fn run_with_stdout_on_terminal(
    args: &[&str],
    env: &[(&str, &str)],
    columns: u16,
) -> (i32, Vec<String>) {
    let (mut terminal, stdout) = pseudo_terminal_of(columns);
    let child = {
        let mut command = wscope();
        command
            .args(args)
            .env_remove("NO_COLOR")
            .env_remove("COLUMNS")
            .envs(env.iter().copied())
            .stdout(stdout)
            .stderr(std::process::Stdio::null());
        command.spawn().expect("wscope runs")
    };
    let reader = std::thread::spawn(move || {
        let mut seen = Vec::new();
        let _ = std::io::Read::read_to_end(&mut terminal, &mut seen);
        String::from_utf8_lossy(&seen).into_owned()
    });
    let status = common::wait_output(child, std::time::Duration::from_secs(60)).status;
    let seen = reader.join().expect("terminal reader");
    // The terminal turns each \n into \r\n.
    let lines = seen
        .lines()
        .map(|l| l.trim_end_matches('\r').to_owned())
        .collect();
    (status.code().unwrap_or(-1), lines)
}

/// The start of each line, for a failure's message.
fn shortened(lines: &[String]) -> Vec<String> {
    lines
        .iter()
        .map(|l| l.chars().take(150).collect())
        .collect()
}

/// `line` without its colour sequences.
fn without_colours(line: &str) -> String {
    let mut plain = String::new();
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        if c == '\x1b' {
            chars.by_ref().find(|c| c.is_ascii_alphabetic());
        } else {
            plain.push(c);
        }
    }
    plain
}

/// The columns a line takes on a terminal (its characters here are all
/// one column wide): colour sequences take none.
fn columns_of(line: &str) -> usize {
    without_colours(line).chars().count()
}

#[test]
fn the_live_view_fits_a_terminal_and_keeps_text_whole_in_a_pipe() {
    let (_server, url) = common::start_server(&[]);
    let dir = common::temp_dir("live-view");
    let (texts, binary) = (dir.join("texts.jsonl"), dir.join("binary.jsonl"));
    let big = "0123456789abcdef".repeat(4096);
    let echo = format!("{url}/echo");
    let (code, _, err) = run(&[
        "connect",
        "--quiet",
        "--record",
        texts.to_str().unwrap(),
        "--send",
        &big,
        "--send",
        "line one\nline two",
        "--send",
        "short",
        "--expect",
        "3",
        &echo,
    ]);
    assert_eq!(code, 0, "{err}");
    let blob = "AB".repeat(100);
    let (code, _, err) = run(&[
        "connect",
        "--quiet",
        "--binary",
        "--record",
        binary.to_str().unwrap(),
        "--send",
        &blob,
        "--expect",
        "1",
        &echo,
    ]);
    assert_eq!(code, 0, "{err}");
    let files = [texts.to_str().unwrap(), binary.to_str().unwrap()];
    let read = |extra: &[&'static str]| -> Vec<&str> {
        let mut args = vec!["read", files[0], files[1]];
        args.extend_from_slice(extra);
        args
    };
    // The message lines (not the close frames), without their colours.
    let messages = |lines: &[String]| -> Vec<String> {
        lines
            .iter()
            .map(|l| without_colours(l))
            .filter(|l| (l.contains("> ") || l.contains("< ")) && !l.contains(" close "))
            .collect()
    };

    // A pipe: text whole, as scripts read it; binary its size and first bytes.
    let (code, out, _) = run(&read(&[]));
    assert_eq!(code, 0);
    let printed: Vec<&str> = out.lines().collect();
    assert!(
        printed.iter().any(|l| l.ends_with(&format!("> {big}"))),
        "{out:.300}"
    );
    assert!(printed.iter().any(|l| l.ends_with("< short")), "{out:.300}");
    let hex = printed
        .iter()
        .find(|l| l.contains("< binary"))
        .expect("a binary line");
    assert!(
        hex.ends_with("< binary 200 B 41 42 41 42 41 42 41 42 41 42 41 42 41 42 41 42 …"),
        "{hex}"
    );
    // --full: binary whole too.
    let (_, out, _) = run(&read(&["--full"]));
    assert!(
        out.contains(&format!("< binary 200 B {}\n", ["41 42"; 100].join(" "))),
        "{out:.300}"
    );

    // A terminal: one line per message, within its width; a cut one says
    // its kind and size first, one that fits is as it is (line breaks
    // escaped).
    let (code, lines) = run_with_stdout_on_terminal(&read(&[]), &[], 72);
    assert_eq!(code, 0);
    let printed = messages(&lines);
    assert_eq!(printed.len(), 8, "{:#?}", shortened(&lines));
    for line in &printed {
        assert!(
            columns_of(line) <= 72,
            "{} columns: {line}",
            columns_of(line)
        );
    }
    let cut = printed
        .iter()
        .find(|l| l.contains("> text 65536 B 0123456789abcdef"))
        .expect("the big one");
    assert!(cut.ends_with('…') && columns_of(cut) == 72, "{cut}");
    assert!(
        printed.iter().any(|l| l.ends_with("< line one\\nline two")),
        "{:#?}",
        shortened(&printed)
    );
    assert!(
        printed.iter().any(|l| l.ends_with("< short")),
        "{:#?}",
        shortened(&printed)
    );
    assert!(
        printed.iter().any(|l| l.contains("< binary 200 B 41 42 ")),
        "{:#?}",
        shortened(&printed)
    );
    // Colours on a terminal, in the markers, outside the counted width.
    assert!(
        lines
            .iter()
            .any(|l| l.contains("\x1b[34m>\x1b[0m text 65536 B")),
        "{:#?}",
        shortened(&lines)
    );
    // COLUMNS is the fallback only: the terminal's own width wins.
    let (_, lines) = run_with_stdout_on_terminal(&read(&[]), &[("COLUMNS", "200")], 72);
    assert!(
        messages(&lines).iter().all(|l| columns_of(l) <= 72),
        "{:#?}",
        shortened(&lines)
    );
    // NO_COLOR and --color never take them away; --color always brings
    // them to a pipe.
    let (_, lines) = run_with_stdout_on_terminal(&read(&[]), &[("NO_COLOR", "1")], 72);
    assert!(!lines.concat().contains('\x1b'), "{:#?}", shortened(&lines));
    let (_, lines) = run_with_stdout_on_terminal(&read(&["--color", "never"]), &[], 72);
    assert!(!lines.concat().contains('\x1b'), "{:#?}", shortened(&lines));
    let (_, out, _) = run(&read(&["--color", "always", "--preview-width", "50"]));
    assert!(
        out.contains("\x1b[34m>\x1b[0m text 65536 B 0123"),
        "{out:.300}"
    );
    // --full on a terminal: the whole text.
    let (_, lines) = run_with_stdout_on_terminal(&read(&["--full"]), &[], 72);
    assert!(lines.iter().any(|l| l.ends_with(&big)), "no whole message");

    // --preview-width in a pipe: cut as on a terminal that wide.
    let (_, out, _) = run(&read(&["--preview-width", "50"]));
    let lines: Vec<String> = out.lines().map(str::to_owned).collect();
    let printed = messages(&lines);
    assert_eq!(printed.len(), 8, "{out:.2000}");
    for line in &printed {
        assert!(
            columns_of(line) <= 50,
            "{} columns: {line}",
            columns_of(line)
        );
    }
    let (code, _, err) = run(&read(&["--preview-width", "50", "--full"]));
    assert_eq!(code, 2, "{err}");
}

/// Runs `wscope args` with `input` on its stdin.
fn run_with_stdin(args: &[&str], input: &[u8]) -> (i32, String, String) {
    use std::io::Write;
    let mut child = wscope()
        .args(args)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("wscope runs");
    let mut stdin = child.stdin.take().expect("stdin is piped");
    let input = input.to_vec();
    let writer = std::thread::spawn(move || stdin.write_all(&input));
    let out = common::wait_output(child, common::COMMAND_LIMIT);
    writer.join().unwrap().expect("stdin written");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Records one echo session with `wscope connect` at `path`: `messages`
/// sent, their echoes received.
fn record_session(url: &str, path: &std::path::Path, messages: &[&str]) {
    let expect = messages.len().to_string();
    let mut args = vec!["connect", "--quiet", "--record", path.to_str().unwrap()];
    for message in messages {
        args.extend(["--send", message]);
    }
    let url = format!("{url}/echo");
    args.extend(["--expect", &expect, &url]);
    let (code, _, err) = run(&args);
    assert_eq!(code, 0, "{err}");
}

/// `(dir, text)` of each message event.
fn messages(events: &[serde_json::Value]) -> Vec<(String, String)> {
    events
        .iter()
        .filter(|e| e["event"] == "message")
        .map(|e| {
            (
                e["dir"].as_str().unwrap_or_default().to_owned(),
                e["payload"]["text"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect()
}

/// A record file: its header line (checked), then its events.
fn record_file(path: &std::path::Path) -> Vec<serde_json::Value> {
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(path)
        .expect("the record file")
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600, "{} is private", path.display());
    let text = std::fs::read_to_string(path).unwrap();
    let header: serde_json::Value =
        serde_json::from_str(text.lines().next().expect("a header line")).unwrap();
    assert_eq!(header["format"], "wscope-record", "{text}");
    assert_eq!(header["version"], 1, "{text}");
    events(&text)
}

#[test]
fn read_record_writes_what_it_selects_to_a_new_record_file() {
    let (_server, url) = common::start_server(&[]);
    let dir = common::temp_dir("read-record");
    let input = dir.join("in.jsonl");
    record_session(&url, &input, &["xa", "b", "cx"]);
    let recorded = record_file(&input);
    let input = input.to_str().unwrap();

    // Everything, quietly: the same events in a file of its own.
    let all = dir.join("all.jsonl");
    let (code, out, err) = run(&["read", input, "--quiet", "--record", all.to_str().unwrap()]);
    assert_eq!(code, 0, "{err}");
    assert!(out.is_empty(), "{out}");
    assert_eq!(record_file(&all), recorded);

    // On read, the filter narrows the record too, not only what is printed.
    let some = dir.join("some.jsonl");
    let (code, out, err) = run(&[
        "read",
        input,
        "--filter",
        r#"dir == s2c && text contains "x""#,
        "--record",
        some.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{err}");
    let printed: Vec<&str> = out.lines().collect();
    assert_eq!(printed.len(), 2, "{out}");
    assert!(
        printed[0].ends_with("< xa") && printed[1].ends_with("< cx"),
        "{out}"
    );
    let kept = record_file(&some);
    assert_eq!(kept.len(), 2, "{kept:?}");
    assert_eq!(
        messages(&kept),
        [("s2c".into(), "xa".into()), ("s2c".into(), "cx".into())]
    );

    // Writing over an input would empty it before it is read.
    let (code, _, err) = run(&["read", input, "--record", input]);
    assert_eq!(code, 1);
    assert!(err.contains("is also an input"), "{err}");
    assert_eq!(record_file(std::path::Path::new(input)), recorded);
}

#[test]
fn read_takes_several_files_in_order_and_stdin() {
    let (_server, url) = common::start_server(&[]);
    let dir = common::temp_dir("read-several");
    let first = dir.join("first.jsonl");
    let second = dir.join("second.jsonl");
    record_session(&url, &first, &["first-1", "first-2"]);
    record_session(&url, &second, &["second"]);
    let sent = |out: &str| -> Vec<String> {
        messages(&events(out))
            .into_iter()
            .filter(|(dir, _)| dir == "c2s")
            .map(|(_, text)| text)
            .collect()
    };
    let (first, second) = (first.to_str().unwrap(), second.to_str().unwrap());

    // In the order given, not by time: the second file was recorded later.
    let (code, out, err) = run(&["read", "--json", second, first]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(sent(&out), ["second", "first-1", "first-2"], "{out}");
    let kinds: Vec<String> = events(&out)
        .iter()
        .map(|e| e["event"].as_str().unwrap_or_default().to_owned())
        .collect();
    assert_eq!(
        kinds.iter().filter(|k| *k == "open").count(),
        2,
        "{kinds:?}"
    );
    assert_eq!(kinds.first().map(String::as_str), Some("open"));
    assert_eq!(kinds.last().map(String::as_str), Some("closed"));

    // `-` is standard input, alone or among files.
    let piped = std::fs::read(second).unwrap();
    let (code, out, err) = run_with_stdin(&["read", "--json", "-"], &piped);
    assert_eq!(code, 0, "{err}");
    assert_eq!(sent(&out), ["second"], "{out}");
    let (code, out, err) = run_with_stdin(&["read", "--json", first, "-"], &piped);
    assert_eq!(code, 0, "{err}");
    assert_eq!(sent(&out), ["first-1", "first-2", "second"], "{out}");

    // A missing file fails before anything is printed.
    let missing = dir.join("missing.jsonl");
    let (code, out, err) = run(&["read", first, missing.to_str().unwrap()]);
    assert_eq!(code, 1);
    assert!(out.is_empty(), "{out}");
    assert!(
        err.contains("cannot open") && err.contains("missing.jsonl"),
        "{err}"
    );
}

/// The kept length and true length of each message payload in `events`,
/// in order.
fn payload_sizes(events: &[serde_json::Value]) -> Vec<(String, usize, u64)> {
    events
        .iter()
        .filter(|e| e["event"] == "message")
        .map(|e| {
            (
                e["dir"].as_str().unwrap_or_default().to_owned(),
                e["payload"]["text"].as_str().map_or(0, str::len),
                e["payload"]["len"].as_u64().unwrap_or_default(),
            )
        })
        .collect()
}

#[test]
fn each_command_keeps_its_own_default_payload_limit() {
    // The same two messages, 20,000 and 70,000 bytes, recorded by the
    // server, the proxy in front of it and the client: 64 KiB for connect
    // and serve, 16 KiB for the proxy.
    let dir = common::temp_dir("max-payload");
    let (at_server, at_proxy, at_client) = (
        dir.join("serve.jsonl"),
        dir.join("proxy.jsonl"),
        dir.join("connect.jsonl"),
    );
    let (_server, url) = common::start_server(&["--record", at_server.to_str().unwrap()]);
    let (_proxy, line) = common::start_proxy(
        &["--upstream", &url, "--record", at_proxy.to_str().unwrap()],
        &[],
    );
    let proxy_url = common::address_in(&line, "ws://");
    let (small, big) = ("s".repeat(20_000), "b".repeat(70_000));
    let (code, _, err) = run(&[
        "connect",
        "--quiet",
        "--record",
        at_client.to_str().unwrap(),
        "--send",
        &small,
        "--send",
        &big,
        "--expect",
        "2",
        &format!("{proxy_url}/echo"),
    ]);
    assert_eq!(code, 0, "{err}");
    let closed = |events: &[serde_json::Value]| events.iter().any(|e| e["event"] == "closed");
    let both_ways = |kept_small: usize, kept_big: usize| {
        let mut expected = Vec::new();
        for dir in ["c2s", "s2c"] {
            expected.push((dir.to_owned(), kept_small, 20_000));
            expected.push((dir.to_owned(), kept_big, 70_000));
        }
        expected
    };
    let sorted = |mut sizes: Vec<(String, usize, u64)>| {
        sizes.sort();
        sizes
    };
    let mut expected = both_ways(20_000, 64 * 1024);
    expected.sort();
    assert_eq!(
        sorted(payload_sizes(&record_file(&at_client))),
        expected,
        "connect"
    );
    let at_server = common::record_until(&at_server, closed);
    assert_eq!(sorted(payload_sizes(&at_server)), expected, "serve");
    let mut expected = both_ways(16 * 1024, 16 * 1024);
    expected.sort();
    let at_proxy = common::record_until(&at_proxy, closed);
    assert_eq!(sorted(payload_sizes(&at_proxy)), expected, "proxy");

    // And each command's --help says so.
    for (command, default) in [
        ("connect", "[default: 65536]"),
        ("serve", "[default: 65536]"),
        ("proxy", "[default: 16384]"),
    ] {
        let (code, out, _) = run(&[command, "--help"]);
        assert_eq!(code, 0);
        let line = out
            .split("--max-payload")
            .nth(1)
            .and_then(|rest| rest.split("\n\n").next())
            .unwrap_or_default();
        assert!(line.contains(default), "{command}: {line}");
    }
}

#[test]
fn flags_a_command_cannot_honour_are_refused_with_a_reason() {
    let dir = common::temp_dir("refused");
    let record = dir.join("r.jsonl");
    std::fs::write(&record, "{\"format\":\"wscope-record\",\"version\":1}\n").unwrap();
    let record = record.to_str().unwrap();
    let (code, out, err) = run_briefly(&["read", record, "--ui"]);
    assert_eq!(code, 1, "{out}\n{err}");
    assert!(
        err.contains("--ui is not available on `wscope read`") && err.contains("wscope ui FILE"),
        "{err}"
    );
    let (code, out, err) = run_briefly(&["serve", "--listen", "127.0.0.1:0", "--quiet"]);
    assert_eq!(code, 1, "{out}\n{err}");
    assert!(
        err.contains("--quiet is not available on `wscope serve`"),
        "{err}"
    );
    assert!(!out.contains("listening"), "{out}");
    let (_, help, _) = run(&["serve", "--help"]);
    assert!(
        !help.contains("--quiet") && help.contains("--json"),
        "{help}"
    );
}

#[test]
fn serve_prints_json_with_frames_after_its_address() {
    // The output flags every command shares: --json and --frames on serve.
    let (mut server, url) = common::start_server(&["--json", "--frames"]);
    let mut stdout = server.stdout.take().expect("the server's stdout");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::BufRead::lines(&mut stdout).map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let (code, _, err) = run(&[
        "connect",
        "--quiet",
        "--send",
        "hello",
        "--expect",
        "1",
        &format!("{url}/echo"),
    ]);
    assert_eq!(code, 0, "{err}");
    let mut printed = Vec::new();
    while let Ok(line) = rx.recv_timeout(std::time::Duration::from_secs(10)) {
        let event: serde_json::Value =
            serde_json::from_str(&line).unwrap_or_else(|e| panic!("{line}: {e}"));
        let closed = event["event"] == "closed";
        printed.push(event);
        if closed {
            break;
        }
    }
    let seen: Vec<(String, String)> = printed
        .iter()
        .map(|e| {
            (
                e["event"].as_str().unwrap_or_default().to_owned(),
                e["dir"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect();
    let frame = printed
        .iter()
        .find(|e| e["event"] == "frame" && e["opcode"] == "text")
        .unwrap_or_else(|| panic!("a data frame in {seen:?}"));
    assert_eq!(frame["dir"], "c2s");
    assert_eq!(frame["payload"]["text"], "hello");
    assert_eq!(
        seen.first().map(|(e, _)| e.as_str()),
        Some("open"),
        "{seen:?}"
    );
    assert_eq!(
        seen.last().map(|(e, _)| e.as_str()),
        Some("closed"),
        "{seen:?}"
    );
    assert_eq!(messages(&printed).len(), 2, "{seen:?}");
}

#[test]
fn completions_are_valid_shell_and_know_every_command() {
    for shell in ["bash", "zsh", "fish", "powershell", "elvish"] {
        let (code, script, err) = run(&["completions", shell]);
        assert_eq!(code, 0, "{shell}: {err}");
        for word in ["doctor", "replay", "resolve", "connect-to", "color"] {
            assert!(script.contains(word), "{shell} completions lack {word}");
        }
    }
    // bash itself checks the script's syntax and loads it.
    let (_, script, _) = run(&["completions", "bash"]);
    let dir = common::temp_dir("completions");
    let path = dir.join("wscope.bash");
    std::fs::write(&path, &script).unwrap();
    let out = std::process::Command::new("bash")
        .arg("-c")
        .arg(format!("source {} && complete -p wscope", path.display()))
        .timed_output()
        .expect("bash runs");
    assert!(out.status.success(), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stdout).contains("_wscope"));
    // A shell nobody supports is refused, naming the ones that are.
    let (code, _, err) = run(&["completions", "tcsh"]);
    assert_eq!(code, 2);
    assert!(err.contains("bash"), "{err}");
}

#[test]
fn manpages_are_written_for_every_command_and_read_by_man() {
    let dir = common::temp_dir("manpages");
    let (code, listed, err) = run(&["manpages", dir.to_str().unwrap()]);
    assert_eq!(code, 0, "{err}");
    for name in ["wscope", "wscope-connect", "wscope-doctor", "wscope-replay"] {
        let path = dir.join(format!("{name}.1"));
        assert!(path.exists(), "{} missing; listed {listed}", path.display());
        assert!(listed.contains(&format!("{name}.1")));
    }
    // man renders the page: the doctor page documents --resolve.
    let out = std::process::Command::new("man")
        .arg("-l")
        .arg(dir.join("wscope-doctor.1"))
        .env("MANPAGER", "cat")
        .env("MANWIDTH", "100")
        .timed_output()
        .expect("man runs");
    assert!(out.status.success(), "{out:?}");
    let page = String::from_utf8_lossy(&out.stdout);
    assert!(page.contains("wscope-doctor"), "{page}");
    assert!(page.contains("--resolve"), "{page}");
}

#[test]
fn color_follows_the_flag_then_the_terminal_and_no_color() {
    let (_, plain, _) = run(&["doctor", "http://127.0.0.1:1/"]);
    assert!(!plain.contains('\x1b'), "a pipe gets no colour: {plain}");
    let (_, always, _) = run(&["--color", "always", "doctor", "http://127.0.0.1:1/"]);
    assert!(always.contains("\x1b[1;31mproblem"), "{always}");
    // The flag overrides NO_COLOR (no-color.org), in either position.
    let out = wscope()
        .args(["doctor", "--color", "always", "http://127.0.0.1:1/"])
        .env("NO_COLOR", "1")
        .timed_output()
        .expect("wscope runs");
    assert!(String::from_utf8_lossy(&out.stdout).contains('\x1b'));
    let (_, never, _) = run(&["--color", "never", "doctor", "http://127.0.0.1:1/"]);
    assert!(!never.contains('\x1b'), "{never}");
}
