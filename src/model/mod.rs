//! The cost model's mathematics: online fits, failure rates, and checkpoint
//! interval formulas. Pure logic: nothing here touches bytes on disk.
//!
//! * [`fit`]: online least squares of cost against size with Student-t
//!   confidence intervals.
//! * [`failure`]: failure rates per class, a configured MTBF updated with
//!   observed restarts (Gamma–Poisson).
//! * [`cost`]: Young's and Daly's interval and overhead formulas, and a
//!   two-level (fast tier + slow tier) model.

pub mod cost;
pub mod failure;
pub mod fit;
