//! `wscope demo`: the README's first command. Starts an echo server on a
//! free loopback port and a client that talks to it with compression, so a
//! newcomer sees both halves work with no setup of their own.

use std::time::Duration;

use clap::Parser;
use tokio::net::TcpListener;
use tokio::sync::mpsc;

use crate::cli::{Cli, Command};
use crate::connect::{self, Session};
use crate::interactive;
use crate::serve;
use wscope_proto::OpCode;

const LINES: &[&str] = &[
    "hello, wscope",
    r#"{"type":"greeting","from":"demo","n":1}"#,
    "κόσμε — UTF-8 survives the round trip 🎉",
];

pub async fn run() -> anyhow::Result<i32> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("ws://{}/echo", listener.local_addr()?);
    println!("wscope demo: echo server (wscope serve) listening on {url}");
    println!(
        "             client (wscope connect --compress) sending {} messages\n",
        LINES.len()
    );
    tokio::spawn(serve::echo_server(listener));

    let Command::Connect(args) =
        Cli::parse_from(["wscope", "connect", "--compress", "--wait", "300ms", &url]).command
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
        args,
        Session {
            lines: Some(lines),
            arrows: true,
            printer: None,
        },
    )
    .await?;
    println!(
        "\nnext: `wscope serve --listen 127.0.0.1:9001` in one terminal, `wscope connect ws://127.0.0.1:9001/` in another"
    );
    Ok(status)
}
