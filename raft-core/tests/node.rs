//! Node-level tests: scripts that drive one or a few `Raft` nodes input by
//! input and compare everything they do with an expected transcript (in the
//! manner of etcd-io/raft's `datadriven` interaction tests).
//!
//! Each `tests/scripts/NAME.txt` is a test called `NAME`. A script is a list
//! of commands, each followed by `----` and the output it must print, then a
//! blank line; `#` lines are comments (each script starts with one saying
//! which rule it shows and where the transcript shows it). On a mismatch the
//! test prints the script, the line of the command and a diff. To accept a
//! behaviour change, regenerate and review the diff:
//!
//! ```text
//! REWRITE=1 cargo test -p raft-core --test node
//! git diff raft-core/tests/scripts
//! ```
//!
//! A new case can be written as just its command line: `REWRITE=1` fills in
//! its output.
//!
//! # The model
//!
//! Nothing happens unless a command says so. Messages a node sends wait in a
//! network queue (in send order) until `deliver`ed or `drop`ped; records a
//! node issues are written to its journal but are not durable until
//! `persist`; snapshot files are stored as soon as a Ready hands them over
//! (the host contract). After every input the harness takes the node's Ready
//! once and prints it (see `harness/env.rs` for the layout): records with
//! their sequence numbers and `must_sync`, events, messages sent, entries
//! applied, client replies, and `held N` when the number of messages held
//! back for durability changed. Positions print as `I@T` (index I, term T).
//!
//! # Commands
//!
//! | command | what it does |
//! |---|---|
//! | `add-nodes N [opt=value...]` | nodes 1..=N, all voters. Options: `election=10` (or one per node: `election=10,20,30`), `heartbeat=3`, `pre_vote=false`, `check_quorum=false` (those four are the harness defaults), `max_entries_per_msg`, `max_inflight_msgs`, `snapshot_entries` (default 0: never by count), `snapshot_chunk_bytes`, `max_held_messages`, `bugs=name,name` (a `raft_core::Bugs` field each). Election jitter is always off, so a timeout is exactly `election` ticks. |
//! | `tick NODES [n]` | n ticks (default 1); NODES is `all`, an id or `1,2`. Ticks whose Ready is empty print nothing. |
//! | `campaign NODE` | `force_timeout` |
//! | `propose NODE put K V` \| `append K V` \| `delete K` | a raw command, printed with the index it got or the error |
//! | `submit NODE register` \| `write s=S seq=N ack=A put K V` \| `read K` \| `keepalive s=S ack=A` | a client request; tokens are numbered t1, t2, ... in the order of submission |
//! | `persist NODES [seq]` | reports the node's records durable up to `seq` (default: all written) |
//! | `snapshot NODE` | `take_snapshot` |
//! | `deliver [FILTER...] [n=N]` | delivers the queued messages that match (all by default; at most N), in send order; answers are queued, not delivered |
//! | `drop [FILTER...] [n=N]` | removes queued messages from the network |
//! | `dup [FILTER...] [n=N]` | queues a second copy of each, right behind it |
//! | `msgs [FILTER...]` | lists the queue |
//! | `raw-step MESSAGE` | steps a hand-made message, written as the transcript prints them (`2->1 term=5 Heartbeat prev=0@0 commit=0 round=0`; `InstallSnapshot ... len=N` carries N zero bytes) |
//! | `stabilize [NODES] [quiet]` | persists and delivers among NODES until nothing moves; `quiet` prints only their final status |
//! | `crash NODE` | drops the engine; records not persisted are lost (and listed) |
//! | `restart NODE` | replays the durable journal with `journal::Replay` and restarts with `Raft::recover` and the snapshot file it names |
//! | `status [NODES]`, `log NODE`, `progress NODE`, `kv NODE` | observation: term, role, leader, vote, commit, applied, last, durable, snapshot, held, election timer; the log; a leader's view of its followers; the key-value data |
//!
//! A FILTER is `[FROM]->[TO][:Kind]`, e.g. `1->2`, `->3`, `2->`, `1->:Heartbeat`
//! (kinds as `Body::name`: `Append` has entries, `Heartbeat` has none).

mod harness;

use harness::script::{diff, Item, Script};

macro_rules! scripts {
    ($($name:ident),* $(,)?) => {
        $(
            #[test]
            fn $name() {
                harness::run_script(stringify!($name));
            }
        )*
        /// Every script with a test above.
        const SCRIPTS: &[&str] = &[$(stringify!($name)),*];
    };
}

scripts! {
    election,
    term_update,
    stale_term,
    vote_rules,
    election_restriction,
    log_conflict,
    follower_commit,
    figure8,
    figure8_commit_old_term,
    held_until_durable,
    crash_restart,
    prevote,
    check_quorum,
    read_index,
    sessions,
    install_snapshot,
    compacted_append,
    compacted_append_bug,
    membership_learner,
    membership_joint,
    transfer_and_removal,
    lost_tail,
    storage_identity,
    lease_time_entry,
    lease_reads,
    lease_reads_bug,
    follower_read,
}

#[test]
fn every_script_has_a_test() {
    let dir = harness::scripts_dir();
    let mut on_disk: Vec<String> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .filter_map(|e| e.ok())
        .filter_map(|e| e.file_name().to_str().and_then(|n| n.strip_suffix(".txt")).map(String::from))
        .collect();
    on_disk.sort();
    let mut listed: Vec<String> = SCRIPTS.iter().map(|s| s.to_string()).collect();
    listed.sort();
    assert_eq!(on_disk, listed, "each tests/scripts/*.txt needs its name in the scripts! list of tests/node.rs");
}

// ----------------------------------------------------------------------
// The harness itself
// ----------------------------------------------------------------------

const SAMPLE: &str = "\
# a comment

add-nodes 1
----
1: election=10 heartbeat=3 pre_vote=false check_quorum=false

# a case with no output yet
status 1
campaign 1
----
stale
";

#[test]
fn parser_keeps_text_and_finds_cases() {
    let s = Script::parse(SAMPLE).expect("the sample parses");
    let cases: Vec<_> = s.cases().collect();
    assert_eq!(cases.len(), 3);
    assert_eq!((cases[0].line, cases[0].command.as_str()), (3, "add-nodes 1"));
    assert_eq!(cases[1].line, 8);
    assert_eq!(cases[1].expected, None, "a command without ---- has no expected output");
    assert_eq!((cases[2].line, cases[2].expected.as_deref()), (9, Some(&["stale".to_string()][..])));
    assert_eq!(s.items[0], Item::Text("# a comment".into()));
    assert_eq!(s.render(&[]), SAMPLE, "rendering with the file's own outputs gives the file back");
}

#[test]
fn parser_rejects_a_separator_without_command() {
    let e = Script::parse("# x\n----\nfoo\n").expect_err("a lone separator is an error");
    assert!(e.contains("line 2"), "{e}");
    let e = Script::parse("status 1\n----\n\n").expect_err("a separator needs output");
    assert!(e.contains("line 1"), "{e}");
}

#[test]
fn messages_print_and_parse_back() {
    for line in [
        "1->2 term=2 PreVote last=5@1",
        "2->1 term=2 PreVoteResp rejected",
        "1->2 term=2 Vote last=5@1 transfer",
        "2->1 term=2 VoteResp granted",
        "1->2 term=3 Append prev=4@2 commit=4 round=1 [5@3 noop, 6@3 put(k,v), 7@3 register]",
        "1->2 term=3 Append prev=7@3 commit=4 round=1 [8@3 write(s=7,seq=1,ack=1,append(k,x)), 9@3 keepalive(s=7,ack=2)]",
        "1->2 term=3 Heartbeat prev=4@2 commit=4 round=0",
        "2->1 term=3 AppendResp ok idx=7 round=0",
        "2->1 term=3 AppendResp reject idx=7 hint=5@1 round=2",
        "1->2 term=3 InstallSnapshot snap=10@2 off=64 len=3 done",
        "2->1 term=3 InstallSnapshotResp snap=10@2 want=64",
        "2->1 term=3 InstallSnapshotResp snap=10@2 want=all",
        "2->1 term=3 InstallSnapshotResp snap=10@2 done",
    ] {
        let m = harness::text::parse_message(line).unwrap_or_else(|e| panic!("{line}: {e}"));
        assert_eq!(harness::text::message(&m), line);
    }
}

#[test]
fn rewrite_fills_in_outputs_and_a_check_then_passes() {
    let dir = std::env::temp_dir().join(format!("raft-node-harness-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let path = dir.join("sample.txt");
    std::fs::write(&path, SAMPLE).expect("write sample");
    let report = harness::check_file(&path, false).expect_err("a missing and a wrong output fail the check");
    assert!(report.contains("sample.txt:8: `status 1` has no expected output yet"), "{report}");
    assert!(report.contains("sample.txt:9: `campaign 1`"), "{report}");
    assert!(report.contains("- stale"), "the diff shows the expected line: {report}");
    harness::check_file(&path, true).expect("rewrite succeeds");
    let rewritten = std::fs::read_to_string(&path).expect("read back");
    assert!(rewritten.starts_with("# a comment\n\nadd-nodes 1\n----\n"), "text and commands are kept:\n{rewritten}");
    assert!(rewritten.contains("# a case with no output yet\nstatus 1\n----\n1: term=0 role=follower"), "{rewritten}");
    assert!(!rewritten.contains("stale"), "{rewritten}");
    harness::check_file(&path, false).expect("the rewritten file passes");
    harness::check_file(&path, true).expect("rewrite again");
    assert_eq!(std::fs::read_to_string(&path).expect("read back"), rewritten, "a second rewrite changes nothing");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn diff_marks_missing_and_extra_lines() {
    let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
    assert_eq!(diff(&s(&["a", "b", "c"]), &s(&["a", "x", "c"])), "  a\n- b\n+ x\n  c\n");
}

#[test]
fn a_script_mistake_names_the_line() {
    let s = Script::parse("add-nodes 1\n----\nx\n\nfrobnicate 1\n").expect("parses");
    let e = harness::run("t.txt", &s).err().expect("unknown command");
    assert!(e.starts_with("t.txt:5: `frobnicate 1`: unknown command"), "{e}");
}
