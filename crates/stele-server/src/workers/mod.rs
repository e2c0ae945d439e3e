//! Background work of the runtime beside the request handlers: the checkpointer (on the
//! writer's thread) and, with a shared store, the follower of other nodes' checkpoints.
//! The indexer is `stele-index`'s; later rooms add the purger and the alert evaluator.

pub mod checkpointer;
pub mod follower;
