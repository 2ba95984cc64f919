//! `wscope diff A B`: two recordings of the same conversation compared
//! with replay's rules. Connections are paired in the order they started;
//! each direction's messages are aligned on their own, and the endings
//! compared.

use wscope_events::{Diff, Direction, Event, EventKind};

use super::args::DiffArgs;
use super::compare::{self, Aligned, Compared, Tally};
use super::conversation::Conversation;
use super::driver::{CloseReport, ConnReport};
use super::report::Report;
use crate::sinks::sink::{Human, JsonLines, Sink, Sinks};

pub fn run(args: DiffArgs) -> anyhow::Result<i32> {
    let filter = crate::sinks::output_args::parse_filter(args.filter.as_deref())?;
    let a_name = args.a.display().to_string();
    let b_name = args.b.display().to_string();
    let a = super::load(std::slice::from_ref(&args.a), &[])?;
    let b = super::load(std::slice::from_ref(&args.b), &[])?;
    let a_convs = super::pick(&a, None, &a_name)?;
    let b_convs = super::pick(&b, None, &b_name)?;
    let shown: Box<dyn Sink> = if args.json {
        Box::new(JsonLines::new(usize::MAX))
    } else {
        Box::new(Human {
            arrows: true,
            quiet: false,
            show_control: false,
            timestamps: false,
            pretty: false,
            color: crate::color::stdout(),
            printer: None,
            show_conn: true,
            preview: crate::sinks::preview::Preview::Full,
        })
    };
    // The recordings are compared as they are; what is printed is
    // redacted as every other output is.
    let mut sinks = Sinks::redacting(args.redact.redactor(true)?);
    sinks.add("output", shown);
    let mut sink: Box<dyn Sink> = Box::new(sinks);
    let rules = compare::Rules {
        ignore: args.compare.ignore.clone(),
    };
    let mut reports = Vec::new();
    for k in 0..a_convs.len().max(b_convs.len()) {
        let report = match (a_convs.get(k), b_convs.get(k)) {
            (Some(old), Some(new)) => pair(old, new, filter.as_ref(), &rules, sink.as_mut())?,
            (Some(old), None) => lone(
                old,
                &format!(
                    "{b_name} has no connection to pair with {a_name}'s {}",
                    old.conn
                ),
            ),
            (None, Some(new)) => lone(
                new,
                &format!(
                    "{a_name} has no connection to pair with {b_name}'s {}",
                    new.conn
                ),
            ),
            (None, None) => continue,
        };
        reports.push(report);
    }
    sink.flush()?;
    let report = Report::new("diff", &a_name, Some(&b_name), reports);
    report.finish(args.compare.report_json.as_deref(), args.json)
}

fn lone(conv: &Conversation, why: &str) -> ConnReport {
    let mut report = blank(conv, conv);
    report.result = "different";
    report.status = 1;
    report.notes.push(why.to_owned());
    eprintln!("wscope: {why}");
    report
}

fn blank(old: &Conversation, new: &Conversation) -> ConnReport {
    let mut report = ConnReport::new(&new.conn, &old.conn, "same", 0);
    report.url = new.open.as_ref().map(|o| o.url.clone()).unwrap_or_default();
    report
}

fn side(
    conv: &Conversation,
    dir: Direction,
    filter: Option<&wscope_events::filter::Expr>,
) -> Vec<Compared> {
    let mut out = Vec::new();
    for message in conv.sent_by(dir) {
        if super::driver::counts(filter, &conv.conn, message) {
            out.push(Compared {
                number: out.len() as u64 + 1,
                binary: message.binary,
                payload: message.payload.clone(),
            });
        }
    }
    out
}

fn pair(
    old: &Conversation,
    new: &Conversation,
    filter: Option<&wscope_events::filter::Expr>,
    rules: &compare::Rules,
    sink: &mut dyn Sink,
) -> anyhow::Result<ConnReport> {
    let mut report = blank(old, new);
    let mut tally = Tally::default();
    for dir in [Direction::ClientToServer, Direction::ServerToClient] {
        let (a, b) = (side(old, dir, filter), side(new, dir, filter));
        if dir == Direction::ServerToClient {
            report.expected = a.len() as u64;
            report.compared = b.len() as u64;
        } else {
            report.sent = b.len() as u64;
        }
        let aligned = compare::align(&a, &b, rules);
        let t = Tally::of(&aligned);
        tally.same += t.same;
        tally.differs += t.differs;
        tally.missing += t.missing;
        tally.extra += t.extra;
        for diff in aligned.iter().filter_map(Aligned::diff) {
            sink.event(&Event {
                ts: 0,
                conn: new.conn.clone(),
                dir: Some(dir),
                kind: EventKind::Diff(diff.clone()),
            })?;
            report.differences.push(diff.clone());
        }
    }
    let (a_end, b_end) = (
        super::driver::recorded_ending(old),
        super::driver::recorded_ending(new),
    );
    if a_end != b_end {
        let words = |e: Option<super::driver::Ending>| {
            e.map_or_else(
                || "not recorded".to_owned(),
                |e| format!("{} closed with {}", e.by, e.code),
            )
        };
        let diff = Diff::close(
            a_end.map(|e| e.code),
            b_end.map(|e| e.code),
            format!("before: {}; after: {}", words(a_end), words(b_end)),
        );
        sink.event(&Event {
            ts: 0,
            conn: new.conn.clone(),
            dir: None,
            kind: EventKind::Diff(diff.clone()),
        })?;
        report.differences.push(diff);
    }
    report.close = CloseReport {
        recorded: a_end,
        live: b_end,
    };
    report.tally = tally;
    if !report.differences.is_empty() {
        report.result = "different";
        report.status = 1;
    }
    Ok(report)
}
