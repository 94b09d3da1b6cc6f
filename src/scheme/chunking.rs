//! Cutting bytes into chunks, and encoding many chunks on several threads.

use super::WriteOptions;
use crate::format::pack::{EncodedChunk, encode_chunk};

/// Cuts `bytes` into pieces of `size` bytes (the last may be shorter).
pub(crate) fn cut_fixed(bytes: &[u8], size: usize) -> Vec<&[u8]> {
    bytes.chunks(size.max(1)).collect()
}

/// Cuts `bytes` at content-defined boundaries (FastCDC) averaging about
/// `average` bytes, so that an insertion only changes the chunks around it
/// instead of shifting every chunk after it.
pub(crate) fn cut_content_defined(bytes: &[u8], average: usize) -> Vec<&[u8]> {
    use fastcdc::v2020::{AVERAGE_MAX, AVERAGE_MIN, FastCDC};
    let average = u32::try_from(average)
        .unwrap_or(AVERAGE_MAX)
        .clamp(AVERAGE_MIN.max(1024), AVERAGE_MAX / 4);
    FastCDC::new(bytes, average / 4, average, average * 4)
        .filter_map(|c| bytes.get(c.offset..c.offset + c.length))
        .collect()
}

/// Encodes `pieces` on up to `options.threads` threads, in order.
pub(crate) fn encode_many<'a>(pieces: &[&'a [u8]], options: WriteOptions) -> Vec<EncodedChunk<'a>> {
    let threads = options.threads.clamp(1, pieces.len().max(1));
    if threads == 1 {
        return pieces
            .iter()
            .map(|p| encode_chunk(p, options.compression))
            .collect();
    }
    let per_thread = pieces.len().div_ceil(threads);
    std::thread::scope(|scope| {
        let workers: Vec<_> = pieces
            .chunks(per_thread)
            .map(|group| {
                scope.spawn(move || {
                    group
                        .iter()
                        .map(|p| encode_chunk(p, options.compression))
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        workers
            .into_iter()
            // A worker that panicked passes its panic on as it was.
            .flat_map(|w| {
                w.join()
                    .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
            })
            .collect()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_defined_chunks_survive_an_insertion() {
        let mut state = rand::rngs::StdRng::seed_from_u64(7);
        use rand::{Rng, SeedableRng};
        let original: Vec<u8> = (0..1 << 20).map(|_| state.random()).collect();
        let mut edited = original.clone();
        edited.splice(1000..1000, [1, 2, 3]);
        let before: std::collections::HashSet<&[u8]> = cut_content_defined(&original, 16 << 10)
            .into_iter()
            .collect();
        let after = cut_content_defined(&edited, 16 << 10);
        assert_eq!(after.concat(), edited);
        let shared = after.iter().filter(|c| before.contains(*c)).count();
        assert!(
            shared + 3 >= after.len(),
            "only {shared} of {} chunks survived a 3-byte insertion",
            after.len()
        );
    }

    #[test]
    fn fixed_chunks_cover_the_input() {
        let bytes: Vec<u8> = (0..10_000u32).map(|i| i as u8).collect();
        assert_eq!(cut_fixed(&bytes, 4096).concat(), bytes);
        assert!(cut_fixed(&[], 4096).is_empty());
    }
}
