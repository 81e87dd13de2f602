//! What an ICE candidate may be before the hub forwards it: the JSON a
//! browser's `RTCIceCandidate.toJSON()` gives, or null for the end of
//! candidates (`docs/signaling.md`, *Routing*). Anything else is refused
//! with `invalid_message`, so a peer cannot use `candidate` to push
//! arbitrary JSON at another.

use darkswap_proto::signaling::{MAX_CANDIDATE_FIELD_LEN, MAX_CANDIDATE_LEN};
use serde_json::{Map, Value};

/// The candidate as it is forwarded (only the fields browsers send, so
/// nothing else rides along), or why it is refused.
pub(super) fn check(candidate: Value) -> Result<Value, String> {
    let mut object = match candidate {
        Value::Null => return Ok(Value::Null),
        Value::Object(o) => o,
        _ => return Err("candidate: an object or null".to_owned()),
    };
    let mut out = Map::new();
    match object.remove("candidate") {
        Some(Value::String(c)) if c.len() <= MAX_CANDIDATE_LEN => {
            out.insert("candidate".into(), Value::String(c));
        }
        Some(Value::String(_)) => {
            return Err(format!(
                "candidate.candidate: at most {MAX_CANDIDATE_LEN} bytes"
            ));
        }
        _ => return Err("candidate.candidate: a string".to_owned()),
    }
    for field in ["sdpMid", "usernameFragment"] {
        match object.remove(field) {
            None => {}
            Some(Value::Null) => {
                out.insert(field.into(), Value::Null);
            }
            Some(Value::String(s)) if s.len() <= MAX_CANDIDATE_FIELD_LEN => {
                out.insert(field.into(), Value::String(s));
            }
            Some(_) => {
                return Err(format!(
                    "candidate.{field}: a string of at most {MAX_CANDIDATE_FIELD_LEN} bytes, or null"
                ));
            }
        }
    }
    match object.remove("sdpMLineIndex") {
        None => {}
        Some(Value::Null) => {
            out.insert("sdpMLineIndex".into(), Value::Null);
        }
        // An unsigned short in WebRTC.
        Some(Value::Number(n)) if n.as_u64().is_some_and(|i| i <= u64::from(u16::MAX)) => {
            out.insert("sdpMLineIndex".into(), Value::Number(n));
        }
        Some(_) => {
            return Err("candidate.sdpMLineIndex: an integer from 0 to 65535, or null".to_owned());
        }
    }
    Ok(Value::Object(out))
}
