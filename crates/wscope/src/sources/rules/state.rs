//! What the rules do to one connection: which rule acts on which message,
//! and when the timed ones fire. Pure bookkeeping, no I/O: the relay asks,
//! then carries the answer out and records it.
//!
//! A rule is *message-triggered* when it has a `match`, or when its action
//! acts on a message (delay, drop, replace, throttle): it is asked about
//! every message and control frame. It is *timed* otherwise (inject, close,
//! reset or pause with no `match`; idle-timeout always): it fires at `after`
//! (at once when absent), an inject then again every `every`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use wscope_events::Event;

use super::{Action, After, Rule, RuleSet};

pub struct RuleState {
    set: Arc<RuleSet>,
    opened: Instant,
    matched: Vec<u64>,
    acted: Vec<u64>,
    /// Timed rules: when each fires next (`None`: done, or not timed).
    next: Vec<Option<Instant>>,
}

fn timed(rule: &Rule) -> bool {
    match rule.action {
        Action::IdleTimeout { .. } => true,
        Action::Inject { .. } | Action::Close { .. } | Action::Reset | Action::Pause { .. } => {
            rule.filter.is_none() && !matches!(rule.after, Some(After::Matches(_)))
        }
        _ => false,
    }
}

impl RuleState {
    pub fn new(set: Arc<RuleSet>, opened: Instant) -> RuleState {
        let mut state = RuleState {
            set: Arc::new(RuleSet::default()),
            opened,
            matched: Vec::new(),
            acted: Vec::new(),
            next: Vec::new(),
        };
        state.replace(set, opened);
        state
    }

    /// Takes a reloaded rule set. Counts start again; timed rules count
    /// from the connection's opening, and those whose time has passed fire
    /// now.
    pub fn replace(&mut self, set: Arc<RuleSet>, now: Instant) {
        let n = set.rules.len();
        self.matched = vec![0; n];
        self.acted = vec![0; n];
        self.next = set
            .rules
            .iter()
            .map(|rule| {
                if !timed(rule) {
                    return None;
                }
                Some(match (&rule.action, rule.after) {
                    (Action::IdleTimeout { timeout, .. }, _) => self.opened + *timeout,
                    (_, Some(After::Time(at))) => (self.opened + at).max(now),
                    _ => now,
                })
            })
            .collect();
        self.set = set;
    }

    pub fn set(&self) -> &Arc<RuleSet> {
        &self.set
    }

    /// Whether there are no rules at all.
    pub fn is_empty(&self) -> bool {
        self.set.is_empty()
    }

    /// Whether any message-triggered rule looks at messages through a
    /// filter (without one, the relay need not show it their payloads).
    pub fn filters(&self) -> bool {
        self.set
            .rules
            .iter()
            .any(|rule| rule.filter.as_ref().is_some_and(|f| f.reads_payload()) && !timed(rule))
    }

    /// Whether any of those filters reads binary payloads (`payload`).
    pub fn filters_binary(&self) -> bool {
        self.set
            .rules
            .iter()
            .any(|rule| rule.filter.as_ref().is_some_and(|f| f.reads_binary()) && !timed(rule))
    }

    /// The rules (indices into [`RuleState::set`]) that act on `event`, a
    /// message or a control frame, in order; a drop ends the list.
    pub fn on_message(&mut self, event: &Event, now: Instant) -> Vec<usize> {
        let mut acting = Vec::new();
        for (i, rule) in self.set.rules.iter().enumerate() {
            if timed(rule) {
                continue;
            }
            if rule.filter.as_ref().is_some_and(|f| !f.matches(event)) {
                continue;
            }
            if let Some(After::Time(at)) = rule.after
                && now < self.opened + at
            {
                continue;
            }
            self.matched[i] += 1;
            if let Some(After::Matches(n)) = rule.after
                && self.matched[i] <= n
            {
                continue;
            }
            if !self.may_act(i, rule) {
                continue;
            }
            self.acted[i] += 1;
            acting.push(i);
            if matches!(rule.action, Action::Drop) {
                break;
            }
        }
        acting
    }

    fn may_act(&self, i: usize, rule: &Rule) -> bool {
        if rule.count.is_some_and(|c| self.acted[i] >= c) {
            return false;
        }
        rule.probability.is_none_or(|p| rand::random::<f64>() < p)
    }

    /// When the next timed rule fires, given when traffic last passed.
    pub fn next_timer(&self) -> Option<Instant> {
        self.next.iter().flatten().min().copied()
    }

    /// The timed rules due at `now`. `idle_since` is when the last frame
    /// passed either way; an idle timeout that finds traffic since is
    /// pushed back instead of firing.
    pub fn on_timer(&mut self, now: Instant, idle_since: Instant) -> Vec<usize> {
        let mut acting = Vec::new();
        for (i, rule) in self.set.rules.iter().enumerate() {
            let Some(due) = self.next[i] else { continue };
            if due > now {
                continue;
            }
            self.next[i] = match rule.action {
                Action::IdleTimeout { timeout, .. } => {
                    let quiet_until = idle_since + timeout;
                    if quiet_until > now {
                        self.next[i] = Some(quiet_until);
                        continue;
                    }
                    None
                }
                Action::Inject {
                    every: Some(every), ..
                } => Some(now + every.max(Duration::from_millis(1))),
                _ => None,
            };
            if !self.may_act(i, rule) {
                continue;
            }
            self.acted[i] += 1;
            if rule.count.is_some_and(|c| self.acted[i] >= c) {
                self.next[i] = None;
            }
            acting.push(i);
        }
        acting
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sources::rules::file::parse;
    use wscope_events::{Direction, EventKind, Message, Payload};

    fn text(dir: Direction, body: &str) -> Event {
        Event::now(
            "c1",
            Some(dir),
            EventKind::Message(Message {
                opcode: "text".to_owned(),
                payload: Payload::capture(body.as_bytes(), true, 1 << 20),
                compressed: false,
                frames: 1,
            }),
        )
    }

    fn state(rules: &str) -> (RuleState, Instant) {
        let now = Instant::now();
        (RuleState::new(Arc::new(parse(rules).unwrap()), now), now)
    }

    fn names(s: &RuleState, acting: Vec<usize>) -> Vec<&'static str> {
        acting
            .iter()
            .map(|&i| s.set().rules[i].action.name())
            .collect()
    }

    #[test]
    fn after_and_count_bound_a_rule() {
        let (mut s, now) =
            state("[[rule]]\nmatch = '\"x\"'\naction = \"drop\"\nafter = 1\ncount = 2\n");
        let c2s = Direction::ClientToServer;
        let acted: Vec<usize> = (0..5)
            .map(|_| s.on_message(&text(c2s, "x"), now).len())
            .collect();
        assert_eq!(acted, [0, 1, 1, 0, 0]);
        assert!(s.on_message(&text(c2s, "y"), now).is_empty());
    }

    #[test]
    fn a_drop_ends_the_list() {
        let (mut s, now) = state(
            "[[rule]]\naction = \"delay\"\ndelay = \"1s\"\n[[rule]]\naction = \"drop\"\n[[rule]]\naction = \"throttle\"\nrate = \"1KiB/s\"\n",
        );
        let dir = Direction::ServerToClient;
        let acting = s.on_message(&text(dir, "a"), now);
        assert_eq!(names(&s, acting), ["delay", "drop"]);
    }

    #[test]
    fn timed_rules_fire_at_their_time() {
        let (mut s, now) = state(
            "[[rule]]\naction = \"close\"\nafter = \"30s\"\n[[rule]]\naction = \"inject\"\ntext = \"hi\"\nevery = \"10s\"\ncount = 2\n",
        );
        assert_eq!(s.next_timer(), Some(now));
        let acting = s.on_timer(now, now);
        assert_eq!(names(&s, acting), ["inject"]);
        assert_eq!(s.next_timer(), Some(now + Duration::from_secs(10)));
        let acting = s.on_timer(now + Duration::from_secs(10), now);
        assert_eq!(names(&s, acting), ["inject"]);
        assert_eq!(s.next_timer(), Some(now + Duration::from_secs(30)));
        let acting = s.on_timer(now + Duration::from_secs(30), now);
        assert_eq!(names(&s, acting), ["close"]);
        assert_eq!(s.next_timer(), None);
    }

    #[test]
    fn idle_timeout_waits_for_quiet() {
        let (mut s, now) = state("[[rule]]\naction = \"idle-timeout\"\ntimeout = \"60s\"\n");
        let t = |secs| now + Duration::from_secs(secs);
        // Traffic at 50 s: at 60 s it is not idle yet, and waits until 110 s.
        assert!(s.on_timer(t(60), t(50)).is_empty());
        assert_eq!(s.next_timer(), Some(t(110)));
        let acting = s.on_timer(t(110), t(50));
        assert_eq!(names(&s, acting), ["idle-timeout"]);
    }
}
