//! Checking watch streams against the committed history (DESIGN §12).
//!
//! A watch is judged against the events of the committed entries — the
//! reference, in `(revision, sub)` order, as the first node to apply each
//! entry produced them (every replica produces the same ones; the
//! simulator checks that the same command sits at the same index
//! everywhere). A watch that started at revision `s` and has received
//! frames up to revision `e` must have received exactly the reference's
//! events for its key or prefix with revisions in `[s, e]`: one frame per
//! revision that has any, in revision order, each event once, the frame's
//! events in `sub` order and equal to the reference's (the previous
//! key-value only when the watch asked for it). Reconnects do not start a
//! new stream: a watch that resumes on another node must continue without a
//! gap or a repeat. Only a `compacted` answer ends a watch, and it must be
//! needed: its oldest available revision must lie beyond the next revision
//! the watch was waiting for.

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;

use crate::kv::watch::{Event, Selector};

/// What one watch received, as the application saw it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct WatchLog {
    /// What it follows (`None` only for an empty default).
    pub selector: Option<Selector>,
    /// Its first revision.
    pub start: u64,
    /// Whether its events carry the previous key-value.
    pub prev_kv: bool,
    /// The frames received, in order: a revision and its events.
    pub frames: Vec<(u64, Vec<Event>)>,
    /// The watch ended with `compacted` and this oldest available revision.
    pub compacted: Option<u64>,
    /// Times it resumed on another node.
    pub reconnects: u32,
}

impl WatchLog {
    /// The last revision it has all events of (its start − 1 before any frame).
    pub fn last_complete(&self) -> u64 {
        self.frames.last().map_or(self.start.saturating_sub(1), |f| f.0)
    }
}

fn describe(sel: &Option<Selector>) -> String {
    match sel {
        Some(Selector::Key(k)) => format!("key {k:?}"),
        Some(Selector::Prefix(p)) => format!("prefix {p:?}"),
        None => String::from("nothing"),
    }
}

/// Checks one watch against the reference events (sorted by `(revision,
/// sub)`, covering at least every revision the watch received). Returns
/// what is wrong, in words.
pub fn check_watch(reference: &[Event], log: &WatchLog) -> Result<(), String> {
    let Some(sel) = &log.selector else { return Ok(()) };
    let what =
        format!("watch on {} from revision {} ({} reconnects)", describe(&log.selector), log.start, log.reconnects);
    let end = log.last_complete();
    // The reference's frames for this watch, up to what it received.
    let mut want: Vec<(u64, Vec<&Event>)> = Vec::new();
    let first = reference.partition_point(|e| e.revision < log.start);
    for e in reference[first..].iter().take_while(|e| e.revision <= end) {
        if !sel.matches(&e.kv.key) {
            continue;
        }
        match want.last_mut() {
            Some((r, evs)) if *r == e.revision => evs.push(e),
            _ => want.push((e.revision, alloc::vec![e])),
        }
    }
    let mut got = log.frames.iter();
    for (rev, evs) in &want {
        let Some((grev, gevs)) = got.next() else {
            return Err(format!("{what}: revision {rev} was never delivered"));
        };
        if grev > rev {
            return Err(format!("{what}: revision {rev} was skipped (next frame: {grev})"));
        }
        if grev < rev {
            return Err(format!("{what}: frame {grev} delivered but no committed event of it matches (or twice)"));
        }
        let same = gevs.len() == evs.len()
            && gevs.iter().zip(evs).all(|(g, w)| {
                let prev_ok = if log.prev_kv { g.prev == w.prev } else { g.prev.is_none() };
                g.revision == w.revision && g.sub == w.sub && g.kind == w.kind && g.kv == w.kv && prev_ok
            });
        if !same {
            return Err(format!("{what}: frame {rev} is {gevs:?}, the committed events are {evs:?}"));
        }
    }
    if let Some((grev, _)) = got.next() {
        return Err(format!("{what}: frame {grev} delivered twice or out of order"));
    }
    if let Some(oldest) = log.compacted {
        if oldest <= end + 1 {
            return Err(format!(
                "{what}: answered compacted (oldest {oldest}) though revision {} was available",
                end + 1
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kv::watch::EventKind;
    use crate::kv::KeyValue;
    use alloc::vec;

    fn ev(revision: u64, sub: u32, key: &str) -> Event {
        let kv = KeyValue {
            key: key.into(),
            value: "v".into(),
            create_revision: revision,
            mod_revision: revision,
            version: 1,
            lease: 0,
        };
        Event { revision, sub, kind: EventKind::Put, kv, prev: None }
    }

    fn log(frames: Vec<(u64, Vec<Event>)>) -> WatchLog {
        WatchLog { selector: Some(Selector::Prefix("a".into())), start: 2, frames, ..WatchLog::default() }
    }

    #[test]
    fn exactly_the_committed_events_in_order_each_once() {
        let reference =
            vec![ev(1, 0, "a1"), ev(2, 0, "a1"), ev(2, 1, "b"), ev(2, 2, "a2"), ev(4, 0, "a3"), ev(5, 0, "a1")];
        let good = log(vec![(2, vec![ev(2, 0, "a1"), ev(2, 2, "a2")]), (4, vec![ev(4, 0, "a3")])]);
        assert_eq!(check_watch(&reference, &good), Ok(()), "revision 5 is simply not delivered yet");
        let skipped = log(vec![(4, vec![ev(4, 0, "a3")])]);
        assert!(check_watch(&reference, &skipped).unwrap_err().contains("revision 2 was skipped"));
        let doubled = log(vec![(2, vec![ev(2, 0, "a1"), ev(2, 2, "a2")]), (2, vec![ev(2, 0, "a1"), ev(2, 2, "a2")])]);
        assert!(check_watch(&reference, &doubled).is_err());
        let partial = log(vec![(2, vec![ev(2, 0, "a1")])]);
        assert!(check_watch(&reference, &partial).unwrap_err().contains("frame 2"), "a revision is one whole frame");
        let invented = log(vec![(3, vec![ev(3, 0, "a9")])]);
        assert!(check_watch(&reference, &invented).is_err());
        let needless = WatchLog { compacted: Some(5), ..good.clone() };
        assert!(check_watch(&reference, &needless).unwrap_err().contains("available"));
        let fair = WatchLog { compacted: Some(6), ..good };
        assert_eq!(check_watch(&reference, &fair), Ok(()));
    }
}
