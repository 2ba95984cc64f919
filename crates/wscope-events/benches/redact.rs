//! Redaction per message: what the default rules cost on the proxy's hot
//! path (every event passes the redactor before any sink). Figures in
//! BENCHMARKS.md.

use criterion::{Criterion, black_box, criterion_group, criterion_main};
use wscope_events::redact::{Redactor, Rules};
use wscope_events::{Direction, Event, EventKind, Message};
use wscope_proto::OpCode;

fn message(text: &str) -> Event {
    Event::now(
        "c1",
        Some(Direction::ServerToClient),
        EventKind::Message(Message::new(OpCode::Text, text.as_bytes(), usize::MAX)),
    )
}

fn redaction(c: &mut Criterion) {
    let redactor = Redactor::new(Rules::default()).expect("the default rules are valid");
    let trade = r#"{"type":"trade","symbol":"BTC-USD","price":97123.5,"size":0.25,"side":"buy","ts":1764050000123}"#;
    let login = r#"{"op":"login","args":{"user":"ann","password":"hunter2"},"id":7}"#;
    let big: String = format!(
        "[{}]",
        vec![trade; 160].join(",") // about 16 KiB, nothing secret
    );
    let cases = [
        ("json_nothing_secret", message(trade)),
        ("json_with_password", message(login)),
        ("json_16k_nothing_secret", message(&big)),
        ("plain_text", message("hello there, nothing to see")),
    ];
    let mut group = c.benchmark_group("redact");
    for (name, event) in &cases {
        group.bench_function(*name, |b| {
            b.iter(|| drop(black_box(&redactor).redact(black_box(event))))
        });
    }
    group.finish();
}

criterion_group!(benches, redaction);
criterion_main!(benches);
