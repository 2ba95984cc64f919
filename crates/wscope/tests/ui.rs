//! The web UI's server: its security (token, Host, Origin), its WebSocket
//! protocol (docs/UI.md) as a real client library sees it (Python
//! `websockets`), actions reaching real peers through the proxy, and the
//! exports.

mod common;

use common::TimedOutput;

use std::process::Stdio;
use std::time::{Duration, Instant};

use common::{
    Running, address_in, node_server, python, record_until, start_proxy, temp_dir, texts, wscope,
};
use serde_json::Value;

/// A plain HTTP GET with the given Host; returns the status and body.
fn get(port: u16, target: &str, host: &str) -> (u16, String) {
    common::http_get(port, target, host)
}

/// The UI's URL (with its token) on a proxy's or server's first line.
fn ui_url_in(line: &str) -> String {
    line.split_whitespace()
        .find(|w| w.starts_with("http://"))
        .expect("the UI's URL on the first line")
        .trim_end_matches(')')
        .to_owned()
}

/// `http://127.0.0.1:PORT/?token=T` into its port and token.
fn port_and_token(url: &str) -> (u16, String) {
    let rest = url
        .strip_prefix("http://127.0.0.1:")
        .expect("a loopback UI URL");
    let (port, rest) = rest.split_once('/').unwrap();
    let token = rest.strip_prefix("?token=").unwrap().to_owned();
    (port.parse().unwrap(), token)
}

/// Messages a UI WebSocket client received, parsed, batches unpacked.
fn ui_messages(report: &Value) -> Vec<Value> {
    let mut messages = Vec::new();
    for text in texts(report) {
        let message: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
        match message["messages"].as_array() {
            Some(batch) if message["type"] == "batch" => messages.extend(batch.iter().cloned()),
            _ => messages.push(message),
        }
    }
    messages
}

fn record_file(dir: &std::path::Path) -> std::path::PathBuf {
    let (_server, upstream) = node_server(&[]);
    let record = dir.join("session.jsonl");
    let out = wscope()
        .args(["connect", &format!("{upstream}/"), "--record"])
        .arg(&record)
        .args([
            "--send",
            "hello",
            "--send",
            r#"{"type":"price","value":42}"#,
        ])
        .args(["--wait", "300ms"])
        .stdin(Stdio::null())
        .timed_output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    record
}

fn start_ui(file: &std::path::Path) -> (Running, String) {
    let mut command = wscope();
    command.args(["ui", file.to_str().unwrap()]);
    let (running, line) = common::spawn_named(command, "wscope ui");
    (running, ui_url_in(&line))
}

/// The `name=value` a Set-Cookie header sets.
fn cookie_pair(set_cookie: &str) -> String {
    set_cookie.split(';').next().unwrap().trim().to_owned()
}

/// A GET to the UI with these extra header lines.
fn ui_get(port: u16, target: &str, headers: &str) -> common::HttpResponse {
    common::http_request(
        port,
        &format!("GET {target} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n{headers}\r\n"),
    )
}

#[test]
fn the_ui_needs_its_token_its_own_host_and_its_own_origin() {
    let dir = temp_dir("ui-security");
    let record = record_file(&dir);
    let (_ui, url) = start_ui(&record);
    let (port, token) = port_and_token(&url);
    let host = format!("127.0.0.1:{port}");

    // The token is exchanged for a cookie, and the page sends the browser
    // on to a URL without it; nothing the UI answers carries the token.
    let exchange = ui_get(port, &format!("/?token={token}"), "");
    assert_eq!(exchange.status, 200, "{}", exchange.head);
    let set_cookie = exchange.header("set-cookie").expect("a cookie").to_owned();
    assert!(set_cookie.contains("HttpOnly"), "{set_cookie}");
    assert!(set_cookie.contains("SameSite=Strict"), "{set_cookie}");
    assert!(!set_cookie.contains(&token), "the cookie is not the token");
    assert_eq!(exchange.header("referrer-policy"), Some("no-referrer"));
    assert!(exchange.body.contains("url=/\""), "{}", exchange.body);
    assert!(!exchange.head.contains(&token) && !exchange.body.contains(&token));
    let cookie = format!("Cookie: {}\r\n", cookie_pair(&set_cookie));
    let page = ui_get(port, "/", &cookie);
    assert_eq!(page.status, 200, "{}", page.head);
    assert!(page.body.contains("src=\"app.js\""), "{}", page.body);
    assert!(!page.head.contains(&token) && !page.body.contains(&token));
    assert_eq!(page.header("referrer-policy"), Some("no-referrer"));
    assert!(page.header("location").is_none());
    assert_eq!(ui_get(port, "/app.js", &cookie).status, 200);
    assert_eq!(
        ui_get(port, &format!("/app.js?token={token}"), "").status,
        200
    );

    // Refused: no token, a wrong one of the same length, a wrong cookie,
    // the right cookie on a request another site's page made.
    assert_eq!(get(port, "/", &host).0, 401);
    assert_eq!(get(port, "/?token=wrong", &host).0, 401);
    let same_length = "A".repeat(token.len());
    assert_ne!(same_length, token);
    assert_eq!(get(port, &format!("/?token={same_length}"), &host).0, 401);
    assert_eq!(
        get(port, &format!("/app.js?token={same_length}"), &host).0,
        401
    );
    let (name, _) = cookie_pair(&set_cookie)
        .split_once('=')
        .map(|(n, v)| (n.to_owned(), v.to_owned()))
        .unwrap();
    let forged = format!("Cookie: {name}={same_length}\r\n");
    assert_eq!(ui_get(port, "/", &forged).status, 401);
    let cross = format!("{cookie}Sec-Fetch-Site: same-site\r\n");
    assert_eq!(ui_get(port, "/export.jsonl", &cross).status, 401);
    assert_eq!(ui_get(port, "/export.jsonl", &cookie).status, 200);
    // DNS rebinding: the right token through another name is refused.
    assert_eq!(
        get(
            port,
            &format!("/?token={token}"),
            &format!("evil.test:{port}")
        )
        .0,
        421
    );

    // The WebSocket from another origin is refused, token or not.
    let ws = format!("ws://127.0.0.1:{port}/ws?token={token}");
    let report = python(&[
        "session",
        &ws,
        "--origin",
        "http://evil.test",
        "--wait",
        "2",
    ]);
    assert_eq!(report["status"], 403, "{report}");
    let report = python(&[
        "session",
        &format!("ws://127.0.0.1:{port}/ws?token=nope"),
        "--origin",
        &format!("http://{host}"),
        "--wait",
        "2",
    ]);
    assert_eq!(report["status"], 401, "{report}");

    // From its own origin, with the cookie (as the page does): hello, the
    // history, its end.
    let cookie_header = format!("Cookie: {}", cookie_pair(&set_cookie));
    let report = python(&[
        "session",
        &format!("ws://127.0.0.1:{port}/ws"),
        "--header",
        &cookie_header,
        "--origin",
        &format!("http://{host}"),
        "--expect",
        "12",
        "--wait",
        "3",
        "--full",
    ]);
    let messages = ui_messages(&report);
    assert_eq!(messages[0]["type"], "hello", "{report}");
    assert_eq!(messages[0]["mode"], "offline");
    assert_eq!(messages[0]["actions"], false);
    let events: Vec<&Value> = messages.iter().filter(|m| m["type"] == "event").collect();
    assert!(
        events.iter().any(|m| m["event"]["event"] == "open"),
        "{report}"
    );
    assert!(
        messages.iter().any(|m| m["type"] == "history_end"),
        "{report}"
    );
}

#[test]
fn filters_are_answered_with_matches_or_a_column() {
    let dir = temp_dir("ui-filter");
    let record = record_file(&dir);
    let (_ui, url) = start_ui(&record);
    let (port, token) = port_and_token(&url);
    let ws = format!("ws://127.0.0.1:{port}/ws?token={token}");
    let origin = format!("http://127.0.0.1:{port}");
    let report = python(&[
        "session",
        &ws,
        "--origin",
        &origin,
        "--send",
        r#"{"op":"filter","expr":"json.type == \"price\""}"#,
        "--send",
        r#"{"op":"filter","expr":"dir = c2s"}"#,
        "--wait",
        "2",
        "--full",
    ]);
    let messages = ui_messages(&report);
    let answers: Vec<&Value> = messages.iter().filter(|m| m["type"] == "filter").collect();
    assert_eq!(answers.len(), 2, "{report}");
    assert_eq!(answers[0]["ok"], true);
    // The price message each way (sent, and echoed).
    assert_eq!(
        answers[0]["matches"].as_array().unwrap().len(),
        2,
        "{report}"
    );
    assert_eq!(answers[1]["ok"], false);
    assert_eq!(answers[1]["column"], 5, "{report}");

    // Exports: the same filter as a record file, and the session as HAR.
    let (status, body) = get(
        port,
        &format!("/export.jsonl?token={token}&filter=json.type+%3D%3D+%22price%22"),
        &format!("127.0.0.1:{port}"),
    );
    assert_eq!(status, 200);
    assert_eq!(body.lines().count(), 3, "a header and two events: {body}");
    let (status, body) = get(
        port,
        &format!("/export.har?token={token}"),
        &format!("127.0.0.1:{port}"),
    );
    assert_eq!(status, 200);
    let har: Value = serde_json::from_str(&body).unwrap();
    let messages = &har["log"]["entries"][0]["_webSocketMessages"];
    assert_eq!(messages[0]["type"], "send", "{har}");
    assert_eq!(messages[0]["data"], "hello", "{har}");
    assert_eq!(messages.as_array().unwrap().len(), 4, "{har}");
}

#[test]
fn actions_from_the_ui_reach_the_real_peer() {
    let (_server, upstream) = node_server(&[]);
    let dir = temp_dir("ui-live");
    let record = dir.join("record.jsonl");
    let (_proxy, line) = start_proxy(
        &[
            "--upstream",
            &upstream,
            "--ui",
            "--record",
            record.to_str().unwrap(),
        ],
        &[],
    );
    let proxied = format!("{}/", address_in(&line, "ws://"));
    let ui_url = ui_url_in(&line);
    let (port, token) = port_and_token(&ui_url);

    // A client through the proxy waits for what the UI will send it.
    let client = std::thread::spawn(move || {
        python(&["session", &proxied, "--send", "hello", "--wait", "10"])
    });
    record_until(&record, |events| {
        events.iter().any(|e| e["event"] == "message")
    });

    let ws = format!("ws://127.0.0.1:{port}/ws?token={token}");
    let origin = format!("http://127.0.0.1:{port}");
    let report = python(&[
        "session",
        &ws,
        "--origin",
        &origin,
        "--send",
        r#"{"op":"send","conn":"c1","to":"client","text":"from the ui"}"#,
        "--send",
        r#"{"op":"close","conn":"c1","to":"both","code":4001,"reason":"ui says bye"}"#,
        "--send",
        r#"{"op":"reset","conn":"c9"}"#,
        "--wait",
        "2",
        "--full",
    ]);
    let messages = ui_messages(&report);
    assert_eq!(messages[0]["actions"], true, "{report}");
    let actions: Vec<&Value> = messages.iter().filter(|m| m["type"] == "action").collect();
    assert_eq!(actions.len(), 3, "{report}");
    assert_eq!(actions[0]["ok"], true, "{report}");
    assert_eq!(actions[1]["ok"], true, "{report}");
    assert_eq!(actions[2]["ok"], false, "c9 does not exist: {report}");

    let client = client.join().unwrap();
    assert_eq!(texts(&client), ["hello", "from the ui"], "{client}");
    assert_eq!(client["closed"]["rcvd"]["code"], 4001, "{client}");
    assert_eq!(
        client["closed"]["rcvd"]["reason"], "ui says bye",
        "{client}"
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    let notes = loop {
        let events = record_until(&record, |events| {
            events.iter().any(|e| e["event"] == "closed")
        });
        let notes: Vec<String> = events
            .iter()
            .filter(|e| e["event"] == "note")
            .map(|e| e["text"].as_str().unwrap_or_default().to_owned())
            .collect();
        if notes.len() >= 2 || Instant::now() > deadline {
            break notes;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(
        notes
            .iter()
            .any(|n| n.contains("ui: sent text \"from the ui\" to the client")),
        "{notes:?}"
    );
    assert!(
        notes.iter().any(|n| n.contains("ui: sent close 4001")),
        "{notes:?}"
    );
}

fn empty_record(dir: &std::path::Path) -> std::path::PathBuf {
    let record = dir.join("empty.jsonl");
    std::fs::write(
        &record,
        "{\"format\":\"wscope-record\",\"version\":1,\"writer\":\"test\"}\n",
    )
    .unwrap();
    record
}

#[test]
fn a_non_loopback_ui_needs_an_explicit_flag_and_an_exact_origin() {
    let dir = temp_dir("ui-remote");
    let record = empty_record(&dir);
    let refused = |args: &[&str], why: &str| {
        let out = common::output_within(
            wscope().args(["ui", record.to_str().unwrap()]).args(args),
            Duration::from_secs(20),
        );
        assert!(
            matches!(out.status.code(), Some(1 | 2)),
            "a clear refusal: {out:?}"
        );
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains(why), "{stderr}");
    };
    refused(&["--listen", "0.0.0.0:0"], "--ui-allow-remote");
    // Origin equal to Host is no check: any client sets both.
    refused(
        &["--listen", "0.0.0.0:0", "--ui-allow-remote"],
        "--ui-allow-remote needs --ui-origin ORIGIN",
    );
    refused(
        &[
            "--listen",
            "0.0.0.0:0",
            "--ui-allow-remote",
            "--ui-origin",
            "http://ui.test/path",
        ],
        "no path",
    );

    let mut command = wscope();
    command
        .args(["ui", record.to_str().unwrap(), "--listen", "0.0.0.0:0"])
        .args(["--ui-allow-remote", "--ui-origin", "http://ui.test:8000"])
        .stderr(Stdio::piped());
    let (mut ui, line) = common::spawn_named(command, "wscope ui (remote)");
    let (port, token) = port_and_token(&ui_url_in(&line));
    // Its own origin's name is answered; another name is not.
    assert_eq!(
        get(port, &format!("/?token={token}"), "ui.test:8000").0,
        200
    );
    assert_eq!(
        get(port, &format!("/?token={token}"), "evil.test:8000").0,
        421
    );
    let ws = format!("ws://127.0.0.1:{port}/ws?token={token}");
    for (origin, status) in [
        ("http://evil.test", 403),
        (&format!("http://evil.test:{port}") as &str, 403),
    ] {
        let report = python(&["session", &ws, "--origin", origin, "--wait", "2"]);
        assert_eq!(report["status"], status, "{origin}: {report}");
    }
    let report = python(&[
        "session",
        &ws,
        "--origin",
        "http://ui.test:8000",
        "--expect",
        "1",
        "--wait",
        "3",
    ]);
    assert!(
        report["status"].is_null(),
        "the UI's own origin opens it: {report}"
    );

    let mut stderr = ui.child.stderr.take().unwrap();
    let _ = ui.child.kill();
    let _ = ui.child.wait();
    let mut out = String::new();
    // The process is gone: the read ends at once.
    std::io::Read::read_to_string(&mut stderr, &mut out).unwrap();
    assert!(
        out.contains("over plain HTTP")
            && out.contains("sees every message")
            && out.contains("http://ui.test:8000"),
        "the warning names the risk: {out}"
    );
}

/// `--open` gives the browser opener no token: a private file that sends
/// the browser on with a code good once.
#[test]
fn open_passes_no_token_on_a_command_line() {
    use std::os::unix::fs::PermissionsExt;
    let dir = temp_dir("ui-open");
    let record = empty_record(&dir);
    let bin = dir.join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    let seen = dir.join("opener");
    // A stand-in for xdg-open that keeps what a browser would get.
    let opener = bin.join("xdg-open");
    std::fs::write(
        &opener,
        format!(
            "#!/bin/sh\nstat -c '%a' \"$1\" \"$(dirname \"$1\")\" > {seen}.modes\ncat \"$1\" > {seen}.html\nprintf '%s\\n' \"$@\" > {seen}.tmp && mv {seen}.tmp {seen}.args\n",
            seen = seen.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&opener, std::fs::Permissions::from_mode(0o755)).unwrap();
    let path = format!("{}:{}", bin.display(), std::env::var("PATH").unwrap());
    let mut command = wscope();
    command
        .args(["ui", record.to_str().unwrap(), "--open"])
        .env("PATH", path)
        .env("XDG_RUNTIME_DIR", &dir);
    let (_ui, line) = common::spawn_named(command, "wscope ui --open");
    let (port, token) = port_and_token(&ui_url_in(&line));

    let args_file = seen.with_extension("args");
    let deadline = Instant::now() + Duration::from_secs(20);
    while !args_file.exists() {
        assert!(Instant::now() < deadline, "the opener ran");
        std::thread::sleep(Duration::from_millis(20));
    }
    let args = std::fs::read_to_string(&args_file).unwrap();
    assert!(
        !args.contains(&token),
        "no token in the opener's argv: {args}"
    );
    let hand_off = std::path::PathBuf::from(args.trim());
    assert!(hand_off.starts_with(&dir), "{args}");
    let modes = std::fs::read_to_string(seen.with_extension("modes")).unwrap();
    assert_eq!(
        modes.split_whitespace().collect::<Vec<_>>(),
        ["600", "700"],
        "{modes}"
    );
    let html = std::fs::read_to_string(seen.with_extension("html")).unwrap();
    assert!(!html.contains(&token), "{html}");
    let code = html
        .split("?once=")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .expect("the hand-off page names a code");

    let first = ui_get(port, &format!("/?once={code}"), "");
    assert_eq!(first.status, 200, "{}", first.head);
    let set_cookie = first.header("set-cookie").expect("a cookie").to_owned();
    let cookie = format!("Cookie: {}\r\n", cookie_pair(&set_cookie));
    assert_eq!(ui_get(port, "/", &cookie).status, 200);
    // Good once; its file is gone once used.
    assert_eq!(ui_get(port, &format!("/?once={code}"), "").status, 401);
    assert!(!hand_off.exists(), "{}", hand_off.display());
}

#[test]
fn serve_ui_shows_live_connections_and_acts_on_them() {
    let mut command = wscope();
    command.args([
        "serve",
        "--listen",
        "127.0.0.1:0",
        "--log-format",
        "off",
        "--ui",
    ]);
    let (_serve, line) = common::spawn_named(command, "wscope serve --ui");
    let echo = format!("{}/echo", address_in(&line, "ws://"));
    let ui_url = ui_url_in(&line);
    let (port, token) = port_and_token(&ui_url);
    let ws = format!("ws://127.0.0.1:{port}/ws?token={token}");
    let origin = format!("http://127.0.0.1:{port}");
    // A client that stays until the UI closes it.
    let client = std::thread::spawn(move || {
        python(&["session", &echo, "--send", "seen by the ui", "--wait", "10"])
    });
    // The UI's history shows the echo once it happened.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let report = python(&["session", &ws, "--origin", &origin, "--wait", "1", "--full"]);
        let messages = ui_messages(&report);
        assert_eq!(messages[0]["mode"], "live", "{report}");
        assert_eq!(messages[0]["actions"], true, "{report}");
        let echoed = messages
            .iter()
            .filter(|m| m["event"]["payload"]["text"] == "seen by the ui")
            .count();
        if echoed == 2 {
            break;
        }
        assert!(Instant::now() < deadline, "no echo in the UI: {report}");
    }
    let report = python(&[
        "session",
        &ws,
        "--origin",
        &origin,
        "--send",
        r#"{"op":"send","conn":"c1","to":"server","text":"nowhere"}"#,
        "--send",
        r#"{"op":"send","conn":"c1","to":"client","text":"from the ui"}"#,
        "--send",
        r#"{"op":"close","conn":"c1","code":4002,"reason":"served and closed"}"#,
        "--wait",
        "2",
        "--full",
    ]);
    let messages = ui_messages(&report);
    let actions: Vec<&Value> = messages.iter().filter(|m| m["type"] == "action").collect();
    assert_eq!(actions.len(), 3, "{report}");
    assert_eq!(actions[0]["ok"], false, "we are the server: {report}");
    assert!(
        actions[0]["error"]
            .as_str()
            .is_some_and(|e| e.contains("only the client")),
        "{report}"
    );
    assert_eq!(actions[1]["ok"], true, "{report}");
    assert_eq!(actions[2]["ok"], true, "{report}");
    let client = client.join().unwrap();
    assert_eq!(
        texts(&client),
        ["seen by the ui", "from the ui"],
        "{client}"
    );
    assert_eq!(client["closed"]["rcvd"]["code"], 4002, "{client}");
}

/// Runs tests/peers/ui.mjs (Chromium driving the page) and returns what
/// it saw; fails on any error in the page (a CSP violation included).
fn browser(url: &str, scenario: &str, extra: &[&str]) -> Value {
    let report = browser_report(url, scenario, extra);
    // The recorded markup calls alert(): a dialog means the page ran it.
    assert_eq!(report["dialogs"].as_u64().unwrap_or(0), 0, "{report}");
    assert_eq!(report["errors"], serde_json::json!([]), "{report}");
    report
}

/// What tests/peers/ui.mjs saw, errors in the page included, unchecked.
fn browser_report(url: &str, scenario: &str, extra: &[&str]) -> Value {
    assert!(
        std::path::Path::new("/usr/bin/chromium").exists(),
        "/usr/bin/chromium is missing: scripts/test.sh installs Debian's chromium package (as root)"
    );
    let shots = common::repo_root().join("reports").join("screenshots");
    std::fs::create_dir_all(&shots).unwrap();
    let out = common::node()
        .arg(common::peer_script("ui.mjs"))
        .args(["--url", url, "--scenario", scenario, "--shots"])
        .arg(&shots)
        .args(extra)
        .timed_output()
        .expect("node runs");
    common::parse_report(&format!("chromium ({scenario})"), &out)
}

/// A record with a JSON text message, a binary message and markup.
fn rich_record(dir: &std::path::Path) -> std::path::PathBuf {
    let (_server, upstream) = node_server(&[]);
    let mut lines = Vec::new();
    for (i, args) in [
        vec![
            "--send",
            r#"{"type":"order","items":[{"id":1,"qty":2}],"user":{"name":"alice"}}"#,
            "--send",
            "<img src=x onerror=alert(1)>",
        ],
        vec!["--binary", "--send", "binary payload \u{1}\u{2}"],
    ]
    .into_iter()
    .enumerate()
    {
        let part = dir.join(format!("part{i}.jsonl"));
        let out = wscope()
            .args(["connect", &format!("{upstream}/"), "--record"])
            .arg(&part)
            .args(args)
            .args(["--wait", "300ms"])
            .stdin(Stdio::null())
            .timed_output()
            .unwrap();
        assert!(out.status.success(), "{out:?}");
        let text = std::fs::read_to_string(&part).unwrap();
        // One header line for the whole file; the second connection's
        // events are renamed so the ids stay distinct.
        let skip = usize::from(i > 0);
        for line in text.lines().skip(skip) {
            lines.push(if i > 0 {
                line.replace("\"conn\":\"c1\"", "\"conn\":\"c2\"")
            } else {
                line.to_owned()
            });
        }
    }
    let record = dir.join("rich.jsonl");
    std::fs::write(&record, lines.join("\n") + "\n").unwrap();
    record
}

#[test]
fn chromium_shows_a_recording_filters_it_and_never_runs_its_markup() {
    let dir = temp_dir("ui-chromium");
    let record = rich_record(&dir);
    let (_ui, url) = start_ui(&record);

    let offline = browser(&url, "offline", &[]);
    assert_eq!(
        offline["connections"].as_array().map(Vec::len),
        Some(2),
        "{offline}"
    );
    assert_eq!(offline["json_tree"], true, "{offline}");
    assert!(
        offline["json_keys"].to_string().contains("user"),
        "the JSON tree shows the payload's keys: {offline}"
    );
    assert_eq!(offline["hexdump"], true, "{offline}");
    assert!(
        offline["hexdump_text"]
            .as_str()
            .unwrap_or_default()
            .contains("62 69 6e"),
        "the hex dump shows the bytes of \"bin\": {offline}"
    );
    // The bad filter's error is shown where the server said it is.
    assert_eq!(offline["filter_error"]["column"], 11, "{offline}");
    let shown = offline["filter_error"]["shown"]
        .as_str()
        .unwrap_or_default();
    assert!(shown.contains("txt is not an opcode"), "{offline}");
    let rows = offline["rows"].as_u64().unwrap();
    let filtered = offline["filtered_rows"].as_u64().unwrap();
    assert!(
        filtered >= 1 && filtered < rows,
        "opcode == binary narrows {rows} rows to {filtered}: {offline}"
    );

    // The payload is `<img src=x onerror=alert(1)>`: rendered as markup, it
    // opens a dialog (script_ran) or, CSP blocking it, reports a violation.
    // Checked first so a page that runs markup fails here, by name.
    let xss = browser_report(&url, "xss", &["--needle", "<img src=x onerror="]);
    assert_eq!(xss["timed_out"], Value::Null, "{xss}");
    assert_eq!(xss["script_ran"], false, "the payload ran: {xss}");
    assert_eq!(xss["csp_violations"], serde_json::json!([]), "{xss}");
    assert_eq!(xss["img_ever_added"], 0, "{xss}");
    assert_eq!(xss["img_in_page"], 0, "{xss}");
    assert_eq!(xss["found"], true, "{xss}");
    assert_eq!(xss["detail_shows_literal"], true, "{xss}");
    assert_eq!(xss["errors"], serde_json::json!([]), "{xss}");

    // Cross-site WebSocket hijacking: another origin's page, with the
    // token, cannot open the UI's socket; the UI's own page can.
    let hijack = browser(&url, "hijack", &[]);
    assert_eq!(hijack["opened"], false, "{hijack}");
    assert_eq!(hijack["fetch_readable"], false, "{hijack}");
    assert_eq!(hijack["control_opened"], true, "{hijack}");
}

#[test]
fn chromium_acts_on_a_live_connection_through_the_proxy() {
    let (_server, upstream) = node_server(&[]);
    let (_proxy, line) = start_proxy(&["--upstream", &upstream, "--ui"], &[]);
    let proxied = format!("{}/", address_in(&line, "ws://"));
    let ui_url = ui_url_in(&line);
    let client = std::thread::spawn(move || {
        python(&[
            "session",
            &proxied,
            "--send",
            "hi from python",
            "--wait",
            "20",
        ])
    });
    let live = browser(
        &ui_url,
        "live",
        &[
            "--to",
            "server",
            "--text",
            "hello from the ui",
            "--timeout",
            "15000",
        ],
    );
    assert_eq!(live["actions_enabled"], true, "{live}");
    assert_eq!(live["send_ok"], true, "{live}");
    assert_eq!(live["close_ok"], true, "{live}");
    let state = live["conn_state"].as_str().unwrap_or_default();
    assert!(state.contains("4001"), "{live}");

    // The real peer: the server echoed what the UI sent, then the close.
    let client = client.join().unwrap();
    assert_eq!(
        texts(&client),
        ["hi from python", "hello from the ui"],
        "{client}"
    );
    assert_eq!(client["closed"]["rcvd"]["code"], 4001, "{client}");
    assert_eq!(client["closed"]["rcvd"]["reason"], "from ui", "{client}");
}

/// The history is bounded by bytes; `wscope ui` on a larger file says
/// what it kept, and the page gets exactly that.
#[test]
fn ui_history_is_bounded_by_bytes_and_says_what_it_kept() {
    let dir = temp_dir("ui-history");
    let record = record_file(&dir);
    let total = std::fs::read_to_string(&record).unwrap().lines().count() - 1;
    let mut command = wscope();
    command
        .args(["ui", record.to_str().unwrap(), "--ui-history", "1K"])
        .stderr(Stdio::piped());
    let (mut ui, line) = common::spawn_named(command, "wscope ui --ui-history 1K");
    let (port, token) = port_and_token(&ui_url_in(&line));
    let ws = format!("ws://127.0.0.1:{port}/ws?token={token}");
    let origin = format!("http://127.0.0.1:{port}");
    let report = python(&["session", &ws, "--origin", &origin, "--wait", "2", "--full"]);
    let messages = ui_messages(&report);
    let end = messages
        .iter()
        .find(|m| m["type"] == "history_end")
        .unwrap_or_else(|| panic!("{report}"));
    let kept = end["count"].as_u64().unwrap() as usize;
    assert!(kept >= 1 && kept < total, "kept {kept} of {total}");

    let mut stderr = ui.child.stderr.take().unwrap();
    let _ = ui.child.kill();
    let _ = ui.child.wait();
    let mut said = String::new();
    // The process is gone: the read ends at once.
    std::io::Read::read_to_string(&mut stderr, &mut said).unwrap();
    assert!(
        said.contains(&format!("keeps the last {kept} events"))
            && said.contains(&format!("the first {} are not shown", total - kept)),
        "{said}"
    );
}
