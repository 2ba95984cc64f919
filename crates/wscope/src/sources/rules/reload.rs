//! Rules that follow their file: loaded at start (a bad file stops the
//! proxy before it listens), then read again twice a second; a changed file
//! that parses replaces the rules for every connection, open ones
//! included, and one that does not is reported with its line while the
//! rules in force stay.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::anyhow;
use tokio::sync::watch;
use wscope_events::EventKind;

use super::FaultArgs;
use super::RuleSet;
use super::file::parse;
use crate::sinks::emit::Events;

/// How often the file is looked at.
const POLL: Duration = Duration::from_millis(500);

/// The rules in force; each connection holds a receiver.
pub type Current = watch::Receiver<Arc<RuleSet>>;

/// Loads the flags' rules and the file's. `None` when there are none and
/// no file to watch: the proxy then relays bytes untouched.
pub fn load(flags: &FaultArgs) -> anyhow::Result<Option<(watch::Sender<Arc<RuleSet>>, Current)>> {
    let from_flags = RuleSet::from_flags(flags);
    let set = match &flags.rules {
        None if from_flags.is_empty() => return Ok(None),
        None => from_flags,
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .map_err(|e| anyhow!("cannot read the rules file {}: {e}", path.display()))?;
            let file = parse(&text).map_err(|e| anyhow!("{}: {e}", path.display()))?;
            from_flags.then(file)
        }
    };
    let (tx, rx) = watch::channel(Arc::new(set));
    Ok(Some((tx, rx)))
}

/// Watches `flags.rules` (if any) and swaps in new rules as it changes,
/// until `shutdown` (it holds an event sender, which must not keep the
/// sink thread waiting).
pub fn watch_file(
    flags: FaultArgs,
    tx: watch::Sender<Arc<RuleSet>>,
    events: Events,
    mut shutdown: watch::Receiver<bool>,
) {
    let Some(path) = flags.rules.clone() else {
        return;
    };
    tokio::spawn(async move {
        let mut last = std::fs::read(&path).ok();
        let mut tick = tokio::time::interval(POLL);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                _ = shutdown.wait_for(|down| *down) => return,
            }
            let now = std::fs::read(&path).ok();
            if now == last {
                continue;
            }
            last = now;
            let text = match reread(&path, &last) {
                Ok(text) => text,
                Err(why) => {
                    report(&events, why).await;
                    continue;
                }
            };
            match parse(&text) {
                Ok(file) => {
                    let set = RuleSet::from_flags(&flags).then(file);
                    let n = set.rules.len();
                    tx.send_replace(Arc::new(set));
                    let s = if n == 1 { "" } else { "s" };
                    report(
                        &events,
                        format!(
                            "rules reloaded from {}: {n} rule{s} in force",
                            path.display()
                        ),
                    )
                    .await;
                }
                Err(err) => {
                    report(
                        &events,
                        format!(
                            "{}: {err}; the previous rules stay in force",
                            path.display()
                        ),
                    )
                    .await;
                }
            }
        }
    });
}

fn reread(path: &Path, bytes: &Option<Vec<u8>>) -> Result<String, String> {
    let Some(bytes) = bytes else {
        return Err(format!(
            "cannot read the rules file {}; the previous rules stay in force",
            path.display()
        ));
    };
    String::from_utf8(bytes.clone()).map_err(|_| {
        format!(
            "{} is not UTF-8; the previous rules stay in force",
            path.display()
        )
    })
}

async fn report(events: &Events, text: String) {
    eprintln!("wscope: {text}");
    events.emit("-", None, EventKind::Note { text }).await;
}
