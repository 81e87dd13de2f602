//! The signaling connection's lifecycle, sans IO: seed 000's connection
//! states, and what to do when a socket is lost or refused (the rules of the
//! browser client, `clients/js/src/signaling.js`). The supervisor feeds it
//! what happened and sleeps, reconnects or stops as told.

use std::time::Duration;

/// State of a signaling connection (seed 000's connection states).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ConnectionState {
    /// Never connected.
    New,
    /// Opening the socket and registering (the first time or again).
    Connecting,
    /// Registered: messages flow.
    Connected,
    /// The socket was lost; a reconnection is scheduled (or, with
    /// reconnection off, nothing more happens).
    Disconnected,
    /// Gave up: the relay refused this peer for good (a token or role it
    /// will not accept, a bad signature), the first connection failed, or
    /// the reconnection attempts ran out.
    Failed,
    /// Closed on purpose ([`disconnect`](crate::WebRtcSignalingClient::disconnect)).
    Closed,
}

impl ConnectionState {
    /// The state's name, lower case (`new`, `connecting`, ...), as the
    /// browser client's `connectionState` names it.
    pub fn as_str(self) -> &'static str {
        match self {
            ConnectionState::New => "new",
            ConnectionState::Connecting => "connecting",
            ConnectionState::Connected => "connected",
            ConnectionState::Disconnected => "disconnected",
            ConnectionState::Failed => "failed",
            ConnectionState::Closed => "closed",
        }
    }
}

impl std::fmt::Display for ConnectionState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Reconnection settings of a [`WebRtcSignalingClient`](crate::WebRtcSignalingClient).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ReconnectPolicy {
    /// Reconnect (and register again under the same peer id) when a socket
    /// that was registered is lost. Default: true.
    pub enabled: bool,
    /// First delay; it doubles with each failed attempt. Default: 250 ms.
    pub backoff_min: Duration,
    /// Longest delay. Default: 10 s.
    pub backoff_max: Duration,
    /// Attempts in a row before giving up (`Failed`); `None`: never give up.
    /// Default: `None`.
    pub max_attempts: Option<u32>,
}

impl Default for ReconnectPolicy {
    fn default() -> Self {
        ReconnectPolicy {
            enabled: true,
            backoff_min: Duration::from_millis(250),
            backoff_max: Duration::from_secs(10),
            max_attempts: None,
        }
    }
}

impl ReconnectPolicy {
    /// Sets the first and the longest delay.
    pub fn with_backoff(mut self, min: Duration, max: Duration) -> Self {
        self.backoff_min = min;
        self.backoff_max = max.max(min);
        self
    }

    /// Sets [`max_attempts`](Self::max_attempts).
    pub fn with_max_attempts(mut self, max: Option<u32>) -> Self {
        self.max_attempts = max;
        self
    }

    /// No reconnection: a lost socket stays lost.
    pub fn never() -> Self {
        ReconnectPolicy {
            enabled: false,
            ..ReconnectPolicy::default()
        }
    }
}

/// Times a first registration refused with `already_registered` is retried.
const FIRST_REGISTRATION_RETRIES: u32 = 3;

/// Close code: invalid, expired or revoked token, or a role that may not register.
pub(crate) const CLOSE_UNAUTHORIZED: u16 = 4004;
/// Close code: a connection limit; try again later.
pub(crate) const CLOSE_TRY_AGAIN_LATER: u16 = 1013;

/// How a connection attempt or a registered socket ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Loss {
    /// The server refused the registration with this error code; `renewable`
    /// when a new token cures it (ours expired).
    Refused { code: String, renewable: bool },
    /// The socket closed with this code (or none: reset, unreachable, a
    /// failed token request).
    Closed { code: Option<u16> },
}

/// What to do next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Next {
    /// Connect again after this delay (zero: at once, with a new token).
    Reconnect { after: Duration, new_token: bool },
    /// Stop in this state (`Failed`, or `Disconnected` without reconnection).
    Stop(ConnectionState),
}

/// The lifecycle of one client.
#[derive(Debug)]
pub(crate) struct Lifecycle {
    policy: ReconnectPolicy,
    state: ConnectionState,
    /// Exponent of the next backoff.
    attempt: u32,
    /// Reconnections scheduled since the last registration.
    failures: u32,
    ever_registered: bool,
}

impl Lifecycle {
    pub(crate) fn new(policy: ReconnectPolicy) -> Self {
        Lifecycle {
            policy,
            state: ConnectionState::New,
            attempt: 0,
            failures: 0,
            ever_registered: false,
        }
    }

    pub(crate) fn state(&self) -> ConnectionState {
        self.state
    }

    /// An attempt starts.
    pub(crate) fn connecting(&mut self) -> ConnectionState {
        self.state = ConnectionState::Connecting;
        self.state
    }

    /// Registered.
    pub(crate) fn registered(&mut self) -> ConnectionState {
        self.attempt = 0;
        self.failures = 0;
        self.ever_registered = true;
        self.state = ConnectionState::Connected;
        self.state
    }

    /// Closed on purpose.
    pub(crate) fn closed(&mut self) -> ConnectionState {
        self.state = ConnectionState::Closed;
        self.state
    }

    /// An attempt failed or a socket was lost; `jitter` in `[0, 1)` spreads
    /// reconnections out. Sets the state the client is in until `Next`
    /// happens.
    pub(crate) fn lost(&mut self, loss: &Loss, jitter: f64) -> Next {
        let next = self.decide(loss, jitter);
        self.state = match &next {
            Next::Reconnect { .. } => ConnectionState::Disconnected,
            Next::Stop(state) => *state,
        };
        next
    }

    fn decide(&mut self, loss: &Loss, jitter: f64) -> Next {
        let fail = Next::Stop(ConnectionState::Failed);
        match loss {
            // Our token ran out: a new one, at once (even the first time).
            Loss::Refused {
                renewable: true, ..
            } => {
                return Next::Reconnect {
                    after: Duration::ZERO,
                    new_token: true,
                };
            }
            // Refused for who we are: retrying cannot help.
            Loss::Refused { code, .. } if code == "unauthorized" || code == "bad_signature" => {
                return fail;
            }
            Loss::Closed {
                code: Some(CLOSE_UNAUTHORIZED),
            } => return fail,
            _ => {}
        }
        // The first registration is retried only when the server still holds
        // our id (a previous socket it has not noticed is gone), and only a
        // few times: another live client with our key holds it for good.
        let retried_at_first = matches!(loss, Loss::Refused { code, .. } if code == "already_registered")
            && self.failures < FIRST_REGISTRATION_RETRIES;
        if !self.ever_registered && !retried_at_first {
            return fail;
        }
        if !self.policy.enabled {
            return Next::Stop(if self.ever_registered {
                ConnectionState::Disconnected
            } else {
                ConnectionState::Failed
            });
        }
        if self
            .policy
            .max_attempts
            .is_some_and(|max| self.failures >= max)
        {
            return fail;
        }
        self.failures += 1;
        if matches!(
            loss,
            Loss::Closed {
                code: Some(CLOSE_TRY_AGAIN_LATER)
            }
        ) {
            // A connection limit: back off for a second or so at least.
            self.attempt = self.attempt.max(2);
        }
        let base = self
            .policy
            .backoff_min
            .saturating_mul(1u32 << self.attempt.min(16))
            .min(self.policy.backoff_max);
        self.attempt = (self.attempt + 1).min(16);
        Next::Reconnect {
            after: base / 2 + base.mul_f64(jitter.clamp(0.0, 1.0) / 2.0),
            new_token: false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ConnectionState::*;

    fn closed(code: u16) -> Loss {
        Loss::Closed { code: Some(code) }
    }

    fn refused(code: &str) -> Loss {
        Loss::Refused {
            code: code.into(),
            renewable: false,
        }
    }

    #[test]
    fn a_registered_client_reconnects_with_growing_delays_and_starts_over_once_back() {
        let mut l = Lifecycle::new(ReconnectPolicy::default());
        assert_eq!(l.state(), New);
        assert_eq!(l.connecting(), Connecting);
        assert_eq!(l.registered(), Connected);
        let delays: Vec<Duration> = (0..7)
            .map(|_| match l.lost(&closed(1006), 0.0) {
                Next::Reconnect { after, new_token } => {
                    assert!(!new_token);
                    assert_eq!(l.state(), Disconnected);
                    after
                }
                other => panic!("{other:?}"),
            })
            .collect();
        let ms: Vec<u128> = delays.iter().map(Duration::as_millis).collect();
        // Half the base at jitter 0: 250, 500, 1000, ... capped at 10 s.
        assert_eq!(ms, [125, 250, 500, 1000, 2000, 4000, 5000]);
        l.connecting();
        l.registered();
        assert_eq!(
            l.lost(&closed(1001), 0.999),
            Next::Reconnect {
                after: Duration::from_micros(249_875),
                new_token: false
            }
        );
    }

    #[test]
    fn refusals_for_who_we_are_are_final_and_an_expired_token_is_renewed() {
        let mut l = Lifecycle::new(ReconnectPolicy::default());
        l.connecting();
        l.registered();
        for loss in [
            closed(4004),
            refused("unauthorized"),
            refused("bad_signature"),
        ] {
            assert_eq!(l.lost(&loss, 0.5), Next::Stop(Failed), "{loss:?}");
            assert_eq!(l.state(), Failed);
        }
        let expired = Loss::Refused {
            code: "unauthorized".into(),
            renewable: true,
        };
        assert_eq!(
            l.lost(&expired, 0.5),
            Next::Reconnect {
                after: Duration::ZERO,
                new_token: true
            }
        );
    }

    #[test]
    fn the_first_connection_fails_fast_unless_the_server_still_holds_our_id() {
        let mut l = Lifecycle::new(ReconnectPolicy::default());
        l.connecting();
        assert_eq!(
            l.lost(&Loss::Closed { code: None }, 0.0),
            Next::Stop(Failed)
        );
        for _ in 0..FIRST_REGISTRATION_RETRIES {
            l.connecting();
            assert!(matches!(
                l.lost(&refused("already_registered"), 0.0),
                Next::Reconnect { .. }
            ));
        }
        assert_eq!(
            l.lost(&refused("already_registered"), 0.0),
            Next::Stop(Failed)
        );
        assert_eq!(l.lost(&refused("server_full"), 0.0), Next::Stop(Failed));
    }

    #[test]
    fn limits_back_off_longer_and_attempts_can_run_out() {
        let mut l = Lifecycle::new(ReconnectPolicy {
            max_attempts: Some(2),
            ..ReconnectPolicy::default()
        });
        l.connecting();
        l.registered();
        assert_eq!(
            l.lost(&closed(1013), 0.0),
            Next::Reconnect {
                after: Duration::from_millis(500),
                new_token: false
            }
        );
        assert_eq!(
            l.lost(&closed(1006), 0.0),
            Next::Reconnect {
                after: Duration::from_millis(1000),
                new_token: false
            }
        );
        assert_eq!(l.lost(&closed(1006), 0.0), Next::Stop(Failed));

        let mut off = Lifecycle::new(ReconnectPolicy::never());
        off.connecting();
        off.registered();
        assert_eq!(off.lost(&closed(1006), 0.0), Next::Stop(Disconnected));
        assert_eq!(off.closed(), Closed);
    }
}
