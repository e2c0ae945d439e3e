//! The derived search index: a tantivy index fed by an indexer that tails the log store in
//! `seq` order, and the query execution that turns filters into `seq` lists.
//!
//! Invariant: the index is never the source of truth. Each commit records, per log, how far
//! it has indexed; after a crash it resumes from there, and it can always be rebuilt.

mod audit;
mod indexer;
mod order;
mod query;
mod schema;

pub use audit::{IndexAudit, IndexProblem};
pub use indexer::{Indexer, IndexerOptions, Notifier, catch_up, lower_thread_priority};
pub use query::{ActionFilter, EventQuery, SearchPage};

use schema::Fields;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use tantivy::{Index, IndexReader, ReloadPolicy, Searcher};

/// Bumped whenever the indexed fields change; an index of another version is rebuilt.
const SCHEMA_VERSION: u32 = 4;

#[derive(Debug, thiserror::Error)]
pub enum IndexError {
    #[error("search index: {0}")]
    Tantivy(#[from] tantivy::TantivyError),
    #[error("search index: {0}")]
    Io(#[from] std::io::Error),
    #[error("log store: {0}")]
    Store(#[from] stele_store::StoreError),
    #[error("search index: unreadable event {tenant}/{seq}: {reason}")]
    BadEvent {
        tenant: String,
        seq: u64,
        reason: String,
    },
}

pub type Result<T, E = IndexError> = std::result::Result<T, E>;

/// How far each log is indexed: the number of its events in the index (its next `seq`).
pub type Progress = BTreeMap<String, u64>;

/// A searcher together with exactly the progress it reflects.
struct Snapshot {
    searcher: Searcher,
    progress: Progress,
    /// The `pos` the next document gets (all documents of the snapshot have smaller ones).
    next_pos: u64,
    /// Per segment of the searcher (by ordinal): its documents are in `pos` order, so a
    /// listing can seek in it instead of visiting every match.
    ordered: Vec<bool>,
}

/// The search index of one Stele node, in its data directory.
pub struct SearchIndex {
    dir: PathBuf,
    index: Index,
    reader: IndexReader,
    fields: Fields,
    snapshot: RwLock<Arc<Snapshot>>,
    /// Whether each segment seen so far is in `pos` order (segments never change).
    ordered: order::OrderCache,
}

#[derive(serde::Serialize, serde::Deserialize)]
struct CommitPayload {
    schema: u32,
    logs: Progress,
    /// The `pos` the next document gets.
    next_pos: u64,
}

impl SearchIndex {
    /// Opens the index in `dir`, creating it if absent. An index that cannot be opened, or
    /// was built with another schema, is discarded and rebuilt by the indexer from scratch.
    pub fn open(dir: &Path) -> Result<Arc<SearchIndex>> {
        match Self::try_open(dir) {
            Ok(index) => Ok(index),
            Err(e) => {
                tracing::warn!(error = %e, dir = %dir.display(), "search index unusable; rebuilding it");
                Self::wipe(dir)?;
                Self::try_open(dir)
            }
        }
    }

    /// Opens an existing index as it is, never discarding it: for checking it.
    pub fn open_read_only(dir: &Path) -> Result<Arc<SearchIndex>> {
        if !dir.join("meta.json").exists() {
            return Err(IndexError::Io(std::io::Error::other(format!(
                "no search index in {}",
                dir.display()
            ))));
        }
        Self::try_open(dir)
    }

    /// Deletes the index in `dir`; the next open starts empty.
    pub fn wipe(dir: &Path) -> Result<()> {
        match std::fs::remove_dir_all(dir) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e.into()),
            _ => Ok(()),
        }
    }

    /// Fails if another process (a running server) holds the index open for writing.
    pub fn ensure_unused(dir: &Path) -> Result<()> {
        if !dir.join("meta.json").exists() {
            return Ok(());
        }
        let index = Index::open_in_dir(dir)?;
        let writer: tantivy::IndexWriter = index.writer_with_num_threads(1, 15_000_000)?;
        drop(writer);
        Ok(())
    }

    fn try_open(dir: &Path) -> Result<Arc<SearchIndex>> {
        std::fs::create_dir_all(dir)?;
        let (schema, fields) = schema::build();
        let directory = tantivy::directory::MmapDirectory::open(dir)
            .map_err(|e| IndexError::Io(std::io::Error::other(e.to_string())))?;
        let index = Index::open_or_create(directory, schema.clone())?;
        if index.schema() != schema {
            return Err(IndexError::Io(std::io::Error::other("schema differs")));
        }
        let (progress, next_pos) = match index.load_metas()?.payload {
            None => (Progress::new(), 0),
            Some(text) => match serde_json::from_str::<CommitPayload>(&text) {
                Ok(p) if p.schema == SCHEMA_VERSION => (p.logs, p.next_pos),
                _ => {
                    return Err(IndexError::Io(std::io::Error::other(
                        "unknown commit payload",
                    )));
                }
            },
        };
        let reader = index
            .reader_builder()
            .reload_policy(ReloadPolicy::Manual)
            .try_into()?;
        let ordered = order::OrderCache::default();
        let searcher = reader.searcher();
        let snapshot = Snapshot {
            ordered: ordered.of(&searcher)?,
            searcher,
            progress,
            next_pos,
        };
        Ok(Arc::new(SearchIndex {
            dir: dir.to_path_buf(),
            index,
            reader,
            fields,
            snapshot: RwLock::new(Arc::new(snapshot)),
            ordered,
        }))
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn snapshot(&self) -> Arc<Snapshot> {
        self.snapshot
            .read()
            .expect("snapshot lock poisoned")
            .clone()
    }

    /// Publishes what the last commit made searchable. Runs on the indexer's thread, which
    /// also checks the order of new segments here, so that no query pays for it.
    fn publish(&self, progress: Progress, next_pos: u64) -> Result<()> {
        self.reader.reload()?;
        let searcher = self.reader.searcher();
        let snapshot = Arc::new(Snapshot {
            ordered: self.ordered.of(&searcher)?,
            searcher,
            progress,
            next_pos,
        });
        *self.snapshot.write().expect("snapshot lock poisoned") = snapshot;
        Ok(())
    }

    /// The searchable segments, and how many of them hold their documents in order (the
    /// others, which only an index changed by hand has, are scanned by listings).
    pub fn segments_in_order(&self) -> (usize, usize) {
        let snapshot = self.snapshot();
        let ordered = snapshot.ordered.iter().filter(|&&o| o).count();
        (snapshot.ordered.len(), ordered)
    }

    /// How far each log is searchable.
    pub fn progress(&self) -> Progress {
        self.snapshot().progress.clone()
    }

    /// The last `seq` of `tenant` that is searchable, if any.
    pub fn indexed_through(&self, tenant: &str) -> Option<u64> {
        self.snapshot()
            .progress
            .get(tenant)
            .and_then(|n| n.checked_sub(1))
    }
}
