//! Time as the engine sees it: a point on the caller's monotonic clock, and
//! CARP intervals.
//!
//! The engine never reads a clock. The caller picks an origin (process start,
//! a simulator's zero) and passes [`Time`]s measured from it.

use std::fmt;
use std::ops::{Add, Sub};
use std::time::Duration;

/// A point in time, as a duration since an origin the caller chose.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Time(Duration);

impl Time {
    /// The origin.
    pub const ZERO: Time = Time(Duration::ZERO);

    /// The point `since_origin` after the origin.
    pub const fn from_duration(since_origin: Duration) -> Time {
        Time(since_origin)
    }

    /// How long after the origin this is.
    pub const fn since_origin(self) -> Duration {
        self.0
    }

    /// Time elapsed from `earlier` to `self`, zero if `earlier` is later.
    pub fn saturating_since(self, earlier: Time) -> Duration {
        self.0.saturating_sub(earlier.0)
    }
}

impl Add<Duration> for Time {
    type Output = Time;
    fn add(self, rhs: Duration) -> Time {
        Time(self.0 + rhs)
    }
}

impl Sub for Time {
    type Output = Duration;
    /// Saturating: a later origin gives zero, never a panic.
    fn sub(self, rhs: Time) -> Duration {
        self.saturating_since(rhs)
    }
}

impl fmt::Display for Time {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{:06}", self.0.as_secs(), self.0.subsec_micros())
    }
}

/// An advertisement interval: `advbase` seconds plus `advskew`/256 seconds,
/// with the fraction truncated to microseconds as UCARP computes it.
///
/// Ordering is by duration: a shorter interval advertises more often and
/// wins elections.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Interval {
    micros: u64,
}

impl Interval {
    /// The interval an advertisement with these fields announces.
    pub const fn new(advbase: u8, advskew: u8) -> Interval {
        Interval {
            micros: advbase as u64 * 1_000_000 + skew_micros(advskew),
        }
    }

    /// The interval as a duration.
    pub const fn as_duration(self) -> Duration {
        Duration::from_micros(self.micros)
    }
}

/// `advskew`/256 s in whole microseconds, truncated as UCARP does.
pub const fn skew_micros(advskew: u8) -> u64 {
    advskew as u64 * 1_000_000 / 256
}

/// `advskew`/256 s as a duration.
pub const fn skew(advskew: u8) -> Duration {
    Duration::from_micros(skew_micros(advskew))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn intervals_as_ucarp_computes_them() {
        assert_eq!(Interval::new(1, 0).as_duration(), Duration::from_secs(1));
        assert_eq!(
            Interval::new(0, 51).as_duration(),
            Duration::from_micros(199_218)
        );
        assert_eq!(
            Interval::new(3, 100).as_duration(),
            Duration::from_micros(3_390_625)
        );
        assert_eq!(
            Interval::new(255, 255).as_duration(),
            Duration::from_micros(255_996_093)
        );
        assert!(Interval::new(0, 255) < Interval::new(1, 0));
    }

    #[test]
    fn time_arithmetic_saturates() {
        let t = Time::from_duration(Duration::from_secs(2));
        assert_eq!(t - Time::ZERO, Duration::from_secs(2));
        assert_eq!(Time::ZERO - t, Duration::ZERO);
        assert_eq!((t + Duration::from_millis(1)).to_string(), "2.001000");
    }
}
