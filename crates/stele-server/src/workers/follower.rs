//! With a shared store, other nodes sign checkpoints too: a task takes up theirs every
//! interval, so every node serves the latest checkpoint of every log.

use super::checkpointer::{Published, Signed};
use std::sync::Arc;
use std::time::Duration;
use stele_store::LogStore;

/// With a shared store, other nodes sign checkpoints too: take up theirs every interval.
pub fn follow_checkpoints(store: Arc<dyn LogStore>, published: Arc<Published>, every: Duration) {
    tokio::spawn(async move {
        let mut ticks = tokio::time::interval(every);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            ticks.tick().await;
            let store = store.clone();
            let Ok(Ok(latest)) =
                tokio::task::spawn_blocking(move || store.latest_checkpoints()).await
            else {
                continue;
            };
            let signed = latest
                .iter()
                .filter_map(|c| Signed::from_stored(c).ok().map(|s| (c.tenant.clone(), s)))
                .collect();
            published.publish(signed);
        }
    });
}
