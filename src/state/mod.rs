//! What gets captured: the [`State`] trait and the capture/restore
//! vocabulary states use.
//!
//! A state is a list of named *segments*. Any serde type is one segment
//! (through the blanket impl); a composite application struct implements
//! [`State`] by naming each of its parts, so that all of them are captured
//! and restored as one atomic checkpoint.

mod paged;
mod pool;
mod restore;
mod table;

pub(crate) use paged::PageSnapshot;
pub use paged::{DEFAULT_PAGE_BYTES, Element, PagedVec};
pub use restore::{Restore, TypeChange};

use crate::error::{Error, Result};
use crate::format::STATE_CODEC;
use serde::Serialize;
use serde::de::DeserializeOwned;

/// The segment name the blanket serde impl uses.
pub const DEFAULT_SEGMENT: &str = "state";

/// Something a [`Checkpointer`](crate::Checkpointer) can capture and
/// restore.
///
/// Every `T: Serialize + DeserializeOwned` is a `State` already. Implement
/// it by hand for a struct whose parts should be stored as separate
/// segments:
///
/// ```
/// use ckpt::{Capture, Restore, State};
///
/// struct Solver { iteration: u64, residuals: Vec<f64> }
///
/// impl State for Solver {
///     fn capture(&mut self, capture: &mut Capture) -> ckpt::Result<()> {
///         capture.serde("iteration", &self.iteration)?;
///         capture.serde("residuals", &self.residuals)
///     }
///     fn restore(restore: &mut Restore) -> ckpt::Result<Self> {
///         Ok(Solver {
///             iteration: restore.serde("iteration")?,
///             residuals: restore.serde("residuals")?,
///         })
///     }
/// }
/// ```
pub trait State: Sized {
    /// Describes the state's current contents to `capture`, segment by
    /// segment. Takes `&mut self` so that states can reset change tracking
    /// once captured.
    fn capture(&mut self, capture: &mut Capture) -> Result<()>;

    /// Rebuilds the state from a verified checkpoint.
    fn restore(restore: &mut Restore) -> Result<Self>;
}

impl<T: Serialize + DeserializeOwned> State for T {
    fn capture(&mut self, capture: &mut Capture) -> Result<()> {
        capture.serde(DEFAULT_SEGMENT, self)
    }

    fn restore(restore: &mut Restore) -> Result<Self> {
        restore.serde(DEFAULT_SEGMENT)
    }
}

impl<T: Element> State for PagedVec<T> {
    fn capture(&mut self, capture: &mut Capture) -> Result<()> {
        capture.paged(DEFAULT_SEGMENT, self)
    }

    fn restore(restore: &mut Restore) -> Result<Self> {
        restore.paged(DEFAULT_SEGMENT)
    }
}

/// The bytes of one captured segment, as the scheme will store them.
#[derive(Debug)]
pub(crate) enum SegmentData {
    /// A serde value encoded with the pinned state codec.
    Serde(Vec<u8>),
    /// The pages of a [`PagedVec`], shared with it until it writes them.
    Pages(PageSnapshot),
}

/// One named, captured segment.
#[derive(Debug)]
pub(crate) struct CapturedSegment {
    pub name: String,
    /// The captured type (the element type of a paged vector).
    pub type_name: &'static str,
    pub data: SegmentData,
}

/// Collects the segments of one checkpoint; handed to [`State::capture`].
#[derive(Debug)]
pub struct Capture {
    checkpoint: u128,
    previous: Option<u128>,
    segments: Vec<CapturedSegment>,
}

impl Capture {
    /// A capture for checkpoint `checkpoint`, diffed against `previous`.
    pub(crate) fn new(checkpoint: u128, previous: Option<u128>) -> Self {
        Capture {
            checkpoint,
            previous,
            segments: Vec::new(),
        }
    }

    /// Adds a [`PagedVec`] as the segment `name`: its pages are shared,
    /// not copied, and only pages written since the previous checkpoint
    /// are stored by the incremental schemes.
    pub fn paged<T: Element>(&mut self, name: &str, pages: &mut PagedVec<T>) -> Result<()> {
        self.check_new_name(name)?;
        let snapshot = pages.snapshot(self.checkpoint, self.previous);
        self.segments.push(CapturedSegment {
            name: name.to_owned(),
            type_name: std::any::type_name::<T>(),
            data: SegmentData::Pages(snapshot),
        });
        Ok(())
    }

    /// Adds a serde value as the segment `name`.
    ///
    /// Names must be unique within one state.
    pub fn serde<T: Serialize + ?Sized>(&mut self, name: &str, value: &T) -> Result<()> {
        self.check_new_name(name)?;
        let bytes = bincode::serde::encode_to_vec(value, STATE_CODEC)
            .map_err(|e| Error::encode(name, e))?;
        self.segments.push(CapturedSegment {
            name: name.to_owned(),
            type_name: std::any::type_name::<T>(),
            data: SegmentData::Serde(bytes),
        });
        Ok(())
    }

    fn check_new_name(&self, name: &str) -> Result<()> {
        if self.segments.iter().any(|s| s.name == name) {
            return Err(Error::serialize(
                name,
                "two segments share this name; give each part of the state its own",
            ));
        }
        Ok(())
    }

    pub(crate) fn into_segments(self) -> Vec<CapturedSegment> {
        self.segments
    }
}
