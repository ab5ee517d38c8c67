//! [`Epoch`]: where a limiter's windows are counted from, read with a cheap clock. std's
//! `Instant::now` is a clock call of tens of nanoseconds on many virtual machines — more than
//! the rest of a rate-limit check; `quanta` reads the CPU's time-stamp counter when it is
//! reliable (and the monotonic clock otherwise).

/// The start of a limiter's time, and the clock that measures from it.
#[derive(Debug, Clone)]
pub struct Epoch {
    clock: quanta::Clock,
    start: u64,
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
        Epoch { clock, start }
    }

    /// Nanoseconds since the epoch.
    #[inline]
    pub fn elapsed_nanos(&self) -> u64 {
        self.clock.delta_as_nanos(self.start, self.clock.raw())
    }
}
