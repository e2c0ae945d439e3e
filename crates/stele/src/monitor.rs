//! `stele verify --url`: a monitor. It reads a server the way any tlog client would
//! (checkpoint, tiles, entry bundles, consistency proofs), checks everything against the
//! verifier key, and remembers the last good checkpoint of each log in a state file, so
//! that a rewritten, forked or truncated history is caught on the next run.

use crate::report::{Problems, Summary};
use anyhow::{Context, bail};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use stele_core::Event;
use stele_tlog::leaf_hash;
use stele_tlog::merkle::{NodeHash, verify_consistency, verify_inclusion};
use stele_tlog::note::{Checkpoint, VerifierKey, verify_checkpoint};
use stele_tlog::proof::decode_hashes;
use stele_tlog::tiles::{Tile, TileId, TileReader, split_entry_bundle};

/// A log's last verified checkpoint, as remembered between runs.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Remembered {
    pub size: u64,
    /// Base64 root hash.
    pub root: String,
    pub note: String,
}

#[derive(Debug, Default, Serialize, Deserialize)]
pub struct State {
    /// Key name of the verifier the state was built with.
    pub key: Option<String>,
    pub logs: BTreeMap<String, Remembered>,
}

impl State {
    pub fn load(path: &Path) -> anyhow::Result<State> {
        match std::fs::read(path) {
            Ok(bytes) => serde_json::from_slice(&bytes)
                .with_context(|| format!("the state file {} is unreadable", path.display())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(State::default()),
            Err(e) => Err(e).with_context(|| format!("reading {}", path.display())),
        }
    }

    /// Replaces the file atomically, so a crash never leaves half a state.
    pub fn save(&self, path: &Path) -> anyhow::Result<()> {
        let tmp = path.with_extension("tmp");
        std::fs::write(&tmp, serde_json::to_vec_pretty(self)?)?;
        std::fs::File::open(&tmp)?.sync_all()?;
        std::fs::rename(&tmp, path).with_context(|| format!("writing {}", path.display()))?;
        Ok(())
    }
}

pub struct Monitor {
    http: reqwest::Client,
    base: String,
    key: VerifierKey,
    samples: usize,
}

impl Monitor {
    pub fn new(url: &str, key: VerifierKey, samples: usize, http: reqwest::Client) -> Monitor {
        Monitor {
            http,
            base: url.trim_end_matches('/').to_string(),
            key,
            samples,
        }
    }

    async fn get(&self, path: &str) -> anyhow::Result<Option<reqwest::Response>> {
        let url = format!("{}{path}", self.base);
        let response = self
            .http
            .get(&url)
            .send()
            .await
            .with_context(|| format!("GET {url}"))?;
        if response.status() == reqwest::StatusCode::NOT_FOUND {
            return Ok(None);
        }
        if !response.status().is_success() {
            bail!("GET {url}: {}", response.status());
        }
        Ok(Some(response))
    }

    async fn bytes(&self, path: &str) -> anyhow::Result<Option<Vec<u8>>> {
        match self.get(path).await? {
            Some(r) => Ok(Some(r.bytes().await?.to_vec())),
            None => Ok(None),
        }
    }

    /// The logs to check: `only`, or every log the server lists.
    pub async fn tenants(&self, only: Option<&str>) -> anyhow::Result<Vec<String>> {
        if let Some(t) = only {
            return Ok(vec![t.to_string()]);
        }
        let mut tenants = Vec::new();
        let mut path = "/v1/logs?limit=1000".to_string();
        loop {
            let page: stele_api::LogList = self
                .get(&path)
                .await?
                .context("the server has no /v1/logs")?
                .json()
                .await?;
            tenants.extend(page.logs.into_iter().map(|l| l.tenant));
            match page.next_cursor {
                Some(cursor) => path = format!("/v1/logs?limit=1000&cursor={cursor}"),
                None => return Ok(tenants),
            }
        }
    }

    /// Checks one log; on success returns its checkpoint to remember.
    pub async fn check_log(
        &self,
        tenant: &str,
        previous: Option<&Remembered>,
        problems: &mut Problems,
        summary: &mut Summary,
    ) -> anyhow::Result<Option<Remembered>> {
        let before = problems.len();
        let Some(note) = self.bytes(&format!("/v1/logs/{tenant}/checkpoint")).await? else {
            if previous.is_some() {
                problems.add(
                    tenant,
                    "checkpoint",
                    "the server no longer has a checkpoint for this log",
                );
            } else {
                // A log newer than the checkpoint interval: nothing to check yet.
                summary.notes.push(format!(
                    "log {tenant}: not signed yet; checked on a later run"
                ));
            }
            return Ok(None);
        };
        let note = String::from_utf8(note).unwrap_or_default();
        summary.checkpoints += 1;
        let checkpoint = match verify_checkpoint(&note, &self.key) {
            Ok(cp) => cp,
            Err(e) => {
                problems.add(
                    tenant,
                    "checkpoint",
                    format!("not signed by {}: {e}", self.key.name()),
                );
                return Ok(None);
            }
        };
        if !checkpoint.origin.ends_with(&format!("/{tenant}")) {
            problems.add(
                tenant,
                "checkpoint",
                format!("origin `{}` is not this log's", checkpoint.origin),
            );
            return Ok(None);
        }
        if let Some(previous) = previous {
            self.check_consistency(tenant, previous, &checkpoint, problems)
                .await?;
        }
        self.spot_check(tenant, &checkpoint, problems, summary)
            .await?;
        summary.logs += 1;
        summary.events += checkpoint.size;
        if problems.len() > before {
            return Ok(None);
        }
        Ok(Some(Remembered {
            size: checkpoint.size,
            root: checkpoint.root.to_base64(),
            note,
        }))
    }

    async fn check_consistency(
        &self,
        tenant: &str,
        previous: &Remembered,
        now: &Checkpoint,
        problems: &mut Problems,
    ) -> anyhow::Result<()> {
        let place = format!("checkpoint {} → {}", previous.size, now.size);
        let Some(old_root) = NodeHash::from_base64(&previous.root) else {
            bail!("the state file holds a malformed root for log {tenant}");
        };
        if now.size < previous.size {
            problems.add(
                tenant,
                &place,
                format!(
                    "the log shrank from {} to {} events: history was truncated or rewritten",
                    previous.size, now.size
                ),
            );
            return Ok(());
        }
        let proof = if now.size == previous.size || previous.size == 0 {
            Vec::new()
        } else {
            let path = format!(
                "/v1/logs/{tenant}/proof/consistency?from={}&to={}",
                previous.size, now.size
            );
            let Some(answer) = self.get(&path).await? else {
                problems.add(tenant, &place, "the server gives no consistency proof");
                return Ok(());
            };
            let answer: stele_api::ConsistencyProof = answer.json().await?;
            match decode_hashes(&answer.consistency) {
                Ok(p) => p,
                Err(_) => {
                    problems.add(tenant, &place, "the consistency proof is malformed");
                    return Ok(());
                }
            }
        };
        if !verify_consistency(previous.size, now.size, old_root, now.root, &proof) {
            problems.add(
                tenant,
                &place,
                "the new checkpoint does not extend the remembered one: history was rewritten or forked",
            );
        }
        Ok(())
    }

    /// Recomputes the leaf hashes of a sample of entries and checks their inclusion in the
    /// checkpoint through proofs built from the served tiles.
    async fn spot_check(
        &self,
        tenant: &str,
        checkpoint: &Checkpoint,
        problems: &mut Problems,
        summary: &mut Summary,
    ) -> anyhow::Result<()> {
        let size = checkpoint.size;
        if size == 0 {
            return Ok(());
        }
        let indices = sample(size, self.samples)?;
        let tiles = self.fetch_tiles(tenant, size, &indices, problems).await?;
        summary.tiles += tiles.len() as u64;
        let mut reader = TileReader::new(size, |id: TileId| tiles.get(&id).cloned().ok_or(()));
        let mut bundles: HashMap<TileId, Option<Vec<Vec<u8>>>> = HashMap::new();
        for index in indices {
            let place = format!("seq {index}");
            let Some(id) = TileId::in_tree(size, 0, index / 256) else {
                continue;
            };
            if let std::collections::hash_map::Entry::Vacant(slot) = bundles.entry(id) {
                let bundle = self
                    .bytes(&format!("/v1/logs/{tenant}/{}", id.entries_path()))
                    .await?;
                slot.insert(bundle.and_then(|b| split_entry_bundle(&b)));
            }
            let Some(Some(entries)) = bundles.get(&id) else {
                problems.add(
                    tenant,
                    &id.entries_path(),
                    "missing or malformed entry bundle",
                );
                continue;
            };
            let Some(entry) = entries.get((index % 256) as usize) else {
                problems.add(tenant, &id.entries_path(), "the bundle is short");
                continue;
            };
            match Event::from_stored(entry) {
                Ok(e) if e.seq == Some(index) && e.tenant.as_deref() == Some(tenant) => {}
                Ok(e) => problems.add(
                    tenant,
                    &place,
                    format!("the entry says seq {:?} of log {:?}", e.seq, e.tenant),
                ),
                Err(e) => problems.add(tenant, &place, format!("unreadable entry: {e}")),
            }
            let Ok(path) = reader.inclusion_proof(index) else {
                continue; // a missing tile is already reported
            };
            summary.proofs += 1;
            let leaf: NodeHash = leaf_hash(entry).into();
            if !verify_inclusion(leaf, index, size, &path, checkpoint.root) {
                problems.add(
                    tenant,
                    &place,
                    "the entry is not included in the signed tree (inclusion proof fails)",
                );
            }
        }
        Ok(())
    }

    /// Fetches every tile the inclusion proofs of `indices` need (`TileReader` itself is
    /// synchronous: a first pass with placeholder tiles names them); a missing or short
    /// tile is a problem.
    async fn fetch_tiles(
        &self,
        tenant: &str,
        size: u64,
        indices: &[u64],
        problems: &mut Problems,
    ) -> anyhow::Result<HashMap<TileId, Tile>> {
        let mut tiles: HashMap<TileId, Tile> = HashMap::new();
        let mut wanted = Vec::new();
        {
            let mut reader = TileReader::new(size, |id: TileId| {
                wanted.push(id);
                Ok::<_, ()>(Tile {
                    level: id.level,
                    index: id.index,
                    hashes: vec![0; 32 * usize::from(id.width)],
                })
            });
            for &i in indices {
                let _ = reader.inclusion_proof(i);
            }
        }
        for id in wanted {
            match self
                .bytes(&format!("/v1/logs/{tenant}/{}", id.path()))
                .await?
            {
                Some(hashes) if hashes.len() == 32 * usize::from(id.width) => {
                    tiles.insert(
                        id,
                        Tile {
                            level: id.level,
                            index: id.index,
                            hashes,
                        },
                    );
                }
                Some(_) => problems.add(tenant, &id.path(), "the served tile has the wrong length"),
                None => problems.add(tenant, &id.path(), "the server does not serve this tile"),
            }
        }
        Ok(tiles)
    }
}

/// Up to `n` distinct leaf indices below `size`: the first, the last, and random ones.
fn sample(size: u64, n: usize) -> anyhow::Result<Vec<u64>> {
    let mut seed = [0u8; 8];
    getrandom::getrandom(&mut seed).context("reading the system random source")?;
    let mut x = u64::from_le_bytes(seed) | 1;
    let mut picked = std::collections::BTreeSet::from([0, size - 1]);
    let n = n.min(usize::try_from(size).unwrap_or(usize::MAX)).max(1);
    while picked.len() < n {
        // xorshift64: sampling needs spread, not secrecy.
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        picked.insert(x % size);
    }
    Ok(picked.into_iter().collect())
}
