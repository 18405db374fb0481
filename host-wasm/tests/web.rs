//! The JavaScript-facing bindings, run in Node by wasm-bindgen-test-runner
//! (`cargo test -p host-wasm --target wasm32-unknown-unknown --test web`).
#![cfg(target_arch = "wasm32")]

use host_wasm::bindings::{build_info, run_seed, Cluster};
use wasm_bindgen_test::wasm_bindgen_test;

fn parse(s: &str) -> serde_json::Value {
    serde_json::from_str(s).expect("valid JSON")
}

#[wasm_bindgen_test]
fn state_is_one_json_object_with_every_node() {
    let mut c = Cluster::new("{\"nodes\":3,\"seed\":2}").unwrap();
    c.advance(2_000_000.0);
    let s = parse(&c.state());
    let nodes = s["nodes"].as_array().unwrap();
    assert_eq!(nodes.len(), 3);
    for n in nodes {
        for key in ["role", "term", "timer", "log", "commit", "kv", "journal", "progress", "votes"] {
            assert!(!n[key].is_null(), "node field {key}");
        }
    }
    assert!(s["leader"].as_u64().is_some(), "a leader within 2 s");
    assert_eq!(c.violations(), 0);
}

#[wasm_bindgen_test]
fn bad_options_and_actions_are_errors_not_panics() {
    assert!(Cluster::new("{\"nodes\":12}").is_err());
    assert!(Cluster::new("not json").is_err());
    let mut c = Cluster::new("{}").unwrap();
    assert!(c.act("{\"op\":\"explode\"}").is_err());
    // Out of range: refused, with the reason for the page.
    assert_eq!(c.act("{\"op\":\"crash\",\"node\":42}").unwrap(), "there is no node 42");
}

#[wasm_bindgen_test]
fn a_node_is_added_as_a_learner_and_promoted_through_the_bindings() {
    let mut c = Cluster::new("{\"nodes\":3,\"seed\":2}").unwrap();
    assert!(c.act("{\"op\":\"add_node\"}").unwrap().contains("no leader"));
    assert!(c.run_until_leader(5_000_000.0) > 0);
    c.advance(300_000.0);
    assert_eq!(c.act("{\"op\":\"add_node\"}").unwrap(), "");
    assert_eq!(c.node_count(), 4);
    let conf = parse(&c.config());
    assert_eq!(conf["learners"], serde_json::json!([4]));
    c.advance(1_000_000.0);
    assert_eq!(c.act("{\"op\":\"promote\",\"node\":4}").unwrap(), "");
    c.advance(300_000.0);
    let conf = parse(&c.config());
    assert_eq!(conf["voters"], serde_json::json!([1, 2, 3, 4]));
    assert_eq!(conf["committed"], true);
    let s = parse(&c.state());
    assert_eq!(s["nodes"][3]["member"], "voter");
    assert_eq!(s["config"]["joint"], false);
}

#[wasm_bindgen_test]
fn crash_elects_a_new_leader_with_a_higher_term() {
    let mut c = Cluster::new("{\"seed\":5}").unwrap();
    let l = c.run_until_leader(5_000_000.0);
    assert!(l > 0);
    let t = c.term(l);
    c.act(&format!("{{\"op\":\"crash\",\"node\":{l}}}")).unwrap();
    assert_eq!(c.role(l), "down");
    c.advance(50_000.0);
    let l2 = c.run_until_leader(5_000_000.0);
    assert!(l2 > 0 && l2 != l);
    assert!(c.term(l2) > t);
}

#[wasm_bindgen_test]
fn a_client_put_is_visible_on_every_node_and_messages_carry_fields() {
    let mut c = Cluster::new("{\"seed\":8}").unwrap();
    c.run_until_leader(5_000_000.0);
    c.act("{\"op\":\"client\",\"req\":{\"kind\":\"put\",\"key\":\"x\",\"value\":\"hello\"}}").unwrap();
    c.advance(5_000.0);
    let s = parse(&c.state());
    let msgs = s["messages"].as_array().unwrap();
    assert!(msgs.iter().any(|m| m["type"] == "Append" && !m["entries"].is_null()), "{msgs:?}");
    c.advance(1_000_000.0);
    for id in 1..=5 {
        assert_eq!(c.value(id, "x").as_deref(), Some("hello"));
    }
    let feed = parse(&c.feed(0.0));
    assert!(feed.as_array().unwrap().iter().any(|f| f["text"].as_str().unwrap().contains("x=\"hello\"")));
}

#[wasm_bindgen_test]
fn replay_through_json_matches() {
    let mut c = Cluster::new("{\"seed\":13}").unwrap();
    c.run_until_leader(5_000_000.0);
    c.act("{\"op\":\"start_clients\",\"count\":2}").unwrap();
    c.advance(700_000.0);
    c.act("{\"op\":\"partition\",\"side\":[1,2]}").unwrap();
    c.advance(900_000.0);
    c.act("{\"op\":\"heal\"}").unwrap();
    c.advance(600_000.0);
    let want = c.state();
    let r = Cluster::replay(&c.options(), &c.trace(), c.now());
    let mut r = r.unwrap();
    assert_eq!(r.state(), want);
}

#[wasm_bindgen_test]
fn a_test_mode_seed_reports_a_verdict() {
    let info = parse(&build_info());
    assert!(info["default_options"]["nodes"].as_u64().is_some());
    let r = parse(&run_seed("{\"seed\":3,\"duration_us\":3000000}").unwrap());
    assert_eq!(r["verdict"]["kind"], "ok", "{r}");
    assert!(r["actions"].as_array().unwrap().len() > 2);
}

#[wasm_bindgen_test]
fn log_window_and_in_flight_answer_what_the_page_asks() {
    let mut c = Cluster::new("{\"seed\":8,\"nodes\":3}").unwrap();
    c.run_until_leader(5_000_000.0);
    for i in 0..6 {
        c.act(&format!("{{\"op\":\"client\",\"req\":{{\"kind\":\"put\",\"key\":\"k\",\"value\":\"{i}\"}}}}")).unwrap();
        c.advance(30_000.0);
    }
    c.advance(500_000.0);
    let l = c.leader();
    let last = c.last_index(l);
    let w = parse(&c.log_window(last - 2.0, last + 5.0));
    let w = w.as_array().unwrap();
    assert_eq!(w.len(), 3, "one list per node");
    for entries in w {
        let idx: Vec<u64> = entries.as_array().unwrap().iter().map(|e| e["i"].as_u64().unwrap()).collect();
        assert_eq!(idx, vec![last as u64 - 2, last as u64 - 1, last as u64], "the window, nothing past the log");
        assert!(entries.as_array().unwrap().iter().all(|e| e["x"].is_null()), "nothing flagged on a correct run");
    }
    // A crashed node's window comes from its disk.
    let f = if l == 1 { 2 } else { 1 };
    c.act(&format!("{{\"op\":\"crash\",\"node\":{f}}}")).unwrap();
    let w = parse(&c.log_window(1.0, last));
    assert_eq!(w[(f - 1) as usize].as_array().unwrap().len() as f64, last);
    // Heartbeats leave the leader every few ticks; nothing else is on the wire.
    for _ in 0..100 {
        if c.in_flight("", 0) > 0 {
            break;
        }
        c.advance(2_000.0);
    }
    assert!(c.in_flight("Heartbeat", l) > 0);
    assert_eq!(c.in_flight("", 0), c.in_flight("Heartbeat", 0) + c.in_flight("AppendResp", 0));
    assert_eq!(c.in_flight("Vote", 0), 0);
    assert_eq!(c.first_violation(), -1.0);
}
