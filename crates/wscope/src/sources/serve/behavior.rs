//! What `wscope serve` does on each URL path.
//!
//! A path is a chain of behaviours, read left to right: `/close/4000`,
//! `/subprotocol/chat/delay/200ms`, `/origin/max-size/1024`. Handshake
//! behaviours (reject, origin, subprotocol, require-header, slow-handshake)
//! decide how the upgrade is answered; session behaviours decide what happens
//! once it is open. Parameters come from the query string. Anything unknown
//! is refused with a status and a body that says what was expected, so a
//! typo in a test's URL fails loudly instead of quietly echoing.

use std::collections::BTreeSet;
use std::time::Duration;

use wscope_proto::CloseCode;

use crate::values::parse_duration;

/// The behaviours, as `wscope serve --help` and a plain HTTP GET show them.
pub const HELP: &str = "\
Behaviours (one per path; chain them, e.g. /subprotocol/chat/delay/100ms):
  /  or /echo                 echo every message
  /broadcast                  send every message to every client on this path
  /stream?every=100ms&size=64&count=N&binary
                              send messages on a timer (then close with 1000
                              after count, if given); add /echo to also echo
  /close/CODE?after=2s&reason=TEXT
                              close with CODE after a delay (without after:
                              when the first message arrives, not echoing it)
  /drop?after=5s&reset        drop TCP without a close frame (the client sees
                              1006), after a delay or at the first message;
                              reset sends a TCP RST instead of a FIN
  /hang?for=30s               upgrade, then never read or write again
  /no-pong                    echo, but never answer pings
  /idle-timeout/60s?drop      close with 1001 once no frame has crossed for
                              that long (drop: drop TCP, as most load
                              balancers do)
  /max-size/65536             echo; a bigger message closes with 1009
  /delay/200ms?jitter=50ms    echo each message after a delay (order kept)
  /fragment/N                 echo each message split into N frames
  /ping-every/1s              echo, and send a ping this often
  /reject/STATUS?body=TEXT&location=URL&retry-after=SECONDS
                              refuse the upgrade with that HTTP status (a
                              429 or 503 says Retry-After: 1 unless given)
  /origin?allow=ORIGIN        refuse other Origins with 403 (allow repeats;
                              default: the origin of the Host header)
  /subprotocol/NAME?force     require and select subprotocol NAME (force:
                              select it even when the client did not offer
                              it, which a client must refuse)
  /require-header/NAME?value=V&status=401
                              refuse the upgrade without that header
  /slow-handshake/2s          wait that long before answering the upgrade
  /invalid/KIND?after=1s      break the protocol on purpose, right after the
                              upgrade (or after a delay); KIND is one of:
                              utf8, control-too-big, reserved-opcode, rsv,
                              close-code, close-reason-utf8, masked,
                              fragmented-control, continuation
Query parameters a path does not take are ignored (and logged).
A plain HTTP GET (no upgrade) gets 426 Upgrade Required with this list.";

/// The largest message `/stream` makes.
const MAX_STREAM_MESSAGE: usize = 16 * 1024 * 1024;

/// Everything a path asks for.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Plan {
    pub handshake: HandshakePlan,
    pub session: SessionPlan,
    /// Query parameters no behaviour on the path takes: ignored, since
    /// client libraries add their own (socket.io's `?EIO=4`), but said in
    /// the log so a misspelt `?afer=` is noticed.
    pub ignored: Option<String>,
}

/// How to answer the upgrade request.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct HandshakePlan {
    pub reject: Option<Reject>,
    /// Allowed origins; empty means "the origin the Host header names".
    pub origin: Option<Vec<String>>,
    pub subprotocol: Option<Subprotocol>,
    pub require_headers: Vec<RequiredHeader>,
    pub delay: Option<Duration>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Reject {
    pub status: u16,
    pub body: Option<String>,
    pub location: Option<String>,
    /// Seconds for the Retry-After of a 429 or 503 (default 1).
    pub retry_after: Option<u32>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Subprotocol {
    pub name: String,
    /// Select it even when the client did not offer it.
    pub force: bool,
}

#[derive(Debug, Clone, PartialEq)]
pub struct RequiredHeader {
    pub name: String,
    pub value: Option<String>,
    pub status: u16,
}

/// What to do with messages that arrive.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Reply {
    #[default]
    Echo,
    /// To every client on the same path, this one included.
    Broadcast,
    /// Nothing (the server talks on its own).
    Silent,
}

/// What happens once the connection is open.
#[derive(Debug, Clone, PartialEq)]
pub struct SessionPlan {
    pub reply: Reply,
    /// Never read or write; end after this long, or at shutdown.
    pub hang: Option<Option<Duration>>,
    pub answer_pings: bool,
    pub idle_timeout: Option<IdleTimeout>,
    pub max_message: Option<u64>,
    pub delay: Option<Delay>,
    pub fragments: Option<u32>,
    pub ping_every: Option<Duration>,
    pub stream: Option<StreamSpec>,
    pub ending: Option<Ending>,
    pub invalid: Option<(Invalid, Option<Duration>)>,
}

impl Default for SessionPlan {
    fn default() -> Self {
        SessionPlan {
            reply: Reply::Echo,
            hang: None,
            answer_pings: true,
            idle_timeout: None,
            max_message: None,
            delay: None,
            fragments: None,
            ping_every: None,
            stream: None,
            ending: None,
            invalid: None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct IdleTimeout {
    pub after: Duration,
    /// Drop TCP instead of sending a close frame.
    pub drop: bool,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Delay {
    pub base: Duration,
    pub jitter: Duration,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct StreamSpec {
    pub every: Duration,
    pub size: usize,
    pub count: Option<u64>,
    pub binary: bool,
}

/// How the server ends a connection on its own.
#[derive(Debug, Clone, PartialEq)]
pub struct Ending {
    pub action: EndAction,
    /// After this long; `None`: after the first message.
    pub after: Option<Duration>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum EndAction {
    Close {
        code: CloseCode,
        reason: String,
    },
    /// Without a close frame; `reset` sends an RST instead of a FIN.
    Drop {
        reset: bool,
    },
}

/// A protocol violation the server commits on purpose.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Invalid {
    /// A text message that is not UTF-8 (the client must close with 1007).
    Utf8,
    /// A ping with 126 bytes of payload (control frames carry at most 125).
    ControlTooBig,
    /// A frame with reserved opcode 0x3.
    ReservedOpcode,
    /// A text frame with RSV2 set and no extension that defines it.
    Rsv,
    /// A close frame with code 1005, which must never be sent.
    CloseCode,
    /// A close frame whose reason is not UTF-8.
    CloseReasonUtf8,
    /// A masked frame from the server.
    Masked,
    /// A ping without FIN.
    FragmentedControl,
    /// A continuation frame with no message to continue.
    Continuation,
}

impl Invalid {
    const ALL: [(&'static str, Invalid); 9] = [
        ("utf8", Invalid::Utf8),
        ("control-too-big", Invalid::ControlTooBig),
        ("reserved-opcode", Invalid::ReservedOpcode),
        ("rsv", Invalid::Rsv),
        ("close-code", Invalid::CloseCode),
        ("close-reason-utf8", Invalid::CloseReasonUtf8),
        ("masked", Invalid::Masked),
        ("fragmented-control", Invalid::FragmentedControl),
        ("continuation", Invalid::Continuation),
    ];

    pub fn name(self) -> &'static str {
        Invalid::ALL
            .iter()
            .find(|(_, kind)| *kind == self)
            .map(|(name, _)| *name)
            .unwrap_or("invalid")
    }
}

/// Why a path cannot be served: the status to refuse with and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlanError {
    pub status: u16,
    pub message: String,
}

impl PlanError {
    fn bad(message: impl Into<String>) -> Self {
        PlanError {
            status: 400,
            message: message.into(),
        }
    }
}

/// The query string, with a note of which parameters were used.
struct Query {
    pairs: Vec<(String, String)>,
    used: BTreeSet<String>,
}

impl Query {
    fn parse(query: &str) -> Query {
        Query {
            pairs: url::form_urlencoded::parse(query.as_bytes())
                .map(|(k, v)| (k.into_owned(), v.into_owned()))
                .collect(),
            used: BTreeSet::new(),
        }
    }

    fn get(&mut self, name: &str) -> Option<String> {
        self.used.insert(name.to_owned());
        self.pairs
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
    }

    fn all(&mut self, name: &str) -> Vec<String> {
        self.used.insert(name.to_owned());
        self.pairs
            .iter()
            .filter(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
            .collect()
    }

    /// A valueless flag (`?binary`), also accepted as `binary=1`/`=true`.
    fn flag(&mut self, name: &str) -> Result<bool, PlanError> {
        match self.get(name).as_deref() {
            None => Ok(false),
            Some("" | "1" | "true" | "yes") => Ok(true),
            Some("0" | "false" | "no") => Ok(false),
            Some(other) => Err(PlanError::bad(format!(
                "?{name} is a flag; {other:?} is not true or false"
            ))),
        }
    }

    fn duration(&mut self, name: &str) -> Result<Option<Duration>, PlanError> {
        self.get(name).map(|text| duration(name, &text)).transpose()
    }

    fn number<T: std::str::FromStr>(&mut self, name: &str) -> Result<Option<T>, PlanError> {
        self.get(name)
            .map(|text| {
                text.parse()
                    .map_err(|_| PlanError::bad(format!("?{name}={text} is not a number")))
            })
            .transpose()
    }
}

fn duration(what: &str, text: &str) -> Result<Duration, PlanError> {
    parse_duration(text).map_err(|err| PlanError::bad(format!("{what}: {err}")))
}

/// Reads the plan from a request target (`/close/4000?after=1s`).
pub fn parse(target: &str) -> Result<Plan, PlanError> {
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    let mut query = Query::parse(query);
    let mut plan = Plan::default();
    let mut segments = path.split('/').filter(|s| !s.is_empty()).map(|s| {
        percent_encoding::percent_decode_str(s)
            .decode_utf8_lossy()
            .into_owned()
    });
    let mut echo_asked = false;
    let mut session_set = false;
    while let Some(segment) = segments.next() {
        let mut arg = |what: &str| {
            segments.next().ok_or_else(|| {
                PlanError::bad(format!("/{segment} needs {what}: /{segment}/{what}"))
            })
        };
        let session = &mut plan.session;
        match segment.as_str() {
            "echo" => echo_asked = true,
            "broadcast" => session.reply = Reply::Broadcast,
            "stream" => {
                let every = query
                    .duration("every")?
                    .unwrap_or(Duration::from_millis(100));
                if every < Duration::from_millis(1) {
                    return Err(PlanError::bad("?every must be at least 1ms"));
                }
                let size = query.number("size")?.unwrap_or(64);
                if size > MAX_STREAM_MESSAGE {
                    return Err(PlanError::bad(format!(
                        "?size={size}: at most {MAX_STREAM_MESSAGE} bytes"
                    )));
                }
                session.stream = Some(StreamSpec {
                    every,
                    size,
                    count: query.number("count")?,
                    binary: query.flag("binary")?,
                });
            }
            "close" => {
                let text = arg("CODE")?;
                let code = close_code(&text)?;
                let reason = query.get("reason").unwrap_or_default();
                if reason.len() > 123 {
                    return Err(PlanError::bad(
                        "?reason is over 123 bytes, more than a close frame can carry",
                    ));
                }
                set_ending(
                    session,
                    EndAction::Close { code, reason },
                    query.duration("after")?,
                )?;
            }
            "drop" => {
                let reset = query.flag("reset")?;
                set_ending(session, EndAction::Drop { reset }, query.duration("after")?)?;
            }
            "hang" => session.hang = Some(query.duration("for")?),
            "no-pong" => session.answer_pings = false,
            "idle-timeout" => {
                let after = duration("idle-timeout", &arg("DURATION")?)?;
                let drop = query.flag("drop")?;
                session.idle_timeout = Some(IdleTimeout { after, drop });
            }
            "max-size" => {
                let text = arg("BYTES")?;
                let limit = text.parse().map_err(|_| {
                    PlanError::bad(format!("/max-size/{text}: not a number of bytes"))
                })?;
                session.max_message = Some(limit);
            }
            "delay" => {
                let base = duration("delay", &arg("DURATION")?)?;
                let jitter = query.duration("jitter")?.unwrap_or_default();
                session.delay = Some(Delay { base, jitter });
            }
            "fragment" => {
                let text = arg("N")?;
                match text.parse::<u32>() {
                    Ok(n @ 1..=10_000) => session.fragments = Some(n),
                    _ => {
                        return Err(PlanError::bad(format!(
                            "/fragment/{text}: N must be a number from 1 to 10000"
                        )));
                    }
                }
            }
            "ping-every" => {
                let every = duration("ping-every", &arg("DURATION")?)?;
                if every < Duration::from_millis(1) {
                    return Err(PlanError::bad("/ping-every needs at least 1ms"));
                }
                session.ping_every = Some(every);
            }
            "invalid" => {
                let text = arg("KIND")?;
                let kind = Invalid::ALL
                    .iter()
                    .find(|(name, _)| *name == text)
                    .map(|(_, kind)| *kind)
                    .ok_or_else(|| {
                        let names: Vec<_> = Invalid::ALL.iter().map(|(n, _)| *n).collect();
                        PlanError::bad(format!(
                            "/invalid/{text}: unknown kind; use one of {}",
                            names.join(", ")
                        ))
                    })?;
                session.invalid = Some((kind, query.duration("after")?));
            }
            "reject" => {
                let text = arg("STATUS")?;
                let status = match text.parse::<u16>() {
                    Ok(status @ 200..=599) => status,
                    _ => {
                        return Err(PlanError::bad(format!(
                            "/reject/{text}: STATUS must be an HTTP status from 200 to 599"
                        )));
                    }
                };
                plan.handshake.reject = Some(Reject {
                    status,
                    body: query.get("body"),
                    location: query.get("location"),
                    retry_after: query.number::<u32>("retry-after")?,
                });
            }
            "origin" => plan.handshake.origin = Some(query.all("allow")),
            "subprotocol" => {
                let name = arg("NAME")?;
                let force = query.flag("force")?;
                plan.handshake.subprotocol = Some(Subprotocol { name, force });
            }
            "require-header" => {
                let name = arg("NAME")?;
                let value = query.get("value");
                let status = match query.number::<u16>("status")? {
                    None => 400,
                    Some(status @ 400..=599) => status,
                    Some(other) => {
                        return Err(PlanError::bad(format!(
                            "?status={other}: refuse with a 4xx or 5xx status"
                        )));
                    }
                };
                plan.handshake.require_headers.push(RequiredHeader {
                    name,
                    value,
                    status,
                });
            }
            "slow-handshake" => {
                plan.handshake.delay = Some(duration("slow-handshake", &arg("DURATION")?)?);
            }
            other => {
                return Err(PlanError {
                    status: 404,
                    message: format!("no behaviour named {other:?} here.\n\n{HELP}"),
                });
            }
        }
        session_set |= segment == "stream";
    }
    if session_set && !echo_asked && plan.session.reply == Reply::Echo {
        plan.session.reply = Reply::Silent;
    }
    let unknown: Vec<&str> = query
        .pairs
        .iter()
        .map(|(k, _)| k.as_str())
        .filter(|k| !query.used.contains(*k))
        .collect();
    if !unknown.is_empty() {
        let known: Vec<&str> = query.used.iter().map(String::as_str).collect();
        let expected = if known.is_empty() {
            "this path takes none".to_owned()
        } else {
            format!("this path takes: {}", known.join(", "))
        };
        plan.ignored = Some(format!(
            "ignored query parameters {}; {expected}",
            unknown.join(", ")
        ));
    }
    Ok(plan)
}

fn set_ending(
    session: &mut SessionPlan,
    action: EndAction,
    after: Option<Duration>,
) -> Result<(), PlanError> {
    if session.ending.is_some() {
        return Err(PlanError::bad(
            "a path can end the connection one way only (close or drop)",
        ));
    }
    session.ending = Some(Ending { action, after });
    Ok(())
}

fn close_code(text: &str) -> Result<CloseCode, PlanError> {
    let code = text
        .parse::<u16>()
        .map(CloseCode)
        .map_err(|_| PlanError::bad(format!("/close/{text}: not a close code")))?;
    if !code.is_valid_on_wire() {
        let hint = if code == CloseCode::ABNORMAL {
            " (1006 means no close frame at all: use /drop)"
        } else {
            " (to send it anyway, as a protocol violation, use /invalid/close-code)"
        };
        return Err(PlanError::bad(format!(
            "/close/{text}: {code} must not be sent in a close frame{hint}"
        )));
    }
    Ok(code)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn root_and_echo_echo() {
        assert_eq!(parse("/").unwrap(), Plan::default());
        assert_eq!(parse("/echo").unwrap(), Plan::default());
        assert_eq!(parse("").unwrap(), Plan::default());
    }

    #[test]
    fn close_with_code_delay_and_reason() {
        let plan = parse("/close/4000?after=2s&reason=bye%20now").unwrap();
        assert_eq!(
            plan.session.ending,
            Some(Ending {
                action: EndAction::Close {
                    code: CloseCode(4000),
                    reason: "bye now".into()
                },
                after: Some(Duration::from_secs(2)),
            })
        );
        let first = parse("/close/1001").unwrap();
        assert_eq!(first.session.ending.unwrap().after, None);
    }

    #[test]
    fn codes_that_cannot_be_sent_are_refused_with_a_hint() {
        let err = parse("/close/1006").unwrap_err();
        assert_eq!(err.status, 400);
        assert!(err.message.contains("/drop"), "{}", err.message);
        assert!(parse("/close/1005").is_err());
        assert!(parse("/close/999").is_err());
        assert!(parse("/close/abc").is_err());
        assert!(parse("/close").unwrap_err().message.contains("/close/CODE"));
    }

    #[test]
    fn behaviours_chain() {
        let plan = parse("/subprotocol/chat/delay/100ms/fragment/3?jitter=10ms").unwrap();
        assert_eq!(
            plan.handshake.subprotocol,
            Some(Subprotocol {
                name: "chat".into(),
                force: false
            })
        );
        assert_eq!(
            plan.session.delay,
            Some(Delay {
                base: Duration::from_millis(100),
                jitter: Duration::from_millis(10)
            })
        );
        assert_eq!(plan.session.fragments, Some(3));
        assert_eq!(plan.session.reply, Reply::Echo);
    }

    #[test]
    fn stream_is_silent_unless_echo_is_asked() {
        let plan = parse("/stream?every=10ms&size=8&count=5&binary").unwrap();
        assert_eq!(plan.session.reply, Reply::Silent);
        assert_eq!(
            plan.session.stream,
            Some(StreamSpec {
                every: Duration::from_millis(10),
                size: 8,
                count: Some(5),
                binary: true
            })
        );
        assert_eq!(parse("/stream/echo").unwrap().session.reply, Reply::Echo);
    }

    #[test]
    fn handshake_behaviours() {
        let plan = parse("/origin?allow=http://a.test&allow=http://b.test").unwrap();
        assert_eq!(
            plan.handshake.origin,
            Some(vec!["http://a.test".into(), "http://b.test".into()])
        );
        let plan = parse("/reject/401?body=nope").unwrap();
        assert_eq!(plan.handshake.reject.unwrap().status, 401);
        assert!(parse("/reject/101").is_err());
        assert!(parse("/reject/99").is_err());
        let plan = parse("/require-header/Authorization?status=401").unwrap();
        assert_eq!(plan.handshake.require_headers[0].status, 401);
        let plan = parse("/slow-handshake/2s").unwrap();
        assert_eq!(plan.handshake.delay, Some(Duration::from_secs(2)));
    }

    #[test]
    fn unknown_things_are_errors_that_say_what_is_expected() {
        let err = parse("/nope").unwrap_err();
        assert_eq!(err.status, 404);
        assert!(err.message.contains("/max-size"), "{}", err.message);
        let plan = parse("/close/4000?afer=1s").unwrap();
        let note = plan.ignored.unwrap();
        assert!(note.contains("afer"), "{note}");
        assert!(note.contains("after"), "{note}");
        let plan = parse("/echo?EIO=4&transport=websocket").unwrap();
        assert_eq!(plan.session, SessionPlan::default());
        assert!(plan.ignored.unwrap().contains("takes none"));
        assert!(
            parse("/invalid/bogus")
                .unwrap_err()
                .message
                .contains("utf8")
        );
        assert!(parse("/fragment/0").is_err());
        assert!(parse("/delay/soon").is_err());
        assert!(parse("/close/1000/drop").is_err());
        assert!(parse("/stream?binary=maybe").is_err());
        assert!(parse("/stream?size=999999999999").is_err());
        assert!(parse("/stream?every=0s").is_err());
        assert!(parse("/close/4000?after=99999999h").is_err());
    }

    #[test]
    fn every_invalid_kind_parses_by_its_name() {
        for (name, kind) in Invalid::ALL {
            let plan = parse(&format!("/invalid/{name}")).unwrap();
            assert_eq!(plan.session.invalid, Some((kind, None)));
            assert_eq!(kind.name(), name);
        }
    }

    proptest::proptest! {
        #[test]
        fn never_panics_and_errors_are_client_errors(target in "[/a-z0-9?&=%.-]{0,60}") {
            if let Err(err) = parse(&target) {
                proptest::prop_assert!((400..500).contains(&err.status));
            }
        }

        #[test]
        fn known_segments_with_arbitrary_arguments(
            name in proptest::sample::select(vec![
                "close", "drop", "idle-timeout", "max-size", "delay", "fragment",
                "ping-every", "reject", "subprotocol", "require-header",
                "slow-handshake", "invalid", "stream", "hang", "origin",
            ]),
            arg in "\\PC{0,12}",
            query in "\\PC{0,20}",
        ) {
            let _ = parse(&format!("/{name}/{arg}?{query}"));
        }
    }

    #[test]
    fn no_panic_on_odd_targets() {
        for target in [
            "//",
            "/%ff",
            "/close/%34000",
            "?",
            "/?&&=",
            "/max-size/-1",
            "/a/b/c",
        ] {
            let _ = parse(target);
        }
        assert_eq!(
            parse("/close/%34000")
                .unwrap()
                .session
                .ending
                .map(|e| e.action),
            Some(EndAction::Close {
                code: CloseCode(4000),
                reason: String::new()
            })
        );
    }
}
