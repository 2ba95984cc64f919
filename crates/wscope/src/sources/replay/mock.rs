//! One connection of `serve --replay`, sans I/O: a [`Script`] played to a
//! live client. The serve session hands the mock each client message with
//! the time since the open, and asks it when something falls due; the
//! mock answers with [`Action`]s (send this recorded message, note this,
//! close). It reads no clock and touches no socket, so its tests run on
//! made-up times.
//!
//! Matching: a client message is compared with the next recorded client
//! message (`--match any`: with every one not used yet) by the rules of
//! [`compare::equal`]; a match schedules that exchange's replies, and
//! each exchange is used once unless `--reuse`. Scheduling: server
//! messages go out in the order they were scheduled, a reply never
//! overtaking a message scheduled before it (an unprompted greeting still
//! waiting for its recorded time holds the replies back), so a client
//! sees the server's messages in recorded order however fast it talks.

use std::collections::VecDeque;
use std::sync::Arc;

use wscope_proto::CloseCode;

use super::compare::{self, Compared, Rules};
use super::conversation::Recorded;
use super::script::{Script, ServerClose};
use crate::sources::replay::options::{MatchOrder, OnMismatch, Pace};

/// How every connection of a mock server plays its script.
#[derive(Debug, Clone)]
pub struct MockOptions {
    pub order: MatchOrder,
    /// An exchange already used may match again.
    pub reuse: bool,
    /// `replies`: unprompted messages at their recorded offsets, replies
    /// at once; `original`/`xN`: replies too at their recorded gaps
    /// (scaled); `none`: nothing waits.
    pub pace: Pace,
    pub on_mismatch: OnMismatch,
    /// What matching leaves out (`--ignore`).
    pub rules: Rules,
}

/// What the session does next.
#[derive(Debug, Clone)]
pub enum Action {
    /// Send this recorded server message.
    Send(Recorded),
    /// Report this (a `note` event).
    Note(String),
    /// Send a close frame.
    Close {
        code: Option<CloseCode>,
        reason: String,
    },
}

/// One connection's progress through its script.
#[derive(Debug)]
pub struct Mock {
    script: Arc<Script>,
    options: Arc<MockOptions>,
    /// Which exchanges have answered a client message.
    used: Vec<bool>,
    /// `--match next`: the exchange expected next.
    next: usize,
    /// What is to be sent, due times never decreasing.
    queue: VecDeque<Scheduled>,
    close_scheduled: bool,
    /// A close went out: nothing more is sent or matched.
    closed: bool,
    /// Client messages seen.
    received: u64,
}

#[derive(Debug)]
struct Scheduled {
    /// Microseconds after the open.
    due_us: u64,
    what: Due,
}

#[derive(Debug)]
enum Due {
    Message(Recorded),
    Close(ServerClose),
}

impl Mock {
    /// Starts a connection: its unprompted messages are scheduled at their
    /// recorded offsets from the open (at once with `--pace none`).
    pub fn new(script: Arc<Script>, options: Arc<MockOptions>) -> Mock {
        let mut mock = Mock {
            used: vec![false; script.exchanges.len()],
            script: Arc::clone(&script),
            options,
            next: 0,
            queue: VecDeque::new(),
            close_scheduled: false,
            closed: false,
            received: 0,
        };
        for message in &script.unprompted {
            let due = mock.scaled(message.at_us, false);
            mock.schedule(due, Due::Message(message.clone()));
        }
        mock.close_when_done(0);
        mock
    }

    /// The recorded connection this one plays.
    pub fn script(&self) -> &Script {
        &self.script
    }

    /// When the next scheduled action falls due, in microseconds after
    /// the open.
    pub fn next_due(&self) -> Option<u64> {
        self.queue.front().map(|s| s.due_us)
    }

    /// What has fallen due by `now_us`, in order.
    pub fn due(&mut self, now_us: u64) -> Vec<Action> {
        let mut out = Vec::new();
        while self.queue.front().is_some_and(|s| s.due_us <= now_us) {
            let Some(scheduled) = self.queue.pop_front() else {
                break;
            };
            match scheduled.what {
                Due::Message(message) => out.push(Action::Send(message)),
                Due::Close(close) => {
                    out.push(Action::Close {
                        code: close.code,
                        reason: close.reason,
                    });
                    self.stop();
                }
            }
        }
        out
    }

    /// A message from the client at `now_us`: a match schedules its
    /// recorded replies (and returns those already due); anything else
    /// is a note, and with `--on-mismatch close` a close 1008.
    pub fn on_client(&mut self, now_us: u64, message: &Compared) -> Vec<Action> {
        if self.closed {
            return Vec::new();
        }
        self.received += 1;
        let Some(index) = self.find(message) else {
            let (note, reason) = self.mismatch(message);
            let mut out = vec![Action::Note(note)];
            match self.options.on_mismatch {
                OnMismatch::Ignore => out.extend(self.due(now_us)),
                OnMismatch::Close => {
                    self.stop();
                    out.push(Action::Close {
                        code: Some(CloseCode::POLICY_VIOLATION),
                        reason,
                    });
                }
            }
            return out;
        };
        self.used[index] = true;
        if self.options.order == MatchOrder::Next && index == self.next {
            self.next += 1;
        }
        let script = Arc::clone(&self.script);
        let exchange = &script.exchanges[index];
        for reply in &exchange.replies {
            let gap = reply.at_us.saturating_sub(exchange.at_us);
            let due = now_us + self.scaled(gap, true);
            self.schedule(due, Due::Message(reply.clone()));
        }
        self.close_when_done(now_us);
        self.due(now_us)
    }

    /// The exchange a client message answers to, if any.
    fn find(&self, message: &Compared) -> Option<usize> {
        let exchanges = &self.script.exchanges;
        let matches = |i: usize| compare::equal(&exchanges[i].client, message, &self.options.rules);
        let fresh = match self.options.order {
            MatchOrder::Next => {
                (self.next < exchanges.len() && matches(self.next)).then_some(self.next)
            }
            MatchOrder::Any => (0..exchanges.len()).find(|&i| !self.used[i] && matches(i)),
        };
        fresh.or_else(|| {
            self.options
                .reuse
                .then(|| (0..exchanges.len()).find(|&i| self.used[i] && matches(i)))
                .flatten()
        })
    }

    /// The note for a client message that matched nothing, and the close
    /// reason that goes with it (at most 123 bytes).
    fn mismatch(&self, message: &Compared) -> (String, String) {
        let conn = &self.script.conn;
        let exchanges = &self.script.exchanges;
        let waiting: Vec<usize> = match self.options.order {
            MatchOrder::Next => (self.next..exchanges.len()).take(1).collect(),
            MatchOrder::Any => (0..exchanges.len()).filter(|&i| !self.used[i]).collect(),
        };
        let got = format!("client message {} matches no recorded one", self.received);
        // The note shows both messages; the close reason, which must fit
        // in 123 bytes, names them only.
        let (expected, shown) = match waiting.as_slice() {
            [] => {
                let again = if self.options.reuse {
                    ""
                } else {
                    " (--reuse answers them again)"
                };
                let text = format!(
                    "{conn}'s {} recorded client messages are all used{again}",
                    exchanges.len()
                );
                (text, String::new())
            }
            [one] => {
                let expected = &exchanges[*one].client;
                let mut text = format!("expected {conn} client message {}", expected.number);
                let changed = compare::json_paths(expected, message, &self.options.rules);
                if !changed.is_empty() {
                    let paths: Vec<&str> =
                        changed.iter().take(3).map(|p| p.path.as_str()).collect();
                    let more = if changed.len() > 3 { ", …" } else { "" };
                    text.push_str(&format!(" (differs at {}{more})", paths.join(", ")));
                }
                (text, format!(": {}", compare::short(&expected.payload, 60)))
            }
            many => {
                let numbers: Vec<String> = many
                    .iter()
                    .take(8)
                    .map(|&i| exchanges[i].client.number.to_string())
                    .collect();
                let more = if many.len() > 8 { ", …" } else { "" };
                let text = format!(
                    "expected one of {conn} client messages {}{more}",
                    numbers.join(", ")
                );
                (text, String::new())
            }
        };
        let note = format!(
            "{got}: {}; {expected}{shown}",
            compare::short(&message.payload, 60)
        );
        let reason = fit_close_reason(format!("{got}; {expected}"));
        (note, reason)
    }

    /// Schedules `what` at `due_us`, or after the last thing scheduled.
    fn schedule(&mut self, due_us: u64, what: Due) {
        let after = self.queue.back().map_or(0, |last| last.due_us);
        self.queue.push_back(Scheduled {
            due_us: due_us.max(after),
            what,
        });
    }

    /// Once every exchange has been used, the recorded server's close
    /// follows the last scheduled message.
    fn close_when_done(&mut self, now_us: u64) {
        if self.close_scheduled || self.used.contains(&false) {
            return;
        }
        if let Some(close) = self.script.close.clone() {
            self.close_scheduled = true;
            self.schedule(now_us, Due::Close(close));
        }
    }

    /// A recorded time or gap as paced.
    fn scaled(&self, us: u64, reply: bool) -> u64 {
        match self.options.pace {
            Pace::None => 0,
            Pace::Replies if reply => 0,
            Pace::Replies => us,
            Pace::Original(factor) => (us as f64 * factor) as u64,
        }
    }

    fn stop(&mut self) {
        self.closed = true;
        self.queue.clear();
    }
}

/// A close reason cut at a character boundary to the 123 bytes a close
/// frame holds (RFC 6455 section 5.5), so the event says what was sent.
fn fit_close_reason(mut reason: String) -> String {
    if reason.len() > 123 {
        let mut end = 120;
        while !reason.is_char_boundary(end) {
            end -= 1;
        }
        reason.truncate(end);
        reason.push('…');
    }
    reason
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sources::replay::conversation::RecordedClose;
    use crate::sources::replay::script::tests::conversation;
    use wscope_events::filter::parse_json_path;
    use wscope_events::{Direction, Payload};

    fn options(order: MatchOrder, reuse: bool, on_mismatch: OnMismatch) -> Arc<MockOptions> {
        Arc::new(MockOptions {
            order,
            reuse,
            pace: Pace::Replies,
            on_mismatch,
            rules: Rules::default(),
        })
    }

    /// Greeting at 5 ms; login → welcome (2 ms later); sub → subscribed
    /// (1 ms), quote (10 ms); the server closes with 4000 at the end.
    fn script() -> Arc<Script> {
        let mut conv = conversation(&[
            ("<", 5_000, "hello"),
            (">", 10_000, r#"{"op":"login","id":1}"#),
            ("<", 12_000, "welcome"),
            (">", 30_000, r#"{"op":"sub","id":2,"topic":"a"}"#),
            ("<", 31_000, "subscribed"),
            ("<", 40_000, "quote"),
        ]);
        conv.close = Some(RecordedClose {
            dir: Direction::ServerToClient,
            code: Some(4000),
            reason: "done".into(),
        });
        Arc::new(Script::from_conversation(&conv))
    }

    fn client(text: &str) -> Compared {
        Compared {
            number: 0,
            binary: false,
            payload: Payload::capture(text.as_bytes(), true, usize::MAX),
        }
    }

    const LOGIN: &str = r#"{"op":"login","id":1}"#;
    const SUB: &str = r#"{"op":"sub","id":2,"topic":"a"}"#;

    /// What the actions say, in short: `hello`, `note`, `close 4000`.
    fn said(actions: &[Action]) -> Vec<String> {
        actions
            .iter()
            .map(|a| match a {
                Action::Send(m) => m.payload.text.clone().unwrap(),
                Action::Note(_) => "note".into(),
                Action::Close { code, .. } => format!("close {}", code.map_or(0, |c| c.0)),
            })
            .collect()
    }

    #[test]
    fn in_order_replies_follow_their_client_message_then_the_recorded_close() {
        let mut mock = Mock::new(
            script(),
            options(MatchOrder::Next, false, OnMismatch::Ignore),
        );
        assert_eq!(mock.next_due(), Some(5_000));
        assert!(mock.due(4_999).is_empty());
        assert_eq!(said(&mock.due(5_000)), ["hello"]);
        assert_eq!(mock.next_due(), None);
        assert_eq!(said(&mock.on_client(6_000, &client(LOGIN))), ["welcome"]);
        // Key order is no difference.
        let sub = r#"{"topic":"a","id":2,"op":"sub"}"#;
        assert_eq!(
            said(&mock.on_client(7_000, &client(sub))),
            ["subscribed", "quote", "close 4000"]
        );
        assert_eq!(mock.next_due(), None);
        assert!(mock.on_client(8_000, &client(LOGIN)).is_empty());
    }

    #[test]
    fn a_reply_never_overtakes_an_unprompted_message_still_waiting() {
        let mut mock = Mock::new(
            script(),
            options(MatchOrder::Next, false, OnMismatch::Ignore),
        );
        assert!(mock.on_client(1_000, &client(LOGIN)).is_empty());
        assert_eq!(mock.next_due(), Some(5_000));
        assert_eq!(said(&mock.due(5_000)), ["hello", "welcome"]);
    }

    #[test]
    fn out_of_order_is_a_mismatch_unless_any_order_is_allowed() {
        let mut mock = Mock::new(
            script(),
            options(MatchOrder::Next, false, OnMismatch::Ignore),
        );
        mock.due(5_000);
        let actions = mock.on_client(6_000, &client(SUB));
        assert_eq!(said(&actions), ["note"]);
        let Action::Note(note) = &actions[0] else {
            unreachable!()
        };
        assert!(
            note.starts_with("client message 1 matches no recorded one: {\"op\":\"sub\""),
            "{note}"
        );
        assert!(
            note.ends_with(
                "; expected c1 client message 1 (differs at json.op, json.id, json.topic): {\"op\":\"login\",\"id\":1}"
            ),
            "{note}"
        );
        // Ignored: the script is where it was.
        assert_eq!(said(&mock.on_client(7_000, &client(LOGIN))), ["welcome"]);

        let mut mock = Mock::new(
            script(),
            options(MatchOrder::Any, false, OnMismatch::Ignore),
        );
        mock.due(5_000);
        assert_eq!(
            said(&mock.on_client(6_000, &client(SUB))),
            ["subscribed", "quote"]
        );
        assert_eq!(
            said(&mock.on_client(7_000, &client(LOGIN))),
            ["welcome", "close 4000"]
        );
    }

    #[test]
    fn an_exchange_is_used_once_unless_reuse() {
        let mut mock = Mock::new(
            script(),
            options(MatchOrder::Any, false, OnMismatch::Ignore),
        );
        mock.due(5_000);
        assert_eq!(said(&mock.on_client(6_000, &client(LOGIN))), ["welcome"]);
        let actions = mock.on_client(7_000, &client(LOGIN));
        assert_eq!(said(&actions), ["note"]);
        let Action::Note(note) = &actions[0] else {
            unreachable!()
        };
        assert!(note.contains("expected c1 client message 2"), "{note}");

        for order in [MatchOrder::Next, MatchOrder::Any] {
            let mut mock = Mock::new(script(), options(order, true, OnMismatch::Ignore));
            mock.due(5_000);
            assert_eq!(said(&mock.on_client(6_000, &client(LOGIN))), ["welcome"]);
            assert_eq!(
                said(&mock.on_client(7_000, &client(LOGIN))),
                ["welcome"],
                "{order:?}"
            );
            assert_eq!(
                said(&mock.on_client(8_000, &client(SUB))),
                ["subscribed", "quote", "close 4000"],
                "{order:?}"
            );
        }
    }

    #[test]
    fn a_message_after_the_script_names_what_was_used() {
        let mut conv = conversation(&[(">", 1, "a"), ("<", 2, "b")]);
        conv.close = None;
        let script = Arc::new(Script::from_conversation(&conv));
        let mut mock = Mock::new(script, options(MatchOrder::Next, false, OnMismatch::Ignore));
        assert_eq!(said(&mock.on_client(0, &client("a"))), ["b"]);
        let actions = mock.on_client(0, &client("a"));
        let [Action::Note(note)] = actions.as_slice() else {
            panic!("{actions:?}")
        };
        assert_eq!(
            note,
            "client message 2 matches no recorded one: a; c1's 1 recorded client messages are all used (--reuse answers them again)"
        );
    }

    #[test]
    fn on_mismatch_close_closes_with_1008_and_stops() {
        let mut mock = Mock::new(
            script(),
            options(MatchOrder::Next, false, OnMismatch::Close),
        );
        let actions = mock.on_client(0, &client("surprise"));
        assert_eq!(said(&actions), ["note", "close 1008"]);
        let Action::Close { reason, .. } = &actions[1] else {
            unreachable!()
        };
        assert_eq!(
            reason,
            "client message 1 matches no recorded one; expected c1 client message 1"
        );
        assert!(reason.len() <= 123);
        // The greeting that was still due is not sent, nor anything else.
        assert_eq!(mock.next_due(), None);
        assert!(mock.on_client(1, &client(LOGIN)).is_empty());

        let long = fit_close_reason("é".repeat(100));
        assert!(long.len() <= 123 && long.ends_with('…'), "{long}");
    }

    #[test]
    fn ignored_paths_do_not_count_when_matching() {
        let mut options = MockOptions {
            order: MatchOrder::Next,
            reuse: false,
            pace: Pace::Replies,
            on_mismatch: OnMismatch::Ignore,
            rules: Rules::default(),
        };
        let other_id = r#"{"op":"login","id":99}"#;
        let mut mock = Mock::new(script(), Arc::new(options.clone()));
        mock.due(5_000);
        assert_eq!(said(&mock.on_client(6_000, &client(other_id))), ["note"]);
        options.rules.ignore = vec![parse_json_path("json.id").unwrap()];
        let mut mock = Mock::new(script(), Arc::new(options));
        mock.due(5_000);
        assert_eq!(said(&mock.on_client(6_000, &client(other_id))), ["welcome"]);
    }

    #[test]
    fn pacing() {
        let paced = |pace| {
            Arc::new(MockOptions {
                order: MatchOrder::Next,
                reuse: false,
                pace,
                on_mismatch: OnMismatch::Ignore,
                rules: Rules::default(),
            })
        };
        // original: replies keep their recorded gaps after the client's
        // message (sub at 30 ms; subscribed 1 ms, quote 10 ms after it).
        let mut mock = Mock::new(script(), paced(Pace::Original(1.0)));
        assert_eq!(said(&mock.due(5_000)), ["hello"]);
        assert!(mock.on_client(100_000, &client(LOGIN)).is_empty());
        assert_eq!(mock.next_due(), Some(102_000));
        assert_eq!(said(&mock.due(102_000)), ["welcome"]);
        assert!(mock.on_client(200_000, &client(SUB)).is_empty());
        assert_eq!(said(&mock.due(201_000)), ["subscribed"]);
        assert_eq!(mock.next_due(), Some(210_000));
        assert_eq!(said(&mock.due(210_000)), ["quote", "close 4000"]);

        // x2: everything twice as fast.
        let mock = Mock::new(script(), paced(Pace::Original(0.5)));
        assert_eq!(mock.next_due(), Some(2_500));

        // none: the greeting at once, replies at once.
        let mut mock = Mock::new(script(), paced(Pace::None));
        assert_eq!(said(&mock.due(0)), ["hello"]);
        assert_eq!(said(&mock.on_client(1, &client(LOGIN))), ["welcome"]);
    }

    #[test]
    fn a_script_without_exchanges_closes_after_its_unprompted_messages() {
        let mut conv = conversation(&[("<", 1_000, "tick"), ("<", 2_000, "tock")]);
        conv.close = Some(RecordedClose {
            dir: Direction::ServerToClient,
            code: None,
            reason: String::new(),
        });
        let script = Arc::new(Script::from_conversation(&conv));
        let mut mock = Mock::new(script, options(MatchOrder::Next, false, OnMismatch::Ignore));
        assert_eq!(said(&mock.due(1_000)), ["tick"]);
        assert_eq!(said(&mock.due(2_000)), ["tock", "close 0"]);
    }
}
