//! A plain TCP relay that does not parse anything: the baseline
//! `scripts/bench-proxy` compares `wscope proxy` against.
//!
//! Usage: tcp_relay UPSTREAM_HOST:PORT. Listens on a free loopback port and
//! prints `listening on ws://ADDR` first.

use std::io::Write;

/// The proxy's largest read buffer, so the comparison is like for like.
const BUFFER: usize = 64 * 1024;

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let upstream = std::env::args()
        .nth(1)
        .expect("usage: tcp_relay UPSTREAM_HOST:PORT");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    println!("listening on ws://{}", listener.local_addr()?);
    std::io::stdout().flush()?;
    loop {
        let (mut client, _) = listener.accept().await?;
        let upstream = upstream.clone();
        tokio::spawn(async move {
            let _ = client.set_nodelay(true);
            if let Ok(mut server) = tokio::net::TcpStream::connect(&upstream).await {
                let _ = server.set_nodelay(true);
                let _ = tokio::io::copy_bidirectional_with_sizes(
                    &mut client,
                    &mut server,
                    BUFFER,
                    BUFFER,
                )
                .await;
            }
        });
    }
}
