//! What the model recommends, with the numbers behind it.

use super::plan::Plan;
use crate::scheme::Scheme;
use std::fmt;
use std::time::Duration;

/// Whether an estimate rests on measurements of the schemes it uses, or on
/// a structural guess from other schemes' measurements.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Basis {
    /// Every scheme the plan uses has been measured enough.
    Observed,
    /// At least one scheme is priced from other schemes' write speed; the
    /// estimate is a reason to try it, not to trust it.
    Prior,
}

/// A checkpoint interval, in compute time and (when the step time is
/// known) in steps.
#[derive(Debug, Clone, Copy, PartialEq)]
#[non_exhaustive]
pub struct IntervalAdvice {
    /// Useful compute time between checkpoints.
    pub every: Duration,
    /// The same in steps, rounded, at least 1; `None` before any step
    /// time was reported.
    pub steps: Option<u64>,
}

impl fmt::Display for IntervalAdvice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", Secs(self.every.as_secs_f64()))?;
        match self.steps {
            Some(n) => write!(f, " (~{n} steps)"),
            None => Ok(()),
        }
    }
}

/// The numbers behind a recommendation.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct Advice {
    /// The plan to run after the change.
    pub plan: Plan,
    /// The interval to use after the change.
    pub interval: IntervalAdvice,
    /// Expected overhead per unit of useful work now (current plan, current
    /// interval).
    pub overhead_now: f64,
    /// Expected overhead per unit of useful work after the change.
    pub overhead_after: f64,
    /// Predicted share of wall-clock time saved by this change,
    /// `(O_before − O_after)/(1 + O_now)`. For a change of plan `O_before`
    /// is the current plan at *its* best interval, so this counts only what
    /// the new plan adds beyond re-tuning the interval.
    pub saving: f64,
    /// Probability (0–1) that the change is an improvement, from the
    /// confidence intervals of the fitted costs.
    pub confidence: f64,
    /// Whether the estimate rests on measurements.
    pub basis: Basis,
    /// Why, in words: the measured costs that drive the change.
    pub reason: String,
}

/// Something in the checkpoint configuration that the model expects to
/// lower overhead.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Addition {
    /// A full checkpoint every `k`-th time, bounding incremental restore
    /// chains.
    FullEvery(u32),
    /// Drain every `k`-th checkpoint to the lower, slower and more durable
    /// tiers (the drain ratio of a checkpointer with lower tiers; a change
    /// of it is recommended as an addition with the new `k`).
    DrainEvery(u32),
}

impl fmt::Display for Addition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Addition::FullEvery(k) => write!(f, "a full base every {k} checkpoints"),
            Addition::DrainEvery(1) => write!(f, "a drain of every checkpoint to the lower tiers"),
            Addition::DrainEvery(k) => {
                write!(f, "a drain to the lower tiers every {k} checkpoints")
            }
        }
    }
}

/// A change the model recommends, each with its [`Advice`].
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum Recommendation {
    /// Checkpoint with another scheme.
    Switch {
        /// The scheme in use.
        from: Scheme,
        /// The scheme to use.
        to: Scheme,
        /// Numbers and reason.
        advice: Advice,
    },
    /// Add something beside the current scheme.
    Add {
        /// What to add.
        addition: Addition,
        /// Numbers and reason.
        advice: Advice,
    },
    /// Drop something the current plan has.
    Drop {
        /// What to drop.
        dropped: Addition,
        /// Numbers and reason.
        advice: Advice,
    },
    /// Keep the plan, change the interval.
    SetInterval {
        /// Numbers and reason.
        advice: Advice,
    },
}

impl Recommendation {
    /// The numbers behind this recommendation.
    pub fn advice(&self) -> &Advice {
        match self {
            Recommendation::Switch { advice, .. }
            | Recommendation::Add { advice, .. }
            | Recommendation::Drop { advice, .. }
            | Recommendation::SetInterval { advice } => advice,
        }
    }

    /// The plan to run after the change.
    pub fn plan(&self) -> Plan {
        self.advice().plan
    }

    /// The interval to use after the change.
    pub fn interval(&self) -> IntervalAdvice {
        self.advice().interval
    }
}

impl fmt::Display for Recommendation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let a = self.advice();
        match self {
            Recommendation::Switch { from, to, .. } => {
                write!(f, "switch from {} to {} ({})", from, to, a.plan)?
            }
            Recommendation::Add { addition, .. } => write!(f, "add {addition}")?,
            Recommendation::Drop { dropped, .. } => write!(f, "drop {dropped}")?,
            Recommendation::SetInterval { .. } => write!(f, "change the interval")?,
        }
        write!(
            f,
            ", checkpoint every {}: overhead {} -> {} of useful work, saves {} of run time ({} confidence{}); {}",
            a.interval,
            Pct(a.overhead_now),
            Pct(a.overhead_after),
            Pct(a.saving),
            Pct(a.confidence),
            match a.basis {
                Basis::Observed => "",
                Basis::Prior => ", estimated before measuring",
            },
            a.reason
        )
    }
}

/// Formats a share as a percentage.
pub(crate) struct Pct(pub f64);

impl fmt::Display for Pct {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let p = 100.0 * self.0;
        if p.abs() >= 10.0 || p == 0.0 {
            write!(f, "{p:.0}%")
        } else {
            write!(f, "{p:.1}%")
        }
    }
}

/// Formats seconds with a unit that suits their size.
pub(crate) struct Secs(pub f64);

impl fmt::Display for Secs {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = self.0;
        if !s.is_finite() {
            write!(f, "unbounded")
        } else if s >= 3_600.0 {
            write!(f, "{:.1} h", s / 3_600.0)
        } else if s >= 60.0 {
            write!(f, "{:.1} min", s / 60.0)
        } else if s >= 1.0 {
            write!(f, "{s:.2} s")
        } else if s >= 1e-3 {
            write!(f, "{:.1} ms", s * 1e3)
        } else {
            write!(f, "{:.0} µs", s * 1e6)
        }
    }
}

/// Formats a byte count with a binary unit.
pub(crate) struct Bytes(pub f64);

impl fmt::Display for Bytes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let b = self.0;
        if b >= (1u64 << 30) as f64 {
            write!(f, "{:.1} GiB", b / (1u64 << 30) as f64)
        } else if b >= (1u64 << 20) as f64 {
            write!(f, "{:.1} MiB", b / (1u64 << 20) as f64)
        } else if b >= 1024.0 {
            write!(f, "{:.1} KiB", b / 1024.0)
        } else {
            write!(f, "{b:.0} B")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn units_read_well() {
        assert_eq!(Pct(0.0312).to_string(), "3.1%");
        assert_eq!(Pct(0.97).to_string(), "97%");
        assert_eq!(Secs(0.045).to_string(), "45.0 ms");
        assert_eq!(Secs(7_200.0).to_string(), "2.0 h");
        assert_eq!(Bytes(3.0 * 1048576.0).to_string(), "3.0 MiB");
    }

    #[test]
    fn display_names_the_change_and_the_numbers() {
        let rec = Recommendation::Switch {
            from: Scheme::Full,
            to: Scheme::Incremental,
            advice: Advice {
                plan: Plan::with_full_every(Scheme::Incremental, 8),
                interval: IntervalAdvice {
                    every: Duration::from_secs(12),
                    steps: Some(120),
                },
                overhead_now: 0.031,
                overhead_after: 0.009,
                saving: 0.021,
                confidence: 0.97,
                basis: Basis::Observed,
                reason: "incremental stalls 50.0 ms against 450.0 ms".into(),
            },
        };
        assert_eq!(
            rec.to_string(),
            "switch from full to incremental (incremental with a full base every 8), \
             checkpoint every 12.00 s (~120 steps): overhead 3.1% -> 0.9% of useful work, \
             saves 2.1% of run time (97% confidence); incremental stalls 50.0 ms against 450.0 ms"
        );
    }
}
