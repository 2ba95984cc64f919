//! Running a listening process (serve, proxy): bind every address, accept
//! into one task per connection, and on Ctrl-C or SIGTERM tell every task
//! to wind down and give them a moment to do it.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use anyhow::Context;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch};

/// How long open connections get to close after the shutdown signal.
const GRACE: Duration = Duration::from_secs(3);

/// `--max-connections` (serve and proxy): how many connections are open,
/// and whether one more may be.
pub struct ConnectionLimit {
    max: usize,
    open: AtomicUsize,
}

/// One connection counted in; counted out when dropped.
pub struct Counted(Arc<ConnectionLimit>);

impl Drop for Counted {
    fn drop(&mut self) {
        self.0.open.fetch_sub(1, Ordering::Relaxed);
    }
}

impl ConnectionLimit {
    pub fn new(max: usize) -> Arc<ConnectionLimit> {
        Arc::new(ConnectionLimit {
            max,
            open: AtomicUsize::new(0),
        })
    }

    /// Counts a new connection in, or, when `max` are open already, says
    /// why it is refused (`command`: "serve", "proxy").
    pub fn enter(self: &Arc<Self>, command: &str) -> Result<Counted, String> {
        // Counted first, then checked: two at once cannot both take the
        // last place.
        let before = self.open.fetch_add(1, Ordering::Relaxed);
        let counted = Counted(Arc::clone(self));
        if before >= self.max {
            drop(counted);
            return Err(format!(
                "wscope {command} is at its limit of {} open connections (--max-connections)",
                self.max
            ));
        }
        Ok(counted)
    }
}

/// Binds every address, or says which one failed.
pub async fn bind_all(addrs: &[SocketAddr]) -> anyhow::Result<Vec<TcpListener>> {
    let mut listeners = Vec::new();
    for addr in addrs {
        let listener = TcpListener::bind(addr)
            .await
            .with_context(|| format!("cannot listen on {addr}"))?;
        listeners.push(listener);
    }
    Ok(listeners)
}

/// Accepts on every listener until Ctrl-C or SIGTERM, running `handle` for
/// each connection in its own task; then sends `true` on `shutdown` and
/// waits up to [`GRACE`] for the tasks to finish.
pub async fn accept_until_shutdown<H, F>(
    listeners: Vec<TcpListener>,
    shutdown: watch::Sender<bool>,
    handle: H,
) where
    H: Fn(TcpStream, SocketAddr) -> F,
    F: Future<Output = ()> + Send + 'static,
{
    accept_until(listeners, shutdown, None, handle).await;
}

/// [`accept_until_shutdown`], also ending when `stop` turns true: for a
/// server that another part of the same process ends (`wscope demo`).
pub async fn accept_until<H, F>(
    listeners: Vec<TcpListener>,
    shutdown: watch::Sender<bool>,
    mut stop: Option<watch::Receiver<bool>>,
    handle: H,
) where
    H: Fn(TcpStream, SocketAddr) -> F,
    F: Future<Output = ()> + Send + 'static,
{
    let (accepted_tx, mut accepted) = mpsc::channel(64);
    for listener in listeners {
        let accepted_tx = accepted_tx.clone();
        tokio::spawn(async move {
            loop {
                match listener.accept().await {
                    Ok(pair) => {
                        if accepted_tx.send(pair).await.is_err() {
                            return;
                        }
                    }
                    Err(err) => {
                        // Out of file descriptors, most likely: wait rather
                        // than spin.
                        tracing::warn!(%err, "accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                }
            }
        });
    }
    drop(accepted_tx);
    let mut tasks = tokio::task::JoinSet::new();
    let mut sigterm =
        tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
    loop {
        tokio::select! {
            Some((stream, peer)) = accepted.recv() => {
                tasks.spawn(handle(stream, peer));
            }
            _ = tokio::signal::ctrl_c() => break,
            _ = terminated(&mut sigterm) => break,
            _ = stopped(&mut stop) => break,
            Some(_) = tasks.join_next(), if !tasks.is_empty() => {}
        }
    }
    let _ = shutdown.send(true);
    let _ = tokio::time::timeout(GRACE, async { while tasks.join_next().await.is_some() {} }).await;
}

/// `stop` turned true; never without one (or once its sender is gone).
async fn stopped(stop: &mut Option<watch::Receiver<bool>>) {
    if let Some(stop) = stop
        && stop.wait_for(|stop| *stop).await.is_ok()
    {
        return;
    }
    std::future::pending().await
}

/// SIGTERM (a process manager, `docker stop`, a test harness): shut down
/// as for Ctrl-C.
async fn terminated(signal: &mut Option<tokio::signal::unix::Signal>) {
    match signal {
        Some(signal) => {
            signal.recv().await;
        }
        None => std::future::pending().await,
    }
}

/// A process holding many connections needs many file descriptors; the
/// usual soft limit (1024) is far below the hard one. Raise it, as servers
/// commonly do; failing to is not fatal.
pub fn raise_fd_limit() {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit and setrlimit only read and write the struct given.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) == 0 && limit.rlim_cur < limit.rlim_max
        {
            limit.rlim_cur = limit.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &limit);
        }
    }
}
