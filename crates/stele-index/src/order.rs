//! Documents in order of addition, so that listings can seek. The indexer gives each
//! document the next `pos` and adds them from one thread, so a new segment holds its
//! documents in `pos` order, and each log's in `seq` order. Tantivy merges segments by
//! concatenating them in the order it is given: [`OrderedMerges`] only ever merges runs
//! of segments that are adjacent in `pos`, in that order, so merged segments keep it.
//! [`OrderCache`] checks each segment once; a listing seeks only in segments in order.

use std::collections::HashMap;
use std::sync::Mutex;
use tantivy::index::{SegmentId, SegmentMeta};
use tantivy::indexer::{MergeCandidate, MergePolicy};
use tantivy::{Index, Searcher, SegmentReader};

/// Segments merged at once; a merge is proposed once this many adjacent ones are alike.
const MERGE_FACTOR: usize = 8;
/// Segments below this many documents are all of the lowest level.
const MIN_LEVEL_DOCS: u32 = 10_000;
/// Segments with this many documents are never merged further.
const MAX_MERGED_DOCS: u32 = 10_000_000;

/// The `pos` range and size of a segment.
#[derive(Debug, Clone, Copy)]
struct Span {
    first: u64,
    last: u64,
    docs: u32,
}

fn span_of(reader: &SegmentReader) -> Option<Span> {
    let column = reader.fast_fields().u64("pos").ok()?;
    (reader.num_docs() > 0).then(|| Span {
        first: column.min_value(),
        last: column.max_value(),
        docs: reader.num_docs(),
    })
}

/// The size class of a segment: segments of one level are merged together.
fn level(docs: u32) -> u32 {
    let mut level = 0;
    let mut bound = MIN_LEVEL_DOCS;
    while docs >= bound && bound < MAX_MERGED_DOCS {
        level += 1;
        bound = bound.saturating_mul(MERGE_FACTOR as u32);
    }
    level
}

/// A merge policy that keeps every segment's documents in `pos` order.
#[derive(Debug)]
pub(crate) struct OrderedMerges {
    index: Index,
    spans: Mutex<HashMap<SegmentId, Option<Span>>>,
}

impl OrderedMerges {
    pub(crate) fn new(index: Index) -> OrderedMerges {
        OrderedMerges {
            index,
            spans: Mutex::new(HashMap::new()),
        }
    }

    fn span(&self, meta: &SegmentMeta) -> Option<Span> {
        let mut spans = self.spans.lock().expect("span cache poisoned");
        *spans.entry(meta.id()).or_insert_with(|| {
            let segment = self.index.segment(meta.clone());
            SegmentReader::open(&segment).ok().and_then(|r| span_of(&r))
        })
    }
}

impl MergePolicy for OrderedMerges {
    fn compute_merge_candidates(&self, segments: &[SegmentMeta]) -> Vec<MergeCandidate> {
        let mut known: Vec<(Span, SegmentId)> = segments
            .iter()
            .filter(|m| m.num_deleted_docs() == 0)
            .filter_map(|m| self.span(m).map(|s| (s, m.id())))
            .collect();
        {
            // Forget segments that are gone (merged away).
            let live: std::collections::HashSet<SegmentId> =
                segments.iter().map(SegmentMeta::id).collect();
            self.spans
                .lock()
                .expect("span cache poisoned")
                .retain(|id, _| live.contains(id));
        }
        known.sort_by_key(|(s, _)| s.first);
        plan(&known.iter().map(|(s, _)| *s).collect::<Vec<_>>())
            .into_iter()
            .map(|run| MergeCandidate(run.map(|i| known[i].1).collect()))
            .collect()
    }
}

/// The merges of `spans` (sorted by first `pos`): runs of `MERGE_FACTOR` segments that
/// are adjacent (each begins right after the one before ends: no segment that is being
/// merged or was not offered lies between them) and of one level, below the largest.
fn plan(spans: &[Span]) -> Vec<std::ops::Range<usize>> {
    let mut merges = Vec::new();
    let mut start = 0;
    while start < spans.len() {
        let lvl = level(spans[start].docs);
        let mut end = start + 1;
        while end < spans.len()
            && end - start < MERGE_FACTOR
            && spans[end].first == spans[end - 1].last + 1
            && level(spans[end].docs) == lvl
        {
            end += 1;
        }
        let docs: u64 = spans[start..end].iter().map(|s| u64::from(s.docs)).sum();
        if end - start == MERGE_FACTOR && docs < u64::from(MAX_MERGED_DOCS) {
            merges.push(start..end);
            start = end;
        } else {
            start += 1;
        }
    }
    merges
}

/// Whether a segment's documents are in `pos` order, checked once per segment.
#[derive(Default)]
pub(crate) struct OrderCache(Mutex<HashMap<SegmentId, bool>>);

impl OrderCache {
    /// For each segment of `searcher`, by ordinal: are its documents in `pos` order?
    pub(crate) fn of(&self, searcher: &Searcher) -> tantivy::Result<Vec<bool>> {
        let mut cache = self.0.lock().expect("order cache poisoned");
        let mut out = Vec::with_capacity(searcher.segment_readers().len());
        for reader in searcher.segment_readers() {
            let id = reader.segment_id();
            let ordered = match cache.get(&id) {
                Some(&known) => known,
                None => {
                    let known = in_pos_order(reader)?;
                    if !known {
                        tracing::warn!(segment = %id.short_uuid_string(), "an index segment is not in order; listings scan it");
                    }
                    cache.insert(id, known);
                    known
                }
            };
            out.push(ordered);
        }
        let live: std::collections::HashSet<SegmentId> = searcher
            .segment_readers()
            .iter()
            .map(SegmentReader::segment_id)
            .collect();
        cache.retain(|id, _| live.contains(id));
        Ok(out)
    }
}

fn in_pos_order(reader: &SegmentReader) -> tantivy::Result<bool> {
    let Some(column) = reader.fast_fields().column_opt::<u64>("pos")? else {
        return Ok(reader.max_doc() == 0);
    };
    let mut previous = None;
    for doc in 0..reader.max_doc() {
        let mut values = column.values_for_doc(doc);
        let (Some(pos), None) = (values.next(), values.next()) else {
            return Ok(false);
        };
        if previous.is_some_and(|p| p >= pos) {
            return Ok(false);
        }
        previous = Some(pos);
    }
    Ok(true)
}

/// Shared, so the indexer's writer and tests can make one.
pub(crate) fn merge_policy(index: &Index) -> Box<dyn MergePolicy> {
    Box::new(OrderedMerges::new(index.clone()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spans(sizes: &[u32]) -> Vec<Span> {
        let mut next = 0u64;
        sizes
            .iter()
            .map(|&docs| {
                let s = Span {
                    first: next,
                    last: next + u64::from(docs) - 1,
                    docs,
                };
                next += u64::from(docs);
                s
            })
            .collect()
    }

    #[test]
    fn merges_only_adjacent_runs_of_one_level() {
        // Nine small segments after a large one: the first eight small ones merge.
        let mut sizes = vec![2_000_000];
        sizes.extend([1_000; 9]);
        assert_eq!(
            plan(&spans(&sizes)),
            vec![std::ops::Range { start: 1, end: 9 }]
        );
        // A gap (a segment being merged elsewhere) splits the run.
        let mut s = spans(&[1_000; 10]);
        s[4].first += 1;
        assert!(plan(&s).is_empty());
        // Too few alike.
        assert!(plan(&spans(&[1_000; 7])).is_empty());
        // Never past the largest size.
        assert!(plan(&spans(&[2_000_000; 8])).is_empty());
        assert_eq!(level(1), 0);
        assert_eq!(level(10_000), 1);
        assert!(level(u32::MAX) < 10);
    }
}
