//! `wscope proxy` between real peers: Python `websockets` and Node.js `ws`
//! clients and servers, `wscope serve` as a misbehaving server. What the
//! peers report must be what they would report without the proxy, and the
//! record file must hold what crossed.

mod common;

use common::TimedOutput;

use std::io::{BufRead, Read, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{
    address_in, host_port, node, node_server, node_ws, peer_script, python, record_until,
    start_proxy, start_server, temp_dir, texts, venv_bin, wscope,
};
use serde_json::Value;

fn count(events: &[Value], kind: &str) -> usize {
    events.iter().filter(|e| e["event"] == kind).count()
}

#[test]
fn reverse_proxy_is_invisible_to_both_ends() {
    let (_server, upstream) = start_server(&[]);
    let dir = temp_dir("proxy-reverse");
    let record = dir.join("proxy.jsonl");
    let (_proxy, line) = start_proxy(
        &[
            "--upstream",
            &upstream,
            "--record",
            record.to_str().unwrap(),
        ],
        &[],
    );
    let url = address_in(&line, "ws://");

    // Echo with compression negotiated end to end.
    let report = python(&[
        "session",
        &format!("{url}/echo"),
        "--send",
        "hello through the proxy",
        "--send",
        "κόσμε",
        "--expect",
        "2",
        "--close",
    ]);
    assert_eq!(
        texts(&report),
        ["hello through the proxy", "κόσμε"],
        "{report}"
    );
    assert_eq!(report["closed"]["code"], 1000, "{report}");

    // Fragmentation survives: the client's frame log shows the server's frames.
    let report = python(&[
        "session",
        &format!("{url}/fragment/3"),
        "--send",
        "abcdefghijkl",
        "--expect",
        "1",
        "--close",
        "--no-compress",
    ]);
    let frames: Vec<&str> = report["frames"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f.as_str().unwrap())
        .collect();
    assert_eq!(frames[..3], ["TEXT", "CONT", "CONT"], "{report}");

    // Subprotocols are negotiated end to end.
    let report = python(&[
        "session",
        &format!("{url}/subprotocol/chat.v2"),
        "--subprotocol",
        "chat.v2",
        "--close",
        "--wait",
        "0.1",
    ]);
    assert_eq!(report["subprotocol"], "chat.v2", "{report}");

    // Close codes and reasons, and a drop, reach the client as they were.
    let report = python(&[
        "session",
        &format!("{url}/close/4000?reason=bye"),
        "--send",
        "x",
    ]);
    assert_eq!(report["closed"]["rcvd"]["code"], 4000, "{report}");
    assert_eq!(report["closed"]["rcvd"]["reason"], "bye", "{report}");
    let report = python(&["session", &format!("{url}/drop"), "--send", "x"]);
    assert_eq!(report["closed"]["code"], 1006, "{report}");

    // A refusal comes back with the upstream's status and body.
    let report = python(&["session", &format!("{url}/reject/403?body=not%20you")]);
    assert_eq!(report["status"], 403, "{report}");
    assert_eq!(report["body"], "not you\n", "{report}");

    // Node's client sees the same.
    let report = node_ws(&[
        &format!("{url}/echo"),
        "--send",
        "from node",
        "--expect",
        "1",
    ]);
    assert_eq!(texts(&report), ["from node"], "{report}");
    assert_eq!(report["extensions"], "permessage-deflate", "{report}");

    let events = record_until(&record, |e| {
        count(e, "closed") >= 6 && count(e, "handshake_failed") >= 1
    });
    let first_open = events.iter().find(|e| e["event"] == "open").unwrap();
    assert_eq!(first_open["request"]["line"], "GET /echo HTTP/1.1");
    assert_eq!(
        first_open["response"]["line"],
        "HTTP/1.1 101 Switching Protocols"
    );
    assert_eq!(
        first_open["url"],
        format!("{upstream}/echo"),
        "{first_open}"
    );
    assert!(
        events.iter().any(|e| e["event"] == "open"
            && e["url"]
                .as_str()
                .unwrap()
                .ends_with("/close/4000?reason=bye")),
        "the query goes upstream"
    );
    let conn = first_open["conn"].clone();
    let mut messages: Vec<(&str, &str, bool)> = events
        .iter()
        .filter(|e| e["event"] == "message" && e["conn"] == conn)
        .map(|e| {
            (
                e["dir"].as_str().unwrap(),
                e["payload"]["text"].as_str().unwrap(),
                e["compressed"].as_bool().unwrap_or(false),
            )
        })
        .collect();
    messages.sort();
    assert_eq!(
        messages,
        [
            ("c2s", "hello through the proxy", true),
            ("c2s", "κόσμε", true),
            ("s2c", "hello through the proxy", true),
            ("s2c", "κόσμε", true),
        ]
    );
    let closed: Vec<&Value> = events.iter().filter(|e| e["event"] == "closed").collect();
    let by_code = |code: u64| closed.iter().find(|c| c["code"] == code).copied();
    let dropped = by_code(1006).expect("the drop is recorded");
    assert_eq!(dropped["by"], "server", "{dropped}");
    assert_eq!(dropped["clean"], false);
    let closed_4000 = by_code(4000).expect("the 4000 close is recorded");
    assert_eq!(closed_4000["by"], "server");
    assert_eq!(closed_4000["clean"], true);
    let refused = events
        .iter()
        .find(|e| e["event"] == "handshake_failed")
        .unwrap();
    assert_eq!(refused["status"], 403);
    assert_eq!(refused["body"], "not you");
}

#[test]
fn reverse_proxy_in_front_of_node_ws_with_compression() {
    let (_node, upstream) = node_server(&[]);
    let dir = temp_dir("proxy-node");
    let record = dir.join("proxy.jsonl");
    let (_proxy, line) = start_proxy(
        &[
            "--upstream",
            &upstream,
            "--record",
            record.to_str().unwrap(),
            "--frames",
        ],
        &[],
    );
    let url = address_in(&line, "ws://");
    let big = "compressible ".repeat(10_000);
    let report = python(&[
        "session",
        &format!("{url}/"),
        "--send",
        "one",
        "--send",
        &big,
        "--expect",
        "2",
        "--close",
    ]);
    assert_eq!(report["received"][0]["data"], "one", "{report}");
    assert_eq!(report["received"][1]["len"], big.len(), "{report}");
    let events = record_until(&record, |e| count(e, "closed") >= 1);
    let from_node: Vec<&Value> = events
        .iter()
        .filter(|e| e["event"] == "message" && e["dir"] == "s2c")
        .collect();
    assert_eq!(from_node.len(), 2, "{events:?}");
    assert_eq!(from_node[0]["payload"]["text"], "one");
    assert_eq!(from_node[0]["compressed"], true);
    assert_eq!(from_node[1]["payload"]["len"], big.len());
    assert!(
        from_node[1]["payload"]["text"]
            .as_str()
            .unwrap()
            .starts_with("compressible compressible"),
        "decompressed for display"
    );
    // --frames: the frames as on the wire (compressed, RSV1 set).
    let frame = events
        .iter()
        .find(|e| e["event"] == "frame" && e["dir"] == "s2c" && e["opcode"] == "text")
        .expect("a data frame from node");
    assert_eq!(frame["rsv1"], true, "{frame}");
}

#[test]
fn forward_proxy_tunnels_and_intercepts_with_its_own_ca() {
    let data = temp_dir("proxy-forward");
    let env = [("XDG_DATA_HOME", data.as_path())];
    let (_plain, upstream) = start_server(&[]);

    // Without a CA: CONNECT tunnels pass through blind, and still work.
    let (_blind, line) = start_proxy(&["--forward"], &env);
    let proxy_url = address_in(&line, "http://");
    assert!(line.contains("(forward proxy)"), "{line}");
    let report = python(&[
        "session",
        &format!("{upstream}/echo"),
        "--send",
        "blind",
        "--expect",
        "1",
        "--close",
        "--proxy",
        &proxy_url,
    ]);
    assert_eq!(texts(&report), ["blind"], "{report}");

    // `wscope ca` makes the CA, private key 0600.
    let out = wscope()
        .arg("ca")
        .env("XDG_DATA_HOME", &data)
        .timed_output()
        .unwrap();
    assert!(out.status.success());
    let ca = data.join("wscope/ca/wscope-ca.pem");
    let key = data.join("wscope/ca/wscope-ca-key.pem");
    assert!(String::from_utf8_lossy(&out.stdout).contains(ca.to_str().unwrap()));
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(&key).unwrap().permissions().mode() & 0o777,
        0o600
    );
    let pem = wscope()
        .args(["ca", "--pem"])
        .env("XDG_DATA_HOME", &data)
        .timed_output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&pem.stdout),
        std::fs::read_to_string(&ca).unwrap()
    );

    // A wss:// server with its own self-signed certificate.
    let tls_server = wscope()
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--tls-self-signed",
            "--log-format",
            "off",
        ])
        .env("XDG_DATA_HOME", &data)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let (_tls_server, line) = common::named_address(tls_server, "wscope serve --tls");
    let wss = address_in(&line, "wss://").replace("127.0.0.1", "localhost");
    let server_cert = data.join("wscope/self-signed/localhost.pem");

    // With the CA, CONNECT tunnels are intercepted and recorded.
    let record = data.join("forward.jsonl");
    let (_proxy, line) = start_proxy(
        &[
            "--forward",
            "--upstream-ca",
            server_cert.to_str().unwrap(),
            "--record",
            record.to_str().unwrap(),
        ],
        &env,
    );
    assert!(line.contains("intercepting TLS"), "{line}");
    let proxy_url = address_in(&line, "http://");
    let report = python(&[
        "session",
        &format!("{wss}/echo"),
        "--send",
        "secret over wss",
        "--expect",
        "1",
        "--close",
        "--proxy",
        &proxy_url,
        "--cafile",
        ca.to_str().unwrap(),
    ]);
    assert_eq!(texts(&report), ["secret over wss"], "{report}");
    let report = python(&[
        "session",
        &format!("{upstream}/echo"),
        "--send",
        "plain in a tunnel",
        "--expect",
        "1",
        "--close",
        "--proxy",
        &proxy_url,
    ]);
    assert_eq!(texts(&report), ["plain in a tunnel"], "{report}");
    // A client that does not trust the CA refuses the certificate.
    let report = python(&[
        "session",
        &format!("{wss}/echo"),
        "--proxy",
        &proxy_url,
        "--cafile",
        server_cert.to_str().unwrap(),
    ]);
    assert_eq!(report["opened"], false, "{report}");

    let events = record_until(&record, |e| count(e, "closed") >= 2);
    let texts_seen: Vec<&str> = events
        .iter()
        .filter(|e| e["event"] == "message" && e["dir"] == "s2c")
        .filter_map(|e| e["payload"]["text"].as_str())
        .collect();
    assert!(texts_seen.contains(&"secret over wss"), "{texts_seen:?}");
    assert!(texts_seen.contains(&"plain in a tunnel"), "{texts_seen:?}");
    let opened: Vec<&str> = events
        .iter()
        .filter(|e| e["event"] == "open")
        .filter_map(|e| e["url"].as_str())
        .collect();
    assert!(
        opened.iter().any(|u| u.starts_with("wss://localhost:")),
        "{opened:?}"
    );
}

#[test]
fn forward_proxy_handles_absolute_uris_and_passes_plain_http_through() {
    let (_server, upstream) = start_server(&[]);
    let (_proxy, line) = start_proxy(&["--forward"], &[]);
    let proxy = address_in(&line, "http://");
    let authority = host_port(&upstream).to_owned();

    // An upgrade with an absolute URI, the way a plain-HTTP proxy client
    // sends it.
    let mut tcp = TcpStream::connect(proxy.trim_start_matches("http://")).unwrap();
    tcp.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(
        tcp,
        "GET http://{authority}/echo HTTP/1.1\r\nHost: {authority}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\nProxy-Connection: keep-alive\r\n\r\n"
    )
    .unwrap();
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        tcp.read_exact(&mut byte).unwrap();
        head.push(byte[0]);
    }
    let head = String::from_utf8_lossy(&head);
    assert!(head.starts_with("HTTP/1.1 101"), "{head}");
    assert!(head.contains("s3pPLMBiTxaQ9kYGzzhZRbK+xOo="), "{head}");
    // A masked "hi", echoed back unmasked.
    tcp.write_all(&[0x81, 0x82, 1, 2, 3, 4, b'h' ^ 1, b'i' ^ 2])
        .unwrap();
    let mut echo = [0u8; 4];
    tcp.read_exact(&mut echo).unwrap();
    assert_eq!(echo, [0x81, 0x02, b'h', b'i']);

    // A plain HTTP request through the proxy gets the origin's answer.
    let script = format!(
        "import urllib.request, urllib.error\n\
         opener = urllib.request.build_opener(urllib.request.ProxyHandler({{'http': '{proxy}'}}))\n\
         try:\n    opener.open('http://{authority}/echo', timeout=10)\n\
         except urllib.error.HTTPError as e:\n    print(e.code, e.read().decode())\n"
    );
    let out = Command::new(venv_bin("python"))
        .args(["-c", &script])
        .timed_output()
        .unwrap();
    let answer = String::from_utf8_lossy(&out.stdout);
    assert!(
        answer.starts_with("426"),
        "{answer}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(answer.contains("This is wscope serve"), "{answer}");
}

/// Open file descriptors of a process.
fn fds(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .count()
}

/// Waits until the proxy's descriptors come back to `expected`.
fn settle_fds(pid: u32, expected: usize) -> usize {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let now = fds(pid);
        if now <= expected || Instant::now() > deadline {
            return now;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn faults_on_either_side_leave_the_proxy_up_and_recorded() {
    let dir = temp_dir("proxy-faults");
    let record = dir.join("faults.jsonl");
    let upstream_server = wscope()
        .args(["serve", "--listen", "127.0.0.1:0", "--log-format", "off"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let (mut upstream_server, line) = common::named_address(upstream_server, "wscope serve");
    let upstream = address_in(&line, "ws://");
    let (proxy, line) = start_proxy(
        &[
            "--upstream",
            &upstream,
            "--record",
            record.to_str().unwrap(),
            "--handshake-timeout",
            "1s",
        ],
        &[],
    );
    let url = address_in(&line, "ws://");
    let pid = proxy.child.id();
    // A first connection, so lazily made things exist before counting.
    let report = python(&[
        "session",
        &format!("{url}/echo"),
        "--send",
        "warm",
        "--expect",
        "1",
        "--close",
    ]);
    assert_eq!(texts(&report), ["warm"]);
    let baseline = settle_fds(pid, 0);

    // A client that never finishes its request: dropped after the timeout.
    let mut half = TcpStream::connect(url.trim_start_matches("ws://")).unwrap();
    half.write_all(b"GET /echo HTTP/1.1\r\nHost: x\r\n")
        .unwrap();
    half.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut rest = Vec::new();
    let _ = half.read_to_end(&mut rest);

    // A client that resets its TCP connection in the middle of a session.
    let reset_script = format!(
        "import asyncio, socket, struct\n\
         from websockets.asyncio.client import connect\n\
         async def main():\n\
         \x20   ws = await connect('{url}/echo', compression=None)\n\
         \x20   await ws.send('before the reset')\n\
         \x20   echo = await ws.recv()\n\
         \x20   if echo != 'before the reset':\n\
         \x20       raise SystemExit(f'echoed {{echo!r}}')\n\
         \x20   sock = ws.transport.get_extra_info('socket')\n\
         \x20   sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack('ii', 1, 0))\n\
         \x20   ws.transport.abort()\n\
         asyncio.run(main())\n"
    );
    let out = Command::new(venv_bin("python"))
        .args(["-c", &reset_script])
        .timed_output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // The upstream dies in the middle of a message: a client waiting on
    // /hang gets the drop (1006), not a made-up close.
    let waiting = Command::new(venv_bin("python"))
        .arg(peer_script("serve_client.py"))
        .args([
            "session",
            &format!("{url}/hang"),
            "--send",
            "anyone?",
            "--wait",
            "10",
        ])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    record_until(&record, |e| {
        e.iter().any(|ev| {
            ev["event"] == "open" && ev["url"].as_str().is_some_and(|u| u.ends_with("/hang"))
        })
    });
    upstream_server.child.kill().unwrap();
    upstream_server.child.wait().unwrap();
    let report = common::parse_report(
        "python",
        &common::wait_output(waiting, Duration::from_secs(60)),
    );
    assert_eq!(report["closed"]["code"], 1006, "{report}");

    // The proxy is still up: with the upstream gone, clients get a 502.
    let report = python(&["session", &format!("{url}/echo")]);
    assert_eq!(report["status"], 502, "{report}");
    assert!(
        report["body"].as_str().unwrap().contains("upstream"),
        "{report}"
    );

    let events = record_until(&record, |e| {
        count(e, "closed") >= 3 && count(e, "handshake_failed") >= 2
    });
    let reasons: Vec<&str> = events
        .iter()
        .filter(|e| e["event"] == "handshake_failed")
        .filter_map(|e| e["diagnosis"].as_str())
        .collect();
    assert!(
        reasons.iter().any(|r| r.contains("no complete request")),
        "{reasons:?}"
    );
    assert!(
        reasons
            .iter()
            .any(|r| r.contains("cannot connect to the upstream")),
        "{reasons:?}"
    );
    let closed: Vec<&Value> = events.iter().filter(|e| e["event"] == "closed").collect();
    assert!(
        closed
            .iter()
            .any(|c| c["by"] == "client" && c["code"] == 1006),
        "the reset client: {closed:?}"
    );
    assert!(
        closed
            .iter()
            .any(|c| c["by"] == "server" && c["code"] == 1006),
        "the dead upstream: {closed:?}"
    );
    let after = settle_fds(pid, baseline);
    assert!(
        after <= baseline,
        "file descriptors: {baseline} before, {after} after"
    );
    drop(proxy);
}

#[test]
fn chromium_through_the_forward_proxy_with_tls_interception() {
    assert!(
        std::path::Path::new("/usr/bin/chromium").exists(),
        "/usr/bin/chromium is missing: scripts/test.sh installs Debian's chromium package (as root)"
    );
    let data = temp_dir("proxy-browser");
    let env = [("XDG_DATA_HOME", data.as_path())];
    // wscope's CA, and a localhost certificate for the page's own server
    // (the one `serve --tls-self-signed` makes).
    assert!(
        wscope()
            .arg("ca")
            .env("XDG_DATA_HOME", &data)
            .timed_output()
            .unwrap()
            .status
            .success()
    );
    let maker = wscope()
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--tls-self-signed",
            "--log-format",
            "off",
        ])
        .env("XDG_DATA_HOME", &data)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // Dropped (killed) once it has named its address: the CA exists then.
    drop(common::named_address(maker, "wscope serve making the CA"));
    let cert = data.join("wscope/self-signed/localhost.pem");
    let key = data.join("wscope/self-signed/localhost-key.pem");
    let ca = data.join("wscope/ca/wscope-ca.pem");

    let record = data.join("browser.jsonl");
    let (_proxy, line) = start_proxy(
        &[
            "--forward",
            "--upstream-ca",
            cert.to_str().unwrap(),
            "--record",
            record.to_str().unwrap(),
        ],
        &env,
    );
    let proxy_url = address_in(&line, "http://");
    let shots = common::repo_root().join("reports").join("screenshots");
    std::fs::create_dir_all(&shots).unwrap();
    let out = node()
        .arg(peer_script("browser.mjs"))
        .args(["--proxy", &proxy_url])
        .args([
            "--cert",
            cert.to_str().unwrap(),
            "--key",
            key.to_str().unwrap(),
        ])
        .args(["--ca", ca.to_str().unwrap()])
        .args([
            "--screenshot",
            shots.join("proxy-browser.png").to_str().unwrap(),
        ])
        .timed_output()
        .unwrap();
    let report = common::parse_report("chromium", &out);
    assert_eq!(report["shown"], "echo: hello from chromium", "{report}");
    assert_eq!(report["state"], "closed 1000", "{report}");

    let events = record_until(&record, |e| count(e, "closed") >= 1);
    let open = events
        .iter()
        .find(|e| e["event"] == "open")
        .expect("the WebSocket is in the record");
    assert!(
        open["url"]
            .as_str()
            .unwrap()
            .starts_with("wss://localhost:"),
        "{open}"
    );
    assert_eq!(open["subprotocol"], "chat.v1", "{open}");
    let agent = open["request"]["headers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|h| h[0].as_str().unwrap().eq_ignore_ascii_case("user-agent"))
        .map(|h| h[1].as_str().unwrap().to_owned())
        .unwrap_or_default();
    assert!(
        agent.contains("Chrome"),
        "the browser's own request: {agent}"
    );
    let messages: Vec<(&str, &str)> = events
        .iter()
        .filter(|e| e["event"] == "message")
        .map(|e| {
            (
                e["dir"].as_str().unwrap(),
                e["payload"]["text"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        messages,
        [
            ("c2s", "hello from chromium"),
            ("s2c", "echo: hello from chromium")
        ]
    );
    let closed = events.iter().find(|e| e["event"] == "closed").unwrap();
    assert_eq!(closed["code"], 1000);
    assert_eq!(closed["by"], "client");
    assert_eq!(closed["reason"], "page done");
}

#[test]
fn the_live_view_shows_a_preview_of_each_large_message_on_one_line() {
    let (_server, upstream) = start_server(&[]);
    let child = wscope()
        .args(["proxy", "--listen", "127.0.0.1:0", "--upstream", &upstream])
        // What a terminal 120 columns wide gets (stdout is a pipe here).
        .args(["--preview-width", "120"])
        .stdout(Stdio::piped())
        .spawn()
        .expect("wscope proxy starts");
    // Stopped when the test ends, passed or failed.
    let (mut proxy, first) = common::named_address(child, "wscope proxy");
    let out = proxy.stdout.take().expect("the rest of its stdout");
    let url = address_in(&first, "ws://");
    let big: String = "0123456789abcdef".repeat(4096);
    let report = python(&[
        "session",
        &format!("{url}/echo"),
        "--send",
        &big,
        "--expect",
        "1",
        "--close",
    ]);
    let echoed = texts(&report);
    assert_eq!(echoed.len(), 1, "{report}");
    assert!(echoed[0].starts_with("0123456789abcdef"), "{report}");
    // Both directions, each one line: kind, size, the start of the message.
    let lines = common::within(
        "two preview lines",
        Duration::from_secs(30),
        &mut proxy.child,
        move || {
            let mut previews = Vec::new();
            for line in out.lines().map_while(Result::ok) {
                if line.contains(" text 65536 B ") {
                    previews.push(line);
                    if previews.len() == 2 {
                        break;
                    }
                }
            }
            previews
        },
    );
    assert_eq!(lines.len(), 2, "{lines:?}");
    for (line, marker) in lines.iter().zip(["c1 > ", "c1 < "]) {
        assert!(
            line.starts_with(&format!("{marker}text 65536 B 0123456789abcdef0123")),
            "{line:.400}"
        );
        assert!(line.ends_with('…'), "{line:.400}");
        assert_eq!(line.chars().count(), 120, "{line:.400}");
    }
}

/// CONNECT is answered only once the upstream is reached: a closed port
/// gets 502 with the reason (not "200 established", then nothing), and an
/// event says so.
#[test]
fn connect_to_a_closed_port_is_answered_502_with_the_reason() {
    let dir = temp_dir("proxy-connect-502");
    let record = dir.join("events.jsonl");
    let (proxy, line) = start_proxy(
        &[
            "--forward",
            "--no-intercept",
            "--record",
            record.to_str().unwrap(),
            "--metrics",
            "127.0.0.1:0",
        ],
        &[],
    );
    let proxy_port: u16 = host_port(&address_in(&line, "http://"))
        .rsplit_once(':')
        .unwrap()
        .1
        .parse()
        .unwrap();
    // A port that was just free: nothing listens there.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = closed.local_addr().unwrap().port();
    drop(closed);

    let answer = common::http_request(
        proxy_port,
        &format!("CONNECT 127.0.0.1:{port} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n"),
    );
    assert_eq!(answer.status, 502, "{}\n{}", answer.head, answer.body);
    assert!(
        answer
            .body
            .contains(&format!("cannot connect to 127.0.0.1:{port}")),
        "{}",
        answer.body
    );
    let events = record_until(&record, |e| count(e, "handshake_failed") >= 1);
    let failed = events
        .iter()
        .find(|e| e["event"] == "handshake_failed")
        .unwrap_or_else(|| panic!("an event for the refused CONNECT: {events:?}"));
    assert_eq!(failed["status"], 502, "{failed}");
    assert!(
        failed["diagnosis"]
            .as_str()
            .unwrap_or_default()
            .contains("nothing listens there"),
        "{failed}"
    );
    assert_eq!(failed["upstream_unreachable"], true, "{failed}");
    // The metrics learn it from that event, like everything else they count.
    let metrics = common::metrics::metrics_url(&line);
    let scraped = common::metrics::scrape_until(&metrics, |s| {
        s["wscope_upstream_connect_failures_total{}"] == 1.0
    });
    assert_eq!(
        scraped["samples"]["wscope_upstream_connect_failures_total{}"], 1.0,
        "{scraped}"
    );
    assert_eq!(
        scraped["samples"]["wscope_handshake_rejections_total{status=502}"], 1.0,
        "{scraped}"
    );
    drop(proxy);
}

/// A forward proxy on a non-loopback address is an open proxy: it says so.
#[test]
fn a_forward_proxy_beyond_loopback_warns_that_it_is_open() {
    let stderr_of = |listen: &str| {
        let mut command = wscope();
        command
            .args(["proxy", "--forward", "--quiet", "--listen", listen])
            .stderr(Stdio::piped());
        let (mut proxy, line) = common::spawn_named(command, "wscope proxy --forward");
        assert!(line.contains("forward proxy"), "{line}");
        let mut stderr = proxy.child.stderr.take().unwrap();
        let _ = proxy.child.kill();
        let _ = proxy.child.wait();
        let mut text = String::new();
        // The process is gone: the read ends at once.
        stderr.read_to_string(&mut text).unwrap();
        text
    };
    let open = stderr_of("0.0.0.0:0");
    assert!(
        open.contains("it is an open proxy") && open.contains("private services"),
        "{open}"
    );
    let local = stderr_of("127.0.0.1:0");
    assert!(!local.contains("open proxy"), "{local}");
}

#[test]
fn max_connections_refuses_the_one_over_the_limit() {
    let (_server, upstream) = start_server(&[]);
    let (_proxy, line) = start_proxy(&["--upstream", &upstream, "--max-connections", "1"], &[]);
    let proxied = address_in(&line, "ws://");
    let addr = host_port(&proxied).to_owned();
    let mut held = TcpStream::connect(&addr).unwrap();
    held.set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    write!(
        held,
        "GET /echo HTTP/1.1\r\nHost: {addr}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
    )
    .unwrap();
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        held.read_exact(&mut byte)
            .expect("the proxy answers within 20 s");
        head.push(byte[0]);
    }
    assert!(
        head.starts_with(b"HTTP/1.1 101"),
        "{}",
        String::from_utf8_lossy(&head)
    );
    let refused = python(&["session", &format!("{proxied}/echo"), "--wait", "2"]);
    assert_eq!(refused["status"], 503, "{refused}");
}
