//! [`Epoch`]: where a limiter's windows are counted from, read with a cheap clock. std's
//! `Instant::now` is a clock call of tens of nanoseconds on many virtual machines — more than
//! the rest of a rate-limit check; `quanta` reads the CPU's time-stamp counter when it is
//! reliable (and the monotonic clock otherwise).

/// The start of a limiter's time, and the clock that measures from it.
#[derive(Debug, Clone)]
pub struct Epoch {
    clock: quanta::Clock,
    start: u64,
    /// Nanoseconds per 2^32 clock ticks (the clock's calibration, read once).
    nanos_per_2_32_ticks: u64,
}

impl Default for Epoch {
    fn default() -> Self {
        Epoch::now()
    }
}

impl Epoch {
    /// An epoch starting now.
    pub fn now() -> Self {
        let clock = quanta::Clock::new();
        let start = clock.raw();
        let nanos_per_2_32_ticks = clock.delta_as_nanos(0, 1 << 32);
        Epoch {
            clock,
            start,
            nanos_per_2_32_ticks,
        }
    }

    /// Nanoseconds since the epoch.
    #[inline]
    pub fn elapsed_nanos(&self) -> u64 {
        let ticks = self.clock.raw().saturating_sub(self.start);
        let nanos = (u128::from(ticks) * u128::from(self.nanos_per_2_32_ticks)) >> 32;
        u64::try_from(nanos).unwrap_or(u64::MAX)
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use super::*;

    #[test]
    fn the_epoch_counts_nanoseconds_as_the_monotonic_clock_does() {
        let epoch = Epoch::now();
        let reference = Instant::now();
        std::thread::sleep(Duration::from_millis(50));
        let ours = epoch.elapsed_nanos();
        let theirs = u64::try_from(reference.elapsed().as_nanos()).unwrap();
        assert!(ours >= 50_000_000, "{ours}");
        assert!(ours.abs_diff(theirs) < 5_000_000, "{ours} vs {theirs}");
    }
}
