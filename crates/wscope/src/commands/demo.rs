//! `wscope demo`: the README's first command, wscope's main job with no
//! setup. An echo server (`serve`), the inspecting proxy in front of it
//! with the web UI and one rule that rewrites a message (a fault the
//! client can see), and a client (`connect --compress`) whose messages
//! pass through the proxy, all in one process on loopback ports the
//! system picks. What is printed is the proxy's live view; the UI stays up
//! until Ctrl-C, or the demo ends after the exchange with `--once`.

use std::time::Duration;

use anyhow::Context;
use clap::Parser;
use tokio::net::TcpListener;
use tokio::sync::{mpsc, oneshot, watch};

use crate::cli::{Cli, Command, DemoArgs};
use crate::commands::connect::{self, Session};
use crate::sinks::interactive;
use crate::sources::proxy::{self, Embedding};
use crate::sources::serve;
use wscope_proto::OpCode;

const LINES: &[&str] = &[
    "hello, wscope",
    r#"{"type":"greeting","from":"demo","n":1}"#,
    "κόσμε — UTF-8 survives the round trip 🎉",
];

/// The fault: the server's answer to the greeting is changed on its way
/// back, as a rules file would say it (docs/RULES.md).
const RULES: &str = r#"
[[rule]]
name = "demo rule"
match = 'dir == s2c && json.type == "greeting"'
action = "replace"
path = "from"
value = "the proxy"
"#;

pub async fn run(args: DemoArgs) -> anyhow::Result<i32> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let server = format!("ws://{}", listener.local_addr()?);
    tokio::spawn(serve::echo_server(listener));

    let rules = crate::sources::rules::file::parse(RULES)
        .map_err(|e| anyhow::anyhow!("the demo's rule: {e}"))?;
    let command = ["wscope", "proxy", "--listen", "127.0.0.1:0"];
    let command = command.into_iter().chain(["--upstream", &server, "--ui"]);
    let Command::Proxy(proxy_args) = Cli::parse_from(command).command else {
        unreachable!("the arguments above name the proxy subcommand");
    };
    let (ready_tx, ready) = oneshot::channel();
    let (stop, stopped) = watch::channel(false);
    let proxy = tokio::spawn(proxy::run_embedded(
        proxy_args,
        Embedding {
            rules: Some(rules),
            ready: Some(ready_tx),
            stop: Some(stopped),
            silent: true,
        },
    ));
    let ready = match ready.await {
        Ok(ready) => ready,
        // The proxy ended before it listened: its error says why.
        Err(_) => {
            proxy.await.context("the proxy")??;
            anyhow::bail!("the proxy ended before it listened");
        }
    };
    let proxy_addr = ready.addrs.first().context("the proxy listens nowhere")?;
    let ui = ready.ui.context("the proxy started no UI")?;
    let through = format!("ws://{proxy_addr}/echo");
    println!("wscope demo: the inspecting proxy between a client and a server, on 127.0.0.1");
    println!("  server  wscope serve (echoes)   {server}/echo");
    println!("  proxy   wscope proxy --ui       ws://{proxy_addr} -> the server, with one rule:");
    println!("          the server's greeting comes back with \"from\" rewritten to \"the proxy\"");
    println!("  web UI  {ui}");
    println!(
        "  client  wscope connect --compress {through}, sending {} messages",
        LINES.len()
    );
    println!("\nWhat the proxy sees (c1: the client's connection; > to the server, < back):");

    let Command::Connect(client) = Cli::parse_from([
        "wscope",
        "connect",
        "--compress",
        "--quiet",
        "--wait",
        "300ms",
        &through,
    ])
    .command
    else {
        unreachable!("the arguments above name the connect subcommand");
    };
    let (tx, lines) = mpsc::channel(LINES.len());
    tokio::spawn(async move {
        for line in LINES {
            let command = interactive::Command::Send(OpCode::Text, line.as_bytes().to_vec());
            if tx.send(command).await.is_err() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(150)).await;
        }
    });
    let status = connect::run_session(
        client,
        Session {
            lines: Some(lines),
            arrows: false,
            printer: None,
        },
    )
    .await?;
    if args.once {
        let _ = stop.send(true);
    } else {
        println!("\nThe web UI keeps the conversation: {ui}");
        println!("Ctrl-C to stop.");
    }
    // Ends at --once's stop or Ctrl-C, with the view's last lines out.
    proxy.await.context("the proxy")??;
    println!(
        "\nnext: `wscope proxy --upstream ws://YOUR-SERVER --ui` in front of your own server (docs/PROXY.md)"
    );
    Ok(status)
}
