//! The event stream, `GET /v1/events`: server-sent events whose `data` is
//! one [`Event`] as JSON, `{"type": ..., ...}`. The first is always
//! [`Event::Hello`].

pub use darkswap_p2p::json::{Event, HelloRelay};

/// Route of the event stream.
pub const EVENTS_ROUTE: &str = "/v1/events";
