//! Golden bytes: the wire and journal formats, pinned.
//!
//! Every peer message, journal record, key-value operation and output, client
//! request, reply and error, and the snapshot header, encoded from one value
//! of each variant and compared with the bytes written here. Journals and
//! snapshots on disk and peers of another build read these bytes: a test here
//! that fails means they would no longer read them the same.
//!
//! postcard numbers enum variants by their position in the declaration, so
//! reordering variants (or inserting one anywhere but at the end) changes the
//! bytes even when nothing else does. The `*_tag` functions below name each
//! variant's number with an exhaustive `match`: a new variant does not compile
//! here until it has a number, and [`tags_are_positions`] checks that the
//! number is the one postcard writes.
//!
//! When a change is meant: bump the format's version (`MESSAGE_VERSION`,
//! `JOURNAL_VERSION`, `SNAPSHOT_VERSION`, or the hosts' frame versions that
//! carry these types) and update the bytes here in the same commit.

use raft_core::journal::{encode_record, write_segment_header, Record, SnapshotMeta};
use raft_core::kv::{Cmp, Compare, KeyValue, KvOp, KvOutput, KvStore, Txn, TxnOp, TxnResult};
use raft_core::session::{SessionLimits, Sessions};
use raft_core::snapshot::SnapshotBody;
use raft_core::{
    Body, Change, ClientError, ClientReply, ClientRequest, ConfChange, Entry, HardState, Membership, Message, Payload,
    Role, StateMachine,
};

const CHANGED: &str = "the wire/journal format changed: bump the version and update the golden bytes on purpose";

/// `bytes` as the inside of a Rust byte string literal, to compare by eye
/// and to paste when a change is meant.
fn literal(bytes: &[u8]) -> String {
    bytes
        .iter()
        .map(|&b| match b {
            b'"' | b'\\' => format!("\\x{b:02x}"),
            0x20..=0x7e => (b as char).to_string(),
            _ => format!("\\x{b:02x}"),
        })
        .collect()
}

#[track_caller]
fn golden(what: &str, got: &[u8], want: &[u8]) {
    assert!(got == want, "{what}: {CHANGED}\n  got:  b\"{}\"\n  want: b\"{}\"", literal(got), literal(want));
}

fn postcard<T: serde::Serialize>(v: &T) -> Vec<u8> {
    postcard::to_allocvec(v).expect("encoding into a Vec cannot fail")
}

// ---------------------------------------------------------------------------
// Each variant's number on the wire. No wildcard arms: a new variant must be
// given its number here.
// ---------------------------------------------------------------------------

fn body_tag(b: &Body) -> u8 {
    match b {
        Body::PreVote { .. } => 0,
        Body::PreVoteResp { .. } => 1,
        Body::Vote { .. } => 2,
        Body::VoteResp { .. } => 3,
        Body::Append { .. } => 4,
        Body::AppendResp { .. } => 5,
        Body::InstallSnapshot { .. } => 6,
        Body::InstallSnapshotResp { .. } => 7,
        Body::TimeoutNow => 8,
        Body::ReadIndex { .. } => 9,
        Body::ReadIndexResp { .. } => 10,
    }
}

fn payload_tag(p: &Payload) -> u8 {
    match p {
        Payload::Noop => 0,
        Payload::Command(_) => 1,
        Payload::ConfChange(_) => 2,
        Payload::Register { .. } => 3,
        Payload::Write { .. } => 4,
        Payload::KeepAlive { .. } => 5,
    }
}

fn role_tag(r: &Role) -> u8 {
    match r {
        Role::Follower => 0,
        Role::PreCandidate => 1,
        Role::Candidate => 2,
        Role::Leader => 3,
    }
}

fn record_tag(r: &Record) -> u8 {
    match r {
        Record::HardState(_) => 0,
        Record::Append { .. } => 1,
        Record::Truncate { .. } => 2,
        Record::Snapshot(_) => 3,
        Record::Checkpoint { .. } => 4,
        Record::BatchEnd { .. } => 5,
    }
}

fn kv_op_tag(op: &KvOp) -> u8 {
    match op {
        KvOp::Put { .. } => 0,
        KvOp::Append { .. } => 1,
        KvOp::Get { .. } => 2,
        KvOp::Delete { .. } => 3,
        KvOp::Cas { .. } => 4,
        KvOp::Range { .. } => 5,
        KvOp::Prefix { .. } => 6,
        KvOp::Count { .. } => 7,
        KvOp::Txn(_) => 8,
        KvOp::PutLease { .. } => 9,
        KvOp::LeaseGrant { .. } => 10,
        KvOp::LeaseKeepAlive { .. } => 11,
        KvOp::LeaseRevoke { .. } => 12,
    }
}

fn kv_output_tag(out: &KvOutput) -> u8 {
    match out {
        KvOutput::Written { .. } => 0,
        KvOutput::Value { .. } => 1,
        KvOutput::Deleted { .. } => 2,
        KvOutput::Cas { .. } => 3,
        KvOutput::Invalid => 4,
        KvOutput::Range { .. } => 5,
        KvOutput::Count { .. } => 6,
        KvOutput::Txn { .. } => 7,
        KvOutput::Lease { .. } => 8,
        KvOutput::LeaseRevoked { .. } => 9,
        KvOutput::LeaseNotFound { .. } => 10,
        KvOutput::Refused { .. } => 11,
    }
}

fn cmp_tag(c: &Cmp) -> u8 {
    match c {
        Cmp::Equal => 0,
        Cmp::NotEqual => 1,
        Cmp::Less => 2,
        Cmp::Greater => 3,
    }
}

fn compare_tag(c: &Compare) -> u8 {
    match c {
        Compare::Value { .. } => 0,
        Compare::Version { .. } => 1,
        Compare::ModRevision { .. } => 2,
        Compare::Exists { .. } => 3,
    }
}

fn txn_op_tag(o: &TxnOp) -> u8 {
    match o {
        TxnOp::Put { .. } => 0,
        TxnOp::Delete { .. } => 1,
        TxnOp::Get { .. } => 2,
    }
}

fn txn_result_tag(r: &TxnResult) -> u8 {
    match r {
        TxnResult::Put => 0,
        TxnResult::Deleted { .. } => 1,
        TxnResult::Value(_) => 2,
    }
}

fn request_tag(r: &ClientRequest) -> u8 {
    match r {
        ClientRequest::Register { .. } => 0,
        ClientRequest::Write { .. } => 1,
        ClientRequest::KeepAlive { .. } => 2,
        ClientRequest::Read { .. } => 3,
    }
}

fn reply_tag(r: &ClientReply) -> u8 {
    match r {
        ClientReply::Registered { .. } => 0,
        ClientReply::Written { .. } => 1,
        ClientReply::KeptAlive => 2,
        ClientReply::Read { .. } => 3,
        ClientReply::Rejected(_) => 4,
    }
}

fn error_tag(e: &ClientError) -> u8 {
    match e {
        ClientError::NotLeader { .. } => 0,
        ClientError::Busy => 1,
        ClientError::SessionExpired => 2,
        ClientError::StaleSeq => 3,
        ClientError::BadRequest(_) => 4,
        ClientError::UnknownOutcome { .. } => 5,
    }
}

// ---------------------------------------------------------------------------
// One value of every variant.
// ---------------------------------------------------------------------------

fn entries() -> Vec<Entry> {
    let payloads = [
        Payload::Noop,
        Payload::Command(b"c".as_slice().into()),
        Payload::ConfChange(ConfChange::Begin {
            joint: true,
            changes: vec![
                Change::AddVoter { id: 4, inc: 9 },
                Change::AddLearner { id: 5, inc: 0 },
                Change::Remove { id: 1 },
            ],
        }),
        Payload::Register { owner: 2, secret_hash: [0xab; 32] },
        Payload::Write { session: 5, secret_hash: [0xcd; 32], seq: 1, ack: 1, command: b"w".as_slice().into() },
        Payload::KeepAlive { session: 5, secret_hash: [0xcd; 32], ack: 2 },
    ];
    payloads.into_iter().zip(5..).map(|(payload, index)| Entry { term: 3, index, time: 100, payload }).collect()
}

fn bodies() -> Vec<Body> {
    vec![
        Body::PreVote { last_index: 5, last_term: 2 },
        Body::PreVoteResp { granted: true },
        Body::Vote { last_index: 5, last_term: 2, transfer: false },
        Body::VoteResp { granted: false },
        Body::Append { prev_index: 4, prev_term: 2, entries: entries(), commit: 4, round: 7, to_epoch: 3 },
        Body::AppendResp {
            index: 10,
            success: true,
            hint_index: 0,
            hint_term: 0,
            round: 7,
            epoch: 3,
            recovering: false,
        },
        Body::InstallSnapshot { index: 9, snap_term: 2, offset: 0, data: b"snap".to_vec(), done: true },
        // u64::MAX: the longest varint there is.
        Body::InstallSnapshotResp { index: 9, snap_term: 2, offset: u64::MAX, done: true },
        Body::TimeoutNow,
        Body::ReadIndex { id: 300 },
        Body::ReadIndexResp { id: 300, index: Some(12) },
        Body::ReadIndexResp { id: 301, index: None },
    ]
}

fn roles() -> Vec<Role> {
    vec![Role::Follower, Role::PreCandidate, Role::Candidate, Role::Leader]
}

fn records() -> Vec<Record> {
    let noop = Entry { term: 3, index: 5, time: 100, payload: Payload::Noop };
    vec![
        Record::HardState(HardState { term: 3, voted_for: Some(2), role: Role::Candidate, lost_data: false }),
        Record::Append { first_index: 5, entries: vec![noop] },
        Record::Truncate { from_index: 6 },
        Record::Snapshot(SnapshotMeta {
            index: 9,
            term: 2,
            membership: Box::new(Membership::bootstrap(&[1, 2, 3])),
            id: 9,
        }),
        Record::Checkpoint { last_seq: 41 },
        Record::BatchEnd {
            last_seq: 42,
            hard: HardState { term: 3, voted_for: Some(2), role: Role::Follower, lost_data: true },
        },
    ]
}

fn kv_ops() -> Vec<KvOp> {
    vec![
        KvOp::Put { key: "k".into(), value: "v".into() },
        KvOp::Append { key: "k".into(), value: "w".into() },
        KvOp::Get { key: "k".into() },
        KvOp::Delete { key: "k".into() },
        KvOp::Cas { key: "k".into(), expect: Some("v".into()), value: "x".into() },
        KvOp::Cas { key: "k".into(), expect: None, value: "x".into() },
        KvOp::Range { from: "a".into(), to: Some("b".into()), limit: 2 },
        KvOp::Prefix { prefix: "p".into(), from: Some("p1".into()), limit: 0 },
        KvOp::Count { from: "a".into(), to: None },
        KvOp::Txn(txn()),
        KvOp::PutLease { key: "k".into(), value: "v".into(), lease: 5 },
        KvOp::LeaseGrant { ttl: 300 },
        KvOp::LeaseKeepAlive { id: 5 },
        KvOp::LeaseRevoke { id: 5 },
    ]
}

fn txn() -> Txn {
    Txn { compare: compares(), success: txn_ops(), failure: vec![TxnOp::Get { key: "k".into() }] }
}

fn cmps() -> Vec<Cmp> {
    vec![Cmp::Equal, Cmp::NotEqual, Cmp::Less, Cmp::Greater]
}

fn compares() -> Vec<Compare> {
    vec![
        Compare::Value { key: "k".into(), cmp: Cmp::Equal, value: "v".into() },
        Compare::Version { key: "k".into(), cmp: Cmp::NotEqual, version: 2 },
        Compare::ModRevision { key: "k".into(), cmp: Cmp::Less, revision: 9 },
        Compare::Exists { key: "k".into(), exists: false },
    ]
}

fn txn_ops() -> Vec<TxnOp> {
    vec![
        TxnOp::Put { key: "k".into(), value: "v".into(), lease: 0 },
        TxnOp::Delete { key: "k".into() },
        TxnOp::Get { key: "k".into() },
    ]
}

fn kv() -> KeyValue {
    KeyValue { key: "k".into(), value: "v".into(), create_revision: 3, mod_revision: 4, version: 2, lease: 0 }
}

fn txn_results() -> Vec<TxnResult> {
    vec![TxnResult::Put, TxnResult::Deleted { existed: true }, TxnResult::Value(Some(kv()))]
}

fn kv_outputs() -> Vec<KvOutput> {
    vec![
        KvOutput::Written { revision: 7 },
        KvOutput::Value { kv: Some(kv()), revision: 7 },
        KvOutput::Value { kv: None, revision: 7 },
        KvOutput::Deleted { existed: true, revision: 7 },
        KvOutput::Cas { swapped: false, current: Some("v".into()), revision: 7 },
        KvOutput::Invalid,
        KvOutput::Range { kvs: vec![kv()], next: Some("l".into()), revision: 7 },
        KvOutput::Count { count: 1, revision: 7 },
        KvOutput::Txn { succeeded: true, results: txn_results(), revision: 7 },
        KvOutput::Lease { id: 5, ttl: 300, revision: 7 },
        KvOutput::LeaseRevoked { deleted: 1, revision: 7 },
        KvOutput::LeaseNotFound { id: 5, revision: 7 },
        KvOutput::Refused { reason: "x".into(), revision: 7 },
    ]
}

fn requests() -> Vec<ClientRequest> {
    vec![
        ClientRequest::Register { owner: 2, secret_hash: [0xab; 32] },
        ClientRequest::Write { session: 7, secret_hash: [0xcd; 32], seq: 2, ack: 1, command: b"w"[..].into() },
        ClientRequest::KeepAlive { session: 7, secret_hash: [0xcd; 32], ack: 3 },
        ClientRequest::Read { query: b"q".to_vec() },
    ]
}

fn replies() -> Vec<ClientReply> {
    vec![
        ClientReply::Registered { session: 7 },
        ClientReply::Written { output: b"o".as_slice().into() },
        ClientReply::KeptAlive,
        ClientReply::Read { output: b"r".as_slice().into() },
        ClientReply::Rejected(ClientError::Busy),
    ]
}

fn errors() -> Vec<ClientError> {
    vec![
        ClientError::NotLeader { leader_hint: Some(2) },
        ClientError::Busy,
        ClientError::SessionExpired,
        ClientError::StaleSeq,
        ClientError::BadRequest("x".into()),
        ClientError::UnknownOutcome { leader_hint: None },
    ]
}

/// Checks that each value's first postcard byte is its tag and that the
/// values cover every tag from 0 up.
#[track_caller]
fn check_tags<T: serde::Serialize + std::fmt::Debug>(what: &str, values: &[T], tag: impl Fn(&T) -> u8) {
    let mut seen = Vec::new();
    for v in values {
        let t = tag(v);
        assert_eq!(postcard(v)[0], t, "{what} {v:?}: {CHANGED}");
        if !seen.contains(&t) {
            seen.push(t);
        }
    }
    seen.sort_unstable();
    let all: Vec<u8> = (0..seen.len() as u8).collect();
    assert_eq!(seen, all, "{what}: the golden values must cover every variant");
}

#[test]
fn tags_are_positions() {
    check_tags("Body", &bodies(), body_tag);
    check_tags("Payload", &entries().into_iter().map(|e| e.payload).collect::<Vec<_>>(), payload_tag);
    check_tags("Role", &roles(), role_tag);
    check_tags("Record", &records(), record_tag);
    check_tags("KvOp", &kv_ops(), kv_op_tag);
    check_tags("KvOutput", &kv_outputs(), kv_output_tag);
    check_tags("Cmp", &cmps(), cmp_tag);
    check_tags("Compare", &compares(), compare_tag);
    check_tags("TxnOp", &txn_ops(), txn_op_tag);
    check_tags("TxnResult", &txn_results(), txn_result_tag);
    check_tags("ClientRequest", &requests(), request_tag);
    check_tags("ClientReply", &replies(), reply_tag);
    check_tags("ClientError", &errors(), error_tag);
}

// ---------------------------------------------------------------------------
// The bytes.
// ---------------------------------------------------------------------------

#[test]
fn peer_messages() {
    let want: [&[u8]; 8] = [
        b"RKVM\x02\x01\x02\x03\x00\x00\x00\x05\x02",
        b"RKVM\x02\x01\x02\x03\x00\x00\x01\x01",
        b"RKVM\x02\x01\x02\x03\x00\x00\x02\x05\x02\x00",
        b"RKVM\x02\x01\x02\x03\x00\x00\x03\x00",
        b"RKVM\x02\x01\x02\x03\x00\x00\x04\x04\x02\x06\x03\x05d\x00\x03\x06d\x01\x01c\x03\x07d\x02\x00\x01\x03\x00\x04\x09\x01\x05\x00\x02\x01\x03\x08d\x03\x02\xab\xab\xab\xab\xab\xab\xab\xab\xab\xab\xab\xab\xab\xab\xab\xab\xab\xab\xab\xab\xab\xab\xab\xab\xab\xab\xab\xab\xab\xab\xab\xab\x03\x09d\x04\x05\xcd\xcd\xcd\xcd\xcd\xcd\xcd\xcd\xcd\xcd\xcd\xcd\xcd\xcd\xcd\xcd\xcd\xcd\xcd\xcd\xcd\xcd\xcd\xcd\xcd\xcd\xcd\xcd\xcd\xcd\xcd\xcd\x01\x01\x01w\x03\x0ad\x05\x05\xcd\xcd\xcd\xcd\xcd\xcd\xcd\xcd\xcd\xcd\xcd\xcd\xcd\xcd\xcd\xcd\xcd\xcd\xcd\xcd\xcd\xcd\xcd\xcd\xcd\xcd\xcd\xcd\xcd\xcd\xcd\xcd\x02\x04\x07\x03",
        b"RKVM\x02\x01\x02\x03\x00\x00\x05\x0a\x01\x00\x00\x07\x03\x00",
        b"RKVM\x02\x01\x02\x03\x00\x00\x06\x09\x02\x00\x04snap\x01",
        b"RKVM\x02\x01\x02\x03\x00\x00\x07\x09\x02\xff\xff\xff\xff\xff\xff\xff\xff\xff\x01\x01",
    ];
    for (body, want) in bodies().into_iter().zip(want) {
        let name = body.name();
        let m = Message::new(1, 2, 3, body);
        golden(&format!("Message with {name}"), &m.encode(), want);
        assert_eq!(Message::decode(want, 1 << 20).as_ref(), Ok(&m), "{name}: {CHANGED}");
    }
}

#[test]
fn roles_in_hard_states() {
    let want: [&[u8]; 4] = [b"\x01\x00\x00\x00", b"\x01\x00\x01\x00", b"\x01\x00\x02\x00", b"\x01\x00\x03\x00"];
    for (role, want) in roles().into_iter().zip(want) {
        golden(
            &format!("HardState as {role:?}"),
            &postcard(&HardState { term: 1, voted_for: None, role, lost_data: false }),
            want,
        );
    }
}

#[test]
fn journal_segment_header_and_records() {
    let mut header = Vec::new();
    write_segment_header(&mut header);
    golden("segment header", &header, b"RKVJ\x02\x00\x00\x00");
    let want: [&[u8]; 6] = [
        b"\x07\x00\x00\x00\x0a>a.-5\xafX\x01\x00\x03\x01\x02\x02\x00",
        b"\x08\x00\x00\x00I\xac,\x84`\xdb!k\x02\x01\x05\x01\x03\x05d\x00",
        b"\x03\x00\x00\x00\x0f\xb4\xae\x8b:\xa0\xdbW\x03\x02\x06",
        b"\x0f\x00\x00\x00\xbcs\xc2L\x83\x95\xc9F\x04\x03\x09\x02\x03\x01\x00\x02\x00\x03\x00\x00\x00\x00\x09",
        b"\x03\x00\x00\x00\xd0\xa1~MM\x1b\xfd=\x05\x04)",
        b"\x08\x00\x00\x00\xa3F\xa2\xe4\x03\x82\xc7\xb8\x06\x05*\x03\x01\x02\x00\x01",
    ];
    for (seq, (record, want)) in (1..).zip(records().into_iter().zip(want)) {
        let mut frame = Vec::new();
        encode_record(seq, &record, &mut frame);
        golden(&format!("journal frame of {}", record.name()), &frame, want);
        // And it reads back as itself.
        let mut segment = header.clone();
        segment.extend_from_slice(want);
        let scan = raft_core::journal::scan(&segment).map_err(|e| format!("{e:?}"));
        assert_eq!(scan.map(|s| s.records), Ok(vec![(seq, record)]), "{CHANGED}");
    }
}

#[test]
fn key_value_operations() {
    let want: [&[u8]; 14] = [
        b"\x00\x01k\x01v",
        b"\x01\x01k\x01w",
        b"\x02\x01k",
        b"\x03\x01k",
        b"\x04\x01k\x01\x01v\x01x",
        b"\x04\x01k\x00\x01x",
        b"\x05\x01a\x01\x01b\x02",
        b"\x06\x01p\x01\x02p1\x00",
        b"\x07\x01a\x00",
        b"\x08\x04\x00\x01k\x00\x01v\x01\x01k\x01\x02\x02\x01k\x02\x09\x03\x01k\x00\x03\x00\x01k\x01v\x00\x01\x01k\x02\x01k\x01\x02\x01k",
        b"\x09\x01k\x01v\x05",
        b"\x0a\xac\x02",
        b"\x0b\x05",
        b"\x0c\x05",
    ];
    for (op, want) in kv_ops().into_iter().zip(want) {
        golden(&format!("{op:?}"), &op.encode(), want);
        assert_eq!(KvOp::decode(want).as_ref(), Ok(&op), "{CHANGED}");
    }
}

#[test]
fn key_value_outputs() {
    let want: [&[u8]; 13] = [
        b"\x00\x07",
        b"\x01\x01\x01k\x01v\x03\x04\x02\x00\x07",
        b"\x01\x00\x07",
        b"\x02\x01\x07",
        b"\x03\x00\x01\x01v\x07",
        b"\x04",
        b"\x05\x01\x01k\x01v\x03\x04\x02\x00\x01\x01l\x07",
        b"\x06\x01\x07",
        b"\x07\x01\x03\x00\x01\x01\x02\x01\x01k\x01v\x03\x04\x02\x00\x07",
        b"\x08\x05\xac\x02\x07",
        b"\x09\x01\x07",
        b"\x0a\x05\x07",
        b"\x0b\x01x\x07",
    ];
    for (out, want) in kv_outputs().into_iter().zip(want) {
        golden(&format!("{out:?}"), &out.encode(), want);
        assert_eq!(KvOutput::decode(want).as_ref(), Ok(&out), "{CHANGED}");
    }
}

#[test]
fn client_requests_replies_and_errors() {
    let want: [&[u8]; 4] = [b"\x00\x02\xab\xab\xab\xab\xab\xab\xab\xab\xab\xab\xab\xab\xab\xab\xab\xab\xab\xab\xab\xab\xab\xab\xab\xab\xab\xab\xab\xab\xab\xab\xab\xab", b"\x01\x07\xcd\xcd\xcd\xcd\xcd\xcd\xcd\xcd\xcd\xcd\xcd\xcd\xcd\xcd\xcd\xcd\xcd\xcd\xcd\xcd\xcd\xcd\xcd\xcd\xcd\xcd\xcd\xcd\xcd\xcd\xcd\xcd\x02\x01\x01w", b"\x02\x07\xcd\xcd\xcd\xcd\xcd\xcd\xcd\xcd\xcd\xcd\xcd\xcd\xcd\xcd\xcd\xcd\xcd\xcd\xcd\xcd\xcd\xcd\xcd\xcd\xcd\xcd\xcd\xcd\xcd\xcd\xcd\xcd\x03", b"\x03\x01q"];
    for (r, want) in requests().iter().zip(want) {
        golden(&format!("{r:?}"), &postcard(r), want);
    }
    let want: [&[u8]; 5] = [b"\x00\x07", b"\x01\x01o", b"\x02", b"\x03\x01r", b"\x04\x01"];
    for (r, want) in replies().iter().zip(want) {
        golden(&format!("{r:?}"), &postcard(r), want);
    }
    let want: [&[u8]; 6] = [b"\x00\x01\x02", b"\x01", b"\x02", b"\x03", b"\x04\x01x", b"\x05\x00"];
    for (e, want) in errors().iter().zip(want) {
        golden(&format!("{e:?}"), &postcard(e), want);
    }
}

#[test]
fn snapshot_header_and_body() {
    // One session with one cached reply, one lease and one key attached to
    // it: every part of the body holds something.
    let mut sessions = Sessions::new(SessionLimits::default());
    assert_eq!(sessions.register(7, 2, [0xab; 32]), Ok(7));
    let written = sessions.write(7, &[0xab; 32], 1, 1, || KvOutput::Written { revision: 8 }.encode().into());
    assert_eq!(written.map(|b| b.to_vec()), Ok(KvOutput::Written { revision: 8 }.encode()));
    let mut kv = KvStore::default();
    kv.advance(8, 100);
    kv.apply(8, 100, &KvOp::LeaseGrant { ttl: 50 }.encode());
    kv.advance(9, 100);
    kv.apply(9, 100, &KvOp::PutLease { key: "k".into(), value: "v".into(), lease: 8 }.encode());
    let body = SnapshotBody {
        index: 9,
        term: 2,
        membership: Membership::bootstrap(&[1, 2, 3]),
        sessions,
        state: kv.snapshot(),
    };
    let want: &[u8] = b"RKVS\x02\xad\xfb\x01\xc0\x09\x02\x03\x01\x00\x02\x00\x03\x00\x00\x00\x00\xf0.\x80\x80\x04\x80\x01\x80\x80\x80\x04\x80\x80\x04\x00\x01\x07\x02\xab\xab\xab\xab\xab\xab\xab\xab\xab\xab\xab\xab\xab\xab\xab\xab\xab\xab\xab\xab\xab\xab\xab\xab\xab\xab\xab\xab\xab\xab\xab\xab\x00\x01\x01\x01\x02\x00\x08\x10\x09d\x01\x01k\x01v\x09\x09\x01\x08\x01\x082\x05i";
    golden("snapshot", &body.encode(), want);
    assert_eq!(SnapshotBody::decode(want, 1 << 20).as_ref(), Ok(&body), "{CHANGED}");
}
