//! The index audit: compares the documents the index holds for one log with the events the
//! log store holds, so that a tampered index (one that hides events from searches, or makes
//! them show up in searches they do not belong to) is found even though the log is intact.
//!
//! It runs in two passes over the index. The first reads, per segment, the postings of every
//! indexed text field (each term dictionary once) and the fast-field columns, and folds the
//! values of each live document of the log into an order-independent digest: the wrapping sum
//! of a keyed 64-bit hash of each (field, value). It then reads the log in `seq` order in
//! batches and computes the same digest from what `schema::document` makes of each event.
//! Memory is a count and a digest per event. Only for the positions whose digests differ
//! does a second pass collect the values of those documents, to name the field, and what the
//! index holds against what the event has.
//!
//! Every indexed field of the schema is checked: text fields (the exact-match `STRING`
//! fields, `tenant` among them, and the tokenized `text` field) by their terms in both
//! directions, and numeric and IP fast fields by their column values. Term frequencies and
//! positions of `text` are not checked, only which terms a document has. `seq` is the key the
//! documents are matched by; its fast column is what searches sort and page by.

use crate::schema::Fields;
use crate::{IndexError, Result, SearchIndex, schema};
use std::collections::hash_map::RandomState;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::hash::BuildHasher;
use std::net::Ipv6Addr;
use stele_store::LogStore;
use tantivy::columnar::Column;
use tantivy::schema::{Field, FieldType, IndexRecordOption, Value};
use tantivy::tokenizer::{MAX_TOKEN_LEN, TextAnalyzer};
use tantivy::{DocId, DocSet, Index, SegmentReader, TERMINATED, TantivyDocument, Term};

/// One disagreement between the index and the store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IndexProblem {
    pub tenant: String,
    /// The position concerned, if the problem is about one.
    pub seq: Option<u64>,
    /// What is wrong, in lowercase words.
    pub detail: String,
}

/// The result of auditing one log.
#[derive(Debug, Clone, Default)]
pub struct IndexAudit {
    pub tenant: String,
    /// Events compared with their documents: those the index says it has indexed that the
    /// log has.
    pub checked: u64,
    /// The number of events of the log the last index commit records as indexed (its next
    /// `seq`). Events of the log from there on are not indexed yet, which is no problem: the
    /// indexer catches up when the server starts.
    pub indexed_through: u64,
    /// Sorted by `seq`, problems about no one position first.
    pub problems: Vec<IndexProblem>,
}

impl IndexAudit {
    pub fn is_ok(&self) -> bool {
        self.problems.is_empty()
    }
}

/// Events read from the store per step.
const READ_BATCH: usize = 5_000;

/// At most this many differing positions are described field by field; beyond it the
/// second pass would hold too many documents' values at once.
const MAX_DETAILED: usize = 10_000;

impl SearchIndex {
    /// Compares the index's documents of `tenant` with the store's events. `progress(n)` is
    /// called now and then with the number of events checked so far (for a progress bar).
    ///
    /// Reads the index as of the last commit this `SearchIndex` has seen. Meant to run while
    /// nothing writes to the store or the index.
    pub fn audit(
        &self,
        store: &dyn LogStore,
        tenant: &str,
        progress: &mut dyn FnMut(u64),
    ) -> Result<IndexAudit> {
        let snapshot = self.snapshot();
        let indexed = snapshot.progress.get(tenant).copied().unwrap_or(0);
        let size = store
            .heads()?
            .into_iter()
            .find(|h| h.tenant == tenant)
            .map_or(0, |h| h.size);
        let mut auditor = Auditor::new(&self.index, self.fields, tenant)?;
        let segments = snapshot.searcher.segment_readers();
        let mut problems = Vec::new();
        if indexed > size {
            problems.push(problem(
                tenant,
                None,
                format!(
                    "the index commit records {indexed} events indexed, but the log has {size} events"
                ),
            ));
        }
        // Positions compared: indexed and in the log. Never more than the log has, whatever
        // the commit payload says.
        let compared = indexed.min(size);
        let tally = auditor.tally(segments, compared, &mut problems)?;
        tally.report_outside(tenant, size, indexed, &mut problems);
        let differing =
            auditor.compare_with_log(store, &tally, compared, progress, &mut problems)?;
        drop(tally);
        auditor.describe_differences(store, segments, differing, &mut problems)?;
        // Stable: for one position, its count comes before its fields.
        problems.sort_by_key(|p| p.seq);
        Ok(IndexAudit {
            tenant: tenant.to_string(),
            checked: compared,
            indexed_through: indexed,
            problems,
        })
    }

    /// Every tenant that has a live document in the index. An audit of the logs of the store
    /// alone would miss documents of a tenant the store does not know.
    pub fn indexed_tenants(&self) -> Result<BTreeSet<String>> {
        let snapshot = self.snapshot();
        let mut tenants = BTreeSet::new();
        for segment in snapshot.searcher.segment_readers() {
            let inverted = segment.inverted_index(self.fields.tenant)?;
            let mut terms = inverted.terms().stream()?;
            while terms.advance() {
                let mut postings = inverted
                    .read_postings_from_terminfo(terms.value(), IndexRecordOption::Basic)?;
                let mut doc = postings.doc();
                while doc != TERMINATED && segment.is_deleted(doc) {
                    doc = postings.advance();
                }
                if doc != TERMINATED {
                    tenants.insert(String::from_utf8_lossy(terms.key()).into_owned());
                }
            }
        }
        Ok(tenants)
    }
}

fn bad(tenant: &str, seq: u64, reason: &str) -> IndexError {
    IndexError::BadEvent {
        tenant: tenant.to_string(),
        seq,
        reason: reason.to_string(),
    }
}

/// How the values of a field are read from the index.
enum Kind {
    /// Terms from the inverted index, as the field's tokenizer makes them. `whole` if each
    /// value is one term (the raw tokenizer): then problems list the values in full.
    Terms {
        analyzer: TextAnalyzer,
        whole: bool,
    },
    U64,
    I64,
    Ip,
}

struct Checked {
    field: Field,
    name: String,
    kind: Kind,
}

/// One indexed value of a field.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum Val {
    Term(Vec<u8>),
    U64(u64),
    I64(i64),
    Ip(Ipv6Addr),
}

impl Val {
    fn render(&self) -> String {
        match self {
            Val::Term(bytes) => format!("{:?}", String::from_utf8_lossy(bytes)),
            Val::U64(n) => n.to_string(),
            Val::I64(n) => n.to_string(),
            Val::Ip(ip) => match ip.to_ipv4_mapped() {
                Some(v4) => format!("\"{v4}\""),
                None => format!("\"{ip}\""),
            },
        }
    }
}

/// The values of field `c` among `values`.
fn of(values: &Values, c: usize) -> Vec<&Val> {
    values
        .iter()
        .filter(|(i, _)| *i == c)
        .map(|(_, v)| v)
        .collect()
}

fn render(values: &[&Val]) -> String {
    let items: Vec<String> = values.iter().map(|v| v.render()).collect();
    format!("[{}]", items.join(", "))
}

/// Values of one document: (index into `Auditor::checked`, value), sorted.
type Values = Vec<(usize, Val)>;

/// A fast-field column of one segment.
enum FastColumn {
    U64(Column<u64>),
    I64(Column<i64>),
    Ip(Column<Ipv6Addr>),
}

impl FastColumn {
    fn open(segment: &SegmentReader, checked: &Checked) -> Result<Option<FastColumn>> {
        let fast = segment.fast_fields();
        Ok(match checked.kind {
            Kind::U64 => fast.column_opt(&checked.name)?.map(FastColumn::U64),
            Kind::I64 => fast.column_opt(&checked.name)?.map(FastColumn::I64),
            Kind::Ip => fast.column_opt(&checked.name)?.map(FastColumn::Ip),
            Kind::Terms { .. } => None,
        })
    }

    fn values(&self, doc: DocId, mut f: impl FnMut(Val)) {
        match self {
            FastColumn::U64(c) => c.values_for_doc(doc).for_each(|v| f(Val::U64(v))),
            FastColumn::I64(c) => c.values_for_doc(doc).for_each(|v| f(Val::I64(v))),
            FastColumn::Ip(c) => c.values_for_doc(doc).for_each(|v| f(Val::Ip(v))),
        }
    }
}

struct Auditor<'a> {
    tenant: &'a str,
    fields: Fields,
    checked: Vec<Checked>,
    /// Keyed at random per audit, so that nobody can craft values whose digests collide.
    hasher: RandomState,
}

impl<'a> Auditor<'a> {
    fn new(index: &Index, fields: Fields, tenant: &'a str) -> Result<Auditor<'a>> {
        let schema = index.schema();
        let mut checked = Vec::new();
        for (field, entry) in schema.fields() {
            // `pos` is the node's own order of addition, not a value of the event.
            if field == fields.seq || field == fields.pos {
                continue;
            }
            let kind = match entry.field_type() {
                FieldType::Str(options) => match options.get_indexing_options() {
                    Some(indexing) => Kind::Terms {
                        analyzer: index.tokenizer_for_field(field)?,
                        whole: indexing.tokenizer() == "raw",
                    },
                    None => continue,
                },
                FieldType::U64(_) if entry.is_fast() => Kind::U64,
                FieldType::I64(_) if entry.is_fast() => Kind::I64,
                FieldType::IpAddr(_) if entry.is_fast() => Kind::Ip,
                // The schema has no other kinds of fields.
                _ => continue,
            };
            checked.push(Checked {
                field,
                name: entry.name().to_string(),
                kind,
            });
        }
        Ok(Auditor {
            tenant,
            fields,
            checked,
            hasher: RandomState::new(),
        })
    }

    fn hash_term(&self, checked: usize, term: &[u8]) -> u64 {
        self.hasher.hash_one((checked, 0u8, term))
    }

    fn hash(&self, checked: usize, value: &Val) -> u64 {
        match value {
            Val::Term(term) => self.hash_term(checked, term),
            Val::U64(n) => self.hasher.hash_one((checked, 1u8, *n)),
            Val::I64(n) => self.hasher.hash_one((checked, 2u8, *n)),
            Val::Ip(ip) => self.hasher.hash_one((checked, 3u8, u128::from(*ip))),
        }
    }

    /// The live documents of the segment that carry the log's tenant term, in order.
    fn log_docs(&self, segment: &SegmentReader) -> Result<Vec<DocId>> {
        let inverted = segment.inverted_index(self.fields.tenant)?;
        let term = Term::from_field_text(self.fields.tenant, self.tenant);
        let mut docs = Vec::new();
        if let Some(mut postings) = inverted.read_postings(&term, IndexRecordOption::Basic)? {
            let mut doc = postings.doc();
            while doc != TERMINATED {
                if !segment.is_deleted(doc) {
                    docs.push(doc);
                }
                doc = postings.advance();
            }
        }
        Ok(docs)
    }

    /// Calls `visit(checked, term, matches)` for each term of each text field that some of
    /// `docs` (sorted) have, with the indexes into `docs` of those that have it.
    fn scan_terms(
        &self,
        segment: &SegmentReader,
        docs: &[DocId],
        mut visit: impl FnMut(usize, &[u8], &[usize]),
    ) -> Result<()> {
        let mut matches = Vec::new();
        for (c, checked) in self.checked.iter().enumerate() {
            if !matches!(checked.kind, Kind::Terms { .. }) {
                continue;
            }
            let inverted = segment.inverted_index(checked.field)?;
            let mut terms = inverted.terms().stream()?;
            while terms.advance() {
                let mut postings = inverted
                    .read_postings_from_terminfo(terms.value(), IndexRecordOption::Basic)?;
                // Intersect the postings with `docs`, skipping ahead in both.
                matches.clear();
                let mut i = 0;
                let mut doc = postings.doc();
                while doc != TERMINATED && i < docs.len() {
                    if docs[i] < doc {
                        i += docs[i..].partition_point(|&d| d < doc);
                    } else if docs[i] > doc {
                        doc = postings.seek(docs[i]);
                    } else {
                        matches.push(i);
                        i += 1;
                        doc = postings.advance();
                    }
                }
                if !matches.is_empty() {
                    visit(c, terms.key(), &matches);
                }
            }
        }
        Ok(())
    }

    /// The digest of each of `docs` (sorted) of the segment.
    fn digests(&self, segment: &SegmentReader, docs: &[DocId]) -> Result<Vec<u64>> {
        let mut digests = vec![0u64; docs.len()];
        self.scan_terms(segment, docs, |c, term, matches| {
            let h = self.hash_term(c, term);
            for &i in matches {
                digests[i] = digests[i].wrapping_add(h);
            }
        })?;
        for (c, checked) in self.checked.iter().enumerate() {
            if let Some(column) = FastColumn::open(segment, checked)? {
                for (i, &doc) in docs.iter().enumerate() {
                    column.values(doc, |v| {
                        digests[i] = digests[i].wrapping_add(self.hash(c, &v))
                    });
                }
            }
        }
        Ok(digests)
    }

    /// The values the index holds for each document of the log at one of `seqs` (sorted),
    /// per `seq`, one entry per document.
    fn values_of(
        &self,
        segments: &[SegmentReader],
        seqs: &[u64],
    ) -> Result<HashMap<u64, Vec<Values>>> {
        let mut out: HashMap<u64, Vec<Values>> = HashMap::new();
        for segment in segments {
            let Some(column) = segment.fast_fields().column_opt::<u64>("seq")? else {
                continue;
            };
            let mut docs = Vec::new();
            let mut doc_seqs = Vec::new();
            for doc in self.log_docs(segment)? {
                let wanted: Vec<u64> = column
                    .values_for_doc(doc)
                    .filter(|s| seqs.binary_search(s).is_ok())
                    .collect();
                if !wanted.is_empty() {
                    docs.push(doc);
                    doc_seqs.push(wanted);
                }
            }
            if docs.is_empty() {
                continue;
            }
            let mut values: Vec<Values> = vec![Vec::new(); docs.len()];
            self.scan_terms(segment, &docs, |c, term, matches| {
                for &i in matches {
                    values[i].push((c, Val::Term(term.to_vec())));
                }
            })?;
            for (c, checked) in self.checked.iter().enumerate() {
                if let Some(column) = FastColumn::open(segment, checked)? {
                    for (i, &doc) in docs.iter().enumerate() {
                        column.values(doc, |v| values[i].push((c, v)));
                    }
                }
            }
            for (mut doc_values, doc_seqs) in values.into_iter().zip(doc_seqs) {
                doc_values.sort();
                for seq in doc_seqs {
                    out.entry(seq).or_default().push(doc_values.clone());
                }
            }
        }
        Ok(out)
    }

    /// The document the indexer makes of the stored event.
    fn document(&self, seq: u64, bytes: &[u8]) -> TantivyDocument {
        schema::stored_document(&self.fields, self.tenant, seq, bytes)
            .unwrap_or_else(|(doc, _)| doc)
    }

    /// The values the index should hold for the stored event, sorted.
    fn expected_values(&mut self, seq: u64, bytes: &[u8]) -> Values {
        let doc = self.document(seq, bytes);
        let mut values: Values = Vec::new();
        for (field, value) in doc.field_values() {
            let Some(c) = self.checked.iter().position(|c| c.field == field) else {
                continue;
            };
            let Some(leaf) = value.as_leaf() else {
                continue;
            };
            match &mut self.checked[c].kind {
                Kind::Terms { analyzer, .. } => {
                    if let Some(text) = leaf.as_str() {
                        // As tantivy indexes text: every token, but none that is too long.
                        analyzer.token_stream(text).process(&mut |token| {
                            if token.text.len() <= MAX_TOKEN_LEN {
                                values.push((c, Val::Term(token.text.as_bytes().to_vec())));
                            }
                        });
                    }
                }
                Kind::U64 => values.extend(leaf.as_u64().map(|v| (c, Val::U64(v)))),
                Kind::I64 => values.extend(leaf.as_i64().map(|v| (c, Val::I64(v)))),
                Kind::Ip => values.extend(leaf.as_ip_addr().map(|v| (c, Val::Ip(v)))),
            }
        }
        values.sort();
        // A document has a term once however often it occurs; a column keeps every value.
        values.dedup_by(|a, b| a == b && matches!(a.1, Val::Term(_)));
        values
    }

    fn expected_digest(&mut self, seq: u64, bytes: &[u8]) -> u64 {
        self.expected_values(seq, bytes)
            .iter()
            .fold(0u64, |sum, (c, v)| sum.wrapping_add(self.hash(*c, v)))
    }

    /// What differs, field by field, between the expected values and a document's.
    fn describe(&self, seq: u64, expected: &Values, found: &Values) -> Vec<String> {
        let mut out = Vec::new();
        for (c, checked) in self.checked.iter().enumerate() {
            let want = of(expected, c);
            let have = of(found, c);
            if want == have {
                continue;
            }
            let name = &checked.name;
            let whole = match checked.kind {
                Kind::Terms { whole, .. } => whole,
                _ => true,
            };
            if whole {
                out.push(format!(
                    "seq {seq}: field {name} indexed as {}, the event has {}",
                    render(&have),
                    render(&want)
                ));
            } else {
                // Tokenized text: name only the terms that differ.
                let missing: Vec<&Val> =
                    want.iter().copied().filter(|v| !have.contains(v)).collect();
                let extra: Vec<&Val> = have.iter().copied().filter(|v| !want.contains(v)).collect();
                let mut parts = Vec::new();
                if missing.is_empty() && extra.is_empty() {
                    continue;
                }
                if !missing.is_empty() {
                    parts.push(format!("lacks the event's terms {}", render(&missing)));
                }
                if !extra.is_empty() {
                    parts.push(format!("has terms the event lacks {}", render(&extra)));
                }
                out.push(format!("seq {seq}: field {name} {}", parts.join(" and ")));
            }
        }
        out
    }
}

fn problem(tenant: &str, seq: Option<u64>, detail: String) -> IndexProblem {
    IndexProblem {
        tenant: tenant.to_string(),
        seq,
        detail,
    }
}

/// Pass 1: per position of the log, how many documents the index holds and the digest of
/// their values; positions beyond the compared part, and how often each is indexed.
struct Tally {
    counts: Vec<u32>,
    digests: Vec<u64>,
    outside: BTreeMap<u64, u32>,
}

impl Tally {
    /// Positions indexed beyond the log or the commit's progress.
    fn report_outside(
        &self,
        tenant: &str,
        size: u64,
        indexed: u64,
        problems: &mut Vec<IndexProblem>,
    ) {
        for (&seq, &n) in &self.outside {
            let times = if n == 1 {
                String::new()
            } else {
                format!(" {n} times")
            };
            let detail = if seq >= size {
                format!("seq {seq} is indexed{times} but the log has {size} events")
            } else {
                format!(
                    "seq {seq} is indexed{times} but the index commit records only {indexed} events indexed"
                )
            };
            problems.push(problem(tenant, Some(seq), detail));
        }
    }
}

impl Auditor<'_> {
    /// Pass 1: counts and digests the documents of each position.
    fn tally(
        &self,
        segments: &[SegmentReader],
        compared: u64,
        problems: &mut Vec<IndexProblem>,
    ) -> Result<Tally> {
        let tenant = self.tenant;
        let slots =
            usize::try_from(compared).map_err(|_| bad(tenant, compared, "log too large"))?;
        let mut tally = Tally {
            counts: vec![0u32; slots],
            digests: vec![0u64; slots],
            outside: BTreeMap::new(),
        };
        for segment in segments {
            let docs = self.log_docs(segment)?;
            if docs.is_empty() {
                continue;
            }
            let doc_digests = self.digests(segment, &docs)?;
            let seqs = segment.fast_fields().column_opt::<u64>("seq")?;
            for (&doc, digest) in docs.iter().zip(doc_digests) {
                let values: Vec<u64> = match &seqs {
                    Some(column) => column.values_for_doc(doc).collect(),
                    None => Vec::new(),
                };
                match values.as_slice() {
                    [] => problems.push(problem(
                        tenant,
                        None,
                        "a document of this log has no seq".to_string(),
                    )),
                    [_] => {}
                    [first, ..] => problems.push(problem(
                        tenant,
                        Some(*first),
                        format!("a document of this log has several seqs {values:?}"),
                    )),
                }
                for seq in values {
                    if seq < compared {
                        let i = seq as usize;
                        tally.counts[i] = tally.counts[i].saturating_add(1);
                        tally.digests[i] = digest;
                    } else {
                        *tally.outside.entry(seq).or_default() += 1;
                    }
                }
            }
        }
        Ok(tally)
    }

    /// Walks the log in order: each position must have exactly one document, with its
    /// values. Answers the positions whose values differ (and whether they are duplicates).
    fn compare_with_log(
        &mut self,
        store: &dyn LogStore,
        tally: &Tally,
        compared: u64,
        progress: &mut dyn FnMut(u64),
        problems: &mut Vec<IndexProblem>,
    ) -> Result<Vec<(u64, bool)>> {
        let tenant = self.tenant;
        let mut differing = Vec::new();
        let mut next = 0u64;
        progress(0);
        while next < compared {
            let want = usize::try_from(compared - next)
                .unwrap_or(usize::MAX)
                .min(READ_BATCH);
            let events = store.read_range(tenant, next, want)?;
            if events.is_empty() {
                return Err(bad(tenant, next, "the log store has no event here"));
            }
            for stored in events.iter().take(want) {
                if stored.seq != next {
                    let reason = format!("the store skipped from {next} to {}", stored.seq);
                    return Err(bad(tenant, next, &reason));
                }
                let i = next as usize;
                match tally.counts[i] {
                    0 => problems.push(problem(
                        tenant,
                        Some(next),
                        format!("seq {next} is indexed 0 times, expected once"),
                    )),
                    1 => {
                        if tally.digests[i] != self.expected_digest(next, &stored.bytes) {
                            differing.push((next, false));
                        }
                    }
                    n => {
                        problems.push(problem(
                            tenant,
                            Some(next),
                            format!("seq {next} is indexed {n} times, expected once"),
                        ));
                        // Each copy must still match the event: name what differs.
                        differing.push((next, true));
                    }
                }
                next += 1;
            }
            progress(next);
        }
        Ok(differing)
    }

    /// Pass 2: names the fields of the positions whose digests differ.
    fn describe_differences(
        &mut self,
        store: &dyn LogStore,
        segments: &[SegmentReader],
        mut differing: Vec<(u64, bool)>,
        problems: &mut Vec<IndexProblem>,
    ) -> Result<()> {
        if differing.is_empty() {
            return Ok(());
        }
        let tenant = self.tenant;
        let rest = differing.split_off(differing.len().min(MAX_DETAILED));
        // A duplicate beyond the limit is named by its count alone.
        for (seq, _) in rest.into_iter().filter(|(_, duplicate)| !duplicate) {
            problems.push(problem(
                tenant,
                Some(seq),
                format!(
                    "seq {seq}: the indexed values differ from the event \
                     (not described: more than {MAX_DETAILED} documents differ)"
                ),
            ));
        }
        let seqs: Vec<u64> = differing.iter().map(|(seq, _)| *seq).collect();
        let found = self.values_of(segments, &seqs)?;
        let mut stored_events = Vec::with_capacity(seqs.len());
        for chunk in seqs.chunks(1_000) {
            stored_events.extend(store.read_seqs(tenant, chunk)?);
        }
        for stored in stored_events {
            let seq = stored.seq;
            let expected = self.expected_values(seq, &stored.bytes);
            let mut details: Vec<String> = Vec::new();
            for copy in found.get(&seq).into_iter().flatten() {
                for detail in self.describe(seq, &expected, copy) {
                    if !details.contains(&detail) {
                        details.push(detail);
                    }
                }
            }
            let duplicate = found.get(&seq).is_some_and(|copies| copies.len() > 1);
            if details.is_empty() && !duplicate {
                details.push(format!(
                    "seq {seq}: the indexed values differ from the event"
                ));
            }
            problems.extend(details.into_iter().map(|d| problem(tenant, Some(seq), d)));
        }
        Ok(())
    }
}
