//! Comparing what a server sent with what it sent in the recording.
//!
//! Messages are aligned, not compared by position: one extra or missing
//! message shows as such and the rest still line up. The alignment is a
//! least-cost edit (Needleman–Wunsch): leaving a message unpaired costs
//! half, pairing two costs how different they are (0 when equal, up to
//! just under 1 for JSON with every value changed), so a message that
//! changed a field pairs with its recorded self, while one that is new
//! (a heartbeat) stays unpaired. Text is compared exactly, JSON
//! structurally (key order ignored) with `--ignore` paths left out, and
//! binary byte for byte.

use std::fmt::Write as _;

use serde_json::Value;
use wscope_events::filter::{PathStep, json_path_string};
use wscope_events::{Change, Diff, PathChange, Payload};

/// One message under comparison.
#[derive(Debug, Clone)]
pub struct Compared {
    /// Its number among the compared messages of its side (1-based).
    pub number: u64,
    pub binary: bool,
    pub payload: Payload,
}

/// What to leave out of a comparison.
#[derive(Debug, Clone, Default)]
pub struct Rules {
    /// JSON paths whose values (and everything under them) never count.
    pub ignore: Vec<Vec<PathStep>>,
}

/// How one recorded message and the live side lined up.
#[derive(Debug, Clone, PartialEq)]
pub enum Aligned {
    Same { expected: u64, actual: u64 },
    Differs(Diff),
    Missing(Diff),
    Extra(Diff),
}

impl Aligned {
    /// The difference, if this is one.
    pub fn diff(&self) -> Option<&Diff> {
        match self {
            Aligned::Same { .. } => None,
            Aligned::Differs(d) | Aligned::Missing(d) | Aligned::Extra(d) => Some(d),
        }
    }
}

/// Counts of a comparison's outcome.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct Tally {
    pub same: u64,
    pub differs: u64,
    pub missing: u64,
    pub extra: u64,
}

impl Tally {
    pub fn of(aligned: &[Aligned]) -> Tally {
        let mut tally = Tally::default();
        for a in aligned {
            match a {
                Aligned::Same { .. } => tally.same += 1,
                Aligned::Differs(_) => tally.differs += 1,
                Aligned::Missing(_) => tally.missing += 1,
                Aligned::Extra(_) => tally.extra += 1,
            }
        }
        tally
    }

    pub fn differences(&self) -> u64 {
        self.differs + self.missing + self.extra
    }
}

/// Leaving a message unpaired, in thousandths.
const GAP: u32 = 500;
/// Two messages that share nothing comparable.
const UNLIKE: u32 = 2 * GAP + 1;
/// Beyond this many cells the middle part is aligned position by
/// position (a bounded cost for pathological recordings).
const MAX_CELLS: usize = 4_000_000;

/// A message prepared for comparing: its JSON parsed once, ignored paths
/// removed.
struct Prepared<'a> {
    message: &'a Compared,
    shape: Shape,
}

enum Shape {
    Json(Value),
    Text(String),
    /// Binary, or text that could not be decoded.
    Bytes(Vec<u8>),
}

impl<'a> Prepared<'a> {
    fn new(message: &'a Compared, rules: &Rules) -> Prepared<'a> {
        let shape = match (&message.payload.text, message.binary) {
            (Some(text), false) => match serde_json::from_str::<Value>(text) {
                Ok(mut json) if json.is_object() || json.is_array() => {
                    for path in &rules.ignore {
                        remove_path(&mut json, path);
                    }
                    Shape::Json(json)
                }
                _ => Shape::Text(text.clone()),
            },
            _ => Shape::Bytes(message.payload.bytes().to_vec()),
        };
        Prepared { message, shape }
    }
}

/// Aligns the recorded messages (`expected`) with the live ones
/// (`actual`) and says how each pair, or lone message, compares.
pub fn align(expected: &[Compared], actual: &[Compared], rules: &Rules) -> Vec<Aligned> {
    let old: Vec<Prepared> = expected.iter().map(|m| Prepared::new(m, rules)).collect();
    let new: Vec<Prepared> = actual.iter().map(|m| Prepared::new(m, rules)).collect();
    // Equal heads and tails need no search.
    let mut head = 0;
    while head < old.len() && head < new.len() && cost(&old[head], &new[head]) == 0 {
        head += 1;
    }
    let mut tail = 0;
    while tail < old.len() - head
        && tail < new.len() - head
        && cost(&old[old.len() - 1 - tail], &new[new.len() - 1 - tail]) == 0
    {
        tail += 1;
    }
    let mut out = Vec::with_capacity(old.len().max(new.len()));
    for i in 0..head {
        out.push(same(&old[i], &new[i]));
    }
    let (mid_old, mid_new) = (&old[head..old.len() - tail], &new[head..new.len() - tail]);
    let pairs = if (mid_old.len() + 1) * (mid_new.len() + 1) <= MAX_CELLS {
        least_cost(mid_old, mid_new)
    } else {
        by_position(mid_old.len(), mid_new.len())
    };
    for pair in pairs {
        out.push(match pair {
            (Some(i), Some(j)) => compare(&mid_old[i], &mid_new[j]),
            (Some(i), None) => Aligned::Missing(Diff {
                change: Change::Missing,
                expected: Some(mid_old[i].message.number),
                old: Some(mid_old[i].message.payload.clone()),
                ..empty_diff(Change::Missing)
            }),
            (None, Some(j)) => Aligned::Extra(Diff {
                actual: Some(mid_new[j].message.number),
                new: Some(mid_new[j].message.payload.clone()),
                ..empty_diff(Change::Extra)
            }),
            (None, None) => continue,
        });
    }
    for k in 0..tail {
        let (i, j) = (old.len() - tail + k, new.len() - tail + k);
        out.push(same(&old[i], &new[j]));
    }
    out
}

/// Whether a live message counts as the recorded one, by the rules
/// [`align`] pairs messages with (text exactly, JSON structurally without
/// the ignored paths, binary byte for byte, a cut recording by its
/// prefix and length): how `serve --replay` recognises a client message.
pub fn equal(expected: &Compared, actual: &Compared, rules: &Rules) -> bool {
    cost(
        &Prepared::new(expected, rules),
        &Prepared::new(actual, rules),
    ) == 0
}

/// Where two JSON messages differ (with `rules` applied), however unlike
/// they are; empty when either is not JSON.
pub fn json_paths(expected: &Compared, actual: &Compared, rules: &Rules) -> Vec<PathChange> {
    let mut paths = Vec::new();
    if let (Shape::Json(a), Shape::Json(b)) = (
        &Prepared::new(expected, rules).shape,
        &Prepared::new(actual, rules).shape,
    ) {
        json_diff(a, b, &mut Vec::new(), &mut paths);
    }
    paths
}

fn empty_diff(change: Change) -> Diff {
    Diff {
        change,
        expected: None,
        actual: None,
        old: None,
        new: None,
        paths: Vec::new(),
        old_code: None,
        new_code: None,
        note: String::new(),
    }
}

fn same(old: &Prepared, new: &Prepared) -> Aligned {
    Aligned::Same {
        expected: old.message.number,
        actual: new.message.number,
    }
}

fn compare(old: &Prepared, new: &Prepared) -> Aligned {
    if cost(old, new) == 0 {
        return same(old, new);
    }
    let paths = match (&old.shape, &new.shape) {
        (Shape::Json(a), Shape::Json(b)) => {
            let mut paths = Vec::new();
            json_diff(a, b, &mut Vec::new(), &mut paths);
            paths
        }
        _ => Vec::new(),
    };
    Aligned::Differs(Diff {
        expected: Some(old.message.number),
        actual: Some(new.message.number),
        old: Some(old.message.payload.clone()),
        new: Some(new.message.payload.clone()),
        paths,
        ..empty_diff(Change::Differs)
    })
}

/// How unlike two messages are, in thousandths: 0 when they compare
/// equal.
fn cost(old: &Prepared, new: &Prepared) -> u32 {
    if old.message.binary != new.message.binary {
        return UNLIKE;
    }
    match (&old.shape, &new.shape) {
        (Shape::Json(a), Shape::Json(b)) => {
            if a == b {
                return 0;
            }
            let mut paths = Vec::new();
            json_diff(a, b, &mut Vec::new(), &mut paths);
            let equal = equal_leaves(a, b);
            // The share of values that changed, of all values either has:
            // two messages that share no equal value (a heartbeat and an
            // answer) are cheaper as a missing and an extra one than as a
            // pair; an answer that became an error for the same id pairs.
            let share = (paths.len() * 1000 / (paths.len() + equal).max(1)) as u32;
            100 + share
        }
        (Shape::Text(a), Shape::Text(b)) => {
            if text_matches(old.message, a, b) {
                0
            } else {
                900
            }
        }
        (Shape::Bytes(a), Shape::Bytes(b)) => {
            let equal = if old.message.payload.truncated {
                b.starts_with(a) && new.message.payload.len == old.message.payload.len
            } else {
                a == b
            };
            if equal { 0 } else { 900 }
        }
        _ => UNLIKE,
    }
}

/// A recorded text cut to the capture limit matches a live text that
/// starts with it and has the recorded length.
fn text_matches(recorded: &Compared, old: &str, new: &str) -> bool {
    if recorded.payload.truncated {
        new.starts_with(old) && new.len() as u64 == recorded.payload.len
    } else {
        old == new
    }
}

/// How many values are equal at the same path in both.
fn equal_leaves(a: &Value, b: &Value) -> usize {
    match (a, b) {
        (Value::Object(x), Value::Object(y)) => x
            .iter()
            .filter_map(|(key, old)| y.get(key).map(|new| equal_leaves(old, new)))
            .sum(),
        (Value::Array(x), Value::Array(y)) => x
            .iter()
            .zip(y)
            .map(|(old, new)| equal_leaves(old, new))
            .sum(),
        _ => usize::from(a == b),
    }
}

/// The least-cost alignment of two lists, as pairs of indices (either
/// side `None` for an unpaired message), in order.
fn least_cost(old: &[Prepared], new: &[Prepared]) -> Vec<(Option<usize>, Option<usize>)> {
    let (n, m) = (old.len(), new.len());
    let width = m + 1;
    let mut table = vec![0u32; (n + 1) * width];
    for i in 0..=n {
        for j in 0..=m {
            table[i * width + j] = match (i, j) {
                (0, 0) => 0,
                (0, _) => table[j - 1] + GAP,
                (_, 0) => table[(i - 1) * width] + GAP,
                _ => {
                    let pair = table[(i - 1) * width + j - 1] + cost(&old[i - 1], &new[j - 1]);
                    let skip_old = table[(i - 1) * width + j] + GAP;
                    let skip_new = table[i * width + j - 1] + GAP;
                    pair.min(skip_old).min(skip_new)
                }
            };
        }
    }
    let mut pairs = Vec::with_capacity(n.max(m));
    let (mut i, mut j) = (n, m);
    while i > 0 || j > 0 {
        let here = table[i * width + j];
        if i > 0 && j > 0 {
            let c = cost(&old[i - 1], &new[j - 1]);
            if c < UNLIKE && here == table[(i - 1) * width + j - 1] + c {
                pairs.push((Some(i - 1), Some(j - 1)));
                i -= 1;
                j -= 1;
                continue;
            }
        }
        // Walking backwards, extra before missing: read forwards, what
        // was expected comes first.
        if j > 0 && here == table[i * width + j - 1] + GAP {
            pairs.push((None, Some(j - 1)));
            j -= 1;
        } else {
            pairs.push((Some(i - 1), None));
            i -= 1;
        }
    }
    pairs.reverse();
    pairs
}

fn by_position(n: usize, m: usize) -> Vec<(Option<usize>, Option<usize>)> {
    (0..n.max(m))
        .map(|k| ((k < n).then_some(k), (k < m).then_some(k)))
        .collect()
}

/// Every path where `a` and `b` differ, key order ignored; arrays by
/// position (an element added or removed at the end shows as such).
pub fn json_diff(a: &Value, b: &Value, path: &mut Vec<PathStep>, out: &mut Vec<PathChange>) {
    match (a, b) {
        (Value::Object(x), Value::Object(y)) => {
            for (key, old) in x {
                path.push(PathStep::Key(key.clone()));
                match y.get(key) {
                    Some(new) => json_diff(old, new, path, out),
                    None => out.push(change(path, Some(old), None)),
                }
                path.pop();
            }
            for (key, new) in y {
                if !x.contains_key(key) {
                    path.push(PathStep::Key(key.clone()));
                    out.push(change(path, None, Some(new)));
                    path.pop();
                }
            }
        }
        (Value::Array(x), Value::Array(y)) => {
            for k in 0..x.len().max(y.len()) {
                path.push(PathStep::Index(k));
                match (x.get(k), y.get(k)) {
                    (Some(old), Some(new)) => json_diff(old, new, path, out),
                    (old, new) => out.push(change(path, old, new)),
                }
                path.pop();
            }
        }
        _ if a == b => {}
        _ => out.push(change(path, Some(a), Some(b))),
    }
}

fn change(path: &[PathStep], old: Option<&Value>, new: Option<&Value>) -> PathChange {
    PathChange {
        path: json_path_string(path),
        old: old.cloned(),
        new: new.cloned(),
    }
}

/// Removes the value at `path` (nothing when it is not there).
pub fn remove_path(value: &mut Value, path: &[PathStep]) {
    let Some((last, parents)) = path.split_last() else {
        return;
    };
    let mut node = value;
    for step in parents {
        node = match (step, node) {
            (PathStep::Key(key), Value::Object(map)) => match map.get_mut(key) {
                Some(next) => next,
                None => return,
            },
            (PathStep::Index(i), Value::Array(list)) => match list.get_mut(*i) {
                Some(next) => next,
                None => return,
            },
            _ => return,
        };
    }
    match (last, node) {
        (PathStep::Key(key), Value::Object(map)) => {
            map.shift_remove(key);
        }
        // An element is blanked, not removed: the ones after it keep
        // their positions.
        (PathStep::Index(i), Value::Array(list)) => {
            if let Some(slot) = list.get_mut(*i) {
                *slot = Value::Null;
            }
        }
        _ => {}
    }
}

/// The value at `path`, when it is there.
pub fn value_at<'v>(value: &'v Value, path: &[PathStep]) -> Option<&'v Value> {
    let mut node = value;
    for step in path {
        node = match step {
            PathStep::Key(key) => node.get(key.as_str())?,
            PathStep::Index(i) => node.get(*i)?,
        };
    }
    Some(node)
}

/// A short one-line rendering of a payload for a report.
pub fn short(payload: &Payload, limit: usize) -> String {
    let mut out = String::new();
    match &payload.text {
        Some(text) => {
            let mut cut = text.len().min(limit);
            while !text.is_char_boundary(cut) {
                cut -= 1;
            }
            out.push_str(&text[..cut]);
            if cut < text.len() || payload.truncated {
                out.push('…');
            }
        }
        None => {
            let bytes = payload.bytes();
            let _ = write!(out, "<binary {} bytes> ", payload.len);
            for byte in bytes.iter().take(limit / 2) {
                let _ = write!(out, "{byte:02x}");
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use wscope_events::filter::parse_json_path;

    fn texts(list: &[&str]) -> Vec<Compared> {
        list.iter()
            .enumerate()
            .map(|(i, t)| Compared {
                number: i as u64 + 1,
                binary: false,
                payload: Payload::capture(t.as_bytes(), true, usize::MAX),
            })
            .collect()
    }

    fn kinds(aligned: &[Aligned]) -> Vec<&'static str> {
        aligned
            .iter()
            .map(|a| match a {
                Aligned::Same { .. } => "same",
                Aligned::Differs(_) => "differs",
                Aligned::Missing(_) => "missing",
                Aligned::Extra(_) => "extra",
            })
            .collect()
    }

    #[test]
    fn json_compares_structurally_and_names_the_path() {
        let old = texts(&[r#"{"a":1,"b":{"c":[1,2]},"t":5}"#]);
        let new = texts(&[r#"{"t":5,"b":{"c":[1,3]},"a":1}"#]);
        let aligned = align(&old, &new, &Rules::default());
        let Aligned::Differs(diff) = &aligned[0] else {
            panic!("{aligned:?}")
        };
        assert_eq!(diff.paths.len(), 1);
        assert_eq!(diff.paths[0].path, "json.b.c[1]");
        assert_eq!(diff.paths[0].old, Some(serde_json::json!(2)));
        assert_eq!(diff.paths[0].new, Some(serde_json::json!(3)));
        // Key order alone is no difference.
        let same = texts(&[r#"{"b":{"c":[1,2]},"t":5,"a":1}"#]);
        assert_eq!(kinds(&align(&old, &same, &Rules::default())), ["same"]);
    }

    #[test]
    fn ignored_paths_do_not_count() {
        let old = texts(&[r#"{"type":"tick","ts":1}"#]);
        let new = texts(&[r#"{"type":"tick","ts":2}"#]);
        assert_eq!(kinds(&align(&old, &new, &Rules::default())), ["differs"]);
        let rules = Rules {
            ignore: vec![parse_json_path("json.ts").unwrap()],
        };
        assert_eq!(kinds(&align(&old, &new, &rules)), ["same"]);
    }

    #[test]
    fn one_extra_or_missing_message_leaves_the_rest_aligned() {
        let old = texts(&["a", "b", "c", "d"]);
        let new = texts(&["a", "hb", "b", "c", "d"]);
        assert_eq!(
            kinds(&align(&old, &new, &Rules::default())),
            ["same", "extra", "same", "same", "same"]
        );
        let new = texts(&["a", "c", "d"]);
        assert_eq!(
            kinds(&align(&old, &new, &Rules::default())),
            ["same", "missing", "same", "same"]
        );
    }

    #[test]
    fn a_changed_json_message_pairs_with_its_recorded_self() {
        let old = texts(&[
            r#"{"type":"hello"}"#,
            r#"{"type":"quote","price":10,"sym":"A"}"#,
            r#"{"type":"bye"}"#,
        ]);
        let new = texts(&[
            r#"{"type":"hello"}"#,
            r#"{"type":"heartbeat"}"#,
            r#"{"type":"quote","price":12,"sym":"A"}"#,
            r#"{"type":"bye"}"#,
        ]);
        let aligned = align(&old, &new, &Rules::default());
        assert_eq!(kinds(&aligned), ["same", "extra", "differs", "same"]);
        let diff = aligned[2].diff().unwrap();
        assert_eq!((diff.expected, diff.actual), (Some(2), Some(3)));
        assert_eq!(diff.paths[0].path, "json.price");
    }

    #[test]
    fn a_heartbeat_never_pairs_with_a_missing_answer() {
        let old = texts(&[r#"{"type":"result","id":3,"value":30,"session":"s"}"#]);
        let new = texts(&[r#"{"type":"heartbeat"}"#]);
        assert_eq!(
            kinds(&align(&old, &new, &Rules::default())),
            ["missing", "extra"]
        );
    }

    #[test]
    fn an_answer_that_became_an_error_pairs_with_it() {
        let old = texts(&[r#"{"type":"result","id":3,"value":30,"session":"s"}"#]);
        let new = texts(&[r#"{"type":"error","id":3,"error":"unknown session"}"#]);
        assert_eq!(kinds(&align(&old, &new, &Rules::default())), ["differs"]);
    }

    #[test]
    fn a_cut_recording_matches_a_live_message_that_starts_with_it() {
        let mut old = texts(&["hello world"]);
        old[0].payload.truncate(5);
        assert_eq!(
            kinds(&align(&old, &texts(&["hello world"]), &Rules::default())),
            ["same"]
        );
        assert_eq!(
            kinds(&align(&old, &texts(&["hello world!"]), &Rules::default())),
            ["differs"]
        );
        assert_eq!(
            kinds(&align(&old, &texts(&["howdy world"]), &Rules::default())),
            ["differs"]
        );
    }

    #[test]
    fn binary_and_text_never_pair() {
        let old = texts(&["x"]);
        let new = vec![Compared {
            number: 1,
            binary: true,
            payload: Payload::capture(b"x", false, usize::MAX),
        }];
        assert_eq!(
            kinds(&align(&old, &new, &Rules::default())),
            ["missing", "extra"]
        );
    }

    #[test]
    fn equal_is_alignment_without_a_difference() {
        let rules = Rules {
            ignore: vec![parse_json_path("json.id").unwrap()],
        };
        let recorded = &texts(&[r#"{"op":"sub","id":1,"topic":"a"}"#])[0];
        let reordered = &texts(&[r#"{"topic":"a","id":7,"op":"sub"}"#])[0];
        let changed = &texts(&[r#"{"op":"sub","id":1,"topic":"b"}"#])[0];
        assert!(equal(recorded, reordered, &rules));
        assert!(!equal(recorded, reordered, &Rules::default()));
        assert!(!equal(recorded, changed, &rules));
        let text = &texts(&["hello"])[0];
        assert!(equal(text, &texts(&["hello"])[0], &rules));
        assert!(!equal(text, &texts(&["hello "])[0], &rules));
    }

    #[test]
    fn removing_paths() {
        let mut v = serde_json::json!({"a":{"b":1,"c":2},"l":[1,2,3]});
        remove_path(&mut v, &parse_json_path("json.a.b").unwrap());
        remove_path(&mut v, &parse_json_path("json.l[1]").unwrap());
        remove_path(&mut v, &parse_json_path("json.nothing.here").unwrap());
        assert_eq!(v, serde_json::json!({"a":{"c":2},"l":[1,null,3]}));
        assert_eq!(
            value_at(&v, &parse_json_path("json.a.c").unwrap()),
            Some(&serde_json::json!(2))
        );
    }
}
