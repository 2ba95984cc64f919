//! The engine on its own: byte sequences in, bytes, events and wake-ups
//! out, on a made-up clock. No sockets.

use std::sync::Arc;
use std::time::{Duration, Instant};

use wscope_events::{ClosedBy, Direction, EventKind};
use wscope_proto::deflate::{DeflateParams, PerMessageDeflate};
use wscope_proto::frame::encode_frame;
use wscope_proto::split::{FrameSplitter, Piece};
use wscope_proto::{ClosePayload, OpCode, Role};

use super::{Budget, Config, Cut, Engine, Pass};
use crate::sources::control::Command;
use crate::sources::rules::Injected;

const C2S: Direction = Direction::ClientToServer;
const S2C: Direction = Direction::ServerToClient;

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

fn config(rules: Option<&str>, deflate: Option<DeflateParams>) -> Config {
    Config {
        id: "c1".to_owned(),
        deflate,
        capture: 1 << 20,
        report_frames: false,
        rules: rules.map(|source| {
            Arc::new(crate::sources::rules::file::parse(source).expect("rules parse"))
        }),
        hold_limit: 1 << 16,
        budget: Arc::new(Budget::new(usize::MAX)),
    }
}

fn engine(rules: &str, t0: Instant) -> Engine {
    Engine::new(config(Some(rules), None), t0)
}

/// A frame as its sender would put it on the wire (masked from a client).
fn wire(dir: Direction, opcode: OpCode, fin: bool, payload: &[u8]) -> Vec<u8> {
    let mask = (dir == C2S).then_some([9, 8, 7, 6]);
    let mut out = Vec::new();
    encode_frame(opcode, fin, false, mask, payload, &mut out);
    out
}

fn text(dir: Direction, payload: &str) -> Vec<u8> {
    wire(dir, OpCode::Text, true, payload.as_bytes())
}

/// Everything due toward the receiver of `dir` at `now`.
fn written(engine: &mut Engine, dir: Direction, now: Instant) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(piece) = engine.poll_write(dir, now) {
        out.extend_from_slice(&piece);
    }
    out
}

/// The frames in `bytes`: opcode, fin, rsv1 and unmasked payload.
fn frames(bytes: &[u8]) -> Vec<(OpCode, bool, bool, Vec<u8>)> {
    let mut splitter = FrameSplitter::new(u64::MAX);
    let mut pieces = Vec::new();
    splitter.feed(bytes, &mut pieces).expect("frames");
    assert_eq!(splitter.pending(), 0, "a frame cut short");
    pieces
        .into_iter()
        .map(|piece| match piece {
            Piece::Frame(f) => (f.header.opcode, f.header.fin, f.header.rsv1, f.payload()),
            Piece::Rest(_) => panic!("no frame was released"),
        })
        .collect()
}

fn texts(bytes: &[u8]) -> Vec<String> {
    frames(bytes)
        .into_iter()
        .map(|(_, _, _, payload)| String::from_utf8(payload).expect("utf-8"))
        .collect()
}

fn notes(engine: &mut Engine) -> Vec<String> {
    engine
        .drain_events()
        .filter_map(|emit| match emit.kind {
            EventKind::Note { text } => Some(text),
            _ => None,
        })
        .collect()
}

#[test]
fn without_rules_bytes_are_forwarded_as_read_and_still_become_events() {
    let t0 = Instant::now();
    let mut engine = Engine::new(config(None, None), t0);
    let hello = text(C2S, "hello");
    // Any piece of the stream is forwarded as it is, even half a frame.
    assert_eq!(engine.read(C2S, &hello[..3], t0), Pass::Forward);
    assert_eq!(engine.read(C2S, &hello[3..], t0), Pass::Forward);
    assert!(engine.poll_write(C2S, t0).is_none());
    let events: Vec<_> = engine.drain_events().collect();
    assert!(
        matches!(&events[..], [emit] if matches!(&emit.kind, EventKind::Message(m) if m.payload.text.as_deref() == Some("hello"))),
        "{events:?}"
    );
    assert_eq!(engine.next_wake(), None);
}

#[test]
fn without_rules_shutdown_closes_only_at_a_frame_boundary() {
    let t0 = Instant::now();
    let mut engine = Engine::new(config(None, None), t0);
    let hello = text(S2C, "hello");
    engine.read(S2C, &hello[..4], t0);
    engine.shutdown(t0);
    // Server to client is mid-frame: nothing can be put in.
    assert!(engine.poll_write(S2C, t0).is_none());
    let to_server = frames(&written(&mut engine, C2S, t0));
    assert_eq!(to_server.len(), 1);
    assert_eq!(to_server[0].0, OpCode::Close);
    let (close, _) = ClosePayload::parse(&to_server[0].3);
    assert_eq!(close.code.map(|c| c.0), Some(1001));
    // Our close went that way: what the client sends after it is not.
    assert_eq!(engine.read(C2S, &text(C2S, "late"), t0), Pass::Taken);
}

#[test]
fn a_delay_holds_each_message_and_keeps_order() {
    let t0 = Instant::now();
    let mut engine = engine(
        "[[rule]]\nmatch = 'dir == s2c'\naction = \"delay\"\ndelay = \"200ms\"\n",
        t0,
    );
    let one = text(S2C, "one");
    let two = text(S2C, "two");
    engine.read(S2C, &one, t0);
    engine.read(S2C, &two, t0 + ms(50));
    assert!(engine.poll_write(S2C, t0 + ms(100)).is_none());
    assert_eq!(engine.next_wake(), Some(t0 + ms(200)));
    // Forwarded as the frames it arrived in, byte for byte.
    assert_eq!(written(&mut engine, S2C, t0 + ms(200)), one);
    assert_eq!(written(&mut engine, S2C, t0 + ms(250)), two);
    // The other direction is not delayed.
    let up = text(C2S, "up");
    engine.read(C2S, &up, t0 + ms(300));
    assert_eq!(written(&mut engine, C2S, t0 + ms(300)), up);
    assert!(
        notes(&mut engine)
            .iter()
            .any(|n| n.contains("held this text message 200 ms"))
    );
}

#[test]
fn a_drop_removes_only_what_matches() {
    let t0 = Instant::now();
    let mut engine = engine(
        "[[rule]]\nmatch = 'text == \"secret\"'\naction = \"drop\"\n",
        t0,
    );
    let mut stream = text(C2S, "a");
    stream.extend(text(C2S, "secret"));
    stream.extend(text(C2S, "b"));
    engine.read(C2S, &stream, t0);
    assert_eq!(texts(&written(&mut engine, C2S, t0)), ["a", "b"]);
    assert!(
        notes(&mut engine)
            .iter()
            .any(|n| n.contains("dropped this text message"))
    );
}

#[test]
fn a_rewrite_with_deflate_keeps_the_receivers_context_right() {
    let t0 = Instant::now();
    let params = DeflateParams::default();
    let rules =
        "[[rule]]\nmatch = 'dir == c2s'\naction = \"replace\"\nregex = 'cat'\nwith = \"doggo\"\n";
    let mut engine = Engine::new(config(Some(rules), Some(params)), t0);
    let mut client = PerMessageDeflate::new(Role::Client, params);
    let mut server = PerMessageDeflate::new(Role::Server, params);
    let mut stream = Vec::new();
    // The last is not rewritten but refers back to what the client sent
    // before: forwarded as sent, it would not inflate to itself.
    for message in ["one cat", "one cat, two cats", "so: one ca, two ca"] {
        let mut packed = Vec::new();
        client.compress(message.as_bytes(), &mut packed).unwrap();
        encode_frame(
            OpCode::Text,
            true,
            true,
            Some([1, 2, 3, 4]),
            &packed,
            &mut stream,
        );
    }
    // In uneven pieces: a frame and a header split across reads.
    for piece in stream.chunks(5) {
        engine.read(C2S, piece, t0);
    }
    let got: Vec<String> = frames(&written(&mut engine, C2S, t0))
        .into_iter()
        .map(|(opcode, fin, rsv1, payload)| {
            assert_eq!((opcode, fin, rsv1), (OpCode::Text, true, true));
            let mut plain = Vec::new();
            server.decompress(&payload, &mut plain, 1 << 20).unwrap();
            String::from_utf8(plain).unwrap()
        })
        .collect();
    assert_eq!(
        got,
        ["one doggo", "one doggo, two doggos", "so: one ca, two ca"]
    );
    // The events show what the client sent.
    let sent: Vec<String> = engine
        .drain_events()
        .filter_map(|e| match e.kind {
            EventKind::Message(m) => m.payload.text,
            _ => None,
        })
        .collect();
    assert_eq!(sent, ["one cat", "one cat, two cats", "so: one ca, two ca"]);
}

#[test]
fn an_inject_goes_after_its_message_and_to_the_other_side_at_once() {
    let t0 = Instant::now();
    let mut engine = engine(
        "[[rule]]\nmatch = 'dir == c2s && text == \"hello\"'\naction = \"inject\"\nto = \"both\"\ntext = \"ours\"\n",
        t0,
    );
    engine.read(C2S, &text(C2S, "hello"), t0);
    let to_server = written(&mut engine, C2S, t0);
    assert_eq!(texts(&to_server), ["hello", "ours"]);
    let to_client = written(&mut engine, S2C, t0);
    assert_eq!(texts(&to_client), ["ours"]);
    // Masked toward the server, as a client's frames must be; not toward
    // the client.
    assert_ne!(to_server[1] & 0x80, 0);
    assert_eq!(to_client[1] & 0x80, 0);
}

#[test]
fn a_close_rule_closes_both_ways_and_stops_the_senders_frames() {
    let t0 = Instant::now();
    let mut engine = engine(
        "[[rule]]\nmatch = 'text == \"bye\"'\naction = \"close\"\ncode = 4000\nreason = \"rule\"\n",
        t0,
    );
    engine.read(C2S, &text(C2S, "bye"), t0);
    let to_server = frames(&written(&mut engine, C2S, t0));
    let to_client = frames(&written(&mut engine, S2C, t0));
    assert_eq!(to_server.len(), 2, "the message, then our close");
    for (opcode, _, _, payload) in [&to_server[1], &to_client[0]] {
        assert_eq!(*opcode, OpCode::Close);
        let (close, _) = ClosePayload::parse(payload);
        assert_eq!(close.code.map(|c| c.0), Some(4000));
        assert_eq!(close.reason, "rule");
    }
    engine.read(C2S, &text(C2S, "after"), t0);
    assert!(engine.poll_write(C2S, t0).is_none());
    let closed = engine.closed(ms(5));
    assert_eq!((closed.by, closed.code), (ClosedBy::Proxy, 4000));
}

#[test]
fn a_pause_stalls_one_direction_only() {
    let t0 = Instant::now();
    let mut engine = engine(
        "[[rule]]\nmatch = 'text == \"stop\"'\naction = \"pause\"\nduration = \"1s\"\ndirection = \"s2c\"\n",
        t0,
    );
    engine.read(C2S, &text(C2S, "stop"), t0);
    assert_eq!(texts(&written(&mut engine, C2S, t0)), ["stop"]);
    engine.read(S2C, &text(S2C, "reply"), t0 + ms(10));
    assert!(engine.poll_write(S2C, t0 + ms(500)).is_none());
    assert_eq!(engine.next_wake(), Some(t0 + ms(1000)));
    assert_eq!(texts(&written(&mut engine, S2C, t0 + ms(1000))), ["reply"]);
}

#[test]
fn a_reload_applies_to_the_next_message() {
    let t0 = Instant::now();
    let mut engine = engine("[[rule]]\nmatch = 'text == \"x\"'\naction = \"drop\"\n", t0);
    engine.read(C2S, &text(C2S, "x"), t0);
    assert!(written(&mut engine, C2S, t0).is_empty());
    engine.reload(
        Arc::new(crate::sources::rules::RuleSet::default()),
        t0 + ms(1),
    );
    engine.read(C2S, &text(C2S, "x"), t0 + ms(2));
    assert_eq!(texts(&written(&mut engine, C2S, t0 + ms(2))), ["x"]);
}

#[test]
fn fragments_are_held_whole_while_control_frames_pass() {
    let t0 = Instant::now();
    let mut engine = engine(
        "[[rule]]\nmatch = 'text == \"nope\"'\naction = \"drop\"\n",
        t0,
    );
    let first = wire(C2S, OpCode::Text, false, b"Hel");
    let ping = wire(C2S, OpCode::Ping, true, b"p");
    let last = wire(C2S, OpCode::Continuation, true, b"lo");
    let stream = [first.clone(), ping.clone(), last.clone()].concat();
    // A byte at a time: the ping goes as soon as it is whole, the message
    // when its last byte is in, as the frames it came in.
    let mut out = Vec::new();
    for (i, byte) in stream.iter().enumerate() {
        engine.read(C2S, std::slice::from_ref(byte), t0);
        let now_out = written(&mut engine, C2S, t0);
        if i + 1 == first.len() + ping.len() {
            assert_eq!(now_out, ping);
        }
        out.extend(now_out);
    }
    assert_eq!(out, [ping, first, last].concat());
}

#[test]
fn text_that_is_not_utf8_passes_at_once_for_the_receiver_to_fail() {
    let t0 = Instant::now();
    let mut engine = engine(
        "[[rule]]\nmatch = 'dir == c2s'\naction = \"delay\"\ndelay = \"1s\"\n",
        t0,
    );
    let mut bad = b"fine so far ".to_vec();
    bad.push(0xff);
    bad.extend_from_slice(b" and the rest");
    let frame = wire(C2S, OpCode::Text, true, &bad);
    // Everything up to and including the bad byte, but not the whole frame.
    let cut = frame.len() - 5;
    engine.read(C2S, &frame[..cut], t0);
    assert_eq!(
        written(&mut engine, C2S, t0),
        &frame[..cut],
        "passed at once, not delayed"
    );
    engine.read(C2S, &frame[cut..], t0);
    assert_eq!(written(&mut engine, C2S, t0), &frame[cut..]);
    // No close of the proxy's own, and the next message is judged again.
    let next = text(C2S, "ok");
    engine.read(C2S, &next, t0);
    assert!(engine.poll_write(C2S, t0).is_none());
    assert_eq!(written(&mut engine, C2S, t0 + ms(1000)), next);
    assert!(engine.poll_write(S2C, t0 + ms(1000)).is_none());
}

#[test]
fn not_utf8_in_a_later_fragment_releases_what_was_held() {
    let t0 = Instant::now();
    let mut engine = engine("[[rule]]\nmatch = 'dir == c2s'\naction = \"drop\"\n", t0);
    let first = wire(C2S, OpCode::Text, false, b"good ");
    let second = wire(C2S, OpCode::Continuation, false, &[b'x', 0xc0, 0x20]);
    let last = wire(C2S, OpCode::Continuation, true, b"end");
    engine.read(C2S, &first, t0);
    assert!(engine.poll_write(C2S, t0).is_none(), "held");
    engine.read(C2S, &second, t0);
    assert_eq!(written(&mut engine, C2S, t0), [first, second].concat());
    engine.read(C2S, &last, t0);
    assert_eq!(written(&mut engine, C2S, t0), last);
}

#[test]
fn commands_inject_close_and_reset() {
    let t0 = Instant::now();
    let mut engine = engine("", t0);
    engine.command(Command::Inject(C2S, Injected::Binary(vec![1, 2])), t0);
    let to_server = frames(&written(&mut engine, C2S, t0));
    assert_eq!(to_server, [(OpCode::Binary, true, false, vec![1, 2])]);
    engine.command(Command::Close(S2C, 1000, "done".to_owned()), t0);
    let to_client = frames(&written(&mut engine, S2C, t0));
    assert_eq!(to_client[0].0, OpCode::Close);
    assert_eq!(engine.cut_by(), None);
    engine.command(Command::Reset, t0);
    assert_eq!(engine.cut_by(), Some(Cut::Reset));
}

#[test]
fn timed_rules_inject_on_an_interval() {
    let t0 = Instant::now();
    let mut engine = engine(
        "[[rule]]\naction = \"inject\"\nto = \"client\"\ntext = \"tick\"\nevery = \"1s\"\n",
        t0,
    );
    // One when the connection opens, then one a second; each wake-up is
    // when the next is due.
    let mut at = Vec::new();
    let mut now = t0;
    while at.len() < 3 {
        let wake = engine.next_wake().expect("a timer");
        assert!(wake >= now, "a wake-up in the past");
        now = wake;
        engine.tick(now);
        let out = written(&mut engine, S2C, now);
        for _ in texts(&out).iter().filter(|t| *t == "tick") {
            at.push(now - t0);
        }
    }
    assert_eq!(at, [ms(0), ms(1000), ms(2000)]);
}

#[test]
fn an_idle_timeout_with_a_code_closes_both_sides() {
    let t0 = Instant::now();
    let mut engine = engine(
        "[[rule]]\naction = \"idle-timeout\"\ntimeout = \"5s\"\ncode = 4001\n",
        t0,
    );
    assert_eq!(engine.next_wake(), Some(t0 + ms(5000)));
    engine.tick(t0 + ms(5000));
    assert_eq!(
        frames(&written(&mut engine, S2C, t0 + ms(5000)))[0].0,
        OpCode::Close
    );
    let to_server = frames(&written(&mut engine, C2S, t0 + ms(5000)));
    assert_eq!(to_server.last().map(|f| f.0), Some(OpCode::Close));
    let (close, _) = ClosePayload::parse(&to_server.last().unwrap().3);
    assert_eq!(close.code.map(|c| c.0), Some(4001));
}

#[test]
fn an_idle_timeout_without_a_code_hangs_up() {
    let t0 = Instant::now();
    let mut engine = engine(
        "[[rule]]\naction = \"idle-timeout\"\ntimeout = \"2s\"\n",
        t0,
    );
    engine.read(C2S, &text(C2S, "hi"), t0 + ms(1000));
    engine.tick(t0 + ms(2500));
    assert_eq!(engine.cut_by(), None, "active a second ago");
    engine.tick(t0 + ms(3000));
    assert_eq!(engine.cut_by(), Some(Cut::Hangup));
}

#[test]
fn a_throttle_paces_a_message_in_pieces() {
    let t0 = Instant::now();
    let mut engine = engine(
        "[[rule]]\nmatch = 'dir == s2c'\naction = \"throttle\"\nrate = \"10KB\"\n",
        t0,
    );
    let big = wire(S2C, OpCode::Binary, true, &[7; 4000]);
    engine.read(S2C, &big, t0);
    let mut out = Vec::new();
    let mut now = t0;
    let mut pieces = 0;
    while out.len() < big.len() {
        out.extend(written(&mut engine, S2C, now));
        pieces += 1;
        now = engine.next_wake().unwrap_or(now);
    }
    assert_eq!(out, big);
    assert!(pieces > 3, "{pieces} pieces");
    // About 4 KB at 10 KB/s: done after some 400 ms of made-up time.
    let took = now - t0;
    assert!(took >= ms(300) && took <= ms(500), "{took:?}");
}

#[test]
fn a_message_over_the_hold_limit_closes_with_1009() {
    let t0 = Instant::now();
    let mut engine = engine("[[rule]]\nmatch = 'text == \"x\"'\naction = \"drop\"\n", t0);
    let big = wire(C2S, OpCode::Binary, true, &vec![0; (1 << 16) + 10]);
    for piece in big.chunks(4096) {
        engine.read(C2S, piece, t0);
    }
    for dir in [C2S, S2C] {
        let out = frames(&written(&mut engine, dir, t0));
        assert_eq!(out.len(), 1, "{dir:?}: only our close");
        let (close, _) = ClosePayload::parse(&out[0].3);
        assert_eq!(close.code.map(|c| c.0), Some(1009));
    }
}

#[test]
fn the_end_of_the_stream_passes_what_was_held_then_shuts() {
    let t0 = Instant::now();
    let mut engine = engine("", t0);
    let first = wire(S2C, OpCode::Text, false, b"half");
    engine.read(S2C, &first, t0);
    assert!(!engine.poll_shutdown(S2C));
    engine.eof(S2C, t0);
    assert!(
        !engine.poll_shutdown(S2C),
        "not before what is owed is written"
    );
    assert_eq!(written(&mut engine, S2C, t0), first);
    assert!(engine.poll_shutdown(S2C));
    assert!(!engine.poll_shutdown(S2C), "once");
    assert!(!engine.wants_read(S2C));
}

#[test]
fn the_closed_event_says_who_closed_first() {
    let t0 = Instant::now();
    let mut engine = Engine::new(config(None, None), t0);
    let mut payload = Vec::new();
    ClosePayload::encode(Some(wscope_proto::CloseCode(1000)), "bye", &mut payload);
    engine.read(S2C, &wire(S2C, OpCode::Close, true, &payload), t0);
    engine.read(C2S, &wire(C2S, OpCode::Close, true, &payload), t0);
    engine.eof(S2C, t0);
    engine.eof(C2S, t0);
    let closed = engine.closed(ms(1));
    assert_eq!(
        (closed.by, closed.clean, closed.code),
        (ClosedBy::Server, true, 1000)
    );
    assert_eq!(closed.reason, "bye");
}

#[test]
fn the_queue_keeps_order_unless_told() {
    let now = Instant::now();
    let mut queue = super::queue::Queue::default();
    queue.push(now + ms(100), vec![1], None, false);
    queue.push(now, vec![2], None, false);
    queue.push(now, vec![3], None, true);
    assert_eq!(queue.order(), [3, 1, 2]);
    assert_eq!(queue.queued(), 3);
    // Due together, small items come out as one piece.
    assert_eq!(queue.poll(now), Some(vec![3]));
    assert_eq!(queue.poll(now + ms(100)), Some(vec![1, 2]));
}

#[test]
fn the_memory_budget_is_shared_and_the_connection_over_it_gets_1013() {
    let t0 = Instant::now();
    let budget = Arc::new(Budget::new(150_000));
    let rules = "[[rule]]\nmatch = 'text == \"x\"'\naction = \"drop\"\n";
    let shared = |t0| {
        let mut config = config(Some(rules), None);
        config.budget = Arc::clone(&budget);
        Engine::new(config, t0)
    };
    let mut first = shared(t0);
    let mut second = shared(t0);
    // Each holds most of a 60 KB message, under the per-message limit.
    let message = wire(C2S, OpCode::Binary, true, &[1; 60_000]);
    first.read(C2S, &message[..50_000], t0);
    // The frame as it came, and its payload as the tap keeps it.
    let held = budget.used();
    assert!((99_000..=100_000).contains(&held), "{held}");
    second.read(C2S, &message[..50_000], t0);
    for dir in [C2S, S2C] {
        let out = frames(&written(&mut second, dir, t0));
        assert_eq!(out.len(), 1, "{dir:?}: only our close");
        let (close, _) = ClosePayload::parse(&out[0].3);
        assert_eq!(close.code.map(|c| c.0), Some(1013));
    }
    assert!(
        notes(&mut second)
            .iter()
            .any(|n| n.contains("memory for held messages"))
    );
    // The first goes on as if nothing happened, and gives back what it
    // held once it is written.
    first.read(C2S, &message[50_000..], t0);
    assert_eq!(written(&mut first, C2S, t0), message);
    assert_eq!(budget.used(), 0);
    drop(second);
    assert_eq!(budget.used(), 0);
}

#[test]
fn a_side_still_being_written_to_does_not_set_the_wake_up() {
    let t0 = Instant::now();
    let mut engine = engine(
        "[[rule]]\nmatch = 'dir == c2s'\naction = \"delay\"\ndelay = \"100ms\"\n\n\
         [[rule]]\naction = \"idle-timeout\"\ntimeout = \"5s\"\n",
        t0,
    );
    engine.read(C2S, &text(C2S, "late"), t0);
    assert_eq!(engine.next_wake(), Some(t0 + ms(100)));
    // Past its due time, with the server side still busy: the wake-up is
    // the idle timer, not a time gone by (a driver would spin on it).
    let busy_server = |dir: Direction| dir != C2S;
    assert_eq!(engine.next_wake_for(busy_server), Some(t0 + ms(5000)));
    assert_eq!(written(&mut engine, C2S, t0 + ms(200)), text(C2S, "late"));
}

#[test]
fn a_held_64_kib_frame_has_room_for_its_header_too() {
    let t0 = Instant::now();
    let rules = "[[rule]]\nmatch = 'json.type == \"never\"'\naction = \"drop\"\n";
    let mut config = config(Some(rules), None);
    config.hold_limit = 1 << 20;
    let mut engine = Engine::new(config, t0);
    let payload = vec![7u8; 64 * 1024];
    let frame = wire(C2S, OpCode::Binary, true, &payload);
    engine.read(C2S, &frame[..1000], t0);
    // Room for the whole frame from its first read: growing by doubling
    // at the last header bytes copied 64 KiB into a fresh 128 KiB.
    let room = engine.flows[super::index(C2S)].partial.capacity();
    assert!(room >= frame.len(), "{room} < {}", frame.len());
    engine.read(C2S, &frame[1000..], t0);
    let out = frames(&written(&mut engine, C2S, t0));
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].3, payload);
}

#[test]
fn a_binary_message_no_rule_reads_is_kept_only_as_far_as_events_keep() {
    let t0 = Instant::now();
    // `len` reads no payload: the tap keeps only the event's 1 KiB.
    let rules = "[[rule]]\nmatch = 'len == 65536'\naction = \"drop\"\n\
                 [[rule]]\nmatch = 'json.type == \"never\"'\naction = \"drop\"\n";
    let mut config = config(Some(rules), None);
    config.hold_limit = 1 << 20;
    config.capture = 1024;
    let mut engine = Engine::new(config, t0);
    let big = vec![7u8; 64 * 1024];
    let frame = wire(S2C, OpCode::Binary, true, &big);
    engine.read(S2C, &frame[..frame.len() - 1], t0);
    let kept = engine.flows[super::index(S2C)].tap.message_kept();
    assert_eq!(kept, 1024);
    engine.read(S2C, &frame[frame.len() - 1..], t0);
    // Its true length still decides: dropped.
    assert!(written(&mut engine, S2C, t0).is_empty());
    let small = wire(S2C, OpCode::Binary, true, &[1, 2, 3]);
    engine.read(S2C, &small, t0);
    assert_eq!(frames(&written(&mut engine, S2C, t0)).len(), 1);
    let recorded: Vec<_> = engine
        .drain_events()
        .filter_map(|emit| match emit.kind {
            EventKind::Message(m) => Some((m.payload.len, m.payload.kept_len())),
            _ => None,
        })
        .collect();
    assert_eq!(recorded, [(65536, 1024), (3, 3)]);

    // A rule that reads binary payloads gets them whole.
    let rules = "[[rule]]\nmatch = 'payload contains \"\\u0007\"'\naction = \"drop\"\n";
    let mut config = super::tests::config(Some(rules), None);
    config.hold_limit = 1 << 20;
    config.capture = 1024;
    let mut engine = Engine::new(config, t0);
    engine.read(S2C, &frame[..frame.len() - 1], t0);
    assert_eq!(
        engine.flows[super::index(S2C)].tap.message_kept(),
        big.len() - 1
    );
}
