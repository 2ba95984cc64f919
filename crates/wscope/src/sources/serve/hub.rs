//! `/broadcast`: one channel per path; every client on the path gets every
//! message sent to it, its sender's included.

use std::collections::HashMap;
use std::sync::Mutex;

use bytes::Bytes;
use tokio::sync::broadcast;
use wscope_proto::OpCode;

/// How many messages a slow client may fall behind before it misses some.
const BACKLOG: usize = 1024;

pub type Channel = broadcast::Sender<(OpCode, Bytes)>;
/// A client's place on a path: its way to send and its own queue.
pub type Membership = (Channel, broadcast::Receiver<(OpCode, Bytes)>);

#[derive(Default)]
pub struct Hub {
    paths: Mutex<HashMap<String, Channel>>,
}

impl Hub {
    /// Joins the channel of `path`, creating it for the first client.
    pub fn join(&self, path: &str) -> Membership {
        let mut paths = self.paths.lock().unwrap_or_else(|e| e.into_inner());
        let sender = paths
            .entry(path.to_owned())
            .or_insert_with(|| broadcast::channel(BACKLOG).0)
            .clone();
        let receiver = sender.subscribe();
        (sender, receiver)
    }

    /// Leaves; the last client out removes the path's channel.
    pub fn leave(&self, path: &str, sender: Channel) {
        let mut paths = self.paths.lock().unwrap_or_else(|e| e.into_inner());
        // Our receiver is dropped by now: no receivers left means no one.
        if sender.receiver_count() == 0 {
            paths.remove(path);
        }
    }
}
