//! `/metrics`: the node's status figures as gauges and its counters, in
//! Prometheus' text exposition format.

use std::fmt::Write as _;

use crate::inbox::Status;
use crate::metrics::Metrics;

/// The content type of the text format, version 0.0.4.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4";

/// The page for one scrape: gauges from `st`, then every counter. Each
/// series carries the node's id as a label so scrapes of several nodes can
/// be merged.
pub fn render(st: &Status, metrics: &Metrics) -> String {
    let mut out = String::new();
    let node = st.id;
    // (Writing into a String cannot fail.)
    let mut gauge = |name: &str, help: &str, v: u64| {
        let _ = writeln!(
            out,
            "# HELP raftkv_{name} {help}\n# TYPE raftkv_{name} gauge\nraftkv_{name}{{node=\"{node}\"}} {v}"
        );
    };
    gauge("term", "Current term.", st.term);
    gauge("is_leader", "1 if this node is the leader.", (st.role == "leader") as u64);
    gauge("leader_id", "The known leader of the term (0: unknown).", st.leader.unwrap_or(0));
    gauge("commit_index", "Commit index.", st.commit_index);
    gauge("applied_index", "Applied index.", st.applied_index);
    gauge("last_index", "Last log index.", st.last_index);
    gauge("durable_index", "Highest index durable in the journal.", st.durable_index);
    gauge("snapshot_index", "Index covered by the latest snapshot.", st.snapshot_index);
    gauge("sessions", "Open client sessions.", st.sessions as u64);
    gauge("keys", "Keys in the store.", st.keys as u64);
    gauge("pending_reads", "Reads waiting for confirmation.", st.pending_reads as u64);
    gauge("pending_writes", "Writes waiting to apply.", st.pending_writes as u64);
    gauge("lost_data", "1 if this node found its data lost and does not vote until rebound.", st.lost_data as u64);
    gauge(
        "members_lost_data",
        "Members known to have come back with another incarnation.",
        st.members_lost_data.len() as u64,
    );
    gauge("joint", "1 while a joint configuration change is in progress.", st.configuration.joint as u64);
    gauge("voters", "Voters of the configuration in force (both halves).", {
        let mut v = st.configuration.voters.clone();
        v.extend(&st.configuration.outgoing);
        v.sort_unstable();
        v.dedup();
        v.len() as u64
    });
    let _ = writeln!(out, "# HELP raftkv_peer_match_index Leader only: highest index replicated on each peer.");
    let _ = writeln!(out, "# TYPE raftkv_peer_match_index gauge");
    for p in &st.peers {
        let _ = writeln!(out, "raftkv_peer_match_index{{node=\"{node}\",peer=\"{}\"}} {}", p.id, p.match_index);
    }
    for (name, help, v) in metrics.all() {
        let _ = writeln!(
            out,
            "# HELP raftkv_{name} {help}\n# TYPE raftkv_{name} counter\nraftkv_{name}{{node=\"{node}\"}} {v}"
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::inbox::PeerStatus;

    #[test]
    fn gauges_and_counters_carry_the_node_label() {
        let st = Status {
            id: 2,
            role: "leader".into(),
            term: 7,
            leader: Some(2),
            commit_index: 10,
            applied_index: 10,
            last_index: 11,
            durable_index: 11,
            snapshot_index: 0,
            peers: vec![PeerStatus { id: 1, match_index: 9, next_index: 10 }],
            sessions: 1,
            keys: 3,
            pending_reads: 0,
            pending_writes: 1,
            configuration: Default::default(),
            committed_configuration: Default::default(),
            incarnation: 5,
            epoch: 3,
            lost_data: false,
            members_lost_data: vec![],
        };
        let m = Metrics::default();
        m.journal_syncs_total.add(4);
        let text = render(&st, &m);
        assert!(text.contains("# TYPE raftkv_term gauge\nraftkv_term{node=\"2\"} 7\n"), "{text}");
        assert!(text.contains("raftkv_is_leader{node=\"2\"} 1\n"), "{text}");
        assert!(text.contains("raftkv_peer_match_index{node=\"2\",peer=\"1\"} 9\n"), "{text}");
        assert!(text.contains("# TYPE raftkv_journal_syncs_total counter\nraftkv_journal_syncs_total{node=\"2\"} 4\n"));
    }
}
