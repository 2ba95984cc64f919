//! Acting on a live connection from outside it: what the web UI asks of
//! the connections of `wscope proxy` and `wscope serve` alike.
//!
//! Whoever runs a connection registers a [`Handle`] under its id in the
//! shared [`Controls`] and takes the [`Command`]s that arrive on it between
//! its own steps; the UI only looks handles up. Neither side knows the
//! other's types, so the UI needs nothing from the proxy or the server.

use std::collections::HashMap;
use std::sync::Mutex;

use tokio::sync::mpsc;
use wscope_events::Direction;

use crate::sources::rules::Injected;

/// What can be asked of one connection.
#[derive(Debug)]
pub enum Command {
    /// A message of our own toward the receiver of this direction.
    Inject(Direction, Injected),
    /// A close frame of our own toward the receiver of this direction.
    Close(Direction, u16, String),
    /// Both TCP connections reset.
    Reset,
}

/// Which ends of a connection commands can reach.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reach {
    /// A relayed connection: the client and the server.
    Both,
    /// A connection we serve: only the client (we are the server).
    Client,
}

/// Sends commands to one connection.
#[derive(Clone)]
pub struct Handle {
    commands: mpsc::UnboundedSender<Command>,
    reach: Reach,
}

/// A handle, and the end its connection takes commands from.
pub fn channel(reach: Reach) -> (Handle, mpsc::UnboundedReceiver<Command>) {
    let (commands, rx) = mpsc::unbounded_channel();
    (Handle { commands, reach }, rx)
}

impl Handle {
    pub fn reach(&self) -> Reach {
        self.reach
    }

    /// False once the connection has ended.
    pub fn send(&self, command: Command) -> bool {
        self.commands.send(command).is_ok()
    }
}

/// The open connections that can be acted on, by id.
#[derive(Default)]
pub struct Controls {
    open: Mutex<HashMap<String, Handle>>,
}

impl Controls {
    fn open(&self) -> std::sync::MutexGuard<'_, HashMap<String, Handle>> {
        // The map holds no invariant a panic elsewhere could break.
        self.open.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn get(&self, id: &str) -> Option<Handle> {
        self.open().get(id).cloned()
    }

    pub fn add(&self, id: &str, handle: Handle) {
        self.open().insert(id.to_owned(), handle);
    }

    pub fn remove(&self, id: &str) {
        self.open().remove(id);
    }
}
