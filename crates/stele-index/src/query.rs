//! Query execution: filters become tantivy term and range queries over one log; a page of
//! matches in `seq` order comes from a collector that seeks. Each segment holds a log's
//! documents in `seq` order (see `order`), so a page starts where the cursor points (found
//! by binary search over the log's documents) and stops after `limit` matches, whatever
//! the depth of the page or the number of matches. The answer is the `seq`s to read from
//! the store.

use crate::schema::{level_rank, to_v6};
use crate::{Result, SearchIndex};
use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::net::IpAddr;
use std::ops::Bound;
use stele_core::cursor::SortOrder;
use stele_core::{ActorType, Category, Level, Outcome, Timestamp};
use tantivy::collector::{Collector, SegmentCollector};
use tantivy::query::{
    BooleanQuery, EnableScoring, Occur, Query, RangeQuery, RegexQuery, TermQuery, Weight,
};
use tantivy::schema::{Field, IndexRecordOption};
use tantivy::{DocId, Score, SegmentOrdinal, SegmentReader, TERMINATED, Term};

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ActionFilter {
    Exact(String),
    /// Actions starting with this text (`user.*` is `Prefix("user.")`).
    Prefix(String),
}

/// A filtered, ordered, paginated listing of one log.
#[derive(Debug, Clone)]
pub struct EventQuery {
    pub tenant: String,
    /// `occurred_at >= from`
    pub from: Option<Timestamp>,
    /// `occurred_at < to`
    pub to: Option<Timestamp>,
    /// `received_at >= received_from`
    pub received_from: Option<Timestamp>,
    /// `received_at < received_to`
    pub received_to: Option<Timestamp>,
    pub actor_id: Option<String>,
    pub actor_type: Option<ActorType>,
    pub ip: Option<IpAddr>,
    pub action: Option<ActionFilter>,
    pub category: Option<Category>,
    /// At least this severe.
    pub min_level: Option<Level>,
    pub outcome: Option<Outcome>,
    pub resource_type: Option<String>,
    pub resource_id: Option<String>,
    pub correlation_id: Option<String>,
    pub request_id: Option<String>,
    pub trace_id: Option<String>,
    pub error_code: Option<String>,
    /// `step.name`
    pub step: Option<String>,
    /// `duration_ms >= min_duration_ms`
    pub min_duration_ms: Option<u64>,
    /// `duration_ms <= max_duration_ms`
    pub max_duration_ms: Option<u64>,
    /// Words that must all occur in the event's text (action, actor and resource names,
    /// error message, the strings and numbers of `details`), matched case-insensitively.
    pub text: Option<String>,
    pub order: SortOrder,
    /// Continue strictly after this `seq` (in `order`).
    pub after: Option<u64>,
    pub limit: usize,
}

impl EventQuery {
    /// Everything in `tenant`, oldest first.
    pub fn all(tenant: &str, limit: usize) -> EventQuery {
        EventQuery {
            tenant: tenant.to_string(),
            from: None,
            to: None,
            received_from: None,
            received_to: None,
            actor_id: None,
            actor_type: None,
            ip: None,
            action: None,
            category: None,
            min_level: None,
            outcome: None,
            resource_type: None,
            resource_id: None,
            correlation_id: None,
            request_id: None,
            trace_id: None,
            error_code: None,
            step: None,
            min_duration_ms: None,
            max_duration_ms: None,
            text: None,
            order: SortOrder::Asc,
            after: None,
            limit,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SearchPage {
    /// Matching positions, in the query's order.
    pub seqs: Vec<u64>,
    /// More matches follow the last one.
    pub has_more: bool,
    /// The last `seq` of the log that this answer reflects.
    pub indexed_through: Option<u64>,
}

fn term(field: Field, value: &str) -> Box<dyn Query> {
    Box::new(TermQuery::new(
        Term::from_field_text(field, value),
        IndexRecordOption::Basic,
    ))
}

fn range<T>(lower: Option<T>, upper: Bound<T>, term: impl Fn(T) -> Term) -> Box<dyn Query> {
    let lower = lower.map_or(Bound::Unbounded, |v| Bound::Included(term(v)));
    let upper = match upper {
        Bound::Included(v) => Bound::Included(term(v)),
        Bound::Excluded(v) => Bound::Excluded(term(v)),
        Bound::Unbounded => Bound::Unbounded,
    };
    Box::new(RangeQuery::new(lower, upper))
}

impl SearchIndex {
    /// The query of every filter of `q` (the cursor is applied by the collector).
    fn filters(&self, q: &EventQuery) -> Result<BooleanQuery> {
        let f = &self.fields;
        let mut clauses: Vec<(Occur, Box<dyn Query>)> =
            vec![(Occur::Must, term(f.tenant, &q.tenant))];
        let mut must = |query: Box<dyn Query>| clauses.push((Occur::Must, query));

        for (field, value) in [
            (f.actor_id, &q.actor_id),
            (f.resource_type, &q.resource_type),
            (f.resource_id, &q.resource_id),
            (f.correlation_id, &q.correlation_id),
            (f.request_id, &q.request_id),
            (f.trace_id, &q.trace_id),
            (f.error_code, &q.error_code),
            (f.step_name, &q.step),
        ] {
            if let Some(v) = value {
                must(term(field, v));
            }
        }
        if let Some(t) = q.actor_type {
            must(term(f.actor_type, t.as_str()));
        }
        if let Some(c) = q.category {
            must(term(f.category, c.as_str()));
        }
        if let Some(o) = q.outcome {
            must(term(f.outcome, o.as_str()));
        }
        if let Some(ip) = q.ip {
            must(Box::new(TermQuery::new(
                Term::from_field_ip_addr(f.ip, to_v6(ip)),
                IndexRecordOption::Basic,
            )));
        }
        match &q.action {
            Some(ActionFilter::Exact(a)) => must(term(f.action, a)),
            // A prefix up to a dot is one indexed term; any other needs the term dictionary.
            Some(ActionFilter::Prefix(p)) if p.ends_with('.') => must(term(f.action_prefix, p)),
            Some(ActionFilter::Prefix(p)) => {
                let pattern = format!("{}.*", regex_escape(p));
                must(Box::new(RegexQuery::from_pattern(&pattern, f.action)?));
            }
            None => {}
        }
        if let Some(level) = q.min_level {
            must(range(Some(level_rank(level)), Bound::Unbounded, |v| {
                Term::from_field_u64(f.level, v)
            }));
        }
        if q.from.is_some() || q.to.is_some() {
            let upper =
                q.to.map_or(Bound::Unbounded, |t| Bound::Excluded(t.as_micros()));
            must(range(q.from.map(|t| t.as_micros()), upper, |v| {
                Term::from_field_i64(f.occurred_at, v)
            }));
        }
        if q.received_from.is_some() || q.received_to.is_some() {
            let upper = q
                .received_to
                .map_or(Bound::Unbounded, |t| Bound::Excluded(t.as_micros()));
            must(range(q.received_from.map(|t| t.as_micros()), upper, |v| {
                Term::from_field_i64(f.received_at, v)
            }));
        }
        if q.min_duration_ms.is_some() || q.max_duration_ms.is_some() {
            let upper = q.max_duration_ms.map_or(Bound::Unbounded, Bound::Included);
            must(range(q.min_duration_ms, upper, |v| {
                Term::from_field_u64(f.duration_ms, v)
            }));
        }
        if let Some(text) = &q.text {
            for word in self.words(text)? {
                must(term(f.text, &word));
            }
        }
        Ok(BooleanQuery::new(clauses))
    }

    /// The words of `text` as the text field indexes them (same tokenizer, lower case).
    fn words(&self, text: &str) -> Result<Vec<String>> {
        let mut analyzer = self.index.tokenizer_for_field(self.fields.text)?;
        let mut words = Vec::new();
        analyzer.token_stream(text).process(&mut |token| {
            words.push(token.text.clone());
        });
        Ok(words)
    }

    pub fn search(&self, q: &EventQuery) -> Result<SearchPage> {
        let query = self.filters(q)?;
        let snapshot = self.snapshot();
        let searcher = &snapshot.searcher;
        let scoring = EnableScoring::disabled_from_searcher(searcher);
        let limit = q.limit.max(1);
        let collector = SeqPage {
            log: TermQuery::new(
                Term::from_field_text(self.fields.tenant, &q.tenant),
                IndexRecordOption::Basic,
            )
            .weight(scoring)?,
            order: q.order,
            after: q.after,
            wanted: limit + 1,
            ordered: &snapshot.ordered,
        };
        let hits = searcher.search(&query, &collector)?;
        let has_more = hits.len() > limit;
        let seqs = hits.into_iter().take(limit).collect();
        let indexed_through = snapshot
            .progress
            .get(&q.tenant)
            .and_then(|n| n.checked_sub(1));
        Ok(SearchPage {
            seqs,
            has_more,
            indexed_through,
        })
    }
}

/// Collects the first `wanted` matches in `order` strictly after the cursor, as `seq`s.
struct SeqPage<'a> {
    /// The log's documents, for finding where the cursor falls in a segment.
    log: Box<dyn Weight>,
    order: SortOrder,
    after: Option<u64>,
    wanted: usize,
    /// Per segment ordinal: its documents are in order, so it can be sought.
    ordered: &'a [bool],
}

impl SeqPage<'_> {
    /// Whether `seq` lies beyond the cursor in the listing's order.
    fn beyond_cursor(&self, seq: u64) -> bool {
        match (self.order, self.after) {
            (_, None) => true,
            (SortOrder::Asc, Some(after)) => seq > after,
            (SortOrder::Desc, Some(after)) => seq < after,
        }
    }

    /// The first document from which on every document of the log has a `seq` of at least
    /// `threshold` (every one before it has less): a binary search over document ids, each
    /// probe seeking in the log's postings. Needs the segment in order.
    fn first_at_or_above(
        &self,
        reader: &SegmentReader,
        seq_of: &impl Fn(DocId) -> u64,
        threshold: u64,
    ) -> tantivy::Result<DocId> {
        let (mut lo, mut hi) = (0, reader.max_doc());
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            let mut docs = self.log.scorer(reader, 1.0)?;
            let mut doc = docs.doc();
            if doc < mid {
                doc = docs.seek(mid);
            }
            if doc == TERMINATED || seq_of(doc) >= threshold {
                hi = mid;
            } else {
                lo = mid + 1;
            }
        }
        Ok(lo)
    }

    /// Ascending: seek to the cursor and take the next matches.
    fn ascending(
        &self,
        weight: &dyn Weight,
        reader: &SegmentReader,
        seq_of: &impl Fn(DocId) -> u64,
    ) -> tantivy::Result<Vec<u64>> {
        let start = match self.after {
            Some(after) => self.first_at_or_above(reader, seq_of, after.saturating_add(1))?,
            None => 0,
        };
        let mut out = Vec::with_capacity(self.wanted);
        let mut scorer = weight.scorer(reader, 1.0)?;
        let mut doc = scorer.doc();
        if doc < start {
            doc = scorer.seek(start);
        }
        while doc != TERMINATED && out.len() < self.wanted {
            if reader.alive_bitset().is_none_or(|a| a.is_alive(doc)) {
                out.push(seq_of(doc));
            }
            doc = scorer.advance();
        }
        Ok(out)
    }

    /// Descending: matches before the cursor, in windows that grow backwards from it until
    /// they hold enough (a document set only moves forward).
    fn descending(
        &self,
        weight: &dyn Weight,
        reader: &SegmentReader,
        seq_of: &impl Fn(DocId) -> u64,
    ) -> tantivy::Result<Vec<u64>> {
        let end = match self.after {
            Some(before) => self.first_at_or_above(reader, seq_of, before)?,
            None => reader.max_doc(),
        };
        let mut width = (4 * self.wanted as u32).max(256);
        loop {
            let start = end.saturating_sub(width);
            let mut found = Vec::new();
            let mut scorer = weight.scorer(reader, 1.0)?;
            let mut doc = scorer.doc();
            if doc < start {
                doc = scorer.seek(start);
            }
            while doc < end {
                if reader.alive_bitset().is_none_or(|a| a.is_alive(doc)) {
                    found.push(seq_of(doc));
                }
                doc = scorer.advance();
            }
            if found.len() >= self.wanted || start == 0 {
                found.reverse();
                found.truncate(self.wanted);
                return Ok(found);
            }
            width = width.saturating_mul(4);
        }
    }

    /// A segment out of order: visit every match, keep the best.
    fn scan(
        &self,
        weight: &dyn Weight,
        reader: &SegmentReader,
        seq_of: &impl Fn(DocId) -> u64,
    ) -> tantivy::Result<Vec<u64>> {
        // A max-heap of the kept seqs in listing order: its top is the worst kept one.
        let key = |seq: u64| match self.order {
            SortOrder::Asc => seq,
            SortOrder::Desc => u64::MAX - seq,
        };
        let mut kept: BinaryHeap<u64> = BinaryHeap::new();
        let mut scorer = weight.scorer(reader, 1.0)?;
        let mut doc = scorer.doc();
        while doc != TERMINATED {
            if reader.alive_bitset().is_none_or(|a| a.is_alive(doc)) {
                let seq = seq_of(doc);
                if self.beyond_cursor(seq) {
                    kept.push(key(seq));
                    if kept.len() > self.wanted {
                        kept.pop();
                    }
                }
            }
            doc = scorer.advance();
        }
        Ok(kept.into_iter().map(key).collect())
    }
}

impl Collector for SeqPage<'_> {
    type Fruit = Vec<u64>;
    type Child = NoChild;

    fn for_segment(&self, _: SegmentOrdinal, _: &SegmentReader) -> tantivy::Result<NoChild> {
        Ok(NoChild)
    }

    fn requires_scoring(&self) -> bool {
        false
    }

    fn merge_fruits(&self, segments: Vec<Vec<u64>>) -> tantivy::Result<Vec<u64>> {
        let mut all: Vec<u64> = segments.into_iter().flatten().collect();
        match self.order {
            SortOrder::Asc => all.sort_unstable(),
            SortOrder::Desc => all.sort_unstable_by_key(|&s| Reverse(s)),
        }
        all.truncate(self.wanted);
        Ok(all)
    }

    fn collect_segment(
        &self,
        weight: &dyn Weight,
        segment: SegmentOrdinal,
        reader: &SegmentReader,
    ) -> tantivy::Result<Vec<u64>> {
        let column = reader.fast_fields().u64("seq")?;
        let seq_of = |doc: DocId| column.first(doc).unwrap_or(0);
        if !self.ordered.get(segment as usize).copied().unwrap_or(false) {
            return self.scan(weight, reader, &seq_of);
        }
        match self.order {
            SortOrder::Asc => self.ascending(weight, reader, &seq_of),
            SortOrder::Desc => self.descending(weight, reader, &seq_of),
        }
    }
}

/// The collector works per segment in `collect_segment`; tantivy still wants a child type.
struct NoChild;

impl SegmentCollector for NoChild {
    type Fruit = Vec<u64>;

    fn collect(&mut self, _: DocId, _: Score) {}

    fn harvest(self) -> Vec<u64> {
        Vec::new()
    }
}

fn regex_escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 4);
    for c in text.chars() {
        if !c.is_ascii_alphanumeric() && c != '_' {
            out.push('\\');
        }
        out.push(c);
    }
    out
}
