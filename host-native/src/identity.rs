//! Storage identity (DESIGN.md §10): which cluster, node and incarnation a
//! data directory is, and the bootstrap configuration it was bound to.
//!
//! ```text
//! DATA/identity.toml     cluster UUID and name, node id, incarnation, the bootstrap configuration
//! DATA/cluster.toml      (nodes that joined with --join) the cluster settings the member sent
//! ```
//!
//! The identity file is written once, atomically (temporary name, fsync,
//! rename, directory fsync), when the directory is created: by `raftkv
//! bootstrap`/`raftkv cluster` for every initial node at once, by `--bootstrap`
//! for a one-node cluster, by `snapshot restore`, or by a node that joins. It
//! is never rewritten, so an incarnation names one life of one directory: a
//! directory that lost its identity file starts as a new incarnation and can
//! no longer vote as the old one (KIP-853's directory id).
//!
//! Every node of a cluster holds the same bootstrap configuration (raft-core
//! reads the changes in its log relative to it), so a node that joins, or
//! whose directory was wiped, fetches it from a member instead of building
//! one of its own: a wiped node never re-bootstraps.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use raft_core::NodeId;

use crate::journal::{write_file_atomically, StartError};

/// Name of the identity file in a data directory.
pub const IDENTITY_FILE: &str = "identity.toml";
/// Name of the saved cluster settings of a node that joined.
pub const SETTINGS_FILE: &str = "cluster.toml";
/// Name of the file counting the node's starts (raft-core's `Config::epoch`).
pub const EPOCH_FILE: &str = "epoch";
/// The identity file's format number.
const FORMAT: u32 = 1;
/// Incarnations and other numbers shown to clients stay below 2^53, so
/// JavaScript reads them exactly.
const MAX_SAFE: u64 = (1 << 53) - 1;

/// One member of the bootstrap configuration: a node id bound to the
/// incarnation of its data directory.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BoundMember {
    /// The node.
    pub id: NodeId,
    /// Its incarnation at bootstrap (0: unbound).
    pub inc: u64,
}

/// What a data directory says it is.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Identity {
    /// Format number of this file.
    pub format: u32,
    /// The cluster's UUID (32 hex digits), drawn at bootstrap and at every
    /// restore: peers of another cluster (or of the cluster a backup came
    /// from) fail the handshake.
    pub cluster_uuid: String,
    /// The cluster's name from its TOML file (for messages only).
    pub cluster_name: String,
    /// The node this directory belongs to.
    pub node_id: NodeId,
    /// This directory's incarnation: random, nonzero, below 2^53.
    pub incarnation: u64,
    /// The configuration the cluster was bootstrapped with.
    pub bootstrap: Vec<BoundMember>,
}

fn io_err(what: &str, path: &Path, e: io::Error) -> StartError {
    StartError(format!("{what} {}: {e}", path.display()))
}

/// A random number from the OS: nonzero and below 2^53.
pub fn random_incarnation() -> Result<u64, StartError> {
    loop {
        let mut b = [0u8; 8];
        getrandom::fill(&mut b).map_err(|e| StartError(format!("no system randomness: {e}")))?;
        let v = u64::from_le_bytes(b) & MAX_SAFE;
        if v != 0 {
            return Ok(v);
        }
    }
}

/// A new cluster UUID: 16 random bytes as hex.
pub fn random_uuid() -> Result<String, StartError> {
    let mut b = [0u8; 16];
    getrandom::fill(&mut b).map_err(|e| StartError(format!("no system randomness: {e}")))?;
    Ok(crate::auth::hex(&b))
}

impl Identity {
    /// Reads the identity file of `dir`; `Ok(None)` if there is none.
    pub fn load(dir: &Path) -> Result<Option<Identity>, StartError> {
        let path = dir.join(IDENTITY_FILE);
        let text = match fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(io_err("cannot read", &path, e)),
        };
        let id: Identity =
            toml::from_str(&text).map_err(|e| StartError(format!("{} is damaged: {e}", path.display())))?;
        id.validate().map_err(|e| StartError(format!("{}: {e}", path.display())))?;
        Ok(Some(id))
    }

    /// Checks what serde cannot.
    pub fn validate(&self) -> Result<(), String> {
        if self.format != FORMAT {
            return Err(format!("identity format {} is not {FORMAT}", self.format));
        }
        if self.cluster_uuid.len() != 32 || !self.cluster_uuid.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err("cluster_uuid must be 32 hex digits".into());
        }
        if self.node_id == 0 || self.incarnation == 0 || self.incarnation > MAX_SAFE {
            return Err("node_id and incarnation must be nonzero (incarnation below 2^53)".into());
        }
        let mut ids: Vec<NodeId> = self.bootstrap.iter().map(|m| m.id).collect();
        ids.sort_unstable();
        if ids.is_empty() || ids.contains(&0) || ids.windows(2).any(|w| w[0] == w[1]) {
            return Err("the bootstrap configuration needs distinct, nonzero node ids".into());
        }
        Ok(())
    }

    /// Writes the identity file into `dir` (created if need be), refusing to
    /// replace one that exists: an identity is written once.
    pub fn create(&self, dir: &Path) -> Result<(), StartError> {
        self.validate().map_err(StartError)?;
        fs::create_dir_all(dir).map_err(|e| io_err("cannot create data directory", dir, e))?;
        if dir.join(IDENTITY_FILE).exists() {
            return Err(StartError(format!("{} already has an identity file", dir.display())));
        }
        let text = toml::to_string(self).map_err(|e| StartError(format!("cannot encode the identity: {e}")))?;
        let text = format!("# raftkv data directory: written once, never edit.\n{text}");
        write_file_atomically(dir, IDENTITY_FILE, text.as_bytes())
            .map_err(|e| io_err("cannot write the identity file in", dir, e))
    }

    /// Checks that this directory belongs to node `id` of the cluster named
    /// `name` (`None`: any name, for nodes started without a TOML file).
    pub fn check(&self, dir: &Path, name: Option<&str>, id: NodeId) -> Result<(), StartError> {
        if self.node_id != id {
            return Err(StartError(format!(
                "data directory {} belongs to another cluster or node: node {}, not node {id}",
                dir.display(),
                self.node_id
            )));
        }
        if let Some(name) = name {
            if name != self.cluster_name {
                return Err(StartError(format!(
                    "data directory {} belongs to another cluster or node: cluster {:?}, not {name:?}",
                    dir.display(),
                    self.cluster_name
                )));
            }
        }
        Ok(())
    }

    /// The bootstrap voter ids.
    pub fn bootstrap_ids(&self) -> Vec<NodeId> {
        self.bootstrap.iter().map(|m| m.id).collect()
    }
}

/// The number of this start of the node whose data directory is `dir`: one
/// more than the last start's, stored durably (temporary file, fsync,
/// rename) before it is returned, so no two starts of one directory share
/// an epoch and a leader can tell a restarted follower's answers from its
/// previous life's (raft-core's `Config::epoch`). A missing file is start 0
/// before this one; a damaged one refuses the start, since guessing could
/// reuse an epoch.
pub fn next_epoch(dir: &Path) -> Result<u64, StartError> {
    let path = dir.join(EPOCH_FILE);
    let last = match fs::read_to_string(&path) {
        Ok(t) => t.trim().parse::<u64>().map_err(|_| {
            StartError(format!(
                "{} is damaged ({:?} is not a number): remove it to count from 1 again",
                path.display(),
                t.trim()
            ))
        })?,
        Err(e) if e.kind() == io::ErrorKind::NotFound => 0,
        Err(e) => return Err(io_err("cannot read", &path, e)),
    };
    let next = last
        .checked_add(1)
        .filter(|&n| n <= MAX_SAFE)
        .ok_or_else(|| StartError(format!("{}: no epochs left", path.display())))?;
    write_file_atomically(dir, EPOCH_FILE, format!("{next}\n").as_bytes())
        .map_err(|e| io_err("cannot write", &path, e))?;
    Ok(next)
}

/// Whether `dir` holds anything a node wrote (a journal or snapshots).
pub fn has_data(dir: &Path) -> bool {
    ["journal", "snapshots"].iter().any(|d| fs::read_dir(dir.join(d)).is_ok_and(|mut r| r.next().is_some()))
}

/// Moves a journal and snapshots that have no identity file aside (into
/// `lost-N/`): whose they are cannot be told, so they are not trusted, and
/// the node starts as a new incarnation. They are kept for an operator to
/// look at, never read again.
pub fn set_aside_unidentified(dir: &Path) -> Result<Option<PathBuf>, StartError> {
    if !has_data(dir) {
        return Ok(None);
    }
    let mut n = 1u32;
    let aside = loop {
        let p = dir.join(format!("lost-{n}"));
        if !p.exists() {
            break p;
        }
        n += 1;
    };
    fs::create_dir_all(&aside).map_err(|e| io_err("cannot create", &aside, e))?;
    for d in ["journal", "snapshots", "identity"] {
        let from = dir.join(d);
        if from.exists() {
            fs::rename(&from, aside.join(d)).map_err(|e| io_err("cannot move aside", &from, e))?;
        }
    }
    crate::journal::sync_dir(dir).map_err(|e| io_err("cannot sync", dir, e))?;
    Ok(Some(aside))
}

/// Pre-creates the directories of a whole new cluster (`raftkv bootstrap`,
/// `raftkv cluster` on its first start): one cluster UUID, one incarnation
/// per node, and the same bootstrap configuration binding them all in every
/// directory. Refuses if any of the directories already has an identity:
/// "first start" is decided for the whole cluster, never per node.
pub fn bootstrap_cluster(name: &str, dirs: &[(NodeId, PathBuf)]) -> Result<Vec<Identity>, StartError> {
    for (id, d) in dirs {
        if d.join(IDENTITY_FILE).exists() || has_data(d) {
            return Err(StartError(format!(
                "node {id}'s directory {} is not empty: this cluster was bootstrapped already",
                d.display()
            )));
        }
    }
    let uuid = random_uuid()?;
    let mut bootstrap = Vec::new();
    for (id, _) in dirs {
        bootstrap.push(BoundMember { id: *id, inc: random_incarnation()? });
    }
    bootstrap.sort();
    let mut out = Vec::new();
    for (id, d) in dirs {
        let inc = bootstrap.iter().find(|m| m.id == *id).map_or(0, |m| m.inc);
        let ident = Identity {
            format: FORMAT,
            cluster_uuid: uuid.clone(),
            cluster_name: name.to_string(),
            node_id: *id,
            incarnation: inc,
            bootstrap: bootstrap.clone(),
        };
        ident.create(d)?;
        out.push(ident);
    }
    Ok(out)
}

/// A new identity for node `id` joining the cluster `uuid` whose bootstrap
/// configuration is `bootstrap`, with a fresh incarnation.
pub fn joining(uuid: &str, name: &str, id: NodeId, bootstrap: Vec<BoundMember>) -> Result<Identity, StartError> {
    Ok(Identity {
        format: FORMAT,
        cluster_uuid: uuid.to_string(),
        cluster_name: name.to_string(),
        node_id: id,
        incarnation: random_incarnation()?,
        bootstrap,
    })
}

/// A one-node cluster's identity (`--bootstrap`, `snapshot restore`): a new
/// UUID, and this node alone, bound to its fresh incarnation.
pub fn single(name: &str, id: NodeId) -> Result<Identity, StartError> {
    let inc = random_incarnation()?;
    Ok(Identity {
        format: FORMAT,
        cluster_uuid: random_uuid()?,
        cluster_name: name.to_string(),
        node_id: id,
        incarnation: inc,
        bootstrap: vec![BoundMember { id, inc }],
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tmp(tag: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("raftkv-ident-{tag}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&d);
        d
    }

    #[test]
    fn a_cluster_is_bootstrapped_once_with_one_bound_configuration() {
        let d = tmp("boot");
        let dirs: Vec<(NodeId, PathBuf)> = (1..=3).map(|i| (i, d.join(format!("node-{i}")))).collect();
        let made = bootstrap_cluster("c", &dirs).unwrap();
        let loaded: Vec<Identity> = dirs.iter().map(|(_, p)| Identity::load(p).unwrap().unwrap()).collect();
        assert_eq!(made, loaded);
        assert!(loaded.iter().all(|i| i.bootstrap == loaded[0].bootstrap && i.cluster_uuid == loaded[0].cluster_uuid));
        for i in &loaded {
            assert_eq!(i.bootstrap.iter().find(|m| m.id == i.node_id).unwrap().inc, i.incarnation);
        }
        assert!(bootstrap_cluster("c", &dirs).unwrap_err().0.contains("bootstrapped already"));
        assert!(loaded[0].check(&dirs[0].1, Some("c"), 2).is_err());
        assert!(loaded[0].check(&dirs[0].1, Some("other"), 1).is_err());
        assert!(loaded[0].check(&dirs[0].1, Some("c"), 1).is_ok());
        // A damaged file is named, not guessed at.
        fs::write(dirs[1].1.join(IDENTITY_FILE), "format = 1\nbogus").unwrap();
        assert!(Identity::load(&dirs[1].1).unwrap_err().0.contains("damaged"));
        let _ = fs::remove_dir_all(&d);
    }

    #[test]
    fn every_start_has_a_higher_epoch() {
        let d = tmp("epoch");
        fs::create_dir_all(&d).unwrap();
        assert_eq!(next_epoch(&d).unwrap(), 1);
        assert_eq!(next_epoch(&d).unwrap(), 2);
        assert_eq!(fs::read_to_string(d.join(EPOCH_FILE)).unwrap(), "2\n");
        fs::write(d.join(EPOCH_FILE), "two").unwrap();
        assert!(next_epoch(&d).unwrap_err().0.contains("damaged"));
        let _ = fs::remove_dir_all(&d);
    }

    #[test]
    fn unidentified_data_is_set_aside() {
        let d = tmp("aside");
        fs::create_dir_all(d.join("journal")).unwrap();
        fs::write(d.join("journal/00000001.seg"), b"x").unwrap();
        let aside = set_aside_unidentified(&d).unwrap().unwrap();
        assert!(aside.join("journal/00000001.seg").exists());
        assert!(!has_data(&d));
        assert_eq!(set_aside_unidentified(&d).unwrap(), None);
        let _ = fs::remove_dir_all(&d);
    }
}
