//! `wscope doctor` against real endpoints on 127.0.0.1, each with one
//! fault: `wscope serve`'s misbehaving paths, a Python `websockets` server
//! with an origin allow-list and TLS from a private CA (trustme), and
//! nginx (Debian's) started here with its own config in front of `wscope
//! serve`. Each fault must be named, and be the only problem.

mod common;

use common::TimedOutput;

use std::io::Write;
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use common::{Running, python_server, start_server, system_tool, temp_dir, wscope};

/// `wscope doctor`, with no proxy from the test's own environment.
fn doctor_command() -> Command {
    let mut command = wscope();
    command.arg("doctor");
    for name in ["http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY"] {
        command.env_remove(name);
    }
    command
}

/// Runs `wscope doctor --json ARGS`; returns the exit status and the
/// findings (`--compare`'s difference lines left out).
fn doctor(args: &[&str]) -> (i32, Vec<Value>) {
    let out = doctor_command()
        .arg("--json")
        .args(args)
        .timed_output()
        .expect("wscope doctor runs");
    let code = out.status.code().expect("exited, not killed");
    let findings = json_lines(&out.stdout)
        .into_iter()
        .filter(|line| line.get("difference").is_none())
        .collect();
    (code, findings)
}

fn json_lines(stdout: &[u8]) -> Vec<Value> {
    String::from_utf8_lossy(stdout)
        .lines()
        .map(|line| {
            serde_json::from_str(line).unwrap_or_else(|e| panic!("a JSON line: {e}: {line:?}"))
        })
        .collect()
}

fn finding<'a>(findings: &'a [Value], check: &str) -> &'a Value {
    findings
        .iter()
        .find(|f| f["check"] == check)
        .unwrap_or_else(|| panic!("a {check} finding in {findings:#?}"))
}

fn verdict<'a>(findings: &'a [Value], check: &str) -> &'a str {
    finding(findings, check)["verdict"]
        .as_str()
        .expect("verdict is text")
}

/// The checks whose verdict is `verdict`.
fn with_verdict<'a>(findings: &'a [Value], verdict: &str) -> Vec<&'a str> {
    findings
        .iter()
        .filter(|f| f["verdict"] == verdict)
        .map(|f| f["check"].as_str().expect("check is text"))
        .collect()
}

fn text(finding: &Value) -> String {
    format!(
        "{} {} {}",
        finding["summary"].as_str().unwrap_or(""),
        finding["detail"],
        finding["advice"].as_str().unwrap_or("")
    )
}

#[test]
fn a_healthy_echo_server_has_no_problem_and_every_check_that_applies_is_ok() {
    let (_server, url) = start_server(&[]);
    let (code, findings) = doctor(&[&format!("{url}/")]);
    assert_eq!(code, 0, "{findings:#?}");
    let checks: Vec<&str> = findings
        .iter()
        .map(|f| f["check"].as_str().unwrap())
        .collect();
    assert_eq!(
        checks,
        [
            "proxy",
            "dns",
            "tcp",
            "tls",
            "upgrade",
            "intermediaries",
            "extensions",
            "subprotocol",
            "origin",
            "keepalive",
            "idle",
            "sizes"
        ]
    );
    for check in [
        "proxy",
        "tcp",
        "upgrade",
        "extensions",
        "subprotocol",
        "keepalive",
    ] {
        assert_eq!(verdict(&findings, check), "ok", "{check}: {findings:#?}");
    }
    // A literal address, ws://, and no --long: nothing to check there.
    for check in ["dns", "tls", "idle", "sizes"] {
        assert_eq!(verdict(&findings, check), "skipped", "{check}");
    }
    // The browser-like handshake offers compression; serve accepts it.
    assert!(text(finding(&findings, "extensions")).contains("permessage-deflate"));
    assert!(text(finding(&findings, "keepalive")).contains("5 pings answered"));
    // Any Origin is accepted, and no cookies: info, not a warning.
    assert_eq!(verdict(&findings, "origin"), "info");
    assert!(with_verdict(&findings, "warning").is_empty());
    assert!(with_verdict(&findings, "problem").is_empty());
}

#[test]
fn the_terminal_report_has_one_line_per_check_and_advice_under_problems() {
    let (_server, url) = start_server(&[]);
    let out = doctor_command()
        .args([&format!("{url}/reject/403")])
        .env_remove("NO_COLOR")
        .timed_output()
        .expect("runs");
    assert_eq!(out.status.code(), Some(1));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(!stdout.contains('\x1b'), "no colours into a pipe: {stdout}");
    let problem = stdout
        .lines()
        .position(|l| l.trim_start().starts_with("problem  upgrade"))
        .unwrap_or_else(|| panic!("a problem line for the upgrade: {stdout}"));
    assert!(
        stdout
            .lines()
            .skip(problem)
            .any(|l| l.trim_start().starts_with("fix: "))
    );
    assert!(stdout.contains("  ok       tcp"), "{stdout}");
    assert!(stdout.contains("1 problem"), "{stdout}");
}

#[test]
fn a_refused_upgrade_is_the_only_problem_and_explained() {
    let (_server, url) = start_server(&[]);
    let (code, findings) = doctor(&[&format!("{url}/reject/403")]);
    assert_eq!(code, 1);
    assert_eq!(
        with_verdict(&findings, "problem"),
        ["upgrade"],
        "{findings:#?}"
    );
    let upgrade = text(finding(&findings, "upgrade"));
    assert!(upgrade.contains("403"), "{upgrade}");
    assert!(upgrade.contains("Origin"), "{upgrade}");
    // Refused whatever the Origin: not an origin policy.
    assert_eq!(verdict(&findings, "origin"), "info");
    assert_eq!(verdict(&findings, "keepalive"), "skipped");
}

#[test]
fn a_subprotocol_nobody_offered_is_a_problem() {
    let (_server, url) = start_server(&[]);
    let (code, findings) = doctor(&[&format!("{url}/subprotocol/x?force")]);
    assert_eq!(code, 1);
    assert_eq!(
        with_verdict(&findings, "problem"),
        ["subprotocol"],
        "{findings:#?}"
    );
    assert!(text(finding(&findings, "subprotocol")).contains("\"x\""));

    // Offered, it is fine.
    let (code, findings) = doctor(&["--subprotocol", "x", &format!("{url}/subprotocol/x")]);
    assert_eq!(code, 0, "{findings:#?}");
    assert_eq!(verdict(&findings, "subprotocol"), "ok");
}

#[test]
fn a_server_that_does_not_answer_pings_is_a_keepalive_problem() {
    let (_server, url) = start_server(&[]);
    let (code, findings) = doctor(&[&format!("{url}/no-pong")]);
    assert_eq!(code, 1);
    assert_eq!(
        with_verdict(&findings, "problem"),
        ["keepalive"],
        "{findings:#?}"
    );
    assert!(text(finding(&findings, "keepalive")).contains("no pong"));
}

#[test]
fn plain_offers_no_compression() {
    let (_server, url) = start_server(&[]);
    let (code, findings) = doctor(&["--plain", &format!("{url}/")]);
    assert_eq!(code, 0);
    let extensions = finding(&findings, "extensions");
    assert_eq!(extensions["verdict"], "ok");
    assert!(text(extensions).contains("none offered"), "{extensions}");
    let upgrade = text(finding(&findings, "upgrade"));
    assert!(!upgrade.contains("Sec-WebSocket-Extensions"), "{upgrade}");
}

/// The idle timeout in seconds, read from the idle finding's summary
/// ("... ends after ~3.0 s ...").
fn idle_seconds(finding: &Value) -> f64 {
    let summary = finding["summary"].as_str().expect("a summary");
    let after = summary
        .split("after ~")
        .nth(1)
        .unwrap_or_else(|| panic!("an idle figure in {summary:?}"));
    after
        .split_whitespace()
        .next()
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("a number in {summary:?}"))
}

#[test]
fn long_measures_the_idle_timeout_and_whether_pings_keep_it_open() {
    let (_server, url) = start_server(&[]);
    let (code, findings) = doctor(&["--idle", "30s", &format!("{url}/idle-timeout/3s")]);
    assert_eq!(code, 0, "a warning is not a problem: {findings:#?}");
    assert_eq!(
        with_verdict(&findings, "warning"),
        ["idle"],
        "{findings:#?}"
    );
    let idle = finding(&findings, "idle");
    let seconds = idle_seconds(idle);
    assert!((2.0..=20.0).contains(&seconds), "idle ~{seconds} s: {idle}");
    let words = text(idle);
    assert!(words.contains("1001"), "serve closes with 1001: {words}");
    assert!(words.contains("kept a second connection open"), "{words}");

    // The server sends no pings of its own: said, as information.
    assert_eq!(verdict(&findings, "server-pings"), "info", "{findings:#?}");

    // A server without an idle timeout stays open for the whole limit
    // (--idle-limit is --idle's older name).
    let (code, findings) = doctor(&["--long", "--idle-limit", "1s", &format!("{url}/")]);
    assert_eq!(code, 0);
    assert_eq!(verdict(&findings, "idle"), "ok", "{findings:#?}");
}

#[test]
fn a_server_that_pings_on_its_own_is_seen_doing_so() {
    let (_server, url) = start_server(&[]);
    let (code, findings) = doctor(&["--idle", "3s", &format!("{url}/ping-every/500ms")]);
    assert_eq!(code, 0, "{findings:#?}");
    let pings = finding(&findings, "server-pings");
    assert_eq!(pings["verdict"], "ok", "{pings}");
    assert!(text(pings).contains("pinged"), "{pings}");
    assert_eq!(verdict(&findings, "idle"), "ok", "{findings:#?}");
}

#[test]
fn ctrl_c_prints_the_report_so_far() {
    let (_server, url) = start_server(&[]);
    let mut child = doctor_command()
        .args(["--json", "--idle", "120s", &format!("{url}/")])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("wscope doctor runs");
    // Doctor says on stderr when only the idle check is left: interrupt
    // then.
    let stderr = child.stderr.take().expect("stderr piped");
    let line = common::within(
        "the quick checks' line",
        Duration::from_secs(30),
        &mut child,
        move || {
            use std::io::BufRead;
            std::io::BufReader::new(stderr)
                .lines()
                .map_while(Result::ok)
                .find(|line| line.contains("quick checks done"))
        },
    );
    let line = line.expect("doctor said when the quick checks were done");
    assert!(line.contains("still running: idle"), "{line}");
    let status = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .expect("kill runs");
    assert!(status.success());
    let out = common::wait_output(child, Duration::from_secs(30));
    assert_eq!(
        out.status.code(),
        Some(130),
        "interrupted, no problem found"
    );
    let findings = json_lines(&out.stdout);
    // What finished is there; the idle check says it was cut short.
    assert_eq!(verdict(&findings, "upgrade"), "ok", "{findings:#?}");
    assert_eq!(verdict(&findings, "keepalive"), "ok", "{findings:#?}");
    let idle = finding(&findings, "idle");
    assert_eq!(idle["verdict"], "skipped", "{idle}");
    assert!(text(idle).contains("interrupted"), "{idle}");
}

#[test]
fn an_origin_allow_list_is_reported_and_a_refused_own_origin_is_a_problem() {
    let (_server, url) = python_server(&[]);
    let target = format!("{url}/origin");
    let (code, findings) = doctor(&["--origin", "http://allowed.test", &target]);
    assert_eq!(code, 0, "{findings:#?}");
    let origin = finding(&findings, "origin");
    assert_eq!(origin["verdict"], "ok", "{origin}");
    assert!(text(origin).contains("refused (403)"), "{origin}");

    let (code, findings) = doctor(&["--origin", "http://app.example", &target]);
    assert_eq!(code, 1);
    assert_eq!(verdict(&findings, "origin"), "problem", "{findings:#?}");
    assert!(text(finding(&findings, "origin")).contains("http://app.example"));
}

#[test]
fn a_foreign_origin_accepted_with_cookies_is_a_hijacking_warning() {
    let (_server, url) = python_server(&[]);
    let (code, findings) = doctor(&["-H", "Cookie: session=abc", &format!("{url}/echo")]);
    assert_eq!(code, 0, "{findings:#?}");
    assert_eq!(
        with_verdict(&findings, "warning"),
        ["origin"],
        "{findings:#?}"
    );
    assert!(text(finding(&findings, "origin")).contains("hijacking"));
}

#[test]
fn tls_is_reported_and_a_certificate_for_another_name_is_a_problem() {
    let dir = temp_dir("doctor-tls");
    let (_server, url) = python_server(&["--tls", dir.to_str().unwrap()]);
    let ca = dir.join("ca.pem");
    let port = url.rsplit(':').next().unwrap().to_owned();
    // The certificate names localhost; 127.0.0.1 is not in it.
    let (code, findings) = doctor(&["--ca", ca.to_str().unwrap(), &format!("{url}/echo")]);
    assert_eq!(code, 1);
    assert_eq!(verdict(&findings, "tls"), "problem", "{findings:#?}");
    assert!(text(finding(&findings, "tls")).contains("127.0.0.1"));
    // The TLS failure is named once; the upgrade was not tried over it.
    assert_eq!(with_verdict(&findings, "problem"), ["tls"], "{findings:#?}");

    let (code, findings) = doctor(&[
        "--ca",
        ca.to_str().unwrap(),
        &format!("wss://localhost:{port}/echo"),
    ]);
    let tls = finding(&findings, "tls");
    assert_eq!(tls["verdict"], "ok", "{findings:#?}");
    assert!(text(tls).contains("TLS 1."), "{tls}");
    assert!(
        with_verdict(&findings, "problem").is_empty(),
        "{findings:#?}"
    );
    assert_eq!(code, 0);
}

#[test]
fn nothing_reachable_exits_3_and_bad_input_2() {
    let port = free_port();
    let (code, findings) = doctor(&[&format!("ws://127.0.0.1:{port}/")]);
    assert_eq!(code, 3, "{findings:#?}");
    assert_eq!(with_verdict(&findings, "problem"), ["tcp"]);
    let out = doctor_command()
        .args(["ftp://127.0.0.1/"])
        .timed_output()
        .expect("runs");
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("ftp://"));
}

#[test]
fn report_json_writes_one_private_document() {
    use std::os::unix::fs::PermissionsExt;
    let (_server, url) = start_server(&[]);
    let dir = temp_dir("doctor-report");
    let path = dir.join("report.json");
    let out = doctor_command()
        .args([
            "--report-json",
            path.to_str().unwrap(),
            &format!("{url}/no-pong"),
        ])
        .timed_output()
        .expect("runs");
    assert_eq!(out.status.code(), Some(1));
    let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    let report: Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    assert_eq!(report["exit"], 1);
    assert_eq!(report["handshake"], "browser");
    let findings = report["findings"].as_array().unwrap();
    assert_eq!(with_verdict(findings, "problem"), ["keepalive"]);
}

/// A port nothing listens on (bound, read, released).
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

/// nginx from Debian with a config of the test's own, as a reverse proxy
/// on 127.0.0.1 to `upstream` (host:port). `location_extra` goes into the
/// proxying location.
fn start_nginx(name: &str, upstream: &str, location_extra: &str) -> (Running, String) {
    let nginx = system_tool("nginx", "nginx-light");
    let prefix = temp_dir(name);
    let port = free_port();
    let p = prefix.display();
    let conf = format!(
        "master_process off;\n\
         worker_processes 1;\n\
         pid {p}/nginx.pid;\n\
         events {{ worker_connections 64; }}\n\
         http {{\n\
           access_log off;\n\
           client_body_temp_path {p}/body;\n\
           proxy_temp_path {p}/proxy;\n\
           fastcgi_temp_path {p}/fastcgi;\n\
           uwsgi_temp_path {p}/uwsgi;\n\
           scgi_temp_path {p}/scgi;\n\
           server {{\n\
             listen 127.0.0.1:{port};\n\
             location / {{\n\
               proxy_pass http://{upstream};\n\
               {location_extra}\n\
             }}\n\
           }}\n\
         }}\n"
    );
    let conf_path = prefix.join("nginx.conf");
    std::fs::File::create(&conf_path)
        .and_then(|mut f| f.write_all(conf.as_bytes()))
        .expect("nginx.conf written");
    let child = Command::new(nginx)
        .arg("-p")
        .arg(&prefix)
        .arg("-c")
        .arg(&conf_path)
        .args(["-e", "stderr", "-g", "daemon off;"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .spawn()
        .expect("nginx starts");
    let running = Running {
        child,
        stdout: None,
    };
    wait_for_listener(port, &prefix);
    (running, format!("ws://127.0.0.1:{port}"))
}

/// Waits until something accepts connections on the port.
fn wait_for_listener(port: u16, prefix: &Path) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            Instant::now() < deadline,
            "nginx did not listen on {port} (config in {})",
            prefix.display()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

const PASS_THE_UPGRADE: &str = "proxy_http_version 1.1;\n\
    proxy_set_header Upgrade $http_upgrade;\n\
    proxy_set_header Connection \"upgrade\";";

#[test]
fn through_nginx_configured_for_websockets_there_is_no_problem() {
    let (_server, url) = start_server(&[]);
    let upstream = common::host_port(&url).to_owned();
    let (_nginx, proxied) = start_nginx("doctor-nginx-ok", &upstream, PASS_THE_UPGRADE);
    let (code, findings) = doctor(&[&format!("{proxied}/")]);
    assert_eq!(code, 0, "{findings:#?}");
    assert!(
        with_verdict(&findings, "problem").is_empty(),
        "{findings:#?}"
    );
    assert_eq!(verdict(&findings, "upgrade"), "ok");
    assert_eq!(verdict(&findings, "keepalive"), "ok");
    // nginx names itself.
    assert!(text(finding(&findings, "intermediaries")).contains("nginx"));
}

#[test]
fn through_nginx_without_the_upgrade_headers_the_upgrade_diagnosis_is_the_only_problem() {
    let (_server, url) = start_server(&[]);
    let upstream = common::host_port(&url).to_owned();
    let (_nginx, proxied) = start_nginx("doctor-nginx-no-upgrade", &upstream, "");
    let (code, findings) = doctor(&[&format!("{proxied}/")]);
    assert_eq!(code, 1, "{findings:#?}");
    assert_eq!(
        with_verdict(&findings, "problem"),
        ["upgrade"],
        "{findings:#?}"
    );
    let upgrade = finding(&findings, "upgrade");
    let advice = upgrade["advice"].as_str().unwrap();
    assert!(
        advice.contains("does not pass the Upgrade through"),
        "{advice}"
    );
    assert!(
        advice.contains("proxy_set_header Upgrade $http_upgrade;"),
        "{advice}"
    );
    assert!(advice.contains("proxy_http_version 1.1;"), "{advice}");
    assert!(advice.contains("HAProxy"), "{advice}");
}

#[test]
fn a_redirect_in_front_is_the_redirect_diagnosis_with_its_location() {
    let (_server, url) = start_server(&[]);
    let upstream = common::host_port(&url).to_owned();
    let (_nginx, proxied) = start_nginx("doctor-nginx-301", &upstream, "return 301 /elsewhere;");
    let (code, findings) = doctor(&[&format!("{proxied}/")]);
    assert_eq!(code, 1, "{findings:#?}");
    assert_eq!(
        with_verdict(&findings, "problem"),
        ["upgrade"],
        "{findings:#?}"
    );
    let upgrade = finding(&findings, "upgrade");
    let advice = upgrade["advice"].as_str().unwrap();
    assert!(
        advice.contains("browsers do not follow redirects"),
        "{advice}"
    );
    assert!(advice.contains("/elsewhere"), "{advice}");
}

#[test]
fn explain_prints_the_advice_doctor_gives() {
    let (_server, url) = start_server(&[]);
    let upstream = common::host_port(&url).to_owned();
    let (_nginx, proxied) = start_nginx("doctor-nginx-explain", &upstream, "");
    let (_, findings) = doctor(&[&format!("{proxied}/")]);
    let advice = finding(&findings, "upgrade")["advice"]
        .as_str()
        .unwrap()
        .to_owned();
    let out = wscope()
        .args(["explain", "400", "--json"])
        .timed_output()
        .expect("runs");
    let explained: Value = serde_json::from_slice(&out.stdout).expect("one JSON object");
    assert_eq!(explained["advice"], advice);
}

#[test]
fn an_expired_certificate_is_a_tls_problem() {
    let dir = temp_dir("doctor-tls-expired");
    let (_server, url) = python_server(&["--tls", dir.to_str().unwrap(), "--expired"]);
    let ca = dir.join("ca.pem");
    let port = url.rsplit(':').next().unwrap().to_owned();
    let (code, findings) = doctor(&[
        "--ca",
        ca.to_str().unwrap(),
        &format!("wss://localhost:{port}/echo"),
    ]);
    assert_eq!(code, 1, "{findings:#?}");
    let tls = finding(&findings, "tls");
    assert_eq!(tls["verdict"], "problem", "{findings:#?}");
    assert!(text(tls).contains("expired"), "{tls}");
}

/// HAProxy from Debian in front of `upstream` (host:port) on 127.0.0.1,
/// with `timeout tunnel` as given and `frontend_extra` lines in its
/// frontend.
fn start_haproxy(
    name: &str,
    upstream: &str,
    tunnel: &str,
    frontend_extra: &str,
) -> (Running, String) {
    let haproxy = system_tool("haproxy", "haproxy");
    let dir = temp_dir(name);
    let port = free_port();
    let conf = format!(
        "defaults\n\
         \x20 mode http\n\
         \x20 timeout connect 5s\n\
         \x20 timeout client 30s\n\
         \x20 timeout server 30s\n\
         \x20 timeout tunnel {tunnel}\n\
         frontend web\n\
         \x20 bind 127.0.0.1:{port}\n\
         {frontend_extra}\n\
         \x20 default_backend app\n\
         backend app\n\
         \x20 server app {upstream}\n"
    );
    let conf_path = dir.join("haproxy.cfg");
    std::fs::write(&conf_path, conf).expect("haproxy.cfg written");
    let child = Command::new(haproxy)
        .arg("-f")
        .arg(&conf_path)
        .arg("-db")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .spawn()
        .expect("haproxy starts");
    let running = Running {
        child,
        stdout: None,
    };
    wait_for_listener(port, &dir);
    (running, format!("ws://127.0.0.1:{port}"))
}

#[test]
fn haproxys_tunnel_timeout_is_the_idle_timeout_and_pings_keep_it_open() {
    let (_server, url) = start_server(&[]);
    let upstream = common::host_port(&url).to_owned();
    let (_haproxy, proxied) = start_haproxy("doctor-haproxy-tunnel", &upstream, "3s", "");
    let (code, findings) = doctor(&["--idle", "30s", &format!("{proxied}/")]);
    assert_eq!(code, 0, "{findings:#?}");
    assert_eq!(
        with_verdict(&findings, "warning"),
        ["idle"],
        "{findings:#?}"
    );
    let idle = finding(&findings, "idle");
    let seconds = idle_seconds(idle);
    assert!((2.0..=20.0).contains(&seconds), "idle ~{seconds} s: {idle}");
    let words = text(idle);
    // HAProxy ends the tunnel without a close frame.
    assert!(!words.contains("close frame 1001"), "{words}");
    assert!(words.contains("kept a second connection open"), "{words}");
    assert!(words.contains("timeout tunnel"), "{words}");
}

#[test]
fn haproxy_refusing_a_foreign_origin_is_an_origin_policy() {
    let (_server, url) = start_server(&[]);
    let upstream = common::host_port(&url).to_owned();
    let rule = "  http-request deny deny_status 403 if { req.hdr(origin) -m str https://wscope-foreign.invalid }";
    let (_haproxy, proxied) = start_haproxy("doctor-haproxy-origin", &upstream, "30s", rule);
    let (code, findings) = doctor(&[
        "--origin",
        "https://app.example",
        "-H",
        "Cookie: session=abc",
        &format!("{proxied}/"),
    ]);
    assert_eq!(code, 0, "{findings:#?}");
    let origin = finding(&findings, "origin");
    assert_eq!(origin["verdict"], "ok", "{findings:#?}");
    assert!(text(origin).contains("refused (403)"), "{origin}");
    assert!(
        with_verdict(&findings, "warning").is_empty(),
        "{findings:#?}"
    );
    assert!(
        with_verdict(&findings, "problem").is_empty(),
        "{findings:#?}"
    );
}

#[test]
fn sizes_finds_where_a_size_limit_sits_and_how_it_shows() {
    let (_server, url) = start_server(&[]);
    let (code, findings) = doctor(&["--sizes", &format!("{url}/")]);
    assert_eq!(code, 0, "{findings:#?}");
    let sizes = finding(&findings, "sizes");
    assert_eq!(sizes["verdict"], "ok", "{sizes}");
    assert!(text(sizes).contains("up to 16 MiB"), "{sizes}");

    let (code, findings) = doctor(&["--sizes", &format!("{url}/max-size/65536")]);
    assert_eq!(code, 0, "a limit that says so is a warning: {findings:#?}");
    assert_eq!(
        with_verdict(&findings, "warning"),
        ["sizes"],
        "{findings:#?}"
    );
    let words = text(finding(&findings, "sizes"));
    assert!(
        words.contains("a 1 MiB message: closed with 1009"),
        "{words}"
    );
    assert!(words.contains("64 KiB came back"), "{words}");

    // Not an echo endpoint: said, not a problem.
    let (_, findings) = doctor(&["--sizes", &format!("{url}/close/4000")]);
    assert_eq!(verdict(&findings, "sizes"), "skipped", "{findings:#?}");
}

#[test]
fn sizes_meets_python_websockets_default_max_size() {
    // websockets refuses messages over 1 MiB (max_size) with 1009; a
    // 1 MiB message of bytes that do not compress is a little more than
    // that once deflated, so 1 MiB is already refused.
    let (_server, url) = python_server(&[]);
    let (code, findings) = doctor(&["--sizes", &format!("{url}/echo")]);
    assert_eq!(code, 0, "{findings:#?}");
    let words = text(finding(&findings, "sizes"));
    assert_eq!(verdict(&findings, "sizes"), "warning", "{words}");
    assert!(
        words.contains("a 1 MiB message: closed with 1009"),
        "{words}"
    );
    assert!(words.contains("64 KiB came back"), "{words}");
}

#[test]
fn compare_through_nginx_and_directly_names_the_upgrade_as_the_difference() {
    let (_server, url) = start_server(&[]);
    let upstream = common::host_port(&url).to_owned();
    let (_nginx, proxied) = start_nginx("doctor-nginx-compare", &upstream, "");
    let dir = temp_dir("doctor-compare");
    let path = dir.join("report.json");
    let out = doctor_command()
        .args([
            "--compare",
            &format!("{url}/"),
            "--report-json",
            path.to_str().unwrap(),
            &format!("{proxied}/"),
        ])
        .timed_output()
        .expect("runs");
    // The first URL's status: through nginx the upgrade is refused.
    assert_eq!(out.status.code(), Some(1));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains(&format!("{proxied}/ differs from {url}/:")),
        "{stdout}"
    );
    let report: Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    assert_eq!(report["compared"]["exit"], 0, "{report:#}");
    let differences = report["differences"].as_array().expect("differences");
    let upgrade = differences
        .iter()
        .find(|d| d["check"] == "upgrade")
        .unwrap_or_else(|| panic!("the upgrade differs: {report:#}"));
    assert_eq!(upgrade["verdict"], "problem");
    assert_eq!(upgrade["compared_verdict"], "ok");
    assert!(upgrade["summary"].as_str().unwrap().contains("400"));
    assert!(
        upgrade["compared_summary"]
            .as_str()
            .unwrap()
            .contains("101")
    );
    // Only checks that depend on the upgrade differ besides it.
    for d in differences {
        assert!(
            [
                "upgrade",
                "extensions",
                "subprotocol",
                "origin",
                "keepalive",
                "intermediaries"
            ]
            .contains(&d["check"].as_str().unwrap()),
            "{d}"
        );
    }
}

#[test]
fn http_proxy_from_the_environment_is_used_and_reported_and_no_proxy_honoured() {
    let (_server, url) = start_server(&[]);
    let (_proxy, port) = common::start_http_proxy(&[]);
    let proxy = format!("http://127.0.0.1:{port}");
    let run = |no_proxy: Option<&str>| {
        let mut command = wscope();
        command
            .args(["doctor", "--json", &format!("{url}/")])
            .env_remove("http_proxy")
            .env_remove("no_proxy")
            .env_remove("NO_PROXY")
            .env("HTTP_PROXY", &proxy);
        if let Some(no_proxy) = no_proxy {
            command.env("NO_PROXY", no_proxy);
        }
        let out = command.timed_output().expect("runs");
        let findings: Vec<Value> = String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(|l| serde_json::from_str(l).expect("JSON"))
            .collect();
        (out.status.code(), findings)
    };
    let (code, findings) = run(None);
    assert_eq!(code, Some(0), "{findings:#?}");
    let chosen = text(finding(&findings, "proxy"));
    assert!(
        chosen.contains(&format!("through HTTP_PROXY={proxy}")),
        "{chosen}"
    );
    // Through a proxy, DNS and TCP are the proxy's; the upgrade still works.
    assert_eq!(verdict(&findings, "tcp"), "skipped");
    assert_eq!(verdict(&findings, "upgrade"), "ok", "{findings:#?}");

    let (code, findings) = run(Some("example.test,127.0.0.1"));
    assert_eq!(code, Some(0), "{findings:#?}");
    let chosen = text(finding(&findings, "proxy"));
    assert!(
        chosen.contains("NO_PROXY=example.test,127.0.0.1 excludes 127.0.0.1"),
        "{chosen}"
    );
    assert_eq!(verdict(&findings, "tcp"), "ok");
}

#[test]
fn a_certificate_expiring_soon_is_a_warning_and_k_still_names_what_browsers_refuse() {
    let dir = temp_dir("doctor-tls-expiring");
    let (_server, url) = python_server(&["--tls", dir.to_str().unwrap(), "--expires-in-days", "5"]);
    let ca = dir.join("ca.pem");
    let port = url.rsplit(':').next().unwrap().to_owned();
    let (code, findings) = doctor(&[
        "--ca",
        ca.to_str().unwrap(),
        &format!("wss://localhost:{port}/echo"),
    ]);
    assert_eq!(code, 0, "{findings:#?}");
    let tls = finding(&findings, "tls");
    assert_eq!(tls["verdict"], "warning", "{tls}");
    let words = text(tls);
    assert!(
        words.contains("expires in 4 days") || words.contains("expires in 5 days"),
        "{tls}"
    );

    // -k looks past the name; doctor still says browsers will not.
    let (_, findings) = doctor(&["-k", &format!("{url}/echo")]);
    let tls = finding(&findings, "tls");
    assert_eq!(tls["verdict"], "warning", "{tls}");
    assert!(
        text(tls).contains("does not name 127.0.0.1 (it names localhost)"),
        "{tls}"
    );
}

#[test]
fn resolve_and_connect_to_reach_the_server_under_another_name() {
    let (_server, url) = start_server(&[]);
    let port = url.rsplit(':').next().unwrap().to_owned();
    // A name no DNS knows, pinned to the server's address.
    let (code, findings) = doctor(&[
        "--resolve",
        &format!("ws.wscope.invalid:{port}:127.0.0.1"),
        &format!("ws://ws.wscope.invalid:{port}/"),
    ]);
    assert_eq!(code, 0, "{findings:#?}");
    let dns = finding(&findings, "dns");
    assert_eq!(dns["verdict"], "info", "{dns}");
    assert!(
        text(dns).contains(&format!(
            "--resolve pins ws.wscope.invalid:{port} to 127.0.0.1"
        )),
        "{dns}"
    );
    assert_eq!(verdict(&findings, "tcp"), "ok", "{findings:#?}");
    assert_eq!(verdict(&findings, "upgrade"), "ok", "{findings:#?}");

    // --connect-to sends the URL's host and port elsewhere.
    let (code, findings) = doctor(&[
        "--connect-to",
        &format!("api.wscope.invalid:80:127.0.0.1:{port}"),
        "ws://api.wscope.invalid/",
    ]);
    assert_eq!(code, 0, "{findings:#?}");
    assert!(
        text(finding(&findings, "dns")).contains(&format!(
            "--connect-to sends api.wscope.invalid:80 to 127.0.0.1:{port}"
        )),
        "{findings:#?}"
    );
    assert_eq!(verdict(&findings, "upgrade"), "ok", "{findings:#?}");

    // The same flags work for connect.
    let out = wscope()
        .args([
            "connect",
            "--json",
            "--send",
            "hello",
            "--expect",
            "1",
            "--resolve",
            &format!("ws.wscope.invalid:{port}:127.0.0.1"),
            &format!("ws://ws.wscope.invalid:{port}/"),
        ])
        .timed_output()
        .expect("wscope connect runs");
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let events = json_lines(&out.stdout);
    let open = events
        .iter()
        .find(|e| e["event"] == "open")
        .unwrap_or_else(|| panic!("an open event: {events:#?}"));
    // The Host header is the URL's; the address is the pinned one.
    let host = open["request"]["headers"]
        .as_array()
        .and_then(|headers| headers.iter().find(|h| h[0] == "Host"))
        .unwrap_or_else(|| panic!("a Host header: {open}"));
    assert_eq!(host[1], format!("ws.wscope.invalid:{port}"), "{open}");
    assert_eq!(open["server"], format!("127.0.0.1:{port}"), "{open}");
    assert!(events.iter().any(|e| e["payload"]["text"] == "hello"));

    // A malformed value is refused before anything connects.
    refused(
        &[
            "--resolve",
            "ws.wscope.invalid:80",
            "ws://ws.wscope.invalid/",
        ],
        "HOST:PORT:ADDR",
    );
}

#[test]
fn a_chain_without_its_intermediate_is_named_incomplete() {
    let dir = temp_dir("doctor-tls-leaf-only");
    let (_server, url) = python_server(&[
        "--tls",
        dir.to_str().unwrap(),
        "--intermediate",
        "--leaf-only",
    ]);
    let port = url.rsplit(':').next().unwrap().to_owned();
    let ca = dir.join("ca.pem");
    let wss = format!("wss://localhost:{port}/echo");
    let (code, findings) = doctor(&["--ca", ca.to_str().unwrap(), &wss]);
    assert_eq!(code, 1, "{findings:#?}");
    let tls = finding(&findings, "tls");
    assert_eq!(tls["verdict"], "problem", "{tls}");
    let words = text(tls);
    assert!(words.contains("incomplete chain"), "{words}");
    assert!(words.contains("sends only its own certificate"), "{words}");
    assert!(words.contains("intermediate"), "{words}");
    assert_eq!(with_verdict(&findings, "problem"), ["tls"], "{findings:#?}");

    // -k looks past it, and still says what verifying clients meet.
    let (_, findings) = doctor(&["-k", "--ca", ca.to_str().unwrap(), &wss]);
    let tls = finding(&findings, "tls");
    assert_eq!(tls["verdict"], "warning", "{tls}");
    assert!(text(tls).contains("incomplete chain"), "{tls}");
}

#[test]
fn a_chain_with_its_intermediate_is_complete() {
    let dir = temp_dir("doctor-tls-full-chain");
    let (_server, url) = python_server(&["--tls", dir.to_str().unwrap(), "--intermediate"]);
    let port = url.rsplit(':').next().unwrap().to_owned();
    let ca = dir.join("ca.pem");
    let wss = format!("wss://localhost:{port}/echo");
    let (code, findings) = doctor(&["--ca", ca.to_str().unwrap(), &wss]);
    assert_eq!(code, 0, "{findings:#?}");
    assert_eq!(verdict(&findings, "tls"), "ok", "{findings:#?}");
    let (_, findings) = doctor(&["-k", "--ca", ca.to_str().unwrap(), &wss]);
    assert_eq!(verdict(&findings, "tls"), "info", "-k only: {findings:#?}");
}

#[test]
fn probe_message_finds_the_size_limit_of_an_endpoint_that_does_not_echo() {
    let (_server, url) = python_server(&[]);
    let template = r#"{"type":"data","data":"{{payload}}"}"#;
    let (code, findings) = doctor(&["--probe-message", template, &format!("{url}/ack")]);
    assert_eq!(code, 0, "{findings:#?}");
    let words = text(finding(&findings, "sizes"));
    assert_eq!(verdict(&findings, "sizes"), "warning", "{words}");
    // websockets' max_size is 1 MiB: 1 MiB passes, more is refused.
    assert!(
        words.contains("a 16 MiB message: closed with 1009"),
        "{words}"
    );
    assert!(words.contains("1 MiB came back"), "{words}");

    // Echo or not, any answer counts.
    let (_echo, echo_url) = start_server(&[]);
    let (code, findings) = doctor(&[
        "--probe-message",
        template,
        "--max-message",
        "1048576",
        &format!("{echo_url}/"),
    ]);
    assert_eq!(code, 0, "{findings:#?}");
    let sizes = finding(&findings, "sizes");
    assert_eq!(sizes["verdict"], "ok", "{sizes}");
    assert!(
        text(sizes).contains("every message answered, up to 1 MiB"),
        "{sizes}"
    );

    // A template without its placeholder is refused before connecting.
    refused(
        &["--probe-message", "{}", &format!("{url}/ack")],
        "{{payload}}",
    );
}

/// Doctor with `args` exits 2 (bad input) and says `words` on stderr.
fn refused(args: &[&str], words: &str) {
    let out = doctor_command().args(args).timed_output().expect("runs");
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains(words),
        "{out:?}"
    );
}

#[test]
fn compare_writes_its_differences_as_json_lines() {
    let (_server, url) = start_server(&[]);
    let out = doctor_command()
        .args([
            "--json",
            "--compare",
            &format!("{url}/"),
            &format!("{url}/reject/403"),
        ])
        .timed_output()
        .expect("runs");
    assert_eq!(out.status.code(), Some(1));
    let lines = json_lines(&out.stdout);
    let differences: Vec<&Value> = lines.iter().filter(|l| l["difference"] == true).collect();
    let upgrade = differences
        .iter()
        .find(|d| d["check"] == "upgrade")
        .unwrap_or_else(|| panic!("the upgrade differs: {lines:#?}"));
    assert_eq!(upgrade["verdict"], "problem", "{upgrade}");
    assert_eq!(upgrade["compared_verdict"], "ok", "{upgrade}");
    assert_eq!(upgrade["url"], format!("{url}/reject/403"));
    assert_eq!(upgrade["compared_url"], format!("{url}/"));
    // The differences come after every finding of both URLs.
    let first_difference = lines.iter().position(|l| l["difference"] == true).unwrap();
    assert!(
        lines[first_difference..]
            .iter()
            .all(|l| l["difference"] == true)
    );
    assert!(
        lines[..first_difference]
            .iter()
            .any(|l| l["url"] == format!("{url}/")),
        "the compared URL's findings are there too"
    );
}

#[test]
fn nginx_read_timeout_is_the_idle_timeout_and_pings_every_second_keep_it_open() {
    let (_server, url) = start_server(&[]);
    let upstream = common::host_port(&url).to_owned();
    let config = format!("{PASS_THE_UPGRADE}\nproxy_read_timeout 3s;");
    let (_nginx, proxied) = start_nginx("doctor-nginx-read-timeout", &upstream, &config);
    let (code, findings) = doctor(&[
        "--idle",
        "20s",
        "--ping-every",
        "1s",
        &format!("{proxied}/"),
    ]);
    assert_eq!(code, 0, "a warning is not a problem: {findings:#?}");
    assert_eq!(
        with_verdict(&findings, "warning"),
        ["idle"],
        "{findings:#?}"
    );
    let idle = finding(&findings, "idle");
    let seconds = idle_seconds(idle);
    assert!((2.0..=15.0).contains(&seconds), "idle ~{seconds} s: {idle}");
    let words = text(idle);
    assert!(
        words.contains("pings every 1.0 s kept a second connection open"),
        "{words}"
    );
}

#[test]
fn the_report_redacts_tokens_and_cookies_unless_no_redact() {
    let (_server, url) = start_server(&[]);
    let target = format!("{url}/?room=1&token=s3cret-doctor");
    let out = doctor_command()
        .args(["-H", "Cookie: sid=c00kie-doctor", &target])
        .timed_output()
        .expect("runs");
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let report = String::from_utf8_lossy(&out.stdout);
    assert!(report.contains("room=1"), "{report}");
    assert!(report.contains("token=<redacted:"), "{report}");
    assert!(!report.contains("s3cret-doctor"), "{report}");
    assert!(!report.contains("c00kie-doctor"), "{report}");

    let out = doctor_command()
        .args(["--no-redact", &target])
        .timed_output()
        .expect("runs");
    assert!(String::from_utf8_lossy(&out.stdout).contains("s3cret-doctor"));
}
