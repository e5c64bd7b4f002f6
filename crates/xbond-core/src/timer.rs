//! The one timer type of the core: stopped, or running until a deadline that
//! the caller's `now` is compared with. No tick counters, no clock reads.

use std::time::{Duration, Instant};

/// A typed timer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Timer {
    /// Not running.
    Stopped,
    /// Running until `expires_at`.
    Running {
        /// When it expires.
        expires_at: Instant,
    },
}

impl Timer {
    /// A timer that expires `d` after `now`.
    pub(crate) fn start(now: Instant, d: Duration) -> Timer {
        Timer::Running {
            expires_at: now + d,
        }
    }

    /// Whether it runs and has expired at `now`.
    pub(crate) fn due(self, now: Instant) -> bool {
        matches!(self, Timer::Running { expires_at } if expires_at <= now)
    }

    /// The deadline, if running.
    pub(crate) fn deadline(self) -> Option<Instant> {
        match self {
            Timer::Stopped => None,
            Timer::Running { expires_at } => Some(expires_at),
        }
    }
}
