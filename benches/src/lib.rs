//! Criterion benches on raft-core: not written yet, see issue 7.
