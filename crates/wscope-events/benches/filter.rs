//! Filter evaluation per message: what a typical expression costs on the
//! proxy's hot path. Figures in BENCHMARKS.md.

use criterion::{Criterion, black_box, criterion_group, criterion_main};
use wscope_events::filter::parse;
use wscope_events::{Direction, Event, EventKind, Message};
use wscope_proto::OpCode;

fn message(text: &str) -> Event {
    Event::now(
        "c1",
        Some(Direction::ServerToClient),
        EventKind::Message(Message::new(OpCode::Text, text.as_bytes(), usize::MAX)),
    )
}

fn filters(c: &mut Criterion) {
    let event = message(
        r#"{"type":"trade","symbol":"BTC-USD","price":97123.5,"size":0.25,"side":"buy","ts":1764050000123}"#,
    );
    let cases = [
        ("dir_and_opcode", "dir == s2c && opcode == text"),
        (
            "json_field",
            r#"dir == s2c && json.type == "trade" && json.price > 90000"#,
        ),
        ("payload_contains", r#""BTC-USD""#),
        ("regex", r#"text matches "\"side\":\"(buy|sell)\"""#),
    ];
    let mut group = c.benchmark_group("filter");
    for (name, source) in cases {
        let expr = parse(source).expect("the benchmark's filters parse");
        assert!(expr.matches(&event), "{source} matches the sample");
        group.bench_function(name, |b| {
            b.iter(|| black_box(&expr).matches(black_box(&event)))
        });
    }
    group.bench_function("parse", |b| {
        b.iter(|| {
            parse(black_box(
                r#"dir == s2c && json.type == "trade" && json.price > 90000"#,
            ))
        })
    });
    group.finish();
}

criterion_group!(benches, filters);
criterion_main!(benches);
