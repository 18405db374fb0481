//! Leases: a TTL in cluster time, the keys attached, and the order in which
//! they expire.
//!
//! A lease is granted by a `LeaseGrant` entry and named by that entry's
//! index, so every replica gives it the same id and a retried grant (the same
//! session and seq) finds the first one's reply instead of a second lease.
//! Its TTL is given in milliseconds and kept in ticks of cluster time
//! (rounded up, with the cluster's tick length, [`super::KvLimits::tick_ms`]);
//! its deadline is the cluster time of the entry that granted or last kept
//! it alive plus that many ticks. Expiry is decided at apply time: before each
//! entry's command, once the clock has advanced to the entry's time, every
//! lease whose deadline the clock reached ends (earliest deadline first, ties
//! by id) and its keys are deleted (in key order) — the same keys at the same
//! log position on every replica.
//!
//! Cluster time moves only with entries, so a leader appends a no-op (which
//! carries the time) once its clock passes the earliest deadline
//! ([`crate::StateMachine::next_deadline`]): an idle cluster still expires
//! leases.

use alloc::collections::{BTreeMap, BTreeSet};
use alloc::string::String;
use alloc::vec::Vec;

/// One lease.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Lease {
    /// Its id (the index of its grant).
    pub id: u64,
    /// Its TTL in milliseconds, as granted.
    pub ttl: u64,
    /// The same in ticks of cluster time (rounded up).
    pub ticks: u64,
    /// Cluster time at which it expires.
    pub deadline: u64,
    /// The keys attached to it.
    pub keys: BTreeSet<String>,
}

/// The live leases.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Leases {
    table: BTreeMap<u64, Lease>,
    /// (deadline, id), to find the next to expire without a scan.
    by_deadline: BTreeSet<(u64, u64)>,
}

impl Leases {
    /// Live leases.
    pub fn len(&self) -> usize {
        self.table.len()
    }

    /// Whether none is live.
    pub fn is_empty(&self) -> bool {
        self.table.is_empty()
    }

    /// A lease, if live.
    pub fn get(&self, id: u64) -> Option<&Lease> {
        self.table.get(&id)
    }

    /// Every live lease, by id.
    pub fn iter(&self) -> impl Iterator<Item = &Lease> {
        self.table.values()
    }

    /// Starts lease `id` (TTL `ttl` ms, `ticks` ticks) at cluster time `clock`.
    pub fn grant(&mut self, id: u64, ttl: u64, ticks: u64, clock: u64) {
        let deadline = clock.saturating_add(ticks);
        self.by_deadline.insert((deadline, id));
        self.table.insert(id, Lease { id, ttl, ticks, deadline, keys: BTreeSet::new() });
    }

    /// Restarts lease `id`'s TTL at `clock`; its TTL if it is live.
    pub fn keep_alive(&mut self, id: u64, clock: u64) -> Option<u64> {
        let l = self.table.get_mut(&id)?;
        self.by_deadline.remove(&(l.deadline, id));
        l.deadline = clock.saturating_add(l.ticks);
        self.by_deadline.insert((l.deadline, id));
        Some(l.ttl)
    }

    /// Ends lease `id`, returning it (with its keys, which the caller deletes).
    pub fn remove(&mut self, id: u64) -> Option<Lease> {
        let l = self.table.remove(&id)?;
        self.by_deadline.remove(&(l.deadline, id));
        Some(l)
    }

    /// Attaches `key` to lease `id` (which must be live).
    pub fn attach(&mut self, id: u64, key: &str) {
        if let Some(l) = self.table.get_mut(&id) {
            l.keys.insert(String::from(key));
        }
    }

    /// Detaches `key` from lease `id`.
    pub fn detach(&mut self, id: u64, key: &str) {
        if let Some(l) = self.table.get_mut(&id) {
            l.keys.remove(key);
        }
    }

    /// The earliest deadline of a live lease.
    pub fn next_deadline(&self) -> Option<u64> {
        self.by_deadline.first().map(|d| d.0)
    }

    /// The next lease to expire at `clock`, if one has: removed and returned.
    pub fn pop_expired(&mut self, clock: u64) -> Option<Lease> {
        let &(deadline, id) = self.by_deadline.first()?;
        if deadline > clock {
            return None;
        }
        self.remove(id)
    }

    /// (id, ttl, ticks, deadline) of every lease, by id: what a snapshot
    /// stores (the keys are found again from the keys' own records).
    pub fn to_wire(&self) -> Vec<(u64, u64, u64, u64)> {
        self.table.values().map(|l| (l.id, l.ttl, l.ticks, l.deadline)).collect()
    }

    /// Rebuilds the table from [`Leases::to_wire`]'s rows.
    pub fn from_wire(rows: Vec<(u64, u64, u64, u64)>) -> Self {
        let mut s = Leases::default();
        for (id, ttl, ticks, deadline) in rows {
            s.by_deadline.insert((deadline, id));
            s.table.insert(id, Lease { id, ttl, ticks, deadline, keys: BTreeSet::new() });
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expiry_order_and_keep_alive() {
        let mut l = Leases::default();
        l.grant(5, 1000, 100, 0);
        l.grant(3, 1000, 100, 0);
        l.grant(9, 500, 50, 10);
        assert_eq!(l.next_deadline(), Some(60));
        assert_eq!(l.keep_alive(9, 40), Some(500));
        assert_eq!(l.keep_alive(1, 40), None);
        assert_eq!(l.pop_expired(89), None);
        assert_eq!(l.pop_expired(100).map(|x| x.id), Some(9), "kept alive to 90");
        assert_eq!(l.pop_expired(100).map(|x| x.id), Some(3), "equal deadlines: lower id first");
        assert_eq!(l.pop_expired(100).map(|x| x.id), Some(5));
        assert!(l.is_empty() && l.next_deadline().is_none());
    }
}
