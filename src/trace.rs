//! Spans and events for the `tracing` crate, with the `tracing` feature.
//!
//! The macros here take `tracing`'s own syntax (`info_span!("name", field
//! = value, shown = %value, debugged = ?value)`) and expand to `tracing`'s
//! macros with the feature; without it they expand to nothing (a span to
//! the zero-sized [`Span`]) and their arguments are never evaluated, so
//! the library builds and runs exactly as without tracing ([`record!`]
//! names its values in a closure that is never called, so that a value
//! computed only for it leaves no unused variable or helper behind; code
//! that logs from a `match`, whose bindings would be unused, sits in a
//! `#[cfg(feature = "tracing")]` block instead).
//!
//! What is logged: names of checkpoints, steps, schemes, sizes, counts,
//! durations, tier and backend names, error messages and the policy's
//! reasons. Never state bytes, object contents or storage configuration
//! (credentials live there).

#[cfg(feature = "tracing")]
pub(crate) use tracing::{Span, field::Empty};

/// Without the `tracing` feature: a span that is nothing.
#[cfg(not(feature = "tracing"))]
#[derive(Debug, Clone, Default)]
pub(crate) struct Span;

/// Without the `tracing` feature: entering a span does nothing.
#[cfg(not(feature = "tracing"))]
#[derive(Debug)]
pub(crate) struct Entered;

#[cfg(not(feature = "tracing"))]
impl Span {
    /// No span.
    #[cfg_attr(
        not(test),
        expect(dead_code, reason = "only tests build jobs without a span")
    )]
    pub(crate) fn none() -> Self {
        Span
    }

    /// Does nothing.
    pub(crate) fn enter(&self) -> Entered {
        Entered
    }

    /// Does nothing.
    pub(crate) fn entered(self) -> Entered {
        Entered
    }

    /// Runs `f`.
    pub(crate) fn in_scope<T>(&self, f: impl FnOnce() -> T) -> T {
        f()
    }
}

/// Measures a duration to record: with the feature, from when it was
/// started; without it, nothing (no clock is read).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Timer {
    #[cfg(feature = "tracing")]
    started: std::time::Instant,
}

impl Timer {
    /// Starts measuring.
    pub(crate) fn start() -> Self {
        Timer {
            #[cfg(feature = "tracing")]
            started: std::time::Instant::now(),
        }
    }

    /// The time since [`start`](Self::start) (zero without the feature).
    pub(crate) fn elapsed(&self) -> std::time::Duration {
        #[cfg(feature = "tracing")]
        return self.started.elapsed();
        #[cfg(not(feature = "tracing"))]
        std::time::Duration::ZERO
    }
}

/// An info-level span ([`tracing::info_span!`]); without the feature,
/// the zero-sized [`Span`].
#[cfg(feature = "tracing")]
macro_rules! info_span {
    ($($arg:tt)*) => {
        ::tracing::info_span!($($arg)*)
    };
}

#[cfg(not(feature = "tracing"))]
macro_rules! info_span {
    ($($arg:tt)*) => {
        $crate::trace::Span
    };
}

/// A debug-level span ([`tracing::debug_span!`]); without the feature,
/// the zero-sized [`Span`].
#[cfg(feature = "tracing")]
macro_rules! debug_span {
    ($($arg:tt)*) => {
        ::tracing::debug_span!($($arg)*)
    };
}

#[cfg(not(feature = "tracing"))]
macro_rules! debug_span {
    ($($arg:tt)*) => {
        $crate::trace::Span
    };
}

/// An info-level event ([`tracing::info!`]); without the feature,
/// nothing.
#[cfg(feature = "tracing")]
macro_rules! info {
    ($($arg:tt)*) => {
        ::tracing::info!($($arg)*)
    };
}

#[cfg(not(feature = "tracing"))]
macro_rules! info {
    ($($arg:tt)*) => {
        ()
    };
}

/// A warn-level event ([`tracing::warn!`]); without the feature,
/// nothing.
#[cfg(feature = "tracing")]
macro_rules! warn_ {
    ($($arg:tt)*) => {
        ::tracing::warn!($($arg)*)
    };
}

#[cfg(not(feature = "tracing"))]
macro_rules! warn_ {
    ($($arg:tt)*) => {
        ()
    };
}

/// Records fields of a span created with them `Empty`:
/// `record!(span, bytes = n, took = ?duration, scheme = %scheme)`.
/// Without the feature the values are named (so that a variable used
/// only here is not unused) but never evaluated.
macro_rules! record {
    ($span:expr $(,)?) => {};
    ($span:expr, $field:ident = ?$value:expr $(, $($rest:tt)*)?) => {
        $crate::trace::record_one!($span, $field, ::tracing::field::debug(&$value), $value);
        $crate::trace::record!($span $(, $($rest)*)?);
    };
    ($span:expr, $field:ident = %$value:expr $(, $($rest:tt)*)?) => {
        $crate::trace::record_one!($span, $field, ::tracing::field::display(&$value), $value);
        $crate::trace::record!($span $(, $($rest)*)?);
    };
    ($span:expr, $field:ident = $value:expr $(, $($rest:tt)*)?) => {
        $crate::trace::record_one!($span, $field, $value, $value);
        $crate::trace::record!($span $(, $($rest)*)?);
    };
}

#[cfg(feature = "tracing")]
macro_rules! record_one {
    ($span:expr, $field:ident, $traced:expr, $value:expr) => {
        $span.record(stringify!($field), $traced);
    };
}

#[cfg(not(feature = "tracing"))]
macro_rules! record_one {
    ($span:expr, $field:ident, $traced:expr, $value:expr) => {
        let _ = || {
            let _ = (&$span, &$value);
        };
    };
}

// `warn` alone would be ambiguous with the built-in attribute.
pub(crate) use {debug_span, info, info_span, record, record_one, warn_ as warn};
