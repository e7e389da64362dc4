//! The monotonic clock the engine's [`Time`] is measured on.

use std::time::{Duration, Instant};

use carp_engine::Time;

/// Maps the monotonic clock to engine time, from an origin taken at start.
#[derive(Debug, Clone, Copy)]
pub struct Clock {
    origin: Instant,
}

impl Clock {
    /// A clock whose origin is now.
    pub fn start() -> Clock {
        Clock {
            origin: Instant::now(),
        }
    }

    /// The current engine time.
    pub fn now(&self) -> Time {
        Time::from_duration(self.origin.elapsed())
    }

    /// How long from now until `at` (zero if it has passed).
    pub fn until(&self, at: Time) -> Duration {
        at - self.now()
    }
}
