//! Query execution: filters become tantivy term and range queries over one log, ordered
//! by `seq` with keyset pagination; the answer is a list of `seq`s to read from the store.

use crate::schema::{level_rank, to_v6};
use crate::{Result, SearchIndex};
use std::net::IpAddr;
use std::ops::Bound;
use stele_core::cursor::SortOrder;
use stele_core::{ActorType, Category, Level, Outcome, Timestamp};
use tantivy::collector::TopDocs;
use tantivy::query::{BooleanQuery, Occur, Query, RangeQuery, RegexQuery, TermQuery};
use tantivy::schema::{Field, IndexRecordOption};
use tantivy::{Order, Term};

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

impl SearchIndex {
    pub fn search(&self, q: &EventQuery) -> Result<SearchPage> {
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
            Some(ActionFilter::Prefix(p)) => {
                let pattern = format!("{}.*", regex_escape(p));
                must(Box::new(RegexQuery::from_pattern(&pattern, f.action)?));
            }
            None => {}
        }
        if let Some(level) = q.min_level {
            must(Box::new(RangeQuery::new(
                Bound::Included(Term::from_field_u64(f.level, level_rank(level))),
                Bound::Unbounded,
            )));
        }
        if q.from.is_some() || q.to.is_some() {
            let lower = q.from.map_or(Bound::Unbounded, |t| {
                Bound::Included(Term::from_field_i64(f.occurred_at, t.as_micros()))
            });
            let upper = q.to.map_or(Bound::Unbounded, |t| {
                Bound::Excluded(Term::from_field_i64(f.occurred_at, t.as_micros()))
            });
            must(Box::new(RangeQuery::new(lower, upper)));
        }
        if let Some(after) = q.after {
            let after = Term::from_field_u64(f.seq, after);
            must(Box::new(match q.order {
                SortOrder::Asc => RangeQuery::new(Bound::Excluded(after), Bound::Unbounded),
                SortOrder::Desc => RangeQuery::new(Bound::Unbounded, Bound::Excluded(after)),
            }));
        }
        let query = BooleanQuery::new(clauses);

        let snapshot = self.snapshot();
        let order = match q.order {
            SortOrder::Asc => Order::Asc,
            SortOrder::Desc => Order::Desc,
        };
        let limit = q.limit.max(1);
        let collector = TopDocs::with_limit(limit + 1).order_by_fast_field::<u64>("seq", order);
        let hits = snapshot.searcher.search(&query, &collector)?;
        let has_more = hits.len() > limit;
        let seqs = hits.into_iter().take(limit).map(|(seq, _)| seq).collect();
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
