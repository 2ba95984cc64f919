//! How a recording is played back: the pacing both `replay` and
//! `serve --replay` take, and how `serve --replay` matches client messages.

/// Which recorded client message a live one must match (`serve --replay`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum MatchOrder {
    /// The next recorded client message, in recorded order.
    Next,
    /// Any recorded client message not used yet.
    Any,
}

/// What `serve --replay` does with a client message that matches nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum OnMismatch {
    /// Nothing more: the connection goes on.
    Ignore,
    /// Close 1008 (policy violation), with the mismatch as the reason.
    Close,
}

/// How a replay paces the client's messages.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Pace {
    /// Before each client message, wait until the server has sent as many
    /// compared messages as it had at that point in the recording.
    Replies,
    /// The recorded gaps, scaled by the factor (1.0: as recorded).
    Original(f64),
    /// As fast as the server takes them.
    None,
}

pub fn parse_pace(text: &str) -> Result<Pace, String> {
    match text {
        "replies" => Ok(Pace::Replies),
        "original" => Ok(Pace::Original(1.0)),
        "none" => Ok(Pace::None),
        _ => {
            let factor = text
                .strip_prefix('x')
                .and_then(|f| f.parse::<f64>().ok())
                .filter(|f| f.is_finite() && *f > 0.0 && *f <= 1000.0)
                .ok_or_else(|| {
                    format!(
                        "{text:?}: use replies, original, none, or xN (x2: twice as fast, x0.5: half as fast)"
                    )
                })?;
            Ok(Pace::Original(1.0 / factor))
        }
    }
}

pub fn parse_path(text: &str) -> Result<Vec<wscope_events::filter::PathStep>, String> {
    wscope_events::filter::parse_json_path(text)
}
