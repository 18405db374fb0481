//! Linearizability checking for key-value histories (placeholder types while
//! the search is being integrated).

use crate::kv::{KvOp, KvOutput};

/// How an operation ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Took effect once, with this output.
    Ok(KvOutput),
    /// Never took effect.
    Failed,
    /// May have taken effect at any time after its call, or never.
    Unknown,
}

/// One operation of a history.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Operation {
    /// Which client issued it.
    pub client: u64,
    /// What it did.
    pub op: KvOp,
    /// Invocation time.
    pub call: u64,
    /// Return time.
    pub ret: u64,
    /// How it ended.
    pub outcome: Outcome,
}
