//! Recognising a changed workload: a two-sided CUSUM test on each of three
//! signals of the event stream — how long a step takes, how fast the state
//! is dirtied, and how a checkpoint's persist time compares with what its
//! scheme's own fit predicts — so the model re-learns what changed from
//! the change on, instead of averaging two regimes for a long window.
//!
//! Each detector standardises its signal by the mean and spread of the
//! observations since it last (re)started, after a short warm-up, and
//! accumulates evidence of a shift of more than half a standard deviation
//! either way (`k`); a shift is declared once the evidence passes `h`
//! standard deviations. For normal noise that is about one false alarm in
//! thousands of checkpoints per signal, and a shift of three standard
//! deviations is found in about four. The spread has a floor, so a very steady signal
//! does not alarm on a 5 % wobble. The detectors are not persisted: after
//! a restart they warm up again.
//!
//! A gross shift needs no statistics: the step and dirtiness detectors
//! also declare a change when two observations in a row land on the same
//! side of the mean, further from it than a fixed factor (steps twice as
//! fast or slow, a dirtying rate four times higher or lower), warm-up or
//! not. Without it a change that came within the warm-up after the last
//! one was found only once the spread, inflated by the two regimes the
//! warm-up mixed, let the evidence pile up: a 229 ms single-core phase
//! followed 2 s later by a 12 ms all-core one was found six checkpoints
//! in, priced all along with the first phase's interference. One outlier
//! alone is held out of the mean and raises nothing, but leaves the change
//! *pending* until the next checkpoint confirms it or not (the adaptive
//! policy acts on nothing meanwhile). A signal that returns to its
//! previous level within the warm-up after a gross shift has two levels
//! rather than two regimes, and its gross test turns off for good.

/// Observations before a detector tests anything.
const WARM_UP: u32 = 8;
/// Allowance per observation, in standard deviations.
const K: f64 = 0.5;
/// Decision threshold, in standard deviations.
const H: f64 = 8.0;
/// Smallest spread assumed (the signals are logarithms: 5 %).
const MIN_SPREAD: f64 = 0.05;
/// Observations in a row beyond the gross threshold, on one side, that
/// declare a shift.
const GROSS_RUN: u32 = 2;
/// Gross threshold of the step signal: steps twice as fast or slow (the
/// ratio beyond which an interval's steps already teach no interference,
/// `cost_model::steady_steps`).
pub(super) const GROSS_STEP: f64 = std::f64::consts::LN_2;
/// Gross threshold of the dirtiness signal: a rate four times higher or
/// lower (wider than the step's: a state found wholly dirty pins the rate
/// at a bound, and a few pages more or fewer move its logarithm by one).
const GROSS_DIRTINESS: f64 = 2.0 * std::f64::consts::LN_2;

/// A two-sided CUSUM detector of a shift in one signal's mean, with an
/// optional test for gross shifts (see the module docs).
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Cusum {
    count: u32,
    mean: f64,
    /// Sum of squared deviations (Welford).
    m2: f64,
    up: f64,
    down: f64,
    /// Distance from the mean beyond which an observation is gross
    /// (infinite: no gross test).
    gross: f64,
    /// Gross observations in a row: positive above the mean, negative
    /// below.
    gross_run: i32,
    /// The mean before the last shift the gross test declared.
    before: Option<f64>,
}

impl Default for Cusum {
    fn default() -> Self {
        Cusum::with_gross(f64::INFINITY)
    }
}

impl Cusum {
    /// A detector that also declares a shift on [`GROSS_RUN`] observations
    /// in a row further than `gross` from the mean on one side.
    pub(super) fn with_gross(gross: f64) -> Self {
        Cusum {
            count: 0,
            mean: 0.0,
            m2: 0.0,
            up: 0.0,
            down: 0.0,
            gross,
            gross_run: 0,
            before: None,
        }
    }

    /// Adds `x`; true when it completes the evidence of a shift, in which
    /// case the detector starts again from `x`.
    pub(super) fn observe(&mut self, x: f64) -> bool {
        if !x.is_finite() {
            return false;
        }
        match self.gross_side(x) {
            Some(run) if run.unsigned_abs() >= GROSS_RUN => return self.gross_shift(x),
            Some(_) => return false,
            None => {}
        }
        if self.count >= WARM_UP {
            let spread = (self.m2 / f64::from(self.count - 1)).sqrt().max(MIN_SPREAD);
            let z = (x - self.mean) / spread;
            self.up = (self.up + z - K).max(0.0);
            self.down = (self.down - z - K).max(0.0);
            if self.up > H || self.down > H {
                return self.restart(x);
            }
        }
        self.learn(x);
        false
    }

    /// The run of gross observations `x` extends (`None`: `x` is not
    /// gross, and the run is over).
    fn gross_side(&mut self, x: f64) -> Option<i32> {
        let deviation = x - self.mean;
        if self.count == 0 || deviation.abs() <= self.gross {
            self.gross_run = 0;
            return None;
        }
        let side = if deviation > 0.0 { 1 } else { -1 };
        self.gross_run = if self.gross_run.signum() == side {
            self.gross_run.saturating_add(side)
        } else {
            side
        };
        Some(self.gross_run)
    }

    /// Whether the newest observation was gross and the next may confirm
    /// a shift.
    pub(super) fn pending(&self) -> bool {
        self.gross_run != 0
    }

    /// A shift the gross test found, at `x`; true. A signal that goes back
    /// to where it was before the last such shift within the warm-up
    /// after it has two levels, not two regimes (a step twice as slow
    /// whenever a transfer ran beside it, counted as idle): the gross test
    /// is then off for good, and the CUSUM, whose spread learns both
    /// levels, decides alone.
    fn gross_shift(&mut self, x: f64) -> bool {
        let back = self.count < WARM_UP
            && self
                .before
                .is_some_and(|before| (x - before).abs() <= self.gross);
        let mean = self.mean;
        self.restart(x);
        if back {
            self.gross = f64::INFINITY;
        } else {
            self.before = Some(mean);
        }
        true
    }

    /// Starts again from `x`, keeping the gross threshold; true (a shift).
    fn restart(&mut self, x: f64) -> bool {
        *self = Cusum::with_gross(self.gross);
        self.learn(x);
        true
    }

    fn learn(&mut self, x: f64) {
        self.count = self.count.saturating_add(1);
        let delta = x - self.mean;
        self.mean += delta / f64::from(self.count);
        self.m2 += delta * (x - self.mean);
    }
}

/// What changed, as found by one checkpoint event.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(super) struct Changes {
    /// Step time.
    pub step: bool,
    /// How fast the state is dirtied.
    pub dirtiness: bool,
    /// What writing costs.
    pub cost: bool,
}

/// The three detectors.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct ChangePoints {
    step: Cusum,
    dirtiness: Cusum,
    /// One per scheme (by code): schemes write at different speeds.
    cost: Vec<(u8, Cusum)>,
    /// Changes found so far.
    pub found: u64,
    /// Whether the newest observation of step time or dirtiness was
    /// gross (an outlier the next may confirm); a checkpoint that measured
    /// neither leaves nothing pending.
    pending: bool,
}

impl Default for ChangePoints {
    fn default() -> Self {
        ChangePoints {
            step: Cusum::with_gross(GROSS_STEP),
            dirtiness: Cusum::with_gross(GROSS_DIRTINESS),
            cost: Vec::new(),
            found: 0,
            pending: false,
        }
    }
}

impl ChangePoints {
    /// Whether the newest checkpoint's step time or dirtiness was a gross
    /// outlier that the next checkpoint may confirm as a change.
    pub(super) fn pending(&self) -> bool {
        self.pending
    }

    /// Tests one checkpoint's signals (`None`: not measured this time):
    /// the log of the step time, of the dirtying rate, and of persist time
    /// over what the fit of the scheme (by code) that took it predicts.
    pub(super) fn observe(
        &mut self,
        log_step: Option<f64>,
        log_dirty_rate: Option<f64>,
        log_cost_ratio: Option<(u8, f64)>,
    ) -> Changes {
        let cost = log_cost_ratio.is_some_and(|(scheme, x)| {
            let at = match self.cost.iter().position(|(s, _)| *s == scheme) {
                Some(at) => at,
                None => {
                    self.cost.push((scheme, Cusum::default()));
                    self.cost.len() - 1
                }
            };
            self.cost.get_mut(at).is_some_and(|(_, d)| d.observe(x))
        });
        if cost {
            // Every scheme's fits start again: so do their detectors.
            self.cost.clear();
        }
        let changes = Changes {
            step: log_step.is_some_and(|x| self.step.observe(x)),
            dirtiness: log_dirty_rate.is_some_and(|x| self.dirtiness.observe(x)),
            cost,
        };
        self.pending = (log_step.is_some() && self.step.pending())
            || (log_dirty_rate.is_some() && self.dirtiness.pending());
        let any = changes.step || changes.dirtiness || changes.cost;
        self.found = self.found.saturating_add(u64::from(any));
        changes
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::rngs::StdRng;
    use rand::{Rng, SeedableRng};

    fn noise(rng: &mut StdRng, sd: f64) -> f64 {
        // Sum of uniforms: close enough to normal for a false-alarm check.
        (0..12).map(|_| rng.random_range(-0.5..0.5)).sum::<f64>() * sd
    }

    #[test]
    fn steady_noise_raises_no_alarm_and_a_shift_is_found_within_a_few() {
        for seed in 0..20 {
            let mut rng = StdRng::seed_from_u64(seed);
            let mut detector = Cusum::default();
            let alarms = (0..300)
                .filter(|_| detector.observe(1.0 + noise(&mut rng, 0.1)))
                .count();
            assert!(alarms <= 1, "seed {seed}: {alarms} false alarms in 300");
            // A doubling (log shift 0.69, about 7 standard deviations)
            // and a 30 % change (about 2.6) are both found quickly.
            for (shift, within) in [(0.69, 3), (0.26, 10)] {
                let mut detector = Cusum::default();
                for _ in 0..40 {
                    detector.observe(1.0 + noise(&mut rng, 0.1));
                }
                let found = (1..=30)
                    .find(|_| detector.observe(1.0 + shift + noise(&mut rng, 0.1)))
                    .unwrap_or(usize::MAX);
                assert!(
                    found <= within,
                    "seed {seed}: shift {shift} found after {found}"
                );
            }
        }
    }

    #[test]
    fn a_gross_shift_during_the_warm_up_is_found_at_its_second_observation() {
        let mut rng = StdRng::seed_from_u64(7);
        // Four steps of 229 ms (the warm-up is eight), then 12 ms ones.
        let mut detector = Cusum::with_gross(GROSS_STEP);
        for _ in 0..4 {
            assert!(!detector.observe(0.229_f64.ln() + noise(&mut rng, 0.1)));
        }
        assert!(
            !detector.observe(0.012_f64.ln()),
            "one outlier is not a shift"
        );
        assert!(detector.observe(0.012_f64.ln()), "two in a row are");
        // The detector restarted from the new regime: its steps are steady.
        for _ in 0..20 {
            assert!(!detector.observe(0.012_f64.ln() + noise(&mut rng, 0.1)));
        }
        // Without the gross test the same shift waits out the warm-up.
        let mut plain = Cusum::default();
        for _ in 0..4 {
            plain.observe(0.229_f64.ln());
        }
        assert!(!plain.observe(0.012_f64.ln()) && !plain.observe(0.012_f64.ln()));
    }

    #[test]
    fn gross_outliers_on_alternate_sides_or_apart_raise_nothing() {
        let mut detector = Cusum::with_gross(GROSS_STEP);
        for i in 0..200 {
            let x = match i % 6 {
                2 => 1.0,  // twice as slow, once
                5 => -1.0, // then twice as fast, once
                _ => 0.0,
            };
            assert!(!detector.observe(x), "observation {i}");
        }
        let mut detector = Cusum::with_gross(GROSS_STEP);
        for _ in 0..10 {
            detector.observe(0.0);
        }
        assert!(!detector.observe(1.0) && !detector.observe(-1.0));
    }

    #[test]
    fn a_signal_with_two_levels_turns_the_gross_test_off() {
        // Idle steps of 2 ms, and 6 ms whenever a transfer ran beside
        // them unnoticed, in runs of two or three.
        let mut detector = Cusum::with_gross(GROSS_STEP);
        let (fast, slow) = (0.002_f64.ln(), 0.006_f64.ln());
        let found = (0..300)
            .filter(|i| detector.observe(if i % 5 < 2 { slow } else { fast }))
            .count();
        assert!(found <= 2, "{found} shifts");
        assert!(!detector.gross.is_finite());
        // A shift that stays is no such thing: the test stays on.
        let mut detector = Cusum::with_gross(GROSS_STEP);
        for x in [
            0.0, 0.0, 0.0, 2.0, 2.0, 2.0, 2.0, 2.0, 2.0, 2.0, 2.0, 2.0, -1.0,
        ] {
            detector.observe(x);
        }
        assert!(detector.gross.is_finite());
    }

    #[test]
    fn only_the_newest_checkpoint_leaves_a_change_pending() {
        let mut points = ChangePoints::default();
        for _ in 0..5 {
            points.observe(Some(0.0), None, None);
        }
        assert!(!points.pending());
        points.observe(Some(1.0), None, None);
        assert!(points.pending(), "a gross step time");
        points.observe(None, None, None);
        assert!(!points.pending(), "a checkpoint with no idle step");
        points.observe(Some(0.0), None, None);
        assert!(!points.pending());
    }

    #[test]
    fn a_perfectly_steady_signal_tolerates_small_wobbles() {
        let mut detector = Cusum::default();
        for i in 0..200 {
            let wobble = if i % 2 == 0 { 0.02 } else { -0.02 };
            assert!(!detector.observe(2.0 + wobble), "step {i}");
        }
    }
}
