//! The JavaScript surface. Times cross as `f64` microseconds and ids as `u32`
//! (no BigInt on the page); structured data crosses as JSON strings, which
//! measured cheaper per frame than building JS objects field by field.

use wasm_bindgen::prelude::*;

use crate::action::{Action, Op};
use crate::driver::Driver;
use crate::options::Options;
use crate::view::ViewOptions;
use crate::workload::{self, WorkloadOptions};

fn err(e: impl core::fmt::Display) -> JsError {
    JsError::new(&e.to_string())
}

fn json<T: serde::Serialize>(v: &T) -> String {
    serde_json::to_string(v).unwrap_or_else(|e| format!("{{\"error\":\"{e}\"}}"))
}

fn us(x: f64) -> u64 {
    if x.is_finite() && x > 0.0 {
        x as u64
    } else {
        0
    }
}

/// A simulated cluster.
#[wasm_bindgen]
pub struct Cluster {
    d: Driver,
    view: ViewOptions,
}

#[wasm_bindgen]
impl Cluster {
    /// A fresh cluster from options (JSON; `{}` takes every default).
    #[wasm_bindgen(constructor)]
    pub fn new(options: &str) -> Result<Cluster, JsError> {
        let o = Options::from_json(options).map_err(err)?;
        Ok(Cluster { d: Driver::new(o).map_err(err)?, view: ViewOptions::default() })
    }

    /// Rebuilds a run from options and actions (JSON array), up to simulated time `upto` (µs).
    pub fn replay(options: &str, actions: &str, upto: f64) -> Result<Cluster, JsError> {
        let o = Options::from_json(options).map_err(err)?;
        let a: Vec<Action> = serde_json::from_str(actions).map_err(|e| err(format!("bad actions: {e}")))?;
        Ok(Cluster { d: Driver::replay(o, a, us(upto)).map_err(err)?, view: ViewOptions::default() })
    }

    /// Sets how much of each log and journal a frame carries (JSON `ViewOptions`).
    pub fn set_view(&mut self, view: &str) -> Result<(), JsError> {
        self.view = serde_json::from_str(view).map_err(err)?;
        Ok(())
    }

    /// Runs `us` simulated microseconds.
    pub fn advance(&mut self, us_: f64) {
        self.d.advance(us(us_));
    }

    /// Runs `us` simulated microseconds, or less: it stops right after an
    /// event that made a safety check fail. Returns whether it stopped there.
    pub fn advance_to_violation(&mut self, us_: f64) -> bool {
        let end = self.d.now().saturating_add(us(us_));
        self.d.run_until_violation(end)
    }

    /// Runs until simulated time `t` (µs).
    pub fn run_until(&mut self, t: f64) {
        self.d.run_until(us(t));
    }

    /// Processes exactly one event.
    pub fn step(&mut self) -> bool {
        self.d.step()
    }

    /// Runs until a leader exists or `max_us` passes; returns its id or 0.
    pub fn run_until_leader(&mut self, max_us: f64) -> u32 {
        self.d.run_until_leader(us(max_us)).unwrap_or(0) as u32
    }

    /// Carries out an action (JSON `Op`, e.g. `{"op":"crash","node":2}`) and
    /// records it. Returns why it was refused (a second membership change
    /// while one is unfinished, …), or `""` if it was carried out.
    pub fn act(&mut self, op: &str) -> Result<String, JsError> {
        let op: Op = serde_json::from_str(op).map_err(|e| err(format!("bad action: {e}")))?;
        Ok(self.d.try_act(op).err().map_or_else(String::new, |e| e.0))
    }

    /// The cluster's configuration (JSON `ConfView`, or `null` with every node down).
    pub fn config(&self) -> String {
        json(&self.d.cluster_conf())
    }

    /// Number of nodes, including those added since the start.
    pub fn node_count(&self) -> u32 {
        self.d.node_count() as u32
    }

    /// The whole observable state (JSON).
    pub fn state(&mut self) -> String {
        let view = self.view;
        json(&self.d.state(&view))
    }

    /// Feed lines newer than `since` (JSON array).
    pub fn feed(&self, since: f64) -> String {
        json(&self.d.feed_since(us(since)))
    }

    /// Each node's log entries with indexes `lo..=hi` (JSON array by node id).
    pub fn log_window(&mut self, lo: f64, hi: f64) -> String {
        json(&self.d.log_window(us(lo), us(hi)))
    }

    /// Messages in flight of a kind (`"Vote"`, `"Append"`, …; `""`: all), optionally from one node (0: any).
    pub fn in_flight(&self, kind: &str, from: u32) -> u32 {
        let from = from as u64;
        self.d
            .sim()
            .in_flight()
            .values()
            .filter(|f| (kind.is_empty() || f.msg.body.name() == kind) && (from == 0 || f.msg.from == from))
            .count() as u32
    }

    /// Simulated time of the first safety violation, µs (-1: none).
    pub fn first_violation(&self) -> f64 {
        self.d.first_violation().map_or(-1.0, |t| t as f64)
    }

    /// Every record of a node's journal (JSON array).
    pub fn journal(&self, node: u32) -> String {
        json(&self.d.journal(node as u64))
    }

    /// The options (JSON).
    pub fn options(&self) -> String {
        json(self.d.options())
    }

    /// Every action of the trace: applied ones and those still ahead (JSON array).
    pub fn trace(&self) -> String {
        json(&self.d.trace())
    }

    /// Simulated time, µs.
    pub fn now(&self) -> f64 {
        self.d.now() as f64
    }

    /// Events processed.
    pub fn events(&self) -> f64 {
        self.d.events() as f64
    }

    /// Simulated time of the trace's last action, µs.
    pub fn trace_end(&self) -> f64 {
        self.d.trace_end() as f64
    }

    /// The leader of the highest term among live nodes, or 0.
    pub fn leader(&self) -> u32 {
        self.d.sim().leader().unwrap_or(0) as u32
    }

    /// A node's term (0 if down).
    pub fn term(&self, node: u32) -> f64 {
        self.d.sim().raft(node as u64).map_or(0.0, |r| r.term() as f64)
    }

    /// A node's role name ("down" if crashed).
    pub fn role(&self, node: u32) -> String {
        self.d.sim().raft(node as u64).map_or("down", |r| r.role().name()).to_string()
    }

    /// A node's commit index.
    pub fn commit(&self, node: u32) -> f64 {
        self.d.sim().raft(node as u64).map_or(0.0, |r| r.commit_index() as f64)
    }

    /// A node's durable index: its log is on disk up to here (0 if down).
    pub fn durable(&self, node: u32) -> f64 {
        self.d.sim().raft(node as u64).map_or(0.0, |r| r.durable_index() as f64)
    }

    /// A node's last log index.
    pub fn last_index(&self, node: u32) -> f64 {
        self.d.sim().raft(node as u64).map_or(0.0, |r| r.log().last_index() as f64)
    }

    /// A key's value at a node (`undefined` if absent or the node is down).
    pub fn value(&self, node: u32, key: &str) -> Option<String> {
        self.d.sim().raft(node as u64).and_then(|r| r.state_machine().get(key).map(String::from))
    }

    /// Number of safety violations found so far.
    pub fn violations(&self) -> u32 {
        self.d.sim().violations().len() as u32
    }

    /// The simulated clients' history so far (JSON array of operations in words).
    pub fn history(&self) -> String {
        let now = self.d.now();
        let h: Vec<_> = self.d.sim().history().iter().map(|o| workload::op_view(o, now)).collect();
        json(&h)
    }
}

/// Runs one test-mode seed (JSON `WorkloadOptions`) and returns its report (JSON).
#[wasm_bindgen]
pub fn run_seed(options: &str) -> Result<String, JsError> {
    let w: WorkloadOptions = serde_json::from_str(options).map_err(err)?;
    Ok(json(&workload::run(&w).map_err(err)?))
}

/// What this build is: `{"bugs": bool, "checker": bool, "default_options": …}`.
#[wasm_bindgen]
pub fn build_info() -> String {
    json(&serde_json::json!({
        "bugs": cfg!(feature = "bugs"),
        "checker": workload::HAS_CHECKER,
        "default_options": Options::default(),
    }))
}
