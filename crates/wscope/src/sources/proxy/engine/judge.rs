//! What the rules make of one message or control frame, and of time: the
//! plan for the message itself, and the actions on the connection (inject,
//! close, pause, reset) that go where they name. Every action taken adds a
//! note saying which rule did what, so a record shows both what was sent
//! and why the other side saw something else.

use std::sync::Arc;
use std::time::{Duration, Instant};

use wscope_events::filter::PathStep;
use wscope_events::{Direction, Event, EventKind, Frame, Message, Payload};
use wscope_proto::{FrameHeader, OpCode};

use super::{Act, Cut, Engine, both, index};
use crate::sources::rules::{Action, Replace, Sides};

/// How much of a payload the rules' filters see.
const RULE_VIEW: usize = 1024 * 1024;

/// A whole data message as the tap decoded it.
pub(super) struct Whole {
    pub opcode: OpCode,
    /// The payload, decompressed: whole, or only what events keep of an
    /// uncompressed binary message no rule reads (`Tap::keep_whole_binary`).
    pub data: Vec<u8>,
    /// Its true length.
    pub len: u64,
    pub compressed: bool,
    pub frames: u32,
}

/// What the rules decided for one message or control frame.
#[derive(Default)]
struct Plan {
    drop: bool,
    delay: Option<(Duration, bool)>,
    rate: Option<u64>,
    replaced: Option<Vec<u8>>,
    /// What goes the same way after it (injections, a close).
    then: Vec<Act>,
}

impl Engine {
    /// A whole data message has arrived: `wire` is its frames as sent.
    pub(super) fn judge_message(
        &mut self,
        dir: Direction,
        whole: Whole,
        wire: Vec<u8>,
        now: Instant,
    ) {
        let text = whole.opcode == OpCode::Text;
        // Only a filter looks at the payload: without one, skip the copy;
        // a binary payload only `payload` reads (a `json.` filter never
        // looks at a 64 KiB binary message, so it is not copied for one).
        let view = match &self.rules {
            Some(rules) if rules.filters() && (text || rules.filters_binary()) => RULE_VIEW,
            _ => 0,
        };
        let mut payload = Payload::capture(&whole.data, text, view);
        payload.truncated |= (whole.data.len() as u64) < whole.len;
        payload.len = whole.len;
        let event = Event::now(
            &self.id,
            Some(dir),
            EventKind::Message(Message {
                opcode: whole.opcode.name().to_owned(),
                payload,
                compressed: whole.compressed,
                frames: whole.frames,
            }),
        );
        let what = format!("this {} message", whole.opcode.name());
        let mut plan = self.decide(&event, &whole.data, text, &what, dir, now);
        if !plan.drop {
            let bytes = match plan.replaced.take() {
                Some(new) => self.encode(dir, whole.opcode, &new, whole.compressed),
                None if whole.compressed => self.encode(dir, whole.opcode, &whole.data, true),
                None => wire,
            };
            self.queue(dir, bytes, &plan, now);
        }
        for act in plan.then {
            self.act(dir, act, now);
        }
    }

    /// A control frame has arrived whole.
    pub(super) fn judge_control(
        &mut self,
        dir: Direction,
        header: FrameHeader,
        wire: Vec<u8>,
        payload: &[u8],
        now: Instant,
    ) {
        let event = Event::now(
            &self.id,
            Some(dir),
            EventKind::Frame(Frame::new(&header, payload, true)),
        );
        let what = format!("this {} frame", header.opcode.name());
        let plan = self.decide(&event, payload, false, &what, dir, now);
        if !plan.drop {
            self.queue(dir, wire, &plan, now);
        }
        for act in plan.then {
            self.act(dir, act, now);
        }
    }

    fn queue(&mut self, dir: Direction, bytes: Vec<u8>, plan: &Plan, now: Instant) {
        let (due, reorder) = match plan.delay {
            Some((delay, reorder)) => (now + delay, reorder),
            None => (now, false),
        };
        self.flows[index(dir)]
            .queue
            .push(due, bytes, plan.rate, reorder);
    }

    /// Asks the rules about one message or control frame, carries out what
    /// acts on other things and returns what happens to the message itself.
    fn decide(
        &mut self,
        event: &Event,
        data: &[u8],
        text: bool,
        what: &str,
        dir: Direction,
        now: Instant,
    ) -> Plan {
        let Some(state) = &mut self.rules else {
            return Plan::default();
        };
        if state.is_empty() {
            return Plan::default();
        }
        let acting = state.on_message(event, now);
        let set = Arc::clone(state.set());
        let mut plan = Plan::default();
        for i in acting {
            let rule = &set.rules[i];
            let did = match &rule.action {
                Action::Delay {
                    delay,
                    jitter,
                    reorder,
                } => {
                    let held = jittered(*delay, *jitter);
                    plan.delay = Some((held, *reorder));
                    format!("held {what} {}", millis(held))
                }
                Action::Drop => {
                    plan.drop = true;
                    format!("dropped {what}")
                }
                Action::Replace(replace) => {
                    let current = plan.replaced.as_deref().unwrap_or(data);
                    match (text, rewrite(replace, current)) {
                        (true, Some(new)) => {
                            let did = format!("rewrote {what}: {}", preview(&new));
                            plan.replaced = Some(new);
                            did
                        }
                        _ => continue,
                    }
                }
                Action::Throttle { rate } => {
                    plan.rate = Some(*rate);
                    format!("paced {what} at {}/s", bytes(*rate))
                }
                Action::IdleTimeout { .. } => continue,
                action => match self.on_connection(action, Some(dir), &mut plan.then, now) {
                    Some(did) => did,
                    None => continue,
                },
            };
            self.note(Some(dir), format!("{}: {did}", rule.label));
        }
        plan
    }

    /// Inject, close, reset and pause act on the connection, not on a
    /// message: each goes where it names, toward the triggering message's
    /// own receiver after that message (`then`), elsewhere at once. `None`
    /// for the actions that act on messages.
    fn on_connection(
        &mut self,
        action: &Action,
        from: Option<Direction>,
        then: &mut Vec<Act>,
        now: Instant,
    ) -> Option<String> {
        let mut route = |engine: &mut Engine, sides: Sides, act: &dyn Fn() -> Act| {
            for target in both().into_iter().filter(|d| sides.includes(*d)) {
                if Some(target) == from {
                    then.push(act());
                } else {
                    engine.act(target, act(), now);
                }
            }
        };
        Some(match action {
            Action::Inject { to, message, .. } => {
                route(self, *to, &|| Act::Inject(message.clone()));
                format!("sent {message} {}", describe_sides(*to))
            }
            Action::Close { to, code, reason } => {
                route(self, *to, &|| Act::Close {
                    code: *code,
                    reason: reason.clone(),
                });
                format!("sent close {code} {}", describe_sides(*to))
            }
            Action::Reset => {
                self.cut(Cut::Reset);
                "reset both TCP connections".to_owned()
            }
            Action::Pause {
                duration,
                direction,
            } => {
                let sides = direction.unwrap_or(from.map_or(Sides::Both, Sides::One));
                route(self, sides, &|| Act::Pause(*duration));
                format!("paused {} for {}", describe_dirs(sides), millis(*duration))
            }
            _ => return None,
        })
    }

    /// The timed rules (inject on an interval, close or reset at a time,
    /// idle timeouts).
    pub(super) fn fire_timers(&mut self, now: Instant) {
        let active = self.active;
        let Some(state) = &mut self.rules else {
            return;
        };
        if state.next_timer().is_none_or(|at| at > now) {
            return;
        }
        let acting = state.on_timer(now, active);
        let set = Arc::clone(state.set());
        for i in acting {
            let rule = &set.rules[i];
            let did = match &rule.action {
                Action::IdleTimeout {
                    timeout,
                    code: Some(code),
                } => {
                    for dir in both() {
                        self.act(
                            dir,
                            Act::Close {
                                code: *code,
                                reason: "idle timeout".to_owned(),
                            },
                            now,
                        );
                    }
                    format!(
                        "idle for {}: sent close {code} to both sides",
                        millis(*timeout)
                    )
                }
                Action::IdleTimeout {
                    timeout,
                    code: None,
                } => {
                    self.cut(Cut::Hangup);
                    format!("idle for {}: closed both TCP connections", millis(*timeout))
                }
                action => match self.on_connection(action, None, &mut Vec::new(), now) {
                    Some(did) => did,
                    None => continue,
                },
            };
            self.note(None, format!("{}: {did}", rule.label));
        }
    }
}

fn toward(dir: Direction) -> &'static str {
    match dir {
        Direction::ClientToServer => "to the server",
        Direction::ServerToClient => "to the client",
    }
}

fn jittered(delay: Duration, jitter: Duration) -> Duration {
    if jitter.is_zero() {
        return delay;
    }
    let offset = (rand::random::<f64>() * 2.0 - 1.0) * jitter.as_secs_f64();
    Duration::from_secs_f64((delay.as_secs_f64() + offset).max(0.0))
}

fn millis(d: Duration) -> String {
    if d.as_millis() >= 10_000 {
        format!("{:.1} s", d.as_secs_f64())
    } else {
        format!("{} ms", d.as_millis())
    }
}

pub(super) fn bytes(n: u64) -> String {
    match n {
        0..1024 => format!("{n} B"),
        1024..1_048_576 => format!("{:.1} KiB", n as f64 / 1024.0),
        _ => format!("{:.1} MiB", n as f64 / 1_048_576.0),
    }
}

fn describe_sides(to: Sides) -> &'static str {
    match to {
        Sides::One(dir) => toward(dir),
        Sides::Both => "to both sides",
    }
}

fn describe_dirs(sides: Sides) -> &'static str {
    match sides {
        Sides::One(Direction::ClientToServer) => "client to server",
        Sides::One(Direction::ServerToClient) => "server to client",
        Sides::Both => "both directions",
    }
}

fn preview(data: &[u8]) -> String {
    let text = String::from_utf8_lossy(data);
    let cut: String = text.chars().take(80).collect();
    if cut.len() < text.len() {
        format!("{cut:?}…")
    } else {
        format!("{cut:?}")
    }
}

/// The rewritten text, or `None` when the rule does not apply (no match,
/// not JSON, a path that cannot be set).
fn rewrite(replace: &Replace, data: &[u8]) -> Option<Vec<u8>> {
    let text = std::str::from_utf8(data).ok()?;
    match replace {
        Replace::Regex { regex, with } => {
            if !regex.is_match(text) {
                return None;
            }
            Some(
                regex
                    .replace_all(text, with.as_str())
                    .into_owned()
                    .into_bytes(),
            )
        }
        Replace::Json { path, value } => {
            let mut doc: serde_json::Value = serde_json::from_str(text).ok()?;
            set_path(&mut doc, path, value.clone())?;
            Some(doc.to_string().into_bytes())
        }
    }
}

/// Sets `path` in `doc` to `value`, making objects for missing keys (as
/// jq's `setpath` does); an index past an array's end cannot be set.
fn set_path(
    doc: &mut serde_json::Value,
    path: &[PathStep],
    value: serde_json::Value,
) -> Option<()> {
    let Some((step, rest)) = path.split_first() else {
        *doc = value;
        return Some(());
    };
    let next = match step {
        PathStep::Key(key) => {
            if doc.is_null() {
                *doc = serde_json::Value::Object(Default::default());
            }
            doc.as_object_mut()?
                .entry(key.clone())
                .or_insert(serde_json::Value::Null)
        }
        PathStep::Index(i) => doc.as_array_mut()?.get_mut(*i)?,
    };
    set_path(next, rest, value)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn steps(path: &str) -> Vec<PathStep> {
        match wscope_events::filter::parse(&format!("json.{path} exists")).unwrap() {
            wscope_events::filter::Expr::Exists(wscope_events::filter::Field::Json(steps)) => steps,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn json_paths_are_set_or_made() {
        let mut doc = json!({"user": {"name": "alice"}, "items": [1, 2]});
        set_path(&mut doc, &steps("user.name"), json!("mallory")).unwrap();
        set_path(&mut doc, &steps("items[1]"), json!(20)).unwrap();
        set_path(&mut doc, &steps("meta.seen"), json!(true)).unwrap();
        assert_eq!(
            doc,
            json!({"user": {"name": "mallory"}, "items": [1, 20], "meta": {"seen": true}})
        );
        assert!(set_path(&mut doc, &steps("items[5]"), json!(0)).is_none());
        assert!(set_path(&mut doc, &steps("user.name.first"), json!(0)).is_none());
    }

    #[test]
    fn regex_rewrites_only_what_matches() {
        let replace = Replace::Regex {
            regex: regex::Regex::new(r"price=(\d+)").unwrap(),
            with: "price=0 (was $1)".to_owned(),
        };
        assert_eq!(
            rewrite(&replace, b"a price=42 b").unwrap(),
            b"a price=0 (was 42) b"
        );
        assert!(rewrite(&replace, b"nothing here").is_none());
    }
}
