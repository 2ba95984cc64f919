//! What a protocol tap saw (`wscope_proto::tap::Observed`), as events.
//!
//! The proxy and the capture reader both watch connections go by with the
//! same `Tap`; this is the one place its observations become event kinds,
//! so a frame looks the same whichever of them saw it.

use wscope_proto::OpCode;
use wscope_proto::tap::Observed;

use crate::event::{Close, EventKind, Frame, Message, Payload, ViolationInfo};

/// How much of a message's payload an event keeps, by kind.
#[derive(Debug, Clone, Copy)]
pub struct PayloadLimits {
    pub text: usize,
    pub binary: usize,
}

impl PayloadLimits {
    /// The same limit for both kinds.
    pub fn all(limit: usize) -> PayloadLimits {
        PayloadLimits {
            text: limit,
            binary: limit,
        }
    }
}

/// One direction's reading of the frames it is shown: whether the data
/// frames of the message in progress are text (a continuation's payload is
/// text when its message's first frame was, and not compressed).
#[derive(Debug, Default, Clone, Copy)]
pub struct FrameText {
    in_text_message: bool,
}

impl FrameText {
    /// The event kind for `observed`; `None` for what only a relay
    /// tracking frames uses.
    pub fn kind(&mut self, observed: Observed, limits: PayloadLimits) -> Option<EventKind> {
        Some(match observed {
            Observed::Frame {
                header,
                payload,
                violations,
            } => {
                if header.opcode == OpCode::Text || header.opcode == OpCode::Binary {
                    self.in_text_message = header.opcode == OpCode::Text && !header.rsv1;
                }
                let text = header.opcode.is_control() || self.in_text_message;
                let mut frame = Frame::new(&header, &payload, text);
                frame.violations = violations.into_iter().map(ViolationInfo::from).collect();
                EventKind::Frame(frame)
            }
            Observed::Message {
                opcode,
                data,
                len,
                compressed,
                frames,
            } => {
                let text = opcode == OpCode::Text;
                let limit = if text { limits.text } else { limits.binary };
                let mut payload = Payload::capture(&data, text, limit);
                payload.truncated = payload.truncated || len > data.len() as u64;
                payload.len = len;
                EventKind::Message(Message {
                    opcode: opcode.name().to_owned(),
                    payload,
                    compressed,
                    frames,
                })
            }
            Observed::Close(close) => EventKind::Close(Close::new(close.code, &close.reason)),
            Observed::Problem(message) => EventKind::Error { message },
            Observed::FrameEnd { .. } | Observed::NotText => return None,
        })
    }
}
