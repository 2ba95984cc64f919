//! Rules: faults and rewrites the proxy applies on purpose (delay, drop,
//! replace, inject, close, reset, throttle, idle timeout, pause), so an
//! application can be tested against a connection that misbehaves.
//!
//! A [`RuleSet`] comes from a TOML file (`--rules`, [`file`]) and from the
//! shortcut flags (`--latency`, `--drop-rate`, ...; [`RuleSet::from_flags`]).
//! It is immutable; [`reload`] swaps in a new one when the file changes.
//! What a rule does to one connection is decided by [`state::RuleState`];
//! the proxy's relay carries it out and records a note for each action.
//! docs/RULES.md is the manual.

pub mod file;
pub mod reload;
pub mod state;

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use clap::Args;
use wscope_events::Direction;
use wscope_events::filter::{Expr, PathStep};

use crate::values::{parse_close_code, parse_duration, parse_probability, parse_rate};

/// Every rule in force, in order.
#[derive(Debug, Default)]
pub struct RuleSet {
    pub rules: Vec<Rule>,
}

/// One rule: when it applies and what it does.
#[derive(Debug)]
pub struct Rule {
    /// How notes name it: `rule 2 (line 7)`, or the flag it came from.
    pub label: String,
    /// Which messages and control frames it applies to (`None`: all).
    pub filter: Option<Expr>,
    /// The chance it acts on a match.
    pub probability: Option<f64>,
    /// From when it acts.
    pub after: Option<After>,
    /// At most this many times per connection.
    pub count: Option<u64>,
    pub action: Action,
}

/// When a rule starts acting.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum After {
    /// After this many matches have passed untouched.
    Matches(u64),
    /// Once the connection is this old.
    Time(Duration),
}

/// One or both directions (for `to = "client" | "server" | "both"` and
/// `direction = "c2s" | "s2c" | "both"`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sides {
    One(Direction),
    Both,
}

impl Sides {
    pub fn includes(self, dir: Direction) -> bool {
        match self {
            Sides::One(d) => d == dir,
            Sides::Both => true,
        }
    }
}

#[derive(Debug)]
pub enum Action {
    /// Hold the message for `delay` ± `jitter` before forwarding it.
    Delay {
        delay: Duration,
        jitter: Duration,
        /// Let a shorter delay overtake a longer one.
        reorder: bool,
    },
    /// Do not forward the message.
    Drop,
    /// Rewrite a text message.
    Replace(Replace),
    /// Send a message of our own (once, or every `every`).
    Inject {
        /// Toward whom: `One(S2C)` is the client.
        to: Sides,
        message: Injected,
        every: Option<Duration>,
    },
    /// Send a close frame to one or both sides.
    Close {
        to: Sides,
        code: u16,
        reason: String,
    },
    /// Abort both TCP connections (the peers see 1006).
    Reset,
    /// Pace matching traffic at `rate` bytes per second.
    Throttle { rate: u64 },
    /// Close a connection idle (nothing either way) for `timeout`: with a
    /// close frame of `code`, or by closing TCP as load balancers do.
    IdleTimeout {
        timeout: Duration,
        code: Option<u16>,
    },
    /// Stop forwarding for `duration`: the given directions, or the
    /// matched message's own.
    Pause {
        duration: Duration,
        direction: Option<Sides>,
    },
}

impl Action {
    pub fn name(&self) -> &'static str {
        match self {
            Action::Delay { .. } => "delay",
            Action::Drop => "drop",
            Action::Replace(_) => "replace",
            Action::Inject { .. } => "inject",
            Action::Close { .. } => "close",
            Action::Reset => "reset",
            Action::Throttle { .. } => "throttle",
            Action::IdleTimeout { .. } => "idle-timeout",
            Action::Pause { .. } => "pause",
        }
    }
}

#[derive(Debug)]
pub enum Replace {
    /// Every match of `regex` in the text becomes `with` (`$1` refers to
    /// groups).
    Regex { regex: regex::Regex, with: String },
    /// Set a path in a JSON text to a value.
    Json {
        path: Vec<PathStep>,
        value: serde_json::Value,
    },
}

/// A message a rule sends.
#[derive(Debug, Clone)]
pub enum Injected {
    Text(String),
    Binary(Vec<u8>),
}

impl fmt::Display for Injected {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Injected::Text(text) => {
                let preview: String = text.chars().take(60).collect();
                let more = if preview.len() < text.len() {
                    "…"
                } else {
                    ""
                };
                write!(f, "text {preview:?}{more}")
            }
            Injected::Binary(data) => write!(f, "{} binary bytes", data.len()),
        }
    }
}

impl RuleSet {
    /// The rules the shortcut flags stand for, in flag order.
    pub fn from_flags(flags: &FaultArgs) -> RuleSet {
        let mut rules = Vec::new();
        let mut add = |label: &str, filter: Option<&str>, probability, after, action| {
            rules.push(Rule {
                label: label.to_owned(),
                filter: filter.map(|f| wscope_events::filter::parse(f).expect("built-in filter")),
                probability,
                after,
                count: None,
                action,
            });
        };
        if let Some(delay) = flags.latency {
            let action = Action::Delay {
                delay,
                jitter: flags.jitter.unwrap_or_default(),
                reorder: false,
            };
            add("--latency", None, None, None, action);
        }
        if let Some(rate) = flags.drop_rate {
            let data = Some("opcode in {text, binary}");
            add("--drop-rate", data, Some(rate), None, Action::Drop);
        }
        if let Some(rate) = flags.bandwidth {
            add("--bandwidth", None, None, None, Action::Throttle { rate });
        }
        if let Some(at) = flags.close_after {
            let action = Action::Close {
                to: Sides::Both,
                code: flags.close_code,
                reason: "wscope --close-after".to_owned(),
            };
            add("--close-after", None, None, Some(After::Time(at)), action);
        }
        if let Some(at) = flags.reset_after {
            add(
                "--reset-after",
                None,
                None,
                Some(After::Time(at)),
                Action::Reset,
            );
        }
        if let Some(timeout) = flags.idle_timeout {
            let action = Action::IdleTimeout {
                timeout,
                code: None,
            };
            add("--idle-timeout", None, None, None, action);
        }
        RuleSet { rules }
    }

    /// This set followed by `more`.
    pub fn then(mut self, more: RuleSet) -> RuleSet {
        self.rules.extend(more.rules);
        self
    }

    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }
}

/// Faults and rewrites the proxy applies on purpose (docs/RULES.md). The
/// shortcut flags are rules too, in force before the file's.
#[derive(Debug, Args, Clone, Default)]
#[command(next_help_heading = "Faults and rules")]
pub struct FaultArgs {
    /// A TOML file of rules (delay, drop, replace, inject, close, reset,
    /// throttle, idle-timeout, pause); reloaded when it changes.
    #[arg(long, value_name = "FILE")]
    pub rules: Option<PathBuf>,

    /// Hold every message and control frame this long, each way (order is
    /// kept; a round trip gets it twice).
    #[arg(long, value_parser = parse_duration, value_name = "DURATION")]
    pub latency: Option<Duration>,

    /// Vary --latency by up to this much either way.
    #[arg(long, value_parser = parse_duration, value_name = "DURATION", requires = "latency")]
    pub jitter: Option<Duration>,

    /// Drop this fraction of data messages (0 to 1), each way.
    #[arg(long, value_parser = parse_probability, value_name = "P")]
    pub drop_rate: Option<f64>,

    /// Close every connection this long after it opened (close frames to
    /// both sides, with --close-code).
    #[arg(long, value_parser = parse_duration, value_name = "DURATION")]
    pub close_after: Option<Duration>,

    /// The code --close-after sends.
    #[arg(long, default_value_t = 1000, value_parser = parse_close_code, value_name = "CODE", requires = "close_after")]
    pub close_code: u16,

    /// Reset both TCP connections this long after opening (peers see 1006).
    #[arg(long, value_parser = parse_duration, value_name = "DURATION")]
    pub reset_after: Option<Duration>,

    /// Close connections that carried nothing either way for this long, by
    /// closing TCP as a load balancer does.
    #[arg(long, value_parser = parse_duration, value_name = "DURATION")]
    pub idle_timeout: Option<Duration>,

    /// Limit each direction of each connection to this rate (64KiB/s, 1MB/s,
    /// 8mbit/s).
    #[arg(long, value_parser = parse_rate, value_name = "RATE")]
    pub bandwidth: Option<u64>,
}
