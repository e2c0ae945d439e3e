//! API keys at run time: the keys of the store held in memory (reloaded every
//! `auth.refresh_ms`, so that a revocation on another node takes effect here), checking a
//! request's bearer token, per-key rate limits, last-use times, the bootstrap admin key,
//! and the key operations the HTTP API and `stele keys` share.
//!
//! A secret is never logged, returned after creation, or stored: the store holds the
//! record of [`stele_auth::KeyRecord`], with a SHA-256 of the secret.

use anyhow::Context;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};
use stele_auth::{ApiKey, Denied, KeyRecord, NewKey, Role, Scope};
use stele_core::Timestamp;
use stele_store::{LogStore, MetaStore};

/// Records of this kind are API keys, by key id.
pub const KEY_RECORDS: &str = "api_key";
/// Records of this kind hold a key's last use (`{"last_used_at": …}`), apart from the key
/// record so that a node writing a use never undoes another node's revocation.
pub const USE_RECORDS: &str = "api_key.last_used";
/// The file the first admin key is written to, in the data directory.
pub const BOOTSTRAP_FILE: &str = "bootstrap-admin.key";
/// The setting naming the bootstrap key once one was made (by whichever node was first).
const BOOTSTRAP_SETTING: &str = "auth.bootstrap_key_id";

/// A key as listed: its record without the secret's hash, and when it was last used.
#[derive(Debug, Clone, serde::Serialize)]
pub struct KeyView {
    pub id: String,
    pub name: String,
    pub role: Role,
    pub scope: Scope,
    pub created_at: Timestamp,
    pub expires_at: Option<Timestamp>,
    pub revoked_at: Option<Timestamp>,
    pub last_used_at: Option<Timestamp>,
}

impl KeyView {
    fn of(record: &KeyRecord, last_used_at: Option<Timestamp>) -> KeyView {
        KeyView {
            id: record.id.clone(),
            name: record.name.clone(),
            role: record.role,
            scope: record.scope.clone(),
            created_at: record.created_at,
            expires_at: record.expires_at,
            revoked_at: record.revoked_at,
            last_used_at,
        }
    }
}

pub fn now() -> Timestamp {
    Timestamp::from_datetime(time::OffsetDateTime::now_utc()).expect("the clock is in range")
}

/// Every stored key.
pub fn load_keys(meta: &dyn MetaStore) -> anyhow::Result<Vec<KeyRecord>> {
    meta.records(KEY_RECORDS)?
        .into_iter()
        .map(|(id, json)| {
            serde_json::from_str(&json)
                .with_context(|| format!("stored API key {id} is unreadable"))
        })
        .collect()
}

/// A use record's time.
fn last_used(json: &str) -> Option<Timestamp> {
    let v: serde_json::Value = serde_json::from_str(json).ok()?;
    Timestamp::parse(v["last_used_at"].as_str()?).ok()
}

/// Key `id` as listed, with its last use; `None` if there is no such key.
pub fn key_view(meta: &dyn MetaStore, id: &str) -> anyhow::Result<Option<KeyView>> {
    let Some(json) = meta.record(KEY_RECORDS, id)? else {
        return Ok(None);
    };
    let record: KeyRecord = serde_json::from_str(&json)
        .with_context(|| format!("stored API key {id} is unreadable"))?;
    let used = meta.record(USE_RECORDS, id)?.as_deref().and_then(last_used);
    Ok(Some(KeyView::of(&record, used)))
}

/// Keys as listed, with their last use.
pub fn list_keys(meta: &dyn MetaStore) -> anyhow::Result<Vec<KeyView>> {
    let used: HashMap<String, Timestamp> = meta
        .records(USE_RECORDS)?
        .into_iter()
        .filter_map(|(id, json)| Some((id, last_used(&json)?)))
        .collect();
    Ok(load_keys(meta)?
        .iter()
        .map(|r| KeyView::of(r, used.get(&r.id).copied()))
        .collect())
}

/// Makes and stores a key; answers the key (to show once) and its record.
pub fn create_key(meta: &dyn MetaStore, request: &NewKey) -> anyhow::Result<(ApiKey, KeyRecord)> {
    request.validate().map_err(anyhow::Error::msg)?;
    loop {
        let (key, record) = request.issue(now())?;
        // 64 random bits of id: a collision is all but impossible, and refused if it happens.
        if meta.insert_record(KEY_RECORDS, &record.id, &serde_json::to_string(&record)?)? {
            return Ok((key, record));
        }
    }
}

/// Revokes key `id` (from now on); answers it, or `None` if there is no such key. Revoking
/// a revoked key keeps its first revocation time.
pub fn revoke_key(meta: &dyn MetaStore, id: &str) -> anyhow::Result<Option<KeyRecord>> {
    let Some(json) = meta.record(KEY_RECORDS, id)? else {
        return Ok(None);
    };
    let mut record: KeyRecord = serde_json::from_str(&json)?;
    if record.revoked_at.is_none() {
        record.revoked_at = Some(now());
        meta.put_record(KEY_RECORDS, id, &serde_json::to_string(&record)?)?;
    }
    Ok(Some(record))
}

/// On first start with no key at all: makes an admin key of every tenant and writes it to
/// `DATA/bootstrap-admin.key` (mode 0600). Answers the file's path when it made one. With
/// several nodes on one store, only the first makes one.
pub fn bootstrap(meta: &dyn MetaStore, data: &Path) -> anyhow::Result<Option<PathBuf>> {
    if !meta.records(KEY_RECORDS)?.is_empty() || meta.setting(BOOTSTRAP_SETTING)?.is_some() {
        return Ok(None);
    }
    let request = NewKey {
        name: "bootstrap admin".into(),
        role: Role::Admin,
        scope: Scope::All,
        expires_at: None,
    };
    let (key, record) = request.issue(now())?;
    if meta.init_setting(BOOTSTRAP_SETTING, &record.id)? != record.id {
        return Ok(None);
    }
    let path = data.join(BOOTSTRAP_FILE);
    write_secret_file(&path, &format!("{}\n", key.expose()))?;
    meta.insert_record(KEY_RECORDS, &record.id, &serde_json::to_string(&record)?)?;
    Ok(Some(path))
}

/// Writes `text` to a new file readable by its owner only.
fn write_secret_file(path: &Path, text: &str) -> anyhow::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("creating {}", path.display()))?;
    file.write_all(text.as_bytes())?;
    file.sync_all()?;
    Ok(())
}

/// The keys held in memory, and what this node tracks of their use.
pub struct KeyRing {
    store: Arc<dyn LogStore>,
    keys: RwLock<HashMap<String, Arc<KeyRecord>>>,
    /// Uses not yet written to the store.
    used: Mutex<HashMap<String, Timestamp>>,
    buckets: Mutex<HashMap<String, Bucket>>,
    rate: f64,
    burst: f64,
    /// Failed authentications recorded per client address, so that a scanner cannot fill
    /// the meta-audit log: a bucket of `FAILURES_BURST`, refilled `FAILURES_PER_SECOND`.
    failures: Mutex<HashMap<std::net::IpAddr, Bucket>>,
    /// Heavy reads in progress, per key.
    reading: Mutex<HashMap<String, Arc<tokio::sync::Semaphore>>>,
    max_reads: usize,
}

/// Failed authentications recorded per client address and second, on average.
const FAILURES_PER_SECOND: f64 = 10.0;
/// And at once.
const FAILURES_BURST: f64 = 100.0;
/// Addresses tracked at most; beyond, the table starts over.
const FAILURE_ADDRESSES: usize = 100_000;

/// Why a request was refused before its handler ran.
#[derive(Debug)]
pub enum Refusal {
    Denied(Denied),
    /// Over the key's rate: retry after this long.
    Limited(Duration),
}

impl KeyRing {
    pub fn load(
        store: Arc<dyn LogStore>,
        limits: &crate::config::AuthConfig,
    ) -> anyhow::Result<KeyRing> {
        let ring = KeyRing {
            store,
            keys: RwLock::default(),
            used: Mutex::default(),
            buckets: Mutex::default(),
            rate: f64::from(limits.requests_per_second),
            burst: f64::from(limits.burst),
            failures: Mutex::default(),
            reading: Mutex::default(),
            max_reads: limits.max_concurrent_reads,
        };
        ring.reload()?;
        Ok(ring)
    }

    /// Reads every key from the store again.
    pub fn reload(&self) -> anyhow::Result<()> {
        let keys = load_keys(self.store.meta())?
            .into_iter()
            .map(|r| (r.id.clone(), Arc::new(r)))
            .collect();
        *self.keys.write().expect("keys poisoned") = keys;
        Ok(())
    }

    /// Takes a key just created or revoked here into account at once.
    pub fn put(&self, record: KeyRecord) {
        self.keys
            .write()
            .expect("keys poisoned")
            .insert(record.id.clone(), Arc::new(record));
    }

    /// Writes the uses seen since the last call to the store.
    pub fn flush_uses(&self) -> anyhow::Result<()> {
        let used = std::mem::take(&mut *self.used.lock().expect("uses poisoned"));
        for (id, at) in used {
            let value = serde_json::json!({ "last_used_at": at }).to_string();
            self.store.meta().put_record(USE_RECORDS, &id, &value)?;
        }
        Ok(())
    }

    /// Reloads the keys and writes their uses every `every`, on a thread of its own (store
    /// calls block), until the process ends.
    pub fn keep_fresh(self: &Arc<Self>, every: Duration) -> std::io::Result<()> {
        let ring = Arc::downgrade(self);
        std::thread::Builder::new()
            .name("stele-keys".into())
            .spawn(move || {
                let mut flushed = Instant::now();
                loop {
                    std::thread::sleep(every);
                    let Some(ring) = ring.upgrade() else { return };
                    if let Err(e) = ring.reload() {
                        tracing::warn!(error = %e, "reloading the API keys failed");
                    }
                    if flushed.elapsed() >= Duration::from_secs(5) {
                        flushed = Instant::now();
                        if let Err(e) = ring.flush_uses() {
                            tracing::warn!(error = %e, "recording API key use failed");
                        }
                    }
                }
            })
            .map(|_| ())
    }

    /// The key a request's `Authorization` header names, if it is one of ours, usable, and
    /// within its rate. The header's text is never logged or repeated.
    pub fn authenticate(
        &self,
        header: Option<&str>,
        now: Timestamp,
    ) -> Result<Arc<KeyRecord>, Refusal> {
        const INVALID: &str = "missing or invalid API key";
        let denied = |reason| Refusal::Denied(Denied::Unauthenticated(reason));
        let Some(token) = header.and_then(|h| {
            let (scheme, token) = h.split_once(' ')?;
            scheme.eq_ignore_ascii_case("bearer").then_some(token)
        }) else {
            return Err(denied(INVALID));
        };
        let key = ApiKey::parse(token).map_err(|_| denied(INVALID))?;
        let record = self
            .keys
            .read()
            .expect("keys poisoned")
            .get(key.id())
            .cloned();
        let Some(record) = record.filter(|r| key.matches(r)) else {
            return Err(denied(INVALID));
        };
        if let Some(reason) = record.unusable(now) {
            return Err(denied(reason));
        }
        self.take_token(&record.id)?;
        self.used
            .lock()
            .expect("uses poisoned")
            .insert(record.id.clone(), now);
        Ok(record)
    }

    /// The key id a header names, if it is shaped like a key (for the meta-audit of a
    /// failed attempt: the id only, never the secret).
    pub fn claimed_id(header: Option<&str>) -> Option<String> {
        let token = header?.split_once(' ')?.1;
        ApiKey::parse(token).ok().map(|k| k.id().to_string())
    }

    fn take_token(&self, id: &str) -> Result<(), Refusal> {
        if self.rate <= 0.0 {
            return Ok(());
        }
        let mut buckets = self.buckets.lock().expect("buckets poisoned");
        let bucket = buckets
            .entry(id.to_string())
            .or_insert_with(|| Bucket::full(self.burst));
        bucket.take(self.rate, self.burst).map_err(Refusal::Limited)
    }

    /// A place for one more heavy read by key `id`, held until the answer is made; `None`
    /// when the key has `auth.max_concurrent_reads` in progress.
    pub fn start_read(&self, id: &str) -> Option<tokio::sync::OwnedSemaphorePermit> {
        let semaphore = self
            .reading
            .lock()
            .expect("reads poisoned")
            .entry(id.to_string())
            .or_insert_with(|| Arc::new(tokio::sync::Semaphore::new(self.max_reads)))
            .clone();
        semaphore.try_acquire_owned().ok()
    }

    /// Whether a failed authentication from `ip` is to be recorded in the meta-audit log
    /// (at most `FAILURES_PER_SECOND` per address on average); the others are counted.
    pub fn record_failure_from(&self, ip: Option<std::net::IpAddr>) -> bool {
        let Some(ip) = ip else { return true };
        let mut failures = self.failures.lock().expect("failures poisoned");
        if failures.len() >= FAILURE_ADDRESSES && !failures.contains_key(&ip) {
            failures.clear();
        }
        let bucket = failures
            .entry(ip)
            .or_insert_with(|| Bucket::full(FAILURES_BURST));
        bucket.take(FAILURES_PER_SECOND, FAILURES_BURST).is_ok()
    }
}

/// A token bucket.
struct Bucket {
    tokens: f64,
    at: Instant,
}

impl Bucket {
    fn full(burst: f64) -> Bucket {
        Bucket {
            tokens: burst,
            at: Instant::now(),
        }
    }

    /// Takes a token, refilled at `rate` a second up to `burst`; or how long until one is
    /// there.
    fn take(&mut self, rate: f64, burst: f64) -> Result<(), Duration> {
        let now = Instant::now();
        self.tokens = (self.tokens + now.duration_since(self.at).as_secs_f64() * rate).min(burst);
        self.at = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            Ok(())
        } else {
            Err(Duration::from_secs_f64((1.0 - self.tokens) / rate))
        }
    }
}

/// Who is making a request, as the guard established it (a request extension).
#[derive(Debug, Clone)]
pub enum Caller {
    Key(Arc<KeyRecord>),
    /// `--insecure-no-auth`: anyone, with every right.
    Insecure,
}

impl Caller {
    /// May this caller use `permission` on `tenant`?
    pub fn authorize(
        &self,
        permission: stele_auth::Permission,
        tenant: Option<&str>,
    ) -> Result<(), Denied> {
        match self {
            Caller::Insecure => Ok(()),
            Caller::Key(key) => stele_auth::authorize(key, permission, tenant, now()),
        }
    }

    /// Whether this caller may read `tenant` (what `GET /v1/logs` lists).
    pub fn may_read(&self, tenant: &str) -> bool {
        self.authorize(stele_auth::Permission::Read, Some(tenant))
            .is_ok()
    }
}
