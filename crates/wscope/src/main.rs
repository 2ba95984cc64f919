//! The `wscope` command: parse the command line, start the runtime, run the
//! subcommand, exit with its status.

use clap::Parser;
use wscope::cli::{Cli, Command};
#[cfg(target_os = "linux")]
use wscope::commands::capture;
use wscope::commands::{bench, connect, demo, doctor, explain, manuals, probe, read};
use wscope::network::ca;
use wscope::sinks::ui;
use wscope::sources::{proxy, replay, serve};

fn main() {
    wscope::heap::keep_freed_buffers();
    let cli = Cli::parse();
    wscope::color::init(cli.color);
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_new(&cli.log)
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .init();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("wscope: cannot start the async runtime: {err}");
            std::process::exit(1);
        }
    };
    let status = runtime.block_on(async {
        #[cfg(all(feature = "count-alloc", unix))]
        wscope::alloc_count::report_on_sigusr1();
        match cli.command {
            Command::Serve(args) => serve::run(args).await.map(|()| 0),
            Command::Connect(args) => connect::run(args).await,
            Command::Probe(args) => probe::run(args).await,
            Command::Doctor(args) => doctor::run(args).await,
            Command::Proxy(args) => proxy::run(args).await.map(|()| 0),
            Command::Ca(args) => ca::run(args),
            Command::Bench(args) => bench::run(args).await,
            Command::Read(args) => read::run(args),
            #[cfg(target_os = "linux")]
            Command::Capture(args) => capture::run(args).await,
            #[cfg(not(target_os = "linux"))]
            Command::Capture(_) => Err(anyhow::anyhow!(
                "live capture uses Linux packet sockets; here, capture with `tcpdump -U -w - | wscope read -`"
            )),
            Command::Ui(args) => ui::run_file(args).await.map(|()| 0),
            Command::Replay(args) => replay::run(args).await,
            Command::Diff(args) => replay::diff::run(args),
            Command::Demo(args) => demo::run(args).await,
            Command::Explain(args) => Ok(explain::run(args)),
            Command::Completions { shell } => manuals::completions(shell),
            Command::Manpages { dir } => manuals::manpages(&dir),
        }
    });
    match status {
        Ok(code) => std::process::exit(code),
        Err(err) => {
            eprintln!("wscope: {err:#}");
            std::process::exit(1);
        }
    }
}
