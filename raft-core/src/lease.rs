//! Lease reads: a leader answers a linearizable read from its own state,
//! without a confirmation round, while it holds a *lease* — a stretch of time
//! in which no other node can have become leader (etcd's
//! `ReadOnlyLeaseBased`, openraft's lease read). Off by default
//! ([`Config::lease_reads`](crate::Config::lease_reads)).
//!
//! ## Why it is safe
//!
//! With CheckQuorum, a voter that heard from its leader ignores (pre-)vote
//! requests until `E` of its ticks have passed (leader stickiness), and a
//! voter that has just started ignores them for `E` ticks too
//! (`sticky_after_start`). Suppose a quorum of every half of the leader's
//! configuration acknowledged a heartbeat round the leader *sent* at time `s`
//! on its clock. Each of them received it after `s`, and will not help elect
//! anyone else until `E` of its own ticks have passed since. A tick is never
//! shorter than real time allows except the first one after a message (it
//! may fire at once), so that is at least `(E - 1)` tick lengths of real
//! time — if every clock runs at the same rate. Clocks do not: with rates
//! differing from real time by at most `drift`, the leader's clock may run
//! slow while a voter's runs fast, and the bound shrinks by a factor
//! `(1 - drift) / (1 + drift)`. The lease therefore ends at
//!
//! ```text
//! s + (E - 1) * tick - margin,    margin = (E - 1) * tick * 2 * drift
//! ```
//!
//! on the leader's clock, which is slightly more conservative than the
//! factor. Within it, no other leader exists, so nothing can be committed the
//! leader does not hold: a read at its commit index (once an entry of its own
//! term has committed, as for ReadIndex) is linearizable.
//!
//! The lease is measured from the *send* time, never from when the answers
//! arrived: answers may be old. The clock is the host's monotonic clock,
//! passed in with [`Raft::set_clock`](crate::Raft::set_clock) before every
//! input — ticks are not time: a stalled event loop delays ticks while reads
//! queue, and a lease counted in ticks would outlive its real length.
//!
//! ## When there is no lease
//!
//! * A configuration entry was appended: the voters a new quorum needs may
//!   not have acknowledged anything (a lease from acknowledgements of nodes
//!   about to be removed says nothing about the others). Only rounds sent
//!   after the change count.
//! * A leadership transfer runs, or TimeoutNow was sent at any time in this
//!   term: its target campaigns through the voters' stickiness
//!   (etcd-io/etcd#12704). No lease for the rest of the term.
//! * The term has no committed entry yet (its commit index may be behind).
//!
//! Everything here is bookkeeping; the engine decides when to renew (every
//! heartbeat starts a round while leases are on) and when to ask.

use alloc::collections::VecDeque;

use crate::types::Index;

/// Lease-read timing, in the units of the host's monotonic clock (the
/// simulator and the native host use microseconds).
///
/// ```
/// use raft_core::lease::LeaseTiming;
/// let t = LeaseTiming { tick: 10_000, drift_ppm: 50_000 }; // 10 ms ticks, clocks within 5 %
/// // E = 30 ticks: 29 ticks of 10 ms, less 10 % of that.
/// assert_eq!(t.duration(30), 261_000);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LeaseTiming {
    /// Length of one tick in clock units. The host must tick no faster than
    /// this (late ticks are fine; catching up on missed ticks is fine too,
    /// as long as tick `k` never fires before `k` tick lengths have passed).
    pub tick: u64,
    /// The most any node's clock rate may differ from real time, in parts
    /// per million. The margin is twice this of the lease.
    pub drift_ppm: u32,
}

impl LeaseTiming {
    /// The default drift allowance: 5 %, far above what quartz clocks and
    /// NTP slewing do (tens to hundreds of ppm), so that the margin also
    /// absorbs scheduling noise.
    pub const DEFAULT_DRIFT_PPM: u32 = 50_000;

    /// How long a lease lasts after the send time of the round that granted
    /// it, for a minimum election timeout of `election_ticks`.
    pub fn duration(&self, election_ticks: u32) -> u64 {
        let base = u64::from(election_ticks.saturating_sub(1)).saturating_mul(self.tick);
        base.saturating_sub(self.margin(election_ticks))
    }

    /// The drift margin subtracted from `(E - 1)` ticks.
    pub fn margin(&self, election_ticks: u32) -> u64 {
        let base = u64::from(election_ticks.saturating_sub(1)).saturating_mul(self.tick);
        // 2 * drift of the base, rounded up.
        let m = u128::from(base) * 2 * u128::from(self.drift_ppm);
        m.div_ceil(1_000_000).min(u128::from(base)) as u64
    }

    /// Whether the timing is usable: a tick of some length and a drift
    /// below 50 % (at which no lease is left).
    pub fn is_valid(&self) -> bool {
        self.tick > 0 && self.drift_ppm < 500_000
    }
}

/// Most rounds remembered with their send times; older ones are dropped
/// (they would grant a lease no later than newer ones).
pub const MAX_ROUNDS_REMEMBERED: usize = 64;

/// A leader's lease: the send times of its recent rounds and how far the
/// acknowledged ones carry it.
#[derive(Clone, Debug, Default)]
pub struct Lease {
    /// `(round, clock when sent)`, oldest first, rounds increasing.
    sent: VecDeque<(u64, u64)>,
    /// The newest round ever recorded: a round is stamped once, when first
    /// sent, even after its entry was confirmed and dropped (a later message
    /// carrying it must not give it a later send time, or an old answer to
    /// it would extend the lease).
    newest: u64,
    /// The lease holds while the clock is below this.
    until: Option<u64>,
    /// Rounds below this do not count (sent before a configuration change).
    floor_round: u64,
    /// TimeoutNow went out this term: no lease for the rest of it.
    revoked: bool,
}

impl Lease {
    /// Round `round` was sent at `now`.
    pub fn on_sent(&mut self, round: u64, now: u64) {
        if round <= self.newest {
            return; // a round already sent: its first send time stands
        }
        self.newest = round;
        if self.sent.len() == MAX_ROUNDS_REMEMBERED {
            self.sent.pop_front();
        }
        self.sent.push_back((round, now));
    }

    /// A quorum of every half acknowledged rounds up to `round`: the lease
    /// runs `duration` from the newest of them that counts.
    pub fn on_confirmed(&mut self, round: u64, duration: u64) {
        let mut best = None;
        while let Some(&(r, at)) = self.sent.front() {
            if r > round {
                break;
            }
            self.sent.pop_front();
            if r >= self.floor_round {
                best = Some(at);
            }
        }
        if let Some(at) = best {
            let until = at.saturating_add(duration);
            self.until = Some(self.until.map_or(until, |u| u.max(until)));
        }
        debug_assert!(self.sent.iter().all(|&(r, _)| r > round));
    }

    /// A configuration entry was appended; the next round to be sent is
    /// `next_round`: the lease ends, and only rounds from there count.
    pub fn on_config_change(&mut self, next_round: u64) {
        self.until = None;
        self.floor_round = next_round;
        self.sent.retain(|&(r, _)| r >= next_round);
    }

    /// TimeoutNow was sent: no lease for the rest of the term.
    pub fn revoke(&mut self) {
        self.revoked = true;
        self.until = None;
    }

    /// Whether the lease holds at `now`.
    pub fn holds(&self, now: u64) -> bool {
        !self.revoked && self.until.is_some_and(|u| now < u)
    }

    /// Clock time the lease holds until, if it holds at all (for status).
    pub fn until(&self) -> Option<u64> {
        if self.revoked {
            None
        } else {
            self.until
        }
    }
}

/// Whether a read may be answered under the lease at `now`: it holds, no
/// transfer runs, and an entry of the leader's term has committed (`commit`
/// has the leader's term: `commit_term_is_own`). Returns the index the read
/// must wait to be applied.
pub fn lease_index(
    lease: &Lease,
    now: u64,
    transferring: bool,
    commit_term_is_own: bool,
    commit: Index,
) -> Option<Index> {
    (lease.holds(now) && !transferring && commit_term_is_own).then_some(commit)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_lease_runs_from_the_send_time_of_the_newest_confirmed_round() {
        let mut l = Lease::default();
        l.on_sent(1, 100);
        l.on_sent(2, 200);
        l.on_sent(3, 300);
        assert!(!l.holds(100), "nothing confirmed yet");
        l.on_confirmed(2, 1_000);
        assert_eq!(l.until(), Some(1_200), "from round 2's send time, not the answer's arrival");
        assert!(l.holds(1_199) && !l.holds(1_200));
        l.on_confirmed(3, 1_000);
        assert_eq!(l.until(), Some(1_300));
    }

    #[test]
    fn a_resent_round_keeps_its_first_send_time() {
        let mut l = Lease::default();
        l.on_sent(1, 100);
        l.on_sent(1, 900);
        l.on_confirmed(1, 50);
        assert_eq!(l.until(), Some(150));
    }

    #[test]
    fn a_round_confirmed_and_sent_again_keeps_its_first_send_time() {
        // Found by the simulator: a stalled leader resumed, answers to round
        // 39 (sent before the stall) confirmed it, a reply to one of them
        // carried round 39 again, and a late answer then "renewed" the lease
        // from the resend.
        let mut l = Lease::default();
        l.on_sent(39, 100);
        l.on_confirmed(39, 50);
        l.on_sent(39, 5_000);
        l.on_confirmed(39, 50);
        assert_eq!(l.until(), Some(150));
        assert!(!l.holds(5_000));
    }

    #[test]
    fn a_configuration_change_ends_the_lease_and_older_rounds_do_not_count() {
        let mut l = Lease::default();
        l.on_sent(1, 100);
        l.on_confirmed(1, 1_000);
        l.on_sent(2, 200);
        l.on_config_change(3);
        assert!(!l.holds(150));
        l.on_confirmed(2, 1_000);
        assert!(!l.holds(150), "round 2 was sent before the change");
        l.on_sent(3, 300);
        l.on_confirmed(3, 1_000);
        assert!(l.holds(1_299));
    }

    #[test]
    fn timeout_now_revokes_for_the_rest_of_the_term() {
        let mut l = Lease::default();
        l.on_sent(1, 100);
        l.on_confirmed(1, 1_000);
        l.revoke();
        l.on_sent(2, 200);
        l.on_confirmed(2, 1_000);
        assert!(!l.holds(300));
        assert_eq!(lease_index(&l, 300, false, true, 7), None);
    }

    #[test]
    fn memory_is_bounded() {
        let mut l = Lease::default();
        for r in 1..=10 * MAX_ROUNDS_REMEMBERED as u64 {
            l.on_sent(r, r);
        }
        assert_eq!(l.sent.len(), MAX_ROUNDS_REMEMBERED);
    }

    #[test]
    fn the_margin_is_twice_the_drift_of_e_minus_one_ticks() {
        let t = LeaseTiming { tick: 1_000, drift_ppm: 100_000 };
        assert_eq!(t.margin(11), 2_000);
        assert_eq!(t.duration(11), 8_000);
        let none = LeaseTiming { tick: 1_000, drift_ppm: 0 };
        assert_eq!(none.duration(11), 10_000);
        assert!(!LeaseTiming { tick: 1, drift_ppm: 500_000 }.is_valid());
    }
}
