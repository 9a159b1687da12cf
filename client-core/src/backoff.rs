//! Reconnect delays: exponential, capped, jittered at every step.

/// How long to wait between connection attempts.
#[derive(Clone, Debug, PartialEq)]
pub struct BackoffConfig {
    /// The first nominal delay and the smallest actual delay, in ms (default 1,000).
    pub initial_ms: u64,
    /// The cap on nominal and actual delays, in ms (default 30,000).
    pub max_ms: u64,
    /// Spread of the jitter around the nominal delay, from 0 to 1 (default 0.5:
    /// the actual delay is uniform in `[nominal/2, nominal*3/2]`, clamped to
    /// `[initial_ms, max_ms]`).
    pub jitter: f64,
    /// A connection that stayed up this long resets the attempt counter
    /// (default 10,000 ms), so a flapping server does not cause a tight loop.
    pub stable_after_ms: u64,
    /// Give up after this many failed attempts in a row (default: never).
    pub max_attempts: Option<u32>,
}

impl Default for BackoffConfig {
    fn default() -> Self {
        BackoffConfig {
            initial_ms: 1_000,
            max_ms: 30_000,
            jitter: 0.5,
            stable_after_ms: 10_000,
            max_attempts: None,
        }
    }
}

impl BackoffConfig {
    /// The nominal delay before retry number `attempt` (0 for the first retry):
    /// `initial_ms * 2^attempt`, capped at `max_ms`.
    pub fn nominal_ms(&self, attempt: u32) -> u64 {
        let factor = 1u64.checked_shl(attempt.min(63)).unwrap_or(u64::MAX);
        self.initial_ms.saturating_mul(factor).min(self.max_ms)
    }

    /// The range an actual delay is drawn from for retry number `attempt`.
    pub fn range_ms(&self, attempt: u32) -> (u64, u64) {
        let nominal = self.nominal_ms(attempt) as f64;
        let jitter = self.jitter.clamp(0.0, 1.0);
        let lo = ((nominal * (1.0 - jitter)) as u64).max(self.initial_ms);
        let hi = ((nominal * (1.0 + jitter)) as u64).min(self.max_ms);
        (lo.min(hi), hi.max(lo))
    }

    /// Draws the actual delay for retry number `attempt`.
    pub fn delay_ms(&self, attempt: u32, rng: &mut fastrand::Rng) -> u64 {
        let (lo, hi) = self.range_ms(attempt);
        rng.u64(lo..=hi)
    }

    /// The attempt number at which the nominal delay reaches the cap.
    pub fn capped_attempt(&self) -> u32 {
        (0..64)
            .find(|&a| self.nominal_ms(a) >= self.max_ms)
            .unwrap_or(63)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::vec::Vec;

    #[test]
    fn nominal_doubles_from_one_second_to_the_cap() {
        let c = BackoffConfig::default();
        let nominal: Vec<u64> = (0..7).map(|a| c.nominal_ms(a)).collect();
        assert_eq!(
            nominal,
            [1_000, 2_000, 4_000, 8_000, 16_000, 30_000, 30_000]
        );
        assert_eq!(c.nominal_ms(500), 30_000);
        assert_eq!(c.capped_attempt(), 5);
    }

    #[test]
    fn every_step_has_a_real_spread_the_capped_ones_included() {
        let c = BackoffConfig::default();
        assert_eq!(c.range_ms(0), (1_000, 1_500));
        assert_eq!(c.range_ms(1), (1_000, 3_000));
        assert_eq!(c.range_ms(2), (2_000, 6_000));
        assert_eq!(c.range_ms(9), (15_000, 30_000));
    }

    proptest! {
        #[test]
        fn delays_stay_within_one_and_thirty_seconds(attempt in 0u32..200, seed: u64) {
            let c = BackoffConfig::default();
            let mut rng = fastrand::Rng::with_seed(seed);
            let d = c.delay_ms(attempt, &mut rng);
            prop_assert!((1_000..=30_000).contains(&d), "attempt {attempt}: {d} ms");
            let (lo, hi) = c.range_ms(attempt);
            prop_assert!(lo <= d && d <= hi);
        }

        #[test]
        fn any_config_keeps_delays_within_its_bounds(
            initial in 1u64..10_000, extra in 0u64..100_000, jitter in 0.0f64..1.0, attempt in 0u32..100, seed: u64
        ) {
            let c = BackoffConfig { initial_ms: initial, max_ms: initial + extra, jitter, ..Default::default() };
            let d = c.delay_ms(attempt, &mut fastrand::Rng::with_seed(seed));
            prop_assert!(d >= c.initial_ms && d <= c.max_ms);
        }
    }

    #[test]
    fn many_seeds_spread_over_the_whole_range_at_every_step() {
        let c = BackoffConfig::default();
        for attempt in [0, 1, 3, 5, 20] {
            let (lo, hi) = c.range_ms(attempt);
            let delays: Vec<u64> = (0..2_000)
                .map(|seed| c.delay_ms(attempt, &mut fastrand::Rng::with_seed(seed)))
                .collect();
            let min = *delays.iter().min().unwrap();
            let max = *delays.iter().max().unwrap();
            let width = hi - lo;
            // 2,000 clients land all over the range: no herd in lockstep.
            assert!(min < lo + width / 20, "attempt {attempt}: min {min}");
            assert!(max > hi - width / 20, "attempt {attempt}: max {max}");
            let mut distinct = delays.clone();
            distinct.sort_unstable();
            distinct.dedup();
            assert!(
                distinct.len() > 300,
                "attempt {attempt}: {} distinct",
                distinct.len()
            );
        }
    }
}
