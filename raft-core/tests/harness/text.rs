//! How the harness prints the engine's values, and parses messages and
//! entries back: a message line as printed (`1->2 term=2 Vote last=5@1`) is
//! accepted by `raw-step`, so a transcript line can be pasted into a script
//! and edited into a hostile or stale variant.
//!
//! Everything is printed deterministically and compactly: `I@T` is the log
//! position index I with term T (so `last=5@1` is "last entry 5, of term 1").

use raft_core::journal::Record;
use raft_core::kv::{KvOp, KvOutput};
use raft_core::{
    Body, Change, ClientError, ClientReply, ConfChange, Entry, Event, Membership, Message, NodeId, Payload,
    ProposeError,
};

/// `5@2`.
pub fn pos(index: u64, term: u64) -> String {
    format!("{index}@{term}")
}

/// `2` or `none`.
pub fn opt_id(id: Option<NodeId>) -> String {
    id.map_or_else(|| "none".to_string(), |i| i.to_string())
}

/// A key-value command, or the raw bytes in hex if it is not one.
pub fn kv_op(bytes: &[u8]) -> String {
    match KvOp::decode(bytes) {
        Ok(KvOp::Put { key, value }) => format!("put({key},{value})"),
        Ok(KvOp::Append { key, value }) => format!("append({key},{value})"),
        Ok(KvOp::Get { key }) => format!("get({key})"),
        Ok(KvOp::Delete { key }) => format!("delete({key})"),
        Ok(KvOp::Cas { key, expect, value }) => {
            format!("cas({key},{},{value})", expect.as_deref().unwrap_or("<absent>"))
        }
        Ok(other) => raft_core::checker::show_op(&other).replace(' ', ""),
        Err(_) => format!("cmd({})", hex(bytes)),
    }
}

/// A key-value output (`written`, `value=v`, `value=none`, ...).
pub fn kv_output(bytes: &[u8]) -> String {
    match KvOutput::decode(bytes) {
        Ok(KvOutput::Written { revision }) => format!("written@{revision}"),
        Ok(KvOutput::Value { kv, revision }) => {
            format!("value={}@{revision}", kv.as_ref().map_or("none", |kv| kv.value.as_str()))
        }
        Ok(KvOutput::Deleted { existed, revision }) => format!("deleted existed={existed}@{revision}"),
        Ok(KvOutput::Cas { swapped, current, revision }) => {
            format!("cas swapped={swapped} current={}@{revision}", current.as_deref().unwrap_or("none"))
        }
        Ok(KvOutput::Invalid) => "invalid".into(),
        Ok(other) => raft_core::checker::show_output(&other),
        Err(_) => format!("bytes({})", hex(bytes)),
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A membership change without spaces: `conf(+v4,+l5,-3)`, `conf(joint,+v4,-3)`, `conf(leave)`.
pub fn conf_change(cc: &ConfChange) -> String {
    match cc {
        ConfChange::LeaveJoint => "conf(leave)".into(),
        ConfChange::Begin { joint, changes } => {
            let mut parts: Vec<String> = Vec::new();
            if *joint {
                parts.push("joint".into());
            }
            for c in changes {
                parts.push(match c {
                    Change::AddVoter { id, inc: 0 } => format!("+v{id}"),
                    Change::AddVoter { id, inc } => format!("+v{id}#{inc}"),
                    Change::AddLearner { id, inc: 0 } => format!("+l{id}"),
                    Change::AddLearner { id, inc } => format!("+l{id}#{inc}"),
                    Change::Remove { id } => format!("-{id}"),
                });
            }
            format!("conf({})", parts.join(","))
        }
    }
}

/// Parses what [`conf_change`] prints (the part inside `conf(...)`).
pub fn parse_conf_change(inner: &str) -> Result<ConfChange, String> {
    if inner == "leave" {
        return Ok(ConfChange::LeaveJoint);
    }
    let mut joint = false;
    let mut changes = Vec::new();
    for part in inner.split(',').filter(|p| !p.is_empty()) {
        let (body, inc) = match part.split_once('#') {
            Some((b, i)) => (b, num(i, "incarnation")?),
            None => (part, 0),
        };
        let id = |rest: &str| num(rest, "node id");
        changes.push(if body == "joint" {
            joint = true;
            continue;
        } else if let Some(rest) = body.strip_prefix("+v") {
            Change::AddVoter { id: id(rest)?, inc }
        } else if let Some(rest) = body.strip_prefix("+l") {
            Change::AddLearner { id: id(rest)?, inc }
        } else if let Some(rest) = body.strip_prefix('-') {
            Change::Remove { id: id(rest)? }
        } else {
            return Err(format!("`{part}`: a change is +vN, +lN, -N or joint"));
        });
    }
    Ok(ConfChange::Begin { joint, changes })
}

/// The voters and learners of a configuration: `voters=1,2 out=1,2,3 learners=4`.
pub fn membership(m: &Membership) -> String {
    let list = |ms: &[raft_core::Member]| ms.iter().map(|m| m.id.to_string()).collect::<Vec<_>>().join(",");
    let mut out = format!("voters={}", list(&m.voters));
    if !m.outgoing.is_empty() {
        out += &format!(" out={}", list(&m.outgoing));
    }
    if !m.learners.is_empty() {
        out += &format!(" learners={}", list(&m.learners));
    }
    if !m.learners_next.is_empty() {
        out += &format!(" learners_next={}", list(&m.learners_next));
    }
    out
}

fn unhex(s: &str) -> Result<Vec<u8>, String> {
    if s.len() % 2 != 0 {
        return Err(format!("odd-length hex `{s}`"));
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).map_err(|_| format!("bad hex `{s}`")))
        .collect()
}

/// An entry's payload, without spaces (entries are listed comma-separated).
pub fn payload(p: &Payload) -> String {
    match p {
        Payload::Noop => "noop".into(),
        Payload::Command(b) => kv_op(b),
        Payload::ConfChange(cc) => conf_change(cc),
        // (Sessions' owners and secret hashes are not shown: scripts use one of each.)
        Payload::Register { .. } => "register".into(),
        Payload::Write { session, seq, ack, command, .. } => {
            format!("write(s={session},seq={seq},ack={ack},{})", kv_op(command))
        }
        Payload::KeepAlive { session, ack, .. } => format!("keepalive(s={session},ack={ack})"),
    }
}

/// `5@2 put(k,v)`.
pub fn entry(e: &Entry) -> String {
    format!("{} {}", pos(e.index, e.term), payload(&e.payload))
}

/// `[1@1 noop, 2@1 put(k,v)]`.
pub fn entries(es: &[Entry]) -> String {
    let parts: Vec<String> = es.iter().map(entry).collect();
    format!("[{}]", parts.join(", "))
}

/// A message, in the form `raw-step` parses back.
pub fn message(m: &Message) -> String {
    format!("{}->{} term={} {}", m.from, m.to, m.term, body(&m.body))
}

fn granted(g: bool) -> &'static str {
    if g {
        "granted"
    } else {
        "rejected"
    }
}

fn body(b: &Body) -> String {
    match b {
        Body::PreVote { last_index, last_term } => format!("PreVote last={}", pos(*last_index, *last_term)),
        Body::PreVoteResp { granted: g } => format!("PreVoteResp {}", granted(*g)),
        Body::Vote { last_index, last_term, transfer } => {
            let t = if *transfer { " transfer" } else { "" };
            format!("Vote last={}{t}", pos(*last_index, *last_term))
        }
        Body::VoteResp { granted: g } => format!("VoteResp {}", granted(*g)),
        Body::Append { prev_index, prev_term, entries: es, commit, round, .. } => {
            let prev = pos(*prev_index, *prev_term);
            if es.is_empty() {
                format!("Heartbeat prev={prev} commit={commit} round={round}")
            } else {
                format!("Append prev={prev} commit={commit} round={round} {}", entries(es))
            }
        }
        Body::AppendResp { index, success: true, hint_index, hint_term, round, epoch, recovering } => {
            // A success carries no hint; print one only if someone sent it anyway.
            let hint = if (*hint_index, *hint_term) == (0, 0) {
                String::new()
            } else {
                format!(" hint={}", pos(*hint_index, *hint_term))
            };
            let rec = if *recovering { " recovering" } else { "" };
            format!("AppendResp ok idx={index}{hint} round={round}{}{rec}", epoch_note(*epoch))
        }
        Body::AppendResp { index, success: false, hint_index, hint_term, round, epoch, recovering } => {
            format!(
                "AppendResp reject idx={index} hint={} round={round}{}{}",
                pos(*hint_index, *hint_term),
                epoch_note(*epoch),
                if *recovering { " recovering" } else { "" }
            )
        }
        Body::InstallSnapshot { index, snap_term, offset, data, done } => {
            let d = if *done { " done" } else { "" };
            format!("InstallSnapshot snap={} off={offset} len={}{d}", pos(*index, *snap_term), data.len())
        }
        Body::InstallSnapshotResp { index, snap_term, offset, done } => {
            let what = match (*done, *offset) {
                (true, 0) => "done".to_string(),
                (true, o) => format!("done want={o}"),
                (false, u64::MAX) => "want=all".to_string(),
                (false, o) => format!("want={o}"),
            };
            format!("InstallSnapshotResp snap={} {what}", pos(*index, *snap_term))
        }
        Body::TimeoutNow => "TimeoutNow".into(),
        Body::ReadIndex { id } => format!("ReadIndex id={id}"),
        Body::ReadIndexResp { id, index: Some(i) } => format!("ReadIndexResp id={id} idx={i}"),
        Body::ReadIndexResp { id, index: None } => format!("ReadIndexResp id={id} refused"),
    }
}

/// Nodes start in epoch 1 (their first start); a restart's epoch is shown.
fn epoch_note(epoch: u64) -> String {
    if epoch > 1 {
        format!(" epoch={epoch}")
    } else {
        String::new()
    }
}

/// A journal record.
pub fn record(r: &Record) -> String {
    match r {
        Record::HardState(hs) => {
            let lost = if hs.lost_data { " lost_data" } else { "" };
            format!("HardState term={} vote={} role={}{lost}", hs.term, opt_id(hs.voted_for), hs.role.name())
        }
        Record::Append { first_index, entries } => {
            let last = first_index + entries.len() as u64 - 1;
            let mut terms: Vec<u64> = entries.iter().map(|e| e.term).collect();
            terms.dedup();
            let terms: Vec<String> = terms.iter().map(u64::to_string).collect();
            format!("Append {first_index}..{last} term={}", terms.join(","))
        }
        Record::Truncate { from_index } => format!("Truncate from={from_index}"),
        Record::Snapshot(meta) => {
            format!("Snapshot {} {} id={}", pos(meta.index, meta.term), membership(&meta.membership), meta.id)
        }
        Record::Checkpoint { last_seq } => format!("Checkpoint last_seq={last_seq}"),
        Record::BatchEnd { last_seq, hard } => format!("BatchEnd last_seq={last_seq} term={}", hard.term),
    }
}

/// An event.
pub fn event(e: &Event) -> String {
    match e {
        Event::BecameFollower { term, leader } => format!("BecameFollower term={term} leader={}", opt_id(*leader)),
        Event::BecamePreCandidate { term } => format!("BecamePreCandidate term={term}"),
        Event::BecameCandidate { term } => format!("BecameCandidate term={term}"),
        Event::BecameLeader { term } => format!("BecameLeader term={term}"),
        Event::LostQuorum { term } => format!("LostQuorum term={term}"),
        Event::LeaseRead { term, index } => format!("LeaseRead term={term} idx={index}"),
        Event::SnapshotTaken { index } => format!("SnapshotTaken idx={index}"),
        Event::SnapshotInstalled { index } => format!("SnapshotInstalled idx={index}"),
        Event::Committed { index } => format!("Committed idx={index}"),
        Event::Truncated { from_index } => format!("Truncated from={from_index}"),
        Event::ConfigChanged { membership: m } => format!("ConfigChanged {}", membership(m)),
        Event::RemovedSelf { term } => format!("RemovedSelf term={term}"),
        Event::FollowerRestarted { id, new_incarnation } => {
            format!("FollowerRestarted {id}{}", if *new_incarnation { " new-incarnation" } else { "" })
        }
        Event::RecoveredLostData { index } => format!("RecoveredLostData idx={index}"),
    }
}

/// A client error.
pub fn client_error(e: &ClientError) -> String {
    match e {
        ClientError::NotLeader { leader_hint } => format!("NotLeader leader={}", opt_id(*leader_hint)),
        ClientError::Busy => "Busy".into(),
        ClientError::SessionExpired => "SessionExpired".into(),
        ClientError::StaleSeq => "StaleSeq".into(),
        ClientError::BadRequest(why) => format!("BadRequest {why:?}"),
        ClientError::UnknownOutcome { leader_hint } => format!("UnknownOutcome leader={}", opt_id(*leader_hint)),
    }
}

/// A refused proposal.
pub fn propose_error(e: &ProposeError) -> String {
    match e {
        ProposeError::NotLeader { leader_hint } => format!("NotLeader leader={}", opt_id(*leader_hint)),
        ProposeError::Busy => "Busy".into(),
    }
}

/// A client reply.
pub fn client_reply(r: &ClientReply) -> String {
    match r {
        ClientReply::Registered { session } => format!("Registered session={session}"),
        ClientReply::Written { output } => format!("Written {}", kv_output(output)),
        ClientReply::KeptAlive => "KeptAlive".into(),
        ClientReply::Read { output } => format!("Read {}", kv_output(output)),
        ClientReply::Rejected(e) => format!("Rejected {}", client_error(e)),
    }
}

// ----------------------------------------------------------------------
// Parsing
// ----------------------------------------------------------------------

/// Splits on whitespace, except inside `[...]` and `(...)`.
pub fn tokens(s: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut depth = 0i32;
    for c in s.chars() {
        match c {
            '[' | '(' => depth += 1,
            ']' | ')' => depth -= 1,
            _ => {}
        }
        if c.is_whitespace() && depth <= 0 {
            if !cur.is_empty() {
                out.push(std::mem::take(&mut cur));
            }
        } else {
            cur.push(c);
        }
    }
    if !cur.is_empty() {
        out.push(cur);
    }
    out
}

/// Splits on commas at bracket depth 0.
fn split_top(s: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let (mut depth, mut start) = (0i32, 0);
    for (i, c) in s.char_indices() {
        match c {
            '[' | '(' => depth += 1,
            ']' | ')' => depth -= 1,
            ',' if depth == 0 => {
                out.push(&s[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    out.push(&s[start..]);
    out
}

/// A number, or an error naming what it was meant to be.
pub fn num(s: &str, what: &str) -> Result<u64, String> {
    s.parse().map_err(|_| format!("{what}: `{s}` is not a number"))
}

/// `5@2` into (5, 2).
pub fn parse_pos(s: &str) -> Result<(u64, u64), String> {
    let (i, t) = s.split_once('@').ok_or_else(|| format!("`{s}` is not index@term"))?;
    Ok((num(i, "index")?, num(t, "term")?))
}

/// The inside of `name(...)`, if `s` has that shape.
fn call<'a>(s: &'a str, name: &str) -> Option<&'a str> {
    s.strip_prefix(name)?.strip_prefix('(')?.strip_suffix(')')
}

/// A key-value command as printed by [`kv_op`].
pub fn parse_kv_op(s: &str) -> Result<Vec<u8>, String> {
    let two = |args: &str| -> Result<(String, String), String> {
        let (k, v) = args.split_once(',').ok_or_else(|| format!("`{s}` needs (key,value)"))?;
        Ok((k.to_string(), v.to_string()))
    };
    let op = if let Some(a) = call(s, "put") {
        let (key, value) = two(a)?;
        KvOp::Put { key, value }
    } else if let Some(a) = call(s, "append") {
        let (key, value) = two(a)?;
        KvOp::Append { key, value }
    } else if let Some(a) = call(s, "get") {
        KvOp::Get { key: a.to_string() }
    } else if let Some(a) = call(s, "delete") {
        KvOp::Delete { key: a.to_string() }
    } else if let Some(a) = call(s, "cmd") {
        return unhex(a);
    } else {
        return Err(format!("`{s}` is not put(k,v), append(k,v), get(k), delete(k) or cmd(hex)"));
    };
    Ok(op.encode())
}

/// `key=value` pairs of a `name(k=v,...,last)` argument list.
fn fields<'a>(args: &'a str, names: &[&str]) -> Result<Vec<&'a str>, String> {
    let parts = split_top(args);
    let mut out = Vec::new();
    for (k, name) in names.iter().enumerate() {
        let p = parts.get(k).ok_or_else(|| format!("`{args}`: missing {name}"))?;
        out.push(p.strip_prefix(&format!("{name}=")).ok_or_else(|| format!("`{p}`: expected {name}=..."))?);
    }
    if let Some(rest) = parts.get(names.len()) {
        out.push(rest);
    }
    Ok(out)
}

/// A payload as printed by [`payload`].
pub fn parse_payload(s: &str) -> Result<Payload, String> {
    Ok(match s {
        "noop" => Payload::Noop,
        "register" => Payload::Register { owner: 0, secret_hash: [0; 32] },
        _ if s.starts_with("write(") => {
            let inner = call(s, "write").ok_or_else(|| format!("`{s}`: unbalanced"))?;
            let f = fields(inner, &["s", "seq", "ack"])?;
            let command = f.get(3).ok_or_else(|| format!("`{s}`: missing the command"))?;
            Payload::Write {
                secret_hash: [0; 32],
                session: num(f[0], "session")?,
                seq: num(f[1], "seq")?,
                ack: num(f[2], "ack")?,
                command: parse_kv_op(command)?.into(),
            }
        }
        _ if s.starts_with("keepalive(") => {
            let inner = call(s, "keepalive").ok_or_else(|| format!("`{s}`: unbalanced"))?;
            let f = fields(inner, &["s", "ack"])?;
            Payload::KeepAlive { session: num(f[0], "session")?, secret_hash: [0; 32], ack: num(f[1], "ack")? }
        }
        _ if s.starts_with("conf(") => {
            Payload::ConfChange(parse_conf_change(call(s, "conf").ok_or_else(|| format!("`{s}`: unbalanced"))?)?)
        }
        _ => Payload::Command(parse_kv_op(s)?.into()),
    })
}

/// `[1@1 noop, 2@1 put(k,v)]`. Entry times are 0 (cluster time is not printed).
pub fn parse_entries(s: &str) -> Result<Vec<Entry>, String> {
    let inner = s.strip_prefix('[').and_then(|r| r.strip_suffix(']')).ok_or_else(|| format!("`{s}` is not [...]"))?;
    if inner.trim().is_empty() {
        return Ok(Vec::new());
    }
    split_top(inner)
        .into_iter()
        .map(|part| {
            let part = part.trim();
            let (p, payload) = part.split_once(' ').ok_or_else(|| format!("entry `{part}` is not `I@T payload`"))?;
            let (index, term) = parse_pos(p)?;
            Ok(Entry { index, term, time: 0, payload: parse_payload(payload.trim())? })
        })
        .collect()
}

/// A message as printed by [`message`]. `InstallSnapshot ... len=N` carries
/// N zero bytes (enough to test offsets; the checksum will not match).
pub fn parse_message(line: &str) -> Result<Message, String> {
    let toks = tokens(line);
    let [route, term, kind, rest @ ..] = toks.as_slice() else {
        return Err(format!("`{line}`: expected FROM->TO term=T Kind ..."));
    };
    let (from, to) = route.split_once("->").ok_or_else(|| format!("`{route}` is not FROM->TO"))?;
    let (from, to) = (num(from, "from")?, num(to, "to")?);
    let term = num(term.strip_prefix("term=").ok_or_else(|| format!("`{term}`: expected term=T"))?, "term")?;
    // Named fields, bare flags, and at most one entry list.
    let mut named: Vec<(&str, &str)> = Vec::new();
    let mut flags: Vec<&str> = Vec::new();
    let mut list = None;
    for t in rest {
        if t.starts_with('[') {
            list = Some(parse_entries(t)?);
        } else if let Some((k, v)) = t.split_once('=') {
            named.push((k, v));
        } else {
            flags.push(t);
        }
    }
    let get = |k: &str| named.iter().find(|(n, _)| *n == k).map(|(_, v)| *v);
    let need = |k: &str| get(k).ok_or_else(|| format!("`{line}`: {kind} needs {k}="));
    let flag = |f: &str| flags.contains(&f);
    let body = match kind.as_str() {
        "PreVote" => {
            let (last_index, last_term) = parse_pos(need("last")?)?;
            Body::PreVote { last_index, last_term }
        }
        "PreVoteResp" => Body::PreVoteResp { granted: flag("granted") },
        "Vote" => {
            let (last_index, last_term) = parse_pos(need("last")?)?;
            Body::Vote { last_index, last_term, transfer: flag("transfer") }
        }
        "VoteResp" => Body::VoteResp { granted: flag("granted") },
        "Append" | "Heartbeat" => {
            let (prev_index, prev_term) = parse_pos(need("prev")?)?;
            Body::Append {
                prev_index,
                prev_term,
                entries: list.unwrap_or_default(),
                commit: num(need("commit")?, "commit")?,
                round: get("round").map_or(Ok(0), |r| num(r, "round"))?,
                to_epoch: get("to_epoch").map_or(Ok(0), |e| num(e, "to_epoch"))?,
            }
        }
        "AppendResp" => {
            let (hint_index, hint_term) = get("hint").map_or(Ok((0, 0)), parse_pos)?;
            Body::AppendResp {
                index: num(need("idx")?, "idx")?,
                success: flag("ok"),
                hint_index,
                hint_term,
                round: get("round").map_or(Ok(0), |r| num(r, "round"))?,
                epoch: get("epoch").map_or(Ok(1), |e| num(e, "epoch"))?,
                recovering: flag("recovering"),
            }
        }
        "InstallSnapshot" => {
            let (index, snap_term) = parse_pos(need("snap")?)?;
            let len = num(need("len")?, "len")? as usize;
            Body::InstallSnapshot {
                index,
                snap_term,
                offset: num(need("off")?, "off")?,
                data: vec![0; len],
                done: flag("done"),
            }
        }
        "InstallSnapshotResp" => {
            let (index, snap_term) = parse_pos(need("snap")?)?;
            let offset = match get("want") {
                Some("all") => u64::MAX,
                Some(o) => num(o, "want")?,
                None => 0,
            };
            Body::InstallSnapshotResp { index, snap_term, offset, done: flag("done") }
        }
        "TimeoutNow" => Body::TimeoutNow,
        "ReadIndex" => Body::ReadIndex { id: num(need("id")?, "id")? },
        "ReadIndexResp" => Body::ReadIndexResp {
            id: num(need("id")?, "id")?,
            index: if flag("refused") { None } else { Some(num(need("idx")?, "idx")?) },
        },
        other => return Err(format!("unknown message kind `{other}`")),
    };
    Ok(Message { from, to, term, from_inc: 0, to_inc: 0, body })
}
